//! `gemini --output-format stream-json` (CONTRACTS §5.3): `init`, `message`, `tool_use`,
//! `tool_result`, `error` and the final `result` line.
//!
//! Assistant text arrives as deltas; the final text is the deltas after the last
//! `tool_result`, joined. Usage is `result.stats` (`input_tokens` include `cached`); there is
//! no cost. `error` events with `severity:"warning"` are not failures.

use std::collections::HashMap;

use serde_json::Value;

use super::view::Json;

use super::classify;
use super::json::{Ending, JsonDialect, Seen, Verdict, millis_between, str_at, u64_at};
use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};

#[derive(Debug, Default)]
pub(crate) struct Gemini {
    session_id: Option<String>,
    /// Tool calls waiting for their result, by `tool_id`.
    pending: HashMap<String, Pending>,
    /// Assistant text since the last `tool_result`.
    text: String,
    usage: Usage,
    verdict: Verdict,
}

#[derive(Debug)]
struct Pending {
    tool: String,
    parameters: Value,
    started: Option<String>,
}

impl JsonDialect for Gemini {
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen {
        match kind {
            "init" => {
                if let Some(id) = str_at(v, "/session_id") {
                    self.session_id = Some(id.to_owned());
                    out.push(Event::Session { id: id.to_owned() });
                }
            }
            "message" => {
                if str_at(v, "/role") == Some("assistant") {
                    let text = str_at(v, "/content").unwrap_or_default();
                    self.text.push_str(text);
                    out.push(Event::Message {
                        text: text.to_owned(),
                    });
                }
            }
            "tool_use" => {
                if let Some(id) = str_at(v, "/tool_id") {
                    self.pending.insert(
                        id.to_owned(),
                        Pending {
                            tool: str_at(v, "/tool_name").unwrap_or_default().to_owned(),
                            parameters: v.get("parameters").map(J::to_value).unwrap_or_default(),
                            started: str_at(v, "/timestamp").map(str::to_owned),
                        },
                    );
                }
            }
            "tool_result" => self.tool_result(v, out),
            "error" => {
                let message = str_at(v, "/message").unwrap_or_default();
                let warning = str_at(v, "/severity") == Some("warning");
                out.push(Event::Error {
                    message: message.to_owned(),
                    // Only `result` ends the run; an error event is at most a hint.
                    fatal: false,
                    class: if warning {
                        None
                    } else {
                        classify::hint(message)
                    },
                });
            }
            "result" => self.result(v, out),
            _ => return Seen::Unknown(kind.to_owned()),
        }
        Seen::Known
    }

    fn end(&mut self) -> Ending {
        Ending {
            final_text: Some(std::mem::take(&mut self.text)),
            usage: std::mem::take(&mut self.usage),
            session_id: self.session_id.take(),
            verdict: std::mem::take(&mut self.verdict),
        }
    }
}

impl Gemini {
    fn tool_result<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        // Text before a tool call is narration, not the final answer.
        self.text.clear();
        let Some(call) = str_at(v, "/tool_id").and_then(|id| self.pending.remove(id)) else {
            return;
        };
        let succeeded = str_at(v, "/status") == Some("success");
        match call.tool.as_str() {
            "run_shell_command" => out.push(Event::Command {
                cmd: str_at(&call.parameters, "/command")
                    .unwrap_or_default()
                    .to_owned(),
                // Gemini reports only `status`, no exit code.
                exit_code: None,
                duration_ms: call
                    .started
                    .as_deref()
                    .zip(str_at(v, "/timestamp"))
                    .and_then(|(start, end)| millis_between(start, end)),
                output: str_at(v, "/output")
                    .or_else(|| str_at(v, "/error/message"))
                    .map(str::to_owned),
            }),
            "write_file" | "replace" if succeeded => {
                if let Some(path) = str_at(&call.parameters, "/file_path") {
                    out.push(Event::FileChange {
                        path: path.to_owned(),
                        // Gemini doesn't say whether write_file created the file.
                        kind: FileChangeKind::Update,
                    });
                }
            }
            _ => {}
        }
    }

    fn result<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        self.usage = Usage {
            input: u64_at(v, "/stats/input_tokens").unwrap_or(0),
            cached: u64_at(v, "/stats/cached").unwrap_or(0),
            output: u64_at(v, "/stats/output_tokens").unwrap_or(0),
            cost_usd: None,
        };
        out.push(Event::Usage(self.usage.clone()));
        if str_at(v, "/status") == Some("success") {
            if !self.text.is_empty() {
                out.push(Event::Final {
                    text: self.text.clone(),
                });
            }
            self.verdict = Verdict::Succeeded;
            return;
        }
        let message = str_at(v, "/error/message").unwrap_or("gemini reported an error");
        let class = classify_error(v.get("error"), message);
        out.push(Event::Error {
            message: message.to_owned(),
            fatal: true,
            class: Some(class.clone()),
        });
        self.verdict = Verdict::Failed(class);
    }
}

/// Classifies `result.error` (`{type, message, code?}`; *not exercised*, CONTRACTS §5.3).
/// The type is the name of gemini's error class; the code may be its exit code (41 auth,
/// 53 turn limit) or an HTTP status.
fn classify_error<J: Json>(error: Option<&J>, message: &str) -> FailureClass {
    let kind = error.and_then(|e| str_at(e, "/type")).unwrap_or_default();
    let code = error.and_then(|e| u64_at(e, "/code"));
    if kind.contains("Auth") || code == Some(41) {
        return FailureClass::Auth;
    }
    if kind.contains("TurnLimit") || code == Some(53) {
        return FailureClass::TurnLimit;
    }
    if kind.contains("Quota") {
        return FailureClass::RateLimited {
            reset_at: classify::reset_hint(message),
            retry_after_s: None,
        };
    }
    let status = code
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c));
    match (status, classify::error_message(message)) {
        (Some(status), _) => classify::api_error(Some(status), &[], message),
        (None, class @ (FailureClass::RateLimited { .. } | FailureClass::Auth)) => class,
        (None, class)
            if kind.contains("Api")
                || kind.contains("Fetch")
                || message.trim_start().starts_with("[API Error") =>
        {
            class
        }
        (None, _) => FailureClass::AgentError,
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
            StreamFormat::Gemini,
            include_str!("../../../tests/fixtures/captures/gemini-e2e.jsonl"),
        );
        assert_eq!(outcome.final_text.as_deref(), Some(DEFAULT_FINAL));
        assert_eq!(
            outcome.usage,
            Usage {
                input: 210,
                cached: 40,
                output: 14,
                cost_usd: None
            }
        );
        assert_eq!(outcome.failure, None);
        assert_eq!(
            outcome.session_id.as_deref(),
            Some("6f5fc2db-5557-4ca2-a1a6-9504d3fd32d0")
        );
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
        assert!(events.contains(&Event::Command {
            cmd: "echo hello-from-mock > hello.txt && cat hello.txt".into(),
            exit_code: None,
            duration_ms: Some(99),
            output: Some("hello-from-mock".into()),
        }));
    }

    #[test]
    fn text_before_a_tool_call_is_not_final() {
        let stream = concat!(
            r#"{"type":"message","role":"assistant","content":"Let me look.","delta":true}"#,
            "\n",
            r#"{"type":"tool_use","tool_name":"read_file","tool_id":"t1","parameters":{}}"#,
            "\n",
            r#"{"type":"tool_result","tool_id":"t1","status":"success","output":""}"#,
            "\n",
            r#"{"type":"error","severity":"warning","message":"Loop detected, continuing"}"#,
            "\n",
            r#"{"type":"message","role":"assistant","content":"done","delta":true}"#,
            "\n",
            r#"{"type":"result","status":"success","stats":{}}"#,
        );
        let (_, outcome) = run(StreamFormat::Gemini, stream);
        assert_eq!(outcome.final_text.as_deref(), Some("done"));
        assert_eq!(outcome.failure, None);
    }

    // Hand-written lines below: gemini's failure paths were not exercised (CONTRACTS §5.3).

    #[test]
    fn failures() {
        let cases = [
            (
                r#"{"type":"Error","message":"Invalid auth method selected.","code":41}"#,
                FailureClass::Auth,
            ),
            (
                r#"{"type":"TerminalQuotaError","message":"You have exhausted your capacity on this model. Your quota will reset after 2h3m."}"#,
                FailureClass::rate_limited(),
            ),
            (
                r#"{"type":"ApiError","message":"[API Error: got status: 429 Too Many Requests]"}"#,
                FailureClass::rate_limited(),
            ),
            (
                r#"{"type":"FatalTurnLimitedError","message":"Reached max session turns","code":53}"#,
                FailureClass::TurnLimit,
            ),
            (
                r#"{"type":"ApiError","message":"got status: 503 Service Unavailable"}"#,
                FailureClass::Api {
                    status: Some(503),
                    retryable: true,
                },
            ),
            (
                r#"{"type":"Error","message":"something odd"}"#,
                FailureClass::AgentError,
            ),
        ];
        for (error, class) in cases {
            let stream =
                format!(r#"{{"type":"result","status":"error","error":{error},"stats":{{}}}}"#);
            let (_, outcome) = run(StreamFormat::Gemini, &stream);
            assert_eq!(outcome.failure, Some(class), "{error}");
            assert_eq!(outcome.final_text, None);
        }
    }

    #[test]
    fn survives_garbage() {
        assert_survives_garbage(
            StreamFormat::Gemini,
            &[
                "init",
                "message",
                "tool_use",
                "tool_result",
                "error",
                "result",
            ],
        );
    }
}
