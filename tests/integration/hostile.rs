//! Hostile agents (#7; DESIGN §4–§6): each case is a task of a real `looper run` whose fake
//! worker (a shell script, `cmd:`) misbehaves on it: floods its output, sends reports that are
//! huge, greedy or lying, leaves processes behind, ignores SIGTERM, tampers with `.git` or the
//! backlog. For every case the run must go on and end with its documented exit code, the
//! backlog must stay valid with the task's state, attempts and notes as DESIGN §5 says, the
//! journal must record what happened, Looper's peak memory must stay bounded, and no process
//! the agent started may outlive the run.
//!
//! Each test records one figure: trials = cases × repetitions (`LOOPER_HOSTILE_REPS`, default
//! 1), failures = cases that broke a promise.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::figures::{self, Figure};
use crate::harness::Env;

const RERUN: &str = "cargo nextest run -E 'test(hostile::)'";

/// How often each test repeats its run.
fn reps() -> u64 {
    std::env::var("LOOPER_HOSTILE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// The promises each case broke, by case.
#[derive(Default)]
struct Verdicts {
    trials: u64,
    broken: BTreeMap<String, Vec<String>>,
}

impl Verdicts {
    /// Counts `cases` as run once more.
    fn ran(&mut self, cases: &[&str]) {
        self.trials += cases.len() as u64;
    }

    /// Notes a broken promise of `case` unless `ok`.
    fn check(&mut self, case: &str, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.broken.entry(case.to_owned()).or_default().push(what());
        }
    }

    /// Records the figure, then fails the test if any case broke a promise.
    fn finish(self, key: &str, part: &str, meaning: &str) {
        figures::record(
            key,
            &Figure {
                part,
                trials: self.trials,
                failures: self.broken.values().map(|v| v.len() as u64).sum(),
                meaning,
                rerun: RERUN,
            },
        );
        assert!(
            self.broken.is_empty(),
            "broken promises: {:#?}",
            self.broken
        );
    }
}

/// A fake agent: a shell script in the project's `agents/` with `$prompt` (what Looper sent),
/// `$id` (the task id it names) and `report STATUS SUMMARY [EXTRA_JSON_FIELDS]` defined.
fn agent(env: &Env, name: &str, body: &str) -> String {
    let script = format!(
        r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
report() {{ printf '{{"task_id": "%s", "status": "%s", "summary": "%s"%s}}\n' "$id" "$1" "$2" "$3"; }}
# The first attempt at a task misbehaves, the next ones work (`first` is true once).
first() {{ [ ! -e "agents/tried-$id" ] && : > "agents/tried-$id"; }}
{body}
"#
    );
    let rel = format!("agents/{name}");
    env.write_executable(&rel, script);
    format!("cmd:./{rel}")
}

/// A reviewer that always says `done`.
fn done_reviewer(env: &Env) -> String {
    agent(
        env,
        "reviewer",
        r#"echo '{"status": "reviewed", "summary": "complete", "new_tasks": [], "done": true}'"#,
    )
}

/// A project with one priority-1 task per title (`T1`, `T2`, ...).
fn project(titles: &[&str]) -> Rc<Env> {
    let env = Env::new();
    env.looper(&["init"]).run();
    for t in titles {
        env.looper(&["add", t, "-p", "1"]).run();
    }
    env
}

/// What a watched `looper run` did.
struct Watched {
    code: Option<i32>,
    stderr: String,
    /// Looper's peak resident memory (`VmHWM`), in bytes, as last seen while it ran.
    peak_rss: u64,
    elapsed: Duration,
    /// Processes still alive afterwards that carry the run's marker in their environment.
    leftovers: Vec<String>,
}

/// Runs `looper run ARGS` in `env`, watching its memory, and afterwards looks for any
/// process that inherited the run's marker variable (the agent's children, grandchildren and
/// escapees all inherit it); those found are reported, then killed.
fn watch_run(env: &Env, args: &[&str], limit: Duration) -> Watched {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mark = format!("{}-{nanos}", std::process::id());
    let started = Instant::now();
    let mut child = env
        .command(args)
        .env("LOOPER_HOSTILE_MARK", &mark)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_rss = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if let Some(hwm) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|s| vm_kib(&s, "VmHWM:"))
        {
            peak_rss = peak_rss.max(hwm * 1024);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    let _ = out.join();
    let stderr = err.join().unwrap();
    Watched {
        code: status.and_then(|s| s.code()),
        stderr,
        peak_rss,
        elapsed,
        leftovers: marked_processes(&mark, true),
    }
}

fn vm_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Live processes whose environment holds `LOOPER_HOSTILE_MARK=<mark>`, as `pid cmdline`;
/// with `kill`, they are killed too (so a failing case leaks nothing into the next).
fn marked_processes(mark: &str, kill: bool) -> Vec<String> {
    let needle = format!("LOOPER_HOSTILE_MARK={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if zombie || !environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push(format!(
            "{pid} {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        ));
        if kill {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    found
}

/// Every journal file of the project: each line a JSON object, `seq` gapless from 1.
fn journal_problems(env: &Env) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(projects) = std::fs::read_dir(env.home().join("projects")) else {
        return vec!["no journal".into()];
    };
    for p in projects.flatten() {
        for f in std::fs::read_dir(p.path().join("runs")).unwrap().flatten() {
            let path = f.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read(&path).unwrap();
            for (i, line) in text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .enumerate()
            {
                match serde_json::from_slice::<Value>(line) {
                    Ok(r) if r["seq"] == i + 1 => {}
                    Ok(r) => problems.push(format!(
                        "{}: seq {} at line {}",
                        path.display(),
                        r["seq"],
                        i + 1
                    )),
                    Err(e) => problems.push(format!(
                        "{}: line {} is not JSON: {e}",
                        path.display(),
                        i + 1
                    )),
                }
            }
        }
    }
    problems
}

fn task(env: &Env, id: &str) -> Value {
    env.read_json("to-do.json")["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The notes of task `id`, joined.
fn notes(env: &Env, id: &str) -> String {
    task(env, id)["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

/// The journal records of `kind` written in step `label` (`iter-3`).
fn records_in(env: &Env, kind: &str, label: &str) -> Vec<Value> {
    of(&env.journal(), kind, label)
}

/// The records of `kind` in step `label` among `journal`.
fn of(journal: &[Value], kind: &str, label: &str) -> Vec<Value> {
    journal
        .iter()
        .filter(|r| r["type"] == kind && r["label"] == label)
        .cloned()
        .collect()
}

/// The checks every case shares: the run ended with `code`, within its time, nothing left
/// running, the journal well formed, the backlog valid.
fn common(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, run: &Watched, code: i32) {
    let all = cases.join("+");
    v.check(&all, run.code == Some(code), || {
        format!("exit {:?}, not {code}: {}", run.code, tail(&run.stderr))
    });
    v.check(&all, run.leftovers.is_empty(), || {
        format!("processes outlived the run: {:?}", run.leftovers)
    });
    let problems = journal_problems(env);
    v.check(&all, problems.is_empty(), || {
        format!("journal: {problems:?}")
    });
    let validate = env.command(&["validate"]).output().unwrap();
    v.check(&all, validate.status.success(), || {
        format!(
            "the backlog is invalid: {}",
            String::from_utf8_lossy(&validate.stderr)
        )
    });
    v.check(&all, !run.stderr.contains("panicked"), || {
        format!("looper panicked: {}", tail(&run.stderr))
    });
}

/// The last lines of `text`, for messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Output floods: 1 GiB over stdout and stderr at once, one 100 MiB line, invalid UTF-8 and
/// binary noise, and a flood of terminal escapes (colours, clear screen, window title, OSC 52
/// clipboard writes). Each task still ends done, Looper's memory stays bounded, a long line is
/// cut at 1 MiB and says so, the journal stays JSON, and no escape from the agent reaches the
/// person's terminal through `looper run`, `tail` or `show`.
#[test]
fn output_floods() {
    const CASES: [&str; 4] = [
        "1 GiB output",
        "100 MiB line",
        "invalid UTF-8",
        "ANSI flood",
    ];
    let mut v = Verdicts::default();
    let mut peaks = Vec::new();
    for _ in 0..reps() {
        v.ran(&CASES);
        let env = project(&CASES);
        let worker = agent(
            &env,
            "worker",
            r#"case "$id" in
T1) line=$(head -c 1023 /dev/zero | tr '\0' x)
    yes "$line" | head -c 536870912 >&2 &
    yes "$line" | head -c 536870912
    wait ;;
T2) head -c 104857600 /dev/zero | tr '\0' y; echo ;;
T3) printf 'caf\303\251 \377\376\375 cut \342\202\n'; head -c 1048576 /dev/urandom; printf '\n\000nul\000\n' ;;
T4) e=$(printf '\033'); b=$(printf '\007')
    yes "$e[31mred$e[0m$e[2J$e[H$e]0;pwned$b$e]52;c;cHduZWQ=$b$e[6n" | head -c 20971520
    yes "$e[1m$e[5m" | head -c 1048576 >&2 ;;
esac
echo "$id" > "out-$id.txt"
if [ "$id" = T4 ]; then report done 'escapes \u001b]0;title\u0007\u001b[2J gone'; else report done "survived"; fi"#,
        );
        let reviewer = done_reviewer(&env);
        let run = watch_run(
            &env,
            &["run", "--worker", &worker, "--reviewer", &reviewer],
            Duration::from_secs(240),
        );
        common(&mut v, &CASES, &env, &run, 0);
        peaks.push(run.peak_rss);
        check_output_floods_1(&mut v, &CASES, &env, &run);
        check_output_floods_2(&mut v, &CASES, &env, &run);
    }
    let peak = peaks.iter().max().copied().unwrap_or(0);
    eprintln!(
        "hostile output floods: looper's peak RSS {:.1} MiB",
        mib(peak)
    );
    v.finish(
        "hostile-floods",
        "hostile agents: output floods",
        &format!(
            "a `looper run` whose worker writes 1 GiB (stdout and stderr at once), a 100 MiB line, invalid UTF-8 with binary noise, or a flood of terminal escapes: each task is done at its first try, Looper's peak RSS stays under 100 MiB (measured: {:.0} MiB), the long line is cut at 1 MiB and says so, the journal stays JSON and bounded, and no agent escape reaches the terminal",
            mib(peak)
        ),
    );
}

/// Part 1 of what `output_floods` checks after its run.
fn check_output_floods_1(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, run: &Watched) {
    v.check(
        cases[0],
        run.peak_rss > 0 && run.peak_rss < 100 << 20,
        || format!("looper's peak RSS was {:.1} MiB", mib(run.peak_rss)),
    );
    for (i, case) in cases.iter().enumerate() {
        let id = format!("T{}", i + 1);
        let t = task(env, &id);
        v.check(
            case,
            t["status"] == "done" && t.get("attempts").is_none(),
            || format!("{id} is not done at the first try: {t}"),
        );
    }
    let journal = env.journal();
    // The journal keeps a bounded share of a flood (32 MiB a step), and counts the rest.
    let journal_bytes = journal_size(env);
    v.check(cases[0], journal_bytes < 5 * (32 << 20), || {
        format!("the journal grew to {:.1} MiB", mib(journal_bytes))
    });
    for (case, label) in [(cases[0], "iter-1"), (cases[3], "iter-4")] {
        let events = event_bytes(env, label);
        v.check(case, events <= 32 << 20, || {
            format!("{label} journaled {:.1} MiB of agent.event", mib(events))
        });
    }
    let capped = of(&journal, "agent.output_capped", "iter-1");
    v.check(
        cases[0],
        capped.len() == 1
            && capped[0]["dropped_lines"]
                .as_u64()
                .is_some_and(|n| n > 900_000),
        || format!("agent.output_capped of iter-1: {capped:?}"),
    );
    let exit = &of(&journal, "agent.exit", "iter-1");
    v.check(
        cases[0],
        exit.len() == 1 && exit[0]["class"]["class"] == "ok",
        || format!("agent.exit of iter-1: {exit:?}"),
    );
}

/// Part 2 of what `output_floods` checks after its run.
fn check_output_floods_2(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, run: &Watched) {
    let journal = env.journal();
    // The 100 MiB line: cut to 1 MiB, the rest counted.
    let long: Vec<Value> = of(&journal, "agent.event", "iter-2")
        .into_iter()
        .filter(|r| r["raw"].as_str().is_some_and(|t| t.len() > 1000))
        .collect();
    v.check(cases[1], long.len() == 1, || {
        format!("{} long lines journaled", long.len())
    });
    if let Some(raw) = long.first().and_then(|r| r["raw"].as_str()) {
        v.check(
            cases[1],
            raw.len() <= (1 << 20) + 40 && raw.ends_with("…[truncated 103809024 bytes]"),
            || {
                format!(
                    "the long line was kept as {} bytes ending {:?}",
                    raw.len(),
                    &raw[raw.len().saturating_sub(40)..]
                )
            },
        );
    }
    // Invalid UTF-8: replaced, the valid text kept.
    let raws: Vec<String> = of(&journal, "agent.event", "iter-3")
        .iter()
        .filter_map(|r| r["raw"].as_str().map(str::to_owned))
        .collect();
    v.check(
        cases[2],
        raws.iter()
            .any(|r| r.starts_with("café \u{fffd}") && r.contains(" cut \u{fffd}")),
        || {
            format!(
                "no line keeps café with replacement characters: {:?}",
                raws.first()
            )
        },
    );
    // Escapes: journaled as data, never printed raw to the person.
    let show = env.command(&["show", "T4"]).output().unwrap();
    let tail_out = env.command(&["tail"]).output().unwrap();
    let tail_raw = env.command(&["tail", "--raw"]).output().unwrap();
    for (what, bytes) in [
        ("looper run's progress", run.stderr.as_bytes()),
        ("looper show T4", &show.stdout[..]),
        ("looper tail", &tail_out.stdout[..]),
        ("looper tail --raw", &tail_raw.stdout[..]),
    ] {
        v.check(
            cases[3],
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            || format!("{what} printed the agent's terminal escapes"),
        );
    }
    v.check(
        cases[3],
        show.status.success() && tail_out.status.success(),
        || {
            format!(
                "show/tail failed: {}",
                String::from_utf8_lossy(&show.stderr)
            )
        },
    );
}

/// The bytes of the `agent.event` records of step `label`, as written.
fn event_bytes(env: &Env, label: &str) -> u64 {
    let label_tag = format!("\"label\":\"{label}\",");
    let has = |line: &[u8], tag: &[u8]| line.windows(tag.len()).take(300).any(|w| w == tag);
    let mut total = 0;
    for p in std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(p.path().join("runs")).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read(f.path()).unwrap();
                total += text
                    .split(|b| *b == b'\n')
                    .filter(|l| has(l, b"\"type\":\"agent.event\"") && has(l, label_tag.as_bytes()))
                    .map(|l| l.len() as u64 + 1)
                    .sum::<u64>();
            }
        }
    }
    total
}

/// The bytes of every file under the project's journal directory.
fn journal_size(env: &Env) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                if m.is_dir() { walk(&e.path()) } else { m.len() }
            })
            .sum()
    }
    walk(&env.home().join("projects"))
}

/// Reports that are too big, too greedy or lie: a 10 MiB report on one line and one spread
/// over many lines, 10,000 discovered tasks, reports that try to set the project-done marker,
/// and a report that claims another task. Each bad report is an attempt with a note saying
/// why (DESIGN §5), the claimed task is untouched, no marker appears, discovered tasks are
/// taken up to the limit (the rest journaled as dropped), and the run ends at its cap (exit 3)
/// with the backlog small and valid.
#[test]
fn bad_reports() {
    const CASES: [&str; 4] = [
        "10 MiB report",
        "10,000 discovered tasks",
        "marker in a report",
        "another task's id",
    ];
    let mut v = Verdicts::default();
    for _ in 0..reps() {
        v.ran(&CASES);
        let env = project(&CASES);
        let worker = agent(
            &env,
            "worker",
            r#"echo "$id" > "out-$id.txt"
n=$(ls agents | grep -c "^tried-$id" || true); : > "agents/tried-$id-$n"
case "$id-$n" in
T1-0) printf '{"task_id": "%s", "status": "done", "summary": "' "$id"; head -c 10485760 /dev/zero | tr '\0' a; printf '"}\n' ;;
T1-1) printf '{"task_id": "%s", "status": "done", "summary": "big", "files": [\n' "$id"; yes '"f.txt",' | head -n 1200000; echo '"last.txt"]}' ;;
T2-0) printf '{"task_id": "%s", "status": "done", "summary": "found work", "discovered_tasks": [\n' "$id"
      seq 1 9999 | sed 's/.*/{"title": "Discovered task &", "priority": 5},/'
      echo '{"title": "Discovered task 10000", "priority": 5}]}' ;;
T3-0) report done "all done" ', "discovered_tasks": [{"title": "Project done", "tags": ["project-done"], "status": "done"}]' ;;
T3-1) id=PROJECT-DONE; report done "the project is done" ;;
T4-0) id=T5; report done "T5 is done too" ;;
*) report done "worked" ;;
esac"#,
        );
        let reviewer = done_reviewer(&env);
        // T1 three times, T2 once, T3 three times, T4 twice; the discovered tasks stay todo.
        let run = watch_run(
            &env,
            &[
                "run",
                "--worker",
                &worker,
                "--reviewer",
                &reviewer,
                "--max-iterations",
                "9",
            ],
            Duration::from_secs(120),
        );
        common(&mut v, &CASES, &env, &run, 3);
        check_bad_reports_1(&mut v, &CASES, &env);
        check_bad_reports_2(&mut v, &CASES, &env, &run);
    }
    v.finish(
        "hostile-reports",
        "hostile agents: bad reports",
        "a `looper run` whose worker sends a 10 MiB report (on one line, then over a million lines), 10,000 discovered tasks, a report that tries to add the project-done marker or names PROJECT-DONE, and a report for another task: each bad report is an attempt with a note that says why, the claimed task is untouched, no marker appears, 50 discovered tasks are added and the rest journaled as dropped, and the run ends at its cap (exit 3) with the backlog valid and under 4 MiB",
    );
}

/// Part 1 of what `bad_reports` checks after its run.
fn check_bad_reports_1(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>) {
    let doc = env.read_json("to-do.json");
    let tasks = doc["tasks"].as_array().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let id = format!("T{}", i + 1);
        let t = task(env, &id);
        v.check(case, t["status"] == "done", || {
            format!("{id} is not done: {t}")
        });
    }
    // The huge reports: two attempts, each note saying the report is too big to read.
    let t1 = task(env, "T1");
    let n1 = notes(env, "T1");
    v.check(
        cases[0],
        t1["attempts"] == 2 && n1.matches("larger than 1 MiB").count() == 2,
        || format!("T1: attempts {}, notes {n1:?}", t1["attempts"]),
    );
    let size = std::fs::metadata(env.path("to-do.json")).unwrap().len();
    v.check(cases[0], size < 4 << 20, || {
        format!("the backlog grew to {size} bytes")
    });
    // 10,000 discovered tasks: the first 50 are added, the rest journaled as dropped.
    let discovered: Vec<&Value> = tasks
        .iter()
        .filter(|t| {
            t["tags"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "discovered"))
        })
        .collect();
    v.check(cases[1], discovered.len() == 50, || {
        format!("{} discovered tasks were added", discovered.len())
    });
    v.check(
        cases[1],
        discovered.iter().all(|t| t["status"] == "todo")
            && discovered
                .first()
                .is_some_and(|t| t["title"] == "Discovered task 1"),
        || format!("discovered tasks: {:?}", discovered.first()),
    );
    let dropped = records_in(env, "task.dropped", "iter-4");
    v.check(
        cases[1],
        dropped.len() == 1 && dropped[0]["count"] == 9950,
        || format!("task.dropped in iter-4: {dropped:?}"),
    );
}

/// Part 2 of what `bad_reports` checks after its run.
fn check_bad_reports_2(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, run: &Watched) {
    let doc = env.read_json("to-do.json");
    let tasks = doc["tasks"].as_array().unwrap();
    // The marker: both tries are attempts; no marker anywhere (the run ended at its cap).
    let n3 = notes(env, "T3");
    v.check(
        cases[2],
        task(env, "T3")["attempts"] == 2
            && n3.contains("unknown field `tags`")
            && n3.contains("for task PROJECT-DONE instead of T3"),
        || format!("T3 notes: {n3:?}"),
    );
    let markers: Vec<&Value> = tasks
        .iter()
        .filter(|t| {
            t["tags"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "project-done"))
        })
        .collect();
    v.check(
        cases[2],
        markers.is_empty() && task(env, "PROJECT-DONE").is_null(),
        || format!("a marker appeared: {markers:?}"),
    );
    // Another task's id: an attempt on T4; T5 (a discovered task) untouched.
    let n4 = notes(env, "T4");
    v.check(
        cases[3],
        task(env, "T4")["attempts"] == 1 && n4.contains("for task T5 instead of T4"),
        || format!("T4 notes: {n4:?}"),
    );
    let t5 = task(env, "T5");
    v.check(
        cases[3],
        t5["status"] == "todo" && t5.get("notes").is_none() && t5.get("attempts").is_none(),
        || format!("T5 was touched: {t5}"),
    );
    let outcomes: Vec<String> = env
        .records("iteration.end")
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["task"].as_str().unwrap_or("?"),
                r["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect();
    v.check(
        "all",
        outcomes
            == [
                "T1:attempt",
                "T1:attempt",
                "T1:done",
                "T2:done",
                "T3:attempt",
                "T3:attempt",
                "T3:done",
                "T4:attempt",
                "T4:done",
            ],
        || format!("iteration outcomes: {outcomes:?}"),
    );
    v.check("all", run.elapsed < Duration::from_secs(60), || {
        format!("the run took {:?}", run.elapsed)
    });
}

/// Processes: an agent that forks children (one in the background, one that ignores SIGTERM,
/// a double-forked orphan, a `nohup`ed one, and one in a new session) and exits at once;
/// one that ignores SIGTERM and goes silent (the idle limit); one that ignores SIGTERM and
/// keeps talking (the wall limit). The first task is done; the other two are attempts
/// (blocked at the retry limit of 1) with the failure class journaled; the run goes on to the
/// review (exit 0); no process the agents started is alive afterwards.
#[test]
fn runaway_processes() {
    const CASES: [&str; 3] = [
        "forks and orphans children",
        "ignores SIGTERM, silent",
        "ignores SIGTERM, busy",
    ];
    let mut v = Verdicts::default();
    for _ in 0..reps() {
        v.ran(&CASES);
        let env = project(&CASES);
        env.write("looper.toml", "[timeouts]\nworker = 3\nidle = 1\n");
        let worker = agent(
            &env,
            "worker",
            r#"case "$id" in
T1) sleep 300 &
    (trap '' TERM HUP INT; exec sleep 301) &
    ( (sleep 302 > /dev/null 2>&1 &) & )
    nohup sleep 303 > /dev/null 2>&1 &
    setsid sleep 304 > /dev/null 2>&1 &
    sh -c 'trap "" TERM; while :; do sleep 1; done' &
    echo "$id" > "out-$id.txt"; report done "left children behind" ;;
T2) trap '' TERM; sleep 300 ;;
T3) trap '' TERM; while :; do echo busy; sleep 0.1; done ;;
esac"#,
        );
        let reviewer = done_reviewer(&env);
        let run = watch_run(
            &env,
            &[
                "run",
                "--worker",
                &worker,
                "--reviewer",
                &reviewer,
                "--retry-limit",
                "1",
            ],
            Duration::from_secs(90),
        );
        common(&mut v, &CASES, &env, &run, 0);
        check_runaway_processes(&mut v, &CASES, &env, &run);
    }
    v.finish(
        "hostile-processes",
        "hostile agents: runaway processes",
        "a `looper run` whose worker leaves children behind (in the background, ignoring SIGTERM, double-forked, nohup, setsid) or ignores SIGTERM while silent (idle limit) or busy (wall limit): the first task is done, the others are attempts journaled as idle and timeout, the run reaches its review (exit 0), and no process the agents started is alive afterwards",
    );
}

/// What `runaway_processes` checks after its run.
fn check_runaway_processes(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, run: &Watched) {
    let t1 = task(env, "T1");
    v.check(cases[0], t1["status"] == "done", || format!("T1: {t1}"));
    for (i, class) in [(0, "ok"), (1, "idle"), (2, "timeout")] {
        let label = format!("iter-{}", i + 1);
        let exit = records_in(env, "agent.exit", &label);
        v.check(
            cases[i],
            exit.len() == 1
                && exit[0]["class"]["class"] == class
                && exit[0]["survivors"].as_array().is_some_and(Vec::is_empty),
            || format!("agent.exit of {label}: {exit:?}"),
        );
    }
    for (i, class) in [(1, "idle"), (2, "timeout")] {
        let id = format!("T{}", i + 1);
        let t = task(env, &id);
        let n = notes(env, &id);
        v.check(
            cases[i],
            t["status"] == "blocked"
                && t["attempts"] == 1
                && n.contains(&format!("the agent run ended {class} (signal 9)")),
            || format!("{id}: {t}"),
        );
        let end = records_in(env, "iteration.end", &format!("iter-{}", i + 1));
        v.check(
            cases[i],
            end.len() == 1 && end[0]["outcome"] == "attempt",
            || format!("iteration.end: {end:?}"),
        );
    }
    // Idle 1 s and wall 3 s, each plus a 5 s kill grace: well under a minute in all.
    v.check("all", run.elapsed < Duration::from_secs(45), || {
        format!("the run took {:?}", run.elapsed)
    });
}

/// Tampering, in a git project: an agent that commits its own work, one that rewrites history
/// (`git reset --soft` past Looper's commit), one that "finishes" by editing the backlog (its
/// task `done`, the project-done marker added), one that deletes the backlog, and one that
/// deletes `.git`. Looper journals HEAD before and after each iteration as it finds it, refuses
/// the completing edit (`backlog.refused_external`), restores a deleted backlog from the last
/// version it wrote (`backlog.restored`), treats a destroyed repository as an attempt and goes
/// on without git; no task is lost and the review ends the run (exit 0).
#[test]
fn tampering() {
    const CASES: [&str; 6] = [
        "commits itself",
        "rewrites history",
        "edits the backlog to finish",
        "deletes the backlog",
        "deletes .git",
        "overwrites the backlog with garbage",
    ];
    let mut v = Verdicts::default();
    for _ in 0..reps() {
        v.ran(&CASES);
        let env = project(&CASES);
        crate::run_real::init_repo(&env, "start");
        let worker = agent(
            &env,
            "worker",
            r#"g() { git -c user.name=agent -c user.email=agent@example.com "$@"; }
echo "$id" >> "out-$id.txt"
case "$id" in
T1) g add -A; g commit -qm "the agent's own commit"; report done "committed it myself" ;;
T2) g reset -q --soft HEAD~2; report done "rewrote history" ;;
T3) if first; then
      sed -i 's/"status": "doing"/"status": "done"/' to-do.json
      sed -i 's/^  \]$/    ,{"id": "PROJECT-DONE", "title": "Project done", "priority": 1, "status": "done", "tags": ["project-done"]}\n  ]/' to-do.json
      echo "finished everything, see the backlog"
    else report done "did it properly"; fi ;;
T4) rm -f to-do.json; report done "tidied up" ;;
T5) if first; then rm -rf .git; fi; report done "cleaned the repo" ;;
T6) echo '{"tasks": [ oops' > to-do.json; report done "rewrote the backlog" ;;
esac"#,
        );
        let reviewer = done_reviewer(&env);
        let heads_before = crate::run_real::git(&env, &["rev-parse", "HEAD"]);
        let run = watch_run(
            &env,
            &["run", "--worker", &worker, "--reviewer", &reviewer],
            Duration::from_secs(90),
        );
        common(&mut v, &CASES, &env, &run, 0);
        check_tampering_1(&mut v, &CASES, &env, &heads_before);
        check_tampering_2(&mut v, &CASES, &env);
        check_tampering_3(&mut v, &CASES, &env);
    }
    v.finish(
        "hostile-tampering",
        "hostile agents: tampering",
        "a `looper run` in a git project whose worker commits by itself, rewrites history, marks its task done and adds the project-done marker by editing the backlog, deletes the backlog, deletes `.git`, or overwrites the backlog with garbage: HEAD before and after is journaled as found, the completing edit is refused and journaled, a deleted or broken backlog is put back from Looper's last write and journaled (the garbage whole), the lost repository is an attempt and the run goes on without git, no task is lost, and the review ends the run (exit 0)",
    );
}

/// Part 1 of what `tampering` checks after its run.
fn check_tampering_1(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>, heads_before: &str) {
    for (i, case) in cases.iter().enumerate() {
        let id = format!("T{}", i + 1);
        let t = task(env, &id);
        v.check(case, t["status"] == "done", || {
            format!("{id} is not done: {t}")
        });
    }
    let git_records = env.records("git");
    let head = |label: &str, phase: &str| {
        git_records
            .iter()
            .find(|r| r["label"] == label && r["phase"] == phase)
            .map_or(Value::Bool(false), |r| r["head"].clone())
    };
    // T1: HEAD moved by the agent's own commit, journaled; Looper committed the rest.
    v.check(
        cases[0],
        head("iter-1", "before") == heads_before.trim()
            && head("iter-1", "after").is_string()
            && head("iter-1", "after") != head("iter-1", "before"),
        || {
            format!(
                "iter-1 heads: {:?} → {:?}",
                head("iter-1", "before"),
                head("iter-1", "after")
            )
        },
    );
    // T2: HEAD moved back to the first commit: journaled as seen, the work kept.
    v.check(
        cases[1],
        head("iter-2", "after") == heads_before.trim()
            && head("iter-2", "before").is_string()
            && head("iter-2", "before") != head("iter-2", "after")
            && env.path("out-T1.txt").exists(),
        || {
            format!(
                "iter-2 heads: {:?} → {:?}",
                head("iter-2", "before"),
                head("iter-2", "after")
            )
        },
    );
}

/// Part 2 of what `tampering` checks after its run.
fn check_tampering_2(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>) {
    // T3: the completing edit refused and journaled; the task was an attempt first.
    let refused = records_in(env, "backlog.refused_external", "iter-3");
    let t3 = task(env, "T3");
    v.check(
        cases[2],
        refused.len() == 1 && t3["attempts"] == 1 && notes(env, "T3").contains("no JSON report"),
        || format!("refused: {refused:?}, T3: {t3}"),
    );
    let markers = env.read_json("to-do.json")["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["tags"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "project-done"))
        })
        .count();
    let marker_added = env
        .records("backlog.update")
        .iter()
        .filter(|r| {
            r["program"]
                .as_str()
                .is_some_and(|p| p.contains("project-done"))
        })
        .map(|r| r["label"].as_str().unwrap_or("").to_owned())
        .collect::<Vec<_>>();
    v.check(
        cases[2],
        markers == 1 && marker_added.len() == 1 && marker_added[0].starts_with("review-"),
        || format!("{markers} markers, added in {marker_added:?}"),
    );
    // T4: the deleted backlog restored and journaled, no task lost.
    let restored = records_in(env, "backlog.restored", "iter-5");
    v.check(cases[3], restored.len() == 1, || {
        format!(
            "backlog.restored records: {:?}",
            env.records("backlog.restored")
        )
    });
}

/// Part 3 of what `tampering` checks after its run.
fn check_tampering_3(v: &mut Verdicts, cases: &[&str], env: &Rc<Env>) {
    // T6: the garbage journaled whole, the last version put back.
    let restored = records_in(env, "backlog.restored", "iter-8");
    v.check(
        cases[5],
        restored.len() == 1 && restored[0]["replaced"] == "{\"tasks\": [ oops\n",
        || format!("backlog.restored of iter-8: {restored:?}"),
    );
    let tasks = env.read_json("to-do.json")["tasks"]
        .as_array()
        .unwrap()
        .len();
    v.check("all", tasks == 7, || {
        format!("{tasks} tasks in the backlog, not 6 and the marker")
    });
    // T5: the destroyed repository is an attempt, journaled; the retry works without git.
    let t5 = task(env, "T5");
    let lost = records_in(env, "git", "iter-6");
    v.check(
        cases[4],
        t5["attempts"] == 1
            && notes(env, "T5").contains("git repository")
            && lost
                .iter()
                .any(|r| r["phase"] == "after" && r["error"].is_string()),
        || format!("T5: {t5}; git records of iter-6: {lost:?}"),
    );
    let outcomes: Vec<String> = env
        .records("iteration.end")
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["task"].as_str().unwrap_or("?"),
                r["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect();
    v.check(
        "all",
        outcomes
            == [
                "T1:done",
                "T2:done",
                "T3:attempt",
                "T3:done",
                "T4:done",
                "T5:attempt",
                "T5:done",
                "T6:done",
            ],
        || format!("iteration outcomes: {outcomes:?}"),
    );
}
