//! Typed errors that callers branch on, and the mapping to the documented exit codes.
//!
//! Exit codes (DESIGN §5): 0 project done · 1 error · 2 usage/config error · 3 cap reached
//! with work left · 4 review inconclusive · 5 stopped by request · 130 interrupted.

use std::io;

use crate::backlog::BacklogError;

/// Exit code for a general error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// A usage error found after argument parsing (a bad jq program, a bad `--argjson` value...).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A command that ran fine but must report failure through its exit code
/// (`looper validate` on an invalid file, `looper fmt --check` on an unformatted one).
/// Its output has already been printed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

/// Picks the exit code for an error by walking its cause chain for a typed error.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if let Some(b) = cause.downcast_ref::<BacklogError>() {
            return b.exit_code();
        }
    }
    EXIT_ERROR
}

/// What to do about a storage error (a full disk, a file-size limit, a read-only or
/// unwritable directory), printed after the error, which names
/// the path. `None` for other errors, whose messages carry their own fix.
pub fn advice(err: &anyhow::Error) -> Option<&'static str> {
    let kind = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<io::Error>())?
        .kind();
    Some(match kind {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the disk is full: free some space, then go on (nothing on disk was left half-written)"
        }
        io::ErrorKind::FileTooLarge => {
            "a file-size limit (`ulimit -f`) was hit: raise it, then go on (nothing on disk was left half-written)"
        }
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
            "that path is not writable: make it writable for this user, then go on (nothing on disk was left half-written)"
        }
        _ => return None,
    })
}

/// True when the error is (caused by) a broken pipe: the reader went away, which is fine.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
