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
        return ls_json(&store, status, &mut out);
    }
    let text = listing(project, &store)?;
    let Some((all, dropped)) = index::rows(&text) else {
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
    // A status Looper keeps over a completion made outside it is marked with `*`.
    let status_w = 7 + usize::from(all.iter().any(|t| t.refused));
    let title_w = term::width().saturating_sub(id_w + status_w + 8).max(20);
    writeln!(
        out,
        "{}",
        term::paint(
            color,
            "1",
            &format!("{:<id_w$}  P  {:<status_w$}  TITLE", "ID", "STATUS")
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
        let mark = if t.refused { "*" } else { "" };
        if color {
            write!(out, "\x1b[{code}m{status}\x1b[0m{mark}")?;
        } else {
            out.write_all(status.as_bytes())?;
            out.write_all(mark.as_bytes())?;
        }
        pad(&mut out, status_w - status.len() - mark.len())?;
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
    let refused: Vec<std::borrow::Cow<'_, str>> = all
        .iter()
        .filter(|t| t.refused)
        .map(index::RawRow::id)
        .collect();
    let refused: Vec<&str> = refused.iter().map(AsRef::as_ref).collect();
    let dropped: Vec<&str> = dropped.iter().map(AsRef::as_ref).collect();
    for line in refusal_notes(&refused, &dropped) {
        writeln!(out, "* {line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `ls --json`: the tasks as Looper holds them, as `status` counts them; what differs from
/// the file is said on stderr, which leaves the JSON whole.
fn ls_json(
    store: &crate::backlog::persist::BacklogStore,
    status: Option<Status>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let loaded = store.load()?;
    let (doc, refusals) = store.refusals_pending(&loaded);
    let (refused, dropped) = refused_and_dropped(&refusals);
    for line in refusal_notes(&refused, &dropped) {
        eprintln!("note: {line}");
    }
    let all = doc.tasks();
    let list: Vec<&Value> = all
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s))
        .map(|t| t.value)
        .collect();
    serde_json::to_writer_pretty(&mut *out, &list)?;
    writeln!(out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The listing index's text for the backlog as it is: the stored one while the file is
/// unchanged (it spares a full parse and validation), else made from the file and stored.
fn listing(
    project: &Project,
    store: &crate::backlog::persist::BacklogStore,
) -> anyhow::Result<String> {
    let key = index::file_key(&project.backlog);
    if let Some(text) = key
        .as_deref()
        .and_then(|k| index::read_text(&store.index_path(), k))
    {
        return Ok(text);
    }
    let loaded = store.load()?;
    let (doc, refusals) = store.refusals_pending(&loaded);
    let (refused, dropped) = refused_and_dropped(&refusals);
    let rows: Vec<Row> = doc
        .tasks()
        .iter()
        .map(|t| Row {
            refused: refused.contains(&t.id),
            ..Row::from_view(t)
        })
        .collect();
    let dropped: Vec<String> = dropped.into_iter().map(str::to_owned).collect();
    // Key the index by the file as it was before the load; if it changed meanwhile, the next
    // `ls` sees a different key and loads again.
    Ok(index::write(
        &store.index_path(),
        &key.unwrap_or_default(),
        &rows,
        &dropped,
    ))
}

/// The ids of the tasks whose completion made outside Looper is refused, and of the
/// project-done markers added outside Looper (dropped), from `refusals`.
fn refused_and_dropped(refusals: &[crate::backlog::merge::Refusal]) -> (Vec<&str>, Vec<&str>) {
    let ids = |marker: bool| {
        let mut ids: Vec<&str> = refusals
            .iter()
            .filter(|r| r.drops_marker() == marker)
            .map(|r| r.id.as_str())
            .collect();
        ids.dedup();
        ids
    };
    (ids(false), ids(true))
}

/// What `ls` says below the list about edits Looper's next write refuses.
fn refusal_notes(refused: &[&str], dropped: &[&str]) -> Vec<String> {
    let mut notes = Vec::new();
    if !refused.is_empty() {
        notes.push(format!(
            "{} marked done in the file outside Looper: listed as Looper keeps {}, and undone at Looper's next write (`looper done ID --reason TEXT` completes a task)",
            refused.join(", "),
            if refused.len() == 1 { "it" } else { "them" }
        ));
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "{} (project-done {}) added outside Looper: not listed, and dropped at Looper's next write (only the review pass adds one)",
            dropped.join(", "),
            if dropped.len() == 1 { "marker" } else { "markers" }
        ));
    }
    notes
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
