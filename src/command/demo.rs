//! `looper demo`: the whole loop on a small project with the built-in demo agent (no model,
//! offline), then `status`, `log` and `stats` of the run and its `report.html`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::project::Project;

pub(super) fn demo(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "looper-demo-{}-{}",
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S"),
            std::process::id()
        )),
    };
    crate::demo::scaffold(&dir)?;
    let project = Project::discover(Some(&dir), None)?;
    let heading = |text: &str| println!("\n== {text}");
    println!(
        "looper demo: the built-in demo agent (no model, no network, no cost) builds the small\n\
         project described in {}.\n\
         It plans 3 tasks, claims one done without doing it (Looper's checks refuse the claim and\n\
         the retry does the work), and its review adds a task before declaring the project done.\n\
         Its token counts are text lengths / 4, not a model's.",
        project.root.join("SPEC.md").display()
    );
    heading("looper run");
    let code = crate::run::run(&project, crate::config::Layer::default(), None)?;
    heading("looper status");
    super::history::status(&project, false)?;
    heading("looper log");
    super::history::log(&project, None, None, false)?;
    heading("looper stats");
    super::stats::stats(&[project.home.runs()], &super::prices(&project), false)?;
    heading("looper report");
    super::stats::report(&project, Some(project.root.join("report.html")), false)?;
    let root = project.root.display();
    println!(
        "\nThe demo project stays in {root}:\n\
         \x20 cd {root} && looper show 2      # the refused claim, in full\n\
         \x20 git -C {root} log --stat        # one commit per accepted task, with Looper-* trailers\n\
         \x20 open {root}/report.html\n\
         \nWith a real agent, in a project with a README.md or SPEC.md:\n\
         \x20 looper run --worker codex --reviewer codex\n\
         \x20 looper run --worker claude --reviewer codex:gpt-5.5@high\n\
         (`looper init` writes a looper.toml to set them once.)"
    );
    Ok(code)
}
