//! Hooks (#4): user programs run on loop events. Each is an argv, never a shell string; the
//! event is JSON on stdin and `LOOPER_*` variables, so no value is ever interpolated into a
//! command line. A hook runs in its own process group under a timeout, and its failure is
//! journaled but never stops the run. The original looper's `LOOPER_HOOK` is called after
//! each iteration as `$LOOPER_HOOK <task_id> <status> <last_message_path> <label>`.

use std::ffi::OsString;
use std::time::Duration;

use serde_json::{Value, json};

use super::Ctx;
use crate::agent::StreamFormat;
use crate::agent::supervise;

/// Runs the hooks configured for `event`, and `LOOPER_HOOK` after iterations.
pub(crate) fn fire(ctx: &Ctx, event: &str, payload: &Value) -> anyhow::Result<()> {
    let mut env = vec![
        ("LOOPER_EVENT".to_owned(), event.to_owned()),
        ("LOOPER_RUN".to_owned(), ctx.run_id.clone()),
        ("LOOPER_ITERATION".to_owned(), ctx.iter.to_string()),
        ("LOOPER_LABEL".to_owned(), ctx.label.clone()),
    ];
    for (key, var) in [
        ("task", "LOOPER_TASK"),
        ("status", "LOOPER_STATUS"),
        ("last_message", "LOOPER_LAST_MESSAGE"),
    ] {
        if let Some(v) = payload.get(key).and_then(Value::as_str) {
            env.push((var.to_owned(), v.to_owned()));
        }
    }
    let stdin = serde_json::to_vec(
        &json!({"event": event, "run": ctx.run_id, "iter": ctx.iter, "label": ctx.label, "data": payload}),
    )?;
    for (name, argv) in &ctx.config.hooks {
        if *name == event {
            run_one(ctx, name, argv, &env, &stdin)?;
        }
    }
    if event == "after_iteration"
        && let Some(hook) = &ctx.config.legacy_hook
    {
        let field = |k: &str| {
            payload
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let argv = vec![
            hook.clone(),
            field("task"),
            field("status"),
            field("last_message"),
            ctx.label.clone(),
        ];
        run_one(ctx, "LOOPER_HOOK", &argv, &env, &stdin)?;
    }
    Ok(())
}

fn run_one(
    ctx: &Ctx,
    name: &str,
    argv: &[String],
    env: &[(String, String)],
    stdin: &[u8],
) -> anyhow::Result<()> {
    let Some((program, rest)) = argv.split_first() else {
        return Ok(());
    };
    let path = if program.contains('/') && !program.starts_with('/') {
        ctx.root.join(program)
    } else {
        program.into()
    };
    let mut spec = supervise::Spec::new(path, &ctx.root);
    spec.args = rest.iter().map(OsString::from).collect();
    spec.env = env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    spec.stdin = Some(stdin.to_vec());
    spec.wall_timeout = Some(ctx.config.hook_timeout);
    spec.kill_grace = Duration::from_secs(2);
    let mut parser = StreamFormat::Cmd.parser();
    let mut output = Vec::new();
    let record = match supervise::run(&spec, parser.as_mut(), &mut |line| {
        if output.len() < 20 {
            output.push(line.text);
        }
    }) {
        Ok(result) => json!({
            "hook": name,
            "argv": argv,
            "code": result.exit.code,
            "signal": result.exit.signal,
            "class": result.class,
            "duration_ms": u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            "output": output,
        }),
        Err(e) => json!({"hook": name, "argv": argv, "error": format!("{e:#}")}),
    };
    ctx.record("hook", record)?;
    Ok(())
}
