//! The committed schema is the one generated from the Rust types.

use crate::harness::Env;

#[test]
fn committed_schema_matches_the_types() {
    let env = Env::new();
    let out = env.looper(&["schema"]).run();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/to-do.schema.json"
    ))
    .unwrap();
    assert!(
        out.stdout() == committed,
        "schemas/to-do.schema.json is out of date: run `cargo run -- schema > schemas/to-do.schema.json` and commit it"
    );
}

#[test]
fn schema_beside_the_backlog_is_kept_current() {
    let env = Env::new();
    env.write("to-do.json", crate::harness::backlog_with(1));
    env.write("to-do.schema.json", "{\"old\": true}");
    env.looper(&["add", "x"]).run();
    let out = env.looper(&["schema"]).run();
    assert_eq!(env.read("to-do.schema.json"), out.stdout());
}
