//! Plain stdout of a `cmd:PROGRAM` agent (DESIGN §6), and of text-only CLIs such as crush
//! (CONTRACTS §8): every line is assistant text and the final text is all of it.
//!
//! Finding the report (the last JSON object) is the report extractor's job, not this
//! parser's. There is no usage and no terminal event; success is the exit code's business.
//! Only the tail of a huge output is kept, because the report sits at the end and a 1 GB
//! stream must not grow Looper's memory (STYLE §2.7).

use super::{Outcome, StreamParser};
use crate::agent::event::{Event, FailureClass};

/// How much of the output the final text keeps (its tail).
const KEEP_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
pub(crate) struct Cmd {
    text: String,
    lines: usize,
}

impl StreamParser for Cmd {
    fn line(&mut self, raw: &str) -> Vec<Event> {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if self.lines > 0 {
            self.text.push('\n');
        }
        self.lines += 1;
        self.text.push_str(raw);
        // Trim in bulk, not per line, so a long stream isn't copied once per line.
        if self.text.len() > 2 * KEEP_BYTES {
            let mut cut = self.text.len() - KEEP_BYTES;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
        if raw.trim().is_empty() {
            Vec::new()
        } else {
            vec![Event::Message {
                text: raw.to_owned(),
            }]
        }
    }

    fn finish(&mut self) -> Outcome {
        let text = std::mem::take(&mut self.text);
        self.lines = 0;
        let (final_text, failure) = if text.trim().is_empty() {
            (None, Some(FailureClass::NoReport))
        } else {
            (Some(text), None)
        };
        Outcome {
            final_text,
            failure,
            ..Outcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::Usage;
    use crate::agent::parse::{StreamFormat, run};

    #[test]
    fn final_text_is_all_of_stdout() {
        let stdout = "working...\n\nDone.\n{\"status\": \"done\", \"summary\": \"x\", \"files_changed\": []}\n";
        let (events, outcome) = run(StreamFormat::Cmd, stdout);
        assert_eq!(
            outcome.final_text.as_deref(),
            Some(
                "working...\n\nDone.\n{\"status\": \"done\", \"summary\": \"x\", \"files_changed\": []}"
            )
        );
        assert_eq!(outcome.failure, None);
        assert_eq!(outcome.usage, Usage::default());
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_capture_is_just_text() {
        // A JSON stream fed to `cmd` is text, not garbage.
        let capture = include_str!("../../../tests/fixtures/captures/codex-e2e.jsonl");
        let (_, outcome) = run(StreamFormat::Cmd, capture);
        assert_eq!(outcome.final_text.as_deref(), Some(capture.trim_end()));
        assert_eq!((outcome.unknown_lines, outcome.garbage_lines), (0, 0));
    }

    #[test]
    fn survives_garbage_and_empty_output() {
        let mut parser = Cmd::default();
        for raw in [
            "",
            "not json",
            "{\"type\":",
            "{\"type\":\"x\"}",
            "\u{0}",
            "é\r",
        ] {
            let _ = parser.line(raw);
        }
        let outcome = parser.finish();
        assert_eq!(
            outcome.final_text.as_deref(),
            Some("\nnot json\n{\"type\":\n{\"type\":\"x\"}\n\u{0}\né")
        );
        let outcome = parser.finish();
        assert_eq!(outcome.final_text, None);
        assert_eq!(outcome.failure, Some(FailureClass::NoReport));
    }

    #[test]
    fn keeps_only_the_tail_of_huge_output() {
        let mut parser = Cmd::default();
        let line = "é".repeat(1000);
        for _ in 0..(5 * KEEP_BYTES / line.len()) {
            let _ = parser.line(&line);
        }
        let _ = parser.line("{\"status\":\"done\"}");
        let text = parser.finish().final_text.unwrap();
        assert!(text.len() <= 2 * KEEP_BYTES);
        assert!(text.ends_with("{\"status\":\"done\"}"));
    }
}
