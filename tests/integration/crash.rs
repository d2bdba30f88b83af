//! Crash safety: a writer killed with SIGKILL at random moments leaves the backlog valid and
//! equal to either the old or the new version, and the next writer carries on.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::Env;

/// A tiny deterministic generator, so a failure can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

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
