//! The committed schema is the one generated from the Rust types.

use crate::harness::Env;

#[test]
fn committed_schemas_match_the_types() {
    let env = Env::new();
    for (what, file) in looper::cli::SchemaArg::ALL {
        let name = format!("{what:?}").to_lowercase();
        let out = env.looper(&["schema", &name]).run();
        let committed = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("schemas")
                .join(file),
        )
        .unwrap();
        assert!(
            out.stdout() == committed,
            "schemas/{file} is out of date: run `cargo run -- schema {name} > schemas/{file}` and commit it"
        );
    }
    // Without an argument: the backlog's.
    assert_eq!(
        env.looper(&["schema"]).run().stdout(),
        env.looper(&["schema", "backlog"]).run().stdout()
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
