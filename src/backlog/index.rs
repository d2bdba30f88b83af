//! A listing index: what `looper ls` shows, cached per backlog under `LOOPER_HOME`, so listing
//! a 100k-task backlog does not parse and validate 30 MB each time.
//!
//! The index is keyed by the backlog file's identity (size, inode, mtime and ctime in
//! nanoseconds; ctime cannot be set by hand, so any write changes the key). It is written
//! only after the file passed validation; a stale or missing index means a full load, which
//! also reports an invalid file. It lists the tasks as Looper holds them: a completion made
//! in the file outside Looper, which Looper's next write refuses, is listed with the status
//! Looper keeps and marked (`refused`), and a project-done marker added outside Looper is
//! left out and named on the `dropped` line. (Looper's own state changes only when it writes
//! the backlog, which changes the key.)

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
    /// The file marks the task done, made outside Looper: `status` is what Looper keeps.
    pub refused: bool,
}

impl Row {
    pub fn from_view(t: &TaskView<'_>) -> Row {
        Row {
            id: t.id.to_string(),
            priority: t.priority,
            status: t.status,
            depends_on: t.depends_on.iter().map(ToString::to_string).collect(),
            title: t.title.to_string(),
            refused: false,
        }
    }
}

const HEADER: &str = "looper-index 2";

/// The identity of the file at `path`, or `None` if it cannot be read.
pub fn file_key(path: &Path) -> Option<String> {
    std::fs::metadata(path).ok().map(|m| key_of(&m))
}

/// The identity of a file with metadata `m`: its size, inode and times.
pub fn key_of(m: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{} {}.{}",
        m.len(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// The index text of the file with `key`, if the stored index belongs to it.
pub fn read_text(index_path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(index_path).ok()?;
    let mut lines = text.splitn(3, '\n');
    (lines.next()? == HEADER && lines.next()? == key).then_some(())?;
    Some(text)
}

/// A row borrowed from the index text; fields stay escaped until asked for.
#[derive(Debug, Clone, Copy)]
pub struct RawRow<'a> {
    pub id: &'a str,
    pub priority: u8,
    pub status: Status,
    /// See [`Row::refused`].
    pub refused: bool,
    deps: &'a str,
    title: &'a str,
}

impl<'a> RawRow<'a> {
    pub fn title(&self) -> std::borrow::Cow<'a, str> {
        unescape(self.title)
    }

    pub fn id(&self) -> std::borrow::Cow<'a, str> {
        unescape(self.id)
    }

    pub fn depends_on(&self) -> impl Iterator<Item = std::borrow::Cow<'a, str>> {
        self.deps.split(',').filter(|d| !d.is_empty()).map(unescape)
    }
}

/// The index text's parts from [`read_text`]: the rows, and the ids of the project-done
/// markers added outside Looper (left out of the rows); `None` if it is damaged.
pub fn rows(text: &str) -> Option<(Vec<RawRow<'_>>, Vec<std::borrow::Cow<'_, str>>)> {
    let mut lines = text.split('\n').skip(2);
    let dropped = lines
        .next()?
        .strip_prefix("dropped\t")?
        .split(',')
        .filter(|d| !d.is_empty())
        .map(unescape)
        .collect();
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut f = line.splitn(6, '\t');
        let id = f.next()?;
        let priority = f.next()?.parse().ok()?;
        let status = Status::parse(f.next()?)?;
        let deps = f.next()?;
        let refused = match f.next()? {
            "refused" => true,
            "" => false,
            _ => return None,
        };
        let title = f.next()?;
        rows.push(RawRow {
            id,
            priority,
            status,
            refused,
            deps,
            title,
        });
    }
    Some((rows, dropped))
}

/// Renders the index text for the file with `key` and stores it (best effort: a failure to
/// store only costs speed). Returns the text either way. `dropped`: the ids of the
/// project-done markers added outside Looper, which the rows leave out.
pub fn write(index_path: &Path, key: &str, rows: &[Row], dropped: &[String]) -> String {
    let mut out = String::with_capacity(rows.len() * 64 + 64);
    out.push_str(HEADER);
    out.push('\n');
    out.push_str(key);
    out.push('\n');
    let dropped: Vec<String> = dropped.iter().map(|d| escape(d)).collect();
    let _ = writeln!(out, "dropped\t{}", dropped.join(","));
    for r in rows {
        let deps: Vec<String> = r.depends_on.iter().map(|d| escape(d)).collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            escape(&r.id),
            r.priority,
            r.status.as_str(),
            deps.join(","),
            if r.refused { "refused" } else { "" },
            escape(&r.title)
        );
    }
    if let Some(dir) = index_path.parent() {
        let _ = crate::file::create_private_dir(dir);
    }
    let _ = crate::file::write_atomic_nosync(index_path, out.as_bytes(), 0o600);
    out
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

fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('\\') {
        return std::borrow::Cow::Borrowed(s);
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
    std::borrow::Cow::Owned(out)
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
                refused: true,
            },
            Row {
                id: "T2".into(),
                priority: 1,
                status: Status::Todo,
                depends_on: vec![],
                title: String::new(),
                refused: false,
            },
        ];
        let _ = write(&p, "k", &rows, &["D,1".into(), "D2".into()]);
        let text = read_text(&p, "k").unwrap();
        let back: Vec<Row> = rows_of(&text);
        assert_eq!(back, rows);
        assert_eq!(super::rows(&text).unwrap().1, ["D,1", "D2"]);
        assert_eq!(read_text(&p, "other"), None);
        // An index of the first format is not read as one of this format.
        std::fs::write(&p, "looper-index 1\nk\nT1\t3\ttodo\t\tA\n").unwrap();
        assert_eq!(read_text(&p, "k"), None);
    }

    fn rows_of(text: &str) -> Vec<Row> {
        super::rows(text)
            .unwrap()
            .0
            .iter()
            .map(|r| Row {
                id: r.id().into_owned(),
                priority: r.priority,
                status: r.status,
                depends_on: r.depends_on().map(std::borrow::Cow::into_owned).collect(),
                title: r.title().into_owned(),
                refused: r.refused,
            })
            .collect()
    }
}
