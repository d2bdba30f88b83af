//! External edits (a person or an agent editing to-do.json) are detected, journaled and merged.

use serde_json::json;

use crate::harness::{Env, backlog_with};

#[test]
fn external_edit_is_merged_journaled_and_completion_is_refused() {
    let env = Env::new();
    env.write("to-do.json", backlog_with(3));
    env.looper(&["fmt"]).run();

    // Someone edits the file by hand: retitles T1, "finishes" T2, deletes T3, adds T4.
    let mut doc = env.read_json("to-do.json");
    doc["tasks"][0]["title"] = json!("Retitled by hand");
    doc["tasks"][1]["status"] = json!("done");
    let t3 = doc["tasks"][2].clone();
    doc["tasks"].as_array_mut().unwrap().remove(2);
    doc["tasks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "T4", "title": "Added by hand", "priority": 2, "status": "todo"}));
    env.write("to-do.json", serde_json::to_string(&doc).unwrap());

    env.looper(&["add", "Added by looper"])
        .stdout_has("added T5: Added by looper")
        .stderr_has("was edited outside Looper; merged:")
        .stderr_has("T1: title \"Task number 1\" -> \"Retitled by hand\"")
        .stderr_has("refused T2 status")
        .run();
    let merged = env.read_json("to-do.json");
    let ids: Vec<&str> = merged["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T1", "T2", "T4", "T5"]);
    assert_eq!(merged["tasks"][0]["title"], "Retitled by hand");
    assert_eq!(
        merged["tasks"][1]["status"], "todo",
        "an external 'done' is refused"
    );

    let ext = env.records("backlog.external_change");
    assert_eq!(ext.len(), 1);
    assert_eq!(
        ext[0]["diff"]["removed"],
        json!([t3]),
        "a deleted task is journaled whole"
    );
    let refused = env.records("backlog.refused_external");
    assert_eq!(refused[0]["refusals"][0]["id"], "T2");
}

#[test]
fn conflicting_field_keeps_the_external_edit() {
    let env = Env::new();
    env.write("to-do.json", backlog_with(2));
    env.looper(&["fmt"]).run();
    let mut doc = env.read_json("to-do.json");
    doc["tasks"][0]["priority"] = json!(5);
    env.write("to-do.json", serde_json::to_string_pretty(&doc).unwrap());
    env.looper(&[
        "update",
        r#"(.tasks[0].priority) = 1 | (.tasks[0].title) = "new""#,
    ])
    .stderr_has("conflict on T1 priority: the external edit was kept")
    .run();
    let after = env.read_json("to-do.json");
    assert_eq!(after["tasks"][0]["priority"], 5);
    assert_eq!(after["tasks"][0]["title"], "new");
    let u = env.records("backlog.update");
    assert_eq!(u.last().unwrap()["conflicts"][0]["field"], "priority");
}
