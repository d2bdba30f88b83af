//! `looper skills install|uninstall|show`: a small skill (`SKILL.md`) that teaches codex and
//! claude Looper's report contract and the read-only commands they may call.
//!
//! Codex reads skills from `~/.agents/skills` (and a project's `.agents/skills`), claude from
//! `~/.claude/skills` (`$CLAUDE_CONFIG_DIR/skills`) and a project's `.claude/skills`. Each
//! skill is a directory holding `SKILL.md`; Looper's is `looper/`. Installing is idempotent;
//! a `SKILL.md` that Looper did not write (no marker line) is never replaced or removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::cli::{SkillAgent, SkillsAction, SkillsWhere};
use crate::project::Project;

/// The skill's text, with `{{version}}` still in it.
const SKILL: &str = include_str!("skill.md");
/// What marks a `SKILL.md` as Looper's.
const MARKER: &str = "<!-- installed by looper ";
/// The skill's directory name in a skills directory.
const NAME: &str = "looper";

/// The skill as it is installed.
pub(crate) fn text() -> String {
    SKILL.replace("{{version}}", env!("CARGO_PKG_VERSION"))
}

/// `looper skills ACTION`; `project` finds the project, for `--project`.
pub(crate) fn run(
    action: SkillsAction,
    project: impl FnOnce() -> anyhow::Result<Project>,
) -> anyhow::Result<ExitCode> {
    let root = |place: &SkillsWhere| -> anyhow::Result<Option<PathBuf>> {
        Ok(if place.project {
            Some(project()?.root)
        } else {
            None
        })
    };
    match action {
        SkillsAction::Install(place) => install(&place, root(&place)?.as_deref()),
        SkillsAction::Uninstall(place) => uninstall(&place, root(&place)?.as_deref()),
        SkillsAction::Show => {
            print!("{}", text());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One place the skill goes: `<skills dir>/looper/SKILL.md`, and for which agent.
struct Target {
    agent: &'static str,
    file: PathBuf,
}

fn targets(place: &SkillsWhere, project_root: Option<&Path>) -> anyhow::Result<Vec<Target>> {
    let skill_file = |dir: PathBuf| dir.join(NAME).join("SKILL.md");
    if let Some(dir) = &place.dir {
        return Ok(vec![Target {
            agent: "any",
            file: skill_file(dir.clone()),
        }]);
    }
    let agents = if place.agent.is_empty() {
        vec![SkillAgent::Codex, SkillAgent::Claude]
    } else {
        let mut agents = place.agent.clone();
        agents.dedup();
        agents
    };
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .context("HOME is not set: pass --dir DIR or --project to say where the skill goes")
    };
    let mut out = Vec::new();
    for agent in agents {
        let (name, dir) = match (agent, project_root) {
            (SkillAgent::Codex, Some(root)) => ("codex", root.join(".agents/skills")),
            (SkillAgent::Claude, Some(root)) => ("claude", root.join(".claude/skills")),
            (SkillAgent::Codex, None) => ("codex", home()?.join(".agents/skills")),
            (SkillAgent::Claude, None) => {
                let config = std::env::var_os("CLAUDE_CONFIG_DIR")
                    .filter(|d| !d.is_empty())
                    .map_or_else(|| home().map(|h| h.join(".claude")), |d| Ok(d.into()))?;
                ("claude", config.join("skills"))
            }
        };
        out.push(Target {
            agent: name,
            file: skill_file(dir),
        });
    }
    Ok(out)
}

/// Whether `file` holds a skill Looper wrote; an error when it holds someone else's.
fn ours(file: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.contains(MARKER) => Ok(Some(text)),
        Ok(_) => bail!(
            "{} exists and was not written by looper: move it away, or use --dir to install \
             elsewhere",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// The targets with what each holds now, every one checked before anything is written or
/// removed, so a refusal leaves nothing half done.
fn checked(
    place: &SkillsWhere,
    project_root: Option<&Path>,
) -> anyhow::Result<Vec<(Target, Option<String>)>> {
    targets(place, project_root)?
        .into_iter()
        .map(|t| {
            let before = ours(&t.file)?;
            Ok((t, before))
        })
        .collect()
}

/// `looper skills install`.
fn install(place: &SkillsWhere, project_root: Option<&Path>) -> anyhow::Result<ExitCode> {
    let text = text();
    for (target, before) in checked(place, project_root)? {
        let verb = match before {
            Some(old) if old == text => "up to date",
            Some(_) => "updated",
            None => "installed",
        };
        if verb != "up to date" {
            let dir = target.file.parent().expect("SKILL.md has a directory");
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            crate::file::write_atomic(&target.file, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", target.file.display()))?;
        }
        println!("{verb:<10}  {}  ({})", target.file.display(), target.agent);
    }
    Ok(ExitCode::SUCCESS)
}

/// `looper skills uninstall`: removes Looper's `SKILL.md`, and its directory when that is
/// then empty.
fn uninstall(place: &SkillsWhere, project_root: Option<&Path>) -> anyhow::Result<ExitCode> {
    for (target, before) in checked(place, project_root)? {
        if before.is_none() {
            println!(
                "{:<10}  {}  ({})",
                "absent",
                target.file.display(),
                target.agent
            );
            continue;
        }
        std::fs::remove_file(&target.file)
            .with_context(|| format!("cannot remove {}", target.file.display()))?;
        let dir = target.file.parent().expect("SKILL.md has a directory");
        // Only an empty directory goes: files someone added beside the skill stay.
        let kept = std::fs::remove_dir(dir).is_err();
        println!(
            "{:<10}  {}  ({}){}",
            "removed",
            target.file.display(),
            target.agent,
            if kept {
                format!("; {} kept: it holds other files", dir.display())
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::reports::{ReviewReport, WorkerReport, read};

    /// The JSON examples in the skill's text, in order.
    fn examples() -> Vec<String> {
        text()
            .split("```json\n")
            .skip(1)
            .map(|part| part.split("\n```").next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_skills_reports_are_ones_looper_accepts() {
        let examples = examples();
        assert_eq!(examples.len(), 2, "a worker and a reviewer example");
        let worker: WorkerReport = read(Some(&examples[0])).unwrap();
        assert_eq!(worker.task_id, "T3");
        assert_eq!(worker.discovered_tasks.len(), 1);
        let review: ReviewReport = read(Some(&examples[1])).unwrap();
        assert!(!review.done);
        assert_eq!(review.new_tasks.len(), 1);
    }

    #[test]
    fn the_skill_has_the_frontmatter_codex_and_claude_need() {
        let text = text();
        let front = text
            .strip_prefix("---\n")
            .and_then(|t| t.split_once("\n---\n"))
            .map(|(f, _)| f)
            .expect("YAML frontmatter first");
        assert!(front.lines().any(|l| l == "name: looper"));
        let description = front
            .lines()
            .find_map(|l| l.strip_prefix("description: "))
            .unwrap();
        // Both CLIs cap the description at 1024 characters.
        assert!((100..=1024).contains(&description.len()), "{description}");
        assert!(text.contains(&format!("{MARKER}{}", env!("CARGO_PKG_VERSION"))));
        assert!(!text.contains("{{"));
    }
}
