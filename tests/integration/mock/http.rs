//! Just enough HTTP/1.1: one request per connection, then `Connection: close`.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::{Answer, Shared};

/// Caps that keep a broken client from making the mock allocate without bound.
const MAX_HEAD: usize = 256 * 1024;
const MAX_BODY: usize = 256 * 1024 * 1024;

/// A parsed request.
pub(super) struct Request {
    pub(super) method: String,
    /// The request target, including the query.
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    /// A `Content-Encoding` the mock cannot decode.
    pub(super) unsupported_encoding: Option<String>,
}

/// Serves one connection: reads a request, answers it, closes.
pub(super) fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    match read_request(&mut reader, &mut out) {
        Ok(Some(req)) => {
            let (answer, chunk_delay) = super::answer(shared, &req);
            let _ = write_answer(&mut out, shared, &req, answer, chunk_delay);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("mock: bad request: {e}");
            let body = serde_json::json!({"error": {"message": format!("mock: bad request: {e}")}});
            let _ = write_json(&mut out, 400, &[], &body.to_string());
        }
    }
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one request. `None` if the peer closed before sending anything.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
) -> io::Result<Option<Request>> {
    let mut head_len = 0;
    let mut line = String::new();
    // Tolerate stray blank lines before the request line.
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head_len += line.len();
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(bad(format!("malformed request line {line:?}")));
    };
    let (method, target) = (method.to_string(), target.to_string());

    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed inside the headers"));
        }
        head_len += line.len();
        if head_len > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad(format!("malformed header {l:?}")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };

    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        Some(read_chunked(reader)?)
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(bad("request body too large"));
        }
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf)?;
        Some(buf)
    } else {
        None
    };
    let unsupported_encoding = header("content-encoding")
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        .map(str::to_string);
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        unsupported_encoding,
    }))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Mock Status",
    }
}

fn write_json(
    out: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

fn write_answer(
    out: &mut TcpStream,
    shared: &Shared,
    req: &Request,
    answer: Answer,
    chunk_delay: Duration,
) -> io::Result<()> {
    match answer {
        Answer::Json {
            status,
            headers,
            body,
        } => {
            let text = if req.method == "HEAD" {
                String::new()
            } else {
                body.to_string()
            };
            write_json(out, status, &headers, &text)
        }
        Answer::Empty(status) => write_json(out, status, &[], ""),
        Answer::Sse(chunks) => {
            out.write_all(SSE_HEAD.as_bytes())?;
            out.flush()?;
            for (i, chunk) in chunks.iter().enumerate() {
                if i > 0 && !chunk_delay.is_zero() && !shared.sleep(chunk_delay) {
                    // Stopped: end abruptly.
                    return Ok(());
                }
                write!(out, "{:x}\r\n", chunk.len())?;
                out.write_all(chunk.as_bytes())?;
                out.write_all(b"\r\n")?;
                out.flush()?;
            }
            out.write_all(b"0\r\n\r\n")?;
            out.flush()
        }
        Answer::Stall(d) => {
            out.write_all(SSE_HEAD.as_bytes())?;
            out.flush()?;
            shared.sleep(d);
            // Close without the terminating chunk: the body ends early.
            Ok(())
        }
    }
}
