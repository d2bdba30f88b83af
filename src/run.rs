//! The loop (DESIGN §5): `looper run`.
//!
//! Theory of operation. One thread owns the run: the project lock, the config, the backlog
//! store, the journal and the counters live in [`Ctx`]. Each iteration selects a task, marks
//! it `doing` through jq, runs the worker through its adapter and the supervisor (which owns
//! the agent's process group and its deadlines), reads the report, corroborates a `done`
//! (gates against their baseline, evidence of work), and applies the outcome through jq: the
//! task done, or one more attempt with a note. When nothing is selectable the review pass runs
//! the reviewers read-only: new tasks continue the loop, a unanimous `done` with green gates
//! appends the project-done marker and ends the run. Every decision is a journal record.

mod ensure;
mod gates;
mod hooks;
mod iteration;
mod limits;
mod prompt;
pub(crate) mod reports;
mod review;
mod schedule;
mod step;
mod stop;
mod workspace;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use crate::agent::supervise::RunResult;
use crate::backlog::persist::BacklogStore;
use crate::backlog::{BacklogError, Doc};
use crate::config::{Config, Layer};
use crate::error::Failure;
use crate::journal::Journal;
use crate::project::Project;

/// Exit codes of a run (DESIGN §5).
pub const EXIT_DONE: u8 = 0;
pub const EXIT_CAP: u8 = 3;
pub const EXIT_REVIEW_INCONCLUSIVE: u8 = 4;
pub const EXIT_STOPPED: u8 = 5;
pub const EXIT_INTERRUPTED: u8 = 130;

/// What the run shares between its steps.
pub struct Ctx {
    pub root: PathBuf,
    pub backlog: PathBuf,
    pub config: Config,
    pub store: BacklogStore,
    pub journal: Journal,
    pub run_id: String,
    runs_dir: PathBuf,
    /// The project's state directory (`run.lock`, `limits.json`, the agents' notes).
    pub(crate) state: PathBuf,
    /// The current iteration (0 before the first).
    pub iter: u32,
    /// The current step's label: `iter-N`, `review-N`.
    pub label: String,
    pub gate_baseline: BTreeMap<String, bool>,
    /// What happened, for the reviewer's digest.
    pub digest: Vec<String>,
    /// The last backlog read, by file identity (size, inode, times): most steps re-read an
    /// unchanged file.
    doc_cache: std::cell::RefCell<Option<(String, Doc)>>,
    pub(crate) stop: stop::Stop,
    pub(crate) started: std::time::Instant,
    pub tokens: u64,
    pub cost_usd: f64,
    /// Whether the project is a git work tree (asked once per run).
    pub git: bool,
    /// The files' hashes from the last snapshot of the tree.
    pub(crate) hashes: workspace::Hashes,
    /// Whether git has an identity (`user.email`) to commit with, asked at the first commit
    /// of the run.
    pub(crate) git_identity: std::cell::OnceCell<bool>,
    /// Task iterations whose agent ran (not deferred by a rate limit): the schedule's count.
    pub worked: u32,
    /// The agents' rate limits, kept across runs.
    pub(crate) limits: limits::Limits,
    /// Agents that cannot run for the rest of this run (refused credentials), and why.
    pub(crate) unavailable: BTreeMap<String, String>,
}

impl Ctx {
    /// Appends a record with this step's `iter` and `label`.
    /// Journals a record; the journal adds the step's `iter` and `label`.
    pub fn record(&self, kind: &str, payload: Value) -> anyhow::Result<u64> {
        let map = match payload {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        if crate::journal::human::PROGRESS.contains(&kind) {
            self.progress(kind, &map);
        }
        self.journal.append(kind, map)
    }

    /// Prints a record as `looper tail` would, on stderr, so a person sees the run go.
    fn progress(&self, kind: &str, payload: &Map<String, Value>) {
        let mut r = payload.clone();
        r.insert("type".into(), kind.into());
        r.insert("run".into(), self.run_id.clone().into());
        r.insert("label".into(), self.label.clone().into());
        r.insert("ts".into(), jiff::Timestamp::now().to_string().into());
        let mut r = Value::Object(r);
        if let Some(redactor) = self.journal.redactor() {
            redactor.value(&mut r);
        }
        let color = crate::term::stderr_color();
        let text = crate::journal::human::readable(&r, false, color).concat();
        eprint!("{}", crate::term::printable(&text, color));
    }

    /// Moves on to the step `label` (of iteration `self.iter`), for the journal too.
    pub(crate) fn set_step(&mut self, label: &str) {
        label.clone_into(&mut self.label);
        self.journal.set_step(self.iter, label);
    }

    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(&self.run_id)
    }

    fn add_usage(&mut self, result: &RunResult) {
        self.tokens += result.outcome.usage.input + result.outcome.usage.output;
        self.cost_usd += result.outcome.usage.cost_usd.unwrap_or(0.0);
    }

    /// The backlog as it is now.
    pub fn load(&self) -> anyhow::Result<Doc> {
        let key = crate::backlog::index::file_key(&self.backlog);
        if let (Some(key), Some((cached_key, doc))) = (&key, &*self.doc_cache.borrow())
            && key == cached_key
        {
            return Ok(doc.clone());
        }
        let doc = self.store.load_cached()?;
        if let Some(key) = key {
            *self.doc_cache.borrow_mut() = Some((key, doc.clone()));
        }
        Ok(doc)
    }

    /// Applies `change` to the backlog. The run's cached copy is let go first: with no other
    /// copy held, the store patches the document where it is instead of copying it whole.
    /// The rename is made durable while the run goes on: before an agent starts, before the
    /// next write and before the run ends (`BacklogStore::settle`).
    pub(crate) fn update(
        &self,
        change: &crate::backlog::ops::Change,
    ) -> anyhow::Result<crate::backlog::persist::Applied> {
        self.doc_cache.borrow_mut().take();
        let applied = self.store.update_unsettled(change, &self.journal)?;
        // What was just written is what the next look at the backlog finds, unless someone
        // wrote the file since (then the key at its path is another).
        if let Some(key) = &applied.key {
            *self.doc_cache.borrow_mut() = Some((key.clone(), applied.doc.clone()));
        }
        Ok(applied)
    }

    /// The backlog's path relative to the project root, for prompts.
    pub(crate) fn backlog_display(&self) -> String {
        self.backlog
            .strip_prefix(&self.root)
            .unwrap_or(&self.backlog)
            .display()
            .to_string()
    }

    /// Files an agent's changes to which are not evidence of work.
    fn own_files(&self) -> Vec<PathBuf> {
        let schema = self.backlog.with_file_name("to-do.schema.json");
        let mut own = vec![self.backlog.clone(), schema];
        // A backlog linked from elsewhere in the tree is written where the link points.
        if let std::borrow::Cow::Owned(target) = crate::file::write_target(&self.backlog) {
            own.push(target);
        }
        own
    }
}

/// Every configured agent's program exists, so a missing CLI stops the run before it
/// touches the backlog (exit 2), with what to do. With a `fallback` whose CLI is there, a
/// missing one is only a warning (its turns go to the fallback); the warnings are returned.
fn preflight(config: &Config, root: &Path) -> anyhow::Result<Vec<String>> {
    let fallback_ready = config
        .fallback
        .iter()
        .any(|a| agent_program(a, config, root).is_ok());
    let mut warnings = Vec::new();
    for (role, agent) in config.agents() {
        if let Err(missing) = agent_program(agent, config, root) {
            let text = format!("the {role} agent {missing}");
            if !fallback_ready {
                return Err(crate::error::UsageError::new(text).into());
            }
            warnings.push(format!("{text}; its turns go to the fallback"));
        }
    }
    Ok(warnings)
}

/// The program an agent runs, or why it cannot: `` `NAME` needs `PROGRAM`, which is not
/// found: <what to do> ``.
pub(crate) fn agent_program(
    agent: &crate::config::Agent,
    config: &Config,
    root: &Path,
) -> Result<PathBuf, String> {
    let program = crate::agent::invocation(&crate::agent::Request {
        spec: &agent.spec,
        role: crate::agent::Role::Worker,
        sandbox: config.sandbox,
        prompt: "",
        cwd: root,
        program: agent.program.as_deref(),
    })
    .program;
    if on_path(&program) {
        return Ok(program);
    }
    let hint = match &agent.spec.adapter {
        crate::agent::Adapter::Cmd(_) => {
            "check the path (relative paths start at the project root) and that it is executable"
                .to_owned()
        }
        adapter => format!(
            "install the {} CLI, or point [agents.{}] program = \"/path/to/{}\" at it in looper.toml",
            adapter.name(),
            agent.name,
            adapter.name()
        ),
    };
    Err(format!(
        "`{}` needs `{}`, which is not found: {hint}",
        agent.name,
        program.display()
    ))
}

/// Whether `program` names an executable file, directly or on `PATH`.
fn on_path(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
}

/// The backlog's `source_files` as a prompt line: `` `SPEC.md`, `README.md` ``.
fn source_files_text(doc: &Doc) -> String {
    let sources: Vec<String> = doc
        .value()
        .get("source_files")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| format!("`{s}`"))
                .collect()
        })
        .unwrap_or_default();
    if sources.is_empty() {
        "(none listed)".into()
    } else {
        sources.join(", ")
    }
}

/// Runs the loop in `project` until the project is done, a cap is reached or the review is
/// inconclusive.
pub fn run(project: &Project, flags: Layer, idea: Option<&str>) -> anyhow::Result<ExitCode> {
    let home = crate::store::looper_home()?;
    let config = Config::resolve(&home, &project.root, flags)?;
    let warnings = preflight(&config, &project.root)?;
    for warning in &warnings {
        eprintln!("looper: warning: {warning}");
    }
    crate::file::create_private_dir(&project.home.state())?;
    let _lock = lock(&project.home.state().join("run.lock"))?;
    let stop = stop::Stop::install(&project.home.state())?;
    let run_id = new_run_id();
    let runs_dir = project.home.runs();
    let journal = Journal::new(runs_dir.join(format!("{run_id}.jsonl")), run_id.clone());
    let store = BacklogStore::new(&project.backlog, &project.home.state());
    let mut ctx = Ctx {
        root: project.root.clone(),
        backlog: project.backlog.clone(),
        config,
        store,
        journal,
        run_id,
        runs_dir,
        state: project.home.state(),
        iter: 0,
        label: "run".into(),
        gate_baseline: BTreeMap::new(),
        digest: Vec::new(),
        doc_cache: std::cell::RefCell::default(),
        stop,
        started: std::time::Instant::now(),
        tokens: 0,
        cost_usd: 0.0,
        git: workspace::is_git(&project.root),
        hashes: workspace::Hashes::default(),
        git_identity: std::cell::OnceCell::new(),
        worked: 0,
        limits: limits::Limits::load(&project.home.state())?,
        unavailable: BTreeMap::new(),
    };
    ctx.journal.set_step(0, "run");
    let profile_values: Vec<String> = ctx
        .config
        .agents()
        .iter()
        .flat_map(|(_, a)| a.env.iter().map(|(_, v)| v.clone()))
        .collect();
    ctx.journal.set_redactor(crate::journal::Redactor::new(
        std::env::vars(),
        profile_values.iter().map(String::as_str),
    ));
    ctx.record(
        "run.start",
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "argv": std::env::args().collect::<Vec<_>>(),
            "root": ctx.root,
            "backlog": ctx.backlog,
            "config_files": ctx.config.sources,
            "worker": ctx.config.worker.spec.to_string(),
            "schedule": {
                "kind": ctx.config.schedule.kind.as_str(),
                "agents": ctx.config.schedule.agents.iter().map(|a| a.spec.to_string()).collect::<Vec<_>>(),
            },
            "escalate": ctx.config.escalate.as_ref().map(|a| a.spec.to_string()),
            "escalate_after": ctx.config.escalate_after,
            "fallback": ctx.config.fallback.iter().map(|a| a.spec.to_string()).collect::<Vec<_>>(),
            "reviewers": ctx.config.reviewers.iter().map(|r| r.spec.to_string()).collect::<Vec<_>>(),
            "warnings": warnings,
            "max_iterations": ctx.config.max_iterations,
        }),
    )?;
    // A Looper killed with SIGKILL could not stop its agent: end what it left running.
    let orphans = crate::agent::supervise::kill_orphans(
        &ctx.state.join("agents"),
        std::time::Duration::from_secs(5),
    );
    if !orphans.is_empty() {
        ctx.record("agent.orphans", json!({"killed": orphans}))?;
    }
    let outcome = drive(&mut ctx, idea);
    crate::agent::supervise::remove_spare_notes();
    // Every backlog write is durable before the run says how it ended; an error of the
    // loop's own comes first.
    let settled = ctx.store.settle();
    let outcome = outcome.and_then(|ended| settled.map(|()| ended).map_err(Into::into));
    let (reason, code) = match &outcome {
        Ok((reason, code)) => ((*reason).to_owned(), *code),
        Err(e) => (format!("error: {e:#}"), crate::error::exit_code(e)),
    };
    let ended = end(&mut ctx, &reason, code);
    // After an error, that error is the one to report: a full disk or a deleted journal
    // directory fails the end records too, and would hide what failed first.
    outcome?;
    ended?;
    eprintln!("looper: {reason} (run {})", ctx.run_id);
    Ok(ExitCode::from(code))
}

/// Fires the `on_end` hooks and journals `run.end`.
fn end(ctx: &mut Ctx, reason: &str, code: u8) -> anyhow::Result<()> {
    ctx.set_step("run");
    hooks::fire(ctx, "on_end", &json!({"reason": reason, "exit_code": code}))?;
    ctx.record(
        "run.end",
        json!({
            "reason": reason,
            "exit_code": code,
            "iterations": ctx.iter,
            "tokens": ctx.tokens,
            "cost_usd": ctx.cost_usd,
        }),
    )?;
    Ok(())
}

/// The loop proper: returns why it ended and the exit code.
fn drive(ctx: &mut Ctx, idea: Option<&str>) -> anyhow::Result<(&'static str, u8)> {
    let doc = match ctx.store.load() {
        Ok(loaded) => loaded.doc,
        Err(BacklogError::NotFound { .. }) => ensure::bootstrap(ctx, idea)?,
        Err(
            e @ (BacklogError::Invalid { .. }
            | BacklogError::Syntax { .. }
            | BacklogError::Empty { .. }),
        ) => ensure::repair(ctx, &e)?,
        Err(e) => return Err(e.into()),
    };
    if let Some(marker) = doc.marker() {
        let tasks = doc.tasks();
        if crate::backlog::select::select(&tasks, ctx.config.retry_limit).is_none() {
            return Ok(("the project is already done", EXIT_DONE));
        }
        // Work was added after the review declared the project done: it is not done.
        let id = marker.id.to_owned();
        drop(tasks);
        ctx.update(&crate::backlog::ops::reopen(&id))?;
        ctx.record(
            "project.reopened",
            json!({"marker": id, "why": "tasks were added after the review declared the project done"}),
        )?;
    }
    baseline(ctx)?;
    let mut reviews = 0;
    loop {
        if let Some(end) = should_end(ctx) {
            return Ok(end);
        }
        let doc = ctx.load()?;
        let tasks = doc.tasks();
        let selected = crate::backlog::select::select(&tasks, ctx.config.retry_limit)
            .map(|(t, reason)| (t.id.to_owned(), reason));
        drop(tasks);
        if let Some((id, reason)) = selected {
            if ctx.iter >= ctx.config.max_iterations {
                return Ok(("the iteration cap was reached with work left", EXIT_CAP));
            }
            let task = doc.task(&id).map_or(Value::Null, |t| t.value.clone());
            // Held on, it would make the iteration's updates copy the backlog.
            drop(doc);
            let (agent, why) = match schedule::worker(ctx, &task)? {
                schedule::Pick::Run { agent, why } => (agent, why),
                schedule::Pick::Wait { until, why } => {
                    if let Some(end) = wait(ctx, until, &why)? {
                        return Ok(end);
                    }
                    continue;
                }
                schedule::Pick::Stuck { why } => {
                    return Err(Failure {
                        message: format!("no agent can work on task {id}: {why}"),
                        code: crate::error::EXIT_ERROR,
                    }
                    .into());
                }
            };
            if ctx.iter > 0 && !ctx.config.delay.is_zero() {
                pause(ctx);
            }
            ctx.iter += 1;
            ctx.set_step(&format!("iter-{}", ctx.iter));
            iteration::iterate(ctx, &id, reason, &agent, &why)?;
            continue;
        }
        reviews += 1;
        ctx.set_step(&format!("review-{reviews}"));
        match review::review(ctx)? {
            review::Verdict::Ended(reason, code) => return Ok((reason, code)),
            review::Verdict::Done => {
                return Ok(("the review declared the project done", EXIT_DONE));
            }
            review::Verdict::NewTasks => reviews = 0,
            review::Verdict::Inconclusive if reviews > ctx.config.review_retries => {
                return Ok(("the review stayed inconclusive", EXIT_REVIEW_INCONCLUSIVE));
            }
            review::Verdict::Inconclusive => {}
        }
    }
}

/// The error that ends a run stopped during bootstrap or repair.
fn interrupted() -> anyhow::Error {
    Failure {
        message: "interrupted".into(),
        code: EXIT_INTERRUPTED,
    }
    .into()
}

/// Why the run must end before its next step, if it must: a stop request or a budget.
fn should_end(ctx: &Ctx) -> Option<(&'static str, u8)> {
    if ctx.stop.hard() {
        return Some((
            "interrupted; the task in progress stays doing",
            EXIT_INTERRUPTED,
        ));
    }
    if ctx.stop.soft() {
        return Some(("stopped by request", EXIT_STOPPED));
    }
    let config = &ctx.config;
    if config.max_tokens.is_some_and(|max| ctx.tokens >= max) {
        return Some(("the token budget was reached with work left", EXIT_CAP));
    }
    if config.max_cost.is_some_and(|max| ctx.cost_usd >= max) {
        return Some(("the cost budget was reached with work left", EXIT_CAP));
    }
    if config
        .max_duration
        .is_some_and(|max| ctx.started.elapsed() >= max)
    {
        return Some(("the time budget was reached with work left", EXIT_CAP));
    }
    None
}

/// Waits until `until`, when every agent that could take the next step is rate-limited;
/// returns why the run must end instead, if it must (a stop request, or a reset beyond the
/// time budget). The wait is journaled (`agent.wait`), so `status` and `tail` show it; the
/// limits are on disk, so a restarted run waits for the same reset.
fn wait(
    ctx: &mut Ctx,
    until: jiff::Timestamp,
    why: &str,
) -> anyhow::Result<Option<(&'static str, u8)>> {
    let left = |until: jiff::Timestamp| {
        std::time::Duration::try_from(until.duration_since(jiff::Timestamp::now()))
            .unwrap_or_default()
    };
    let beyond_budget = ctx
        .config
        .max_duration
        .is_some_and(|max| ctx.started.elapsed() + left(until) > max);
    ctx.record(
        "agent.wait",
        json!({"until": until, "why": why, "beyond_budget": beyond_budget}),
    )?;
    if beyond_budget {
        return Ok(Some((
            "every agent is rate-limited past the time budget",
            EXIT_CAP,
        )));
    }
    loop {
        if let Some(end) = should_end(ctx) {
            return Ok(Some(end));
        }
        let remaining = left(until);
        if remaining.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(remaining.min(std::time::Duration::from_millis(200)));
    }
}

/// Waits `delay` between iterations, unless asked to stop.
fn pause(ctx: &Ctx) {
    let until = std::time::Instant::now() + ctx.config.delay;
    while std::time::Instant::now() < until && !ctx.stop.soft() {
        std::thread::sleep(
            std::time::Duration::from_millis(100).min(until - std::time::Instant::now()),
        );
    }
}

/// `looper stop`: asks the project's run to end after its current iteration.
/// The pid of the `looper run` working on the project now, if one is.
pub fn running_pid(project: &Project) -> Option<String> {
    let lock_path = project.home.state().join("run.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock_path)
        .ok()?;
    if file.try_lock().is_ok() {
        return None;
    }
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    Some(text.trim().to_owned())
}

pub fn request_stop(project: &Project) -> anyhow::Result<ExitCode> {
    let state = project.home.state();
    let Some(pid) = running_pid(project) else {
        return Err(Failure {
            message: format!("no looper run is working on {}", project.root.display()),
            code: crate::error::EXIT_ERROR,
        }
        .into());
    };
    crate::file::write_atomic(&stop::request_path(&state), pid.as_bytes(), 0o600)
        .with_context(|| format!("cannot write the stop request in {}", state.display()))?;
    println!("asked the run (pid {pid}) to stop after its current iteration");
    Ok(ExitCode::SUCCESS)
}

/// Reads `final_text` as each report the run reads, as the run reads it: worker, review,
/// bootstrap (built into a backlog and validated) and repair (its backlog validated). The
/// entry point of the fuzz targets (`tests/integration/fuzz.rs`), not an API.
#[doc(hidden)]
pub fn read_reports(final_text: &str) -> [Result<(), String>; 4] {
    let text = Some(final_text);
    let valid = |value| {
        crate::backlog::load::check(Path::new("to-do.json"), value)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    [
        reports::read::<reports::WorkerReport>(text).map(drop),
        reports::read::<reports::ReviewReport>(text).map(drop),
        reports::read::<ensure::BootstrapReport>(text)
            .and_then(|r| ensure::build(&r, &[]))
            .and_then(valid),
        reports::read::<ensure::RepairReport>(text).and_then(|r| valid(r.backlog)),
    ]
}

/// Runs every gate once before the first iteration, so already-failing gates don't block
/// unrelated tasks.
fn baseline(ctx: &mut Ctx) -> anyhow::Result<()> {
    for command in ctx.config.verify.clone() {
        let result = gates::run(&ctx.root, &command, ctx.config.verify_timeout)?;
        ctx.record("gate", json!({"phase": "baseline", "result": result}))?;
        ctx.gate_baseline.insert(command, result.passed);
    }
    Ok(())
}

/// Takes the project's run lock, or says who holds it.
fn lock(path: &Path) -> anyhow::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the run lock {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let pid = holder
            .split_whitespace()
            .next()
            .unwrap_or("another process");
        return Err(Failure {
            message: format!(
                "another looper run is working on this project (pid {pid}); wait for it, or stop it with `looper stop`"
            ),
            code: crate::error::EXIT_ERROR,
        }
        .into());
    }
    // The pid tells `looper stop` and the lock error above whom to ask.
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("cannot write the run lock {}", path.display()))?;
    Ok(file)
}

/// A time-ordered, readable run id: `20261130T120501.042Z-3fa9` (runs sort by name even when
/// two start in the same second).
fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let nanos = now.subsec_nanosecond().unsigned_abs();
    let salt = crate::backlog::format::sha256_hex(
        format!("{now}{}{nanos}", std::process::id()).as_bytes(),
    );
    format!(
        "{}.{:03}Z-{}",
        now.strftime("%Y%m%dT%H%M%S"),
        nanos / 1_000_000,
        &salt[..4]
    )
}
