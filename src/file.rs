//! The one function that writes files other processes read, and private directories.
//!
//! [`write_atomic`]: a temp file in the same directory, write, `sync_all`, keep the target's
//! permissions, rename over the target, fsync the directory. A reader (or a crash) sees the
//! old file or the new one, never a mix. The backlog's writer takes the same steps apart
//! ([`stage`], [`Staged::swap`], [`Swapped::durable`]) to work while the disk does: the file's
//! write-back starts as soon as it is written and its fsync comes after the writer's other
//! work; the directory's fsync runs on the [`Syncer`]'s thread; its temp file is, when no one
//! has that open, the file the write before replaced ([`Spares`]). Looper's small state files
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
/// same result without allocating an inode and freeing another (see [`overwrite`]), with
/// `path`'s mode (0600 when there is none). Only for files that no one reads without the
/// writer's lock.
pub fn reuse_as_temp(
    spare: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<tempfile::NamedTempFile> {
    let file = std::fs::OpenOptions::new().write(true).open(spare)?;
    let len = file.metadata()?.len();
    write_into(file, spare, path, bytes, 0o600, len)
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
    let dir = parent_dir(path);
    let mode = mode_for(path, new_mode);
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
    stage(path, bytes, new_mode, None)?
        .swap(expected, helpers, None)?
        .durable()
}

/// Writes `bytes` into a temp file beside `path` and starts writing it to the disk: the
/// first step of a durable replace. While the disk works, the writer hashes the bytes and
/// saves its records; [`Staged::swap`], the second step, waits for the disk, then renames.
/// Dropped, it removes the temp file.
pub fn stage(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    spares: Option<&Spares>,
) -> std::io::Result<Staged> {
    let path = write_target(path).into_owned();
    let reused = spares.and_then(|spares| spares.take(&path, bytes, new_mode));
    let (dir, tmp) = if let Some(tmp) = reused {
        (parent_dir(&path), tmp)
    } else {
        temp_beside(&path, bytes, new_mode)?
    };
    start_writeback(tmp.as_file());
    Ok(Staged {
        dir: dir.to_path_buf(),
        tmp,
        path,
    })
}

/// The mode a file written at `path` gets: the one `path` has, or `new_mode` for a new file.
fn mode_for(path: &Path, new_mode: u32) -> u32 {
    std::fs::metadata(path).map_or(new_mode, |m| m.permissions().mode() & 0o7777)
}

/// The directory a rename of `path` happens in.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Where a writer keeps the file its last write displaced, to write its next version into
/// instead of making a new file and removing the old one: on ext4 each new file costs an
/// inode and blocks allocated and another file's freed, 0.5–0.9 ms a write on this project's
/// VM disk against about 0.1 for a write over a file's own blocks.
///
/// A displaced file is *parked* (moved to a path of Looper's own on the same file system)
/// only when the writer expected it (no one wrote the path in between) and it has no other
/// name; it is written again only when no one has it open. A reader that opened the backlog
/// before a write so keeps reading the version it opened, whole, as with a new file each
/// time. Whether anyone has it open is what Linux answers when asked for a write lease: it
/// grants one only to a file's one open file description (an `mmap` keeps one open). Where
/// leases are not available, nothing is reused.
#[derive(Debug, Clone)]
pub struct Spares {
    park: std::sync::Arc<std::path::PathBuf>,
    /// Set once a lease was refused for another reason than an open file: from then on
    /// nothing is parked, and the remover takes replaced files away as before, off the
    /// writer's thread.
    off: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Spares {
    /// Spares parked at `park`.
    pub fn new(park: std::path::PathBuf) -> Self {
        Self {
            park: std::sync::Arc::new(park),
            off: std::sync::Arc::default(),
        }
    }

    /// Moves `path`, a file just displaced, to the park for the next [`stage`], when it has no
    /// other name; false when it stays where it is. Parked, it is private (0600), as all of
    /// Looper's state; the next write gives it the backlog's mode again.
    fn park(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        !self.off.load(std::sync::atomic::Ordering::Relaxed)
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.nlink() == 1)
            && std::fs::set_permissions(path, Permissions::from_mode(0o600)).is_ok()
            && std::fs::rename(path, &*self.park).is_ok()
    }

    /// The parked file, moved beside `path` and holding `bytes` (with `path`'s mode, or
    /// `new_mode`), when no one has it open; `None` otherwise (a parked file someone still
    /// has open is removed: the reader keeps it).
    fn take(&self, path: &Path, bytes: &[u8], new_mode: u32) -> Option<tempfile::NamedTempFile> {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&*self.park)
            .ok()?;
        let meta = file.metadata().ok()?;
        let alone = meta.is_file() && meta.nlink() == 1 && {
            let alone = lease::alone(&file);
            if alone.is_err() {
                self.off.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            matches!(alone, Ok(true))
        };
        if !alone {
            drop(file);
            let _ = std::fs::remove_file(&*self.park);
            return None;
        }
        write_into(file, &self.park, path, bytes, new_mode, meta.len()).ok()
    }
}

/// The one question Looper asks of file leases.
mod lease {
    /// Whether `file` (open for writing) is the only open file description of its file, in
    /// every process: Linux grants a write lease (`F_SETLEASE`, `F_WRLCK`) only then, and
    /// answers `EAGAIN` otherwise. The lease is given back at once; an open by another
    /// process meanwhile would raise the lease-break signal, set to `SIGURG` first (ignored
    /// unless handled; the default `SIGIO` would end the process). An error where leases are
    /// refused for another reason (another owner, a file system without them,
    /// `fs.leases-enable = 0`).
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[expect(
        unsafe_code,
        reason = "fcntl's F_SETSIG and F_SETLEASE have no safe wrapper in nix or rustix"
    )]
    pub(super) fn alone(file: &std::fs::File) -> Result<bool, std::io::Error> {
        use std::os::fd::AsRawFd;
        // `<asm-generic/fcntl.h>`, which these architectures use; the libc crate lacks it.
        const F_SETSIG: libc::c_int = 10;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is open for as long as `file` is borrowed, and these fcntl commands
        // take an integer argument and touch no memory of this process.
        if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } != 0 {
            // No lease asked for: its break would raise the default SIGIO.
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) } != 0 {
            let error = std::io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN) => Ok(false),
                _ => Err(error),
            };
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    }

    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    pub(super) fn alone(_: &std::fs::File) -> Result<bool, std::io::Error> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// `bytes` written into `file` (open for writing at `spare`, `len` bytes long), first moved
/// to a temp name beside `path`, with `path`'s mode (`new_mode` when there is none). Written
/// over, not emptied first: on ext4 a write after a truncation to zero is flushed at close.
fn write_into(
    mut file: std::fs::File,
    spare: &Path,
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    len: u64,
) -> std::io::Result<tempfile::NamedTempFile> {
    static REUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mode = mode_for(path, new_mode);
    let n = REUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(
        "{}r{}x{n}.tmp",
        temp_prefix(path),
        std::process::id()
    ));
    std::fs::rename(spare, &tmp)?;
    // Removed if dropped from here on, as a temp file.
    let tmp = tempfile::TempPath::try_from_path(tmp)?;
    file.write_all(bytes)?;
    let new_len = bytes.len() as u64;
    if len > new_len {
        file.set_len(new_len)?;
    }
    file.set_permissions(Permissions::from_mode(mode))?;
    Ok(tempfile::NamedTempFile::from_parts(file, tmp))
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
        spares: Option<&Spares>,
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
            if let Ok(path) = tmp.keep()
                && !spares.is_some_and(|spares| spares.park(&path))
            {
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

        let staged = stage(&p, b"three", 0o644, None).unwrap();
        // Another writer lands between the read and the swap.
        std::fs::write(&p, b"theirs").unwrap();
        let displaced = staged
            .swap(b"two", (&remover, &syncer), None)
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

    /// One write of `bytes` over `p` with `spares`, as the backlog's writer makes it; the
    /// file put in place's inode.
    fn write_spared(p: &Path, bytes: &[u8], expected: &[u8], spares: &Spares) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let (remover, syncer) = (Remover::default(), Syncer::default());
        let displaced = stage(p, bytes, 0o640, Some(spares))
            .unwrap()
            .swap(expected, (&remover, &syncer), Some(spares))
            .unwrap()
            .durable()
            .unwrap();
        assert!(displaced.is_none());
        assert_eq!(std::fs::read(p).unwrap(), bytes);
        std::fs::metadata(p).unwrap().ino()
    }

    fn ino(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    /// A replaced file is the next write's temp file, once no one has it open: the file
    /// put in place goes back and forth between two inodes, keeps the mode the path has, and
    /// is shorter when its bytes are; a file parked by an earlier writer is taken too.
    #[test]
    fn a_replaced_file_is_the_next_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("to-do.json");
        let park = dir.path().join("state.spare");
        std::fs::write(&p, b"theirs").unwrap();
        std::fs::set_permissions(&p, Permissions::from_mode(0o604)).unwrap();
        std::fs::write(&park, b"an earlier writer's, longer").unwrap();
        let (theirs, earlier) = (ino(&p), ino(&park));
        let spares = Spares::new(park.clone());

        let first = write_spared(&p, b"one", b"theirs", &spares);
        assert_eq!(first, earlier, "the parked file is written again");
        assert_eq!(ino(&park), theirs, "the replaced file is parked");
        let second = write_spared(&p, b"two", b"one", &spares);
        assert_eq!(second, theirs);
        let third = write_spared(&p, b"three", b"two", &spares);
        assert_eq!(third, first);
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o604
        );
        // Only the backlog and the parked file: no temp file is left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["state.spare", "to-do.json"]);
    }

    /// A reader that opened the file before a write keeps reading the version it opened,
    /// whole, however many writes come after: a replaced file someone has open, or that has
    /// another name, is never written again.
    #[test]
    fn a_replaced_file_someone_has_open_or_linked_is_not_written_again() {
        use std::io::{Read, Seek};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("to-do.json");
        let spares = Spares::new(dir.path().join("state.spare"));
        std::fs::write(&p, b"zero").unwrap();
        let one = write_spared(&p, b"one", b"zero", &spares);
        let mut reader = std::fs::File::open(&p).unwrap();
        write_spared(&p, b"two", b"one", &spares);
        for (n, next) in ["three", "four", "five"].iter().enumerate() {
            let before = std::fs::read(&p).unwrap();
            let put = write_spared(&p, next.as_bytes(), &before, &spares);
            assert_ne!(put, one, "write {n} went into the file a reader has open");
        }
        let mut held = String::new();
        reader.rewind().unwrap();
        reader.read_to_string(&mut held).unwrap();
        assert_eq!(held, "one");
        drop(reader);
        // Closed, the next replaced file is reused again.
        let six = write_spared(&p, b"six", b"five", &spares);
        let seven = write_spared(&p, b"seven", b"six", &spares);
        let eight = write_spared(&p, b"eight", b"seven", &spares);
        assert_eq!(eight, six);
        assert_ne!(seven, six);

        // Another name for the file in place: the name keeps that version.
        let link = dir.path().join("copy.json");
        std::fs::hard_link(&p, &link).unwrap();
        for next in ["nine", "ten", "eleven"] {
            let before = std::fs::read(&p).unwrap();
            let put = write_spared(&p, next.as_bytes(), &before, &spares);
            assert_ne!(put, ino(&link));
        }
        assert_eq!(std::fs::read(&link).unwrap(), b"eight");
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
