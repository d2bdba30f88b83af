//! Finding the agent's report in its final message (DESIGN §5): the last JSON object in the
//! text, fenced in a code block or not, after prose or alone. Extraction is tolerant; the
//! caller validates what it finds strictly.

use serde_json::{Map, Value};

/// The most text searched, from the end: a report is small, a final message may not be.
pub const MAX_SCAN: usize = 1 << 20;

/// The last complete top-level JSON object in `text`, or `None`.
///
/// "Top-level" means not nested inside another object that also parses: in
/// `{"a": {"b": 1}}` the answer is the whole thing. Objects inside strings of a later,
/// larger object are not candidates either, because the scan resumes after each object found.
pub fn last_json_object(text: &str) -> Option<Map<String, Value>> {
    let mut start = text.len().saturating_sub(MAX_SCAN);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let text = &text[start..];
    let mut found = None;
    let mut at = 0;
    while let Some(offset) = text[at..].find('{') {
        let begin = at + offset;
        let mut stream = serde_json::Deserializer::from_str(&text[begin..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(object))) => {
                found = Some(object);
                at = begin + stream.byte_offset();
            }
            _ => at = begin + 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(text: &str) -> Option<Value> {
        last_json_object(text).map(Value::Object)
    }

    #[test]
    fn reads_a_fenced_block_after_prose() {
        let text = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";
        assert_eq!(
            report(text),
            Some(
                json!({"status": "done", "summary": "created hello.txt", "files_changed": ["hello.txt"]})
            )
        );
    }

    #[test]
    fn reads_unfenced_json_after_prose_and_takes_the_last() {
        let text = "First I thought {\"status\":\"blocked\"} but then:\nAll done.\n{\"status\": \"done\", \"nested\": {\"a\": [1, {\"b\": 2}]}}\nThanks!";
        assert_eq!(
            report(text),
            Some(json!({"status": "done", "nested": {"a": [1, {"b": 2}]}}))
        );
    }

    #[test]
    fn ignores_braces_that_are_not_json() {
        assert_eq!(report("fn main() { let x = 1; }"), None);
        // `{}` is an object, though: strict validation of the report rejects it later.
        assert_eq!(report("println!(\"{}\", x)"), Some(json!({})));
        assert_eq!(report(""), None);
        assert_eq!(report("{\"status\": \"done\""), None);
        // A broken last block does not hide an earlier good one.
        assert_eq!(
            report("{\"status\":\"done\"}\n```json\n{\"status\": oops}\n```"),
            Some(json!({"status": "done"}))
        );
        // Objects only: a trailing array is not a report.
        assert_eq!(report("{\"a\":1} [1,2]"), Some(json!({"a": 1})));
    }

    #[test]
    fn braces_inside_strings_do_not_confuse_it() {
        let text = r#"{"summary": "wrote {\"x\": 1} to a file", "status": "done"}"#;
        assert_eq!(
            report(text),
            Some(json!({"summary": "wrote {\"x\": 1} to a file", "status": "done"}))
        );
    }

    #[test]
    fn every_capture_final_text_yields_its_report() {
        use crate::agent::parse::{StreamFormat, run};
        let cases = [
            (
                StreamFormat::Codex,
                include_str!("../../tests/fixtures/captures/codex-e2e.jsonl"),
                "done",
            ),
            (
                StreamFormat::Codex,
                include_str!("../../tests/fixtures/captures/codex-full.jsonl"),
                "done",
            ),
            (
                StreamFormat::Codex,
                include_str!("../../tests/fixtures/captures/codex-readonly-fail.jsonl"),
                "blocked",
            ),
            (
                StreamFormat::Claude,
                include_str!("../../tests/fixtures/captures/claude-e2e.jsonl"),
                "done",
            ),
            (
                StreamFormat::Claude,
                include_str!("../../tests/fixtures/captures/claude-schema.jsonl"),
                "done",
            ),
            (
                StreamFormat::Gemini,
                include_str!("../../tests/fixtures/captures/gemini-e2e.jsonl"),
                "done",
            ),
            (
                StreamFormat::Opencode,
                include_str!("../../tests/fixtures/captures/opencode-e2e.jsonl"),
                "done",
            ),
            (
                StreamFormat::Pi,
                include_str!("../../tests/fixtures/captures/pi-e2e.jsonl"),
                "done",
            ),
        ];
        for (format, capture, status) in cases {
            let (_, outcome) = run(format, capture);
            let text = outcome.final_text.expect("final text");
            let report = last_json_object(&text).unwrap_or_else(|| panic!("{format:?}: {text}"));
            assert_eq!(report["status"], status, "{format:?}");
        }
    }

    #[test]
    fn a_huge_message_is_scanned_from_its_end_only() {
        let mut text = "{".repeat(3 << 20);
        text.push_str("\n{\"status\":\"done\"}");
        assert_eq!(report(&text), Some(json!({"status": "done"})));
        // Only the last MiB is searched: a report before it is out of reach.
        let mut text = "{\"status\":\"early\"}".to_owned();
        text.push_str(&" ".repeat(2 << 20));
        assert_eq!(report(&text), None);
    }
}
