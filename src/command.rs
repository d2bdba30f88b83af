//! One function per subcommand; [`dispatch`] turns the parsed command line into calls.
//!
//! This is the last layer that sees clap types: each command gets plain values.

mod audit;
mod clean;
mod demo;
mod doctor;
mod edit;
mod history;
mod init;
mod inspect;
mod skills;
mod stats;

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::backlog::Status;
use crate::backlog::persist::BacklogStore;
use crate::cli::{Cli, Command, StatusArg};
use crate::project::Project;

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let project = || Project::discover(cli.global.dir.as_deref(), cli.global.backlog.as_deref());
    let command = cli.command.unwrap_or_else(|| Command::Run(Box::default()));
    match command {
        Command::Run(args) => run(&cli.global, *args),
        Command::Stop => crate::run::request_stop(&project()?),
        Command::Init { force, name } => init::run(&project()?, force, name.as_deref()),
        Command::Validate { json } => inspect::validate(&project()?, json),
        Command::Fmt { check } => inspect::fmt(&project()?, check),
        Command::Ls { status, json } => inspect::ls(&project()?, status.map(status_of), json),
        Command::Add {
            title,
            priority,
            description,
            depends_on,
            tags,
            json,
        } => edit::add(
            &project()?,
            &crate::backlog::ops::NewTask {
                title,
                priority,
                description,
                depends_on,
                tags,
            },
            json,
        ),
        Command::Update {
            program,
            arg,
            argjson,
        } => edit::update(&project()?, &program, &arg, &argjson),
        Command::Done { id, reason } => edit::done(&project()?, &id, &reason),
        Command::Schema { what } => {
            let text = schema_text(what);
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => history::status(&project()?, json),
        Command::Replay {
            run,
            speed,
            raw,
            json,
        } => history::replay(&project()?, &run, speed, mode(raw, json)),
        Command::Stats { all_projects, json } => {
            let dirs = if all_projects {
                stats::all_projects()?
            } else {
                vec![project()?.home.runs()]
            };
            let prices = if all_projects {
                crate::store::looper_home()
                    .and_then(|home| {
                        crate::config::Prices::load(&home, std::path::Path::new("/nonexistent"))
                    })
                    .unwrap_or_default()
            } else {
                prices(&project()?)
            };
            stats::stats(&dirs, &prices, json)
        }
        Command::Tail {
            follow,
            run,
            raw,
            json,
        } => history::tail(&project()?, run.as_deref(), follow, mode(raw, json)),
        Command::Log { task, since, json } => {
            history::log(&project()?, task.as_deref(), since.as_deref(), json)
        }
        Command::Show { target, run, json } => {
            history::show(&project()?, &target, run.as_deref(), json)
        }
        Command::Report { output, json } => stats::report(&project()?, output, json),
        Command::Diff { a, b, json } => stats::diff(&project()?, &a, &b, json),
        Command::Clean {
            keep,
            older_than,
            dry_run,
            json,
        } => clean::clean(&project()?, keep, older_than.as_deref(), dry_run, json),
        Command::Audit { json } => audit::audit(&project()?, json),
        Command::Demo { dir } => demo::demo(dir),
        Command::DemoAgent => crate::demo::agent(),
        Command::Doctor => doctor::doctor(&project()?),
        Command::Completions { shell } => Ok(completions(shell)),
        Command::Config { json } => config(&project()?, json),
        Command::Skills { action } => skills::run(action, project),
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status_of(s: StatusArg) -> Status {
    match s {
        StatusArg::Todo => Status::Todo,
        StatusArg::Doing => Status::Doing,
        StatusArg::Blocked => Status::Blocked,
        StatusArg::Done => Status::Done,
    }
}

/// The backlog store of a project.
fn store(project: &Project) -> BacklogStore {
    BacklogStore::new(&project.backlog, &project.home.state())
}

/// Writes `to-do.schema.json` beside the backlog when it is missing or out of date.
fn ensure_schema_file(project: &Project) -> anyhow::Result<()> {
    let text = crate::backlog::model::backlog_schema_text();
    let path = project.schema_path();
    if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
        crate::file::write_atomic(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The command line's layer of the configuration.
/// `looper completions SHELL`.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    // Hidden commands (the demo agent's, `man`) are left out: the generators would offer them.
    let full = <Cli as clap::CommandFactory>::command();
    let mut cmd = clap::Command::new("looper")
        .about(full.get_about().cloned().unwrap_or_default())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut cmd, "looper", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn mode(raw: bool, json: bool) -> history::Mode {
    if json {
        history::Mode::Json
    } else {
        history::Mode::Lines {
            raw,
            color: crate::term::stdout_color(),
        }
    }
}

/// The config's `[prices]` for the readers; a config that does not load means no prices (a
/// warning says why), not a failed reader.
fn prices(project: &Project) -> crate::config::Prices {
    crate::store::looper_home()
        .and_then(|home| crate::config::Prices::load(&home, &project.root))
        .unwrap_or_else(|e| {
            eprintln!("looper: no cost estimates: {e:#}");
            crate::config::Prices::default()
        })
}

/// The JSON Schema of the backlog or of a command's `--json` output, as committed under
/// `schemas/`.
pub fn schema_text(what: crate::cli::SchemaArg) -> String {
    use crate::cli::SchemaArg;
    fn of<T: schemars::JsonSchema>() -> String {
        let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        crate::backlog::format::to_pretty_string(&generator.into_root_schema_for::<T>().to_value())
    }
    type Iterations = Vec<crate::journal::read::Iteration>;
    match what {
        SchemaArg::Backlog => crate::backlog::model::backlog_schema_text(),
        SchemaArg::Status => of::<history::StatusJson>(),
        SchemaArg::Log | SchemaArg::Show => of::<Iterations>(),
        SchemaArg::Stats => of::<stats::Stats>(),
        SchemaArg::Diff => of::<stats::DiffJson>(),
        SchemaArg::Audit => of::<audit::Audit>(),
        SchemaArg::Clean => of::<clean::Cleaned>(),
        SchemaArg::Report => of::<stats::ReportJson>(),
        SchemaArg::Record => of::<crate::journal::writer::RecordHeader>(),
        SchemaArg::Config => of::<Vec<crate::config::Setting>>(),
    }
}

/// `looper config [--json]`: every effective setting with its source.
fn config(project: &Project, json: bool) -> anyhow::Result<ExitCode> {
    let settings = crate::config::Config::explain(&crate::store::looper_home()?, &project.root)?;
    if json {
        inspect::print_json(&serde_json::to_value(&settings)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let values: Vec<String> = settings.iter().map(|s| s.value.to_string()).collect();
    let value_width = values
        .iter()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    let mut out = String::new();
    for (s, value) in settings.iter().zip(&values) {
        let _ = writeln!(
            out,
            "{:<width$}  {value:<value_width$}  {}",
            s.key, s.source
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `looper run`: the original's positional `to-do.json`, or its `TODO_FILE`, names the
/// backlog when `--backlog` does not.
fn run(global: &crate::cli::Global, args: crate::cli::RunArgs) -> anyhow::Result<ExitCode> {
    let idea = args.prompt.clone();
    let backlog = global
        .backlog
        .clone()
        .or_else(|| args.legacy.todo_file.clone())
        .or_else(|| std::env::var_os("TODO_FILE").map(Into::into));
    let project = Project::discover(global.dir.as_deref(), backlog.as_deref())?;
    crate::run::run(&project, run_layer(args)?, idea.as_deref())
}

fn run_layer(args: crate::cli::RunArgs) -> anyhow::Result<crate::config::Layer> {
    let mut layer = crate::config::Layer::default();
    // The original looper's flags first; Looper's own flags win over them.
    let l = args.legacy;
    crate::compat::Legacy {
        interleave: l.interleave,
        iter_schedule: l.iter_schedule,
        odd_agent: l.odd_agent,
        even_agent: l.even_agent,
        rr_agents: l.rr_agents,
        review_agent: l.review_agent,
        repair_agent: args.repair_agent.clone(),
        all: l.all,
        smart: l.smart,
        claude_bin: l.claude_bin,
        claude_model: l.claude_model,
        ..crate::compat::Legacy::default()
    }
    .apply(&mut layer, &|k| std::env::var(k).ok())?;
    if args.worker.is_some() {
        layer.roles.worker = args.worker;
    }
    if !args.reviewer.is_empty() {
        layer.roles.reviewer = Some(crate::config::OneOrMany::Many(args.reviewer));
    }
    if let Some(schedule) = args.schedule {
        layer.roles.schedule = Some(crate::config::OneOrMany::One(schedule));
    }
    layer.roles.escalate = args.escalate;
    if !args.fallback.is_empty() {
        layer.roles.fallback = Some(crate::config::OneOrMany::Many(args.fallback));
    }
    layer.roles.bootstrap = args.bootstrap_agent;
    if args.repair_agent.is_some() {
        layer.roles.repair = args.repair_agent;
    }
    layer.looping.max_iterations = args.max_iterations;
    layer.looping.retry_limit = args.retry_limit;
    layer.looping.max_tokens = args.max_tokens;
    layer.looping.max_cost = args.max_cost;
    layer.looping.max_duration = args.max_duration;
    layer.looping.delay = args.delay;
    if !args.verify.is_empty() {
        layer.verify.commands = Some(args.verify);
    }
    layer.sandbox = args.sandbox.map(|s| match s {
        crate::cli::SandboxArg::Default => crate::agent::Sandbox::Default,
        crate::cli::SandboxArg::None => crate::agent::Sandbox::None,
    });
    Ok(layer)
}
