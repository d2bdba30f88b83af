//! Journal records as people read them: the lines of `looper tail`, `looper replay` and the
//! progress `looper run` prints.

use serde_json::Value;

use crate::term::seconds;

/// Record types `looper run` prints as it goes (the rest is for `tail`).
pub const PROGRESS: [&str; 15] = [
    "run.start",
    "bootstrap.end",
    "iteration.start",
    "report",
    "git",
    "iteration.end",
    "review.report",
    "review.end",
    "review.violation",
    "agent.fallback",
    "agent.limited",
    "agent.unavailable",
    "agent.wait",
    "project.reopened",
    "warning",
];

/// `text` on one line (whitespace runs become one space), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// The readable lines of one record (none for records a reader skips); `raw` shows the
/// agents' own output lines instead of their normalized events; `color` paints outcomes.
pub fn readable(r: &Value, raw: bool, color: bool) -> Vec<String> {
    use crate::term::outcome;
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    let time = r["ts"].as_str().and_then(|t| t.get(11..19)).unwrap_or("");
    let step = format!("{time} {:<9}", s("label"));
    let line = |text: String| vec![format!("{step} {text}\n")];
    match r["type"].as_str().unwrap_or("") {
        "run.start" | "run.end" => vec![format!("{time} {}\n", run_line(r, color))],
        "iteration.start" => line(format!(
            "{} with {} ({}{})",
            s("task"),
            s("agent"),
            s("reason"),
            match r["why"].as_str() {
                None | Some("" | "the worker") => String::new(),
                Some(why) => format!("; {}", one_line(why, 100)),
            }
        )),
        "agent.spawn" => line(format!(
            "{} starts: {}",
            s("role"),
            one_line(&s("argv"), 100)
        )),
        // A line that was a JSON object is kept as that object (journal format 2).
        "agent.event" if raw => line(one_line(
            &r["raw"]
                .as_str()
                .map_or_else(|| r["json"].to_string(), str::to_owned),
            160,
        )),
        "agent.event" => events(r, &step),
        "agent.exit" => line(format!(
            "agent ended {} in {}",
            r["class"]["class"].as_str().unwrap_or("?"),
            r["duration_ms"]
                .as_u64()
                .map_or_else(|| "-".into(), seconds)
        )),
        "report" if r["valid"] == true => line(format!(
            "report: {} — {}",
            r["report"]["status"].as_str().unwrap_or("?"),
            one_line(r["report"]["summary"].as_str().unwrap_or(""), 100)
        )),
        "report" => line(format!(
            "{}: {}",
            outcome(color, "failed", "report invalid"),
            s("problem")
        )),
        "gate" => line(format!(
            "gate ({}) `{}` {}",
            s("phase"),
            r["result"]["command"].as_str().unwrap_or("?"),
            if r["result"]["passed"] == true {
                outcome(color, "passed", "passed")
            } else {
                outcome(color, "failed", "FAILED")
            }
        )),
        "backlog.update" => line(format!("backlog: {} {}", s("source"), r["args"])),
        "backlog.external_change" => line("backlog: an edit from outside was taken in".into()),
        "git" if r["phase"] == "commit" => line(format!(
            "commit {}",
            s("commit").get(..12).unwrap_or(&s("commit"))
        )),
        "bootstrap.end" => line(format!(
            "plan: {}",
            if r["valid"] == true {
                format!("{} tasks", r["tasks"])
            } else {
                format!("invalid: {}", one_line(&s("problem"), 100))
            }
        )),
        "review.report" if r["valid"] == true => line(format!(
            "review by {}: {} — {}",
            s("reviewer"),
            if r["done"] == true {
                "done"
            } else {
                "not done"
            },
            one_line(&s("summary"), 100)
        )),
        "review.end" => line(match s("verdict").as_str() {
            "done" => format!("review: {}", outcome(color, "done", "the project is done")),
            "newtasks" => format!("review: {} new task(s)", r["added"]),
            other => format!("review: {other}"),
        }),
        "review.violation" => line(format!(
            "review {}: the reviewer changed {}",
            outcome(color, "violation", "VIOLATION"),
            r["changed"]
        )),
        "flag" => line(format!("flag: {} {}", s("why"), r["paths"])),
        kind => resilience(kind, r, color).map(line).unwrap_or_default(),
    }
}

/// The records of rate limits, fallbacks and waits (#6), as one line each.
fn resilience(kind: &str, r: &Value, color: bool) -> Option<String> {
    use crate::term::outcome;
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    match kind {
        "agent.limited" => Some(format!(
            "{}: `{}` {} until {}",
            outcome(color, "attempt", "rate limit"),
            s("agent"),
            s("reason"),
            s("until")
        )),
        "agent.unavailable" => Some(format!(
            "{}: `{}` {}",
            outcome(color, "failed", "unavailable"),
            s("agent"),
            s("why")
        )),
        "agent.wait" if r["beyond_budget"] == true => Some(format!(
            "every agent is rate-limited until {}, past the time budget: {}",
            s("until"),
            one_line(&s("why"), 100)
        )),
        "agent.wait" => Some(format!(
            "waiting until {}: {}",
            s("until"),
            one_line(&s("why"), 100)
        )),
        "agent.fallback" => Some(format!(
            "{}: {} stands in for {} ({})",
            s("role"),
            s("agent"),
            s("configured"),
            one_line(&s("why"), 100)
        )),
        "project.reopened" => Some(format!("project reopened: {}", s("why"))),
        "warning" => Some(format!(
            "{}: {}",
            outcome(color, "attempt", "warning"),
            one_line(&s("message"), 140)
        )),
        "iteration.end" => Some(format!(
            "{} → {}{}",
            s("task"),
            outcome(color, &s("outcome"), &s("outcome")),
            r["note"]
                .as_str()
                .map(|n| format!(": {}", one_line(n, 100)))
                .unwrap_or_default()
        )),
        _ => None,
    }
}

/// The normalized events of an `agent.event` record, one line each.
fn events(r: &Value, step: &str) -> Vec<String> {
    r["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| match e["type"].as_str()? {
            "command" => Some(format!(
                "$ {}  → exit {}",
                one_line(e["cmd"].as_str()?, 100),
                e["exit_code"]
            )),
            "message" => Some(format!("says: {}", one_line(e["text"].as_str()?, 120))),
            "file_change" => Some(format!("writes {}", e["path"].as_str()?)),
            "error" => Some(format!("error: {}", one_line(e["message"].as_str()?, 120))),
            _ => None,
        })
        .map(|t| format!("{step} {t}\n"))
        .collect()
}

/// The line that marks a run's start or end.
fn run_line(r: &Value, color: bool) -> String {
    let run = r["run"].as_str().unwrap_or("");
    let text = if r["type"] == "run.start" {
        format!("── run {run} started")
    } else {
        format!(
            "── run {run} ended: {} (exit {})",
            r["reason"].as_str().unwrap_or(""),
            r["exit_code"]
        )
    };
    crate::term::paint(color, "1", &text)
}
