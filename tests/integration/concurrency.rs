//! Many writers at once: the lock serialises them and no update is lost.

use std::collections::HashSet;

use serde_json::Value;

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
    assert_eq!(tasks.len(), WRITERS * ADDS);
    let ids: HashSet<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), WRITERS * ADDS, "no duplicate ids");
    let titles: HashSet<&str> = tasks.iter().map(|t| t["title"].as_str().unwrap()).collect();
    for w in 0..WRITERS {
        for i in 0..ADDS {
            assert!(titles.contains(format!("writer {w} task {i}").as_str()));
        }
    }
    // Every add is journaled once, with seq numbers that have no gaps.
    let updates = env.records("backlog.update");
    assert_eq!(updates.len(), WRITERS * ADDS);
    let journal = env.journal();
    let seqs: Vec<u64> = journal.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=journal.len() as u64).collect::<Vec<_>>());
    // No external change was detected: every writer saw the previous writer's result.
    assert!(env.records("backlog.external_change").is_empty());
    let _: &Value = &doc;
}
