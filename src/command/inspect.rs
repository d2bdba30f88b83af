//! Read-mostly commands: `validate`, `fmt`, `ls`, `schema`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::backlog::Status;
use crate::backlog::index::{self, Row};
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
                println!(
                    "ok: {path} is valid ({})",
                    counts_line(tasks.iter().map(|t| t.status))
                );
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
    let store = super::store(project);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if as_json {
        let loaded = store.load()?;
        let all = loaded.doc.tasks();
        let list: Vec<&Value> = all
            .iter()
            .filter(|t| status.is_none_or(|s| t.status == s))
            .map(|t| t.value)
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    // The listing index spares a full parse and validation of an unchanged backlog.
    let key = index::file_key(&project.backlog);
    let cached = key
        .as_deref()
        .and_then(|k| index::read_text(&store.index_path(), k));
    let text = if let Some(text) = cached {
        text
    } else {
        let loaded = store.load()?;
        let rows: Vec<Row> = loaded.doc.tasks().iter().map(Row::from_view).collect();
        // Key the index by the file as it was before the load; if it changed meanwhile,
        // the next `ls` sees a different key and loads again.
        index::write(&store.index_path(), &key.unwrap_or_default(), &rows)
    };
    let Some(all) = index::rows(&text) else {
        // A damaged index: drop it and list from the file itself.
        let _ = std::fs::remove_file(store.index_path());
        return ls(project, status, as_json);
    };
    let tasks: Vec<&index::RawRow<'_>> = all
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s))
        .collect();
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
        // Plain byte writes: this loop prints 100k rows for a large backlog.
        let id = t.id();
        out.write_all(id.as_bytes())?;
        pad(&mut out, id_w.saturating_sub(id.chars().count()) + 2)?;
        out.write_all(&[b'0' + t.priority % 10, b' ', b' '])?;
        let status = t.status.as_str();
        if color {
            write!(out, "\x1b[{code}m{status:<7}\x1b[0m")?;
        } else {
            out.write_all(status.as_bytes())?;
            pad(&mut out, 7 - status.len())?;
        }
        out.write_all(b"  ")?;
        out.write_all(truncate(&t.title(), title_w).as_bytes())?;
        let mut deps = t.depends_on().peekable();
        if deps.peek().is_some() {
            out.write_all(b"  (after ")?;
            for (i, d) in deps.enumerate() {
                if i > 0 {
                    out.write_all(b", ")?;
                }
                out.write_all(d.as_bytes())?;
            }
            out.write_all(b")")?;
        }
        out.write_all(b"\n")?;
    }
    writeln!(out, "{}", counts_line(all.iter().map(|r| r.status)))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `12 tasks: 3 todo, 1 doing, 0 blocked, 8 done`.
pub(super) fn counts_line(statuses: impl Iterator<Item = Status>) -> String {
    let mut counts = [0usize; 4];
    for st in statuses {
        if let Some(i) = Status::ALL.iter().position(|s| *s == st) {
            counts[i] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let parts: Vec<String> = Status::ALL
        .iter()
        .zip(counts)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let s = if total == 1 { "" } else { "s" };
    format!("{total} task{s}: {}", parts.join(", "))
}

fn pad(out: &mut impl Write, n: usize) -> std::io::Result<()> {
    const SPACES: &[u8] = &[b' '; 64];
    out.write_all(&SPACES[..n.min(SPACES.len())])
}

fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max || s.chars().count() <= max {
        std::borrow::Cow::Borrowed(s)
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        std::borrow::Cow::Owned(format!("{cut}…"))
    }
}

pub(super) fn print_json(v: &Value) -> anyhow::Result<()> {
    // Serialize first, so a reader that went away is an io::Error (quietly ignored), not
    // one wrapped in a serde error.
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
