//! Agents (DESIGN §6): agent specs, the adapters that turn a spec and a role into a command
//! line, the normalized events of an agent run, the stream parsers that produce them from
//! each CLI's output, the supervisor that runs an agent process, and report extraction.

pub mod adapter;
pub mod event;
pub mod parse;
pub mod report;
pub mod spec;
#[cfg(target_os = "linux")]
pub mod supervise;

pub use adapter::{Invocation, Request, Role, Sandbox, invocation};
pub use event::{Event, FailureClass, FileChangeKind, Usage};
pub use parse::{Outcome, StreamFormat, StreamParser, parse_lines};
pub use spec::{Adapter, AgentSpec, Effort, SpecError};
