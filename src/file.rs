//! The one function that writes files other processes read, and private directories.
//!
//! [`write_atomic`]: a temp file in the same directory, write, `sync_all`, keep the target's
//! permissions, rename over the target, fsync the directory. A reader (or a crash) sees the
//! old file or the new one, never a mix. The backlog's writer takes the same steps apart
//! ([`stage`], [`Staged::swap`], [`Swapped::durable`]) to work while the disk does: the file's
//! write-back starts as soon as it is written and its fsync comes after the writer's other
//! work; the directory's fsync runs on the [`Syncer`]'s thread. Looper's small state files
//! that only it reads, under its lock, are rewritten in place ([`overwrite`], [`clear`]).
//! A path that is a symbolic link stays one: the write goes to the file it points to
//! ([`write_target`]).

use std::borrow::Cow;
use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Atomically replaces `path` with `bytes` and makes it durable (fsync of the file and the
/// directory). A new file gets `new_mode`; an existing file keeps its mode.
pub fn write_atomic(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    write_atomic_with(path, bytes, new_mode, true)
}

/// Like [`write_atomic`] but without the fsyncs: still all-or-nothing if the process dies,
/// but a power loss may bring back the previous version. For Looper's own state files,
/// which it can rebuild; never for the user's files.
pub fn write_atomic_nosync(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    write_atomic_with(path, bytes, new_mode, false)
}

fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    durable: bool,
) -> std::io::Result<()> {
    let path = &*write_target(path);
    let (dir, tmp) = temp_beside(path, bytes, new_mode)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    crate::fault::point("file.before-rename");
    tmp.persist(path).map_err(|e| e.error)?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Writes `bytes` over `path` in place (a new file gets `new_mode`), not synced: the file
/// keeps its inode from one write to the next. For Looper's small state files written many
/// times a run, whose readers tell a torn or empty file from a whole one and whose writers
/// hold a lock: each new file costs an inode allocation, which a file system that freed many
/// inodes in the last minutes makes slow (ext4 without a journal skips each one freed in the
/// last 60 s), and a replace by rename frees one more.
pub fn overwrite(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(new_mode)
        .open(path)?;
    // Emptied first only if [`clear`] did not: on ext4 a write after a truncation to zero is
    // flushed to the disk at close (`auto_da_alloc`). A write that fails half-way leaves a
    // prefix, which does not parse.
    if file.metadata()?.len() > 0 {
        file.set_len(0)?;
    }
    file.write_all(bytes)
}

/// Empties `path` in place, keeping the file for the next [`overwrite`]: what removing it
/// would say to a reader, without freeing the inode. A missing file is already empty.
pub fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => file.set_len(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// [`write_temp`] into `spare`, a file of Looper's own that is no longer wanted (the oldest
/// version in a history about to be pruned), first moved to a temp name beside `path`: the
/// same result without allocating an inode and freeing another (see [`overwrite`]). Written
/// over, not emptied first: on ext4 a write after a truncation to zero is flushed at close.
/// Only for files that no one reads without the writer's lock.
pub fn reuse_as_temp(
    spare: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<tempfile::NamedTempFile> {
    static REUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = REUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        "{}r{}x{n}.tmp",
        temp_prefix(path),
        std::process::id()
    ));
    std::fs::rename(spare, &tmp)?;
    // Removed if dropped from here on, as a temp file.
    let tmp = tempfile::TempPath::try_from_path(tmp)?;
    let mut file = std::fs::OpenOptions::new().write(true).open(&tmp)?;
    file.write_all(bytes)?;
    let len = bytes.len() as u64;
    if file.metadata()?.len() > len {
        file.set_len(len)?;
    }
    Ok(tempfile::NamedTempFile::from_parts(file, tmp))
}

/// `bytes` in a temp file beside `path`, not synced: `persist` puts it in place. For Looper's
/// own state, like [`write_atomic_nosync`], written ahead of the moment it replaces the file.
pub fn write_temp(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
) -> std::io::Result<tempfile::NamedTempFile> {
    temp_beside(path, bytes, new_mode).map(|(_, tmp)| tmp)
}

/// `bytes` in a temp file beside `path` (in its directory, so a rename is atomic), with the
/// mode `path` has (`new_mode` when there is no file yet). Returns the directory and the temp
/// file.
fn temp_beside<'a>(
    path: &'a Path,
    bytes: &[u8],
    new_mode: u32,
) -> std::io::Result<(&'a Path, tempfile::NamedTempFile)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(path).map_or(new_mode, |m| m.permissions().mode() & 0o7777);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    Ok((dir, tmp))
}

/// The file [`Swapped::durable`] took off the path when it was not the one the caller read:
/// someone wrote the path in between. Deleted on drop; read it (again, if a writer is still
/// writing into it) before.
#[derive(Debug)]
pub struct Displaced(tempfile::TempPath);

impl Displaced {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// [`stage`], [`Staged::swap`] and [`Swapped::durable`] in one go: replaces `path` with
/// `bytes` durably, and returns the file it replaced when that was not `expected`.
pub fn replace_checked(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    expected: &[u8],
    helpers: (&Remover, &Syncer),
) -> std::io::Result<Option<Displaced>> {
    stage(path, bytes, new_mode)?
        .swap(expected, helpers)?
        .durable()
}

/// Writes `bytes` into a temp file beside `path` and starts writing it to the disk: the
/// first step of a durable replace. While the disk works, the writer hashes the bytes and
/// saves its records; [`Staged::swap`], the second step, waits for the disk, then renames.
/// Dropped, it removes the temp file.
pub fn stage(path: &Path, bytes: &[u8], new_mode: u32) -> std::io::Result<Staged> {
    let path = write_target(path).into_owned();
    let (dir, tmp) = temp_beside(&path, bytes, new_mode)?;
    start_writeback(tmp.as_file());
    Ok(Staged {
        dir: dir.to_path_buf(),
        tmp,
        path,
    })
}

/// Where a write to `path` goes so that a symbolic link there stays one (a backlog kept in a
/// dotfiles repository and linked into the project, say): the file the link points to,
/// through every link, or `path` itself when it is not a link. A link to a file that does
/// not exist yet gives the file it names, so the write creates it. One `lstat` when `path`
/// is not a link.
pub fn write_target(path: &Path) -> Cow<'_, Path> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Cow::Borrowed(path);
    }
    if let Ok(real) = std::fs::canonicalize(path) {
        return Cow::Owned(real);
    }
    // A dangling link: follow it by hand, as far as the kernel would (40 links).
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let Ok(next) = std::fs::read_link(&at) else {
            break;
        };
        at = at
            .parent()
            .map_or_else(|| next.clone(), |dir| dir.join(&next));
    }
    Cow::Owned(at)
}

/// Starts writing `file`'s dirty pages to the disk without waiting for them, so that the
/// fsync after other work has less left to wait for (measured on this project's VM disk: a
/// 330 KB file's fsync 0.32 → 0.11 ms after 0.3 ms of other work). On Linux,
/// `POSIX_FADV_DONTNEED` does it: it starts the write-back of the range's dirty pages, as
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` does (which no safe wrapper offers), then drops
/// only pages that are clean, none here (`PostgreSQL`'s `pg_flush_data` uses the same advice
/// where `sync_file_range` is missing). On tmpfs it does nothing. Only a hint: the fsync
/// decides, so an error is ignored.
fn start_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    let _ = nix::fcntl::posix_fadvise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// A temp file written by [`stage`], on its way to the disk.
#[derive(Debug)]
pub struct Staged {
    dir: std::path::PathBuf,
    tmp: tempfile::NamedTempFile,
    /// Where it goes: the path staged for, or the file a link there points to.
    path: std::path::PathBuf,
}

impl Staged {
    /// Waits until the temp file is on the disk (fsync), then puts it at its path (through a
    /// link there, at the file the link points to, [`write_target`]): on Linux
    /// with `RENAME_EXCHANGE`, so the file it replaces is not lost. When that file's bytes
    /// are not `expected` (what the caller read before it decided what to write), another
    /// process wrote the path in between, and [`Swapped::durable`] returns the replaced file
    /// for the caller to take in. Where the exchange is not available (another OS, a file
    /// system without it, no file yet), a plain rename. The replaced file, when it is
    /// `expected`, is removed by the remover. The directory's fsync starts on the syncer's
    /// thread: the rename is durable once [`Swapped::durable`] returns (or the [`Syncing`] of
    /// [`Swapped::into_parts`] is done).
    pub fn swap(
        self,
        expected: &[u8],
        (remover, syncer): (&Remover, &Syncer),
    ) -> std::io::Result<Swapped> {
        let Self { dir, tmp, path } = self;
        let path = path.as_path();
        tmp.as_file().sync_all()?;
        crate::fault::point("file.before-rename");
        let (file, tmp) = tmp.into_parts();
        let dir_synced = |dir: std::path::PathBuf| syncer.start(move || sync_dir(&dir));
        if !exchange(&tmp, path) {
            tmp.persist(path).map_err(|e| e.error)?;
            return Ok(Swapped {
                displaced: None,
                dir_synced: dir_synced(dir),
                placed: file.metadata().ok(),
            });
        }
        let dir_synced = dir_synced(dir);
        let placed = file.metadata().ok();
        // `tmp` now names the file that was at `path` until the exchange.
        let old = std::fs::read(&tmp).ok();
        let displaced = if old.as_deref() == Some(expected) {
            // Disarmed first: the remover takes the name away.
            if let Ok(path) = tmp.keep() {
                remover.remove(&path);
            }
            None
        } else {
            Some(Displaced(tmp))
        };
        Ok(Swapped {
            displaced,
            dir_synced,
            placed,
        })
    }
}

/// A file put in place by [`Staged::swap`], the directory's fsync going on.
#[derive(Debug)]
pub struct Swapped {
    displaced: Option<Displaced>,
    dir_synced: Syncing,
    /// The file put in place, as it was then (the rename changes its ctime).
    placed: Option<std::fs::Metadata>,
}

impl Swapped {
    /// Waits until the rename is durable; returns the file it displaced, if that was not the
    /// one expected.
    pub fn durable(self) -> std::io::Result<Option<Displaced>> {
        self.dir_synced.wait()?;
        Ok(self.displaced)
    }

    /// The file it displaced, if that was not the one expected; the directory's fsync for
    /// the caller to wait for later; and the metadata of the file put in place, read from the
    /// file itself (whatever is at the path by now).
    pub fn into_parts(self) -> (Option<Displaced>, Syncing, Option<std::fs::Metadata>) {
        (self.displaced, self.dir_synced, self.placed)
    }
}

/// Runs jobs, in order, on a thread of its own, started at the first job. Clones share the
/// thread; when the last one is dropped it finishes the jobs handed to it and is joined.
#[derive(Debug, Clone)]
struct Worker(std::sync::Arc<Working>);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
struct Working {
    name: &'static str,
    thread: std::sync::Mutex<Option<(std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>)>>,
}

impl Worker {
    fn new(name: &'static str) -> Self {
        Self(std::sync::Arc::new(Working {
            name,
            thread: std::sync::Mutex::default(),
        }))
    }

    /// Hands `job` to the thread; runs it here when there is no thread to be had.
    fn run(&self, job: Job) {
        let mut thread = self
            .0
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let spawned = std::thread::Builder::new()
                .name(self.0.name.into())
                .spawn(move || rx.into_iter().for_each(|job| job()));
            if let Ok(handle) = spawned {
                *thread = Some((tx, handle));
            }
        }
        let job = match &*thread {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => job,
        };
        drop(thread);
        job();
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((tx, handle)) = thread {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// Removes files, the expensive half on a thread of its own. Freeing a large file's blocks
/// costs a journaling file system a fraction of a millisecond (0.2 ms for a 330 KB backlog on
/// ext4), which a writer need not wait for. The name goes at once (git, an agent or a gate
/// listing the directory must not find a file that vanishes under it); the file stays open
/// and the thread closes it, which frees the blocks. Clones share the thread; when the last
/// one is dropped it waits for the files handed to it, so nothing is left open.
#[derive(Debug, Clone)]
pub struct Remover(Worker);

impl Default for Remover {
    fn default() -> Self {
        Self(Worker::new("looper-remover"))
    }
}

impl Remover {
    /// Removes the file at `path`: its name now, its blocks soon.
    pub fn remove(&self, path: &Path) {
        let file = std::fs::File::open(path);
        if std::fs::remove_file(path).is_err() {
            return;
        }
        if let Ok(file) = file {
            self.0.run(Box::new(move || drop(file)));
        }
    }
}

/// Fsyncs directories on a thread of its own, so a writer can go on while the disk works (the
/// directory's fsync after a rename waits 0.2–0.3 ms for this machine's disk). Clones share
/// the thread.
#[derive(Debug, Clone)]
pub struct Syncer(Worker);

impl Default for Syncer {
    fn default() -> Self {
        Self(Worker::new("looper-syncer"))
    }
}

impl Syncer {
    /// Starts `sync` on the thread; [`Syncing::wait`] gives its result.
    fn start(&self, sync: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Syncing {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.0.run(Box::new(move || {
            let _ = tx.send(sync());
        }));
        Syncing(rx)
    }
}

/// An fsync started by a [`Syncer`].
#[derive(Debug)]
#[must_use = "an fsync's result must be waited for"]
pub struct Syncing(std::sync::mpsc::Receiver<std::io::Result<()>>);

impl Syncing {
    /// Waits for the fsync and gives its result.
    pub fn wait(self) -> std::io::Result<()> {
        self.0
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the syncer thread stopped")))
    }
}

/// Atomically swaps two paths; false when that is not possible here (then nothing moved).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> bool {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).is_ok()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_: &Path, _: &Path) -> bool {
    false
}

/// Removes the temp files a killed [`write_atomic`] of `path` left (`.<name>.<random>.tmp`).
/// Only for a caller that holds the lock every writer of `path` takes.
pub fn remove_stale_temps(path: &Path) {
    let Some(dir) = path.parent() else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_temp_of(Path::new(&entry.file_name()), path) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// How the name of a temp file this module writes for `path` starts (`.<name>.`; it ends in
/// `.tmp`): the one rule [`is_temp_of`] and so [`remove_stale_temps`] rely on.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("looper");
    format!(".{name}.")
}

/// Whether `candidate`'s file name is that of a temp file this module writes for `path`
/// (`.<name>.<random>.tmp`): one being written, or one a writer has not removed yet.
pub fn is_temp_of(candidate: &Path, path: &Path) -> bool {
    let (Some(name), Some(n)) = (
        path.file_name().and_then(|n| n.to_str()),
        candidate.file_name().and_then(|n| n.to_str()),
    ) else {
        return false;
    };
    let prefix = temp_prefix(Path::new(name));
    n.len() > prefix.len() + 4
        && n.starts_with(&prefix)
        && Path::new(n).extension().is_some_and(|e| e == "tmp")
}

/// Fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates a directory (and parents) readable only by the user.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", 0o644).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// An overwrite keeps the file (its inode) and leaves only the new bytes, shorter or
    /// longer; a new file gets the mode asked for; clearing empties it and keeps it, and a
    /// missing file is already clear.
    #[test]
    fn overwrite_and_clear_keep_the_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pending.json");
        clear(&p).unwrap();
        assert!(!p.exists(), "clearing does not create");
        overwrite(&p, b"a longer first record", 0o600).unwrap();
        let first = std::fs::metadata(&p).unwrap();
        assert_eq!(first.permissions().mode() & 0o777, 0o600);
        overwrite(&p, b"short", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"short");
        clear(&p).unwrap();
        let cleared = std::fs::metadata(&p).unwrap();
        assert_eq!((cleared.ino(), cleared.len()), (first.ino(), 0));
        assert_eq!(
            cleared.permissions().mode() & 0o777,
            0o600,
            "the mode stays"
        );
        let reused = reuse_as_temp(&p, &dir.path().join("last.json"), b"reused").unwrap();
        assert!(is_temp_of(reused.path(), &dir.path().join("last.json")));
        assert_eq!(std::fs::read(reused.path()).unwrap(), b"reused");
        reused.persist(&p).unwrap();
        overwrite(&p, b"longer than short", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"longer than short");
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), first.ino());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A staged file is in place once swapped; the file it replaced comes back only when it
    /// is not the one expected; an fsync on the syncer's thread that fails says so to the
    /// one waiting for it.
    #[test]
    fn a_staged_file_swaps_in_and_returns_an_unexpected_one() {
        let dir = tempfile::tempdir().unwrap();
        let (remover, syncer) = (Remover::default(), Syncer::default());
        let p = dir.path().join("f.json");
        std::fs::write(&p, b"one").unwrap();
        let displaced = replace_checked(&p, b"two", 0o644, b"one", (&remover, &syncer)).unwrap();
        assert!(displaced.is_none());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");

        let staged = stage(&p, b"three", 0o644).unwrap();
        // Another writer lands between the read and the swap.
        std::fs::write(&p, b"theirs").unwrap();
        let displaced = staged
            .swap(b"two", (&remover, &syncer))
            .unwrap()
            .durable()
            .unwrap()
            .expect("the other writer's file comes back");
        assert_eq!(std::fs::read(displaced.path()).unwrap(), b"theirs");
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        drop(displaced);
        drop(remover);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let gone = dir.path().join("gone");
        let failed = syncer.start(move || sync_dir(&gone));
        assert_eq!(
            failed.wait().unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }

    /// A path that is a symbolic link stays one: every writer writes the file it points to
    /// (through a chain of links, or creating the file a dangling link names), and the
    /// directory of the link gets no temp file.
    #[test]
    fn a_link_stays_a_link_and_the_file_it_points_to_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (remover, syncer) = (Remover::default(), Syncer::default());
        std::fs::create_dir(dir.path().join("plans")).unwrap();
        let real = dir.path().join("plans/real.json");
        std::fs::write(&real, b"one").unwrap();
        let link = dir.path().join("to-do.json");
        let hop = dir.path().join("hop.json");
        std::os::unix::fs::symlink("plans/real.json", &hop).unwrap();
        std::os::unix::fs::symlink("hop.json", &link).unwrap();
        assert_eq!(write_target(&link), real.canonicalize().unwrap());
        assert_eq!(write_target(&real), real);

        write_atomic(&link, b"two", 0o644).unwrap();
        let displaced = replace_checked(&link, b"three", 0o644, b"two", (&remover, &syncer));
        assert!(displaced.unwrap().is_none());
        for path in [&link, &hop] {
            assert!(std::fs::symlink_metadata(path).unwrap().is_symlink());
        }
        assert_eq!(std::fs::read(&real).unwrap(), b"three");

        // A link to a file not made yet: writing makes it.
        let dangling = dir.path().join("new.json");
        std::os::unix::fs::symlink("plans/later.json", &dangling).unwrap();
        assert_eq!(write_target(&dangling), dir.path().join("plans/later.json"));
        write_atomic(&dangling, b"four", 0o644).unwrap();
        assert!(std::fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert_eq!(
            std::fs::read(dir.path().join("plans/later.json")).unwrap(),
            b"four"
        );

        drop(remover);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .chain(std::fs::read_dir(dir.path().join("plans")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "hop.json",
                "later.json",
                "new.json",
                "plans",
                "real.json",
                "to-do.json"
            ]
        );
    }

    /// A removed file's name is gone when `remove` returns (git listing the directory must
    /// not find it), and many removals leave nothing behind once the remover is dropped.
    #[test]
    fn a_removed_name_is_gone_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let remover = Remover::default();
        for i in 0..100 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![b'x'; 64 * 1024]).unwrap();
            remover.clone().remove(&path);
            assert!(!path.exists(), "{}", path.display());
        }
        // Not there, not a failure either.
        remover.remove(&dir.path().join("missing"));
        drop(remover);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
