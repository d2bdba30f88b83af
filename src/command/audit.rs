//! `looper audit`: replays every change the journal records for the backlog, from its first
//! snapshot, checking each step's sha256, and compares the result with the file on disk byte
//! for byte (DESIGN §4). Reports the external changes on the way and where a chain breaks.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::backlog::format::{sha256_hex, to_pretty_string};
use crate::backlog::merge::Diff;
use crate::backlog::replay::Replayer;
use crate::project::Project;

/// Where a record is: its run, `seq` and time.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct At {
    run: String,
    seq: u64,
    ts: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct External {
    at: At,
    /// One line per change: `T3: status "todo" -> "doing"`.
    changes: Vec<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Break {
    at: At,
    kind: String,
    problem: String,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(super) struct Audit {
    backlog: PathBuf,
    journals: usize,
    snapshots: usize,
    updates: usize,
    refused_updates: usize,
    external_changes: Vec<External>,
    breaks: Vec<Break>,
    /// Records that could not be checked: after a break until the next snapshot, or older
    /// than the snapshot `looper clean` took (or than every snapshot kept).
    unchecked: usize,
    replayed_sha256: Option<String>,
    disk_sha256: Option<String>,
    /// The replay's result is the file on disk, byte for byte.
    matches: bool,
    ok: bool,
}

/// The `backlog.*` records of every journal file, in the order they were written.
fn backlog_records(files: &[PathBuf]) -> anyhow::Result<Vec<(jiff::Timestamp, usize, Value)>> {
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let reader = std::io::BufReader::new(
            std::fs::File::open(file)
                .with_context(|| format!("cannot read the journal {}", file.display()))?,
        );
        // Only lines that can hold a backlog record are parsed (their type is a string that
        // starts with `backlog.`), whatever the spacing of the JSON.
        for line in reader.split(b'\n') {
            let line = line.with_context(|| format!("cannot read {}", file.display()))?;
            if memchr::memmem::find(&line, b"\"backlog.").is_none() {
                continue;
            }
            let Ok(r) = serde_json::from_slice::<Value>(&line) else {
                continue; // a torn line
            };
            if !r["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("backlog."))
            {
                continue;
            }
            let ts = r["ts"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .unwrap_or_default();
            out.push((ts, i, r));
        }
    }
    // The store journals under the backlog lock, so time order is the order of the changes;
    // ties keep file order.
    out.sort_by_key(|a| (a.0, a.1));
    Ok(out)
}

fn audit_of(backlog: &Path, runs_dir: &Path) -> anyhow::Result<Audit> {
    let files = crate::journal::read::journal_files(runs_dir);
    let mut a = Audit {
        backlog: backlog.to_path_buf(),
        journals: files.len(),
        ..Audit::default()
    };
    let mut replayer = Replayer::default();
    let mut broken = false;
    let records: Vec<Value> = backlog_records(&files)?
        .into_iter()
        .map(|(_, _, r)| r)
        .filter(|r| {
            r.get("path")
                .and_then(Value::as_str)
                .is_none_or(|p| Path::new(p) == backlog)
        })
        .collect();
    // `looper clean` deleted journals before its snapshot: the replay starts there.
    let start = records
        .iter()
        .rposition(|r| r["type"] == "backlog.snapshot" && r["source"] == "clean")
        .unwrap_or(0);
    a.unchecked = records[..start]
        .iter()
        .filter(|r| r["type"] != "backlog.update_refused")
        .count();
    for r in records.into_iter().skip(start) {
        let at = At {
            run: r["run"].as_str().unwrap_or("").to_owned(),
            seq: r["seq"].as_u64().unwrap_or(0),
            ts: r["ts"].as_str().unwrap_or("").to_owned(),
        };
        let kind = r["type"].as_str().unwrap_or("").to_owned();
        match kind.as_str() {
            "backlog.snapshot" => {
                a.snapshots += 1;
                // A fresh look at a file the replay had another version of: a gap.
                if r["source"] == "first-seen"
                    && let Some(state) = replayer.state()
                    && Some(state) != r.get("content")
                {
                    a.breaks.push(Break {
                        at: at.clone(),
                        kind: kind.clone(),
                        problem: "Looper saw the file afresh (its saved copy was gone) and it differs from the replay: a change in between is not in the journal".into(),
                    });
                }
                broken = false;
            }
            "backlog.update_refused" => {
                a.refused_updates += 1;
                continue;
            }
            "backlog.update" => a.updates += 1,
            "backlog.external_change" => a.external_changes.push(External {
                at: at.clone(),
                changes: serde_json::from_value::<Diff>(r["diff"].clone())
                    .map(|d| d.summary_lines())
                    .unwrap_or_default(),
            }),
            _ => continue,
        }
        if broken {
            a.unchecked += 1;
            continue;
        }
        match replayer.apply(&r) {
            // Changes older than every snapshot kept (`looper clean` deleted the journals
            // before them): nothing to check them against.
            Err(crate::backlog::replay::ReplayError::NoStart { .. }) if a.snapshots == 0 => {
                a.unchecked += 1;
            }
            Err(e) => {
                a.breaks.push(Break {
                    at,
                    kind,
                    problem: e.to_string(),
                });
                broken = true;
            }
            Ok(()) => {}
        }
    }
    let result = replayer.state().map(to_pretty_string);
    let disk = std::fs::read(backlog).ok();
    a.replayed_sha256 = result.as_ref().map(|t| sha256_hex(t.as_bytes()));
    a.disk_sha256 = disk.as_ref().map(|d| sha256_hex(d));
    a.matches = !broken
        && result
            .as_ref()
            .zip(disk.as_ref())
            .is_some_and(|(r, d)| r.as_bytes() == d.as_slice());
    a.ok = a.matches && a.breaks.is_empty();
    Ok(a)
}

pub(super) fn audit(project: &Project, as_json: bool) -> anyhow::Result<ExitCode> {
    let a = audit_of(&project.backlog, &project.home.runs())?;
    if as_json {
        super::inspect::print_json(&serde_json::to_value(&a)?)?;
    } else {
        super::history::emit(&render(project, &a))?;
    }
    Ok(if a.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render(project: &Project, a: &Audit) -> String {
    let short = |s: &Option<String>| s.as_deref().map_or("-".into(), |s| s[..12].to_owned());
    let mut out = format!(
        "audit of {}: {} updates, {} external changes, {} snapshots, {} refused updates, in {} journal files\n",
        project.backlog_display(),
        a.updates,
        a.external_changes.len(),
        a.snapshots,
        a.refused_updates,
        a.journals
    );
    if !a.external_changes.is_empty() {
        out.push_str("external changes (edits made outside Looper, merged in):\n");
        for e in &a.external_changes {
            let _ = writeln!(
                out,
                "  {} run {} seq {}: {}",
                e.at.ts.get(..19).unwrap_or(&e.at.ts).replace('T', " "),
                e.at.run,
                e.at.seq,
                if e.changes.is_empty() {
                    "formatting only".to_owned()
                } else {
                    e.changes.join("; ")
                }
            );
        }
    }
    for b in &a.breaks {
        let _ = writeln!(
            out,
            "BROKEN at run {} seq {} ({}, {}): {}",
            b.at.run, b.at.seq, b.kind, b.at.ts, b.problem
        );
    }
    if a.unchecked > 0 {
        let _ = writeln!(
            out,
            "{} records could not be checked (after a break, or from before the journals `looper clean` deleted)",
            a.unchecked
        );
    }
    let verdict = if a.ok {
        format!(
            "ok: the replay reproduces {} byte for byte (sha256 {})",
            project.backlog_display(),
            short(&a.disk_sha256)
        )
    } else if a.replayed_sha256.is_none() && a.breaks.is_empty() {
        "FAILED: the journal has no snapshot of this backlog to start from (was it made by another tool? any looper command that changes it records one)".to_owned()
    } else if !a.matches && a.breaks.is_empty() {
        format!(
            "FAILED: the replay gives sha256 {} but the file is {}: it was changed after Looper last saw it (the next change Looper makes, by `looper run`, `add`, `update` or `done`, journals it as an external change)",
            short(&a.replayed_sha256),
            short(&a.disk_sha256)
        )
    } else {
        "FAILED: the chain of changes breaks (see above)".to_owned()
    };
    let word = if a.ok { "ok" } else { "failed" };
    let _ = writeln!(
        out,
        "{}",
        crate::term::outcome(crate::term::stdout_color(), word, &verdict)
    );
    out
}
