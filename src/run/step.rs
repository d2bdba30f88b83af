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
use crate::journal::Bodies;

/// One `agent.event` record: a line of the agent's output, raw and normalized. Written by
/// hand ([`EventRecord::encode_into`]); with `json` false, the derived form is what that
/// must equal.
#[cfg_attr(test, derive(serde::Serialize))]
struct EventRecord<'a> {
    stream: &'static str,
    at_ms: u64,
    raw: &'a str,
    /// `raw` is one JSON object ([`supervise::LineEvent::json`]): the record holds it as
    /// that object, in a `json` member, instead of as a string in `raw`.
    #[cfg_attr(test, serde(skip))]
    json: bool,
    /// Stays the last field: `journal::read::stream` finds it from the line's end.
    events: &'a [crate::agent::Event],
}

impl EventRecord<'_> {
    /// Appends the record's payload as JSON, as `serde_json` writes the struct, without
    /// going through its serializer for the common events: this runs for every line an
    /// agent prints. A line that is a JSON object goes in as it is, byte for byte: no
    /// escaping, and a reader gets the object itself.
    fn encode_into(&self, out: &mut String) -> anyhow::Result<()> {
        use crate::journal::writer::{push_json_str, push_u64};
        out.reserve(self.raw.len() * 2 + 128);
        out.push_str("{\"stream\":\"");
        out.push_str(self.stream);
        out.push_str("\",\"at_ms\":");
        push_u64(out, self.at_ms);
        if self.json {
            out.push_str(",\"json\":");
            out.push_str(self.raw);
        } else {
            out.push_str(",\"raw\":");
            push_json_str(out, self.raw);
        }
        out.push_str(",\"events\":[");
        for (i, event) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_event(out, event)?;
        }
        out.push_str("]}");
        Ok(())
    }
}

/// Appends `event` as JSON, as `serde_json` writes it; by hand but for the events a stream
/// has one or two of (usage, errors).
fn push_event(out: &mut String, event: &crate::agent::Event) -> anyhow::Result<()> {
    use crate::agent::Event;
    use crate::journal::writer::{push_i64, push_json_str, push_u64};
    let text = |out: &mut String, kind: &str, field: &str, value: &str| {
        out.push_str("{\"type\":\"");
        out.push_str(kind);
        out.push_str("\",\"");
        out.push_str(field);
        out.push_str("\":");
        push_json_str(out, value);
        out.push('}');
    };
    match event {
        Event::Session { id } => text(out, "session", "id", id),
        Event::Message { text: t } => text(out, "message", "text", t),
        Event::Reasoning { text: t } => text(out, "reasoning", "text", t),
        Event::Final { text: t } => text(out, "final", "text", t),
        Event::Command {
            cmd,
            exit_code,
            duration_ms,
            output,
        } => {
            out.push_str("{\"type\":\"command\",\"cmd\":");
            push_json_str(out, cmd);
            out.push_str(",\"exit_code\":");
            match exit_code {
                Some(code) => push_i64(out, i64::from(*code)),
                None => out.push_str("null"),
            }
            out.push_str(",\"duration_ms\":");
            match duration_ms {
                Some(ms) => push_u64(out, *ms),
                None => out.push_str("null"),
            }
            out.push_str(",\"output\":");
            match output {
                Some(output) => push_json_str(out, output),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        Event::FileChange { path, kind } => {
            out.push_str("{\"type\":\"file_change\",\"path\":");
            push_json_str(out, path);
            out.push_str(",\"kind\":\"");
            out.push_str(match kind {
                crate::agent::FileChangeKind::Add => "add",
                crate::agent::FileChangeKind::Delete => "delete",
                crate::agent::FileChangeKind::Update => "update",
            });
            out.push_str("\"}");
        }
        Event::Unknown { kind } => {
            out.push_str("{\"type\":\"unknown\",\"kind\":");
            match kind {
                Some(kind) => push_json_str(out, kind),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        Event::Usage(_) | Event::Error { .. } => {
            let json = serde_json::to_string(event).context("cannot encode an agent's event")?;
            out.push_str(&json);
        }
    }
    Ok(())
}

/// How many bytes of `agent.event` records one step journals (each record's encoded payload
/// plus [`HEADER_BYTES`] for its header). The parser still reads every line, so the report,
/// usage and failure class come from all of it; past this, lines are only counted
/// (`agent.output_capped`), so an agent printing a gigabyte can't fill the disk with its
/// journal. Real agent sessions stay far below it.
const MAX_JOURNALED_OUTPUT: usize = 32 << 20;

/// What a record's header (`v`, `ts`, `run`, `seq`, `type`, `iter`, `label`) adds to its
/// payload, at most.
const HEADER_BYTES: usize = 256;

/// How many batches of lines may wait for the journal writer: the agent's output stays
/// bounded in memory when the disk is slower than the agent.
const WRITER_BACKLOG: usize = 4;

/// The output lines a step has journaled so far, and those it dropped.
#[derive(Default)]
struct Kept {
    bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// The payloads of the batch being written; its memory serves the next batch.
    bodies: Bodies,
}

impl Kept {
    /// The `agent.event` payloads of the lines of `batch` that still fit under
    /// [`MAX_JOURNALED_OUTPUT`], encoded for `journal`; once one does not, no later one is
    /// journaled either.
    fn encode(
        &mut self,
        journal: &crate::journal::Journal,
        batch: &[supervise::LineEvent],
    ) -> anyhow::Result<&Bodies> {
        let bodies = &mut self.bodies;
        bodies.clear();
        for line in batch {
            // Encoding never makes a line shorter: one that can't fit isn't encoded.
            if self.dropped_lines == 0 && self.bytes + line.text.len() <= MAX_JOURNALED_OUTPUT {
                EventRecord {
                    stream: match line.stream {
                        Stream::Stdout => "stdout",
                        Stream::Stderr => "stderr",
                    },
                    at_ms: u64::try_from(line.at.as_millis()).unwrap_or(u64::MAX),
                    raw: &line.text,
                    json: line.json,
                    events: &line.events,
                }
                .encode_into(bodies.buf())?;
                let cost = bodies.seal(journal) + HEADER_BYTES;
                if self.bytes + cost <= MAX_JOURNALED_OUTPUT {
                    self.bytes += cost;
                    continue;
                }
                bodies.pop();
            }
            self.dropped_lines += 1;
            self.dropped_bytes += line.text.len() as u64;
        }
        Ok(bodies)
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
    run_agent_then(ctx, agent, role, prompt, timeout, |_| Ok(()), || ())
        .map(|((), result, ())| result)
}

/// [`run_agent`], with `prepare` run before the agent is given its prompt (marking its task
/// `doing`, say) and `meanwhile` once it has ended, while the journal writer finishes its
/// lines (the records after it wait for that anyway): for work that reads the tree the agent
/// left and writes no record.
///
/// An agent that reads its prompt from stdin before it does anything else
/// ([`crate::agent::Invocation::prompt_first`]: codex, claude, opencode, pi) is spawned first
/// and starts while `prepare` runs; its prompt is written once that is done and the backlog
/// durable. When `prepare` fails, the agent is stopped unprompted. Any other (a `cmd:`
/// program may ignore its stdin and look at the backlog or the tree at once) is spawned after
/// `prepare`.
pub(crate) fn run_agent_then<P, T>(
    ctx: &mut Ctx,
    agent: &Agent,
    role: Role,
    prompt: &str,
    timeout: Duration,
    prepare: impl FnOnce(&mut Ctx) -> anyhow::Result<P>,
    meanwhile: impl FnOnce() -> T,
) -> anyhow::Result<(P, RunResult, T)> {
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
    let spawned = |ctx: &Ctx| -> anyhow::Result<supervise::Started> {
        let started = supervise::spawn(&spec)?;
        ctx.record(
            "agent.spawn",
            json!({
                "role": role.as_str(),
                "agent": agent.name,
                "spec": agent.spec.to_string(),
                "argv": inv.display(),
                "cwd": ctx.root,
                "pid": started.pid(),
                "env_keys": env_keys,
                "notes": inv.notes,
            }),
        )?;
        Ok(started)
    };
    // The agent learns its task only from a durable backlog (its task marked `doing`).
    let prepared = |ctx: &mut Ctx| {
        let prepared = prepare(ctx)?;
        ctx.store.settle()?;
        anyhow::Ok(prepared)
    };
    let (started, prepared) = if inv.prompt_first {
        let started = spawned(ctx)?;
        match prepared(ctx) {
            Ok(prepared) => (started, prepared),
            Err(error) => {
                // The failure to prepare is what the run reports; the agent's end is
                // journaled if it can be (its group is killed in any case).
                if let Ok(result) = started.abandon(&spec) {
                    let _ = record_exit(ctx, role, &result, None);
                }
                return Err(error);
            }
        }
    } else {
        let prepared = prepared(ctx)?;
        (spawned(ctx)?, prepared)
    };
    ctx.record(
        "prompt",
        json!({"role": role.as_str(), "sha256": sha256_hex(prompt.as_bytes()), "text": prompt}),
    )?;
    let mut parser = inv.format.parser();
    let (result, (last, then)) = run_journaled(ctx, started, &spec, parser.as_mut(), |result| {
        (save_last_message(ctx, result), meanwhile())
    })?;
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
    let path = last?;
    record_exit(ctx, role, &result, Some(&path))?;
    ctx.add_usage(&result);
    Ok((prepared, result, then))
}

/// Journals how an agent run ended (`agent.exit`), with the file its last message was saved
/// in, if it was.
fn record_exit(
    ctx: &Ctx,
    role: Role,
    result: &RunResult,
    last_message: Option<&std::path::Path>,
) -> anyhow::Result<()> {
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
            "last_message": last_message,
            "survivors": result.survivors,
        }),
    )?;
    Ok(())
}

/// Writes the agent's last message (redacted) to `<label>.last.json` in the run's directory;
/// returns its path.
fn save_last_message(ctx: &Ctx, result: &RunResult) -> anyhow::Result<std::path::PathBuf> {
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
    Ok(path)
}

/// Runs the agent under the supervisor, journaling its output lines as `agent.event` records
/// up to [`MAX_JOURNALED_OUTPUT`] and what was left out as `agent.output_capped`. A writer
/// thread encodes and appends the lines while the supervisor parses the next ones; once the
/// agent has ended, `meanwhile` runs while the writer finishes. Every line is in the journal
/// before this returns.
fn run_journaled<T>(
    ctx: &Ctx,
    started: supervise::Started,
    spec: &supervise::Spec,
    parser: &mut dyn crate::agent::parse::StreamParser,
    meanwhile: impl FnOnce(&RunResult) -> T,
) -> anyhow::Result<(RunResult, T)> {
    let journal = &ctx.journal;
    let (result, kept) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<supervise::LineEvent>>(WRITER_BACKLOG);
        let writer = std::thread::Builder::new()
            .name("journal-events".into())
            .spawn_scoped(scope, move || {
                let mut kept = Kept::default();
                // After an error, lines are still taken (the agent must not block on a full
                // pipe) but not written: the first error is the one reported.
                let mut error = None;
                for batch in rx {
                    if error.is_some() {
                        continue;
                    }
                    let written = kept.encode(journal, &batch).and_then(|bodies| {
                        if bodies.is_empty() {
                            Ok(0)
                        } else {
                            journal.append_bodies("agent.event", bodies)
                        }
                    });
                    error = written.err();
                }
                error.map_or(Ok(kept), Err)
            })
            .context("cannot start the journal writer thread")?;
        let result = started.run_batched(spec, parser, &mut |lines| {
            // A send fails only when the writer is gone, which the join below reports.
            let _ = tx.send(lines);
        });
        drop(tx);
        let result = result.map(|result| {
            let then = meanwhile(&result);
            (result, then)
        });
        let kept = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the journal writer thread panicked"))?;
        anyhow::Ok((result, kept))
    })?;
    // A journal error comes first: the agent's lines were not all kept.
    let kept = kept?;
    let (result, then) = result?;
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
    Ok((result, then))
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
    use super::*;
    use crate::agent::StreamFormat;

    /// The hand-written `agent.event` payload is what `serde_json` makes of the record, for
    /// every line of every captured stream read by every parser (and a line with control
    /// characters, quotes and non-ASCII text); a line a parser read as a JSON object is in
    /// it byte for byte, as that object.
    #[test]
    fn event_record_encodes_as_serde_json() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures");
        let mut lines = vec![(
            "a\t\"quoted\" \\ \u{1} é \u{2028}".to_owned(),
            StreamFormat::Cmd,
        )];
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for format in StreamFormat::ALL {
                lines.extend(text.lines().map(|l| (l.to_owned(), format)));
            }
        }
        assert!(lines.len() > 1000, "{}", lines.len());
        let (mut with_events, mut objects) = (0, 0);
        for (i, (line, format)) in lines.iter().enumerate() {
            let mut parser = format.parser();
            let events = parser.line(line);
            let json = parser.line_is_object();
            with_events += usize::from(!events.is_empty());
            objects += usize::from(json);
            let record = EventRecord {
                stream: if i % 2 == 0 { "stdout" } else { "stderr" },
                at_ms: (i as u64).pow(3),
                raw: line,
                json,
                events: &events,
            };
            let mut encoded = String::from("before");
            record.encode_into(&mut encoded).unwrap();
            let encoded = encoded.strip_prefix("before").unwrap();
            if !json {
                assert_eq!(encoded, serde_json::to_string(&record).unwrap());
                continue;
            }
            let expected = json!({
                "stream": record.stream,
                "at_ms": record.at_ms,
                "json": serde_json::from_str::<Value>(line).unwrap(),
                "events": events,
            });
            let read: Value = serde_json::from_str(encoded).unwrap();
            assert_eq!(read, expected, "{line}");
            assert_eq!(
                serde_json::to_string(&read).unwrap(),
                expected.to_string(),
                "members in order"
            );
            assert!(encoded.contains(&format!(",\"json\":{line},\"events\":[")));
        }
        assert!(with_events > 500, "{with_events}");
        // The JSON-lines parsers read most lines as objects; `cmd` reads none as one.
        assert!(objects > 500, "{objects}");
        assert!(lines.len() - objects > 100, "{objects} of {}", lines.len());
    }

    /// Only a line that is one JSON object, and nothing around it, nested shallow enough
    /// for a record to hold it one level deeper, goes into the journal as that object.
    #[test]
    fn only_a_whole_readable_object_is_journaled_as_json() {
        let deep = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for (line, object) in [
            (r#"{"type":"turn.started"}"#.to_owned(), true),
            ("{}".to_owned(), true),
            (deep(126), true),
            (deep(127), false),
            (deep(128), false),
            (r#" {"type":"turn.started"}"#.to_owned(), false),
            ("{\"type\":\"turn.started\"}\r".to_owned(), false),
            (r#"{"type":"turn.started"} "#.to_owned(), false),
            (r#"{"type":"a"}{"type":"b"}"#.to_owned(), false),
            (r#"{"type":"a""#.to_owned(), false),
            (r#"{"n":1e999}"#.to_owned(), false),
            (r#"{"s":"\ud800"}"#.to_owned(), false),
            (r#"[{"type":"a"}]"#.to_owned(), false),
            ("\"text\"".to_owned(), false),
            (String::new(), false),
        ] {
            let mut parser = StreamFormat::Codex.parser();
            parser.line(&line);
            assert_eq!(parser.line_is_object(), object, "{line:?}");
            if object {
                // What a record holding it one level deeper reads as.
                let record = format!("{{\"json\":{line}}}");
                assert!(serde_json::from_str::<Value>(&record).is_ok(), "{line:?}");
            }
            // A line after it is judged on its own.
            parser.line("not json");
            assert!(!parser.line_is_object());
            let mut cmd = StreamFormat::Cmd.parser();
            cmd.line(&line);
            assert!(!cmd.line_is_object(), "cmd reads no line as JSON");
        }
    }

    /// Every kind of event, with the values the captures may lack (negative exit codes,
    /// durations, missing fields, every file change kind), encodes as `serde_json` writes it.
    #[test]
    fn every_event_encodes_as_serde_json() {
        use crate::agent::{Event, FailureClass, FileChangeKind, Usage};
        let odd = "tab\t \"q\" \\ \u{7} é";
        let mut events = vec![
            Event::Session { id: odd.into() },
            Event::Message { text: odd.into() },
            Event::Reasoning {
                text: String::new(),
            },
            Event::Final { text: odd.into() },
            Event::Unknown { kind: None },
            Event::Unknown {
                kind: Some(odd.into()),
            },
            Event::Usage(Usage {
                input: 1,
                cached: 2,
                output: 3,
                cost_usd: Some(0.125),
            }),
            Event::Error {
                message: odd.into(),
                fatal: true,
                class: Some(FailureClass::rate_limited()),
            },
        ];
        for (exit_code, duration_ms, output) in [
            (None, None, None),
            (Some(-9), Some(0), Some(odd.to_owned())),
            (Some(i32::MIN), Some(u64::MAX), Some(String::new())),
            (Some(i32::MAX), None, None),
        ] {
            events.push(Event::Command {
                cmd: odd.into(),
                exit_code,
                duration_ms,
                output,
            });
        }
        for kind in [
            FileChangeKind::Add,
            FileChangeKind::Delete,
            FileChangeKind::Update,
        ] {
            events.push(Event::FileChange {
                path: odd.into(),
                kind,
            });
        }
        for n in [0, 1, 2, events.len()] {
            let record = EventRecord {
                stream: "stdout",
                at_ms: 7,
                raw: odd,
                json: false,
                events: &events[..n],
            };
            let mut encoded = String::new();
            record.encode_into(&mut encoded).unwrap();
            assert_eq!(encoded, serde_json::to_string(&record).unwrap());
        }
    }
}
