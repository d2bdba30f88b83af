//! `OpenAI` Chat Completions (opencode, pi): `POST /v1/chat/completions`, per `CONTRACTS.md`
//! §10.3.

use serde_json::{Value, json};

use super::{Answer, Api, Ctx, Step, Turn};

const CREATED: u64 = 1_795_480_000;

/// Tool results already in the request: the step index.
pub(super) fn tool_results(body: &Value) -> usize {
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .count()
}

/// A tool call to send: the function name and its arguments.
struct Call {
    name: &'static str,
    args: Value,
}

pub(super) fn answer(ctx: &Ctx) -> Answer {
    let body = ctx.body;
    let n = tool_results(body);
    let streaming = body.get("stream").and_then(Value::as_bool) == Some(true);
    let tools: Vec<&Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .collect();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))
    };
    let turn = if tools.is_empty() {
        let format = body.get("response_format");
        Turn::Side(format.and_then(|f| f.pointer("/json_schema/schema")))
    } else {
        ctx.turn(n, streaming)
    };
    let reply = Reply { ctx, body };
    let call = match turn {
        Turn::Step(Step::Http {
            status,
            retry_after,
            message,
        }) => return Api::Chat.error(*status, *retry_after, message),
        Turn::Step(Step::Stall(d)) => return Answer::Stall(*d),
        Turn::Step(Step::StreamError(message)) => {
            return Answer::Sse(vec![
                super::sse_data(&reply.chunk(&json!({"role": "assistant", "content": ""}), None)),
                super::sse_data(
                    &json!({"error": {"message": message, "type": "server_error",
                                                  "code": "server_error"}}),
                ),
            ]);
        }
        Turn::Step(Step::Shell(cmd)) => bash(cmd),
        Turn::Step(Step::WriteFile { path, content }) => match tool("write") {
            Some(write) => {
                // opencode's `write` takes `filePath`, pi's takes `path`.
                let key = if write.pointer("/parameters/properties/filePath").is_some() {
                    "filePath"
                } else {
                    "path"
                };
                Call {
                    name: "write",
                    args: json!({key: path, "content": content}),
                }
            }
            None => bash(&super::write_command(path, content)),
        },
        Turn::Final => return reply.text(&ctx.script.final_text, streaming),
        Turn::Side(schema) => return reply.text(&ctx.side_text(schema), streaming),
    };
    reply.call(&call, streaming)
}

fn bash(cmd: &str) -> Call {
    Call {
        name: "bash",
        args: json!({"command": cmd, "description": "run scripted command"}),
    }
}

struct Reply<'a> {
    ctx: &'a Ctx<'a>,
    body: &'a Value,
}

impl Reply<'_> {
    fn model(&self) -> &str {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
    }

    fn id(&self) -> String {
        format!("chatcmpl-{}", self.ctx.id())
    }

    fn usage() -> Value {
        json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
               "prompt_tokens_details": {"cached_tokens": 20}})
    }

    fn chunk(&self, delta: &Value, finish: Option<&str>) -> Value {
        json!({"id": self.id(), "object": "chat.completion.chunk", "created": CREATED,
               "model": self.model(),
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn stream(&self, mut chunks: Vec<Value>) -> Answer {
        chunks.push(
            json!({"id": self.id(), "object": "chat.completion.chunk", "created": CREATED,
                           "model": self.model(), "choices": [], "usage": Self::usage()}),
        );
        let mut out: Vec<String> = chunks.iter().map(super::sse_data).collect();
        out.push("data: [DONE]\n\n".to_string());
        Answer::Sse(out)
    }

    fn whole(&self, message: &Value, finish: &str) -> Answer {
        Answer::ok(
            json!({"id": self.id(), "object": "chat.completion", "created": CREATED,
                          "model": self.model(),
                          "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                          "usage": Self::usage()}),
        )
    }

    fn call(&self, call: &Call, streaming: bool) -> Answer {
        let tool_call = json!({"id": format!("call_{}", self.ctx.id()), "type": "function",
                               "function": {"name": call.name, "arguments": call.args.to_string()}});
        if !streaming {
            return self.whole(
                &json!({"role": "assistant", "content": null, "tool_calls": [tool_call]}),
                "tool_calls",
            );
        }
        let mut indexed = tool_call;
        indexed["index"] = json!(0);
        self.stream(vec![
            self.chunk(&json!({"role": "assistant", "content": ""}), None),
            self.chunk(&json!({"tool_calls": [indexed]}), None),
            self.chunk(&json!({}), Some("tool_calls")),
        ])
    }

    fn text(&self, text: &str, streaming: bool) -> Answer {
        if !streaming {
            return self.whole(&json!({"role": "assistant", "content": text}), "stop");
        }
        let mut chunks = vec![self.chunk(&json!({"role": "assistant", "content": ""}), None)];
        for piece in super::split_text(text) {
            chunks.push(self.chunk(&json!({"content": piece}), None));
        }
        chunks.push(self.chunk(&json!({}), Some("stop")));
        self.stream(chunks)
    }
}
