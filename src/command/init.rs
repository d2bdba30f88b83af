//! `looper init`: the backlog, its schema and a commented `looper.toml`.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use crate::project::Project;

/// Files commonly holding a project's ground truth, offered as `source_files`.
const SOURCE_CANDIDATES: &[&str] = &[
    "README.md",
    "SPEC.md",
    "DESIGN.md",
    "PROJECT.md",
    "ARCHITECTURE.md",
    "docs/README.md",
];

const CONFIG_TEMPLATE: &str = r#"# Looper project configuration. Every key is optional; the values shown are the defaults.
# Layering: built-in defaults < $LOOPER_HOME/config.toml < this file < LOOPER_* env < flags.

# sandbox = "default"          # "none": the worker bypasses the agent CLIs' sandboxes

# [roles]
# worker = "codex"             # agent spec: adapter[:model][@effort], e.g. "claude:opus"
# reviewer = ["codex"]         # one or several reviewers (an ensemble)
# bootstrap = "codex"          # plans the first backlog (default: the worker)
# repair = "codex"             # fixes an invalid backlog (default: the worker)

# [loop]
# max_iterations = 50
# retry_limit = 3              # attempts before a task stays blocked
# review_retries = 2           # extra review passes before "inconclusive" (exit 4)
# max_tokens = 2000000         # budgets (exit 3); none by default
# max_cost = 20.0              # US dollars, as the agent CLIs report it
# max_duration = "8h"
# delay = 0                    # seconds between iterations

# [verify]
# commands = []                # gates run after each iteration, e.g. ["cargo test"]
# timeout = 600                # seconds per gate

# [git]
# commit = "looper"            # "looper": Looper commits accepted work; "agent"; "off"

# [hooks]                      # argv lists; the event arrives as JSON on stdin
# after_iteration = ["./scripts/notify.sh"]
# on_done = ["./scripts/notify.sh", "done"]
# on_blocked = ["./scripts/page-me.sh"]
# on_end = ["./scripts/summary.sh"]
# timeout = 60

# [timeouts]                   # seconds
# worker = 3600
# reviewer = 1800
# idle = 600                   # no output for this long stops the agent

# [agents.glm]                 # a named profile: worker = "glm"
# spec = "claude:glm-4.7"
# env = { ANTHROPIC_BASE_URL = "https://api.z.ai/api/anthropic", ANTHROPIC_AUTH_TOKEN = "${ZAI_API_KEY}" }
"#;

pub(super) fn run(project: &Project, force: bool, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let name = name.map_or_else(
        || {
            project
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        str::to_string,
    );
    let sources: Vec<&str> = SOURCE_CANDIDATES
        .iter()
        .copied()
        .filter(|f| project.root.join(f).is_file())
        .collect();
    let doc = json!({
        "schema_version": 1,
        "project": { "name": name, "root": "." },
        "source_files": sources,
        "tasks": []
    });
    if let Some(parent) = project.backlog.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let journal = project.home.command_journal();
    super::store(project).create(doc, force, &journal)?;
    super::ensure_schema_file(project)?;
    println!("created {}", project.backlog_display());
    println!(
        "created {}",
        project
            .schema_path()
            .strip_prefix(&project.root)
            .unwrap_or(&project.schema_path())
            .display()
    );

    let config = project.root.join("looper.toml");
    if config.exists() || project.root.join(".looper/looper.toml").exists() {
        println!("kept existing looper.toml");
    } else {
        crate::file::write_atomic(&config, CONFIG_TEMPLATE.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", config.display()))?;
        println!("created looper.toml");
    }
    if sources.is_empty() {
        println!("no README.md/SPEC.md found: list your project's docs in source_files");
    }
    println!("next: looper add \"First task\"");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// The commented template documents real keys: uncommented, it is a valid config.
    #[test]
    fn the_config_template_uncommented_is_valid() {
        let uncommented: String = super::CONFIG_TEMPLATE
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .fold(String::new(), |text, l| text + l + "\n");
        assert!(uncommented.contains("[agents.glm]"), "{uncommented}");
        let layer: crate::config::Layer =
            toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(layer.looping.max_iterations, Some(50));
        assert_eq!(layer.timeouts.idle, Some(600));
    }
}
