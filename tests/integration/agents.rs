//! The real agent CLIs, at their pinned versions (`scripts/agents.tsv`), run through Looper's
//! adapters and supervisor against the mock model server on 127.0.0.1.
//!
//! `scripts/install-agents` puts the CLIs in a cache directory; `.ci/run` calls it. Locally a
//! missing CLI skips its tests with a message on stderr; under `CI=true` it fails them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use looper::agent::supervise::{self, Class, LineEvent, RunResult, Stream};
use looper::agent::{
    AgentSpec, FailureClass, Invocation, Request, Role, Sandbox, invocation, parse_lines,
};
use serde_json::{Map, Value};

use crate::mock::{Mock, Route, Script, Step};

const PINNED: &str = include_str!("../../scripts/agents.tsv");

/// One installed CLI.
pub(crate) struct Cli {
    name: &'static str,
    pub(crate) exe: PathBuf,
}

impl Cli {
    pub(crate) fn exe(&self) -> &Path {
        &self.exe
    }
}

/// The installed CLI `name`, or `None` (with a message) when it isn't installed and this is
/// not CI.
pub(crate) fn cli(name: &'static str) -> Option<Cli> {
    let (version, bin) = PINNED
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .map_or_else(
            || panic!("{name} is not in scripts/agents.tsv"),
            |f| (f[2], f[3]),
        );
    let dir = std::env::var_os("LOOPER_AGENTS_DIR").map_or_else(
        || {
            let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"),
                PathBuf::from,
            );
            cache.join("looper/agents")
        },
        PathBuf::from,
    );
    let exe = dir.join(format!("{name}-{version}/node_modules/.bin/{bin}"));
    if exe.exists() {
        return Some(Cli { name, exe });
    }
    let msg = format!(
        "{name} {version} is not installed at {}: run scripts/install-agents",
        exe.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI must run the real-CLI tests)"
    );
    eprintln!("SKIPPED: {msg}");
    None
}

/// A workspace and an isolated home for one run of a real CLI against a mock.
pub(crate) struct Sandboxed {
    tmp: tempfile::TempDir,
    pub(crate) mock: Mock,
}

impl Sandboxed {
    pub(crate) fn new(script: Script) -> Self {
        Self::with_mock(Mock::start(script))
    }

    /// The same around a mock already started (e.g. [`Mock::start_routed`]).
    pub(crate) fn with_mock(mock: Mock) -> Self {
        // Not under /tmp: codex refuses to set up its helpers in the system temp dir.
        let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        std::fs::create_dir_all(tmp.path().join("work")).unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        Self { tmp, mock }
    }

    pub(crate) fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    /// The spec and environment that point `cli` at the mock with nothing of the real home
    /// (CONTRACTS §3.6, §4.7, §5.4, §6.4, §7.3), retries off so failures arrive at once.
    pub(crate) fn isolate(&self, cli: &Cli) -> (AgentSpec, Vec<(String, String)>) {
        let home = self.home();
        let url = self.mock.base_url();
        let mut env = vec![("HOME".to_owned(), path(&home))];
        for (var, sub) in [
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_STATE_HOME", ".local/state"),
        ] {
            env.push((var.to_owned(), path(&home.join(sub))));
        }
        let spec = match cli.name {
            "codex" => isolate_codex(&home, &url, &mut env),
            "claude" => isolate_claude(&home, &url, &mut env),
            "gemini" => isolate_gemini(&home, &url, &mut env),
            "opencode" => isolate_opencode(&home, &url, &mut env),
            "pi" => isolate_pi(&home, &url, &mut env),
            other => panic!("no isolation for {other}"),
        };
        (spec.parse().unwrap(), env)
    }

    /// Runs `cli` in `role` through Looper's adapter and supervisor.
    pub(crate) fn run(&self, cli: &Cli, role: Role, prompt: &str) -> AgentRun {
        let (spec, env) = self.isolate(cli);
        let work = self.work();
        let invocation = invocation(&Request {
            spec: &spec,
            role,
            sandbox: Sandbox::Default,
            prompt,
            cwd: &work,
            program: Some(&cli.exe),
        });
        let mut command = invocation.supervise_spec(&work);
        command
            .env
            .extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        command.wall_timeout = Some(Duration::from_secs(120));
        command.idle_timeout = Some(Duration::from_secs(60));
        let mut parser = invocation.format.parser();
        let mut lines = Vec::new();
        let result = supervise::run(&command, parser.as_mut(), &mut |line| lines.push(line))
            .unwrap_or_else(|e| panic!("{}: {e}", invocation.display()));
        assert!(
            result.survivors.is_empty(),
            "processes of {} outlived the run: {:?}",
            cli.name,
            result.survivors
        );
        let report = result
            .outcome
            .final_text
            .as_deref()
            .and_then(looper::agent::report::last_json_object);
        AgentRun {
            invocation,
            result,
            lines,
            report,
        }
    }
}

/// CONTRACTS: point codex at the mock, in `home`.
fn isolate_codex(home: &Path, url: &str, env: &mut Vec<(String, String)>) -> &'static str {
    let codex_home = home.join(".codex");
    write(
        &codex_home.join("config.toml"),
        &format!(
            r#"model_provider = "mock"
# The model when the spec names none (`looper run` with plain `codex`), as a user's config
# would set it; the mock serves the tools codex offers this one.
model = "gpt-5.5"

[model_providers.mock]
name = "Mock LLM"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false
[otel]
metrics_exporter = "none"
[features]
plugins = false
apps = false
"#
        ),
    );
    env.push(("CODEX_HOME".into(), path(&codex_home)));
    env.push(("MOCK_API_KEY".into(), "dummy".into()));
    "codex:gpt-5.5"
}

/// CONTRACTS: point claude at the mock, in `home`.
fn isolate_claude(_home: &Path, url: &str, env: &mut Vec<(String, String)>) -> &'static str {
    for (k, v) in [
        ("ANTHROPIC_BASE_URL", url),
        ("ANTHROPIC_API_KEY", "dummy"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_MAX_RETRIES", "0"),
    ] {
        env.push((k.into(), v.into()));
    }
    "claude:claude-sonnet-4-5"
}

/// CONTRACTS: point gemini at the mock, in `home`.
fn isolate_gemini(home: &Path, url: &str, env: &mut Vec<(String, String)>) -> &'static str {
    write(
        &home.join(".gemini/settings.json"),
        r#"{
  "security": { "auth": { "selectedType": "gemini-api-key" }, "folderTrust": { "enabled": false } },
  "privacy": { "usageStatisticsEnabled": false },
  "telemetry": { "enabled": false },
  "general": { "disableAutoUpdate": true, "disableUpdateNag": true, "maxAttempts": 1 }
}"#,
    );
    env.push(("GOOGLE_GEMINI_BASE_URL".into(), url.to_owned()));
    env.push(("GEMINI_API_KEY".into(), "dummy".into()));
    "gemini:gemini-2.5-pro"
}

/// CONTRACTS: point opencode at the mock, in `home`.
fn isolate_opencode(home: &Path, url: &str, env: &mut Vec<(String, String)>) -> &'static str {
    let config = home.join("opencode.json");
    write(
        &config,
        &format!(
            r#"{{
  "$schema": "https://opencode.ai/config.json",
  "provider": {{
    "mock": {{
      "npm": "@ai-sdk/openai-compatible",
      "name": "Mock LLM",
      "options": {{ "baseURL": "{url}/v1", "apiKey": "dummy" }},
      "models": {{ "mock-model": {{ "name": "Mock Model", "tool_call": true }} }}
    }}
  }},
  "model": "mock/mock-model",
  "small_model": "mock/mock-model",
  "autoupdate": false,
  "share": "disabled"
}}"#
        ),
    );
    env.push(("OPENCODE_CONFIG".into(), path(&config)));
    for var in [
        "OPENCODE_DISABLE_MODELS_FETCH",
        "OPENCODE_DISABLE_AUTOUPDATE",
        "OPENCODE_DISABLE_LSP_DOWNLOAD",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS",
    ] {
        env.push((var.into(), "1".into()));
    }
    "opencode:mock/mock-model"
}

/// CONTRACTS: point pi at the mock, in `home`.
fn isolate_pi(home: &Path, url: &str, env: &mut Vec<(String, String)>) -> &'static str {
    let dir = home.join(".pi/agent");
    write(
        &dir.join("models.json"),
        &format!(
            r#"{{
  "providers": {{
    "mock": {{
      "baseUrl": "{url}/v1",
      "api": "openai-completions",
      "apiKey": "dummy",
      "compat": {{ "supportsDeveloperRole": false, "supportsReasoningEffort": false }},
      "models": [ {{ "id": "mock-model", "reasoning": false }} ]
    }}
  }}
}}"#
        ),
    );
    write(
        &dir.join("settings.json"),
        r#"{"retry": {"enabled": false, "provider": {"maxRetries": 0}}}"#,
    );
    env.push(("PI_CODING_AGENT_DIR".into(), path(&dir)));
    env.push(("PI_OFFLINE".into(), "1".into()));
    env.push(("PI_TELEMETRY".into(), "0".into()));
    "pi:mock/mock-model"
}

/// What one run did.
pub(crate) struct AgentRun {
    pub(crate) invocation: Invocation,
    pub(crate) result: RunResult,
    pub(crate) lines: Vec<LineEvent>,
    pub(crate) report: Option<Map<String, Value>>,
}

impl AgentRun {
    /// Everything the run printed, for assertion messages.
    pub(crate) fn transcript(&self) -> String {
        let mut out = format!(
            "$ {}\nclass {:?}, exit {:?}, {:?}\n",
            self.invocation.display(),
            self.result.class,
            self.result.exit,
            self.result.duration
        );
        for line in &self.lines {
            let tag = match line.stream {
                Stream::Stdout => "out",
                Stream::Stderr => "err",
            };
            let text: String = line.text.chars().take(400).collect();
            let _ = writeln!(out, "{tag} {text}");
        }
        out
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The usage a captured real run reported: the mock reports the same numbers per request.
fn captured_usage(name: &str) -> looper::agent::Usage {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/captures/{name}-e2e.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let format = match name {
        "codex" => looper::agent::StreamFormat::Codex,
        "claude" => looper::agent::StreamFormat::Claude,
        "gemini" => looper::agent::StreamFormat::Gemini,
        "opencode" => looper::agent::StreamFormat::Opencode,
        _ => looper::agent::StreamFormat::Pi,
    };
    parse_lines(format, text.lines()).0.usage
}

const PROMPT: &str = "Create hello.txt, then reply with a JSON summary.";
const HELLO_REPORT: &str =
    r#"{"status": "done", "summary": "created hello.txt", "files_changed": ["hello.txt"]}"#;

/// The worker runs the scripted command, which creates a file, and ends with a report whose
/// usage matches the captured real run.
fn worker_creates_a_file_and_reports(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let sb = Sandboxed::new(Script::default_hello());
    let run = sb.run(&cli, Role::Worker, PROMPT);
    let transcript = run.transcript();
    assert_eq!(run.result.class, Class::Ok, "{transcript}");
    assert_eq!(
        std::fs::read_to_string(sb.work().join("hello.txt"))
            .ok()
            .as_deref(),
        Some("hello-from-mock\n"),
        "{transcript}"
    );
    let report = run
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("no report\n{transcript}"));
    assert_eq!(report["status"], "done", "{transcript}");
    assert_eq!(report["files_changed"], serde_json::json!(["hello.txt"]));
    assert_eq!(
        run.result.outcome.usage,
        captured_usage(name),
        "{transcript}"
    );
    assert!(run.result.survivors.is_empty(), "{transcript}");
    // The prompt reached the model through stdin, whole and unquoted.
    let prompt_seen = sb.mock.requests().iter().any(|r| {
        r.body
            .as_ref()
            .is_some_and(|b| b.to_string().contains(PROMPT))
    });
    assert!(prompt_seen, "the mock never saw the prompt\n{transcript}");
}

/// One routed mock serves two conversations, as in a `looper run`: every request of each run
/// gets the script of the task named in its prompt, so each run creates its own file.
fn prompts_are_routed_to_their_scripts(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let tasks = ["ALPHA-17", "BETA-42"];
    let routes = tasks
        .iter()
        .map(|task| {
            let report = format!(
                r#"{{"status": "done", "summary": "did {task}", "files_changed": ["{task}.out"]}}"#
            );
            let script = Script::new(report).then(Step::Shell(format!("echo {task} > {task}.out")));
            Route::new(format!("Work on task {task}."), script)
        })
        .collect();
    let fallback = Script::new(r#"{"status": "blocked", "summary": "unrouted"}"#)
        .then(Step::Shell("echo lost > unrouted.out".into()));
    let sb = Sandboxed::with_mock(Mock::start_routed(routes, fallback));
    for (i, task) in tasks.iter().enumerate() {
        let before = sb.mock.requests().len();
        let run = sb.run(
            &cli,
            Role::Worker,
            &format!("Work on task {task}. Then reply with a JSON summary."),
        );
        let transcript = run.transcript();
        assert_eq!(run.result.class, Class::Ok, "{transcript}");
        assert_eq!(
            std::fs::read_to_string(sb.work().join(format!("{task}.out")))
                .ok()
                .as_deref(),
            Some(format!("{task}\n").as_str()),
            "{transcript}"
        );
        let report = run
            .report
            .as_ref()
            .unwrap_or_else(|| panic!("no report\n{transcript}"));
        assert_eq!(report["summary"], format!("did {task}"), "{transcript}");
        let routes: Vec<Option<usize>> = sb.mock.requests()[before..]
            .iter()
            .map(|r| r.route)
            .collect();
        assert!(
            routes.len() >= 2 && routes.iter().all(|r| *r == Some(i)),
            "{task}: {routes:?}\n{transcript}"
        );
    }
    assert!(!sb.work().join("unrouted.out").exists());
}

/// A reviewer asked by the model to write a file can't: the CLI's read-only mode stops it.
fn reviewer_cannot_write(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let script =
        Script::new(r#"{"status":"reviewed","summary":"looked","new_tasks":[],"done":true}"#)
            .then(Step::Shell("echo intruder > written.txt".into()))
            .then(Step::WriteFile {
                path: "patched.txt".into(),
                content: "intruder\n".into(),
            });
    let sb = Sandboxed::new(script);
    let run = sb.run(&cli, Role::Reviewer, "Review the project.");
    let transcript = run.transcript();
    assert!(
        sb.mock.requests().len() >= 3,
        "the model's write requests never reached the CLI\n{transcript}"
    );
    assert!(
        !sb.work().join("written.txt").exists() && !sb.work().join("patched.txt").exists(),
        "the reviewer changed the workspace\n{transcript}"
    );
    assert_eq!(
        run.report.as_ref().map(|r| r["status"].clone()),
        Some(Value::from("reviewed")),
        "{transcript}"
    );
}

/// HTTP 429 with `retry-after` from the model API: the run is classified `rate_limited`,
/// whatever way the CLI words it, and no file is written.
fn rate_limit_is_classified(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let script = Script::new(HELLO_REPORT).then(Step::Http {
        status: 429,
        retry_after: Some(1),
        message: "rate limit exceeded for mock-model".into(),
    });
    let sb = Sandboxed::new(script);
    let run = sb.run(&cli, Role::Worker, PROMPT);
    let transcript = run.transcript();
    assert!(run.result.class.is_rate_limited(), "{transcript}");
    assert!(run.report.is_none(), "{transcript}");
    assert!(!sb.work().join("hello.txt").exists(), "{transcript}");
}

/// HTTP 500 from the model API: an API error that is worth retrying later.
fn server_error_is_classified(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let script = Script::new(HELLO_REPORT).then(Step::Http {
        status: 500,
        // opencode always retries a 5xx five times, with a growing backoff unless told.
        retry_after: Some(0),
        message: "mock overloaded".into(),
    });
    let sb = Sandboxed::new(script);
    let run = sb.run(&cli, Role::Worker, PROMPT);
    let transcript = run.transcript();
    assert!(
        matches!(
            run.result.class,
            Class::Stream(FailureClass::Api {
                retryable: true,
                ..
            })
        ),
        "{transcript}"
    );
    assert!(run.report.is_none(), "{transcript}");
}

/// HTTP 401 from the model API: the credentials are refused, which no retry will fix.
fn auth_error_is_classified(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let script = Script::new(HELLO_REPORT).then(Step::Http {
        status: 401,
        retry_after: None,
        message: "invalid api key".into(),
    });
    let sb = Sandboxed::new(script);
    let run = sb.run(&cli, Role::Worker, PROMPT);
    let transcript = run.transcript();
    assert_eq!(
        run.result.class,
        Class::Stream(FailureClass::Auth),
        "{transcript}"
    );
}

/// `cmd:PROGRAM`: any executable is an agent. It gets the prompt on stdin (closed after it),
/// its role in `LOOPER_ROLE`, and its last JSON object on stdout is the report.
#[test]
fn a_cmd_agent_reads_the_prompt_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    write(
        &work.join("my agent.sh"),
        r#"#!/bin/sh
prompt=$(cat)
printf '%s\n' "$prompt" > prompt-seen.txt
echo "working as $LOOPER_ROLE"
echo '{"status": "blocked", "summary": "not this one"}'
echo 'done:'
echo '{"status": "done", "summary": "read the prompt", "files_changed": ["prompt-seen.txt"]}'
"#,
    );
    std::fs::set_permissions(
        work.join("my agent.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let spec: AgentSpec = "cmd:./my agent.sh".parse().unwrap();
    let invocation = invocation(&Request {
        spec: &spec,
        role: Role::Worker,
        sandbox: Sandbox::Default,
        prompt: "Do T1.\nThen report.",
        cwd: work,
        program: None,
    });
    let mut parser = invocation.format.parser();
    let mut lines = Vec::new();
    let result = supervise::run(
        &invocation.supervise_spec(work),
        parser.as_mut(),
        &mut |line| lines.push(line.text),
    )
    .unwrap();
    assert_eq!(result.class, Class::Ok, "{lines:?}");
    assert_eq!(
        std::fs::read_to_string(work.join("prompt-seen.txt")).unwrap(),
        "Do T1.\nThen report.\n"
    );
    assert_eq!(lines[0], "working as worker");
    let report = result
        .outcome
        .final_text
        .as_deref()
        .and_then(looper::agent::report::last_json_object)
        .unwrap();
    assert_eq!(report["status"], "done");
}

/// Looper spawns a CLI that reads its prompt first (`Invocation::prompt_first`) before its
/// task is marked `doing` and writes the prompt after, so a Looper killed in between leaves
/// the CLI's stdin empty: it must then stop without asking the model anything. gemini is not
/// spawned early, and this shows why: its `-p " "` is a prompt of its own, which it sends.
fn an_empty_stdin_asks_the_model_nothing(name: &'static str) {
    let Some(cli) = cli(name) else { return };
    let sb = Sandboxed::new(Script::default_hello());
    let run = sb.run(&cli, Role::Worker, "");
    let transcript = run.transcript();
    let requests = sb.mock.requests();
    let asked = requests
        .iter()
        .any(|r| r.method == "POST" && r.body.is_some());
    assert_eq!(
        asked, !run.invocation.prompt_first,
        "{name}: asked the model {asked}, prompt_first {}\n{transcript}\n{requests:?}",
        run.invocation.prompt_first
    );
    if run.invocation.prompt_first {
        assert!(!sb.work().join("hello.txt").exists(), "{transcript}");
    }
}

macro_rules! per_cli {
    ($($cli:ident),*) => {
        $(
            mod $cli {
                #[test]
                fn worker_creates_a_file_and_reports() {
                    super::worker_creates_a_file_and_reports(stringify!($cli));
                }

                #[test]
                fn prompts_are_routed_to_their_scripts() {
                    super::prompts_are_routed_to_their_scripts(stringify!($cli));
                }

                #[test]
                fn reviewer_cannot_write() {
                    super::reviewer_cannot_write(stringify!($cli));
                }

                #[test]
                fn rate_limit_is_classified() {
                    super::rate_limit_is_classified(stringify!($cli));
                }

                #[test]
                fn auth_error_is_classified() {
                    super::auth_error_is_classified(stringify!($cli));
                }

                #[test]
                fn an_empty_stdin_asks_the_model_nothing() {
                    super::an_empty_stdin_asks_the_model_nothing(stringify!($cli));
                }

                #[test]
                fn server_error_is_classified() {
                    super::server_error_is_classified(stringify!($cli));
                }
            }
        )*
    };
}

per_cli!(codex, claude, gemini, opencode, pi);
