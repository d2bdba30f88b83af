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
    /// The one task the program changes, if it is about one: the store adds the task's index
    /// as the argument `$at` when it runs the change (see `find_task!`).
    pub task: Option<String>,
}

impl Change {
    fn new(source: &'static str, program: &str, args: Vec<(String, Value)>) -> Self {
        Self {
            source,
            program: program.to_string(),
            args,
            may_complete: false,
            may_mark_project_done: false,
            task: None,
        }
    }

    /// This change about task `id`.
    fn about(mut self, id: &str) -> Self {
        self.task = Some(id.to_string());
        self
    }

    /// The change as it runs on `doc`: with `$at`, the index of its task in `doc` (one past
    /// the end when there is no such task, so the program looks for it and says so).
    pub fn located(&self, doc: &Value) -> std::borrow::Cow<'_, Self> {
        let Some(id) = &self.task else {
            return std::borrow::Cow::Borrowed(self);
        };
        let tasks = doc
            .get("tasks")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let at = tasks
            .iter()
            .position(|t| t.get("id").and_then(Value::as_str) == Some(id))
            .unwrap_or(tasks.len());
        let mut change = self.clone();
        change.args.push(("at".into(), json!(at)));
        std::borrow::Cow::Owned(change)
    }

    /// The arguments as a JSON object, for the journal.
    pub fn args_json(&self) -> Value {
        Value::Object(self.args.iter().cloned().collect())
    }
}

/// Appends a task with the next free id in the backlog's style: `$prefix` then the next
/// number, zero-padded to `$width` digits (`T13`, `TASK-008`).
pub const ADD: &str = r#"([.tasks[].id | select(startswith($prefix)) | .[($prefix | length):] | select(length > 0 and all(explode[]; . >= 48 and . <= 57)) | tonumber] | max // 0) as $max
| (($max + 1) | tostring) as $n
| ($prefix + ([range($width - ($n | length))] | map("0") | join("")) + $n) as $id
| if any(.tasks[]; .id == $id) then error("the next id \($id) is taken") else . end
| .tasks += [{id: $id, title: $title, priority: $priority, status: "todo"}
  + (if $description == null then {} else {description: $description} end)
  + (if ($depends_on | length) > 0 then {depends_on: $depends_on} else {} end)
  + (if ($tags | length) > 0 then {tags: $tags} else {} end)
  + {created_at: $now, updated_at: $now}]"#;

/// The start of every program that changes one task: finds task `$id` as `$i`, at `$at`
/// (the index the store found it at when it ran the change, journaled with it), else by a
/// scan, else the change fails. The hint saves walking every task of a large backlog; the
/// program checks it, so a wrong hint costs only the scan.
macro_rules! find_task {
    () => {
        r#"(if .tasks[$at].id == $id then $at
  else first(range(.tasks | length) as $k | select(.tasks[$k].id == $id) | $k) // error("no task with id \($id)") end) as $i
"#
    };
}

/// Sets a task's status (never to `done`: see [`DONE`]).
pub const SET_STATUS: &str = concat!(
    find_task!(),
    "| .tasks[$i] |= (.status = $status | .updated_at = $now)"
);

/// Marks a task done by a person's decision, with the reason as a note.
pub const DONE: &str = concat!(
    find_task!(),
    r#"| .tasks[$i] |= (.status = "done" | .notes = ((.notes // []) + [$note]) | .updated_at = $now)"#
);

/// Rewrites the file in canonical form without changing anything.
pub const IDENTITY: &str = ".";

/// Marks a task done after Looper corroborated the worker's report, with a note.
pub const COMPLETE: &str = concat!(
    find_task!(),
    r#"| .tasks[$i] |= (.status = "done" | .notes = ((.notes // []) + [$note]) | .updated_at = $now)"#
);

/// Records an iteration that did not finish a task: one more attempt, a note, and the task
/// back to `todo`, or `blocked` (with the agent's blockers) when the agent said so or the
/// retry limit is reached.
pub const ATTEMPT: &str = concat!(
    find_task!(),
    r#"| .tasks[$i] |= (
    .attempts = ((.attempts // 0) + 1)
    | .notes = ((.notes // []) + [$note])
    | .status = (if $blocked or .attempts >= $limit then "blocked" else "todo" end)
    | (if ($blockers | length) > 0 then .blockers = $blockers else . end)
    | .updated_at = $now)"#
);

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

/// How a backlog's ids look, so new tasks follow suit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdStyle {
    /// What comes before the number: `T` in `T12`, `TASK-` in `TASK-007`.
    pub prefix: String,
    /// The width numbers are zero-padded to (0: not padded).
    pub width: usize,
}

impl Default for IdStyle {
    fn default() -> Self {
        Self {
            prefix: "T".into(),
            width: 0,
        }
    }
}

impl IdStyle {
    /// The style of most ids that end in a number (`T<n>` when none does). Numbers are
    /// padded when the ids of that prefix are, to the longest such number.
    pub fn of(doc: &Value) -> Self {
        let ids = doc
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|t| !super::model::has_tag(t, super::model::PROJECT_DONE_TAG))
            .filter_map(|t| t.get("id").and_then(Value::as_str));
        // prefix -> (ids, widest zero-padded number), in order of first use
        let mut styles: Vec<(&str, usize, usize)> = Vec::new();
        for id in ids {
            let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                continue;
            }
            let (prefix, number) = id.split_at(id.len() - digits);
            let padded = if number.len() > 1 && number.starts_with('0') {
                number.len()
            } else {
                0
            };
            match styles.iter_mut().find(|(p, _, _)| *p == prefix) {
                Some((_, count, width)) => {
                    *count += 1;
                    *width = (*width).max(padded);
                }
                None => styles.push((prefix, 1, padded)),
            }
        }
        // The most used prefix; the first one used on a tie.
        let best =
            styles
                .iter()
                .rev()
                .max_by_key(|(_, count, _)| *count)
                .map(|(prefix, _, width)| Self {
                    prefix: (*prefix).to_owned(),
                    width: *width,
                });
        best.unwrap_or_default()
    }
}

/// Appends `task` with the next free id in `style`.
pub fn add(task: &NewTask, style: &IdStyle) -> Change {
    Change::new(
        "add",
        ADD,
        vec![
            ("prefix".into(), json!(style.prefix)),
            ("width".into(), json!(style.width)),
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
    .about(id)
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
    )
    .about(id);
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
    )
    .about(id);
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
    .about(id)
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

/// Removes the project-done marker, when tasks were added after it (the marker's record
/// stays in the journal).
pub fn reopen(marker_id: &str) -> Change {
    Change::new(
        "reopen",
        ".tasks |= map(select(.id != $marker_id))",
        vec![("marker_id".into(), json!(marker_id))],
    )
}

pub fn format() -> Change {
    Change::new("fmt", IDENTITY, Vec::new())
}

/// A program given by a person (`looper update`).
pub fn user(program: &str, args: Vec<(String, Value)>) -> Change {
    Change::new("update", program, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(ids: &[&str]) -> Value {
        let tasks: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "title": format!("task {id}"), "priority": 3, "status": "todo"}))
            .collect();
        json!({"schema_version": 1, "source_files": [], "tasks": tasks})
    }

    fn next_id(ids: &[&str]) -> String {
        let doc = doc(ids);
        let task = NewTask {
            title: "new".into(),
            priority: 3,
            description: None,
            depends_on: Vec::new(),
            tags: Vec::new(),
        };
        let change = add(&task, &IdStyle::of(&doc));
        let out = super::super::jq::run(&change.program, &change.args, &doc).unwrap();
        out["tasks"].as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn new_ids_follow_the_backlogs_style() {
        assert_eq!(next_id(&[]), "T1");
        assert_eq!(next_id(&["T1", "T2", "T10"]), "T11");
        assert_eq!(next_id(&["TASK-001", "TASK-002", "TASK-009"]), "TASK-010");
        assert_eq!(next_id(&["task-1", "task-2", "misc"]), "task-3");
        assert_eq!(next_id(&["PROJ-0098", "PROJ-0099"]), "PROJ-0100");
        assert_eq!(next_id(&["1", "2", "3"]), "4");
        // The most used prefix wins; the first used on a tie.
        assert_eq!(next_id(&["A1", "B1", "B2"]), "B3");
        assert_eq!(next_id(&["A1", "B1"]), "A2");
        // No numbered ids at all: T<n>.
        assert_eq!(next_id(&["setup", "docs"]), "T1");
    }

    #[test]
    fn padding_follows_the_padded_ids_and_numbers_stay_unique() {
        assert_eq!(next_id(&["T02", "T3"]), "T04");
        assert_eq!(next_id(&["T1", "T01"]), "T02");
        // The project-done marker does not count towards the style.
        let mut d = doc(&["X-1", "X-2"]);
        d["tasks"].as_array_mut().unwrap().push(
            json!({"id": "DONE-1", "title": "Project done", "priority": 5, "status": "done", "tags": ["project-done"]}),
        );
        assert_eq!(IdStyle::of(&d).prefix, "X-");
    }
}
