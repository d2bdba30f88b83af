//! `claude -p --output-format stream-json --verbose` (CONTRACTS §4.4, §4.6): `system`,
//! `assistant`, `user`, `stream_event`, `rate_limit_event` and the final `result` line.
//!
//! Everything that decides the run is on `result`: the final text (`structured_output` first,
//! then `result`), usage and cost for the whole run, and `is_error` — which, not `subtype`,
//! says whether it failed (an API error ends `subtype:"success"`, `is_error:true`). The usage
//! inside `assistant` lines is a `message_start` snapshot and is never summed. `api_retry`
//! lines are warnings; a 429 among them is kept as a hint.

use std::collections::HashMap;

use super::view::Json;

use super::classify;
use super::json::{
    Ending, JsonDialect, Seen, Verdict, f64_at, millis_between, status_at, str_at, text_of, u64_at,
};
use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};

#[derive(Debug, Default)]
pub(crate) struct Claude {
    session_id: Option<String>,
    /// Tool calls waiting for their result, by `tool_use` id.
    pending: HashMap<String, Pending>,
    final_text: Option<String>,
    usage: Usage,
    verdict: Verdict,
}

/// A tool call whose result we want to report.
#[derive(Debug)]
enum Pending {
    Command {
        cmd: String,
        started: Option<String>,
    },
    File {
        path: String,
        tool: String,
    },
}

impl JsonDialect for Claude {
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen {
        match kind {
            "system" => return self.system(v, out),
            "assistant" => self.assistant(v, out),
            "user" => self.user(v, out),
            // Partial-message deltas repeat what the `assistant` line carries whole.
            "stream_event" => {}
            "rate_limit_event" => {
                if str_at(v, "/rate_limit_info/status") == Some("rejected") {
                    let reset_at = v
                        .pointer("/rate_limit_info/resetsAt")
                        .and_then(J::as_i64)
                        .and_then(classify::epoch_to_rfc3339);
                    let which = str_at(v, "/rate_limit_info/rateLimitType").unwrap_or("unknown");
                    out.push(Event::Error {
                        message: format!("rate limit reached ({which})"),
                        fatal: false,
                        class: Some(FailureClass::RateLimited {
                            reset_at,
                            retry_after_s: None,
                        }),
                    });
                }
            }
            "result" => self.result(v, out),
            _ => return Seen::Unknown(kind.to_owned()),
        }
        Seen::Known
    }

    fn end(&mut self) -> Ending {
        Ending {
            final_text: self.final_text.take(),
            usage: std::mem::take(&mut self.usage),
            session_id: self.session_id.take(),
            verdict: std::mem::take(&mut self.verdict),
        }
    }
}

impl Claude {
    fn system<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) -> Seen {
        match str_at(v, "/subtype").unwrap_or_default() {
            "init" => {
                if let Some(id) = str_at(v, "/session_id") {
                    self.session_id = Some(id.to_owned());
                    out.push(Event::Session { id: id.to_owned() });
                }
            }
            "status" => {}
            "api_retry" => {
                let status = status_at(v, "/error_status");
                let error = str_at(v, "/error").unwrap_or("unknown");
                let class = match status {
                    Some(429) => Some(FailureClass::RateLimited {
                        reset_at: None,
                        retry_after_s: u64_at(v, "/retry_delay_ms").map(|ms| ms.div_ceil(1000)),
                    }),
                    Some(401 | 403) => Some(FailureClass::Auth),
                    _ => None,
                };
                let status = status.map_or_else(|| "?".to_owned(), |s| s.to_string());
                out.push(Event::Error {
                    message: format!("api error {status} ({error}), retrying"),
                    fatal: false,
                    class,
                });
            }
            other => return Seen::Unknown(format!("system/{other}")),
        }
        Seen::Known
    }

    fn assistant<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        let blocks = v.pointer("/message/content").and_then(J::as_array);
        if v.get("is_api_error_message").and_then(J::as_bool) == Some(true) {
            // Claude's synthetic stand-in for a failed API call; the `result` line that
            // follows is the fatal one.
            let class = match (str_at(v, "/error"), status_at(v, "/api_error_status")) {
                (Some("rate_limit"), _) | (_, Some(429)) => Some(FailureClass::rate_limited()),
                (Some("authentication_failed"), _) | (_, Some(401 | 403)) => {
                    Some(FailureClass::Auth)
                }
                _ => None,
            };
            let message = v
                .pointer("/message/content")
                .and_then(text_of)
                .unwrap_or_else(|| "api error".to_owned());
            out.push(Event::Error {
                message,
                fatal: false,
                class,
            });
            return;
        }
        let at = str_at(v, "/timestamp").map(str::to_owned);
        for block in blocks.into_iter().flatten() {
            match str_at(block, "/type").unwrap_or_default() {
                "text" => out.push(Event::Message {
                    text: str_at(block, "/text").unwrap_or_default().to_owned(),
                }),
                "thinking" => out.push(Event::Reasoning {
                    text: str_at(block, "/thinking").unwrap_or_default().to_owned(),
                }),
                "tool_use" => {
                    let Some(id) = str_at(block, "/id") else {
                        continue;
                    };
                    let tool = str_at(block, "/name").unwrap_or_default();
                    let pending = match tool {
                        "Bash" => Pending::Command {
                            cmd: str_at(block, "/input/command")
                                .unwrap_or_default()
                                .to_owned(),
                            started: at.clone(),
                        },
                        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
                            let path = str_at(block, "/input/file_path")
                                .or_else(|| str_at(block, "/input/notebook_path"));
                            let Some(path) = path else { continue };
                            Pending::File {
                                path: path.to_owned(),
                                tool: tool.to_owned(),
                            }
                        }
                        _ => continue,
                    };
                    self.pending.insert(id.to_owned(), pending);
                }
                _ => {}
            }
        }
    }

    fn user<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        let blocks = v.pointer("/message/content").and_then(J::as_array);
        let at = str_at(v, "/timestamp");
        for block in blocks.into_iter().flatten() {
            let Some(pending) =
                str_at(block, "/tool_use_id").and_then(|id| self.pending.remove(id))
            else {
                continue;
            };
            let failed = block.get("is_error").and_then(J::as_bool) == Some(true);
            match pending {
                Pending::Command { cmd, started } => out.push(Event::Command {
                    cmd,
                    // Claude reports no exit code, only `is_error`.
                    exit_code: None,
                    // The tool_use line is printed when the call is complete, so the gap to
                    // its result is the tool's run time, give or take.
                    duration_ms: started
                        .as_deref()
                        .zip(at)
                        .and_then(|(start, end)| millis_between(start, end)),
                    output: block.get("content").and_then(text_of),
                }),
                Pending::File { path, tool } if !failed => {
                    let kind = match (tool.as_str(), str_at(v, "/tool_use_result/type")) {
                        ("Write", Some(kind)) => FileChangeKind::from_cli(kind),
                        _ => FileChangeKind::Update,
                    };
                    out.push(Event::FileChange { path, kind });
                }
                Pending::File { .. } => {}
            }
        }
    }

    fn result<J: Json>(&mut self, v: &J, out: &mut Vec<Event>) {
        // Claude's `input_tokens` exclude cache reads and writes (CONTRACTS §9).
        let cached = u64_at(v, "/usage/cache_read_input_tokens").unwrap_or(0);
        self.usage = Usage {
            input: u64_at(v, "/usage/input_tokens")
                .unwrap_or(0)
                .saturating_add(cached)
                .saturating_add(u64_at(v, "/usage/cache_creation_input_tokens").unwrap_or(0)),
            cached,
            output: u64_at(v, "/usage/output_tokens").unwrap_or(0),
            cost_usd: f64_at(v, "/total_cost_usd"),
        };
        out.push(Event::Usage(self.usage.clone()));

        if v.get("is_error").and_then(J::as_bool) == Some(false) {
            // With --json-schema the object is the answer; `result` is its JSON text then.
            let text = match v.get("structured_output") {
                Some(object) if object.is_object() => Some(object.to_value().to_string()),
                _ => str_at(v, "/result").map(str::to_owned),
            };
            if let Some(text) = &text {
                out.push(Event::Final { text: text.clone() });
            }
            self.final_text = text;
            self.verdict = Verdict::Succeeded;
            return;
        }

        let message = str_at(v, "/result")
            .map(str::to_owned)
            .or_else(|| {
                let errors = v.get("errors").and_then(J::as_array)?;
                let texts: Vec<&str> = errors.iter().filter_map(J::as_str).collect();
                (!texts.is_empty()).then(|| texts.join("; "))
            })
            .unwrap_or_else(|| "claude reported an error".to_owned());
        let class = match str_at(v, "/subtype").unwrap_or_default() {
            "error_max_turns" => FailureClass::TurnLimit,
            "error_max_budget_usd" => FailureClass::BudgetLimit,
            "error_max_structured_output_retries" => FailureClass::NoReport,
            _ => {
                let status = status_at(v, "/api_error_status");
                let kind = str_at(v, "/api_error_type");
                if status.is_some()
                    || kind.is_some()
                    || str_at(v, "/terminal_reason") == Some("api_error")
                {
                    classify::api_error(status, kind.as_slice(), &message)
                } else {
                    FailureClass::AgentError
                }
            }
        };
        out.push(Event::Error {
            message,
            fatal: true,
            class: Some(class.clone()),
        });
        self.final_text = None;
        self.verdict = Verdict::Failed(class);
    }
}

#[cfg(test)]
mod tests {
    use crate::agent::event::{Event, FailureClass, FileChangeKind, Usage};
    use crate::agent::parse::{StreamFormat, assert_survives_garbage, run};

    const DEFAULT_FINAL: &str = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";

    fn usage(input: u64, cached: u64, output: u64, cost: f64) -> Usage {
        Usage {
            input,
            cached,
            output,
            cost_usd: Some(cost),
        }
    }

    #[test]
    fn e2e() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-e2e.jsonl"),
        );
        assert_eq!(outcome.final_text.as_deref(), Some(DEFAULT_FINAL));
        // input_tokens 210 + cache_read 40 + cache_creation 0
        assert_eq!(outcome.usage, usage(250, 40, 14, 0.000_852));
        assert_eq!(outcome.failure, None);
        assert_eq!(
            outcome.session_id.as_deref(),
            Some("1b3ff340-05c5-480c-9ae1-4fb1bea10e18")
        );
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
        assert!(events.contains(&Event::Command {
            cmd: "echo hello-from-mock > hello.txt && cat hello.txt".into(),
            exit_code: None,
            duration_ms: Some(70),
            output: Some("hello-from-mock".into()),
        }));
        // Only the result line reports usage; the per-message snapshots are not summed.
        let usages = events
            .iter()
            .filter(|e| matches!(e, Event::Usage(_)))
            .count();
        assert_eq!(usages, 1);
    }

    #[test]
    fn full() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-full.jsonl"),
        );
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(
                "Done.\n{\"status\": \"done\", \"summary\": \"created hello.txt and notes.md\", \"files_changed\": [\"hello.txt\", \"notes.md\"]}"
            )
        );
        assert_eq!(outcome.usage, usage(390, 60, 21, 0.001_323));
        assert_eq!(outcome.failure, None);
        assert!(events.contains(&Event::FileChange {
            path: "notes.md".into(),
            kind: FileChangeKind::Add,
        }));
    }

    #[test]
    fn schema_prefers_structured_output() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-schema.jsonl"),
        );
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(
                r#"{"status":"done","summary":"created hello.txt","files_changed":["hello.txt"]}"#
            )
        );
        assert_eq!(outcome.usage, usage(250, 40, 14, 0.000_852));
        assert_eq!(outcome.failure, None);
        // This run's script wrote the file silently.
        assert!(events.contains(&Event::Command {
            cmd: "echo hi > hello.txt".into(),
            exit_code: None,
            duration_ms: Some(69),
            output: Some("(Bash completed with no output)".into()),
        }));
    }

    #[test]
    fn partial_messages() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-partial.jsonl"),
        );
        let text = r#"{"status":"done","summary":"nothing","files_changed":[]}"#;
        assert_eq!(outcome.final_text.as_deref(), Some(text));
        assert_eq!(outcome.usage, usage(120, 20, 7, 0.000_411));
        assert_eq!(outcome.failure, None);
        assert_eq!(outcome.unknown_lines, 0);
        // The deltas are not reported twice: one message, from the `assistant` line.
        let messages: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .collect();
        assert_eq!(messages, [&Event::Message { text: text.into() }]);
    }

    #[test]
    fn maxturns_is_a_turn_limit_without_report() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-maxturns.jsonl"),
        );
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.usage, usage(250, 40, 14, 0.000_852));
        assert_eq!(outcome.failure, Some(FailureClass::TurnLimit));
        assert!(events.contains(&Event::Error {
            message: "Reached maximum number of turns (2)".into(),
            fatal: true,
            class: Some(FailureClass::TurnLimit),
        }));
    }

    #[test]
    fn http400_is_a_client_api_error() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-http400.jsonl"),
        );
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.usage, usage(0, 0, 0, 0.0));
        let class = FailureClass::Api {
            status: Some(400),
            retryable: false,
        };
        assert_eq!(outcome.failure, Some(class.clone()));
        let errors: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Error { .. }))
            .collect();
        assert_eq!(
            errors,
            [
                &Event::Error {
                    message: "API Error: 400 mock http error 400".into(),
                    fatal: false,
                    class: None,
                },
                &Event::Error {
                    message: "API Error: 400 mock http error 400".into(),
                    fatal: true,
                    class: Some(class),
                }
            ]
        );
    }

    #[test]
    fn http500_is_a_retryable_api_error() {
        let (events, outcome) = run(
            StreamFormat::Claude,
            include_str!("../../../tests/fixtures/captures/claude-http500.jsonl"),
        );
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.usage, usage(0, 0, 0, 0.0));
        assert_eq!(
            outcome.failure,
            Some(FailureClass::Api {
                status: Some(500),
                retryable: true
            })
        );
        assert!(events.iter().any(|e| matches!(e,
            Event::Error { message, fatal: true, .. }
                if message.starts_with("API Error: 500 mock http error 500. This is a server-side issue, usually temporary"))));
    }

    // Hand-written lines below: the captures hold no 429 or auth failure (CONTRACTS §4.6).

    #[test]
    fn rate_limit_with_reset_time() {
        let stream = concat!(
            r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1795485600,"rateLimitType":"five_hour"}}"#,
            "\n",
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":1500,"error_status":429,"error":"rate_limit"}"#,
            "\n",
            r#"{"is_error":true,"subtype":"success","terminal_reason":"api_error","api_error_status":429,"api_error_type":"rate_limit_error","result":"API Error: 429 rate limited","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"type":"result"}"#,
        );
        let (events, outcome) = run(StreamFormat::Claude, stream);
        assert_eq!(
            outcome.failure,
            Some(FailureClass::RateLimited {
                reset_at: Some("2026-11-24T02:00:00Z".into()),
                retry_after_s: Some(2),
            })
        );
        assert!(events.contains(&Event::Error {
            message: "api error 429 (rate_limit), retrying".into(),
            fatal: false,
            class: Some(FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(2)
            }),
        }));
    }

    #[test]
    fn allowed_rate_limit_events_are_not_errors() {
        let stream = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1795485600}}"#;
        let (events, _) = run(StreamFormat::Claude, stream);
        assert!(events.is_empty());
    }

    #[test]
    fn subscription_limit_text_gives_the_reset() {
        let stream = r#"{"type":"result","is_error":true,"subtype":"success","api_error_status":429,"result":"You've hit your limit · resets 3pm (Europe/Berlin)"}"#;
        let (_, outcome) = run(StreamFormat::Claude, stream);
        assert_eq!(
            outcome.failure,
            Some(FailureClass::RateLimited {
                reset_at: Some("3pm (Europe/Berlin)".into()),
                retry_after_s: None
            })
        );
    }

    #[test]
    fn auth_failure() {
        let stream = concat!(
            r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"Invalid API key · Please run /login"}]},"error":"authentication_failed","is_api_error_message":true}"#,
            "\n",
            r#"{"type":"result","is_error":true,"subtype":"success","terminal_reason":"api_error","api_error_status":401,"result":"Invalid API key · Please run /login"}"#,
        );
        let (_, outcome) = run(StreamFormat::Claude, stream);
        assert_eq!(outcome.failure, Some(FailureClass::Auth));
    }

    #[test]
    fn schema_run_without_structured_output_is_success_with_text() {
        // CONTRACTS §4.5: `structured_output: null` still ends `success`; the report
        // extractor decides whether the text is a report.
        let stream = r#"{"type":"result","is_error":false,"subtype":"success","result":"plain","structured_output":null}"#;
        let (_, outcome) = run(StreamFormat::Claude, stream);
        assert_eq!(outcome.final_text.as_deref(), Some("plain"));
        assert_eq!(outcome.failure, None);
    }

    #[test]
    fn survives_garbage() {
        assert_survives_garbage(
            StreamFormat::Claude,
            &[
                "system",
                "assistant",
                "user",
                "stream_event",
                "rate_limit_event",
                "result",
            ],
        );
    }
}
