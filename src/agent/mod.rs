//! Agents (DESIGN §6): the normalized events of an agent run, the stream parsers that
//! produce them from each CLI's output, and the supervisor that runs an agent process.
//!
//! The adapters' argv and report extraction are not here yet.

pub mod event;
pub mod parse;
#[cfg(target_os = "linux")]
pub mod supervise;

pub use event::{Event, FailureClass, FileChangeKind, Usage};
pub use parse::{Outcome, StreamFormat, StreamParser, parse_lines};
