//! A listing index: what `looper ls` shows, cached per backlog under `LOOPER_HOME`, so listing
//! a 100k-task backlog does not parse and validate 30 MB each time.
//!
//! The index is keyed by the backlog file's identity (size, inode, mtime and ctime in
//! nanoseconds; ctime cannot be set by hand, so any write changes the key). It is written
//! only after the file passed validation; a stale or missing index means a full load, which
//! also reports an invalid file.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::model::{Status, TaskView};

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub priority: u8,
    pub status: Status,
    pub depends_on: Vec<String>,
    pub title: String,
}

impl Row {
    pub fn from_view(t: &TaskView<'_>) -> Row {
        Row {
            id: t.id.to_string(),
            priority: t.priority,
            status: t.status,
            depends_on: t.depends_on.iter().map(ToString::to_string).collect(),
            title: t.title.to_string(),
        }
    }
}

const HEADER: &str = "looper-index 1";

/// The identity of the file at `path`, or `None` if it cannot be read.
pub fn file_key(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{} {} {}.{} {}.{}",
        m.len(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// Reads the index if it belongs to the file with `key`.
pub fn read(index_path: &Path, key: &str) -> Option<Vec<Row>> {
    let text = std::fs::read_to_string(index_path).ok()?;
    let mut lines = text.split('\n');
    if lines.next()? != HEADER || lines.next()? != key {
        return None;
    }
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut f = line.split('\t');
        let id = unescape(f.next()?);
        let priority = f.next()?.parse().ok()?;
        let status = Status::parse(f.next()?)?;
        let deps = f.next()?;
        let depends_on = if deps.is_empty() {
            Vec::new()
        } else {
            deps.split(',').map(unescape).collect()
        };
        let title = unescape(f.next()?);
        rows.push(Row {
            id,
            priority,
            status,
            depends_on,
            title,
        });
    }
    Some(rows)
}

/// Writes the index for the file with `key` (best effort: a failure only costs speed).
pub fn write(index_path: &Path, key: &str, rows: &[Row]) {
    let mut out = String::with_capacity(rows.len() * 64 + 64);
    out.push_str(HEADER);
    out.push('\n');
    out.push_str(key);
    out.push('\n');
    for r in rows {
        let deps: Vec<String> = r.depends_on.iter().map(|d| escape(d)).collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            escape(&r.id),
            r.priority,
            r.status.as_str(),
            deps.join(","),
            escape(&r.title)
        );
    }
    if let Some(dir) = index_path.parent() {
        let _ = crate::file::create_private_dir(dir);
    }
    let _ = crate::file::write_atomic_nosync(index_path, out.as_bytes(), 0o600);
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ',' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('c') => out.push(','),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_awkward_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i");
        let rows = vec![
            Row {
                id: "T,1\t".into(),
                priority: 2,
                status: Status::Blocked,
                depends_on: vec!["a,b".into(), "c\\".into()],
                title: "x\ty\nz \\ é".into(),
            },
            Row {
                id: "T2".into(),
                priority: 1,
                status: Status::Todo,
                depends_on: vec![],
                title: String::new(),
            },
        ];
        write(&p, "k", &rows);
        assert_eq!(read(&p, "k"), Some(rows));
        assert_eq!(read(&p, "other"), None);
    }
}
