//! Stream parsers: one per agent CLI, each turning the CLI's stdout, line by line, into
//! [`Event`]s and, at the end, an [`Outcome`] (final text, usage totals, failure class).
//!
//! Parsers are pure: no processes, no clocks, no IO. The supervisor feeds them lines (and
//! keeps every raw line in the journal); the report extractor reads `Outcome::final_text`.
//! A parser never fails: unknown event types and non-JSON lines are counted and reported as
//! [`Event::Unknown`] (STYLE §2.12, CONTRACTS §2.3).

pub(crate) mod classify;
pub(crate) mod claude;
pub(crate) mod cmd;
pub(crate) mod codex;
pub(crate) mod gemini;
pub(crate) mod json;
pub(crate) mod opencode;
pub(crate) mod pi;
pub(crate) mod view;

use serde::{Deserialize, Serialize};

use crate::agent::event::{Event, FailureClass, Usage};

/// A parser for one run's output stream.
pub trait StreamParser {
    /// Parses one line of stdout (without its newline) into zero or more events.
    fn line(&mut self, raw: &str) -> Vec<Event>;
    /// Whether the last line [`line`](Self::line) read is one JSON object and nothing else,
    /// as `serde_json` reads it, nested shallow enough to read one level deeper: the journal
    /// keeps such a line as that object (`json`), not as a string (`raw`).
    fn line_is_object(&self) -> bool {
        false
    }
    /// Ends the stream and returns what it said. The parser starts over afterwards.
    fn finish(&mut self) -> Outcome;
}

/// What a whole stream said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The agent's final message; `None` when there is none or the run failed.
    pub final_text: Option<String>,
    /// Totals as each CLI defines them, normalized by CONTRACTS §9.
    pub usage: Usage,
    /// `None` when the stream says the run succeeded.
    pub failure: Option<FailureClass>,
    /// The CLI's session or thread id, when it reported one.
    pub session_id: Option<String>,
    /// JSON lines whose `type` the parser doesn't know.
    pub unknown_lines: usize,
    /// Non-blank lines that aren't a JSON object.
    pub garbage_lines: usize,
}

/// The output formats Looper can parse, one per adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFormat {
    /// `codex exec --json`
    Codex,
    /// `claude -p --output-format stream-json --verbose`
    Claude,
    /// `gemini --output-format stream-json`
    Gemini,
    /// `opencode run --format json`
    Opencode,
    /// `pi --mode json`
    Pi,
    /// Plain stdout of a `cmd:` agent (also crush).
    Cmd,
}

impl StreamFormat {
    /// Every format, the JSON ones first.
    pub const ALL: [Self; 6] = [
        Self::Codex,
        Self::Claude,
        Self::Gemini,
        Self::Opencode,
        Self::Pi,
        Self::Cmd,
    ];

    /// A fresh parser for this format.
    pub fn parser(self) -> Box<dyn StreamParser + Send> {
        match self {
            Self::Codex => Box::new(json::JsonStream::<codex::Codex>::default()),
            Self::Claude => Box::new(json::JsonStream::<claude::Claude>::default()),
            Self::Gemini => Box::new(json::JsonStream::<gemini::Gemini>::default()),
            Self::Opencode => Box::new(json::JsonStream::<opencode::Opencode>::default()),
            Self::Pi => Box::new(json::JsonStream::<pi::Pi>::default()),
            Self::Cmd => Box::new(cmd::Cmd::default()),
        }
    }
}

/// Parses a whole stream and returns its outcome and the number of events it produced.
///
/// This is the benchmark hook: feed it N lines (a capture repeated, say) to measure lines/s.
pub fn parse_lines<'a>(
    format: StreamFormat,
    lines: impl IntoIterator<Item = &'a str>,
) -> (Outcome, usize) {
    let mut parser = format.parser();
    let mut events = 0;
    for line in lines {
        events += parser.line(line).len();
    }
    (parser.finish(), events)
}

/// Test helper: all events and the outcome of a captured stream.
#[cfg(test)]
pub(crate) fn run(format: StreamFormat, text: &str) -> (Vec<Event>, Outcome) {
    let mut parser = format.parser();
    let events = text.lines().flat_map(|l| parser.line(l)).collect();
    (events, parser.finish())
}

/// Test helper: every parser survives garbage, blank lines, broken JSON, unknown types and
/// known types with wrong shapes, and counts them.
#[cfg(test)]
pub(crate) fn assert_survives_garbage(format: StreamFormat, known_types: &[&str]) {
    let mut parser = format.parser();
    for raw in ["", "   ", "\r"] {
        assert!(parser.line(raw).is_empty(), "blank line {raw:?}");
    }
    for raw in [
        "not json",
        "{\"type\":",
        "[1,2]",
        "42",
        "\u{0}\u{fffd}",
        "{\"type\":\"x\"} trailing",
    ] {
        assert_eq!(
            parser.line(raw),
            vec![Event::Unknown { kind: None }],
            "garbage {raw:?}"
        );
    }
    assert_eq!(
        parser.line(r#"{"type":"brand_new_event","x":1}"#),
        vec![Event::Unknown {
            kind: Some("brand_new_event".into())
        }]
    );
    assert_eq!(
        parser.line(r#"{"no_type":1}"#),
        vec![Event::Unknown { kind: None }]
    );
    assert_eq!(
        parser.line(r#"{"type":42}"#),
        vec![Event::Unknown { kind: None }]
    );
    // Known types with every field missing or of the wrong type must not panic.
    for kind in known_types {
        for body in [
            String::new(),
            r#","item":null,"message":7,"part":[],"usage":"x","stats":null,"result":{},"error":[]"#
                .to_owned(),
            r#","item":{"type":"command_execution","exit_code":99999999999},"message":{"role":"assistant","content":"x","usage":{"input":-1}},"part":{"tool":"bash","tokens":{"input":"1"}},"subtype":"init","content":[{"type":"tool_result"}]"#
                .to_owned(),
        ] {
            let _ = parser.line(&format!(r#"{{"type":"{kind}"{body}}}"#));
        }
    }
    let outcome = parser.finish();
    assert_eq!(outcome.garbage_lines, 6);
    assert!(outcome.unknown_lines >= 3, "{outcome:?}");
    // After finish the parser starts over.
    assert_eq!(parser.finish().garbage_lines, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lines_counts_events() {
        let capture = include_str!("../../tests/fixtures/captures/codex-e2e.jsonl");
        let lines: Vec<&str> = capture.lines().collect();
        let (outcome, events) = parse_lines(StreamFormat::Codex, lines.iter().copied());
        assert_eq!(outcome.failure, None);
        // session, 2 reasoning, command, message, usage, final
        assert_eq!(events, 7);
    }

    #[test]
    fn every_format_has_a_parser_that_finishes_an_empty_stream() {
        for format in &StreamFormat::ALL[..5] {
            let outcome = format.parser().finish();
            assert_eq!(
                outcome.failure,
                Some(FailureClass::Incomplete),
                "{format:?}"
            );
            assert_eq!(outcome.final_text, None);
        }
        let outcome = StreamFormat::Cmd.parser().finish();
        assert_eq!(outcome.failure, Some(FailureClass::NoReport));
    }

    /// Real streams of each pinned CLI meeting HTTP 429 with `retry-after: 1` from the mock
    /// (`tests/integration/MOCK-NOTES.md`): every one is a rate limit, without a final text,
    /// although pi exits 0 and gemini words it in prose.
    #[test]
    fn every_real_429_stream_is_a_rate_limit() {
        let cases = [
            (
                StreamFormat::Codex,
                include_str!("../../tests/fixtures/captures/codex-http429.jsonl"),
            ),
            (
                StreamFormat::Claude,
                include_str!("../../tests/fixtures/captures/claude-http429.jsonl"),
            ),
            (
                StreamFormat::Gemini,
                include_str!("../../tests/fixtures/captures/gemini-http429.jsonl"),
            ),
            (
                StreamFormat::Opencode,
                include_str!("../../tests/fixtures/captures/opencode-http429.jsonl"),
            ),
            (
                StreamFormat::Pi,
                include_str!("../../tests/fixtures/captures/pi-http429.jsonl"),
            ),
        ];
        for (format, capture) in cases {
            let (_, outcome) = run(format, capture);
            assert!(
                matches!(outcome.failure, Some(FailureClass::RateLimited { .. })),
                "{format:?}: {outcome:?}"
            );
            assert_eq!(outcome.final_text, None, "{format:?}");
        }
        // gemini's "Suggested retry after 1s." inside `[API Error: …]`.
        let (_, gemini) = run(StreamFormat::Gemini, cases[2].1);
        assert_eq!(
            gemini.failure,
            Some(FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(1)
            })
        );
    }

    /// Found by `fuzz::stream_parsers` (#7, pi; the others share the sums): token counts
    /// come from the agent's output, so a count near `u64::MAX` saturates the totals
    /// instead of overflowing (a panic in a debug build).
    #[test]
    fn huge_token_counts_saturate() {
        let max = u64::MAX;
        let cases = [
            (
                StreamFormat::Codex,
                format!(
                    r#"{{"type":"turn.completed","usage":{{"input_tokens":{max},"cached_input_tokens":{max},"output_tokens":{max}}}}}"#
                ),
            ),
            (
                StreamFormat::Claude,
                format!(
                    r#"{{"type":"result","is_error":false,"result":"x","usage":{{"input_tokens":{max},"cache_creation_input_tokens":{max},"cache_read_input_tokens":{max},"output_tokens":1}}}}"#
                ),
            ),
            (
                StreamFormat::Opencode,
                format!(
                    r#"{{"type":"step_finish","part":{{"type":"step-finish","tokens":{{"input":{max},"output":{max},"cache":{{"read":{max}}}}},"cost":0}}}}"#
                ),
            ),
        ];
        for (format, line) in cases {
            let (_, outcome) = run(format, &format!("{line}\n{line}"));
            assert_eq!(outcome.usage.input, max, "{format:?}");
            assert_eq!(outcome.usage.cached, max, "{format:?}");
        }
    }

    #[test]
    fn a_stream_of_garbage_is_malformed_output() {
        let (_, outcome) = run(StreamFormat::Claude, "oops\nSegmentation fault\n");
        assert_eq!(outcome.failure, Some(FailureClass::MalformedOutput));
        assert_eq!(outcome.garbage_lines, 2);
    }
}
