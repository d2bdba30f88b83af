//! Fuzz targets for every parser of outside input (#7): the backlog loader, the report
//! extractor and the strict reports, the agent stream parsers, the agent spec parser and the
//! journal reader.
//!
//! `cargo fuzz` needs a nightly toolchain, so these are proptest runs with mutation-based
//! inputs: a seed from a corpus (the captured streams, the fixture journals, valid backlogs)
//! plus a few random edits (bits flipped, bytes inserted or deleted, a cut, lines repeated or
//! spliced from another seed, a number made huge, a JSON value swapped for another kind, deep
//! nesting, invalid UTF-8, NUL, ANSI escapes). Each target checks more than "no panic" where
//! that is cheap. A short run is part of the suite; `LOOPER_FUZZ_CASES=200000` makes a long
//! one. A failing case's seed lands in `proptest-regressions/fuzz/<target>.txt` (commit it)
//! and the fix gets a plain regression test next to the code it fixes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use looper::agent::parse::StreamFormat;
use looper::agent::report::last_json_object;
use looper::agent::{AgentSpec, Request, Role, Sandbox, invocation};
use looper::backlog::{Status, load, select::select, validate::validate};
use looper::journal::read;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select as one_of};
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::figures::{self, Figure};

/// Input bytes, shown as an escaped byte string when a case fails, so it can be pasted into
/// a regression test.
#[derive(Clone)]
struct Input(Vec<u8>);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// One random edit of a seed.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Repeats a line in place.
    Duplicate(Index),
    /// Inserts a line of some seed after a line.
    Splice(Index, Index, Index),
    /// Replaces a run of digits.
    Number(Index, &'static str),
    /// Replaces a JSON value (of a pretty document, or of one line) with `Replacement`.
    Value(Index, Index, Replacement),
}

#[derive(Debug, Clone)]
enum Replacement {
    Value(Value),
    /// JSON text a `Value` can't hold: huge numbers, nesting deeper than the parser allows.
    Raw(String),
    /// Another value of the same document, so a known `type` may turn up in the wrong place.
    Borrow(Index),
}

const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\x1b[31m",
    b"\x1b]0;title\x07",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\n",
    b"\r\n",
    b"\r",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"{}",
    b"```json\n",
    b"```",
    "\u{e9}\u{20ac}\u{1f600}\u{202e}".as_bytes(),
];

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
];

/// Marks the spot of a raw replacement in the serialised document.
const RAW: &str = "@@looper-fuzz-raw@@";

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        one_of(TOKENS).prop_map(<[u8]>::to_vec),
        vec(any::<u8>(), 1..8),
        (1usize..300).prop_map(|n| "[".repeat(n).into_bytes()),
    ];
    let replacement = prop_oneof![
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(Value::from(u64::MAX)),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(Value::from("\u{0}\u{1b}[2J\u{202e}")),
            Just(json!([])),
            Just(json!({})),
            Just(json!([1, "x", null, {"type": "x"}])),
        ]
        .prop_map(Replacement::Value),
        prop_oneof![
            one_of(NUMBERS).prop_map(str::to_owned),
            (1usize..300).prop_map(|n| nested(n, "[", "]")),
            (1usize..300).prop_map(|n| nested(n, "{\"a\":", "}")),
        ]
        .prop_map(Replacement::Raw),
        any::<Index>().prop_map(Replacement::Borrow),
    ];
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        1 => (any::<Index>(), token).prop_map(|(at, t)| Mutation::Insert(at, t)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => any::<Index>().prop_map(Mutation::Duplicate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(seed, line, at)| Mutation::Splice(seed, line, at)),
        1 => (any::<Index>(), one_of(NUMBERS)).prop_map(|(at, n)| Mutation::Number(at, n)),
        3 => (any::<Index>(), any::<Index>(), replacement)
            .prop_map(|(line, node, r)| Mutation::Value(line, node, r)),
    ]
}

/// A seed of `seeds` with up to six mutations: the one input strategy of every target.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Input> {
    let seeds = Arc::new(seeds);
    (any::<Index>(), vec(mutation(), 0..=6)).prop_map(move |(seed, mutations)| {
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            apply(m, &mut bytes, &seeds);
        }
        Input(bytes)
    })
}

/// The byte ranges of the lines of `bytes`, each with its newline.
fn lines(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        out.push(start..i + 1);
        start = i + 1;
    }
    if start < bytes.len() {
        out.push(start..bytes.len());
    }
    out
}

fn apply(m: &Mutation, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = bytes.len();
    match m {
        Mutation::Flip(at, bit) if len > 0 => bytes[at.index(len)] ^= 1 << (bit % 8),
        Mutation::Insert(at, token) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, token.iter().copied());
        }
        Mutation::Delete(at, n) if len > 0 => {
            let at = at.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(len + 1)),
        Mutation::Duplicate(line) => {
            let ranges = lines(bytes);
            if !ranges.is_empty() {
                let range = ranges[line.index(ranges.len())].clone();
                let mut copy = bytes[range.clone()].to_vec();
                if copy.last() != Some(&b'\n') {
                    copy.insert(0, b'\n');
                }
                bytes.splice(range.end..range.end, copy);
            }
        }
        Mutation::Splice(seed, line, at) => {
            let other = &seeds[seed.index(seeds.len())];
            let theirs = lines(other);
            let ours = lines(bytes);
            if !theirs.is_empty() {
                let mut copy = other[theirs[line.index(theirs.len())].clone()].to_vec();
                if copy.last() != Some(&b'\n') {
                    copy.push(b'\n');
                }
                let at = if ours.is_empty() {
                    0
                } else {
                    ours[at.index(ours.len())].end
                };
                bytes.splice(at..at, copy);
            }
        }
        Mutation::Number(at, number) => {
            let mut runs = Vec::new();
            let mut i = 0;
            while i < len {
                let start = i;
                while i < len && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i > start {
                    runs.push(start..i);
                }
                i += 1;
            }
            if !runs.is_empty() {
                let run = runs[at.index(runs.len())].clone();
                bytes.splice(run, number.bytes());
            }
        }
        Mutation::Value(line, node, replacement) => {
            // A pretty document is one value; anything else is JSON lines.
            let range = if bytes.starts_with(b"{\n") {
                0..len
            } else {
                let ranges = lines(bytes);
                if ranges.is_empty() {
                    return;
                }
                ranges[line.index(ranges.len())].clone()
            };
            if let Some(text) = replace_value(&bytes[range.clone()], *node, replacement) {
                bytes.splice(range, text.into_bytes());
            }
        }
        _ => {}
    }
}

/// `text` (one JSON value) with one of its values replaced, serialised in the same layout.
fn replace_value(text: &[u8], node: Index, replacement: &Replacement) -> Option<String> {
    let mut value: Value = serde_json::from_slice(text).ok()?;
    let mut pointers = Vec::new();
    pointers_of(&value, String::new(), &mut pointers);
    let target = &pointers[node.index(pointers.len())];
    let new = match replacement {
        Replacement::Value(v) => v.clone(),
        Replacement::Raw(_) => Value::from(RAW),
        Replacement::Borrow(other) => value
            .pointer(&pointers[other.index(pointers.len())])?
            .clone(),
    };
    *value.pointer_mut(target)? = new;
    let mut out = if text.starts_with(b"{\n") {
        serde_json::to_string_pretty(&value).ok()?
    } else {
        serde_json::to_string(&value).ok()?
    };
    if let Replacement::Raw(raw) = replacement {
        out = out.replacen(&format!("\"{RAW}\""), raw, 1);
    }
    if text.ends_with(b"\n") {
        out.push('\n');
    }
    Some(out)
}

/// Every JSON pointer into `value`, itself first.
fn pointers_of(value: &Value, here: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            out.push(here.clone());
            for (i, item) in items.iter().enumerate() {
                pointers_of(item, format!("{here}/{i}"), out);
            }
        }
        Value::Object(map) => {
            out.push(here.clone());
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers_of(item, format!("{here}/{key}"), out);
            }
        }
        _ => out.push(here),
    }
}

/// One fuzz target's name (its test, figure and regression file) and default size.
struct Target {
    name: &'static str,
    part: &'static str,
    meaning: &'static str,
    /// Sized for 10-20 s in the debug test profile; `LOOPER_FUZZ_CASES` overrides it.
    cases: u32,
}

/// Runs `property` over `strategy`, records the figure, and fails on a failing case.
fn fuzz<S: Strategy>(
    target: &Target,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = std::env::var("LOOPER_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(target.cases);
    let file = format!(
        "{}/proptest-regressions/fuzz/{}.txt",
        env!("CARGO_MANIFEST_DIR"),
        target.name
    );
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(Box::leak(
            file.into_boxed_str(),
        )))),
        ..Config::default()
    };
    let trials = AtomicU64::new(0);
    let result = TestRunner::new(config).run(&strategy, |input| {
        trials.fetch_add(1, Ordering::Relaxed);
        property(input)
    });
    figures::record(
        &format!("fuzz-{}", target.name),
        &Figure {
            part: target.part,
            trials: trials.load(Ordering::Relaxed),
            failures: u64::from(result.is_err()),
            meaning: target.meaning,
            rerun: &format!(
                "LOOPER_FUZZ_CASES=200000 cargo nextest run -E 'test(fuzz::{})'",
                target.name
            ),
        },
    );
    if let Err(e) = result {
        panic!("{}: {e}", target.name);
    }
}

fn fixtures(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

const FORMATS: [StreamFormat; 6] = StreamFormat::ALL;

/// Loading never panics; what loads is valid, selectable, and loads again from its
/// canonical form to the same document.
#[test]
fn backlog_loader() {
    let seeds = vec![
        crate::harness::backlog_with(1).into_bytes(),
        crate::harness::backlog_with(4).into_bytes(),
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal/to-do.json"),
        )
        .unwrap(),
    ];
    let target = Target {
        name: "backlog_loader",
        part: "fuzz: backlog loader",
        meaning: "a mutated backlog is loaded; no panic, and an accepted one is valid, selectable and loads again from its canonical form unchanged",
        cases: 170_000,
    };
    fuzz(&target, mutated(seeds), |Input(raw)| {
        let path = Path::new("to-do.json");
        let loaded = match load::from_bytes(path, raw) {
            Ok(loaded) => loaded,
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        prop_assert!(validate(loaded.doc.value()).is_empty());
        if let Some((task, _)) = select(&loaded.doc.tasks(), 3) {
            prop_assert_ne!(task.status, Status::Done);
        }
        let pretty = loaded.doc.to_pretty_string();
        let again = load::from_bytes(path, pretty.into_bytes())
            .map_err(|e| TestCaseError::fail(format!("the canonical form does not load: {e}")))?;
        prop_assert!(again.is_canonical());
        prop_assert_eq!(again.doc.value(), loaded.doc.value());
        Ok(())
    });
}

/// Extraction never panics; what it finds is the last object however the reply goes on, and
/// every strict report reads the same from it.
#[test]
fn report_extractor() {
    let mut seeds: Vec<Vec<u8>> = fixtures("captures")
        .iter()
        .flat_map(|capture| {
            let text = String::from_utf8_lossy(capture);
            FORMATS.map(|format| {
                looper::agent::parse_lines(format, text.lines())
                    .0
                    .final_text
                    .unwrap_or_default()
            })
        })
        .filter(|text| !text.is_empty())
        .map(String::into_bytes)
        .collect();
    seeds.sort();
    seeds.dedup();
    for report in [
        json!({"task_id": "T3", "status": "done", "summary": "s", "files": ["a.rs"], "blockers": [], "no_change_reason": null, "discovered_tasks": [{"title": "t", "priority": 2, "description": "d", "reason": "r"}]}),
        json!({"status": "reviewed", "summary": "s", "new_tasks": [{"title": "t", "reason": "r"}], "done": false}),
        json!({"source_files": ["SPEC.md"], "tasks": [{"title": "t", "priority": 1, "description": "d", "depends_on": ["T2"], "steps": ["x"], "files": ["f"], "verify": ["true"]}, {"title": "u"}]}),
        json!({"backlog": serde_json::from_str::<Value>(&crate::harness::backlog_with(2)).unwrap()}),
    ] {
        seeds.push(format!("Done.\n```json\n{report:#}\n```\n").into_bytes());
    }
    let target = Target {
        name: "report_extractor",
        part: "fuzz: report extractor",
        meaning: "a mutated final message is searched for its report and read as every kind of report; no panic, the object found is still found after more prose or a later fenced copy of itself, and every kind reads the same from that copy",
        cases: 7_000,
    };
    fuzz(&target, mutated(seeds), |Input(raw)| {
        let text = String::from_utf8_lossy(&raw);
        let found = last_json_object(&text);
        let read = looper::run::read_reports(&text);
        let Some(object) = found else {
            prop_assert!(read.iter().all(Result::is_err));
            return Ok(());
        };
        prop_assert_eq!(
            last_json_object(&format!("{text}\nThanks!")),
            Some(object.clone())
        );
        let reply = format!(
            "{text}\n\nDone.\n```json\n{}\n```\n",
            Value::Object(object.clone())
        );
        prop_assert_eq!(last_json_object(&reply), Some(object));
        prop_assert_eq!(looper::run::read_reports(&reply), read);
        Ok(())
    });
}

/// Every parser takes every mutated capture without panicking, with events bounded by the
/// line, a success only with a final text, and the same outcome after it starts over.
#[test]
fn stream_parsers() {
    let target = Target {
        name: "stream_parsers",
        part: "fuzz: agent stream parsers",
        meaning: "a mutated captured stream is parsed by each of the six parsers; no panic, at most 4 events plus 2 per `{` of a line, no success without a final text, and the same outcome when the parser reads it again",
        cases: 18_000,
    };
    fuzz(&target, mutated(fixtures("captures")), |Input(raw)| {
        let text = String::from_utf8_lossy(&raw);
        let lines: Vec<&str> = text.split('\n').collect();
        for format in FORMATS {
            let mut parser = format.parser();
            let mut outcomes = Vec::new();
            for _ in 0..2 {
                for line in &lines {
                    let events = parser.line(line).len();
                    let bound = 4 + 2 * line.matches('{').count();
                    prop_assert!(events <= bound, "{format:?}: {events} events from {line:?}");
                }
                outcomes.push(parser.finish());
            }
            let outcome = &outcomes[0];
            prop_assert_eq!(outcome, &outcomes[1], "{:?} does not start over", format);
            prop_assert!(outcome.unknown_lines + outcome.garbage_lines <= lines.len());
            if outcome.failure.is_none() {
                prop_assert!(
                    outcome
                        .final_text
                        .as_deref()
                        .is_some_and(|t| !t.trim().is_empty()),
                    "{format:?}: a success without a final text"
                );
            }
        }
        Ok(())
    });
}

/// Spec parsing never panics; a spec that parses prints as a spec that parses back to it,
/// and every role gets a command line for it.
#[test]
fn agent_specs() {
    let seeds = [
        "codex",
        "codex:gpt-5.4@xhigh",
        "claude:opus",
        "claude:glm-4.7@high",
        "gemini:gemini-2.5-pro@low",
        "opencode:anthropic/claude-sonnet-4-5@high",
        "pi@minimal",
        "demo",
        "cmd:./my-agent.sh",
        " cmd:/opt/a b/agent:x@y ",
        "CODEX:Model@MAX",
    ];
    let target = Target {
        name: "agent_specs",
        part: "fuzz: agent spec parser",
        meaning: "a mutated agent spec is parsed; no panic, and a spec that parses prints as text that parses back to the same spec and builds a command line for every role",
        cases: 400_000,
    };
    let seeds = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    fuzz(&target, mutated(seeds), |Input(raw)| {
        let text = String::from_utf8_lossy(&raw);
        let spec = match text.parse::<AgentSpec>() {
            Ok(spec) => spec,
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                return Ok(());
            }
        };
        let printed = spec.to_string();
        prop_assert_eq!(
            printed.parse::<AgentSpec>(),
            Ok(spec.clone()),
            "{}",
            printed
        );
        for role in [Role::Worker, Role::Reviewer, Role::Bootstrap, Role::Repair] {
            for sandbox in [Sandbox::Default, Sandbox::None] {
                let _ = invocation(&Request {
                    spec: &spec,
                    role,
                    sandbox,
                    prompt: "p",
                    cwd: Path::new("/tmp"),
                    program: None,
                });
            }
        }
        Ok(())
    });
}

/// Reading never panics; a torn last line costs at most that line, and every reader (the
/// line parser, the tail reader, the streaming reader) agrees on what it read.
#[test]
fn journal_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let target = Target {
        name: "journal_reader",
        part: "fuzz: journal reader",
        meaning: "a mutated journal, torn at a random byte, is read by every reader and folded into iterations; no panic, the complete lines read as before the tear, and the readers agree",
        cases: 5_000,
    };
    // Format-1 runs of a `cmd:` agent, and a format-2 run of a codex stand-in (its lines
    // held as objects).
    let journals = [fixtures("journal"), fixtures("journal-v2")].concat();
    let strategy = (mutated(journals), any::<Index>());
    fuzz(&target, strategy, |(Input(raw), cut)| {
        let whole = read::parse_lines(&raw);
        let torn = &raw[..cut.index(raw.len() + 1)];
        let complete = torn
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&torn[..0], |end| &torn[..=end]);
        let before = read::parse_lines(complete);
        let after = read::parse_lines(torn);
        prop_assert!(before.records.len() <= whole.records.len());
        prop_assert_eq!(&after.records[..before.records.len()], &before.records[..]);
        prop_assert!(
            after.records.len() + after.skipped <= before.records.len() + before.skipped + 1
        );
        let iterations = read::iterations(&after.records);

        std::fs::write(&path, torn).unwrap();
        let (tail, first) = read::read_tail(&path, usize::MAX).unwrap();
        prop_assert_eq!(&tail.records, &after.records);
        let first_line = torn.split(|&b| b == b'\n').next().unwrap_or_default();
        prop_assert_eq!(&first, &serde_json::from_slice::<Value>(first_line).ok());
        let mut lines = 0;
        let skipped = read::stream(&path, |_| lines += 1).unwrap();
        prop_assert_eq!(lines + skipped, after.records.len() + after.skipped);
        prop_assert!(skipped <= after.skipped);
        // The tail read a line at a time (`status`) reads the whole file as `stream` does.
        let mut folded = Vec::new();
        let mut fold = read::Fold::new(|it| folded.push(it));
        let (tail_first, tail_skipped) =
            read::read_tail_lines(&path, usize::MAX, |line| fold.line(line)).unwrap();
        fold.finish();
        prop_assert_eq!(tail_first, first);
        prop_assert_eq!(tail_skipped, skipped);
        prop_assert_eq!(
            json!(folded),
            json!(read::iterations_in(&path).unwrap()),
            "the tail's iterations differ from the stream's"
        );
        if skipped == after.skipped {
            let streamed = read::iterations_in(&path).unwrap();
            prop_assert_eq!(streamed.len(), iterations.len());
            for (a, b) in streamed.iter().zip(&iterations) {
                let (a, b) = (json!(a), json!(b));
                for (key, value) in a.as_object().unwrap() {
                    prop_assert_eq!(value, &b[key], "iterations differ in `{}`", key);
                }
            }
        }
        Ok(())
    });
}
