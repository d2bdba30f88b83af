//! The `LOOPER_HOME` layout (DESIGN §2): `$LOOPER_HOME/projects/<slug>-<hash8>/` holds a
//! project's `runs/` (journals) and `state/` (backlog locks and the last version Looper wrote).
//! `LOOPER_HOME` defaults to `~/.looper`. Directories are private (0700), files 0600.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::backlog::format::sha256_hex;

/// The Looper home directory.
pub fn looper_home() -> anyhow::Result<PathBuf> {
    // The original looper's LOOPER_BASE_DIR (or LOOPER_LOG_DIR) when LOOPER_HOME is unset.
    let var = ["LOOPER_HOME", "LOOPER_BASE_DIR", "LOOPER_LOG_DIR"]
        .into_iter()
        .find_map(|v| {
            std::env::var_os(v)
                .filter(|h| !h.is_empty())
                .map(|h| (v, h))
        });
    if let Some((var, home)) = var {
        let home = PathBuf::from(home);
        let home = if home.is_absolute() {
            home
        } else {
            std::env::current_dir()
                .context("cannot read the current directory")?
                .join(home)
        };
        // A file there would fail every read and write below it with a bare "not a directory".
        if home.exists() && !home.is_dir() {
            return Err(crate::error::UsageError::new(format!(
                "{var}={} is not a directory: point it at a directory for Looper's journals, or unset it",
                home.display()
            ))
            .into());
        }
        return Ok(home);
    }
    match std::env::home_dir() {
        Some(h) if !h.as_os_str().is_empty() => Ok(h.join(".looper")),
        _ => bail!("cannot find a home directory for Looper's journals: set LOOPER_HOME"),
    }
}

/// A project's directory under `LOOPER_HOME`.
#[derive(Debug, Clone)]
pub struct ProjectDir {
    pub path: PathBuf,
}

impl ProjectDir {
    /// The directory for the project rooted at `root` (canonical path).
    pub fn for_root(home: &Path, root: &Path) -> Self {
        let slug: String = root
            .file_name()
            .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = sha256_hex(root.as_os_str().as_encoded_bytes());
        Self {
            path: home.join("projects").join(format!("{slug}-{}", &hash[..8])),
        }
    }

    pub fn runs(&self) -> PathBuf {
        self.path.join("runs")
    }

    pub fn state(&self) -> PathBuf {
        self.path.join("state")
    }

    /// The journal that commands run outside `looper run` append to: one per day.
    pub fn command_journal(&self) -> crate::journal::Journal {
        let day = jiff::Timestamp::now().strftime("%Y%m%d").to_string();
        let run = format!("{day}-cmd");
        let mut journal =
            crate::journal::Journal::new(self.runs().join(format!("{run}.jsonl")), run);
        // A title or a note may carry a key the user pasted (DESIGN §2): redact as a run does.
        journal.set_redactor(crate::journal::Redactor::new(std::env::vars(), []));
        journal
    }
}
