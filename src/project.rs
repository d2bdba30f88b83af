//! Finding the project: its root directory and its backlog file.
//!
//! The root is the nearest directory, from `--dir` (or the current directory) upwards, that
//! holds `to-do.json`, `.looper/todo.json`, `looper.toml` or `.looper/looper.toml`; the search
//! stops at a git repository's top. Without one, the starting directory is the root. The
//! backlog is `--backlog` if given, else `to-do.json`, else `.looper/todo.json` (the original
//! looper's location), else `to-do.json` (to be created).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::ProjectDir;

const MARKERS: &[&str] = &[
    "to-do.json",
    ".looper/todo.json",
    "looper.toml",
    ".looper/looper.toml",
];

/// A located project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Canonical project root.
    pub root: PathBuf,
    /// The backlog file (absolute; may not exist yet).
    pub backlog: PathBuf,
    /// The project's directory under `LOOPER_HOME`.
    pub home: ProjectDir,
}

impl Project {
    /// Locates the project from the command line's `--dir` and `--backlog`.
    pub fn discover(dir: Option<&Path>, backlog: Option<&Path>) -> anyhow::Result<Project> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let start = match dir {
            Some(d) => cwd.join(d),
            None => cwd.clone(),
        };
        let start = start
            .canonicalize()
            .with_context(|| format!("cannot open project directory {}", start.display()))?;
        let root = if backlog.is_some() {
            start.clone()
        } else {
            find_root(&start)
        };
        let backlog = match backlog {
            Some(b) => absolute(&cwd.join(b)),
            None => default_backlog(&root),
        };
        let home = ProjectDir::for_root(&crate::store::looper_home()?, &root);
        Ok(Project {
            root,
            backlog,
            home,
        })
    }

    /// The schema file that goes beside the backlog (`to-do.json` → `to-do.schema.json`).
    pub fn schema_path(&self) -> PathBuf {
        let stem = self
            .backlog
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.backlog.with_file_name(format!("{stem}.schema.json"))
    }

    /// The backlog path relative to the root when inside it, for messages.
    pub fn backlog_display(&self) -> String {
        self.backlog
            .strip_prefix(&self.root)
            .unwrap_or(&self.backlog)
            .display()
            .to_string()
    }
}

fn find_root(start: &Path) -> PathBuf {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if MARKERS.iter().any(|m| d.join(m).exists()) {
            return d.to_path_buf();
        }
        if d.join(".git").exists() {
            break;
        }
        dir = d.parent();
    }
    start.to_path_buf()
}

fn default_backlog(root: &Path) -> PathBuf {
    let primary = root.join("to-do.json");
    let legacy = root.join(".looper").join("todo.json");
    if !primary.exists() && legacy.exists() {
        legacy
    } else {
        primary
    }
}

/// An absolute path with `.` and `..` resolved through the existing parent, if any.
fn absolute(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map_or_else(|_| path.to_path_buf(), |p| p.join(name)),
        _ => path.to_path_buf(),
    }
}
