//! The backlog's Rust types (`schema_version` 1, DESIGN §3) and the JSON Schema generated from
//! them.
//!
//! The types are the *definition* of the format: the schema written to `to-do.schema.json`
//! and `schemas/to-do.schema.json` comes from them, and new tasks are built from them. The
//! document itself is kept as a `serde_json::Value` (see [`super::Doc`]) so that key order
//! and formatting survive every write; [`TaskView`] is the cheap typed view used to select
//! and list tasks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only backlog format version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Tag that marks the project-done task.
pub const PROJECT_DONE_TAG: &str = "project-done";

/// Preferred id of the project-done marker.
pub const PROJECT_DONE_ID: &str = "PROJECT-DONE";

/// A Looper backlog (`to-do.json`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Looper backlog",
    description = "The backlog Looper works through, one task per iteration. Looper owns this \
                   file: agents read it and report; Looper applies every change."
)]
pub struct Backlog {
    /// Format version; this build reads and writes version 1.
    #[schemars(extend("const" = 1))]
    pub schema_version: u64,
    /// The project this backlog belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Project>,
    /// The project's ground truth (README, SPEC, ...), relative to the project root; agents read these first.
    pub source_files: Vec<String>,
    /// The tasks, in the order they were added.
    pub tasks: Vec<Task>,
}

/// The project a backlog belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// A short name for the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The project root, relative to the backlog file (usually ".").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// Where a task stands: `todo` (not started), `doing` (an agent is on it, or was when Looper
/// stopped), `blocked` (retried while `attempts` is under the retry limit), `done` (corroborated
/// by Looper, or marked done by a person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    // Not started.
    Todo,
    // An agent is working on it (or was, when Looper stopped).
    Doing,
    // Tried and blocked; retried while `attempts` is under the retry limit.
    Blocked,
    // Finished and corroborated by Looper (or marked done by a person with `looper done`).
    Done,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 4] = [Status::Todo, Status::Doing, Status::Blocked, Status::Done];

    /// The status as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Todo => "todo",
            Status::Doing => "doing",
            Status::Blocked => "blocked",
            Status::Done => "done",
        }
    }

    /// Parses the status as written in the file.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of work: what one agent iteration should finish.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique, non-empty id (Looper assigns `T1`, `T2`, ...).
    #[schemars(length(min = 1))]
    pub id: String,
    /// What to do, in one line.
    #[schemars(length(min = 1))]
    pub title: String,
    /// 1 (highest) to 5 (lowest).
    #[schemars(range(min = 1, max = 5))]
    pub priority: u8,
    /// Where the task stands.
    pub status: Status,
    /// What the task is about, in a few sentences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where in the source files the task comes from (e.g. `SPEC.md#config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Details: acceptance criteria, hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Suggested steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    /// What blocks the task, when it is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<String>>,
    /// Free-form tags; `project-done` marks the project-done task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Files the task is expected to touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// Ids of tasks that must be done first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// When the task was created (ISO 8601; Looper writes RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"))]
    pub created_at: Option<String>,
    /// When the task last changed (ISO 8601; Looper writes RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"))]
    pub updated_at: Option<String>,
    /// Iterations that ended without the task done (Looper's own count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// One line per iteration outcome (Looper's own notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<String>>,
    /// An agent spec (`adapter[:model][@effort]`) that pins this task to a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub agent: Option<String>,
    /// This task's own gates: shell commands run in addition to the project's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<String>>,
}

/// The backlog schema (JSON Schema draft 2020-12) as a JSON value.
pub fn backlog_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Backlog>().to_value();
    tidy(&mut schema);
    schema
}

/// Optional fields are optional, not nullable: `null` is not a valid value in the file, so
/// `Option<T>` becomes plain `T`. Rust-specific integer formats (`uint8`) are dropped.
fn tidy(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(any)) = obj.get("anyOf") {
            let rest: Vec<Value> = any
                .iter()
                .filter(|s| s.get("type") != Some(&Value::from("null")))
                .cloned()
                .collect();
            if rest.len() == 1 && any.len() == 2 {
                obj.shift_remove("anyOf");
                if let Value::Object(inner) = &rest[0] {
                    for (k, val) in inner {
                        obj.entry(k.clone()).or_insert_with(|| val.clone());
                    }
                }
            }
        }
        if obj
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|f| f.starts_with("uint") || f.starts_with("int"))
        {
            obj.shift_remove("format");
        }
        for child in obj.values_mut() {
            tidy(child);
        }
    } else if let Some(arr) = v.as_array_mut() {
        for child in arr {
            tidy(child);
        }
    }
}

/// The backlog schema as the bytes written to `to-do.schema.json`.
pub fn backlog_schema_text() -> String {
    super::format::to_pretty_string(&backlog_schema())
}

/// A cheap, borrowed view of one task of a valid document.
#[derive(Debug, Clone)]
pub struct TaskView<'a> {
    /// Position in `tasks`.
    pub index: usize,
    pub id: &'a str,
    pub title: &'a str,
    pub priority: u8,
    pub status: Status,
    pub attempts: u32,
    pub depends_on: Vec<&'a str>,
    pub is_marker: bool,
    pub value: &'a Value,
}

impl<'a> TaskView<'a> {
    /// Reads the view from a task object; `None` when a required field has the wrong shape
    /// (which validation reports separately).
    pub fn from_value(index: usize, value: &'a Value) -> Option<TaskView<'a>> {
        // One walk over the fields: a lookup each would hash every name (SipHash), and
        // selection makes a view of every task.
        let (mut id, mut title, mut priority, mut status) = (None, None, None, None);
        let (mut attempts, mut depends_on, mut tags) = (None, None, None);
        for (key, field) in value.as_object()? {
            match key.as_str() {
                "id" => id = Some(field),
                "title" => title = Some(field),
                "priority" => priority = Some(field),
                "status" => status = Some(field),
                "attempts" => attempts = Some(field),
                "depends_on" => depends_on = Some(field),
                "tags" => tags = Some(field),
                _ => {}
            }
        }
        let id = id?.as_str()?;
        let title = title?.as_str()?;
        let priority = u8::try_from(priority.and_then(as_integer)?).ok()?;
        let status = Status::parse(status?.as_str()?)?;
        let attempts = attempts
            .and_then(as_integer)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0);
        let depends_on = depends_on
            .and_then(Value::as_array)
            .map(|deps| deps.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let is_marker = status == Status::Done
            && tags
                .and_then(Value::as_array)
                .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(PROJECT_DONE_TAG)));
        Some(TaskView {
            index,
            id,
            title,
            priority,
            status,
            attempts,
            depends_on,
            is_marker,
            value,
        })
    }
}

/// True when the task object carries `tag` in its `tags`.
pub fn has_tag(task: &Value, tag: &str) -> bool {
    task.get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)))
}

/// An integer, also when written as `2.0` (JSON Schema counts that as an integer too).
pub fn as_integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    #[expect(clippy::float_cmp, reason = "exact integrality check")]
    let integral = f.trunc() == f && f.abs() < 9.0e15;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "checked integral and in range"
    )]
    integral.then_some(f as i64)
}
