//! `OpenAI` Responses (codex): `POST /v1/responses`, per `CONTRACTS.md` §10.1.

use serde_json::{Value, json};

use super::{Answer, Api, Ctx, Step, Turn};

const CREATED_AT: u64 = 1_795_480_000;

/// Tool results already in the request: the step index.
pub(super) fn tool_results(body: &Value) -> usize {
    body.get("input")
        .and_then(Value::as_array)
        .map_or(0, |items| {
            items
                .iter()
                .filter(|i| {
                    matches!(
                        i.get("type").and_then(Value::as_str),
                        Some(
                            "function_call_output"
                                | "custom_tool_call_output"
                                | "local_shell_call_output"
                        )
                    )
                })
                .count()
        })
}

/// The user prompt text, for routing: the `input_text` parts (or string content) of the
/// `role:"user"` messages in `input`, or `input` itself when it is a string. Developer and
/// system messages and tool outputs are left out.
pub(super) fn user_texts(body: &Value) -> Vec<&str> {
    match body.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .filter(|i| {
                i.get("role").and_then(Value::as_str) == Some("user")
                    && i.get("type").and_then(Value::as_str).unwrap_or("message") == "message"
            })
            .flat_map(|i| match i.get("content") {
                Some(Value::String(text)) => vec![text.as_str()],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("input_text"))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect(),
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn answer(ctx: &Ctx) -> Answer {
    let body = ctx.body;
    let n = tool_results(body);
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    let tools: Vec<(&str, &str)> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let kind = t.get("type").and_then(Value::as_str).unwrap_or_default();
                    let name = t.get("name").and_then(Value::as_str).unwrap_or(kind);
                    (name, kind)
                })
                .collect()
        })
        .unwrap_or_default();
    let turn = if tools.is_empty() {
        Turn::Side(body.pointer("/text/format/schema"))
    } else {
        ctx.turn(n, streaming)
    };
    let r = Reply {
        ctx,
        n,
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("gpt-5.5")
            .to_string(),
    };
    let item = match turn {
        Turn::Step(Step::Http {
            status,
            retry_after,
            message,
        }) => return Api::Responses.error(*status, *retry_after, message),
        Turn::Step(Step::Stall(d)) => return Answer::Stall(*d),
        Turn::Step(Step::StreamError(message)) => return r.failed(message),
        Turn::Step(Step::Shell(cmd)) => Some(shell_item(&tools, cmd, &ctx.id())),
        Turn::Step(Step::WriteFile { path, content }) => {
            Some(write_item(&tools, path, content, &ctx.id()))
        }
        Turn::Final => None,
        Turn::Side(schema) => return r.text(&ctx.side_text(schema), streaming),
    };
    match item {
        Some(item) if streaming => r.tool_stream(&item),
        Some(item) => Answer::ok(r.response("completed", &[r.reasoning(), item])),
        None => r.text(&ctx.script.final_text, streaming),
    }
}

fn has(tools: &[(&str, &str)], name: &str) -> Option<&'static str> {
    tools.iter().find(|(n, _)| *n == name).map(|(_, kind)| {
        if *kind == "custom" {
            "custom"
        } else {
            "function"
        }
    })
}

/// The output item that asks codex to run `cmd`, with whichever shell tool it offers.
fn shell_item(tools: &[(&str, &str)], cmd: &str, id: &str) -> Value {
    let function = |name: &str, args: Value| {
        json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"),
               "name": name, "arguments": args.to_string(), "status": "completed"})
    };
    if has(tools, "exec_command").is_some() {
        function("exec_command", json!({"cmd": cmd}))
    } else if has(tools, "shell_command").is_some() {
        function("shell_command", json!({"command": cmd}))
    } else if has(tools, "shell").is_some() {
        function("shell", json!({"command": ["bash", "-lc", cmd]}))
    } else if has(tools, "local_shell").is_some() {
        json!({"type": "local_shell_call", "id": format!("lsh_{id}"), "call_id": format!("call_{id}"),
               "status": "completed", "action": {"type": "exec", "command": ["bash", "-lc", cmd]}})
    } else {
        function("exec_command", json!({"cmd": cmd}))
    }
}

/// The output item that asks codex to create a file: `apply_patch` if offered, else a shell
/// command.
fn write_item(tools: &[(&str, &str)], path: &str, content: &str, id: &str) -> Value {
    let mut hunk = format!("*** Begin Patch\n*** Add File: {path}\n");
    // An Add File hunk needs at least one line.
    for line in content.lines().chain(content.is_empty().then_some("")) {
        hunk.push('+');
        hunk.push_str(line);
        hunk.push('\n');
    }
    hunk.push_str("*** End Patch\n");
    match has(tools, "apply_patch") {
        Some("custom") => json!({
            "type": "custom_tool_call", "id": format!("ctc_{id}"), "call_id": format!("call_{id}"),
            "name": "apply_patch", "input": hunk, "status": "completed"
        }),
        Some(_) => json!({
            "type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"),
            "name": "apply_patch", "arguments": json!({"input": hunk}).to_string(), "status": "completed"
        }),
        None => shell_item(tools, &super::write_command(path, content), id),
    }
}

struct Reply<'a> {
    ctx: &'a Ctx<'a>,
    n: usize,
    model: String,
}

impl Reply<'_> {
    fn usage(&self) -> Value {
        let input = 100 + 10 * self.n;
        json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 20},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
               "total_tokens": input + 7})
    }

    fn response(&self, status: &str, output: &[Value]) -> Value {
        let mut r = json!({"id": format!("resp_{}", self.ctx.id()), "object": "response",
                           "created_at": CREATED_AT, "status": status, "model": self.model,
                           "output": output});
        if status == "completed" {
            r["usage"] = self.usage();
        }
        r
    }

    fn reasoning(&self) -> Value {
        json!({"type": "reasoning", "id": format!("rs_{}", self.ctx.id()), "summary": [
            {"type": "summary_text", "text": format!("**Planning** mock reasoning step {}", self.n)}
        ]})
    }

    fn message(&self, text: &str, status: &str) -> Value {
        let content = if status == "completed" {
            json!([{"type": "output_text", "text": text, "annotations": []}])
        } else {
            json!([])
        };
        json!({"type": "message", "id": format!("msg_{}", self.ctx.id()), "role": "assistant",
               "status": status, "content": content})
    }

    /// Numbers the events in order.
    fn events(events: Vec<(&str, Value)>) -> Answer {
        Answer::Sse(
            events
                .into_iter()
                .enumerate()
                .map(|(seq, (kind, data))| {
                    // `type` and `sequence_number` first, as the real API sends them.
                    let mut ordered = serde_json::Map::new();
                    ordered.insert("type".into(), json!(kind));
                    ordered.insert("sequence_number".into(), json!(seq));
                    if let Value::Object(fields) = data {
                        ordered.extend(fields);
                    }
                    super::sse_event(kind, &Value::Object(ordered))
                })
                .collect(),
        )
    }

    fn opening(&self) -> Vec<(&'static str, Value)> {
        let reasoning = self.reasoning();
        let mut empty = reasoning.clone();
        empty["summary"] = json!([]);
        vec![
            (
                "response.created",
                json!({"response": self.response("in_progress", &[])}),
            ),
            (
                "response.in_progress",
                json!({"response": self.response("in_progress", &[])}),
            ),
            (
                "response.output_item.added",
                json!({"output_index": 0, "item": empty}),
            ),
            (
                "response.output_item.done",
                json!({"output_index": 0, "item": reasoning}),
            ),
        ]
    }

    fn tool_stream(&self, item: &Value) -> Answer {
        let mut events = self.opening();
        events.push((
            "response.output_item.added",
            json!({"output_index": 1, "item": item}),
        ));
        events.push((
            "response.output_item.done",
            json!({"output_index": 1, "item": item}),
        ));
        events.push((
            "response.completed",
            json!({"response": self.response("completed", &[self.reasoning(), item.clone()])}),
        ));
        Self::events(events)
    }

    fn text(&self, text: &str, streaming: bool) -> Answer {
        let done = self.message(text, "completed");
        if !streaming {
            return Answer::ok(self.response("completed", &[self.reasoning(), done]));
        }
        let item_id = format!("msg_{}", self.ctx.id());
        let at = json!({"item_id": item_id, "output_index": 1, "content_index": 0});
        let with = |extra: Value| {
            let mut v = at.clone();
            for (k, x) in extra.as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
            v
        };
        let mut events = self.opening();
        events.push((
            "response.output_item.added",
            json!({"output_index": 1, "item": self.message("", "in_progress")}),
        ));
        events.push((
            "response.content_part.added",
            with(json!({"part": {"type": "output_text", "text": "", "annotations": []}})),
        ));
        for piece in super::split_text(text) {
            events.push(("response.output_text.delta", with(json!({"delta": piece}))));
        }
        events.push(("response.output_text.done", with(json!({"text": text}))));
        events.push((
            "response.output_item.done",
            json!({"output_index": 1, "item": done}),
        ));
        events.push((
            "response.completed",
            json!({"response": self.response("completed", &[self.reasoning(), done.clone()])}),
        ));
        Self::events(events)
    }

    fn failed(&self, message: &str) -> Answer {
        let mut response = self.response("failed", &[]);
        response["error"] = json!({"code": "server_error", "message": message});
        Self::events(vec![
            (
                "response.created",
                json!({"response": self.response("in_progress", &[])}),
            ),
            ("response.failed", json!({"response": response})),
        ])
    }
}
