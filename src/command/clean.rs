//! `looper clean`: deletes old journals (a run's JSONL and its directory of agent outputs, and
//! daily command journals). Never the run going on now, nor today's command journal. Before deleting, it journals a
//! snapshot of the backlog, so `looper audit` still has a start to replay from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

use crate::error::UsageError;
use crate::journal::read;
use crate::project::Project;

/// `30d`, `12h`, `2w`, `90m`, `45s`.
pub(super) fn parse_age(text: &str) -> Result<Duration, UsageError> {
    let bad = || {
        UsageError::new(format!(
            "--older-than {text:?} is not an age: write a number and a unit, e.g. 30d, 12h, 2w"
        ))
    };
    let t = text.trim();
    let unit_at = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = t[..unit_at].parse().map_err(|_| bad())?;
    let secs = match &t[unit_at..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?))
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub(super) struct Cleaned {
    dry_run: bool,
    /// The journals deleted (or that would be, with `--dry-run`).
    deleted: Vec<PathBuf>,
    kept: usize,
    bytes: u64,
}

fn modified(path: &Path) -> SystemTime {
    path.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Bytes of a file, or of a directory's files.
fn size_of(path: &Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().map(|e| size_of(&e.path())).sum(),
        Err(_) => path.metadata().map_or(0, |m| m.len()),
    }
}

pub(super) fn clean(
    project: &Project,
    keep: Option<usize>,
    older_than: Option<&str>,
    dry_run: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    if keep.is_none() && older_than.is_none() {
        return Err(UsageError::new(
            "say what to delete: --keep N (keep the N newest runs) and/or --older-than AGE (e.g. 30d)",
        )
        .into());
    }
    let age = older_than.map(parse_age).transpose()?;
    let runs_dir = project.home.runs();
    let runs = read::run_files(&runs_dir);
    let running = crate::run::running_pid(project).and(runs.last().cloned());
    let now = SystemTime::now();
    let too_old =
        |p: &Path| age.is_some_and(|age| now.duration_since(modified(p)).is_ok_and(|d| d > age));
    // Runs: beyond the newest `keep`, or not written to for longer than the age.
    let keep_from = keep.map_or(0, |k| runs.len().saturating_sub(k));
    let mut doomed: Vec<PathBuf> = runs
        .iter()
        .enumerate()
        .filter(|(i, p)| Some(*p) != running.as_ref() && (*i < keep_from || too_old(p)))
        .map(|(_, p)| p.clone())
        .collect();
    // Command journals: by age, or older than every run kept.
    let oldest_kept = runs
        .iter()
        .filter(|p| !doomed.contains(p))
        .map(|p| modified(p))
        .min();
    // Today's command journal gets the snapshot: it stays.
    let today = project.home.command_journal().path().to_path_buf();
    for p in read::journal_files(&runs_dir) {
        if p == today {
            continue;
        }
        let is_cmd = p
            .file_stem()
            .is_some_and(|s| s.to_string_lossy().ends_with("-cmd"));
        if is_cmd
            && (too_old(&p) || (keep.is_some() && oldest_kept.is_some_and(|t| modified(&p) < t)))
        {
            doomed.push(p);
        }
    }
    doomed.sort();
    let mut out = Cleaned {
        dry_run,
        kept: read::journal_files(&runs_dir).len() - doomed.len(),
        ..Cleaned::default()
    };
    for p in &doomed {
        out.bytes += size_of(p) + size_of(&p.with_extension(""));
    }
    if !dry_run && !doomed.is_empty() {
        snapshot(project)?;
        for p in &doomed {
            std::fs::remove_file(p)
                .with_context(|| format!("cannot delete the journal {}", p.display()))?;
            let dir = p.with_extension("");
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot delete {}", dir.display()))?;
            }
        }
    }
    out.deleted = doomed;
    if as_json {
        super::inspect::print_json(&serde_json::to_value(&out)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    for p in &out.deleted {
        println!("{verb} {}", p.display());
    }
    println!(
        "{verb} {} journals ({} KiB), kept {}",
        out.deleted.len(),
        out.bytes.div_ceil(1024),
        out.kept
    );
    Ok(ExitCode::SUCCESS)
}

/// Journals the backlog as it is now (a `backlog.snapshot`, source `clean`), so the replay
/// `looper audit` makes has a start after older journals are gone.
fn snapshot(project: &Project) -> anyhow::Result<()> {
    if !project.backlog.exists() {
        return Ok(());
    }
    let store = crate::backlog::persist::BacklogStore::new(&project.backlog, &project.home.state());
    store.snapshot("clean", &project.home.command_journal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "d", "30", "30 days", "-1d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
