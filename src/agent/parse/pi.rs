//! `pi --mode json` (CONTRACTS §7.2): `session`, `message_*`, `tool_execution_*`,
//! `turn_*`, `auto_retry_*` and the final `agent_end` line.
//!
//! Only `message_end` and `agent_end` are trusted: the `partial` snapshots in
//! `message_update` run ahead of the deltas and carry zero usage. Usage and cost are summed
//! over assistant `message_end`s (`input` excludes `cacheRead`). The final text is the last
//! assistant text in `agent_end.messages`. A run failed when that last assistant message
//! stopped with `error` or `aborted`.

use std::collections::HashMap;

use serde_json::Value;

use super::view::Json;

use super::classify;
use super::json::{Ending, JsonDialect, Seen, Verdict, f64_at, str_at, text_of, u64_at};
use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};

#[derive(Debug, Default)]
pub(crate) struct Pi {
    session_id: Option<String>,
    /// Tool arguments by call id, from `tool_execution_start`.
    pending: HashMap<String, Value>,
    last_text: Option<String>,
    usage: Usage,
    verdict: Verdict,
}

impl JsonDialect for Pi {
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen {
        match kind {
            "session" => {
                if let Some(id) = str_at(v, "/id") {
                    self.session_id = Some(id.to_owned());
                    out.push(Event::Session { id: id.to_owned() });
                }
            }
            "agent_start"
            | "turn_start"
            | "turn_end"
            | "message_start"
            | "message_update"
            | "tool_execution_update"
            | "auto_retry_end"
            | "compaction_start"
            | "compaction_end"
            | "queue_update" => {}
            "message_end" => {
                if let Some(message) = v.get("message") {
                    self.message_end(message, out);
                }
            }
            "tool_execution_start" => {
                if let Some(id) = str_at(v, "/toolCallId") {
                    let args = v.get("args").map(J::to_value).unwrap_or_default();
                    self.pending.insert(id.to_owned(), args);
                }
            }
            "tool_execution_end" => self.tool_end(v, out),
            "auto_retry_start" => {
                let message = str_at(v, "/errorMessage").unwrap_or_default();
                let class = match classify::hint(message) {
                    Some(FailureClass::RateLimited { reset_at, .. }) => {
                        Some(FailureClass::RateLimited {
                            reset_at,
                            retry_after_s: u64_at(v, "/delayMs").map(|ms| ms.div_ceil(1000)),
                        })
                    }
                    other => other,
                };
                out.push(Event::Error {
                    message: message.to_owned(),
                    fatal: false,
                    class,
                });
            }
            "agent_end" => self.agent_end(v, out),
            _ => return Seen::Unknown(kind.to_owned()),
        }
        Seen::Known
    }

    fn end(&mut self) -> Ending {
        Ending {
            final_text: self.last_text.take(),
            usage: std::mem::take(&mut self.usage),
            session_id: self.session_id.take(),
            verdict: std::mem::take(&mut self.verdict),
        }
    }
}

impl Pi {
    fn message_end<J: Json>(&mut self, message: &J, out: &mut Vec<Event>) {
        if str_at(message, "/role") != Some("assistant") {
            return;
        }
        let blocks = message.get("content").and_then(J::as_array);
        for block in blocks.into_iter().flatten() {
            match str_at(block, "/type").unwrap_or_default() {
                "text" => out.push(Event::Message {
                    text: str_at(block, "/text").unwrap_or_default().to_owned(),
                }),
                "thinking" => out.push(Event::Reasoning {
                    text: str_at(block, "/thinking").unwrap_or_default().to_owned(),
                }),
                _ => {}
            }
        }
        if let Some(text) = assistant_text(message) {
            self.last_text = Some(text);
        }
        let cached = u64_at(message, "/usage/cacheRead").unwrap_or(0);
        self.usage.add(&Usage {
            input: u64_at(message, "/usage/input")
                .unwrap_or(0)
                .saturating_add(cached),
            cached,
            output: u64_at(message, "/usage/output").unwrap_or(0),
            cost_usd: Some(f64_at(message, "/usage/cost/total").unwrap_or(0.0)),
        });
        out.push(Event::Usage(self.usage.clone()));
        if let Some(class) = stop_failure(message) {
            out.push(Event::Error {
                message: str_at(message, "/errorMessage")
                    .unwrap_or("pi reported an error")
                    .to_owned(),
                // `agent_end` decides; pi may retry after this.
                fatal: false,
                class: Some(class),
            });
        }
    }

    fn tool_end<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        let args = str_at(v, "/toolCallId")
            .and_then(|id| self.pending.remove(id))
            .unwrap_or_default();
        let failed = v.get("isError").and_then(J::as_bool) == Some(true);
        match str_at(v, "/toolName").unwrap_or_default() {
            "bash" => out.push(Event::Command {
                cmd: str_at(&args, "/command").unwrap_or_default().to_owned(),
                // Pi reports only `isError`, no exit code or duration.
                exit_code: None,
                duration_ms: None,
                output: v.pointer("/result/content").and_then(text_of),
            }),
            "write" | "edit" if !failed => {
                if let Some(path) = str_at(&args, "/path") {
                    out.push(Event::FileChange {
                        path: path.to_owned(),
                        // Pi doesn't say whether `write` created the file.
                        kind: FileChangeKind::Update,
                    });
                }
            }
            _ => {}
        }
    }

    fn agent_end<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        let messages = v.get("messages").and_then(J::as_array);
        let last_assistant = messages
            .into_iter()
            .flatten()
            .rev()
            .find(|m| str_at(*m, "/role") == Some("assistant"));
        if let Some(text) = last_assistant.and_then(assistant_text) {
            self.last_text = Some(text);
        }
        if let Some(class) = last_assistant.and_then(stop_failure) {
            out.push(Event::Error {
                message: last_assistant
                    .and_then(|m| str_at(m, "/errorMessage"))
                    .unwrap_or("pi reported an error")
                    .to_owned(),
                fatal: true,
                class: Some(class.clone()),
            });
            self.verdict = Verdict::Failed(class);
        } else {
            if let Some(text) = &self.last_text {
                out.push(Event::Final { text: text.clone() });
            }
            self.verdict = Verdict::Succeeded;
        }
    }
}

/// The text blocks of an assistant message, joined; `None` when it has none.
fn assistant_text<J: Json>(message: &J) -> Option<String> {
    let blocks = message.get("content").and_then(J::as_array)?;
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| str_at(*b, "/type") == Some("text"))
        .filter_map(|b| str_at(b, "/text"))
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

/// The failure an assistant message's `stopReason` reports, if any (*not exercised*,
/// CONTRACTS §7.2: `error` with an `errorMessage`, or `aborted`).
fn stop_failure<J: Json>(message: &J) -> Option<FailureClass> {
    match str_at(message, "/stopReason")? {
        "error" => Some(classify::error_message(
            str_at(message, "/errorMessage").unwrap_or_default(),
        )),
        "aborted" => Some(FailureClass::AgentError),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::event::{Event, FailureClass, Usage};
    use crate::agent::parse::{StreamFormat, assert_survives_garbage, run};

    /// Found by `fuzz::stream_parsers` (#7): a token count near `u64::MAX` overflowed
    /// (a panic in a debug build) instead of saturating.
    #[test]
    fn huge_token_counts_saturate() {
        let line = r#"{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"x"}],"usage":{"input":18446744073709551615,"output":7,"cacheRead":20,"cacheWrite":0,"totalTokens":107,"cost":{"total":0}},"stopReason":"stop"}}"#;
        let (_, outcome) = run(StreamFormat::Pi, &format!("{line}\n{line}"));
        assert_eq!(outcome.usage.input, u64::MAX);
        assert_eq!(outcome.usage.cached, 40);
    }

    const DEFAULT_FINAL: &str = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";

    #[test]
    fn e2e() {
        let (events, outcome) = run(
            StreamFormat::Pi,
            include_str!("../../../tests/fixtures/captures/pi-e2e.jsonl"),
        );
        assert_eq!(outcome.final_text.as_deref(), Some(DEFAULT_FINAL));
        // Σ (input 80 + cacheRead 20) over two assistant messages, not the snapshots.
        assert_eq!(
            outcome.usage,
            Usage {
                input: 200,
                cached: 40,
                output: 14,
                cost_usd: Some(0.0)
            }
        );
        assert_eq!(outcome.failure, None);
        assert_eq!(
            outcome.session_id.as_deref(),
            Some("01a20af7-37db-721d-8476-4cdd9d4ecc91")
        );
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
        assert!(events.contains(&Event::Command {
            cmd: "echo hello-from-mock > hello.txt && cat hello.txt".into(),
            exit_code: None,
            duration_ms: None,
            output: Some("hello-from-mock\n".into()),
        }));
        let messages: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .collect();
        assert_eq!(
            messages,
            [&Event::Message {
                text: DEFAULT_FINAL.into()
            }]
        );
    }

    // Hand-written lines below: pi's error paths were not exercised (CONTRACTS §7.2).

    #[test]
    fn error_stop_reason_fails_the_run() {
        let stream = concat!(
            r#"{"type":"auto_retry_start","attempt":1,"maxAttempts":3,"delayMs":2000,"errorMessage":"429 Too Many Requests"}"#,
            "\n",
            r#"{"type":"message_end","message":{"role":"assistant","content":[],"usage":{"input":0,"output":0,"cacheRead":0},"stopReason":"error","errorMessage":"Connection error."}}"#,
            "\n",
            r#"{"type":"agent_end","messages":[{"role":"assistant","content":[],"stopReason":"error","errorMessage":"Connection error."}]}"#,
        );
        let (_, outcome) = run(StreamFormat::Pi, stream);
        // The retried 429 explains the vague final error.
        assert_eq!(
            outcome.failure,
            Some(FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(2)
            })
        );
        assert_eq!(outcome.final_text, None);
    }

    #[test]
    fn aborted_is_an_agent_error() {
        let stream = r#"{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"half"}],"stopReason":"aborted"}]}"#;
        let (_, outcome) = run(StreamFormat::Pi, stream);
        assert_eq!(outcome.failure, Some(FailureClass::AgentError));
    }

    #[test]
    fn survives_garbage() {
        assert_survives_garbage(
            StreamFormat::Pi,
            &[
                "session",
                "message_end",
                "tool_execution_start",
                "tool_execution_end",
                "auto_retry_start",
                "agent_end",
            ],
        );
    }
}
