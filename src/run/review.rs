//! The review pass (DESIGN §5): when no task is selectable, every reviewer reads the project
//! read-only and reports new tasks or `done`. New tasks (de-duplicated by title) continue the
//! loop; a unanimous `done` with every gate green appends the project-done marker.

use std::fmt::Write as _;

use serde_json::json;

use super::iteration::{add_tasks, snapshot};
use super::reports::{self, ReviewReport};
use super::schedule::{self, Ran};
use super::{Ctx, gates, prompt, source_files_text, step, workspace};
use crate::agent::Role;
use crate::agent::supervise::Class;
use crate::backlog::model::PROJECT_DONE_ID;
use crate::backlog::ops;

/// What a review pass decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Done,
    NewTasks,
    Inconclusive,
    /// The run must end while waiting for a rate-limited reviewer: why, and the exit code.
    Ended(&'static str, u8),
}

/// Runs every reviewer once.
pub(crate) fn review(ctx: &mut Ctx) -> anyhow::Result<Verdict> {
    ctx.record("review.start", json!({"reviewers": ctx.config.reviewers.iter().map(|r| r.spec.to_string()).collect::<Vec<_>>()}))?;
    let mut all_done = true;
    let mut summaries = Vec::new();
    let mut proposed = Vec::new();
    let names: Vec<String> = ctx
        .config
        .reviewers
        .iter()
        .map(|r| r.name.clone())
        .collect();
    for configured in ctx.config.reviewers.clone() {
        let (before, _) = snapshot(ctx, "review-before")?;
        let text = review_prompt(ctx)?;
        let timeout = ctx.config.reviewer_timeout;
        let ran =
            schedule::run_with_fallback(ctx, &configured, Role::Reviewer, &text, timeout, &names)?;
        let (reviewer, result) = match ran {
            Ran::Result(reviewer, result) => (reviewer, *result),
            Ran::Ended(reason, code) => return Ok(Verdict::Ended(reason, code)),
            Ran::Stuck(why) => {
                ctx.record(
                    "review.report",
                    json!({"reviewer": configured.name, "valid": false, "problem": format!("no agent can review: {why}")}),
                )?;
                all_done = false;
                continue;
            }
        };
        let (after, _) = snapshot(ctx, "review-after")?;
        let changed = workspace::changed(&ctx.root, &before, &after, &ctx.own_files());
        if !changed.is_empty() {
            ctx.record(
                "review.violation",
                json!({"reviewer": reviewer.name, "changed": changed}),
            )?;
            ctx.digest.push(format!(
                "reviewer {} changed files: {}",
                reviewer.name,
                changed.join(", ")
            ));
        }
        let report = if result.class == Class::Ok {
            reports::read::<ReviewReport>(result.outcome.final_text.as_deref())
        } else {
            Err(step::describe_failure(&result))
        };
        match report {
            Ok(report) => {
                ctx.record("review.report", json!({
                    "reviewer": reviewer.name,
                    "valid": true,
                    "summary": report.summary,
                    "done": report.done,
                    "new_tasks": report.new_tasks.iter().map(|t| json!({"title": t.title, "reason": t.reason})).collect::<Vec<_>>(),
                }))?;
                all_done &= report.done;
                summaries.push(report.summary.clone());
                proposed.extend(report.new_tasks);
            }
            Err(problem) => {
                ctx.record(
                    "review.report",
                    json!({"reviewer": reviewer.name, "valid": false, "problem": problem}),
                )?;
                all_done = false;
            }
        }
    }
    crate::fault::point("review.reported");
    let added = add_tasks(ctx, &proposed, "review")?;
    let verdict = if added > 0 {
        Verdict::NewTasks
    } else if all_done && gates_green(ctx)? {
        let marker = marker_id(ctx)?;
        ctx.update(&ops::mark_project_done(&marker, &summaries.join(" ")))?;
        Verdict::Done
    } else {
        Verdict::Inconclusive
    };
    ctx.record(
        "review.end",
        json!({"verdict": format!("{verdict:?}").to_lowercase(), "added": added, "backlog": ctx.load()?.counts()}),
    )?;
    Ok(verdict)
}

/// Every configured gate passes now.
fn gates_green(ctx: &mut Ctx) -> anyhow::Result<bool> {
    let mut green = true;
    for command in ctx.config.verify.clone() {
        let result = gates::run(&ctx.root, &command, ctx.config.verify_timeout)?;
        ctx.record("gate", json!({"phase": "review", "result": result}))?;
        green &= result.passed;
    }
    Ok(green)
}

/// `PROJECT-DONE`, or `PROJECT-DONE-2`, ... when that id is taken.
fn marker_id(ctx: &Ctx) -> anyhow::Result<String> {
    let doc = ctx.load()?;
    let mut id = PROJECT_DONE_ID.to_owned();
    let mut n = 1;
    while doc.task(&id).is_some() {
        n += 1;
        id = format!("{PROJECT_DONE_ID}-{n}");
    }
    Ok(id)
}

fn review_prompt(ctx: &Ctx) -> anyhow::Result<String> {
    let doc = ctx.load()?;
    let mut summary = String::new();
    for task in doc.tasks() {
        let _ = writeln!(
            summary,
            "- {} [{}] {}",
            task.id,
            task.status.as_str(),
            task.title
        );
    }
    let digest = if ctx.digest.is_empty() {
        "Nothing was done in this run yet.".to_owned()
    } else {
        ctx.digest
            .iter()
            .map(|d| format!("- {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let template = prompt::template(&ctx.root, "review")?;
    Ok(prompt::render(
        &template,
        &[
            ("source_files", source_files_text(&doc)),
            ("backlog_summary", summary.trim_end().to_owned()),
            ("digest", digest),
        ],
    ))
}
