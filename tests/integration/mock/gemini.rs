//! Gemini (gemini): `POST /v1beta/models/<model>:streamGenerateContent?alt=sse`, its
//! non-streamed `:generateContent` and `:countTokens`, per `CONTRACTS.md` §10.4.

use serde_json::{Value, json};

use super::{Answer, Api, Ctx, Step, Turn};

/// Tool results already in the request: the step index.
pub(super) fn tool_results(body: &Value) -> usize {
    body.get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter(|part| part.get("functionResponse").is_some())
        .count()
}

/// The user prompt text, for routing: the `text` parts of the `role:"user"` contents.
/// `functionResponse` parts and `systemInstruction` are left out.
pub(super) fn user_texts(body: &Value) -> Vec<&str> {
    body.get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

pub(super) fn answer(ctx: &Ctx, route: &str) -> Answer {
    let (model_path, method) = route.rsplit_once(':').unwrap_or((route, ""));
    let model = model_path.rsplit('/').next().unwrap_or("gemini-2.5-pro");
    let streaming = match method {
        "streamGenerateContent" => true,
        "generateContent" => false,
        "countTokens" => return Answer::ok(json!({"totalTokens": 100})),
        _ => {
            return Api::Gemini.error(404, None, &format!("mock: unknown method {method:?}"));
        }
    };
    let body = ctx.body;
    let n = tool_results(body);
    let declared: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.get("name").and_then(Value::as_str))
        .collect();
    let turn = if declared.is_empty() {
        let config = body.get("generationConfig");
        let schema = config.and_then(|c| {
            c.get("responseJsonSchema")
                .or_else(|| c.get("responseSchema"))
        });
        Turn::Side(schema)
    } else {
        ctx.turn(n, streaming)
    };
    let reply = Reply { ctx, n, model };
    let part = match turn {
        Turn::Step(Step::Http {
            status,
            retry_after,
            message,
        }) => return Api::Gemini.error(*status, *retry_after, message),
        Turn::Step(Step::Stall(d)) => return Answer::Stall(*d),
        Turn::Step(Step::StreamError(message)) => {
            return Answer::Sse(vec![super::sse_data(
                &json!({"error": {"code": 500, "message": message, "status": "INTERNAL"}}),
            )]);
        }
        Turn::Step(Step::Shell(cmd)) => shell(cmd),
        Turn::Step(Step::WriteFile { path, content }) => {
            if declared.contains(&"write_file") {
                json!({"functionCall": {"name": "write_file",
                                        "args": {"file_path": path, "content": content}}})
            } else {
                shell(&super::write_command(path, content))
            }
        }
        Turn::Final => return reply.text(&ctx.script.final_text, streaming),
        Turn::Side(schema) => return reply.text(&ctx.side_text(schema), streaming),
    };
    let chunk = reply.chunk(&part, true);
    if streaming {
        Answer::Sse(vec![super::sse_data(&chunk)])
    } else {
        Answer::ok(chunk)
    }
}

fn shell(cmd: &str) -> Value {
    json!({"functionCall": {"name": "run_shell_command",
                            "args": {"command": cmd, "description": "Run scripted command"}}})
}

struct Reply<'a> {
    ctx: &'a Ctx<'a>,
    n: usize,
    model: &'a str,
}

impl Reply<'_> {
    /// One `GenerateContentResponse`; the last one carries `finishReason` and usage.
    fn chunk(&self, part: &Value, last: bool) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": [part]}, "index": 0});
        let mut chunk = json!({"candidates": [candidate.clone()]});
        if last {
            candidate["finishReason"] = json!("STOP");
            let prompt = 100 + 10 * self.n;
            chunk = json!({
                "candidates": [candidate],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": 7,
                                  "totalTokenCount": prompt + 7, "cachedContentTokenCount": 20,
                                  "thoughtsTokenCount": 3},
            });
        }
        chunk["modelVersion"] = json!(self.model);
        chunk["responseId"] = json!(format!("resp_{}", self.ctx.id()));
        chunk
    }

    fn text(&self, text: &str, streaming: bool) -> Answer {
        if !streaming {
            return Answer::ok(self.chunk(&json!({"text": text}), true));
        }
        let pieces = super::split_text(text);
        let last = pieces.len() - 1;
        Answer::Sse(
            pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| super::sse_data(&self.chunk(&json!({"text": piece}), i == last)))
                .collect(),
        )
    }
}
