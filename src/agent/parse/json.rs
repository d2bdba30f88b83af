//! The part every JSON-lines parser shares: splitting blank, garbage and typed lines, counting
//! what isn't understood, and turning a CLI's terminal verdict into an [`Outcome`].
//!
//! Each CLI only supplies a [`JsonDialect`]: what one typed object means, and what the
//! stream said once it ended. Also small `Value` accessors, so dialects never index or
//! unwrap into input.

use serde_json::Value;

use super::{Outcome, StreamParser};
use crate::agent::event::{Event, FailureClass, Usage};

/// One CLI's reading of its JSON objects.
pub(crate) trait JsonDialect: Default {
    /// Handles one object whose `type` is `kind`, pushing its events to `out`.
    fn object(&mut self, kind: &str, v: &Value, out: &mut Vec<Event>) -> Seen;
    /// What the stream said, once it has ended.
    fn end(&mut self) -> Ending;
}

/// Whether a dialect understood an object.
pub(crate) enum Seen {
    Known,
    /// Not understood; the label names what (`"item.completed/web_fetch"`).
    Unknown(String),
}

/// The dialect's summary of a finished stream.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    pub(crate) final_text: Option<String>,
    pub(crate) usage: Usage,
    pub(crate) session_id: Option<String>,
    pub(crate) verdict: Verdict,
}

/// What the CLI's terminal event said.
#[derive(Debug, Default)]
pub(crate) enum Verdict {
    /// The terminal success event arrived.
    Succeeded,
    /// The CLI reported a fatal failure.
    Failed(FailureClass),
    /// No terminal event arrived.
    #[default]
    Unfinished,
}

/// A [`StreamParser`] for a JSON-lines CLI.
#[derive(Debug, Default)]
pub(crate) struct JsonStream<D> {
    dialect: D,
    unknown_lines: usize,
    garbage_lines: usize,
    /// The last rate-limit or auth class seen on a non-fatal error: a CLI often retries a
    /// 429 and then fails with a vaguer message.
    hint: Option<FailureClass>,
}

impl<D: JsonDialect> StreamParser for JsonStream<D> {
    fn line(&mut self, raw: &str) -> Vec<Event> {
        if raw.trim().is_empty() {
            return Vec::new();
        }
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            self.garbage_lines += 1;
            return vec![Event::Unknown { kind: None }];
        };
        if !value.is_object() {
            self.garbage_lines += 1;
            return vec![Event::Unknown { kind: None }];
        }
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            self.unknown_lines += 1;
            return vec![Event::Unknown { kind: None }];
        };
        let mut out = Vec::new();
        if let Seen::Unknown(label) = self.dialect.object(kind, &value, &mut out) {
            self.unknown_lines += 1;
            out.push(Event::Unknown { kind: Some(label) });
        }
        for event in &out {
            if let Event::Error {
                fatal: false,
                class: Some(class @ (FailureClass::RateLimited { .. } | FailureClass::Auth)),
                ..
            } = event
            {
                // Hints add up: a reset time from one line, a retry delay from the next.
                self.hint = Some(match self.hint.take() {
                    Some(earlier) => refine(class.clone(), Some(earlier)),
                    None => class.clone(),
                });
            }
        }
        out
    }

    fn finish(&mut self) -> Outcome {
        let this = std::mem::take(self);
        let mut dialect = this.dialect;
        let end = dialect.end();
        let final_text = end.final_text.filter(|t| !t.trim().is_empty());
        let (final_text, failure) = match end.verdict {
            Verdict::Failed(class) => (None, Some(refine(class, this.hint))),
            Verdict::Succeeded if final_text.is_none() => (None, Some(FailureClass::NoReport)),
            Verdict::Succeeded => (final_text, None),
            // Stray non-JSON among real events is noise; a stream that ends early *and*
            // printed garbage most likely broke on its output.
            Verdict::Unfinished if this.garbage_lines > 0 => {
                (final_text, Some(FailureClass::MalformedOutput))
            }
            Verdict::Unfinished => (final_text, Some(FailureClass::Incomplete)),
        };
        Outcome {
            final_text,
            usage: end.usage,
            failure,
            session_id: end.session_id,
            unknown_lines: this.unknown_lines,
            garbage_lines: this.garbage_lines,
        }
    }
}

/// Sharpens a fatal class with a hint from an earlier non-fatal error: a run that retried
/// 429s and then failed vaguely was rate-limited.
fn refine(class: FailureClass, hint: Option<FailureClass>) -> FailureClass {
    match (class, hint) {
        (FailureClass::Api { .. } | FailureClass::AgentError, Some(hint)) => hint,
        (
            FailureClass::RateLimited {
                reset_at,
                retry_after_s,
            },
            Some(FailureClass::RateLimited {
                reset_at: hint_reset,
                retry_after_s: hint_retry,
            }),
        ) => FailureClass::RateLimited {
            reset_at: reset_at.or(hint_reset),
            retry_after_s: retry_after_s.or(hint_retry),
        },
        (class, _) => class,
    }
}

/// The string at a JSON pointer.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The unsigned integer at a JSON pointer.
pub(crate) fn u64_at(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// The number at a JSON pointer.
pub(crate) fn f64_at(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

/// An exit code at a JSON pointer, if it fits an `i32`.
pub(crate) fn exit_code_at(v: &Value, pointer: &str) -> Option<i32> {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok())
}

/// An HTTP status at a JSON pointer, if it is one.
pub(crate) fn status_at(v: &Value, pointer: &str) -> Option<u16> {
    u64_at(v, pointer)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
}

/// The text of a content value: a string, or the `text` of an array of blocks, joined.
pub(crate) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        _ => None,
    }
}

/// Milliseconds between two RFC 3339 timestamps, when both parse and `end` is not earlier.
pub(crate) fn millis_between(start: &str, end: &str) -> Option<u64> {
    let start: jiff::Timestamp = start.parse().ok()?;
    let end: jiff::Timestamp = end.parse().ok()?;
    u64::try_from(end.as_millisecond() - start.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refine_prefers_the_hint_over_a_vague_failure() {
        let hint = FailureClass::RateLimited {
            reset_at: None,
            retry_after_s: Some(5),
        };
        let vague = FailureClass::Api {
            status: None,
            retryable: true,
        };
        assert_eq!(refine(vague, Some(hint.clone())), hint);
        assert_eq!(
            refine(
                FailureClass::RateLimited {
                    reset_at: Some("3pm".into()),
                    retry_after_s: None
                },
                Some(hint)
            ),
            FailureClass::RateLimited {
                reset_at: Some("3pm".into()),
                retry_after_s: Some(5)
            }
        );
        assert_eq!(
            refine(FailureClass::TurnLimit, Some(FailureClass::Auth)),
            FailureClass::TurnLimit
        );
    }

    #[test]
    fn millis_between_timestamps() {
        assert_eq!(
            millis_between("2026-11-24T00:31:32.436Z", "2026-11-24T00:31:32.506Z"),
            Some(70)
        );
        assert_eq!(
            millis_between("2026-11-24T00:31:33Z", "2026-11-24T00:31:32Z"),
            None
        );
        assert_eq!(millis_between("yesterday", "2026-11-24T00:31:32Z"), None);
    }

    #[test]
    fn text_of_strings_and_blocks() {
        assert_eq!(text_of(&Value::from("a")), Some("a".into()));
        let blocks =
            serde_json::json!([{"type": "text", "text": "a"}, {"type": "image"}, {"text": "b"}]);
        assert_eq!(text_of(&blocks), Some("ab".into()));
        assert_eq!(text_of(&serde_json::json!([])), None);
        assert_eq!(text_of(&Value::Null), None);
    }
}
