//! Configuration (DESIGN §2, §6; STYLE §2.2): built-in defaults < `$LOOPER_HOME/config.toml` <
//! the project's `looper.toml` (or `.looper/looper.toml`) < `LOOPER_*` environment < flags.
//!
//! Each file is read into an all-`Option` [`Layer`] (unknown keys are errors that name the file
//! and key), the layers are merged in order, and [`Config::resolve`] checks the result (agent
//! specs parsed, durations positive) before any work starts. Code past this module sees only
//! the resolved [`Config`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::agent::{AgentSpec, Sandbox};
use crate::error::UsageError;

/// How Looper treats the worker's uncommitted changes (`[git] commit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitCommit {
    /// Looper commits accepted work with `Looper-*` trailers.
    #[default]
    Looper,
    /// The agent commits; Looper only records `HEAD`.
    Agent,
    /// No commits.
    Off,
}

/// One config file, or the environment, or the flags: every key optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    #[serde(default)]
    pub roles: RolesLayer,
    #[serde(default, rename = "loop")]
    pub looping: LoopLayer,
    #[serde(default)]
    pub verify: VerifyLayer,
    #[serde(default)]
    pub git: GitLayer,
    #[serde(default)]
    pub timeouts: TimeoutsLayer,
    #[serde(default)]
    pub hooks: HooksLayer,
    /// `"default"` or `"none"` (the worker runs without the CLIs' sandboxes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
    /// Named agent profiles: `[agents.glm] spec = "claude:glm-4.7", env = {...}`.
    #[serde(default)]
    pub agents: BTreeMap<String, ProfileLayer>,
    /// US dollars per million tokens, for agents whose CLI reports tokens but no cost:
    /// `[prices."codex:gpt-5.4"] input = 1.25, cached = 0.125, output = 10.0`.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

/// The built-in defaults, as the lowest layer (what `looper config` shows as `default`).
const DEFAULTS: &str = r#"
sandbox = "default"

[roles]
worker = "codex"
reviewer = ["codex"]

[loop]
max_iterations = 50
retry_limit = 3
review_retries = 2
delay = 0
escalate_after = 2

[verify]
commands = []
timeout = 600

[git]
commit = "looper"

[hooks]
timeout = 60

[timeouts]
worker = 3600
reviewer = 1800
idle = 600
"#;

/// The environment variables configuration reads (Looper's and the original looper's).
const ENV_VARS: [&str; 24] = [
    "LOOPER_WORKER",
    "LOOPER_REVIEWER",
    "LOOPER_BOOTSTRAP",
    "LOOPER_REPAIR",
    "LOOPER_MAX_ITERATIONS",
    "MAX_ITERATIONS",
    "LOOP_DELAY_SECONDS",
    "LOOPER_VERIFY_COMMAND",
    "LOOPER_INTERLEAVE",
    "LOOPER_ITER_SCHEDULE",
    "LOOPER_ITER_ODD_AGENT",
    "LOOPER_ITER_EVEN_AGENT",
    "LOOPER_ITER_RR_AGENTS",
    "LOOPER_REVIEW_AGENT",
    "LOOPER_REPAIR_AGENT",
    "LOOPER_ALL_AGENT",
    "CODEX_MODEL",
    "CODEX_REASONING_EFFORT",
    "CODEX_BIN",
    "CODEX_SMART_MODEL",
    "CODEX_SMART_REASONING_EFFORT",
    "CLAUDE_MODEL",
    "CLAUDE_BIN",
    "LOOPER_HOOK",
];

/// One effective setting and where its value comes from (`looper config`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Setting {
    /// The key as written in looper.toml, dotted: `loop.max_iterations`.
    pub key: String,
    pub value: serde_json::Value,
    /// `default`, a config file's path, `env VAR`, or `default (the worker)`.
    pub source: String,
}

/// The leaves of a layer as `(dotted key, value)`; a literal value in a profile's `env` is
/// shown as `<redacted>` (a `${VAR}` reference is shown as written).
fn flatten(layer: &Layer) -> Vec<(String, serde_json::Value)> {
    fn walk(prefix: &str, value: serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let k = if k.contains(['.', ':', ' ', '/']) {
                        format!("\"{k}\"")
                    } else {
                        k
                    };
                    let key = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            leaf => {
                let secret = prefix.starts_with("agents.")
                    && prefix.split('.').nth(2) == Some("env")
                    && leaf.as_str().is_some_and(|v| !v.contains("${"));
                let leaf = if secret {
                    serde_json::json!("<redacted>")
                } else {
                    leaf
                };
                out.push((prefix.to_owned(), leaf));
            }
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        serde_json::to_value(layer).unwrap_or_default(),
        &mut out,
    );
    out
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    /// Cached input tokens (default: the input price).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached: Option<f64>,
    pub output: f64,
}

/// The `[prices]` table: estimates the cost of agent steps whose CLI gave only tokens.
#[derive(Debug, Clone, Default)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
    /// The merged `[prices]` of the config files for the project at `root` (readers need
    /// nothing else of the config).
    pub fn load(home: &Path, root: &Path) -> anyhow::Result<Prices> {
        let mut prices = BTreeMap::new();
        for path in Config::files(home, root) {
            if let Some(layer) = Layer::read(&path)? {
                prices.extend(layer.prices);
            }
        }
        Ok(Prices(prices))
    }

    /// The price for an agent spec: by `adapter:model` (effort dropped), by the model alone,
    /// then by the adapter.
    pub fn of(&self, spec: &str) -> Option<Price> {
        let base = spec.split('@').next().unwrap_or(spec);
        let model = base.split_once(':').map(|(_, m)| m);
        let adapter = base.split(':').next().unwrap_or(base);
        [Some(base), model, Some(adapter)]
            .into_iter()
            .flatten()
            .find_map(|k| self.0.get(k).copied())
    }

    /// Estimated US dollars for `input` tokens (of which `cached`) and `output` tokens.
    pub fn estimate(&self, spec: &str, input: u64, cached: u64, output: u64) -> Option<f64> {
        let p = self.of(spec)?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts are far below 2^52"
        )]
        let (fresh, cached, output) = (
            input.saturating_sub(cached) as f64,
            cached.min(input) as f64,
            output as f64,
        );
        Some((fresh * p.input + cached * p.cached.unwrap_or(p.input) + output * p.output) / 1e6)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolesLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<String>,
    /// Workers taken in turn: `"odd-even"` (`odd`, then `even`), or a list of specs
    /// (round-robin; `"claude,claude,codex"` as one string works too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<OneOrMany>,
    /// The odd iterations' worker under `schedule = "odd-even"` (default: `worker`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub odd: Option<String>,
    /// The even iterations' worker under `schedule = "odd-even"` (default: `claude`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub even: Option<String>,
    /// The worker for a task that failed `loop.escalate_after` attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate: Option<String>,
    /// Agents to use, in order, when the chosen one is rate-limited, refused its
    /// credentials, or its CLI is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<OneOrMany>,
}

/// A reviewer list may be written as one spec.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }

    /// The specs, with a single string split at commas (`"claude,claude,codex"`).
    fn into_specs(self) -> Vec<String> {
        self.into_vec()
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoopLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_limit: Option<u32>,
    /// Extra review passes after an inconclusive one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_retries: Option<u32>,
    /// Stop (exit 3) once the agents used this many tokens (input + output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Stop (exit 3) once the agents cost this many US dollars (as the CLIs report it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Stop (exit 3) after this long, e.g. "90m" or "2h 30m".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// Seconds to wait between iterations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// Failed attempts on a task after which its iterations use `roles.escalate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Seconds a gate may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GitLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<GitCommit>,
}

/// Programs run on loop events: each is an argv (`["./notify.sh", "--quiet"]`), never a shell
/// string; the event comes as JSON on stdin and as `LOOPER_*` variables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HooksLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_iteration: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_done: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_blocked: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_end: Option<Vec<String>>,
    /// Seconds a hook may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

impl HooksLayer {
    /// The configured hooks, by event name.
    fn by_event(&self) -> Vec<(&'static str, Vec<String>)> {
        [
            ("after_iteration", &self.after_iteration),
            ("on_done", &self.on_done),
            ("on_blocked", &self.on_blocked),
            ("on_end", &self.on_end),
        ]
        .into_iter()
        .filter_map(|(name, argv)| {
            argv.as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| (name, a.clone()))
        })
        .collect()
    }
}

/// Seconds, per role.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<u64>,
    /// Seconds without output before an agent is stopped (all roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// The CLI's executable, when it is not on `PATH` under the adapter's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<PathBuf>,
    /// Set for the agent process; `${VAR}` expands from Looper's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Layer {
    /// The built-in defaults.
    pub fn defaults() -> Layer {
        toml::from_str(DEFAULTS).expect("the built-in defaults parse")
    }

    /// Reads one config file; `None` when it doesn't exist.
    pub fn read(path: &Path) -> anyhow::Result<Option<Layer>> {
        let text = match fs_err::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            UsageError::new(format!(
                "invalid config {}: {}",
                path.display(),
                with_suggestion(&e.to_string())
            ))
            .into()
        })
    }

    /// Puts `over` on top of `self`.
    fn merge(&mut self, over: Layer) {
        fn set<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        set(&mut self.roles.worker, over.roles.worker);
        set(&mut self.roles.reviewer, over.roles.reviewer);
        set(&mut self.roles.bootstrap, over.roles.bootstrap);
        set(&mut self.roles.repair, over.roles.repair);
        set(&mut self.roles.schedule, over.roles.schedule);
        set(&mut self.roles.odd, over.roles.odd);
        set(&mut self.roles.even, over.roles.even);
        set(&mut self.roles.escalate, over.roles.escalate);
        set(&mut self.roles.fallback, over.roles.fallback);
        set(
            &mut self.looping.escalate_after,
            over.looping.escalate_after,
        );
        set(
            &mut self.looping.max_iterations,
            over.looping.max_iterations,
        );
        set(&mut self.looping.retry_limit, over.looping.retry_limit);
        set(
            &mut self.looping.review_retries,
            over.looping.review_retries,
        );
        set(&mut self.looping.max_tokens, over.looping.max_tokens);
        set(&mut self.looping.max_cost, over.looping.max_cost);
        set(&mut self.looping.max_duration, over.looping.max_duration);
        set(&mut self.looping.delay, over.looping.delay);
        set(&mut self.verify.commands, over.verify.commands);
        set(&mut self.verify.timeout, over.verify.timeout);
        set(&mut self.git.commit, over.git.commit);
        set(&mut self.timeouts.worker, over.timeouts.worker);
        set(&mut self.timeouts.reviewer, over.timeouts.reviewer);
        set(&mut self.timeouts.idle, over.timeouts.idle);
        set(&mut self.sandbox, over.sandbox);
        set(&mut self.hooks.after_iteration, over.hooks.after_iteration);
        set(&mut self.hooks.on_done, over.hooks.on_done);
        set(&mut self.hooks.on_blocked, over.hooks.on_blocked);
        set(&mut self.hooks.on_end, over.hooks.on_end);
        set(&mut self.hooks.timeout, over.hooks.timeout);
        self.prices.extend(over.prices);
        for (name, profile) in over.agents {
            let slot = self.agents.entry(name).or_default();
            set(&mut slot.spec, profile.spec);
            set(&mut slot.program, profile.program);
            slot.env.extend(profile.env);
        }
    }

    /// `LOOPER_WORKER`, `LOOPER_REVIEWER` (comma-separated), `LOOPER_BOOTSTRAP`,
    /// `LOOPER_REPAIR`, `LOOPER_MAX_ITERATIONS`, and the
    /// original looper's `MAX_ITERATIONS`.
    fn from_env(get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Layer> {
        let mut layer = Layer::default();
        // The original looper's variables first; Looper's own win over them.
        crate::compat::Legacy::from_env(get).apply(&mut layer, get)?;
        if let Some(v) = get("LOOP_DELAY_SECONDS") {
            layer.looping.delay = Some(v.trim().parse().map_err(|_| {
                UsageError::new(format!(
                    "LOOP_DELAY_SECONDS={v:?} is not a whole number of seconds"
                ))
            })?);
        }
        if let Some(cmd) = get("LOOPER_VERIFY_COMMAND").filter(|c| !c.trim().is_empty()) {
            layer.verify.commands = Some(vec![cmd]);
        }
        let set = |slot: &mut Option<String>, var: &str| {
            if let Some(v) = get(var) {
                *slot = Some(v);
            }
        };
        set(&mut layer.roles.worker, "LOOPER_WORKER");
        set(&mut layer.roles.bootstrap, "LOOPER_BOOTSTRAP");
        set(&mut layer.roles.repair, "LOOPER_REPAIR");
        if let Some(v) = get("LOOPER_REVIEWER") {
            layer.roles.reviewer = Some(OneOrMany::Many(
                v.split(',').map(|s| s.trim().to_owned()).collect(),
            ));
        }
        for var in ["MAX_ITERATIONS", "LOOPER_MAX_ITERATIONS"] {
            if let Some(v) = get(var) {
                let n = v.trim().parse().map_err(|_| {
                    UsageError::new(format!("{var}={v:?} is not a whole number of iterations"))
                })?;
                layer.looping.max_iterations = Some(n);
            }
        }
        Ok(layer)
    }
}

/// A toml error about an unknown key or value, with the closest allowed one:
/// ``unknown field `wroker`, expected one of `worker`, ...`` gains ``; did you mean `worker`?``.
fn with_suggestion(message: &str) -> String {
    let found = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|lead| {
            let rest = &message[message.find(lead)? + lead.len()..];
            let (name, rest) = rest.split_once('`')?;
            let list = rest.split_once("expected one of ")?.1.lines().next()?;
            let allowed: Vec<String> = list
                .split(", ")
                .map(|a| a.trim().trim_matches('`').to_owned())
                .collect();
            crate::backlog::validate::did_you_mean(name, &allowed).map(str::to_owned)
        });
    match found {
        Some(best) => format!("{}\ndid you mean `{best}`?", message.trim_end()),
        None => message.to_owned(),
    }
}

/// An agent as a role will run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// The name it was given: a profile name or the spec itself.
    pub name: String,
    pub spec: AgentSpec,
    pub program: Option<PathBuf>,
    /// Expanded environment; values are secrets until proven otherwise.
    pub env: Vec<(String, String)>,
}

/// How workers take turns (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// One worker for every iteration.
    Single,
    /// `odd` on odd iterations, `even` on even ones.
    OddEven,
    /// A list taken in turn.
    RoundRobin,
}

impl ScheduleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::OddEven => "odd-even",
            Self::RoundRobin => "round-robin",
        }
    }
}

/// The workers and the order they take task iterations in.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// Never empty.
    pub agents: Vec<Agent>,
}

impl Schedule {
    /// The worker of the `n`th task iteration (1-based), and why.
    pub fn nth(&self, n: u32) -> (&Agent, String) {
        let len = u32::try_from(self.agents.len()).unwrap_or(u32::MAX).max(1);
        let slot = (n.max(1) - 1) % len;
        let agent = &self.agents[slot as usize];
        let why = match self.kind {
            ScheduleKind::Single => "the worker".to_owned(),
            ScheduleKind::OddEven if slot == 0 => format!("odd-even: task iteration {n} is odd"),
            ScheduleKind::OddEven => format!("odd-even: task iteration {n} is even"),
            ScheduleKind::RoundRobin => {
                format!(
                    "round-robin: task iteration {n} takes turn {} of {len}",
                    slot + 1
                )
            }
        };
        (agent, why)
    }
}

/// The resolved configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The first worker of the schedule (bootstrap and repair default to it).
    pub worker: Agent,
    pub schedule: Schedule,
    pub escalate: Option<Agent>,
    pub escalate_after: u32,
    pub fallback: Vec<Agent>,
    /// Named profiles, for a task's `agent` pin.
    pub profiles: BTreeMap<String, ProfileLayer>,
    pub reviewers: Vec<Agent>,
    pub bootstrap: Agent,
    pub repair: Agent,
    pub max_iterations: u32,
    pub retry_limit: u32,
    pub review_retries: u32,
    pub max_tokens: Option<u64>,
    pub max_cost: Option<f64>,
    pub max_duration: Option<Duration>,
    pub delay: Duration,
    pub verify: Vec<String>,
    pub verify_timeout: Duration,
    pub git_commit: GitCommit,
    pub sandbox: Sandbox,
    pub worker_timeout: Duration,
    pub reviewer_timeout: Duration,
    pub idle_timeout: Duration,
    /// `[hooks]`, by event name (`after_iteration`, `on_done`, `on_blocked`, `on_end`).
    pub hooks: Vec<(&'static str, Vec<String>)>,
    /// The original looper's `LOOPER_HOOK`: a program called after each iteration with
    /// `<task_id> <status> <last_message_path> <label>`.
    pub legacy_hook: Option<String>,
    pub hook_timeout: Duration,
    /// The files read, in order, for `run.start`.
    pub sources: Vec<PathBuf>,
}

impl Config {
    /// Reads and merges every layer for the project at `root`, then checks the result.
    /// `flags` is the command line's layer.
    /// The config files that may apply, in layering order: `$LOOPER_HOME/config.toml`, then
    /// the project's `looper.toml` (or `.looper/looper.toml`).
    fn files(home: &Path, root: &Path) -> Vec<PathBuf> {
        let project_file = [root.join("looper.toml"), root.join(".looper/looper.toml")]
            .into_iter()
            .find(|p| p.exists());
        std::iter::once(home.join("config.toml"))
            .chain(project_file)
            .collect()
    }

    /// Every agent the config names, with its role: the schedule's workers, the escalation,
    /// the fallbacks, the reviewers, bootstrap and repair; each name once.
    pub fn agents(&self) -> Vec<(&'static str, &Agent)> {
        let all = self
            .schedule
            .agents
            .iter()
            .map(|a| ("worker", a))
            .chain(self.escalate.iter().map(|a| ("escalation", a)))
            .chain(self.fallback.iter().map(|a| ("fallback", a)))
            .chain(self.reviewers.iter().map(|a| ("reviewer", a)))
            .chain([("bootstrap", &self.bootstrap), ("repair", &self.repair)]);
        let mut seen = Vec::new();
        all.filter(|(_, a)| {
            let new = !seen.contains(&a.name);
            if new {
                seen.push(a.name.clone());
            }
            new
        })
        .collect()
    }

    /// The agent a task's `agent` field names: a profile or a spec.
    pub fn agent_named(&self, name: &str) -> anyhow::Result<Agent> {
        resolve_agent(name, &self.profiles, &|k| std::env::var(k).ok())
    }

    /// Every effective setting with its source, for `looper config`; fails as a run would
    /// on a bad config.
    pub fn explain(home: &Path, root: &Path) -> anyhow::Result<Vec<Setting>> {
        Self::resolve(home, root, Layer::default())?;
        let get = |k: &str| std::env::var(k).ok();
        let mut map: BTreeMap<String, (serde_json::Value, String)> = BTreeMap::new();
        let mut put = |layer: &Layer, source: &dyn Fn(&str) -> String| {
            for (key, value) in flatten(layer) {
                let src = source(&key);
                map.insert(key, (value, src));
            }
        };
        put(&Layer::defaults(), &|_| "default".to_owned());
        for path in Self::files(home, root) {
            if let Some(layer) = Layer::read(&path)? {
                put(&layer, &|_| path.display().to_string());
            }
        }
        // Which variable set each key: each one alone, then all together.
        let mut by_var: BTreeMap<String, &str> = BTreeMap::new();
        for var in ENV_VARS {
            if get(var).is_some() {
                let only = Layer::from_env(&|k| if k == var { get(k) } else { None })?;
                for (key, _) in flatten(&only) {
                    by_var.entry(key).or_insert(var);
                }
            }
        }
        put(&Layer::from_env(&get)?, &|key| {
            by_var
                .get(key)
                .map_or_else(|| "environment".to_owned(), |v| format!("env {v}"))
        });
        // The original's hook program is a setting of its own.
        if let Some(hook) = get("LOOPER_HOOK").filter(|h| !h.trim().is_empty()) {
            map.insert(
                "hooks.looper_hook".to_owned(),
                (serde_json::json!(hook), "env LOOPER_HOOK".to_owned()),
            );
        }
        let worker = map.get("roles.worker").map(|(v, _)| v.clone());
        for role in ["roles.bootstrap", "roles.repair"] {
            if let Some(w) = &worker {
                map.entry(role.to_owned())
                    .or_insert_with(|| (w.clone(), "default (the worker)".to_owned()));
            }
        }
        Ok(map
            .into_iter()
            .map(|(key, (value, source))| Setting { key, value, source })
            .collect())
    }

    pub fn resolve(home: &Path, root: &Path, flags: Layer) -> anyhow::Result<Config> {
        Self::resolve_with(home, root, flags, &|k| std::env::var(k).ok())
    }

    fn resolve_with(
        home: &Path,
        root: &Path,
        flags: Layer,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let origins = Origins::read(home, root, flags, get)?;
        let merged = origins.merged();
        let sources: Vec<PathBuf> = origins.files.iter().map(|(p, _)| p.clone()).collect();
        let profiles = merged.agents.clone();
        let agent = |key: &str, name: &str| {
            resolve_agent(name, &profiles, get).with_context(|| {
                let profile = if profiles.contains_key(name) {
                    let spec = origins.of(&format!("agents.{name}.spec"));
                    format!(": in [agents.{name}] spec{spec}")
                } else {
                    String::new()
                };
                format!("in {key}{}{profile}", origins.of(key))
            })
        };
        let worker_name = merged.roles.worker.as_deref().unwrap_or("codex");
        let schedule = resolve_schedule(&merged.roles, worker_name, &agent, &origins)?;
        let worker = schedule.agents[0].clone();
        let escalate = merged
            .roles
            .escalate
            .as_deref()
            .map(|name| agent("roles.escalate", name))
            .transpose()?;
        let fallback = merged
            .roles
            .fallback
            .clone()
            .map(OneOrMany::into_specs)
            .unwrap_or_default()
            .iter()
            .map(|name| agent("roles.fallback", name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let reviewers = merged
            .roles
            .reviewer
            .map_or_else(|| vec!["codex".to_owned()], OneOrMany::into_vec)
            .iter()
            .map(|name| agent("roles.reviewer", name))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if reviewers.is_empty() {
            return Err(UsageError::new(format!(
                "roles.reviewer is empty{}: name at least one reviewer, e.g. reviewer = [\"codex\"]",
                origins.of("roles.reviewer")
            ))
            .into());
        }
        let bootstrap = match &merged.roles.bootstrap {
            Some(name) => agent("roles.bootstrap", name)?,
            None => worker.clone(),
        };
        let repair = match &merged.roles.repair {
            Some(name) => agent("roles.repair", name)?,
            None => worker.clone(),
        };
        let seconds = |key: &str, value: Option<u64>, default: u64| {
            let s = value.unwrap_or(default);
            if s == 0 {
                Err(UsageError::new(format!(
                    "{key} = 0{}: give a number of seconds above 0",
                    origins.of(key)
                )))
            } else {
                Ok(Duration::from_secs(s))
            }
        };
        let max_duration = check_budgets(&merged.looping, &origins)?;
        Ok(Config {
            worker,
            schedule,
            escalate,
            escalate_after: merged.looping.escalate_after.unwrap_or(2).max(1),
            fallback,
            profiles,
            reviewers,
            bootstrap,
            repair,
            max_iterations: merged.looping.max_iterations.unwrap_or(50),
            retry_limit: merged.looping.retry_limit.unwrap_or(3).max(1),
            review_retries: merged.looping.review_retries.unwrap_or(2),
            max_tokens: merged.looping.max_tokens,
            max_cost: merged.looping.max_cost,
            max_duration,
            delay: Duration::from_secs(merged.looping.delay.unwrap_or(0)),
            verify: merged.verify.commands.unwrap_or_default(),
            verify_timeout: seconds("verify.timeout", merged.verify.timeout, 600)?,
            git_commit: merged.git.commit.unwrap_or_default(),
            sandbox: merged.sandbox.unwrap_or_default(),
            worker_timeout: seconds("timeouts.worker", merged.timeouts.worker, 3600)?,
            reviewer_timeout: seconds("timeouts.reviewer", merged.timeouts.reviewer, 1800)?,
            idle_timeout: seconds("timeouts.idle", merged.timeouts.idle, 600)?,
            hooks: merged.hooks.by_event(),
            legacy_hook: get("LOOPER_HOOK").filter(|h| !h.trim().is_empty()),
            hook_timeout: seconds("hooks.timeout", merged.hooks.timeout, 60)?,
            sources,
        })
    }
}

/// The layers a config was merged from, to say where a bad value was set.
struct Origins<'a> {
    files: Vec<(PathBuf, Layer)>,
    env: Layer,
    flags: Layer,
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Origins<'a> {
    /// Reads the config files and the environment under `flags`.
    fn read(
        home: &Path,
        root: &Path,
        flags: Layer,
        get: &'a dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut files = Vec::new();
        for path in Config::files(home, root) {
            if let Some(layer) = Layer::read(&path)? {
                files.push((path, layer));
            }
        }
        Ok(Origins {
            files,
            env: Layer::from_env(get)?,
            flags,
            get,
        })
    }

    /// The defaults with every layer on top, in order.
    fn merged(&self) -> Layer {
        let mut merged = Layer::defaults();
        for (_, layer) in &self.files {
            merged.merge(layer.clone());
        }
        merged.merge(self.env.clone());
        merged.merge(self.flags.clone());
        merged
    }

    /// Where the effective value of `key` (dotted, as `looper config` shows it) comes from:
    /// ` (set by --flag)`, ` (set by VAR)`, ` (set in PATH)`, or nothing for a default.
    fn of(&self, key: &str) -> String {
        let value = |layer: &Layer| flatten(layer).into_iter().find(|(k, _)| k == key);
        let has = |layer: &Layer| value(layer).is_some();
        if has(&self.flags) {
            let name = key.rsplit('.').next().unwrap_or(key);
            let flag = match name {
                "bootstrap" | "repair" | "odd" | "even" => format!("{name}-agent"),
                "commands" => "verify".to_owned(),
                _ => name.replace('_', "-"),
            };
            return format!(" (set by --{flag})");
        }
        if has(&self.env) {
            // The variables without which the value would differ (the original's may act
            // together: LOOPER_ITER_SCHEDULE with LOOPER_ITER_ODD_AGENT).
            let full = value(&self.env);
            let vars: Vec<&str> = ENV_VARS
                .into_iter()
                .filter(|var| (self.get)(var).is_some())
                .filter(|var| {
                    Layer::from_env(&|k| if k == *var { None } else { (self.get)(k) })
                        .map_or(true, |l| value(&l) != full)
                })
                .collect();
            return if vars.is_empty() {
                " (set by the environment)".to_owned()
            } else {
                format!(" (set by {})", vars.join(" and "))
            };
        }
        self.files
            .iter()
            .rev()
            .find(|(_, l)| has(l))
            .map_or_else(String::new, |(p, _)| format!(" (set in {})", p.display()))
    }
}

/// `loop.max_duration` read, `loop.max_cost` checked.
fn check_budgets(looping: &LoopLayer, origins: &Origins<'_>) -> anyhow::Result<Option<Duration>> {
    let max_duration = looping
            .max_duration
            .as_deref()
            .map(|text| {
                text.parse::<jiff::SignedDuration>()
                    .ok()
                    .and_then(|d| Duration::try_from(d).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        UsageError::new(format!(
                            "loop.max_duration = {text:?}{} is not a duration: write e.g. \"90m\" or \"2h 30m\"",
                            origins.of("loop.max_duration")
                        ))
                    })
            })
            .transpose()?;
    if let Some(cost) = looping.max_cost
        && !(cost.is_finite() && cost > 0.0)
    {
        return Err(UsageError::new(format!(
            "loop.max_cost = {cost}{}: give a number of US dollars above 0",
            origins.of("loop.max_cost")
        ))
        .into());
    }
    Ok(max_duration)
}

/// `[roles] schedule` (with `odd` and `even`), or the single `worker`.
fn resolve_schedule(
    roles: &RolesLayer,
    worker: &str,
    agent: &dyn Fn(&str, &str) -> anyhow::Result<Agent>,
    origins: &Origins<'_>,
) -> anyhow::Result<Schedule> {
    // Each name with the key that gave it, so an error names the right setting.
    let (kind, names) = match roles.schedule.clone() {
        None => (
            ScheduleKind::Single,
            vec![("roles.worker", worker.to_owned())],
        ),
        Some(OneOrMany::One(text)) if text.trim() == "odd-even" => (
            ScheduleKind::OddEven,
            vec![
                roles
                    .odd
                    .clone()
                    .map_or_else(|| ("roles.worker", worker.to_owned()), |o| ("roles.odd", o)),
                (
                    "roles.even",
                    roles.even.clone().unwrap_or_else(|| "claude".to_owned()),
                ),
            ],
        ),
        Some(list) => (
            ScheduleKind::RoundRobin,
            list.into_specs()
                .into_iter()
                .map(|s| ("roles.schedule", s))
                .collect(),
        ),
    };
    if names.is_empty() {
        return Err(UsageError::new(format!(
            "roles.schedule is empty{}: write \"odd-even\" or a list of agents, e.g. [\"claude\", \"codex\"]",
            origins.of("roles.schedule")
        ))
        .into());
    }
    let agents = names
        .iter()
        .map(|(key, name)| agent(key, name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Schedule { kind, agents })
}

/// A profile name or a spec, with the profile's program and expanded environment.
pub fn resolve_agent(
    name: &str,
    profiles: &BTreeMap<String, ProfileLayer>,
    get: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Agent> {
    let (text, profile) = match profiles.get(name) {
        Some(p) => (
            p.spec.clone().ok_or_else(|| {
                UsageError::new(format!(
                    "agent profile `{name}` has no spec: add spec = \"adapter[:model][@effort]\" under [agents.{name}]"
                ))
            })?,
            Some(p),
        ),
        None => (name.to_owned(), None),
    };
    let spec: AgentSpec = text
        .parse()
        .map_err(|e| UsageError::new(format!("{e}")))
        .with_context(|| format!("in agent `{name}`"))?;
    let mut env = Vec::new();
    if let Some(profile) = profile {
        for (key, value) in &profile.env {
            env.push((
                key.clone(),
                expand(value, get).with_context(|| format!("in [agents.{name}] env.{key}"))?,
            ));
        }
    }
    Ok(Agent {
        name: name.to_owned(),
        spec,
        program: profile.and_then(|p| p.program.clone()),
        env,
    })
}

/// Expands `${VAR}` from Looper's environment; an unset variable is an error naming it.
fn expand(value: &str, get: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| UsageError::new(format!("unclosed `${{` in {value:?}")))?;
        let var = &after[..end];
        let val = get(var).ok_or_else(|| {
            UsageError::new(format!("${{{var}}} is not set in Looper's environment"))
        })?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Adapter;

    fn resolve(
        home_toml: &str,
        project_toml: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let root = dir.path().join("proj");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        if !home_toml.is_empty() {
            std::fs::write(home.join("config.toml"), home_toml).unwrap();
        }
        if !project_toml.is_empty() {
            std::fs::write(root.join("looper.toml"), project_toml).unwrap();
        }
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::resolve_with(&home, &root, Layer::default(), &|k| env.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = resolve("", "", &[]).unwrap();
        assert_eq!(c.worker.spec.adapter, Adapter::Codex);
        assert_eq!(c.reviewers.len(), 1);
        assert_eq!(c.max_iterations, 50);
        assert_eq!(c.retry_limit, 3);
        assert_eq!(c.git_commit, GitCommit::Looper);
        assert_eq!(c.sandbox, Sandbox::Default);
        assert!(c.verify.is_empty());
    }

    #[test]
    fn layers_override_in_order() {
        let c = resolve(
            "[roles]\nworker = \"claude\"\n[loop]\nmax_iterations = 7\nretry_limit = 5\n",
            "[roles]\nworker = \"pi:x@high\"\nreviewer = \"gemini\"\n[verify]\ncommands = [\"true\"]\n",
            &[("LOOPER_MAX_ITERATIONS", "9")],
        )
        .unwrap();
        assert_eq!(c.worker.spec.to_string(), "pi:x@high");
        assert_eq!(c.reviewers[0].spec.adapter, Adapter::Gemini);
        assert_eq!(c.max_iterations, 9);
        assert_eq!(c.retry_limit, 5);
        assert_eq!(c.verify, ["true"]);
        assert_eq!(c.sources.len(), 2);
    }

    #[test]
    fn profiles_carry_spec_program_and_expanded_env() {
        let c = resolve(
            "",
            "[roles]\nworker = \"glm\"\n[agents.glm]\nspec = \"claude:glm-4.7\"\nprogram = \"/opt/claude\"\nenv = { ANTHROPIC_AUTH_TOKEN = \"${ZAI_API_KEY}\", X = \"a${B}c\" }\n",
            &[("ZAI_API_KEY", "sekrit"), ("B", "b")],
        )
        .unwrap();
        assert_eq!(c.worker.name, "glm");
        assert_eq!(c.worker.spec.model.as_deref(), Some("glm-4.7"));
        assert_eq!(c.worker.program.as_deref(), Some(Path::new("/opt/claude")));
        assert!(
            c.worker
                .env
                .contains(&("ANTHROPIC_AUTH_TOKEN".into(), "sekrit".into()))
        );
        assert!(c.worker.env.contains(&("X".into(), "abc".into())));
    }

    #[test]
    fn bad_config_names_the_file_and_the_fix() {
        let err = resolve("", "[roles]\nwroker = \"codex\"\n", &[]).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("looper.toml") && text.contains("wroker"),
            "{text}"
        );
        assert_eq!(crate::error::exit_code(&err), 2);

        let err = resolve("", "[roles]\nworker = \"gpt\"\n", &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown agent adapter `gpt`"),
            "{err:#}"
        );

        // A profile nobody uses may name variables that aren't set; the worker's may not.
        let profile = "[agents.x]\nspec = \"codex\"\nenv = { K = \"${NOPE}\" }\n";
        resolve("", profile, &[]).unwrap();
        let err = resolve("", &format!("[roles]\nworker = \"x\"\n{profile}"), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("${NOPE} is not set"), "{err:#}");

        let err = resolve("", "[timeouts]\nworker = 0\n", &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("timeouts.worker = 0"),
            "{err:#}"
        );

        let err = resolve("", "[loop]\nmax_duration = \"soon\"\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("is not a duration"), "{err:#}");
        let c = resolve(
            "",
            "[loop]\nmax_duration = \"1h 30m\"\nmax_cost = 2.5\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.max_duration, Some(Duration::from_secs(5400)));
        let err = resolve("", "[loop]\nmax_cost = -1.0\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("max_cost = -1"), "{err:#}");

        let err = resolve("", "", &[("MAX_ITERATIONS", "lots")]).unwrap_err();
        assert!(format!("{err:#}").contains("MAX_ITERATIONS"), "{err:#}");
    }
}
