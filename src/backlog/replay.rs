//! Replaying a backlog's journal: from the first recorded snapshot, apply every external
//! change and every update exactly as the store did, checking each step's sha256. The result
//! must be the backlog on disk, byte for byte (`looper audit` builds on this).

use serde_json::Value;

use super::format::{sha256_hex, to_pretty_string};
use super::jq;
use super::merge::{self, Diff};

/// Why a replay failed, with the journal `seq` of the record where it did.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("record seq {seq}: no backlog.snapshot before the first change")]
    NoStart { seq: u64 },
    #[error("record seq {seq}: malformed {kind} record: {reason}")]
    Malformed {
        seq: u64,
        kind: String,
        reason: String,
    },
    #[error(
        "record seq {seq}: {kind} expected the backlog at sha256 {expected}, replay has {actual}"
    )]
    Mismatch {
        seq: u64,
        kind: String,
        expected: String,
        actual: String,
    },
    #[error("record seq {seq}: the update's jq program fails on replay: {reason}")]
    Program { seq: u64, reason: String },
    #[error(
        "record seq {seq}: {kind} cannot be replayed: its {what} held text shaped like a secret, which the journal keeps only as [redacted]; the backlog itself is unaffected (to keep `looper audit` whole, keep secrets out of task text and refer to them by name, e.g. an environment variable)"
    )]
    Redacted {
        seq: u64,
        kind: String,
        what: &'static str,
    },
}

/// Replays the `backlog.*` records (in journal order) of one backlog; returns its final value.
pub fn replay<'a>(
    records: impl IntoIterator<Item = &'a Value>,
) -> Result<Option<Value>, ReplayError> {
    let mut replayer = Replayer::default();
    for r in records {
        replayer.apply(r)?;
    }
    Ok(replayer.state)
}

/// A replay in progress, one record at a time (what `looper audit` walks).
#[derive(Debug, Default)]
pub struct Replayer {
    state: Option<Value>,
    external_base: Option<Value>,
}

impl Replayer {
    /// The backlog as replayed so far (`None` before the first snapshot or after a break).
    pub fn state(&self) -> Option<&Value> {
        self.state.as_ref()
    }

    /// Applies one record; records of other types are ignored. On an error the replayer
    /// has no state until the next snapshot.
    pub fn apply(&mut self, r: &Value) -> Result<(), ReplayError> {
        let seq = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        let malformed = |reason: &str| ReplayError::Malformed {
            seq,
            kind: kind.to_string(),
            reason: reason.to_string(),
        };
        match kind {
            "backlog.snapshot" => {
                self.state = Some(
                    r.get("content")
                        .cloned()
                        .ok_or_else(|| malformed("no content"))?,
                );
                self.external_base = None;
            }
            "backlog.external_change" => {
                let current = self.state.take().ok_or(ReplayError::NoStart { seq })?;
                check(seq, kind, r, "before_sha256", &current)?;
                let diff: Diff =
                    serde_json::from_value(r.get("diff").cloned().unwrap_or(Value::Null))
                        .map_err(|e| malformed(&e.to_string()))?;
                let next = merge::apply(&current, &diff);
                check(seq, kind, r, "after_sha256", &next)
                    .map_err(|e| redacted(seq, kind, r, "diff", "changes", e))?;
                self.external_base = Some(current);
                self.state = Some(next);
            }
            "backlog.update" => {
                let current = self.state.take().ok_or(ReplayError::NoStart { seq })?;
                // A writer killed after journaling its update but before noting it as done
                // leaves it pending; the next writer journals it again, marked `recovered`.
                // When the first record made it, the state is already the result.
                if r.get("recovered") == Some(&Value::Bool(true))
                    && r.get("after_sha256").and_then(Value::as_str)
                        == Some(sha256_hex(to_pretty_string(&current).as_bytes()).as_str())
                {
                    self.state = Some(current);
                    return Ok(());
                }
                check(seq, kind, r, "before_sha256", &current)?;
                let program = r
                    .get("program")
                    .and_then(Value::as_str)
                    .ok_or_else(|| malformed("no program"))?;
                let args: Vec<(String, Value)> = r
                    .get("args")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                let result =
                    jq::run(program, &args, &current).map_err(|e| ReplayError::Program {
                        seq,
                        reason: e.to_string(),
                    })?;
                let result = match self.external_base.take() {
                    Some(base) => merge::resolve_conflicts(&base, &current, &result).0,
                    None => result,
                };
                check(seq, kind, r, "after_sha256", &result)
                    .map_err(|e| redacted(seq, kind, r, "args", "arguments", e))?;
                self.state = Some(result);
            }
            // An external edit taken in by an update that was then refused belonged to that
            // update: the next one starts from the taken-in state with no edit of its own.
            "backlog.update_refused" => self.external_base = None,
            _ => {}
        }
        Ok(())
    }
}

/// `error`, or why it happened when the record's `field` was redacted as it was journaled.
fn redacted(
    seq: u64,
    kind: &str,
    r: &Value,
    field: &str,
    what: &'static str,
    error: ReplayError,
) -> ReplayError {
    let marked = r
        .get(field)
        .is_some_and(|v| v.to_string().contains("[redacted]"));
    if marked {
        ReplayError::Redacted {
            seq,
            kind: kind.to_string(),
            what,
        }
    } else {
        error
    }
}

fn check(seq: u64, kind: &str, r: &Value, field: &str, value: &Value) -> Result<(), ReplayError> {
    let expected = r.get(field).and_then(Value::as_str).unwrap_or_default();
    let actual = sha256_hex(to_pretty_string(value).as_bytes());
    if expected == actual {
        Ok(())
    } else {
        Err(ReplayError::Mismatch {
            seq,
            kind: kind.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sha(v: &Value) -> String {
        sha256_hex(to_pretty_string(v).as_bytes())
    }

    /// An update whose journaled title was redacted, and one whose record is just wrong.
    fn records(title_in_journal: &str) -> [Value; 2] {
        let start = json!({"schema_version": 1, "tasks": []});
        let real = json!({"schema_version": 1, "tasks": [
            {"id": "T1", "title": "rotate sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX", "priority": 3, "status": "todo"}]});
        [
            json!({"seq": 1, "type": "backlog.snapshot", "content": start}),
            json!({"seq": 2, "type": "backlog.update",
                "program": ".tasks += [{id: \"T1\", title: $title, priority: 3, status: \"todo\"}]",
                "args": {"title": title_in_journal},
                "before_sha256": sha(&start), "after_sha256": sha(&real)}),
        ]
    }

    #[test]
    fn a_redacted_update_is_named_as_such() {
        let err = replay(&records("rotate [redacted]")).unwrap_err();
        assert!(
            matches!(
                &err,
                ReplayError::Redacted {
                    seq: 2,
                    what: "arguments",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("keep secrets out of task text"));
        let err = replay(&records("rotate something else")).unwrap_err();
        assert!(matches!(err, ReplayError::Mismatch { seq: 2, .. }), "{err}");
    }
}
