//! Reading journals back: a project's run files in order, their records (a torn or corrupt
//! line is skipped and counted, never fatal: a run may be appending right now), and the
//! iterations they describe, folded into one summary each.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// The records of one journal file, and how many lines could not be read (a torn last line
/// while the run is writing, or damage).
#[derive(Debug, Default)]
pub struct Records {
    pub records: Vec<Value>,
    pub skipped: usize,
}

/// Reads a journal file; a missing file has no records.
pub fn read(path: &Path) -> anyhow::Result<Records> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    Ok(parse_lines(&bytes))
}

/// The records in journal bytes; blank lines are ignored, unreadable ones counted.
pub fn parse_lines(bytes: &[u8]) -> Records {
    let mut out = Records::default();
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => out.records.push(v),
            _ => out.skipped += 1,
        }
    }
    out
}

/// The end of a journal file holding at least `starts` iterations (or the whole file, when it
/// has fewer), plus its first record: what `status` needs, without reading a long run's
/// whole journal.
pub fn read_tail(path: &Path, starts: usize) -> anyhow::Result<(Records, Option<Value>)> {
    use std::io::{BufRead as _, Read as _, Seek as _};
    const MARK: &[u8] = b"\"type\":\"iteration.start\"";
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Records::default(), None));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    let len = file.metadata()?.len();
    let mut first_line = Vec::new();
    std::io::BufReader::new(&file).read_until(b'\n', &mut first_line)?;
    let first = serde_json::from_slice::<Value>(&first_line).ok();
    let mut window: u64 = 1 << 20;
    loop {
        let start = len.saturating_sub(window);
        file.seek(std::io::SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(len - start).read_to_end(&mut bytes)?;
        let found = bytes.windows(MARK.len()).filter(|w| *w == MARK).count();
        if found >= starts || start == 0 {
            // Drop the partial line a window starting mid-file begins with.
            let from = if start == 0 {
                0
            } else {
                bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| p + 1)
            };
            return Ok((parse_lines(&bytes[from..]), first));
        }
        window *= 4;
    }
}

/// The run journals (not the daily command journals) in `runs_dir`, oldest first: run ids
/// begin with their start time, so names sort in time order.
pub fn run_files(runs_dir: &Path) -> Vec<PathBuf> {
    journal_files(runs_dir)
        .into_iter()
        .filter(|p| {
            !p.file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with("-cmd"))
        })
        .collect()
}

/// The journal of run `id` (or of the one run whose id starts with `id`).
pub fn find_run(runs_dir: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let files = run_files(runs_dir);
    let stem = |f: &PathBuf| {
        f.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(f) = files.iter().find(|f| stem(f) == id) {
        return Ok(f.clone());
    }
    let matching: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !id.is_empty() && stem(f).starts_with(id))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!(
            "no run {id} in {}: `looper log` lists the runs",
            runs_dir.display()
        ),
        many => anyhow::bail!(
            "{} runs start with {id} ({}): give more of the id",
            many.len(),
            many.iter().map(|f| stem(f)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Every journal in `runs_dir`: the runs and the daily command journals, sorted by name.
pub fn journal_files(runs_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Tokens an agent step used.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Tokens {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
}

/// A command the agent ran, as its CLI reported it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentCommand {
    pub command: String,
    pub exit_code: Option<i64>,
}

/// One iteration, folded from its records.
#[derive(Debug, Clone, Serialize)]
pub struct Iteration {
    pub run: String,
    pub iter: u64,
    pub label: String,
    pub task: String,
    pub agent: String,
    /// Why this task was picked (`next`, `resume`, ...).
    pub reason: String,
    pub started: String,
    pub ended: Option<String>,
    /// `done`, `attempt`, `interrupted`, or `unfinished` (still running, or the run died).
    pub outcome: String,
    pub note: Option<String>,
    pub duration_ms: Option<u64>,
    pub agent_ms: Option<u64>,
    /// How the agent run ended (`ok`, `timeout`, `rate_limited`, ...).
    pub class: Option<String>,
    pub tokens: Tokens,
    pub cost_usd: Option<f64>,
    pub commands: Vec<AgentCommand>,
    pub changed: Vec<String>,
    pub commits: Vec<String>,
    pub gates: Vec<Value>,
    pub report: Option<Value>,
    pub backlog_updates: Vec<Value>,
    pub prompt: Option<Value>,
    pub argv: Option<Value>,
    /// The last message file of the worker step.
    pub last_message: Option<String>,
    /// What the agent did last (its last command or message), while it runs.
    pub last_action: Option<String>,
    /// The backlog's tasks by status when the iteration ended.
    pub backlog: Option<crate::backlog::doc::Counts>,
}

/// The iterations in the records of one run, in order.
pub fn iterations(records: &[Value]) -> Vec<Iteration> {
    let mut out: Vec<Iteration> = Vec::new();
    for r in records {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "iteration.start" {
            out.push(start(r));
            continue;
        }
        let Some(it) = out.last_mut() else { continue };
        if r.get("label").and_then(Value::as_str) != Some(it.label.as_str())
            || r.get("run").and_then(Value::as_str) != Some(it.run.as_str())
        {
            continue;
        }
        take(it, kind, r);
    }
    out
}

fn text(r: &Value, key: &str) -> String {
    r.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn start(r: &Value) -> Iteration {
    Iteration {
        run: text(r, "run"),
        iter: r.get("iter").and_then(Value::as_u64).unwrap_or(0),
        label: text(r, "label"),
        task: text(r, "task"),
        agent: text(r, "agent"),
        reason: text(r, "reason"),
        started: text(r, "ts"),
        ended: None,
        outcome: "unfinished".into(),
        note: None,
        duration_ms: None,
        agent_ms: None,
        class: None,
        tokens: Tokens::default(),
        cost_usd: None,
        commands: Vec::new(),
        changed: Vec::new(),
        commits: Vec::new(),
        gates: Vec::new(),
        report: None,
        backlog_updates: Vec::new(),
        prompt: None,
        argv: None,
        last_message: None,
        last_action: None,
        backlog: None,
    }
}

/// Folds one normalized agent event in.
fn event_in(it: &mut Iteration, event: &Value) {
    let u = |k: &str| event.get(k).and_then(Value::as_u64).unwrap_or(0);
    match event.get("type").and_then(Value::as_str) {
        Some("command") => {
            let command = AgentCommand {
                command: text(event, "cmd"),
                exit_code: event.get("exit_code").and_then(Value::as_i64),
            };
            it.last_action = Some(format!(
                "ran `{}` (exit {})",
                command.command,
                command
                    .exit_code
                    .map_or_else(|| "?".into(), |c| c.to_string())
            ));
            it.commands.push(command);
        }
        Some("message") => it.last_action = Some(format!("said: {}", text(event, "text"))),
        // While the agent runs, its latest usage report stands for the total.
        Some("usage") if it.agent_ms.is_none() => {
            it.tokens = Tokens {
                input: u("input"),
                cached: u("cached"),
                output: u("output"),
            };
        }
        _ => {}
    }
}

/// Folds one record of the iteration in.
fn take(it: &mut Iteration, kind: &str, r: &Value) {
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    match kind {
        "prompt" => it.prompt = Some(r.clone()),
        "agent.spawn" => it.argv = r.get("argv").cloned(),
        "agent.event" => {
            for event in r
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                event_in(it, event);
            }
        }
        "agent.exit" => {
            it.agent_ms = r.get("duration_ms").and_then(Value::as_u64);
            it.class = r
                .pointer("/class/class")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(usage) = r.get("usage") {
                it.tokens = Tokens::default();
                it.tokens.input += u(usage, "input");
                it.tokens.cached += u(usage, "cached");
                it.tokens.output += u(usage, "output");
                if let Some(cost) = usage.get("cost_usd").and_then(Value::as_f64) {
                    *it.cost_usd.get_or_insert(0.0) += cost;
                }
            }
            it.last_message = r
                .get("last_message")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        "git" if r.get("phase").and_then(Value::as_str) == Some("commit") => {
            if let Some(commit) = r.get("commit").and_then(Value::as_str) {
                it.commits.push(commit.to_owned());
            }
        }
        "gate" => it.gates.push(r.clone()),
        "report" => it.report = Some(r.clone()),
        "backlog.update" => it.backlog_updates.push(r.clone()),
        "iteration.end" => {
            it.outcome = text(r, "outcome");
            it.note = r.get("note").and_then(Value::as_str).map(str::to_owned);
            it.changed = r
                .get("changed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            it.ended = Some(text(r, "ts"));
            it.backlog = r
                .get("backlog")
                .and_then(|b| serde_json::from_value(b.clone()).ok());
            it.duration_ms = crate::agent::parse::json::millis_between(&it.started, &text(r, "ts"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn torn_and_corrupt_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(
            &path,
            "{\"seq\":1}\nnot json\n[1]\n\n{\"seq\":2}\n{\"seq\":3,\"ty",
        )
        .unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.skipped, 3);
        assert_eq!(read.records[1]["seq"], 2);
        assert_eq!(
            super::read(&dir.path().join("missing.jsonl"))
                .unwrap()
                .records
                .len(),
            0
        );
    }

    #[test]
    fn the_tail_holds_the_last_iterations_and_the_first_record() {
        use std::fmt::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut text = String::from("{\"type\":\"run.start\",\"seq\":0}\n");
        let filler = "x".repeat(2000);
        for i in 1..=3000 {
            let _ = write!(
                text,
                "{{\"type\":\"iteration.start\",\"seq\":{i}}}\n{{\"type\":\"agent.event\",\"raw\":\"{filler}\"}}\n"
            );
        }
        std::fs::write(&path, &text).unwrap();
        let (tail, first) = read_tail(&path, 6).unwrap();
        assert_eq!(first.unwrap()["type"], "run.start");
        let starts: Vec<u64> = tail
            .records
            .iter()
            .filter(|r| r["type"] == "iteration.start")
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert!(starts.len() >= 6 && starts.len() < 3000, "{}", starts.len());
        assert_eq!(*starts.last().unwrap(), 3000);
        assert_eq!(tail.skipped, 0);
        // A short file is read whole.
        let (whole, _) = read_tail(&path, 100_000).unwrap();
        assert_eq!(whole.records.len(), 6001);
    }

    #[test]
    fn iterations_fold_their_records() {
        let rec = |kind: &str, label: &str, ts: &str, extra: Value| {
            let mut r = json!({"run": "R", "type": kind, "label": label, "iter": 1, "ts": ts});
            r.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            r
        };
        let records = vec![
            rec("run.start", "run", "2026-11-30T10:00:00Z", json!({})),
            rec(
                "iteration.start",
                "iter-1",
                "2026-11-30T10:00:01Z",
                json!({"task": "T1", "agent": "codex", "reason": "next"}),
            ),
            rec(
                "agent.event",
                "iter-1",
                "2026-11-30T10:00:02Z",
                json!({"events": [{"type": "command", "cmd": "cargo test", "exit_code": 101}, {"type": "message", "text": "hi"}]}),
            ),
            rec(
                "agent.exit",
                "iter-1",
                "2026-11-30T10:00:03Z",
                json!({"duration_ms": 1500, "class": {"class": "ok"}, "usage": {"input": 10, "cached": 2, "output": 3, "cost_usd": 0.5}}),
            ),
            rec(
                "git",
                "iter-1",
                "2026-11-30T10:00:04Z",
                json!({"phase": "commit", "commit": "abc123"}),
            ),
            rec(
                "iteration.end",
                "iter-1",
                "2026-11-30T10:00:05.5Z",
                json!({"task": "T1", "outcome": "done", "changed": ["a.rs"]}),
            ),
            rec(
                "iteration.start",
                "iter-2",
                "2026-11-30T10:00:06Z",
                json!({"task": "T2", "agent": "claude", "reason": "next"}),
            ),
        ];
        let its = iterations(&records);
        assert_eq!(its.len(), 2);
        let one = &its[0];
        assert_eq!((one.task.as_str(), one.outcome.as_str()), ("T1", "done"));
        assert_eq!(one.duration_ms, Some(4500));
        assert_eq!(one.commands[0].command, "cargo test");
        assert_eq!(one.commands[0].exit_code, Some(101));
        assert_eq!(one.commands.len(), 1);
        assert_eq!(
            one.tokens,
            Tokens {
                input: 10,
                cached: 2,
                output: 3
            }
        );
        assert_eq!(one.cost_usd, Some(0.5));
        assert_eq!(one.commits, ["abc123"]);
        assert_eq!(one.changed, ["a.rs"]);
        assert_eq!(one.class.as_deref(), Some("ok"));
        assert_eq!(its[1].outcome, "unfinished");
    }
}
