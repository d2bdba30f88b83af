//! The catalogue of malformed backlogs: each gets a clear error naming the file and the JSON
//! pointer or line, the documented exit code, never a panic, and the file is left unchanged.

use std::os::unix::fs::PermissionsExt;

use crate::harness::Env;

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
                std::fs::read(env.path("to-do.json")).unwrap() == content,
                "{name}: looper {args:?} changed the file"
            );
        }
        // A refused write is journaled.
        assert_eq!(env.records("backlog.update_refused").len(), 3, "{name}");
    }
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
