//! What the working tree looks like, to tell whether an agent changed it (DESIGN §5:
//! evidence of work, reviewer violations) and to commit accepted work.
//!
//! In a git repository the snapshot is `HEAD` plus `git status`; elsewhere it is a sha256 per
//! file (skipping `.git`, `target`, `node_modules` and `.looper`). Git is run as a program with
//! the inherited `GIT_DIR` and friends cleared, so the user's config and hooks apply.

use std::collections::{BTreeMap, HashMap};
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

/// How long a file must have gone unchanged before it was read for its hash to be kept: a
/// file's times move in steps of the kernel's clock tick (up to 10 ms), so a change made
/// after a read gives it new times only when the times it had were older than that.
const SETTLED: std::time::Duration = std::time::Duration::from_millis(50);

/// The content hashes of a run's snapshots, kept while a file's metadata (device, inode,
/// size, modification and change times) stays what it was when it was read, so a snapshot
/// reads only the files that changed since the last one, as git's index does. A hash is
/// kept only for a file that had not changed for [`SETTLED`] before it was read: a change
/// during or after the read then shows in its change time.
#[derive(Debug, Default)]
pub(crate) struct Hashes {
    known: HashMap<PathBuf, (Stamp, String)>,
    /// Files read (not taken from `known`) so far.
    pub(crate) read: u64,
}

/// What says a file is unchanged: device, inode, size, and modification and change times.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

impl Hashes {
    /// The sha256 of regular file `path`, whose metadata is `meta`; kept for the next
    /// snapshot (in `next`) when it may be.
    fn hash(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        next: &mut HashMap<PathBuf, (Stamp, String)>,
    ) -> std::io::Result<String> {
        use std::os::unix::fs::MetadataExt as _;
        let stamp = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        if let Some((known, hash)) = self.known.remove(path)
            && known == stamp
        {
            next.insert(path.to_owned(), (stamp, hash.clone()));
            return Ok(hash);
        }
        let read_at = std::time::SystemTime::now();
        let hash = sha256_hex(&fs_err::read(path)?);
        self.read += 1;
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                u64::try_from(meta.ctime()).unwrap_or(0),
                u32::try_from(meta.ctime_nsec()).unwrap_or(0),
            );
        if changed + SETTLED < read_at {
            next.insert(path.to_owned(), (stamp, hash.clone()));
        }
        Ok(hash)
    }
}

/// Takes a snapshot of `root` (through git when `is_git`); files in `skip` (Looper's own) are
/// not read. Files unchanged since the last snapshot with `hashes` are not read again.
pub(crate) fn snapshot(
    root: &Path,
    skip: &[PathBuf],
    is_git: bool,
    hashes: &mut Hashes,
) -> anyhow::Result<Snapshot> {
    let mut next = HashMap::new();
    let snapshot = take_snapshot(root, skip, is_git, hashes, &mut next);
    hashes.known = next;
    snapshot
}

fn take_snapshot(
    root: &Path,
    skip: &[PathBuf],
    is_git: bool,
    hashes: &mut Hashes,
    next: &mut HashMap<PathBuf, (Stamp, String)>,
) -> anyhow::Result<Snapshot> {
    if is_git {
        // One git process for both: `# branch.oid` is HEAD (`(initial)` before the first
        // commit). A process start costs a millisecond or more.
        let status = git(
            root,
            &[
                "status",
                "--porcelain=v2",
                "-z",
                "--branch",
                "--untracked-files=all",
            ],
        )?;
        let mut head = None;
        let mut dirty = BTreeMap::new();
        let mut entries = status.split('\0');
        while let Some(entry) = entries.next() {
            if let Some(oid) = entry.strip_prefix("# branch.oid ") {
                head = (oid != "(initial)").then(|| oid.to_owned());
                continue;
            }
            let Some((code, path)) = status_entry(entry) else {
                continue;
            };
            if entry.starts_with('2') {
                // A rename or copy: the path it came from follows as an entry of its own.
                entries.next();
            }
            let full = root.join(path);
            if is_own_temp(&full, skip) {
                continue;
            }
            let hash = match std::fs::metadata(&full) {
                Ok(meta) if meta.is_file() && !skip.contains(&full) => hashes
                    .hash(&full, &meta, next)
                    .unwrap_or_else(|_| "-".into()),
                _ => "-".into(),
            };
            dirty.insert(path.to_owned(), format!("{code} {hash}"));
        }
        return Ok(Snapshot::Git { head, dirty });
    }
    let mut files = BTreeMap::new();
    walk(root, root, skip, &mut files, &mut |path, meta| {
        hashes.hash(path, meta, next)
    })?;
    Ok(Snapshot::Files(files))
}

/// The status code and path of one `git status --porcelain=v2 -z` entry: a changed (`1`),
/// renamed or copied (`2`), unmerged (`u`) or untracked (`?`) file. `None` for headers and
/// anything else.
fn status_entry(entry: &str) -> Option<(&str, &str)> {
    // The fields before the path: `1 XY sub mH mI mW hH hI`, `2 …` plus a score, and
    // `u XY sub m1 m2 m3 mW h1 h2 h3`.
    let fields = match entry.as_bytes().first()? {
        b'1' => 8,
        b'2' => 9,
        b'u' => 10,
        b'?' => return entry.get(2..).filter(|p| !p.is_empty()).map(|p| ("??", p)),
        _ => return None,
    };
    let mut parts = entry.splitn(fields + 1, ' ');
    let code = parts.nth(1)?;
    let path = parts.nth(fields - 2)?;
    Some((code, path))
}

/// Whether `path` is a temp file of one of Looper's own files (`skip`): Looper's, not the
/// agent's work, and gone a moment later.
fn is_own_temp(path: &Path, skip: &[PathBuf]) -> bool {
    skip.iter()
        .any(|own| own.parent() == path.parent() && crate::file::is_temp_of(path, own))
}

fn walk(
    root: &Path,
    dir: &Path,
    skip: &[PathBuf],
    out: &mut BTreeMap<String, String>,
    hash: &mut dyn FnMut(&Path, &std::fs::Metadata) -> std::io::Result<String>,
) -> anyhow::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                walk(root, &path, skip, out, hash)?;
            }
        } else if kind.is_file() && !skip.contains(&path) && !is_own_temp(&path, skip) {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            // A file deleted since the directory was listed is not in the tree. The entry's
            // metadata is read relative to the open directory (no walk of the whole path).
            let hashed = entry.metadata().and_then(|meta| hash(&path, &meta));
            match hashed {
                Ok(hashed) => {
                    out.insert(rel, hashed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
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
    identity: &std::cell::OnceCell<bool>,
) -> anyhow::Result<Option<String>> {
    git(root, &["add", "-A"])?;
    let mut message = format!("{subject}\n\n");
    for (key, value) in trailers {
        let _ = writeln!(message, "{key}: {value}");
    }
    let mut args = vec!["commit", "-q", "--no-verify", "-m", &message];
    // A machine without a git identity must still get its commits. Asked once (`identity`
    // keeps the answer): every git process costs a millisecond or more.
    let has_identity = *identity
        .get_or_init(|| git(root, &["config", "user.email"]).is_ok_and(|e| !e.trim().is_empty()));
    let looper = [
        "-c",
        "user.name=Looper",
        "-c",
        "user.email=looper@localhost",
    ];
    if !has_identity {
        args.splice(0..0, looper);
    }
    crate::fault::point("git.before-commit");
    if let Err(e) = git(root, &args) {
        // With nothing staged `git commit` fails; only then is the index asked, one git
        // process fewer for every commit made.
        if git(root, &["diff", "--cached", "--quiet"]).is_ok() {
            return Ok(None);
        }
        return Err(e);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &Path, hashes: &mut Hashes) -> BTreeMap<String, String> {
        match snapshot(root, &[], false, hashes).unwrap() {
            Snapshot::Files(files) => files,
            Snapshot::Git { .. } => unreachable!(),
        }
    }

    /// A file is read again only when it changed: a rewrite with the same size a moment
    /// after it was read (the same clock tick) is still seen, and one long after it too.
    #[test]
    fn snapshots_read_only_changed_files_and_see_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("old.txt"), "aaaa").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/new.txt"), "bbbb").unwrap();
        std::thread::sleep(SETTLED * 2);
        let mut hashes = Hashes::default();
        let first = files(root, &mut hashes);
        assert_eq!(first["old.txt"], sha256_hex(b"aaaa"));
        assert_eq!(hashes.read, 2);

        // Nothing changed: nothing is read.
        assert_eq!(files(root, &mut hashes), first);
        assert_eq!(hashes.read, 2);

        // Rewritten at once with the same size, twice: read each time, never stale.
        for text in ["cccc", "dddd"] {
            std::fs::write(root.join("sub/new.txt"), text).unwrap();
            let now = files(root, &mut hashes);
            assert_eq!(now["sub/new.txt"], sha256_hex(text.as_bytes()));
            assert_eq!(now["old.txt"], first["old.txt"]);
        }
        assert_eq!(hashes.read, 4);

        // Long after its last read, a same-size rewrite still changes its times.
        std::thread::sleep(SETTLED * 2);
        files(root, &mut hashes);
        std::fs::write(root.join("old.txt"), "eeee").unwrap();
        assert_eq!(files(root, &mut hashes)["old.txt"], sha256_hex(b"eeee"));
        // A deleted file is gone from the snapshot and from what is kept.
        std::fs::remove_file(root.join("sub/new.txt")).unwrap();
        assert_eq!(files(root, &mut hashes).len(), 1);
        assert_eq!(hashes.known.len(), 0, "old.txt was just written");
    }

    /// Every kind of `git status --porcelain=v2` entry gives its code and its whole path,
    /// spaces included; headers give nothing.
    #[test]
    fn status_entries_read_code_and_path() {
        let h = "0123456789abcdef0123456789abcdef01234567";
        for (entry, want) in [
            (
                format!("1 .M N... 100644 100644 100644 {h} {h} a b.txt"),
                Some((".M", "a b.txt")),
            ),
            (
                format!("2 R. N... 100644 100644 100644 {h} {h} R100 new name"),
                Some(("R.", "new name")),
            ),
            (
                format!("u UU N... 100644 100644 100644 100644 {h} {h} {h} c.txt"),
                Some(("UU", "c.txt")),
            ),
            ("? sub/u v.txt".to_owned(), Some(("??", "sub/u v.txt"))),
            ("# branch.oid (initial)".to_owned(), None),
            ("! ignored.txt".to_owned(), None),
            (String::new(), None),
            ("1 .M".to_owned(), None),
        ] {
            assert_eq!(status_entry(&entry), want, "{entry}");
        }
    }

    /// A git tree's snapshot, from one `git status`: HEAD (none before the first commit),
    /// and each changed path once with its code, a staged rename under its new name only.
    #[test]
    fn git_snapshots_see_head_and_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = |args: &[&str]| git(root, args).unwrap();
        run(&["init", "-q"]);
        run(&["config", "user.email", "t@example.com"]);
        run(&["config", "user.name", "t"]);
        std::fs::write(root.join("a b.txt"), "a").unwrap();
        let snap = |hashes: &mut Hashes| match snapshot(root, &[], true, hashes).unwrap() {
            Snapshot::Git { head, dirty } => (head, dirty),
            Snapshot::Files(_) => unreachable!(),
        };
        let mut hashes = Hashes::default();
        let (head, dirty) = snap(&mut hashes);
        assert_eq!(head, None);
        assert_eq!(dirty.keys().collect::<Vec<_>>(), ["a b.txt"]);
        assert_eq!(dirty["a b.txt"], format!("?? {}", sha256_hex(b"a")));

        for name in ["m.txt", "d.txt", "old.txt"] {
            std::fs::write(root.join(name), name).unwrap();
        }
        run(&["add", "-A"]);
        run(&["commit", "-qm", "first"]);
        std::fs::write(root.join("m.txt"), "changed").unwrap();
        std::fs::remove_file(root.join("d.txt")).unwrap();
        run(&["mv", "old.txt", "new name.txt"]);
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/u.txt"), "u").unwrap();
        let (head, dirty) = snap(&mut hashes);
        assert_eq!(head.as_deref(), Some(run(&["rev-parse", "HEAD"]).trim()));
        assert_eq!(
            dirty.keys().collect::<Vec<_>>(),
            ["d.txt", "m.txt", "new name.txt", "sub/u.txt"]
        );
        assert_eq!(dirty["d.txt"], ".D -");
        assert_eq!(dirty["m.txt"], format!(".M {}", sha256_hex(b"changed")));
        assert!(dirty["new name.txt"].starts_with("R. "), "{dirty:?}");
    }

    /// Without a git identity, commits are Looper's; git is asked once per run (the cell),
    /// and a run that starts with an identity commits with it.
    #[test]
    fn commits_use_the_identity_git_had_at_the_first_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = |args: &[&str]| git(root, args).unwrap();
        run(&["init", "-q"]);
        run(&["config", "user.name", "Me"]);
        run(&["config", "user.email", ""]);
        let author = || run(&["log", "-1", "--format=%ae"]).trim().to_owned();
        let trailers = [("Looper-Task", "T1".to_owned())];
        let identity = std::cell::OnceCell::new();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        let first = commit(root, "T1: a", &trailers, &identity)
            .unwrap()
            .unwrap();
        assert_eq!(first, run(&["rev-parse", "HEAD"]).trim());
        assert_eq!(author(), "looper@localhost");
        assert_eq!(identity.get(), Some(&false));
        assert!(run(&["log", "-1", "--format=%B"]).contains("Looper-Task: T1"));
        // Nothing left to commit: no commit.
        assert_eq!(commit(root, "T1: a", &trailers, &identity).unwrap(), None);

        // Configured during the run: the run goes on as it started; the next run uses it.
        run(&["config", "user.email", "me@example.com"]);
        std::fs::write(root.join("b.txt"), "b").unwrap();
        commit(root, "T2: b", &trailers, &identity)
            .unwrap()
            .unwrap();
        assert_eq!(author(), "looper@localhost");
        std::fs::write(root.join("c.txt"), "c").unwrap();
        commit(root, "T3: c", &trailers, &std::cell::OnceCell::new())
            .unwrap()
            .unwrap();
        assert_eq!(author(), "me@example.com");
    }

    /// A temp file of Looper's own files (the backlog's replaced version, removed on a
    /// thread of its own) is not the agent's work.
    #[test]
    fn temps_of_own_files_are_not_in_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let backlog = root.join("to-do.json");
        std::fs::write(&backlog, "{}").unwrap();
        std::fs::write(root.join(".to-do.json.Ab12Cd.tmp"), "{}").unwrap();
        std::fs::write(root.join(".notes.Ab12Cd.tmp"), "mine").unwrap();
        let snapshot = snapshot(root, &[backlog], false, &mut Hashes::default()).unwrap();
        let Snapshot::Files(files) = snapshot else {
            unreachable!()
        };
        assert_eq!(files.keys().collect::<Vec<_>>(), [".notes.Ab12Cd.tmp"]);
    }
}
