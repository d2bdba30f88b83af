//! The user-facing surface generated from the clap definitions: shell completions and the
//! man page.

use crate::harness::Env;

#[test]
fn completions_cover_every_command_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = env.looper(&["completions", shell]).run().stdout();
        for command in ["run", "status", "report", "audit", "demo", "completions"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
        assert!(
            !script.contains("demo-agent"),
            "{shell} offers the hidden command"
        );
    }
    // bash accepts the script.
    let bash = env.looper(&["completions", "bash"]).run().stdout();
    env.write("looper.bash", &bash);
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(env.path("looper.bash"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    env.looper(&["completions", "tcsh"])
        .status(2)
        .stderr_has("possible values: bash, elvish, fish, powershell, zsh")
        .run();
}

#[test]
fn the_man_page_documents_the_commands() {
    let env = Env::new();
    let page = env.looper(&["man"]).run().stdout();
    assert!(page.contains(".TH looper 1"), "{page}");
    for command in ["looper\\-run", "looper\\-report", "looper\\-audit"] {
        assert!(
            page.contains(command),
            "the man page lacks {command}:\n{page}"
        );
    }
}

#[test]
fn doctor_checks_agents_git_backlog_and_journal() {
    let env = Env::new();
    env.looper(&["init"]).run();
    // A codex that reports another version than the tested one, and a reviewer that is missing.
    env.write_executable("bin/codex", "#!/bin/sh\necho 'codex-cli 0.100.0'\n");
    env.write(
        "looper.toml",
        format!(
            "sandbox = \"none\"\n[roles]\nworker = \"cx\"\nreviewer = \"claude\"\n[agents.cx]\nspec = \"codex\"\nprogram = \"{}\"\n",
            env.path("bin/codex").display()
        ),
    );
    let out = env.looper(&["doctor"]).status(1).run().stdout();
    for line in [
        "warn    worker `cx`: codex 0.100.0, but Looper is tested with 0.169.0",
        "warn    worker `cx`: no codex credentials found: set OPENAI_API_KEY, or set CODEX_API_KEY, or log in (~/.codex/auth.json)",
        "PROBLEM reviewer `claude` needs `claude`, which is not found: install the claude CLI",
        "warn    sandbox = \"none\"",
        "ok      backlog to-do.json: valid, 0 tasks",
        "ok      journal directory ",
        "1 problem(s): fix them before `looper run`",
    ] {
        assert!(out.contains(line), "doctor does not say {line:?}:\n{out}");
    }
    // The real codex at the pinned version, with a key: nothing to say but ok.
    let Some(codex) = crate::agents::cli("codex") else {
        return;
    };
    env.write(
        "looper.toml",
        format!(
            "[roles]\nworker = \"cx\"\nreviewer = \"cx\"\nbootstrap = \"cx\"\nrepair = \"cx\"\n[agents.cx]\nspec = \"codex\"\nprogram = \"{}\"\n",
            codex.exe.display()
        ),
    );
    let out = env
        .looper(&["doctor"])
        .env("OPENAI_API_KEY", "sk-test")
        .run()
        .stdout();
    assert!(
        out.contains("ok      worker `cx`: codex 0.169.0 (the version Looper is tested with)"),
        "{out}"
    );
    assert!(out.ends_with("no problems\n"), "{out}");
}

/// The Homebrew formula builds the version in Cargo.toml, is valid Ruby, and calls only
/// commands this binary has.
#[test]
fn the_homebrew_formula_matches_the_crate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let formula = std::fs::read_to_string(root.join("packaging/looper.rb")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        formula.contains(&format!("/archive/refs/tags/v{version}.tar.gz\"")),
        "packaging/looper.rb does not build v{version}: update it (RELEASE.md step 8)"
    );
    assert!(formula.contains("license \"MIT\"") && root.join("LICENSE").is_file());
    let env = Env::new();
    // The install and test blocks' commands exist and do what the formula expects.
    env.looper(&["completions", "zsh"])
        .stdout_has("#compdef looper")
        .run();
    env.looper(&["man"]).stdout_has(".TH looper").run();
    env.looper(&["--version"]).stdout_has(version).run();
    match std::process::Command::new("ruby")
        .arg("-c")
        .arg(root.join("packaging/looper.rb"))
        .output()
    {
        Ok(out) => assert!(out.status.success(), "ruby -c: {out:?}"),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ruby is missing ({e}); scripts/test installs it"
            );
            eprintln!("SKIPPED: ruby -c (ruby is not installed: {e})");
        }
    }
}

/// `looper config`: every effective value with the layer it comes from; a bad key is an
/// error (exit 2) naming the file, the line and the closest key.
#[test]
fn config_shows_each_value_with_its_source() {
    let env = Env::new();
    env.write(
        "looper.toml",
        "[roles]\nworker = \"claude\"\n[agents.glm]\nspec = \"claude:glm\"\nenv = { TOKEN = \"${ZAI_KEY}\", RAW = \"sk-abc123\" }\n",
    );
    let out = env
        .looper(&["config", "--json"])
        .env("MAX_ITERATIONS", "7")
        .env("ZAI_KEY", "z")
        .run()
        .stdout();
    let settings: serde_json::Value = serde_json::from_str(&out).unwrap();
    let find = |key: &str| {
        settings
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .clone()
    };
    let file = env.path("looper.toml").canonicalize().unwrap();
    assert_eq!(find("roles.worker")["value"], "claude");
    assert_eq!(find("roles.worker")["source"], file.display().to_string());
    assert_eq!(find("loop.max_iterations")["value"], 7);
    assert_eq!(find("loop.max_iterations")["source"], "env MAX_ITERATIONS");
    assert_eq!(find("loop.retry_limit")["source"], "default");
    assert_eq!(find("roles.repair")["source"], "default (the worker)");
    assert_eq!(find("agents.glm.env.TOKEN")["value"], "${ZAI_KEY}");
    assert_eq!(find("agents.glm.env.RAW")["value"], "<redacted>");
    assert!(!out.contains("sk-abc123"));
    let text = env.looper(&["config"]).run().stdout();
    assert!(
        text.lines()
            .any(|l| l.starts_with("roles.worker") && l.ends_with(&file.display().to_string())),
        "{text}"
    );

    env.write("looper.toml", "[loop]\nmax_iteration = 3\n");
    env.looper(&["config"])
        .status(2)
        .stderr_has("looper.toml: TOML parse error at line 2")
        .stderr_has("did you mean `max_iterations`?")
        .run();
}
