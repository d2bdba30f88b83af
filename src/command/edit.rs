//! Commands that change the backlog: `add`, `update`, `done`. Each is a jq program applied
//! through the store.

use std::process::ExitCode;

use serde_json::Value;

use crate::backlog::ops::{self, NewTask};
use crate::backlog::persist::Applied;
use crate::error::UsageError;
use crate::project::Project;

pub(super) fn add(project: &Project, task: &NewTask, as_json: bool) -> anyhow::Result<ExitCode> {
    if task.title.trim().is_empty() {
        return Err(UsageError::new("the title must not be empty").into());
    }
    // The ids' style is a hint read before the lock; the number is taken under it.
    let style = crate::backlog::load::load(&project.backlog)
        .map(|l| ops::IdStyle::of(l.doc.value()))
        .unwrap_or_default();
    let applied = apply(project, &ops::add(task, &style))?;
    let added = applied
        .diff
        .added
        .last()
        .map_or(Value::Null, |a| a.task.clone());
    if as_json {
        super::inspect::print_json(&added)?;
    } else {
        let id = added.get("id").and_then(Value::as_str).unwrap_or("?");
        println!("added {id}: {}", task.title);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn update(
    project: &Project,
    program: &str,
    arg: &[String],
    argjson: &[String],
) -> anyhow::Result<ExitCode> {
    let mut args: Vec<(String, Value)> = Vec::new();
    for pair in arg.chunks(2) {
        if let [name, value] = pair {
            args.push((check_name(name)?, Value::String(value.clone())));
        }
    }
    for pair in argjson.chunks(2) {
        if let [name, value] = pair {
            let v: Value = serde_json::from_str(value)
                .map_err(|e| UsageError::new(format!("--argjson {name}: not valid JSON: {e}")))?;
            args.push((check_name(name)?, v));
        }
    }
    let applied = apply(project, &ops::user(program, args))?;
    print_changes(project, &applied);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn done(project: &Project, id: &str, reason: &str) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        return Err(UsageError::new("--reason must say why the task is done").into());
    }
    let applied = apply(project, &ops::done_by_hand(id, reason))?;
    if applied.diff.is_empty() {
        println!("{id} was already done");
    } else {
        println!("{id} is done (by hand: {reason})");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_string())
    } else {
        Err(UsageError::new(format!(
            "bad variable name {name:?}: use letters, digits and _"
        ))
        .into())
    }
}

fn apply(project: &Project, change: &ops::Change) -> anyhow::Result<Applied> {
    let applied = super::store(project).update(change, &project.home.command_journal())?;
    super::ensure_schema_file(project)?;
    if let Some(ext) = &applied.external {
        eprintln!(
            "note: {} was edited outside Looper; merged:",
            project.backlog_display()
        );
        for line in capped(ext.diff.summary_lines()) {
            eprintln!("  {line}");
        }
        for r in &ext.refusals {
            eprintln!("  refused {} {}: {}", r.id, r.field, r.reason);
        }
    }
    for c in &applied.conflicts {
        eprintln!(
            "note: conflict on {}{}: the external edit was kept",
            c.id.as_deref().map(|i| format!("{i} ")).unwrap_or_default(),
            c.field
        );
    }
    Ok(applied)
}

fn print_changes(project: &Project, applied: &Applied) {
    let lines = applied.diff.summary_lines();
    if lines.is_empty() {
        println!("no change to {}", project.backlog_display());
    } else {
        println!("updated {}:", project.backlog_display());
        for line in capped(lines) {
            println!("  {line}");
        }
    }
}

/// At most 20 lines of a change summary; the journal has the rest.
fn capped(mut lines: Vec<String>) -> Vec<String> {
    const MAX: usize = 20;
    if lines.len() > MAX {
        let more = lines.len() - MAX;
        lines.truncate(MAX);
        lines.push(format!("... and {more} more changes (in the journal)"));
    }
    lines
}
