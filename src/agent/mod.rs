//! Agents (DESIGN §6): the normalized events of an agent run and the stream parsers that
//! produce them from each CLI's output.
//!
//! Spawning, the supervisor, the adapters' argv and report extraction are not here yet.

pub mod event;
pub mod parse;

pub use event::{Event, FailureClass, FileChangeKind, Usage};
pub use parse::{Outcome, StreamFormat, StreamParser, parse_lines};
