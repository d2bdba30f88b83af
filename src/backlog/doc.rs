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
}

/// A backlog document that passed validation. Shared, so passing one around (the run's
/// cache, an update's result) does not copy a large backlog.
#[derive(Clone)]
pub struct Doc {
    value: Arc<Value>,
    /// The document as the jq engine holds it, made on the first update and handed on by
    /// each update to its result.
    shadow: Arc<OnceLock<Shadow>>,
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
        let cell = OnceLock::new();
        if let Some(shadow) = shadow {
            let _ = cell.set(shadow);
        }
        Self {
            value: Arc::new(value),
            shadow: Arc::new(cell),
        }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The document as the jq engine holds it.
    pub(crate) fn shadow(&self) -> &Shadow {
        self.shadow.get_or_init(|| Shadow::of(&self.value))
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

    /// How many tasks have each status (the project-done marker is not counted).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for t in self.tasks() {
            if t.is_marker {
                c.project_done = true;
                continue;
            }
            *match t.status {
                Status::Todo => &mut c.todo,
                Status::Doing => &mut c.doing,
                Status::Blocked => &mut c.blocked,
                Status::Done => &mut c.done,
            } += 1;
        }
        c
    }

    /// The canonical bytes of this document.
    pub fn to_pretty_string(&self) -> String {
        super::format::to_pretty_string(&self.value)
    }
}
