//! Read-mostly commands: `validate`, `fmt`, `ls`, `schema`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::backlog::{Status, TaskView};
use crate::error::Failure;
use crate::project::Project;
use crate::term;

pub(super) fn validate(project: &Project, as_json: bool) -> anyhow::Result<ExitCode> {
    let path = project.backlog_display();
    match super::store(project).load() {
        Ok(loaded) => {
            let tasks = loaded.doc.tasks();
            if as_json {
                print_json(
                    &json!({"valid": true, "path": project.backlog, "tasks": tasks.len(), "problems": []}),
                )?;
            } else {
                println!("ok: {path} is valid ({})", counts_line(&tasks));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) if as_json => {
            print_json(&json!({
                "valid": false,
                "path": project.backlog,
                "error": err.to_string().lines().next().unwrap_or_default(),
                "problems": err.problems(),
            }))?;
            Err(Failure {
                message: format!("{path} is not valid"),
                code: err.exit_code(),
            }
            .into())
        }
        Err(err) => Err(err.into()),
    }
}

pub(super) fn fmt(project: &Project, check: bool) -> anyhow::Result<ExitCode> {
    let path = project.backlog_display();
    let store = super::store(project);
    if check {
        let loaded = store.load()?;
        if loaded.is_canonical() {
            println!("ok: {path} is formatted");
            return Ok(ExitCode::SUCCESS);
        }
        return Err(Failure {
            message: format!("{path} is not formatted: run `looper fmt`"),
            code: 1,
        }
        .into());
    }
    let applied = store.update(
        &crate::backlog::ops::format(),
        &project.home.command_journal(),
    )?;
    super::ensure_schema_file(project)?;
    if applied.written {
        println!("formatted {path}");
    } else {
        println!("ok: {path} is already formatted");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn ls(
    project: &Project,
    status: Option<Status>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let loaded = super::store(project).load()?;
    let all = loaded.doc.tasks();
    let tasks: Vec<&TaskView<'_>> = all
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s))
        .collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if as_json {
        let list: Vec<&Value> = tasks.iter().map(|t| t.value).collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let color = term::stdout_color();
    let id_w = tasks
        .iter()
        .map(|t| t.id.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    let title_w = term::width().saturating_sub(id_w + 15).max(20);
    writeln!(
        out,
        "{}",
        term::paint(
            color,
            "1",
            &format!("{:<id_w$}  P  {:<7}  TITLE", "ID", "STATUS")
        )
    )?;
    for t in &tasks {
        let code = match t.status {
            Status::Todo => "0",
            Status::Doing => "33",
            Status::Blocked => "31",
            Status::Done => "32",
        };
        let mut title = truncate(t.title, title_w);
        if !t.depends_on.is_empty() {
            title = format!("{title}  (after {})", t.depends_on.join(", "));
        }
        let status = term::paint(color, code, &format!("{:<7}", t.status.as_str()));
        writeln!(out, "{:<id_w$}  {}  {status}  {title}", t.id, t.priority)?;
    }
    writeln!(out, "{}", counts_line(&all))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn schema() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    out.write_all(crate::backlog::model::backlog_schema_text().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `12 tasks: 3 todo, 1 doing, 0 blocked, 8 done`.
pub(super) fn counts_line(tasks: &[TaskView<'_>]) -> String {
    let mut counts: BTreeMap<usize, (Status, usize)> = Status::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| (i, (*s, 0)))
        .collect();
    for t in tasks {
        if let Some(i) = Status::ALL.iter().position(|s| *s == t.status)
            && let Some(c) = counts.get_mut(&i)
        {
            c.1 += 1;
        }
    }
    let parts: Vec<String> = counts.values().map(|(s, n)| format!("{n} {s}")).collect();
    let s = if tasks.len() == 1 { "" } else { "s" };
    format!("{} task{s}: {}", tasks.len(), parts.join(", "))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}
