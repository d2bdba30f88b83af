//! Looper: a strict, auditable loop that drives AI coding-agent CLIs through a JSON backlog.
//!
//! The binary in `main.rs` only parses the command line and calls [`main_impl`]. Everything
//! else lives here, in modules named after the things of `DESIGN.md`:
//!
//! - [`backlog`]: the `to-do.json` types, schema, validation, selection, the jq engine, the
//!   three-way merge of external edits and the locked, atomic store;
//! - [`agent`]: the agent layer: specs, the per-role command line of each CLI, the stream
//!   parsers (normalized events, usage, failure class), the process supervisor and report
//!   extraction;
//! - [`journal`]: the JSONL record writer;
//! - [`store`]: the `LOOPER_HOME` layout (per-project state and run directories);
//! - [`compat`]: the original looper.sh's flags and variables, as aliases;
//! - [`demo`]: the `looper demo` project and its model-free demo agent;
//! - [`project`]: finding the project root and its backlog;
//! - [`report`]: the self-contained HTML report drawn from the journal;
//! - [`command`]: one function per subcommand;
//! - [`cli`]: the clap definitions (nothing past `command` sees a clap type).

pub mod agent;
pub mod backlog;
pub mod cli;
pub mod command;
pub mod compat;
pub mod config;
pub mod demo;
pub mod error;
pub mod fault;
pub mod file;
pub mod journal;
pub mod project;
pub mod report;
pub mod run;
pub mod store;
pub mod term;

use std::process::ExitCode;

/// Runs one invocation of `looper` and returns its exit code.
pub fn main_impl(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    // Over a file-size limit (`ulimit -f`) the kernel's default for SIGXFSZ kills the
    // process mid-write, leaving a temp file and no message. Catching the signal (a handler,
    // not SIG_IGN, so agents and hooks get the default back at exec) makes the write fail
    // with EFBIG instead, which the write's caller reports with its path.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    command::dispatch(cli)
}
