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
//! *pending* file (one file, written in place and emptied once the update is journaled); the
//! next writer that finds a record in it checks whether the backlog on disk is the pending
//! result (then the record is journaled, marked `recovered`) or not, or the record is torn
//! (then it is dropped). The backlog itself is always either the old or the new version: the
//! new one is synced before its rename; the rename is synced before [`BacklogStore::update`]
//! returns, or, for the run, by [`BacklogStore::settle`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::doc::Doc;
use super::error::BacklogError;
use super::format::{TaskSpans, sha256_hex, splice_tasks, to_pretty_spans, to_pretty_string};
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
    written: std::sync::Arc<std::sync::Mutex<Option<Written>>>,
    /// Whether the temp files a killed writer left were looked for (once per process).
    cleaned: std::sync::Arc<std::sync::Once>,
    /// Removes replaced versions without making the writer wait for it.
    remover: crate::file::Remover,
    /// Fsyncs the backlog's directory after a rename while the writer goes on.
    syncer: crate::file::Syncer,
    /// Where the version a write replaced waits for the next write to be written into
    /// ([`crate::file::Spares`]).
    spares: crate::file::Spares,
    /// The directory fsync of the last write made by [`Self::update_unsettled`], until
    /// [`Self::settle`] waits for it.
    unsynced: std::sync::Arc<std::sync::Mutex<Option<crate::file::Syncing>>>,
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
    /// The identity ([`super::index::key_of`]) of the file this update put in place, when it
    /// wrote one and that file is `doc`.
    pub key: Option<String>,
}

/// What [`BacklogStore::take_in`] found: the document to apply the change to; after an
/// external edit, the base it was made against and the change; and whether the file on disk
/// is exactly what Looper last wrote (so already canonical).
type TakenIn = (Doc, Option<(Value, ExternalChange)>, bool);

/// What [`BacklogStore::apply`] made: the checked result, what changed, the conflicts
/// resolved, and the indices of the changed tasks when nothing else changed.
type Applying = (Doc, Diff, Vec<Conflict>, Option<Vec<usize>>);

/// An external edit worked out by [`BacklogStore::examine`]: the last version Looper wrote
/// (which the merged document is journaled against), the change, and its journal records.
struct Found {
    latest: Value,
    change: ExternalChange,
    records: Vec<(&'static str, Map<String, Value>)>,
}

/// How many versions Looper wrote before the last one it keeps, to find the one a stale copy
/// written back was read from.
const HISTORY: usize = 16;

/// What this process last wrote: the backlog as written, and the key (size, inode, times) of
/// the `last.json` saved with it. While both files are still exactly that, the next update
/// skips re-reading the base and re-parsing and re-validating the backlog.
#[derive(Debug)]
struct Written {
    loaded: Loaded,
    last_key: String,
    /// Where each task's text is in `loaded.raw` (see [`to_pretty_spans`]).
    spans: Option<TaskSpans>,
}

/// The held lock of a backlog; released on drop.
#[derive(Debug)]
pub struct BacklogLock {
    _file: File,
}

/// Whether a history file holds an external version Looper took in, and if so whether its
/// own write had displaced it (`<n>-displaced.json`) rather than found it in place
/// (`<n>-seen.json`).
fn external_kind(name: &str) -> Option<bool> {
    if name.ends_with("-displaced.json") {
        Some(true)
    } else if name.ends_with("-seen.json") {
        Some(false)
    } else {
        None
    }
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
            spares: crate::file::Spares::new(state_dir.join(format!("{key}.spare"))),
            key,
            written: std::sync::Arc::default(),
            cleaned: std::sync::Arc::new(std::sync::Once::new()),
            remover: crate::file::Remover::default(),
            syncer: crate::file::Syncer::default(),
            unsynced: std::sync::Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the listing index of this backlog lives (see [`super::index`]).
    pub fn index_path(&self) -> PathBuf {
        self.state_file("index")
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
        // Holding the lock, no other writer is mid-write: a temp file of these files is what
        // a killed writer left behind. Looked for once per process, not at every update: one
        // left since is only in the way of nothing until the next command.
        self.cleaned.call_once(|| {
            crate::file::remove_stale_temps(&self.path);
            // Written through a link, beside the file it points to.
            crate::file::remove_stale_temps(&crate::file::write_target(&self.path));
            crate::file::remove_stale_temps(&self.state_file("pending.json"));
            crate::file::remove_stale_temps(&self.state_file("last.json"));
        });
        Ok(BacklogLock { _file: file })
    }

    /// Reads and validates the backlog (no lock needed: writes are atomic renames).
    pub fn load(&self) -> Result<Loaded, BacklogError> {
        load::load_settled(&self.path)
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

    /// Journals the backlog as it is now as a `backlog.snapshot` (after taking in any edit
    /// made outside Looper), so a replay can start there (`looper clean` does this before it
    /// deletes old journals).
    pub fn snapshot(&self, source: &str, journal: &Journal) -> anyhow::Result<()> {
        for _ in 0..3 {
            let applied = self.update(&super::ops::format(), journal)?;
            let _lock = self.lock()?;
            let loaded = self.load()?;
            // Someone changed the file between the two locks: take that in too, then retry.
            if loaded.sha256 != applied.after_sha256 {
                continue;
            }
            let mut p = Map::new();
            p.insert("source".into(), json!(source));
            p.insert("path".into(), json!(self.path));
            p.insert("sha256".into(), json!(loaded.sha256));
            p.insert("content".into(), loaded.doc.value().clone());
            journal.append("backlog.snapshot", p)?;
            return Ok(());
        }
        anyhow::bail!(
            "{} keeps changing: cannot take a snapshot of it now; try again",
            self.path.display()
        )
    }

    /// The `backlog.update` record of an applied change.
    fn update_record(
        &self,
        change: &Change,
        [before_sha256, after_sha256]: [&str; 2],
        diff: &Diff,
        conflicts: &[merge::Conflict],
    ) -> anyhow::Result<Map<String, Value>> {
        let mut record = Map::new();
        record.insert("id".into(), json!(update_id()));
        record.insert("source".into(), json!(change.source));
        record.insert("path".into(), json!(self.path));
        record.insert("program".into(), json!(change.program));
        record.insert("args".into(), change.args_json());
        record.insert("before_sha256".into(), json!(before_sha256));
        record.insert("after_sha256".into(), json!(after_sha256));
        // What changed, for people (`looper show`); the replay needs only the program.
        record.insert("changes".into(), json!(diff.summary_lines_cut(200)));
        if !conflicts.is_empty() {
            record.insert("conflicts".into(), serde_json::to_value(conflicts)?);
        }
        Ok(record)
    }

    /// Applies `change` under the lock; see the module docs for the steps.
    pub fn update(&self, change: &Change, journal: &Journal) -> anyhow::Result<Applied> {
        let applied = self.update_unsettled(change, journal)?;
        self.settle()?;
        Ok(applied)
    }

    /// [`Self::update`], returning once the new file is in place and synced, but before its
    /// rename is: the directory's fsync goes on while the caller does, until [`Self::settle`]
    /// (or the next update) waits for it. For the run, whose next step is rarely another
    /// write; it settles before an agent starts and before it ends.
    pub fn update_unsettled(&self, change: &Change, journal: &Journal) -> anyhow::Result<Applied> {
        let _lock = self.lock()?;
        self.settle()?;
        self.recover_pending(journal)?;

        let (loaded, ours, spans) = match self.load_for_update() {
            Ok(l) => l,
            Err(e) => {
                self.journal_refused(journal, change, &e)?;
                return Err(e.into());
            }
        };
        // The document moves on into the update, so it is patched in place, not copied.
        let (pre, external_base, before_sha256, read) = if ours {
            // The file is exactly what Looper last wrote: canonical, its hash known.
            (loaded.doc, None, loaded.sha256, loaded.raw)
        } else {
            let (pre, external_base, canonical) = self.take_in(&loaded, journal)?;
            let Loaded { raw, sha256, .. } = loaded;
            let before_sha256 = if canonical {
                sha256
            } else {
                sha256_hex(to_pretty_string(pre.value()).as_bytes())
            };
            (pre, external_base, before_sha256, raw)
        };
        self.write_update(
            change,
            journal,
            (pre, external_base, before_sha256),
            (read, spans),
        )
    }

    /// Waits until the last write's rename is durable (see [`Self::update_unsettled`]).
    pub fn settle(&self) -> Result<(), BacklogError> {
        let unsynced = self
            .unsynced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match unsynced {
            Some(syncing) => syncing.wait().map_err(|source| BacklogError::Write {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// The rest of [`Self::update`]: applies `change` to `pre` (after an external edit, with
    /// the base it was made against; `before_sha256` is the hash of `pre`'s canonical text),
    /// then writes the result over the file read as `read` (with its task spans when it is
    /// `pre`'s canonical text) and journals it.
    fn write_update(
        &self,
        change: &Change,
        journal: &Journal,
        (pre, external_base, before_sha256): (Doc, Option<(Value, ExternalChange)>, String),
        (read, spans): (Vec<u8>, Option<TaskSpans>),
    ) -> anyhow::Result<Applied> {
        let change = &*change.located(pre.value());
        let base = external_base.as_ref().map(|(base, _)| base);
        let (doc, diff, conflicts, changed) = match self.apply(change, pre, base) {
            Ok(applied) => applied,
            Err(e) => {
                self.journal_refused(journal, change, &e)?;
                return Err(e.into());
            }
        };
        let list = tasks(doc.value());
        let (text, spans) = match (spans, changed, std::str::from_utf8(&read)) {
            // Only some tasks changed in a file Looper wrote: only their text is written anew.
            (Some(spans), Some(changed), Ok(old)) if spans.len() == list.len() => {
                let changed: Vec<(usize, &Value)> =
                    changed.iter().map(|&i| (i, &list[i])).collect();
                let (text, spans) = splice_tasks(old, &spans, &changed);
                (text, Some(spans))
            }
            _ => to_pretty_spans(doc.value()),
        };
        let written = text.as_bytes() != read.as_slice();
        let (after_sha256, record, (displaced, key)) = if written {
            self.write_staged(change, (&before_sha256, &diff, &conflicts), (&text, &read))?
        } else {
            let after_sha256 = sha256_hex(text.as_bytes());
            let record =
                self.update_record(change, [&before_sha256, &after_sha256], &diff, &conflicts)?;
            self.save_last(text.as_bytes())?;
            (after_sha256, record, (None, None))
        };
        self.journal_update(journal, record, written)?;
        crate::fault::point("backlog.journaled");
        if written {
            let _ = crate::file::clear(&self.state_file("pending.json"));
        }
        self.remember(
            Loaded {
                doc: doc.clone(),
                raw: text.into_bytes(),
                sha256: after_sha256.clone(),
            },
            spans,
        );
        let (doc, key) = match displaced {
            Some(d) => (self.merge_displaced(d, doc, journal)?, None),
            None => (doc, key),
        };
        Ok(Applied {
            doc,
            before_sha256,
            after_sha256,
            diff,
            external: external_base.map(|(_, e)| e),
            conflicts,
            written,
            key,
        })
    }

    /// The change's result on `pre`, checked: valid, and completing nothing it may not. After
    /// an external edit (`base` is what the edit was made against) conflicts are resolved in
    /// favour of the edit. Otherwise the jq engine works on the document's shadow and only the
    /// tasks the program changed are converted, validated and diffed; when it changed nothing
    /// but tasks in place, `pre` is patched where it is (not copied, when nothing else holds
    /// it) and the indices of the changed tasks come back too.
    fn apply(
        &self,
        change: &Change,
        pre: Doc,
        base: Option<&Value>,
    ) -> Result<Applying, BacklogError> {
        let jq_error = |source| BacklogError::Jq {
            path: self.path.clone(),
            source,
        };
        if let Some(base) = base {
            let result = jq::run(&change.program, &change.args, pre.value()).map_err(jq_error)?;
            let (result, conflicts) = merge::resolve_conflicts(base, pre.value(), &result);
            let doc = load::check(&self.path, result)?;
            self.refuse_completion(change, tasks(pre.value()), tasks(doc.value()))?;
            let diff = merge::diff(pre.value(), doc.value());
            return Ok((doc, diff, conflicts, None));
        }
        let shadow = pre.shadow().clone();
        let out = jq::run_shadow(&change.program, &change.args, &shadow).map_err(jq_error)?;
        let Some(changed) = out.changed_tasks(&shadow, pre.value()) else {
            let update = out.patch(pre.value().clone(), &shadow).map_err(jq_error)?;
            let doc = load::check_shadowed(&self.path, update.value, update.shadow)?;
            self.refuse_completion(change, tasks(pre.value()), tasks(doc.value()))?;
            let diff = merge::diff(pre.value(), doc.value());
            return Ok((doc, diff, Vec::new(), None));
        };
        let update = out
            .patch_tasks(pre.into_value(), changed.clone())
            .map_err(jq_error)?;
        if super::validate::still_valid(&update.value, &changed, &update.before) {
            let after: Vec<Value> = changed
                .iter()
                .map(|&i| tasks(&update.value)[i].clone())
                .collect();
            self.refuse_completion(change, &update.before, &after)?;
            let diff = merge::diff(&json!({"tasks": update.before}), &json!({"tasks": after}));
            let doc = Doc::with_shadow(update.value, update.shadow);
            return Ok((doc, diff, Vec::new(), Some(changed)));
        }
        // The changed tasks need the whole document checked: `pre` again is the result with
        // the tasks it replaced put back.
        let mut pre = update.value.clone();
        if let Some(Value::Array(items)) = pre.get_mut("tasks") {
            for (&i, task) in changed.iter().zip(update.before) {
                items[i] = task;
            }
        }
        let doc = load::check_shadowed(&self.path, update.value, update.shadow)?;
        self.refuse_completion(change, tasks(&pre), tasks(doc.value()))?;
        let diff = merge::diff(&pre, doc.value());
        Ok((doc, diff, Vec::new(), None))
    }

    fn refuse_completion(
        &self,
        change: &Change,
        before: &[Value],
        after: &[Value],
    ) -> Result<(), BacklogError> {
        match completion_violation(change, before, after) {
            Some(reason) => Err(BacklogError::Refused {
                path: self.path.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Writes `text` over the backlog, which held `read`: the new file goes to the disk while
    /// it is hashed and its pending record saved, and Looper's own copy is written on a
    /// thread meanwhile. Returns the new text's hash, the update's record, and what
    /// [`Self::write_with_pending`] returns.
    #[expect(
        clippy::type_complexity,
        reason = "the parts of one update, named where used"
    )]
    fn write_staged(
        &self,
        change: &Change,
        (before_sha256, diff, conflicts): (&str, &Diff, &[merge::Conflict]),
        (text, read): (&str, &[u8]),
    ) -> anyhow::Result<(
        String,
        Map<String, Value>,
        (Option<crate::file::Displaced>, Option<String>),
    )> {
        std::thread::scope(|scope| {
            let last = std::thread::Builder::new()
                .name("looper-last".into())
                .spawn_scoped(scope, || self.stage_last(text.as_bytes()));
            // Failing from here on, the scope joins the thread and its temp file is dropped.
            let staged = crate::file::stage(&self.path, text.as_bytes(), 0o644, Some(&self.spares))
                .map_err(|source| BacklogError::Write {
                    path: self.path.clone(),
                    source,
                })?;
            let after_sha256 = sha256_hex(text.as_bytes());
            let record =
                self.update_record(change, [before_sha256, &after_sha256], diff, conflicts)?;
            let last = move || match last {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| anyhow::bail!("the thread writing last.json panicked")),
                // No thread to be had: written here.
                Err(_) => self.stage_last(text.as_bytes()),
            };
            let written = self.write_with_pending(&record, &after_sha256, staged, last, read)?;
            anyhow::Ok((after_sha256, record, written))
        })
    }

    /// Saves the pending record of an update, then puts its result, `staged`, over the file
    /// read as `read`, and Looper's copy of it (`last` waits for it) in place as the last
    /// version Looper wrote. A file someone else wrote since it was read is not lost: it
    /// comes back, for the caller to take in once the update is journaled.
    fn write_with_pending(
        &self,
        record: &Map<String, Value>,
        after_sha256: &str,
        staged: crate::file::Staged,
        last: impl FnOnce() -> anyhow::Result<tempfile::NamedTempFile>,
        read: &[u8],
    ) -> anyhow::Result<(Option<crate::file::Displaced>, Option<String>)> {
        let pending_path = self.state_file("pending.json");
        let pending =
            json!({"after_sha256": after_sha256, "record": Value::Object(record.clone())});
        // Written in place: a record torn by a crash does not parse and is dropped, rightly,
        // since the backlog is exchanged only after the record is whole.
        crate::file::overwrite(&pending_path, to_pretty_string(&pending).as_bytes(), 0o600)
            .with_context(|| {
                format!(
                    "cannot save the pending update record {}",
                    pending_path.display()
                )
            })?;
        crate::fault::point("backlog.pending");
        // Looper's own copy, written while the new file went to the disk, is put in place
        // while the rename is synced; a failure to save it is reported once the backlog is
        // written.
        let last = last();
        let written = staged
            .swap(read, (&self.remover, &self.syncer), Some(&self.spares))
            .map(|swapped| {
                let last = last.and_then(|last| self.place_last(last));
                (swapped.into_parts(), last)
            });
        let displaced = match written {
            Ok(((displaced, dir_synced, placed), last)) => {
                *self
                    .unsynced
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir_synced);
                last?;
                (displaced, placed.map(|m| super::index::key_of(&m)))
            }
            Err(source) => {
                // Unless the new file went in place after all, the backlog is still the old
                // version and the pending record is void.
                if std::fs::read(&self.path)
                    .map(|disk| sha256_hex(&disk))
                    .ok()
                    .as_deref()
                    != Some(after_sha256)
                {
                    let _ = crate::file::clear(&pending_path);
                }
                return Err(BacklogError::Write {
                    path: self.path.clone(),
                    source,
                }
                .into());
            }
        };
        crate::fault::point("backlog.written");
        Ok(displaced)
    }

    /// Journals an applied update; when that fails after the backlog was written, the error
    /// says so (the pending record journals it later), so nobody repeats the update.
    fn journal_update(
        &self,
        journal: &Journal,
        record: Map<String, Value>,
        written: bool,
    ) -> anyhow::Result<()> {
        journal.append("backlog.update", record).with_context(|| {
            if written {
                format!(
                    "the update of {} was written, but could not be journaled: it is kept in {} and journaled by the next looper command (do not repeat the update)",
                    self.path.display(),
                    self.state_file("pending.json").display()
                )
            } else {
                format!("the update of {} could not be journaled", self.path.display())
            }
        })?;
        Ok(())
    }

    /// Compares the file on disk with the last version Looper wrote and takes in an external
    /// edit (journaled, completion refused). Returns the document to apply the change to and,
    /// after an external edit, the base it was made against.
    fn take_in(&self, loaded: &Loaded, journal: &Journal) -> anyhow::Result<TakenIn> {
        let disk = loaded.doc.clone();
        // Parse the base only when the file differs from it (the usual case is no edit).
        let base = self.read_last().map(|(sha, raw)| {
            let value = (sha != loaded.sha256).then(|| serde_json::from_slice::<Value>(&raw).ok());
            (sha, value)
        });

        Ok(match base {
            Some((base_sha, _)) if base_sha == loaded.sha256 => (disk, None, true),
            Some((_, Some(Some(latest)))) => {
                let (merged, found) = self.examine(loaded, latest, false)?;
                let Some(found) = found else {
                    // Reformatted by hand, nothing changed: not an edit worth a record.
                    return Ok((Doc::from_validated(merged), None, false));
                };
                // From now on this is the base: if the update below is refused, the next
                // writer must not take the same edit in twice.
                self.save_last(to_pretty_string(&merged).as_bytes())?;
                for (kind, payload) in found.records {
                    journal.append(kind, payload)?;
                }
                (
                    Doc::from_validated(merged),
                    Some((found.latest, found.change)),
                    false,
                )
            }
            _ => {
                // First time Looper sees this file (or its saved base is unreadable): record
                // where replay starts.
                let mut p = Map::new();
                p.insert("source".into(), json!("first-seen"));
                p.insert("path".into(), json!(self.path));
                p.insert(
                    "sha256".into(),
                    json!(sha256_hex(to_pretty_string(disk.value()).as_bytes())),
                );
                p.insert("disk_sha256".into(), json!(loaded.sha256));
                p.insert("content".into(), disk.value().clone());
                journal.append("backlog.snapshot", p)?;
                (disk, None, false)
            }
        })
    }

    /// Works out an external edit: `loaded` (the file as someone else left it) against
    /// `latest` (the last version Looper wrote). The edit was made against `latest`, or —
    /// when its writer read the file before Looper's last writes and wrote back its copy —
    /// against an older version Looper wrote: the one it differs least from. Then it is
    /// rebased onto `latest`, so Looper's later changes are not reverted. Returns the merged
    /// document and, unless it equals `latest`, the records that journal the edit.
    fn examine(
        &self,
        loaded: &Loaded,
        latest: Value,
        displaced: bool,
    ) -> anyhow::Result<(Value, Option<Found>)> {
        let disk = loaded.doc.value();
        let stale = self.stale_base(&latest, disk, displaced).and_then(|base| {
            let (theirs, mut refusals) = merge::refuse_completion(&base, disk);
            let (merged, renamed) = merge::rebase(&base, &theirs, &latest);
            let merged = load::check(&self.path, merged).ok()?.into_value();
            // A completion the copy already had (refused when Looper took that copy in) and
            // `latest` lacks is refused again: the file claims it again, be it a stale copy
            // saved once more or the same mark made again on `latest`.
            let (_, again) = merge::refuse_completion(&latest, disk);
            for r in again {
                if !refusals.iter().any(|o| o.id == r.id && o.field == r.field) {
                    refusals.push(r);
                }
            }
            Some((merged, refusals, (base, theirs, renamed)))
        });
        let (merged, refusals, stale) = if let Some((merged, refusals, stale)) = stale {
            (merged, refusals, Some(stale))
        } else {
            let (theirs, refusals) = merge::refuse_completion(&latest, disk);
            // Dropping a refused field can only make a valid document invalid through the
            // marker rules, which refusal removes; check anyway before trusting it.
            let merged = load::check(&self.path, theirs)?.into_value();
            (merged, refusals, None)
        };
        let diff = merge::diff(&latest, &merged);
        if diff.is_empty() && refusals.is_empty() {
            return Ok((merged, None));
        }
        // A writer that read this version may write back its copy of it later.
        self.keep_history(Some((&loaded.raw, displaced)));
        let mut p = Map::new();
        p.insert("path".into(), json!(self.path));
        p.insert(
            "before_sha256".into(),
            json!(sha256_hex(to_pretty_string(&latest).as_bytes())),
        );
        p.insert(
            "after_sha256".into(),
            json!(sha256_hex(to_pretty_string(&merged).as_bytes())),
        );
        p.insert("disk_sha256".into(), json!(loaded.sha256));
        p.insert("diff".into(), serde_json::to_value(&diff)?);
        if let Some((base, theirs, renamed)) = &stale {
            // What the editor did to the copy it read, for people; `diff` is what replays.
            p.insert(
                "edited_sha256".into(),
                json!(sha256_hex(to_pretty_string(base).as_bytes())),
            );
            p.insert(
                "edit".into(),
                json!(merge::diff(base, theirs).summary_lines_cut(200)),
            );
            if !renamed.is_empty() {
                p.insert("renamed".into(), json!(renamed));
            }
        }
        let mut records = vec![("backlog.external_change", p)];
        if !refusals.is_empty() {
            let mut p = Map::new();
            p.insert("path".into(), json!(self.path));
            p.insert("refusals".into(), serde_json::to_value(&refusals)?);
            records.push(("backlog.refused_external", p));
        }
        let change = ExternalChange { diff, refusals };
        Ok((
            merged,
            Some(Found {
                latest,
                change,
                records,
            }),
        ))
    }

    /// The older version Looper wrote (or took in) that an external edit of `latest` into
    /// `disk` was made against, if it differs from `disk` no more than `latest` does. An
    /// exact older version is a deliberate revert (an undo, a `git checkout`), taken against
    /// `latest`. A file found in place (not `displaced` by Looper's own write) whose edit of
    /// an older version repeats what `latest` has was made on a later copy: `latest`.
    fn stale_base(&self, latest: &Value, disk: &Value, displaced: bool) -> Option<Value> {
        let mut best = merge::weight(&merge::diff(latest, disk));
        let mut history: Vec<(Value, Option<bool>)> = self
            .history()
            .into_iter()
            .filter_map(|(raw, taken)| Some((serde_json::from_slice(&raw).ok()?, taken)))
            .collect();
        // Files Looper's own writes displaced, whose writers may have made their edits again.
        let remade: Vec<&Value> = history
            .iter()
            .filter(|(_, taken)| *taken == Some(true))
            .map(|(v, _)| v)
            .collect();
        let mut found = None;
        for (at, (old, taken)) in history.iter().enumerate() {
            if old == latest {
                continue;
            }
            let d = merge::diff(old, disk);
            let w = merge::weight(&d);
            if w == 0 && taken.is_none() {
                return None;
            }
            // On a tie, the older copy: its edit, rebased, keeps everything Looper has, where
            // taking it against `latest` would bring back what the copy still had. Not a copy
            // whose edit repeats `latest` (deleting a task from `latest` ties with the version
            // before the tasks Looper took in, and the task would come back) — unless the file
            // was displaced: its writer may have made its edit again on the file that
            // replaced its own (as editors do), and Looper took that in.
            if w <= best && (displaced || !merge::repeats(&d, disk, latest, &remade)) {
                best = w;
                found = Some(at);
            }
        }
        found.map(|at| history.swap_remove(at).0)
    }

    /// The versions Looper wrote before the last one and the external versions it took in,
    /// newest first; for an external one, whether Looper's own write had displaced it.
    fn history(&self) -> Vec<(Vec<u8>, Option<bool>)> {
        let mut names = self.history_names();
        names.reverse();
        let dir = self.state_file("history");
        names
            .into_iter()
            .filter_map(|(_, name)| {
                let taken = external_kind(&name);
                Some((std::fs::read(dir.join(name)).ok()?, taken))
            })
            .collect()
    }

    /// The saved versions (`<n>.json`, `<n>-seen.json`, `<n>-displaced.json`), oldest first.
    fn history_names(&self) -> Vec<(u64, String)> {
        let mut names: Vec<(u64, String)> = std::fs::read_dir(self.state_file("history"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                let stem = name.strip_suffix(".json")?;
                let n = stem
                    .strip_suffix("-seen")
                    .or_else(|| stem.strip_suffix("-displaced"))
                    .unwrap_or(stem)
                    .parse()
                    .ok()?;
                Some((n, name))
            })
            .collect();
        names.sort_unstable();
        names
    }

    /// Keeps a version in the history: `taken`, an external version taken in (`<n>-seen`, or
    /// `<n>-displaced` for a file Looper's own write displaced), or else the one about to be
    /// replaced as `last.json` (moved there, no copy); and only the [`HISTORY`] newest. Best
    /// effort: without it, an edit written back from a stale copy is merged against the last
    /// version, as before.
    fn keep_history(&self, taken: Option<(&[u8], bool)>) {
        let last = self.state_file("last.json");
        let dir = self.state_file("history");
        if !last.exists() || crate::file::create_private_dir(&dir).is_err() {
            return;
        }
        let names = self.history_names();
        let next = names.last().map_or(1, |(n, _)| n + 1);
        let kept = match taken {
            Some((b, displaced)) => {
                let kind = if displaced { "displaced" } else { "seen" };
                std::fs::write(dir.join(format!("{next}-{kind}.json")), b)
            }
            // Moved, so the next `last.json` replaces no file: ext4 writes the blocks of a
            // file renamed over another at its next commit, which a backlog write's fsync
            // would wait for.
            None => std::fs::rename(&last, dir.join(format!("{next}.json"))),
        };
        if kept.is_err() {
            return;
        }
        let extra = (names.len() + 1).saturating_sub(HISTORY);
        for (_, name) in &names[..extra] {
            self.remover.remove(&dir.join(name));
        }
    }

    /// Takes in a file that replaced the backlog while this writer wrote it (see
    /// [`crate::file::Staged::swap`]): the edit is merged into `doc` (on disk now) and
    /// written, until no other write lands in between. Returns the document on disk.
    fn merge_displaced(
        &self,
        mut displaced: crate::file::Displaced,
        mut doc: Doc,
        journal: &Journal,
    ) -> anyhow::Result<Doc> {
        let mut on_disk = doc.to_pretty_string().into_bytes();
        for _ in 0..64 {
            let read = load::settled(displaced.path(), |raw| load::from_bytes(&self.path, raw));
            let loaded = match read {
                Ok(loaded) => loaded,
                Err(e) => {
                    self.journal_unmerged(&displaced, &e.to_string(), journal)?;
                    return Ok(doc);
                }
            };
            let (merged, found) = self.examine(&loaded, doc.value().clone(), true)?;
            let Some(found) = found else {
                return Ok(doc);
            };
            let (text, spans) = to_pretty_spans(&merged);
            let next = crate::file::replace_checked(
                &self.path,
                text.as_bytes(),
                0o644,
                &on_disk,
                (&self.remover, &self.syncer),
            )
            .map_err(|source| BacklogError::Write {
                path: self.path.clone(),
                source,
            })?;
            self.save_last(text.as_bytes())?;
            for (kind, payload) in found.records {
                journal.append(kind, payload)?;
            }
            doc = Doc::from_validated(merged);
            on_disk = text.into_bytes();
            self.remember(
                Loaded {
                    doc: doc.clone(),
                    sha256: sha256_hex(&on_disk),
                    raw: on_disk.clone(),
                },
                spans,
            );
            match next {
                Some(d) => displaced = d,
                None => return Ok(doc),
            }
        }
        self.journal_unmerged(&displaced, "other writers kept replacing the file", journal)?;
        Ok(doc)
    }

    /// Journals the content of a displaced file Looper could not take in, so nothing is lost.
    fn journal_unmerged(
        &self,
        displaced: &crate::file::Displaced,
        reason: &str,
        journal: &Journal,
    ) -> anyhow::Result<()> {
        let raw = std::fs::read(displaced.path()).unwrap_or_default();
        let mut p = Map::new();
        p.insert("path".into(), json!(self.path));
        p.insert("reason".into(), json!(reason));
        p.insert(
            "content".into(),
            json!(String::from_utf8_lossy(&raw).into_owned()),
        );
        journal.append("backlog.external_unmerged", p)?;
        Ok(())
    }

    /// The backlog on disk, without parsing it again when it is what this process last
    /// wrote.
    pub fn load_cached(&self) -> Result<Doc, BacklogError> {
        load::settled(&self.path, |raw| {
            if let Some(w) = &*self
                .written
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                && w.loaded.raw == raw
            {
                return Ok(w.loaded.doc.clone());
            }
            Ok(load::from_bytes(&self.path, raw)?.doc)
        })
    }

    /// The backlog on disk for an update, and whether it is exactly what this process last
    /// wrote (with the base saved beside it untouched), so there is nothing to take in; then
    /// also where each task's text is in it.
    fn load_for_update(&self) -> Result<(Loaded, bool, Option<TaskSpans>), BacklogError> {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        // A file caught in the middle of an in-place save is read again once it is whole.
        load::settled(&self.path, |raw| {
            if let Some(w) = written.take()
                && w.loaded.raw == raw
                && super::index::file_key(&self.state_file("last.json")).as_deref()
                    == Some(w.last_key.as_str())
            {
                return Ok((w.loaded, true, w.spans));
            }
            Ok((load::from_bytes(&self.path, raw)?, false, None))
        })
    }

    /// Keeps what was just written (and saved as the base) for the next update, with where
    /// each task's text is in it when that is known.
    fn remember(&self, loaded: Loaded, spans: Option<TaskSpans>) {
        let last_key = super::index::file_key(&self.state_file("last.json"));
        *self
            .written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            last_key.map(|last_key| Written {
                loaded,
                last_key,
                spans,
            });
    }

    /// Puts back the last version Looper wrote when the backlog is gone or no longer valid
    /// JSON of the schema, as an agent that deletes or overwrites it during a run leaves it
    /// (DESIGN §1: never left invalid, nothing lost). The file found, if any, goes into the
    /// `backlog.restored` record whole, so nothing of it is lost either. Returns why it
    /// restored, or `None` when the file is fine or Looper has no version of its own to put
    /// back. Only the run calls this, after an agent's turn: outside a run a missing or broken
    /// backlog is the person's to fix (`looper init`, the repair agent).
    pub fn restore(&self, journal: &Journal) -> anyhow::Result<Option<String>> {
        let _lock = self.lock()?;
        // Cheap when the file is what this process last wrote: no parse, no validation.
        let (why, replaced) = match self.load_cached() {
            Err(BacklogError::NotFound { .. }) => ("the backlog file was deleted".to_owned(), None),
            Err(
                e @ (BacklogError::Invalid { .. }
                | BacklogError::Syntax { .. }
                | BacklogError::Empty { .. }),
            ) => {
                let raw = std::fs::read(&self.path).unwrap_or_default();
                (
                    format!("the backlog file became invalid: {e}"),
                    Some(String::from_utf8_lossy(&raw).into_owned()),
                )
            }
            // Fine; or not a file, unreadable: not ours to replace.
            _ => return Ok(None),
        };
        let Some((sha256, raw)) = self.read_last() else {
            return Ok(None);
        };
        if load::from_bytes(&self.path, raw.clone()).is_err() {
            return Ok(None);
        }
        crate::file::write_atomic(&self.path, &raw, 0o644).map_err(|source| {
            BacklogError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        let mut p = Map::new();
        p.insert("path".into(), json!(self.path));
        p.insert("why".into(), json!(why));
        p.insert("sha256".into(), json!(sha256));
        if let Some(replaced) = replaced {
            p.insert("replaced".into(), json!(replaced));
        }
        journal.append("backlog.restored", p)?;
        Ok(Some(why))
    }

    /// The completions `loaded` (the file as it is) holds that Looper's last version lacks:
    /// made outside Looper, and refused when Looper next takes the file in. Returns the file
    /// as Looper will take it (those marks refused) and what is refused. Reads only.
    pub fn refusals_pending(&self, loaded: &Loaded) -> (Doc, Vec<Refusal>) {
        // Compared byte for byte, not hashed: a large backlog's hash costs more than that.
        let last = self
            .read_last_raw()
            .filter(|raw| *raw != loaded.raw)
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok());
        let Some(last) = last else {
            return (loaded.doc.clone(), Vec::new());
        };
        let (theirs, refusals) = merge::refuse_completion(&last, loaded.doc.value());
        if refusals.is_empty() {
            return (loaded.doc.clone(), refusals);
        }
        (Doc::from_validated(theirs), refusals)
    }

    /// The last version Looper wrote: (sha256 of its bytes, value). Between moving the
    /// previous one into the history and putting the new one in place (a process killed
    /// there), the newest in the history.
    fn read_last(&self) -> Option<(String, Vec<u8>)> {
        self.read_last_raw().map(|raw| (sha256_hex(&raw), raw))
    }

    /// [`Self::read_last`]'s bytes, not hashed.
    fn read_last_raw(&self) -> Option<Vec<u8>> {
        std::fs::read(self.state_file("last.json"))
            .ok()
            .or_else(|| {
                let (_, name) = self
                    .history_names()
                    .into_iter()
                    .rev()
                    .find(|(_, name)| external_kind(name).is_none())?;
                std::fs::read(self.state_file("history").join(name)).ok()
            })
    }

    fn save_last(&self, bytes: &[u8]) -> anyhow::Result<()> {
        self.place_last(self.stage_last(bytes)?)
    }

    /// The next `last.json`, written beside it (not synced: Looper's own state). With the
    /// history full, its oldest version, which [`Self::keep_history`] would remove once this
    /// one is placed, is written over instead: a fast loop otherwise frees an inode and
    /// allocates another at every update, which ext4 without a journal makes slow (see
    /// [`crate::file::overwrite`]).
    fn stage_last(&self, bytes: &[u8]) -> anyhow::Result<tempfile::NamedTempFile> {
        let path = self.state_file("last.json");
        let names = self.history_names();
        if names.len() >= HISTORY
            && let Some((_, oldest)) = names.first()
            && let Ok(reused) =
                crate::file::reuse_as_temp(&self.state_file("history").join(oldest), &path, bytes)
        {
            return Ok(reused);
        }
        crate::file::write_temp(&path, bytes, 0o600)
            .with_context(|| format!("cannot save the last written backlog {}", path.display()))
    }

    /// Puts a staged `last.json` in place, the previous one kept in the history.
    fn place_last(&self, staged: tempfile::NamedTempFile) -> anyhow::Result<()> {
        self.keep_history(None);
        let path = self.state_file("last.json");
        staged
            .persist(&path)
            .map(drop)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot save the last written backlog {}", path.display()))
    }

    /// Finishes or drops an update interrupted by a crash.
    fn recover_pending(&self, journal: &Journal) -> anyhow::Result<()> {
        let path = self.state_file("pending.json");
        // Emptied once its update was journaled, kept for the next one.
        let Ok(raw) = std::fs::read(&path) else {
            return Ok(());
        };
        if raw.is_empty() {
            return Ok(());
        }
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
        crate::file::clear(&path).with_context(|| format!("cannot empty {}", path.display()))
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
        // The reason with its causes (the jq error is the source of a `Jq` refusal).
        let mut reason = err.to_string();
        let mut cause = std::error::Error::source(err);
        while let Some(c) = cause {
            reason = format!("{reason}: {c}");
            cause = c.source();
        }
        p.insert("reason".into(), json!(reason));
        if !err.problems().is_empty() {
            p.insert("problems".into(), serde_json::to_value(err.problems())?);
        }
        journal.append("backlog.update_refused", p)?;
        Ok(())
    }
}

/// The tasks of a backlog document.
fn tasks(doc: &Value) -> &[Value] {
    doc.get("tasks")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// Why a change may not make the result it made, if it may not: `before` and `after` are the
/// tasks (all of them, or just the ones the change touched).
fn completion_violation(change: &Change, before: &[Value], after: &[Value]) -> Option<String> {
    let id_of = |t: &Value| {
        t.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let is_done = |t: &Value| t.get("status").and_then(Value::as_str) == Some("done");
    // One map, not a scan per task: a 100k-task backlog must not make updates quadratic.
    let before_tasks: std::collections::HashMap<String, &Value> =
        before.iter().map(|t| (id_of(t), t)).collect();
    for t in after.iter().filter(|t| is_done(t)) {
        let id = id_of(t);
        let was = before_tasks.get(&id);
        if has_tag(t, PROJECT_DONE_TAG)
            && !change.may_mark_project_done
            && !was.is_some_and(|b| is_done(b) && has_tag(b, PROJECT_DONE_TAG))
        {
            return Some(format!(
                "it adds the project-done marker ({id}); only the review pass of `looper run` declares the project done"
            ));
        }
        if !change.may_complete && !was.is_some_and(|b| is_done(b)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::ops::{self, NewTask};
    use crate::backlog::{Status, replay};
    use proptest::prelude::*;

    /// A process that wrote the file last may skip re-reading it, but not when another
    /// process wrote since, even if the file now has the bytes the first one wrote.
    #[test]
    fn own_write_shortcut_sees_other_writers_and_reverts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("to-do.json");
        std::fs::write(
            &path,
            r#"{"schema_version": 1, "source_files": [], "tasks": [{"id": "T1", "title": "a", "priority": 1, "status": "todo"}, {"id": "T2", "title": "b", "priority": 1, "status": "todo"}]}"#,
        )
        .unwrap();
        let state = dir.path().join("state");
        let journal = Journal::new(dir.path().join("runs/r.jsonl"), "r".into());
        let (one, other) = (
            BacklogStore::new(&path, &state),
            BacklogStore::new(&path, &state),
        );
        one.update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        let ours = std::fs::read(&path).unwrap();
        other
            .update(&ops::set_status("T2", Status::Blocked), &journal)
            .unwrap();
        // A person puts back the version the first process wrote.
        std::fs::write(&path, &ours).unwrap();
        let applied = one
            .update(&ops::set_status("T1", Status::Todo), &journal)
            .unwrap();
        let external = applied.external.expect("the revert is an external change");
        assert_eq!(external.diff.changed.len(), 1);
        assert_eq!(applied.doc.task("T2").unwrap().status, Status::Todo);

        // Replay of the journal gives the file on disk.
        let (_, records) = journal_records(dir.path());
        assert_replays(&records, &path);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(String),
        SetStatus(usize, usize),
        Done(usize),
        BadUpdate,
        Fmt,
        ExternalRetitle(usize, String),
        ExternalDelete(usize),
        ExternalAdd(String),
        ExternalDone(usize),
        ExternalCompact,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            "[a-z ]{1,8}".prop_map(Op::Add),
            (0usize..8, 0usize..3).prop_map(|(i, s)| Op::SetStatus(i, s)),
            (0usize..8).prop_map(Op::Done),
            Just(Op::BadUpdate),
            Just(Op::Fmt),
            (0usize..8, "[a-z]{1,5}").prop_map(|(i, t)| Op::ExternalRetitle(i, t)),
            (0usize..8).prop_map(Op::ExternalDelete),
            "[a-z]{1,5}".prop_map(Op::ExternalAdd),
            (0usize..8).prop_map(Op::ExternalDone),
            Just(Op::ExternalCompact),
        ]
    }

    fn task_ids(v: &Value) -> Vec<String> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn edit_file(path: &Path, f: impl FnOnce(&mut Value)) {
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
    }

    /// An external edit taken in by an update that is then refused is not applied against
    /// the next update again when the journal is replayed (found by `store_invariants`; the
    /// seed is kept in its regressions file).
    #[test]
    fn an_edit_taken_in_by_a_refused_update_replays_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("to-do.json");
        std::fs::write(
            &path,
            r#"{"tasks":[],"source_files":[],"schema_version":1}"#,
        )
        .unwrap();
        let store = BacklogStore::new(&path, &dir.path().join("state"));
        let journal = Journal::new(dir.path().join("runs/r.jsonl"), "r".into());
        let add = |v: &mut Value| {
            let n = v["tasks"].as_array().unwrap().len();
            v["tasks"].as_array_mut().unwrap().push(
                json!({"id": format!("H{n}a"), "title": "a", "priority": 1, "status": "todo"}),
            );
        };
        store.update(&ops::format(), &journal).unwrap();
        edit_file(&path, add);
        store
            .update(&ops::set_status("H0a", Status::Doing), &journal)
            .unwrap();
        edit_file(&path, add);
        edit_file(&path, |v| v["tasks"][0]["status"] = json!("done"));
        let invalid = ops::user(
            ".tasks += [{\"id\": \"Z\", \"title\": \"z\", \"priority\": 9, \"status\": \"todo\"}]",
            vec![],
        );
        assert!(store.update(&invalid, &journal).is_err());
        store
            .update(&ops::set_status("H0a", Status::Doing), &journal)
            .unwrap();
        let (text, records) = journal_records(dir.path());
        assert!(
            records
                .iter()
                .any(|r| r["type"] == "backlog.update_refused"),
            "{text}"
        );
        assert_replays(&records, &path);
    }

    /// A task deleted by hand from the latest version stays deleted, though the version
    /// before the tasks Looper took in differs from the file as little (found by
    /// `store_invariants`; the seed is kept in its regressions file). Before, that version
    /// won the tie as the base of a stale copy whose edit Looper already had: the deletion
    /// read as a reformatting, and the task came back with no record.
    #[test]
    fn a_task_deleted_by_hand_stays_deleted_when_an_older_version_ties() {
        let (dir, path, store, journal) = one_task();
        store.update(&ops::format(), &journal).unwrap();
        edit_file(&path, |v| {
            for id in ["H1a", "H2a"] {
                v["tasks"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"id": id, "title": "a", "priority": 1, "status": "todo"}));
            }
        });
        store
            .update(&ops::set_status("H2a", Status::Doing), &journal)
            .unwrap();
        edit_file(&path, |v| {
            v["tasks"]
                .as_array_mut()
                .unwrap()
                .retain(|t| t["id"] != "H1a");
        });
        let applied = store
            .update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        let ids = task_ids(applied.doc.value());
        assert_eq!(ids, ["T1", "H2a"]);
        let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(task_ids(&disk), ids);
        let (_, records) = journal_records(dir.path());
        let last_edit = records
            .iter()
            .rfind(|r| r["type"] == "backlog.external_change")
            .expect("the deletion is journaled");
        assert_eq!(last_edit["diff"]["removed"][0]["id"], "H1a", "{last_edit}");
        assert_replays(&records, &path);
    }

    /// A completion marked by hand again after Looper refused it is refused and journaled
    /// again, though the file is then the very version Looper took in the first time (which
    /// is also what an editor saving its stale copy once more writes).
    #[test]
    fn a_completion_made_again_is_refused_again() {
        let (dir, path, store, journal) = one_task();
        store.update(&ops::format(), &journal).unwrap();
        let refusals = || {
            std::fs::read_to_string(dir.path().join("runs/r.jsonl"))
                .unwrap()
                .matches("\"backlog.refused_external\"")
                .count()
        };
        for round in 1..=2 {
            edit_file(&path, |v| v["tasks"][0]["status"] = json!("done"));
            let applied = store.update(&ops::format(), &journal).unwrap();
            let external = applied
                .external
                .expect("the completion is an external change");
            assert_eq!(external.refusals.len(), 1, "round {round}");
            assert_eq!(applied.doc.value()["tasks"][0]["status"], "todo");
            assert_eq!(refusals(), round);
        }
        let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(disk["tasks"][0]["status"], "todo");
    }

    /// The test journal under `dir` (`runs/r.jsonl`): its text and its records.
    fn journal_records(dir: &Path) -> (String, Vec<Value>) {
        let text = std::fs::read_to_string(dir.join("runs/r.jsonl")).unwrap();
        let records = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (text, records)
    }

    /// Replaying `records` gives the backlog at `path` byte for byte.
    fn assert_replays(records: &[Value], path: &Path) {
        let replayed = replay::replay(records).unwrap().unwrap();
        assert_eq!(
            to_pretty_string(&replayed),
            std::fs::read_to_string(path).unwrap()
        );
    }

    /// A backlog of one task `T1` (todo) in a temp dir, its store and a journal.
    fn one_task() -> (tempfile::TempDir, PathBuf, BacklogStore, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("to-do.json");
        std::fs::write(
            &path,
            r#"{"tasks":[{"id":"T1","title":"a","priority":1,"status":"todo"}],"source_files":[],"schema_version":1}"#,
        )
        .unwrap();
        let store = BacklogStore::new(&path, &dir.path().join("state"));
        let journal = Journal::new(dir.path().join("runs/r.jsonl"), "r".into());
        (dir, path, store, journal)
    }

    /// The key an update returns is the key at the backlog's path right after it (so the
    /// run's cached copy is used), and no longer once another writer replaced the file.
    #[test]
    fn an_update_names_the_file_it_put_in_place() {
        let (_dir, path, store, journal) = one_task();
        store.update(&ops::format(), &journal).unwrap();
        let applied = store
            .update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        let key = applied.key.expect("written");
        assert_eq!(Some(&key), super::super::index::file_key(&path).as_ref());
        let same = store
            .update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        assert_eq!((same.written, same.key), (false, None));
        let text = std::fs::read(&path).unwrap();
        crate::file::write_atomic(&path, &text, 0o644).unwrap();
        assert_ne!(Some(key), super::super::index::file_key(&path));
    }

    /// `update` returns with the rename durable; `update_unsettled` leaves the directory's
    /// fsync to `settle` or to the next write, which waits for it first.
    #[test]
    fn only_an_unsettled_update_leaves_its_fsync_running() {
        let (_dir, path, store, journal) = one_task();
        let pending = |store: &BacklogStore| store.unsynced.lock().unwrap().is_some();
        store.update(&ops::format(), &journal).unwrap();
        assert!(!pending(&store));
        store
            .update_unsettled(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        assert!(pending(&store));
        let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            disk["tasks"][0]["status"], "doing",
            "in place before it settles"
        );
        store
            .update_unsettled(&ops::set_status("T1", Status::Todo), &journal)
            .unwrap();
        assert!(pending(&store), "the second write's own fsync");
        store.settle().unwrap();
        assert!(!pending(&store));
    }

    /// The pending record is one file, emptied once its update is journaled and written in
    /// place by the next (no inode per update); a whole record left by a crash whose result
    /// is on disk is journaled once, `recovered`; one torn by a crash, or whose result is not
    /// on disk, is dropped.
    #[test]
    fn the_pending_record_is_kept_emptied_and_recovered_or_dropped() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_dir, path, store, journal) = one_task();
        let pending = store.state_file("pending.json");
        let updates = |journal: &Journal| {
            crate::journal::read::read(journal.path())
                .unwrap()
                .records
                .into_iter()
                .filter(|r| r["type"] == "backlog.update")
                .collect::<Vec<_>>()
        };
        store.update(&ops::format(), &journal).unwrap();
        let meta = std::fs::metadata(&pending).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (0, 0o600));
        store
            .update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        let again = std::fs::metadata(&pending).unwrap();
        assert_eq!(
            (again.ino(), again.len()),
            (meta.ino(), 0),
            "the same file, empty"
        );

        // A crash after the exchange, before the journal: the record is whole.
        let before = updates(&journal).len();
        let disk = std::fs::read(&path).unwrap();
        let record = json!({"after_sha256": sha256_hex(&disk), "record": {"note": "crashed"}});
        let whole = to_pretty_string(&record);
        crate::file::overwrite(&pending, whole.as_bytes(), 0o600).unwrap();
        store.update(&ops::format(), &journal).unwrap();
        let after = updates(&journal);
        let recovered = |records: &[Value]| {
            records
                .iter()
                .filter(|r| r["recovered"] == true)
                .map(|r| r["note"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            recovered(&after[before..]),
            [json!("crashed")],
            "journaled once, marked recovered"
        );
        assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);

        // Torn half-way (over a longer stale record), or for a backlog never written.
        for left in [
            format!("{}{}", &whole[..whole.len() / 2], " ".repeat(whole.len())),
            to_pretty_string(&json!({"after_sha256": "0".repeat(64), "record": {}})),
        ] {
            crate::file::overwrite(&pending, left.as_bytes(), 0o600).unwrap();
            store.update(&ops::format(), &journal).unwrap();
            assert_eq!(recovered(&updates(&journal)).len(), 1, "dropped: {left}");
            assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);
        }
    }

    /// With the history full, the next `last.json` is written into the file of the oldest
    /// version (no inode freed, none allocated); the history keeps its newest [`HISTORY`]
    /// versions, and every file holds the version it should.
    #[test]
    fn a_full_history_gives_its_oldest_file_to_the_next_last_json() {
        use std::os::unix::fs::MetadataExt;
        let (dir, path, store, journal) = one_task();
        let last = store.state_file("last.json");
        let history = store.state_file("history");
        let title = |t: &str| ops::user(".tasks[0].title = $t", vec![("t".into(), json!(t))]);
        let mut versions = Vec::new();
        for i in 0..HISTORY + 3 {
            store
                .update(&title(&format!("title {i}")), &journal)
                .unwrap();
            versions.push(std::fs::read(&path).unwrap());
        }
        let names = store.history_names();
        assert_eq!(names.len(), HISTORY);
        let oldest = history.join(&names[0].1);
        let oldest_ino = std::fs::metadata(&oldest).unwrap().ino();
        let oldest_text = std::fs::read(&oldest).unwrap();
        store.update(&title("one more"), &journal).unwrap();
        assert_eq!(
            std::fs::metadata(&last).unwrap().ino(),
            oldest_ino,
            "reused"
        );
        assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&path).unwrap());
        assert!(!oldest.exists());
        let names = store.history_names();
        assert_eq!(names.len(), HISTORY);
        // The newest in the history is the version before this update, whole.
        let newest = std::fs::read(history.join(&names[HISTORY - 1].1)).unwrap();
        assert_eq!(&newest, versions.last().unwrap());
        assert_ne!(newest, oldest_text);
        let temps = std::fs::read_dir(dir.path().join("state")).map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        });
        assert_eq!(temps.unwrap_or(0), 0, "no temp file left");
    }

    /// The previous `last.json` is kept in the history without a copy; killed between moving
    /// it there and putting the next one in place, the newest version in the history is the
    /// base, and an edit that completes a task is still refused.
    #[test]
    fn the_base_is_moved_into_the_history_and_found_there() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, path, store, journal) = one_task();
        store.update(&ops::format(), &journal).unwrap();
        let last = store.state_file("last.json");
        let history = store.state_file("history");
        let first = std::fs::metadata(&last).unwrap();
        store
            .update(&ops::set_status("T1", Status::Doing), &journal)
            .unwrap();
        let moved = std::fs::metadata(history.join("1.json")).unwrap();
        assert_eq!((moved.ino(), moved.nlink()), (first.ino(), 1), "not copied");
        assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&path).unwrap());

        // Killed between the two moves: the last version is only in the history.
        std::fs::rename(&last, history.join("2.json")).unwrap();
        // Someone marks the task done by hand meanwhile.
        edit_file(&path, |v| v["tasks"][0]["status"] = json!("done"));
        let applied = store.update(&ops::format(), &journal).unwrap();
        let external = applied.external.expect("the edit is seen as an edit");
        assert!(!external.refusals.is_empty(), "{:?}", external.refusals);
        let disk: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(disk["tasks"][0]["status"], "doing");
        assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&path).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever happens, the file on disk stays valid, tasks an update does not target
        /// stay byte-identical, and replaying the journal reproduces the file byte for byte.
        #[test]
        fn store_invariants(start in 0usize..4, ops in prop::collection::vec(arb_op(), 1..14)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("to-do.json");
            let tasks: Vec<Value> = (1..=start).map(|i| json!({"title": format!("t{i}"), "id": format!("T{i}"), "status": "todo", "priority": 3, "x_order": null})).map(|mut t| { t.as_object_mut().unwrap().shift_remove("x_order"); t }).collect();
            // A hand-written file: odd key order, compact formatting.
            std::fs::write(&path, serde_json::to_string(&json!({"tasks": tasks, "source_files": [], "schema_version": 1})).unwrap()).unwrap();
            let store = BacklogStore::new(&path, &dir.path().join("state"));
            let journal = Journal::new(dir.path().join("runs/r.jsonl"), "r".into());

            // An update refused after it took in an external edit leaves the file as the edit
            // made it, while Looper goes on from the edit as it took it in (`last.json`, with
            // its refusals): the next update's untouched tasks are compared with that.
            let mut taken_in_by_refused = false;
            for op in ops {
                let before: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let looper_view: Value = if taken_in_by_refused {
                    serde_json::from_slice(&std::fs::read(store.state_file("last.json")).unwrap()).unwrap()
                } else {
                    before.clone()
                };
                let ids = task_ids(&before);
                let pick = |i: usize| ids.get(i % ids.len().max(1)).cloned();
                // Only an update that goes through makes Looper's view the file again.
                let keeps_view = matches!(op, Op::BadUpdate | Op::ExternalRetitle(..) | Op::ExternalDelete(..) | Op::ExternalAdd(..) | Op::ExternalDone(..) | Op::ExternalCompact);
                if !keeps_view {
                    taken_in_by_refused = false;
                }
                match op {
                    Op::Add(title) => {
                        let title = if title.trim().is_empty() { "x".into() } else { title };
                        store.update(&ops::add(&NewTask { title, priority: 2, description: None, depends_on: vec![], tags: vec![] }, &ops::IdStyle::default()), &journal).unwrap();
                    }
                    Op::SetStatus(i, s) => {
                        let Some(id) = pick(i) else { continue };
                        let status = [Status::Todo, Status::Doing, Status::Blocked][s];
                        let was_done = before["tasks"].as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["status"] == "done");
                        let applied = store.update(&ops::set_status(&id, status), &journal);
                        if was_done { continue; }
                        let applied = applied.unwrap();
                        if applied.external.is_none() {
                            // Only the targeted task changed; the others are byte-identical.
                            let after = applied.doc.value();
                            for (a, b) in looper_view["tasks"].as_array().unwrap().iter().zip(after["tasks"].as_array().unwrap()) {
                                if a["id"] != id.as_str() {
                                    prop_assert_eq!(serde_json::to_string(a).unwrap(), serde_json::to_string(b).unwrap());
                                }
                            }
                        }
                    }
                    Op::Done(i) => {
                        let Some(id) = pick(i) else { continue };
                        store.update(&ops::done_by_hand(&id, "test"), &journal).unwrap();
                    }
                    Op::BadUpdate => {
                        let raw = std::fs::read(&path).unwrap();
                        let edits = || std::fs::read_to_string(dir.path().join("runs/r.jsonl")).unwrap_or_default().matches("\"backlog.external_change\"").count();
                        let edits_before = edits();
                        let r = store.update(&ops::user(".tasks += [{\"id\": \"Z\", \"title\": \"z\", \"priority\": 9, \"status\": \"todo\"}]", vec![]), &journal);
                        prop_assert!(r.is_err());
                        prop_assert_eq!(std::fs::read(&path).unwrap(), raw, "a refused update leaves the file untouched");
                        taken_in_by_refused |= edits() > edits_before;
                    }
                    Op::Fmt => { store.update(&ops::format(), &journal).unwrap(); }
                    Op::ExternalRetitle(i, t) => {
                        let Some(id) = pick(i) else { continue };
                        edit_file(&path, |v| for task in v["tasks"].as_array_mut().unwrap() { if task["id"] == id.as_str() { task["title"] = json!(t.clone()); } });
                    }
                    Op::ExternalDelete(i) => {
                        let Some(id) = pick(i) else { continue };
                        // Deleting a task others depend on would be invalid; keep it simple.
                        edit_file(&path, |v| {
                            let list = v["tasks"].as_array_mut().unwrap();
                            list.retain(|t| t["id"] != id.as_str());
                        });
                    }
                    Op::ExternalAdd(t) => {
                        edit_file(&path, |v| {
                            // An id no task has (after a deletion, the count repeats one).
                            let list = v["tasks"].as_array_mut().unwrap();
                            let id = (list.len()..=2 * list.len() + 1).map(|n| format!("H{n}{t}")).find(|id| !list.iter().any(|task| task["id"] == id.as_str())).unwrap();
                            list.push(json!({"id": id, "title": t, "priority": 1, "status": "todo"}));
                        });
                    }
                    Op::ExternalDone(i) => {
                        let Some(id) = pick(i) else { continue };
                        edit_file(&path, |v| for task in v["tasks"].as_array_mut().unwrap() { if task["id"] == id.as_str() { task["status"] = json!("done"); } });
                    }
                    Op::ExternalCompact => edit_file(&path, |_| {}),
                }
                // The file on disk is always a valid backlog.
                prop_assert!(store.load().is_ok());
            }
            // One last write takes in any pending external edit, then replay must match.
            store.update(&ops::format(), &journal).unwrap();
            let (_, records) = journal_records(dir.path());
            let replayed = replay::replay(&records).unwrap().unwrap();
            prop_assert_eq!(to_pretty_string(&replayed), std::fs::read_to_string(&path).unwrap());
        }

        /// Load → write of any valid file is byte-identical after formatting once.
        #[test]
        fn formatting_is_a_fixed_point(n in 0usize..6, indent in 0usize..5, extra in any::<bool>()) {
            let tasks: Vec<Value> = (0..n).map(|i| {
                let mut t = json!({"status": "todo", "priority": 1 + i % 5, "title": format!("é \"{i}\"\n"), "id": format!("T{i}")});
                if extra { t["notes"] = json!(["a", "b"]); t["attempts"] = json!(i); }
                t
            }).collect();
            let doc = json!({"tasks": tasks, "schema_version": 1, "source_files": ["README.md"]});
            let text = if indent == 0 { serde_json::to_string(&doc).unwrap() } else {
                let mut buf = Vec::new();
                let ind = " ".repeat(indent);
                let fmt = serde_json::ser::PrettyFormatter::with_indent(ind.as_bytes());
                let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                serde::Serialize::serialize(&doc, &mut ser).unwrap();
                String::from_utf8(buf).unwrap()
            };
            let once = load::from_bytes(Path::new("x"), text.into_bytes()).unwrap().doc.to_pretty_string();
            let twice = load::from_bytes(Path::new("x"), once.clone().into_bytes()).unwrap();
            prop_assert!(twice.is_canonical());
            prop_assert_eq!(twice.doc.to_pretty_string(), once);
        }
    }
}
