//! The journal readers (#5) on big histories:
//!
//! - `looper stats` and `looper audit` over a synthetic 1 GB journal (quick: 128 MB): runs of
//!   iterations, each with 2,000 codex events and two real backlog updates made through the
//!   store (so `audit` replays a real chain of jq programs). Target: at least 300 MB/s, with
//!   peak memory that does not grow with the journal.
//! - `looper status` on a project with 10,000 iterations of history. Target: under 100 ms.
//! - `looper tail -f` latency: from a record's append to its line on tail's stdout. Target:
//!   under 0.5 s.
//!
//! The journals are written with Looper's own library (store and journal writer), so they
//! are what `looper run` writes. Prints Markdown tables; the README shows the latest ones.
//!
//! Run: `cargo bench --bench readers` (add `-- --quick` for a smaller journal).

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use looper::backlog::Status;
use looper::backlog::ops;
use looper::backlog::persist::BacklogStore;
use looper::journal::Journal;
use looper::store::ProjectDir;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_looper");
const TASKS: usize = 100;
const EVENTS: usize = 2000;
const PER_RUN: usize = 100;

fn backlog() -> Value {
    let tasks: Vec<Value> = (1..=TASKS)
        .map(|i| {
            json!({
                "id": format!("T{i}"), "title": format!("Implement part {i} of the parser"),
                "priority": 3, "status": "todo",
                "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"
            })
        })
        .collect();
    json!({"schema_version": 1, "source_files": ["README.md"], "tasks": tasks})
}

/// A project directory and its `LOOPER_HOME` project dir.
fn project(base: &Path) -> (std::path::PathBuf, std::path::PathBuf, ProjectDir) {
    let root = base.join("project");
    let home = base.join("home");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("looper.toml"), "").unwrap();
    let root = root.canonicalize().unwrap();
    let pd = ProjectDir::for_root(&home, &root);
    std::fs::create_dir_all(pd.runs()).unwrap();
    (root, home, pd)
}

/// The agent events of one iteration, as the supervisor journals them.
fn events(iter: usize) -> Vec<Value> {
    (0..EVENTS)
        .map(|i| {
            let (raw, event) = match i % 3 {
                0 => (
                    json!({"type":"item.completed","item":{"id":format!("item_{i}"),"type":"reasoning","text":"**Planning** the next step of the parser"}}),
                    json!({"type": "reasoning", "text": "**Planning** the next step of the parser"}),
                ),
                1 => (
                    json!({"type":"item.completed","item":{"id":format!("item_{i}"),"type":"command_execution","command":"/bin/bash -lc 'cargo test -q'","aggregated_output":"running 12 tests\n............\ntest result: ok\n","exit_code":0,"status":"completed"}}),
                    json!({"type": "command", "cmd": "/bin/bash -lc 'cargo test -q'", "exit_code": 0, "output": "running 12 tests\n............\ntest result: ok\n"}),
                ),
                _ => (
                    json!({"type":"item.completed","item":{"id":format!("item_{i}"),"type":"agent_message","text":format!("Working on iteration {iter}.")}}),
                    json!({"type": "message", "text": format!("Working on iteration {iter}.")}),
                ),
            };
            // Journal format 2: a line that is a JSON object is kept as that object.
            json!({"stream": "stdout", "at_ms": i, "json": raw, "events": [event]})
        })
        .collect()
}

/// Writes runs of full iterations until the journal holds `bytes`; returns the iterations.
fn big_history(root: &Path, pd: &ProjectDir, bytes: u64) -> usize {
    let store = BacklogStore::new(&root.join("to-do.json"), &pd.state());
    let cmd = pd.command_journal();
    store.create(backlog(), false, &cmd).unwrap();
    let mut written = 0;
    let mut iterations = 0;
    let mut run = 0;
    while written < bytes {
        run += 1;
        let id = format!("20261130T{run:06}.000Z-bench");
        let path = pd.runs().join(format!("{id}.jsonl"));
        let journal = Journal::new(path.clone(), id);
        journal.set_step(0, "run");
        rec(&journal, "run.start", &json!({}));
        for i in 1..=PER_RUN {
            iterations += 1;
            let task = format!("T{}", (iterations - 1) % TASKS + 1);
            let label = format!("iter-{i}");
            journal.set_step(u32::try_from(i).unwrap(), &label);
            rec(
                &journal,
                "iteration.start",
                &json!({"task": task, "agent": "codex:gpt-5.4", "reason": "next"}),
            );
            store
                .update(&ops::set_status(&task, Status::Doing), &journal)
                .unwrap();
            rec(
                &journal,
                "agent.spawn",
                &json!({"argv": ["codex", "exec", "--json"], "role": "worker"}),
            );
            for chunk in events(iterations).chunks(256) {
                journal.append_all("agent.event", chunk).unwrap();
            }
            rec(
                &journal,
                "agent.exit",
                &json!({"duration_ms": 30_000 + i, "usage": {"input": 12_000, "cached": 4_000, "output": 900}, "class": {"class": "ok"}}),
            );
            rec(
                &journal,
                "report",
                &json!({"task": task, "valid": true, "report": {"task_id": task, "status": "done", "summary": "did it"}}),
            );
            store
                .update(&ops::set_status(&task, Status::Todo), &journal)
                .unwrap();
            rec(
                &journal,
                "iteration.end",
                &json!({"task": task, "outcome": "done", "changed": ["src/lib.rs"]}),
            );
        }
        rec(
            &journal,
            "run.end",
            &json!({"reason": "bench", "exit_code": 3}),
        );
        written += std::fs::metadata(&path).unwrap().len();
    }
    iterations
}

/// Many small iterations: what `status` must not read in full.
fn long_history(pd: &ProjectDir, iterations: usize) {
    let runs = iterations / PER_RUN;
    for run in 1..=runs {
        let id = format!("20261130T{run:06}.000Z-hist");
        let journal = Journal::new(pd.runs().join(format!("{id}.jsonl")), id);
        journal.set_step(0, "run");
        rec(&journal, "run.start", &json!({}));
        for i in 1..=PER_RUN {
            let label = format!("iter-{i}");
            journal.set_step(u32::try_from(i).unwrap(), &label);
            rec(
                &journal,
                "iteration.start",
                &json!({"task": "T1", "agent": "codex", "reason": "next"}),
            );
            for chunk in events(i)[..30].chunks(10) {
                journal.append_all("agent.event", chunk).unwrap();
            }
            rec(
                &journal,
                "agent.exit",
                &json!({"duration_ms": 1000, "usage": {"input": 100, "cached": 0, "output": 10}, "class": {"class": "ok"}}),
            );
            rec(
                &journal,
                "iteration.end",
                &json!({"task": "T1", "outcome": "done"}),
            );
        }
        rec(
            &journal,
            "run.end",
            &json!({"reason": "bench", "exit_code": 3}),
        );
    }
}

/// Appends one record.
fn rec(journal: &Journal, kind: &str, v: &Value) {
    journal
        .append(kind, v.as_object().unwrap().clone())
        .unwrap();
}

/// Peak resident memory of a running child, polled from `/proc` (kB).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Runs `looper args` in the project; returns its wall time and peak RSS (MiB).
fn timed(root: &Path, home: &Path, args: &[&str]) -> (Duration, f64) {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(root)
        .env("LOOPER_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "a figure")]
    (elapsed, peak as f64 / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// From a record's append to `tail -f` printing it, `n` times.
fn tail_latency(root: &Path, home: &Path, pd: &ProjectDir, n: usize) -> Vec<Duration> {
    let id = "20261130T999999.000Z-tail".to_owned();
    let journal = Journal::new(pd.runs().join(format!("{id}.jsonl")), id);
    journal.set_step(1, "iter-1");
    rec(&journal, "run.start", &json!({}));
    let mut child = Command::new(BIN)
        .args(["tail", "-f"])
        .current_dir(root)
        .env("LOOPER_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for tail to show the run start.
    lines.next().unwrap().unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7)));
        let marker = format!("latency probe {i}");
        let start = Instant::now();
        journal
            .append_all("agent.event", &[json!({"stream": "stdout", "raw": "", "events": [{"type": "message", "text": marker}]})])
            .unwrap();
        for line in lines.by_ref() {
            if line.unwrap().contains(&marker) {
                break;
            }
        }
        out.push(start.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let target: u64 = if quick { 128 << 20 } else { 1 << 30 };
    let tmp = tempfile::tempdir().unwrap();
    let mut base = tmp.path().to_path_buf();
    // `LOOPER_BENCH_KEEP=1` keeps the journals for profiling, and says where.
    if std::env::var_os("LOOPER_BENCH_KEEP").is_some() {
        base = tmp.keep();
        eprintln!("keeping the journals in {}", base.display());
    }

    let (root, home, pd) = project(&base.join("big"));
    let start = Instant::now();
    let iterations = big_history(&root, &pd, target);
    let bytes = dir_bytes(&pd.runs());
    eprintln!(
        "wrote {:.0} MB of journal ({iterations} iterations) in {:.1} s",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    println!("| reader | journal | iterations | time | throughput | peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|");
    for args in [&["stats"][..], &["audit"][..]] {
        let (t, rss) = timed(&root, &home, args);
        println!(
            "| `looper {}` | {:.0} MB | {iterations} | {:.2} s | {:.0} MB/s | {rss:.1} MiB |",
            args.join(" "),
            bytes as f64 / 1e6,
            t.as_secs_f64(),
            bytes as f64 / 1e6 / t.as_secs_f64()
        );
    }
    // One run's journal, printed whole.
    let first_run = "20261130T000001.000Z-bench";
    let run_bytes = std::fs::metadata(pd.runs().join(format!("{first_run}.jsonl")))
        .unwrap()
        .len();
    let (t, rss) = timed(&root, &home, &["replay", first_run, "--json"]);
    println!(
        "| `looper replay RUN --json` | {:.0} MB | {PER_RUN} | {:.2} s | {:.0} MB/s | {rss:.1} MiB |",
        run_bytes as f64 / 1e6,
        t.as_secs_f64(),
        run_bytes as f64 / 1e6 / t.as_secs_f64()
    );

    let (root, home, pd) = project(&base.join("long"));
    let store = BacklogStore::new(&root.join("to-do.json"), &pd.state());
    store
        .create(backlog(), false, &pd.command_journal())
        .unwrap();
    long_history(&pd, 10_000);
    let bytes = dir_bytes(&pd.runs());
    let mut times: Vec<Duration> = (0..11)
        .map(|_| timed(&root, &home, &["status"]).0)
        .collect();
    times.sort();
    println!(
        "| `looper status` (median of 11) | {:.0} MB | 10000 | {:.1} ms | - | - |",
        bytes as f64 / 1e6,
        times[5].as_secs_f64() * 1000.0
    );

    let mut lat = tail_latency(&root, &home, &pd, 20);
    lat.sort();
    println!();
    println!("| `looper tail -f` latency, append to line on stdout | median | max |");
    println!("|---|---:|---:|");
    println!(
        "| 20 records, polled every 0.2 s | {:.0} ms | {:.0} ms |",
        lat[lat.len() / 2].as_secs_f64() * 1000.0,
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
}
