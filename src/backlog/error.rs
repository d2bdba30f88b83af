//! Errors of the backlog that callers branch on.

use std::path::PathBuf;

use super::jq::JqError;
use super::validate::Problem;

/// Largest backlog Looper reads: far above 100k tasks, well below what would hurt.
pub const MAX_BACKLOG_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BacklogError {
    #[error("no backlog at {path}: run `looper init` to create one, or pass --backlog")]
    NotFound { path: PathBuf },

    #[error("{path} is a directory, not a backlog file: pass the file with --backlog")]
    NotAFile { path: PathBuf },

    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path} is {size} bytes, over the {max} byte limit for a backlog: split it or archive done tasks",
        max = MAX_BACKLOG_BYTES
    )]
    TooLarge { path: PathBuf, size: u64 },

    #[error(
        "{path} is empty: it must hold a backlog object (`looper init --force` writes a new one)"
    )]
    Empty { path: PathBuf },

    #[error(
        "{path} is not UTF-8 text (invalid byte at line {line}, column {column}): save it as UTF-8"
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },

    #[error("{path}:{line}:{column}: not valid JSON: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{path} is not a valid backlog ({count} problem{s}):\n{list}",
        count = problems.len(),
        s = if problems.len() == 1 { "" } else { "s" },
        list = list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },

    #[error("update refused, {path} is unchanged")]
    Jq {
        path: PathBuf,
        #[source]
        source: JqError,
    },

    #[error("update refused, {path} is unchanged: the result would not be a valid backlog ({count} problem{s}):\n{list}",
        count = problems.len(),
        s = if problems.len() == 1 { "" } else { "s" },
        list = list(problems))]
    ResultInvalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },

    #[error("update refused, {path} is unchanged: {reason}")]
    Refused { path: PathBuf, reason: String },

    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Problems shown in a message; `looper validate --json` lists them all.
const SHOWN: usize = 50;

fn list(problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems
        .iter()
        .take(SHOWN)
        .map(|p| format!("  {p}"))
        .collect();
    if problems.len() > SHOWN {
        lines.push(format!(
            "  ... and {} more (`looper validate --json` lists them all)",
            problems.len() - SHOWN
        ));
    }
    lines.join("\n")
}

impl BacklogError {
    /// The documented exit code: a bad jq program given by the user is a usage error (2);
    /// everything else is an error (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            BacklogError::Jq {
                source: JqError::Syntax(_) | JqError::Compile(_),
                ..
            } => crate::error::EXIT_USAGE,
            _ => crate::error::EXIT_ERROR,
        }
    }

    /// The validation problems, when the error is about them.
    pub fn problems(&self) -> &[Problem] {
        match self {
            BacklogError::Invalid { problems, .. }
            | BacklogError::ResultInvalid { problems, .. } => problems,
            _ => &[],
        }
    }
}
