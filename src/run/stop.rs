//! Stopping a run (DESIGN §5, STYLE §2.8). Signals are data: a thread turns them into two
//! flags the loop reads.
//!
//! - **soft** (the first Ctrl-C, or `looper stop` from another terminal): finish the current
//!   iteration, then end with exit 5;
//! - **hard** (the second Ctrl-C, SIGTERM or SIGHUP): the supervisor terminates the agent's
//!   process group (TERM, grace, KILL), the task stays `doing` for the next run to resume, and
//!   the run ends with exit 130;
//! - the third Ctrl-C exits at once (130).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The run's stop flags.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    soft: Arc<AtomicBool>,
    pub(crate) hard: Arc<AtomicBool>,
    /// `looper stop` creates this file.
    request: PathBuf,
}

/// The file `looper stop` creates in a project's state directory.
pub(crate) fn request_path(state: &Path) -> PathBuf {
    state.join("stop-request")
}

impl Stop {
    /// Installs the signal thread; a stale stop request from an earlier run is removed.
    pub(crate) fn install(state: &Path) -> anyhow::Result<Stop> {
        let request = request_path(state);
        let _ = fs_err::remove_file(&request);
        let stop = Stop {
            soft: Arc::new(AtomicBool::new(false)),
            hard: Arc::new(AtomicBool::new(false)),
            request,
        };
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let (soft, hard) = (Arc::clone(&stop.soft), Arc::clone(&stop.hard));
        std::thread::Builder::new()
            .name("looper-signals".into())
            .spawn(move || {
                let mut interrupts = 0;
                for signal in signals.forever() {
                    if signal == SIGINT {
                        interrupts += 1;
                    }
                    match (signal, interrupts) {
                        (SIGINT, 1) => {
                            eprintln!(
                                "looper: stopping after this iteration (Ctrl-C again to stop now)"
                            );
                            soft.store(true, Ordering::SeqCst);
                        }
                        (SIGINT, 2) | (SIGTERM | SIGHUP, _) => {
                            eprintln!("looper: stopping the agent now; the task stays doing");
                            soft.store(true, Ordering::SeqCst);
                            hard.store(true, Ordering::SeqCst);
                        }
                        _ => std::process::exit(130),
                    }
                }
            })?;
        Ok(stop)
    }

    /// Whether the run should end before the next step.
    pub(crate) fn soft(&self) -> bool {
        self.soft.load(Ordering::SeqCst) || self.request.exists()
    }

    pub(crate) fn hard(&self) -> bool {
        self.hard.load(Ordering::SeqCst)
    }
}
