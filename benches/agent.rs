//! Agent-layer benchmarks: stream-parser throughput per CLI format (lines/s, from the captured
//! streams repeated), and peak memory of the supervisor while it drains 1 GB of agent output.
//! Prints a Markdown table.
//!
//! Run: `cargo bench --bench agent` (add `-- --quick` for a smaller workload).

#![expect(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::time::Instant;

use looper::agent::{StreamFormat, parse_lines};

const CAPTURES: &[(&str, StreamFormat, &str)] = &[
    (
        "codex",
        StreamFormat::Codex,
        include_str!("../tests/fixtures/captures/codex-full.jsonl"),
    ),
    (
        "claude",
        StreamFormat::Claude,
        include_str!("../tests/fixtures/captures/claude-full.jsonl"),
    ),
    (
        "gemini",
        StreamFormat::Gemini,
        include_str!("../tests/fixtures/captures/gemini-e2e.jsonl"),
    ),
    (
        "opencode",
        StreamFormat::Opencode,
        include_str!("../tests/fixtures/captures/opencode-e2e.jsonl"),
    ),
    (
        "pi",
        StreamFormat::Pi,
        include_str!("../tests/fixtures/captures/pi-e2e.jsonl"),
    ),
];

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The 2,000 codex lines of `benches/run.rs`'s fake agent: commands, reasoning, messages.
fn run_bench_lines() -> Vec<String> {
    (0..2000)
        .map(|i| {
            let item = match i % 3 {
                0 => format!(
                    r#"{{"id":"item_{i}","type":"reasoning","text":"**Planning** the next step of the parser"}}"#
                ),
                1 => format!(
                    r#"{{"id":"item_{i}","type":"command_execution","command":"/bin/bash -lc 'cargo test -q'","aggregated_output":"running 12 tests\n............\ntest result: ok\n","exit_code":0,"status":"completed"}}"#
                ),
                _ => format!(r#"{{"id":"item_{i}","type":"agent_message","text":"Working on it."}}"#),
            };
            format!(r#"{{"type":"item.completed","item":{item}}}"#)
        })
        .collect()
}

/// Nanoseconds per line for the run benchmark's codex stream, best of a few rounds.
fn ns_per_run_bench_line(quick: bool) -> f64 {
    let lines = run_bench_lines();
    let reps = if quick { 50 } else { 500 };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut events = 0;
        for _ in 0..reps {
            let mut parser = StreamFormat::Codex.parser();
            for line in &lines {
                events += parser.line(line).len();
            }
            events += usize::from(parser.finish().final_text.is_some());
        }
        let ns = start.elapsed().as_nanos() as f64 / (reps * lines.len()) as f64;
        assert!(events >= reps * lines.len());
        best = best.min(ns);
    }
    best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "codex line of the run benchmark: {:.0} ns/line (best of 5)",
        ns_per_run_bench_line(quick)
    );
    println!();
    let target_lines = if quick { 200_000 } else { 2_000_000 };
    println!("| format | lines parsed | bytes/line | lines/s | MB/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, format, capture) in CAPTURES {
        let lines: Vec<&str> = capture.lines().filter(|l| !l.is_empty()).collect();
        let reps = target_lines / lines.len() + 1;
        let bytes: usize = lines.iter().map(|l| l.len()).sum::<usize>() * reps;
        let start = Instant::now();
        let mut events = 0;
        for _ in 0..reps {
            // One parser per replayed stream, as in real runs.
            events += parse_lines(*format, lines.iter().copied()).1;
        }
        let secs = start.elapsed().as_secs_f64();
        let n = lines.len() * reps;
        assert!(events > 0);
        println!(
            "| {name} | {n} | {} | {:.0} | {:.0} |",
            bytes / n,
            n as f64 / secs,
            bytes as f64 / secs / 1e6
        );
    }

    // Supervisor: drain 1 GB (quick: 256 MB) of output in 1000-byte lines and in one line.
    let size: u64 = if quick { 256 << 20 } else { 1 << 30 };
    let cwd = std::env::temp_dir();
    println!();
    println!("| supervisor drain | bytes | time | peak RSS of the benchmark process |");
    println!("|---|---:|---:|---:|");
    for (label, script) in [
        (
            "1000-byte lines",
            format!("head -c {size} /dev/zero | tr '\\0' 'x' | fold -w 1000"),
        ),
        (
            "one line",
            format!("head -c {size} /dev/zero | tr '\\0' 'x'"),
        ),
    ] {
        let mut spec = looper::agent::supervise::Spec::new("/bin/sh", &cwd);
        spec.args = vec!["-c".into(), script.into()];
        let mut parser = StreamFormat::Cmd.parser();
        let start = Instant::now();
        let result = looper::agent::supervise::run(&spec, parser.as_mut(), &mut |_| {}).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(result.exit.code, Some(0), "{label}");
        println!(
            "| {label} | {size} | {secs:.2} s | {:.1} MiB |",
            vm_hwm_kib() as f64 / 1024.0
        );
    }
}
