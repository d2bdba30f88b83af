//! Commands that read the journal: `log` (one line per iteration across runs) and `show`
//! (everything about one iteration, or every iteration of a task). Both work while a run is
//! appending: a torn last line is skipped.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::Value;

pub(super) use crate::journal::human::{one_line, readable};
use crate::journal::read::{self, Iteration};
use crate::project::Project;
pub(super) use crate::term::seconds;

/// Every iteration of the project's runs, oldest first.
fn all_iterations(project: &Project) -> anyhow::Result<Vec<Iteration>> {
    let mut out = Vec::new();
    let prices = super::prices(project);
    for file in read::run_files(&project.home.runs()) {
        out.extend(read::iterations_in(&file)?.into_iter().map(|mut it| {
            it.estimate(&prices);
            it
        }));
    }
    Ok(out)
}

pub(super) fn log(
    project: &Project,
    task: Option<&str>,
    since: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let since = since.map(parse_since).transpose()?;
    let its: Vec<Iteration> = all_iterations(project)?
        .into_iter()
        .filter(|it| task.is_none_or(|t| it.task == t))
        .filter(|it| {
            since.is_none_or(|s| it.started.parse::<jiff::Timestamp>().is_ok_and(|t| t >= s))
        })
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
    let color = crate::term::stdout_color();
    // A terminal narrower than the whole table gets the runs as headings instead of a column.
    let by_run =
        std::io::IsTerminal::is_terminal(&std::io::stdout()) && crate::term::width() < LOG_WIDTH;
    let run_col = |run: &str| {
        if by_run {
            String::new()
        } else {
            format!("{run:<25}  ")
        }
    };
    let header = format!(
        "{:<20}  {}{:<8}  {:<10}  {:<18}  {:<11}  {:>7}  {:>7}  {:>8}  COMMITS",
        "WHEN (UTC)",
        run_col("RUN"),
        "STEP",
        "TASK",
        "AGENT",
        "OUTCOME",
        "TIME",
        "TOKENS",
        "COST"
    );
    let mut out = crate::term::paint(color, "1", &header) + "\n";
    let mut last_run = "";
    for it in &its {
        if by_run && it.run != last_run {
            let _ = writeln!(
                out,
                "{}",
                crate::term::paint(color, "1", &format!("── run {}", it.run))
            );
            last_run = &it.run;
        }
        let _ = writeln!(
            out,
            "{:<20}  {}{:<8}  {:<10}  {:<18}  {}  {:>7}  {:>7}  {:>8}  {}",
            when(&it.started),
            run_col(&it.run),
            it.label,
            it.task,
            it.agent,
            crate::term::outcome(color, &it.outcome, &format!("{:<11}", it.outcome)),
            it.duration_ms.map_or_else(|| "-".into(), seconds),
            tokens(it.tokens.input + it.tokens.output),
            match it.cost_usd {
                None => "-".into(),
                Some(c) if it.cost_estimated => format!("~${c:.2}"),
                Some(c) => format!("${c:.2}"),
            },
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

/// The width of `log`'s table with its RUN column and one commit.
const LOG_WIDTH: usize = 140;

/// `--since`: a time (`2026-11-30`, `2026-11-30T14:00:00Z`, UTC) or an age (`2h`, `3d`).
fn parse_since(text: &str) -> anyhow::Result<jiff::Timestamp> {
    if let Ok(age) = super::clean::parse_age(text) {
        let age = jiff::SignedDuration::try_from(age)?;
        return Ok(jiff::Timestamp::now() - age);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = text.parse::<jiff::civil::DateTime>() {
        return Ok(jiff::tz::TimeZone::UTC.to_timestamp(d)?);
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return Ok(
            jiff::tz::TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))?
        );
    }
    Err(crate::error::UsageError::new(format!(
        "--since {text:?} is neither a time nor an age: write e.g. 2026-11-30, 2026-11-30T14:00:00Z, 2h or 3d"
    ))
    .into())
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
        crate::term::outcome(crate::term::stdout_color(), &it.outcome, &it.outcome),
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
        crate::term::cost(it.cost_usd, it.cost_estimated)
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
        for change in u["changes"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "            {}", change.as_str().unwrap_or(""));
        }
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

/// Writes to stdout, with no terminal escape but colour (an agent's text is in there); a
/// reader that went away (`| head`) is not an error worth a message.
pub(super) fn emit(text: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let text = crate::term::printable(text, crate::term::stdout_color());
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

/// How many recent iterations `status` shows.
const RECENT: usize = 5;

/// `looper status --json`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(super) struct StatusJson {
    project: std::path::PathBuf,
    backlog: std::path::PathBuf,
    /// Why the backlog could not be read, when it could not.
    backlog_error: Option<String>,
    /// The tasks as Looper holds them: a completion made outside Looper (in `refused`)
    /// is not counted as done.
    counts: Option<crate::backlog::doc::Counts>,
    /// Tasks the file marks done (or the project-done marker) that Looper's last version
    /// does not: an edit made outside Looper, refused at Looper's next write.
    refused: Vec<String>,
    /// The run going on now, if any.
    running: Option<Running>,
    /// The latest run's `run.end` record (or its first record while it runs).
    last_run: Option<Value>,
    /// The last iterations that ended, oldest first.
    recent: Vec<Iteration>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Running {
    pid: String,
    /// The iteration going on now (none between iterations).
    iteration: Option<Iteration>,
    /// The run is waiting for an agent's rate limit to lift: the `agent.wait` record
    /// (`until`, `why`).
    waiting: Option<Value>,
}

/// What `status` shows, gathered.
struct StatusView {
    counts: Option<crate::backlog::doc::Counts>,
    /// Completions made outside Looper, refused at its next write: tasks marked done, and
    /// project-done markers added (`dropped`, in `refused` too).
    refused: Vec<String>,
    dropped: Vec<String>,
    backlog_error: Option<String>,
    pid: Option<String>,
    /// The iteration going on now.
    current: Option<Iteration>,
    /// The latest run's last record, when it is an `agent.wait` (the run is waiting).
    waiting: Option<Value>,
    /// The latest run's `run.end` (or its first record while it runs).
    last_run: Option<Value>,
    recent: Vec<Iteration>,
}

pub(super) fn status(project: &Project, as_json: bool) -> anyhow::Result<ExitCode> {
    let view = gather(project)?;
    if as_json {
        let value = StatusJson {
            project: project.root.clone(),
            backlog: project.backlog.clone(),
            backlog_error: view.backlog_error,
            counts: view.counts,
            refused: view.refused,
            running: view.pid.map(|pid| Running {
                pid,
                iteration: view.current,
                waiting: view.waiting,
            }),
            last_run: view.last_run,
            recent: view.recent,
        };
        super::inspect::print_json(&serde_json::to_value(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    emit(&render(project, &view))
}

fn gather(project: &Project) -> anyhow::Result<StatusView> {
    let backlog = crate::backlog::load::load(&project.backlog);
    let (counts, refused, dropped) = match &backlog {
        Ok(loaded) => {
            let (doc, refusals) = super::store(project).refusals_pending(loaded);
            let dropped = refusals
                .iter()
                .filter(|r| r.drops_marker())
                .map(|r| r.id.clone())
                .collect();
            let mut ids: Vec<String> = refusals.into_iter().map(|r| r.id).collect();
            ids.dedup();
            (Some(doc.counts()), ids, dropped)
        }
        Err(_) => (None, Vec::new(), Vec::new()),
    };
    // The latest run says what is going on now; older runs only fill the recent list.
    let mut recent: Vec<Iteration> = Vec::new();
    let mut last_run = None;
    let mut waiting = None;
    for (i, file) in read::run_files(&project.home.runs())
        .iter()
        .rev()
        .enumerate()
    {
        // Read light: the agents' output lines are most of the bytes, and only their
        // normalized events count here.
        let mut its = Vec::new();
        let (mut end, mut last) = (None, None);
        let mut fold = read::Fold::new(|it| its.push(it));
        let (first, _) = read::read_tail_lines(file, RECENT + 1, |line| {
            last = match &line {
                read::Line::Record(r) if r["type"] == "run.end" => {
                    end = Some(r.clone());
                    None
                }
                read::Line::Record(r) if r["type"] == "agent.wait" => Some(r.clone()),
                _ => None,
            };
            fold.line(line);
        })?;
        fold.finish();
        if i == 0 {
            last_run = end.or(first);
            waiting = last;
        }
        its.append(&mut recent);
        recent = its;
        if recent.len() > RECENT {
            break;
        }
    }
    let pid = crate::run::running_pid(project);
    let current = recent
        .last()
        .filter(|it| pid.is_some() && it.outcome == "unfinished")
        .cloned();
    if current.is_some() {
        recent.pop();
    }
    let recent = recent[recent.len().saturating_sub(RECENT)..].to_vec();
    let waiting = waiting.filter(|_| pid.is_some());
    Ok(StatusView {
        counts,
        refused,
        dropped,
        backlog_error: backlog.err().map(|e| e.to_string()),
        pid,
        current,
        waiting,
        last_run,
        recent,
    })
}

/// The `running` (or `waiting`) line of `status`, with `last run` when nothing runs.
fn running_lines(view: &StatusView, color: bool) -> String {
    let mut out = String::new();
    match (&view.pid, &view.current) {
        (Some(pid), Some(it)) => {
            let _ = writeln!(
                out,
                "{}   pid {pid}, run {}: {} on {} with {}, {} so far, {} tokens",
                crate::term::paint(color, "33", "running"),
                it.run,
                it.label,
                it.task,
                it.agent,
                since(&it.started),
                tokens(it.tokens.input + it.tokens.output)
            );
            if let Some(action) = &it.last_action {
                let _ = writeln!(out, "          last: {}", one_line(action, 100));
            }
        }
        (Some(pid), None) => match &view.waiting {
            Some(wait) => {
                let until = wait["until"].as_str().unwrap_or("?");
                let left = until
                    .parse::<jiff::Timestamp>()
                    .ok()
                    .and_then(|u| {
                        u64::try_from(u.duration_since(jiff::Timestamp::now()).as_millis()).ok()
                    })
                    .map_or_else(|| "0s".to_owned(), crate::term::seconds);
                let _ = writeln!(
                    out,
                    "{}   pid {pid}, every agent is rate-limited: next try at {} ({left} left)\n          why: {}",
                    crate::term::paint(color, "33", "waiting"),
                    when(until),
                    one_line(wait["why"].as_str().unwrap_or(""), 100)
                );
            }
            None => {
                let _ = writeln!(out, "running   pid {pid}, between iterations");
            }
        },
        (None, _) => {
            let ended = view
                .last_run
                .as_ref()
                .filter(|r| r["type"] == "run.end")
                .map_or_else(
                    || "no\nlast run  none has ended yet".to_owned(),
                    |r| {
                        format!(
                            "no\nlast run  {} ended {}: {} (exit {})",
                            r["run"].as_str().unwrap_or("?"),
                            when(r["ts"].as_str().unwrap_or("")),
                            r["reason"].as_str().unwrap_or("?"),
                            r["exit_code"]
                        )
                    },
                );
            let _ = writeln!(out, "running   {ended}");
        }
    }
    out
}

fn render(project: &Project, view: &StatusView) -> String {
    let color = crate::term::stdout_color();
    let mut out = format!(
        "project   {} (backlog {})\n",
        project.root.display(),
        project
            .backlog
            .strip_prefix(&project.root)
            .unwrap_or(&project.backlog)
            .display()
    );
    if let Some(c) = &view.counts {
        let total = c.open() + c.done;
        let _ = writeln!(
            out,
            "progress  {} {}/{total} done · {} todo · {} doing · {} blocked{}",
            crate::term::paint(color, "32", &bar(c.done, total)),
            c.done,
            c.todo,
            c.doing,
            c.blocked,
            if c.project_done {
                " · project done"
            } else {
                ""
            }
        );
    } else if let Some(e) = &view.backlog_error {
        let _ = writeln!(out, "progress  unknown: {e}");
    }
    let marked: Vec<&str> = view
        .refused
        .iter()
        .filter(|id| !view.dropped.contains(id))
        .map(String::as_str)
        .collect();
    if !marked.is_empty() {
        let _ = writeln!(
            out,
            "refused   {} marked done outside Looper: not counted, and undone at Looper's next write (`looper done ID --reason TEXT` completes a task)",
            marked.join(", ")
        );
    }
    if !view.dropped.is_empty() {
        let _ = writeln!(
            out,
            "refused   {} (project-done {}) added outside Looper: the project is not done, and Looper's next write drops it (only the review pass adds one)",
            view.dropped.join(", "),
            if view.dropped.len() == 1 {
                "marker"
            } else {
                "markers"
            }
        );
    }
    out.push_str(&running_lines(view, color));
    // The note fills the rest of a terminal's line (51 columns before it, 1 for the "…").
    let note_width = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        crate::term::width().saturating_sub(53).max(20)
    } else {
        70
    };
    for (i, it) in view.recent.iter().rev().enumerate() {
        let _ = writeln!(
            out,
            "{}{:<8} {:<10} {} {:>7}  {}",
            if i == 0 { "recent    " } else { "          " },
            it.label,
            it.task,
            crate::term::outcome(color, &it.outcome, &format!("{:<11}", it.outcome)),
            it.duration_ms.map_or_else(|| "-".into(), seconds),
            it.note
                .as_deref()
                .map(|n| one_line(n, note_width))
                .unwrap_or_default()
        );
    }
    out
}

/// A 20-character progress bar.
fn bar(done: usize, total: usize) -> String {
    let filled = (done * 20).checked_div(total).unwrap_or(0).min(20);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(20 - filled))
}

/// How long ago an RFC 3339 timestamp was.
fn since(ts: &str) -> String {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| {
            u64::try_from(jiff::Timestamp::now().as_millisecond() - t.as_millisecond()).ok()
        })
        .map_or_else(|| "-".into(), seconds)
}

/// How many lines `tail` shows before following.
const TAIL_LINES: usize = 40;
/// How often `tail -f` looks for new records.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// How `tail` and `replay` print records.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// Readable lines; `raw` shows the agents' own output lines, `color` paints outcomes.
    Lines { raw: bool, color: bool },
    /// Each record as one line of JSON (JSONL), as the journal holds it.
    Json,
}

impl Mode {
    fn render(self, r: &Value) -> Vec<String> {
        match self {
            Mode::Lines { raw, color } => readable(r, raw, color),
            Mode::Json => vec![format!("{r}\n")],
        }
    }
}

pub(super) fn tail(
    project: &Project,
    run: Option<&str>,
    follow: bool,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let runs = project.home.runs();
    let mut file = match run {
        Some(r) => Some(read::find_run(&runs, r)?),
        None => read::run_files(&runs).last().cloned(),
    };
    anyhow::ensure!(
        file.is_some() || follow,
        "no run yet: `looper run` starts one"
    );
    let mut offset = 0;
    if let Some(path) = &file {
        let (lines, end) = new_lines(path, 0, mode)?;
        offset = end;
        let start = lines
            .len()
            .saturating_sub(if follow { 10 } else { TAIL_LINES });
        emit(&lines[start..].concat())?;
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(FOLLOW_POLL);
        if let Some(path) = &file {
            let (lines, end) = new_lines(path, offset, mode)?;
            offset = end;
            emit(&lines.concat())?;
        }
        // Move on to a newer run when one starts (unless one run was asked for).
        if run.is_none() {
            let newest = read::run_files(&runs).last().cloned();
            if newest.is_some() && newest != file {
                if let Some(path) = &file {
                    let (lines, _) = new_lines(path, offset, mode)?;
                    emit(&lines.concat())?;
                }
                file = newest;
                offset = 0;
            }
        }
    }
}

/// The readable lines of the complete records after `offset`, and the offset after them.
fn new_lines(
    path: &std::path::Path,
    offset: u64,
    mode: Mode,
) -> anyhow::Result<(Vec<String>, u64)> {
    use std::io::{Read as _, Seek as _};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    // Only whole lines: the last one may still be being written.
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let out = read::parse_lines(&bytes[..complete])
        .records
        .iter()
        .flat_map(|r| mode.render(r))
        .collect();
    Ok((out, offset + complete as u64))
}

/// The longest pause `replay` makes between two records, whatever the speed: a run that
/// waited an hour for a rate limit should not make its replay wait too.
const REPLAY_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn replay(
    project: &Project,
    run: &str,
    speed: Option<f64>,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let path = read::find_run(&project.home.runs(), run)?;
    if let Some(speed) = speed {
        anyhow::ensure!(
            speed.is_finite() && speed > 0.0,
            crate::error::UsageError::new(format!("--speed must be above 0, got {speed}"))
        );
    }
    // A record at a time: a run's journal can be a gigabyte.
    let mut previous: Option<jiff::Timestamp> = None;
    read::each_record(&path, |r| {
        let ts = r["ts"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let (Some(speed), Some(prev), Some(now)) = (speed, previous, ts) {
            let gap = std::time::Duration::try_from(now.duration_since(prev)).unwrap_or_default();
            std::thread::sleep(gap.div_f64(speed).min(REPLAY_MAX_PAUSE));
        }
        previous = ts.or(previous);
        emit(&mode.render(&r).concat()).map(drop)
    })?;
    Ok(ExitCode::SUCCESS)
}
