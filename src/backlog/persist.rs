//! The backlog store: the only code that writes `to-do.json`.
//!
//! Every write is: lock → recover an interrupted write → read and validate the file on disk
//! (an invalid file is never overwritten) → detect an external edit by comparing with the last
//! version Looper wrote, and take it in (refusing edits that complete work) → run the change's
//! jq program → resolve conflicts in favour of the external edit → validate → write atomically
//! → journal. The lock is an advisory lock on a file under `LOOPER_HOME`, so every `looper`
//! process (a run, `looper add` from another terminal, an agent calling `looper`) serialises
//! on it.
//!
//! Crash safety: before replacing the backlog, the journal record of the update is saved as a
//! *pending* file; the next writer that finds it checks whether the backlog on disk is the
//! pending result (then the record is journaled, marked `recovered`) or not (then it is
//! dropped). The backlog itself is always either the old or the new version.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::doc::Doc;
use super::error::BacklogError;
use super::format::{sha256_hex, to_pretty_string};
use super::jq;
use super::load::{self, Loaded};
use super::merge::{self, Conflict, Diff, Refusal};
use super::model::{PROJECT_DONE_TAG, has_tag};
use super::ops::Change;
use crate::journal::Journal;

/// The store of one backlog file.
#[derive(Debug, Clone)]
pub struct BacklogStore {
    path: PathBuf,
    state_dir: PathBuf,
    key: String,
}

/// An external edit found and taken in before an update.
#[derive(Debug, Clone)]
pub struct ExternalChange {
    pub diff: Diff,
    pub refusals: Vec<Refusal>,
}

/// The outcome of an applied update.
#[derive(Debug, Clone)]
pub struct Applied {
    pub doc: Doc,
    pub before_sha256: String,
    pub after_sha256: String,
    /// What the update changed (after conflict resolution).
    pub diff: Diff,
    pub external: Option<ExternalChange>,
    pub conflicts: Vec<Conflict>,
    /// False when the file already had exactly these bytes.
    pub written: bool,
}

/// The held lock of a backlog; released on drop.
#[derive(Debug)]
pub struct BacklogLock {
    _file: File,
}

impl BacklogStore {
    /// The store for the backlog at `path` (absolute), keeping its state in `state_dir`.
    pub fn new(path: &Path, state_dir: &Path) -> Self {
        let key = format!(
            "backlog-{}",
            &sha256_hex(path.as_os_str().as_encoded_bytes())[..8]
        );
        Self {
            path: path.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            key,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state_file(&self, suffix: &str) -> PathBuf {
        self.state_dir.join(format!("{}.{suffix}", self.key))
    }

    /// Takes the backlog's exclusive lock, waiting for other writers.
    pub fn lock(&self) -> anyhow::Result<BacklogLock> {
        crate::file::create_private_dir(&self.state_dir)?;
        let path = self.state_file("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(BacklogLock { _file: file })
    }

    /// Reads and validates the backlog (no lock needed: writes are atomic renames).
    pub fn load(&self) -> Result<Loaded, BacklogError> {
        load::load(&self.path)
    }

    /// Creates (or with `force`, replaces) the backlog with `value`.
    pub fn create(&self, value: Value, force: bool, journal: &Journal) -> anyhow::Result<Doc> {
        let _lock = self.lock()?;
        let doc = load::check(&self.path, value)?;
        let mut payload = Map::new();
        match load::read_raw(&self.path) {
            Err(BacklogError::NotFound { .. }) => {}
            Ok(old) if force => {
                // Never lose work: the replaced file goes into the journal whole.
                payload.insert(
                    "replaced".into(),
                    Value::String(String::from_utf8_lossy(&old).into_owned()),
                );
            }
            Ok(_) => anyhow::bail!(
                "{} already exists: pass --force to replace it (its content is kept in the journal)",
                self.path.display()
            ),
            Err(e) if force && matches!(e, BacklogError::NotAFile { .. }) => return Err(e.into()),
            Err(e) if force => {
                payload.insert("replaced_unreadable".into(), Value::String(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        let text = doc.to_pretty_string();
        crate::file::write_atomic(&self.path, text.as_bytes(), 0o644).map_err(|source| {
            BacklogError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        self.save_last(text.as_bytes())?;
        payload.insert("source".into(), json!("init"));
        payload.insert("path".into(), json!(self.path));
        payload.insert("sha256".into(), json!(sha256_hex(text.as_bytes())));
        payload.insert("content".into(), doc.value().clone());
        journal.append("backlog.snapshot", payload)?;
        Ok(doc)
    }

    /// Applies `change` under the lock; see the module docs for the steps.
    pub fn update(&self, change: &Change, journal: &Journal) -> anyhow::Result<Applied> {
        let _lock = self.lock()?;
        self.recover_pending(journal)?;

        let loaded = match self.load() {
            Ok(l) => l,
            Err(e) => {
                self.journal_refused(journal, change, &e)?;
                return Err(e.into());
            }
        };
        let (pre, external_base) = self.take_in(&loaded, journal)?;

        let result = match jq::run(&change.program, &change.args, &pre) {
            Ok(v) => v,
            Err(source) => {
                let e = BacklogError::Jq {
                    path: self.path.clone(),
                    source,
                };
                self.journal_refused(journal, change, &e)?;
                return Err(e.into());
            }
        };
        let (result, conflicts) = match &external_base {
            Some((base_value, _)) => merge::resolve_conflicts(base_value, &pre, &result),
            None => (result, Vec::new()),
        };
        let doc = match load::check(&self.path, result) {
            Ok(d) => d,
            Err(e) => {
                self.journal_refused(journal, change, &e)?;
                return Err(e.into());
            }
        };
        if let Some(reason) = completion_violation(change, &pre, doc.value()) {
            let e = BacklogError::Refused {
                path: self.path.clone(),
                reason,
            };
            self.journal_refused(journal, change, &e)?;
            return Err(e.into());
        }

        let text = doc.to_pretty_string();
        let before_sha256 = sha256_hex(to_pretty_string(&pre).as_bytes());
        let after_sha256 = sha256_hex(text.as_bytes());
        let diff = merge::diff(&pre, doc.value());
        let written = text.as_bytes() != loaded.raw.as_slice();

        let mut record = Map::new();
        record.insert("id".into(), json!(update_id()));
        record.insert("source".into(), json!(change.source));
        record.insert("path".into(), json!(self.path));
        record.insert("program".into(), json!(change.program));
        record.insert("args".into(), change.args_json());
        record.insert("before_sha256".into(), json!(before_sha256));
        record.insert("after_sha256".into(), json!(after_sha256));
        if !conflicts.is_empty() {
            record.insert("conflicts".into(), serde_json::to_value(&conflicts)?);
        }
        if written {
            let pending =
                json!({"after_sha256": after_sha256, "record": Value::Object(record.clone())});
            crate::file::write_atomic_nosync(
                &self.state_file("pending.json"),
                to_pretty_string(&pending).as_bytes(),
                0o600,
            )
            .context("cannot save the pending update record")?;
            crate::file::write_atomic(&self.path, text.as_bytes(), 0o644).map_err(|source| {
                BacklogError::Write {
                    path: self.path.clone(),
                    source,
                }
            })?;
        }
        journal.append("backlog.update", record)?;
        self.save_last(text.as_bytes())?;
        if written {
            let _ = std::fs::remove_file(self.state_file("pending.json"));
        }
        Ok(Applied {
            doc,
            before_sha256,
            after_sha256,
            diff,
            external: external_base.map(|(_, e)| e),
            conflicts,
            written,
        })
    }

    /// Compares the file on disk with the last version Looper wrote and takes in an external
    /// edit (journaled, completion refused). Returns the document to apply the change to and,
    /// after an external edit, the base it was made against.
    fn take_in(
        &self,
        loaded: &Loaded,
        journal: &Journal,
    ) -> anyhow::Result<(Value, Option<(Value, ExternalChange)>)> {
        let disk = loaded.doc.value().clone();
        let base = self.read_last();

        Ok(match base {
            Some((base_sha, _)) if base_sha == loaded.sha256 => (disk, None),
            Some((_, base_value)) => {
                let (theirs, refusals) = merge::refuse_completion(&base_value, &disk);
                // Dropping a refused field can only make a valid document invalid through the
                // marker rules, which refusal removes; check anyway before trusting it.
                let theirs = load::check(&self.path, theirs)?.into_value();
                let diff = merge::diff(&base_value, &theirs);
                let mut p = Map::new();
                p.insert("path".into(), json!(self.path));
                p.insert(
                    "before_sha256".into(),
                    json!(sha256_hex(to_pretty_string(&base_value).as_bytes())),
                );
                p.insert(
                    "after_sha256".into(),
                    json!(sha256_hex(to_pretty_string(&theirs).as_bytes())),
                );
                p.insert("disk_sha256".into(), json!(loaded.sha256));
                p.insert("diff".into(), serde_json::to_value(&diff)?);
                journal.append("backlog.external_change", p)?;
                if !refusals.is_empty() {
                    let mut p = Map::new();
                    p.insert("path".into(), json!(self.path));
                    p.insert("refusals".into(), serde_json::to_value(&refusals)?);
                    journal.append("backlog.refused_external", p)?;
                }
                (
                    theirs.clone(),
                    Some((base_value, ExternalChange { diff, refusals })),
                )
            }
            None => {
                // First time Looper sees this file: record where replay starts.
                let mut p = Map::new();
                p.insert("source".into(), json!("first-seen"));
                p.insert("path".into(), json!(self.path));
                p.insert(
                    "sha256".into(),
                    json!(sha256_hex(to_pretty_string(&disk).as_bytes())),
                );
                p.insert("disk_sha256".into(), json!(loaded.sha256));
                p.insert("content".into(), disk.clone());
                journal.append("backlog.snapshot", p)?;
                (disk, None)
            }
        })
    }

    /// The last version Looper wrote: (sha256 of its bytes, value).
    fn read_last(&self) -> Option<(String, Value)> {
        let raw = std::fs::read(self.state_file("last.json")).ok()?;
        let value = serde_json::from_slice(&raw).ok()?;
        Some((sha256_hex(&raw), value))
    }

    fn save_last(&self, bytes: &[u8]) -> anyhow::Result<()> {
        crate::file::write_atomic_nosync(&self.state_file("last.json"), bytes, 0o600)
            .context("cannot save the last written backlog under LOOPER_HOME")
    }

    /// Finishes or drops an update interrupted by a crash.
    fn recover_pending(&self, journal: &Journal) -> anyhow::Result<()> {
        let path = self.state_file("pending.json");
        let Ok(raw) = std::fs::read(&path) else {
            return Ok(());
        };
        let pending: Option<Value> = serde_json::from_slice(&raw).ok();
        let disk = std::fs::read(&self.path).ok();
        if let (Some(pending), Some(disk)) = (pending, disk) {
            let expected = pending.get("after_sha256").and_then(Value::as_str);
            if expected == Some(sha256_hex(&disk).as_str()) {
                if let Some(Value::Object(mut record)) = pending.get("record").cloned() {
                    record.insert("recovered".into(), json!(true));
                    journal.append("backlog.update", record)?;
                }
                self.save_last(&disk)?;
            }
        }
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
    }

    fn journal_refused(
        &self,
        journal: &Journal,
        change: &Change,
        err: &BacklogError,
    ) -> anyhow::Result<()> {
        let mut p = Map::new();
        p.insert("source".into(), json!(change.source));
        p.insert("path".into(), json!(self.path));
        p.insert("program".into(), json!(change.program));
        p.insert("args".into(), change.args_json());
        p.insert("reason".into(), json!(err.to_string()));
        if !err.problems().is_empty() {
            p.insert("problems".into(), serde_json::to_value(err.problems())?);
        }
        journal.append("backlog.update_refused", p)?;
        Ok(())
    }
}

/// Why a change may not make the result it made, if it may not.
fn completion_violation(change: &Change, before: &Value, after: &Value) -> Option<String> {
    let tasks = |v: &Value| {
        v.get("tasks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let before_tasks = tasks(before);
    let was = |id: &str, pred: &dyn Fn(&Value) -> bool| {
        before_tasks
            .iter()
            .any(|t| t.get("id").and_then(Value::as_str) == Some(id) && pred(t))
    };
    let is_done = |t: &Value| t.get("status").and_then(Value::as_str) == Some("done");
    for t in tasks(after) {
        let id = t.get("id").and_then(Value::as_str).unwrap_or("");
        if is_done(&t)
            && has_tag(&t, PROJECT_DONE_TAG)
            && !change.may_mark_project_done
            && !was(id, &|b| is_done(b) && has_tag(b, PROJECT_DONE_TAG))
        {
            return Some(format!(
                "it adds the project-done marker ({id}); only the review pass of `looper run` declares the project done"
            ));
        }
        if is_done(&t) && !change.may_complete && !was(id, &is_done) {
            return Some(format!(
                "it marks {id} done; a task becomes done only through Looper's checks, or by a person with `looper done {id} --reason TEXT`"
            ));
        }
    }
    None
}

fn update_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    sha256_hex(format!("{nanos}-{}", std::process::id()).as_bytes())[..16].to_string()
}
