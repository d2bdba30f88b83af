//! A validated backlog document: the JSON value as stored (key order intact) with typed views.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::jq::Shadow;
use super::model::{Status, TaskView};

/// Tasks by status, as `status`, `iteration.end` and `review.end` records show them.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Counts {
    pub todo: usize,
    pub doing: usize,
    pub blocked: usize,
    pub done: usize,
    /// Whether the project-done marker is present.
    pub project_done: bool,
}

impl Counts {
    /// Tasks not done yet.
    pub fn open(&self) -> usize {
        self.todo + self.doing + self.blocked
    }

    /// Counts one task with `status`, or the project-done marker.
    fn tally(&mut self, status: Status, is_marker: bool) {
        if is_marker {
            self.project_done = true;
            return;
        }
        *match status {
            Status::Todo => &mut self.todo,
            Status::Doing => &mut self.doing,
            Status::Blocked => &mut self.blocked,
            Status::Done => &mut self.done,
        } += 1;
    }
}

/// A backlog document that passed validation. Shared, so passing one around (the run's
/// cache, an update's result) does not copy a large backlog.
#[derive(Clone)]
pub struct Doc {
    value: Arc<Value>,
    /// What is worked out of the value once, when first asked for.
    derived: Arc<Derived>,
}

#[derive(Default)]
struct Derived {
    /// The document as the jq engine holds it, made on the first update and handed on by
    /// each update to its result.
    shadow: OnceLock<Shadow>,
    /// The tasks by status: journaled at an iteration's end and the next one's start, for
    /// the same document.
    counts: OnceLock<Counts>,
}

impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl std::fmt::Debug for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doc")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl Doc {
    /// Wraps a value the caller has validated.
    pub(crate) fn from_validated(value: Value) -> Self {
        Self::with_shadow(value, None)
    }

    /// Wraps a validated value whose jq form is already known (`shadow` stands for `value`).
    pub(crate) fn with_shadow(value: Value, shadow: Option<Shadow>) -> Self {
        let derived = Derived::default();
        if let Some(shadow) = shadow {
            let _ = derived.shadow.set(shadow);
        }
        Self {
            value: Arc::new(value),
            derived: Arc::new(derived),
        }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The document as the jq engine holds it.
    pub(crate) fn shadow(&self) -> &Shadow {
        self.derived.shadow.get_or_init(|| Shadow::of(&self.value))
    }

    pub fn into_value(self) -> Value {
        Arc::unwrap_or_clone(self.value)
    }

    /// The tasks, in file order.
    pub fn tasks(&self) -> Vec<TaskView<'_>> {
        self.value
            .get("tasks")
            .and_then(Value::as_array)
            .map(|tasks| {
                tasks
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| TaskView::from_value(i, t))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<TaskView<'_>> {
        // Find the value first: building a view of every task would cost more.
        let (index, value) = self
            .value
            .get("tasks")
            .and_then(Value::as_array)?
            .iter()
            .enumerate()
            .find(|(_, t)| t.get("id").and_then(Value::as_str) == Some(id))?;
        TaskView::from_value(index, value)
    }

    /// The project-done marker, if the project is done.
    pub fn marker(&self) -> Option<TaskView<'_>> {
        self.tasks().into_iter().find(|t| t.is_marker)
    }

    /// How many tasks have each status (the project-done marker is not counted): the tasks
    /// [`Self::tasks`] views, counted in one pass over each task's fields without building
    /// the views (a run counts after every step).
    pub fn counts(&self) -> Counts {
        *self.derived.counts.get_or_init(|| self.count())
    }

    fn count(&self) -> Counts {
        let mut c = Counts::default();
        let tasks = self.value.get("tasks").and_then(Value::as_array);
        for task in tasks.into_iter().flatten() {
            if let Some((status, is_marker)) = counted(task) {
                c.tally(status, is_marker);
            }
        }
        c
    }

    /// The canonical bytes of this document.
    pub fn to_pretty_string(&self) -> String {
        super::format::to_pretty_string(&self.value)
    }
}

/// A task's status and whether it is the project-done marker, when [`TaskView::from_value`]
/// makes a view of it (same conditions, one walk over the fields instead of a lookup each).
fn counted(task: &Value) -> Option<(Status, bool)> {
    let (mut id, mut title, mut priority, mut status, mut tags) = (false, false, false, None, None);
    for (key, value) in task.as_object()? {
        match key.as_str() {
            "id" => id = value.is_string(),
            "title" => title = value.is_string(),
            "priority" => {
                priority = super::model::as_integer(value).is_some_and(|p| u8::try_from(p).is_ok());
            }
            "status" => status = value.as_str().and_then(Status::parse),
            "tags" => tags = Some(value),
            _ => {}
        }
    }
    let status = status.filter(|_| id && title && priority)?;
    let is_marker = status == Status::Done
        && tags.and_then(Value::as_array).is_some_and(|t| {
            t.iter()
                .any(|t| t.as_str() == Some(super::model::PROJECT_DONE_TAG))
        });
    Some((status, is_marker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What [`Doc::counts`] counted before its one-pass form: a view of every task.
    fn counts_by_views(doc: &Doc) -> Counts {
        let mut c = Counts::default();
        for t in doc.tasks() {
            c.tally(t.status, t.is_marker);
        }
        c
    }

    fn arb_field() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("todo")),
            Just(json!("doing")),
            Just(json!("blocked")),
            Just(json!("done")),
            Just(json!("Done")),
            Just(json!("x")),
            Just(json!(3)),
            Just(json!(2.0)),
            Just(json!(2.5)),
            Just(json!(300)),
            Just(json!(-1)),
            Just(json!(["project-done"])),
            Just(json!(["a", "project-done"])),
            Just(json!(["a"])),
            Just(json!("project-done")),
            Just(json!(["T1", 3, "T2"])),
            Just(json!(7)),
        ]
    }

    /// What [`TaskView::from_value`] read before its one-pass form: a lookup per field.
    fn view_by_lookups(value: &Value) -> Option<impl PartialEq + std::fmt::Debug + '_> {
        use crate::backlog::model::{PROJECT_DONE_TAG, as_integer, has_tag};
        let obj = value.as_object()?;
        let id = obj.get("id")?.as_str()?;
        let title = obj.get("title")?.as_str()?;
        let priority = u8::try_from(obj.get("priority").and_then(as_integer)?).ok()?;
        let status = Status::parse(obj.get("status")?.as_str()?)?;
        let attempts = obj
            .get("attempts")
            .and_then(as_integer)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0);
        let depends_on: Vec<&str> = obj
            .get("depends_on")
            .and_then(Value::as_array)
            .map(|deps| deps.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let is_marker = status == Status::Done && has_tag(value, PROJECT_DONE_TAG);
        Some((id, title, priority, status, attempts, depends_on, is_marker))
    }

    proptest! {
        /// The one-pass count equals counting the views, and a view reads what a lookup per
        /// field reads, on any task objects, valid or not.
        #[test]
        fn counts_match_views(tasks in prop::collection::vec(
            (0usize..4, prop::collection::vec((prop::sample::select(vec!["id", "title", "priority", "status", "tags", "notes", "attempts", "depends_on"]), prop::option::of(arb_field())), 0..3)),
            0..8,
        ), odd in any::<bool>()) {
            const STATUSES: [&str; 4] = ["todo", "doing", "blocked", "done"];
            // Valid tasks with a few fields replaced by odd values or removed.
            let mut tasks: Vec<Value> = tasks
                .into_iter()
                .map(|(status, edits)| {
                    let mut task = json!({"id": "T", "title": "t", "priority": 3, "status": STATUSES[status]});
                    for (key, value) in edits {
                        let fields = task.as_object_mut().unwrap();
                        match value {
                            Some(v) => { fields.insert(key.to_owned(), v); }
                            None => { fields.shift_remove(key); }
                        }
                    }
                    task
                })
                .collect();
            if odd {
                tasks.push(json!("not an object"));
            }
            for task in &tasks {
                let view = TaskView::from_value(0, task).map(|t| {
                    (t.id, t.title, t.priority, t.status, t.attempts, t.depends_on, t.is_marker)
                });
                prop_assert_eq!(format!("{view:?}"), format!("{:?}", view_by_lookups(task)));
            }
            let doc = Doc::from_validated(json!({"schema_version": 1, "tasks": tasks}));
            prop_assert_eq!(doc.counts(), counts_by_views(&doc));
        }
    }
}
