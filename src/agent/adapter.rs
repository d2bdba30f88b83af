//! Adapters: the exact command line for an agent spec and a role (DESIGN §6, CONTRACTS §3–7).
//!
//! The worker may edit the workspace and run commands; every other role (reviewer, bootstrap,
//! repair) only reads, in the CLI's read-only mode where it has one. Safe by default: no
//! `--dangerously-*`, `bypassPermissions` or `--yolo` unless the user's config says
//! `sandbox = "none"`, and even then only for the worker. The prompt goes on stdin, then stdin
//! is closed, so it never shows in `ps` and no CLI waits on an open pipe. The README's
//! "Agents" table documents the same mapping; keep them in step.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::parse::StreamFormat;
use crate::agent::spec::{Adapter, AgentSpec, Effort};

/// What an agent is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Works on one task: edits files, runs commands.
    Worker,
    /// Reads the project and the run, and reports; must not change the working tree.
    Reviewer,
    /// Reads the project's docs and reports the first tasks.
    Bootstrap,
    /// Reads an invalid backlog and its errors, and reports a corrected document.
    Repair,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Reviewer => "reviewer",
            Self::Bootstrap => "bootstrap",
            Self::Repair => "repair",
        }
    }

    /// Whether the role may change the working tree.
    pub fn writes(self) -> bool {
        self == Self::Worker
    }
}

/// How much the worker is fenced in (config `sandbox`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sandbox {
    /// Each CLI's own safe mode: codex's workspace-write sandbox, claude's explicit tool
    /// allow-list, gemini's auto-edit approvals, opencode's and pi's permission settings.
    #[default]
    Default,
    /// The user runs Looper inside their own sandbox (a container, a VM) and wants the
    /// worker unrestricted: the CLIs' bypass flags.
    None,
}

/// Everything needed to start one agent run, minus limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of Looper's own environment.
    pub env: Vec<(OsString, OsString)>,
    /// The prompt, written to stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// How to read its stdout.
    pub format: StreamFormat,
    /// Whether the program reads its prompt from stdin before it does anything else, and
    /// stops without doing anything when stdin ends empty (codex, claude, opencode, pi and
    /// the demo agent, checked at their pinned versions): then it can be spawned before its
    /// task is marked `doing` and given its prompt after. Not gemini, whose `-p " "` is a
    /// prompt of its own that an empty stdin does not stop; not a `cmd:` program, which may
    /// ignore its stdin.
    pub prompt_first: bool,
    /// Parts of the spec this CLI can't honour, for the journal (e.g. gemini has no effort
    /// flag).
    pub notes: Vec<String>,
}

impl Invocation {
    /// The command line as one string, for the journal and error messages. Arguments with
    /// spaces or quotes are single-quoted.
    pub fn display(&self) -> String {
        let mut out = quote(&self.program.to_string_lossy());
        for arg in &self.args {
            out.push(' ');
            out.push_str(&quote(&arg.to_string_lossy()));
        }
        out
    }

    /// A supervisor spec for this invocation in `cwd`, with the supervisor's default limits.
    #[cfg(target_os = "linux")]
    pub fn supervise_spec(&self, cwd: &Path) -> crate::agent::supervise::Spec {
        let mut spec = crate::agent::supervise::Spec::new(&self.program, cwd);
        spec.args.clone_from(&self.args);
        spec.env.clone_from(&self.env);
        spec.stdin = Some(self.stdin.clone());
        spec
    }
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What to build an invocation from.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub spec: &'a AgentSpec,
    pub role: Role,
    pub sandbox: Sandbox,
    pub prompt: &'a str,
    /// The project root: the agent's working directory.
    pub cwd: &'a Path,
    /// The CLI's executable; `None` looks the adapter's name up on `PATH`.
    pub program: Option<&'a Path>,
}

/// Builds the exact command for a spec and role.
pub fn invocation(req: &Request<'_>) -> Invocation {
    let mut inv = Invocation {
        program: req
            .program
            .map_or_else(|| PathBuf::from(req.spec.adapter.name()), Path::to_path_buf),
        args: Vec::new(),
        env: vec![("LOOPER_ROLE".into(), req.role.as_str().into())],
        stdin: req.prompt.as_bytes().to_vec(),
        format: StreamFormat::Cmd,
        prompt_first: false,
        notes: Vec::new(),
    };
    let args = match &req.spec.adapter {
        Adapter::Codex => codex(req, &mut inv),
        Adapter::Claude => claude(req, &mut inv),
        Adapter::Gemini => gemini(req, &mut inv),
        Adapter::Opencode => opencode(req, &mut inv),
        Adapter::Pi => pi(req, &mut inv),
        Adapter::Demo => demo(req, &mut inv),
        Adapter::Cmd(program) => cmd(req, program, &mut inv),
    };
    inv.args = args.into_iter().map(OsString::from).collect();
    inv
}

/// The worker outside any sandbox of the CLI's: only with `sandbox = "none"`.
fn unrestricted(req: &Request<'_>) -> bool {
    req.role.writes() && req.sandbox == Sandbox::None
}

fn codex(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    let unrestricted = unrestricted(req);
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Codex;
    inv.prompt_first = true;
    args.extend(["exec", "--json", "--skip-git-repo-check", "--ephemeral"].map(Into::into));
    if let Some(model) = model {
        args.extend(["-m".into(), model.into()]);
    }
    if let Some(effort) = effort {
        args.extend(["-c".into(), format!("model_reasoning_effort=\"{effort}\"")]);
    }
    if unrestricted {
        args.push("--dangerously-bypass-approvals-and-sandbox".into());
    } else {
        let mode = if req.role.writes() {
            "workspace-write"
        } else {
            "read-only"
        };
        args.extend(["--sandbox".into(), mode.into()]);
    }
    args.extend(["-C".into(), req.cwd.to_string_lossy().into_owned()]);
    // `-`: read the prompt from stdin.
    args.push("-".into());
    args
}

fn claude(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    let unrestricted = unrestricted(req);
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Claude;
    inv.prompt_first = true;
    args.extend(
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--no-session-persistence",
        ]
        .map(Into::into),
    );
    if let Some(model) = model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(effort) = effort {
        // claude's scale starts at low.
        let effort = effort.max(Effort::Low);
        args.extend(["--effort".into(), effort.to_string()]);
    }
    // The list flags take several values, so always use the `=` form (CONTRACTS §2.10).
    if unrestricted {
        args.extend(["--permission-mode".into(), "bypassPermissions".into()]);
        if nix::unistd::geteuid().is_root() {
            inv.env.push(("IS_SANDBOX".into(), "1".into()));
        }
    } else if req.role.writes() {
        args.extend([
            "--permission-mode".into(),
            "dontAsk".into(),
            format!("--allowedTools={CLAUDE_WORKER_TOOLS}"),
        ]);
    } else {
        args.extend([
            "--permission-mode".into(),
            "dontAsk".into(),
            "--tools=Read,Bash".into(),
            format!("--allowedTools={CLAUDE_READER_TOOLS}"),
            "--disallowedTools=Edit,Write,NotebookEdit".into(),
        ]);
    }
    args
}

fn gemini(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    let unrestricted = unrestricted(req);
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Gemini;
    args.extend(["--output-format".into(), "stream-json".into()]);
    if let Some(model) = model {
        args.extend(["-m".into(), model.into()]);
    }
    if let Some(effort) = effort {
        inv.notes.push(format!(
            "gemini has no reasoning-effort flag; `@{effort}` is ignored (set thinking in gemini's settings.json)"
        ));
    }
    let mode = if unrestricted {
        "yolo"
    } else if req.role.writes() {
        "auto_edit"
    } else {
        "plan"
    };
    args.extend(["--approval-mode".into(), mode.into(), "--skip-trust".into()]);
    if req.role.writes() && !unrestricted {
        args.push(format!("--allowed-tools={GEMINI_WORKER_TOOLS}"));
    }
    // gemini appends `-p` to what it reads from stdin; a space keeps the prompt whole.
    args.extend(["-p".into(), " ".into()]);
    args
}

fn opencode(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    let unrestricted = unrestricted(req);
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Opencode;
    inv.prompt_first = true;
    args.extend(["run", "--format", "json"].map(Into::into));
    if let Some(model) = model {
        args.extend(["-m".into(), model.into()]);
    }
    if let Some(effort) = effort {
        args.extend(["--variant".into(), effort.to_string()]);
    }
    if unrestricted {
        args.push("--auto".into());
    }
    args.extend(["--dir".into(), req.cwd.to_string_lossy().into_owned()]);
    let permission = if unrestricted {
        r#"{"bash":"allow","edit":"allow","webfetch":"allow"}"#
    } else if req.role.writes() {
        r#"{"bash":"allow","edit":"allow","webfetch":"deny"}"#
    } else {
        r#"{"bash":{"*":"deny","git diff*":"allow","git log*":"allow","git show*":"allow","git status*":"allow"},"edit":"deny","webfetch":"deny"}"#
    };
    inv.env.push((
        "OPENCODE_CONFIG_CONTENT".into(),
        format!(r#"{{"permission":{permission}}}"#).into(),
    ));
    args
}

fn pi(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Pi;
    inv.prompt_first = true;
    args.extend(["-p", "--mode", "json", "--no-session"].map(Into::into));
    if let Some(model) = model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(effort) = effort {
        // pi's scale tops out at xhigh.
        let effort = effort.min(Effort::Xhigh);
        args.extend(["--thinking".into(), effort.to_string()]);
    }
    let tools = if req.role.writes() {
        "read,bash,edit,write"
    } else {
        "read,grep,find,ls"
    };
    args.extend(["--tools".into(), tools.into()]);
    args
}

fn cmd(req: &Request<'_>, program: &str, inv: &mut Invocation) -> Vec<String> {
    let model = req.spec.model.as_deref();
    let effort = req.spec.effort;
    let mut args: Vec<String> = Vec::new();
    inv.format = StreamFormat::Cmd;
    let (program, rest) = cmd_program(program, req.cwd);
    inv.program = req.program.map_or(program, Path::to_path_buf);
    args.extend(rest);
    if model.is_some() || effort.is_some() {
        inv.notes
            .push("cmd agents get no model or effort; the spec's are ignored".into());
    }
    args
}

/// The built-in demo agent is this very binary's hidden `demo-agent` command.
fn demo(req: &Request<'_>, inv: &mut Invocation) -> Vec<String> {
    inv.format = StreamFormat::Codex;
    inv.prompt_first = true;
    inv.program = req.program.map_or_else(
        || std::env::current_exe().unwrap_or_else(|_| PathBuf::from("looper")),
        Path::to_path_buf,
    );
    if req.spec.model.is_some() || req.spec.effort.is_some() {
        inv.notes
            .push("the demo agent has no model or effort; the spec's are ignored".into());
    }
    vec!["demo-agent".into()]
}

/// claude worker: everything needed to edit and run commands, nothing that leaves the
/// machine or schedules work for later.
const CLAUDE_WORKER_TOOLS: &str = "Bash,Edit,Write,Read,Glob,Grep,NotebookEdit,TodoWrite,Task,TaskCreate,TaskGet,TaskList,TaskUpdate";
/// claude readers: read files and look at git history, nothing else.
const CLAUDE_READER_TOOLS: &str =
    "Read,Bash(git diff *),Bash(git log *),Bash(git show *),Bash(git status *)";
/// gemini worker: the tools that need approval outside yolo mode.
const GEMINI_WORKER_TOOLS: &str = "run_shell_command,write_file,replace";

/// The program of a `cmd:` spec. A path that exists (relative to the project root) is used
/// whole, spaces and all; otherwise the spec is split on whitespace into a program and its
/// arguments (`cmd:python3 agent.py`).
fn cmd_program(spec: &str, cwd: &Path) -> (PathBuf, Vec<String>) {
    let resolve = |p: &str| {
        let path = Path::new(p);
        if p.contains('/') && path.is_relative() {
            cwd.join(path)
        } else {
            path.to_path_buf()
        }
    };
    if resolve(spec).exists() {
        return (resolve(spec), Vec::new());
    }
    let mut words = spec.split_whitespace();
    let program = words.next().map_or_else(|| resolve(spec), resolve);
    (program, words.map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(spec: &str, role: Role, sandbox: Sandbox) -> Invocation {
        let spec: AgentSpec = spec.parse().unwrap();
        invocation(&Request {
            spec: &spec,
            role,
            sandbox,
            prompt: "do the task",
            cwd: Path::new("/work/proj"),
            program: None,
        })
    }

    fn argv(inv: &Invocation) -> String {
        inv.display()
    }

    const UNSAFE: [&str; 5] = [
        "--dangerously",
        "bypassPermissions",
        "--yolo",
        "yolo",
        "--auto",
    ];

    #[test]
    fn codex_worker_and_reviewer() {
        let worker = build("codex:gpt-5.5@high", Role::Worker, Sandbox::Default);
        assert_eq!(
            argv(&worker),
            r#"codex exec --json --skip-git-repo-check --ephemeral -m gpt-5.5 -c 'model_reasoning_effort="high"' --sandbox workspace-write -C /work/proj -"#
        );
        assert_eq!(worker.stdin, b"do the task");
        assert_eq!(worker.format, StreamFormat::Codex);
        let reviewer = build("codex", Role::Reviewer, Sandbox::None);
        assert_eq!(
            argv(&reviewer),
            "codex exec --json --skip-git-repo-check --ephemeral --sandbox read-only -C /work/proj -"
        );
        let free = build("codex", Role::Worker, Sandbox::None);
        assert!(argv(&free).contains("--dangerously-bypass-approvals-and-sandbox"));
        assert!(!argv(&free).contains("--sandbox"));
    }

    #[test]
    fn claude_worker_and_reviewer() {
        let worker = build("claude:opus@minimal", Role::Worker, Sandbox::Default);
        assert_eq!(
            argv(&worker),
            format!(
                "claude -p --output-format stream-json --verbose --no-session-persistence --model opus --effort low --permission-mode dontAsk --allowedTools={CLAUDE_WORKER_TOOLS}"
            )
        );
        let reviewer = build("claude", Role::Reviewer, Sandbox::None);
        let line = argv(&reviewer);
        assert!(
            line.contains("--permission-mode dontAsk --tools=Read,Bash"),
            "{line}"
        );
        assert!(
            line.contains("--disallowedTools=Edit,Write,NotebookEdit"),
            "{line}"
        );
        let free = build("claude", Role::Worker, Sandbox::None);
        assert!(argv(&free).contains("--permission-mode bypassPermissions"));
        let is_sandbox = free.env.iter().any(|(k, _)| k == "IS_SANDBOX");
        assert_eq!(is_sandbox, nix::unistd::geteuid().is_root());
    }

    #[test]
    fn gemini_notes_the_effort_it_cannot_set() {
        let worker = build("gemini:gemini-2.5-pro@high", Role::Worker, Sandbox::Default);
        assert_eq!(
            argv(&worker),
            format!(
                "gemini --output-format stream-json -m gemini-2.5-pro --approval-mode auto_edit --skip-trust --allowed-tools={GEMINI_WORKER_TOOLS} -p ' '"
            )
        );
        assert_eq!(worker.notes.len(), 1);
        assert!(worker.notes[0].contains("@high"));
        assert!(
            argv(&build("gemini", Role::Reviewer, Sandbox::None)).contains("--approval-mode plan")
        );
        assert!(
            argv(&build("gemini", Role::Worker, Sandbox::None)).contains("--approval-mode yolo")
        );
    }

    #[test]
    fn opencode_sets_permissions_through_config_content() {
        let worker = build(
            "opencode:mock/mock-model@high",
            Role::Worker,
            Sandbox::Default,
        );
        assert_eq!(
            argv(&worker),
            "opencode run --format json -m mock/mock-model --variant high --dir /work/proj"
        );
        let config = |inv: &Invocation| {
            let (_, v) = inv
                .env
                .iter()
                .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&v.to_string_lossy()).unwrap()
        };
        assert_eq!(config(&worker)["permission"]["edit"], "allow");
        let reviewer = build("opencode", Role::Reviewer, Sandbox::None);
        assert_eq!(config(&reviewer)["permission"]["edit"], "deny");
        assert_eq!(config(&reviewer)["permission"]["bash"]["*"], "deny");
    }

    #[test]
    fn pi_tools_follow_the_role() {
        let worker = build("pi:mock/mock-model@max", Role::Worker, Sandbox::Default);
        assert_eq!(
            argv(&worker),
            "pi -p --mode json --no-session --model mock/mock-model --thinking xhigh --tools read,bash,edit,write"
        );
        assert!(
            argv(&build("pi", Role::Repair, Sandbox::None)).ends_with("--tools read,grep,find,ls")
        );
    }

    #[test]
    fn no_role_is_unsafe_by_default_and_readers_never_are() {
        for spec in ["codex", "claude", "gemini", "opencode", "pi"] {
            for role in [Role::Worker, Role::Reviewer, Role::Bootstrap, Role::Repair] {
                let line = argv(&build(spec, role, Sandbox::Default));
                for flag in UNSAFE {
                    assert!(!line.contains(flag), "{spec} {role:?}: {line}");
                }
                if role != Role::Worker {
                    let line = argv(&build(spec, role, Sandbox::None));
                    for flag in UNSAFE {
                        assert!(!line.contains(flag), "{spec} {role:?} none: {line}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_prompt_goes_on_stdin_never_in_argv() {
        for spec in ["codex", "claude", "gemini", "opencode", "pi", "cmd:./agent"] {
            let inv = build(spec, Role::Worker, Sandbox::Default);
            assert_eq!(inv.stdin, b"do the task", "{spec}");
            assert!(!argv(&inv).contains("do the task"), "{spec}");
            assert!(inv.env.contains(&("LOOPER_ROLE".into(), "worker".into())));
        }
    }

    /// Only a program that stops on an empty stdin is spawned before its task is marked.
    #[test]
    fn only_clis_that_need_their_prompt_read_it_first() {
        for (spec, first) in [
            ("codex", true),
            ("claude", true),
            ("opencode", true),
            ("pi", true),
            ("demo", true),
            ("gemini", false),
            ("cmd:./agent", false),
        ] {
            let inv = build(spec, Role::Worker, Sandbox::Default);
            assert_eq!(inv.prompt_first, first, "{spec}");
        }
    }

    #[test]
    fn cmd_resolves_relative_paths_and_splits_arguments() {
        let inv = build("cmd:./agent.sh", Role::Worker, Sandbox::Default);
        assert_eq!(inv.program, Path::new("/work/proj/./agent.sh"));
        assert!(inv.args.is_empty());
        assert_eq!(inv.format, StreamFormat::Cmd);
        let inv = build("cmd:python3 -u agent.py", Role::Worker, Sandbox::Default);
        assert_eq!(inv.program, Path::new("python3"));
        assert_eq!(inv.args, ["-u", "agent.py"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("my agent"), "").unwrap();
        let spec: AgentSpec = "cmd:./my agent".parse().unwrap();
        let inv = invocation(&Request {
            spec: &spec,
            role: Role::Worker,
            sandbox: Sandbox::Default,
            prompt: "",
            cwd: dir.path(),
            program: None,
        });
        assert_eq!(inv.program, dir.path().join("./my agent"));
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let mut inv = build("cmd:x", Role::Worker, Sandbox::Default);
        inv.args = vec!["a b".into(), "it's".into(), String::new().into()];
        assert_eq!(inv.display(), r"x 'a b' 'it'\''s' ''");
    }
}
