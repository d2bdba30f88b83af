//! Reading journals back: a project's run files in order, their records (a torn or corrupt
//! line is skipped and counted, never fatal: a run may be appending right now), and the
//! iterations they describe, folded into one summary each.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use serde::Serialize;
use serde_json::Value;

/// The records of one journal file, and how many lines could not be read (a torn last line
/// while the run is writing, or damage).
#[derive(Debug, Default)]
pub struct Records {
    pub records: Vec<Value>,
    pub skipped: usize,
}

/// Reads a journal file; a missing file has no records.
pub fn read(path: &Path) -> anyhow::Result<Records> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    Ok(parse_lines(&bytes))
}

/// The records in journal bytes; blank lines are ignored, unreadable ones counted.
pub fn parse_lines(bytes: &[u8]) -> Records {
    let mut out = Records::default();
    for line in bytes.split(|&b| b == b'\n') {
        match record(line) {
            Held::Record(v) => out.records.push(v),
            Held::Unreadable => out.skipped += 1,
            Held::Blank => {}
        }
    }
    out
}

/// What one line of a journal holds, read whole.
enum Held {
    Blank,
    Record(Value),
    /// Torn or corrupt.
    Unreadable,
}

/// Reads one line of a journal whole.
fn record(line: &[u8]) -> Held {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Held::Blank;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(v) if v.is_object() => Held::Record(v),
        _ => Held::Unreadable,
    }
}

/// The end of a journal file holding at least `starts` iterations (or the whole file, when it
/// has fewer), plus its first record: what `status` needs, without reading a long run's
/// whole journal.
pub fn read_tail(path: &Path, starts: usize) -> anyhow::Result<(Records, Option<Value>)> {
    let Some(tail) = tail_window(path, starts)? else {
        return Ok((Records::default(), None));
    };
    Ok((parse_lines(tail.lines()), tail.first))
}

/// [`read_tail`] a line at a time, as [`stream`] reads them (`agent.event` records light):
/// for readers that fold iterations. Returns the file's first record and how many lines
/// could not be read.
pub fn read_tail_lines(
    path: &Path,
    starts: usize,
    mut on: impl FnMut(Line<'_>),
) -> anyhow::Result<(Option<Value>, usize)> {
    let Some(tail) = tail_window(path, starts)? else {
        return Ok((None, 0));
    };
    let skipped = tail
        .lines()
        .split(|&b| b == b'\n')
        .filter(|line| !read_line(line, &mut on))
        .count();
    Ok((tail.first, skipped))
}

/// The end of a journal file, as [`tail_window`] reads it.
struct TailWindow {
    bytes: Vec<u8>,
    /// Where the first whole line begins in `bytes`.
    from: usize,
    /// The file's first record.
    first: Option<Value>,
}

impl TailWindow {
    /// The whole lines.
    fn lines(&self) -> &[u8] {
        &self.bytes[self.from..]
    }
}

/// The bytes at the end of a journal file that hold at least `starts` iterations, and the
/// file's first record; `None` when there is no file.
fn tail_window(path: &Path, starts: usize) -> anyhow::Result<Option<TailWindow>> {
    use std::io::{BufRead as _, Read as _, Seek as _};
    const MARK: &[u8] = b"\"type\":\"iteration.start\"";
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    let len = file.metadata()?.len();
    let mut first_line = Vec::new();
    std::io::BufReader::new(&file).read_until(b'\n', &mut first_line)?;
    let first = serde_json::from_slice::<Value>(&first_line).ok();
    let mut window: u64 = 1 << 20;
    loop {
        let start = len.saturating_sub(window);
        file.seek(std::io::SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(len - start).read_to_end(&mut bytes)?;
        let found = bytes.windows(MARK.len()).filter(|w| *w == MARK).count();
        if found >= starts || start == 0 {
            // Drop the partial line a window starting mid-file begins with.
            let from = if start == 0 {
                0
            } else {
                bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| p + 1)
            };
            return Ok(Some(TailWindow { bytes, from, first }));
        }
        window *= 4;
    }
}

/// The run journals (not the daily command journals) in `runs_dir`, oldest first: run ids
/// begin with their start time, so names sort in time order.
pub fn run_files(runs_dir: &Path) -> Vec<PathBuf> {
    journal_files(runs_dir)
        .into_iter()
        .filter(|p| {
            !p.file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with("-cmd"))
        })
        .collect()
}

/// The journal of run `id` (or of the one run whose id starts with `id`).
pub fn find_run(runs_dir: &Path, id: &str) -> anyhow::Result<PathBuf> {
    let files = run_files(runs_dir);
    let stem = |f: &PathBuf| {
        f.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if let Some(f) = files.iter().find(|f| stem(f) == id) {
        return Ok(f.clone());
    }
    let matching: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !id.is_empty() && stem(f).starts_with(id))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!(
            "no run {id} in {}: `looper log` lists the runs",
            runs_dir.display()
        ),
        many => anyhow::bail!(
            "{} runs start with {id} ({}): give more of the id",
            many.len(),
            many.iter().map(|f| stem(f)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Every journal in `runs_dir`: the runs and the daily command journals, sorted by name.
pub fn journal_files(runs_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Tokens an agent step used.
#[derive(Debug, Default, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Tokens {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
}

/// A command the agent ran, as its CLI reported it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AgentCommand {
    pub command: String,
    pub exit_code: Option<i64>,
}

/// One iteration, folded from its records.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Iteration {
    pub run: String,
    pub iter: u64,
    pub label: String,
    pub task: String,
    pub agent: String,
    /// Why this task was picked (`next`, `resume`, ...).
    pub reason: String,
    pub started: String,
    pub ended: Option<String>,
    /// `done`, `attempt`, `interrupted`, or `unfinished` (still running, or the run died).
    pub outcome: String,
    pub note: Option<String>,
    pub duration_ms: Option<u64>,
    pub agent_ms: Option<u64>,
    /// How the agent run ended (`ok`, `timeout`, `rate_limited`, ...).
    pub class: Option<String>,
    pub tokens: Tokens,
    pub cost_usd: Option<f64>,
    /// Whether `cost_usd` is an estimate from the config's `[prices]` (the CLI gave only
    /// tokens).
    pub cost_estimated: bool,
    pub commands: Vec<AgentCommand>,
    pub changed: Vec<String>,
    pub commits: Vec<String>,
    pub gates: Vec<Value>,
    pub report: Option<Value>,
    pub backlog_updates: Vec<Value>,
    pub prompt: Option<Value>,
    pub argv: Option<Value>,
    /// The last message file of the worker step.
    pub last_message: Option<String>,
    /// What the agent did last (its last command or message), while it runs.
    pub last_action: Option<String>,
    /// The backlog's tasks by status when the iteration ended.
    pub backlog: Option<crate::backlog::doc::Counts>,
    #[serde(skip)]
    last: Last,
}

/// The iterations in the records of one run, in order.
pub fn iterations(records: &[Value]) -> Vec<Iteration> {
    let mut out: Vec<Iteration> = Vec::new();
    let mut fold = Fold::new(|it| out.push(it));
    for r in records {
        fold.record(r);
    }
    fold.finish();
    out
}

/// The iterations of one run's journal, read with [`stream`] (memory for the iterations,
/// not for the agents' output).
pub fn iterations_in(path: &Path) -> anyhow::Result<Vec<Iteration>> {
    let mut out: Vec<Iteration> = Vec::new();
    let mut fold = Fold::new(|it| out.push(it));
    stream(path, |line| fold.line(line))?;
    fold.finish();
    Ok(out)
}

/// Folds a run's records into iterations one record at a time, handing each iteration to
/// `done` once the next one starts (or at [`Fold::finish`]): readers of long journals keep
/// one iteration in memory, not the journal.
pub struct Fold<F: FnMut(Iteration)> {
    current: Option<Iteration>,
    done: F,
}

impl<F: FnMut(Iteration)> Fold<F> {
    pub fn new(done: F) -> Self {
        Self {
            current: None,
            done,
        }
    }

    /// Takes in one record.
    pub fn record(&mut self, r: &Value) {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "iteration.start" {
            if let Some(mut it) = self.current.replace(start(r)) {
                it.settle();
                (self.done)(it);
            }
            return;
        }
        let (run, label) = (
            r.get("run").and_then(Value::as_str),
            r.get("label").and_then(Value::as_str),
        );
        if let Some(it) = self.mine(run, label) {
            take(it, kind, r);
        }
    }

    /// Takes in one line read by [`stream`].
    pub fn line(&mut self, line: Line<'_>) {
        match line {
            Line::Events { run, label, events } => self.events(run, label, events),
            Line::Record(r) => self.record(&r),
        }
    }

    /// Takes in the normalized events of an `agent.event` record read by [`stream`].
    pub fn events(&mut self, run: &str, label: &str, events: Vec<Event>) {
        if let Some(it) = self.mine(Some(run), Some(label)) {
            for event in events {
                event_in(it, event);
            }
        }
    }

    /// The current iteration, when a record of this run and step belongs to it.
    fn mine(&mut self, run: Option<&str>, label: Option<&str>) -> Option<&mut Iteration> {
        self.current
            .as_mut()
            .filter(|it| label == Some(it.label.as_str()) && run == Some(it.run.as_str()))
    }

    /// Hands over the last iteration.
    pub fn finish(mut self) {
        if let Some(mut it) = self.current.take() {
            it.settle();
            (self.done)(it);
        }
    }
}

/// One line of a journal as [`stream`] reads it.
pub enum Line<'a> {
    /// Any record but an agent's events.
    Record(Value),
    /// An `agent.event` record, read without its raw output line: only the normalized events.
    Events {
        run: &'a str,
        label: &'a str,
        events: Vec<Event>,
    },
}

/// The run, step and events of an `agent.event` line as Looper's writer lays it out (header
/// first, `events` last), without parsing the agent's raw line in between: most of a
/// journal's bytes. `None` sends the line to the full parser.
fn events_line(line: &[u8]) -> Option<(&str, &str, Vec<Event>)> {
    let head = &line[..line.len().min(300)];
    let run_at = memchr::memmem::find(head, b"\"run\":\"")? + 7;
    let label_at = memchr::memmem::find(head, b"\"label\":\"")? + 9;
    let kind_at = memchr::memmem::find(head, b"\"type\":\"agent.event\"")?;
    // The header keys must be the record's own, not those of an object nested before them
    // (a damaged line can hold a whole record where its run id should be).
    if memchr::memchr2(b'{', b'[', &line[1..run_at.max(label_at).max(kind_at)]).is_some() {
        return None;
    }
    let run = plain_string(line, run_at)?;
    let label = plain_string(line, label_at)?;
    // Outside a string a quote is never escaped, so this is the record's own key.
    let at = memchr::memmem::rfind(line, b",\"events\":")? + 10;
    let mut values =
        serde_json::Deserializer::from_slice(&line[at..]).into_iter::<Vec<LiteEvent<'_>>>();
    let events = values.next()?.ok()?;
    // The record must end right after the array.
    let rest = &line[at + values.byte_offset()..];
    if rest
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .ne(b"}".iter())
    {
        return None;
    }
    Some((
        run,
        label,
        events
            .into_iter()
            .filter_map(LiteEvent::into_event)
            .collect(),
    ))
}

/// The JSON string starting at `start` (after its opening quote), when it has no escapes.
fn plain_string(line: &[u8], start: usize) -> Option<&str> {
    let len = memchr::memchr2(b'"', b'\\', line.get(start..)?)?;
    if line[start + len] != b'"' {
        return None;
    }
    std::str::from_utf8(&line[start..start + len]).ok()
}

/// A normalized event, with only what readers fold (not a command's output).
#[derive(serde::Deserialize)]
struct LiteEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    cmd: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    input: Option<u64>,
    #[serde(default)]
    cached: Option<u64>,
    /// Output tokens of a usage event (a command's output text is skipped).
    #[serde(default, deserialize_with = "tokens_or_skip")]
    output: Option<u64>,
}

fn tokens_or_skip<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a token count or a text")
        }
        fn visit_u64<E>(self, n: u64) -> Result<Option<u64>, E> {
            Ok(Some(n))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Option<u64>, E> {
            Ok(u64::try_from(n).ok())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

impl LiteEvent<'_> {
    /// The event as the fold reads it; `None` for kinds it ignores.
    fn into_event(self) -> Option<Event> {
        match &*self.kind {
            "command" => Some(Event::Command {
                cmd: self.cmd.map(String::from).unwrap_or_default(),
                exit_code: self.exit_code,
            }),
            "message" => Some(Event::Message(
                self.text.map(String::from).unwrap_or_default(),
            )),
            "usage" => Some(Event::Usage(Tokens {
                input: self.input.unwrap_or(0),
                cached: self.cached.unwrap_or(0),
                output: self.output.unwrap_or(0),
            })),
            _ => None,
        }
    }
}

/// Milliseconds from one RFC 3339 timestamp to a later one; `None` when either does not
/// parse or `to` is earlier.
pub fn ms_between(from: &str, to: &str) -> Option<u64> {
    let (a, b) = (
        from.parse::<jiff::Timestamp>().ok()?,
        to.parse::<jiff::Timestamp>().ok()?,
    );
    u64::try_from(b.as_millisecond() - a.as_millisecond()).ok()
}

/// Reads a journal file line by line in constant memory, handing each record to `on`;
/// `agent.event` records (most of a journal's bytes) are read light, as [`Line::Events`].
/// Returns how many lines could not be read (torn or corrupt).
pub fn stream(path: &Path, mut on: impl FnMut(Line<'_>)) -> anyhow::Result<usize> {
    let mut skipped = 0;
    each_line(path, |line| {
        skipped += usize::from(!read_line(line, &mut on));
        Ok(())
    })?;
    Ok(skipped)
}

/// Reads a journal file line by line in constant memory, handing each record to `on` whole
/// (an agent's raw line too, for readers that print it); stops at the first error `on`
/// returns. Returns how many lines could not be read (torn or corrupt).
pub fn each_record(
    path: &Path,
    mut on: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let mut skipped = 0;
    each_line(path, |line| {
        match record(line) {
            Held::Record(v) => on(v)?,
            Held::Unreadable => skipped += 1,
            Held::Blank => {}
        }
        Ok(())
    })?;
    Ok(skipped)
}

/// Hands each line of a journal file (with its newline, when it has one) to `on`, reading
/// 1 MiB at a time; a missing file has none. Stops at the first error `on` returns.
fn each_line(path: &Path, mut on: impl FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())));
        }
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        on(&line)?;
    }
}

/// Hands one line of a journal to `on` as [`stream`] reads it; `false` when it is neither
/// blank nor a record (torn or corrupt).
fn read_line(line: &[u8], on: &mut impl FnMut(Line<'_>)) -> bool {
    /// How Looper's writer heads an agent's events record, within its first bytes.
    const EVENTS: &[u8] = b",\"type\":\"agent.event\",";
    let head = &line[..line.len().min(300)];
    if memchr::memmem::find(head, EVENTS).is_some()
        && let Some((run, label, events)) = events_line(line)
    {
        on(Line::Events { run, label, events });
        return true;
    }
    match record(line) {
        Held::Record(v) => on(Line::Record(v)),
        Held::Unreadable => return false,
        Held::Blank => {}
    }
    true
}

fn text(r: &Value, key: &str) -> String {
    r.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn start(r: &Value) -> Iteration {
    Iteration {
        run: text(r, "run"),
        iter: r.get("iter").and_then(Value::as_u64).unwrap_or(0),
        label: text(r, "label"),
        task: text(r, "task"),
        agent: text(r, "agent"),
        reason: text(r, "reason"),
        started: text(r, "ts"),
        ended: None,
        outcome: "unfinished".into(),
        note: None,
        duration_ms: None,
        agent_ms: None,
        class: None,
        tokens: Tokens::default(),
        cost_usd: None,
        cost_estimated: false,
        commands: Vec::new(),
        changed: Vec::new(),
        commits: Vec::new(),
        gates: Vec::new(),
        report: None,
        backlog_updates: Vec::new(),
        prompt: None,
        argv: None,
        last_message: None,
        last_action: None,
        backlog: None,
        last: Last::Nothing,
    }
}

/// A normalized agent event, as much of it as readers fold.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Command { cmd: String, exit_code: Option<i64> },
    Message(String),
    Usage(Tokens),
}

impl Event {
    /// The event in a journal record's `events`; `None` for kinds readers do not fold.
    pub fn of(event: &Value) -> Option<Event> {
        let u = |k: &str| event.get(k).and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str)? {
            "command" => Some(Event::Command {
                cmd: text(event, "cmd"),
                exit_code: event.get("exit_code").and_then(Value::as_i64),
            }),
            "message" => Some(Event::Message(text(event, "text"))),
            "usage" => Some(Event::Usage(Tokens {
                input: u("input"),
                cached: u("cached"),
                output: u("output"),
            })),
            _ => None,
        }
    }
}

/// What the agent did last, until [`Iteration::settle`] words it.
#[derive(Debug, Clone, Default)]
enum Last {
    #[default]
    Nothing,
    /// The last of `commands`.
    Command,
    Said(String),
}

/// Folds one normalized agent event in.
fn event_in(it: &mut Iteration, event: Event) {
    match event {
        Event::Command { cmd, exit_code } => {
            it.commands.push(AgentCommand {
                command: cmd,
                exit_code,
            });
            it.last = Last::Command;
        }
        Event::Message(text) => it.last = Last::Said(text),
        // While the agent runs, its latest usage report stands for the total.
        Event::Usage(tokens) if it.agent_ms.is_none() => it.tokens = tokens,
        Event::Usage(_) => {}
    }
}

impl Iteration {
    /// Estimates the cost from the tokens when the CLI reported none and `prices` has one.
    pub fn estimate(&mut self, prices: &crate::config::Prices) {
        if self.cost_usd.is_none()
            && let Some(c) = prices.estimate(
                &self.agent,
                self.tokens.input,
                self.tokens.cached,
                self.tokens.output,
            )
        {
            self.cost_usd = Some(c);
            self.cost_estimated = true;
        }
    }

    /// Words `last_action` from the last event folded in.
    fn settle(&mut self) {
        self.last_action = match std::mem::take(&mut self.last) {
            Last::Nothing => self.last_action.take(),
            Last::Command => self.commands.last().map(|c| {
                format!(
                    "ran `{}` (exit {})",
                    c.command,
                    c.exit_code.map_or_else(|| "?".into(), |c| c.to_string())
                )
            }),
            Last::Said(text) => Some(format!("said: {text}")),
        };
    }
}

/// Folds one record of the iteration in.
fn take(it: &mut Iteration, kind: &str, r: &Value) {
    let u = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    match kind {
        "prompt" => it.prompt = Some(r.clone()),
        "agent.spawn" => it.argv = r.get("argv").cloned(),
        "agent.event" => {
            for event in r
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Event::of)
            {
                event_in(it, event);
            }
        }
        "agent.exit" => {
            it.agent_ms = r.get("duration_ms").and_then(Value::as_u64);
            it.class = r
                .pointer("/class/class")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(usage) = r.get("usage") {
                it.tokens = Tokens::default();
                it.tokens.input += u(usage, "input");
                it.tokens.cached += u(usage, "cached");
                it.tokens.output += u(usage, "output");
                if let Some(cost) = usage.get("cost_usd").and_then(Value::as_f64) {
                    *it.cost_usd.get_or_insert(0.0) += cost;
                }
            }
            it.last_message = r
                .get("last_message")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        "git" if r.get("phase").and_then(Value::as_str) == Some("commit") => {
            if let Some(commit) = r.get("commit").and_then(Value::as_str) {
                it.commits.push(commit.to_owned());
            }
        }
        "gate" => it.gates.push(r.clone()),
        "report" => it.report = Some(r.clone()),
        "backlog.update" => it.backlog_updates.push(r.clone()),
        "iteration.end" => {
            it.outcome = text(r, "outcome");
            it.note = r.get("note").and_then(Value::as_str).map(str::to_owned);
            it.changed = r
                .get("changed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            it.ended = Some(text(r, "ts"));
            it.backlog = r
                .get("backlog")
                .and_then(|b| serde_json::from_value(b.clone()).ok());
            it.duration_ms = crate::agent::parse::json::millis_between(&it.started, &text(r, "ts"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An agent's events with their run and step.
    type Light = (String, String, Vec<Event>);

    /// What `stream` hands over for each line of a file: the light lines, how many went to
    /// the full parse, and how many were skipped.
    fn streamed(path: &Path) -> (Vec<Light>, usize, usize) {
        let mut light = Vec::new();
        let mut full = 0;
        let skipped = stream(path, |line| match line {
            Line::Events { run, label, events } => {
                light.push((run.to_owned(), label.to_owned(), events));
            }
            Line::Record(_) => full += 1,
        })
        .unwrap();
        (light, full, skipped)
    }

    #[test]
    fn agent_events_read_light_are_what_the_full_parse_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let journal = crate::journal::Journal::new(path.clone(), "R1".into());
        journal.set_step(3, "iter-3");
        let payloads = [
            json!({"stream": "stdout", "at_ms": 1, "raw": "{\"type\":\"item\",\"events\":[1],\"x\":\"a\\\"b\"}", "events": [
                {"type": "command", "cmd": "printf '%s\\n' \"quoted\" → ünï", "exit_code": 2, "output": "line\n\"events\":[]"},
                {"type": "reasoning", "text": "thinking"},
                {"type": "message", "text": "done: {\"task_id\": \"T1\"}"},
                {"type": "usage", "input": 12, "cached": 3, "output": 4},
            ]}),
            json!({"stream": "stderr", "at_ms": 2, "raw": "", "events": []}),
            // Format 2: the agent's line as an object, with keys of its own that a record has.
            json!({"stream": "stdout", "at_ms": 3, "json": {"type": "item", "label": "x", "events": [{"type": "message", "text": "inner"}], "run": "R9"}, "events": [
                {"type": "message", "text": "outer"},
            ]}),
        ];
        journal.append_all("agent.event", &payloads).unwrap();
        let (light, full, skipped) = streamed(&path);
        assert_eq!((full, skipped), (0, 0), "every line takes the light path");
        let expected: Vec<Light> = parse_lines(&std::fs::read(&path).unwrap())
            .records
            .iter()
            .map(|r| {
                (
                    r["run"].as_str().unwrap().to_owned(),
                    r["label"].as_str().unwrap().to_owned(),
                    r["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Event::of)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(light, expected);
        assert_eq!(light[0].2.len(), 3);
        assert_eq!(light[2].0, "R1");
        assert_eq!(light[2].1, "iter-3");
        assert_eq!(light[2].2, vec![Event::Message("outer".into())]);

        // A line laid out otherwise (a field after `events`, spacing) takes the full parse;
        // a torn one is skipped.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":1,\"run\":\"R1\",\"seq\":9,\"type\":\"agent.event\",\"label\":\"iter-3\",\"events\":[],\"later\":1}\n");
        text.push_str("{\"v\": 1, \"run\": \"R1\", \"type\": \"agent.event\", \"label\": \"iter-3\", \"events\": []}\n");
        text.push_str("{\"v\":1,\"run\":\"R1\",\"seq\":10,\"type\":\"agent.event\",\"label\":\"iter-3\",\"events\":[{\"type\":\"comm");
        std::fs::write(&path, text).unwrap();
        let (light, full, skipped) = streamed(&path);
        assert_eq!((light.len(), full, skipped), (3, 2, 1));
    }

    /// Found by `fuzz::journal_reader` (#7): a whole record in place of an `agent.event`
    /// record's run id made the light read take the nested record's header as its own.
    #[test]
    fn a_header_nested_before_the_records_own_takes_the_full_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let text = concat!(
            r#"{"v":1,"ts":"2026-11-30T17:00:50.591931159Z","run":"20261130T170050.585Z-aa8e","seq":2,"type":"iteration.start","iter":1,"label":"iter-1","task":"T2","agent":"cmd:./agents/agent","reason":"next","backlog":{"todo":2,"doing":0,"blocked":0,"done":1,"project_done":false}}"#,
            "\n",
            r#"{"v":1,"ts":"2026-11-30T17:00:50.602437646Z","run":{"v":1,"ts":"2026-11-30T17:00:50.602437646Z","run":"20261130T170050.585Z-aa8e","seq":7,"type":"agent.event","iter":1,"label":"iter-1","stream":"stdout","at_ms":6,"raw":"forgot the report","events":[{"type":"message","text":"forgot the report"}]},"seq":7,"type":"agent.event","iter":1,"label":"iter-1","stream":"stdout","at_ms":6,"raw":"forgot the report","events":[{"type":"message","text":"forgot the report"}]}"#,
            "\n",
        );
        std::fs::write(&path, text).unwrap();
        let (light, full, skipped) = streamed(&path);
        assert_eq!((light.len(), full, skipped), (0, 2, 0));
        let streamed = iterations_in(&path).unwrap();
        let parsed = iterations(&parse_lines(text.as_bytes()).records);
        assert_eq!(streamed[0].last_action, None);
        assert_eq!(streamed[0].last_action, parsed[0].last_action);
    }

    #[test]
    fn torn_and_corrupt_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(
            &path,
            "{\"seq\":1}\nnot json\n[1]\n\n{\"seq\":2}\n{\"seq\":3,\"ty",
        )
        .unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.skipped, 3);
        assert_eq!(read.records[1]["seq"], 2);
        assert_eq!(
            super::read(&dir.path().join("missing.jsonl"))
                .unwrap()
                .records
                .len(),
            0
        );
    }

    #[test]
    fn the_tail_holds_the_last_iterations_and_the_first_record() {
        use std::fmt::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut text = String::from("{\"type\":\"run.start\",\"seq\":0}\n");
        let filler = "x".repeat(2000);
        for i in 1..=3000 {
            let _ = write!(
                text,
                "{{\"type\":\"iteration.start\",\"seq\":{i}}}\n{{\"type\":\"agent.event\",\"raw\":\"{filler}\"}}\n"
            );
        }
        std::fs::write(&path, &text).unwrap();
        let (tail, first) = read_tail(&path, 6).unwrap();
        assert_eq!(first.unwrap()["type"], "run.start");
        let starts: Vec<u64> = tail
            .records
            .iter()
            .filter(|r| r["type"] == "iteration.start")
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert!(starts.len() >= 6 && starts.len() < 3000, "{}", starts.len());
        assert_eq!(*starts.last().unwrap(), 3000);
        assert_eq!(tail.skipped, 0);
        // A short file is read whole.
        let (whole, _) = read_tail(&path, 100_000).unwrap();
        assert_eq!(whole.records.len(), 6001);
    }

    #[test]
    fn iterations_fold_their_records() {
        let rec = |kind: &str, label: &str, ts: &str, extra: Value| {
            let mut r = json!({"run": "R", "type": kind, "label": label, "iter": 1, "ts": ts});
            r.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            r
        };
        let records = vec![
            rec("run.start", "run", "2026-11-30T10:00:00Z", json!({})),
            rec(
                "iteration.start",
                "iter-1",
                "2026-11-30T10:00:01Z",
                json!({"task": "T1", "agent": "codex", "reason": "next"}),
            ),
            rec(
                "agent.event",
                "iter-1",
                "2026-11-30T10:00:02Z",
                json!({"events": [{"type": "command", "cmd": "cargo test", "exit_code": 101}, {"type": "message", "text": "hi"}]}),
            ),
            rec(
                "agent.exit",
                "iter-1",
                "2026-11-30T10:00:03Z",
                json!({"duration_ms": 1500, "class": {"class": "ok"}, "usage": {"input": 10, "cached": 2, "output": 3, "cost_usd": 0.5}}),
            ),
            rec(
                "git",
                "iter-1",
                "2026-11-30T10:00:04Z",
                json!({"phase": "commit", "commit": "abc123"}),
            ),
            rec(
                "iteration.end",
                "iter-1",
                "2026-11-30T10:00:05.5Z",
                json!({"task": "T1", "outcome": "done", "changed": ["a.rs"]}),
            ),
            rec(
                "iteration.start",
                "iter-2",
                "2026-11-30T10:00:06Z",
                json!({"task": "T2", "agent": "claude", "reason": "next"}),
            ),
        ];
        let its = iterations(&records);
        assert_eq!(its.len(), 2);
        let one = &its[0];
        assert_eq!((one.task.as_str(), one.outcome.as_str()), ("T1", "done"));
        assert_eq!(one.duration_ms, Some(4500));
        assert_eq!(one.commands[0].command, "cargo test");
        assert_eq!(one.commands[0].exit_code, Some(101));
        assert_eq!(one.commands.len(), 1);
        assert_eq!(
            one.tokens,
            Tokens {
                input: 10,
                cached: 2,
                output: 3
            }
        );
        assert_eq!(one.cost_usd, Some(0.5));
        assert_eq!(one.commits, ["abc123"]);
        assert_eq!(one.changed, ["a.rs"]);
        assert_eq!(one.class.as_deref(), Some("ok"));
        assert_eq!(its[1].outcome, "unfinished");
    }
}
