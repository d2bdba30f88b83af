//! The mock model server itself, driven by a raw `TcpStream` client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mock::{HELLO_COMMAND, HELLO_FINAL_TEXT, Mock, Route, Script, Step};

/// A response as the raw client saw it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// The SSE events: (event name, parsed data). `[DONE]` becomes a string.
    fn events(&self) -> Vec<(Option<String>, Value)> {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.header("content-type"), Some("text/event-stream"));
        self.body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|event| {
                let mut name = None;
                let mut data = None;
                for line in event.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_string());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(
                            serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.into())),
                        );
                    } else {
                        panic!("unexpected SSE line {line:?} in {event:?}");
                    }
                }
                (name, data.expect("an SSE event without data"))
            })
            .collect()
    }

    fn data(&self) -> Vec<Value> {
        self.events().into_iter().map(|(_, d)| d).collect()
    }
}

fn addr(mock: &Mock) -> SocketAddr {
    mock.base_url()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Sends raw bytes, reads until the server closes, and parses the response.
fn exchange(mock: &Mock, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr(mock)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    parse_reply(&bytes)
}

fn parse_reply(bytes: &[u8]) -> Reply {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: String::new(),
    };
    assert_eq!(reply.header("connection"), Some("close"));
    reply.body = if reply.header("transfer-encoding") == Some("chunked") {
        dechunk(rest)
    } else {
        let len: usize = reply.header("content-length").unwrap().parse().unwrap();
        assert_eq!(rest.len(), len);
        rest.to_string()
    };
    reply
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(tail, "\r\n", "the stream ends with the terminating chunk");
            return out;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].strip_prefix("\r\n").unwrap();
    }
}

fn request(mock: &Mock, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(Value::to_string).unwrap_or_default();
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        addr(mock),
        body.len()
    );
    exchange(mock, raw.as_bytes())
}

fn post(mock: &Mock, path: &str, body: &Value) -> Reply {
    request(mock, "POST", path, Some(body))
}

// Request bodies shaped like the ones the CLIs send (captures/requests-*.json), with `n` tool
// results in the conversation.

fn codex_body(n: usize) -> Value {
    let mut input = vec![json!({"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "go"}]})];
    for i in 0..n {
        input.push(
            json!({"type": "function_call", "call_id": format!("c{i}"), "name": "exec_command",
                          "arguments": "{}"}),
        );
        input.push(
            json!({"type": "function_call_output", "call_id": format!("c{i}"), "output": "ok"}),
        );
    }
    json!({"model": "gpt-5.5", "stream": true, "input": input, "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
    ]})
}

fn claude_body(n: usize) -> Value {
    let mut messages = vec![json!({"role": "user", "content": [{"type": "text", "text": "go"}]})];
    for i in 0..n {
        messages.push(json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": format!("t{i}"), "name": "Bash", "input": {}}]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("t{i}"), "content": "ok", "is_error": false}]}));
    }
    json!({"model": "claude-sonnet-4-5", "stream": true, "messages": messages, "tools": [
        {"name": "Bash", "input_schema": {"type": "object"}},
        {"name": "Write", "input_schema": {"type": "object"}},
    ]})
}

fn gemini_body(n: usize) -> Value {
    let mut contents = vec![json!({"role": "user", "parts": [{"text": "go"}]})];
    for _ in 0..n {
        contents.push(json!({"role": "model", "parts": [
            {"functionCall": {"name": "run_shell_command", "args": {}}}]}));
        contents.push(json!({"role": "user", "parts": [
            {"functionResponse": {"name": "run_shell_command", "response": {"output": "ok"}}}]}));
    }
    json!({"contents": contents, "tools": [{"functionDeclarations": [
        {"name": "run_shell_command"}, {"name": "write_file"}]}]})
}

/// `write_key` is `filePath` (opencode) or `path` (pi).
fn chat_body(n: usize, write_key: &str) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "sys"}),
        json!({"role": "user", "content": "go"}),
    ];
    for i in 0..n {
        messages.push(json!({"role": "assistant", "content": "", "tool_calls": [
            {"id": format!("c{i}"), "type": "function", "function": {"name": "bash", "arguments": "{}"}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("c{i}"), "content": "ok"}));
    }
    json!({"model": "mock-model", "stream": true, "stream_options": {"include_usage": true},
           "messages": messages, "tools": [
        {"type": "function", "function": {"name": "bash", "parameters": {"type": "object",
            "properties": {"command": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "write", "parameters": {"type": "object",
            "properties": {write_key: {"type": "string"}, "content": {"type": "string"}}}}},
    ]})
}

const RESPONSES: &str = "/v1/responses";
const MESSAGES: &str = "/v1/messages?beta=true";
const GEMINI: &str = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";
const CHAT: &str = "/v1/chat/completions";

/// Two shell steps, then the hello text.
fn two_steps() -> Script {
    Script::default_hello().then(Step::WriteFile {
        path: "notes.md".into(),
        content: "# Notes\nby mock\n".into(),
    })
}

// ---- Responses ---------------------------------------------------------------------------

fn responses_types(reply: &Reply) -> Vec<String> {
    reply
        .events()
        .into_iter()
        .enumerate()
        .map(|(i, (name, data))| {
            let name = name.unwrap();
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], i);
            name
        })
        .collect()
}

#[test]
fn responses_asks_for_the_shell_command_then_sends_the_final_text() {
    let mock = Mock::start(Script::default_hello());
    let step0 = post(&mock, RESPONSES, &codex_body(0));
    assert_eq!(
        responses_types(&step0),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let data = step0.data();
    let call = &data[5]["item"];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["name"], "exec_command");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"cmd": HELLO_COMMAND}));
    let usage = &data[6]["response"]["usage"];
    assert_eq!(usage["input_tokens"], 100);
    assert_eq!(usage["input_tokens_details"]["cached_tokens"], 20);
    assert_eq!(usage["output_tokens"], 7);
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 3);

    let last = post(&mock, RESPONSES, &codex_body(1));
    let types = responses_types(&last);
    let deltas = types
        .iter()
        .filter(|t| *t == "response.output_text.delta")
        .count();
    assert!(deltas >= 1);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(types, expected);
    let data = last.data();
    let joined: String = data
        .iter()
        .filter(|d| d["type"] == "response.output_text.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(joined, HELLO_FINAL_TEXT);
    let n = data.len();
    assert_eq!(data[n - 3]["text"], HELLO_FINAL_TEXT);
    assert_eq!(data[n - 2]["item"]["content"][0]["text"], HELLO_FINAL_TEXT);
    assert_eq!(data[n - 2]["item"]["status"], "completed");
    assert_eq!(data[n - 1]["response"]["usage"]["input_tokens"], 110);
}

#[test]
fn responses_writes_files_with_apply_patch_and_fails_streams_with_response_failed() {
    let mock = Mock::start(two_steps().then(Step::StreamError("boom".into())));
    let data = post(&mock, RESPONSES, &codex_body(1)).data();
    let item = &data[5]["item"];
    assert_eq!(item["type"], "custom_tool_call");
    assert_eq!(item["name"], "apply_patch");
    assert_eq!(
        item["input"],
        "*** Begin Patch\n*** Add File: notes.md\n+# Notes\n+by mock\n*** End Patch\n"
    );

    let failed = post(&mock, RESPONSES, &codex_body(2));
    assert_eq!(
        responses_types(&failed),
        ["response.created", "response.failed"]
    );
    assert_eq!(failed.data()[1]["response"]["error"]["message"], "boom");
}

// ---- Messages ----------------------------------------------------------------------------

fn messages_types(reply: &Reply) -> Vec<String> {
    reply
        .events()
        .into_iter()
        .map(|(name, data)| {
            let name = name.unwrap();
            assert_eq!(data["type"], name.as_str());
            name
        })
        .collect()
}

#[test]
fn messages_asks_for_bash_then_sends_the_final_text() {
    let mock = Mock::start(Script::default_hello());
    let step0 = post(&mock, MESSAGES, &claude_body(0));
    assert_eq!(
        messages_types(&step0),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = step0.data();
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 100);
    assert_eq!(data[0]["message"]["usage"]["cache_read_input_tokens"], 20);
    assert_eq!(data[0]["message"]["usage"]["output_tokens"], 1);
    assert_eq!(data[1]["content_block"]["name"], "Bash");
    let input: String = data[2..4]
        .iter()
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(input["command"], HELLO_COMMAND);
    assert_eq!(data[5]["delta"]["stop_reason"], "tool_use");
    assert_eq!(data[5]["usage"]["output_tokens"], 7);

    let last = post(&mock, MESSAGES, &claude_body(1)).data();
    assert_eq!(last[0]["message"]["usage"]["input_tokens"], 110);
    assert_eq!(last[1]["content_block"]["type"], "text");
    let text: String = last
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, HELLO_FINAL_TEXT);
    assert_eq!(last[last.len() - 2]["delta"]["stop_reason"], "end_turn");
}

#[test]
fn messages_stream_error_then_a_non_streaming_retry_gets_the_guarded_step() {
    let script = Script::new("recovered")
        .then(Step::StreamError("overloaded".into()))
        .then(Step::Shell("echo once".into()))
        .then(Step::Stall(Duration::from_secs(30)));
    let mock = Mock::start(script);
    let broken = post(&mock, MESSAGES, &claude_body(0));
    assert_eq!(messages_types(&broken), ["message_start", "error"]);
    assert_eq!(broken.data()[1]["error"]["message"], "overloaded");

    // claude's fallback: the same conversation with `stream:false` gets the shell step, once.
    let mut body = claude_body(0);
    body["stream"] = json!(false);
    let retry = post(&mock, MESSAGES, &body);
    assert_eq!(retry.status, 200);
    let message = retry.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["name"], "Bash");
    assert_eq!(message["content"][0]["input"]["command"], "echo once");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["output_tokens"], 7);

    // After the tool result the final text comes; a non-streaming request skips the stall too.
    let mut body = claude_body(1);
    body["stream"] = json!(false);
    let message = post(&mock, MESSAGES, &body).json();
    assert_eq!(message["content"][0]["text"], "recovered");
    assert_eq!(message["stop_reason"], "end_turn");
}

#[test]
fn messages_writes_with_write_and_answers_structured_output() {
    let mock = Mock::start(two_steps());
    let data = post(&mock, MESSAGES, &claude_body(1)).data();
    assert_eq!(data[1]["content_block"]["name"], "Write");

    let mut body = claude_body(2);
    body["stream"] = json!(false);
    body["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "StructuredOutput", "input_schema": {"type": "object"}}));
    let message = post(&mock, MESSAGES, &body).json();
    assert_eq!(message["content"][0]["name"], "StructuredOutput");
    assert_eq!(message["content"][0]["input"]["status"], "done");
}

// ---- Gemini ------------------------------------------------------------------------------

#[test]
fn gemini_asks_for_run_shell_command_then_sends_the_final_text() {
    let mock = Mock::start(Script::default_hello());
    let step0 = post(&mock, GEMINI, &gemini_body(0)).events();
    assert_eq!(step0.len(), 1);
    assert_eq!(step0[0].0, None);
    let chunk = &step0[0].1;
    let call = &chunk["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "run_shell_command");
    assert_eq!(call["args"]["command"], HELLO_COMMAND);
    assert_eq!(chunk["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        chunk["usageMetadata"],
        json!({"promptTokenCount": 100, "candidatesTokenCount": 7, "totalTokenCount": 107,
               "cachedContentTokenCount": 20, "thoughtsTokenCount": 3})
    );

    let last = post(&mock, GEMINI, &gemini_body(1)).data();
    assert!(last.len() >= 2, "final text is split over chunks");
    let text: String = last
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, HELLO_FINAL_TEXT);
    let tail = last.last().unwrap();
    assert_eq!(tail["candidates"][0]["finishReason"], "STOP");
    assert_eq!(tail["usageMetadata"]["promptTokenCount"], 110);
    assert!(last[0].get("usageMetadata").is_none());
}

#[test]
fn gemini_writes_with_write_file_and_fails_streams_with_an_error_chunk() {
    let mock = Mock::start(two_steps().then(Step::StreamError("kaput".into())));
    let data = post(&mock, GEMINI, &gemini_body(1)).data();
    let call = &data[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "write_file");
    assert_eq!(
        call["args"],
        json!({"file_path": "notes.md", "content": "# Notes\nby mock\n"})
    );
    let broken = post(&mock, GEMINI, &gemini_body(2)).data();
    assert_eq!(
        broken,
        [json!({"error": {"code": 500, "message": "kaput", "status": "INTERNAL"}})]
    );
}

// ---- Chat Completions --------------------------------------------------------------------

#[test]
fn chat_asks_for_bash_then_sends_the_final_text() {
    let mock = Mock::start(Script::default_hello());
    let step0 = post(&mock, CHAT, &chat_body(0, "filePath")).events();
    assert!(step0.iter().all(|(name, _)| name.is_none()));
    let data: Vec<Value> = step0.into_iter().map(|(_, d)| d).collect();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let call = &data[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "bash");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["command"], HELLO_COMMAND);
    assert_eq!(data[2]["choices"][0]["finish_reason"], "tool_calls");
    let usage_chunk = &data[data.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
               "prompt_tokens_details": {"cached_tokens": 20}})
    );

    let last = post(&mock, CHAT, &chat_body(1, "filePath")).data();
    let text: String = last
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, HELLO_FINAL_TEXT);
    assert_eq!(last[last.len() - 3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(last[last.len() - 2]["usage"]["prompt_tokens"], 100);
    assert_eq!(last[last.len() - 1], "[DONE]");
}

#[test]
fn chat_write_uses_each_clis_argument_names_and_stream_errors_end_the_stream() {
    let mock = Mock::start(two_steps().then(Step::StreamError("gone".into())));
    for key in ["filePath", "path"] {
        let data = post(&mock, CHAT, &chat_body(1, key)).data();
        let function = &data[1]["choices"][0]["delta"]["tool_calls"][0]["function"];
        assert_eq!(function["name"], "write");
        let args: Value = serde_json::from_str(function["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args[key], "notes.md");
        assert_eq!(args["content"], "# Notes\nby mock\n");
    }
    let broken = post(&mock, CHAT, &chat_body(2, "path")).data();
    assert_eq!(broken.len(), 2);
    assert_eq!(broken[1]["error"]["message"], "gone");
}

// ---- Step selection, side requests, faults -------------------------------------------------

#[test]
fn the_step_is_the_number_of_tool_results_in_the_request() {
    let script = Script::new("fin")
        .then(Step::Shell("echo zero".into()))
        .then(Step::Shell("echo one".into()))
        .then(Step::Shell("echo two".into()));
    let mock = Mock::start(script);
    // Out of order and repeated: the mock keeps no conversation state.
    for n in [2, 0, 1, 1, 0] {
        let data = post(&mock, CHAT, &chat_body(n, "path")).data();
        let args = data[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let expected = ["echo zero", "echo one", "echo two"][n];
        assert!(args.contains(expected), "{n}: {args}");
    }
    let fin = post(&mock, CHAT, &chat_body(3, "path")).data();
    assert_eq!(fin[1]["choices"][0]["delta"]["content"], "fin");

    // A fault answers the requests of the tool step it precedes; later tool steps keep their
    // numbers.
    let script = Script::new("fin")
        .then(Step::Shell("echo zero".into()))
        .then(Step::Http {
            status: 503,
            retry_after: None,
            message: "busy".into(),
        })
        .then(Step::Shell("echo one".into()));
    let mock = Mock::start(script);
    let zero = post(&mock, CHAT, &chat_body(0, "path")).data();
    let args = &zero[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"];
    assert!(args.as_str().unwrap().contains("echo zero"));
    assert_eq!(post(&mock, CHAT, &chat_body(1, "path")).status, 503);
    let fin = post(&mock, CHAT, &chat_body(2, "path")).data();
    assert_eq!(fin[1]["choices"][0]["delta"]["content"], "fin");
}

#[test]
fn side_requests_without_tools_get_text_or_schema_json_and_consume_no_step() {
    let mock = Mock::start(Script::default_hello());
    // opencode's title request.
    let title = json!({"model": "mock-model", "stream": true, "messages": [
        {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
        {"role": "user", "content": "go"}]});
    let data = post(&mock, CHAT, &title).data();
    assert_eq!(data[1]["choices"][0]["delta"]["content"], "Mock title");
    // gemini's router: non-streamed, with a response schema.
    let router = json!({"contents": [{"role": "user", "parts": [{"text": "go"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
            "type": "object", "properties": {
                "complexity_reasoning": {"type": "string"},
                "complexity_score": {"type": "integer", "minimum": 1, "maximum": 100}}}}});
    let reply = post(
        &mock,
        "/v1beta/models/gemini-3.5-flash-lite:generateContent",
        &router,
    );
    assert_eq!(reply.status, 200);
    let text = reply.json()["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let filled: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        filled,
        json!({"complexity_reasoning": "mock", "complexity_score": 1})
    );
    // The next real request still gets step 0.
    let data = post(&mock, CHAT, &chat_body(0, "path")).data();
    assert_eq!(
        data[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "bash"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[test]
fn the_request_cap_answers_500_so_a_looping_client_ends() {
    let mut script = Script::default_hello();
    script.max_requests = 2;
    let mock = Mock::start(script);
    assert_eq!(post(&mock, CHAT, &chat_body(0, "path")).status, 200);
    assert_eq!(request(&mock, "HEAD", "/", None).status, 200);
    let capped = post(&mock, MESSAGES, &claude_body(0));
    assert_eq!(capped.status, 500);
    assert_eq!(
        capped.json(),
        json!({"type": "error", "error": {"type": "api_error", "message": "mock request cap reached"}})
    );
    assert_eq!(mock.requests().len(), 3, "capped requests are logged too");
}

#[test]
fn http_faults_carry_retry_after_and_each_apis_error_body() {
    let script = Script::new("fin").then(Step::Http {
        status: 429,
        retry_after: Some(1),
        message: "slow down".into(),
    });
    let mock = Mock::start(script);
    let expected = [
        (
            RESPONSES,
            codex_body(0),
            json!({"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}}),
        ),
        (
            MESSAGES,
            claude_body(0),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
        ),
        (
            GEMINI,
            gemini_body(0),
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]}}),
        ),
        (
            CHAT,
            chat_body(0, "path"),
            json!({"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": "rate_limit_exceeded"}}),
        ),
    ];
    for (path, body, error) in expected {
        let reply = post(&mock, path, &body);
        assert_eq!(reply.status, 429, "{path}");
        assert_eq!(reply.header("retry-after"), Some("1"), "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), error, "{path}");
    }

    let five = Mock::start(Script::new("fin").then(Step::Http {
        status: 500,
        retry_after: None,
        message: "down".into(),
    }));
    let reply = post(&five, MESSAGES, &claude_body(0));
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!(reply.json()["error"]["type"], "api_error");
    // Past the fault, the script carries on.
    let data = post(&five, MESSAGES, &claude_body(1)).data();
    assert_eq!(data[2]["delta"]["text"], "fin");
}

#[test]
fn a_stall_sends_headers_then_closes_after_the_delay() {
    let mock = Mock::start(Script::new("fin").then(Step::Stall(Duration::from_millis(300))));
    let body = codex_body(0).to_string();
    let raw = format!(
        "POST {RESPONSES} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let t0 = Instant::now();
    let mut stream = TcpStream::connect(addr(&mock)).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "headers only: {text:?}");
    assert!(text.contains("Transfer-Encoding: chunked"));
}

#[test]
fn chunk_delay_slows_the_stream() {
    let mut script = Script::new("fin");
    script.chunk_delay = Duration::from_millis(40);
    let mock = Mock::start(script);
    let t0 = Instant::now();
    let data = post(&mock, MESSAGES, &claude_body(0)).data();
    // Six events for a one-delta text turn: five delays between them.
    assert_eq!(data.len(), 6);
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

// ---- Prompt routing ----------------------------------------------------------------------

/// A script whose every answer names it: step 0 runs `echo <name>`, then `<name> done`.
fn named(name: &str) -> Script {
    Script::new(format!("{name} done")).then(Step::Shell(format!("echo {name}")))
}

/// Routes `TASK-A` and `TASK-B` to scripts `route-a` and `route-b`, the rest to `fallback`.
fn routed() -> Mock {
    Mock::start_routed(
        vec![
            Route::new("TASK-A", named("route-a")),
            Route::new("TASK-B", named("route-b")),
        ],
        named("fallback"),
    )
}

/// Which script answered, and whether with its shell step (step 0) or its final text.
fn answered_by(reply: &Reply) -> (&'static str, &'static str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let found: Vec<&str> = ["route-a", "route-b", "fallback"]
        .into_iter()
        .filter(|name| reply.body.contains(name))
        .collect();
    assert_eq!(found.len(), 1, "{}", reply.body);
    let name = found[0];
    if reply.body.contains(&format!("echo {name}")) {
        (name, "step 0")
    } else {
        assert!(
            reply.body.contains(&format!("{name} done")),
            "{}",
            reply.body
        );
        (name, "final")
    }
}

#[test]
fn responses_requests_are_routed_by_their_user_text_only() {
    let mock = routed();
    let with_user = |n: usize, text: &str| {
        let mut body = codex_body(n);
        body["input"][0]["content"][0]["text"] = json!(text);
        body
    };
    let ask = |body: &Value| answered_by(&post(&mock, RESPONSES, body));
    assert_eq!(ask(&with_user(0, "Do TASK-A.")), ("route-a", "step 0"));
    assert_eq!(ask(&with_user(0, "Do TASK-B.")), ("route-b", "step 0"));
    // The rest of the conversation stays on its route: the user prompt is re-sent each turn.
    assert_eq!(ask(&with_user(1, "Do TASK-A.")), ("route-a", "final"));
    assert_eq!(ask(&with_user(0, "Do nothing.")), ("fallback", "step 0"));
    // codex's own user-role context comes first; the prompt is a later user message.
    let mut body = with_user(0, "<environment_context>TASK-X</environment_context>");
    let prompt = json!({"type": "message", "role": "user",
                        "content": [{"type": "input_text", "text": "Do TASK-B."}]});
    body["input"].as_array_mut().unwrap().push(prompt);
    assert_eq!(ask(&body), ("route-b", "step 0"));
    // A plain string `input` is user text too.
    let mut body = codex_body(0);
    body["input"] = json!("Do TASK-A.");
    assert_eq!(ask(&body), ("route-a", "step 0"));

    // Not user text: developer and system messages, instructions, tool calls and outputs.
    let mut body = with_user(1, "go");
    let input = body["input"].as_array_mut().unwrap();
    input[2]["output"] = json!("TASK-A");
    input[1]["arguments"] = json!(r#"{"cmd": "echo TASK-A"}"#);
    for role in ["developer", "system"] {
        input.insert(
            0,
            json!({"type": "message", "role": role,
                   "content": [{"type": "input_text", "text": "TASK-A"}]}),
        );
    }
    input.push(json!({"type": "message", "role": "assistant",
                      "content": [{"type": "output_text", "text": "TASK-A"}]}));
    body["instructions"] = json!("You work on TASK-A.");
    assert_eq!(ask(&body), ("fallback", "final"));

    let routes: Vec<Option<usize>> = mock.requests().iter().map(|r| r.route).collect();
    assert_eq!(
        routes,
        [Some(0), Some(1), Some(0), None, Some(1), Some(0), None]
    );
}

#[test]
fn messages_requests_are_routed_by_their_user_text_only() {
    let mock = routed();
    let ask = |body: &Value| answered_by(&post(&mock, MESSAGES, body));
    let mut body = claude_body(0);
    body["messages"][0]["content"][0]["text"] = json!("Do TASK-A.");
    assert_eq!(ask(&body), ("route-a", "step 0"));
    // String content, after a reminder block in another user message.
    let mut body = claude_body(1);
    body["messages"][0]["content"][0]["text"] = json!("<system-reminder>x</system-reminder>");
    body["messages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"role": "user", "content": "Do TASK-B."}));
    assert_eq!(ask(&body), ("route-b", "final"));
    assert_eq!(ask(&claude_body(0)), ("fallback", "step 0"));

    // Not user text: the system prompt, tool results (string or blocks), assistant text.
    let mut body = claude_body(2);
    body["system"] = json!([{"type": "text", "text": "You work on TASK-A."}]);
    let messages = body["messages"].as_array_mut().unwrap();
    messages[2]["content"][0]["content"] = json!("TASK-A");
    messages[4]["content"][0]["content"] = json!([{"type": "text", "text": "TASK-A"}]);
    messages[1]["content"][0]["input"] = json!({"command": "echo TASK-A"});
    messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "TASK-A"}]}));
    assert_eq!(ask(&body), ("fallback", "final"));
}

#[test]
fn chat_requests_are_routed_by_their_user_text_only() {
    let mock = routed();
    let ask = |body: &Value| answered_by(&post(&mock, CHAT, body));
    let mut body = chat_body(0, "path");
    body["messages"][1]["content"] = json!("Do TASK-A.");
    assert_eq!(ask(&body), ("route-a", "step 0"));
    let mut body = chat_body(1, "path");
    body["messages"][1]["content"] = json!([{"type": "text", "text": "Do TASK-B."}]);
    assert_eq!(ask(&body), ("route-b", "final"));
    assert_eq!(ask(&chat_body(0, "path")), ("fallback", "step 0"));

    // Not user text: system and developer messages, tool calls and results, assistant text.
    let mut body = chat_body(1, "path");
    let messages = body["messages"].as_array_mut().unwrap();
    messages[0]["content"] = json!("You work on TASK-A.");
    messages.insert(1, json!({"role": "developer", "content": "TASK-A"}));
    messages[3]["content"] = json!("TASK-A");
    messages[3]["tool_calls"][0]["function"]["arguments"] = json!(r#"{"command":"TASK-A"}"#);
    messages[4]["content"] = json!([{"type": "text", "text": "TASK-A"}]);
    assert_eq!(ask(&body), ("fallback", "final"));

    // A side request is routed too, and still gets its title.
    let title = json!({"model": "mock-model", "stream": false, "messages": [
        {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
        {"role": "user", "content": "Do TASK-B."}]});
    let reply = post(&mock, CHAT, &title).json();
    assert_eq!(reply["choices"][0]["message"]["content"], "Mock title");
    assert_eq!(mock.requests().last().unwrap().route, Some(1));
}

#[test]
fn gemini_requests_are_routed_by_their_user_text_only() {
    let mock = routed();
    let ask = |body: &Value| answered_by(&post(&mock, GEMINI, body));
    let mut body = gemini_body(1);
    body["contents"][0]["parts"][0]["text"] = json!("Do TASK-B.");
    assert_eq!(ask(&body), ("route-b", "final"));
    assert_eq!(ask(&gemini_body(0)), ("fallback", "step 0"));

    // Not user text: the system instruction, function calls and responses, model text.
    let mut body = gemini_body(1);
    body["systemInstruction"] = json!({"parts": [{"text": "You work on TASK-A."}]});
    let contents = body["contents"].as_array_mut().unwrap();
    contents[1]["parts"][0]["functionCall"]["args"] = json!({"command": "echo TASK-A"});
    contents[2]["parts"][0]["functionResponse"]["response"] = json!({"output": "TASK-A"});
    contents.push(json!({"role": "model", "parts": [{"text": "TASK-A"}]}));
    assert_eq!(ask(&body), ("fallback", "final"));
}

#[test]
fn the_first_matching_route_wins_and_the_cap_is_the_largest() {
    let mut small = named("route-a");
    small.max_requests = 1;
    let mut large = named("route-b");
    large.max_requests = 3;
    let mut fallback = named("fallback");
    fallback.max_requests = 2;
    let mock = Mock::start_routed(
        vec![Route::new("TASK", small), Route::new("TASK-B", large)],
        fallback,
    );
    let mut body = chat_body(0, "path");
    body["messages"][1]["content"] = json!("Do TASK-B.");
    for _ in 0..3 {
        let reply = post(&mock, CHAT, &body);
        assert_eq!(answered_by(&reply), ("route-a", "step 0"));
    }
    let capped = post(&mock, CHAT, &body);
    assert_eq!(capped.status, 500);
    assert_eq!(
        capped.json()["error"]["message"],
        "mock request cap reached"
    );
}

#[test]
fn chunk_delay_follows_the_route() {
    let mut slow = Script::new("slow");
    slow.chunk_delay = Duration::from_millis(60);
    let mock = Mock::start_routed(vec![Route::new("slowly", slow)], Script::new("fast"));
    let mut body = claude_body(0);
    let t0 = Instant::now();
    assert_eq!(
        post(&mock, MESSAGES, &body).data()[2]["delta"]["text"],
        "fast"
    );
    let fast = t0.elapsed();
    body["messages"][0]["content"][0]["text"] = json!("go slowly");
    let t0 = Instant::now();
    assert_eq!(
        post(&mock, MESSAGES, &body).data()[2]["delta"]["text"],
        "slow"
    );
    // Six events: five delays.
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    // No absolute bound on the fast one (a busy machine may take a while): only that the
    // delays are the route's.
    assert!(fast < t0.elapsed(), "{fast:?}");
}

// ---- Other endpoints and HTTP handling ---------------------------------------------------

#[test]
fn unknown_paths_get_404_json_and_the_side_endpoints_answer() {
    let mock = Mock::start(Script::default_hello());
    let missing = post(&mock, "/v1/nothing", &json!({}));
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing")
    );
    assert_eq!(request(&mock, "GET", "/v2/unknown", None).status, 404);

    let head = request(&mock, "HEAD", "/api/hello", None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let models = request(&mock, "GET", "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], "mock-model");
    let gemini_models = request(&mock, "GET", "/v1beta/models", None).json();
    assert_eq!(gemini_models["models"].as_array().unwrap().len(), 1);
    let count = post(
        &mock,
        "/v1/messages/count_tokens?beta=true",
        &claude_body(0),
    )
    .json();
    assert_eq!(count, json!({"input_tokens": 100}));
    let count = post(
        &mock,
        "/v1beta/models/gemini-2.5-pro:countTokens",
        &gemini_body(0),
    )
    .json();
    assert_eq!(count, json!({"totalTokens": 100}));
    // None of these consumed a step.
    let data = post(&mock, CHAT, &chat_body(0, "path")).data();
    assert_eq!(
        data[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "bash"
    );
}

#[test]
fn requests_are_recorded_with_query_headers_and_json_body_even_when_chunked_or_rejected() {
    let mock = Mock::start(Script::default_hello());
    let body = claude_body(0).to_string();
    let (a, b) = body.split_at(body.len() / 3);
    let raw = format!(
        "POST {MESSAGES} HTTP/1.1\r\nX-Api-Key: k\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let reply = exchange(&mock, raw.as_bytes());
    assert_eq!(reply.status, 200);

    let zstd = format!(
        "POST {RESPONSES} HTTP/1.1\r\nContent-Encoding: zstd\r\nContent-Length: 4\r\n\r\n\x28\x2f\x2f\x2f"
    );
    let rejected = exchange(&mock, zstd.as_bytes());
    assert_eq!(rejected.status, 415);
    assert!(
        rejected.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("zstd")
    );

    let log = mock.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, MESSAGES);
    assert_eq!(log[0].header("x-api-key"), Some("k"));
    assert!(log[0].headers.iter().any(|(k, _)| k == "X-Api-Key"));
    assert_eq!(log[0].body.as_ref().unwrap()["model"], "claude-sonnet-4-5");
    assert_eq!(log[1].path, RESPONSES);
    assert!(log[1].body.is_none());
}

#[test]
fn binds_127_0_0_1_only_and_stops_on_drop() {
    let mock = Mock::start(Script::default_hello());
    let url = mock.base_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with('/'));
    let port = addr(&mock).port();
    // 127.0.0.2 is loopback too, but not the bound address: a wildcard bind would accept it.
    let other = SocketAddr::from(([127, 0, 0, 2], port));
    assert!(TcpStream::connect_timeout(&other, Duration::from_millis(300)).is_err());
    drop(mock);
    let bound = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(TcpStream::connect_timeout(&bound, Duration::from_millis(300)).is_err());
}
