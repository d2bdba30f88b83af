//! Backlog benchmarks: `ls`, `validate`, one `update` and one `add` on backlogs of 1k, 10k and
//! 100k tasks, timed end to end (process start included) with the release binary. Prints a
//! Markdown table; the README shows the latest one.
//!
//! Run: `cargo bench --bench backlog` (add `-- --quick` for fewer repetitions).

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_looper");

fn backlog(n: usize) -> String {
    let tasks: Vec<Value> = (1..=n)
        .map(|i| {
            let status = if i == 1 {
                "doing"
            } else if i % 7 == 0 {
                "blocked"
            } else if i % 2 == 0 {
                "done"
            } else {
                "todo"
            };
            let mut t = json!({
                "id": format!("T{i}"),
                "title": format!("Implement part {i} of the parser and its tests"),
                "priority": 1 + i % 5,
                "status": status,
                "description": "Read the spec section, write the code, add unit tests, run the gates.",
                "tags": ["parser"],
                "created_at": "2026-11-24T10:00:00Z",
                "updated_at": "2026-11-24T10:00:00Z"
            });
            if i > 1 {
                t["depends_on"] = json!([format!("T{}", i - 1)]);
            }
            t
        })
        .collect();
    let mut s = serde_json::to_string_pretty(
        &json!({"schema_version": 1, "source_files": ["README.md"], "tasks": tasks}),
    )
    .unwrap();
    s.push('\n');
    s
}

fn run(dir: &Path, home: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let status = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("LOOPER_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let elapsed = t.elapsed();
    assert!(status.success(), "looper {args:?} failed");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 3 } else { 9 };
    println!(
        "| tasks | file size | `ls` | `ls --json` | `validate` | `update` (one field) | `add` |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1_000, 10_000, 100_000] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, home) = (tmp.path().join("p"), tmp.path().join("home"));
        std::fs::create_dir_all(&dir).unwrap();
        let text = backlog(n);
        std::fs::write(dir.join("to-do.json"), &text).unwrap();
        // The first write records the snapshot; measure steady state after it.
        run(&dir, &home, &["fmt"]);
        let time = |args: &[&str]| median((0..reps).map(|_| run(&dir, &home, args)).collect());
        let ls = time(&["ls"]);
        let ls_json = time(&["ls", "--json"]);
        let validate = time(&["validate"]);
        let update = time(&[
            "update",
            "--arg",
            "id",
            "T3",
            "(.tasks[] | select(.id == $id) | .priority) |= (. % 5 + 1)",
        ]);
        let add = median(
            (0..reps.min(5))
                .map(|i| run(&dir, &home, &["add", &format!("bench task {i}")]))
                .collect(),
        );
        println!(
            "| {n} | {:.1} MB | {} | {} | {} | {} | {} |",
            text.len() as f64 / 1e6,
            ms(ls),
            ms(ls_json),
            ms(validate),
            ms(update),
            ms(add)
        );
    }
}
