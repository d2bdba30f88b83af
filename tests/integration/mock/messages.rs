//! Anthropic Messages (claude): `POST /v1/messages`, per `CONTRACTS.md` §10.2.

use serde_json::{Value, json};

use super::{Answer, Api, Ctx, Step, Turn};

/// Tool results already in the request: the step index.
pub(super) fn tool_results(body: &Value) -> usize {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .count()
}

/// The user prompt text, for routing: the string content or `text` blocks of the
/// `role:"user"` messages. `tool_result` blocks (and whatever they hold) and the `system`
/// prompt are left out.
pub(super) fn user_texts(body: &Value) -> Vec<&str> {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .flat_map(|m| match m.get("content") {
            Some(Value::String(text)) => vec![text.as_str()],
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// One content block to send: a tool call or text.
enum Block {
    Tool { name: String, input: Value },
    Text(String),
}

pub(super) fn answer(ctx: &Ctx) -> Answer {
    let body = ctx.body;
    let n = tool_results(body);
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    let tools = super::names(body.get("tools"), |t| t.get("name").and_then(Value::as_str));
    let turn = if tools.is_empty() {
        Turn::Side(None)
    } else {
        ctx.turn(n, streaming)
    };
    let block = match turn {
        Turn::Step(Step::Http {
            status,
            retry_after,
            message,
        }) => return Api::Messages.error(*status, *retry_after, message),
        Turn::Step(Step::Stall(d)) => return Answer::Stall(*d),
        Turn::Step(Step::StreamError(message)) => {
            let reply = Reply { ctx, n };
            return Answer::Sse(vec![
                super::sse_event("message_start", &reply.message_start()),
                super::sse_event(
                    "error",
                    &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                ),
            ]);
        }
        Turn::Step(Step::Shell(cmd)) => bash(cmd),
        Turn::Step(Step::WriteFile { path, content }) => {
            if tools.contains(&"Write") {
                Block::Tool {
                    name: "Write".into(),
                    input: json!({"file_path": path, "content": content}),
                }
            } else {
                bash(&super::write_command(path, content))
            }
        }
        Turn::Final => {
            let structured = tools
                .contains(&"StructuredOutput")
                .then(|| super::json_object_in(&ctx.script.final_text))
                .flatten();
            match structured {
                Some(input) => Block::Tool {
                    name: "StructuredOutput".into(),
                    input,
                },
                None => Block::Text(ctx.script.final_text.clone()),
            }
        }
        Turn::Side(_) => Block::Text(ctx.side_text(None)),
    };
    let reply = Reply { ctx, n };
    if streaming {
        reply.stream(&block)
    } else {
        Answer::ok(reply.whole(&block))
    }
}

fn bash(cmd: &str) -> Block {
    Block::Tool {
        name: "Bash".into(),
        input: json!({"command": cmd, "description": "Run scripted command"}),
    }
}

struct Reply<'a> {
    ctx: &'a Ctx<'a>,
    n: usize,
}

impl Reply<'_> {
    fn model(&self) -> &str {
        self.ctx
            .body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("claude-sonnet-4-5")
    }

    fn usage(&self, output: u64) -> Value {
        json!({"input_tokens": 100 + 10 * self.n, "output_tokens": output,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20})
    }

    fn message(&self, content: &Value, stop_reason: &Value, output: u64) -> Value {
        json!({"id": format!("msg_{}", self.ctx.id()), "type": "message", "role": "assistant",
               "model": self.model(), "content": content, "stop_reason": stop_reason,
               "stop_sequence": null, "usage": self.usage(output)})
    }

    fn message_start(&self) -> Value {
        json!({"type": "message_start", "message": self.message(&json!([]), &Value::Null, 1)})
    }

    fn tool_id(&self) -> String {
        format!("toolu_{}", self.ctx.id())
    }

    /// The non-streaming form, for `stream:false`.
    fn whole(&self, block: &Block) -> Value {
        let (content, stop) = match block {
            Block::Tool { name, input } => (
                json!([{"type": "tool_use", "id": self.tool_id(), "name": name, "input": input}]),
                "tool_use",
            ),
            Block::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
        };
        self.message(&content, &json!(stop), 7)
    }

    fn stream(&self, block: &Block) -> Answer {
        let mut events = vec![("message_start", self.message_start())];
        let stop = match block {
            Block::Tool { name, input } => {
                events.push(("content_block_start", json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": self.tool_id(), "name": name, "input": {}}})));
                // The input JSON in two pieces, as the real API streams it.
                let text = input.to_string();
                let mut cut = text.len() / 2;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                for piece in [&text[..cut], &text[cut..]] {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
                "tool_use"
            }
            Block::Text(text) => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ));
                for piece in super::split_text(text) {
                    events.push((
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
                "end_turn"
            }
        };
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push((
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 7}}),
        ));
        events.push(("message_stop", json!({"type": "message_stop"})));
        Answer::Sse(
            events
                .iter()
                .map(|(kind, data)| super::sse_event(kind, data))
                .collect(),
        )
    }
}
