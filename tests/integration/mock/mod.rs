//! A scripted mock model server, so the tests can run the real agent CLIs offline.
//!
//! It speaks the four wire APIs of `CONTRACTS.md` §10: Responses (codex), Anthropic Messages
//! (claude), Gemini (gemini) and Chat Completions (opencode, pi). It listens on
//! 127.0.0.1 only, answers one request per connection (`Connection: close`) and keeps no
//! conversation state: the step for a request is the number of tool results already in its body,
//! so retries and side requests do no harm. Observations of the real CLIs against it are in
//! `tests/integration/MOCK-NOTES.md`.
//!
//! One mock can serve several conversations with different scripts ([`Mock::start_routed`]):
//! each request is routed by the text of its user messages, which a CLI re-sends every turn, so
//! routing needs no state either.

mod chat;
mod gemini;
mod http;
mod messages;
mod responses;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// The shell command of [`Script::default_hello`].
pub(crate) const HELLO_COMMAND: &str = "echo hello-from-mock > hello.txt && cat hello.txt";

/// The final text of [`Script::default_hello`], as in `captures/README.md`.
pub(crate) const HELLO_FINAL_TEXT: &str = "Done. Created hello.txt.\n```json\n{\"status\": \"done\", \"summary\": \"created hello.txt\", \"files_changed\": [\"hello.txt\"]}\n```";

/// What side requests without a schema (opencode's title generator) get.
const TITLE_TEXT: &str = "Mock title";

/// A running mock server. It stops when dropped.
pub(crate) struct Mock {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    /// The request target, including the query.
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    /// The body, if it was JSON.
    pub(crate) body: Option<Value>,
    /// The index of the [`Route`] that answered it; `None` for the fallback script (and for
    /// requests that are not model requests).
    pub(crate) route: Option<usize>,
}

impl Recorded {
    /// The first header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the mock answers.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Step n answers a model request whose conversation already holds n tool results.
    ///
    /// Precisely: the tool steps (`Shell`, `WriteFile`) and then the final text are numbered
    /// 0, 1, 2, … and answer the requests holding that many tool results. A fault step (`Http`,
    /// `StreamError`, `Stall`) belongs to the tool step or final text after it and answers its
    /// requests instead, every time (the mock keeps no state, so a CLI's retry meets the same
    /// fault). Without faults this is exactly "step n"; with them, a non-streaming request that
    /// skips a stream fault (claude's fallback) gets the step the fault guarded, not a later one.
    pub(crate) steps: Vec<Step>,
    /// The final assistant text, sent once the steps have run out.
    pub(crate) final_text: String,
    /// After this many requests (all kinds), answer HTTP 500 "mock request cap reached", so a
    /// looping client ends.
    pub(crate) max_requests: usize,
    /// Delay between streamed chunks (slow streams). Zero by default.
    pub(crate) chunk_delay: Duration,
}

/// A script for the conversations whose user prompt contains `needle`; see
/// [`Mock::start_routed`].
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Matched, case-sensitively, against each user text of a request on its own.
    pub(crate) needle: String,
    pub(crate) script: Script,
}

impl Route {
    pub(crate) fn new(needle: impl Into<String>, script: Script) -> Route {
        Route {
            needle: needle.into(),
            script,
        }
    }
}

/// One scripted answer to a model request.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Ask the CLI to run this shell command with its shell tool.
    Shell(String),
    /// Ask the CLI to write a file with its file-writing tool (codex: `apply_patch` Add File;
    /// claude: `Write`; gemini: `write_file`; opencode: `write {filePath, content}`; pi:
    /// `write {path, content}`).
    WriteFile { path: String, content: String },
    /// Answer with an HTTP error: status, optional `retry-after` header (seconds), body in the
    /// API's own error format with `message` (Gemini's also carries the delay as a `RetryInfo`
    /// detail).
    Http {
        status: u16,
        retry_after: Option<u64>,
        message: String,
    },
    /// Start streaming, then fail mid-stream in the API's own way (Responses: `response.failed`;
    /// Messages: `event: error`; Gemini and Chat: an error chunk, then the end of the stream).
    /// Non-streaming requests skip it and get the step it guards (claude retries a broken
    /// stream with `stream:false`).
    StreamError(String),
    /// Send response headers, then nothing for this long, then close the connection (the body
    /// ends early, so the client sees a broken stream). Non-streaming requests skip it, like
    /// `StreamError`.
    Stall(Duration),
}

impl Script {
    /// One shell command, `echo hello-from-mock > hello.txt && cat hello.txt`, then the
    /// captures' default final text; at most 40 requests.
    pub(crate) fn default_hello() -> Script {
        Script::new(HELLO_FINAL_TEXT).then(Step::Shell(HELLO_COMMAND.to_string()))
    }

    /// No steps: the first model request gets `final_text`. At most 40 requests.
    pub(crate) fn new(final_text: impl Into<String>) -> Script {
        Script {
            steps: Vec::new(),
            final_text: final_text.into(),
            max_requests: 40,
            chunk_delay: Duration::ZERO,
        }
    }

    /// Appends a step.
    #[must_use]
    pub(crate) fn then(mut self, step: Step) -> Script {
        self.steps.push(step);
        self
    }
}

impl Mock {
    /// Starts a server on 127.0.0.1:<ephemeral> that follows `script`. Stops on drop.
    pub(crate) fn start(script: Script) -> Mock {
        Mock::start_routed(Vec::new(), script)
    }

    /// Routes each model request to the first route whose needle occurs in the request's *user
    /// prompt text*; requests that match no route get `fallback`. Stops on drop.
    ///
    /// The user prompt text is the text the CLI sent as user messages, and only that: tool
    /// calls and results, assistant text, system and developer prompts never match. Each text
    /// (message or text part) is searched on its own, case-sensitively. A CLI's own user-role
    /// context counts too: codex's `<environment_context>` and `AGENTS.md`, claude's
    /// `<system-reminder>` blocks (with `CLAUDE.md`), gemini's `<session_context>`, which lists
    /// the workspace's files. So a bare task id is a poor needle (a file or a backlog may name
    /// it); use a phrase only the prompt holds, like `Work on task T1.`.
    ///
    /// Each script numbers its steps by the tool results in the request, as with
    /// [`Mock::start`]; a CLI re-sends the user prompt with every turn, so a conversation stays
    /// on its route with no state in the mock. Side requests (no tools) are routed too, and
    /// answered as usual from their route's script.
    ///
    /// The request cap counts all requests together and is the largest `max_requests` of the
    /// routes and the fallback. `chunk_delay` is the chosen script's.
    pub(crate) fn start_routed(routes: Vec<Route>, fallback: Script) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").expect("mock: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock: local address");
        let max_requests = routes
            .iter()
            .map(|r| r.script.max_requests)
            .fold(fallback.max_requests, usize::max);
        let shared = Arc::new(Shared {
            routes,
            fallback,
            max_requests,
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("mock-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &for_thread))
            .expect("mock: spawn the accept thread");
        Mock {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, with no trailing slash and no path.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

struct Shared {
    routes: Vec<Route>,
    fallback: Script,
    /// The cap on all requests together.
    max_requests: usize,
    log: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
}

impl Shared {
    /// The index of the route for a request with this body (`None`: the fallback).
    fn route(&self, api: Api, body: Option<&Value>) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        let texts = body.map(|b| user_texts(api, b)).unwrap_or_default();
        self.routes.iter().position(|route| {
            texts
                .iter()
                .any(|text| text.contains(route.needle.as_str()))
        })
    }

    fn script(&self, route: Option<usize>) -> &Script {
        route.map_or(&self.fallback, |i| &self.routes[i].script)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps for `d`, waking early when the server stops. False if it stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = std::time::Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopped() {
            break;
        }
        let Ok(stream) = conn else { continue };
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new()
            .name("mock-conn".to_string())
            .spawn(move || http::serve(stream, &shared));
    }
}

/// What to send back for one request.
#[derive(Debug)]
enum Answer {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    /// A status with no body (HEAD).
    Empty(u16),
    /// A 200 `text/event-stream`; each string is written (and delayed) separately.
    Sse(Vec<String>),
    /// A 200 with headers only; then silence for the duration, then the connection closes.
    Stall(Duration),
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer::Json {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }
}

/// The wire API a path belongs to, which decides the error-body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Responses,
    Messages,
    Gemini,
    Chat,
    Other,
}

impl Api {
    fn of(route: &str) -> Api {
        if route.ends_with("/responses") {
            Api::Responses
        } else if route.ends_with("/messages") || route.ends_with("/messages/count_tokens") {
            Api::Messages
        } else if route.contains("/models/") && route.contains(':') {
            Api::Gemini
        } else if route.ends_with("/chat/completions") {
            Api::Chat
        } else {
            Api::Other
        }
    }

    /// An HTTP error in this API's own format.
    fn error(self, status: u16, retry_after: Option<u64>, message: &str) -> Answer {
        let body = match self {
            Api::Responses | Api::Chat => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", "invalid_api_key"),
                    429 => ("rate_limit_exceeded", "rate_limit_exceeded"),
                    500.. => ("server_error", "server_error"),
                    _ => ("invalid_request_error", "mock_error"),
                };
                json!({"error": {"message": message, "type": kind, "code": code}})
            }
            Api::Messages => {
                let kind = match status {
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    500.. => "api_error",
                    _ => "invalid_request_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Api::Gemini => {
                let mut error =
                    json!({"code": status, "message": message, "status": grpc_status(status)});
                // The real API says when to retry in a RetryInfo detail; gemini-cli honours it.
                if let Some(secs) = retry_after {
                    error["details"] = json!([{
                        "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")
                    }]);
                }
                json!({ "error": error })
            }
            // Unknown paths: a body that reads sensibly in all three shapes.
            Api::Other => json!({"type": "error", "error": {
                "code": status, "message": message, "status": grpc_status(status), "type": "not_found_error"
            }}),
        };
        let mut headers = Vec::new();
        if let Some(secs) = retry_after {
            headers.push(("retry-after".to_string(), secs.to_string()));
        }
        Answer::Json {
            status,
            headers,
            body,
        }
    }
}

fn grpc_status(status: u16) -> &'static str {
    match status {
        400 | 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// What a model request gets, after the step was chosen.
#[derive(Debug, Clone, Copy)]
enum Turn<'a> {
    /// Steps left: this one.
    Step(&'a Step),
    /// The steps ran out: the final text.
    Final,
    /// A request that offers no tools: text, or JSON that fills `schema`.
    Side(Option<&'a Value>),
}

/// The context an API module answers from.
struct Ctx<'a> {
    script: &'a Script,
    /// The request's 1-based arrival number, for unique ids.
    seq: usize,
    body: &'a Value,
}

impl Ctx<'_> {
    /// The turn for a request holding `n` tool results (see [`Script::steps`]). Non-streaming
    /// requests skip the stream faults (`StreamError`, `Stall`): they are how claude recovers
    /// from a broken stream.
    fn turn(&self, n: usize, streaming: bool) -> Turn<'_> {
        let mut slot = 0;
        let mut fault = None;
        for step in &self.script.steps {
            match step {
                Step::Shell(_) | Step::WriteFile { .. } => {
                    if slot == n {
                        return Turn::Step(fault.unwrap_or(step));
                    }
                    slot += 1;
                }
                Step::StreamError(_) | Step::Stall(_) if !streaming => {}
                Step::Http { .. } | Step::StreamError(_) | Step::Stall(_) => {
                    if slot == n && fault.is_none() {
                        fault = Some(step);
                    }
                }
            }
        }
        fault.map_or(Turn::Final, Turn::Step)
    }

    /// A short id that is unique within this server.
    fn id(&self) -> String {
        format!("mock{:04}", self.seq)
    }

    /// Text for a side request (no tools): JSON filling the schema, a title, or the final text.
    fn side_text(&self, schema: Option<&Value>) -> String {
        if let Some(schema) = schema {
            fill_schema(schema).to_string()
        } else if self.body.to_string().contains("title generator") {
            TITLE_TEXT.to_string()
        } else {
            self.script.final_text.clone()
        }
    }
}

/// The texts of the user messages in a model request (see [`Mock::start_routed`]).
fn user_texts(api: Api, body: &Value) -> Vec<&str> {
    match api {
        Api::Responses => responses::user_texts(body),
        // Both keep user text as string content or `{type: "text"}` parts of `role: "user"`
        // messages; Chat's tool results are `role: "tool"`, Messages' are `tool_result` blocks.
        Api::Messages | Api::Chat => messages::user_texts(body),
        Api::Gemini => gemini::user_texts(body),
        Api::Other => Vec::new(),
    }
}

/// Records the request, then picks the answer and the chosen script's chunk delay.
fn answer(shared: &Shared, req: &http::Request) -> (Answer, Duration) {
    let body = req
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok());
    let path = req.target.split('?').next().unwrap_or_default();
    let api = Api::of(path);
    let chosen = shared.route(api, body.as_ref());
    let script = shared.script(chosen);
    // The arrival number is the log position, so ids and the cap follow `requests()` order.
    let seq = {
        let mut log = shared.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(Recorded {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: body.clone(),
            route: chosen,
        });
        log.len()
    };
    let answer = if seq > shared.max_requests {
        api.error(500, None, "mock request cap reached")
    } else if let Some(encoding) = &req.unsupported_encoding {
        api.error(
            415,
            None,
            &format!("mock: cannot decode Content-Encoding {encoding:?}"),
        )
    } else {
        route_request(script, req, path, api, seq, body.as_ref())
    };
    let via = chosen.map_or_else(String::new, |i| {
        format!(" (route {i} {:?})", shared.routes[i].needle)
    });
    eprintln!(
        "mock[{seq}]{via}: {} {} -> {}",
        req.method,
        req.target,
        summary(&answer)
    );
    (answer, script.chunk_delay)
}

fn route_request(
    script: &Script,
    req: &http::Request,
    route: &str,
    api: Api,
    seq: usize,
    body: Option<&Value>,
) -> Answer {
    match req.method.as_str() {
        "HEAD" => return Answer::Empty(200),
        "GET" if route.ends_with("/models") => return Answer::ok(model_list(route)),
        "POST" => {}
        _ => {
            return Api::Other.error(
                404,
                None,
                &format!("mock: no route for {} {route}", req.method),
            );
        }
    }
    if api == Api::Other {
        return api.error(404, None, &format!("mock: no route for POST {route}"));
    }
    let Some(body) = body else {
        return api.error(400, None, "mock: the request body is not JSON");
    };
    let ctx = Ctx { script, seq, body };
    match api {
        Api::Responses => responses::answer(&ctx),
        Api::Messages if route.ends_with("/count_tokens") => {
            Answer::ok(json!({"input_tokens": 100}))
        }
        Api::Messages => messages::answer(&ctx),
        Api::Gemini => gemini::answer(&ctx, route),
        Api::Chat => chat::answer(&ctx),
        Api::Other => unreachable!("handled above"),
    }
}

/// A one-model list: Gemini's format under `/v1beta/`, else one that reads as both the
/// `OpenAI` and the Anthropic format.
fn model_list(route: &str) -> Value {
    if route.contains("/v1beta/") {
        return json!({"models": [{
            "name": "models/gemini-2.5-pro", "displayName": "Mock Gemini",
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]
        }]});
    }
    json!({
        "object": "list",
        "data": [{"id": "mock-model", "object": "model", "type": "model", "created": 1_795_480_000,
                  "owned_by": "mock", "display_name": "Mock Model", "created_at": "2026-11-24T00:00:00Z"}],
        "has_more": false, "first_id": "mock-model", "last_id": "mock-model"
    })
}

fn summary(answer: &Answer) -> String {
    match answer {
        Answer::Json { status, body, .. } => {
            let mut text = body.to_string();
            if text.len() > 120 {
                let mut cut = 120;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            format!("{status} {text}")
        }
        Answer::Empty(status) => format!("{status} (empty)"),
        Answer::Sse(chunks) => format!("200 stream of {} chunks", chunks.len()),
        Answer::Stall(d) => format!("200 stall {d:?}"),
    }
}

/// A value that satisfies a JSON schema (JSON Schema or Gemini's upper-case `OpenAPI` subset)
/// well enough for a router or a structured side request.
fn fill_schema(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() => "object".to_string(),
        _ => "string".to_string(),
    };
    match kind.as_str() {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(name.clone(), fill_schema(sub));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or_else(|| json!(1)),
        "boolean" => json!(false),
        "null" => Value::Null,
        _ => json!("mock"),
    }
}

/// Splits text into at most four pieces on character boundaries, for streamed deltas.
fn split_text(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(4).max(16);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The JSON object in a final text: the whole text, a fenced block, or the last `{…}` span.
fn json_object_in(text: &str) -> Option<Value> {
    let parse = |s: &str| {
        serde_json::from_str::<Value>(s.trim())
            .ok()
            .filter(Value::is_object)
    };
    if let Some(v) = parse(text) {
        return Some(v);
    }
    if let Some(start) = text.find("```json") {
        let rest = &text[start + "```json".len()..];
        if let Some(end) = rest.find("```")
            && let Some(v) = parse(&rest[..end])
        {
            return Some(v);
        }
    }
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (start < end).then(|| parse(&text[start..=end])).flatten()
}

/// A shell command that writes `content` to `path`, for CLIs without a file-writing tool.
fn write_command(path: &str, content: &str) -> String {
    format!(
        "printf '%s' {} > {}",
        shell_quote(content),
        shell_quote(path)
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Names of the offered tools, from a list of tool objects and a function to read one name.
fn names<'a>(
    tools: Option<&'a Value>,
    name: impl Fn(&'a Value) -> Option<&'a str>,
) -> Vec<&'a str> {
    tools
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(name).collect())
        .unwrap_or_default()
}

/// An SSE event with a name: `event: <kind>\ndata: <json>\n\n`.
fn sse_event(kind: &str, data: &Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// An SSE event without a name: `data: <json>\n\n`.
fn sse_data(data: &Value) -> String {
    format!("data: {data}\n\n")
}
