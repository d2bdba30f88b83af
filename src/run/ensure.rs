//! Making sure there is a valid backlog before the loop (DESIGN §5): **bootstrap** when there
//! is none (the bootstrap agent reads the project's docs or the user's idea and *reports*
//! tasks; Looper builds and validates the backlog), **repair** when it is invalid (the repair
//! agent gets the problems and reports a corrected document, applied only if valid). Both
//! agents run read-only; a failed attempt is retried up to the retry limit.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use super::schedule::{self, Ran};
use super::{Ctx, prompt, reports, step};
use crate::agent::Role;
use crate::agent::supervise::Class;
use crate::backlog::time::now_rfc3339;
use crate::backlog::{BacklogError, Doc};
use crate::error::{EXIT_ERROR, Failure};

/// What the bootstrap agent reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BootstrapReport {
    #[serde(default)]
    source_files: Vec<String>,
    tasks: Vec<PlannedTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlannedTask {
    title: String,
    #[serde(default)]
    priority: Option<u8>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    verify: Vec<String>,
}

/// What the repair agent reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepairReport {
    pub(super) backlog: Value,
}

/// The project's ground-truth documents, relative to the root.
fn docs(ctx: &Ctx) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["", "docs/"] {
        let Ok(entries) = fs_err::read_dir(ctx.root.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                let upper = n.to_ascii_uppercase();
                let doc = std::path::Path::new(n)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("txt"));
                doc && (dir == "docs/"
                    || [
                        "README",
                        "SPEC",
                        "DESIGN",
                        "PROJECT",
                        "ARCHITECTURE",
                        "REQUIREMENTS",
                    ]
                    .iter()
                    .any(|p| upper.starts_with(p)))
            })
            .collect();
        names.sort();
        found.extend(names.into_iter().map(|n| format!("{dir}{n}")));
    }
    found
}

/// Builds the first backlog from the bootstrap agent's report.
pub(crate) fn bootstrap(ctx: &mut Ctx, idea: Option<&str>) -> anyhow::Result<Doc> {
    ctx.set_step("bootstrap");
    let docs = docs(ctx);
    if docs.is_empty() && idea.is_none() {
        return Err(Failure {
            message: format!(
                "no backlog at {} and nothing to plan from: add a SPEC.md or README.md, pass --prompt \"what to build\", or create the backlog with `looper init`",
                ctx.backlog.display()
            ),
            code: EXIT_ERROR,
        }
        .into());
    }
    ctx.record("bootstrap.start", json!({"docs": docs, "idea": idea}))?;
    let text = prompt::render(
        &prompt::template(&ctx.root, "bootstrap")?,
        &[
            ("idea", idea.unwrap_or("See the files below.").to_owned()),
            (
                "docs",
                if docs.is_empty() {
                    "(none)".to_owned()
                } else {
                    docs.iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ],
    );
    let agent = ctx.config.bootstrap.clone();
    let mut problem = String::new();
    for _ in 0..ctx.config.retry_limit {
        if ctx.stop.hard() {
            return Err(super::interrupted());
        }
        let timeout = ctx.config.worker_timeout;
        let result = ran(schedule::run_with_fallback(
            ctx,
            &agent,
            Role::Bootstrap,
            &text,
            timeout,
            &[],
        )?)?;
        let report = if result.class == Class::Ok {
            reports::read::<BootstrapReport>(result.outcome.final_text.as_deref())
        } else {
            Err(step::describe_failure(&result))
        };
        let built = report.and_then(|r| build(&r, &docs));
        match built.and_then(|value| {
            ctx.store
                .create(value, false, &ctx.journal)
                .map_err(|e| format!("{e:#}"))
        }) {
            Ok(doc) => {
                write_schema(ctx)?;
                ctx.record(
                    "bootstrap.end",
                    json!({"valid": true, "tasks": doc.tasks().len()}),
                )?;
                return Ok(doc);
            }
            Err(p) => {
                ctx.record("bootstrap.end", json!({"valid": false, "problem": p}))?;
                problem = p;
            }
        }
    }
    Err(Failure {
        message: format!("the bootstrap agent gave no usable plan: {problem}"),
        code: EXIT_ERROR,
    }
    .into())
}

/// The backlog document for a plan.
pub(super) fn build(report: &BootstrapReport, docs: &[String]) -> Result<Value, String> {
    if report.tasks.is_empty() {
        return Err("the plan has no tasks".into());
    }
    let now = now_rfc3339();
    let tasks: Vec<Value> = report
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut task = json!({
                "id": format!("T{}", i + 1),
                "title": t.title.trim(),
                "priority": t.priority.unwrap_or(3).clamp(1, 5),
                "status": "todo",
            });
            let obj = task.as_object_mut().expect("a JSON object");
            if let Some(d) = &t.description {
                obj.insert("description".into(), json!(d));
            }
            for (key, list) in [
                ("depends_on", &t.depends_on),
                ("steps", &t.steps),
                ("files", &t.files),
                ("verify", &t.verify),
            ] {
                if !list.is_empty() {
                    obj.insert(key.into(), json!(list));
                }
            }
            obj.insert("created_at".into(), json!(now));
            obj.insert("updated_at".into(), json!(now));
            task
        })
        .collect();
    let sources = if report.source_files.is_empty() {
        docs.to_vec()
    } else {
        report.source_files.clone()
    };
    Ok(json!({
        "schema_version": 1,
        "project": {"root": "."},
        "source_files": sources,
        "tasks": tasks,
    }))
}

/// Replaces an invalid backlog with the repair agent's corrected document, if it is valid.
pub(crate) fn repair(ctx: &mut Ctx, error: &BacklogError) -> anyhow::Result<Doc> {
    ctx.set_step("repair");
    let content = fs_err::read_to_string(&ctx.backlog).unwrap_or_default();
    let mut problems = String::new();
    if let BacklogError::Invalid { problems: list, .. } = error {
        for p in list {
            let _ = writeln!(problems, "- {}: {}", p.pointer, p.message);
        }
    } else {
        let _ = writeln!(problems, "- {error}");
    }
    ctx.record(
        "repair.start",
        json!({"problems": problems.lines().collect::<Vec<_>>()}),
    )?;
    let backlog = ctx.backlog_display();
    let text = prompt::render(
        &prompt::template(&ctx.root, "repair")?,
        &[
            ("backlog", backlog),
            ("problems", problems.trim_end().to_owned()),
            ("content", content.trim_end().to_owned()),
        ],
    );
    let agent = ctx.config.repair.clone();
    let mut problem = String::new();
    for _ in 0..ctx.config.retry_limit {
        if ctx.stop.hard() {
            return Err(super::interrupted());
        }
        let timeout = ctx.config.worker_timeout;
        let result = ran(schedule::run_with_fallback(
            ctx,
            &agent,
            Role::Repair,
            &text,
            timeout,
            &[],
        )?)?;
        let report = if result.class == Class::Ok {
            reports::read::<RepairReport>(result.outcome.final_text.as_deref())
        } else {
            Err(step::describe_failure(&result))
        };
        match report
            .and_then(|r| keeps_every_task(&content, &r.backlog).map(|()| r))
            .and_then(|r| {
                ctx.store
                    .create(r.backlog, true, &ctx.journal)
                    .map_err(|e| format!("{e:#}"))
            }) {
            Ok(doc) => {
                ctx.record("repair.end", json!({"valid": true}))?;
                return Ok(doc);
            }
            Err(p) => {
                ctx.record("repair.end", json!({"valid": false, "problem": p}))?;
                problem = p;
            }
        }
    }
    Err(Failure {
        message: format!(
            "{} is invalid and the repair agent could not fix it: {problem}\nthe problems were:\n{}",
            ctx.backlog.display(),
            problems.trim_end()
        ),
        code: EXIT_ERROR,
    }
    .into())
}

/// A repair may fix tasks, never drop them: every id of the old file must survive.
fn keeps_every_task(old: &str, new: &Value) -> Result<(), String> {
    let Ok(old) = serde_json::from_str::<Value>(old) else {
        return Ok(());
    };
    let ids = |v: &Value| -> Vec<String> {
        v.get("tasks")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kept = ids(new);
    let lost: Vec<String> = ids(&old)
        .into_iter()
        .filter(|id| !kept.contains(id))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the corrected document drops task(s) {}",
            lost.join(", ")
        ))
    }
}

fn write_schema(ctx: &Ctx) -> anyhow::Result<()> {
    let path = ctx.backlog.with_file_name("to-do.schema.json");
    let text = crate::backlog::model::backlog_schema_text();
    crate::file::write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(())
}

/// The result of a bootstrap or repair step, or the end of the run when no agent could take
/// it (a stop or the time budget while waiting for a rate limit, or no usable agent).
fn ran(ran: Ran) -> anyhow::Result<crate::agent::supervise::RunResult> {
    match ran {
        Ran::Result(_, result) => Ok(*result),
        Ran::Ended(reason, code) => Err(Failure {
            message: reason.to_owned(),
            code,
        }
        .into()),
        Ran::Stuck(why) => Err(Failure {
            message: format!("no agent can take this step: {why}"),
            code: EXIT_ERROR,
        }
        .into()),
    }
}
