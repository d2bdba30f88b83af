//! One worker iteration (DESIGN §5): mark the task `doing`, run the worker, read its report,
//! corroborate a `done`, and apply the outcome. A bad iteration is an attempt on its task,
//! never a reason to stop the run.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::reports::{self, WorkStatus, WorkerReport};
use super::{Ctx, gates, hooks, prompt, schedule, source_files_text, step, workspace};
use crate::agent::Role;
use crate::agent::supervise::{Class, RunResult};
use crate::backlog::Status;
use crate::backlog::ops::{self, NewTask};
use crate::backlog::select::Reason;
use crate::config::{Agent, GitCommit};

/// How an iteration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Attempt(String),
    Interrupted,
    /// The agent was rate-limited or refused its credentials: no attempt; the task goes
    /// back to `todo` and the next iteration picks another agent (or waits).
    Deferred(String),
}

/// Works on task `id` with `agent`, picked for the reason `why`.
pub(crate) fn iterate(
    ctx: &mut Ctx,
    id: &str,
    reason: Reason,
    agent: &Agent,
    why: &str,
) -> anyhow::Result<Outcome> {
    let doc = ctx.load()?;
    ctx.record(
        "iteration.start",
        json!({"task": id, "agent": agent.spec.to_string(), "agent_name": agent.name, "why": why, "reason": reason.as_str(), "backlog": doc.counts()}),
    )?;
    let task = doc.task(id).map_or(Value::Null, |t| t.value.clone());
    let sources = source_files_text(&doc);
    // Held on, it would make the updates below copy the backlog.
    drop(doc);
    let resumed = task.get("status").and_then(Value::as_str) == Some("doing");
    let text = worker_prompt(ctx, id, &task, sources)?;
    // Before the worker has its prompt: its task marked `doing`, the tree's state before it.
    let prepare = |ctx: &mut Ctx| {
        let (before, _) = if resumed {
            snapshot(ctx, "before")?
        } else {
            mark_doing(ctx, id)?
        };
        ctx.record("git", json!({"phase": "before", "head": before.head()}))?;
        anyhow::Ok(before)
    };
    let (before, result, (after, git_lost)) = run_worker(ctx, agent, &text, prepare)?;
    if git_lost.is_none() {
        ctx.record("git", json!({"phase": "after", "head": after.head()}))?;
    }
    let changed = workspace::changed(&ctx.root, &before, &after, &ctx.own_files());
    if result.class == Class::Cancelled {
        // Stopped by the user: no attempt; the task stays `doing` for the next run.
        ctx.record(
            "iteration.end",
            json!({"task": id, "outcome": "interrupted", "changed": changed}),
        )?;
        return Ok(Outcome::Interrupted);
    }
    if let Some(why) = schedule::note_run(ctx, agent, &result)? {
        ctx.update(&ops::set_status(id, Status::Todo))?;
        let doc = ctx.load()?;
        ctx.record(
            "iteration.end",
            json!({"task": id, "outcome": "deferred", "note": why, "changed": changed, "backlog": doc.counts()}),
        )?;
        return Ok(Outcome::Deferred(why));
    }
    ctx.worked += 1;

    let report = if result.class == Class::Ok {
        reports::read::<WorkerReport>(result.outcome.final_text.as_deref())
    } else {
        Err(step::describe_failure(&result))
    };
    let outcome = match report {
        Err(problem) => {
            ctx.record(
                "report",
                json!({"task": id, "valid": false, "problem": problem}),
            )?;
            attempt(ctx, id, &changed, &problem, false, &[])?
        }
        Ok(report) => {
            ctx.record(
                "report",
                json!({"task": id, "valid": true, "report": report_json(&report)}),
            )?;
            match &git_lost {
                // Looper can't see what the agent did, so it can't accept it.
                Some(error) => {
                    let note = format!(
                        "the git repository is unusable after the agent's run, so its work was not checked; the run goes on without git ({error})"
                    );
                    attempt(ctx, id, &changed, &note, false, &[])?
                }
                None => judge(ctx, id, &report, &changed)?,
            }
        }
    };
    let doc = ctx.load()?;
    ctx.record(
        "iteration.end",
        json!({
            "task": id,
            "outcome": match &outcome { Outcome::Done => "done", Outcome::Attempt(_) => "attempt", Outcome::Interrupted => "interrupted", Outcome::Deferred(_) => "deferred" },
            "note": match &outcome { Outcome::Attempt(n) | Outcome::Deferred(n) => Some(n), Outcome::Done | Outcome::Interrupted => None },
            "changed": changed,
            "backlog": doc.counts(),
        }),
    )?;
    crate::fault::point("iteration.ended");
    let status = doc
        .task(id)
        .map_or("missing", |t| t.status.as_str())
        .to_owned();
    let payload = json!({
        "task": id,
        "status": status,
        "outcome": if outcome == Outcome::Done { "done" } else { "attempt" },
        "last_message": ctx.run_dir().join(format!("{}.last.json", ctx.label)),
    });
    hooks::fire(ctx, "after_iteration", &payload)?;
    if outcome == Outcome::Done {
        hooks::fire(ctx, "on_done", &payload)?;
    } else if status == "blocked" {
        hooks::fire(ctx, "on_blocked", &payload)?;
    }
    Ok(outcome)
}

/// Runs the worker, `prepare` before it has its prompt; the tree's `after` snapshot (as
/// [`snapshot`] returns it) is taken while the journal writer finishes the agent's lines.
fn run_worker<P>(
    ctx: &mut Ctx,
    agent: &Agent,
    prompt: &str,
    prepare: impl FnOnce(&mut Ctx) -> anyhow::Result<P>,
) -> anyhow::Result<(P, RunResult, (workspace::Snapshot, Option<String>))> {
    let timeout = ctx.config.worker_timeout;
    let taken_over = std::cell::RefCell::new(None);
    let ran = step::run_agent_then(
        ctx,
        agent,
        Role::Worker,
        prompt,
        timeout,
        |ctx| {
            let prepared = prepare(ctx)?;
            // Taken after `prepare`, which snapshots the tree before the agent.
            *taken_over.borrow_mut() = Some((
                ctx.own_files(),
                std::mem::take(&mut ctx.hashes),
                ctx.root.clone(),
                ctx.git,
            ));
            anyhow::Ok(prepared)
        },
        || {
            // `prepare` ran: the agent has not run otherwise.
            let (own, mut hashes, root, git) = taken_over.take().expect("prepared");
            let taken = workspace::snapshot(&root, &own, git, &mut hashes);
            (hashes, taken)
        },
    );
    // Failing between `prepare` and the agent's end, the tree's hashes come back unused.
    if let Some((_, hashes, _, _)) = taken_over.take() {
        ctx.hashes = hashes;
    }
    let (prepared, result, (hashes, taken)) = ran?;
    ctx.hashes = hashes;
    Ok((prepared, result, snapshot_taken(ctx, "after", taken)?))
}

/// Turns a valid report into the task's outcome.
fn judge(
    ctx: &mut Ctx,
    id: &str,
    report: &WorkerReport,
    changed: &[String],
) -> anyhow::Result<Outcome> {
    add_tasks(ctx, &report.discovered_tasks, "discovered")?;
    if report.task_id != id {
        let note = format!("the report was for task {} instead of {id}", report.task_id);
        return attempt(ctx, id, changed, &note, false, &[]);
    }
    match report.status {
        WorkStatus::Blocked => {
            let note = format!("blocked: {}", report.summary);
            return attempt(ctx, id, changed, &note, true, &report.blockers);
        }
        WorkStatus::Skipped => {
            let note = format!("skipped by the agent: {}", report.summary);
            return attempt(ctx, id, changed, &note, true, &report.blockers);
        }
        WorkStatus::Done => {}
    }
    if let Some(problem) = corroborate(ctx, id, report, changed)? {
        return attempt(
            ctx,
            id,
            changed,
            &format!("done not accepted: {problem}"),
            false,
            &[],
        );
    }
    let note = clip(&format!("{}: done: {}", ctx.label, report.summary));
    ctx.update(&ops::complete(id, &note))?;
    ctx.digest
        .push(format!("{id} done in {}: {}", ctx.label, report.summary));
    if ctx.config.git_commit == GitCommit::Looper && ctx.git {
        let title = ctx
            .load()?
            .task(id)
            .map(|t| t.title.to_owned())
            .unwrap_or_default();
        let trailers = [
            ("Looper-Task", id.to_owned()),
            ("Looper-Run", ctx.run_id.clone()),
            ("Looper-Iteration", ctx.iter.to_string()),
        ];
        let commit = workspace::commit(
            &ctx.root,
            &format!("{id}: {title}"),
            &trailers,
            &ctx.git_identity,
        )?;
        ctx.record(
            "git",
            json!({"phase": "commit", "commit": commit, "task": id}),
        )?;
    }
    Ok(Outcome::Done)
}

/// Looper's own checks of a `done`: `None` when it holds, else what failed.
fn corroborate(
    ctx: &mut Ctx,
    id: &str,
    report: &WorkerReport,
    changed: &[String],
) -> anyhow::Result<Option<String>> {
    let mut failures = Vec::new();
    let task_gates: Vec<String> = ctx
        .load()?
        .task(id)
        .and_then(|t| t.value.get("verify").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    for command in ctx.config.verify.clone() {
        let result = gates::run(&ctx.root, &command, ctx.config.verify_timeout)?;
        ctx.record(
            "gate",
            json!({"phase": "after", "task": id, "result": result}),
        )?;
        let passed_before = ctx.gate_baseline.get(&command).copied().unwrap_or(false);
        if passed_before && !result.passed {
            failures.push(gate_failure(&result));
        } else if result.passed {
            ctx.gate_baseline.insert(command, true);
        }
    }
    for command in task_gates {
        let result = gates::run(&ctx.root, &command, ctx.config.verify_timeout)?;
        ctx.record(
            "gate",
            json!({"phase": "task", "task": id, "result": result}),
        )?;
        if !result.passed {
            failures.push(gate_failure(&result));
        }
    }
    if changed.is_empty() && report.no_change_reason.as_deref().is_none_or(str::is_empty) {
        failures.push(
            "the iteration changed no file and the report gives no no_change_reason".to_owned(),
        );
    }
    let flagged = workspace::sensitive(changed);
    if !flagged.is_empty() {
        ctx.record(
            "flag",
            json!({"task": id, "why": "tests, gates or CI changed", "paths": flagged}),
        )?;
        ctx.digest.push(format!(
            "{id} changed tests, gate config or CI: {}",
            flagged.join(", ")
        ));
    }
    Ok((!failures.is_empty()).then(|| failures.join("; ")))
}

fn gate_failure(result: &gates::GateResult) -> String {
    let mut text = format!("gate `{}` failed", result.command);
    if let Some(code) = result.exit_code {
        let _ = write!(text, " (exit {code})");
    }
    if let Some(last) = result.tail.iter().rev().find(|l| !l.trim().is_empty()) {
        let _ = write!(text, ": {}", last.trim());
    }
    text
}

/// One more attempt on the task, with a note that also names the files the attempt left
/// changed, so the next attempt's prompt knows what is already in the tree.
fn attempt(
    ctx: &mut Ctx,
    id: &str,
    changed: &[String],
    note: &str,
    blocked: bool,
    blockers: &[String],
) -> anyhow::Result<Outcome> {
    let mut note = format!("{}: {note}", ctx.label);
    if !changed.is_empty() {
        let shown: Vec<&str> = changed.iter().take(10).map(String::as_str).collect();
        let more = if changed.len() > 10 { ", ..." } else { "" };
        let _ = write!(
            note,
            " (changes left in the tree: {}{more})",
            shown.join(", ")
        );
    }
    let note = clip(&note);
    let blockers: Vec<String> = blockers
        .iter()
        .take(MAX_PROPOSED)
        .map(|b| clip(b))
        .collect();
    let change = ops::attempt(id, &note, blocked, &blockers, ctx.config.retry_limit);
    ctx.update(&change)?;
    ctx.digest.push(format!("{id} not done in {note}"));
    Ok(Outcome::Attempt(note))
}

/// The most tasks one report may propose (a worker's discovered tasks, a review pass's new
/// tasks): an agent that proposes thousands must not flood the backlog or stall the run.
pub(super) const MAX_PROPOSED: usize = 50;

/// The longest note (and blocker) Looper writes into a task, in bytes: an agent's summary
/// may be up to a report's size, the backlog and the next prompt should not be.
const MAX_NOTE: usize = 2000;

/// `text` cut to [`MAX_NOTE`] bytes (at a character boundary, marked with `…`).
fn clip(text: &str) -> String {
    if text.len() <= MAX_NOTE {
        return text.to_owned();
    }
    let mut end = MAX_NOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Adds up to [`MAX_PROPOSED`] of the `proposed` tasks (see [`add_task`]) and journals the
/// rest as dropped; returns how many were added.
pub(super) fn add_tasks(
    ctx: &mut Ctx,
    proposed: &[super::reports::ProposedTask],
    source: &str,
) -> anyhow::Result<usize> {
    let (taken, dropped) = proposed.split_at(proposed.len().min(MAX_PROPOSED));
    let mut added = 0;
    for task in taken {
        let title = clip(&task.title);
        if add_task(
            ctx,
            &title,
            task.priority,
            task.description.as_deref(),
            source,
        )? {
            added += 1;
        }
    }
    if !dropped.is_empty() {
        ctx.record(
            "task.dropped",
            json!({"source": source, "count": dropped.len(), "first": dropped[0].title.chars().take(200).collect::<String>(), "why": format!("a report may propose at most {MAX_PROPOSED} tasks")}),
        )?;
    }
    Ok(added)
}

/// A snapshot of the tree for `phase`. When git fails (an agent deleted or broke `.git`),
/// the failure is journaled, the reviewer is told, and the rest of the run works without
/// git, from file hashes; git's error is returned then.
pub(super) fn snapshot(
    ctx: &mut Ctx,
    phase: &str,
) -> anyhow::Result<(workspace::Snapshot, Option<String>)> {
    let taken = workspace::snapshot(&ctx.root, &ctx.own_files(), ctx.git, &mut ctx.hashes);
    snapshot_taken(ctx, phase, taken)
}

/// Marks task `id` `doing` and takes the tree's `before` snapshot at the same time, on a
/// thread of its own: the snapshot leaves the backlog and Looper's temp files beside it
/// out, so neither sees the other, and its stats and reads (or `git status`) overlap the
/// update's writes and fsyncs. The snapshot is as [`snapshot`] returns it.
fn mark_doing(ctx: &mut Ctx, id: &str) -> anyhow::Result<(workspace::Snapshot, Option<String>)> {
    let own = ctx.own_files();
    let mut hashes = std::mem::take(&mut ctx.hashes);
    let (root, git, shared) = (&ctx.root, ctx.git, &*ctx);
    let (updated, taken) = std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("looper-snapshot".into())
            .spawn_scoped(scope, || workspace::snapshot(root, &own, git, &mut hashes));
        let updated = shared.update(&ops::set_status(id, Status::Doing));
        // Without a thread (none could start), the snapshot comes after the update.
        let taken = thread.ok().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (updated, taken)
    });
    ctx.hashes = hashes;
    updated?;
    match taken {
        Some(taken) => snapshot_taken(ctx, "before", taken),
        None => snapshot(ctx, "before"),
    }
}

/// [`snapshot`]'s result from the `taken` snapshot: when git failed, the tree is snapshot
/// again from file hashes.
fn snapshot_taken(
    ctx: &mut Ctx,
    phase: &str,
    taken: anyhow::Result<workspace::Snapshot>,
) -> anyhow::Result<(workspace::Snapshot, Option<String>)> {
    match taken {
        Ok(snapshot) => Ok((snapshot, None)),
        Err(e) if ctx.git => {
            let error = clip(&format!("{e:#}"));
            ctx.git = false;
            ctx.record(
                "git",
                json!({"phase": phase, "head": null, "error": error, "git": false}),
            )?;
            ctx.digest.push(format!(
                "the git repository became unusable in {}: {error}; the run went on without git",
                ctx.label
            ));
            let own = ctx.own_files();
            let files = workspace::snapshot(&ctx.root, &own, false, &mut ctx.hashes)?;
            Ok((files, Some(error)))
        }
        Err(e) => Err(e),
    }
}

/// Adds a task proposed by an agent unless one with the same title exists.
pub(super) fn add_task(
    ctx: &mut Ctx,
    title: &str,
    priority: Option<u8>,
    description: Option<&str>,
    source: &str,
) -> anyhow::Result<bool> {
    let title = title.trim();
    let key = title_key(title);
    let exists = ctx
        .load()?
        .tasks()
        .iter()
        .any(|t| title_key(t.title) == key);
    if exists || title.is_empty() {
        ctx.record(
            "task.dropped",
            json!({"title": title, "source": source, "why": "a task with this title exists"}),
        )?;
        return Ok(false);
    }
    let task = NewTask {
        title: title.to_owned(),
        priority: priority.unwrap_or(3).clamp(1, 5),
        description: description.map(str::to_owned),
        depends_on: Vec::new(),
        tags: vec![source.to_owned()],
    };
    let style = ops::IdStyle::of(ctx.load()?.value());
    ctx.update(&ops::add(&task, &style))?;
    Ok(true)
}

/// What makes two task titles the same task: case, punctuation, spacing and a plural `s`
/// aside (`Add tests for the parser.` = `add  test for the Parser`).
fn title_key(title: &str) -> Vec<String> {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_owned(),
                _ => w,
            }
        })
        .collect()
}

fn report_json(report: &WorkerReport) -> Value {
    json!({
        "task_id": report.task_id,
        "status": format!("{:?}", report.status).to_lowercase(),
        "summary": report.summary,
        "files": report.files,
        "blockers": report.blockers,
        "no_change_reason": report.no_change_reason,
        "discovered_tasks": report.discovered_tasks.iter().map(|t| &t.title).collect::<Vec<_>>(),
    })
}

/// The worker's prompt for task `id` (`task`), with the backlog's `source_files` listed as
/// `sources`.
fn worker_prompt(ctx: &Ctx, id: &str, task: &Value, sources: String) -> anyhow::Result<String> {
    let mut body = String::new();
    for (key, label) in [
        ("description", "Description"),
        ("details", "Details"),
        ("reference", "Reference"),
    ] {
        if let Some(text) = task.get(key).and_then(Value::as_str) {
            let _ = writeln!(body, "{label}: {text}\n");
        }
    }
    for (key, label) in [
        ("steps", "Steps"),
        ("files", "Files"),
        ("notes", "Notes from earlier iterations"),
    ] {
        if let Some(items) = task.get(key).and_then(Value::as_array) {
            let _ = writeln!(body, "{label}:");
            for item in items.iter().filter_map(Value::as_str) {
                let _ = writeln!(body, "- {item}");
            }
            body.push('\n');
        }
    }
    if let Some(n) = task.get("attempts").and_then(Value::as_u64) {
        let _ = writeln!(
            body,
            "This task has been attempted {n} time(s) before; work left by those attempts may be in the tree."
        );
    }
    let gates = if ctx.config.verify.is_empty() {
        String::new()
    } else {
        format!(
            " Looper runs these gates after you: {}.",
            ctx.config
                .verify
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let commit_rule = if ctx.config.git_commit == GitCommit::Looper {
        "Do not commit: Looper commits your work with your report's summary."
    } else {
        "Commit your work when it is done."
    };
    let backlog = ctx.backlog_display();
    let title = task
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let template = prompt::template(&ctx.root, "worker")?;
    Ok(prompt::render(
        &template,
        &[
            ("task_id", id.to_owned()),
            ("task_title", title.to_owned()),
            ("task_body", body.trim_end().to_owned()),
            ("source_files", sources),
            ("backlog", backlog),
            ("gates", gates),
            ("commit_rule", commit_rule.to_owned()),
        ],
    ))
}
