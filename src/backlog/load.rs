//! Reading a backlog file: size, UTF-8 and JSON syntax checks with precise positions, then
//! validation. Nothing here writes.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::doc::Doc;
use super::error::{BacklogError, MAX_BACKLOG_BYTES};
use super::format::sha256_hex;
use super::validate::validate;

/// A backlog read from disk.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub doc: Doc,
    /// The bytes as they were on disk.
    pub raw: Vec<u8>,
    /// sha256 of `raw`.
    pub sha256: String,
}

impl Loaded {
    /// True when the file on disk is in Looper's canonical format.
    pub fn is_canonical(&self) -> bool {
        self.doc.to_pretty_string().as_bytes() == self.raw.as_slice()
    }
}

/// Reads the raw bytes of a backlog, with clear errors for the usual mishaps.
pub fn read_raw(path: &Path) -> Result<Vec<u8>, BacklogError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BacklogError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(BacklogError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if meta.is_dir() {
        return Err(BacklogError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_BACKLOG_BYTES {
        return Err(BacklogError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut raw = Vec::with_capacity(meta.len() as usize + 1);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BACKLOG_BYTES + 1).read_to_end(&mut raw))
        .map_err(|source| BacklogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if raw.len() as u64 > MAX_BACKLOG_BYTES {
        return Err(BacklogError::TooLarge {
            path: path.to_path_buf(),
            size: raw.len() as u64,
        });
    }
    Ok(raw)
}

/// Parses backlog bytes into a JSON value (not yet validated).
pub fn parse(path: &Path, raw: &[u8]) -> Result<Value, BacklogError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(BacklogError::Empty {
            path: path.to_path_buf(),
        });
    }
    let text = match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_col(&raw[..e.valid_up_to()]);
            return Err(BacklogError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                column,
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; we print the position up front.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        BacklogError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

/// Parses and validates backlog bytes.
pub fn from_bytes(path: &Path, raw: Vec<u8>) -> Result<Loaded, BacklogError> {
    let value = parse(path, &raw)?;
    let problems = validate(&value);
    if !problems.is_empty() {
        return Err(BacklogError::Invalid {
            path: path.to_path_buf(),
            problems,
        });
    }
    let sha256 = sha256_hex(&raw);
    Ok(Loaded {
        doc: Doc::from_validated(value),
        raw,
        sha256,
    })
}

/// Reads, parses and validates the backlog at `path`.
pub fn load(path: &Path) -> Result<Loaded, BacklogError> {
    let raw = read_raw(path)?;
    from_bytes(path, raw)
}

/// Reads the file at `path` and makes `read` of its bytes, waiting for a file caught in the
/// middle of an in-place save to be whole: a torn read (empty, cut JSON, a cut character) is
/// read again while the file keeps changing, until it has been still for 50 ms (then the
/// error stands) or 3 s have passed. A file that is simply broken costs one 50 ms wait.
pub fn settled<T>(
    path: &Path,
    mut read: impl FnMut(Vec<u8>) -> Result<T, BacklogError>,
) -> Result<T, BacklogError> {
    use std::time::{Duration, Instant};
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt as _;
            (m.ino(), m.len(), m.mtime(), m.mtime_nsec())
        })
    };
    let start = Instant::now();
    loop {
        let before = stamp(path);
        let err = match read_raw(path).and_then(&mut read) {
            Err(
                e @ (BacklogError::Empty { .. }
                | BacklogError::Syntax { .. }
                | BacklogError::NotUtf8 { .. }),
            ) => e,
            other => return other,
        };
        let mut still = Duration::ZERO;
        loop {
            if start.elapsed() > Duration::from_secs(3) || still >= Duration::from_millis(50) {
                return Err(err);
            }
            std::thread::sleep(Duration::from_millis(10));
            if stamp(path) != before {
                break;
            }
            still += Duration::from_millis(10);
        }
    }
}

/// [`load`], waiting for a file in the middle of an in-place save (see [`settled`]).
pub fn load_settled(path: &Path) -> Result<Loaded, BacklogError> {
    settled(path, |raw| from_bytes(path, raw))
}

/// Validates a value produced by Looper (a jq result) into a document.
pub fn check(path: &Path, value: Value) -> Result<Doc, BacklogError> {
    check_shadowed(path, value, None)
}

/// [`check`] for a value whose jq form is known.
pub(crate) fn check_shadowed(
    path: &Path,
    value: Value,
    shadow: Option<super::jq::Shadow>,
) -> Result<Doc, BacklogError> {
    let problems = validate(&value);
    if problems.is_empty() {
        Ok(Doc::with_shadow(value, shadow))
    } else {
        Err(BacklogError::ResultInvalid {
            path: path.to_path_buf(),
            problems,
        })
    }
}

fn line_col(prefix: &[u8]) -> (usize, usize) {
    let line = prefix.split(|&b| b == b'\n').count();
    let col_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&prefix[col_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}
