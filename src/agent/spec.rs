//! Agent specs (DESIGN §6): `adapter[:model][@effort]`, e.g. `codex`, `codex:gpt-5.5@xhigh`,
//! `claude:opus`, `opencode:anthropic/claude-sonnet-4-5@high`, `cmd:./my-agent.sh`.
//!
//! A spec names which CLI to run and how hard it should think; [`crate::agent::adapter`] turns
//! it into an argv for a role.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The agent CLIs Looper knows, plus any program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adapter {
    Codex,
    Claude,
    Gemini,
    Opencode,
    Pi,
    /// Looper's built-in demo agent (`looper demo`): no model, no network; it speaks codex's
    /// JSONL so it goes through the same parser and supervisor as the real CLIs.
    Demo,
    /// Any executable: the prompt on stdin, plain stdout, the last JSON object is the report.
    Cmd(String),
}

impl Adapter {
    /// The named adapters, in the order the docs list them.
    pub const NAMED: [&'static str; 5] = ["codex", "claude", "gemini", "opencode", "pi"];

    /// The adapter's name as written in a spec (`cmd` for any program).
    pub fn name(&self) -> &str {
        match self {
            Self::Codex => "codex",
            Self::Claude => "claude",
            Self::Gemini => "gemini",
            Self::Opencode => "opencode",
            Self::Pi => "pi",
            Self::Demo => "demo",
            Self::Cmd(_) => "cmd",
        }
    }
}

/// How hard the model should think. Each adapter maps these onto its CLI's own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl Effort {
    const ALL: [(&'static str, Effort); 6] = [
        ("minimal", Self::Minimal),
        ("low", Self::Low),
        ("medium", Self::Medium),
        ("high", Self::High),
        ("xhigh", Self::Xhigh),
        ("max", Self::Max),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("medium", |(name, _)| name)
    }
}

impl fmt::Display for Effort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed agent spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub adapter: Adapter,
    /// Passed to the CLI as given; `None` keeps the CLI's own default.
    pub model: Option<String>,
    /// `None` keeps the CLI's own default.
    pub effort: Option<Effort>,
}

/// Why a spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "empty agent spec: write `adapter[:model][@effort]`, e.g. `codex` or `claude:opus@high`"
    )]
    Empty,
    #[error(
        "unknown agent adapter `{0}` in spec: use one of codex, claude, gemini, opencode, pi, demo, or cmd:<program>"
    )]
    UnknownAdapter(String),
    #[error("agent spec `{0}` has an empty model after `:`; drop the `:` or name a model")]
    EmptyModel(String),
    #[error(
        "unknown reasoning effort `{effort}` in agent spec `{spec}`: use minimal, low, medium, high, xhigh or max"
    )]
    UnknownEffort { spec: String, effort: String },
    #[error("agent spec `{0}` names no program: write `cmd:<program>`, e.g. `cmd:./my-agent.sh`")]
    EmptyProgram(String),
}

impl FromStr for AgentSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(SpecError::Empty);
        }
        // `cmd:` takes the rest verbatim: a path may hold `:` or `@`.
        if let Some(program) = spec.strip_prefix("cmd:") {
            if program.trim().is_empty() {
                return Err(SpecError::EmptyProgram(spec.to_owned()));
            }
            return Ok(Self {
                adapter: Adapter::Cmd(program.to_owned()),
                model: None,
                effort: None,
            });
        }
        let (rest, effort) = match spec.rsplit_once('@') {
            Some((rest, effort)) => {
                let parsed = Effort::ALL
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(effort))
                    .map(|(_, e)| *e)
                    .ok_or_else(|| SpecError::UnknownEffort {
                        spec: spec.to_owned(),
                        effort: effort.to_owned(),
                    })?;
                (rest, Some(parsed))
            }
            None => (spec, None),
        };
        let (name, model) = match rest.split_once(':') {
            Some((_, "")) => return Err(SpecError::EmptyModel(spec.to_owned())),
            Some((name, model)) => (name, Some(model.to_owned())),
            None => (rest, None),
        };
        let adapter = match name.to_ascii_lowercase().as_str() {
            "codex" => Adapter::Codex,
            "claude" => Adapter::Claude,
            "gemini" => Adapter::Gemini,
            "opencode" => Adapter::Opencode,
            "pi" => Adapter::Pi,
            "demo" => Adapter::Demo,
            "cmd" => return Err(SpecError::EmptyProgram(spec.to_owned())),
            _ => return Err(SpecError::UnknownAdapter(name.to_owned())),
        };
        Ok(Self {
            adapter,
            model,
            effort,
        })
    }
}

impl fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Adapter::Cmd(program) = &self.adapter {
            return write!(f, "cmd:{program}");
        }
        f.write_str(self.adapter.name())?;
        if let Some(model) = &self.model {
            write!(f, ":{model}")?;
        }
        if let Some(effort) = self.effort {
            write!(f, "@{effort}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> AgentSpec {
        spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn reads_every_documented_form() {
        assert_eq!(
            parse("codex"),
            AgentSpec {
                adapter: Adapter::Codex,
                model: None,
                effort: None
            }
        );
        let spec = parse("codex:gpt-5.4@xhigh");
        assert_eq!(spec.model.as_deref(), Some("gpt-5.4"));
        assert_eq!(spec.effort, Some(Effort::Xhigh));
        assert_eq!(parse("claude:opus").model.as_deref(), Some("opus"));
        assert_eq!(parse("pi@high").effort, Some(Effort::High));
        assert_eq!(parse("pi@high").model, None);
        assert_eq!(
            parse("opencode:anthropic/claude-sonnet-4-5@low")
                .model
                .as_deref(),
            Some("anthropic/claude-sonnet-4-5")
        );
        // Models with colons of their own (ollama tags) keep them.
        assert_eq!(
            parse("opencode:ollama/qwen3:32b").model.as_deref(),
            Some("ollama/qwen3:32b")
        );
        assert_eq!(parse(" Gemini:gemini-2.5-pro ").adapter, Adapter::Gemini);
    }

    #[test]
    fn cmd_takes_the_rest_verbatim() {
        assert_eq!(
            parse("cmd:./my-agent.sh").adapter,
            Adapter::Cmd("./my-agent.sh".into())
        );
        assert_eq!(
            parse("cmd:/opt/agent@2/run:fast").adapter,
            Adapter::Cmd("/opt/agent@2/run:fast".into())
        );
    }

    #[test]
    fn round_trips_through_display() {
        for spec in [
            "codex",
            "codex:gpt-5.5@high",
            "claude:opus",
            "gemini@low",
            "cmd:./a b.sh",
        ] {
            assert_eq!(parse(spec).to_string(), spec);
        }
    }

    #[test]
    fn refuses_bad_specs_with_what_to_write() {
        let cases = [
            ("", "empty agent spec"),
            ("gpt", "unknown agent adapter `gpt`"),
            ("codex:", "empty model"),
            ("codex:gpt@turbo", "unknown reasoning effort `turbo`"),
            ("cmd:", "names no program"),
            ("cmd", "names no program"),
        ];
        for (spec, want) in cases {
            let err = spec.parse::<AgentSpec>().unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
