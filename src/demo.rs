//! `looper demo`: a small project and a built-in demo agent that needs no model.
//!
//! The demo agent is this binary's hidden `demo-agent` command, run through the `demo`
//! adapter: Looper starts it like any CLI (prompt on stdin, `LOOPER_ROLE` set) and parses its
//! codex-format JSONL with the codex parser. It really runs the commands it reports and really
//! writes the files each task asks for. Its token counts are the lengths of its prompt and
//! reply divided by four: no model is called and nothing costs money.
//!
//! The script: the planner reads `SPEC.md` and reports three tasks; the worker does them, but
//! claims the second one done the first time without changing anything (Looper's
//! corroboration refuses it, and the retry does the work); the first review finds
//! `CHANGES.md` missing and adds a task; the second review declares the project done.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

/// The demo project's files.
pub const FILES: [(&str, &str); 3] = [
    ("SPEC.md", SPEC),
    ("README.md", README),
    ("looper.toml", CONFIG),
];

const SPEC: &str = "# greet: the Looper demo project

A tiny POSIX shell tool that greets people.

1. `greet.sh NAME` prints `Hello, NAME!`.
2. `greet.sh --shout NAME` prints the greeting in capitals.
3. `test.sh` checks both and exits non-zero when one fails.
4. `CHANGES.md` lists what was built.
";

const README: &str = "# greet

The project `looper demo` builds: see SPEC.md. Every file but this one, SPEC.md and
looper.toml is written by the demo agent, one task per iteration.
";

const CONFIG: &str =
    "# looper.toml of the demo project. Every role is Looper's built-in demo agent: no model,
# no network, no cost. In a project of your own, name a real agent instead, e.g.
#   worker = \"codex\"      or  worker = \"claude:sonnet\"
#   reviewer = \"codex:gpt-5.5@high\"
[roles]
worker = \"demo\"
reviewer = \"demo\"
bootstrap = \"demo\"
repair = \"demo\"

[verify]
# A gate Looper runs after every iteration: it fails until test.sh exists (the baseline
# records that), and must pass once it has passed.
commands = [\"sh test.sh\"]
";

const GREET: &str =
    "#!/bin/sh\n# greet.sh NAME: prints a greeting.\nprintf 'Hello, %s!\\n' \"$1\"\n";

const GREET_SHOUT: &str = "#!/bin/sh
# greet.sh [--shout] NAME: prints a greeting, in capitals with --shout.
if [ \"$1\" = --shout ]; then
  shift
  printf 'Hello, %s!\\n' \"$1\" | tr '[:lower:]' '[:upper:]'
else
  printf 'Hello, %s!\\n' \"$1\"
fi
";

const TEST: &str = "#!/bin/sh
# test.sh: checks greet.sh; exits 1 when a check fails.
set -u
fail=0
check() {
  if [ \"$2\" = \"$3\" ]; then echo \"ok   $1\"; else echo \"FAIL $1: got '$2', want '$3'\"; fail=1; fi
}
check plain \"$(sh greet.sh World)\" 'Hello, World!'
check shout \"$(sh greet.sh --shout World)\" 'HELLO, WORLD!'
exit $fail
";

const CHANGES: &str = "# Changes

- greet.sh prints `Hello, NAME!`, in capitals with `--shout`.
- test.sh checks both.
";

/// Writes the demo project into `dir` (which must be empty or missing) and, when git is
/// installed, makes it a repository with a first commit.
pub fn scaffold(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the demo directory {}", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "the demo directory {} is not empty: name a new one with --dir, or leave --dir out for a fresh temporary directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the demo directory {}", dir.display()))?;
    for (name, text) in FILES {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=Looper demo",
                "-c",
                "user.email=demo@looper.invalid",
            ])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if git(&["init", "-q"]) {
        git(&["add", "-A"]);
        git(&[
            "commit",
            "-q",
            "-m",
            "The demo project: SPEC.md, README.md, looper.toml",
        ]);
    }
    Ok(())
}

/// The hidden `looper demo-agent` command: one step of the demo agent.
pub fn agent() -> anyhow::Result<ExitCode> {
    let mut prompt = String::new();
    std::io::stdin()
        .read_to_string(&mut prompt)
        .context("the demo agent cannot read its prompt from stdin")?;
    // As the CLIs do: without a prompt, nothing to do (Looper spawns it before its task is
    // marked and writes the prompt after; a Looper killed in between leaves stdin empty).
    if prompt.trim().is_empty() {
        eprintln!("looper demo-agent: no prompt on stdin");
        return Ok(ExitCode::FAILURE);
    }
    let role = std::env::var("LOOPER_ROLE").unwrap_or_default();
    let mut out = Stream::new(prompt.len());
    let reply = match role.as_str() {
        "bootstrap" => plan(&mut out),
        "worker" => work(&mut out, &prompt),
        "reviewer" => review(&mut out),
        _ => format!(
            "The demo agent plays the planner, the worker and the reviewer of the demo project; it cannot act as `{role}`."
        ),
    };
    out.finish(&reply);
    Ok(ExitCode::SUCCESS)
}

/// The codex-format event stream the demo agent prints.
struct Stream {
    item: usize,
    prompt_len: usize,
}

impl Stream {
    fn new(prompt_len: usize) -> Self {
        let s = Self {
            item: 0,
            prompt_len,
        };
        Self::emit(
            &json!({"type": "thread.started", "thread_id": format!("demo-{}", std::process::id())}),
        );
        Self::emit(&json!({"type": "turn.started"}));
        s
    }

    fn emit(event: &Value) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{event}");
        let _ = stdout.flush();
    }

    fn next_id(&mut self) -> String {
        self.item += 1;
        format!("item_{}", self.item)
    }

    fn think(&mut self, text: &str) {
        let id = self.next_id();
        Self::emit(
            &json!({"type": "item.completed", "item": {"id": id, "type": "reasoning", "text": text}}),
        );
    }

    /// Runs `script` with `sh -c` in the project and reports it as codex does.
    fn run(&mut self, script: &str) -> (i32, String) {
        let id = self.next_id();
        let command = format!("sh -c '{}'", script.replace('\'', r"'\''"));
        Self::emit(
            &json!({"type": "item.started", "item": {"id": id, "type": "command_execution", "command": command, "aggregated_output": "", "exit_code": null, "status": "in_progress"}}),
        );
        let (code, output) = match std::process::Command::new("sh")
            .args(["-c", script])
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(o) => (
                o.status.code().unwrap_or(-1),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (127, format!("sh: {e}\n")),
        };
        Self::emit(
            &json!({"type": "item.completed", "item": {"id": id, "type": "command_execution", "command": command, "aggregated_output": output, "exit_code": code, "status": if code == 0 { "completed" } else { "failed" }}}),
        );
        (code, output)
    }

    /// Writes a file (through a reported command, as a real agent would).
    fn write(&mut self, path: &str, text: &str) {
        let script = format!("cat > {path} <<'LOOPER_DEMO_EOF'\n{text}LOOPER_DEMO_EOF");
        self.run(&script);
    }

    fn finish(&mut self, reply: &str) {
        let id = self.next_id();
        Self::emit(
            &json!({"type": "item.completed", "item": {"id": id, "type": "agent_message", "text": reply}}),
        );
        Self::emit(
            &json!({"type": "turn.completed", "usage": {"input_tokens": self.prompt_len / 4, "cached_input_tokens": 0, "output_tokens": reply.len() / 4}}),
        );
    }
}

fn fenced(report: &Value) -> String {
    format!("```json\n{report}\n```")
}

fn plan(out: &mut Stream) -> String {
    out.think("**Planning** reading SPEC.md to break the project into tasks");
    out.run("cat SPEC.md");
    let report = json!({
        "source_files": ["SPEC.md"],
        "tasks": [
            {"title": "Write greet.sh that prints Hello, NAME!", "priority": 1, "description": "SPEC.md item 1.", "depends_on": []},
            {"title": "Add a --shout option to greet.sh", "priority": 2, "description": "SPEC.md item 2: the greeting in capitals.", "depends_on": ["T1"]},
            {"title": "Write test.sh that checks greet.sh", "priority": 2, "description": "SPEC.md item 3.", "depends_on": ["T2"]},
        ],
    });
    format!("Three tasks, in order.\n{}", fenced(&report))
}

/// The task id, title and earlier attempts named by a worker prompt.
fn task_of(prompt: &str) -> (String, String, u64) {
    let line = prompt
        .lines()
        .find_map(|l| l.strip_prefix("## Your task: "))
        .unwrap_or_default();
    let (id, title) = line.split_once(" — ").unwrap_or((line, ""));
    let attempts = prompt
        .lines()
        .find_map(|l| {
            l.strip_prefix("This task has been attempted ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (id.trim().to_owned(), title.trim().to_owned(), attempts)
}

fn work(out: &mut Stream, prompt: &str) -> String {
    let (id, title, attempts) = task_of(prompt);
    out.think(&format!("**Working** on {id}: {title}"));
    let done = |summary: &str, files: &[&str]| {
        let report = json!({"task_id": id, "status": "done", "summary": summary, "files": files, "blockers": [], "no_change_reason": null, "discovered_tasks": []});
        format!("{summary}.\n{}", fenced(&report))
    };
    if title.contains("--shout") {
        if attempts == 0 {
            // The demo's dishonest moment: a claim without the work. Looper checks the diff.
            out.run("grep -n printf greet.sh");
            return done("Added --shout to greet.sh", &["greet.sh"]);
        }
        out.write("greet.sh", GREET_SHOUT);
        out.run("sh greet.sh --shout World");
        return done(
            "Added --shout to greet.sh (the earlier attempt had not saved it)",
            &["greet.sh"],
        );
    }
    if title.contains("test.sh") {
        out.write("test.sh", TEST);
        out.run("sh test.sh");
        return done("Wrote test.sh; both checks pass", &["test.sh"]);
    }
    if title.contains("CHANGES.md") {
        out.write("CHANGES.md", CHANGES);
        return done("Wrote CHANGES.md", &["CHANGES.md"]);
    }
    if title.contains("greet.sh") {
        out.write("greet.sh", GREET);
        out.run("sh greet.sh World");
        return done("Wrote greet.sh", &["greet.sh"]);
    }
    let report = json!({"task_id": id, "status": "blocked", "summary": "not a task of the demo project", "files": [], "blockers": ["the demo agent knows only the demo project's tasks; run a real agent for this one"], "no_change_reason": null, "discovered_tasks": []});
    format!("I cannot do this one.\n{}", fenced(&report))
}

fn review(out: &mut Stream) -> String {
    out.think("**Reviewing** the repository against SPEC.md, read-only");
    out.run("ls");
    let (tests, _) = out.run("sh test.sh");
    let missing_changes = !Path::new("CHANGES.md").exists();
    let report = if missing_changes {
        json!({"status": "reviewed", "summary": "greet.sh and test.sh meet SPEC.md items 1 to 3, but item 4 is missing: there is no CHANGES.md.", "new_tasks": [{"title": "Write CHANGES.md listing what was built", "priority": 3, "description": "SPEC.md item 4.", "reason": "SPEC.md asks for CHANGES.md and the repository has none"}], "done": false})
    } else if tests == 0 {
        json!({"status": "reviewed", "summary": "Every item of SPEC.md is met and test.sh passes.", "new_tasks": [], "done": true})
    } else {
        json!({"status": "reviewed", "summary": "test.sh fails.", "new_tasks": [{"title": "Make test.sh pass", "priority": 1, "reason": "test.sh fails"}], "done": false})
    };
    format!("Review finished.\n{}", fenced(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_task_from_a_worker_prompt() {
        let prompt = "## Your task: T2 — Add a --shout option\n\nThis task has been attempted 1 time(s) before; work";
        assert_eq!(
            task_of(prompt),
            ("T2".into(), "Add a --shout option".into(), 1)
        );
        assert_eq!(task_of("nothing"), (String::new(), String::new(), 0));
    }
}
