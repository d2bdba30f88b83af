//! The agent supervisor (DESIGN §6, STYLE §2.6–2.7): runs one agent CLI as a child process,
//! feeds its stdout to a [`StreamParser`], enforces the wall, idle and final-grace limits, and
//! leaves no process of the agent's group behind.
//!
//! It owns one child process and its process group for the length of [`run`]. It doesn't
//! build argv, journal lines or read the report: the caller does that with the
//! [`LineEvent`]s and the [`RunResult`].
//!
//! # Theory of operation
//!
//! The child is spawned as the leader of a new process group (`process_group(0)`, so its
//! pgid is its pid), with a null stdin or a pipe that a short-lived writer thread fills with
//! the prompt and then closes, and with stdout and stderr piped. [`spawn`] leaves the pipe
//! unwritten until [`Started::run_batched`], so the caller can prepare what must be in place
//! before the agent learns its task while the agent starts ([`Started::abandon`] stops it
//! unprompted if that fails); [`run_batched`] does both at once. Three more threads own nothing
//! and only report, on one bounded `std::sync::mpsc` channel:
//!
//! - one reader per stream reads 64 KiB chunks and cuts them into lines. A line keeps at most
//!   `max_line_bytes` bytes; the rest is only counted, and the line ends with a
//!   `…[truncated N bytes]` marker. A reader sends each line, an activity note when bytes
//!   arrive without ending a line (so a long line in progress is not "idle"), and EOF.
//! - the waiter blocks in `waitid(WEXITED | WNOWAIT)`: it sees the leader exit *without
//!   reaping it*, so the leader's pid (and with it the pgid) can't be recycled while the
//!   group is swept.
//!
//! The caller's thread is the single owner of the run state. It waits with
//! `recv_timeout(next_deadline)`, so the wall limit, the idle limit (no output on either
//! stream), the final grace (started when the parser emits a terminal event: `final` or a
//! fatal `error`), the kill grace and the cancel poll are all just deadlines. It feeds stdout
//! lines to the parser and hands every line to `on_line`.
//!
//! Who kills what: only the owner sends signals, and only to the group, never to a bare pid.
//! When a limit expires or the run is cancelled, the group gets SIGTERM, then SIGKILL
//! `kill_grace` later. When the waiter reports the leader's exit, the owner sweeps the group
//! while the leader is still an unreaped zombie: the members still alive get SIGTERM, and
//! SIGKILL after `kill_grace`; then the owner waits until `/proc` shows no live member and
//! only then reaps the leader. Afterwards it drains what is left in the pipes until both
//! streams end (or, if something outside the group still holds them, until they have been
//! quiet for a moment), and finishes the parser.
//!
//! If `on_line` panics or [`run`] returns early, a guard kills the group and reaps the leader.
//!
//! # Limitations
//!
//! - A descendant that calls `setsid` (or `setpgid`) leaves the group, where `killpg` can't
//!   reach it. The sweep finds it by [`TOKEN_VAR`], a variable unique to the run that every
//!   process of the agent's tree inherits, and ends it by pid (TERM, grace, KILL). One that
//!   also clears its environment escapes. If such a process keeps the agent's stdout or
//!   stderr open, [`run`] stops waiting for EOF once the pipes have been quiet for a moment
//!   and the reader threads are left to finish on their own.
//! - Killed grandchildren are reparented to pid 1. If pid 1 doesn't reap (as in some
//!   containers), they linger as zombies: dead, holding no resources but a pid, yet still in
//!   the group for `kill(-pgid, 0)`. Group membership is therefore checked in `/proc`, which
//!   skips zombies.
//! - The final grace starts only on a parser event that ends the stream (`final`, a fatal
//!   `error`). A successful codex turn without an agent message emits no `final`, so a CLI
//!   that then hangs is caught by the idle or wall limit instead.
//! - A `kill -9` of Looper itself leaves the group running. With [`Spec::pid_dir`] set, the
//!   supervisor leaves a note naming the group while it lives, and the next start ends what
//!   the notes name ([`kill_orphans`]).
//! - Linux only: `waitid(WNOWAIT)` and `/proc`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::agent::event::{Event, FailureClass};
use crate::agent::parse::{Outcome, StreamParser};

/// How much a reader asks for per `read`.
const CHUNK_BYTES: usize = 64 * 1024;
/// At most this many lines in one message.
const LINES_PER_MSG: usize = 256;
/// Messages in flight between the threads and the owner. Bounded, so a slow `on_line` makes
/// the readers (and then the agent) wait instead of growing our memory.
const CHANNEL_CAPACITY: usize = 16;
/// At most one activity note per stream per this long.
const ACTIVITY_EVERY: Duration = Duration::from_millis(100);
/// How often the owner looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);
/// After the group is gone, how long the pipes may stay quiet before we stop waiting for EOF
/// (something outside the group, a `setsid` escapee, may hold them open).
const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// After the group is gone, the longest we keep draining the pipes at all.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// How long a killed group may take to disappear from `/proc`.
const KILL_SETTLE: Duration = Duration::from_secs(5);
/// How often the sweep looks at `/proc`.
const SWEEP_POLL: Duration = Duration::from_millis(10);

/// Set in the agent's environment to a value unique to the run, so every process of its tree
/// inherits it: how the sweep finds a descendant that left the group (`setsid`, `setpgid`),
/// which `killpg` can't reach. Only a process that also clears its environment escapes.
pub const TOKEN_VAR: &str = "LOOPER_AGENT_TOKEN";

/// A [`TOKEN_VAR`] value no other run of any Looper shares.
fn new_token() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Set on top of the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    /// Written to the agent's stdin, which is then closed. `None` gives a null stdin.
    pub stdin: Option<Vec<u8>>,
    /// The longest the whole run may take.
    pub wall_timeout: Option<Duration>,
    /// The longest the agent may go without output on stdout or stderr.
    pub idle_timeout: Option<Duration>,
    /// After the parser saw a terminal event, how long the agent may take to exit.
    pub final_grace: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// The longest line kept; the rest of a line is counted, not stored. The supervisor's
    /// memory is bounded by about 20 times this (a line per reader, 16 in the channel),
    /// however much the agent writes.
    pub max_line_bytes: usize,
    /// Set it to stop the agent (SIGTERM, grace, SIGKILL); the run ends [`Class::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Where to leave a `<pgid>.json` note while the group lives, so that after a `kill -9`
    /// of Looper the next start finds and ends the orphaned group ([`kill_orphans`]).
    pub pid_dir: Option<PathBuf>,
}

impl Spec {
    /// A spec with no arguments, no stdin, no wall or idle limit, 5 s graces and 1 MiB lines.
    pub fn new(program: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.into(),
            env: Vec::new(),
            stdin: None,
            wall_timeout: None,
            idle_timeout: None,
            final_grace: Duration::from_secs(5),
            kill_grace: Duration::from_secs(5),
            max_line_bytes: 1 << 20,
            cancel: None,
            pid_dir: None,
        }
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the agent's output, as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct LineEvent {
    pub stream: Stream,
    /// Since the agent was spawned.
    pub at: Duration,
    /// The line without its newline, invalid UTF-8 replaced, cut to `max_line_bytes` with a
    /// `…[truncated N bytes]` marker.
    pub text: String,
    /// What the parser made of it; always empty for stderr.
    pub events: Vec<Event>,
    /// Whether `text` is one JSON object, which the journal keeps as it is
    /// ([`StreamParser::line_is_object`]); never for stderr.
    pub json: bool,
}

/// How the leader process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    fn from_status(status: ExitStatus) -> Self {
        Self {
            code: status.code(),
            signal: status.signal(),
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self.code == Some(0)
    }
}

/// How a run ended, from the stream and from what the supervisor saw.
///
/// Serialized flat, one tag for both kinds: `{"class":"timeout"}`,
/// `{"class":"rate_limited","reset_at":null,"retry_after_s":30}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Ok,
    /// The wall limit expired.
    Timeout,
    /// The agent was silent for longer than the idle limit.
    Idle,
    /// The caller cancelled the run.
    Cancelled,
    /// A non-zero exit or a death by signal that the stream doesn't explain.
    Crash {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// What the CLI's own stream said went wrong.
    Stream(FailureClass),
}

/// The supervisor's own classes, as serialized.
#[derive(Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
enum SupervisorClass {
    Ok,
    Timeout,
    Idle,
    Cancelled,
    Crash {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

impl Serialize for Class {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let own = match self {
            Self::Stream(failure) => return failure.serialize(serializer),
            Self::Ok => SupervisorClass::Ok,
            Self::Timeout => SupervisorClass::Timeout,
            Self::Idle => SupervisorClass::Idle,
            Self::Cancelled => SupervisorClass::Cancelled,
            Self::Crash { code, signal } => SupervisorClass::Crash {
                code: *code,
                signal: *signal,
            },
        };
        own.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Class {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        let own = matches!(
            value.get("class").and_then(serde_json::Value::as_str),
            Some("ok" | "timeout" | "idle" | "cancelled" | "crash")
        );
        if !own {
            return FailureClass::deserialize(value)
                .map(Self::Stream)
                .map_err(D::Error::custom);
        }
        Ok(
            match SupervisorClass::deserialize(value).map_err(D::Error::custom)? {
                SupervisorClass::Ok => Self::Ok,
                SupervisorClass::Timeout => Self::Timeout,
                SupervisorClass::Idle => Self::Idle,
                SupervisorClass::Cancelled => Self::Cancelled,
                SupervisorClass::Crash { code, signal } => Self::Crash { code, signal },
            },
        )
    }
}

impl Class {
    /// A rate limit, with or without reset information.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Stream(FailureClass::RateLimited { .. }))
    }
}

/// What a finished run was.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub exit: Exit,
    /// From spawn to the end of draining.
    pub duration: Duration,
    pub outcome: Outcome,
    pub class: Class,
    /// The agent's process group id (the leader's pid).
    pub pgid: i32,
    /// Live group members still found after the final SIGKILL (normally empty; a process
    /// stuck in uninterruptible sleep can take longer to die).
    pub survivors: Vec<i32>,
}

/// Why the supervisor could not run the agent. A run that fails is a [`RunResult`] with a
/// [`Class`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("could not start agent `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("could not start a thread to supervise agent `{program}`")]
    Thread {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("could not wait for agent `{program}` (pid {pid})")]
    Wait {
        program: String,
        pid: i32,
        #[source]
        source: io::Error,
    },
}

/// Why the supervisor stopped the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Wall,
    Idle,
    Grace,
    Cancel,
}

/// What the threads tell the owner.
enum Msg {
    /// The lines one read of a pipe completed (one message per read, not per line: an agent
    /// printing thousands of lines at once costs a few wake-ups, not thousands).
    Lines {
        stream: Stream,
        at: Duration,
        texts: Vec<String>,
    },
    /// Bytes arrived without ending a line.
    Activity,
    Eof,
    /// The leader exited (not yet reaped).
    Exited,
    WaitFailed(Errno),
}

/// The spawned leader. Dropping it unreaped kills the group and reaps the leader, so an early
/// return or a panic in `on_line` leaves nothing running.
struct Leader {
    child: Child,
    pgid: Pid,
    /// For error messages.
    program: String,
    /// When it was spawned.
    start: Instant,
    reaped: bool,
    /// The note naming the group for [`kill_orphans`], emptied when the group is gone.
    pid_file: Option<PathBuf>,
    /// The value of [`TOKEN_VAR`] in the agent's environment.
    token: String,
    /// The leader's start time (clock ticks after boot): a process started before it can't
    /// be one of its descendants.
    ticks: Option<u64>,
    /// Processes (and threads) the machine had made before the leader was spawned: with
    /// its pid, what says which pids its descendants can have ([`PidRange::since`]).
    forks: Option<u64>,
}

impl Leader {
    fn signal(&self, signal: Signal) {
        // ESRCH only means the group is already gone; EPERM can't happen for our own child's
        // group. Neither changes what we do next.
        let _ = killpg(self.pgid, signal);
    }

    fn reap(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    fn wait_error(&self, source: io::Error) -> SuperviseError {
        SuperviseError::Wait {
            program: self.program.clone(),
            pid: self.pgid.as_raw(),
            source,
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
        // Reaped after the sweep (or killed just now): the group is gone, and so is the note
        // (emptied, kept for the next agent's).
        if let Some(note) = self.pid_file.take() {
            spare_note(note);
        }
    }
}

/// Runs the agent to the end and says how it went. `on_line` sees every line of stdout and
/// stderr as it arrives, with the parser's events for stdout lines.
pub fn run(
    spec: &Spec,
    parser: &mut dyn StreamParser,
    on_line: &mut dyn FnMut(LineEvent),
) -> Result<RunResult, SuperviseError> {
    run_batched(spec, parser, &mut |lines| {
        lines.into_iter().for_each(&mut *on_line);
    })
}

/// Like [`run`], but hands over the lines of each read of a pipe together, so a caller can
/// write them out together.
pub fn run_batched(
    spec: &Spec,
    parser: &mut dyn StreamParser,
    on_lines: &mut dyn FnMut(Vec<LineEvent>),
) -> Result<RunResult, SuperviseError> {
    spawn(spec)?.run_batched(spec, parser, on_lines)
}

/// An agent spawned, its output read, its stdin not yet written: it has not been told what
/// to do. Dropped, it kills the group.
pub struct Started {
    leader: Leader,
    rx: Receiver<Msg>,
    open_streams: usize,
    stdin: Option<std::process::ChildStdin>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Spawns the agent of `spec` in a process group of its own, with its readers and waiter, and
/// leaves its stdin unwritten until [`Started::run_batched`]: what must be in place before
/// the agent learns its task can be done while it starts.
pub fn spawn(spec: &Spec) -> Result<Started, SuperviseError> {
    let program = spec.program.display().to_string();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let token = new_token();
    command.env(TOKEN_VAR, &token);
    // Counted before the spawn: every process made after it is in the count.
    let forks = total_forks();
    let mut child = command.spawn().map_err(|source| SuperviseError::Spawn {
        program: program.clone(),
        source,
    })?;
    let start = Instant::now();
    let pgid = Pid::from_raw(child.id().cast_signed());
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // From here on, dropping the leader (an early return) kills the group.
    let mut leader = Leader {
        child,
        pgid,
        program,
        start,
        reaped: false,
        pid_file: None,
        token,
        ticks: start_time(pgid.as_raw()),
        forks,
    };
    if let Some(dir) = &spec.pid_dir {
        leader.pid_file = leave_note(dir, &leader);
    }
    crate::fault::point("agent.spawned");
    let thread_error = |source| SuperviseError::Thread {
        program: leader.program.clone(),
        source,
    };

    let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
    let mut open_streams = 0;
    if let Some(pipe) = stdout {
        spawn_reader(pipe, Stream::Stdout, spec.max_line_bytes, start, tx.clone())
            .map_err(thread_error)?;
        open_streams += 1;
    }
    if let Some(pipe) = stderr {
        spawn_reader(pipe, Stream::Stderr, spec.max_line_bytes, start, tx.clone())
            .map_err(thread_error)?;
        open_streams += 1;
    }
    thread::Builder::new()
        .name("agent-waiter".into())
        .spawn(move || {
            let msg = match wait_exited(pgid) {
                Ok(()) => Msg::Exited,
                Err(errno) => Msg::WaitFailed(errno),
            };
            let _ = tx.send(msg);
        })
        .map_err(thread_error)?;
    Ok(Started {
        leader,
        rx,
        open_streams,
        stdin,
    })
}

impl Started {
    /// The agent's pid, which is also its process group's id.
    pub fn pid(&self) -> i32 {
        self.leader.pgid.as_raw()
    }

    /// Writes `spec`'s stdin (on a thread: the agent may read it slowly) and runs the agent
    /// to the end, as [`run_batched`] does. Its limits count from now: it could do nothing
    /// before it had its prompt. Cancelled already (a second Ctrl-C while it started), it
    /// gets no prompt and is stopped as [`Self::abandon`] does.
    pub fn run_batched(
        mut self,
        spec: &Spec,
        parser: &mut dyn StreamParser,
        on_lines: &mut dyn FnMut(Vec<LineEvent>),
    ) -> Result<RunResult, SuperviseError> {
        if spec
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            return self.abandon(spec);
        }
        if let (Some(mut pipe), Some(prompt)) = (self.stdin.take(), spec.stdin.clone()) {
            // Detached: it ends when the prompt is written or the agent's side of the pipe
            // closes.
            thread::Builder::new()
                .name("agent-stdin".into())
                .spawn(move || {
                    // A broken pipe means the agent didn't want (all of) the prompt; its exit
                    // tells the rest.
                    let _ = pipe.write_all(&prompt);
                })
                .map_err(|source| SuperviseError::Thread {
                    program: self.leader.program.clone(),
                    source,
                })?;
        }
        let owner = Owner::new(spec, Instant::now(), self.open_streams);
        self.supervise(owner, parser, on_lines)
    }

    /// Ends an agent that was never given its prompt, as a cancel does (SIGTERM, `spec`'s
    /// kill grace, SIGKILL, the sweep); its stdin is closed unwritten only after the SIGTERM,
    /// so an agent waiting for its prompt is stopped rather than woken by an empty one. Its
    /// output is read and dropped; the result is [`Class::Cancelled`].
    pub fn abandon(mut self, spec: &Spec) -> Result<RunResult, SuperviseError> {
        let mut owner = Owner::new(spec, Instant::now(), self.open_streams);
        self.leader.signal(Signal::SIGTERM);
        owner.stop = Some((StopReason::Cancel, Instant::now()));
        drop(self.stdin.take());
        let mut parser = crate::agent::StreamFormat::Cmd.parser();
        self.supervise(owner, parser.as_mut(), &mut |_| {})
    }

    fn supervise(
        self,
        mut owner: Owner,
        parser: &mut dyn StreamParser,
        on_lines: &mut dyn FnMut(Vec<LineEvent>),
    ) -> Result<RunResult, SuperviseError> {
        let Self { mut leader, rx, .. } = self;
        loop {
            let next = match owner.deadlines(&leader, Instant::now()) {
                Step::Done => break,
                Step::Again => continue,
                Step::Wait(next) => next,
            };
            let received = match next {
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let msg = match received {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            owner
                .handle(msg, &mut leader, parser, on_lines)
                .map_err(|source| leader.wait_error(source))?;
        }

        let exit = if let Some((exit, _)) = owner.exit {
            exit
        } else {
            // Every sender is gone but the waiter said nothing: it can't happen, but don't
            // leave the leader running if it somehow does.
            leader.signal(Signal::SIGKILL);
            let status = leader.reap().map_err(|source| leader.wait_error(source))?;
            Exit::from_status(status)
        };
        let outcome = parser.finish();
        let class = classify(
            owner.stop.map(|(reason, _)| reason),
            exit,
            outcome.failure.as_ref(),
        );
        Ok(RunResult {
            exit,
            duration: leader.start.elapsed(),
            outcome,
            class,
            pgid: leader.pgid.as_raw(),
            survivors: owner.survivors,
        })
    }
}

/// What the owner loop does next.
enum Step {
    /// The run is over.
    Done,
    /// Something changed (a signal was sent); look at the deadlines again.
    Again,
    /// Wait for a message until this deadline (forever if `None`).
    Wait(Option<Instant>),
}

/// The run state, owned by the caller's thread alone.
struct Owner {
    wall_deadline: Option<Instant>,
    idle_timeout: Option<Duration>,
    final_grace: Duration,
    kill_grace: Duration,
    cancel: Option<Arc<AtomicBool>>,
    /// The last output on either stream (or the spawn).
    last_output: Instant,
    /// The last message of any kind (or the spawn).
    last_msg: Instant,
    /// When the parser saw a terminal event.
    terminal_at: Option<Instant>,
    /// Why and when we sent SIGTERM.
    stop: Option<(StopReason, Instant)>,
    /// Whether we sent SIGKILL.
    killed: bool,
    /// How the leader ended, and when it was reaped.
    exit: Option<(Exit, Instant)>,
    survivors: Vec<i32>,
    open_streams: usize,
}

impl Owner {
    fn new(spec: &Spec, start: Instant, open_streams: usize) -> Self {
        Self {
            wall_deadline: spec.wall_timeout.map(|t| start + t),
            idle_timeout: spec.idle_timeout,
            final_grace: spec.final_grace,
            kill_grace: spec.kill_grace,
            cancel: spec.cancel.clone(),
            last_output: start,
            last_msg: start,
            terminal_at: None,
            stop: None,
            killed: false,
            exit: None,
            survivors: Vec::new(),
            open_streams,
        }
    }

    /// Acts on the deadlines that have passed and says what to wait for next.
    fn deadlines(&mut self, leader: &Leader, now: Instant) -> Step {
        if let Some((_, exited_at)) = self.exit {
            // Draining: the group is gone, the pipes may still hold lines.
            if self.open_streams == 0 {
                return Step::Done;
            }
            let give_up = (self.last_msg.max(exited_at) + DRAIN_QUIET).min(exited_at + DRAIN_MAX);
            return if now >= give_up {
                Step::Done
            } else {
                Step::Wait(Some(give_up))
            };
        }
        if let Some((_, term_at)) = self.stop {
            // Stopping: SIGKILL once the kill grace is over, then wait for the exit.
            let kill_at = term_at + self.kill_grace;
            if self.killed {
                return Step::Wait(None);
            }
            if now >= kill_at {
                leader.signal(Signal::SIGKILL);
                self.killed = true;
                return Step::Again;
            }
            return Step::Wait(Some(kill_at));
        }
        let cancelled = self
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed));
        let idle_deadline = self.idle_timeout.map(|t| self.last_output + t);
        let grace_deadline = self.terminal_at.map(|t| t + self.final_grace);
        let limits = [
            (StopReason::Cancel, cancelled.then_some(now)),
            (StopReason::Wall, self.wall_deadline),
            (StopReason::Idle, idle_deadline),
            (StopReason::Grace, grace_deadline),
        ];
        if let Some((reason, _)) = limits
            .iter()
            .find(|(_, deadline)| deadline.is_some_and(|d| now >= d))
        {
            leader.signal(Signal::SIGTERM);
            self.stop = Some((*reason, now));
            return Step::Again;
        }
        let poll = self.cancel.as_ref().map(|_| now + CANCEL_POLL);
        let next = limits
            .iter()
            .filter_map(|(_, deadline)| *deadline)
            .chain(poll)
            .min();
        Step::Wait(next)
    }

    /// Takes in one message from the threads.
    fn handle(
        &mut self,
        msg: Msg,
        leader: &mut Leader,
        parser: &mut dyn StreamParser,
        on_lines: &mut dyn FnMut(Vec<LineEvent>),
    ) -> io::Result<()> {
        self.last_msg = Instant::now();
        match msg {
            Msg::Lines { stream, at, texts } => {
                self.last_output = self.last_msg;
                let mut lines = Vec::with_capacity(texts.len());
                for text in texts {
                    let (events, json) = match stream {
                        Stream::Stdout => (parser.line(&text), parser.line_is_object()),
                        Stream::Stderr => (Vec::new(), false),
                    };
                    if self.terminal_at.is_none() && events.iter().any(is_terminal) {
                        self.terminal_at = Some(self.last_msg);
                    }
                    lines.push(LineEvent {
                        stream,
                        at,
                        text,
                        events,
                        json,
                    });
                }
                on_lines(lines);
            }
            Msg::Activity => self.last_output = self.last_msg,
            Msg::Eof => self.open_streams -= 1,
            Msg::Exited => {
                self.survivors = sweep(leader, self.kill_grace, self.killed);
                let status = leader.reap()?;
                self.exit = Some((Exit::from_status(status), Instant::now()));
            }
            Msg::WaitFailed(errno) => return Err(errno.into()),
        }
        Ok(())
    }
}

/// A `final` event, or a fatal error: after it the CLI has nothing left to say.
fn is_terminal(event: &Event) -> bool {
    matches!(
        event,
        Event::Final { .. } | Event::Error { fatal: true, .. }
    )
}

/// The run's class: a stop by the supervisor names itself, except a final-grace stop, which
/// only cut short a CLI that had already said how it went. A stream that ended without its
/// CLI's verdict (incomplete, no report, garbage) yields to a crash exit; a verdict the CLI
/// gave wins over its exit code.
fn classify(stop: Option<StopReason>, exit: Exit, failure: Option<&FailureClass>) -> Class {
    match stop {
        Some(StopReason::Wall) => return Class::Timeout,
        Some(StopReason::Idle) => return Class::Idle,
        Some(StopReason::Cancel) => return Class::Cancelled,
        Some(StopReason::Grace) => {
            return failure.cloned().map_or(Class::Ok, Class::Stream);
        }
        None => {}
    }
    let crash = Class::Crash {
        code: exit.code,
        signal: exit.signal,
    };
    match failure {
        None if exit.success() => Class::Ok,
        None
        | Some(FailureClass::Incomplete | FailureClass::NoReport | FailureClass::MalformedOutput)
            if !exit.success() =>
        {
            crash
        }
        Some(failure) => Class::Stream(failure.clone()),
        None => crash,
    }
}

/// Blocks until the leader has exited, without reaping it.
fn wait_exited(pid: Pid) -> Result<(), Errno> {
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// Kills what is left of the group once the (unreaped) leader has exited: SIGTERM, then
/// SIGKILL after `kill_grace` (at once if the group already got SIGKILL), then waits for
/// the group to disappear. Returns the members still alive after that.
fn sweep(leader: &Leader, kill_grace: Duration, killed: bool) -> Vec<i32> {
    let pgid = leader.pgid.as_raw();
    // Nearly always the group ended with its leader and nothing escaped: one look says so.
    let first = survey(
        Some(pgid),
        Some((&leader.token, leader.ticks)),
        leader.forks.and_then(|forks| PidRange::since(pgid, forks)),
    );
    if first.members.is_empty() && first.marked.is_empty() {
        return Vec::new();
    }
    let mut survivors = Vec::new();
    if !first.members.is_empty() {
        let ended = !killed && {
            leader.signal(Signal::SIGTERM);
            wait_empty(pgid, kill_grace)
        };
        if !ended {
            leader.signal(Signal::SIGKILL);
            wait_empty(pgid, KILL_SETTLE);
            survivors = group_members(pgid);
        }
    }
    // The group is gone; what left it is found by the token it inherited.
    survivors.extend(end_escapees(&leader.token, leader.ticks, kill_grace));
    survivors
}

/// Ends the live processes that carry `token` in their environment but left the agent's
/// group: SIGTERM (again to any that appear), then SIGKILL after `kill_grace`. Returns those
/// still alive after that. Pids are signalled one by one, read from `/proc` just before.
fn end_escapees(token: &str, since: Option<u64>, kill_grace: Duration) -> Vec<i32> {
    let term_until = Instant::now() + kill_grace;
    let kill_until = term_until + KILL_SETTLE;
    loop {
        let found = survey(None, Some((token, since)), None).marked;
        let now = Instant::now();
        if found.is_empty() || now >= kill_until {
            return found;
        }
        let signal = if now < term_until {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        for pid in &found {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), signal);
        }
        thread::sleep(SWEEP_POLL);
    }
}

/// Writes `<dir>/<pgid>.json`: the group, its leader's start time (so a recycled pid is not
/// mistaken for it) and the program. Best effort: without the note an orphan after a crash
/// is only not found by the next start.
fn leave_note(dir: &std::path::Path, leader: &Leader) -> Option<PathBuf> {
    let pgid = leader.pgid.as_raw();
    let note = serde_json::json!({
        "v": 1,
        "pgid": pgid,
        "start": leader.ticks,
        "program": leader.program,
        "token": leader.token,
    });
    crate::file::create_private_dir(dir).ok()?;
    let spare = SPARE_NOTES.lock().ok().and_then(|mut spares| {
        let at = spares.iter().position(|p| p.parent() == Some(dir))?;
        Some(spares.swap_remove(at))
    });
    let path = spare.unwrap_or_else(|| dir.join(format!("{pgid}.json")));
    // In place: a note torn by a crash does not parse and is skipped, as a missing one.
    crate::file::overwrite(&path, note.to_string().as_bytes(), 0o600).ok()?;
    Some(path)
}

/// The notes of groups that are gone, emptied and kept for the next agent's note: a file
/// created and removed per agent costs an inode each time (see [`crate::file::overwrite`]).
/// An empty note names nothing; [`kill_orphans`] removes it, and so does
/// [`remove_spare_notes`].
static SPARE_NOTES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn spare_note(note: PathBuf) {
    match (crate::file::clear(&note), SPARE_NOTES.lock()) {
        (Ok(()), Ok(mut spares)) => spares.push(note),
        _ => {
            let _ = std::fs::remove_file(note);
        }
    }
}

/// Removes the spare notes this process kept, at the end of a run.
pub fn remove_spare_notes() {
    if let Ok(mut spares) = SPARE_NOTES.lock() {
        for note in spares.drain(..) {
            let _ = std::fs::remove_file(note);
        }
    }
}

/// An agent group left running by a Looper that died without cleaning up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub pgid: i32,
    pub program: String,
    /// Live members found, all killed (with those that had left the group).
    pub members: usize,
}

/// Ends the agent groups named by notes in `dir` that a dead Looper left behind (SIGTERM,
/// `kill_grace`, SIGKILL), removes the notes, and says what it found. Call it holding the
/// project's run lock, so no live Looper owns those groups. A note whose leader pid now
/// belongs to another process (a different start time) names a group that is long gone.
pub fn kill_orphans(dir: &std::path::Path, kill_grace: Duration) -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let note: Option<serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok());
        let pgid = note
            .as_ref()
            .and_then(|n| n["pgid"].as_i64())
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1);
        if let Some(pgid) = pgid {
            let members = group_members(pgid);
            // While any member lives, the kernel does not hand the pgid out again; a live
            // leader must still be the process we spawned.
            let leader_now = start_time(pgid);
            let ours = leader_now.is_none()
                || leader_now == note.as_ref().and_then(|n| n["start"].as_u64());
            let live = if !members.is_empty() && ours {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
                if !wait_empty(pgid, kill_grace) {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    wait_empty(pgid, KILL_SETTLE);
                }
                members.len()
            } else {
                0
            };
            // And what left the group, by the token it inherited.
            let token = note.as_ref().and_then(|n| n["token"].as_str());
            let since = note.as_ref().and_then(|n| n["start"].as_u64());
            let escaped = token.map_or(0, |t| survey(None, Some((t, since)), None).marked.len());
            if let Some(token) = token.filter(|_| escaped > 0) {
                end_escapees(token, since, kill_grace);
            }
            if live + escaped > 0 {
                found.push(Orphan {
                    pgid,
                    program: note
                        .as_ref()
                        .and_then(|n| n["program"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    members: live + escaped,
                });
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    found
}

/// The start time (clock ticks after boot) of live process `pid`, from `/proc/PID/stat`.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)?.2
}

/// Polls `/proc` until the group has no live member or `limit` has passed.
fn wait_empty(pgid: i32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if group_members(pgid).is_empty() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(SWEEP_POLL);
    }
}

/// The live (not zombie) processes whose process group is `pgid`, from `/proc/*/stat`.
fn group_members(pgid: i32) -> Vec<i32> {
    survey(Some(pgid), None, None).members
}

/// What one pass over `/proc` found.
#[derive(Default)]
struct Survey {
    /// The live members of the group asked about.
    members: Vec<i32>,
    /// The live processes outside that group whose environment holds `TOKEN_VAR=token`.
    marked: Vec<i32>,
}

/// The pids the kernel handed out after the agent's leader, up to `last`, the last one handed
/// out, counting on from `leader` and wrapping around at the namespace's `pid_max`: every
/// descendant of the leader (a group member, an escapee) has one of them, so a look at
/// `/proc` after the agent ended need not read the `stat` of every process on the machine
/// (about 10 µs each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PidRange {
    leader: i32,
    last: i32,
}

impl PidRange {
    /// The range now for `leader`, spawned when the machine had made `forks` processes, or
    /// `None` (look at every process) when the pid counter may have gone all the way around
    /// since: it moves by at most one per process made plus one per pid in use (which it
    /// skips), and that must stay well under `pid_max`.
    fn since(leader: i32, forks: u64) -> Option<Self> {
        let (threads, last) = loadavg()?;
        let made = total_forks()?.checked_sub(forks)?;
        (made.saturating_add(threads) < pid_max()? / 2).then_some(Self { leader, last })
    }

    fn holds(self, pid: i32) -> bool {
        if self.last >= self.leader {
            pid > self.leader && pid <= self.last
        } else {
            // The counter wrapped around after the leader.
            pid > self.leader || pid <= self.last
        }
    }
}

/// How many processes and threads the machine has made since boot (`processes` in
/// `/proc/stat`).
fn total_forks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|line| line.strip_prefix("processes "))?
        .trim()
        .parse()
        .ok()
}

/// From `/proc/loadavg` (`0.00 0.01 0.05 1/123 4567`): the number of threads on the
/// machine, and the last pid handed out in this pid namespace.
fn loadavg() -> Option<(u64, i32)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_ascii_whitespace().skip(3);
    let threads = fields.next()?.split_once('/')?.1.parse().ok()?;
    let last = fields.next()?.parse().ok()?;
    Some((threads, last))
}

/// The highest pid plus one (`/proc/sys/kernel/pid_max`), read once.
fn pid_max() -> Option<u64> {
    static PID_MAX: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *PID_MAX.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// One pass over `/proc`: the live (not zombie) members of process group `group`, and the live
/// processes outside it whose environment holds `TOKEN_VAR=token`. Only processes started
/// no earlier than `since` (clock ticks after boot, the agent's own start) have their
/// environment read: an older one can't have inherited the token. With `range`, only the
/// processes whose pid is in it are looked at: the group and the token are the agent's, so
/// their processes came after its leader.
fn survey(
    group: Option<i32>,
    token: Option<(&str, Option<u64>)>,
    range: Option<PidRange>,
) -> Survey {
    let mut found = Survey::default();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    let needle = token.map(|(token, _)| format!("{TOKEN_VAR}={token}"));
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if range.is_some_and(|range| !range.holds(pid)) {
            continue;
        }
        // Processes come and go while we look; a vanished one is simply not found.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((state, pgrp, started)) = parse_stat(&stat) else {
            continue;
        };
        if state == 'Z' || state == 'X' {
            continue;
        }
        if Some(pgrp) == group {
            found.members.push(pid);
            continue;
        }
        let (Some(needle), Some((_, since))) = (&needle, token) else {
            continue;
        };
        if since.is_some_and(|since| started.is_some_and(|started| started < since)) {
            continue;
        }
        // Another user's process, or one that just ended: not ours to look at.
        let Ok(mut environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        // A process in the middle of an exec has no environment yet (the new program's is
        // set up last), so the token it carries would be missed: look again. Kernel threads
        // never have one.
        if environ.is_empty() && !is_kernel_thread(&stat) {
            environ = environ_after_exec(&entry.path());
        }
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            found.marked.push(pid);
        }
    }
    found
}

/// How long [`environ_after_exec`] waits for a process's environment to appear.
const EXEC_SETTLE: Duration = Duration::from_millis(20);

/// The environment of the process at `/proc/PID` once it has one: read again until it is not
/// empty, for up to [`EXEC_SETTLE`]. Empty when the process ended or really has none.
fn environ_after_exec(proc_dir: &std::path::Path) -> Vec<u8> {
    let until = Instant::now() + EXEC_SETTLE;
    loop {
        thread::sleep(Duration::from_micros(200));
        match std::fs::read(proc_dir.join("environ")) {
            Ok(environ) if environ.is_empty() && Instant::now() < until => {}
            Ok(environ) => return environ,
            Err(_) => return Vec::new(),
        }
    }
}

/// Whether a `/proc/PID/stat` line is a kernel thread's (`PF_KTHREAD` in its flags).
fn is_kernel_thread(stat: &str) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// The state, process group and start time (clock ticks after boot, when the line has it) of
/// a `/proc/PID/stat` line: `pid (comm) state ppid pgrp ... starttime ...`, where `comm` may
/// itself hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, i32, Option<u64>)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    // After pgrp, starttime is the 17th field.
    let started = fields.nth(16).and_then(|f| f.parse().ok());
    Some((state, pgrp, started))
}

fn spawn_reader<R: Read + Send + 'static>(
    pipe: R,
    stream: Stream,
    max_line_bytes: usize,
    start: Instant,
    tx: SyncSender<Msg>,
) -> io::Result<()> {
    let name = match stream {
        Stream::Stdout => "agent-stdout",
        Stream::Stderr => "agent-stderr",
    };
    thread::Builder::new()
        .name(name.into())
        .spawn(move || read_lines(pipe, stream, max_line_bytes, start, &tx))?;
    Ok(())
}

/// A line being collected: its first `max` bytes, and a count of the bytes dropped after.
struct LineBuf {
    kept: Vec<u8>,
    dropped: u64,
    max: usize,
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// The collected line as text, and a fresh start.
    fn take(&mut self) -> String {
        let mut kept = std::mem::take(&mut self.kept);
        let mut dropped = std::mem::take(&mut self.dropped);
        if dropped > 0 {
            // Don't let the cut split a UTF-8 character into a replacement character.
            if let Err(e) = std::str::from_utf8(&kept)
                && e.error_len().is_none()
            {
                dropped += (kept.len() - e.valid_up_to()) as u64;
                kept.truncate(e.valid_up_to());
            }
        }
        let mut text = match String::from_utf8(kept) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if dropped > 0 {
            let _ = write!(text, "…[truncated {dropped} bytes]");
        }
        text
    }
}

/// A reader thread: cuts the pipe into bounded lines and sends them. Memory stays at one
/// chunk plus one line of at most `max_line_bytes`, whatever the agent writes.
fn read_lines(
    mut pipe: impl Read,
    stream: Stream,
    max_line_bytes: usize,
    start: Instant,
    tx: &SyncSender<Msg>,
) {
    let mut chunk = vec![0; CHUNK_BYTES];
    let mut line = LineBuf {
        kept: Vec::new(),
        dropped: 0,
        max: max_line_bytes,
    };
    let mut last_sent = Instant::now();
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Any other read error ends the stream like EOF would.
            Err(_) => break,
        };
        let mut rest = &chunk[..n];
        let mut texts = Vec::new();
        let mut ended_a_line = false;
        loop {
            let newline = memchr::memchr(b'\n', rest);
            if let Some(newline) = newline {
                line.push(&rest[..newline]);
                rest = &rest[newline + 1..];
                texts.push(line.take());
            }
            // Send what the read completed, in bounded batches (a chunk of empty lines must
            // not become a million strings in flight).
            if !texts.is_empty() && (newline.is_none() || texts.len() == LINES_PER_MSG) {
                ended_a_line = true;
                let msg = Msg::Lines {
                    stream,
                    at: start.elapsed(),
                    texts: std::mem::take(&mut texts),
                };
                if tx.send(msg).is_err() {
                    // The owner is gone: nobody wants the rest.
                    return;
                }
            }
            if newline.is_none() {
                break;
            }
        }
        line.push(rest);
        if ended_a_line {
            last_sent = Instant::now();
        } else if last_sent.elapsed() >= ACTIVITY_EVERY {
            if tx.send(Msg::Activity).is_err() {
                return;
            }
            last_sent = Instant::now();
        }
    }
    if !line.is_empty() {
        let msg = Msg::Lines {
            stream,
            at: start.elapsed(),
            texts: vec![line.take()],
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
    let _ = tx.send(Msg::Eof);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::agent::parse::{StreamFormat, parse_lines};

    #[test]
    fn pid_range_counts_on_from_the_leader_and_wraps_around() {
        let cases = [
            (
                (100, 200),
                [
                    (99, false),
                    (100, false),
                    (101, true),
                    (200, true),
                    (201, false),
                ],
            ),
            // The counter wrapped around after the leader.
            (
                (32_000, 400),
                [
                    (32_000, false),
                    (32_001, true),
                    (300, true),
                    (400, true),
                    (401, false),
                ],
            ),
        ];
        for ((leader, last), pids) in cases {
            let range = PidRange { leader, last };
            for (pid, holds) in pids {
                assert_eq!(range.holds(pid), holds, "{pid} in {range:?}");
            }
        }
    }

    /// What the range is read from is there, and a process made after the leader is in
    /// its range while one made before it is not.
    #[test]
    fn a_process_made_after_the_leader_is_in_its_range() {
        let before = Command::new("sleep").arg("5").spawn().unwrap();
        let forks = total_forks().unwrap();
        let mut leader = Command::new("true").spawn().unwrap();
        let after = Command::new("sleep").arg("5").spawn().unwrap();
        let range = PidRange::since(leader.id().cast_signed(), forks).unwrap();
        assert!(range.holds(after.id().cast_signed()), "{range:?}");
        assert!(!range.holds(leader.id().cast_signed()), "{range:?}");
        // Unless the counter wrapped between the two spawns, a moment ago.
        if before.id() < leader.id() {
            assert!(!range.holds(before.id().cast_signed()), "{range:?}");
        }
        assert!(total_forks().unwrap() >= forks + 2);
        for mut child in [before, after] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        leader.wait().unwrap();
    }

    const CODEX_CAPTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/captures/codex-e2e.jsonl"
    );

    /// A fake agent: a `sh -c` script in `dir`, with short graces and a 30 s safety net.
    fn agent(script: &str, dir: &Path) -> Spec {
        let mut spec = Spec::new("/bin/sh", dir);
        spec.args = vec!["-c".into(), script.into()];
        spec.final_grace = Duration::from_millis(300);
        spec.kill_grace = Duration::from_millis(300);
        spec.wall_timeout = Some(Duration::from_secs(30));
        spec
    }

    /// Runs the agent, collects its lines and checks that nothing of its group survived.
    fn supervise(spec: &Spec, format: StreamFormat) -> (RunResult, Vec<LineEvent>) {
        let mut parser = format.parser();
        let mut lines = Vec::new();
        let result = run(spec, parser.as_mut(), &mut |line| lines.push(line)).unwrap();
        assert_eq!(result.survivors, Vec::<i32>::new());
        assert_eq!(group_members(result.pgid), Vec::<i32>::new(), "{result:?}");
        (result, lines)
    }

    fn texts(lines: &[LineEvent], stream: Stream) -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect()
    }

    #[test]
    fn classes_serialize_flat() {
        let cases = [
            (Class::Ok, r#"{"class":"ok"}"#),
            (Class::Timeout, r#"{"class":"timeout"}"#),
            (
                Class::Crash {
                    code: Some(2),
                    signal: None,
                },
                r#"{"class":"crash","code":2,"signal":null}"#,
            ),
            (
                Class::Stream(FailureClass::RateLimited {
                    reset_at: None,
                    retry_after_s: Some(30),
                }),
                r#"{"class":"rate_limited","reset_at":null,"retry_after_s":30}"#,
            ),
            (Class::Stream(FailureClass::Auth), r#"{"class":"auth"}"#),
        ];
        for (class, json) in cases {
            assert_eq!(serde_json::to_string(&class).unwrap(), json);
            assert_eq!(serde_json::from_str::<Class>(json).unwrap(), class);
        }
        let err = serde_json::from_str::<Class>(r#"{"class":"exploded"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `exploded`"),
            "{err}"
        );
    }

    /// Waits until the agent under test has made `path` (it got that far).
    fn wait_for_file(path: &Path) {
        while !path.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A spawned agent has nothing on its stdin until its run starts, and its limits count
    /// from then: it was not idle while it waited for its prompt.
    #[test]
    fn a_spawned_agent_gets_its_prompt_when_its_run_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("cat > got.txt; cat got.txt", dir.path());
        spec.stdin = Some(b"the task\n".to_vec());
        spec.idle_timeout = Some(Duration::from_millis(150));
        let started = spawn(&spec).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(std::fs::read(dir.path().join("got.txt")).unwrap(), b"");
        let mut parser = StreamFormat::Cmd.parser();
        let mut lines = Vec::new();
        let result = started
            .run_batched(&spec, parser.as_mut(), &mut |batch| lines.extend(batch))
            .unwrap();
        assert_eq!(result.class, Class::Ok, "{result:?}");
        assert_eq!(texts(&lines, Stream::Stdout), ["the task"]);
        assert!(result.duration >= Duration::from_millis(400), "{result:?}");
    }

    /// An agent whose run was cancelled while it started never has its prompt.
    #[test]
    fn an_agent_cancelled_before_its_run_gets_no_prompt() {
        let dir = tempfile::tempdir().unwrap();
        // It ignores SIGTERM, so it would read a prompt written before the stop.
        let mut spec = agent("trap '' TERM; touch ready; cat > got.txt", dir.path());
        spec.stdin = Some(b"the task".to_vec());
        spec.cancel = Some(Arc::new(AtomicBool::new(false)));
        let started = spawn(&spec).unwrap();
        wait_for_file(&dir.path().join("ready"));
        if let Some(flag) = &spec.cancel {
            flag.store(true, Ordering::Relaxed);
        }
        let mut parser = StreamFormat::Cmd.parser();
        let result = started
            .run_batched(&spec, parser.as_mut(), &mut |_| {})
            .unwrap();
        assert_eq!(result.class, Class::Cancelled, "{result:?}");
        let got = std::fs::read(dir.path().join("got.txt")).unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&got), "");
    }

    /// An agent abandoned before its prompt is stopped while it waits for it: it never reads
    /// a byte, never goes on with an empty prompt, and nothing of its group is left.
    #[test]
    fn an_abandoned_agent_is_stopped_without_its_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent(
            "sleep 1 & cat > got.txt; echo went-on > went-on.txt; wait",
            dir.path(),
        );
        spec.stdin = Some(b"the task".to_vec());
        let started = spawn(&spec).unwrap();
        let pid = started.pid();
        // Until the shell has opened `got.txt`, it is not yet waiting on its stdin.
        wait_for_file(&dir.path().join("got.txt"));
        let result = started.abandon(&spec).unwrap();
        assert_eq!(result.class, Class::Cancelled, "{result:?}");
        assert_eq!(result.exit.signal, Some(Signal::SIGTERM as i32));
        assert_eq!(std::fs::read(dir.path().join("got.txt")).unwrap(), b"");
        std::thread::sleep(Duration::from_millis(100));
        assert!(!dir.path().join("went-on.txt").exists());
        assert_eq!(result.survivors, Vec::<i32>::new());
        assert_eq!(group_members(pid), Vec::<i32>::new());
    }

    #[test]
    fn a_hanging_agent_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("echo started; exec sleep 1000", dir.path());
        spec.wall_timeout = Some(Duration::from_millis(300));
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Timeout);
        assert_eq!(result.exit.signal, Some(Signal::SIGTERM as i32));
        assert!(result.duration >= Duration::from_millis(300), "{result:?}");
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
        assert_eq!(texts(&lines, Stream::Stdout), ["started"]);
    }

    #[test]
    fn a_group_that_ignores_sigterm_gets_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        // The leader and its grandchild both ignore SIGTERM.
        let mut spec = agent("trap '' TERM; sleep 1000 & wait", dir.path());
        spec.wall_timeout = Some(Duration::from_millis(200));
        let (result, _) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Timeout);
        assert_eq!(result.exit.signal, Some(Signal::SIGKILL as i32));
        // wall limit, then the kill grace
        assert!(result.duration >= Duration::from_millis(500), "{result:?}");
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
    }

    #[test]
    fn a_silent_agent_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("echo hi; exec sleep 1000", dir.path());
        spec.idle_timeout = Some(Duration::from_millis(300));
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Idle);
        assert!(result.duration >= Duration::from_millis(300), "{result:?}");
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
        assert_eq!(texts(&lines, Stream::Stdout), ["hi"]);
    }

    #[test]
    fn output_on_either_stream_keeps_an_agent_from_idling() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent(
            "for i in 1 2 3 4 5 6 7 8; do echo $i >&2; sleep 0.1; done; echo done",
            dir.path(),
        );
        spec.idle_timeout = Some(Duration::from_millis(500));
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Ok);
        assert_eq!(texts(&lines, Stream::Stderr).len(), 8);
        assert_eq!(result.outcome.final_text.as_deref(), Some("done"));
    }

    #[test]
    fn a_non_zero_exit_is_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent("echo oops >&2; exit 3", dir.path());
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(
            result.class,
            Class::Crash {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(
            result.exit,
            Exit {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].stream, Stream::Stderr);
        assert_eq!(lines[0].text, "oops");
        assert!(lines[0].events.is_empty());
    }

    #[test]
    fn a_death_by_signal_is_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent("ulimit -c 0; kill -SEGV $$", dir.path());
        let (result, _) = supervise(&spec, StreamFormat::Codex);
        assert_eq!(
            result.class,
            Class::Crash {
                code: None,
                signal: Some(Signal::SIGSEGV as i32)
            }
        );
    }

    #[test]
    fn garbage_output_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent("echo 'not json'; echo '{\"type\":'", dir.path());
        let (result, lines) = supervise(&spec, StreamFormat::Codex);
        assert_eq!(result.class, Class::Stream(FailureClass::MalformedOutput));
        assert_eq!(result.outcome.garbage_lines, 2);
        assert!(result.exit.success());
        assert_eq!(lines[0].events, [Event::Unknown { kind: None }]);
    }

    #[test]
    fn a_replayed_codex_stream_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent(&format!("cat '{CODEX_CAPTURE}'"), dir.path());
        let (result, lines) = supervise(&spec, StreamFormat::Codex);
        let capture = std::fs::read_to_string(CODEX_CAPTURE).unwrap();
        let (expected, events) = parse_lines(StreamFormat::Codex, capture.lines());
        assert_eq!(result.class, Class::Ok);
        assert!(expected.final_text.is_some());
        assert_eq!(result.outcome, expected);
        assert_eq!(
            texts(&lines, Stream::Stdout),
            capture.lines().collect::<Vec<_>>()
        );
        assert_eq!(lines.iter().map(|l| l.events.len()).sum::<usize>(), events);
        assert!(lines.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn an_agent_that_lingers_after_its_final_event_is_stopped_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent(
            &format!("cat '{CODEX_CAPTURE}'; exec sleep 1000"),
            dir.path(),
        );
        let (result, _) = supervise(&spec, StreamFormat::Codex);
        assert_eq!(result.class, Class::Ok);
        assert!(result.outcome.final_text.is_some());
        assert_eq!(result.exit.signal, Some(Signal::SIGTERM as i32));
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
    }

    #[test]
    fn the_prompt_is_written_to_stdin_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("cat > got; echo read", dir.path());
        spec.stdin = Some(b"the prompt\nsecond line".to_vec());
        let (result, _) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Ok);
        assert_eq!(
            std::fs::read(dir.path().join("got")).unwrap(),
            b"the prompt\nsecond line"
        );

        // Without a prompt, stdin is null: `cat` sees EOF at once.
        spec.stdin = None;
        let (result, _) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Ok);
        assert_eq!(std::fs::read(dir.path().join("got")).unwrap(), b"");
    }

    /// While the agent runs, its note names its group; once it is gone the note is emptied
    /// and kept, the next agent's note is written into the same file, and the spares go at
    /// the end (or at the next start, which finds no orphan in an empty note).
    #[test]
    fn the_pid_note_names_the_group_and_is_kept_for_the_next_agent() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let notes = dir.path().join("agents");
        // The note is written just after the spawn: the agent waits for it.
        let mut spec = agent(
            "until [ -s agents/*.json ]; do sleep 0.01; done; sleep 0.05; cat agents/*.json",
            dir.path(),
        );
        spec.pid_dir = Some(notes.clone());
        let listing = || {
            let mut files: Vec<(u64, u64)> = std::fs::read_dir(&notes)
                .unwrap()
                .map(|e| {
                    let meta = e.unwrap().metadata().unwrap();
                    (meta.ino(), meta.len())
                })
                .collect();
            files.sort_unstable();
            files
        };
        let mut inodes = Vec::new();
        for _ in 0..2 {
            let (result, lines) = supervise(&spec, StreamFormat::Cmd);
            let note: serde_json::Value =
                serde_json::from_str(texts(&lines, Stream::Stdout)[0]).unwrap();
            assert_eq!(note["pgid"], result.pgid, "{note}");
            let files = listing();
            assert_eq!(files.len(), 1, "one note, kept: {files:?}");
            assert_eq!(files[0].1, 0, "emptied once the group is gone");
            inodes.push(files[0].0);
        }
        assert_eq!(
            inodes[0], inodes[1],
            "the second note went into the first's file"
        );
        assert!(kill_orphans(&notes, Duration::from_millis(100)).is_empty());
        assert_eq!(listing(), [], "an empty note is removed at the next start");

        supervise(&spec, StreamFormat::Cmd);
        assert_eq!(listing().len(), 1);
        remove_spare_notes();
        assert_eq!(listing(), []);
    }

    #[test]
    fn the_environment_and_directory_reach_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("echo \"$LOOPER_TEST_VAR\"; pwd", dir.path());
        spec.env = vec![("LOOPER_TEST_VAR".into(), "value".into())];
        let (_, lines) = supervise(&spec, StreamFormat::Cmd);
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            texts(&lines, Stream::Stdout),
            ["value", cwd.to_str().unwrap()]
        );
    }

    #[test]
    fn grandchildren_that_outlive_the_leader_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        // One keeps stdout open; the other ignores SIGTERM and needs SIGKILL. The leader
        // waits until the trap is set, or a prompt SIGTERM could beat it.
        let spec = agent(
            "sleep 1000 & (trap '' TERM; : > trapped; exec sleep 1000) >/dev/null 2>&1 & \
             while [ ! -e trapped ]; do sleep 0.01; done; echo done",
            dir.path(),
        );
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        assert_eq!(result.class, Class::Ok);
        assert!(result.exit.success());
        assert_eq!(texts(&lines, Stream::Stdout), ["done"]);
        assert!(result.duration >= Duration::from_millis(300), "{result:?}");
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
    }

    #[test]
    fn a_setsid_escapee_holding_stdout_is_found_by_its_token_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let spec = agent("setsid sleep 1000 & echo $!", dir.path());
        let (result, lines) = supervise(&spec, StreamFormat::Cmd);
        let escapee: i32 = lines[0].text.parse().unwrap();
        // It left the group, where killpg can't reach it, but it inherited the token.
        let alive = std::fs::read_to_string(format!("/proc/{escapee}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .is_some_and(|(state, _, _)| state != 'Z' && state != 'X');
        assert!(!alive, "the escapee {escapee} is still running");
        assert!(result.survivors.is_empty(), "{result:?}");
        assert_eq!(result.class, Class::Ok);
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
    }

    #[test]
    fn cancelling_stops_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent("exec sleep 1000", dir.path());
        let flag = Arc::new(AtomicBool::new(false));
        spec.cancel = Some(Arc::clone(&flag));
        let setter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        let (result, _) = supervise(&spec, StreamFormat::Cmd);
        setter.join().unwrap();
        assert_eq!(result.class, Class::Cancelled);
        assert!(result.duration >= Duration::from_millis(200), "{result:?}");
        assert!(result.duration < Duration::from_secs(5), "{result:?}");
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = agent(
            "head -c 100000 /dev/zero | tr '\\0' x; echo; printf 'tail'",
            dir.path(),
        );
        spec.max_line_bytes = 1000;
        let (_, lines) = supervise(&spec, StreamFormat::Cmd);
        let stdout = texts(&lines, Stream::Stdout);
        assert_eq!(stdout.len(), 2);
        assert_eq!(
            stdout[0],
            format!("{}…[truncated 99000 bytes]", "x".repeat(1000))
        );
        // A last line without a newline still arrives.
        assert_eq!(stdout[1], "tail");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut line = LineBuf {
            kept: Vec::new(),
            dropped: 0,
            max: 4,
        };
        line.push("aéé".as_bytes()); // 1 + 2 + 2 bytes; the cut falls inside the second é
        assert_eq!(line.take(), "aé…[truncated 2 bytes]");
        line.push(b"ok\xff");
        assert_eq!(line.take(), "ok\u{fffd}");
        assert!(line.is_empty());
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec::new("/nonexistent/agent", dir.path());
        let mut parser = StreamFormat::Cmd.parser();
        let err = run(&spec, parser.as_mut(), &mut |_| {}).unwrap_err();
        assert!(matches!(err, SuperviseError::Spawn { .. }));
        assert_eq!(
            err.to_string(),
            "could not start agent `/nonexistent/agent`"
        );
    }

    #[test]
    fn classes_combine_the_stream_and_the_exit() {
        let ok = Exit {
            code: Some(0),
            signal: None,
        };
        let code_1 = Exit {
            code: Some(1),
            signal: None,
        };
        let crash_1 = Class::Crash {
            code: Some(1),
            signal: None,
        };
        let auth = FailureClass::Auth;
        let incomplete = FailureClass::Incomplete;
        assert_eq!(classify(None, ok, None), Class::Ok);
        assert_eq!(classify(None, code_1, None), crash_1);
        // The CLI's own verdict wins over its exit code.
        assert_eq!(
            classify(None, code_1, Some(&auth)),
            Class::Stream(FailureClass::Auth)
        );
        // A stream cut short yields to the crash.
        assert_eq!(classify(None, code_1, Some(&incomplete)), crash_1);
        assert_eq!(
            classify(None, ok, Some(&incomplete)),
            Class::Stream(FailureClass::Incomplete)
        );
        let no_report = FailureClass::NoReport;
        assert_eq!(
            classify(None, ok, Some(&no_report)),
            Class::Stream(FailureClass::NoReport)
        );
        // Limits name themselves; the final grace only cut short a finished CLI.
        let term = Exit {
            code: None,
            signal: Some(15),
        };
        let wall = Some(StopReason::Wall);
        assert_eq!(classify(wall, term, None), Class::Timeout);
        let idle = Some(StopReason::Idle);
        assert_eq!(classify(idle, term, Some(&incomplete)), Class::Idle);
        let grace = Some(StopReason::Grace);
        assert_eq!(classify(grace, term, None), Class::Ok);
        assert_eq!(
            classify(grace, term, Some(&auth)),
            Class::Stream(FailureClass::Auth)
        );
        let cancel = Some(StopReason::Cancel);
        assert_eq!(classify(cancel, term, None), Class::Cancelled);
    }

    /// Kernel threads (which never have an environment) are told by their flags, whatever
    /// their name; a process in the middle of an exec is not one.
    #[test]
    fn kernel_threads_are_told_by_their_flags() {
        assert!(is_kernel_thread(
            "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25 0"
        ));
        assert!(is_kernel_thread("77 (a) b) I 2 0 0 0 -1 2129984 0"));
        // An escapee caught inside its exec of `sleep`, environment still empty.
        assert!(!is_kernel_thread(
            "22398 (sleep) R 1 22398 22398 0 -1 4194304 97 0 0 0 0 0 0 0 20 0 1 0 1233183 4096"
        ));
        assert!(!is_kernel_thread("1 (x) S 0 1 1 0"));
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(!is_kernel_thread(&own));
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(
            parse_stat("42 (a (b) c) S 1 4242 4242 0 -1"),
            Some(('S', 4242, None))
        );
        // A real line: the start time is field 22.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (state, pgrp, started) = parse_stat(&own).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        // starttime is the 22nd field of the line.
        let field_22 = own.rsplit_once(')').unwrap().1.split_whitespace().nth(19);
        assert_eq!(started, field_22.map(|f| f.parse().unwrap()));
        assert!(started.is_some());
        assert_eq!(parse_stat("garbage"), None);
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Runs `spec` while a thread samples our RSS; returns the result, the number of lines,
    /// the last line, and the peak RSS growth in KiB.
    fn supervise_measured(spec: &Spec) -> (RunResult, usize, String, u64) {
        let baseline = rss_kib();
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut peak = 0;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(rss_kib());
                    thread::sleep(Duration::from_millis(20));
                }
                peak
            })
        };
        let mut parser = StreamFormat::Codex.parser();
        let mut count = 0;
        let mut last = String::new();
        let result = run(spec, parser.as_mut(), &mut |line| {
            count += 1;
            last = line.text;
        })
        .unwrap();
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap();
        assert_eq!(group_members(result.pgid), Vec::<i32>::new());
        (result, count, last, peak.saturating_sub(baseline))
    }

    #[test]
    fn a_gigabyte_of_output_does_not_grow_memory() {
        const GB: u64 = 1_000_000_000;
        const MAX_GROWTH_KIB: u64 = 20 * 1024;
        let dir = tempfile::tempdir().unwrap();

        // One line of 1 GB.
        let mut spec = agent("head -c 1000000000 /dev/zero | tr '\\0' x", dir.path());
        spec.max_line_bytes = 64 * 1024;
        let (result, count, last, growth) = supervise_measured(&spec);
        eprintln!(
            "1 GB, one line: {:?}, peak RSS growth {growth} KiB",
            result.duration
        );
        assert!(result.exit.success(), "{result:?}");
        assert_eq!(count, 1);
        assert_eq!(
            last.strip_prefix(&"x".repeat(64 * 1024)),
            Some(format!("…[truncated {} bytes]", GB - 64 * 1024).as_str())
        );
        assert!(growth < MAX_GROWTH_KIB, "grew {growth} KiB");

        // A million lines of 1000 bytes.
        let spec = agent(
            "yes \"$(printf '%0999d' 0)\" | head -c 1000000000",
            dir.path(),
        );
        let (result, count, last, growth) = supervise_measured(&spec);
        eprintln!(
            "1 GB, 10^6 lines: {:?}, peak RSS growth {growth} KiB",
            result.duration
        );
        assert!(result.exit.success(), "{result:?}");
        assert_eq!(count, 1_000_000);
        assert_eq!(last, "0".repeat(999));
        assert_eq!(result.class, Class::Stream(FailureClass::MalformedOutput));
        assert!(growth < MAX_GROWTH_KIB, "grew {growth} KiB");
    }
}
