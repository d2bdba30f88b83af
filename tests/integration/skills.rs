//! `looper skills`: installing is idempotent, never touches a skill Looper did not write, and
//! the real codex and claude CLIs find the installed skill.

use std::path::Path;

use looper::agent::Role;

use crate::agents::{Sandboxed, cli};
use crate::harness::Env;
use crate::mock::Script;

/// The skill's `description`, which both CLIs put in front of the model.
fn description() -> String {
    let env = Env::new();
    let text = env.looper(&["skills", "show"]).run().stdout();
    text.lines()
        .find_map(|l| l.strip_prefix("description: "))
        .unwrap()
        .to_owned()
}

#[test]
fn install_is_idempotent_and_uninstall_removes_only_what_looper_wrote() {
    let env = Env::new();
    let home = env.root().parent().unwrap().join("user-home");
    let codex = home.join(".agents/skills/looper/SKILL.md");
    let claude = home.join(".claude/skills/looper/SKILL.md");
    let shown = env.looper(&["skills", "show"]).run().stdout();

    let first = env.looper(&["skills", "install"]).run().stdout();
    assert!(first.contains("installed") && first.contains("(codex)") && first.contains("(claude)"));
    assert_eq!(std::fs::read_to_string(&codex).unwrap(), shown);
    assert_eq!(std::fs::read_to_string(&claude).unwrap(), shown);
    let again = env.looper(&["skills", "install"]).run().stdout();
    assert_eq!(again.matches("up to date").count(), 2, "{again}");

    // An older Looper's skill is updated in place.
    std::fs::write(&claude, shown.replace("Read-only commands", "Commands")).unwrap();
    env.looper(&["skills", "install", "--agent", "claude"])
        .stdout_has("updated")
        .run();
    assert_eq!(std::fs::read_to_string(&claude).unwrap(), shown);

    // A file the user put beside the skill survives uninstall, and so does its directory.
    std::fs::write(claude.with_file_name("notes.txt"), "mine").unwrap();
    let removed = env.looper(&["skills", "uninstall"]).run().stdout();
    assert_eq!(removed.matches("removed").count(), 2, "{removed}");
    assert!(removed.contains("kept: it holds other files"), "{removed}");
    assert!(!codex.exists() && !codex.parent().unwrap().exists());
    assert!(!claude.exists() && claude.with_file_name("notes.txt").exists());
    env.looper(&["skills", "uninstall"])
        .stdout_has("absent")
        .run();

    // Someone else's skill named looper is neither replaced nor removed, and nothing is
    // installed for the other agent either.
    let foreign = "---\nname: looper\ndescription: mine\n---\nmy own notes\n";
    std::fs::write(&claude, foreign).unwrap();
    for args in [&["skills", "install"][..], &["skills", "uninstall"]] {
        env.looper(args)
            .status(1)
            .stderr_has(&format!(
                "{} exists and was not written by looper",
                claude.display()
            ))
            .run();
        assert_eq!(std::fs::read_to_string(&claude).unwrap(), foreign);
        assert!(!codex.exists());
    }
}

#[test]
fn install_into_the_project_or_a_directory() {
    let env = Env::new();
    env.looper(&["skills", "install", "--project"]).run();
    for dir in [".agents/skills", ".claude/skills"] {
        assert!(
            env.path(&format!("{dir}/looper/SKILL.md")).is_file(),
            "{dir}"
        );
    }
    env.looper(&["skills", "install", "--dir", "custom/skills"])
        .stdout_has("(any)")
        .run();
    assert!(env.path("custom/skills/looper/SKILL.md").is_file());
    env.looper(&["skills", "install", "--dir", "x", "--project"])
        .status(2)
        .stderr_has("cannot be used with")
        .run();
    env.looper(&["skills", "uninstall", "--project", "--agent", "codex"])
        .run();
    assert!(!env.path(".agents/skills/looper").exists());
    assert!(env.path(".claude/skills/looper/SKILL.md").is_file());
}

/// Installs the skill for `agent` into the sandbox's home, as a user would.
fn install_into(home: &Path, agent: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_looper"))
        .args(["skills", "install", "--agent", agent])
        .env("HOME", home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// codex lists installed skills, with their description, in its developer message.
#[test]
fn the_real_codex_finds_the_skill() {
    let Some(codex) = cli("codex") else { return };
    let sb = Sandboxed::new(Script::new("nothing to do"));
    install_into(&sb.home(), "codex");
    let run = sb.run(&codex, Role::Worker, "Say hello.");
    let description = description();
    let seen = sb.mock.requests().iter().any(|r| {
        r.body
            .as_ref()
            .is_some_and(|b| b.to_string().contains(&description))
    });
    assert!(
        seen,
        "codex never sent the skill to the model\n{}",
        run.transcript()
    );
}

/// claude lists installed skills in its `system/init` event.
#[test]
fn the_real_claude_finds_the_skill() {
    let Some(claude) = cli("claude") else { return };
    let sb = Sandboxed::new(Script::new("nothing to do"));
    install_into(&sb.home(), "claude");
    let run = sb.run(&claude, Role::Worker, "Say hello.");
    let init = run
        .lines
        .iter()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.text).ok()?;
            (v["subtype"] == "init").then_some(v)
        })
        .unwrap_or_else(|| panic!("no init event\n{}", run.transcript()));
    let skills = init["skills"].as_array().unwrap();
    assert!(
        skills
            .iter()
            .any(|s| s == "looper" || s["name"] == "looper"),
        "looper is not among claude's skills: {skills:?}"
    );
}
