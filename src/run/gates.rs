//! Gates (DESIGN §5): the project's verification commands, run by Looper itself with `sh -c`
//! in the project root, each in its own process group under a timeout.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::agent::StreamFormat;
use crate::agent::supervise::{self, Class};

/// How one gate ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GateResult {
    pub(crate) command: String,
    pub(crate) passed: bool,
    pub(crate) exit_code: Option<i32>,
    pub(crate) duration_ms: u64,
    /// The last lines of its output (stdout and stderr), for notes and the journal.
    pub(crate) tail: Vec<String>,
}

const TAIL_LINES: usize = 20;

/// Runs one gate.
pub(crate) fn run(root: &Path, command: &str, timeout: Duration) -> anyhow::Result<GateResult> {
    let mut spec = supervise::Spec::new("/bin/sh", root);
    spec.args = vec!["-c".into(), command.into()];
    spec.wall_timeout = Some(timeout);
    spec.kill_grace = Duration::from_secs(2);
    let mut parser = StreamFormat::Cmd.parser();
    let mut tail = std::collections::VecDeque::new();
    let result = supervise::run(&spec, parser.as_mut(), &mut |line| {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.text);
    })?;
    let passed = result.exit.success() && result.class != Class::Timeout;
    let mut tail: Vec<String> = tail.into();
    if result.class == Class::Timeout {
        tail.push(format!("(stopped after {} s)", timeout.as_secs()));
    }
    Ok(GateResult {
        command: command.to_owned(),
        passed,
        exit_code: result.exit.code,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        tail,
    })
}
