//! The original `looper.sh`'s command line and environment, as aliases (DESIGN §6), so a
//! project set up for it runs unchanged:
//!
//! - `looper --ls STATUS [FILE]`, `looper --tail [--follow|-f]`, `looper --doctor|--check
//!   [FILE]`, and `looper [run] [flags] [FILE]` become `ls`, `tail`, `doctor` and `run`
//!   ([`translate_args`]);
//! - its run flags (`--interleave`, `--iter-schedule`, `--odd-agent`, `--even-agent`,
//!   `--rr-agents`, `--review-agent`, `--repair-agent`, `--all`, `--smart`, `--claude-bin`,
//!   `--claude-model`) and environment variables (`LOOPER_ITER_SCHEDULE`, `CODEX_MODEL`, ...)
//!   become roles, schedules and agent profiles ([`Legacy::apply`]).
//!
//! Looper's own flags and variables win over these when both are given.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{Layer, OneOrMany};
use crate::error::UsageError;

/// The original's run flags that take a value, and those that do not.
const VALUE_FLAGS: [&str; 9] = [
    "--iter-schedule",
    "--odd-agent",
    "--even-agent",
    "--rr-agents",
    "--review-agent",
    "--repair-agent",
    "--all",
    "--claude-bin",
    "--claude-model",
];
const SWITCHES: [&str; 3] = ["--interleave", "--smart", "-s"];

/// Rewrites the original's command forms into Looper's; anything else is left alone.
pub fn translate_args(args: Vec<OsString>) -> Vec<OsString> {
    let text: Option<Vec<String>> = args.iter().map(|a| a.to_str().map(str::to_owned)).collect();
    let Some(text) = text else { return args };
    let Some(first) = text.get(1) else {
        return args;
    };
    let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let mut out = vec![args[0].clone()];
    match first.as_str() {
        "--ls" => {
            out.extend(os(&["ls"]));
            out.extend(text.get(2).map(OsString::from));
            if let Some(file) = text.get(3) {
                out.extend(os(&["--backlog", file]));
            }
        }
        "--tail" => {
            out.extend(os(&["tail"]));
            if text
                .get(2)
                .is_some_and(|f| ["--follow", "-f", "--folow"].contains(&f.as_str()))
            {
                out.extend(os(&["-f"]));
            }
        }
        "--doctor" | "--check" => {
            out.extend(os(&["doctor"]));
            if let Some(file) = text[2..].iter().find(|a| is_json(a)) {
                out.extend(os(&["--backlog", file]));
            }
        }
        f if VALUE_FLAGS.contains(&f) || SWITCHES.contains(&f) || is_json(f) => {
            out.extend(os(&["run"]));
            out.extend(args[1..].iter().cloned());
        }
        _ => return args,
    }
    out
}

/// Whether an argument names a JSON file (the original's positional `to-do.json`).
fn is_json(arg: &str) -> bool {
    std::path::Path::new(arg)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The original's run flags (from the command line) or variables (from the environment).
#[derive(Debug, Default, Clone)]
pub struct Legacy {
    pub interleave: bool,
    pub iter_schedule: Option<String>,
    pub odd_agent: Option<String>,
    pub even_agent: Option<String>,
    pub rr_agents: Option<String>,
    pub review_agent: Option<String>,
    pub repair_agent: Option<String>,
    pub all: Option<String>,
    pub smart: bool,
    pub claude_bin: Option<PathBuf>,
    pub claude_model: Option<String>,
    pub codex_bin: Option<PathBuf>,
    pub codex_model: Option<String>,
    pub codex_effort: Option<String>,
}

impl Legacy {
    /// The original's environment variables.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Legacy {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Legacy {
            interleave: get("LOOPER_INTERLEAVE").as_deref() == Some("1"),
            iter_schedule: get("LOOPER_ITER_SCHEDULE"),
            odd_agent: get("LOOPER_ITER_ODD_AGENT"),
            even_agent: get("LOOPER_ITER_EVEN_AGENT"),
            rr_agents: get("LOOPER_ITER_RR_AGENTS"),
            review_agent: get("LOOPER_REVIEW_AGENT"),
            repair_agent: get("LOOPER_REPAIR_AGENT"),
            all: get("LOOPER_ALL_AGENT"),
            smart: false,
            claude_bin: get("CLAUDE_BIN").map(PathBuf::from),
            claude_model: get("CLAUDE_MODEL"),
            codex_bin: get("CODEX_BIN").map(PathBuf::from),
            codex_model: get("CODEX_MODEL"),
            codex_effort: get("CODEX_REASONING_EFFORT"),
        }
    }

    /// Sets what these say in `layer` (roles, schedule, the `codex` and `claude` profiles),
    /// the way the original read them: `--all` wins over `--interleave`, which makes claude
    /// the worker and the repair agent unless a schedule or repair agent is named.
    pub fn apply(
        &self,
        layer: &mut Layer,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let agent = |flag: &str, v: &Option<String>| {
            v.as_deref().map(|a| checked_agent(flag, a)).transpose()
        };
        let odd = agent("--odd-agent", &self.odd_agent)?;
        let even = agent("--even-agent", &self.even_agent)?;
        let review = agent("--review-agent", &self.review_agent)?;
        let repair = agent("--repair-agent", &self.repair_agent)?;
        let all = agent("--all", &self.all)?;
        match self
            .iter_schedule
            .as_deref()
            .map(schedule_name)
            .transpose()?
        {
            Some("odd-even") => {
                layer.roles.schedule = Some(OneOrMany::One("odd-even".into()));
                layer.roles.odd = Some(odd.unwrap_or_else(|| "codex".into()));
                layer.roles.even = Some(even.unwrap_or_else(|| "claude".into()));
            }
            Some("round-robin") => {
                let list = self
                    .rr_agents
                    .clone()
                    .unwrap_or_else(|| "claude,codex".into());
                let agents = list
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| checked_agent("--rr-agents", a))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if agents.is_empty() {
                    return Err(UsageError::new(
                        "--rr-agents is empty: name codex and/or claude, e.g. claude,codex",
                    )
                    .into());
                }
                layer.roles.schedule = Some(OneOrMany::Many(agents));
            }
            Some(single) => layer.roles.worker = Some(single.to_owned()),
            // As the original: --interleave without --iter-schedule makes every iteration
            // claude's, whatever LOOPER_ITER_SCHEDULE says.
            None if self.interleave => {
                layer.roles.worker = Some("claude".into());
                layer.roles.schedule = Some(OneOrMany::Many(vec!["claude".into()]));
            }
            None => {}
        }
        if self.interleave && repair.is_none() {
            layer.roles.repair = Some("claude".into());
        }
        if let Some(r) = review {
            layer.roles.reviewer = Some(OneOrMany::One(r));
        }
        if let Some(r) = repair {
            layer.roles.repair = Some(r);
        }
        if let Some(a) = all {
            layer.roles.schedule = None;
            layer.roles.worker = Some(a.clone());
            layer.roles.repair = Some(a.clone());
            layer.roles.reviewer = Some(OneOrMany::One(a));
        }
        let (model, effort) = if self.smart {
            (
                get("CODEX_SMART_MODEL").or_else(|| self.codex_model.clone()),
                get("CODEX_SMART_REASONING_EFFORT").or_else(|| Some("xhigh".into())),
            )
        } else {
            (self.codex_model.clone(), self.codex_effort.clone())
        };
        profile(layer, "codex", model, effort, self.codex_bin.clone());
        profile(
            layer,
            "claude",
            self.claude_model.clone(),
            None,
            self.claude_bin.clone(),
        );
        Ok(())
    }
}

/// Makes `name` (codex or claude) a profile with this model, effort and program, when any
/// is given.
fn profile(
    layer: &mut Layer,
    name: &str,
    model: Option<String>,
    effort: Option<String>,
    program: Option<PathBuf>,
) {
    if model.is_none() && effort.is_none() && program.is_none() {
        return;
    }
    let mut spec = name.to_owned();
    if let Some(m) = model {
        spec = format!("{spec}:{m}");
    }
    if let Some(e) = effort {
        spec = format!("{spec}@{}", e.to_lowercase());
    }
    let slot = layer.agents.entry(name.to_owned()).or_default();
    slot.spec = Some(spec);
    if program.is_some() {
        slot.program = program;
    }
}

/// The original took `codex` or `claude` (any case); Looper takes any spec, so only the case
/// is folded for those two.
fn checked_agent(flag: &str, agent: &str) -> anyhow::Result<String> {
    let a = agent.trim();
    if a.is_empty() {
        return Err(UsageError::new(format!("{flag} needs an agent, e.g. codex or claude")).into());
    }
    Ok(match a.to_lowercase().as_str() {
        l @ ("codex" | "claude") => l.to_owned(),
        _ => a.to_owned(),
    })
}

/// The original's schedule names and their aliases.
fn schedule_name(text: &str) -> anyhow::Result<&'static str> {
    Ok(match text.trim().to_lowercase().as_str() {
        "codex" => "codex",
        "claude" => "claude",
        "odd-even" | "odd_even" | "oddeven" => "odd-even",
        "round-robin" | "round_robin" | "roundrobin" | "rr" => "round-robin",
        other => {
            return Err(UsageError::new(format!(
                "invalid iter schedule `{other}` (--iter-schedule or LOOPER_ITER_SCHEDULE): use codex, claude, odd-even or round-robin (or --schedule)"
            ))
            .into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(args: &[&str]) -> Vec<String> {
        translate_args(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_originals_command_forms_become_looper_commands() {
        assert_eq!(
            tr(&["looper", "--ls", "todo", "x.json"]),
            ["looper", "ls", "todo", "--backlog", "x.json"]
        );
        assert_eq!(
            tr(&["looper", "--tail", "--follow"]),
            ["looper", "tail", "-f"]
        );
        assert_eq!(
            tr(&["looper", "--check", "to-do.json"]),
            ["looper", "doctor", "--backlog", "to-do.json"]
        );
        assert_eq!(
            tr(&["looper", "--interleave", "to-do.json"]),
            ["looper", "run", "--interleave", "to-do.json"]
        );
        assert_eq!(
            tr(&["looper", "to-do.json"]),
            ["looper", "run", "to-do.json"]
        );
        assert_eq!(tr(&["looper", "status"]), ["looper", "status"]);
        assert_eq!(
            tr(&["looper", "run", "--smart"]),
            ["looper", "run", "--smart"]
        );
        assert_eq!(tr(&["looper"]), ["looper"]);
    }

    fn applied(legacy: &Legacy, env: &[(&str, &str)]) -> anyhow::Result<Layer> {
        let mut layer = Layer::default();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        legacy.apply(&mut layer, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })?;
        Ok(layer)
    }

    #[test]
    fn flags_and_variables_become_roles_schedules_and_profiles() {
        let l = applied(
            &Legacy {
                iter_schedule: Some("ODD_EVEN".into()),
                even_agent: Some("Claude".into()),
                ..Legacy::default()
            },
            &[],
        )
        .unwrap();
        assert!(matches!(l.roles.schedule, Some(OneOrMany::One(ref s)) if s == "odd-even"));
        assert_eq!(l.roles.odd.as_deref(), Some("codex"));
        assert_eq!(l.roles.even.as_deref(), Some("claude"));

        let l = applied(
            &Legacy {
                iter_schedule: Some("rr".into()),
                ..Legacy::default()
            },
            &[],
        )
        .unwrap();
        assert!(
            matches!(l.roles.schedule, Some(OneOrMany::Many(ref v)) if v == &["claude", "codex"])
        );

        let l = applied(
            &Legacy {
                interleave: true,
                ..Legacy::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(l.roles.worker.as_deref(), Some("claude"));
        assert_eq!(l.roles.repair.as_deref(), Some("claude"));

        let l = applied(
            &Legacy {
                interleave: true,
                all: Some("codex".into()),
                ..Legacy::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(l.roles.worker.as_deref(), Some("codex"));
        assert_eq!(l.roles.repair.as_deref(), Some("codex"));

        let smart = Legacy {
            smart: true,
            codex_model: Some("gpt-5.5".into()),
            ..Legacy::default()
        };
        let l = applied(&smart, &[("CODEX_SMART_MODEL", "gpt-5.5-pro")]).unwrap();
        assert_eq!(
            l.agents["codex"].spec.as_deref(),
            Some("codex:gpt-5.5-pro@xhigh")
        );
        let l = applied(
            &Legacy {
                claude_model: Some("opus".into()),
                claude_bin: Some("/opt/claude".into()),
                ..Legacy::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(l.agents["claude"].spec.as_deref(), Some("claude:opus"));

        let err = applied(
            &Legacy {
                iter_schedule: Some("weekly".into()),
                ..Legacy::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid iter schedule `weekly`"),
            "{err:#}"
        );
    }
}
