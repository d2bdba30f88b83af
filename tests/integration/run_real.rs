//! `looper run` end to end with the real agent CLIs against the mock model server (#4): an
//! empty git project with a SPEC.md is bootstrapped into three tasks, each worked by the real
//! CLI (which runs the scripted shell command), corroborated by a gate and committed with
//! Looper's trailers; the review adds a fourth task, which is worked, and the second review
//! declares the project done.

use std::fmt::Write as _;

use serde_json::Value;

use crate::agents::{Sandboxed, cli};
use crate::harness::Env;
use crate::mock::{Mock, Route, Script, Step};

pub(crate) fn worker_route(id: &str, file: &str) -> Route {
    Route::new(
        format!("## Your task: {id} —"),
        Script::new(format!(
            r#"Done.
```json
{{"task_id": "{id}", "status": "done", "summary": "created {file}", "files": ["{file}"]}}
```"#
        ))
        .then(Step::Shell(format!("echo {id} > {file}"))),
    )
}

/// The whole conversation of one run, routed by prompt.
fn routes() -> Vec<Route> {
    let plan = r#"Here is the plan.
{"source_files": ["SPEC.md"], "tasks": [
  {"title": "Create one.txt", "priority": 1, "verify": ["test -f one.txt"]},
  {"title": "Create two.txt", "priority": 2, "depends_on": ["T1"], "verify": ["test -f two.txt"]},
  {"title": "Create three.txt", "priority": 3, "verify": ["test -f three.txt"]}]}"#;
    vec![
        Route::new("You are the planner in Looper", Script::new(plan)),
        worker_route("T1", "one.txt"),
        worker_route("T2", "two.txt"),
        worker_route("T3", "three.txt"),
        worker_route("T4", "docs.txt"),
        // The second review sees T4 done; the first one asks for it.
        Route::new(
            "T4 [done]",
            Script::new(
                r#"{"status": "reviewed", "summary": "everything in SPEC.md is there", "new_tasks": [], "done": true}"#,
            ),
        ),
        Route::new(
            "You are the reviewer in Looper",
            Script::new(
                r#"{"status": "reviewed", "summary": "docs are missing", "new_tasks": [{"title": "Write docs.txt", "priority": 2, "reason": "SPEC.md asks for docs"}], "done": false}"#,
            ),
        ),
    ]
}

/// Makes the project a git repository with one commit of whatever it holds, by an identity
/// of its own (the machine may have none).
pub(crate) fn init_repo(env: &Env, message: &str) {
    git(env, &["init", "-q"]);
    git(env, &["add", "-A"]);
    git(
        env,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ],
    );
}

/// Runs git in the project and returns its stdout; a failure fails the test.
pub(crate) fn git(env: &Env, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(env.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn full_run(worker: &'static str, reviewer: &'static str) {
    let (Some(worker_cli), Some(reviewer_cli)) = (cli(worker), cli(reviewer)) else {
        return;
    };
    let sb = Sandboxed::with_mock(Mock::start_routed(
        routes(),
        Script::new("unexpected prompt"),
    ));
    let env = Env::new();
    env.write(
        "SPEC.md",
        "# Files\nCreate one.txt, two.txt and three.txt, and document them.\n",
    );
    init_repo(&env, "spec");

    let (worker_spec, mut vars) = sb.isolate(&worker_cli);
    let (reviewer_spec, reviewer_vars) = sb.isolate(&reviewer_cli);
    vars.extend(reviewer_vars);
    let mut config = String::from(
        "[roles]\nbootstrap = \"w\"\nworker = \"w\"\nreviewer = [\"r\"]\n\n[verify]\ncommands = [\"test -f SPEC.md\"]\n\n[timeouts]\nworker = 120\nreviewer = 120\nidle = 60\n\n",
    );
    for (name, spec, exe) in [
        ("w", &worker_spec, worker_cli.exe()),
        ("r", &reviewer_spec, reviewer_cli.exe()),
    ] {
        let _ = write!(
            config,
            "[agents.{name}]\nspec = \"{spec}\"\nprogram = \"{}\"\n\n",
            exe.display()
        );
    }
    env.write(".looper/looper.toml", config);
    // Looper's own files stay out of git, as a user would set it up.
    env.write(".gitignore", ".looper/\n");

    let mut run = env.looper(&["run"]);
    for (k, v) in &vars {
        run = run.env(k, v);
    }
    run.stderr_has("the review declared the project done").run();
    assert_finished(&env);
}

/// What a finished run left: files, statuses, commits, journal.
fn assert_finished(env: &Env) {
    for (file, id) in [
        ("one.txt", "T1"),
        ("two.txt", "T2"),
        ("three.txt", "T3"),
        ("docs.txt", "T4"),
    ] {
        assert_eq!(env.read(file), format!("{id}\n"));
    }
    let doc = env.read_json("to-do.json");
    let statuses: Vec<(&str, &str)> = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("T1", "done"),
            ("T2", "done"),
            ("T3", "done"),
            ("T4", "done"),
            ("PROJECT-DONE", "done")
        ]
    );
    // Every task was committed by Looper with its trailers.
    let log = git(
        env,
        &[
            "log",
            "--format=%s|%(trailers:key=Looper-Task,valueonly,separator=)|%(trailers:key=Looper-Iteration,valueonly,separator=)",
        ],
    );
    let commits: Vec<&str> = log.lines().collect();
    assert_eq!(
        commits,
        [
            "T4: Write docs.txt|T4|4",
            "T3: Create three.txt|T3|3",
            "T2: Create two.txt|T2|2",
            "T1: Create one.txt|T1|1",
            "spec||"
        ],
        "{log}"
    );
    // The journal has every kind of record, in one run, with no gap in seq.
    let records = env.journal();
    let run_id = env.records("run.start")[0]["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let run: Vec<&Value> = records
        .iter()
        .filter(|r| r["run"] == run_id.as_str())
        .collect();
    for (i, r) in run.iter().enumerate() {
        assert_eq!(r["seq"], i + 1);
    }
    for kind in [
        "run.start",
        "bootstrap.start",
        "bootstrap.end",
        "iteration.start",
        "prompt",
        "agent.spawn",
        "agent.event",
        "agent.exit",
        "report",
        "gate",
        "git",
        "backlog.update",
        "iteration.end",
        "review.start",
        "review.report",
        "review.end",
        "run.end",
    ] {
        assert!(run.iter().any(|r| r["type"] == kind), "no {kind} record");
    }
    let exits: Vec<&&Value> = run.iter().filter(|r| r["type"] == "agent.exit").collect();
    // bootstrap, 4 workers, 2 reviews
    assert_eq!(exits.len(), 7);
    assert!(
        exits.iter().all(|e| e["class"]["class"] == "ok"),
        "{exits:?}"
    );
    assert!(
        exits
            .iter()
            .all(|e| e["usage"]["output"].as_u64().unwrap() > 0)
    );
    assert!(env.records("review.violation").is_empty());
}

#[test]
fn codex_from_a_spec_to_a_reviewed_done() {
    full_run("codex", "codex");
}

#[test]
fn claude_works_and_codex_reviews() {
    full_run("claude", "codex");
}

/// #6: claude works, codex reviews and stands by as the fallback. claude's mock answers every
/// request with HTTP 429: the first iteration is deferred (no attempt), the limit is persisted,
/// and codex takes every task; the run still reaches a reviewed done.
#[test]
fn a_rate_limited_claude_falls_back_to_codex() {
    let (Some(claude), Some(codex)) = (cli("claude"), cli("codex")) else {
        return;
    };
    let limited = Sandboxed::new(Script::new("never sent").then(Step::Http {
        status: 429,
        retry_after: Some(600),
        message: "rate limit exceeded for claude".into(),
    }));
    let sb = Sandboxed::with_mock(Mock::start_routed(
        routes(),
        Script::new("unexpected prompt"),
    ));
    let env = Env::new();
    env.write(
        "SPEC.md",
        "# Files\nCreate one.txt, two.txt and three.txt, and document them.\n",
    );
    init_repo(&env, "spec");
    let (claude_spec, mut vars) = limited.isolate(&claude);
    let (codex_spec, codex_vars) = sb.isolate(&codex);
    vars.extend(codex_vars);
    env.write(
        ".looper/looper.toml",
        format!(
            "[roles]\nbootstrap = \"r\"\nworker = \"w\"\nreviewer = [\"r\"]\nfallback = [\"r\"]\n\n[verify]\ncommands = [\"test -f SPEC.md\"]\n\n[timeouts]\nworker = 120\nreviewer = 120\nidle = 60\n\n[agents.w]\nspec = \"{claude_spec}\"\nprogram = \"{}\"\n\n[agents.r]\nspec = \"{codex_spec}\"\nprogram = \"{}\"\n",
            claude.exe().display(),
            codex.exe().display()
        ),
    );
    env.write(".gitignore", ".looper/\n");
    let mut run = env.looper(&["run"]);
    for (k, v) in &vars {
        run = run.env(k, v);
    }
    run.stderr_has("the review declared the project done").run();
    for (file, id) in [
        ("one.txt", "T1"),
        ("two.txt", "T2"),
        ("three.txt", "T3"),
        ("docs.txt", "T4"),
    ] {
        assert_eq!(env.read(file), format!("{id}\n"));
    }
    let starts = env.records("iteration.start");
    let agents: Vec<&str> = starts
        .iter()
        .map(|r| r["agent_name"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["w", "r", "r", "r", "r"], "{starts:?}");
    assert!(
        starts[1]["why"]
            .as_str()
            .unwrap()
            .starts_with("fallback: `w` is rate-limited"),
        "{}",
        starts[1]["why"]
    );
    assert_eq!(env.records("iteration.end")[0]["outcome"], "deferred");
    assert_eq!(env.records("agent.limited").len(), 1);
    // No task paid an attempt for the limit.
    let doc = env.read_json("to-do.json");
    assert!(
        doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("attempts").is_none()),
        "{doc}"
    );
    // Only one request reached claude's mock: the limit was remembered.
    assert_eq!(
        limited
            .mock
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/messages"))
            .count(),
        1
    );
}
