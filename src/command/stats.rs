//! `looper stats`: the shape of the loop in figures, from the journal: iterations and review
//! passes, agent commands per iteration and per review pass, durations, attempts per task,
//! success per agent spec, and tokens and cost per agent spec and per task.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::journal::read::{self, Iteration, Tokens};
use serde::Serialize;

/// Tokens and cost of a group of agent steps. `cost_usd` is `None` when no step reported a
/// cost ("unknown").
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
struct Spend {
    iterations: usize,
    done: usize,
    tokens: Tokens,
    cost_usd: Option<f64>,
    /// Whether any of the cost is an estimate from `[prices]`.
    cost_estimated: bool,
}

impl Spend {
    /// The sum of several.
    fn total<'a>(all: impl Iterator<Item = &'a Spend>) -> Spend {
        let mut t = Spend::default();
        for s in all {
            t.iterations += s.iterations;
            t.done += s.done;
            t.tokens.input += s.tokens.input;
            t.tokens.cached += s.tokens.cached;
            t.tokens.output += s.tokens.output;
            if let Some(c) = s.cost_usd {
                *t.cost_usd.get_or_insert(0.0) += c;
            }
            t.cost_estimated |= s.cost_estimated;
        }
        t
    }

    fn add(&mut self, it: &Iteration) {
        self.iterations += 1;
        self.done += usize::from(it.outcome == "done");
        self.tokens.input += it.tokens.input;
        self.tokens.cached += it.tokens.cached;
        self.tokens.output += it.tokens.output;
        if let Some(c) = it.cost_usd {
            *self.cost_usd.get_or_insert(0.0) += c;
        }
        self.cost_estimated |= it.cost_estimated;
    }
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(super) struct Stats {
    runs: usize,
    iterations: usize,
    iterations_done: usize,
    review_passes: usize,
    commands: usize,
    commands_in_iterations: usize,
    commands_in_reviews: usize,
    iteration_ms_median: Option<u64>,
    iteration_ms_p90: Option<u64>,
    tasks: usize,
    max_iterations_per_task: usize,
    by_agent: BTreeMap<String, Spend>,
    by_task: BTreeMap<String, Spend>,
}

pub(super) fn stats(
    runs_dirs: &[PathBuf],
    prices: &crate::config::Prices,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = runs_dirs.iter().flat_map(|d| read::run_files(d)).collect();
    let s = Stats::of(&files, prices)?;
    if as_json {
        super::inspect::print_json(&serde_json::to_value(&s)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    super::history::emit(&render(&s))
}

impl Stats {
    /// The figures of these run journals together, read in constant memory.
    fn of(files: &[PathBuf], prices: &crate::config::Prices) -> anyhow::Result<Stats> {
        let mut s = Stats::default();
        let mut durations = Vec::new();
        s.runs = files.len();
        for file in files {
            // Each iteration is counted as soon as it ends, then dropped.
            let mut fold = read::Fold::new(|mut it: Iteration| {
                it.estimate(prices);
                s.iterations += 1;
                s.iterations_done += usize::from(it.outcome == "done");
                s.commands_in_iterations += it.commands.len();
                durations.extend(it.duration_ms);
                s.by_agent.entry(it.agent.clone()).or_default().add(&it);
                s.by_task.entry(it.task.clone()).or_default().add(&it);
            });
            let mut review_passes = 0;
            let mut commands = 0;
            let mut in_reviews = 0;
            read::stream(file, |line| match line {
                read::Line::Events { run, label, events } => {
                    let n = events
                        .iter()
                        .filter(|e| matches!(e, read::Event::Command { .. }))
                        .count();
                    commands += n;
                    if label.starts_with("review-") {
                        in_reviews += n;
                    }
                    fold.events(run, label, events);
                }
                read::Line::Record(r) => {
                    if r["type"] == "review.start" {
                        review_passes += 1;
                    }
                    fold.record(&r);
                }
            })?;
            fold.finish();
            s.review_passes += review_passes;
            s.commands += commands;
            s.commands_in_reviews += in_reviews;
        }
        durations.sort_unstable();
        s.iteration_ms_median = percentile(&durations, 50);
        s.iteration_ms_p90 = percentile(&durations, 90);
        s.tasks = s.by_task.len();
        s.max_iterations_per_task = s.by_task.values().map(|t| t.iterations).max().unwrap_or(0);
        Ok(s)
    }
}

/// The `p`th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn ratio(a: usize, b: usize) -> String {
    if b == 0 {
        return "-".into();
    }
    #[expect(clippy::cast_precision_loss, reason = "counts are small")]
    let r = a as f64 / b as f64;
    format!("{r:.1}")
}

fn spend_line(name: &str, sp: &Spend) -> String {
    format!(
        "  {name:<28} {:>4} iterations, {:>4} done ({:>3}%), tokens in {} (cached {}) out {}, cost {}",
        sp.iterations,
        sp.done,
        sp.done * 100 / sp.iterations.max(1),
        sp.tokens.input,
        sp.tokens.cached,
        sp.tokens.output,
        crate::term::cost(sp.cost_usd, sp.cost_estimated)
    )
}

fn render(s: &Stats) -> String {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), super::history::seconds);
    let mut out = String::new();
    let _ = writeln!(out, "runs              {}", s.runs);
    let _ = writeln!(
        out,
        "iterations        {} ({} done, {} not)",
        s.iterations,
        s.iterations_done,
        s.iterations - s.iterations_done
    );
    let _ = writeln!(out, "review passes     {}", s.review_passes);
    let _ = writeln!(
        out,
        "agent commands    {} ({} per iteration, {} per review pass)",
        s.commands,
        ratio(s.commands_in_iterations, s.iterations),
        ratio(s.commands_in_reviews, s.review_passes)
    );
    let _ = writeln!(
        out,
        "iteration time    median {}, p90 {}",
        ms(s.iteration_ms_median),
        ms(s.iteration_ms_p90)
    );
    let _ = writeln!(
        out,
        "per task          {} tasks, {} iterations each on average, at most {}",
        s.tasks,
        ratio(s.iterations, s.tasks),
        s.max_iterations_per_task
    );
    let _ = writeln!(out, "by agent spec");
    for (name, sp) in &s.by_agent {
        let _ = writeln!(out, "{}", spend_line(name, sp));
    }
    let _ = writeln!(out, "by task");
    for (name, sp) in &s.by_task {
        let _ = writeln!(out, "{}", spend_line(name, sp));
    }
    out
}

/// `looper report`: writes the HTML page and says where.
pub(super) fn report(
    project: &crate::project::Project,
    output: Option<PathBuf>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let mut data = crate::report::gather(&project.home.runs(), &super::prices(project))?;
    data.project = project.root.file_name().map_or_else(
        || project.root.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    data.generated = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string();
    data.counts = crate::backlog::load::load(&project.backlog)
        .ok()
        .map(|l| l.doc.counts());
    let html = crate::report::render(&data);
    // The default place is beside the journals, as private as they are (DESIGN §2); a file
    // the user names gets the usual mode.
    let (path, mode) = match output {
        Some(path) => (path, 0o644),
        None => (project.home.path.join("report.html"), 0o600),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if mode == 0o600 {
            crate::file::create_private_dir(dir)?;
        } else {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        }
    }
    crate::file::write_atomic(&path, html.as_bytes(), mode)
        .with_context(|| format!("cannot write the report to {}", path.display()))?;
    if as_json {
        super::inspect::print_json(&serde_json::to_value(ReportJson {
            path,
            bytes: html.len(),
            runs: data.runs.len(),
            iterations: data.iterations.len(),
        })?)?;
    } else {
        println!(
            "wrote {} ({} runs, {} iterations, {} KiB)",
            path.display(),
            data.runs.len(),
            data.iterations.len(),
            html.len().div_ceil(1024)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `looper diff --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct DiffJson {
    a: Side,
    b: Side,
}

/// `looper report --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct ReportJson {
    path: PathBuf,
    bytes: usize,
    runs: usize,
    iterations: usize,
}

/// One side of `looper diff`: a run, how it ended, and its figures.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Side {
    run: String,
    started: Option<String>,
    ended: Option<String>,
    reason: Option<String>,
    exit_code: Option<i64>,
    wall_ms: Option<u64>,
    /// Tasks this run finished (an iteration ended `done`).
    tasks_done: usize,
    stats: Stats,
}

impl Side {
    fn of(path: &std::path::Path, prices: &crate::config::Prices) -> anyhow::Result<Side> {
        let stats = Stats::of(&[path.to_path_buf()], prices)?;
        let (records, first) = read::read_tail(path, 0)?;
        let end = records
            .records
            .iter()
            .rev()
            .find(|r| r["type"] == "run.end");
        let started = first
            .as_ref()
            .and_then(|f| f["ts"].as_str())
            .map(str::to_owned);
        let ended = end.and_then(|e| e["ts"].as_str()).map(str::to_owned);
        let wall_ms = started
            .as_deref()
            .zip(ended.as_deref())
            .and_then(|(a, b)| read::ms_between(a, b));
        Ok(Side {
            run: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            started,
            ended,
            reason: end.and_then(|e| e["reason"].as_str()).map(str::to_owned),
            exit_code: end.and_then(|e| e["exit_code"].as_i64()),
            wall_ms,
            tasks_done: stats.by_task.values().filter(|t| t.done > 0).count(),
            stats,
        })
    }
}

/// `looper diff A B`: two runs side by side.
pub(super) fn diff(
    project: &crate::project::Project,
    a: &str,
    b: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let runs = project.home.runs();
    let prices = super::prices(project);
    let a = Side::of(&read::find_run(&runs, a)?, &prices)?;
    let b = Side::of(&read::find_run(&runs, b)?, &prices)?;
    if as_json {
        super::inspect::print_json(&serde_json::to_value(DiffJson { a, b })?)?;
        return Ok(ExitCode::SUCCESS);
    }
    super::history::emit(&render_diff(&a, &b))
}

fn side_rows(s: &Side) -> Vec<String> {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), super::history::seconds);
    let st = &s.stats;
    let tokens = Spend::total(st.by_agent.values());
    vec![
        st.by_agent.keys().cloned().collect::<Vec<_>>().join(", "),
        match (&s.reason, s.exit_code) {
            (Some(r), Some(c)) => format!("{r} (exit {c})"),
            _ => "running, or killed".into(),
        },
        ms(s.wall_ms),
        s.tasks_done.to_string(),
        format!(
            "{} ({} done, {} not)",
            st.iterations,
            st.iterations_done,
            st.iterations - st.iterations_done
        ),
        format!(
            "{} (at most {})",
            ratio(st.iterations, st.tasks),
            st.max_iterations_per_task
        ),
        st.review_passes.to_string(),
        format!(
            "{} ({} per iteration)",
            st.commands,
            ratio(st.commands_in_iterations, st.iterations)
        ),
        format!(
            "median {}, p90 {}",
            ms(st.iteration_ms_median),
            ms(st.iteration_ms_p90)
        ),
        format!(
            "{} / {} / {}",
            tokens.tokens.input, tokens.tokens.cached, tokens.tokens.output
        ),
        crate::term::cost(tokens.cost_usd, tokens.cost_estimated),
    ]
}

fn render_diff(a: &Side, b: &Side) -> String {
    const NAMES: [&str; 11] = [
        "agents",
        "ended",
        "wall time",
        "tasks done",
        "iterations",
        "iterations per task",
        "review passes",
        "agent commands",
        "iteration time",
        "tokens in/cached/out",
        "cost",
    ];
    let (ra, rb) = (side_rows(a), side_rows(b));
    let width = ra
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0)
        .max(a.run.len() + 3);
    let head = format!("A: {}", a.run);
    let mut out = format!("{:<22} {head:<width$}  B: {}\n", "", b.run);
    for ((name, x), y) in NAMES.iter().zip(&ra).zip(&rb) {
        let _ = writeln!(out, "{name:<22} {x:<width$}  {y}");
    }
    let _ = writeln!(out, "per agent spec");
    let agents: std::collections::BTreeSet<&String> = a
        .stats
        .by_agent
        .keys()
        .chain(b.stats.by_agent.keys())
        .collect();
    let cell = |s: &Side, agent: &str| {
        s.stats.by_agent.get(agent).map_or_else(
            || "-".to_owned(),
            |sp| {
                format!(
                    "{} iterations, {} done ({}%), {} tokens",
                    sp.iterations,
                    sp.done,
                    sp.done * 100 / sp.iterations.max(1),
                    sp.tokens.input + sp.tokens.output
                )
            },
        )
    };
    for agent in agents {
        let _ = writeln!(
            out,
            "  {agent:<20} {:<width$}  {}",
            cell(a, agent),
            cell(b, agent)
        );
    }
    out
}

/// The runs directories of every project under `LOOPER_HOME`.
pub(super) fn all_projects() -> anyhow::Result<Vec<PathBuf>> {
    let projects = crate::store::looper_home()?.join("projects");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&projects)
        .map(|entries| entries.flatten().map(|e| e.path().join("runs")).collect())
        .unwrap_or_default();
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 90), Some(90));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
