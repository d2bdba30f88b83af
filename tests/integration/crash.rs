//! Crash safety: a writer killed with SIGKILL at random moments leaves the backlog valid and
//! equal to either the old or the new version, and the next writer carries on.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Env, Lcg};

#[test]
fn sigkill_at_random_moments_never_corrupts_the_backlog() {
    let trials: usize = std::env::var("LOOPER_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let env = Env::new();
    // A backlog big enough that a write takes a while, so kills land inside writes too.
    env.write("to-do.json", crate::harness::backlog_with(3000));
    env.looper(&["fmt"]).run();
    // Measure how long one add takes, to spread the kills over its whole life.
    let t0 = Instant::now();
    env.looper(&["add", "warm-up"]).run();
    // The spread adapts: under load (CI runs tests in parallel) an add takes longer than the
    // warm-up did, so widen it while kills keep landing before the write, narrow it while
    // they keep landing after.
    let mut span = t0.elapsed().as_micros() as u64 + 1;
    let (mut window_old, mut window_new) = (0, 0);

    let mut rng = Lcg(0x5eed);
    let (mut old_kept, mut new_kept) = (0, 0);
    for trial in 0..trials {
        let before = std::fs::read(env.path("to-do.json")).unwrap();
        let before_doc: Value = serde_json::from_slice(&before).unwrap();
        let n = before_doc["tasks"].as_array().unwrap().len();
        let title = format!("crash trial {trial}");
        let mut child = env.command(&["add", &title]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % span));
        let _ = child.kill();
        let _ = child.wait();

        let after = std::fs::read(env.path("to-do.json")).unwrap();
        let doc: Value = serde_json::from_slice(&after)
            .unwrap_or_else(|e| panic!("trial {trial}: backlog is not JSON after SIGKILL: {e}"));
        let tasks = doc["tasks"].as_array().unwrap();
        if after == before {
            old_kept += 1;
            window_old += 1;
        } else {
            new_kept += 1;
            window_new += 1;
            assert_eq!(tasks.len(), n + 1, "trial {trial}: exactly one task added");
            assert_eq!(tasks[n]["title"], title.as_str(), "trial {trial}");
            assert_eq!(
                &tasks[..n],
                &before_doc["tasks"].as_array().unwrap()[..],
                "trial {trial}: old tasks untouched"
            );
        }
        // No temp file is left looking like a backlog... except a torn temp, which is fine but
        // must never be the backlog itself.
        env.looper(&["validate"]).run();
        if window_old + window_new == 10 {
            if window_new == 0 {
                span *= 2;
            } else if window_old == 0 {
                span = span / 2 + 1;
            }
            (window_old, window_new) = (0, 0);
        }
    }
    // The next writer recovers any interrupted update and carries on.
    env.looper(&["add", "after the storm"])
        .stdout_has("added")
        .run();
    env.looper(&["validate"]).run();
    eprintln!("{trials} kills: old version kept {old_kept} times, new version {new_kept} times");
    crate::figures::record(
        "crash-writer",
        &crate::figures::Figure {
            part: "crash: SIGKILL during `looper add` on a 3,000-task backlog",
            trials: trials as u64,
            // Every trial asserts; reaching this line means none broke the backlog.
            failures: 0,
            meaning: "a writer killed at a random moment of its life leaves the old or the new backlog, valid, never a mix",
            rerun: "LOOPER_CRASH_TRIALS=2000 cargo nextest run -E 'test(sigkill_at_random_moments)'",
        },
    );
    assert!(
        old_kept > 0 && new_kept > 0,
        "kills should land both before and after the write (old {old_kept}, new {new_kept})"
    );
    // The journal stays readable: every complete line parses.
    let journal = env.journal();
    assert!(!journal.is_empty());
}

/// A worker that leaves a grandchild in its group (as a dev server would), does its task and
/// reports; a reviewer that asks for a follow-up task when the outputs number a multiple of
/// three (once per number), and otherwise says done.
fn crash_project() -> std::rc::Rc<Env> {
    let env = Env::new();
    env.looper(&["init"]).run();
    for i in 1..=4 {
        env.looper(&["add", &format!("Crash task {i}")]).run();
    }
    env.write_executable(
        "agents/worker",
        r#"#!/bin/sh
id=$(sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
sleep 3607 > /dev/null 2>&1 &
sleep 0.0$(( $$ % 9 ))
echo "$id" >> "out-$id.txt"
printf '{"task_id": "%s", "status": "done", "summary": "made out-%s.txt"}\n' "$id" "$id"
"#,
    );
    env.write_executable(
        "agents/reviewer",
        r#"#!/bin/sh
cat > /dev/null
n=$(ls out-*.txt | wc -l)
if [ $((n % 3)) -ne 0 ] || [ -e "$HOME/reviewed-$n" ]; then
  echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'
else
  touch "$HOME/reviewed-$n"
  echo '{"status": "reviewed", "summary": "one more", "new_tasks": [{"title": "Follow-up after '$n' outputs", "reason": "missing"}], "done": false}'
fi
"#,
    );
    // The same worker behind the codex adapter, which Looper spawns before the task is marked
    // `doing` and prompts after: like codex, it stops at once when its stdin ends empty (a
    // Looper killed in between).
    env.write_executable(
        "agents/codex-worker",
        r#"#!/bin/sh
id=$(sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
if [ -z "$id" ]; then echo 'no prompt' >&2; exit 1; fi
sleep 3607 > /dev/null 2>&1 &
sleep 0.0$(( $$ % 9 ))
echo "$id" >> "out-$id.txt"
printf '{"type":"item.completed","item":{"id":"m","type":"agent_message","text":"{\\"task_id\\": \\"%s\\", \\"status\\": \\"done\\", \\"summary\\": \\"made out-%s.txt\\"}"}}\n' "$id" "$id"
echo '{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}'
"#,
    );
    env.write(
        "looper.toml",
        format!(
            "[roles]\nworker = \"cmd:./agents/worker\"\nreviewer = [\"cmd:./agents/reviewer\"]\n\n[agents.codex]\nspec = \"codex\"\nprogram = \"{}\"\n",
            env.path("agents/codex-worker").display()
        ),
    );
    crate::run_real::init_repo(&env, "start");
    env
}

/// The process groups named by the agents' notes (a Looper killed while its agent ran).
fn noted_groups(env: &Env) -> Vec<i32> {
    let mut out = Vec::new();
    for project in std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .flatten()
    {
        if let Ok(notes) = std::fs::read_dir(project.path().join("state/agents")) {
            for note in notes.flatten() {
                let text = std::fs::read_to_string(note.path()).unwrap_or_default();
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    out.push(i32::try_from(v["pgid"].as_i64().unwrap()).unwrap());
                }
            }
        }
    }
    out
}

/// Live processes of group `pgid` (zombies excluded), from `/proc`.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X"
        })
    })
}

/// Checks what must hold after any kill: the backlog loads and validates; every task ever
/// seen is still there exactly once with its title; every journal file parses except a torn
/// last line, with `seq` gapless. Returns the task ids and titles.
fn check_after_kill(
    env: &Env,
    seen: &mut std::collections::BTreeMap<String, String>,
    trial: usize,
) {
    let loaded = looper::backlog::load::load(&env.path("to-do.json"))
        .unwrap_or_else(|e| panic!("trial {trial}: the backlog does not load: {e}"));
    let doc = loaded.doc.value();
    let mut ids = std::collections::BTreeSet::new();
    let mut titles = std::collections::BTreeSet::new();
    for t in doc["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap().to_owned();
        let title = t["title"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "trial {trial}: task {id} twice");
        assert!(
            titles.insert(title.clone()),
            "trial {trial}: title {title:?} twice"
        );
        // The project-done marker leaves on purpose when new work reopens the project.
        if t["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&"project-done".into()))
        {
            continue;
        }
        if let Some(old) = seen.insert(id.clone(), title.clone()) {
            assert_eq!(old, title, "trial {trial}: task {id} changed its title");
        }
    }
    for id in seen.keys() {
        assert!(ids.contains(id), "trial {trial}: task {id} was lost");
    }
    for project in std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .flatten()
    {
        for file in std::fs::read_dir(project.path().join("runs"))
            .unwrap()
            .flatten()
        {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read(&path).unwrap();
            let complete = text.ends_with(b"\n");
            let lines: Vec<&[u8]> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let mut last_seq = 0;
            for (i, line) in lines.iter().enumerate() {
                match serde_json::from_slice::<Value>(line) {
                    Ok(r) => {
                        let seq = r["seq"].as_u64().unwrap();
                        assert_eq!(
                            seq,
                            last_seq + 1,
                            "trial {trial}: seq gap in {}",
                            path.display()
                        );
                        last_seq = seq;
                    }
                    // Only the very last line may be torn, and only if it has no newline yet.
                    Err(e) => assert!(
                        i + 1 == lines.len() && !complete,
                        "trial {trial}: line {} of {} does not parse: {e}",
                        i + 1,
                        path.display()
                    ),
                }
            }
        }
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one harness loop with its checks")]
fn sigkill_anywhere_in_a_run_loses_nothing_and_the_next_run_finishes() {
    use std::collections::BTreeMap;
    let trials: usize = std::env::var("LOOPER_CRASH_RUN_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let env = crash_project();
    let mut rng = Lcg(0x00c0_ffee);
    let mut seen = BTreeMap::new();
    let mut orphans: Vec<i32> = Vec::new();
    // Kill delays spread over one whole run, measured first (without a kill).
    let t0 = Instant::now();
    env.looper(&["run"]).run();
    let mut span = t0.elapsed().as_micros() as u64;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for trial in 0..trials {
        check_after_kill(&env, &mut seen, trial);
        // A finished project gets more work, so every trial has a run to interrupt.
        let doc = env.read_json("to-do.json");
        if doc["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "PROJECT-DONE")
        {
            env.looper(&["add", &format!("More work {trial}")]).run();
            env.looper(&["add", &format!("Even more work {trial}")])
                .run();
        }
        let point = crate::harness::pick(looper::fault::POINTS, rng.next());
        // Every other pair of trials, a CLI worker (spawned before its task is marked).
        let worker = if trial / 2 % 2 == 0 {
            "cmd:./agents/worker"
        } else {
            "codex"
        };
        let mut cmd = env.command(&["run", "--worker", worker]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let by_point = trial % 2 == 0;
        if by_point {
            cmd.env("LOOPER_CRASH_AT", format!("{point}:{}", 1 + rng.next() % 2));
        }
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        if !by_point {
            std::thread::sleep(Duration::from_micros(rng.next() % span));
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        let outcome = match (output.status.code(), by_point) {
            (None, true) => format!("killed at {point}"),
            (None, false) => "killed at a random moment".to_owned(),
            (Some(code), _) => {
                assert!(
                    code == 0,
                    "trial {trial}: the run ended with exit {code}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                // Runs get shorter once the first plan is done: aim the kills at this length.
                span = span.min(started.elapsed().as_micros() as u64);
                "finished before the kill".to_owned()
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
        // A group whose note is gone was ended by a later start (or ended on its own).
        orphans.retain(|g| {
            noted_groups(&env).contains(g) || {
                assert!(
                    !group_alive(*g),
                    "trial {trial}: agent group {g} outlived its note"
                );
                false
            }
        });
        for g in noted_groups(&env) {
            if !orphans.contains(&g) {
                orphans.push(g);
            }
        }
    }
    check_after_kill(&env, &mut seen, trials);
    // The next run resumes whatever was cut off and reaches a reviewed done.
    env.looper(&["run"]).stderr_has("done").run();
    check_after_kill(&env, &mut seen, trials + 1);
    for g in &orphans {
        assert!(!group_alive(*g), "agent group {g} was never ended");
    }
    assert!(noted_groups(&env).is_empty());
    // Nothing half-written is left: a killed write's temp file goes with the next write.
    let temps: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".to-do.json.") && n.contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "left behind: {temps:?}");
    let doc = env.read_json("to-do.json");
    for t in doc["tasks"].as_array().unwrap() {
        assert_eq!(t["status"], "done", "{t}");
        let id = t["id"].as_str().unwrap();
        if id != "PROJECT-DONE" {
            assert!(
                env.path(&format!("out-{id}.txt")).exists(),
                "no work for {id}"
            );
        }
    }
    // The CLI worker did its share of the work.
    let (mut codex, mut cli_worked) = (None, 0);
    for r in env.journal() {
        match r["type"].as_str() {
            Some("agent.spawn") => codex = Some(r["spec"].as_str() == Some("codex")),
            Some("agent.exit") if codex == Some(true) && r["class"]["class"] == "ok" => {
                cli_worked += 1;
            }
            _ => {}
        }
    }
    assert!(
        cli_worked > 2,
        "the codex worker finished {cli_worked} runs"
    );
    // Replaying every journaled change from the first snapshot gives today's backlog.
    env.looper(&["audit"]).run();
    assert!(
        !env.records("agent.orphans").is_empty(),
        "no orphan was ever left to end"
    );
    let killed: u64 = outcomes
        .iter()
        .filter(|(k, _)| k.starts_with("killed"))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "{trials} trials, {killed} kills: {outcomes:#?}, {} tasks",
        seen.len()
    );
    assert!(
        killed * 2 > trials as u64,
        "most trials should kill the run: {outcomes:?}"
    );
    crate::figures::record(
        "crash-run",
        &crate::figures::Figure {
            part: "crash: SIGKILL anywhere in `looper run`",
            trials: trials as u64,
            failures: 0,
            meaning: "`looper run` killed at a crash point (backlog write phases, journal append with a torn line, git commit, agent spawn, review) or at a random moment, with a `cmd:` worker or (every other pair of trials) one behind the codex adapter, which is spawned before its task is marked and prompted after; after each kill the backlog validates, no task is lost or doubled, the journal parses, the next start ends the orphaned agent group; the last run reaches done and `looper audit` replays the whole history",
            rerun: "LOOPER_CRASH_RUN_TRIALS=3000 cargo nextest run -E 'test(sigkill_anywhere)'",
        },
    );
}
