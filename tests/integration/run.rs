//! `looper run` with fake agents (`cmd:` scripts): every branch of the loop (DESIGN §5).

use std::rc::Rc;

use serde_json::Value;

use crate::harness::Env;

/// A fake agent: a shell script in the project's `agents/` with `$prompt` (what Looper sent),
/// `$id` (the task id it names) and `report STATUS SUMMARY [EXTRA_JSON_FIELDS]` defined.
fn agent(env: &Env, name: &str, body: &str) -> String {
    let script = format!(
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
report() {{ printf '{{"task_id": "%s", "status": "%s", "summary": "%s"%s}}\n' "$id" "$1" "$2" "$3"; }}
{body}
"#
    );
    let rel = format!("agents/{name}");
    env.write_executable(&rel, script);
    format!("cmd:./{rel}")
}

/// A worker that finishes its task once the test writes `agents/release-<task id>`: a test
/// that stops a run mid-iteration does not race a timer.
const HELD_WORKER: &str = r#"while [ ! -e "agents/release-$id" ]; do sleep 0.05; done
echo x > "out-$id.txt"; report done ok"#;

/// A reviewer that always says `done`.
fn done_reviewer(env: &Env) -> String {
    agent(
        env,
        "reviewer-done",
        r#"echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'"#,
    )
}

/// A worker that creates `out-<id>.txt` and reports done.
fn good_worker(env: &Env) -> String {
    agent(
        env,
        "worker",
        r#"echo "$id" > "out-$id.txt"; report done "made out-$id.txt""#,
    )
}

fn project(titles: &[&str]) -> Rc<Env> {
    let env = Env::new();
    env.looper(&["init"]).run();
    for t in titles {
        env.looper(&["add", t]).run();
    }
    env
}

fn task(env: &Env, id: &str) -> Value {
    let doc = env.read_json("to-do.json");
    doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no task {id}"))
}

#[test]
fn works_every_task_then_the_review_declares_done() {
    let env = project(&["First", "Second"]);
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .stderr_has("the review declared the project done")
        .run();
    assert_eq!(env.read("out-T1.txt"), "T1\n");
    assert_eq!(env.read("out-T2.txt"), "T2\n");
    for id in ["T1", "T2"] {
        let t = task(&env, id);
        assert_eq!(t["status"], "done");
        assert!(
            t["notes"][0].as_str().unwrap().contains("done: made out-"),
            "{t}"
        );
    }
    let marker = task(&env, "PROJECT-DONE");
    assert_eq!(marker["tags"], serde_json::json!(["project-done"]));
    // The run's journal: contiguous seq, one start and one end, every step in order.
    let runs = env.records("run.start");
    assert_eq!(runs.len(), 1);
    let run_id = runs[0]["run"].as_str().unwrap().to_owned();
    let records: Vec<Value> = env
        .journal()
        .into_iter()
        .filter(|r| r["run"] == run_id.as_str())
        .collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i + 1, "{r}");
    }
    // Every record names its step, the store's backlog updates included.
    let mut label = "run";
    for r in &records {
        if ["iteration.start", "review.start", "run.end"].contains(&r["type"].as_str().unwrap()) {
            label = r["label"].as_str().unwrap();
        }
        assert_eq!(r["label"], label, "{r}");
        assert!(r["iter"].is_u64(), "{r}");
    }
    let doing: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "backlog.update")
        .collect();
    assert_eq!(doing[0]["label"], "iter-1");
    assert_eq!(doing[0]["iter"], 1);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for kind in [
        "run.start",
        "iteration.start",
        "prompt",
        "agent.spawn",
        "agent.event",
        "agent.exit",
        "report",
        "iteration.end",
        "review.start",
        "review.report",
        "review.end",
        "run.end",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"run.end"));
    let end = records.last().unwrap();
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["iterations"], 2);
    // The prompt is journaled with its sha256 and names the task.
    let prompt = &env.records("prompt")[0];
    assert!(
        prompt["text"]
            .as_str()
            .unwrap()
            .contains("## Your task: T1 — First")
    );
    assert_eq!(prompt["sha256"].as_str().unwrap().len(), 64);
}

/// A backlog kept elsewhere and linked into the project stays linked: every write, the
/// run's and the commands', goes to the file the link points to, and those writes are not
/// taken for the worker's changes.
#[test]
fn a_linked_backlog_stays_linked_through_a_run() {
    let env = project(&["First", "Second"]);
    std::fs::create_dir(env.path("plans")).unwrap();
    std::fs::rename(env.path("to-do.json"), env.path("plans/backlog.json")).unwrap();
    std::os::unix::fs::symlink("plans/backlog.json", env.path("to-do.json")).unwrap();
    env.looper(&["add", "Third"]).run();
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .stderr_has("the review declared the project done")
        .run();
    let link = std::fs::symlink_metadata(env.path("to-do.json")).unwrap();
    assert!(link.is_symlink(), "the link was replaced by a file");
    let doc = env.read_json("plans/backlog.json");
    let statuses: Vec<&str> = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done", "done", "done"], "{doc}");
    for end in env.records("iteration.end") {
        let changed = end["changed"].as_array().unwrap();
        assert_eq!(changed.len(), 1, "{end}");
        assert!(changed[0].as_str().unwrap().starts_with("out-T"), "{end}");
    }
    let mut left: Vec<String> = std::fs::read_dir(env.path("plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["backlog.json"]);
    env.looper(&["status"])
        .stdout_has("3/3 done · 0 todo · 0 doing · 0 blocked · project done")
        .run();
}

#[test]
fn a_finished_project_exits_at_once_without_a_review() {
    let env = project(&["Only"]);
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .run();
    let reviews = env.records("review.start").len();
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .stderr_has("already done")
        .run();
    assert_eq!(env.records("review.start").len(), reviews);
}

#[test]
fn an_invalid_report_is_an_attempt_and_the_retry_limit_blocks() {
    let env = project(&["Hard"]);
    let worker = agent(&env, "worker", r#"echo "I did everything, trust me""#);
    let reviewer = agent(
        &env,
        "reviewer",
        r#"echo '{"status": "reviewed", "summary": "T1 is blocked", "new_tasks": [], "done": false}'"#,
    );
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--retry-limit",
        "2",
    ])
    .status(4)
    .stderr_has("inconclusive")
    .run();
    let t = task(&env, "T1");
    assert_eq!(t["status"], "blocked");
    assert_eq!(t["attempts"], 2);
    let notes = t["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert!(
        notes[0].as_str().unwrap().starts_with("iter-1: "),
        "{notes:?}"
    );
    assert!(
        notes[0].as_str().unwrap().contains("no JSON report"),
        "{notes:?}"
    );
    // Three review passes, then exit 4.
    assert_eq!(env.records("review.start").len(), 3);
}

#[test]
fn a_report_for_another_task_is_an_attempt() {
    let env = project(&["A"]);
    let worker = agent(&env, "worker", r#"touch x; id=T9; report done "wrong""#);
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--max-iterations",
        "1",
    ])
    .status(3)
    .run();
    let t = task(&env, "T1");
    assert_eq!(t["status"], "todo");
    assert!(
        t["notes"][0]
            .as_str()
            .unwrap()
            .contains("for task T9 instead of T1"),
        "{t}"
    );
}

#[test]
fn a_crashing_agent_is_an_attempt_not_the_end_of_the_run() {
    let env = project(&["A", "B"]);
    let worker = agent(
        &env,
        "worker",
        r#"if [ "$id" = T1 ]; then echo boom >&2; exit 7; fi; echo ok > "out-$id.txt"; report done ok"#,
    );
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--retry-limit",
        "1",
    ])
    .run();
    let t1 = task(&env, "T1");
    assert_eq!(t1["status"], "blocked");
    assert!(t1["notes"][0].as_str().unwrap().contains("exit 7"), "{t1}");
    assert_eq!(task(&env, "T2")["status"], "done");
    let exits = env.records("agent.exit");
    assert_eq!(exits[0]["class"]["class"], "crash");
}

#[test]
fn a_gate_that_passed_before_must_pass_after() {
    let env = project(&["Break it"]);
    env.write("keep.txt", "here");
    let worker = agent(&env, "worker", r#"rm keep.txt; report done "removed it""#);
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--verify",
        "test -f keep.txt",
        "--max-iterations",
        "1",
    ])
    .status(3)
    .run();
    let t = task(&env, "T1");
    assert_eq!(t["status"], "todo");
    assert_eq!(t["attempts"], 1);
    let note = t["notes"][0].as_str().unwrap();
    assert!(
        note.contains("gate `test -f keep.txt` failed (exit 1)"),
        "{note}"
    );
}

#[test]
fn a_gate_failing_before_does_not_block_unrelated_work() {
    let env = project(&["Unrelated"]);
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--verify",
        "test -f never.txt",
        "--max-iterations",
        "1",
    ])
    // The task is done, but the review can't declare the project done with a red gate.
    .status(4)
    .run();
    assert_eq!(task(&env, "T1")["status"], "done");
    let baseline = &env.records("gate")[0];
    assert_eq!(baseline["phase"], "baseline");
    assert_eq!(baseline["result"]["passed"], false);
}

#[test]
fn done_without_a_diff_needs_a_reason() {
    let env = project(&["Nothing to do", "Also nothing"]);
    let worker = agent(
        &env,
        "worker",
        r#"if [ "$id" = T1 ]; then report done "nothing"; else report done "nothing" ', "no_change_reason": "already implemented"'; fi"#,
    );
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--retry-limit",
        "2",
    ])
    .run();
    let t1 = task(&env, "T1");
    assert_eq!(t1["status"], "blocked");
    assert!(
        t1["notes"][0]
            .as_str()
            .unwrap()
            .contains("no_change_reason"),
        "{t1}"
    );
    assert_eq!(task(&env, "T2")["status"], "done");
}

#[test]
fn new_tasks_take_ids_in_the_backlogs_style() {
    let env = Env::new();
    env.write(
        "to-do.json",
        r#"{"schema_version": 1, "source_files": [], "tasks": [
  {"id": "TASK-001", "title": "First", "priority": 1, "status": "done"},
  {"id": "TASK-002", "title": "Second", "priority": 1, "status": "done"}]}"#,
    );
    env.looper(&["add", "By hand"])
        .stdout_has("added TASK-003: By hand")
        .run();
    let worker = good_worker(&env);
    let reviewer = agent(
        &env,
        "reviewer",
        r#"if [ -f out-TASK-004.txt ]; then
  echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'
else
  echo '{"status": "reviewed", "summary": "docs missing", "new_tasks": [{"title": "Write docs"}], "done": false}'
fi"#,
    );
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .run();
    assert_eq!(task(&env, "TASK-003")["status"], "done");
    let added = task(&env, "TASK-004");
    assert_eq!(added["title"], "Write docs");
    assert_eq!(added["status"], "done");
}

#[test]
fn the_review_adds_tasks_that_are_then_worked() {
    let env = project(&["First"]);
    let worker = good_worker(&env);
    // Asks for one more task the first time, then says done.
    let reviewer = agent(
        &env,
        "reviewer",
        r#"if [ -f out-T2.txt ]; then
  echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'
else
  echo '{"status": "reviewed", "summary": "docs missing", "new_tasks": [{"title": "Write docs", "priority": 2, "reason": "no README"}, {"title": "first", "reason": "dup"}], "done": false}'
fi"#,
    );
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .run();
    let t2 = task(&env, "T2");
    assert_eq!(t2["title"], "Write docs");
    assert_eq!(t2["priority"], 2);
    assert_eq!(t2["status"], "done");
    // The duplicate of "First" was dropped.
    assert_eq!(
        env.read_json("to-do.json")["tasks"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(env.records("task.dropped").len(), 1);
}

#[test]
fn a_reviewer_that_writes_files_is_a_violation() {
    let env = project(&["First"]);
    let worker = good_worker(&env);
    let reviewer = agent(
        &env,
        "reviewer",
        r#"echo sneaky > review-edit.txt; echo '{"status": "reviewed", "summary": "ok", "new_tasks": [], "done": true}'"#,
    );
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .run();
    let violations = env.records("review.violation");
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0]["changed"],
        serde_json::json!(["review-edit.txt"])
    );
}

#[test]
fn a_second_run_in_the_same_project_is_refused_naming_the_pid() {
    let env = project(&["Slow"]);
    let worker = agent(
        &env,
        "worker",
        r#"sleep 5; echo x > "out-$id.txt"; report done ok"#,
    );
    let reviewer = done_reviewer(&env);
    let mut first = spawn_run(&env, &["run", "--worker", &worker, "--reviewer", &reviewer]);
    // Wait until the first run holds the lock (its journal has started).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.records("agent.spawn").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .status(1)
        .stderr_has(&format!(
            "another looper run is working on this project (pid {})",
            first.id()
        ))
        .run();
    assert!(first.wait().unwrap().success());
}

#[test]
fn the_iteration_cap_ends_with_exit_3() {
    let env = project(&["A", "B", "C"]);
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--max-iterations",
        "2",
    ])
    .status(3)
    .stderr_has("iteration cap")
    .run();
    assert_eq!(task(&env, "T3")["status"], "todo");
    assert_eq!(env.records("run.end")[0]["exit_code"], 3);
}

#[test]
fn accepted_work_is_committed_with_trailers_in_a_git_project() {
    let env = project(&["Feature"]);
    let git = |args: &[&str]| crate::run_real::git(&env, args);
    crate::run_real::init_repo(&env, "start");
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .run();
    let log = git(&["log", "-1", "--format=%B"]);
    assert!(log.starts_with("T1: Feature"), "{log}");
    assert!(log.contains("Looper-Task: T1"), "{log}");
    assert!(log.contains("Looper-Iteration: 1"), "{log}");
    let run_id = env.records("run.start")[0]["run"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(log.contains(&format!("Looper-Run: {run_id}")), "{log}");
    assert!(git(&["show", "--name-only", "--format=", "HEAD"]).contains("out-T1.txt"));
    let heads: Vec<Value> = env
        .records("git")
        .into_iter()
        .filter(|r| r["phase"] == "commit")
        .collect();
    assert_eq!(heads.len(), 1);
}

#[test]
fn a_missing_backlog_says_what_to_do() {
    let env = Env::new();
    env.write("looper.toml", "");
    env.looper(&["run", "--worker", "cmd:true", "--reviewer", "cmd:true"])
        .status(1)
        .stderr_has("no backlog at")
        .stderr_has("looper init")
        .run();
}

#[test]
fn a_bad_agent_spec_is_a_usage_error() {
    let env = project(&["A"]);
    env.looper(&["run", "--worker", "gpt-7"])
        .status(2)
        .stderr_has("unknown agent adapter `gpt-7`")
        .run();
}

#[test]
fn bootstrap_plans_from_the_spec_then_the_loop_works_the_plan() {
    let env = Env::new();
    env.write("SPEC.md", "# Greeter\nMake hello.txt and bye.txt.\n");
    let planner = agent(
        &env,
        "planner",
        r#"case "$prompt" in *SPEC.md*) ;; *) echo "no spec in prompt"; exit 1;; esac
echo 'Plan:'
echo '{"source_files": ["SPEC.md"], "tasks": [{"title": "Make hello.txt", "priority": 1}, {"title": "Make bye.txt", "priority": 2, "depends_on": ["T1"], "verify": ["test -f out-T2.txt"]}]}'"#,
    );
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.write(
        "looper.toml",
        format!(
            "[roles]\nbootstrap = \"{planner}\"\nworker = \"{worker}\"\nreviewer = \"{reviewer}\"\n"
        ),
    );
    env.looper(&["run"]).run();
    let doc = env.read_json("to-do.json");
    assert_eq!(doc["source_files"], serde_json::json!(["SPEC.md"]));
    let t2 = task(&env, "T2");
    assert_eq!(t2["depends_on"], serde_json::json!(["T1"]));
    assert_eq!(t2["status"], "done");
    assert!(env.path("to-do.schema.json").exists());
    assert_eq!(env.records("bootstrap.end")[0]["valid"], true);
    // The task's own gate ran.
    assert!(env.records("gate").iter().any(|g| g["phase"] == "task"));
}

#[test]
fn bootstrap_from_an_idea_and_a_plan_that_is_never_usable() {
    let env = Env::new();
    let planner = agent(
        &env,
        "planner",
        r#"case "$prompt" in *"a tiny calculator"*) ;; *) exit 3;; esac
echo '{"tasks": [{"title": "", "priority": 9}]}'"#,
    );
    env.looper(&[
        "run",
        "--prompt",
        "a tiny calculator",
        "--worker",
        &planner,
        "--reviewer",
        "cmd:true",
        "--retry-limit",
        "2",
    ])
    .status(1)
    .stderr_has("the bootstrap agent gave no usable plan")
    .run();
    assert!(!env.path("to-do.json").exists());
    assert_eq!(env.records("bootstrap.end").len(), 2);
    // Nothing to plan from at all.
    let empty = Env::new();
    empty
        .looper(&["run", "--worker", "cmd:true", "--reviewer", "cmd:true"])
        .status(1)
        .stderr_has("nothing to plan from")
        .run();
}

#[test]
fn repair_fixes_an_invalid_backlog_and_never_drops_a_task() {
    let env = project(&["Keep me", "Me too"]);
    let mut doc = env.read_json("to-do.json");
    doc["tasks"][1]["status"] = "finished".into();
    env.write("to-do.json", serde_json::to_string_pretty(&doc).unwrap());
    let mut fixed = doc.clone();
    fixed["tasks"][1]["status"] = "todo".into();
    let mut dropped = doc.clone();
    dropped["tasks"].as_array_mut().unwrap().pop();
    // First answer drops a task (refused), the second fixes the status.
    let repairer = agent(
        &env,
        "repairer",
        &format!(
            r#"case "$prompt" in *'/tasks/1/status'*) ;; *) echo "problems missing"; exit 1;; esac
if [ -f .tried ]; then echo '{{"backlog": {fixed}}}'; else touch .tried; echo '{{"backlog": {dropped}}}'; fi"#,
            fixed = serde_json::to_string(&fixed).unwrap(),
            dropped = serde_json::to_string(&dropped).unwrap(),
        ),
    );
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .env("LOOPER_REPAIR", &repairer)
        .run();
    let ends = env.records("repair.end");
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(
        ends[0]["problem"]
            .as_str()
            .unwrap()
            .contains("drops task(s) T2")
    );
    assert_eq!(task(&env, "T2")["status"], "done");
    // The invalid original is kept whole in the journal.
    let snapshots = env.records("backlog.snapshot");
    assert!(snapshots.iter().any(|s| {
        s["replaced"]
            .as_str()
            .is_some_and(|r| r.contains("finished"))
    }));
}

#[test]
fn an_unrepairable_backlog_stops_with_the_problems() {
    let env = project(&["A"]);
    env.write("to-do.json", "{\"schema_version\": 1, \"tasks\": 7}");
    let repairer = agent(&env, "repairer", r#"echo '{"backlog": {"nope": true}}'"#);
    env.looper(&[
        "run",
        "--worker",
        &repairer,
        "--reviewer",
        "cmd:true",
        "--retry-limit",
        "1",
    ])
    .status(1)
    .stderr_has("is invalid and the repair agent could not fix it")
    .stderr_has("/tasks")
    .run();
    assert_eq!(
        env.read("to-do.json"),
        "{\"schema_version\": 1, \"tasks\": 7}"
    );
}

#[test]
fn secrets_never_reach_the_journal() {
    let env = project(&["Leaky"]);
    let worker = agent(
        &env,
        "worker",
        r#"echo "my key is $MY_API_KEY and the header was Authorization: Bearer abcdefghijklmnop1234"
echo x > "out-$id.txt"; report done "used $MY_API_KEY""#,
    );
    let reviewer = done_reviewer(&env);
    env.looper(&["run", "--worker", &worker, "--reviewer", &reviewer])
        .env("MY_API_KEY", "s3cr3t-value-42")
        .run();
    let mut journal = String::new();
    for dir in std::fs::read_dir(env.home().join("projects")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path().join("runs")).unwrap() {
            let path = f.unwrap().path();
            if path.is_file() {
                journal.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    assert!(journal.contains("my key is [redacted]"), "{journal}");
    assert!(!journal.contains("s3cr3t-value-42"));
    assert!(!journal.contains("abcdefghijklmnop1234"));
}

/// Waits until the run has started an agent.
fn wait_for_agent(env: &Env, count: usize) {
    env.wait_for_records("agent.spawn", count);
}

fn spawn_run(env: &Env, args: &[&str]) -> std::process::Child {
    env.command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn looper_stop_finishes_the_iteration_then_exits_5() {
    let env = project(&["A", "B"]);
    env.looper(&["stop"])
        .status(1)
        .stderr_has("no looper run is working on")
        .run();
    let worker = agent(&env, "worker", HELD_WORKER);
    let reviewer = done_reviewer(&env);
    let run = spawn_run(&env, &["run", "--worker", &worker, "--reviewer", &reviewer]);
    wait_for_agent(&env, 1);
    env.looper(&["stop"])
        .stdout_has(&format!("asked the run (pid {})", run.id()))
        .run();
    env.write("agents/release-T1", "");
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(task(&env, "T1")["status"], "done");
    assert_eq!(task(&env, "T2")["status"], "todo");
    assert_eq!(env.records("run.end")[0]["reason"], "stopped by request");
}

#[test]
fn the_ctrl_c_ladder() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = project(&["A", "B"]);
    let worker = agent(&env, "worker", HELD_WORKER);
    let reviewer = done_reviewer(&env);
    let args = [
        "run",
        "--worker",
        worker.as_str(),
        "--reviewer",
        reviewer.as_str(),
    ];

    // One Ctrl-C: the iteration finishes, then the run ends with exit 5.
    let run = spawn_run(&env, &args);
    wait_for_agent(&env, 1);
    kill(
        Pid::from_raw(i32::try_from(run.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
    env.write("agents/release-T1", "");
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(task(&env, "T1")["status"], "done");

    // Two Ctrl-C: the agent's group is stopped, T2 stays doing, exit 130, no attempt counted.
    let run = spawn_run(&env, &args);
    wait_for_agent(&env, 2);
    let pid = Pid::from_raw(i32::try_from(run.id()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    kill(pid, Signal::SIGINT).unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t2 = task(&env, "T2");
    assert_eq!(t2["status"], "doing");
    assert!(t2.get("attempts").is_none(), "{t2}");
    assert!(!env.path("out-T2.txt").exists());
    let exits = env.records("agent.exit");
    assert_eq!(exits.last().unwrap()["class"]["class"], "cancelled");
    assert!(
        exits.last().unwrap()["survivors"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The next run resumes the task left doing.
    env.write("agents/release-T2", "");
    env.looper(&args).run();
    let starts = env.records("iteration.start");
    assert_eq!(starts.last().unwrap()["task"], "T2");
    assert_eq!(starts.last().unwrap()["reason"], "resume");
    assert_eq!(task(&env, "T2")["status"], "done");
}

#[test]
fn sigterm_stops_the_agent_at_once() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = project(&["A"]);
    let worker = agent(&env, "worker", "sleep 30; report done ok");
    let reviewer = done_reviewer(&env);
    let started = std::time::Instant::now();
    let run = spawn_run(&env, &["run", "--worker", &worker, "--reviewer", &reviewer]);
    wait_for_agent(&env, 1);
    kill(
        Pid::from_raw(i32::try_from(run.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(task(&env, "T1")["status"], "doing");
}

#[test]
fn budgets_end_the_run_with_exit_3() {
    // A stand-in for the codex binary that replays a captured stream: 224 tokens per run.
    let env = project(&["A", "B"]);
    let capture = format!(
        "{}/tests/fixtures/captures/codex-e2e.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let fake_codex = agent(&env, "fake-codex", &format!("cat '{capture}'"));
    let program = env.path(fake_codex.trim_start_matches("cmd:./"));
    let reviewer = done_reviewer(&env);
    env.write(
        "looper.toml",
        format!(
            "[agents.codex]\nspec = \"codex\"\nprogram = \"{}\"\n",
            program.display()
        ),
    );
    env.looper(&[
        "run",
        "--worker",
        "codex",
        "--reviewer",
        &reviewer,
        "--max-tokens",
        "100",
    ])
    .status(3)
    .stderr_has("token budget")
    .run();
    let end = &env.records("run.end")[0];
    assert_eq!(end["tokens"], 224);
    assert_eq!(end["iterations"], 1);
    // The codex adapter's argv reached the stand-in.
    let spawn = &env.records("agent.spawn")[0];
    assert!(
        spawn["argv"].as_str().unwrap().contains("exec --json"),
        "{spawn}"
    );

    let worker = agent(
        &env,
        "slow",
        r#"sleep 1; echo x > "out-$id.txt"; report done ok"#,
    );
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--max-duration",
        "1s",
    ])
    .status(3)
    .stderr_has("time budget")
    .run();
}

/// Journal format 2: a line of a JSON-lines agent that is one JSON object is in its
/// `agent.event` record as that object, byte for byte, where `jq '.json.type'` reads it; any
/// other line is a string in `raw`. Secrets in an object are redacted all the same, and
/// `tail --raw` shows both kinds.
#[test]
fn an_agents_json_lines_are_journaled_as_objects() {
    let env = project(&["A"]);
    let capture = format!(
        "{}/tests/fixtures/captures/codex-e2e.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let secret = "sk-proj-Abc123Def456Ghi789Jkl012";
    // A secret of the environment, written by the agent with escapes serde_json does not use.
    let token = "tok/en-Value-42";
    let extra = [
        "not json at all".to_owned(),
        r#" {"type":"padded"}"#.to_owned(),
        format!(
            r#"{{"type":"item.completed","item":{{"id":"x","type":"agent_message","text":"use {secret} é\/"}}}}"#
        ),
        r#"{"type":"item.completed","item":{"id":"y","type":"agent_message","text":"t=\u0074ok\/en-Value-42"}}"#.to_owned(),
    ];
    env.write("agents/extra.txt", format!("{}\n", extra.join("\n")));
    let fake_codex = agent(
        &env,
        "fake-codex",
        &format!("cat agents/extra.txt '{capture}'"),
    );
    let program = env.path(fake_codex.trim_start_matches("cmd:./"));
    env.write(
        "looper.toml",
        format!(
            "[agents.codex]\nspec = \"codex\"\nprogram = \"{}\"\n",
            program.display()
        ),
    );
    env.looper(&["run", "--worker", "codex", "--max-iterations", "1"])
        .env("SERVICE_TOKEN", token)
        .status(3)
        .run();
    let journal_text = env.journal_text();
    for hidden in [secret, "en-Value-42"] {
        assert!(
            !journal_text.contains(hidden),
            "the secret {hidden} reached the journal"
        );
    }
    let events = env.records("agent.event");
    let lines: Vec<String> = std::fs::read_to_string(&capture)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(events.len(), extra.len() + lines.len());
    for (record, line) in events[extra.len()..].iter().zip(&lines) {
        assert_eq!(record["v"], 2);
        assert!(record.get("raw").is_none(), "{record}");
        assert_eq!(
            record["json"],
            serde_json::from_str::<Value>(line).unwrap(),
            "{line}"
        );
        // Byte for byte, in the record's own line.
        assert!(
            journal_text.contains(&format!(",\"json\":{line},\"events\":[")),
            "{line}"
        );
    }
    assert_eq!(events[0]["raw"], "not json at all");
    assert_eq!(events[1]["raw"], r#" {"type":"padded"}"#);
    assert!(events[0].get("json").is_none() && events[1].get("json").is_none());
    let redacted = &events[2]["json"]["item"]["text"];
    assert_eq!(redacted, "use [redacted] é/", "{}", events[2]);
    assert_eq!(events[2]["events"][0]["text"], "use [redacted] é/");
    assert_eq!(events[3]["json"]["item"]["text"], "t=[redacted]");
    assert_eq!(events[3]["events"][0]["text"], "t=[redacted]");
    let raw_tail = env.looper(&["tail", "--raw"]).run().stdout();
    for shown in [
        "not json at all",
        r#"{"type":"padded"}"#,
        r#"{"type":"turn.started"}"#,
        "use [redacted]",
    ] {
        assert!(raw_tail.contains(shown), "{shown} not in {raw_tail}");
    }
    assert!(!raw_tail.contains(secret));
}

#[test]
fn hooks_get_the_event_as_json_env_and_legacy_arguments() {
    let env = project(&["$(touch pwned)", "Blocked one"]);
    let worker = agent(
        &env,
        "worker",
        r#"if [ "$id" = T2 ]; then report blocked "no access"; else echo x > "out-$id.txt"; report done ok; fi"#,
    );
    let reviewer = done_reviewer(&env);
    env.write_executable(
        "hooks/log.sh",
        "#!/bin/sh\nprintf '%s %s %s %s|' \"$1\" \"$LOOPER_EVENT\" \"$LOOPER_TASK\" \"$LOOPER_STATUS\" >> hook.log\ncat >> hook.log\necho >> hook.log\n",
    );
    env.write_executable(
        "hooks/legacy.sh",
        "#!/bin/sh\necho \"legacy $1 $2 $4 $(test -f \"$3\" && echo has-last)\" >> hook.log\n",
    );
    env.write_executable("hooks/hang.sh", "#!/bin/sh\nsleep 30\n");
    env.write(
        "looper.toml",
        "[hooks]\nafter_iteration = [\"./hooks/log.sh\", \"after\"]\non_done = [\"./hooks/log.sh\", \"done\"]\non_blocked = [\"./hooks/log.sh\", \"blocked\"]\non_end = [\"./hooks/hang.sh\"]\ntimeout = 1\n",
    );
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--retry-limit",
        "1",
    ])
    .env("LOOPER_HOOK", env.path("hooks/legacy.sh"))
    .run();
    let log = env.read("hook.log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with("after after_iteration T1 done|{"),
        "{log}"
    );
    let event: Value = serde_json::from_str(lines[0].split_once('|').unwrap().1).unwrap();
    assert_eq!(event["event"], "after_iteration");
    assert_eq!(event["data"]["task"], "T1");
    assert_eq!(lines[1], "legacy T1 done iter-1 has-last", "{log}");
    assert!(lines[2].starts_with("done on_done T1 done|"), "{log}");
    assert!(
        lines[3].starts_with("after after_iteration T2 blocked|"),
        "{log}"
    );
    assert_eq!(lines[4], "legacy T2 blocked iter-2 has-last", "{log}");
    assert!(
        lines[5].starts_with("blocked on_blocked T2 blocked|"),
        "{log}"
    );
    // A title is data, never a command.
    assert!(!env.path("pwned").exists());
    // The hanging on_end hook was stopped after its timeout and journaled.
    let hooks = env.records("hook");
    let end = hooks.iter().find(|h| h["hook"] == "on_end").unwrap();
    assert_eq!(end["class"]["class"], "timeout");
}

#[test]
fn a_rejected_attempt_names_the_work_it_left_for_the_next() {
    let env = project(&["Careful"]);
    env.write("keep.txt", "here");
    // The first attempt writes half.txt and breaks the gate; the second sees the note.
    let worker = agent(
        &env,
        "worker",
        r#"case "$prompt" in
  *"changes left in the tree: half.txt"*) echo ok > keep.txt; report done "finished" ;;
  *) echo half > half.txt; rm keep.txt; report done "half" ;;
esac"#,
    );
    let reviewer = done_reviewer(&env);
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer,
        "--verify",
        "test -f keep.txt",
    ])
    .run();
    let t = task(&env, "T1");
    assert_eq!(t["status"], "done");
    assert_eq!(t["attempts"], 1);
    let note = t["notes"][0].as_str().unwrap();
    assert!(
        note.contains("changes left in the tree: half.txt, keep.txt"),
        "{note}"
    );
}

#[test]
fn a_missing_agent_cli_stops_before_touching_the_backlog() {
    let env = project(&["A"]);
    let before = env.read("to-do.json");
    env.looper(&["run", "--worker", "claude", "--reviewer", "cmd:true"])
        .env("PATH", "/usr/bin:/bin")
        .status(2)
        .stderr_has("the worker agent `claude` needs `claude`, which is not found")
        .stderr_has("program = ")
        .run();
    env.looper(&[
        "run",
        "--worker",
        "cmd:./agents/nope.sh",
        "--reviewer",
        "cmd:true",
    ])
    .status(2)
    .stderr_has("relative paths start at the project root")
    .run();
    assert_eq!(env.read("to-do.json"), before);
}

#[test]
fn a_reviewer_ensemble_merges_new_tasks_and_needs_every_done() {
    let env = project(&["First"]);
    let worker = good_worker(&env);
    // Each reviewer asks for its own task once (one shared with the other), then says done;
    // the other reviewer's "done" alone never ends the run.
    let reviewer_a = agent(
        &env,
        "reviewer-a",
        r#"if [ -f out-T3.txt ]; then
  echo '{"status": "reviewed", "summary": "a: fine", "new_tasks": [], "done": true}'
else
  echo '{"status": "reviewed", "summary": "a: tests missing", "new_tasks": [{"title": "Add tests"}, {"title": "Add docs"}], "done": false}'
fi"#,
    );
    let reviewer_b = agent(
        &env,
        "reviewer-b",
        r#"if [ -f out-T3.txt ]; then
  echo '{"status": "reviewed", "summary": "b: fine", "new_tasks": [], "done": true}'
else
  echo '{"status": "reviewed", "summary": "b: docs missing", "new_tasks": [{"title": "add docs", "reason": "same as a"}], "done": true}'
fi"#,
    );
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        &reviewer_a,
        "--reviewer",
        &reviewer_b,
    ])
    .run();
    let doc = env.read_json("to-do.json");
    let titles: Vec<&str> = doc["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["First", "Add tests", "Add docs", "Project done"]);
    // Two review passes, each with both reviewers.
    assert_eq!(env.records("review.start").len(), 2);
    assert_eq!(env.records("review.report").len(), 4);
}

/// A stand-in for the codex CLI: reads its prompt, runs `body` (with `$id` and `$prompt`
/// set), and reports done in codex's event stream. Configured as the agent `codex`.
fn codex_stand_in(env: &Env, body: &str) {
    let script = format!(
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
{body}
printf '{{"type":"item.completed","item":{{"id":"m","type":"agent_message","text":"{{\\"task_id\\": \\"%s\\", \\"status\\": \\"done\\", \\"summary\\": \\"ok\\"}}"}}}}\n' "$id"
echo '{{"type":"turn.completed","usage":{{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}}}'
"#
    );
    env.write_executable("agents/codex", script);
    env.write(
        "looper.toml",
        format!(
            "[agents.codex]\nspec = \"codex\"\nprogram = \"{}\"\n",
            env.path("agents/codex").display()
        ),
    );
}

/// Where each record type of `run`'s first iteration is in its journal.
fn positions(records: &[Value], run: &str) -> std::collections::BTreeMap<String, usize> {
    let mut at = std::collections::BTreeMap::new();
    for (i, r) in records.iter().filter(|r| r["run"] == run).enumerate() {
        let kind = r["type"].as_str().unwrap().to_owned();
        if r["type"] == "iteration.end" {
            break;
        }
        at.entry(kind).or_insert(i);
    }
    at
}

/// A CLI's agent (here a stand-in for codex, which reads its prompt from stdin before
/// anything else) is spawned first and starts while its task is marked `doing`; its prompt
/// is written only once the mark is on disk. A `cmd:` agent may look at the backlog without
/// reading its stdin: it is spawned only after the mark.
#[test]
fn an_agent_has_its_task_only_once_the_task_is_marked_doing() {
    let env = project(&["A", "B"]);
    codex_stand_in(
        &env,
        r#"grep -c '"status": "doing"' to-do.json > "agents/doing-$id.txt"; echo x > "out-$id.txt""#,
    );
    env.write_executable(
        "agents/plain",
        r#"#!/bin/sh
doing=$(grep -c '"status": "doing"' to-do.json)
id=$(sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
echo "$doing" > "agents/doing-$id.txt"; echo x > "out-$id.txt"
printf '{"task_id": "%s", "status": "done", "summary": "ok"}\n' "$id"
"#,
    );
    let reviewer = done_reviewer(&env);
    for (worker, status) in [("codex", 3), ("cmd:./agents/plain", 0)] {
        env.looper(&[
            "run",
            "--worker",
            worker,
            "--reviewer",
            &reviewer,
            "--max-iterations",
            "1",
        ])
        .status(status)
        .run();
    }
    // Each found its task `doing`: the stand-in once it had its prompt, the command at once.
    assert_eq!(env.read("agents/doing-T1.txt"), "1\n");
    assert_eq!(env.read("agents/doing-T2.txt"), "1\n");
    assert_eq!(task(&env, "T1")["status"], "done");
    assert_eq!(task(&env, "T2")["status"], "done");

    let records = env.journal();
    let runs: Vec<String> = env
        .records("run.start")
        .iter()
        .map(|r| r["run"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(runs.len(), 2);
    let (cli, cmd) = (positions(&records, &runs[0]), positions(&records, &runs[1]));
    let order = |at: &std::collections::BTreeMap<String, usize>| {
        let mut kinds: Vec<(&usize, &str)> = ["agent.spawn", "backlog.update", "git", "prompt"]
            .iter()
            .map(|k| (at.get(*k).unwrap_or_else(|| panic!("no {k}: {at:?}")), *k))
            .collect();
        kinds.sort();
        kinds.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
    };
    assert_eq!(
        order(&cli),
        ["agent.spawn", "backlog.update", "git", "prompt"]
    );
    assert_eq!(
        order(&cmd),
        ["backlog.update", "git", "agent.spawn", "prompt"]
    );
    for at in [&cli, &cmd] {
        assert!(at["prompt"] < at["agent.event"], "{at:?}");
    }
    for spawn in env.records("agent.spawn") {
        assert!(spawn["pid"].as_i64().is_some_and(|p| p > 1), "{spawn}");
    }
}

/// When marking the task `doing` fails (here a file-size limit hits the backlog's temp
/// file), the agent already spawned is stopped before it ever has its prompt: no work is
/// done, nothing of it is left running, the journal says so, and the backlog is untouched.
#[test]
fn a_failed_mark_stops_the_spawned_agent_unprompted() {
    let env = Env::new();
    env.write("to-do.json", crate::harness::backlog_with(300));
    env.looper(&["fmt"]).run();
    let before = std::fs::read(env.path("to-do.json")).unwrap();
    let limit = 12_000;
    assert!(before.len() > limit, "{}", before.len());
    codex_stand_in(
        &env,
        r#"printf '%s' "$prompt" > agents/got.txt; echo x > "out-$id.txt""#,
    );
    let pre = [
        std::ffi::OsString::from(format!("--fsize={limit}:{limit}")),
        "--".into(),
    ];
    let out = env
        .wrapped(
            "prlimit",
            &pre,
            &["run", "--worker", "codex", "--max-iterations", "1"],
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("to-do.json"), "{stderr}");
    assert_eq!(std::fs::read(env.path("to-do.json")).unwrap(), before);
    // The agent never had its prompt, and did nothing.
    let worked = || {
        std::fs::read_dir(env.root())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("out-")
            })
            .count()
    };
    assert!(!env.path("agents/got.txt").exists());
    assert_eq!(worked(), 0);
    let spawn = &env.records("agent.spawn")[0];
    let exit = &env.records("agent.exit")[0];
    assert_eq!(exit["class"]["class"], "cancelled", "{exit}");
    assert_eq!(env.records("prompt").len(), 0);
    let pid = spawn["pid"].as_i64().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the agent {pid} is still there"
    );
    // Without the limit the task is worked.
    env.looper(&["run", "--worker", "codex", "--max-iterations", "1"])
        .status(3)
        .run();
    let id = env.records("iteration.start")[1]["task"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(task(&env, &id)["status"], "done");
    assert!(
        env.read("agents/got.txt")
            .contains(&format!("## Your task: {id} "))
    );
    assert_eq!(worked(), 1);
}

/// A program that has the backlog open while `looper run` writes it (a pager, `tail -f`, a
/// script reading it slowly) keeps reading the version it opened, whole, however many writes
/// come after: Looper writes a new version into a file it wrote before only when no one has
/// that file open (`file::Spares`), and it does reuse them (its parked spare is left).
#[test]
fn a_reader_keeps_the_backlog_version_it_opened_through_a_run() {
    use std::io::{Read, Seek};
    let env = project(&["A", "B", "C", "D", "E"]);
    let worker = agent(&env, "held", HELD_WORKER);
    let reviewer = done_reviewer(&env);
    for id in ["T1", "T3", "T4", "T5"] {
        env.write(&format!("agents/release-{id}"), "");
    }
    let mut run = spawn_run(&env, &["run", "--worker", &worker, "--reviewer", &reviewer]);
    // T2 is marked `doing`: the backlog is now a file this run wrote.
    env.wait_for_records("prompt", 2);
    let mut held = std::fs::File::open(env.path("to-do.json")).unwrap();
    let mut opened = String::new();
    held.read_to_string(&mut opened).unwrap();
    assert!(opened.contains(r#""status": "doing""#), "{opened}");
    env.write("agents/release-T2", "");
    assert_eq!(run.wait().unwrap().code(), Some(0));
    for id in ["T1", "T2", "T3", "T4", "T5"] {
        assert_eq!(task(&env, id)["status"], "done");
    }

    let mut again = String::new();
    held.rewind().unwrap();
    held.read_to_string(&mut again).unwrap();
    assert_eq!(
        again, opened,
        "the version the reader opened changed under it"
    );
    let mut files = Vec::new();
    crate::harness::walk(&env.home(), &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "spare")),
        "the run parked no file to write again: {files:?}"
    );
}

/// Where Linux refuses a write lease for another reason than an open file (here a backlog
/// owned by another user, written by a process without `CAP_LEASE`; elsewhere a file system
/// without leases, or `fs.leases-enable = 0`), Looper cannot tell whether anyone has a
/// replaced file open, so it stops writing into replaced files for the rest of the run and
/// makes a new file for each write, as before `file::Spares`: every task is worked, the
/// backlog is whole, a reader keeps the version it opened, and nothing is parked. The
/// refusal needs a file of another owner, so this runs as root, through `setpriv` with
/// `CAP_LEASE` dropped.
#[test]
fn a_backlog_whose_lease_is_refused_gets_a_new_file_per_write() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the refused-lease test, which needs root to give the backlog another owner"
        );
        eprintln!(
            "SKIPPED: not root, so the backlog cannot be given another owner (a lease refused because the file is open is covered by a_reader_keeps_the_backlog_version_it_opened_through_a_run)"
        );
        return;
    }
    let without_lease: Vec<std::ffi::OsString> =
        vec!["--inh-caps=-lease".into(), "--bounding-set=-lease".into()];
    // The premise: under this wrapper the process has no CAP_LEASE (capability 28).
    let probe = std::process::Command::new("setpriv")
        .args(&without_lease)
        .args(["grep", "^CapEff:", "/proc/self/status"])
        .output()
        .expect("setpriv (util-linux) drops CAP_LEASE for the run");
    let effective = String::from_utf8_lossy(&probe.stdout);
    let caps = u64::from_str_radix(effective.trim().trim_start_matches("CapEff:").trim(), 16)
        .unwrap_or_else(|_| panic!("no CapEff in {effective:?}"));
    assert_eq!(
        caps & (1 << 28),
        0,
        "CAP_LEASE still effective: {effective}"
    );

    let env = project(&["A", "B", "C", "D"]);
    let worker = good_worker(&env);
    let reviewer = done_reviewer(&env);
    std::os::unix::fs::chown(env.path("to-do.json"), Some(65534), Some(65534)).unwrap();
    // Held open through the run: with no lease to ask, Looper must not write into it again.
    let mut held = std::fs::File::open(env.path("to-do.json")).unwrap();
    let mut opened = String::new();
    std::io::Read::read_to_string(&mut held, &mut opened).unwrap();
    let out = env
        .wrapped(
            "setpriv",
            &without_lease,
            &["run", "--worker", &worker, "--reviewer", &reviewer],
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for id in ["T1", "T2", "T3", "T4"] {
        assert_eq!(task(&env, id)["status"], "done", "{stderr}");
        assert!(env.path(&format!("out-{id}.txt")).exists());
    }
    env.looper(&["validate"]).run();
    let mut again = String::new();
    std::io::Seek::rewind(&mut held).unwrap();
    std::io::Read::read_to_string(&mut held, &mut again).unwrap();
    assert_eq!(
        again, opened,
        "the version a reader had open changed under it"
    );
    let updates = env
        .journal()
        .iter()
        .filter(|r| r["type"] == "backlog.update")
        .count();
    assert!(updates >= 8, "{updates} backlog updates");
    let mut files = Vec::new();
    crate::harness::walk(&env.home(), &mut files);
    crate::harness::walk(&env.root(), &mut files);
    let left: Vec<_> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "spare" || e == "tmp"))
        .collect();
    assert!(
        left.is_empty(),
        "parked or left behind after the lease was refused: {left:?}"
    );
}
