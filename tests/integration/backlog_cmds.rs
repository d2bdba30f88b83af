//! init, validate, fmt, ls, add, update, done, schema: the everyday paths.

use serde_json::{Value, json};

use crate::harness::{Env, backlog_with};

/// A file exactly as the original looper.sh wrote it (its schema's fields, its timestamps).
const ORIGINAL_LOOPER_FILE: &str = r#"{
    "schema_version": 1,
    "project": {"name": "demo", "root": "."},
    "source_files": ["README.md", "SPEC.md"],
    "tasks": [
        {"id": "T1", "title": "Parse the config file", "priority": 1, "status": "done",
         "details": "Use TOML.", "steps": ["read", "parse"], "blockers": [], "tags": ["config"],
         "files": ["src/config.rs"], "depends_on": [],
         "created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T05:04:05Z"},
        {"id": "T2", "title": "Write the CLI", "priority": 2, "status": "doing", "depends_on": ["T1"],
         "created_at": "2025-01-02T03:04:05+00:00", "updated_at": "2025-01-02 03:04:05"},
        {"id": "T10", "title": "Docs", "priority": 3, "status": "blocked", "blockers": ["waiting"],
         "created_at": "2025-01-02"}
    ]
}"#;

#[test]
fn init_creates_backlog_schema_and_config_and_refuses_to_overwrite() {
    let env = Env::new();
    env.write("README.md", "# demo\n");
    env.looper(&["init", "--name", "demo"])
        .stdout_has("created to-do.json")
        .stdout_has("created to-do.schema.json")
        .stdout_has("created looper.toml")
        .run();
    let doc = env.read_json("to-do.json");
    assert_eq!(
        doc,
        json!({"schema_version": 1, "project": {"name": "demo", "root": "."}, "source_files": ["README.md"], "tasks": []})
    );
    assert!(env.read("to-do.json").ends_with("}\n"));
    let schema: Value = env.read_json("to-do.schema.json");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(env.read("looper.toml").contains("# [roles]"));

    env.looper(&["add", "keep me"]).run();
    let before = env.read("to-do.json");
    env.looper(&["init"])
        .status(1)
        .stderr_has("already exists: pass --force")
        .run();
    assert_eq!(
        env.read("to-do.json"),
        before,
        "init without --force must not touch the file"
    );

    env.looper(&["init", "--force"])
        .stdout_has("kept existing looper.toml")
        .run();
    assert_eq!(env.read_json("to-do.json")["tasks"], json!([]));
    // The replaced backlog is in the journal, so nothing is lost.
    let snapshots = env.records("backlog.snapshot");
    assert!(snapshots.iter().any(|r| {
        r["replaced"]
            .as_str()
            .is_some_and(|s| s.contains("keep me"))
    }));
}

#[test]
fn original_looper_file_loads_unchanged_and_lists() {
    let env = Env::new();
    env.write("to-do.json", ORIGINAL_LOOPER_FILE);
    env.looper(&["validate"])
        .stdout_has("ok: to-do.json is valid (3 tasks: 0 todo, 1 doing, 1 blocked, 1 done)")
        .run();
    env.looper(&["ls"])
        .stdout_is(
            "ID   P  STATUS   TITLE\n\
             T1   1  done     Parse the config file\n\
             T2   2  doing    Write the CLI  (after T1)\n\
             T10  3  blocked  Docs\n\
             3 tasks: 0 todo, 1 doing, 1 blocked, 1 done\n",
        )
        .run();
    env.looper(&["ls", "doing"]).stdout_has("T2 ").run();
    let out = env.looper(&["ls", "--json", "blocked"]).run();
    let list: Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(
        list,
        json!([{"id": "T10", "title": "Docs", "priority": 3, "status": "blocked", "blockers": ["waiting"], "created_at": "2025-01-02"}])
    );
    // Reading never writes.
    assert_eq!(env.read("to-do.json"), ORIGINAL_LOOPER_FILE);
}

#[test]
fn legacy_dot_looper_todo_is_found() {
    let env = Env::new();
    env.write(".looper/todo.json", backlog_with(2));
    env.looper(&["ls"]).stdout_has("T2 ").run();
    env.looper(&["add", "third"])
        .stdout_has("added T3: third")
        .run();
    assert_eq!(env.read_json(".looper/todo.json")["tasks"][2]["id"], "T3");
    assert!(env.path(".looper/todo.schema.json").exists());
    assert!(!env.path("to-do.json").exists());
    // Found from a subdirectory too.
    std::fs::create_dir_all(env.path("src/deep")).unwrap();
    let out = env
        .command(&["ls"])
        .current_dir(env.path("src/deep"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("T3 "));
}

#[test]
fn fmt_check_and_rewrite_preserve_key_order() {
    let env = Env::new();
    env.write("to-do.json", ORIGINAL_LOOPER_FILE);
    env.looper(&["fmt", "--check"])
        .status(1)
        .stderr_has("to-do.json is not formatted: run `looper fmt`")
        .run();
    env.looper(&["fmt"])
        .stdout_has("formatted to-do.json")
        .run();
    let text = env.read("to-do.json");
    assert!(
        text.starts_with("{\n  \"schema_version\": 1,\n  \"project\": {\n    \"name\": \"demo\""),
        "{text}"
    );
    // Key order inside tasks is the file's, not the struct's.
    let t1 = text.find("\"details\"").unwrap();
    assert!(t1 < text.find("\"steps\"").unwrap());
    let original: Value = serde_json::from_str(ORIGINAL_LOOPER_FILE).unwrap();
    assert_eq!(
        env.read_json("to-do.json"),
        original,
        "formatting changes no value"
    );
    env.looper(&["fmt", "--check"])
        .stdout_has("ok: to-do.json is formatted")
        .run();
    env.looper(&["fmt"]).stdout_has("already formatted").run();
    assert_eq!(env.read("to-do.json"), text);
}

#[test]
fn add_assigns_next_id_and_journals_the_program() {
    let env = Env::new();
    env.write("to-do.json", ORIGINAL_LOOPER_FILE);
    env.looper(&[
        "add",
        "Ship it",
        "-p",
        "1",
        "--depends-on",
        "T2",
        "--tag",
        "release",
        "-d",
        "all of it",
    ])
    .stdout_is("added T11: Ship it\n")
    .run();
    let doc = env.read_json("to-do.json");
    let t = &doc["tasks"][3];
    assert_eq!(t["id"], "T11");
    assert_eq!(t["priority"], 1);
    assert_eq!(t["status"], "todo");
    assert_eq!(t["depends_on"], json!(["T2"]));
    assert_eq!(t["tags"], json!(["release"]));
    assert_eq!(t["description"], "all of it");
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));

    let updates = env.records("backlog.update");
    assert_eq!(updates.len(), 1);
    let u = &updates[0];
    assert_eq!(u["source"], "add");
    assert!(u["program"].as_str().unwrap().contains(".tasks += ["));
    assert_eq!(u["args"]["title"], "Ship it");
    assert_eq!(u["after_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(u["v"], 2);
    // The first write recorded the starting point for replay.
    assert_eq!(env.records("backlog.snapshot").len(), 1);

    env.looper(&["add", "bad dep", "--depends-on", "T99"])
        .status(1)
        .stderr_has("/tasks/4/depends_on/0: \"T99\" is not the id of a task")
        .run();
    env.looper(&["add", "x", "-p", "9"])
        .status(2)
        .stderr_has("9 is not in 1..=5")
        .run();
    let out = env.looper(&["add", "--json", "json please"]).run();
    let added: Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(added["id"], "T12");
}

#[test]
fn update_applies_jq_and_refuses_done_and_invalid_results() {
    let env = Env::new();
    env.write("to-do.json", backlog_with(3));
    env.looper(&[
        "update",
        "--arg",
        "id",
        "T2",
        "--argjson",
        "p",
        "1",
        "(.tasks[] | select(.id == $id) | .priority) = $p",
    ])
    .stdout_has("updated to-do.json:")
    .stdout_has("T2: priority 3 -> 1")
    .run();
    assert_eq!(env.read_json("to-do.json")["tasks"][1]["priority"], 1);

    let before = env.read("to-do.json");
    env.looper(&["update", r#"(.tasks[0].status) = "done""#])
        .status(1)
        .stderr_has("it marks T1 done")
        .stderr_has("looper done T1 --reason TEXT")
        .run();
    env.looper(&["update", r#".tasks[0].status = "finished""#])
        .status(1)
        .stderr_has("/tasks/0/status: \"finished\" is not one of todo, doing, blocked, done")
        .run();
    env.looper(&["update", ".tasks |= "])
        .status(2)
        .stderr_has("jq program does not parse")
        .run();
    env.looper(&["update", "$missing"])
        .status(2)
        .stderr_has("undefined variable $missing")
        .run();
    env.looper(&["update", ".tasks[]"])
        .status(1)
        .stderr_has("must output exactly one value, it output 3")
        .run();
    env.looper(&["update", ".t = now"])
        .status(2)
        .stderr_has("undefined filter now")
        .run();
    env.looper(&["update", "--argjson", "x", "{nope", "."])
        .status(2)
        .stderr_has("--argjson x: not valid JSON")
        .run();
    assert_eq!(
        env.read("to-do.json"),
        before,
        "refused updates leave the file untouched"
    );
    assert_eq!(env.records("backlog.update_refused").len(), 6);

    env.looper(&["done", "T1", "--reason", "shipped by hand"])
        .stdout_has("T1 is done")
        .run();
    let t1 = &env.read_json("to-do.json")["tasks"][0];
    assert_eq!(t1["status"], "done");
    assert_eq!(t1["notes"], json!(["done by hand: shipped by hand"]));
    env.looper(&["done", "T9", "--reason", "x"])
        .status(1)
        .stderr_has("no task with id T9")
        .run();

    // Adding the project-done marker is the review pass's alone.
    env.looper(&["update", r#".tasks += [{"id": "PROJECT-DONE", "title": "done", "priority": 5, "status": "done", "tags": ["project-done"]}]"#])
        .status(1)
        .stderr_has("adds the project-done marker")
        .run();
}

#[test]
fn validate_json_output() {
    let env = Env::new();
    env.write("to-do.json", r#"{"schema_version": 1, "source_files": [], "tasks": [{"id": "T1", "title": "a", "priority": 1, "status": "completed"}]}"#);
    let out = env.looper(&["validate", "--json"]).status(1).run();
    let v: Value = serde_json::from_str(&out.stdout()).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["problems"],
        json!([{"pointer": "/tasks/0/status", "message": "\"completed\" is not one of todo, doing, blocked, done"}])
    );
}

#[test]
fn ls_of_an_empty_project_says_how_to_start() {
    let env = Env::new();
    env.looper(&["ls"])
        .status(1)
        .stderr_has("no backlog at")
        .stderr_has("run `looper init`")
        .run();
}

#[test]
fn backlog_path_from_flag_or_environment() {
    let env = Env::new();
    env.write("plans/other.json", backlog_with(1));
    env.looper(&["ls", "--backlog", "plans/other.json"])
        .stdout_has("T1 ")
        .run();
    env.looper(&["add", "via env"])
        .env("LOOPER_BACKLOG", "plans/other.json")
        .stdout_has("added T2")
        .run();
    assert!(env.path("plans/other.schema.json").exists());
    assert!(!env.path("to-do.json").exists());
}

#[test]
fn ls_index_follows_every_change_to_the_file() {
    let env = Env::new();
    env.write("to-do.json", backlog_with(2));
    env.looper(&["ls"]).stdout_has("Task number 2").run();
    // Same size, different title: the index must not serve the old listing.
    env.write(
        "to-do.json",
        backlog_with(2).replace("Task number 2", "Task number X"),
    );
    env.looper(&["ls"]).stdout_has("Task number X").run();
    env.looper(&["add", "third"]).run();
    env.looper(&["ls"]).stdout_has("third").run();
    // An invalid file is reported, not hidden behind a stale index.
    env.write("to-do.json", "{");
    env.looper(&["ls"])
        .status(1)
        .stderr_has("not valid JSON")
        .run();
}

/// A completion made in the file by hand is listed as Looper keeps it (as `status` counts
/// it), from the index too, until Looper's next write refuses it; a project-done marker added
/// by hand is left out.
#[test]
fn ls_lists_a_completion_made_outside_looper_as_looper_keeps_it() {
    let env = Env::new();
    env.looper(&["init"]).run();
    env.looper(&["add", "write the parser"]).run();
    env.looper(&["add", "write the docs"]).run();
    let mut file = env.read_json("to-do.json");
    file["tasks"][1]["status"] = json!("done");
    env.write("to-do.json", serde_json::to_string_pretty(&file).unwrap());
    env.add_marker_by_hand("T3");
    let file = env.read_json("to-do.json");
    let expected = "ID  P  STATUS    TITLE\n\
                    T1  3  todo      write the parser\n\
                    T2  3  todo*     write the docs\n\
                    2 tasks: 2 todo, 0 doing, 0 blocked, 0 done\n\
                    * T2 marked done in the file outside Looper: listed as Looper keeps it, and undone at Looper's next write (`looper done ID --reason TEXT` completes a task)\n\
                    * T3 (project-done marker) added outside Looper: not listed, and dropped at Looper's next write (only the review pass adds one)\n";
    // Built from the file, then served by the index.
    env.looper(&["ls"]).stdout_is(expected).run();
    env.looper(&["ls"]).stdout_is(expected).run();
    env.looper(&["ls", "done"])
        .stdout_has("0 done\n* T2 marked done")
        .run();
    let out = env.looper(&["ls", "--json"]).run();
    let list: Value = serde_json::from_str(&out.stdout()).unwrap();
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("T1", "todo"), ("T2", "todo")]);
    assert!(
        out.stderr()
            .contains("note: T2 marked done in the file outside Looper"),
        "{}",
        out.stderr()
    );
    // Reading never writes.
    assert_eq!(env.read_json("to-do.json"), file);
    // Looper's next write refuses both; the list has nothing left to mark.
    env.looper(&["fmt"]).run();
    let out = env.looper(&["ls"]).run().stdout();
    assert!(!out.contains('*'), "{out}");
    assert!(out.contains("T2  3  todo     write the docs"), "{out}");
}
