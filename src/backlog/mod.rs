//! The backlog: `to-do.json`, its schema, and every change to it.
//!
//! Owns: the types and generated schema ([`model`]), loading ([`load`]), validation
//! ([`validate`]), task selection ([`select`]), the jq engine ([`jq`]), the mutations Looper
//! makes ([`ops`]), diffs and the three-way merge of external edits ([`merge`]), and the
//! locked, atomic store ([`persist`]). It does not own the journal (it hands records to
//! [`crate::journal`]) or the `LOOPER_HOME` layout ([`crate::store`]).

pub mod doc;
pub mod error;
pub mod format;
pub mod index;
pub mod jq;
pub mod load;
pub mod merge;
pub mod model;
pub mod ops;
pub mod persist;
pub mod replay;
pub mod select;
pub mod time;
pub mod validate;

pub use doc::Doc;
pub use error::BacklogError;
pub use model::{Status, TaskView};
pub use validate::Problem;
