//! A fluent builder that runs `looper` in a temp project and checks what it did.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::rc::Rc;

use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_looper");

/// A temp project directory with its own `LOOPER_HOME`.
pub(crate) struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Rc<Env> {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("project")).unwrap();
        std::fs::create_dir_all(tmp.path().join("user-home")).unwrap();
        Rc::new(Env { tmp })
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.tmp.path().join("looper-home")
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
    }

    /// Writes an executable file (a fake agent, a hook).
    pub(crate) fn write_executable(&self, rel: &str, contents: impl AsRef<[u8]>) {
        self.write(rel, contents);
        std::fs::set_permissions(
            self.path(rel),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }

    /// Waits (up to 20 s) until the journal holds `count` records of `kind`.
    pub(crate) fn wait_for_records(&self, kind: &str, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.records(kind).len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "the journal never got {count} {kind} records"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub(crate) fn read_json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// Adds a project-done marker `id` (a copy of the first task, done) to `to-do.json` by
    /// hand, as a person would, outside Looper.
    pub(crate) fn add_marker_by_hand(&self, id: &str) {
        let mut file = self.read_json("to-do.json");
        let mut marker = file["tasks"][0].clone();
        marker["id"] = Value::from(id);
        marker["status"] = Value::from("done");
        marker["tags"] = Value::from(vec!["project-done"]);
        file["tasks"].as_array_mut().unwrap().push(marker);
        self.write("to-do.json", serde_json::to_string_pretty(&file).unwrap());
    }

    /// A `looper` command in this project.
    pub(crate) fn looper(self: &Rc<Self>, args: &[&str]) -> Test {
        Test {
            env: Rc::clone(self),
            args: args.iter().map(OsString::from).collect(),
            vars: Vec::new(),
            stdin: None,
            status: Some(0),
            stdout_has: Vec::new(),
            stderr_has: Vec::new(),
            stdout_is: None,
        }
    }

    /// A `std::process::Command` for `looper` with this project's environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOOPER_HOME", self.home())
            .env("HOME", self.tmp.path().join("user-home"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// `looper args` run by `program pre...` (a wrapper that sets up some trouble, such as
    /// `prlimit`), in the environment of [`Self::command`].
    pub(crate) fn wrapped(&self, program: &str, pre: &[OsString], args: &[&str]) -> Command {
        let plain = self.command(args);
        let mut cmd = Command::new(program);
        cmd.args(pre)
            .arg(BIN)
            .args(args)
            .current_dir(self.root())
            .env_clear()
            .stdin(Stdio::null());
        for (k, v) in plain.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// Every journal record of this project, in file order.
    pub(crate) fn journal(&self) -> Vec<Value> {
        self.journal_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The text of every journal file of this project, in file order.
    pub(crate) fn journal_text(&self) -> String {
        let mut out = String::new();
        let Ok(projects) = std::fs::read_dir(self.home().join("projects")) else {
            return out;
        };
        for p in projects.flatten() {
            let Ok(runs) = std::fs::read_dir(p.path().join("runs")) else {
                continue;
            };
            let mut files: Vec<PathBuf> = runs
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect();
            files.sort();
            for f in files {
                out.push_str(&std::fs::read_to_string(f).unwrap());
                // A torn last line stays its own line, not the start of the next file's.
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }

    pub(crate) fn records(&self, kind: &str) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|r| r["type"] == kind)
            .collect()
    }
}

/// One `looper` invocation and what it must do.
#[must_use]
pub(crate) struct Test {
    env: Rc<Env>,
    args: Vec<OsString>,
    vars: Vec<(String, OsString)>,
    stdin: Option<Vec<u8>>,
    status: Option<i32>,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    stdout_is: Option<String>,
}

impl Test {
    pub(crate) fn env(mut self, k: &str, v: impl Into<OsString>) -> Self {
        self.vars.push((k.to_string(), v.into()));
        self
    }

    #[expect(dead_code, reason = "part of the harness API")]
    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    pub(crate) fn status(mut self, code: i32) -> Self {
        self.status = Some(code);
        self
    }

    pub(crate) fn stdout_has(mut self, s: &str) -> Self {
        self.stdout_has.push(s.to_string());
        self
    }

    pub(crate) fn stderr_has(mut self, s: &str) -> Self {
        self.stderr_has.push(s.to_string());
        self
    }

    pub(crate) fn stdout_is(mut self, s: &str) -> Self {
        self.stdout_is = Some(s.to_string());
        self
    }

    #[track_caller]
    pub(crate) fn run(self) -> Ran {
        let args: Vec<&str> = self.args.iter().map(|a| a.to_str().unwrap()).collect();
        let mut cmd = self.env.command(&args);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn looper");
        if let Some(input) = &self.stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        let ran = Ran { output };
        let (stdout, stderr) = (ran.stdout(), ran.stderr());
        let context =
            format!("looper {args:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
        assert!(!stderr.contains("panicked"), "looper panicked: {context}");
        if let Some(code) = self.status {
            assert_eq!(
                ran.output.status.code(),
                Some(code),
                "exit status: {context}"
            );
        }
        for s in &self.stdout_has {
            assert!(stdout.contains(s.as_str()), "stdout lacks {s:?}: {context}");
        }
        for s in &self.stderr_has {
            assert!(stderr.contains(s.as_str()), "stderr lacks {s:?}: {context}");
        }
        if let Some(s) = &self.stdout_is {
            pretty_assertions::assert_eq!(&stdout, s, "{context}");
        }
        ran
    }
}

/// What a `looper` invocation did.
pub(crate) struct Ran {
    pub(crate) output: Output,
}

impl Ran {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// A backlog with `n` simple tasks.
pub(crate) fn backlog_with(n: usize) -> String {
    let tasks: Vec<Value> = (1..=n)
        .map(|i| {
            serde_json::json!({"id": format!("T{i}"), "title": format!("Task number {i}"), "priority": (i % 5) + 1, "status": "todo"})
        })
        .collect();
    let v = serde_json::json!({"schema_version": 1, "source_files": ["README.md"], "tasks": tasks});
    let mut s = serde_json::to_string_pretty(&v).unwrap();
    s.push('\n');
    s
}

/// `text` without its ANSI colour codes (`ESC [ ... m`).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in text.chars() {
        match (in_code, c) {
            (false, '\x1b') => in_code = true,
            (true, 'm') => in_code = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

/// The element of `items` that the random number `r` picks.
pub(crate) fn pick<T: Copy>(items: &[T], r: u64) -> T {
    items[(r % items.len() as u64) as usize]
}

/// A tiny deterministic generator, so a failure can be replayed from its seed.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// The next number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Every path under `dir` (directories too), depth first, without following symlinks.
pub(crate) fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.clone());
        if p.is_dir() && !p.is_symlink() {
            walk(&p, out);
        }
    }
}
