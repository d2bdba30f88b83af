//! `looper doctor`: checks what a run needs before one starts: the config, each configured
//! agent's CLI (found, its version against the versions Looper is tested with, a hint when
//! no credentials are visible), git, the backlog, the journal directory and the sandbox mode.
//! Each problem names its fix; any problem exits 1.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::agent::Adapter;
use crate::config::{Agent, Config, Layer};
use crate::project::Project;

/// The CLIs and versions the end-to-end tests run (`scripts/agents.tsv`).
const TESTED: &str = include_str!("../../scripts/agents.tsv");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Problem,
}

struct Report {
    lines: Vec<(Level, String)>,
}

impl Report {
    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.lines.push((level, text.into()));
    }
}

/// The version Looper is tested with for a named CLI.
fn tested_version(name: &str) -> Option<&'static str> {
    TESTED
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
        .and_then(|cols| cols.get(2).copied())
}

/// The first `N.N.N` in a CLI's `--version` output, within 10 s.
fn version_of(program: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.split('.').count() >= 3 && w.split('.').all(|p| !p.is_empty()))
        .map(str::to_owned)
}

/// Where each CLI finds credentials: environment variables, then files under `HOME`.
fn credentials(adapter: &Adapter) -> (&'static [&'static str], &'static [&'static str]) {
    match adapter {
        Adapter::Codex => (&["OPENAI_API_KEY", "CODEX_API_KEY"], &[".codex/auth.json"]),
        Adapter::Claude => (
            &["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"],
            &[".claude/.credentials.json", ".claude.json"],
        ),
        Adapter::Gemini => (
            &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
            &[".gemini/oauth_creds.json"],
        ),
        Adapter::Opencode => (&[], &[".local/share/opencode/auth.json"]),
        Adapter::Pi => (&[], &[".pi/agent/auth.json"]),
        Adapter::Demo | Adapter::Cmd(_) => (&[], &[]),
    }
}

fn check_agent(r: &mut Report, role: &str, agent: &Agent, config: &Config, root: &Path) {
    let name = agent.spec.adapter.name();
    let program = match crate::run::agent_program(agent, config, root) {
        Ok(p) => p,
        Err(missing) => {
            r.say(Level::Problem, format!("{role} {missing}"));
            return;
        }
    };
    let Some(tested) = tested_version(name) else {
        r.say(
            Level::Ok,
            format!("{role} `{}`: {} found", agent.name, program.display()),
        );
        return;
    };
    match version_of(&program) {
        Some(v) if v == tested => r.say(
            Level::Ok,
            format!("{role} `{}`: {name} {v} (the version Looper is tested with)", agent.name),
        ),
        Some(v) => r.say(
            Level::Warn,
            format!(
                "{role} `{}`: {name} {v}, but Looper is tested with {tested}: if its output changed, runs may misread it (npm install -g {name}@{tested} pins it)",
                agent.name
            ),
        ),
        None => r.say(
            Level::Warn,
            format!("{role} `{}`: `{} --version` gave no version", agent.name, program.display()),
        ),
    }
    let (vars, files) = credentials(&agent.spec.adapter);
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let has_env = vars.iter().any(|v| {
        std::env::var_os(v).is_some_and(|x| !x.is_empty()) || agent.env.iter().any(|(k, _)| k == v)
    });
    let has_file = home
        .as_ref()
        .is_some_and(|h| files.iter().any(|f| h.join(f).exists()));
    let knows_where = !(vars.is_empty() && files.is_empty());
    if knows_where && !has_env && !has_file {
        let mut ways: Vec<String> = vars.iter().map(|v| format!("set {v}")).collect();
        ways.extend(files.iter().map(|f| format!("log in (~/{f})")));
        r.say(
            Level::Warn,
            format!(
                "{role} `{}`: no {name} credentials found: {}",
                agent.name,
                ways.join(", or ")
            ),
        );
    }
}

pub(super) fn doctor(project: &Project) -> anyhow::Result<ExitCode> {
    let mut r = Report { lines: Vec::new() };
    let home = crate::store::looper_home()?;
    match Config::resolve(&home, &project.root, Layer::default()) {
        Err(e) => r.say(Level::Problem, format!("config: {e:#}")),
        Ok(config) => {
            for (role, agent) in config.agents() {
                check_agent(&mut r, role, agent, &config, &project.root);
            }
            if config.sandbox == crate::agent::Sandbox::None {
                r.say(Level::Warn, "sandbox = \"none\": the worker runs without its CLI's sandbox (--dangerously-bypass-approvals-and-sandbox, bypassPermissions, --yolo); do this only inside a container or VM");
            }
        }
    }
    if Command::new("git")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
    {
        r.say(Level::Ok, "git found");
    } else {
        r.say(Level::Warn, "git not found: projects work without it, but with no commits and diffs by file hashes; install git");
    }
    match crate::backlog::load::load(&project.backlog) {
        Ok(l) => r.say(
            Level::Ok,
            format!(
                "backlog {}: valid, {} tasks",
                project.backlog_display(),
                l.doc.tasks().len()
            ),
        ),
        Err(crate::backlog::BacklogError::NotFound { .. }) => r.say(
            Level::Ok,
            format!(
                "backlog {}: none yet (`looper run` plans one, `looper init` makes an empty one)",
                project.backlog_display()
            ),
        ),
        Err(e) => r.say(
            Level::Problem,
            format!("backlog: {e} (`looper validate` lists every problem)"),
        ),
    }
    let runs = project.home.runs();
    let probe = runs.join(".doctor-probe");
    let writable = crate::file::create_private_dir(&runs)
        .and_then(|()| std::fs::write(&probe, b"ok").map_err(anyhow::Error::from));
    match writable {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            r.say(
                Level::Ok,
                format!("journal directory {} is writable", runs.display()),
            );
        }
        Err(e) => r.say(
            Level::Problem,
            format!(
                "journal directory {} is not writable: {e}: fix its permissions or set LOOPER_HOME",
                runs.display()
            ),
        ),
    }
    let color = crate::term::stdout_color();
    let mut out = String::new();
    for (level, text) in &r.lines {
        let tag = match level {
            Level::Ok => crate::term::paint(color, "32", "ok     "),
            Level::Warn => crate::term::paint(color, "33", "warn   "),
            Level::Problem => crate::term::paint(color, "31", "PROBLEM"),
        };
        let _ = writeln!(out, "{tag} {text}");
    }
    let problems = r.lines.iter().filter(|(l, _)| *l == Level::Problem).count();
    let _ = writeln!(
        out,
        "{}",
        match problems {
            0 => "no problems".to_owned(),
            n => format!("{n} problem(s): fix them before `looper run`"),
        }
    );
    super::history::emit(&out)?;
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
