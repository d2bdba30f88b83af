//! The journal: one JSONL file per run, one self-describing record per line (DESIGN §7).
//!
//! Owns the record header (`v`, `ts`, `run`, `seq`, ...) and the append-only writer. Readers
//! (`status`, `log`, `audit`, ...) come later and skip a torn last line.

pub mod redact;
pub mod writer;

pub use redact::Redactor;
pub use writer::{JOURNAL_VERSION, Journal};
