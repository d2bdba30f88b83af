//! Crash points for the reliability suite (RELIABILITY.md): with `LOOPER_CRASH_AT=<point>` or
//! `<point>:<n>` in its environment, Looper kills itself with SIGKILL the n-th time (default:
//! the first) it reaches the named point, exactly as an outside `kill -9` landing there would.
//! Without the variable a point costs one relaxed load.
//!
//! The points sit between the steps whose order makes Looper crash-safe: the backlog's pending
//! record, its temp file and rename, the journal append (including a torn half line), the git
//! commit, the agent's spawn and the review. See [`POINTS`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every crash point, for the suite to iterate over.
pub const POINTS: &[&str] = &[
    "agent.spawned",
    "backlog.pending",
    "file.before-rename",
    "backlog.written",
    "backlog.journaled",
    "journal.torn",
    "git.before-commit",
    "git.committed",
    "review.reported",
    "iteration.ended",
];

struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("LOOPER_CRASH_AT").ok()?;
            let (point, nth) = match spec.rsplit_once(':') {
                Some((p, n)) => (p.to_owned(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// True when this call is the armed hit of `name`: the caller does its last partial work
/// (a torn write) and calls [`die`].
pub fn hit(name: &str) -> bool {
    armed().is_some_and(|a| a.point == name && a.hits.fetch_add(1, Ordering::Relaxed) + 1 == a.nth)
}

/// Kills the process with SIGKILL: no destructors, no flush, no cleanup.
pub fn die() -> ! {
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; this is never reached.
    std::process::abort()
}

/// Dies here when `name` is the armed point and this is its n-th hit.
pub fn point(name: &str) {
    if hit(name) {
        die();
    }
}
