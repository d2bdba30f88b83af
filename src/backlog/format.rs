//! The one way Looper writes JSON documents: 2-space indentation, keys in their stored order,
//! a trailing newline.

use serde_json::Value;

/// Renders a JSON value the way every Looper-written file looks.
pub fn to_pretty_string(value: &Value) -> String {
    // Writing a `Value` into a `Vec` cannot fail: every key is a string and no IO is done.
    let mut out = serde_json::to_string_pretty(value).unwrap_or_default();
    out.push('\n');
    out
}

/// Where each task's text sits in a document's canonical text (byte ranges, in task order),
/// so a change to a few tasks rewrites only their text (see [`splice_tasks`]).
pub type TaskSpans = Vec<std::ops::Range<usize>>;

/// [`to_pretty_string`] of a backlog document, with its [`TaskSpans`] when it is an object
/// whose `tasks` is an array. The same bytes: keys are written in their stored order, each
/// value as `serde_json` writes it, indented by its depth.
pub fn to_pretty_spans(value: &Value) -> (String, Option<TaskSpans>) {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        return (to_pretty_string(value), None);
    };
    let mut out = String::with_capacity(256);
    let mut spans = None;
    out.push_str("{\n");
    for (i, (key, field)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str("  ");
        push_json(&mut out, key.as_str(), 0);
        out.push_str(": ");
        match field {
            Value::Array(tasks) if key == "tasks" && !tasks.is_empty() => {
                let mut list = Vec::with_capacity(tasks.len());
                out.push_str("[\n");
                for (j, task) in tasks.iter().enumerate() {
                    if j > 0 {
                        out.push_str(",\n");
                    }
                    out.push_str("    ");
                    let start = out.len();
                    push_json(&mut out, task, 2);
                    list.push(start..out.len());
                }
                out.push_str("\n  ]");
                spans = Some(list);
            }
            _ => {
                if key == "tasks" && field.is_array() {
                    spans = Some(Vec::new());
                }
                push_json(&mut out, field, 1);
            }
        }
    }
    out.push_str("\n}\n");
    (out, spans)
}

/// `text` (canonical, with task spans `spans`) with the tasks at the given indices replaced
/// by the given values: [`to_pretty_spans`] of the changed document, without writing the
/// tasks that did not change. `changed` is in increasing index order.
pub fn splice_tasks(
    text: &str,
    spans: &[std::ops::Range<usize>],
    changed: &[(usize, &Value)],
) -> (String, TaskSpans) {
    let mut out = String::with_capacity(text.len() + 256 * changed.len());
    let mut new_spans = Vec::with_capacity(spans.len());
    let (mut copied, mut next) = (0, 0);
    for &(index, task) in changed {
        // Unchanged tasks up to this one: copied, their spans shifted.
        let start = spans[index].start;
        out.push_str(&text[copied..start]);
        let shift = out.len().wrapping_sub(start);
        new_spans.extend(
            spans[next..index]
                .iter()
                .map(|s| s.start.wrapping_add(shift)..s.end.wrapping_add(shift)),
        );
        let begin = out.len();
        push_json(&mut out, task, 2);
        new_spans.push(begin..out.len());
        copied = spans[index].end;
        next = index + 1;
    }
    out.push_str(&text[copied..]);
    let shift = out.len().wrapping_sub(text.len());
    new_spans.extend(
        spans[next..]
            .iter()
            .map(|s| s.start.wrapping_add(shift)..s.end.wrapping_add(shift)),
    );
    (out, new_spans)
}

/// `value` as `serde_json`'s pretty printer writes it nested `depth` levels deep: its own
/// pretty text with `depth` more indentation after every line break (a JSON string holds no
/// raw line break, so every one is between values).
fn push_json<T: serde::Serialize + ?Sized>(out: &mut String, value: &T, depth: usize) {
    // Writing a `Value` or a `str` into memory cannot fail.
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if depth == 0 {
        out.push_str(&text);
        return;
    }
    let indent = "  ".repeat(depth);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&indent);
        }
        out.push_str(line);
    }
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_has_two_spaces_and_newline() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":[1,{"c":null}]}"#).unwrap();
        assert_eq!(
            to_pretty_string(&v),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}\n"
        );
    }

    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\\n\t\u{1}é😀 ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"\n]{0,3}", inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Backlog-like documents: `tasks` (maybe empty, maybe not an array) among other keys.
    fn arb_doc() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(("[a-z]{1,3}", arb_json()), 0..3),
            prop::option::of(prop_oneof![
                3 => prop::collection::vec(arb_json(), 0..6).prop_map(Value::Array),
                1 => arb_json(),
            ]),
            0usize..3,
        )
            .prop_map(|(fields, tasks, at)| {
                let mut fields: Vec<(String, Value)> =
                    fields.into_iter().filter(|(k, _)| k != "tasks").collect();
                if let Some(tasks) = tasks {
                    fields.insert(at.min(fields.len()), ("tasks".to_owned(), tasks));
                }
                Value::Object(fields.into_iter().collect())
            })
    }

    proptest! {
        /// The text with spans is byte for byte the text, and each span holds its task.
        #[test]
        fn spans_text_is_the_pretty_text(doc in prop_oneof![arb_doc(), arb_json()]) {
            let (text, spans) = to_pretty_spans(&doc);
            prop_assert_eq!(&text, &to_pretty_string(&doc));
            let tasks = doc.get("tasks").and_then(Value::as_array);
            prop_assert_eq!(spans.is_some(), tasks.is_some() && doc.as_object().is_some_and(|m| !m.is_empty()));
            for (span, task) in spans.iter().flatten().zip(tasks.into_iter().flatten()) {
                let back: Value = serde_json::from_str(&text[span.clone()]).unwrap();
                prop_assert_eq!(&back, task);
            }
        }

        /// Replacing some tasks' text gives the text (and spans) of the changed document.
        #[test]
        fn spliced_text_is_the_pretty_text(
            doc in arb_doc(),
            picks in prop::collection::vec((any::<prop::sample::Index>(), arb_json()), 0..4),
        ) {
            let (text, spans) = to_pretty_spans(&doc);
            let Some(spans) = spans else { return Ok(()) };
            let mut changed_doc = doc.clone();
            let mut changed: Vec<usize> = Vec::new();
            if let Some(Value::Array(tasks)) = changed_doc.get_mut("tasks") && !tasks.is_empty() {
                for (index, task) in picks {
                    let i = index.index(tasks.len());
                    tasks[i] = task;
                    changed.push(i);
                }
            }
            changed.sort_unstable();
            changed.dedup();
            let list = changed_doc["tasks"].as_array().cloned().unwrap_or_default();
            let pairs: Vec<(usize, &Value)> = changed.iter().map(|&i| (i, &list[i])).collect();
            let (spliced, new_spans) = splice_tasks(&text, &spans, &pairs);
            let (expected, expected_spans) = to_pretty_spans(&changed_doc);
            prop_assert_eq!(spliced, expected);
            prop_assert_eq!(Some(new_spans), expected_spans);
        }
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
