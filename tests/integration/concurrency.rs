//! Many writers at once: the lock serialises them and no update is lost.

use std::collections::{HashMap, HashSet};

use crate::figures::{self, Figure};
use crate::harness::Env;

#[test]
fn eight_processes_times_two_hundred_adds_lose_nothing() {
    const WRITERS: usize = 8;
    const ADDS: usize = 200;
    let env = Env::new();
    env.looper(&["init"]).run();
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let mut cmds = Vec::new();
        for i in 0..ADDS {
            let title = format!("writer {w} task {i}");
            cmds.push(env.command(&["add", &title]));
        }
        handles.push(std::thread::spawn(move || {
            for mut cmd in cmds {
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    env.looper(&["validate"]).stdout_has("1600 tasks").run();
    let doc = env.read_json("to-do.json");
    let tasks = doc["tasks"].as_array().unwrap();
    // A trial is one add: lost when its title is missing, doubled when it is there twice or
    // its id is taken by another task, unjournaled when it has no `backlog.update` record.
    let mut failures = Vec::new();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut titles: HashMap<&str, usize> = HashMap::new();
    for t in tasks {
        *ids.entry(t["id"].as_str().unwrap()).or_default() += 1;
        *titles.entry(t["title"].as_str().unwrap()).or_default() += 1;
    }
    for (id, n) in &ids {
        if *n > 1 {
            failures.push(format!("id {id} is taken by {n} tasks"));
        }
    }
    let updates = env.records("backlog.update");
    let journaled: HashSet<String> = updates
        .iter()
        .flat_map(|u| u["changes"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| {
            Some(
                c.as_str()?
                    .split_once(": added ")?
                    .1
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .collect();
    for w in 0..WRITERS {
        for i in 0..ADDS {
            let title = format!("writer {w} task {i}");
            match titles.get(title.as_str()) {
                Some(1) => {}
                Some(n) => failures.push(format!("{title:?} is there {n} times")),
                None => failures.push(format!("{title:?} is lost")),
            }
            if !journaled.contains(&title) {
                failures.push(format!("{title:?} has no backlog.update record"));
            }
        }
    }
    figures::record(
        "concurrent-adds",
        &Figure {
            part: "concurrent `looper add` without a run",
            trials: (WRITERS * ADDS) as u64,
            failures: failures.len() as u64,
            meaning: "one `looper add` of 8 processes adding 200 tasks each at once: its task is in the backlog exactly once under an id no other task has, and it is journaled as a `backlog.update`",
            rerun: "cargo nextest run -E 'test(concurrency::)'",
        },
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(tasks.len(), WRITERS * ADDS);
    // Every add is journaled once, with seq numbers that have no gaps.
    assert_eq!(updates.len(), WRITERS * ADDS);
    let journal = env.journal();
    let seqs: Vec<u64> = journal.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=journal.len() as u64).collect::<Vec<_>>());
    // No external change was detected: every writer saw the previous writer's result.
    assert!(env.records("backlog.external_change").is_empty());
}
