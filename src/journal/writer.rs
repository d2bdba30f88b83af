//! Appending records: one `write` of a complete line per record, under an exclusive lock on
//! the file, with `seq` continuing from the last complete record. Several processes may append
//! to the same file (commands outside a run share the day's command journal).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Map, Value};

/// Version of the record format (`"v"`). 2: an agent's output line that is a JSON object is
/// in its `agent.event` record as that object (`json`), not as a string (`raw`).
pub const JOURNAL_VERSION: u64 = 2;

/// The header every journal record starts with (DESIGN §7); the payload's fields follow and
/// depend on `type`. Published as `looper schema record` (what `tail --json` prints).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct RecordHeader {
    /// The journal format's version.
    pub v: u64,
    /// When the record was written (RFC 3339, UTC).
    pub ts: String,
    /// The run's id (`<day>-cmd` for commands run outside `looper run`).
    pub run: String,
    /// The record's number in its file: one more than the one before.
    pub seq: u64,
    /// What the record is: `run.start`, `iteration.start`, `agent.event`, `backlog.update`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The iteration it belongs to (0 outside iterations).
    pub iter: Option<u64>,
    /// The step: `run`, `bootstrap`, `iter-3`, `review-1`, ...
    pub label: Option<String>,
}

/// A journal file and the run it belongs to.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    run: String,
    redactor: Option<std::sync::Arc<super::Redactor>>,
    /// The open file and where it ended after our last append, shared by clones: while nobody
    /// else has appended, the next record needs no reopen and no read of the tail.
    tail: std::sync::Arc<std::sync::Mutex<Option<Tail>>>,
    /// The step of the run now going (`iter` and `label`), written into every record, so a
    /// record made deep inside (a backlog update) still says which iteration made it.
    step: std::sync::Arc<std::sync::Mutex<Option<(u32, String)>>>,
}

#[derive(Debug)]
struct Tail {
    file: File,
    len: u64,
    seq: u64,
    /// The text of the last append, kept for the next one: an agent's output is appended
    /// batch after batch, each a fraction of a megabyte that a fresh buffer would fault in.
    text: String,
}

impl Journal {
    pub fn new(path: PathBuf, run: String) -> Self {
        Self {
            path,
            run,
            redactor: None,
            tail: std::sync::Arc::default(),
            step: std::sync::Arc::default(),
        }
    }

    /// Names the step (iteration number and label) the next records belong to.
    pub fn set_step(&self, iter: u32, label: &str) {
        *self
            .step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((iter, label.to_owned()));
    }

    /// Every record appended from now on has its secrets replaced first (DESIGN §2).
    pub fn set_redactor(&mut self, redactor: super::Redactor) {
        self.redactor = Some(std::sync::Arc::new(redactor));
    }

    /// The redactor, for files written beside the journal.
    pub fn redactor(&self) -> Option<&super::Redactor> {
        self.redactor.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Appends one record of `kind` with `payload` fields after the header.
    pub fn append(&self, kind: &str, payload: Map<String, Value>) -> anyhow::Result<u64> {
        self.append_all(kind, &[Value::Object(payload)])
    }

    /// Appends one record of `kind` per payload (each must serialize to a JSON object), all
    /// with one lock and one `write`. Returns the last `seq`.
    pub fn append_all<P: serde::Serialize>(
        &self,
        kind: &str,
        payloads: &[P],
    ) -> anyhow::Result<u64> {
        let bodies = payloads
            .iter()
            .map(|payload| self.encode(payload))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.append_encoded(kind, &bodies)
    }

    /// A record's payload as [`append_encoded`](Self::append_encoded) takes it: serialized
    /// to a JSON object, secrets replaced. Its length is what the record adds to the journal
    /// besides the header.
    fn encode<P: serde::Serialize>(&self, payload: &P) -> anyhow::Result<String> {
        let body = serde_json::to_string(payload).context("cannot encode journal record")?;
        anyhow::ensure!(
            body.starts_with('{'),
            "a journal record must be an object, got {body}"
        );
        Ok(self.redact(body))
    }

    /// A serialized payload (a JSON object), with secrets replaced: the second half of
    /// [`encode`](Self::encode).
    fn redact(&self, body: String) -> String {
        match &self.redactor {
            Some(redactor) => redactor.json(body),
            None => body,
        }
    }

    /// Replaces the secrets in the payload `buf` holds from `start` on (a JSON object), in
    /// place: [`redact`](Self::redact) for a payload written into a larger buffer.
    fn redact_from(&self, buf: &mut String, start: usize) {
        if let Some(redactor) = &self.redactor
            && let Some(clean) = redactor.json_changed(&buf[start..])
        {
            buf.truncate(start);
            buf.push_str(&clean);
        }
    }

    /// Appends one record of `kind` per payload of `bodies`, all with one lock and one
    /// `write`. Returns the last `seq`.
    pub fn append_bodies(&self, kind: &str, bodies: &Bodies) -> anyhow::Result<u64> {
        self.append_encoded(kind, &bodies.iter().collect::<Vec<_>>())
    }

    /// Appends one record of `kind` per body (a serialized payload with secrets replaced, as
    /// [`redact`](Self::redact) leaves it), all with one lock and one `write`. Returns the
    /// last `seq`.
    fn append_encoded<B: AsRef<str>>(&self, kind: &str, bodies: &[B]) -> anyhow::Result<u64> {
        let mut cached = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tail = match cached.take() {
            Some(tail) => tail,
            None => Tail {
                file: self.open()?,
                len: u64::MAX,
                seq: 0,
                text: String::new(),
            },
        };
        tail.file
            .lock()
            .with_context(|| format!("cannot lock journal {}", self.path.display()))?;
        let len = match self.still_there(&tail.file) {
            Ok(len) => len,
            Err(e) => {
                // Keep the file: every later append must fail the same way, not start a new
                // journal that lacks the records before it.
                let _ = tail.file.unlock();
                *cached = Some(tail);
                return Err(e);
            }
        };
        let result = self.append_locked(&mut tail, kind, bodies, len);
        let _ = tail.file.unlock();
        if result.is_ok() {
            *cached = Some(tail);
        }
        result
    }

    /// The length of the journal file this journal has open (the caller holds its lock).
    /// Fails when the file is in no directory any more (it was removed, or its directory
    /// was, or another file was renamed over it): records written to it would be lost
    /// without a trace, so the run must stop instead. One `fstat`: such a file has no link
    /// left. (A file whose directory was moved is still linked: records go on there.)
    fn still_there(&self, file: &File) -> anyhow::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let open = file
            .metadata()
            .with_context(|| format!("cannot read journal {}", self.path.display()))?;
        if open.nlink() > 0 {
            return Ok(open.len());
        }
        match std::fs::metadata(&self.path) {
            Ok(_) => anyhow::bail!(
                "journal {} was replaced by another file while this run wrote it: stopping so that no record is lost; move that file away, then run again",
                self.path.display()
            ),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "journal {} disappeared while this run wrote it (was its directory deleted?): stopping so that no record is lost; run again to resume (a task left `doing` is resumed)",
                self.path.display()
            ))),
        }
    }

    fn open(&self) -> anyhow::Result<File> {
        if let Some(dir) = self.path.parent() {
            crate::file::create_private_dir(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .with_context(|| format!("cannot open journal {}", self.path.display()))
    }

    /// Writes the records at the end of the file, `len` long; the caller holds its lock.
    fn append_locked<B: AsRef<str>>(
        &self,
        tail: &mut Tail,
        kind: &str,
        bodies: &[B],
        len: u64,
    ) -> anyhow::Result<u64> {
        // Someone else appended (or this is the first record): find the last seq again.
        let resync = len != tail.len;
        let mut seq = if resync {
            last_seq(&mut tail.file).unwrap_or(0)
        } else {
            tail.seq
        };
        // The header as serde_json writes it, then each body's fields after it.
        let ts = jiff::Timestamp::now().to_string();
        let head = format!(
            "{{\"v\":{JOURNAL_VERSION},\"ts\":{},\"run\":{},",
            Value::String(ts),
            Value::String(self.run.clone())
        );
        let mut kind = format!(",\"type\":{}", Value::String(kind.to_owned()));
        if let Some((iter, label)) = &*self
            .step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            let _ = write!(
                kind,
                ",\"iter\":{iter},\"label\":{}",
                Value::String(label.clone())
            );
        }
        let mut text = std::mem::take(&mut tail.text);
        text.clear();
        text.reserve(
            bodies
                .iter()
                .map(|b| b.as_ref().len() + head.len() + 40)
                .sum(),
        );
        // A torn last line from a crash would glue onto our record: start on a fresh line.
        if resync && needs_newline(&mut tail.file) {
            text.push('\n');
        }
        for body in bodies {
            let body = body.as_ref();
            seq += 1;
            text.push_str(&head);
            text.push_str("\"seq\":");
            push_u64(&mut text, seq);
            text.push_str(&kind);
            if body.len() > 2 {
                text.push(',');
                text.push_str(&body[1..]);
            } else {
                text.push('}');
            }
            text.push('\n');
        }
        if crate::fault::hit("journal.torn") {
            let _ = tail.file.write_all(&text.as_bytes()[..text.len() / 2]);
            crate::fault::die();
        }
        // One write of whole lines; no fsync per record (a killed process loses nothing the
        // kernel already has, and an agent run writes thousands of records).
        if let Err(e) = tail.file.write_all(text.as_bytes()) {
            // A full disk or a file-size limit can take part of the text: cut it off again,
            // so the journal does not end in a torn line (readers would skip it, but a later
            // append would follow it).
            let _ = tail.file.set_len(len);
            return Err(anyhow::Error::new(e)
                .context(format!("cannot write journal {}", self.path.display())));
        }
        tail.len = len + text.len() as u64;
        // A one-off large append (a whole backlog) need not stay in memory.
        if text.capacity() <= 4 << 20 {
            tail.text = text;
        }
        tail.seq = seq;
        Ok(seq)
    }
}

/// Record payloads (JSON objects, secrets replaced) one after another in one buffer, as
/// [`Journal::append_bodies`] takes them: the thousands of lines of an agent's output cost
/// no allocation each.
#[derive(Debug, Default)]
pub struct Bodies {
    text: String,
    ends: Vec<usize>,
}

impl Bodies {
    /// Drops every payload, keeping the memory.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// The buffer the next payload is written at the end of.
    pub fn buf(&mut self) -> &mut String {
        &mut self.text
    }

    /// Ends the payload written into [`buf`](Self::buf) since the last one, with its secrets
    /// replaced by `journal`'s redactor. Returns its length.
    pub fn seal(&mut self, journal: &Journal) -> usize {
        let start = self.sealed();
        journal.redact_from(&mut self.text, start);
        self.ends.push(self.text.len());
        self.text.len() - start
    }

    /// Drops the last sealed payload, and anything written after it.
    pub fn pop(&mut self) {
        self.ends.pop();
        self.text.truncate(self.sealed());
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where the sealed payloads end.
    fn sealed(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.text[start..end])
    }
}

/// Appends `n` in decimal: what `write!` does, without the formatting machinery, for the
/// fields written once per agent output line.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` in decimal, as [`push_u64`] does.
pub(crate) fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends `s` as a JSON string, byte for byte as `serde_json` writes it (`\"`, `\\`, the
/// short escapes `\b \f \n \r \t`, `\u00XX` for the other control characters), in runs
/// rather than through a formatter: an agent's output line is mostly JSON, one quote every
/// few bytes.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    /// The escape of each byte: 0 for none, `u` for `\u00XX`, else the letter after `\`.
    const ESCAPE: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = b'u';
            b += 1;
        }
        table[0x08] = b'b';
        table[0x09] = b't';
        table[0x0a] = b'n';
        table[0x0c] = b'f';
        table[0x0d] = b'r';
        table[b'"' as usize] = b'"';
        table[b'\\' as usize] = b'\\';
        table
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut from = 0;
    while let Some(i) = next_escaped(bytes, from) {
        let b = bytes[i];
        let escape = ESCAPE[usize::from(b)];
        from = i + 1;
        // An escaped byte is ASCII: `i` is on a character boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if escape == b'u' {
            out.push_str("u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else if escape == b {
            // `"` and `\` stand for themselves: the next run starts with them.
            start = i;
            continue;
        } else {
            out.push(char::from(escape));
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Where the first byte at or after `from` is that a JSON string escapes (a control
/// character, `"` or `\`), eight bytes at a time.
fn next_escaped(bytes: &[u8], mut from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(Ok(word)) = bytes.get(from..from + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(word);
        let (quote, backslash) = (x ^ (ONES * 0x22), x ^ (ONES * 0x5c));
        // Each term marks a byte below 0x20 (or equal to the quote, the backslash) in its
        // high bit. Bits above the first marked byte may be false, the first one is not:
        // a borrow only runs upwards from a byte that matched.
        let marked = (x.wrapping_sub(ONES * 0x20) & !x
            | quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash)
            & HIGH;
        if marked != 0 {
            return Some(from + (marked.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|at| from + at)
}

/// The `seq` of the last complete record, reading only the file's tail.
fn last_seq(file: &mut File) -> Option<u64> {
    let len = file.metadata().ok()?.len();
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut buf = Vec::new();
        file.take(window).read_to_end(&mut buf).ok()?;
        let complete = match buf.iter().rposition(|&b| b == b'\n') {
            Some(p) => &buf[..p],
            None => &buf[..0],
        };
        for line in complete.split(|&b| b == b'\n').rev() {
            if let Ok(v) = serde_json::from_slice::<Value>(line)
                && let Some(seq) = v.get("seq").and_then(Value::as_u64)
            {
                return Some(seq);
            }
        }
        if start == 0 {
            return None;
        }
        window *= 4;
    }
}

fn needs_newline(file: &mut File) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).is_ok()
        && file.read_exact(&mut last).is_ok()
        && last[0] != b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written encoders write what `serde_json` writes, for any text and number.
        #[test]
        fn hand_encoding_is_serde_json(
            text in "(\\PC|[\\x00-\\x1f\\x7f\"\\\\]|\u{2028}){0,40}",
            n: u64,
        ) {
            let mut out = String::from("x");
            push_json_str(&mut out, &text);
            proptest::prop_assert_eq!(&out[1..], serde_json::to_string(&text).unwrap());
            let mut out = String::new();
            push_u64(&mut out, n);
            proptest::prop_assert_eq!(out, n.to_string());
            let (mut out, i) = (String::new(), n.cast_signed());
            push_i64(&mut out, i);
            proptest::prop_assert_eq!(out, i.to_string());
        }
    }

    /// Every ASCII byte, alone and before each other one, at every place of an eight-byte
    /// word and of the tail after the last whole word, escapes as `serde_json` escapes it.
    #[test]
    fn every_byte_escapes_as_serde_json() {
        for b in 0..=0x7fu8 {
            for next in 0..=0x7fu8 {
                for at in [0, 1, 6, 7, 8, 9, 15, 16, 17, 18] {
                    let mut text = vec![b'a'; 19];
                    text[at] = b;
                    if at + 1 < text.len() {
                        text[at + 1] = next;
                    }
                    let text = String::from_utf8(text).unwrap();
                    let mut out = String::new();
                    push_json_str(&mut out, &text);
                    assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }

    /// Payloads written into one buffer are redacted each in place, a popped one is not
    /// journaled, and each becomes a record of its own.
    #[test]
    fn bodies_are_redacted_in_place_and_appended_as_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r.jsonl");
        let mut j = Journal::new(path.clone(), "r".into());
        j.set_redactor(super::super::Redactor::new(
            [("API_TOKEN".to_owned(), "hunter2hunter2".to_owned())],
            [],
        ));
        let mut bodies = Bodies::default();
        for (i, text) in ["plain", "the token is hunter2hunter2!", "dropped", "last"]
            .iter()
            .enumerate()
        {
            let buf = bodies.buf();
            buf.push_str("{\"text\":");
            push_json_str(buf, text);
            buf.push('}');
            let len = bodies.seal(&j);
            if i == 1 {
                assert_eq!(len, r#"{"text":"the token is [redacted]!"}"#.len());
            }
            if i == 2 {
                bodies.pop();
            }
        }
        assert_eq!(j.append_bodies("agent.event", &bodies).unwrap(), 3);
        let texts: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].clone())
            .collect();
        assert_eq!(texts, ["plain", "the token is [redacted]!", "last"]);
    }

    /// A journal whose file was replaced or removed while it was open fails every later
    /// append, saying which, and never writes a new file in its place.
    #[test]
    fn a_replaced_or_removed_journal_fails_every_append() {
        for replace in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("runs/r.jsonl");
            let journal = Journal::new(path.clone(), "r".into());
            journal.append("a", Map::new()).unwrap();
            if replace {
                std::fs::write(dir.path().join("other"), "x\n").unwrap();
                std::fs::rename(dir.path().join("other"), &path).unwrap();
            } else {
                std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
            }
            for _ in 0..2 {
                let e = format!("{:#}", journal.append("b", Map::new()).unwrap_err());
                let want = if replace {
                    "was replaced by another file"
                } else {
                    "disappeared"
                };
                assert!(e.contains(want), "{e}");
            }
            let left = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(left, if replace { "x\n" } else { "" });
        }
    }

    #[test]
    fn seq_continues_and_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r.jsonl");
        let j = Journal::new(path.clone(), "r".into());
        assert_eq!(j.append("a", Map::new()).unwrap(), 1);
        assert_eq!(j.append("b", Map::new()).unwrap(), 2);
        // A crash leaves half a record.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":1,\"seq\":3,\"ty")
            .unwrap();
        assert_eq!(j.append("c", Map::new()).unwrap(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2]["type"], "c");
        assert_eq!(parsed[2]["run"], "r");
    }
}
