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
