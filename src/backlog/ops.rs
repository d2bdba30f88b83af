//! The backlog changes Looper makes, each written as a jq program plus named arguments.
//!
//! The programs are constants so the journal shows the same text for every change of a kind,
//! and the arguments carry everything that varies (including the time, so a replay is exact).

use serde_json::{Value, json};

use super::time::now_rfc3339;

/// A backlog change: a jq program, its arguments, and what it is allowed to do.
#[derive(Debug, Clone)]
pub struct Change {
    /// What made the change (`add`, `update`, `done`, `fmt`, `init`, ...), for the journal.
    pub source: &'static str,
    pub program: String,
    pub args: Vec<(String, Value)>,
    /// Whether this change may set a task's status to `done` (only corroboration and
    /// `looper done` may).
    pub may_complete: bool,
    /// Whether this change may add the project-done marker (only the review pass may).
    pub may_mark_project_done: bool,
}

impl Change {
    fn new(source: &'static str, program: &str, args: Vec<(String, Value)>) -> Self {
        Self {
            source,
            program: program.to_string(),
            args,
            may_complete: false,
            may_mark_project_done: false,
        }
    }

    /// The arguments as a JSON object, for the journal.
    pub fn args_json(&self) -> Value {
        Value::Object(self.args.iter().cloned().collect())
    }
}

/// Appends a task with the next free `T<n>` id.
pub const ADD: &str = r#"([.tasks[].id | select(startswith("T")) | .[1:] | select(length > 0 and all(explode[]; . >= 48 and . <= 57)) | tonumber] | max // 0) as $max
| ($max + 1) as $n
| .tasks += [{id: "T\($n)", title: $title, priority: $priority, status: "todo"}
  + (if $description == null then {} else {description: $description} end)
  + (if ($depends_on | length) > 0 then {depends_on: $depends_on} else {} end)
  + (if ($tags | length) > 0 then {tags: $tags} else {} end)
  + {created_at: $now, updated_at: $now}]"#;

/// Sets a task's status (never to `done`: see [`DONE`]).
pub const SET_STATUS: &str = r#"if any(.tasks[]; .id == $id) then . else error("no task with id \($id)") end
| .tasks |= map(if .id == $id then .status = $status | .updated_at = $now else . end)"#;

/// Marks a task done by a person's decision, with the reason as a note.
pub const DONE: &str = r#"if any(.tasks[]; .id == $id) then . else error("no task with id \($id)") end
| .tasks |= map(if .id == $id then .status = "done" | .notes = ((.notes // []) + [$note]) | .updated_at = $now else . end)"#;

/// Rewrites the file in canonical form without changing anything.
pub const IDENTITY: &str = ".";

/// Marks a task done after Looper corroborated the worker's report, with a note.
pub const COMPLETE: &str = r#"if any(.tasks[]; .id == $id) then . else error("no task with id \($id)") end
| .tasks |= map(if .id == $id then .status = "done" | .notes = ((.notes // []) + [$note]) | .updated_at = $now else . end)"#;

/// Records an iteration that did not finish a task: one more attempt, a note, and the task
/// back to `todo`, or `blocked` (with the agent's blockers) when the agent said so or the
/// retry limit is reached.
pub const ATTEMPT: &str = r#"if any(.tasks[]; .id == $id) then . else error("no task with id \($id)") end
| .tasks |= map(if .id == $id then
    .attempts = ((.attempts // 0) + 1)
    | .notes = ((.notes // []) + [$note])
    | .status = (if $blocked or .attempts >= $limit then "blocked" else "todo" end)
    | (if ($blockers | length) > 0 then .blockers = $blockers else . end)
    | .updated_at = $now
  else . end)"#;

/// Appends the project-done marker (only the review pass does this).
pub const MARK_PROJECT_DONE: &str = r#".tasks += [{id: $marker_id, title: "Project done", priority: 5, status: "done",
  tags: ["project-done"], notes: [$note], created_at: $now, updated_at: $now}]"#;

/// A new task for `looper add`.
pub struct NewTask {
    pub title: String,
    pub priority: u8,
    pub description: Option<String>,
    pub depends_on: Vec<String>,
    pub tags: Vec<String>,
}

pub fn add(task: &NewTask) -> Change {
    Change::new(
        "add",
        ADD,
        vec![
            ("title".into(), json!(task.title)),
            ("priority".into(), json!(task.priority)),
            ("description".into(), json!(task.description)),
            ("depends_on".into(), json!(task.depends_on)),
            ("tags".into(), json!(task.tags)),
            ("now".into(), json!(now_rfc3339())),
        ],
    )
}

pub fn set_status(id: &str, status: super::Status) -> Change {
    Change::new(
        "status",
        SET_STATUS,
        vec![
            ("id".into(), json!(id)),
            ("status".into(), json!(status.as_str())),
            ("now".into(), json!(now_rfc3339())),
        ],
    )
}

pub fn done_by_hand(id: &str, reason: &str) -> Change {
    let mut change = Change::new(
        "done",
        DONE,
        vec![
            ("id".into(), json!(id)),
            ("note".into(), json!(format!("done by hand: {reason}"))),
            ("now".into(), json!(now_rfc3339())),
        ],
    );
    change.may_complete = true;
    change
}

/// Marks `id` done after corroboration.
pub fn complete(id: &str, note: &str) -> Change {
    let mut change = Change::new(
        "complete",
        COMPLETE,
        vec![
            ("id".into(), json!(id)),
            ("note".into(), json!(note)),
            ("now".into(), json!(now_rfc3339())),
        ],
    );
    change.may_complete = true;
    change
}

/// One more attempt on `id`: see [`ATTEMPT`].
pub fn attempt(id: &str, note: &str, blocked: bool, blockers: &[String], limit: u32) -> Change {
    Change::new(
        "attempt",
        ATTEMPT,
        vec![
            ("id".into(), json!(id)),
            ("note".into(), json!(note)),
            ("blocked".into(), json!(blocked)),
            ("blockers".into(), json!(blockers)),
            ("limit".into(), json!(limit)),
            ("now".into(), json!(now_rfc3339())),
        ],
    )
}

/// Appends the project-done marker with the review's summary as its note. `marker_id` is
/// `PROJECT-DONE`, or a free variant of it when a task already has that id.
pub fn mark_project_done(marker_id: &str, note: &str) -> Change {
    let mut change = Change::new(
        "review",
        MARK_PROJECT_DONE,
        vec![
            ("marker_id".into(), json!(marker_id)),
            ("note".into(), json!(note)),
            ("now".into(), json!(now_rfc3339())),
        ],
    );
    change.may_complete = true;
    change.may_mark_project_done = true;
    change
}

pub fn format() -> Change {
    Change::new("fmt", IDENTITY, Vec::new())
}

/// A program given by a person (`looper update`).
pub fn user(program: &str, args: Vec<(String, Value)>) -> Change {
    Change::new("update", program, args)
}
