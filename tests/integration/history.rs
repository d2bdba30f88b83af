//! The journal's readers (`log`, `show`, `status`, `tail`, `stats`, `replay`, `audit`,
//! `diff`), after a run and with a torn last line (as while a run is appending).

use std::io::Write as _;

use serde_json::Value;

use crate::harness::Env;

/// A fake agent: does its task (T2 fails once, with no report); the review says done.
const AGENT: &str = r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
if [ -n "$id" ]; then
  if [ "$id" = T2 ] && [ ! -e agents/tried ]; then : > agents/tried; echo "forgot the report"; exit 0; fi
  echo "$id" > "out-$id.txt"
  echo "{\"task_id\": \"$id\", \"status\": \"done\", \"summary\": \"made out-$id.txt\"}"
else
  echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'
fi
"#;

/// A project whose run does T1, fails T2 once (no report), then does T2.
pub(crate) fn worked_project() -> std::rc::Rc<Env> {
    let env = Env::new();
    env.looper(&["init"]).run();
    for t in ["First", "Second"] {
        env.looper(&["add", t]).run();
    }
    env.write_executable("agents/agent", AGENT);
    env.looper(&[
        "run",
        "--worker",
        "cmd:./agents/agent",
        "--reviewer",
        "cmd:./agents/agent",
    ])
    .run();
    env
}

/// The journal file of the project's (first) run.
pub(crate) fn run_journal(env: &Env) -> std::path::PathBuf {
    let runs = std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("runs");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl") && !p.to_string_lossy().contains("-cmd")
        })
        .collect();
    files.sort();
    files.remove(0)
}

fn json(out: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn log_lists_every_iteration_with_its_outcome() {
    let env = worked_project();
    let out = env.looper(&["log"]).run().stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("WHEN (UTC)"), "{out}");
    for (line, step, task, outcome) in [
        (lines[1], "iter-1", "T1", "done"),
        (lines[2], "iter-2", "T2", "attempt"),
        (lines[3], "iter-3", "T2", "done"),
    ] {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &cols[3..7],
            [step, task, "cmd:./agents/agent", outcome],
            "{line}"
        );
    }

    let t2 = json(
        &env.looper(&["log", "--task", "T2", "--json"])
            .run()
            .stdout(),
    );
    let outcomes: Vec<&str> = t2.iter().map(|i| i["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["attempt", "done"]);
    assert!(
        t2[0]["note"]
            .as_str()
            .unwrap()
            .contains("holds no JSON report"),
        "{}",
        t2[0]
    );
    assert_eq!(t2[1]["changed"], serde_json::json!(["out-T2.txt"]));

    env.looper(&["log", "--task", "T9"])
        .stdout_is("no iteration has worked on T9 yet\n")
        .run();
}

#[test]
fn show_tells_everything_about_an_iteration_or_a_task() {
    let env = worked_project();
    env.looper(&["show", "2"])
        .stdout_has("iter-2 of run ")
        .stdout_has(": task T2\n")
        .stdout_has("outcome   attempt")
        .stdout_has("report    invalid:")
        .stdout_has("backlog   status ")
        .stdout_has("            T2: status \"todo\" -> \"doing\"")
        .stdout_has("            T2: attempts ")
        .stdout_has("prompt    sha256 ")
        .stdout_has("    | ## Your task: T2 ")
        .run();
    let t1 = json(&env.looper(&["show", "T1", "--json"]).run().stdout());
    assert_eq!(t1.len(), 1);
    assert_eq!(t1[0]["label"], "iter-1");
    assert_eq!(t1[0]["report"]["report"]["status"], "done");
    // The `doing` mark and the completion, each with its jq program and arguments.
    let sources: Vec<&str> = t1[0]["backlog_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["status", "complete"]);
    assert_eq!(
        json(&env.looper(&["show", "T2", "--json"]).run().stdout()).len(),
        2
    );

    env.looper(&["show", "9"])
        .status(1)
        .stderr_has("no run has an iteration iter-9: `looper log` lists the iterations")
        .run();
    env.looper(&["show", "T7"])
        .status(1)
        .stderr_has("no iteration has worked on a task T7")
        .run();
}

#[test]
fn a_torn_last_line_does_not_stop_the_readers() {
    let env = worked_project();
    let run = run_journal(&env);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&run)
        .unwrap()
        .write_all(b"{\"v\":1,\"seq\":99,\"type\":\"iteration.st")
        .unwrap();
    let out = env.looper(&["log"]).run().stdout();
    assert_eq!(out.lines().count(), 4, "{out}");
    env.looper(&["show", "3"])
        .stdout_has("outcome   done")
        .run();
}

#[test]
fn status_shows_progress_the_last_run_and_recent_outcomes() {
    let env = worked_project();
    let out = env.looper(&["status"]).run().stdout();
    assert!(
        out.contains("progress  [####################] 2/2 done · 0 todo · 0 doing · 0 blocked · project done"),
        "{out}"
    );
    assert!(
        out.contains("the review declared the project done (exit 0)"),
        "{out}"
    );
    let recent: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("recent"))
        .collect();
    assert_eq!(recent.len(), 3, "{out}");
    assert!(recent[0].contains("iter-3   T2         done"), "{out}");
    assert!(recent[1].contains("iter-2   T2         attempt"), "{out}");

    let status: Value =
        serde_json::from_str(&env.looper(&["status", "--json"]).run().stdout()).unwrap();
    assert_eq!(status["counts"]["done"], 2);
    assert_eq!(status["running"], Value::Null);
    assert_eq!(status["last_run"]["exit_code"], 0);
    assert_eq!(status["recent"].as_array().unwrap().len(), 3);
}

/// A task marked done by hand in the file is not counted as done, and `status` says Looper
/// refuses it at its next write; once Looper has written, nothing is left to say.
#[test]
fn status_does_not_count_a_completion_made_outside_looper() {
    let env = Env::new();
    env.looper(&["init"]).run();
    env.looper(&["add", "write the parser"]).run();
    env.looper(&["add", "write the docs"]).run();
    let text = std::fs::read_to_string(env.path("to-do.json")).unwrap();
    env.write("to-do.json", text.replacen("\"todo\"", "\"done\"", 1));
    let out = env.looper(&["status"]).run().stdout();
    assert!(out.contains("0/2 done · 2 todo"), "{out}");
    assert!(
        out.contains("refused   T1 marked done outside Looper"),
        "{out}"
    );
    let status: Value =
        serde_json::from_str(&env.looper(&["status", "--json"]).run().stdout()).unwrap();
    assert_eq!(status["counts"]["done"], 0);
    assert_eq!(status["refused"], serde_json::json!(["T1"]));
    env.looper(&["fmt"]).run();
    let out = env.looper(&["status"]).run().stdout();
    assert!(!out.contains("refused"), "{out}");
    let status: Value =
        serde_json::from_str(&env.looper(&["status", "--json"]).run().stdout()).unwrap();
    assert_eq!(status["refused"], serde_json::json!([]));
    // A project-done marker added by hand: the project is not done.
    env.add_marker_by_hand("T3");
    let out = env.looper(&["status"]).run().stdout();
    assert!(
        out.contains("0/2 done · 2 todo · 0 doing · 0 blocked\n"),
        "{out}"
    );
    assert!(
        out.contains("refused   T3 (project-done marker) added outside Looper"),
        "{out}"
    );
    assert!(!out.contains("T3 marked done"), "{out}");
}

#[test]
fn status_shows_the_iteration_going_on_now() {
    let env = Env::new();
    env.looper(&["init"]).run();
    env.looper(&["add", "Slow"]).run();
    // Holds until the test writes agents/release.
    env.write_executable(
        "agents/agent",
        "#!/bin/sh\ncat > /dev/null\nwhile [ ! -e agents/release ]; do sleep 0.05; done\necho '{\"task_id\": \"T1\", \"status\": \"blocked\", \"summary\": \"no\", \"blockers\": [\"x\"]}'\n",
    );
    let mut run = env
        .command(&[
            "run",
            "--worker",
            "cmd:./agents/agent",
            "--reviewer",
            "cmd:./agents/agent",
            "--max-iterations",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.wait_for_records("agent.spawn", 1);
    let out = env.looper(&["status"]).run().stdout();
    env.write("agents/release", "");
    run.wait().unwrap();
    assert!(
        out.contains(&format!("running   pid {}, run ", run.id())),
        "{out}"
    );
    assert!(
        out.contains(": iter-1 on T1 with cmd:./agents/agent, "),
        "{out}"
    );
    assert!(out.contains("0/1 done · 0 todo · 1 doing"), "{out}");
    env.looper(&["status"])
        .stdout_has("running   no\nlast run  ")
        .run();
}

#[test]
fn tail_prints_readable_lines_and_follows_into_the_next_run() {
    let env = worked_project();
    let out = env.looper(&["tail"]).run().stdout();
    for expected in [
        " ── run ",
        " iter-1    T1 with cmd:./agents/agent (next)\n",
        " iter-2    report invalid: the final message holds no JSON report object\n",
        " iter-2    T2 → attempt: ",
        " iter-3    report: done — made out-T2.txt\n",
        " ended: the review declared the project done (exit 0)\n",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    env.looper(&["tail", "--run", "nope"])
        .status(1)
        .stderr_has("no run nope in ")
        .run();

    // -f: a new run shows up without asking, within the poll interval.
    let mut tail = env
        .command(&["tail", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The tail of the first run comes first.
    let first = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert!(!first.is_empty());
    env.looper(&[
        "run",
        "--worker",
        "cmd:./agents/agent",
        "--reviewer",
        "cmd:./agents/agent",
    ])
    .stderr_has("already done")
    .run();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("ended: ") && l.contains("already done"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("tail -f did not show the second run ({e}): {seen:#?}"));
        seen.push(line);
    }
    tail.kill().unwrap();
    tail.wait().unwrap();
}

#[test]
fn stats_count_iterations_reviews_and_spend() {
    let env = worked_project();
    env.looper(&["stats"])
        .stdout_has("iterations        3 (2 done, 1 not)\n")
        .stdout_has("review passes     1\n")
        .stdout_has("per task          2 tasks, 1.5 iterations each on average, at most 2\n")
        .stdout_has("cost unknown")
        .run();
    let s: Value = serde_json::from_str(&env.looper(&["stats", "--json"]).run().stdout()).unwrap();
    assert_eq!(s["runs"], 1);
    let agent = &s["by_agent"]["cmd:./agents/agent"];
    assert_eq!(
        (agent["iterations"].as_u64(), agent["done"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["by_task"]["T2"]["iterations"], 2);
    assert!(s["iteration_ms_median"].as_u64().is_some());
    // Every project under LOOPER_HOME: this one is the only one.
    let all: Value = serde_json::from_str(
        &env.looper(&["stats", "--all-projects", "--json"])
            .run()
            .stdout(),
    )
    .unwrap();
    assert_eq!(all["iterations"], 3);
}

#[test]
fn replay_renders_a_run_as_tail_showed_it() {
    let env = worked_project();
    let run = env.records("run.start")[0]["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let replayed = env.looper(&["replay", &run]).run().stdout();
    let tailed = env.looper(&["tail", "--run", &run]).run().stdout();
    assert!(tailed.lines().count() < 40, "the whole run fits in tail");
    assert_eq!(replayed, tailed);
    // At a speed, the same lines, paced.
    env.looper(&["replay", &run, "--speed", "1000"])
        .stdout_is(&replayed)
        .run();
    env.looper(&["replay", &run, "--speed", "0"])
        .status(2)
        .stderr_has("--speed must be above 0, got 0")
        .run();
    env.looper(&["replay", "nope"])
        .status(1)
        .stderr_has("no run nope in ")
        .run();
}

#[test]
fn audit_replays_every_change_and_names_external_edits() {
    let env = worked_project();
    // A person's edit, then a change through Looper that takes it in.
    let mut doc = env.read_json("to-do.json");
    doc["tasks"][0]["title"] = "Renamed by hand".into();
    env.write("to-do.json", format!("{doc:#}\n"));
    env.looper(&["add", "Third"]).run();
    let out = env.looper(&["audit"]).run().stdout();
    assert!(out.contains("1 external changes"), "{out}");
    assert!(
        out.contains("T1: title \"First\" -> \"Renamed by hand\""),
        "{out}"
    );
    assert!(
        out.contains("ok: the replay reproduces to-do.json byte for byte"),
        "{out}"
    );
    let v: Value = serde_json::from_str(&env.looper(&["audit", "--json"]).run().stdout()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["matches"], true);
    assert_eq!(v["replayed_sha256"], v["disk_sha256"]);
    assert!(v["updates"].as_u64().unwrap() >= 8, "{v}");

    // An edit Looper has not seen yet: the file is not what the journal says.
    env.write("to-do.json", format!("{doc:#}\n"));
    let out = env.looper(&["audit"]).status(1).run().stdout();
    assert!(
        out.contains("FAILED: the replay gives sha256")
            && out.contains("it was changed after Looper last saw it"),
        "{out}"
    );
}

#[test]
fn audit_names_the_record_where_a_forged_journal_breaks_the_chain() {
    let env = worked_project();
    // Forge the run's journal: the update that marked T2 doing now names T1.
    let run = run_journal(&env);
    let mut forged_seq = 0;
    let mut text = String::new();
    for line in std::fs::read_to_string(&run).unwrap().lines() {
        let mut r: Value = serde_json::from_str(line).unwrap();
        if forged_seq == 0 && r["type"] == "backlog.update" && r["args"]["id"] == "T2" {
            forged_seq = r["seq"].as_u64().unwrap();
            r["args"]["id"] = "T1".into();
            text.push_str(&r.to_string());
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    assert!(forged_seq > 0);
    std::fs::write(&run, text).unwrap();
    let out = env.looper(&["audit"]).status(1).run().stdout();
    assert!(
        out.contains("BROKEN at run ")
            && out.contains(&format!(" seq {forged_seq} (backlog.update")),
        "{out}"
    );
    assert!(out.contains("could not be checked"), "{out}");
    let v: Value =
        serde_json::from_str(&env.looper(&["audit", "--json"]).status(1).run().stdout()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["breaks"][0]["at"]["seq"], forged_seq);
}

#[test]
fn audit_without_a_journal_says_there_is_nothing_to_start_from() {
    let env = Env::new();
    env.write("to-do.json", crate::harness::backlog_with(2));
    let out = env.looper(&["audit"]).status(1).run().stdout();
    assert!(
        out.contains("no snapshot of this backlog to start from"),
        "{out}"
    );
}

#[test]
fn diff_puts_two_runs_side_by_side() {
    let env = Env::new();
    env.looper(&["init"]).run();
    for t in ["First", "Second", "Third"] {
        env.looper(&["add", t]).run();
    }
    env.write_executable("agents/agent", AGENT);
    let agent = [
        "--worker",
        "cmd:./agents/agent",
        "--reviewer",
        "cmd:./agents/agent",
    ];
    let mut first = vec!["run", "--max-iterations", "1"];
    first.extend(agent);
    env.looper(&first).status(3).run();
    let mut second = vec!["run"];
    second.extend(agent);
    env.looper(&second).run();
    let runs: Vec<String> = json(&env.looper(&["log", "--json"]).run().stdout())
        .iter()
        .map(|it| it["run"].as_str().unwrap().to_owned())
        .collect();
    let (a, b) = (runs.first().unwrap(), runs.last().unwrap());
    assert_ne!(a, b);
    let out = env.looper(&["diff", a, b]).run().stdout();
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{out}"))
            .split_whitespace()
            .skip(name.split_whitespace().count())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(out.starts_with(&format!("{:<22} A: {a}", "")), "{out}");
    assert_eq!(row("tasks done"), "1 2", "{out}");
    assert_eq!(
        row("iterations  "),
        "1 (1 done, 0 not) 3 (2 done, 1 not)",
        "{out}"
    );
    assert_eq!(row("review passes"), "0 1", "{out}");
    assert!(
        row("ended").contains("(exit 3)") && row("ended").ends_with("(exit 0)"),
        "{out}"
    );
    // A prefix names a run when only one run starts with it; JSON has both sides.
    let v: Value = serde_json::from_str(
        &env.looper(&["diff", &a[..a.len() - 2], b, "--json"])
            .run()
            .stdout(),
    )
    .unwrap();
    assert_eq!(v["a"]["run"], a.as_str());
    assert_eq!(v["a"]["exit_code"], 3);
    assert_eq!(v["b"]["stats"]["iterations"], 3);
    assert_eq!(v["b"]["tasks_done"], 2);
    env.looper(&["diff", a, "nope"])
        .status(1)
        .stderr_has("no run nope in")
        .run();
}

#[test]
fn clean_deletes_old_runs_and_audit_still_has_a_start() {
    let env = worked_project();
    let agent = [
        "--worker",
        "cmd:./agents/agent",
        "--reviewer",
        "cmd:./agents/agent",
    ];
    for _ in 0..2 {
        let mut args = vec!["run"];
        args.extend(agent);
        env.looper(&args).run(); // the project is done: each run ends at once
    }
    let runs = run_journal(&env).parent().unwrap().to_path_buf();
    let count = || {
        std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .count()
    };
    let before = count();
    let first_run = run_journal(&env);
    let out = env
        .looper(&["clean", "--keep", "1", "--dry-run"])
        .run()
        .stdout();
    assert!(out.contains("would delete 2 journals"), "{out}");
    assert!(out.contains(&first_run.display().to_string()), "{out}");
    assert_eq!(count(), before);
    let v: Value = serde_json::from_str(
        &env.looper(&["clean", "--keep", "1", "--json"])
            .run()
            .stdout(),
    )
    .unwrap();
    assert_eq!(v["deleted"].as_array().unwrap().len(), 2, "{v}");
    assert!(!first_run.exists());
    assert_eq!(env.looper(&["log", "--json"]).run().stdout().trim(), "[]");
    // The snapshot clean took is where the replay starts now.
    let out = env.looper(&["audit"]).run().stdout();
    assert!(out.contains("ok: the replay reproduces"), "{out}");
    env.looper(&["clean"])
        .status(2)
        .stderr_has("say what to delete")
        .run();
    env.looper(&["clean", "--older-than", "soon"])
        .status(2)
        .stderr_has("is not an age")
        .run();
}

#[test]
fn readers_paint_outcomes_only_for_a_terminal_and_never_with_no_color() {
    let env = worked_project();
    for args in [&["log"][..], &["status"][..], &["tail"][..], &["audit"][..]] {
        let painted = env
            .looper(args)
            .env("NO_COLOR", "")
            .env("CLICOLOR_FORCE", "1")
            .run()
            .stdout();
        assert!(
            painted.contains("\x1b[32m"),
            "{args:?} shows no green:\n{painted}"
        );
        let plain = env.looper(args).env("CLICOLOR_FORCE", "1").run().stdout();
        assert!(
            !plain.contains('\x1b'),
            "{args:?} paints with NO_COLOR:\n{plain}"
        );
        // Not a terminal, nothing forced: plain.
        let piped = env.looper(args).env("NO_COLOR", "").run().stdout();
        assert!(!piped.contains('\x1b'), "{args:?} paints into a pipe");
        // Colour changes nothing else: columns stay aligned.
        assert_eq!(crate::harness::strip_ansi(&painted), plain, "{args:?}");
    }
    let painted = env
        .looper(&["log"])
        .env("NO_COLOR", "")
        .env("CLICOLOR_FORCE", "1")
        .run()
        .stdout();
    assert!(painted.contains("\x1b[31mattempt    \x1b[0m"), "{painted}");
}

#[test]
fn log_since_and_tail_and_replay_as_jsonl() {
    let env = worked_project();
    let count = |since: &str| {
        json(
            &env.looper(&["log", "--since", since, "--json"])
                .run()
                .stdout(),
        )
        .len()
    };
    assert_eq!(count("1h"), 3);
    assert_eq!(count("2999-01-01"), 0);
    assert_eq!(count("2020-01-01T00:00:00Z"), 3);
    assert_eq!(count("2020-01-01T00:00:00"), 3);
    env.looper(&["log", "--since", "last tuesday"])
        .status(2)
        .stderr_has("is neither a time nor an age")
        .run();
    // tail --json: the journal's records, one per line, as they are in the file.
    let out = env.looper(&["tail", "--json"]).run().stdout();
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!records.is_empty());
    assert_eq!(records.last().unwrap()["type"], "run.end");
    let run = records[0]["run"].as_str().unwrap().to_owned();
    let replayed = env.looper(&["replay", &run, "--json"]).run().stdout();
    let file = std::fs::read_to_string(run_journal(&env)).unwrap();
    assert_eq!(replayed.lines().count(), file.lines().count());
    let first: Value = serde_json::from_str(replayed.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "run.start");
}
