//! Every command the README shows is exercised (#8). The `sh` blocks' lines run through bash
//! exactly as written (with `looper` on `PATH`, and the real codex and claude CLIs against
//! the mock model server for the quick start), except the few that are release builds or the
//! suite itself, which name the script or test that runs them. The config and backlog
//! examples load, and every command in the Commands table accepts the flags it lists.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::agents::{Sandboxed, cli};
use crate::harness::Env;
use crate::mock::{Mock, Route, Script};
use crate::run_real::worker_route;

/// README lines that this file does not run, and what runs them.
const ELSEWHERE: &[(&str, &str)] = &[
    (
        "cargo build --release && ./target/release/looper demo",
        "scripts/release runs `looper demo` on the release build; demo::* on the test build",
    ),
    ("./scripts/test", ".ci/run runs it"),
    (
        "cargo install --locked --path .",
        "scripts/release --install, which scripts/test runs",
    ),
    ("scripts/release", "scripts/test runs it"),
];

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The contents of the README's fenced blocks of one language, in order.
fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    readme()
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap().to_owned())
        .collect()
}

/// The `sh` blocks' commands, comments dropped, one block each.
fn sh_blocks() -> Vec<Vec<String>> {
    blocks("sh")
        .iter()
        .map(|block| {
            block
                .lines()
                .map(|line| line.split("  #").next().unwrap().trim().to_owned())
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .collect()
        })
        .collect()
}

/// Runs one README line through bash in `dir`, with the test build of `looper` first on
/// `PATH`, the test's `LOOPER_HOME` and home, and `vars`.
fn sh(
    env: &Env,
    dir: &Path,
    line: &str,
    path_extra: &[PathBuf],
    vars: &[(String, String)],
) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_looper")).parent().unwrap();
    let mut path = vec![bin.to_path_buf()];
    path.extend(path_extra.iter().cloned());
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", line])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("LOOPER_HOME", env.home())
        .env("HOME", env.root().parent().unwrap().join("user-home"))
        .env("NO_COLOR", "1")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "README line failed: {line}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The block whose first line starts with `first`.
fn block(first: &str) -> Vec<String> {
    sh_blocks()
        .into_iter()
        .find(|b| b.first().is_some_and(|l| l.starts_with(first)))
        .unwrap_or_else(|| panic!("the README has no sh block starting with {first:?}"))
}

#[test]
fn every_shell_line_of_the_readme_is_run_here_or_named() {
    let run_here = [
        block("cargo install").split_off(2),
        block("cd my-project"),
        block("looper init"),
    ]
    .concat();
    for line in sh_blocks().concat() {
        let elsewhere = ELSEWHERE.iter().any(|(l, _)| *l == line);
        assert!(
            elsewhere ^ run_here.contains(&line),
            "README line {line:?} is neither run by tests/integration/readme.rs nor listed in \
             its ELSEWHERE (or is both)"
        );
    }
    for (line, _) in ELSEWHERE {
        assert!(
            sh_blocks().concat().iter().any(|l| l == line),
            "ELSEWHERE lists {line:?}, which the README no longer shows"
        );
    }
}

#[test]
fn the_install_lines_run() {
    let env = Env::new();
    let lines = block("cargo install").split_off(2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        sh(&env, &env.root(), line, &[], &[]);
    }
    let home = env.root().parent().unwrap().join("user-home");
    let completion =
        std::fs::read_to_string(home.join(".local/share/bash-completion/completions/looper"))
            .unwrap();
    assert!(completion.contains("_looper"), "{completion}");
    assert!(home.join(".agents/skills/looper/SKILL.md").is_file());
    assert!(home.join(".claude/skills/looper/SKILL.md").is_file());
}

#[test]
fn the_backlog_lines_run_and_leave_what_they_say() {
    let env = Env::new();
    for line in &block("looper init") {
        sh(&env, &env.root(), line, &[], &[]);
    }
    let backlog = env.read_json("to-do.json");
    let tasks = backlog["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["title"], "Parse the config file");
    assert_eq!(tasks[0]["status"], "done");
    assert_eq!(tasks[1]["depends_on"], serde_json::json!(["T1"]));
    assert_eq!(tasks[1]["priority"], 2);
    assert!(env.path("to-do.schema.json").is_file() && env.path("looper.toml").is_file());
}

/// The quick start, with the real CLIs on `PATH` against the mock: each `looper run` line in
/// a project of its own (the `--prompt` one in an empty directory) plans one task, works it,
/// and ends with a review that declares the project done.
#[test]
fn the_quick_start_runs_with_the_real_clis() {
    let (Some(codex), Some(claude)) = (cli("codex"), cli("claude")) else {
        return;
    };
    let lines = block("cd my-project");
    assert_eq!(lines[0], "cd my-project");
    let plan = r#"{"source_files": [], "tasks": [{"title": "Create hello.txt", "priority": 1, "verify": ["test -f hello.txt"]}]}"#;
    let routes = || {
        vec![
            Route::new("You are the planner in Looper", Script::new(plan)),
            worker_route("T1", "hello.txt"),
            Route::new(
                "You are the reviewer in Looper",
                Script::new(
                    r#"{"status": "reviewed", "summary": "hello.txt is there", "new_tasks": [], "done": true}"#,
                ),
            ),
        ]
    };
    for line in &lines[1..] {
        let sb = Sandboxed::with_mock(Mock::start_routed(routes(), Script::new("unexpected")));
        let (_, mut vars) = sb.isolate(&codex);
        vars.extend(sb.isolate(&claude).1);
        let env = Env::new();
        let project = env.root().join("my-project");
        std::fs::create_dir_all(&project).unwrap();
        if !line.contains("--prompt") {
            std::fs::write(project.join("SPEC.md"), "# Hello\nCreate hello.txt.\n").unwrap();
        }
        let path = [
            codex.exe().parent().unwrap().to_path_buf(),
            claude.exe().parent().unwrap().to_path_buf(),
        ];
        let out = sh(
            &env,
            &env.root(),
            &format!("{}\n{line}", lines[0]),
            &path,
            &vars,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("the review declared the project done"),
            "{line}\n{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(project.join("hello.txt"))
                .ok()
                .as_deref(),
            Some("T1\n"),
            "{line}\n{stderr}\n{}",
            env.looper(&["-C", "my-project", "show", "1"])
                .run()
                .stdout()
        );
        // The agents named on the line are the ones that ran.
        let log = env
            .looper(&["-C", "my-project", "log", "--json"])
            .run()
            .stdout();
        let expected = if line.contains("--worker claude") {
            "claude:opus"
        } else {
            "codex"
        };
        assert!(log.contains(expected), "{line}: {log}");
    }
}

#[test]
fn the_config_and_backlog_examples_load() {
    let env = Env::new();
    let toml = blocks("toml");
    assert_eq!(toml.len(), 1);
    env.write("looper.toml", &toml[0]);
    let doctor = env.command(&["doctor"]).output().unwrap();
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        !text.contains("config:"),
        "the README's looper.toml does not load:\n{text}"
    );
    assert!(text.contains("codex"), "{text}");

    let json = blocks("json");
    assert_eq!(json.len(), 1);
    env.write("to-do.json", &json[0]);
    env.looper(&["validate"]).run();
}

/// Each row of the Commands table: the command exists and its `--help` knows every flag the
/// row lists.
#[test]
fn the_commands_table_matches_the_command_line() {
    let readme = readme();
    let table = readme
        .split("## Commands\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap();
    let env = Env::new();
    let mut rows = 0;
    for row in table.lines().filter(|l| l.starts_with("| `looper ")) {
        let synopsis = row.split('`').nth(1).unwrap();
        let name = synopsis.split_whitespace().nth(1).unwrap();
        let help = env.looper(&[name, "--help"]).run().stdout();
        for word in synopsis.split(|c: char| c.is_whitespace() || "[]|\\".contains(c)) {
            let flag = word.trim_end_matches("...");
            if flag.starts_with('-') && flag.len() > 1 {
                assert!(help.contains(flag), "`looper {name} --help` lacks {flag}");
            }
        }
        rows += 1;
    }
    assert!(rows >= 20, "only {rows} rows read from the Commands table");
}
