//! Interleaving and resilience (#6, DESIGN §6): worker schedules, task pins, escalation,
//! fallback on a rate limit, refused credentials or a missing CLI, waits for a persisted
//! reset that survive a restart, and the reviewer ensemble's union.

use std::rc::Rc;

use serde_json::Value;

use crate::harness::Env;

/// A fake agent speaking codex's JSONL (so Looper's codex parser classifies its failures):
/// `agents/NAME`, run through a `[agents.NAME]` profile with `spec = "codex"`. While the file
/// `agents/NAME.limit` exists and holds a number, each run fails with a rate limit of that
/// many seconds (and removes the file when it holds `once`); `agents/NAME.auth` makes it fail
/// with a 401. Otherwise it runs `work` (with `$id` set) and reports done.
fn codex_agent(env: &Env, name: &str, work: &str) -> String {
    let script = format!(
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
echo '{{"type":"thread.started","thread_id":"t"}}'
echo '{{"type":"turn.started"}}'
if [ -f agents/{name}.limit ]; then
  secs=$(head -1 agents/{name}.limit)
  grep -q once agents/{name}.limit && rm agents/{name}.limit
  echo '{{"type":"turn.failed","error":{{"message":"Rate limit reached for gpt-5 on tokens per min. Please try again in '"${{secs%% *}}"'s."}}}}'
  exit 1
fi
if [ -f agents/{name}.auth ]; then
  echo '{{"type":"turn.failed","error":{{"message":"unexpected status 401 Unauthorized: Missing bearer or basic authentication in header"}}}}'
  exit 1
fi
{work}
if [ -n "$id" ]; then
  text='{{\"task_id\": \"'"$id"'\", \"status\": \"done\", \"summary\": \"by {name}\"}}'
else
  text='{{\"status\": \"reviewed\", \"summary\": \"fine\", \"new_tasks\": [], \"done\": true}}'
fi
echo '{{"type":"item.completed","item":{{"id":"i0","type":"agent_message","text":"'"$text"'"}}}}'
echo '{{"type":"turn.completed","usage":{{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}}}'
"#
    );
    env.write_executable(&format!("agents/{name}"), script);
    format!(
        "[agents.{name}]\nspec = \"codex\"\nprogram = \"{}\"\n",
        env.path(&format!("agents/{name}")).display()
    )
}

/// A `cmd:` worker that writes `out-<id>.txt` (with its own name) and reports done.
fn cmd_worker(env: &Env, name: &str) -> String {
    let script = format!(
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
echo {name} >> "out-$id.txt"
printf '{{"task_id": "%s", "status": "done", "summary": "by {name}"}}\n' "$id"
"#
    );
    env.write_executable(&format!("agents/{name}"), script);
    format!("cmd:./agents/{name}")
}

const DONE_REVIEWER: &str =
    r#"echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'"#;

fn project(titles: &[&str], config: &str) -> Rc<Env> {
    let env = Env::new();
    env.looper(&["init"]).run();
    for t in titles {
        env.looper(&["add", t]).run();
    }
    env.write_executable(
        "agents/reviewer",
        format!("#!/bin/sh\ncat >/dev/null\n{DONE_REVIEWER}\n"),
    );
    env.write(
        "looper.toml",
        format!("[roles]\nreviewer = \"cmd:./agents/reviewer\"\n{config}"),
    );
    env
}

/// `(task, agent spec, why)` of every iteration, in order.
fn iterations(env: &Env) -> Vec<(String, String, String)> {
    env.records("iteration.start")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("task"), s("agent"), s("why"))
        })
        .collect()
}

fn agents_of(env: &Env) -> Vec<String> {
    iterations(env).into_iter().map(|(_, a, _)| a).collect()
}

fn task(env: &Env, id: &str) -> Value {
    env.read_json("to-do.json")["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap()
}

#[test]
fn odd_even_alternates_and_a_review_does_not_shift_the_turn() {
    let env = project(&["One", "Two"], "");
    let a = cmd_worker(&env, "a");
    let b = cmd_worker(&env, "b");
    // The first review asks for a third task; the second says done.
    env.write_executable(
        "agents/reviewer",
        r#"#!/bin/sh
cat >/dev/null
if [ -f out-T3.txt ]; then
  echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'
else
  echo '{"status": "reviewed", "summary": "one more", "new_tasks": [{"title": "Three"}], "done": false}'
fi
"#,
    );
    env.write(
        "looper.toml",
        format!(
            "[roles]\nreviewer = \"cmd:./agents/reviewer\"\nschedule = \"odd-even\"\nodd = \"{a}\"\neven = \"{b}\"\n"
        ),
    );
    env.looper(&["run"]).run();
    assert_eq!(agents_of(&env), [a.as_str(), &b, &a]);
    let whys: Vec<String> = iterations(&env).into_iter().map(|(_, _, w)| w).collect();
    assert_eq!(
        whys,
        [
            "odd-even: task iteration 1 is odd",
            "odd-even: task iteration 2 is even",
            "odd-even: task iteration 3 is odd"
        ]
    );
    assert_eq!(env.read("out-T3.txt"), "a\n");
}

#[test]
fn a_round_robin_list_from_the_flag_takes_turns() {
    let env = project(&["One", "Two", "Three", "Four"], "");
    let a = cmd_worker(&env, "a");
    let b = cmd_worker(&env, "b");
    env.looper(&["run", "--schedule", &format!("{a},{a},{b}")])
        .run();
    assert_eq!(agents_of(&env), [a.as_str(), &a, &b, &a]);
    let start = env.records("run.start");
    assert_eq!(start[0]["schedule"]["kind"], "round-robin");
}

#[test]
fn a_task_pin_wins_and_escalation_follows_failed_attempts() {
    let env = project(&["Pinned", "Hard"], "");
    let b = cmd_worker(&env, "b");
    // `weak` never finishes T2 (no file changed, no reason): two attempts, then `strong`.
    env.write_executable(
        "agents/weak",
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
printf '{"task_id": "%s", "status": "done", "summary": "claimed"}\n' "$id"
"#,
    );
    let strong = cmd_worker(&env, "strong");
    env.looper(&[
        "update",
        "--arg",
        "agent",
        &b,
        r#"(.tasks[] | select(.id == "T1") | .agent) = $agent"#,
    ])
    .run();
    env.write(
        "looper.toml",
        format!(
            "[roles]\nreviewer = \"cmd:./agents/reviewer\"\nworker = \"cmd:./agents/weak\"\nescalate = \"{strong}\"\n[loop]\nescalate_after = 2\n"
        ),
    );
    env.looper(&["run"]).run();
    let its = iterations(&env);
    assert_eq!(its[0].0, "T1");
    assert_eq!(its[0].1, b);
    assert!(
        its[0].2.starts_with("pinned: task T1 names agent"),
        "{its:?}"
    );
    let t2: Vec<_> = its.iter().filter(|(t, _, _)| t == "T2").collect();
    assert_eq!(t2.len(), 3, "{its:?}");
    assert_eq!(t2[0].1, "cmd:./agents/weak");
    assert_eq!(t2[1].1, "cmd:./agents/weak");
    assert_eq!(t2[2].1, strong);
    assert_eq!(t2[2].2, "escalated: task T2 failed 2 attempt(s)");
    assert_eq!(task(&env, "T2")["status"], "done");
    assert_eq!(env.read("out-T2.txt"), "strong\n");
}

#[test]
fn a_rate_limited_worker_falls_back_without_spending_an_attempt() {
    let env = project(&["One", "Two"], "");
    let profile = codex_agent(&env, "lim", r#"echo lim >> "out-$id.txt""#);
    env.write("agents/lim.limit", "300");
    let good = cmd_worker(&env, "good");
    env.write(
        "looper.toml",
        format!(
            "[roles]\nworker = \"lim\"\nfallback = [\"{good}\"]\nreviewer = \"cmd:./agents/reviewer\"\n{profile}"
        ),
    );
    env.looper(&["run"])
        .stderr_has("the review declared the project done")
        .run();
    // iter-1: lim is limited (deferred, no attempt); iter-2 and 3: the fallback.
    let its = iterations(&env);
    assert_eq!(its.len(), 3, "{its:?}");
    assert_eq!(its[0].1, "codex");
    assert_eq!(its[1].1, good);
    assert!(
        its[1]
            .2
            .starts_with("fallback: `lim` is rate-limited, retry after 300s"),
        "{its:?}"
    );
    let ends = env.records("iteration.end");
    assert_eq!(ends[0]["outcome"], "deferred");
    assert!(
        task(&env, "T1").get("attempts").is_none(),
        "{}",
        task(&env, "T1")
    );
    assert_eq!(env.records("agent.limited")[0]["agent"], "lim");
    // The limit is on disk for the next run, about 300 s away.
    let limits: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(env.home().join("projects"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
                .join("state/limits.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let until: jiff::Timestamp = limits["limits"]["lim"]["until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = until.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((250..=300).contains(&left), "{limits}");
}

#[test]
fn refused_credentials_and_a_missing_cli_fall_back() {
    let env = project(&["One"], "");
    let profile = codex_agent(&env, "locked", "true");
    env.write("agents/locked.auth", "");
    let good = cmd_worker(&env, "good");
    env.write(
        "looper.toml",
        format!(
            "[roles]\nworker = \"locked\"\nfallback = [\"{good}\"]\nreviewer = \"cmd:./agents/reviewer\"\n{profile}"
        ),
    );
    env.looper(&["run"]).run();
    let its = iterations(&env);
    assert_eq!(its.len(), 2, "{its:?}");
    assert!(
        its[1].2.contains("`locked` refused its credentials"),
        "{its:?}"
    );
    assert_eq!(env.records("agent.unavailable").len(), 1);

    // A worker whose CLI is not installed: a warning, and the fallback works from the start.
    env.looper(&["add", "Two"]).run();
    env.looper(&[
        "run",
        "--worker",
        "claude:opus",
        "--fallback",
        &good,
        "--reviewer",
        "cmd:./agents/reviewer",
    ])
    .env("PATH", "/usr/bin:/bin")
    .stderr_has("warning: the worker agent `claude:opus` needs `claude`, which is not found")
    .run();
    let its = iterations(&env);
    let last = its.last().unwrap();
    assert_eq!(last.1, good);
    assert!(last.2.contains("`claude:opus` needs `claude`"), "{its:?}");

    // Without a fallback, refused credentials end the run with what to do.
    env.write(
        "looper.toml",
        format!("[roles]\nworker = \"locked\"\nreviewer = \"cmd:./agents/reviewer\"\n{profile}"),
    );
    env.looper(&["add", "Three"]).run();
    env.looper(&["run"])
        .status(1)
        .stderr_has("no agent can work on task T3: `locked` refused its credentials: log in to the codex CLI")
        .run();
    assert_eq!(task(&env, "T3")["status"], "todo");
}

/// Every agent limited: the run waits for the reset, journaled; killed while waiting, the next
/// run waits for the same reset instead of calling the agent again; a reset beyond the time
/// budget ends the run at once with exit 3.
#[test]
fn a_wait_for_a_reset_survives_a_restart() {
    let env = project(&["One"], "");
    let profile = codex_agent(&env, "lim", r#"echo lim >> "out-$id.txt""#);
    env.write("agents/lim.limit", "4 once");
    env.write(
        "looper.toml",
        format!("[roles]\nworker = \"lim\"\nreviewer = \"cmd:./agents/reviewer\"\n{profile}"),
    );
    let mut child = env
        .command(&["run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.wait_for_records("agent.wait", 1);
    // `status` shows the wait and the time left; `tail` the reason.
    let status = env.looper(&["status"]).run().stdout();
    assert!(
        status.contains("waiting   pid")
            && status.contains("left)")
            && status.contains("`lim` is rate-limited"),
        "{status}"
    );
    let tail = env.looper(&["tail"]).run().stdout();
    assert!(tail.contains("waiting until"), "{tail}");
    child.kill().unwrap();
    child.wait().unwrap();
    let wait = &env.records("agent.wait")[0];
    let until: jiff::Timestamp = wait["until"].as_str().unwrap().parse().unwrap();
    assert!(
        wait["why"]
            .as_str()
            .unwrap()
            .contains("`lim` is rate-limited, retry after 4s"),
        "{wait}"
    );

    let ran = env.looper(&["run"]).run();
    let finished = jiff::Timestamp::now();
    assert!(
        finished >= until,
        "the restarted run did not wait for {until}"
    );
    assert!(
        ran.stderr()
            .contains("the review declared the project done")
    );
    // Two waits (one per run), one limited agent run, then one good one.
    assert_eq!(env.records("agent.wait").len(), 2);
    assert_eq!(env.records("agent.limited").len(), 1);
    assert_eq!(env.read("out-T1.txt"), "lim\n");
    // The second run's spawn of the worker came after the reset.
    let spawns = env.records("agent.spawn");
    let last_worker: jiff::Timestamp = spawns.iter().rev().find(|r| r["role"] == "worker").unwrap()
        ["ts"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last_worker >= until, "{last_worker} < {until}");

    // A reset beyond --max-duration: exit 3 at once.
    env.looper(&["add", "Two"]).run();
    env.write("agents/lim.limit", "600");
    let started = std::time::Instant::now();
    env.looper(&["run", "--max-duration", "30s"])
        .status(3)
        .stderr_has("every agent is rate-limited past the time budget")
        .run();
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn the_ensemble_merges_near_duplicate_titles() {
    let env = project(&["First"], "");
    let worker = cmd_worker(&env, "w");
    for (name, titles) in [
        (
            "ra",
            r#"[{"title": "Add tests for the parser."}, {"title": "Write docs"}]"#,
        ),
        (
            "rb",
            r#"[{"title": "add  tests for the Parser"}, {"title": "Document the CLI"}]"#,
        ),
    ] {
        env.write_executable(
            &format!("agents/{name}"),
            format!(
                r#"#!/bin/sh
cat >/dev/null
if [ -f out-T2.txt ]; then
  echo '{{"status": "reviewed", "summary": "ok", "new_tasks": [], "done": true}}'
else
  echo '{{"status": "reviewed", "summary": "more", "new_tasks": {titles}, "done": false}}'
fi
"#
            ),
        );
    }
    env.looper(&[
        "run",
        "--worker",
        &worker,
        "--reviewer",
        "cmd:./agents/ra",
        "--reviewer",
        "cmd:./agents/rb",
    ])
    .run();
    let titles: Vec<String> = env.read_json("to-do.json")["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        titles,
        [
            "First",
            "Add tests for the parser.",
            "Write docs",
            "Document the CLI",
            "Project done"
        ]
    );
    let dropped = env.records("task.dropped");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["title"], "add  tests for the Parser");
}

/// A backlog as the original looper wrote it.
const ORIGINAL_TODO: &str = r#"{
  "schema_version": 1,
  "project": {"name": "legacy", "root": "."},
  "source_files": ["README.md"],
  "tasks": [
    {"id": "T1", "title": "Create a.txt", "priority": 1, "status": "todo",
     "details": "", "steps": ["write it"], "blockers": [], "files": ["a.txt"], "depends_on": [],
     "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z"},
    {"id": "T2", "title": "Create b.txt", "priority": 2, "status": "todo",
     "details": "", "steps": [], "blockers": [], "files": [], "depends_on": ["T1"]},
    {"id": "T3", "title": "Create c.txt", "priority": 3, "status": "todo"}
  ]
}
"#;

/// The original looper's setup: its to-do.json, its variables, its flags, and `codex` and
/// `claude` on `PATH` (here fakes speaking each CLI's JSON stream). It runs unchanged: the
/// odd-even schedule alternates the two, the models come from `CODEX_MODEL` and
/// `CLAUDE_MODEL`, journals go under `LOOPER_BASE_DIR`, `LOOPER_HOOK` gets its four
/// arguments, and `--ls`, `--tail` and `--doctor` work.
#[test]
fn a_project_set_up_for_the_original_looper_runs_unchanged() {
    let env = Env::new();
    env.write("to-do.json", ORIGINAL_TODO);
    env.write("README.md", "# legacy\n");
    // The fakes live in a bin directory on PATH under the CLIs' own names.
    let codex_profile = codex_agent(
        &env,
        "codex",
        r#"[ -n "$id" ] && echo codex >> "out-$id.txt""#,
    );
    let _ = codex_profile;
    std::fs::create_dir_all(env.path("bin")).unwrap();
    std::fs::rename(env.path("agents/codex"), env.path("bin/codex")).unwrap();
    env.write_executable(
        "bin/claude",
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
echo claude >> "out-$id.txt"
echo "$@" > claude-args.txt
text='{\"task_id\": \"'"$id"'\", \"status\": \"done\", \"summary\": \"by claude\"}'
echo '{"type":"system","subtype":"init","session_id":"s","tools":[],"model":"m"}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"'"$text"'","usage":{"input_tokens":3,"output_tokens":2},"total_cost_usd":0.001}'
"#,
    );
    env.write_executable(
        "hook.sh",
        "#!/bin/sh\necho \"$1 $2 $(basename \"$3\") $4\" >> hook.log\n",
    );
    let base = env.root().parent().unwrap().join("base");
    let path = format!(
        "{}:{}",
        env.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let legacy = |args: &[&str]| {
        let mut cmd = env.command(args);
        cmd.env_remove("LOOPER_HOME")
            .env("LOOPER_BASE_DIR", &base)
            .env("PATH", &path)
            .env("MAX_ITERATIONS", "10")
            .env("LOOPER_ITER_SCHEDULE", "odd-even")
            .env("LOOPER_REVIEW_AGENT", "codex")
            .env("LOOP_DELAY_SECONDS", "0")
            .env("LOOPER_HOOK", env.path("hook.sh"))
            .env("CODEX_MODEL", "gpt-5.5")
            .env("CLAUDE_MODEL", "sonnet");
        cmd.output().unwrap()
    };
    let out = legacy(&["to-do.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the review declared the project done"),
        "{stderr}"
    );
    // Odd iterations codex (with CODEX_MODEL), even ones claude (with CLAUDE_MODEL).
    for (file, who) in [
        ("out-T1.txt", "codex\n"),
        ("out-T2.txt", "claude\n"),
        ("out-T3.txt", "codex\n"),
    ] {
        assert_eq!(env.read(file), who, "{file}");
    }
    assert!(env.read("claude-args.txt").contains("--model sonnet"));
    assert_eq!(
        env.read("hook.log"),
        "T1 done iter-1.last.json iter-1\nT2 done iter-2.last.json iter-2\nT3 done iter-3.last.json iter-3\n"
    );
    // The journal is under LOOPER_BASE_DIR, not the default home.
    let projects: Vec<_> = std::fs::read_dir(base.join("projects")).unwrap().collect();
    assert_eq!(projects.len(), 1);
    assert!(!env.home().exists());

    let ls = legacy(&["--ls", "done", "to-do.json"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.status.success() && text.contains("T1") && text.contains("T3"),
        "{text}"
    );
    let tail = legacy(&["--tail"]);
    let text = String::from_utf8_lossy(&tail.stdout);
    assert!(text.contains("review: the project is done"), "{text}");
    let doctor = legacy(&["--doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("codex") && text.contains("claude"), "{text}");

    // `--interleave` without `--iter-schedule` gives every iteration to claude, as the
    // original did, whatever LOOPER_ITER_SCHEDULE says.
    env.looper(&["add", "Create d.txt"]).run();
    let out = legacy(&["--interleave", "--smart"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.read("out-T4.txt"), "claude\n");
}

/// The bootstrap agent falls back too: a rate-limited planner hands the plan to the next agent.
#[test]
fn a_rate_limited_bootstrap_agent_falls_back() {
    let env = Env::new();
    env.write("SPEC.md", "# Spec\nCreate one file.\n");
    let profile = codex_agent(&env, "lim", "true");
    env.write("agents/lim.limit", "300");
    env.write_executable(
        "agents/planner",
        r#"#!/bin/sh
cat >/dev/null
echo '{"source_files": ["SPEC.md"], "tasks": [{"title": "Create one file", "priority": 1}]}'
"#,
    );
    let good = cmd_worker(&env, "good");
    env.write_executable(
        "agents/reviewer",
        format!("#!/bin/sh\ncat >/dev/null\n{DONE_REVIEWER}\n"),
    );
    env.write(
        "looper.toml",
        format!(
            "[roles]\nbootstrap = \"lim\"\nworker = \"{good}\"\nfallback = [\"cmd:./agents/planner\"]\nreviewer = \"cmd:./agents/reviewer\"\n{profile}"
        ),
    );
    env.looper(&["run"])
        .stderr_has("the review declared the project done")
        .run();
    let fallback = env.records("agent.fallback");
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert_eq!(fallback[0]["role"], "bootstrap");
    assert_eq!(fallback[0]["configured"], "lim");
    assert_eq!(fallback[0]["agent"], "cmd:./agents/planner");
    assert_eq!(env.read("out-T1.txt"), "good\n");
}
