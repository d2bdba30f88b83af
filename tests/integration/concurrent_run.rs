//! Concurrent edits during a run (#7): while `looper run` works through the backlog, other
//! writers edit it — `looper add`, `looper update '<jq>'`, raw read-modify-write edits of
//! `to-do.json` by a script (atomic rename, and in-place truncate + write as some editors
//! do), and the worker agent editing the file itself. Nothing is lost, every external change
//! is journaled, and an edit that completes work is refused.
//!
//! What is fair to ask of Looper: the raw writers take no Looper lock (they cannot know it),
//! so a raw write can land between Looper's read and its write, and a raw writer can write
//! back a stale copy over a version Looper wrote after the raw writer read. Looper must keep
//! both the raw writer's change and its own. Raw writers are serialised among themselves by
//! a lock of their own (`agents/raw.lock`, one person at the keyboard): two unlocked raw
//! writers racing each other lose each other's edits without Looper ever seeing them. One
//! thing no writer of a file can prevent: an in-place writer that opened the file before
//! Looper replaced it writes into the replaced file, which is no longer the backlog. The raw
//! writer checks after writing that its file is still the backlog (as editors warn "file
//! changed on disk") and, if not, makes the edit again; those re-made edits are counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::figures::{self, Figure};
use crate::harness::{BIN, Env, Lcg};

/// What a thread needs to run `looper` in the project (the harness's `Env` is not `Send`).
#[derive(Clone)]
struct Proj {
    root: PathBuf,
    home: PathBuf,
    user_home: PathBuf,
}

impl Proj {
    fn of(env: &Env) -> Self {
        Self {
            root: env.root(),
            home: env.home(),
            user_home: env.root().parent().unwrap().join("user-home"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOOPER_HOME", &self.home)
            .env("HOME", &self.user_home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn backlog(&self) -> PathBuf {
        self.root.join("to-do.json")
    }
}

/// Every edit the test and the agent made, and what went wrong while making them.
#[derive(Default)]
struct Ledger {
    /// `looper add`: (id, title).
    added: Vec<(String, String)>,
    /// `looper update`: the last `reference` set per task, and how many updates ran.
    references: BTreeMap<String, String>,
    updates: usize,
    /// Raw edits: tasks added (id, title), descriptions set (id, text; once per task),
    /// tasks deleted (id, full content as read), in-place writes made again.
    raw_added: Vec<(String, String)>,
    raw_described: Vec<(String, String)>,
    raw_deleted: Vec<(String, Value)>,
    raw_writes: usize,
    remade: usize,
    /// Commands that failed (a lost edit).
    failures: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// Seeds: HOLD (blocked at the retry limit, never selected); K-1-keep..K-20-keep and
/// D-1-del..D-n-del depend on it, so the run never works on them: K tasks are the ones the
/// agent tries to complete by editing the file, D tasks the ones the raw writer deletes.
/// T1..T5 give the run work. Ids the test and the agent make end in a letter, so Looper's
/// own ids (`looper add`, the review) stay in the `T<n>` style and never collide with them.
fn seed(deletable: usize) -> String {
    let mut tasks = vec![json!({"id": "HOLD", "title": "held back", "priority": 5,
        "status": "blocked", "attempts": 99})];
    for i in 1..=20 {
        tasks.push(
            json!({"id": format!("K-{i}-keep"), "title": format!("keep {i}"), "priority": 2,
            "status": "todo", "depends_on": ["HOLD"]}),
        );
    }
    for i in 1..=deletable {
        tasks.push(
            json!({"id": format!("D-{i}-del"), "title": format!("delete me {i}"),
            "priority": 3, "status": "todo", "depends_on": ["HOLD"],
            "description": format!("seeded task {i}, deleted by a raw edit")}),
        );
    }
    for i in 1..=5 {
        tasks.push(
            json!({"id": format!("T{i}"), "title": format!("work {i}"), "priority": 1,
            "status": "todo"}),
        );
    }
    let doc = json!({"schema_version": 1, "source_files": ["README.md"], "tasks": tasks});
    let mut s = serde_json::to_string_pretty(&doc).unwrap();
    s.push('\n');
    s
}

/// The worker: sleeps a little, and on some turns edits the backlog itself (python, under the
/// raw writers' lock): sets `details` on its own task, adds a task, tries to complete a K
/// task. It logs each edit to `agents/ledger`, makes its output file and reports done.
const WORKER: &str = r#"#!/bin/sh
prompt=$(cat)
id=$(printf '%s\n' "$prompt" | sed -n 's/^## Your task: \([^ ]*\) .*/\1/p' | head -1)
n=$(cat agents/count 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > agents/count
sleep 0.03
python3 agents/edit.py "$id" "$n" || exit 1
echo "$id" > "out-$id.txt"
printf '{"task_id": "%s", "status": "done", "summary": "made out-%s.txt"}\n' "$id" "$id"
"#;

const AGENT_EDIT: &str = r#"import fcntl, json, os, sys
task, n = sys.argv[1], int(sys.argv[2])
edits = []
with open("agents/raw.lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open("to-do.json") as f:
        doc = json.load(f)
    tasks = doc["tasks"]
    if n % 2 == 0:
        for t in tasks:
            if t["id"] == task:
                t["details"] = "agent edit %d" % n
                edits.append("details %s agent edit %d" % (task, n))
    if n % 3 == 0:
        tasks.append({"id": "A-%d-agent" % n, "title": "agent task %d" % n, "priority": 4, "status": "todo"})
        edits.append("add A-%d-agent agent task %d" % (n, n))
    if n % 4 == 1:
        k = "K-%d-keep" % (n % 20 + 1)
        for t in tasks:
            if t["id"] == k:
                t["status"] = "done"
                edits.append("done %s" % k)
    if edits:
        with open("to-do.json.agent-tmp", "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.rename("to-do.json.agent-tmp", "to-do.json")
        with open("agents/ledger", "a") as f:
            f.write("".join(e + "\n" for e in edits))
"#;

/// A reviewer that keeps the run going with one new task until the test is finished.
const REVIEWER: &str = r#"#!/bin/sh
cat > /dev/null
n=$(cat agents/reviews 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > agents/reviews
printf '{"status": "reviewed", "summary": "more", "new_tasks": [{"title": "review task %s", "priority": 3, "reason": "keep going"}], "done": false}\n' "$n"
"#;

#[test]
fn a_thousand_edits_during_a_run_lose_nothing_and_are_journaled() {
    let edits: usize = std::env::var("LOOPER_CONCURRENT_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (adds, updates) = (edits * 3 / 10, edits * 3 / 10);
    let raws = edits - adds - updates;
    let env = Env::new();
    env.write("README.md", "# concurrent edits\n");
    let seeded = seed(raws / 3 + 2);
    env.write("to-do.json", &seeded);
    env.write_executable("agents/worker", WORKER);
    env.write("agents/edit.py", AGENT_EDIT);
    env.write_executable("agents/reviewer", REVIEWER);
    let proj = Proj::of(&env);
    let run = proj
        .command(&[
            "run",
            "--worker",
            "cmd:./agents/worker",
            "--reviewer",
            "cmd:./agents/reviewer",
            "--max-iterations",
            "100000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.wait_for_records("agent.spawn", 1);

    let ledger: Shared = Arc::default();
    let threads = [
        spawn(&proj, &ledger, move |p, l| add_edits(p, l, adds)),
        spawn(&proj, &ledger, move |p, l| update_edits(p, l, updates)),
        spawn(&proj, &ledger, move |p, l| raw_edits(p, l, raws)),
    ];
    for t in threads {
        t.join().unwrap();
    }
    let stop = env.command(&["stop"]).output().unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    if !stop.status.success() || out.status.code() != Some(5) || stderr.contains("panicked") {
        ledger.failures.push(format!(
            "the run did not end by the stop request: {:?}\n{stderr}",
            out.status.code()
        ));
    }
    // One more Looper write takes in whatever was edited after the run's last write.
    env.looper(&["fmt"]).run();
    let agent =
        agent_edits(&std::fs::read_to_string(env.path("agents/ledger")).unwrap_or_default());
    let failures = check(&env, &seeded, &ledger, &agent);
    let trials = (adds + ledger.updates + raws + agent.count) as u64;
    eprintln!(
        "{trials} edits: {adds} adds, {} updates, {} raw writes ({} in-place writes made again), \
         {} agent edits; {} external changes journaled; {} failures",
        ledger.updates,
        ledger.raw_writes,
        ledger.remade,
        agent.count,
        env.records("backlog.external_change").len(),
        failures.len() + ledger.failures.len()
    );
    let all: Vec<&String> = ledger.failures.iter().chain(&failures).collect();
    figures::record(
        "concurrent-run",
        &Figure {
            part: "concurrent edits during `looper run`",
            trials,
            failures: all.len() as u64,
            meaning: "one edit made while `looper run` works (`looper add`, `looper update`, a raw read-modify-write of to-do.json by atomic rename or in-place rewrite, or the worker agent editing the file): it is in the final backlog unless a later edit replaced it, no task is lost or doubled and no Looper change is reverted, every raw and agent edit appears in a `backlog.external_change` diff (alone or folded with others made between two Looper writes), every agent `done` is refused as `backlog.refused_external`, and `looper audit` replays the history",
            rerun: "LOOPER_CONCURRENT_EDITS=5000 cargo nextest run -E 'test(concurrent_run::)'",
        },
    );
    assert!(all.is_empty(), "{} failures:\n{all:#?}", all.len());
}

fn spawn(
    proj: &Proj,
    ledger: &Shared,
    f: impl FnOnce(&Proj, &Shared) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let (proj, ledger) = (proj.clone(), Arc::clone(ledger));
    std::thread::spawn(move || f(&proj, &ledger))
}

fn add_edits(proj: &Proj, ledger: &Shared, n: usize) {
    for i in 0..n {
        let title = format!("concurrent add {i}");
        let out = proj.command(&["add", &title]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout
            .lines()
            .find_map(|l| l.strip_prefix("added ")?.split(':').next())
            .map(str::to_owned);
        let mut l = ledger.lock().unwrap();
        match id {
            Some(id) if out.status.success() => l.added.push((id, title)),
            _ => l.failures.push(format!(
                "`looper add {title}` failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

fn update_edits(proj: &Proj, ledger: &Shared, n: usize) {
    let mut rng = Lcg(0xadd5);
    for k in 0..n {
        // A task `looper add` made, else a K task (the run never works on those).
        let target = {
            let l = ledger.lock().unwrap();
            if l.added.is_empty() {
                format!("K-{}-keep", rng.below(20) + 1)
            } else {
                l.added[rng.below(l.added.len() as u64) as usize].0.clone()
            }
        };
        let value = format!("upd-{k}");
        let program = format!(
            r#".tasks |= map(if .id == "{target}" then .reference = "{value}" else . end)"#
        );
        let out = proj.command(&["update", &program]).output().unwrap();
        let mut l = ledger.lock().unwrap();
        l.updates += 1;
        if out.status.success() {
            l.references.insert(target, value);
        } else {
            l.failures.push(format!(
                "`looper update {program}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}

/// One raw edit: what it does to the document (idempotent, so a write that did not land
/// can be made again on the file as it is now).
enum Raw {
    Add(String, String),
    Describe(String, String),
    Delete(String),
}

impl Raw {
    /// Applies the edit; false when the document already has it. `None` when its task is
    /// not there (yet: a raw edit Looper's write displaced comes back when that write ends).
    fn apply(&self, doc: &mut Value, deleted: &mut Option<Value>) -> Option<bool> {
        let tasks = doc["tasks"].as_array_mut().unwrap();
        match self {
            Raw::Add(id, title) => {
                if tasks.iter().any(|t| t["id"] == id.as_str()) {
                    return Some(false);
                }
                tasks.push(json!({"id": id, "title": title, "priority": 3, "status": "todo"}));
            }
            Raw::Describe(id, text) => {
                let t = tasks.iter_mut().find(|t| t["id"] == id.as_str())?;
                if t["description"] == text.as_str() {
                    return Some(false);
                }
                t["description"] = json!(text);
            }
            Raw::Delete(id) => {
                let Some(at) = tasks.iter().position(|t| t["id"] == id.as_str()) else {
                    return deleted.is_some().then_some(false);
                };
                *deleted = Some(tasks.remove(at));
            }
        }
        Some(true)
    }
}

fn raw_edits(proj: &Proj, ledger: &Shared, n: usize) {
    let mut rng = Lcg(0x7a3);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(proj.root.join("agents/raw.lock"))
        .unwrap();
    let (mut next_delete, mut undescribed) = (1, Vec::new());
    for j in 0..n {
        std::thread::sleep(Duration::from_millis(10 + rng.below(40)));
        let edit = match j % 3 {
            1 if !undescribed.is_empty() => {
                let id: String = undescribed.remove(0);
                Raw::Describe(id, format!("raw description {j}"))
            }
            2 => {
                next_delete += 1;
                Raw::Delete(format!("D-{}-del", next_delete - 1))
            }
            _ => Raw::Add(format!("R-{j}-raw"), format!("raw add {j}")),
        };
        lock.lock().unwrap();
        let (deleted, writes, remade) = raw_write(proj, &edit, j % 2 == 1);
        lock.unlock().unwrap();
        let mut l = ledger.lock().unwrap();
        l.raw_writes += writes;
        l.remade += remade;
        match edit {
            Raw::Add(id, title) => {
                undescribed.push(id.clone());
                l.raw_added.push((id, title));
            }
            Raw::Describe(id, text) if writes == 0 => {
                l.failures.push(format!(
                    "raw describe: {id} was not there for 3 s ({text:?})"
                ));
            }
            Raw::Describe(id, text) => l.raw_described.push((id, text)),
            Raw::Delete(id) => match deleted {
                Some(task) => l.raw_deleted.push((id, task)),
                None => l.failures.push(format!("raw delete: {id} was not there")),
            },
        }
    }
}

/// Makes one raw edit by read-modify-write; `in_place` rewrites the file in two chunks (as an
/// editor that truncates and writes), otherwise writes a temp file and renames it. Returns
/// the deleted task, the writes made and how many of them were made again.
fn raw_write(proj: &Proj, edit: &Raw, in_place: bool) -> (Option<Value>, usize, usize) {
    let path = proj.backlog();
    let (mut deleted, mut writes) = (None, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .expect("Looper's writes are atomic: the raw writer never reads a torn file");
        match edit.apply(&mut doc, &mut deleted) {
            Some(true) => {}
            Some(false) => return (deleted, writes, writes.saturating_sub(1)),
            // The task to edit is not there: wait for it (and fail after 3 s, below).
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            None => return (None, writes, writes.saturating_sub(1)),
        }
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        writes += 1;
        if !in_place {
            let tmp = proj.root.join("to-do.json.raw-tmp");
            std::fs::write(&tmp, &text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            return (deleted, writes, writes - 1);
        }
        let mut f = std::fs::File::create(&path).unwrap();
        let half = text.len() / 2;
        f.write_all(&text.as_bytes()[..half]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        f.write_all(&text.as_bytes()[half..]).unwrap();
        let ours = f.metadata().unwrap().ino();
        drop(f);
        if std::fs::metadata(&path).unwrap().ino() == ours {
            return (deleted, writes, writes - 1);
        }
        // Looper replaced the file while this writer wrote into it: the edit may or may not
        // have reached Looper; make it again on the file as it is now (a no-op if it did).
    }
}

/// What the agent logged in `agents/ledger`.
#[derive(Default)]
struct AgentEdits {
    count: usize,
    details: HashMap<String, String>,
    added: Vec<(String, String)>,
    done: Vec<String>,
}

fn agent_edits(text: &str) -> AgentEdits {
    let mut a = AgentEdits::default();
    for line in text.lines() {
        a.count += 1;
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("details"), Some(id), Some(v)) => {
                a.details.insert(id.into(), v.into());
            }
            (Some("add"), Some(id), Some(title)) => a.added.push((id.into(), title.into())),
            (Some("done"), Some(id), None) => a.done.push(id.into()),
            _ => panic!("bad agent ledger line {line:?}"),
        }
    }
    a
}

/// Every check on the final backlog and the journal; returns what failed.
fn check(env: &Env, seeded: &str, ledger: &Ledger, agent: &AgentEdits) -> Vec<String> {
    let mut f = Vec::new();
    let validate = env.command(&["validate"]).output().unwrap();
    if !validate.status.success() {
        f.push(format!(
            "the final backlog does not validate: {}",
            String::from_utf8_lossy(&validate.stderr)
        ));
    }
    let audit = env.command(&["audit"]).output().unwrap();
    if !audit.status.success() {
        f.push(format!(
            "looper audit fails: {}",
            String::from_utf8_lossy(&audit.stdout)
        ));
    }
    let doc = env.read_json("to-do.json");
    let tasks: Vec<&Value> = doc["tasks"].as_array().unwrap().iter().collect();
    let mut by_id: HashMap<&str, &Value> = HashMap::new();
    for t in &tasks {
        if by_id.insert(t["id"].as_str().unwrap(), t).is_some() {
            f.push(format!("task {} is there twice", t["id"]));
        }
    }
    let field = |id: &str, k: &str| by_id.get(id).map(|t| t[k].clone());
    let externals = env.records("backlog.external_change");
    check_ledger(ledger, agent, &field, &mut f);
    check_journaled(ledger, agent, &externals, &mut f);
    check_refusals(env, agent, &field, &mut f);
    // No task vanished: every seeded task not deleted by the test is still there.
    let deleted: HashSet<&str> = ledger
        .raw_deleted
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let seeded: Value = serde_json::from_str(seeded).unwrap();
    for t in seeded["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        if !deleted.contains(id) && !by_id.contains_key(id) {
            f.push(format!("seeded task {id} is lost"));
        }
    }
    f
}

/// Every edit of the ledger is in the final backlog.
fn check_ledger(
    ledger: &Ledger,
    agent: &AgentEdits,
    field: &dyn Fn(&str, &str) -> Option<Value>,
    f: &mut Vec<String>,
) {
    let added = ledger
        .added
        .iter()
        .chain(&ledger.raw_added)
        .chain(&agent.added);
    for (id, title) in added {
        match field(id, "title") {
            Some(t) if t == title.as_str() => {}
            other => f.push(format!("added task {id} {title:?} is lost: {other:?}")),
        }
    }
    for (id, value) in &ledger.references {
        if field(id, "reference") != Some(json!(value)) {
            f.push(format!(
                "`looper update` set {id}.reference = {value:?}: lost"
            ));
        }
    }
    for (id, text) in &ledger.raw_described {
        if field(id, "description") != Some(json!(text)) {
            f.push(format!("raw edit set {id}.description = {text:?}: lost"));
        }
    }
    for (id, text) in &agent.details {
        if field(id, "details") != Some(json!(text)) {
            f.push(format!("the agent set {id}.details = {text:?}: lost"));
        }
    }
    for (id, _) in &ledger.raw_deleted {
        if field(id, "id").is_some() {
            f.push(format!("raw edit deleted {id}: it is back"));
        }
    }
}

/// Every raw and agent edit appears in a `backlog.external_change` diff, and no external
/// change took in anything nobody edited (a stale copy written back reverting Looper's work).
fn check_journaled(ledger: &Ledger, agent: &AgentEdits, externals: &[Value], f: &mut Vec<String>) {
    let mut added: HashMap<String, Value> = HashMap::new();
    let mut removed: HashMap<String, Value> = HashMap::new();
    let mut changed: HashSet<(String, String, String)> = HashSet::new();
    let deleted: HashSet<&str> = ledger
        .raw_deleted
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    for r in externals {
        let diff = &r["diff"];
        for a in diff["added"].as_array().into_iter().flatten() {
            added.insert(a["task"]["id"].as_str().unwrap().into(), a["task"].clone());
        }
        for t in diff["removed"].as_array().into_iter().flatten() {
            let id = t["id"].as_str().unwrap();
            if !deleted.contains(id) {
                f.push(format!(
                    "an external change removed {id}, which nobody deleted: {t}"
                ));
            }
            removed.insert(id.into(), t.clone());
        }
        for c in diff["changed"].as_array().into_iter().flatten() {
            let id = c["id"].as_str().unwrap();
            for fc in c["fields"].as_array().into_iter().flatten() {
                let name = fc["field"].as_str().unwrap();
                if !["description", "details"].contains(&name) {
                    f.push(format!("an external change reverted {id}.{name}: {fc}"));
                }
                changed.insert((id.into(), name.into(), fc["after"].to_string()));
            }
        }
        if diff["fields"].as_array().is_some_and(|v| !v.is_empty()) {
            f.push(format!(
                "an external change touched document fields: {diff}"
            ));
        }
    }
    let ids = ledger.raw_added.iter().chain(&agent.added);
    for (id, title) in ids {
        if added.get(id).is_none_or(|t| t["title"] != title.as_str()) {
            f.push(format!("the raw or agent add of {id} is not journaled"));
        }
    }
    let set = |id: &str, name: &str, v: &str| {
        changed.contains(&(id.into(), name.into(), json!(v).to_string()))
            || added.get(id).is_some_and(|t| t[name] == v)
    };
    for (id, text) in &ledger.raw_described {
        if !set(id, "description", text) {
            f.push(format!(
                "the raw edit {id}.description = {text:?} is not journaled"
            ));
        }
    }
    for (id, text) in &agent.details {
        if !set(id, "details", text) {
            f.push(format!(
                "the agent edit {id}.details = {text:?} is not journaled"
            ));
        }
    }
    for (id, task) in &ledger.raw_deleted {
        if removed.get(id) != Some(task) {
            f.push(format!(
                "the deletion of {id} is not journaled with its full content"
            ));
        }
    }
}

/// Every `done` the agent wrote into the file was refused and journaled, and no K task is done.
fn check_refusals(
    env: &Env,
    agent: &AgentEdits,
    field: &dyn Fn(&str, &str) -> Option<Value>,
    f: &mut Vec<String>,
) {
    let mut refused: HashMap<String, usize> = HashMap::new();
    for r in env.records("backlog.refused_external") {
        for x in r["refusals"].as_array().into_iter().flatten() {
            if x["field"] == "status" && x["wanted"] == "done" {
                *refused.entry(x["id"].as_str().unwrap().into()).or_default() += 1;
            }
        }
    }
    let mut tried: HashMap<&str, usize> = HashMap::new();
    for id in &agent.done {
        *tried.entry(id).or_default() += 1;
    }
    for (id, n) in tried {
        let got = refused.get(id).copied().unwrap_or(0);
        if got < n {
            f.push(format!(
                "the agent set {id} done {n} times; {got} refusals journaled"
            ));
        }
    }
    for i in 1..=20 {
        let id = format!("K-{i}-keep");
        if field(&id, "status") == Some(json!("done")) {
            f.push(format!("{id} is done: an external `done` was taken in"));
        }
    }
}
