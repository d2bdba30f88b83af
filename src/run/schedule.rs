//! Which agent takes a step (DESIGN §6), and why: a task's `agent` pin, else escalation after
//! `escalate_after` failed attempts, else the worker schedule (single, odd-even, round-robin;
//! counting task iterations only). When that agent is rate-limited, refused its credentials
//! this run, or its CLI is missing, the next agent of `fallback` takes the step; when every
//! candidate is rate-limited, the run waits for the first reset.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Ctx;
use crate::config::Agent;

/// What the next step should do.
#[derive(Debug)]
pub(crate) enum Pick {
    /// Run this agent; `why` is journaled.
    Run { agent: Agent, why: String },
    /// Every candidate is rate-limited: wait until the first limit lifts.
    Wait { until: Timestamp, why: String },
    /// No candidate can run and none will by waiting (credentials, missing CLIs).
    Stuck { why: String },
}

/// The worker for task `task` (its JSON), with the fallbacks behind it.
pub(crate) fn worker(ctx: &Ctx, task: &Value) -> anyhow::Result<Pick> {
    let (agent, why) = primary_worker(ctx, task)?;
    Ok(first_available(ctx, agent, why, &[]))
}

/// How a step run with [`run_with_fallback`] went.
pub(crate) enum Ran {
    /// The agent that ran (the configured one or a fallback) and its result.
    Result(Agent, Box<crate::agent::supervise::RunResult>),
    /// The run must end while waiting for a rate limit: why, and the exit code.
    Ended(&'static str, u8),
    /// No agent can take the step.
    Stuck(String),
}

/// Runs a reviewer, bootstrap or repair step with `configured`, or the fallback that stands
/// in for it while it is rate-limited, refused or missing (`agent.fallback`); waits when
/// every candidate is rate-limited. `taken`: agents already busy in this step (the other
/// reviewers of an ensemble), never asked to stand in.
pub(crate) fn run_with_fallback(
    ctx: &mut Ctx,
    configured: &Agent,
    role: crate::agent::Role,
    text: &str,
    timeout: std::time::Duration,
    taken: &[String],
) -> anyhow::Result<Ran> {
    loop {
        match first_available(ctx, configured.clone(), role.as_str().to_owned(), taken) {
            Pick::Run { agent, why } => {
                if agent.name != configured.name {
                    ctx.record(
                        "agent.fallback",
                        json!({"role": role.as_str(), "configured": configured.name, "agent": agent.name, "why": why}),
                    )?;
                }
                let result = super::step::run_agent(ctx, &agent, role, text, timeout)?;
                if note_run(ctx, &agent, &result)?.is_none() {
                    return Ok(Ran::Result(agent, Box::new(result)));
                }
            }
            Pick::Wait { until, why } => {
                if let Some((reason, code)) = super::wait(ctx, until, &why)? {
                    return Ok(Ran::Ended(reason, code));
                }
            }
            Pick::Stuck { why } => return Ok(Ran::Stuck(why)),
        }
    }
}

fn primary_worker(ctx: &Ctx, task: &Value) -> anyhow::Result<(Agent, String)> {
    let id = task.get("id").and_then(Value::as_str).unwrap_or("?");
    if let Some(name) = task.get("agent").and_then(Value::as_str) {
        match ctx.config.agent_named(name) {
            Ok(agent) => return Ok((agent, format!("pinned: task {id} names agent `{name}`"))),
            Err(e) => {
                ctx.record(
                    "warning",
                    json!({"task": id, "message": format!("task {id} pins agent `{name}`, which Looper cannot use ({e:#}): the schedule picks instead")}),
                )?;
            }
        }
    }
    let attempts = task.get("attempts").and_then(Value::as_u64).unwrap_or(0);
    if let Some(escalate) = &ctx.config.escalate
        && attempts >= u64::from(ctx.config.escalate_after)
    {
        return Ok((
            escalate.clone(),
            format!("escalated: task {id} failed {attempts} attempt(s)"),
        ));
    }
    let (agent, why) = ctx.config.schedule.nth(ctx.worked + 1);
    Ok((agent.clone(), why))
}

/// Why `agent` cannot run now, if it cannot: `(until, text)` for a rate limit, `(None,
/// text)` for what waiting does not fix.
fn unavailable(ctx: &Ctx, agent: &Agent, now: Timestamp) -> Option<(Option<Timestamp>, String)> {
    if let Some(limit) = ctx.limits.active(&agent.name, now) {
        return Some((
            Some(limit.until),
            format!(
                "`{}` is {} (until {})",
                agent.name,
                limit.reason,
                crate::term::clock(limit.until)
            ),
        ));
    }
    if let Some(why) = ctx.unavailable.get(&agent.name) {
        return Some((None, format!("`{}` {why}", agent.name)));
    }
    if let Err(missing) = super::agent_program(agent, &ctx.config, &ctx.root) {
        return Some((None, missing));
    }
    None
}

fn first_available(ctx: &Ctx, primary: Agent, why: String, taken: &[String]) -> Pick {
    let now = Timestamp::now();
    let mut candidates = vec![(primary, why)];
    for fallback in &ctx.config.fallback {
        if !candidates.iter().any(|(a, _)| a.name == fallback.name)
            && !taken.contains(&fallback.name)
        {
            candidates.push((fallback.clone(), "fallback".to_owned()));
        }
    }
    let mut skipped = Vec::new();
    let mut earliest: Option<Timestamp> = None;
    for (agent, why) in candidates {
        match unavailable(ctx, &agent, now) {
            None if skipped.is_empty() => return Pick::Run { agent, why },
            None => {
                let why = format!("fallback: {}", skipped.join("; "));
                return Pick::Run { agent, why };
            }
            Some((until, text)) => {
                if let Some(until) = until {
                    earliest = Some(earliest.map_or(until, |e| e.min(until)));
                }
                skipped.push(text);
            }
        }
    }
    let why = skipped.join("; ");
    match earliest {
        Some(until) => Pick::Wait { until, why },
        None => Pick::Stuck { why },
    }
}

/// After an agent ran: a rate limit is recorded (and persisted) and a refused credential
/// makes the agent unavailable for the rest of the run; either returns a line saying so, and
/// the step goes to another agent. Any other ending clears the agent's limit.
pub(crate) fn note_run(
    ctx: &mut Ctx,
    agent: &Agent,
    result: &crate::agent::supervise::RunResult,
) -> anyhow::Result<Option<String>> {
    use crate::agent::FailureClass;
    use crate::agent::supervise::Class;
    match &result.class {
        Class::Stream(FailureClass::RateLimited {
            reset_at,
            retry_after_s,
        }) => {
            let limit = ctx.limits.hit(
                &agent.name,
                reset_at.as_deref(),
                *retry_after_s,
                Timestamp::now(),
            )?;
            ctx.record(
                "agent.limited",
                json!({"agent": agent.name, "spec": agent.spec.to_string(), "until": limit.until, "reason": limit.reason, "strikes": limit.strikes}),
            )?;
            Ok(Some(format!(
                "`{}` is {} (until {})",
                agent.name,
                limit.reason,
                crate::term::clock(limit.until)
            )))
        }
        Class::Stream(FailureClass::Auth) => {
            let why = format!(
                "refused its credentials: log in to the {} CLI or set its API key",
                agent.spec.adapter.name()
            );
            ctx.record(
                "agent.unavailable",
                json!({"agent": agent.name, "spec": agent.spec.to_string(), "why": why}),
            )?;
            ctx.unavailable.insert(agent.name.clone(), why.clone());
            Ok(Some(format!("`{}` {why}", agent.name)))
        }
        _ => {
            ctx.limits.clear(&agent.name)?;
            Ok(None)
        }
    }
}
