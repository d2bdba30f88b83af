//! Looper's normalized agent events (DESIGN §6, CONTRACTS §9): what every adapter's stream
//! parser turns a CLI's own JSON lines into, and the failure classes a stream can tell.
//!
//! Owns only the types. The parsers live in [`crate::agent::parse`]; the raw lines go to the
//! journal unchanged, so these events may drop detail. Classes that only the supervisor can
//! see (timeout, idle, crash) are not here.

use serde::{Deserialize, Serialize};

/// One normalized event, parsed from one line of an agent CLI's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The CLI's session or thread id (for `resume`).
    Session { id: String },
    /// Assistant text: a whole message, or a delta of one for CLIs that only stream deltas.
    Message { text: String },
    /// A reasoning summary or thinking block.
    Reasoning { text: String },
    /// A shell command the agent ran. `exit_code` and `duration_ms` are `None` when the CLI
    /// doesn't report them.
    Command {
        cmd: String,
        exit_code: Option<i32>,
        duration_ms: Option<u64>,
        output: Option<String>,
    },
    /// A file the agent wrote through the CLI's own file tools. Paths are as the CLI gave
    /// them (codex: absolute; claude: relative to the working directory).
    FileChange { path: String, kind: FileChangeKind },
    /// Token usage: the running totals of the run so far, as the CLI counts them.
    Usage(Usage),
    /// An error or warning. Only `fatal` errors end the run; a `class` on a non-fatal one is
    /// a hint (a retried 429) that refines the class of a later fatal failure.
    Error {
        message: String,
        fatal: bool,
        class: Option<FailureClass>,
    },
    /// The final assistant text, sent once the CLI's terminal success event arrives.
    Final { text: String },
    /// A line the parser doesn't know. `kind` is its `type`; `None` when the line is not a
    /// JSON object with a string `type` (the outcome's counters tell garbage from the rest).
    Unknown { kind: Option<String> },
}

/// How a file changed. Unknown kinds read as `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    Add,
    Delete,
    Update,
}

impl FileChangeKind {
    /// Reads the CLIs' names: codex `add|delete|update`, claude's `create`.
    pub(crate) fn from_cli(kind: &str) -> Self {
        match kind {
            "add" | "create" | "created" => Self::Add,
            "delete" | "remove" | "deleted" => Self::Delete,
            _ => Self::Update,
        }
    }
}

/// Token counts in Looper's convention: `input` includes the cached tokens, `output` includes
/// reasoning tokens. `cost_usd` is `None` when the CLI reports no cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Adds another report to these totals (for CLIs that report per step). Counts come
    /// from the agent's output, so they saturate rather than overflow.
    pub(crate) fn add(&mut self, other: &Usage) {
        self.input = self.input.saturating_add(other.input);
        self.cached = self.cached.saturating_add(other.cached);
        self.output = self.output.saturating_add(other.output);
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// Why a run failed, as far as its output stream can tell. The supervisor adds `timeout`,
/// `idle` and `crash` from what it sees of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum FailureClass {
    /// HTTP 429, a rate-limit or usage-limit error. `reset_at` is RFC 3339 when the CLI gave
    /// a machine-readable time, otherwise the CLI's own words (`3pm (Europe/Berlin)`).
    RateLimited {
        reset_at: Option<String>,
        retry_after_s: Option<u64>,
    },
    /// The credentials were missing, wrong or refused (401, 403, an auth error type).
    Auth,
    /// Any other model-API or transport error. `retryable` is true for server-side and
    /// connection errors, false for client errors such as 400.
    Api {
        status: Option<u16>,
        retryable: bool,
    },
    /// The CLI stopped at its turn cap (claude `error_max_turns`, gemini's turn limit).
    TurnLimit,
    /// The CLI stopped at its spending cap (claude `error_max_budget_usd`).
    BudgetLimit,
    /// The run ended normally but without a final message.
    NoReport,
    /// The stream ended without a terminal event and held lines that aren't JSON.
    MalformedOutput,
    /// The stream ended without the CLI's terminal event (killed, crashed, cut off).
    Incomplete,
    /// The CLI reported a failure that fits no other class.
    AgentError,
}

impl FailureClass {
    /// A rate limit without reset information.
    pub(crate) fn rate_limited() -> Self {
        Self::RateLimited {
            reset_at: None,
            retry_after_s: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let event = Event::Error {
            message: "slow down".into(),
            fatal: false,
            class: Some(FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(3),
            }),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","message":"slow down","fatal":false,"class":{"class":"rate_limited","reset_at":null,"retry_after_s":3}}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);

        let usage = Event::Usage(Usage {
            input: 1,
            cached: 0,
            output: 2,
            cost_usd: None,
        });
        let json = serde_json::to_string(&usage).unwrap();
        assert_eq!(
            json,
            r#"{"type":"usage","input":1,"cached":0,"output":2,"cost_usd":null}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), usage);
    }

    #[test]
    fn usage_adds_cost_only_when_reported() {
        let mut total = Usage::default();
        total.add(&Usage {
            input: 10,
            cached: 2,
            output: 3,
            cost_usd: None,
        });
        assert_eq!(total.cost_usd, None);
        total.add(&Usage {
            input: 1,
            cached: 1,
            output: 1,
            cost_usd: Some(0.5),
        });
        assert_eq!((total.input, total.cached, total.output), (11, 3, 4));
        assert_eq!(total.cost_usd, Some(0.5));
    }
}
