//! Prompts (DESIGN §5): embedded in the binary, overridden by `.looper/prompts/<name>.md` in
//! the project, rendered by replacing `{{name}}` placeholders.

use std::path::Path;

const WORKER: &str = include_str!("prompts/worker.md");
const REVIEW: &str = include_str!("prompts/review.md");
const BOOTSTRAP: &str = include_str!("prompts/bootstrap.md");
const REPAIR: &str = include_str!("prompts/repair.md");

/// The template `name` (`worker`, `review`): the project's override, or the embedded one.
pub(crate) fn template(root: &Path, name: &str) -> anyhow::Result<String> {
    let path = root.join(".looper/prompts").join(format!("{name}.md"));
    match fs_err::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(match name {
            "worker" => WORKER,
            "bootstrap" => BOOTSTRAP,
            "repair" => REPAIR,
            _ => REVIEW,
        }
        .to_owned()),
        Err(e) => Err(e.into()),
    }
}

/// Replaces every `{{key}}` with its value; unknown placeholders stay as they are.
pub(crate) fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_overrides() {
        assert_eq!(
            render("a {{x}} {{y}} {{x}}", &[("x", "1".into())]),
            "a 1 {{y}} 1"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(
            template(dir.path(), "worker")
                .unwrap()
                .contains("{{task_id}}")
        );
        std::fs::create_dir_all(dir.path().join(".looper/prompts")).unwrap();
        std::fs::write(
            dir.path().join(".looper/prompts/worker.md"),
            "mine {{task_id}}",
        )
        .unwrap();
        assert_eq!(template(dir.path(), "worker").unwrap(), "mine {{task_id}}");
    }

    #[test]
    fn no_prompt_holds_a_completion_phrase() {
        // Completion is a field of a validated report, never a phrase an agent could echo.
        for text in [WORKER, REVIEW, BOOTSTRAP, REPAIR] {
            for phrase in ["<promise>", "COMPLETE", "ALL_TASKS_DONE", "DONE DONE"] {
                assert!(!text.contains(phrase), "{phrase}");
            }
        }
    }
}
