//! `codex exec --json` (CONTRACTS §3.3, §3.5): `thread.started`, `item.*`, `turn.completed`,
//! `turn.failed` and `error` lines.
//!
//! The final text is the last completed `agent_message`; usage comes from `turn.completed`
//! (its `input_tokens` already include the cached ones). `error` lines and `error` items are
//! warnings (retries, unknown model); only `turn.failed` fails a run (CONTRACTS §2.5).

use super::view::Json;

use super::classify;
use super::json::{Ending, JsonDialect, Seen, Verdict, exit_code_at, str_at, u64_at};
use crate::agent::event::{Event, FileChangeKind, Usage};

#[derive(Debug, Default)]
pub(crate) struct Codex {
    session_id: Option<String>,
    last_message: Option<String>,
    usage: Usage,
    verdict: Verdict,
}

impl JsonDialect for Codex {
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen {
        match kind {
            "thread.started" => {
                if let Some(id) = str_at(v, "/thread_id") {
                    self.session_id = Some(id.to_owned());
                    out.push(Event::Session { id: id.to_owned() });
                }
            }
            // Started and updated items are reported again, complete, by `item.completed`.
            "turn.started" | "item.started" | "item.updated" => {}
            "item.completed" => return self.item(v, out),
            "turn.completed" => {
                // Usage is per turn; `exec` runs one, but add in case a stream has more.
                self.usage.add(&Usage {
                    input: u64_at(v, "/usage/input_tokens").unwrap_or(0),
                    cached: u64_at(v, "/usage/cached_input_tokens").unwrap_or(0),
                    output: u64_at(v, "/usage/output_tokens").unwrap_or(0),
                    cost_usd: None,
                });
                out.push(Event::Usage(self.usage.clone()));
                if let Some(text) = &self.last_message {
                    out.push(Event::Final { text: text.clone() });
                }
                self.verdict = Verdict::Succeeded;
            }
            "turn.failed" => {
                let message = str_at(v, "/error/message").unwrap_or("turn failed");
                let class = classify::error_message(message);
                out.push(Event::Error {
                    message: message.to_owned(),
                    fatal: true,
                    class: Some(class.clone()),
                });
                self.verdict = Verdict::Failed(class);
            }
            "error" => {
                let message = str_at(v, "/message").unwrap_or_default();
                out.push(Event::Error {
                    message: message.to_owned(),
                    fatal: false,
                    class: classify::hint(message),
                });
            }
            _ => return Seen::Unknown(kind.to_owned()),
        }
        Seen::Known
    }

    fn end(&mut self) -> Ending {
        Ending {
            final_text: self.last_message.take(),
            usage: std::mem::take(&mut self.usage),
            session_id: self.session_id.take(),
            verdict: std::mem::take(&mut self.verdict),
        }
    }
}

impl Codex {
    fn item<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) -> Seen {
        let Some(item) = v.get("item") else {
            return Seen::Unknown("item.completed".to_owned());
        };
        let text = || str_at(item, "/text").unwrap_or_default().to_owned();
        match str_at(item, "/type").unwrap_or_default() {
            "agent_message" => {
                let text = text();
                self.last_message = Some(text.clone());
                out.push(Event::Message { text });
            }
            "reasoning" => out.push(Event::Reasoning { text: text() }),
            "command_execution" => out.push(Event::Command {
                cmd: str_at(item, "/command").unwrap_or_default().to_owned(),
                exit_code: exit_code_at(item, "/exit_code"),
                // Codex reports no duration; the supervisor can time item.started..completed.
                duration_ms: None,
                output: str_at(item, "/aggregated_output").map(str::to_owned),
            }),
            "file_change" => {
                let changes = item.get("changes").and_then(J::as_array);
                for change in changes.into_iter().flatten() {
                    if let Some(path) = str_at(change, "/path") {
                        out.push(Event::FileChange {
                            path: path.to_owned(),
                            kind: FileChangeKind::from_cli(
                                str_at(change, "/kind").unwrap_or_default(),
                            ),
                        });
                    }
                }
            }
            // A warning item (e.g. unknown model metadata), never fatal.
            "error" => out.push(Event::Error {
                message: str_at(item, "/message").unwrap_or_default().to_owned(),
                fatal: false,
                class: None,
            }),
            "mcp_tool_call" | "web_search" | "todo_list" => {}
            other => return Seen::Unknown(format!("item.completed/{other}")),
        }
        Seen::Known
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};
    use crate::agent::parse::{StreamFormat, assert_survives_garbage, run};

    const DEFAULT_FINAL: &str = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";
    const HTTP400_BODY: &str = r#"{"error": {"message": "mock http error 400", "type": "invalid_request_error", "code": "mock_error"}}"#;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input,
            cached,
            output,
            cost_usd: None,
        }
    }

    #[test]
    fn e2e() {
        let (events, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-e2e.jsonl"),
        );
        assert_eq!(outcome.final_text.as_deref(), Some(DEFAULT_FINAL));
        assert_eq!(outcome.usage, usage(210, 40, 14));
        assert_eq!(outcome.failure, None);
        assert_eq!(
            outcome.session_id.as_deref(),
            Some("01a20af7-065e-7610-9368-64c0f88df42e")
        );
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
        let commands: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Command { .. }))
            .collect();
        assert_eq!(
            commands,
            [&Event::Command {
                cmd: "/bin/bash -lc 'echo hello-from-mock > hello.txt && cat hello.txt'".into(),
                exit_code: Some(0),
                duration_ms: None,
                output: Some("hello-from-mock\n".into()),
            }]
        );
        let reasoning = events
            .iter()
            .filter(|e| matches!(e, Event::Reasoning { .. }))
            .count();
        assert_eq!(reasoning, 2);
        assert_eq!(
            events.last(),
            Some(&Event::Final {
                text: DEFAULT_FINAL.into()
            })
        );
    }

    #[test]
    fn full() {
        let (events, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-full.jsonl"),
        );
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(
                "All done.\n{\"status\": \"done\", \"summary\": \"created hello.txt and notes.md\", \"files_changed\": [\"hello.txt\", \"notes.md\"]}"
            )
        );
        assert_eq!(outcome.usage, usage(330, 60, 21));
        assert_eq!(outcome.failure, None);
        assert!(events.contains(&Event::FileChange {
            path: "/home/user/project/notes.md".into(),
            kind: FileChangeKind::Add,
        }));
        let output = events.iter().find_map(|e| match e {
            Event::Command { output, .. } => output.clone(),
            _ => None,
        });
        assert!(output.is_some_and(
            |o| o.starts_with("pyenv: cannot rehash") && o.ends_with("hello-from-mock\n")
        ));
    }

    #[test]
    fn schema() {
        let (_, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-schema.jsonl"),
        );
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(r#"{"status": "done", "summary": "nothing to do", "files_changed": []}"#)
        );
        assert_eq!(outcome.usage, usage(100, 20, 7));
        assert_eq!(outcome.failure, None);
    }

    #[test]
    fn readonly_fail_is_a_process_level_success_without_commands() {
        let (events, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-readonly-fail.jsonl"),
        );
        // `blocked` is the report's business, not the stream's.
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(r#"{"status":"blocked","summary":"read-only sandbox","files_changed":[]}"#)
        );
        assert_eq!(outcome.usage, usage(210, 40, 14));
        assert_eq!(outcome.failure, None);
        assert!(!events.iter().any(|e| matches!(e, Event::Command { .. })));
    }

    #[test]
    fn http400_is_a_client_api_error() {
        let (events, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-http400.jsonl"),
        );
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.usage, usage(0, 0, 0));
        assert_eq!(
            outcome.failure,
            Some(FailureClass::Api {
                status: None,
                retryable: false
            })
        );
        let errors: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Error { message, fatal, .. } => Some((message.as_str(), *fatal)),
                _ => None,
            })
            .collect();
        assert_eq!(errors, [(HTTP400_BODY, false), (HTTP400_BODY, true)]);
    }

    #[test]
    fn sse_failed_is_a_retryable_api_error() {
        let (events, outcome) = run(
            StreamFormat::Codex,
            include_str!("../../../tests/fixtures/captures/codex-sse-failed.jsonl"),
        );
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.usage, usage(0, 0, 0));
        assert_eq!(
            outcome.failure,
            Some(FailureClass::Api {
                status: None,
                retryable: true
            })
        );
        assert!(events.contains(&Event::Error {
            message: "stream disconnected before completion: mock upstream exploded".into(),
            fatal: true,
            class: outcome.failure.clone(),
        }));
    }

    // Hand-written lines below: the captures hold no 429 or auth failure (CONTRACTS §3.5).

    #[test]
    fn retried_429_then_failure_is_rate_limited() {
        let stream = concat!(
            r#"{"type":"turn.started"}"#,
            "\n",
            r#"{"type":"error","message":"Reconnecting... 1/5 (unexpected status 429 Too Many Requests: slow down)"}"#,
            "\n",
            r#"{"type":"turn.failed","error":{"message":"We’re currently experiencing high demand, which may cause temporary errors."}}"#,
        );
        let (_, outcome) = run(StreamFormat::Codex, stream);
        assert_eq!(outcome.failure, Some(FailureClass::rate_limited()));
    }

    #[test]
    fn usage_limit_and_auth_failures() {
        let stream = r#"{"type":"turn.failed","error":{"message":"You've hit your usage limit. Upgrade to Pro, or try again at 3:05 PM."}}"#;
        let (_, outcome) = run(StreamFormat::Codex, stream);
        assert_eq!(
            outcome.failure,
            Some(FailureClass::RateLimited {
                reset_at: Some("3:05 PM".into()),
                retry_after_s: None
            })
        );
        let stream = r#"{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: Missing bearer or basic authentication in header"}}"#;
        let (_, outcome) = run(StreamFormat::Codex, stream);
        assert_eq!(outcome.failure, Some(FailureClass::Auth));
    }

    #[test]
    fn warnings_are_not_failures() {
        let stream = concat!(
            r#"{"type":"error","message":"Reconnecting... 2/5 (connection reset)"}"#,
            "\n",
            r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `mock-model` not found."}}"#,
            "\n",
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"ok"}}"#,
            "\n",
            r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}"#,
        );
        let (_, outcome) = run(StreamFormat::Codex, stream);
        assert_eq!(outcome.failure, None);
        assert_eq!(outcome.final_text.as_deref(), Some("ok"));
    }

    #[test]
    fn success_without_a_message_is_no_report() {
        let (_, outcome) = run(StreamFormat::Codex, r#"{"type":"turn.completed"}"#);
        assert_eq!(outcome.failure, Some(FailureClass::NoReport));
    }

    #[test]
    fn survives_garbage() {
        assert_survives_garbage(
            StreamFormat::Codex,
            &[
                "thread.started",
                "item.started",
                "item.completed",
                "turn.completed",
                "turn.failed",
                "error",
            ],
        );
    }
}
