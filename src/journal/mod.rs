//! The journal: one JSONL file per run, one self-describing record per line (DESIGN §7).
//!
//! Owns the record header (`v`, `ts`, `run`, `seq`, ...), the append-only writer, and the
//! reader the journal commands (`log`, `show`, ...) build on, which skips a torn last line.

pub mod human;
pub mod read;
pub mod redact;
pub mod writer;

pub use redact::Redactor;
pub use writer::{Bodies, JOURNAL_VERSION, Journal};
