//! The reports agents end their turn with (DESIGN §5): found tolerantly (the last JSON object
//! of the final message), then read strictly: unknown fields, a missing field or a wrong type
//! make the report invalid, and the iteration an attempt.

use serde::Deserialize;

use crate::agent::report::{MAX_SCAN, last_json_object};

/// What the worker says it did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkerReport {
    pub(crate) task_id: String,
    pub(crate) status: WorkStatus,
    pub(crate) summary: String,
    #[serde(default, alias = "files_changed")]
    pub(crate) files: Vec<String>,
    #[serde(default)]
    pub(crate) blockers: Vec<String>,
    #[serde(default)]
    pub(crate) no_change_reason: Option<String>,
    #[serde(default)]
    pub(crate) discovered_tasks: Vec<ProposedTask>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WorkStatus {
    Done,
    Blocked,
    Skipped,
}

/// A task an agent proposes (worker's discovered tasks, reviewer's new tasks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProposedTask {
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) priority: Option<u8>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// What a reviewer says.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewReport {
    pub(crate) status: ReviewStatus,
    pub(crate) summary: String,
    #[serde(default)]
    pub(crate) new_tasks: Vec<ProposedTask>,
    pub(crate) done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReviewStatus {
    Reviewed,
}

/// Reads a report of type `T` from an agent's final message. The error says what is wrong
/// in words fit for a task note.
pub(crate) fn read<T: serde::de::DeserializeOwned>(final_text: Option<&str>) -> Result<T, String> {
    let text = final_text.ok_or("the agent sent no final message")?;
    let object = last_json_object(text).ok_or_else(|| {
        // Only the last MiB is searched, and the supervisor cuts lines at 1 MiB: a bigger
        // report is not read, and the note must say so rather than "no report".
        if text.len() > MAX_SCAN || text.contains("…[truncated ") {
            "the final message holds no JSON report object in its last 1 MiB; a report larger than 1 MiB is not read"
        } else {
            "the final message holds no JSON report object"
        }
    })?;
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| format!("the report is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_worker_report_after_prose_reads() {
        let text = "All good.\n```json\n{\"task_id\": \"T3\", \"status\": \"done\", \"summary\": \"x\", \"files_changed\": [\"a.rs\"]}\n```";
        let r: WorkerReport = read(Some(text)).unwrap();
        assert_eq!(r.task_id, "T3");
        assert_eq!(r.status, WorkStatus::Done);
        assert_eq!(r.files, ["a.rs"]);
    }

    #[test]
    fn strictness_names_the_problem() {
        let cases = [
            (None, "no final message"),
            (Some("I did it!"), "no JSON report"),
            (
                Some(r#"{"task_id":"T1","status":"finished","summary":"x"}"#),
                "unknown variant `finished`",
            ),
            (
                Some(r#"{"task_id":"T1","status":"done"}"#),
                "missing field `summary`",
            ),
            (
                Some(r#"{"task_id":"T1","status":"done","summary":"x","extra":1}"#),
                "unknown field `extra`",
            ),
        ];
        for (text, want) in cases {
            let err = read::<WorkerReport>(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn review_reports() {
        let r: ReviewReport = read(Some(
            r#"{"status":"reviewed","summary":"s","new_tasks":[{"title":"Add tests","reason":"none"}],"done":false}"#,
        ))
        .unwrap();
        assert_eq!(r.new_tasks[0].title, "Add tests");
        assert!(
            read::<ReviewReport>(Some(r#"{"status":"ok","summary":"s","done":true}"#)).is_err()
        );
    }
}
