//! The one integration-test binary: drives the built `looper` in temp projects, with
//! `LOOPER_HOME` and `HOME` inside the temp dir, never a real home.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod agents;
mod backlog_cmds;
mod bad_input;
mod concurrency;
mod concurrent_run;
mod crash;
mod demo;
mod disk;
mod figures;
mod fuzz;
mod harness;
mod history;
mod hostile;
mod merge;
mod mock;
mod mock_server;
mod readme;
mod run;
mod run_real;
mod schedule;
mod schema;
mod security;
mod skills;
mod snapshots;
mod surface;
