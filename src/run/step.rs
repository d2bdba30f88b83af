//! One agent step of a run: journal the prompt, start the agent through its adapter and the
//! supervisor, journal every line with its normalized events, keep the last message in its
//! own file, and journal how it ended.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::Ctx;
use crate::agent::supervise::{self, RunResult, Stream};
use crate::agent::{Request, Role, invocation};
use crate::backlog::format::sha256_hex;
use crate::config::Agent;

/// One `agent.event` record: a line of the agent's output, raw and normalized.
#[derive(serde::Serialize)]
struct EventRecord<'a> {
    stream: &'static str,
    at_ms: u64,
    raw: &'a str,
    /// Stays the last field: `journal::read::stream` finds it from the line's end.
    events: &'a [crate::agent::Event],
}

/// How many bytes of `agent.event` records one step journals (about: a line's raw text and
/// its events, JSON-escaped, plus the record's envelope). The parser still reads every line,
/// so the report, usage and failure class come from all of it; past this, lines are only
/// counted (`agent.output_capped`), so an agent printing a gigabyte can't fill the disk with
/// its journal. Real agent sessions stay far below it.
const MAX_JOURNALED_OUTPUT: usize = 32 << 20;

/// What a line costs in the journal: its text twice (raw, and in its events), escaped as
/// JSON escapes it, plus the record's fields.
fn journal_cost(text: &str) -> usize {
    // Branch-free per byte, so the sum runs as vector code: a quote or backslash costs one
    // more, a control character five more, four of them fewer for the short escapes.
    let extra: usize = text
        .bytes()
        .map(|b| {
            let quote = usize::from(b == b'"' || b == b'\\');
            let control = usize::from(b < 0x20);
            let short = usize::from(matches!(b, b'\n' | b'\r' | b'\t' | 0x08 | 0x0c));
            quote + 5 * control - 4 * short
        })
        .sum();
    2 * (text.len() + extra) + 300
}

/// The output lines a step has journaled so far, and those it dropped.
#[derive(Default)]
struct Kept {
    bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Kept {
    /// The lines of `batch` that still fit under [`MAX_JOURNALED_OUTPUT`].
    fn take<'a>(&mut self, batch: &'a [supervise::LineEvent]) -> &'a [supervise::LineEvent] {
        let mut n = 0;
        if self.dropped_lines == 0 {
            for line in batch {
                let cost = journal_cost(&line.text);
                if self.bytes + cost > MAX_JOURNALED_OUTPUT {
                    break;
                }
                self.bytes += cost;
                n += 1;
            }
        }
        for line in &batch[n..] {
            self.dropped_lines += 1;
            self.dropped_bytes += line.text.len() as u64;
        }
        &batch[..n]
    }
}

/// Runs `agent` in `role` with `prompt`; the label names the step in the journal.
pub(crate) fn run_agent(
    ctx: &mut Ctx,
    agent: &Agent,
    role: Role,
    prompt: &str,
    timeout: Duration,
) -> anyhow::Result<RunResult> {
    ctx.record(
        "prompt",
        json!({"role": role.as_str(), "sha256": sha256_hex(prompt.as_bytes()), "text": prompt}),
    )?;
    let inv = invocation(&Request {
        spec: &agent.spec,
        role,
        sandbox: ctx.config.sandbox,
        prompt,
        cwd: &ctx.root,
        program: agent.program.as_deref(),
    });
    let mut spec = inv.supervise_spec(&ctx.root);
    spec.env
        .extend(agent.env.iter().map(|(k, v)| (k.into(), v.into())));
    spec.env
        .push(("LOOPER_RUN".into(), ctx.run_id.clone().into()));
    spec.wall_timeout = Some(timeout);
    spec.idle_timeout = Some(ctx.config.idle_timeout);
    spec.cancel = Some(std::sync::Arc::clone(&ctx.stop.hard));
    spec.pid_dir = Some(ctx.state.join("agents"));
    let env_keys: Vec<&str> = agent.env.iter().map(|(k, _)| k.as_str()).collect();
    ctx.record(
        "agent.spawn",
        json!({
            "role": role.as_str(),
            "agent": agent.name,
            "spec": agent.spec.to_string(),
            "argv": inv.display(),
            "cwd": ctx.root,
            "env_keys": env_keys,
            "notes": inv.notes,
        }),
    )?;
    let mut parser = inv.format.parser();
    let result = run_journaled(ctx, &spec, parser.as_mut())?;
    // The backlog is Looper's: an agent that deleted or broke it gets the last version Looper
    // wrote back (journaled whole, shown to the reviewer), and the run goes on.
    if matches!(role, Role::Worker | Role::Reviewer)
        && let Some(why) = ctx.store.restore(&ctx.journal)?
    {
        ctx.digest.push(format!(
            "{why} during {}; Looper put back the last version it wrote",
            ctx.label
        ));
    }
    let mut last = json!({
        "label": ctx.label,
        "final_text": result.outcome.final_text,
        "class": result.class,
    });
    if let Some(redactor) = ctx.journal.redactor() {
        redactor.value(&mut last);
    }
    let path = ctx.run_dir().join(format!("{}.last.json", ctx.label));
    crate::file::create_private_dir(&ctx.run_dir())?;
    crate::file::write_atomic_nosync(&path, format!("{last:#}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write the last message {}", path.display()))?;
    ctx.record(
        "agent.exit",
        json!({
            "role": role.as_str(),
            "code": result.exit.code,
            "signal": result.exit.signal,
            "duration_ms": u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            "usage": result.outcome.usage,
            "class": result.class,
            "session_id": result.outcome.session_id,
            "last_message": path,
            "survivors": result.survivors,
        }),
    )?;
    ctx.add_usage(&result);
    Ok(result)
}

/// Runs the agent under the supervisor, journaling its output lines as `agent.event` records
/// up to [`MAX_JOURNALED_OUTPUT`] and what was left out as `agent.output_capped`.
fn run_journaled(
    ctx: &Ctx,
    spec: &supervise::Spec,
    parser: &mut dyn crate::agent::parse::StreamParser,
) -> anyhow::Result<RunResult> {
    let mut journal_error = None;
    let mut kept = Kept::default();
    let result = {
        let ctx_ref = ctx;
        supervise::run_batched(spec, parser, &mut |lines| {
            let lines = kept.take(&lines);
            if lines.is_empty() {
                return;
            }
            let records: Vec<EventRecord> = lines
                .iter()
                .map(|line| EventRecord {
                    stream: match line.stream {
                        Stream::Stdout => "stdout",
                        Stream::Stderr => "stderr",
                    },
                    at_ms: u64::try_from(line.at.as_millis()).unwrap_or(u64::MAX),
                    raw: &line.text,
                    events: &line.events,
                })
                .collect();
            if let Err(e) = ctx_ref.journal.append_all("agent.event", &records)
                && journal_error.is_none()
            {
                journal_error = Some(e);
            }
        })?
    };
    if let Some(e) = journal_error {
        return Err(e);
    }
    if kept.dropped_lines > 0 {
        ctx.record(
            "agent.output_capped",
            json!({
                "journaled_bytes": kept.bytes,
                "dropped_lines": kept.dropped_lines,
                "dropped_bytes": kept.dropped_bytes,
                "why": format!("the journal keeps the first {} MiB of an agent's output per step", MAX_JOURNALED_OUTPUT >> 20),
            }),
        )?;
    }
    Ok(result)
}

/// A short line on how a failed agent run ended, for task notes.
pub(crate) fn describe_failure(result: &RunResult) -> String {
    let class = serde_json::to_value(&result.class).unwrap_or(Value::Null);
    let name = class
        .get("class")
        .and_then(Value::as_str)
        .unwrap_or("failed");
    match (result.exit.code, result.exit.signal) {
        (_, Some(signal)) => format!("the agent run ended {name} (signal {signal})"),
        (Some(code), _) if code != 0 => format!("the agent run ended {name} (exit {code})"),
        _ => format!("the agent run ended {name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn journal_cost_counts_each_byte_as_json_escapes_it() {
        let every_char: String = (0u8..=127).map(char::from).chain(['é', '✓']).collect();
        let escaped = serde_json::to_string(&every_char).unwrap().len() - 2;
        assert_eq!(super::journal_cost(&every_char), 2 * escaped + 300);
        assert_eq!(super::journal_cost(""), 300);
    }
}
