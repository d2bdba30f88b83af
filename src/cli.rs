//! The command line, as clap types. Nothing past [`crate::command`] sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes: 0 ok (project done) · 1 error · 2 usage or config error · 3 cap reached with work
left · 4 review inconclusive · 5 stopped by request · 130 interrupted.

Environment: LOOPER_HOME (default ~/.looper) holds journals and state; NO_COLOR turns colour off.";

/// Looper: a strict, auditable loop that drives AI coding agents through a JSON backlog.
#[derive(Debug, Parser)]
#[command(name = "looper", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Without a command, `looper` is `looper run`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Project directory (default: the nearest directory upwards with a backlog or looper.toml).
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Backlog file (default: to-do.json, or .looper/todo.json when only that exists).
    #[arg(long, global = true, value_name = "PATH", env = "LOOPER_BACKLOG")]
    pub backlog: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work through the backlog, one task per iteration, until a review declares the project
    /// done (the default command).
    #[command(after_help = "\
Examples:
  looper run
  looper run --worker claude:opus --reviewer codex:gpt-5.5@xhigh
  looper run --worker cmd:./my-agent.sh --max-iterations 5

Configuration comes from looper.toml (see `looper init`), $LOOPER_HOME/config.toml,
LOOPER_WORKER / LOOPER_REVIEWER / LOOPER_MAX_ITERATIONS, and these flags, in rising order.

Migrating from the original looper.sh: its forms work unchanged as aliases: `looper
[--interleave] [--iter-schedule codex|claude|odd-even|round-robin] [--odd-agent A]
[--even-agent A] [--rr-agents A,B] [--review-agent A] [--repair-agent A] [--all A] [--smart]
[--claude-bin P] [--claude-model M] [to-do.json]`, `looper --ls STATUS`, `looper --tail
[--follow]`, `looper --doctor`, and its variables (MAX_ITERATIONS, LOOPER_ITER_SCHEDULE,
LOOPER_ITER_ODD_AGENT, LOOPER_ITER_EVEN_AGENT, LOOPER_ITER_RR_AGENTS, LOOPER_REVIEW_AGENT,
LOOPER_REPAIR_AGENT, LOOPER_INTERLEAVE, LOOPER_ALL_AGENT, CODEX_MODEL, CODEX_SMART_MODEL,
CODEX_REASONING_EFFORT, CODEX_SMART_REASONING_EFFORT, CODEX_BIN, CLAUDE_MODEL, CLAUDE_BIN,
LOOP_DELAY_SECONDS, LOOPER_VERIFY_COMMAND, LOOPER_HOOK, LOOPER_BASE_DIR, TODO_FILE).")]
    Run(Box<RunArgs>),
    /// Create the backlog, its schema and a commented looper.toml in the project.
    #[command(after_help = "Example:\n  looper init --name my-app")]
    Init {
        /// Replace an existing backlog (its content is kept in the journal).
        #[arg(long)]
        force: bool,
        /// Project name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Ask the run in this project to stop after its current iteration (it exits 5).
    Stop,
    /// Check the backlog against the schema and Looper's rules; list every problem.
    Validate {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the backlog in canonical form (2-space JSON, trailing newline).
    Fmt {
        /// Only check: exit 1 if the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// List tasks, optionally only those with one status.
    ///
    /// Tasks are listed as Looper holds them: one marked `done` by hand in the file is listed
    /// with the status Looper keeps, marked `*`, until Looper's next write refuses the mark
    /// (`looper done ID --reason TEXT` completes a task).
    #[command(
        after_help = "Examples:\n  looper ls\n  looper ls todo\n  looper ls --json | jq '.[].id'"
    )]
    Ls {
        /// Only tasks with this status.
        #[arg(value_enum)]
        status: Option<StatusArg>,
        /// Print the tasks as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a task (the id is the next free one in the backlog's style: T13, TASK-008, ...).
    #[command(after_help = "Example:\n  looper add \"Parse the config file\" -p 1 --depends-on T3")]
    Add {
        /// The task's title.
        title: String,
        /// Priority, 1 (highest) to 5.
        #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
        priority: u8,
        /// A longer description.
        #[arg(short, long)]
        description: Option<String>,
        /// Ids of tasks that must be done first (repeatable).
        #[arg(long = "depends-on", value_name = "ID")]
        depends_on: Vec<String>,
        /// Tags (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Print the new task as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the backlog with a jq program (validated before it is written).
    #[command(after_help = "\
Examples:
  looper update '.tasks |= map(if .id == \"T3\" then .priority = 1 else . end)'
  looper update --arg id T3 --arg t 'New title' '(.tasks[] | select(.id == $id) | .title) = $t'

A program that marks a task done is refused: use `looper done ID --reason TEXT`.")]
    Update {
        /// The jq program; its input and output is the whole backlog.
        program: String,
        /// Bind $NAME to the string VALUE (repeatable).
        #[arg(long = "arg", num_args = 2, value_names = ["NAME", "VALUE"])]
        arg: Vec<String>,
        /// Bind $NAME to the JSON value JSON (repeatable).
        #[arg(long = "argjson", num_args = 2, value_names = ["NAME", "JSON"])]
        argjson: Vec<String>,
    },
    /// Mark a task done by hand, with the reason recorded as a note.
    Done {
        /// The task's id.
        id: String,
        /// Why it is done (recorded in the task's notes and the journal).
        #[arg(long, required = true)]
        reason: String,
    },
    /// Print the JSON Schema (draft 2020-12) of the backlog, or of a command's `--json`
    /// output.
    #[command(
        after_help = "Every schema is also in the repository's schemas/ directory.\n\nExamples:\n  looper schema > to-do.schema.json\n  looper schema stats"
    )]
    Schema {
        /// Whose schema: the backlog (default) or a command's `--json` output.
        #[arg(value_enum, default_value = "backlog")]
        what: SchemaArg,
    },
    /// One screen on the project: backlog progress, the run going on now (its iteration,
    /// agent, time, tokens, last action) or how the last one ended, and recent outcomes.
    #[command(
        after_help = "Examples:\n  looper status\n  watch -n 5 looper status\n  looper status --json"
    )]
    Status {
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The journal of the latest run as readable lines (iterations, agent messages, commands
    /// with exit codes, gates, backlog updates); `-f` follows it, and the runs after it.
    #[command(
        after_help = "Examples:\n  looper tail\n  looper tail -f\n  looper tail --run 20261130T143215.294Z-5f90 --raw"
    )]
    Tail {
        /// Keep printing new records as the run writes them, moving on to the next run.
        #[arg(short, long)]
        follow: bool,
        /// The run to show (its id, as `looper log` shows it; default: the latest).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// The agents' raw output lines instead of their normalized events.
        #[arg(long)]
        raw: bool,
        /// The journal's records themselves, one JSON object per line (JSONL).
        #[arg(long, conflicts_with = "raw")]
        json: bool,
    },
    /// The loop in figures: iterations and review passes, agent commands per iteration and
    /// per review pass, iteration time (median, p90), iterations per task, and success,
    /// tokens and cost per agent spec and per task (cost "unknown" when the CLI gives none).
    #[command(after_help = "Examples:\n  looper stats\n  looper stats --all-projects --json")]
    Stats {
        /// Every project under `LOOPER_HOME`, not just this one.
        #[arg(long)]
        all_projects: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-render a recorded run as `tail -f` showed it live: instantly, or at N times its
    /// real speed with `--speed N` (pauses capped at 2 s).
    #[command(
        after_help = "Examples:\n  looper replay 20261130T143215.294Z-5f90\n  looper replay 20261130T143215.294Z-5f90 --speed 10"
    )]
    Replay {
        /// The run's id, as `looper log` shows it.
        run: String,
        /// Replay at this many times real speed (default: all at once).
        #[arg(long, value_name = "N")]
        speed: Option<f64>,
        /// The agents' raw output lines instead of their normalized events.
        #[arg(long)]
        raw: bool,
        /// The journal's records themselves, one JSON object per line (JSONL).
        #[arg(long, conflicts_with = "raw")]
        json: bool,
    },
    /// One line per iteration across every run: when, run, step, task, agent, outcome,
    /// duration, tokens, cost and commits.
    #[command(
        after_help = "Examples:\n  looper log\n  looper log --task T3\n  looper log --since 2h\n  looper log --json | jq '.[] | select(.outcome != \"done\")'"
    )]
    Log {
        /// Only the iterations of this task.
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// Only iterations started since a time (`2026-11-30`, `2026-11-30T14:00:00Z`, UTC) or
        /// within an age (`2h`, `3d`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Print the iterations as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one iteration (`iter-3` or `3`, in the latest run that has it) or
    /// every iteration of a task: prompt, agent command line, commands it ran, files changed,
    /// commits, gates, report, backlog updates, tokens, time.
    #[command(
        after_help = "Examples:\n  looper show 3\n  looper show iter-3 --run 20261130T143215.294Z-5f90\n  looper show T7 --json"
    )]
    Show {
        /// An iteration (`iter-3`, `3`) or a task id.
        target: String,
        /// The run to look in (its id, as `looper log` shows it).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Print the iterations as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write one self-contained HTML page (inline CSS and SVG, no script, no network) with a
    /// burndown of open tasks, a timeline of iterations by agent, tokens and cost per model,
    /// and every iteration with its details.
    #[command(
        after_help = "The page goes to the project's Looper directory unless -o names a file.\n\nExamples:\n  looper report\n  looper report -o report.html && chromium report.html"
    )]
    Report {
        /// Where to write the page (default: report.html in the project's directory under
        /// `LOOPER_HOME`, outside the work tree the agents change).
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Print what was written (path, size, runs, iterations) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Two runs side by side: how each ended, wall time, tasks done, iterations, attempts,
    /// review passes, agent commands, iteration time, tokens and cost, per agent spec (the A/B
    /// comparison of two worker models on the same backlog).
    #[command(
        after_help = "A run may be named by the start of its id when only one run starts so.\n\nExamples:\n  looper diff 20261130T1432 20261130T1610\n  looper diff A B --json | jq '.b.stats.iterations - .a.stats.iterations'"
    )]
    Diff {
        /// The first run's id (as `looper log` shows it).
        a: String,
        /// The second run's id.
        b: String,
        /// Print both sides as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete old journals: runs beyond the newest N, or not written to for longer than an
    /// age, with their agent output, and the daily command journals older than every run
    /// kept. Never the run going on now. The backlog is snapshotted first, so `looper audit`
    /// still has a start.
    #[command(
        after_help = "Examples:\n  looper clean --keep 20 --dry-run\n  looper clean --older-than 30d"
    )]
    Clean {
        /// Keep the N newest runs.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Delete journals not written to for longer than AGE: 45s, 90m, 12h, 30d, 2w.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print what was deleted as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replay every change the journal records for the backlog, from its first snapshot,
    /// checking each step's sha256, and check the result is the file on disk byte for byte;
    /// list the edits made outside Looper and where a chain breaks (exit 1 when it does).
    #[command(
        after_help = "Examples:\n  looper audit\n  looper audit --json | jq .external_changes"
    )]
    Audit {
        /// Print the audit as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Watch the whole loop work on a small demo project, offline: a built-in demo agent (no
    /// model, no cost) plans, works (one false claim is caught and retried) and reviews; then
    /// `status`, `log`, `stats` and a report.html.
    #[command(after_help = "Examples:\n  looper demo\n  looper demo --dir /tmp/greet")]
    Demo {
        /// Where to create the demo project (must be empty or missing; default: a new
        /// directory under the system's temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
    /// Check what a run needs: the config, each configured agent's CLI (found, its version
    /// against the tested one, credentials), git, the backlog, the journal directory and the
    /// sandbox mode. Exit 1 on a problem, naming the fix.
    Doctor,
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    #[command(
        after_help = "Examples:\n  looper completions bash > ~/.local/share/bash-completion/completions/looper\n  looper completions zsh > \"${fpath[1]}/_looper\"\n  looper completions fish > ~/.config/fish/completions/looper.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print every effective setting and where it comes from: the default, a config file,
    /// an environment variable (Looper's or the original looper's).
    #[command(
        after_help = "Examples:\n  looper config\n  looper config --json | jq '.[] | select(.source != \"default\")'"
    )]
    Config {
        /// Print the settings as a JSON array of {key, value, source}.
        #[arg(long)]
        json: bool,
    },
    /// Install, remove or print the skill that teaches codex and claude Looper's report
    /// and the read-only looper commands they may call.
    #[command(after_help = "\
Examples:
  looper skills install                  # ~/.agents/skills (codex) and ~/.claude/skills (claude)
  looper skills install --agent claude --project
  looper skills uninstall
  looper skills show

Installing again updates the skill in place; a SKILL.md that Looper did not write is never
replaced or removed.")]
    Skills {
        #[command(subcommand)]
        action: SkillsAction,
    },
    /// Print the man page (roff), e.g. `looper man | man -l -`.
    #[command(hide = true)]
    Man,
    /// The built-in demo agent, as the `demo` adapter runs it (prompt on stdin).
    #[command(hide = true)]
    DemoAgent,
}

/// What `looper schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaArg {
    Backlog,
    Status,
    Log,
    Show,
    Stats,
    Diff,
    Audit,
    Clean,
    Report,
    /// A journal record, as `tail --json` and `replay --json` print them.
    Record,
    /// `looper config --json`.
    Config,
}

impl SchemaArg {
    /// Every schema, with the file name it has under `schemas/`.
    pub const ALL: [(SchemaArg, &'static str); 11] = [
        (SchemaArg::Backlog, "to-do.schema.json"),
        (SchemaArg::Status, "status.schema.json"),
        (SchemaArg::Log, "log.schema.json"),
        (SchemaArg::Show, "show.schema.json"),
        (SchemaArg::Stats, "stats.schema.json"),
        (SchemaArg::Diff, "diff.schema.json"),
        (SchemaArg::Audit, "audit.schema.json"),
        (SchemaArg::Clean, "clean.schema.json"),
        (SchemaArg::Report, "report.schema.json"),
        (SchemaArg::Record, "record.schema.json"),
        (SchemaArg::Config, "config.schema.json"),
    ];
}

/// A task status on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Todo,
    Doing,
    Blocked,
    Done,
}

/// Flags of `looper run`; each overrides the same key of the config files.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// What to build, for the bootstrap agent when there is no backlog yet (otherwise it
    /// plans from the project's README, SPEC, DESIGN, ... files).
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Agent spec or profile for task iterations: adapter[:model][@effort] or cmd:PROGRAM.
    #[arg(long, value_name = "SPEC")]
    pub worker: Option<String>,
    /// Agent spec or profile for the review pass (repeat for an ensemble).
    #[arg(long, value_name = "SPEC")]
    pub reviewer: Vec<String>,
    /// Workers taking turns: `odd-even` (see [roles] odd/even) or a list, e.g.
    /// `claude,claude,codex` (round-robin over task iterations).
    #[arg(long, value_name = "odd-even|SPEC,SPEC,...")]
    pub schedule: Option<String>,
    /// The worker for a task after `escalate_after` failed attempts (default 2).
    #[arg(long, value_name = "SPEC")]
    pub escalate: Option<String>,
    /// An agent to use when the chosen one is rate-limited, refused or missing (repeatable,
    /// tried in order).
    #[arg(long, value_name = "SPEC")]
    pub fallback: Vec<String>,
    /// The agent that plans the backlog when there is none (default: the worker).
    #[arg(long, value_name = "SPEC")]
    pub bootstrap_agent: Option<String>,
    /// The agent that repairs an invalid backlog (default: the worker).
    #[arg(long, value_name = "SPEC")]
    pub repair_agent: Option<String>,
    /// Stop after this many iterations (default 50).
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,
    /// Stop once the agents used this many tokens (input + output).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u64>,
    /// Stop once the agents cost this many US dollars (as the CLIs report it).
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Stop after this long, e.g. 90m or "2h 30m".
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Seconds to wait between iterations.
    #[arg(long, value_name = "SECONDS")]
    pub delay: Option<u64>,
    /// Attempts on a task before it stays blocked (default 3).
    #[arg(long, value_name = "N")]
    pub retry_limit: Option<u32>,
    /// A gate run after each iteration (repeatable; replaces [verify] commands).
    #[arg(long = "verify", value_name = "COMMAND")]
    pub verify: Vec<String>,
    /// `none` runs the worker without the agent CLIs' own sandboxes (only inside a container or VM).
    #[arg(long, value_enum, value_name = "MODE")]
    pub sandbox: Option<SandboxArg>,
    /// The original looper's flags (see `--help`'s migration note).
    #[command(flatten)]
    pub legacy: LegacyArgs,
}

/// The original looper.sh's run flags, accepted as aliases and hidden from the help.
#[derive(Debug, Default, Args)]
pub struct LegacyArgs {
    #[arg(long, hide = true)]
    pub interleave: bool,
    #[arg(long, hide = true, value_name = "SCHEDULE")]
    pub iter_schedule: Option<String>,
    #[arg(long, hide = true, value_name = "AGENT")]
    pub odd_agent: Option<String>,
    #[arg(long, hide = true, value_name = "AGENT")]
    pub even_agent: Option<String>,
    #[arg(long, hide = true, value_name = "LIST")]
    pub rr_agents: Option<String>,
    #[arg(long, hide = true, value_name = "AGENT")]
    pub review_agent: Option<String>,
    #[arg(long, hide = true, value_name = "AGENT")]
    pub all: Option<String>,
    #[arg(short = 's', long, hide = true)]
    pub smart: bool,
    #[arg(long, hide = true, value_name = "PATH")]
    pub claude_bin: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "MODEL")]
    pub claude_model: Option<String>,
    /// The backlog, as the original's positional `to-do.json`.
    #[arg(hide = true, value_name = "TODO_FILE")]
    pub todo_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SandboxArg {
    Default,
    None,
}

/// `looper skills` subcommands.
#[derive(Debug, Subcommand)]
pub enum SkillsAction {
    /// Install the skill (again: update it in place).
    Install(SkillsWhere),
    /// Remove the skill Looper installed.
    Uninstall(SkillsWhere),
    /// Print the skill (SKILL.md).
    Show,
}

/// Where `looper skills` installs or removes the skill.
#[derive(Debug, Args)]
pub struct SkillsWhere {
    /// Only for this agent (repeatable; default: codex and claude).
    #[arg(long, value_enum)]
    pub agent: Vec<SkillAgent>,
    /// In the project (`.agents/skills`, `.claude/skills`) instead of your home directory.
    #[arg(long, conflicts_with = "dir")]
    pub project: bool,
    /// In this skills directory instead (the skill goes to DIR/looper/SKILL.md).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The agents whose skill directories `looper skills` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SkillAgent {
    Codex,
    Claude,
}
