//! The catalogue of bad input (#7): malformed backlogs, config files, agent specs, flags,
//! environment variables and damaged journals. Each case checks the message (it names the
//! file, JSON pointer, key, flag or variable, and says what to do), the documented exit code,
//! that nothing panicked, and that no file under the project or `LOOPER_HOME` changed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::figures::{Figure, record};
use crate::harness::Env;

/// Every file under the project and `LOOPER_HOME`: path → bytes.
fn files(env: &Env) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&path, out),
                Ok(t) if t.is_file() => {
                    out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
                }
                _ => {
                    out.insert(path, Vec::new());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&env.root(), &mut out);
    walk(&env.home(), &mut out);
    out
}

/// The files without the two a refused backlog write may add under `LOOPER_HOME`: it is
/// journaled (DESIGN §4: `backlog.update_refused`) in the daily command journal, and the write
/// took the backlog's lock first (STYLE §2.13), which leaves an empty lock file.
fn unjournaled(mut files: BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    files.retain(|p, bytes| {
        let p = p.to_string_lossy();
        !(p.ends_with("-cmd.jsonl") || p.ends_with(".lock") && bytes.is_empty())
    });
    files
}

/// Runs `looper args` with `vars` set and checks a refused input: exit `status`, every one of
/// `expect` in stderr, a lowercase message, no panic (the harness checks), and no file under
/// the project or `LOOPER_HOME` changed.
#[track_caller]
fn refused(env: &Rc<Env>, args: &[&str], vars: &[(&str, &str)], status: i32, expect: &[&str]) {
    let writes = ["add", "update", "done", "fmt"].contains(&args[0]);
    let snapshot = || {
        let all = files(env);
        if writes { unjournaled(all) } else { all }
    };
    let before = snapshot();
    let mut test = env.looper(args).status(status);
    for (k, v) in vars {
        test = test.env(k, *v);
    }
    for e in expect {
        test = test.stderr_has(e);
    }
    let stderr = test.run().stderr();
    let message = stderr
        .trim_start_matches("looper: ")
        .trim_start_matches("error: ");
    assert!(
        lowercase(message),
        "looper {args:?} {vars:?}: not lowercase: {stderr}"
    );
    for e in expect {
        assert_eq!(stderr.matches(e).count(), 1, "{e:?} said once: {stderr}");
    }
    assert!(
        snapshot() == before,
        "looper {args:?} {vars:?} changed a file; stderr: {stderr}"
    );
}

/// Whether a message starts lowercase, as the style wants; a variable's name such as
/// `MAX_ITERATIONS` may open it, a capitalised word may not.
fn lowercase(message: &str) -> bool {
    let mut chars = message.chars();
    !(chars.next().is_some_and(char::is_uppercase) && chars.next().is_some_and(char::is_lowercase))
}

/// A project with a valid backlog, so only the input under test can be wrong.
fn project() -> Rc<Env> {
    let env = Env::new();
    env.write("to-do.json", crate::harness::backlog_with(1));
    env
}

fn task(extra: &str) -> String {
    format!(
        r#"{{"schema_version": 1, "source_files": [], "tasks": [{{"id": "T1", "title": "a", "priority": 1, "status": "todo"{extra}}}]}}"#
    )
}

fn tasks(list: &str) -> String {
    format!(r#"{{"schema_version": 1, "source_files": [], "tasks": [{list}]}}"#)
}

/// (name, file content, what stderr must say)
#[expect(clippy::too_many_lines, reason = "a table of cases")]
fn cases() -> Vec<(&'static str, Vec<u8>, String)> {
    let t = |id: &str, rest: &str| {
        format!(r#"{{"id": "{id}", "title": "t", "priority": 1, "status": "todo"{rest}}}"#)
    };
    let mut deep = "[".repeat(300_000);
    deep.push_str(&"]".repeat(300_000));
    let mut big =
        String::from(r#"{"schema_version": 1, "source_files": [], "tasks": [], "pad": ""#);
    big.push_str(&"x".repeat(70 * 1024 * 1024));
    big.push_str("\"}");
    let mut fifty = String::from(r#"{"schema_version": 1, "source_files": [], "tasks": ["#);
    fifty.push_str(
        &"{\"id\": \"T\", \"title\": \"x\", \"priority\": 1, \"status\": \"todo\"},"
            .repeat(50 * 1024 * 1024 / 60),
    );
    fifty.pop();
    fifty.push_str("]}");
    vec![
        ("empty file", b"".to_vec(), "to-do.json is empty".into()),
        (
            "whitespace only",
            b"  \n\t\n".to_vec(),
            "to-do.json is empty".into(),
        ),
        (
            "truncated",
            br#"{"schema_version": 1, "tasks": ["#.to_vec(),
            "to-do.json:1:32: not valid JSON: EOF while parsing a list".into(),
        ),
        (
            "trailing garbage",
            format!("{}\nxyz", task("")).into_bytes(),
            "to-do.json:2:1: not valid JSON: trailing characters".into(),
        ),
        (
            "array root",
            b"[]".to_vec(),
            "/: expected object, found array".into(),
        ),
        (
            "null root",
            b"null".to_vec(),
            "/: expected object, found null".into(),
        ),
        (
            "string root",
            b"\"hello\"".to_vec(),
            "/: expected object, found string".into(),
        ),
        (
            "missing tasks",
            br#"{"schema_version": 1, "source_files": []}"#.to_vec(),
            "/: missing required field \"tasks\"".into(),
        ),
        (
            "missing source_files",
            br#"{"schema_version": 1, "tasks": []}"#.to_vec(),
            "/: missing required field \"source_files\"".into(),
        ),
        (
            "tasks is an object",
            br#"{"schema_version": 1, "source_files": [], "tasks": {}}"#.to_vec(),
            "/tasks: expected array, found object".into(),
        ),
        (
            "task is a number",
            tasks("1").into_bytes(),
            "/tasks/0: expected object, found integer 1".into(),
        ),
        (
            "missing id",
            tasks(r#"{"title": "t", "priority": 1, "status": "todo"}"#).into_bytes(),
            "/tasks/0: missing required field \"id\"".into(),
        ),
        (
            "empty id",
            tasks(&t("", "")).into_bytes(),
            "/tasks/0/id: must not be empty".into(),
        ),
        (
            "priority as text",
            tasks(r#"{"id": "T1", "title": "t", "priority": "high", "status": "todo"}"#)
                .into_bytes(),
            "/tasks/0/priority: expected integer, found string \"high\"".into(),
        ),
        (
            "priority zero",
            tasks(r#"{"id": "T1", "title": "t", "priority": 0, "status": "todo"}"#).into_bytes(),
            "/tasks/0/priority: 0 is below the minimum of 1".into(),
        ),
        (
            "priority six",
            tasks(r#"{"id": "T1", "title": "t", "priority": 6, "status": "todo"}"#).into_bytes(),
            "/tasks/0/priority: 6 is above the maximum of 5".into(),
        ),
        (
            "priority fraction",
            tasks(r#"{"id": "T1", "title": "t", "priority": 1.5, "status": "todo"}"#).into_bytes(),
            "/tasks/0/priority: expected integer, found number 1.5".into(),
        ),
        (
            "priority overflow",
            tasks(r#"{"id": "T1", "title": "t", "priority": 1e400, "status": "todo"}"#)
                .into_bytes(),
            "not valid JSON: number out of range".into(),
        ),
        (
            "unknown status",
            tasks(r#"{"id": "T1", "title": "t", "priority": 1, "status": "completed"}"#)
                .into_bytes(),
            "/tasks/0/status: \"completed\" is not one of todo, doing, blocked, done".into(),
        ),
        (
            "duplicate ids",
            tasks(&format!("{},{}", t("T1", ""), t("T1", ""))).into_bytes(),
            "/tasks/1/id: duplicate id \"T1\" (first used at /tasks/0)".into(),
        ),
        (
            "unknown dependency",
            tasks(&t("T1", r#", "depends_on": ["T7"]"#)).into_bytes(),
            "/tasks/0/depends_on/0: \"T7\" is not the id of a task".into(),
        ),
        (
            "self dependency",
            tasks(&t("T1", r#", "depends_on": ["T1"]"#)).into_bytes(),
            "/tasks/0/depends_on/0: task \"T1\" depends on itself".into(),
        ),
        (
            "dependency cycle",
            tasks(&format!(
                "{},{},{}",
                t("T1", r#", "depends_on": ["T3"]"#),
                t("T2", r#", "depends_on": ["T1"]"#),
                t("T3", r#", "depends_on": ["T2"]"#)
            ))
            .into_bytes(),
            "dependency cycle: T1 -> T3 -> T2 -> T1".into(),
        ),
        (
            "unknown task field",
            task(r#", "dependson": []"#).into_bytes(),
            "/tasks/0: unknown field \"dependson\" (did you mean \"depends_on\"?)".into(),
        ),
        (
            "unknown top-level field",
            br#"{"schema_version": 1, "source_files": [], "tasks": [], "taks": []}"#.to_vec(),
            "/: unknown field \"taks\" (did you mean \"tasks\"?)".into(),
        ),
        (
            "future schema version",
            br#"{"schema_version": 2, "source_files": [], "tasks": []}"#.to_vec(),
            "/schema_version: schema_version 2 is not supported: this looper reads version 1"
                .into(),
        ),
        (
            "schema version as text",
            br#"{"schema_version": "1", "source_files": [], "tasks": []}"#.to_vec(),
            "/schema_version: expected integer, found string \"1\"".into(),
        ),
        (
            "two project-done markers",
            tasks(&format!(
                "{},{}",
                t("A", r#", "tags": ["project-done"]"#).replace("todo", "done"),
                t("B", r#", "tags": ["project-done"]"#).replace("todo", "done")
            ))
            .into_bytes(),
            "/tasks/1: more than one project-done marker (A, B)".into(),
        ),
        (
            "unreadable timestamp",
            task(r#", "created_at": "2026-02-30T10:00:00Z""#).into_bytes(),
            "/tasks/0/created_at: \"2026-02-30T10:00:00Z\" is not an ISO-8601 timestamp".into(),
        ),
        (
            "word timestamp",
            task(r#", "updated_at": "yesterday""#).into_bytes(),
            "/tasks/0/updated_at: \"yesterday\" is not an ISO-8601 timestamp".into(),
        ),
        (
            "project is text",
            br#"{"schema_version": 1, "project": "x", "source_files": [], "tasks": []}"#.to_vec(),
            "/project: expected object, found string \"x\"".into(),
        ),
        (
            "source file is a number",
            br#"{"schema_version": 1, "source_files": [1], "tasks": []}"#.to_vec(),
            "/source_files/0: expected string, found integer 1".into(),
        ),
        (
            "negative attempts",
            task(r#", "attempts": -1"#).into_bytes(),
            "/tasks/0/attempts: -1 is below the minimum of 0".into(),
        ),
        (
            "null title",
            tasks(r#"{"id": "T1", "title": null, "priority": 1, "status": "todo"}"#).into_bytes(),
            "/tasks/0/title: expected string, found null".into(),
        ),
        (
            "not UTF-8",
            b"{\"schema_version\": 1,\n \"source_files\": [\"\xff\xfe\"], \"tasks\": []}".to_vec(),
            "to-do.json is not UTF-8 text (invalid byte at line 2, column 20)".into(),
        ),
        (
            "300k nested arrays",
            deep.into_bytes(),
            "not valid JSON: recursion limit exceeded".into(),
        ),
        (
            "50 MB of tasks with one id",
            fifty.into_bytes(),
            "more (`looper validate --json` lists them all)".into(),
        ),
        (
            "70 MB file",
            big.into_bytes(),
            "over the 67108864 byte limit".into(),
        ),
    ]
}

#[test]
fn every_malformed_backlog_gets_a_clear_error_and_stays_unchanged() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let trials = cases.len();
    for (name, content, expected) in cases {
        let env = Env::new();
        env.write("to-do.json", &content);
        for args in [
            &["validate"][..],
            &["ls"],
            &["add", "x"],
            &["fmt"],
            &["update", "."],
        ] {
            let before = files(&env);
            let out = env.command(args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{name}: looper {args:?}: exit code; stderr: {stderr}"
            );
            assert!(
                stderr.contains(&expected),
                "{name}: looper {args:?}: stderr lacks {expected:?}: {stderr}"
            );
            assert!(
                stderr.contains("to-do.json"),
                "{name}: the error names the file: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{name}: panic: {stderr}");
            assert!(
                stderr.strip_prefix("looper: ").is_some_and(lowercase),
                "{name}: lowercase: {stderr}"
            );
            let (before, after) = (unjournaled(before), unjournaled(files(&env)));
            assert!(
                after == before,
                "{name}: looper {args:?} changed a file: {:?}",
                after
                    .keys()
                    .filter(|k| before.get(*k) != after.get(*k))
                    .collect::<Vec<_>>()
            );
        }
        assert_eq!(env.records("backlog.update_refused").len(), 3, "{name}");
    }
    record(
        "bad-input-backlog",
        &Figure {
            part: "bad input: malformed backlogs",
            trials: trials as u64,
            failures: 0,
            meaning: "a malformed to-do.json under validate, ls, add, fmt and update: exit 1, the \
                      file and JSON pointer or line named, no panic, no file changed but the \
                      journaled refusal",
            rerun: "cargo nextest run -E 'test(bad_input::)'",
        },
    );
}

#[test]
fn a_directory_instead_of_a_file() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("to-do.json")).unwrap();
    for args in [&["validate"][..], &["add", "x"]] {
        env.looper(args)
            .status(1)
            .stderr_has("to-do.json is a directory, not a backlog file")
            .run();
    }
    assert!(env.path("to-do.json").is_dir());
}

#[test]
fn a_symlink_loop_and_a_dangling_link() {
    let env = Env::new();
    std::os::unix::fs::symlink("to-do.json", env.path("to-do.json")).unwrap();
    env.looper(&["validate"])
        .status(1)
        .stderr_has("cannot read")
        .stderr_has("to-do.json")
        .run();
    std::fs::remove_file(env.path("to-do.json")).unwrap();
    std::os::unix::fs::symlink("missing.json", env.path("to-do.json")).unwrap();
    env.looper(&["add", "x"])
        .status(1)
        .stderr_has("no backlog at")
        .run();
    assert!(!env.path("missing.json").exists());
}

/// Root reads any file, so the no-permission case runs as `nobody` through `setpriv` when the
/// tests run as root.
#[test]
fn no_permission_to_read() {
    let env = Env::new();
    let content = crate::harness::backlog_with(1);
    env.write("to-do.json", &content);
    std::fs::set_permissions(
        env.path("to-do.json"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // Let an unprivileged user reach the project and its LOOPER_HOME.
    let mut p = env.root();
    while let Some(parent) = p.parent() {
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777));
        if parent == std::env::temp_dir() {
            break;
        }
        p = parent.to_path_buf();
    }
    std::fs::create_dir_all(env.home()).unwrap();
    std::fs::set_permissions(env.home(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let out = if is_root {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::harness::BIN,
            "validate",
        ]);
        cmd.current_dir(env.root())
            .env("LOOPER_HOME", env.home())
            .env("HOME", env.home());
        cmd.output()
            .expect("setpriv (util-linux) runs the unprivileged case")
    } else {
        env.command(&["validate"]).output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read")
            && stderr.contains("to-do.json")
            && stderr.contains("Permission denied"),
        "{stderr}"
    );
    std::fs::set_permissions(
        env.path("to-do.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(env.read("to-do.json"), content);
}

#[test]
fn byte_order_mark_is_accepted() {
    let env = Env::new();
    env.write(
        "to-do.json",
        format!("\u{feff}{}", crate::harness::backlog_with(1)),
    );
    env.looper(&["validate"])
        .stdout_has("ok: to-do.json is valid (1 task:")
        .run();
}

/// One bad input: the files it writes, the commands that must refuse it, and what they say.
struct Case {
    name: &'static str,
    /// `(path, content)`; a path starting `home:` is under `LOOPER_HOME`, else in the project.
    files: Vec<(&'static str, &'static str)>,
    vars: Vec<(&'static str, &'static str)>,
    commands: Vec<Vec<&'static str>>,
    status: i32,
    expect: Vec<&'static str>,
}

fn case(
    name: &'static str,
    commands: &[&[&'static str]],
    status: i32,
    expect: &[&'static str],
) -> Case {
    Case {
        name,
        files: Vec::new(),
        vars: Vec::new(),
        commands: commands.iter().map(|c| c.to_vec()).collect(),
        status,
        expect: expect.to_vec(),
    }
}

impl Case {
    fn file(mut self, path: &'static str, content: &'static str) -> Self {
        self.files.push((path, content));
        self
    }

    fn var(mut self, k: &'static str, v: &'static str) -> Self {
        self.vars.push((k, v));
        self
    }
}

/// Runs every case in a fresh project with a valid backlog and records the figure.
fn run_cases(key: &str, part: &str, meaning: &str, cases: &[Case]) {
    for c in cases {
        let env = project();
        for (path, content) in &c.files {
            let full = match path.strip_prefix("home:") {
                Some(rel) => env.home().join(rel),
                None => env.path(path),
            };
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        for args in &c.commands {
            eprintln!("case {key}: {} (looper {args:?})", c.name);
            refused(&env, args, &c.vars, c.status, &c.expect);
        }
    }
    record(
        key,
        &Figure {
            part,
            trials: cases.len() as u64,
            failures: 0,
            meaning,
            rerun: "cargo nextest run -E 'test(bad_input::)'",
        },
    );
}

const CONFIG: &[&[&str]] = &[&["config"], &["run"]];

#[test]
#[expect(clippy::too_many_lines, reason = "a table of cases")]
fn every_bad_config_file_is_refused_naming_the_file_and_key() {
    let p = "looper.toml";
    let h = "home:config.toml";
    let cases = vec![
        case(
            "toml syntax",
            CONFIG,
            2,
            &["invalid config", "/looper.toml", "line 1"],
        )
        .file(p, "[roles\nworker = \"codex\"\n"),
        case(
            "unknown top-level key",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "unknown field `sandbx`",
                "did you mean `sandbox`?",
            ],
        )
        .file(p, "sandbx = \"none\"\n"),
        case(
            "unknown key in a table",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "line 2",
                "unknown field `max_iteration`",
                "did you mean `max_iterations`?",
            ],
        )
        .file(p, "[loop]\nmax_iteration = 5\n"),
        case(
            "unknown table",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "unknown field `lop`",
                "did you mean `loop`?",
            ],
        )
        .file(p, "[lop]\nmax_iterations = 5\n"),
        case(
            "wrong type",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "line 2",
                "invalid type: string \"ten\", expected u32",
            ],
        )
        .file(p, "[loop]\nmax_iterations = \"ten\"\n"),
        case(
            "bad enum value",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "unknown variant `always`",
                "expected one of `looper`, `agent`, `off`",
            ],
        )
        .file(p, "[git]\ncommit = \"always\"\n"),
        case(
            "bad sandbox",
            CONFIG,
            2,
            &["/looper.toml", "unknown variant `off`"],
        )
        .file(p, "sandbox = \"off\"\n"),
        case(
            "negative number",
            CONFIG,
            2,
            &["/looper.toml", "invalid value: integer `-1`, expected u32"],
        )
        .file(p, "[loop]\nmax_iterations = -1\n"),
        case(
            "zero timeout",
            CONFIG,
            2,
            &[
                "timeouts.idle = 0 (set in ",
                "/looper.toml): give a number of seconds above 0",
            ],
        )
        .file(p, "[timeouts]\nidle = 0\n"),
        case(
            "zero cost",
            CONFIG,
            2,
            &[
                "loop.max_cost = 0 (set in ",
                "/looper.toml): give a number of US dollars above 0",
            ],
        )
        .file(p, "[loop]\nmax_cost = 0.0\n"),
        case(
            "bad duration",
            CONFIG,
            2,
            &[
                "loop.max_duration = \"soon\" (set in ",
                "/looper.toml) is not a duration: write e.g. \"90m\"",
            ],
        )
        .file(p, "[loop]\nmax_duration = \"soon\"\n"),
        case(
            "hook as a string",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "invalid type: string \"notify.sh\", expected a sequence",
            ],
        )
        .file(p, "[hooks]\non_done = \"notify.sh\"\n"),
        case(
            "price as text",
            CONFIG,
            2,
            &[
                "/looper.toml",
                "invalid type: string \"cheap\", expected f64",
            ],
        )
        .file(p, "[prices.codex]\ninput = \"cheap\"\noutput = 1.0\n"),
        case(
            "duplicate key",
            CONFIG,
            2,
            &["/looper.toml", "duplicate key"],
        )
        .file(p, "[loop]\ndelay = 1\ndelay = 2\n"),
        case(
            ".looper/looper.toml",
            CONFIG,
            2,
            &[
                "/.looper/looper.toml",
                "unknown field `wroker`",
                "did you mean `worker`?",
            ],
        )
        .file(".looper/looper.toml", "[roles]\nwroker = \"codex\"\n"),
        case(
            "user config syntax",
            CONFIG,
            2,
            &["invalid config", "looper-home/config.toml", "line 1"],
        )
        .file(h, "= 5\n"),
        case(
            "user config wrong type",
            CONFIG,
            2,
            &[
                "looper-home/config.toml",
                "invalid type: integer `5`, expected a string",
            ],
        )
        .file(h, "[roles]\nworker = 5\n"),
        case(
            "user config zero timeout",
            CONFIG,
            2,
            &["verify.timeout = 0 (set in ", "looper-home/config.toml)"],
        )
        .file(h, "[verify]\ntimeout = 0\n"),
    ];
    run_cases(
        "bad-input-config",
        "bad input: config files",
        "a bad looper.toml or $LOOPER_HOME/config.toml under `looper config` and `looper run`: \
         exit 2, the file, line or key and the fix named, no panic, no file changed",
        &cases,
    );
}

#[test]
fn every_bad_agent_spec_is_refused_naming_where_it_was_set() {
    let p = "looper.toml";
    let cases = vec![
        case("unknown adapter", &[&["run", "--worker", "nope"]], 2, &["in roles.worker (set by --worker): in agent `nope`: unknown agent adapter `nope` in spec: use one of codex, claude"]),
        case("empty effort", &[&["run", "--worker", "codex:@"]], 2, &["(set by --worker)", "unknown reasoning effort `` in agent spec `codex:@`: use minimal, low, medium, high, xhigh or max"]),
        case("bad effort", &[&["run", "--reviewer", "codex@turbo"]], 2, &["in roles.reviewer (set by --reviewer)", "unknown reasoning effort `turbo`"]),
        case("empty model", &[&["run", "--worker", "claude:"]], 2, &["(set by --worker)", "agent spec `claude:` has an empty model after `:`; drop the `:` or name a model"]),
        case("cmd without a program", &[&["run", "--reviewer", "cmd:"]], 2, &["(set by --reviewer)", "agent spec `cmd:` names no program: write `cmd:<program>`"]),
        case("empty spec", &[&["run", "--worker", " "]], 2, &["(set by --worker)", "empty agent spec: write `adapter[:model][@effort]`"]),
        case("bad escalation", &[&["run", "--escalate", "gpt"]], 2, &["in roles.escalate (set by --escalate)", "unknown agent adapter `gpt`"]),
        case("bad fallback", &[&["run", "--fallback", "codex@fast"]], 2, &["in roles.fallback (set by --fallback)", "unknown reasoning effort `fast`"]),
        case("bad bootstrap agent", &[&["run", "--bootstrap-agent", "cmd: "]], 2, &["in roles.bootstrap (set by --bootstrap-agent)", "names no program"]),
        case("bad repair agent", &[&["run", "--repair-agent", "nope:x"]], 2, &["in roles.repair (set by --repair-agent)", "unknown agent adapter `nope`"]),
        case("bad schedule entry", &[&["run", "--schedule", "claude,nope"]], 2, &["in roles.schedule (set by --schedule)", "unknown agent adapter `nope`"]),
        case("empty schedule", &[&["run", "--schedule", ","]], 2, &["roles.schedule is empty (set by --schedule): write \"odd-even\" or a list of agents"]),
        case("config worker", CONFIG, 2, &["in roles.worker (set in ", "/looper.toml): in agent `nope`: unknown agent adapter `nope`"])
            .file(p, "[roles]\nworker = \"nope\"\n"),
        case("config empty reviewers", CONFIG, 2, &["roles.reviewer is empty (set in ", "/looper.toml): name at least one reviewer"])
            .file(p, "[roles]\nreviewer = []\n"),
        case("config odd-even even", CONFIG, 2, &["in roles.even (set in ", "unknown agent adapter `gpt`"])
            .file(p, "[roles]\nschedule = \"odd-even\"\neven = \"gpt\"\n"),
        case("profile with a bad spec", CONFIG, 2, &["in roles.worker (set in ", "in [agents.glm] spec (set in ", "agent spec `claude:` has an empty model"])
            .file(p, "[roles]\nworker = \"glm\"\n[agents.glm]\nspec = \"claude:\"\n"),
        case("profile without a spec", CONFIG, 2, &["agent profile `glm` has no spec: add spec = \"adapter[:model][@effort]\" under [agents.glm]"])
            .file(p, "[roles]\nworker = \"glm\"\n[agents.glm]\nprogram = \"/bin/true\"\n"),
        case("profile with an unset variable", CONFIG, 2, &["in [agents.glm] env.K", "${ZAI_NOPE} is not set in Looper's environment"])
            .file(p, "[roles]\nworker = \"glm\"\n[agents.glm]\nspec = \"claude\"\nenv = { K = \"${ZAI_NOPE}\" }\n"),
        case("profile with an unclosed variable", CONFIG, 2, &["in [agents.glm] env.K", "unclosed `${`"])
            .file(p, "[roles]\nworker = \"glm\"\n[agents.glm]\nspec = \"claude\"\nenv = { K = \"${ZAI\" }\n"),
    ];
    run_cases(
        "bad-input-specs",
        "bad input: agent specs",
        "a bad agent spec in a flag, [roles] or an [agents.X] profile: exit 2, the setting and \
         where it was set named with the fix, no panic, no file changed",
        &cases,
    );
}

#[test]
#[expect(clippy::too_many_lines, reason = "a table of cases")]
fn every_bad_flag_is_a_usage_error() {
    let cases = vec![
        case(
            "iterations as text",
            &[&["run", "--max-iterations", "abc"]],
            2,
            &[
                "invalid value 'abc' for '--max-iterations <N>': invalid digit found in string",
                "try '--help'",
            ],
        ),
        case(
            "negative iterations",
            &[&["run", "--max-iterations=-1"]],
            2,
            &["invalid value '-1' for '--max-iterations <N>'"],
        ),
        case(
            "too many iterations",
            &[&["run", "--max-iterations", "99999999999"]],
            2,
            &[
                "invalid value '99999999999' for '--max-iterations <N>': 99999999999 is not in 0..=4294967295",
            ],
        ),
        case(
            "cost as text",
            &[&["run", "--max-cost", "lots"]],
            2,
            &["invalid value 'lots' for '--max-cost <USD>'"],
        ),
        case(
            "negative cost",
            &[&["run", "--max-cost=-1"]],
            2,
            &["loop.max_cost = -1 (set by --max-cost): give a number of US dollars above 0"],
        ),
        case(
            "not-a-number cost",
            &[&["run", "--max-cost", "NaN"]],
            2,
            &["loop.max_cost = NaN (set by --max-cost)"],
        ),
        case(
            "duration as a word",
            &[&["run", "--max-duration", "soon"]],
            2,
            &[
                "loop.max_duration = \"soon\" (set by --max-duration) is not a duration: write e.g. \"90m\" or \"2h 30m\"",
            ],
        ),
        case(
            "zero duration",
            &[&["run", "--max-duration", "0s"]],
            2,
            &["loop.max_duration = \"0s\" (set by --max-duration) is not a duration"],
        ),
        case(
            "fractional tokens",
            &[&["run", "--max-tokens", "1.5"]],
            2,
            &["invalid value '1.5' for '--max-tokens <N>'"],
        ),
        case(
            "negative delay",
            &[&["run", "--delay=-5"]],
            2,
            &["invalid value '-5' for '--delay <SECONDS>'"],
        ),
        case(
            "bad sandbox",
            &[&["run", "--sandbox", "off"]],
            2,
            &[
                "invalid value 'off' for '--sandbox <MODE>'",
                "[possible values: default, none]",
            ],
        ),
        case(
            "unknown flag",
            &[&["run", "--max-iteration", "3"]],
            2,
            &[
                "unexpected argument '--max-iteration' found",
                "tip: a similar argument exists: '--max-iterations'",
            ],
        ),
        case(
            "missing value",
            &[&["run", "--worker"]],
            2,
            &["a value is required for '--worker <SPEC>' but none was supplied"],
        ),
        case(
            "unknown command",
            &[&["frobnicate"]],
            2,
            &["unrecognized subcommand 'frobnicate'"],
        ),
        case(
            "priority out of range",
            &[&["add", "x", "-p", "9"]],
            2,
            &["invalid value '9' for '--priority <PRIORITY>': 9 is not in 1..=5"],
        ),
        case(
            "unknown status",
            &[&["ls", "finished"]],
            2,
            &[
                "invalid value 'finished' for '[STATUS]'",
                "[possible values: todo, doing, blocked, done]",
            ],
        ),
        case(
            "done without a reason",
            &[&["done", "T1"]],
            2,
            &[
                "the following required arguments were not provided",
                "  --reason <REASON>\n",
            ],
        ),
        case(
            "bad since",
            &[&["log", "--since", "someday"]],
            2,
            &["--since \"someday\" is neither a time nor an age: write e.g. 2026-11-30"],
        ),
        case(
            "bad age",
            &[&["clean", "--older-than", "forever"]],
            2,
            &["--older-than \"forever\" is not an age: write a number and a unit, e.g. 30d"],
        ),
        case(
            "bad shell",
            &[&["completions", "tcsh"]],
            2,
            &["invalid value 'tcsh' for '<SHELL>'"],
        ),
        case(
            "bad jq program",
            &[&["update", ".tasks |="]],
            2,
            &[
                "update refused, ",
                "/to-do.json is unchanged: jq program does not parse: expected term at end of program (column 10)",
            ],
        ),
        case(
            "bad --argjson",
            &[&["update", "--argjson", "x", "{", "."]],
            2,
            &["--argjson x: not valid JSON: EOF while parsing an object at line 1 column 1"],
        ),
    ];
    run_cases(
        "bad-input-flags",
        "bad input: flags",
        "a bad flag value, an unknown flag or a missing value: exit 2, the flag named with the \
         fix, no panic, no file changed",
        &cases,
    );
}

#[test]
fn every_bad_environment_variable_is_refused_naming_it() {
    let cases = vec![
        case("LOOPER_WORKER", CONFIG, 2, &["in roles.worker (set by LOOPER_WORKER): in agent `nope`: unknown agent adapter `nope`"]).var("LOOPER_WORKER", "nope"),
        case("LOOPER_REVIEWER", CONFIG, 2, &["in roles.reviewer (set by LOOPER_REVIEWER)", "empty agent spec"]).var("LOOPER_REVIEWER", "codex,,claude"),
        case("LOOPER_BOOTSTRAP", CONFIG, 2, &["in roles.bootstrap (set by LOOPER_BOOTSTRAP)", "names no program"]).var("LOOPER_BOOTSTRAP", "cmd:"),
        case("LOOPER_REPAIR", CONFIG, 2, &["in roles.repair (set by LOOPER_REPAIR)", "unknown reasoning effort `ultra`"]).var("LOOPER_REPAIR", "codex@ultra"),
        case("MAX_ITERATIONS", CONFIG, 2, &["MAX_ITERATIONS=\"abc\" is not a whole number of iterations"]).var("MAX_ITERATIONS", "abc"),
        case("LOOPER_MAX_ITERATIONS", CONFIG, 2, &["LOOPER_MAX_ITERATIONS=\"-3\" is not a whole number of iterations"]).var("LOOPER_MAX_ITERATIONS", "-3"),
        case("LOOP_DELAY_SECONDS", CONFIG, 2, &["LOOP_DELAY_SECONDS=\"soon\" is not a whole number of seconds"]).var("LOOP_DELAY_SECONDS", "soon"),
        case("LOOPER_ITER_SCHEDULE", CONFIG, 2, &["invalid iter schedule `weekly` (--iter-schedule or LOOPER_ITER_SCHEDULE): use codex, claude, odd-even or round-robin"]).var("LOOPER_ITER_SCHEDULE", "weekly"),
        case("LOOPER_ALL_AGENT", CONFIG, 2, &["(set by LOOPER_ALL_AGENT)", "unknown agent adapter `gpt`"]).var("LOOPER_ALL_AGENT", "gpt"),
        case("LOOPER_ITER_ODD_AGENT", CONFIG, 2, &["in roles.odd (set by LOOPER_ITER_SCHEDULE and LOOPER_ITER_ODD_AGENT)", "unknown agent adapter `gpt`"]).var("LOOPER_ITER_SCHEDULE", "odd-even").var("LOOPER_ITER_ODD_AGENT", "gpt"),
        case("CODEX_REASONING_EFFORT", CONFIG, 2, &["in [agents.codex] spec (set by CODEX_REASONING_EFFORT)", "unknown reasoning effort `turbo` in agent spec `codex@turbo`"]).var("CODEX_REASONING_EFFORT", "turbo"),
        case("CLAUDE_MODEL with an effort", CONFIG, 2, &["in [agents.claude] spec (set by CLAUDE_MODEL)", "unknown reasoning effort"]).var("LOOPER_WORKER", "claude").var("CLAUDE_MODEL", "opus@fast"),
        case("LOOPER_HOME is a file", &[&["config"], &["run"], &["status"], &["add", "x"], &["log"]], 2, &["LOOPER_HOME=", "/project/to-do.json is not a directory: point it at a directory for Looper's journals, or unset it"]).var("LOOPER_HOME", "to-do.json"),
        case("LOOPER_BACKLOG is missing", &[&["ls"], &["validate"]], 1, &["no backlog at", "missing.json"]).var("LOOPER_BACKLOG", "missing.json"),
    ];
    run_cases(
        "bad-input-env",
        "bad input: environment variables",
        "a bad LOOPER_* or original looper.sh variable: exit 2 (1 for a missing backlog), the \
         variable named with the fix, no panic, no file changed",
        &cases,
    );
}

/// What a damage writes: (name, the run's journal, an older run file beside it).
type Damage = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// Damaged journals (DESIGN §7): a torn last line, a corrupt line in the middle, a record from
/// a future version, an empty or binary run file. Readers skip what they cannot read, by
/// design, so each reader must succeed and show exactly what it shows for the intact journal.
#[test]
fn damaged_journals_are_read_around_and_never_fatal() {
    let env = crate::history::worked_project();
    let run = crate::history::run_journal(&env);
    let intact = std::fs::read(&run).unwrap();
    let readers: &[&[&str]] = &[
        &["log"],
        &["show", "3"],
        &["tail"],
        &["audit"],
        &["stats"],
        &["status", "--json"],
    ];
    let expected: Vec<String> = readers
        .iter()
        .map(|a| env.looper(a).run().stdout())
        .collect();
    let lines: Vec<&[u8]> = intact.split_inclusive(|&b| b == b'\n').collect();
    let mid = lines.len() / 2;
    let older = run.with_file_name("20000101T000000.000Z-0000.jsonl");
    let future = b"{\"v\":2,\"ts\":\"2999-01-01T00:00:00Z\",\"run\":\"x\",\"seq\":999,\"type\":\"run.quantum\",\"n\":[1]}\n";
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let damages: Vec<Damage> = vec![
        (
            "torn last line",
            [&intact[..], b"{\"v\":1,\"seq\":99,\"type\":\"iteration.st"].concat(),
            None,
        ),
        (
            "corrupt line in the middle",
            [
                lines[..mid].concat(),
                b"{\"v\":1,\"seq\":\x00 \xff\n".to_vec(),
                lines[mid..].concat(),
            ]
            .concat(),
            None,
        ),
        (
            "record from a future version",
            [&intact[..], future].concat(),
            None,
        ),
        ("empty run file", intact.clone(), Some(Vec::new())),
        ("binary garbage run file", intact.clone(), Some(garbage)),
    ];
    let mut trials = 0;
    for (name, content, other) in &damages {
        std::fs::write(&run, content).unwrap();
        if let Some(other) = other {
            std::fs::write(&older, other).unwrap();
        }
        for (args, expected) in readers.iter().zip(&expected) {
            let before = files(&env);
            let stdout = env.looper(args).run().stdout();
            // A file in runs/ counts as a run (and a journal file) even when it holds no
            // record: only those counts may differ.
            let expected = if other.is_some() {
                expected
                    .replace("runs              1\n", "runs              2\n")
                    .replace("in 2 journal files", "in 3 journal files")
            } else {
                expected.clone()
            };
            pretty_assertions::assert_eq!(stdout, expected, "{name}: looper {args:?}");
            assert!(
                files(&env) == before,
                "{name}: looper {args:?} changed a file"
            );
            trials += 1;
        }
        std::fs::write(&run, &intact).unwrap();
        let _ = std::fs::remove_file(&older);
    }
    record(
        "bad-input-journal",
        &Figure {
            part: "bad input: damaged journals",
            trials,
            failures: 0,
            meaning: "a damaged journal under log, show, tail, audit, stats and status: exit 0, \
                      the same output as for the intact journal, no panic, no file changed",
            rerun: "cargo nextest run -E 'test(bad_input::)'",
        },
    );
}
