//! `opencode run --format json` (CONTRACTS §6.3): `step_start`, `text`, `reasoning`,
//! `tool_use`, `step_finish` and `error` lines, each carrying a `part`.
//!
//! The final text is the last `text` part. Usage and cost are summed over `step_finish`
//! parts (`tokens.input` excludes `tokens.cache.read`). Opencode prints no terminal event:
//! the run is over when a step finishes for any reason but `tool-calls` (after which another
//! step always follows), and failed when an `error` event arrives.

use super::view::Json;

use super::classify;
use super::json::{
    Ending, JsonDialect, Seen, Verdict, exit_code_at, f64_at, status_at, str_at, u64_at,
};
use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};

#[derive(Debug, Default)]
pub(crate) struct Opencode {
    session_id: Option<String>,
    last_text: Option<String>,
    usage: Usage,
    verdict: Verdict,
}

impl JsonDialect for Opencode {
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen {
        if self.session_id.is_none()
            && let Some(id) = str_at(v, "/sessionID")
        {
            self.session_id = Some(id.to_owned());
            out.push(Event::Session { id: id.to_owned() });
        }
        match kind {
            "step_start" => {}
            "text" => {
                let text = str_at(v, "/part/text").unwrap_or_default().to_owned();
                self.last_text = Some(text.clone());
                out.push(Event::Message { text });
            }
            "reasoning" => out.push(Event::Reasoning {
                text: str_at(v, "/part/text").unwrap_or_default().to_owned(),
            }),
            "tool_use" => tool_use(v, out),
            "step_finish" => {
                self.usage.add(&Usage {
                    input: u64_at(v, "/part/tokens/input")
                        .unwrap_or(0)
                        .saturating_add(u64_at(v, "/part/tokens/cache/read").unwrap_or(0)),
                    cached: u64_at(v, "/part/tokens/cache/read").unwrap_or(0),
                    output: u64_at(v, "/part/tokens/output").unwrap_or(0),
                    cost_usd: Some(f64_at(v, "/part/cost").unwrap_or(0.0)),
                });
                out.push(Event::Usage(self.usage.clone()));
                if matches!(self.verdict, Verdict::Failed(_)) {
                    // An error stays the verdict.
                } else if str_at(v, "/part/reason") == Some("tool-calls") {
                    self.verdict = Verdict::Unfinished;
                } else {
                    if let Some(text) = &self.last_text {
                        out.push(Event::Final { text: text.clone() });
                    }
                    self.verdict = Verdict::Succeeded;
                }
            }
            "error" => {
                let message = str_at(v, "/error/data/message")
                    .or_else(|| str_at(v, "/error/name"))
                    .unwrap_or("opencode reported an error");
                let class = classify_error(v.get("error"), message);
                out.push(Event::Error {
                    message: message.to_owned(),
                    fatal: true,
                    class: Some(class.clone()),
                });
                self.verdict = Verdict::Failed(class);
            }
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

fn tool_use<J: Json>(v: &J, out: &mut Vec<Event>) {
    let Some(state) = v.pointer("/part/state") else {
        return;
    };
    match str_at(v, "/part/tool").unwrap_or_default() {
        "bash" => {
            let start = u64_at(state, "/time/start");
            let end = u64_at(state, "/time/end");
            out.push(Event::Command {
                cmd: str_at(state, "/input/command")
                    .unwrap_or_default()
                    .to_owned(),
                exit_code: exit_code_at(state, "/metadata/exit"),
                duration_ms: start.zip(end).and_then(|(s, e)| e.checked_sub(s)),
                output: str_at(state, "/output")
                    .or_else(|| str_at(state, "/error"))
                    .map(str::to_owned),
            });
        }
        "write" | "edit" if str_at(state, "/status") == Some("completed") => {
            if let Some(path) = str_at(state, "/input/filePath") {
                out.push(Event::FileChange {
                    path: path.to_owned(),
                    // Opencode doesn't say whether `write` created the file.
                    kind: FileChangeKind::Update,
                });
            }
        }
        _ => {}
    }
}

/// Classifies an `error` event's `{name, data}` (*not exercised*, CONTRACTS §6.3). Names
/// are opencode's error classes: `APIError` carries `statusCode`, `isRetryable` and the
/// response headers; `ProviderAuthError` is a credential problem.
fn classify_error<J: Json>(error: Option<&J>, message: &str) -> FailureClass {
    match error.and_then(|e| str_at(e, "/name")).unwrap_or_default() {
        "ProviderAuthError" => FailureClass::Auth,
        "APIError" => {
            let status = error.and_then(|e| status_at(e, "/data/statusCode"));
            match classify::api_error(status, &[], message) {
                FailureClass::RateLimited {
                    reset_at,
                    retry_after_s,
                } => FailureClass::RateLimited {
                    reset_at,
                    retry_after_s: retry_after_s.or_else(|| {
                        error
                            .and_then(|e| str_at(e, "/data/responseHeaders/retry-after"))
                            .and_then(|s| s.trim().parse().ok())
                    }),
                },
                FailureClass::Api { status, retryable } => FailureClass::Api {
                    status,
                    retryable: error
                        .and_then(|e| e.pointer("/data/isRetryable"))
                        .and_then(J::as_bool)
                        .unwrap_or(retryable),
                },
                class => class,
            }
        }
        _ => FailureClass::AgentError,
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::event::{Event, FailureClass, Usage};
    use crate::agent::parse::{StreamFormat, assert_survives_garbage, run};

    const DEFAULT_FINAL: &str = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";

    #[test]
    fn e2e() {
        let (events, outcome) = run(
            StreamFormat::Opencode,
            include_str!("../../../tests/fixtures/captures/opencode-e2e.jsonl"),
        );
        assert_eq!(outcome.final_text.as_deref(), Some(DEFAULT_FINAL));
        // Σ (input 80 + cache.read 20) over two steps; cost 0 is reported, so it is Some.
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
            Some("ses_df508d8c1ffeuUaQFiRbvYR0gZ")
        );
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
        assert!(events.contains(&Event::Command {
            cmd: "echo hello-from-mock > hello.txt && cat hello.txt".into(),
            exit_code: Some(0),
            duration_ms: Some(527),
            output: Some("hello-from-mock\n".into()),
        }));
    }

    #[test]
    fn a_stream_cut_after_a_tool_step_is_incomplete() {
        let capture = include_str!("../../../tests/fixtures/captures/opencode-e2e.jsonl");
        let first_step: String = capture.lines().take(3).collect::<Vec<_>>().join("\n");
        let (_, outcome) = run(StreamFormat::Opencode, &first_step);
        assert_eq!(outcome.failure, Some(FailureClass::Incomplete));
    }

    // Hand-written lines below: opencode's error paths were not exercised (CONTRACTS §6.3).

    #[test]
    fn failures() {
        let cases = [
            (
                r#"{"name":"APIError","data":{"message":"Too Many Requests","statusCode":429,"isRetryable":true,"responseHeaders":{"retry-after":"30"}}}"#,
                FailureClass::RateLimited {
                    reset_at: None,
                    retry_after_s: Some(30),
                },
            ),
            (
                r#"{"name":"APIError","data":{"message":"Bad Request","statusCode":400,"isRetryable":false}}"#,
                FailureClass::Api {
                    status: Some(400),
                    retryable: false,
                },
            ),
            (
                r#"{"name":"ProviderAuthError","data":{"providerID":"mock","message":"no key"}}"#,
                FailureClass::Auth,
            ),
            (
                r#"{"name":"UnknownError","data":{"message":"boom"}}"#,
                FailureClass::AgentError,
            ),
        ];
        for (error, class) in cases {
            let stream = format!(
                "{}\n{}",
                r#"{"type":"text","part":{"text":"partial"}}"#,
                format_args!(r#"{{"type":"error","error":{error}}}"#)
            );
            let (_, outcome) = run(StreamFormat::Opencode, &stream);
            assert_eq!(outcome.failure, Some(class), "{error}");
            assert_eq!(outcome.final_text, None);
        }
    }

    #[test]
    fn survives_garbage() {
        assert_survives_garbage(
            StreamFormat::Opencode,
            &[
                "step_start",
                "text",
                "reasoning",
                "tool_use",
                "step_finish",
                "error",
            ],
        );
    }
}
