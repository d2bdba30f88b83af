//! `looper demo` end to end, and `looper report`'s page as headless Chromium draws it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::Env;

/// Runs `looper demo --dir demo` in a fresh environment.
fn demo() -> (std::rc::Rc<Env>, crate::harness::Ran) {
    let env = Env::new();
    let ran = env.looper(&["demo", "--dir", "demo"]).run();
    (env, ran)
}

#[test]
fn demo_runs_the_whole_loop_to_a_reviewed_done() {
    let (env, ran) = demo();
    let out = ran.stdout();
    let err = ran.stderr();
    // The run, as it went: the plan, the refused claim, the retry, the review's new task.
    for line in [
        "bootstrap plan: 3 tasks",
        "iter-2    T2 → attempt: iter-2: done not accepted: the iteration changed no file",
        "iter-3    T2 → done",
        "review: 1 new task(s)",
        "iter-5    T4 with demo (next)",
        "review: the project is done",
        "looper: the review declared the project done",
    ] {
        assert!(err.contains(line), "stderr lacks {line:?}:\n{err}");
    }
    // Then status, log and stats, and the report.
    for line in [
        "== looper status",
        "progress  [####################] 4/4 done · 0 todo · 0 doing · 0 blocked · project done",
        "== looper log",
        "== looper stats",
        "iterations        5 (4 done, 1 not)",
        "review passes     2",
        "wrote ",
        "looper run --worker codex --reviewer codex",
    ] {
        assert!(out.contains(line), "stdout lacks {line:?}:\n{out}");
    }
    let dir = env.path("demo");
    // The files each task asked for, really working.
    let test = std::process::Command::new("sh")
        .arg("test.sh")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(test.status.success(), "{test:?}");
    assert!(dir.join("CHANGES.md").is_file());
    assert!(dir.join("report.html").is_file());
    // One commit per accepted task, with Looper's trailers.
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s%n%b%n--"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert_eq!(log.matches("Looper-Task: ").count(), 4, "{log}");
    for task in ["T1", "T2", "T3", "T4"] {
        assert!(log.contains(&format!("Looper-Task: {task}")), "{log}");
    }
    // The journal says the demo agent went through the codex parser: commands with exit codes.
    let events: Vec<Value> = env
        .records("agent.event")
        .iter()
        .flat_map(|r| r["events"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["type"] == "command")
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["cmd"].as_str().unwrap_or("").contains("sh test.sh") && e["exit_code"] == 0),
        "{events:?}"
    );
    let spawns = env.records("agent.spawn");
    assert!(
        spawns
            .iter()
            .all(|s| s["argv"].to_string().contains("demo-agent")),
        "{spawns:?}"
    );
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let env = Env::new();
    env.write("taken/file.txt", "mine");
    env.looper(&["demo", "--dir", "taken"])
        .status(1)
        .stderr_has("the demo directory")
        .stderr_has("is not empty")
        .run();
    assert_eq!(env.read("taken/file.txt"), "mine");
    assert!(!env.path("taken/looper.toml").exists());
}

/// The demo agent, like the CLIs, does nothing without a prompt: Looper spawns it before the
/// task is marked `doing` and writes the prompt after, and a Looper killed in between leaves
/// its stdin empty.
#[test]
fn the_demo_agent_does_nothing_without_a_prompt() {
    let env = Env::new();
    let ran = env
        .looper(&["demo-agent"])
        .env("LOOPER_ROLE", "worker")
        .status(1)
        .stderr_has("no prompt on stdin")
        .run();
    assert_eq!(ran.stdout(), "");
    assert_eq!(std::fs::read_dir(env.root()).unwrap().count(), 0);
}

/// Debian's Chromium: installed by scripts/test; a missing one fails under `CI=true`.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (CI must run the report screenshot test): run scripts/test"
        );
        eprintln!("SKIPPED: chromium is not installed: apt-get install chromium");
    }
    found
}

/// Takes a screenshot of `page` and returns its RGBA pixels.
fn screenshot(chromium: &Path, page: &Path, out: &Path) -> (u32, u32, Vec<u8>) {
    let profile = out.with_extension("profile");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// Pixels of about this colour.
fn count(rgba: &[u8], rgb: [u8; 3]) -> usize {
    rgba.chunks(4)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 12))
        .count()
}

#[test]
fn report_is_one_self_contained_page_whose_charts_render() {
    let (env, _) = demo();
    let page = env.path("demo/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "burndown, timeline, models"
    );
    for absent in ["<script", "http://", "https://", "src=\""] {
        assert!(!html.contains(absent), "the page has {absent}");
    }
    for present in [
        "aria-label=\"burndown of open tasks\"",
        "aria-label=\"timeline of iterations\"",
        "aria-label=\"tokens per model\"",
        ">attempt</td>",
        "done not accepted: the iteration changed no file",
    ] {
        assert!(html.contains(present), "the page lacks {present}");
    }
    // Every iteration row links to its details.
    for n in 1..=5 {
        let anchor = html
            .split(&format!(">iter-{n}</a>"))
            .next()
            .and_then(|before| before.rsplit("href=\"#").next())
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(
            html.contains(&format!("id=\"{anchor}\"")),
            "no details for iter-{n}"
        );
    }
    let Some(chromium) = chromium() else { return };
    let shot = env.path("report.png");
    let (w, h, rgba) = screenshot(&chromium, &page, &shot);
    assert_eq!((w, h), (1200, 1400));
    // The burndown's red line and points, the demo agent's blue bars, and output tokens in
    // orange: each chart drew, not just the text around it.
    let red = count(&rgba, [0xcf, 0x22, 0x2e]);
    let blue = count(&rgba, [0x4e, 0x79, 0xa7]);
    let orange = count(&rgba, [0xf2, 0x8e, 0x2b]);
    assert!(red > 1500, "burndown: {red} red pixels");
    assert!(blue > 10_000, "timeline and tokens: {blue} blue pixels");
    assert!(orange > 1000, "output tokens: {orange} orange pixels");
}

#[test]
fn report_without_runs_says_so_and_json_says_where() {
    let env = Env::new();
    env.looper(&["init"]).run();
    let out = env
        .looper(&["report", "--json", "-o", "out/r.html"])
        .run()
        .stdout();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"], 0);
    assert_eq!(v["iterations"], 0);
    let html = env.read("out/r.html");
    assert!(html.contains("No iteration has ended yet."), "{html}");
    assert!(html.contains("No run yet"), "{html}");
    // Without -o the page goes outside the work tree.
    let out = env.looper(&["report"]).run().stdout();
    assert!(
        out.starts_with(&format!("wrote {}", env.home().display())),
        "{out}"
    );
}

#[test]
fn a_price_table_turns_tokens_into_an_estimated_cost() {
    let (env, ran) = demo();
    assert!(ran.stdout().contains("cost unknown"), "{}", ran.stdout());
    let config = env.read("demo/looper.toml");
    env.write(
        "demo/looper.toml",
        format!("{config}\n[prices.demo]\ninput = 1.0\ncached = 0.5\noutput = 2.0\n"),
    );
    let stats = env.looper(&["-C", "demo", "stats"]).run().stdout();
    assert!(stats.contains(" (estimated)"), "{stats}");
    assert!(!stats.contains("unknown"), "{stats}");
    let v: Value =
        serde_json::from_str(&env.looper(&["-C", "demo", "log", "--json"]).run().stdout()).unwrap();
    for it in v.as_array().unwrap() {
        let t = &it["tokens"];
        let expected = (t["input"].as_f64().unwrap() - t["cached"].as_f64().unwrap())
            + t["cached"].as_f64().unwrap() * 0.5
            + t["output"].as_f64().unwrap() * 2.0;
        let got = it["cost_usd"].as_f64().unwrap() * 1e6;
        assert!((got - expected).abs() < 1e-6, "{it}");
        assert_eq!(it["cost_estimated"], true);
    }
    let log = env.looper(&["-C", "demo", "log"]).run().stdout();
    assert!(log.contains("~$0.00"), "{log}");
    // A price for another model changes nothing.
    env.write(
        "demo/looper.toml",
        format!("{config}\n[prices.\"codex:gpt-5.4\"]\ninput = 1.0\noutput = 2.0\n"),
    );
    let stats = env.looper(&["-C", "demo", "stats"]).run().stdout();
    assert!(
        stats.contains("cost unknown") && !stats.contains("estimated"),
        "{stats}"
    );
}

/// A tmux server of its own (killed when dropped), for what a person sees in a terminal.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Option<Tmux> {
        if std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tmux is not installed (CI must run the terminal test): run scripts/test"
            );
            eprintln!("SKIPPED: tmux is not installed: apt-get install tmux");
            return None;
        }
        Some(Tmux {
            socket: format!("looper-test-{}", std::process::id()),
        })
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `shell` in a new 120×50 window and returns the whole pane, with colours, once
    /// the command has ended.
    fn run(&self, name: &str, shell: &str) -> String {
        let script = format!("{shell}; echo END-OF-TEST=$?; sleep 600");
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "120",
            "-y",
            "50",
            &script,
        ]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            // -J joins wrapped lines back, so a line too wide for the pane shows as one.
            let pane = self.tmux(&["capture-pane", "-p", "-e", "-J", "-S", "-300", "-t", name]);
            if pane.contains("END-OF-TEST=") {
                return pane;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not end:\n{pane}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn demo_and_status_in_a_terminal_as_a_person_sees_them() {
    let Some(tmux) = Tmux::start() else { return };
    let env = Env::new();
    let home = env.home();
    let dir = env.path("demo");
    let vars = format!(
        "env -u NO_COLOR LOOPER_HOME='{}' HOME='{}' TERM=xterm-256color",
        home.display(),
        env.path("..").display()
    );
    let pane = tmux.run(
        "demo",
        &format!(
            "{vars} {} demo --dir '{}'",
            crate::harness::BIN,
            dir.display()
        ),
    );
    assert!(pane.contains("END-OF-TEST=0"), "{pane}");
    let plain = crate::harness::strip_ansi(&pane);
    for line in [
        "== looper run",
        "bootstrap plan: 3 tasks",
        "T2 → attempt: iter-2: done not accepted",
        "review: the project is done",
        "== looper status",
        "progress  [####################] 4/4 done · 0 todo · 0 doing · 0 blocked · project done",
        "== looper log",
        "== looper stats",
        "wrote ",
    ] {
        assert!(
            plain.contains(line),
            "the terminal does not show {line:?}:\n{plain}"
        );
    }
    // The log's table fits the 120 columns: the run is a heading, not a column.
    let log: Vec<&str> = plain
        .lines()
        .skip_while(|l| !l.starts_with("== looper log"))
        .take_while(|l| !l.starts_with("== looper stats"))
        .collect();
    assert!(log.iter().any(|l| l.starts_with("── run ")), "{log:#?}");
    for line in &log {
        assert!(
            line.trim_end().chars().count() <= 120,
            "too wide for the pane: {line}"
        );
    }
    // So do the status screen's lines.
    let status: Vec<&str> = plain
        .lines()
        .skip_while(|l| !l.starts_with("== looper status"))
        .take_while(|l| !l.starts_with("== looper log"))
        .collect();
    assert!(
        status
            .iter()
            .any(|l| l.contains("iter-2: done not accepted")),
        "{status:#?}"
    );
    for line in &status {
        assert!(
            line.trim_end().chars().count() <= 120,
            "too wide for the pane: {line}"
        );
    }
    // On a terminal the outcomes are in colour: a red attempt, green dones.
    assert!(pane.contains("\x1b[31m"), "no red on the terminal:\n{pane}");
    assert!(
        pane.contains("\x1b[32m"),
        "no green on the terminal:\n{pane}"
    );

    let pane = tmux.run(
        "status",
        &format!(
            "cd '{}' && {vars} {} status",
            dir.display(),
            crate::harness::BIN
        ),
    );
    assert!(pane.contains("END-OF-TEST=0"), "{pane}");
    assert!(pane.contains("project done"), "{pane}");
    assert!(pane.contains("recent    iter-5"), "{pane}");
}
