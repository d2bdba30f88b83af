//! Disk trouble (#7): a read-only directory, a full disk (a small tmpfs, and a file-size
//! limit), and the journal directory disappearing mid-run. After each, Looper has stopped
//! with exit 1 and a lowercase error naming the path and what to do (no panic), the backlog
//! on disk is the old or the new version and valid, nothing is half-written (no temp file,
//! no torn journal line), and once the trouble is fixed the next run resumes and finishes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::rc::Rc;

use crate::figures::{Figure, record};
use crate::harness::{Env, walk};

/// A worker that does its task, and a reviewer that says done.
fn project(tasks: usize) -> Rc<Env> {
    let env = Env::new();
    populate(&env, tasks);
    env
}

fn populate(env: &Rc<Env>, tasks: usize) {
    env.looper(&["init"]).run();
    for i in 1..=tasks {
        env.looper(&[
            "add",
            &format!("Disk task {i}"),
            "-d",
            "Write a file for this task.",
        ])
        .run();
    }
    env.write_executable(
        "agents/worker",
        r#"#!/bin/sh
id=$(sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
while [ -e agents/hold ]; do sleep 0.05; done
echo "$id" >> "out-$id.txt"
printf 'working on %s\n{"task_id": "%s", "status": "done", "summary": "made out-%s.txt"}\n' "$id" "$id" "$id"
"#,
    );
    env.write_executable(
        "agents/reviewer",
        "#!/bin/sh\ncat > /dev/null\necho '{\"status\": \"reviewed\", \"summary\": \"complete\", \"new_tasks\": [], \"done\": true}'\n",
    );
    env.write(
        "looper.toml",
        "[roles]\nworker = \"cmd:./agents/worker\"\nreviewer = [\"cmd:./agents/reviewer\"]\n",
    );
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The project's state directory under `LOOPER_HOME`.
fn project_dir(env: &Env) -> PathBuf {
    std::fs::read_dir(env.home().join("projects"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
}

/// What went wrong after a trial, if anything: Looper stopped with exit 1 and a lowercase
/// error naming a path under the project or `LOOPER_HOME` and what to do, no panic; the
/// backlog is `before` or a valid later version with every task of `before`; no temp file
/// and no torn journal line. Returns the problems and the file the error named.
fn check_stopped(env: &Env, out: &Output, before: &[u8]) -> (Vec<String>, String) {
    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) {
        problems.push(format!("exit {:?}, not 1", out.status.code()));
    }
    let first = stderr
        .lines()
        .find(|l| l.starts_with("looper: ") && !l.starts_with("looper: warning"))
        .unwrap_or("");
    if !first["looper: ".len().min(first.len())..]
        .chars()
        .next()
        .is_some_and(char::is_lowercase)
    {
        problems.push(format!("no lowercase error line: {first:?}"));
    }
    if stderr.contains("panicked") || stderr.contains("backtrace") {
        problems.push("a panic".into());
    }
    let (root, home) = (env.root(), env.home());
    let named = [&root, &home].iter().find_map(|dir| {
        let d = dir.to_str().unwrap();
        first.find(d).map(|at| {
            let rest = &first[at + d.len()..];
            let end = rest.find([':', ' ', ',', ';']).unwrap_or(rest.len());
            format!(
                "{}{}",
                dir.file_name().unwrap().to_str().unwrap(),
                &rest[..end]
            )
        })
    });
    let named = named.unwrap_or_else(|| {
        problems.push(format!("the error names no path: {first:?}"));
        String::new()
    });
    let advice = [
        "free some space",
        "raise it",
        "make it writable",
        "run again",
        "journaled by the next",
    ];
    if !advice.iter().any(|a| stderr.contains(a)) {
        problems.push(format!("the error says nothing to do: {stderr}"));
    }
    problems.extend(check_intact(env, before));
    (problems, named)
}

/// The backlog is `before` or a valid later version keeping its tasks; no temp file is
/// left; every journal line parses.
fn check_intact(env: &Env, before: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    let now = std::fs::read(env.path("to-do.json")).unwrap_or_default();
    if now != before {
        match looper::backlog::load::load(&env.path("to-do.json")) {
            Ok(loaded) => {
                let old: serde_json::Value = serde_json::from_slice(before).unwrap();
                let ids: Vec<&serde_json::Value> = loaded.doc.value()["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| &t["id"])
                    .collect();
                for t in old["tasks"].as_array().unwrap() {
                    if !ids.contains(&&t["id"]) {
                        problems.push(format!("task {} lost", t["id"]));
                    }
                }
            }
            Err(e) => problems.push(format!("the backlog is damaged: {e}")),
        }
    }
    let mut paths = Vec::new();
    walk(&env.root(), &mut paths);
    walk(&env.home(), &mut paths);
    for p in &paths {
        let name = p.file_name().unwrap().to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            problems.push(format!("temp file left: {}", p.display()));
        }
        if name.ends_with(".jsonl") {
            let raw = std::fs::read(p).unwrap();
            if !raw.is_empty() && !raw.ends_with(b"\n") {
                problems.push(format!("torn last line in {}", p.display()));
            }
            for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if serde_json::from_slice::<serde_json::Value>(line).is_err() {
                    problems.push(format!("a damaged line in {}", p.display()));
                }
            }
        }
    }
    problems
}

/// After the trouble is fixed: the next run resumes, finishes every task (each task's work
/// file exists) and validates.
fn check_recovers(env: &Rc<Env>) -> Vec<String> {
    let out = env.command(&["run"]).output().unwrap();
    let mut problems = Vec::new();
    if out.status.code() != Some(0) {
        problems.push(format!("the run after the fix: {}", text(&out)));
        return problems;
    }
    let doc = env.read_json("to-do.json");
    for t in doc["tasks"].as_array().unwrap() {
        if t["status"] != "done" {
            problems.push(format!("after the fix, {} is {}", t["id"], t["status"]));
        }
        let id = t["id"].as_str().unwrap();
        if id != "PROJECT-DONE" && !env.path(&format!("out-{id}.txt")).exists() {
            problems.push(format!("after the fix, {id} has no work file"));
        }
    }
    problems.extend(check_intact(
        env,
        &std::fs::read(env.path("to-do.json")).unwrap(),
    ));
    problems
}

/// What kind of file an error named, without the run id or the hashed project directory.
fn file_kind(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = |e: &str| Path::new(name).extension().is_some_and(|x| x == e);
    let kind = if ext("jsonl") {
        "journal"
    } else if name.ends_with(".pending.json") {
        "pending record"
    } else if name.starts_with("backlog-") && name.ends_with(".last.json") {
        "merge base"
    } else if name.ends_with(".last.json") {
        "last message"
    } else if ext("lock") {
        "lock"
    } else {
        name
    };
    kind.to_owned()
}

/// Tallies trials and failures, and which file each error named.
#[derive(Default)]
struct Tally {
    trials: u64,
    failures: Vec<String>,
    named: BTreeMap<String, u64>,
}

impl Tally {
    fn trial(&mut self, case: &str, problems: Vec<String>, named: &str) {
        self.trials += 1;
        if !named.is_empty() {
            *self.named.entry(file_kind(named)).or_default() += 1;
        }
        for p in problems {
            self.failures.push(format!("{case}: {p}"));
        }
    }

    fn record(&self, key: &str, part: &str, meaning: &str, rerun: &str) {
        eprintln!(
            "{part}: {} trials, {} stopped with an error (the rest fit and finished), errors named {:?}",
            self.trials,
            self.named.values().sum::<u64>(),
            self.named
        );
        let failed: std::collections::BTreeSet<&str> = self
            .failures
            .iter()
            .map(|f| f.split(": ").next().unwrap())
            .collect();
        record(
            key,
            &Figure {
                part,
                trials: self.trials,
                failures: failed.len() as u64,
                meaning,
                rerun,
            },
        );
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }
}

/// The commands a trial runs into the trouble: a run, and the two backlog writers.
const COMMANDS: &[&[&str]] = &[
    &["run"],
    &["add", "A task added in trouble"],
    &["update", ".tasks[0].priority = 1"],
];

/// Repetitions of each fault case (`LOOPER_DISK_REPS`, default 1).
fn reps() -> usize {
    std::env::var("LOOPER_DISK_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn sh(script: &str, args: &[&Path]) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ways this machine can make a directory read-only for Looper. As root, permission bits
/// do not stop a write: a read-only bind mount in a private mount namespace does, and so
/// does the immutable attribute; as another user, permission bits do.
#[derive(Debug, Clone, Copy)]
enum ReadOnly {
    BindMount,
    Immutable,
    Permissions,
}

const BIND_RO: &str =
    r#"d="$1"; shift; mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" && exec "$@""#;

fn read_only_methods() -> Vec<ReadOnly> {
    if !is_root() {
        return vec![ReadOnly::Permissions];
    }
    let probe = tempfile::tempdir().unwrap();
    let dir = probe.path();
    let mut methods = Vec::new();
    let bind = Command::new("unshare")
        .args(["-m", "sh", "-c", BIND_RO, "sh"])
        .arg(dir)
        .args(["sh", "-c", "! touch \"$0/x\" 2>/dev/null"])
        .arg(dir)
        .stderr(Stdio::null())
        .status();
    if bind.is_ok_and(|s| s.success()) {
        methods.push(ReadOnly::BindMount);
    }
    if sh("chattr +i \"$1\" && ! touch \"$1/x\"", &[dir]) {
        methods.push(ReadOnly::Immutable);
    }
    let _ = sh("chattr -i \"$1\"", &[dir]);
    eprintln!("read-only methods that work here: {methods:?}");
    assert!(
        !methods.is_empty(),
        "running as root, and neither a read-only bind mount (unshare -m + mount: needs CAP_SYS_ADMIN) nor chattr +i (needs a file system with attributes) works here, so no directory can be made read-only for Looper: run this test as a non-root user"
    );
    methods
}

/// Permission bits of every path under `dir`, to restore after the trial.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut paths = vec![dir.to_path_buf()];
    walk(dir, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap().permissions().mode();
            (p, m)
        })
        .collect()
}

/// Runs `args` with `target` read-only by `method`, then makes it writable again.
fn run_read_only(env: &Env, method: ReadOnly, target: &Path, args: &[&str]) -> Output {
    match method {
        ReadOnly::BindMount => {
            let mut pre: Vec<OsString> = vec![
                "-m".into(),
                "sh".into(),
                "-c".into(),
                BIND_RO.into(),
                "sh".into(),
            ];
            pre.push(target.into());
            env.wrapped("unshare", &pre, args).output().unwrap()
        }
        ReadOnly::Immutable => {
            assert!(sh("chattr -R +i \"$1\"", &[target]));
            let out = env.command(args).output().unwrap();
            assert!(sh("chattr -R -i \"$1\"", &[target]));
            out
        }
        ReadOnly::Permissions => {
            let saved = modes(target);
            for (p, m) in &saved {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(m & !0o222)).unwrap();
            }
            let out = env.command(args).output().unwrap();
            for (p, m) in saved.iter().rev() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(*m)).unwrap();
            }
            out
        }
    }
}

#[test]
fn a_read_only_directory_stops_looper_cleanly() {
    let mut tally = Tally::default();
    let methods = read_only_methods();
    for rep in 0..reps() {
        for method in &methods {
            for target in ["project", "LOOPER_HOME"] {
                for args in COMMANDS {
                    let case = format!("{method:?} {target} `looper {}` #{rep}", args[0]);
                    let env = project(2);
                    // The run's state exists already (a project that ran before).
                    env.looper(&["ls"]).run();
                    let dir = if target == "project" {
                        env.root()
                    } else {
                        env.home()
                    };
                    let before = std::fs::read(env.path("to-do.json")).unwrap();
                    let out = run_read_only(&env, *method, &dir, args);
                    let (mut problems, named) = check_stopped(&env, &out, &before);
                    if std::fs::read(env.path("to-do.json")).unwrap() != before {
                        problems.push("the backlog changed in a read-only setting".into());
                    }
                    if !problems.is_empty() {
                        problems.push(text(&out));
                    }
                    problems.extend(check_recovers(&env));
                    tally.trial(&case, problems, &named);
                }
            }
        }
    }
    tally.record(
        "disk-read-only",
        "disk: read-only backlog or journal directory",
        &format!(
            "`looper run`, `add` or `update` with the project directory or LOOPER_HOME read-only ({}); exit 1, a lowercase error naming the path and the fix, no panic, the backlog untouched, no temp file or torn journal line; after the fix the next run finishes every task",
            methods.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
        ),
        "LOOPER_DISK_REPS=5 cargo nextest run -E 'test(disk::a_read_only)'",
    );
}

/// Runs `looper args` in a fresh project of `tasks` tasks under a file-size limit.
fn file_size_trial(limit: u64, args: &[&str], tally: &mut Tally) {
    let case = format!("RLIMIT_FSIZE={limit} `looper {}`", args[0]);
    let env = project(0);
    env.write("to-do.json", crate::harness::backlog_with(12));
    env.looper(&["fmt"]).run();
    let before = std::fs::read(env.path("to-do.json")).unwrap();
    let pre = [
        OsString::from(format!("--fsize={limit}:{limit}")),
        "--".into(),
    ];
    let out = env.wrapped("prlimit", &pre, args).output().unwrap();
    let (problems, named) = if out.status.success() {
        (check_intact(&env, &before), String::new())
    } else {
        check_stopped(&env, &out, &before)
    };
    let mut problems = problems;
    if !problems.is_empty() {
        problems.push(text(&out));
    }
    problems.extend(check_recovers(&env));
    tally.trial(&case, problems, &named);
}

#[test]
fn a_file_size_limit_stops_looper_cleanly() {
    let mut tally = Tally::default();
    let limits = [
        512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 65536,
    ];
    // The backlog's temp file is written before the pending record: an update whose record
    // outgrows the backlog (a long program) reaches the pending record's write.
    let long = format!(
        ".tasks[0].priority = 1 | if \"{}\" == \"\" then . else . end",
        "x".repeat(8000)
    );
    let long_update: &[&str] = &["update", &long];
    for _ in 0..reps() {
        for limit in limits {
            for args in COMMANDS.iter().chain([&long_update]) {
                file_size_trial(limit, args, &mut tally);
            }
        }
    }
    assert!(
        tally.named.len() >= 3,
        "the limits should hit several different writes: {:?}",
        tally.named
    );
    tally.record(
        "disk-file-size",
        "disk: file-size limit (RLIMIT_FSIZE) hit mid-write",
        "`looper run`, `add` or `update` (one with an 8,000-character program) on a 12-task backlog under a file-size limit from 512 bytes to 64 KiB, so the limit hits different writes (here: journal append, backlog temp file, pending record); exit 1 with a lowercase error naming the file and the fix (or exit 0 when nothing hit the limit), no panic, the backlog old or new and valid, no temp file or torn journal line; after lifting the limit the next run finishes every task",
        "LOOPER_DISK_REPS=5 cargo nextest run -E 'test(disk::a_file_size)'",
    );
}

/// A small tmpfs mounted over a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Fills the file system up, then frees `pages` pages of 4 KiB. Returns the filler.
    fn fill_leaving(&self, pages: u64) -> PathBuf {
        use std::io::Write;
        let path = self.0.join(".filler");
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [65_536, 4096, 512] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(pages * 4096)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// One trial on a full tmpfs: the project and `LOOPER_HOME` each on their own small
/// tmpfs, `full` filled up but `pages` pages, then `looper args`.
fn full_disk_trial(full: &str, pages: u64, args: &[&str], tally: &mut Tally) -> Option<()> {
    let case = format!(
        "full {full} tmpfs, {pages} pages free, `looper {}`",
        args[0]
    );
    let env = Env::new();
    let root_fs = Tmpfs::mount(&env.root(), "2m")?;
    let home_fs = Tmpfs::mount(&env.home(), "2m")?;
    populate(&env, 2);
    let before = std::fs::read(env.path("to-do.json")).unwrap();
    let fs = if full == "project" {
        &root_fs
    } else {
        &home_fs
    };
    let filler = fs.fill_leaving(pages);
    let out = env.command(args).output().unwrap();
    let (mut problems, named) = if out.status.success() {
        (check_intact(&env, &before), String::new())
    } else {
        check_stopped(&env, &out, &before)
    };
    if !problems.is_empty() {
        problems.push(text(&out));
    }
    std::fs::remove_file(filler).unwrap();
    problems.extend(check_recovers(&env));
    tally.trial(&case, problems, &named);
    drop((root_fs, home_fs));
    Some(())
}

#[test]
fn a_full_disk_stops_looper_cleanly() {
    let mut tally = Tally::default();
    let probe = tempfile::tempdir().unwrap();
    if Tmpfs::mount(probe.path(), "64k").is_none() {
        // Not a skip: the file-size test covers the same writes without mount. Say why.
        assert!(
            !is_root(),
            "running as root but `mount -t tmpfs` fails here (no CAP_SYS_ADMIN?): the full-disk test cannot run"
        );
        eprintln!(
            "not root: cannot mount a tmpfs; the full-disk part is covered by a_file_size_limit_stops_looper_cleanly"
        );
        return;
    }
    for _ in 0..reps() {
        for pages in [0, 1, 2, 3, 4, 6, 8, 12, 16] {
            full_disk_trial("LOOPER_HOME", pages, &["run"], &mut tally).unwrap();
        }
        for pages in [0, 1, 2] {
            for args in COMMANDS {
                full_disk_trial("project", pages, args, &mut tally).unwrap();
            }
            for args in &COMMANDS[1..] {
                full_disk_trial("LOOPER_HOME", pages, args, &mut tally).unwrap();
            }
        }
    }
    assert!(
        tally.named.len() >= 3,
        "the sizes should hit several different writes: {:?}",
        tally.named
    );
    tally.record(
        "disk-full",
        "disk: full disk (small tmpfs)",
        "`looper run`, `add` or `update` with the project or LOOPER_HOME on a tmpfs filled up but 0 to 16 pages, so the disk fills at different writes (here: journal append, run lock, pending record, backlog temp file, merge base); exit 1 with a lowercase error naming the file and the fix (or exit 0 when it fit), no panic, the backlog old or new and valid, no temp file or torn journal line; after freeing space the next run finishes every task",
        "LOOPER_DISK_REPS=5 cargo nextest run -E 'test(disk::a_full_disk)'",
    );
}

/// Ways the journal directory goes away while a run writes it.
const VANISH: &[&str] = &[
    "runs removed",
    "project state removed",
    "LOOPER_HOME removed",
    "runs replaced by a file",
];

fn vanish(env: &Env, how: &str) {
    let runs = project_dir(env).join("runs");
    match how {
        "runs removed" => remove_tree(&runs),
        "project state removed" => remove_tree(&project_dir(env)),
        "LOOPER_HOME removed" => remove_tree(&env.home()),
        _ => {
            remove_tree(&runs);
            std::fs::write(&runs, "not a directory").unwrap();
        }
    }
}

/// Removes the tree at `path` while the run may still be adding a file to it (the agent's pid
/// note lands just after `agent.spawn` is journaled): a directory that fills up again between
/// the removal of its entries and its own removal is removed again.
fn remove_tree(path: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            result => return result.unwrap(),
        }
    }
    panic!("{} kept filling up while it was removed", path.display());
}

/// Undoes [`vanish`]'s file (the removals need no fix: Looper makes the directories).
fn unvanish(env: &Env) {
    let mut paths = Vec::new();
    walk(&env.home(), &mut paths);
    for p in paths {
        if p.ends_with("runs") && p.is_file() {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn the_journal_directory_disappearing_stops_looper_cleanly() {
    let mut tally = Tally::default();
    for rep in 0..reps() {
        for how in VANISH {
            // Mid-run: the worker is held while the directory goes.
            let case = format!("{how} during `looper run` #{rep}");
            let env = project(2);
            env.write("agents/hold", "");
            let before = std::fs::read(env.path("to-do.json")).unwrap();
            let child = env
                .command(&["run"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            env.wait_for_records("agent.spawn", 1);
            vanish(&env, how);
            std::fs::remove_file(env.path("agents/hold")).unwrap();
            let out = child.wait_with_output().unwrap();
            let (mut problems, named) = check_stopped(&env, &out, &before);
            if !problems.is_empty() {
                problems.push(text(&out));
            }
            unvanish(&env);
            problems.extend(check_recovers(&env));
            tally.trial(&case, problems, &named);
        }
        // Between commands, a removed directory is simply made again; a file in its
        // place stops the backlog writers.
        for args in &COMMANDS[1..] {
            let case = format!("runs replaced by a file before `looper {}` #{rep}", args[0]);
            let env = project(2);
            let before = std::fs::read(env.path("to-do.json")).unwrap();
            vanish(&env, "runs replaced by a file");
            let out = env.command(args).output().unwrap();
            let (mut problems, named) = check_stopped(&env, &out, &before);
            if !problems.is_empty() {
                problems.push(text(&out));
            }
            unvanish(&env);
            problems.extend(check_recovers(&env));
            // The update that could not be journaled then is journaled now, once.
            let recovered = env
                .records("backlog.update")
                .iter()
                .filter(|r| r["recovered"] == true)
                .count();
            if recovered != 1 {
                problems.push(format!("{recovered} recovered updates, not 1"));
            }
            tally.trial(&case, problems, &named);
        }
    }
    tally.record(
        "disk-journal-gone",
        "disk: journal directory disappearing",
        "the runs directory, the project's state directory or LOOPER_HOME removed (or runs replaced by a file) while `looper run` waits on its agent, or before `looper add`/`update`; exit 1 with a lowercase error naming the journal and the fix, no panic, the backlog old or new and valid, nothing journaled into a recreated directory; the next run resumes the task left `doing` and finishes every task",
        "LOOPER_DISK_REPS=5 cargo nextest run -E 'test(disk::the_journal_directory)'",
    );
}
