//! The part every JSON-lines parser shares: splitting blank, garbage and typed lines, counting
//! what isn't understood, and turning a CLI's terminal verdict into an [`Outcome`].
//!
//! Each CLI only supplies a [`JsonDialect`]: what one typed object means, and what the
//! stream said once it ended. Also small [`Json`] accessors, so dialects never index or
//! unwrap into input.

#[cfg(test)]
use serde_json::Value;

use super::view::{self, Json};
use super::{Outcome, StreamParser};
use crate::agent::event::{Event, FailureClass, Usage};

/// One CLI's reading of its JSON objects.
pub(crate) trait JsonDialect: Default {
    /// Handles one object whose `type` is `kind`, pushing its events to `out`.
    fn object<J: Json>(&mut self, kind: &str, v: &J, out: &mut Vec<Event>) -> Seen;
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
    /// Whether the last line was a JSON object ([`StreamParser::line_is_object`]).
    object: bool,
}

impl<D: JsonDialect> StreamParser for JsonStream<D> {
    fn line(&mut self, raw: &str) -> Vec<Event> {
        self.object = false;
        if raw.trim().is_empty() {
            return Vec::new();
        }
        let parsed = view::parse_nested(raw);
        // No whitespace around it: the object is the line, byte for byte. Held one level
        // deeper in a record, it must still be within the depth a JSON reader takes.
        let whole = raw.starts_with('{') && raw.ends_with('}');
        self.object = whole
            && parsed
                .as_ref()
                .is_some_and(|(value, depth)| value.is_object() && *depth < view::MAX_DEPTH);
        self.parsed(parsed.as_ref().map(|(value, _)| value))
    }

    fn line_is_object(&self) -> bool {
        self.object
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

impl<D: JsonDialect> JsonStream<D> {
    /// Handles one non-blank line, `None` when it isn't JSON.
    fn parsed<J: Json>(&mut self, value: Option<&J>) -> Vec<Event> {
        let Some(value) = value.filter(|v| v.is_object()) else {
            self.garbage_lines += 1;
            return vec![Event::Unknown { kind: None }];
        };
        let Some(kind) = value.get("type").and_then(J::as_str) else {
            self.unknown_lines += 1;
            return vec![Event::Unknown { kind: None }];
        };
        let mut out = Vec::new();
        if let Seen::Unknown(label) = self.dialect.object(kind, value, &mut out) {
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

    /// The line as the parser read it before `view::Borrowed`: through a `serde_json::Value`.
    /// Kept to prove both read every line alike.
    #[cfg(test)]
    pub(crate) fn line_via_value(&mut self, raw: &str) -> Vec<Event> {
        if raw.trim().is_empty() {
            return Vec::new();
        }
        self.parsed(serde_json::from_str::<Value>(raw).ok().as_ref())
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
pub(crate) fn str_at<'a, J: Json>(v: &'a J, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(J::as_str)
}

/// The unsigned integer at a JSON pointer.
pub(crate) fn u64_at<J: Json>(v: &J, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(J::as_u64)
}

/// The number at a JSON pointer.
pub(crate) fn f64_at<J: Json>(v: &J, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(J::as_f64)
}

/// An exit code at a JSON pointer, if it fits an `i32`.
pub(crate) fn exit_code_at<J: Json>(v: &J, pointer: &str) -> Option<i32> {
    v.pointer(pointer)
        .and_then(J::as_i64)
        .and_then(|c| i32::try_from(c).ok())
}

/// An HTTP status at a JSON pointer, if it is one.
pub(crate) fn status_at<J: Json>(v: &J, pointer: &str) -> Option<u16> {
    u64_at(v, pointer)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
}

/// The text of a content value: a string, or the `text` of an array of blocks, joined.
pub(crate) fn text_of<J: Json>(v: &J) -> Option<String> {
    if let Some(s) = v.as_str() {
        return Some(s.to_owned());
    }
    let texts: Vec<&str> = v
        .as_array()?
        .iter()
        .filter_map(|b| b.get("text").and_then(J::as_str))
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

/// Milliseconds between two RFC 3339 timestamps, when both parse and `end` is not earlier.
pub(crate) fn millis_between(start: &str, end: &str) -> Option<u64> {
    let start: jiff::Timestamp = start.parse().ok()?;
    let end: jiff::Timestamp = end.parse().ok()?;
    u64::try_from(end.as_millisecond() - start.as_millisecond()).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::agent::parse::{
        claude::Claude, codex::Codex, gemini::Gemini, opencode::Opencode, pi::Pi,
    };

    /// Every captured stream, as text.
    fn captures() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 20, "{paths:?}");
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Reads a stream with one dialect through `Borrowed` and through `Value`; both must
    /// give the same events line by line and the same outcome.
    fn agree<D: JsonDialect>(text: &str) -> Result<(), TestCaseError> {
        let mut fast = JsonStream::<D>::default();
        let mut slow = JsonStream::<D>::default();
        for line in text.split('\n') {
            prop_assert_eq!(fast.line(line), slow.line_via_value(line), "{}", line);
        }
        prop_assert_eq!(fast.finish(), slow.finish());
        Ok(())
    }

    fn all_agree(text: &str) -> Result<(), TestCaseError> {
        agree::<Codex>(text)?;
        agree::<Claude>(text)?;
        agree::<Gemini>(text)?;
        agree::<Opencode>(text)?;
        agree::<Pi>(text)
    }

    #[test]
    fn borrowed_and_value_read_every_capture_alike() {
        for capture in captures() {
            all_agree(&capture).unwrap();
        }
    }

    /// Members inserted right after a `{`: known keys again (a duplicate key, whose last
    /// value counts), with other types, escapes and odd numbers.
    const MEMBERS: &[&str] = &[
        r#""type":"result","#,
        r#""type":"item.completed","#,
        r#""type":"tool_result","#,
        r#""type":7,"#,
        r#""text":"dup\n\u00e9","#,
        r#""text":null,"#,
        r#""exit_code":-1,"#,
        r#""exit_code":4294967296,"#,
        r#""is_error":false,"#,
        r#""is_error":true,"#,
        r#""result":"r\"q","#,
        r#""status":"success","#,
        r#""role":"assistant","#,
        r#""subtype":"api_retry","#,
        r#""error_status":429,"#,
        r#""content":[{"type":"text","text":"t"},{"text":"u"}],"#,
        r#""content":"c","#,
        r#""structured_output":{"b":1,"a":[1.5,-0],"b":2},"#,
        r#""usage":{"input_tokens":5,"input_tokens":1e3,"output_tokens":-3},"#,
        r#""\u0074ype":"error","#,
        r#""message":{"role":"assistant","content":[{"type":"text","text":"m"}],"stopReason":"error"},"#,
        r#""item":{"type":"file_change","changes":[{"path":"/a","kind":"add"},{"path":1}]},"#,
        r#""part":{"tool":"bash","state":{"input":{"command":"ls"},"time":{"start":5,"end":3}}},"#,
        r#""error":{"name":"APIError","data":{"statusCode":429,"isRetryable":false}},"#,
        r#""error":{"type":"QuotaError","code":53,"message":"m"},"#,
        r#""parameters":{"command":"c","file_path":"\/p"},"#,
        r#""args":{"command":"a","path":"p"},"#,
        r#""tool_id":"t1","toolCallId":"t1","#,
        r#""":"","#,
    ];

    const TOKENS: &[&str] = &[
        "",
        "\"",
        "\\",
        "\\u0000",
        "\\ud800",
        "\\ud83d\\ude00",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "\n",
        "\u{e9}",
        "\u{1f600}",
        "\t",
        "1e400",
        "-0",
        "0.1",
    ];

    const NUMBERS: &[&str] = &[
        "0",
        "-1",
        "1.5",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        "1e-400",
        "2.5E3",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        /// A member after the n-th `{`.
        Member(usize, &'static str),
        Insert(usize, &'static str),
        Delete(usize, usize),
        /// Replaces the n-th run of digits.
        Number(usize, &'static str),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => (any::<usize>(), proptest::sample::select(MEMBERS)).prop_map(|(i, m)| Edit::Member(i, m)),
            1 => (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t)),
            1 => (any::<usize>(), 1..4usize).prop_map(|(i, n)| Edit::Delete(i, n)),
            2 => (any::<usize>(), proptest::sample::select(NUMBERS)).prop_map(|(i, n)| Edit::Number(i, n)),
        ]
    }

    fn apply(text: &mut String, edit: &Edit) {
        let nth =
            |starts: Vec<usize>, i: usize| (!starts.is_empty()).then(|| starts[i % starts.len()]);
        let boundaries = |text: &str| {
            (0..=text.len())
                .filter(|&b| text.is_char_boundary(b))
                .collect()
        };
        match *edit {
            Edit::Member(i, member) => {
                let braces = text.match_indices('{').map(|(at, _)| at + 1).collect();
                if let Some(at) = nth(braces, i) {
                    text.insert_str(at, member);
                }
            }
            Edit::Insert(i, token) => {
                if let Some(at) = nth(boundaries(text), i) {
                    text.insert_str(at, token);
                }
            }
            Edit::Delete(i, n) => {
                let all: Vec<usize> = boundaries(text);
                if let Some(at) = nth(all.clone(), i) {
                    let end = all
                        .iter()
                        .copied()
                        .filter(|&b| b >= at)
                        .nth(n)
                        .unwrap_or(text.len());
                    text.replace_range(at..end, "");
                }
            }
            Edit::Number(i, number) => {
                let bytes = text.as_bytes();
                let runs = (0..bytes.len())
                    .filter(|&b| {
                        bytes[b].is_ascii_digit() && (b == 0 || !bytes[b - 1].is_ascii_digit())
                    })
                    .collect();
                if let Some(at) = nth(runs, i) {
                    let end = text[at..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(text.len(), |e| at + e);
                    text.replace_range(at..end, number);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        /// Mutated captures (duplicate and retyped members, broken escapes, odd numbers,
        /// broken syntax) read alike through `Borrowed` and `Value`.
        #[test]
        fn borrowed_and_value_read_mutated_captures_alike(
            which in any::<usize>(),
            edits in proptest::collection::vec(edit(), 1..12),
        ) {
            let captures = captures();
            let mut text = captures[which % captures.len()].clone();
            for edit in &edits {
                apply(&mut text, edit);
            }
            all_agree(&text)?;
        }
    }

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
