//! Every journal reader's human output on a fixed journal (`tests/fixtures/journal`: two runs
//! of a fake agent, the first capped after one iteration), compared with the files in
//! `tests/snapshots/`, and every `--json` output validated against its published schema.
//!
//! After a deliberate change of output: `LOOPER_BLESS=1 cargo nextest run snapshots` rewrites
//! the snapshots; review the diff before committing it.

use std::path::Path;

use serde_json::Value;

use crate::harness::Env;

const RUN_A: &str = "20261130T170049.459Z-8545";
const RUN_B: &str = "20261130T170050.585Z-aa8e";

/// A project whose Looper directory holds the fixture journal, with its paths made this
/// project's.
fn fixture() -> std::rc::Rc<Env> {
    let env = Env::new();
    let root = env.root().canonicalize().unwrap();
    let pd = looper::store::ProjectDir::for_root(&env.home(), &root);
    std::fs::create_dir_all(pd.runs()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        let text = std::fs::read_to_string(entry.path())
            .unwrap()
            .replace("@ROOT@", &root.display().to_string())
            .replace("@PROJECT_DIR@", &pd.path.display().to_string())
            .replace("@HOME@", &env.home().display().to_string());
        let to = if entry.path().extension().is_some_and(|e| e == "jsonl") {
            pd.runs().join(&name)
        } else {
            root.join(&name)
        };
        std::fs::write(to, text).unwrap();
    }
    env
}

/// The output with this machine's paths replaced by placeholders.
fn redact(env: &Env, text: &str) -> String {
    text.replace(
        &env.root().canonicalize().unwrap().display().to_string(),
        "<ROOT>",
    )
    .replace(&env.home().display().to_string(), "<HOME>")
}

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("LOOPER_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with LOOPER_BLESS=1 to write it",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(expected, actual, "snapshot {name} differs");
}

#[test]
fn human_output_of_every_reader_on_a_fixed_journal() {
    let env = fixture();
    let cases: [(&str, &[&str]); 10] = [
        ("log", &["log"]),
        ("log-task", &["log", "--task", "T2"]),
        ("show-iteration", &["show", "2"]),
        ("show-task", &["show", "T2"]),
        ("status", &["status"]),
        ("stats", &["stats"]),
        ("tail", &["tail", "--run", RUN_B]),
        ("replay", &["replay", RUN_A]),
        ("diff", &["diff", RUN_A, RUN_B]),
        ("audit", &["audit"]),
    ];
    for (name, args) in cases {
        let out = env.looper(args).run().stdout();
        check(name, &redact(&env, &out));
    }
}

/// Validates `instance` against the schema `looper schema what` prints.
fn validate(env: &std::rc::Rc<Env>, what: &str, instance: &Value) {
    let schema: Value =
        serde_json::from_str(&env.looper(&["schema", what]).run().stdout()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "`{what} --json` breaks its schema: {errors:#?}"
    );
}

#[test]
fn json_output_of_every_reader_matches_its_published_schema() {
    let env = fixture();
    let report = env.path("r.html").display().to_string();
    let cases: [(&str, &[&str]); 8] = [
        ("status", &["status", "--json"]),
        ("log", &["log", "--json"]),
        ("show", &["show", "T2", "--json"]),
        ("stats", &["stats", "--json"]),
        ("diff", &["diff", RUN_A, RUN_B, "--json"]),
        ("audit", &["audit", "--json"]),
        ("report", &["report", "-o", &report, "--json"]),
        ("clean", &["clean", "--keep", "5", "--dry-run", "--json"]),
    ];
    for (what, args) in cases {
        let out: Value = serde_json::from_str(&env.looper(args).run().stdout()).unwrap();
        validate(&env, what, &out);
    }
    // tail and replay print records: each line is one, with its header.
    for args in [
        &["tail", "--json", "--run", RUN_B][..],
        &["replay", RUN_A, "--json"][..],
    ] {
        let out = env.looper(args).run().stdout();
        assert!(out.lines().count() > 5, "{out}");
        for line in out.lines() {
            validate(&env, "record", &serde_json::from_str(line).unwrap());
        }
    }
    // The schemas are strict enough to catch a wrong shape.
    let schema: Value =
        serde_json::from_str(&env.looper(&["schema", "stats"]).run().stdout()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(!validator.is_valid(&serde_json::json!({"runs": "two"})));
}
