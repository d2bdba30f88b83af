//! What the working tree looks like, to tell whether an agent changed it (DESIGN §5:
//! evidence of work, reviewer violations) and to commit accepted work.
//!
//! In a git repository the snapshot is `HEAD` plus `git status`; elsewhere it is a sha256 per
//! file (skipping `.git`, `target`, `node_modules` and `.looper`). Git is run as a program with
//! the inherited `GIT_DIR` and friends cleared, so the user's config and hooks apply.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::backlog::format::sha256_hex;

const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules", ".looper"];

/// The tree at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Snapshot {
    Git {
        head: Option<String>,
        /// `git status --porcelain` entries: path → status and content hash.
        dirty: BTreeMap<String, String>,
    },
    Files(BTreeMap<String, String>),
}

impl Snapshot {
    pub(crate) fn head(&self) -> Option<&str> {
        match self {
            Self::Git { head, .. } => head.as_deref(),
            Self::Files(_) => None,
        }
    }
}

/// Whether `root` is inside a git work tree.
pub(crate) fn is_git(root: &Path) -> bool {
    git(root, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|out| out.trim() == "true")
}

/// Takes a snapshot of `root` (through git when `is_git`); files in `skip` (Looper's own) are
/// not read.
pub(crate) fn snapshot(root: &Path, skip: &[PathBuf], is_git: bool) -> anyhow::Result<Snapshot> {
    if is_git {
        let head = git(root, &["rev-parse", "--verify", "-q", "HEAD"])
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        let status = git(
            root,
            &["status", "--porcelain=v1", "-z", "--untracked-files=all"],
        )?;
        let mut dirty = BTreeMap::new();
        for entry in status.split('\0').filter(|e| e.len() > 3) {
            let path = &entry[3..];
            let full = root.join(path);
            let hash = if skip.contains(&full) {
                "-".into()
            } else {
                fs_err::read(&full).map_or_else(|_| "-".into(), |b| sha256_hex(&b))
            };
            dirty.insert(path.to_owned(), format!("{} {hash}", &entry[..2]));
        }
        return Ok(Snapshot::Git { head, dirty });
    }
    let mut files = BTreeMap::new();
    walk(root, root, skip, &mut files)?;
    Ok(Snapshot::Files(files))
}

fn walk(
    root: &Path,
    dir: &Path,
    skip: &[PathBuf],
    out: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                walk(root, &path, skip, out)?;
            }
        } else if kind.is_file() && !skip.contains(&path) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.insert(rel, sha256_hex(&fs_err::read(&path)?));
        }
    }
    Ok(())
}

/// The paths that differ between two snapshots, minus `ignored` (the backlog and its schema),
/// plus the files of commits made in between.
pub(crate) fn changed(
    root: &Path,
    before: &Snapshot,
    after: &Snapshot,
    ignored: &[PathBuf],
) -> Vec<String> {
    let ignored: Vec<String> = ignored
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut paths = std::collections::BTreeSet::new();
    let (a, b) = match (before, after) {
        (Snapshot::Git { head: h1, dirty: a }, Snapshot::Git { head: h2, dirty: b }) => {
            if h1 != h2
                && let Some(h2) = h2
            {
                let range = h1
                    .as_ref()
                    .map_or_else(|| h2.clone(), |h1| format!("{h1}..{h2}"));
                let args: Vec<&str> = if h1.is_some() {
                    vec!["diff", "--name-only", "-z", &range]
                } else {
                    vec!["show", "--name-only", "-z", "--format=", h2]
                };
                if let Ok(names) = git(root, &args) {
                    paths.extend(
                        names
                            .split('\0')
                            .filter(|n| !n.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            (a, b)
        }
        (Snapshot::Files(a), Snapshot::Files(b)) => (a, b),
        // The project became (or stopped being) a repository: everything may have changed.
        _ => return vec![".".into()],
    };
    for (path, v) in b {
        if a.get(path) != Some(v) {
            paths.insert(path.clone());
        }
    }
    for path in a.keys() {
        if !b.contains_key(path) {
            paths.insert(path.clone());
        }
    }
    paths.into_iter().filter(|p| !ignored.contains(p)).collect()
}

/// Paths that touch tests, gate config or CI: flagged for the reviewer (DESIGN §5).
pub(crate) fn sensitive(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| {
            let lower = p.to_ascii_lowercase();
            lower.starts_with("tests/")
                || lower.contains("/tests/")
                || lower.contains("test_")
                || lower.contains("_test.")
                || lower.contains(".test.")
                || lower.contains(".spec.")
                || lower.starts_with(".github/")
                || lower.starts_with(".ci/")
                || lower.starts_with(".gitlab-ci")
                || lower == "looper.toml"
                || lower == ".looper/looper.toml"
        })
        .cloned()
        .collect()
}

/// Commits everything left uncommitted, with Looper's trailers; `None` when there was nothing
/// to commit.
pub(crate) fn commit(
    root: &Path,
    subject: &str,
    trailers: &[(&str, String)],
) -> anyhow::Result<Option<String>> {
    git(root, &["add", "-A"])?;
    if git(root, &["diff", "--cached", "--quiet"]).is_ok() {
        return Ok(None);
    }
    let mut message = format!("{subject}\n\n");
    for (key, value) in trailers {
        let _ = writeln!(message, "{key}: {value}");
    }
    let mut args = vec!["commit", "-q", "--no-verify", "-m", &message];
    // A machine without a git identity must still get its commits.
    let has_identity = git(root, &["config", "user.email"]).is_ok_and(|e| !e.trim().is_empty());
    let identity = [
        "-c",
        "user.name=Looper",
        "-c",
        "user.email=looper@localhost",
    ];
    if !has_identity {
        args.splice(0..0, identity);
    }
    crate::fault::point("git.before-commit");
    git(root, &args)?;
    crate::fault::point("git.committed");
    Ok(Some(git(root, &["rev-parse", "HEAD"])?.trim().to_owned()))
}

/// Runs git in `root` and returns its stdout; a non-zero exit is an error with its stderr.
pub(crate) fn git(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .output()
        .context("cannot run git: is it installed?")?;
    if !out.status.success() {
        bail!(
            "git {} failed in {}: {}",
            args.join(" "),
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
