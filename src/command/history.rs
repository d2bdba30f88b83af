//! Commands that read the journal: `log` (one line per iteration across runs) and `show`
//! (everything about one iteration, or every iteration of a task). Both work while a run is
//! appending: a torn last line is skipped.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use crate::journal::read::{self, Iteration};
use crate::project::Project;

/// Every iteration of the project's runs, oldest first.
fn all_iterations(project: &Project) -> anyhow::Result<Vec<Iteration>> {
    let mut out = Vec::new();
    for file in read::run_files(&project.home.runs()) {
        out.extend(read::iterations(&read::read(&file)?.records));
    }
    Ok(out)
}

pub(super) fn log(
    project: &Project,
    task: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let its: Vec<Iteration> = all_iterations(project)?
        .into_iter()
        .filter(|it| task.is_none_or(|t| it.task == t))
        .collect();
    if as_json {
        super::inspect::print_json(&serde_json::to_value(&its)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if its.is_empty() {
        match task {
            Some(t) => println!("no iteration has worked on {t} yet"),
            None => println!("no iteration yet: `looper run` starts one"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!(
        "{:<20}  {:<25}  {:<8}  {:<10}  {:<18}  {:<11}  {:>7}  {:>7}  {:>8}  COMMITS\n",
        "WHEN (UTC)", "RUN", "STEP", "TASK", "AGENT", "OUTCOME", "TIME", "TOKENS", "COST"
    );
    for it in &its {
        let _ = writeln!(
            out,
            "{:<20}  {:<25}  {:<8}  {:<10}  {:<18}  {:<11}  {:>7}  {:>7}  {:>8}  {}",
            when(&it.started),
            it.run,
            it.label,
            it.task,
            it.agent,
            it.outcome,
            it.duration_ms.map_or_else(|| "-".into(), seconds),
            tokens(it.tokens.input + it.tokens.output),
            it.cost_usd
                .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
            it.commits
                .iter()
                .map(|c| c.chars().take(8).collect::<String>())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    emit(&out)
}

pub(super) fn show(
    project: &Project,
    target: &str,
    run: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let all = all_iterations(project)?;
    let number = target
        .strip_prefix("iter-")
        .unwrap_or(target)
        .parse::<u64>()
        .ok();
    let picked: Vec<&Iteration> = match number {
        Some(n) => {
            // In the named run, or the latest run that has it.
            let in_run: Vec<&Iteration> = all
                .iter()
                .filter(|it| it.iter == n && run.is_none_or(|r| it.run == r))
                .collect();
            in_run.last().map(|it| vec![*it]).unwrap_or_default()
        }
        None => all
            .iter()
            .filter(|it| it.task == target && run.is_none_or(|r| it.run == r))
            .collect(),
    };
    if picked.is_empty() {
        let what = match (number, run) {
            (Some(n), Some(r)) => format!("no iteration iter-{n} in run {r}"),
            (Some(n), None) => format!("no run has an iteration iter-{n}"),
            (None, _) => format!("no iteration has worked on a task {target}"),
        };
        anyhow::bail!("{what}: `looper log` lists the iterations");
    }
    if as_json {
        super::inspect::print_json(&serde_json::to_value(&picked)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for (i, it) in picked.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        describe(project, it, &mut out);
    }
    emit(&out)
}

/// Everything about one iteration, as text.
fn describe(project: &Project, it: &Iteration, out: &mut String) {
    let _ = writeln!(out, "{} of run {}: task {}", it.label, it.run, it.task);
    let _ = writeln!(out, "  agent     {} (picked: {})", it.agent, it.reason);
    if let Some(argv) = it.argv.as_ref().and_then(Value::as_str) {
        let _ = writeln!(out, "  argv      {argv}");
    }
    let _ = writeln!(
        out,
        "  time      started {}, took {}{}",
        when(&it.started),
        it.duration_ms.map_or_else(|| "-".into(), seconds),
        it.agent_ms
            .map(|ms| format!(" (agent {})", seconds(ms)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  outcome   {}{}{}",
        it.outcome,
        it.class
            .as_ref()
            .map(|c| format!(" (agent run: {c})"))
            .unwrap_or_default(),
        it.note
            .as_ref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  tokens    in {} (cached {}), out {}, cost {}",
        it.tokens.input,
        it.tokens.cached,
        it.tokens.output,
        it.cost_usd
            .map_or_else(|| "unknown".into(), |c| format!("${c:.4}"))
    );
    let _ = writeln!(out, "  commands  {}", it.commands.len());
    for c in &it.commands {
        let code = c.exit_code.map_or_else(|| "?".into(), |c| c.to_string());
        let _ = writeln!(out, "    [exit {code:>3}] {}", one_line(&c.command, 110));
    }
    let _ = writeln!(
        out,
        "  changed   {}",
        if it.changed.is_empty() {
            "nothing".into()
        } else {
            it.changed.join(", ")
        }
    );
    for commit in &it.commits {
        let _ = writeln!(out, "  commit    {commit}");
        if let Ok(stat) = git_stat(project, commit) {
            for line in stat.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    describe_checks(it, out);
}

/// The gates, the report, the backlog updates and the prompt of an iteration, as text.
fn describe_checks(it: &Iteration, out: &mut String) {
    for gate in &it.gates {
        let r = &gate["result"];
        let _ = writeln!(
            out,
            "  gate      {} `{}`: {} (exit {})",
            gate["phase"].as_str().unwrap_or("?"),
            r["command"].as_str().unwrap_or("?"),
            if r["passed"].as_bool() == Some(true) {
                "passed"
            } else {
                "FAILED"
            },
            r["exit_code"]
        );
    }
    match &it.report {
        Some(r) if r["valid"] == true => {
            let _ = writeln!(out, "  report    {}", r["report"]);
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "  report    invalid: {}",
                r["problem"].as_str().unwrap_or("?")
            );
        }
        None => {
            let _ = writeln!(out, "  report    none");
        }
    }
    for u in &it.backlog_updates {
        let _ = writeln!(
            out,
            "  backlog   {} {} → {}: {} with {}",
            u["source"].as_str().unwrap_or("?"),
            short(u["before_sha256"].as_str()),
            short(u["after_sha256"].as_str()),
            one_line(u["program"].as_str().unwrap_or(""), 60),
            u["args"]
        );
    }
    if let Some(p) = &it.prompt {
        let text = p["text"].as_str().unwrap_or("");
        let _ = writeln!(
            out,
            "  prompt    sha256 {}, {} lines:",
            p["sha256"].as_str().unwrap_or("?"),
            text.lines().count()
        );
        for line in text.lines() {
            let _ = writeln!(out, "    | {line}");
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error worth a message.
fn emit(text: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `git show --stat` of a commit, when the project is a git work tree.
fn git_stat(project: &Project, commit: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&project.root)
        .args(["show", "--stat", "--format=%h %s", commit])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()?;
    anyhow::ensure!(out.status.success(), "git show failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `2026-11-30 14:32:15` from an RFC 3339 UTC timestamp.
fn when(ts: &str) -> String {
    ts.get(..19).unwrap_or(ts).replace('T', " ")
}

fn seconds(ms: u64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "durations are far below 2^52 ms"
    )]
    let s = ms as f64 / 1000.0;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn tokens(n: u64) -> String {
    match n {
        0 => "-".into(),
        n if n < 10_000 => n.to_string(),
        n if n < 10_000_000 => format!("{}k", n / 1000),
        n => format!("{}M", n / 1_000_000),
    }
}

fn short(sha: Option<&str>) -> String {
    sha.map_or_else(|| "?".into(), |s| s.chars().take(8).collect())
}

/// The text on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
