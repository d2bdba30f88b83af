//! Redaction (DESIGN §2): known secret shapes never reach the journal. Values of environment
//! variables named like `*_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD` (Looper's own and the
//! agent profiles'), bearer tokens, and API-key-shaped words (`sk-…`, `sk-ant-…`, `AIza…`,
//! `ghp_…`, `AKIA…`) are replaced by `[redacted]` in every string of a record.

use aho_corasick::AhoCorasick;
use serde_json::Value;

const MARK: &str = "[redacted]";

/// Replaces secrets in journal records.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Exact secret values, longest first so a secret containing another goes whole.
    values: Vec<String>,
    /// The same values as JSON writes them (escaped where JSON escapes), longest first: what
    /// to look for in serialized records. Computed once, not per record.
    in_json: Vec<String>,
    /// Finds any of `values` (then any of `in_json`) in one pass, so a record that holds
    /// none (nearly all of them) is read once, not once per secret.
    any_value: Option<[AhoCorasick; 2]>,
}

/// Whether an environment variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_API_KEY"]
        .iter()
        .any(|s| upper.ends_with(s))
        || upper == "PASSWORD"
        || upper.contains("AUTH_TOKEN")
}

impl Redactor {
    /// A redactor for secret-named variables of `env` plus `extra` values (an agent profile's
    /// environment, all of which is treated as secret).
    pub fn new<'a>(
        env: impl IntoIterator<Item = (String, String)>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut values: Vec<String> = env
            .into_iter()
            .filter(|(k, v)| is_secret_name(k) && v.len() >= 6)
            .map(|(_, v)| v)
            .chain(
                extra
                    .into_iter()
                    .filter(|v| v.len() >= 6)
                    .map(str::to_owned),
            )
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let mut in_json: Vec<String> = values
            .iter()
            .filter_map(|v| {
                let json = serde_json::to_string(v).ok()?;
                Some(json[1..json.len() - 1].to_owned())
            })
            .collect();
        in_json.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let any_value = (!values.is_empty())
            .then(|| {
                Some([
                    AhoCorasick::new(&values).ok()?,
                    AhoCorasick::new(&in_json).ok()?,
                ])
            })
            .flatten();
        Self {
            values,
            in_json,
            any_value,
        }
    }

    /// Redacts a serialized JSON document without parsing it, with the same result as
    /// walking its strings. A secret JSON escapes is looked for only as JSON writes it, the
    /// others as they are: so a match cannot leave one string for another (that takes an
    /// unescaped quote), and a replacement outside a string (`[redacted]` is not JSON there),
    /// or after the first half of an escape, breaks the document: then it is parsed and
    /// walked instead.
    pub fn json(&self, json: String) -> String {
        self.json_changed(&json).unwrap_or(json)
    }

    /// [`json`](Self::json) for a document the caller keeps: `None` when it holds nothing
    /// to replace, as nearly every one does.
    pub fn json_changed(&self, json: &str) -> Option<String> {
        // JSON may spell a character in more ways than `serde_json` writes it (`\/`,
        // `\u0041`, as PHP's, Python's or Go's encoders do): a secret spelled so is not
        // found in the text, so a document with such an escape has its strings read decoded.
        if has_other_escape(json)
            && let Ok(mut value) = serde_json::from_str::<Value>(json)
        {
            return self.value_changed(&mut value).then(|| value.to_string());
        }
        let scan = Scan::of(json);
        let clean = self.text_in(json, true, Some(&scan));
        // Lines of a private key's body are found only in real strings (here a JSON escape
        // like `\n` glues onto them): a document that may hold one is walked.
        if !scan.long_run || !has_key_body(json) {
            let clean = clean?;
            if serde_json::from_str::<serde::de::IgnoredAny>(&clean).is_ok() {
                return Some(clean);
            }
            return Some(self.walk(json, clean));
        }
        let clean = clean.unwrap_or_else(|| json.to_owned());
        Some(self.walk(json, clean))
    }

    /// Parses `json` and redacts its strings; `clean` (the text redacted as text) when it is
    /// not JSON.
    fn walk(&self, json: &str, clean: String) -> String {
        match serde_json::from_str::<Value>(json) {
            Ok(mut value) => {
                self.value(&mut value);
                value.to_string()
            }
            Err(_) => clean,
        }
    }

    /// Redacts every string in `value`, in place.
    pub fn value(&self, value: &mut Value) {
        self.value_changed(value);
    }

    /// [`value`](Self::value), saying whether anything was replaced.
    fn value_changed(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.text(s).map(|clean| *s = clean).is_some(),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.value_changed(v) | changed),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |changed, v| self.value_changed(v) | changed),
            _ => false,
        }
    }

    /// The text with secrets replaced, or `None` when it holds none.
    pub fn text(&self, text: &str) -> Option<String> {
        self.text_in(text, false, None)
    }

    /// `scan`, when given, is [`Scan::of`] `text`.
    fn text_in(&self, text: &str, json: bool, scan: Option<&Scan>) -> Option<String> {
        let secrets = if json { &self.in_json } else { &self.values };
        let mut out: Option<String> = None;
        let any = self
            .any_value
            .as_ref()
            .is_none_or(|both| both[usize::from(json)].is_match(text));
        for secret in secrets.iter().filter(|_| any) {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(secret.as_str()) {
                out = Some(current.replace(secret.as_str(), MARK));
            }
        }
        let current = out.as_deref().unwrap_or(text);
        if let Some(clean) = private_keys(current) {
            out = Some(clean);
        }
        let current = out.as_deref().unwrap_or(text);
        let no_shape = out.is_none() && scan.is_some_and(|scan| !scan.shape);
        if !no_shape && let Some(clean) = shapes(current) {
            out = Some(clean);
        }
        if !json {
            let current = out.as_deref().unwrap_or(text);
            if let Some(clean) = key_body_lines(current) {
                out = Some(clean);
            }
        }
        out
    }
}

/// Whether serialized JSON holds an escape `serde_json` does not write: `\/`, or a `\u`
/// escape of anything but a control character (which it writes so, and no secret holds).
fn has_other_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut at = 0;
    while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let escape = at + found + 1;
        match bytes.get(escape) {
            Some(b'/') => return true,
            Some(b'u') => {
                let control = bytes.get(escape + 1..escape + 4).is_some_and(|hex| {
                    hex[0] == b'0' && hex[1] == b'0' && matches!(hex[2], b'0' | b'1')
                });
                if !control {
                    return true;
                }
            }
            _ => {}
        }
        // Past the escaped character (`\\` included): the next backslash starts an escape.
        at = escape + 1;
    }
    false
}

/// Replaces PEM private-key blocks (`-----BEGIN … PRIVATE KEY-----` to the matching END
/// line); a block whose END is not in this text (an agent printing it line by line) is
/// replaced up to the end of the text. `None` when there are none.
fn private_keys(text: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN ";
    const TAIL: &str = "PRIVATE KEY-----";
    /// The SIMD search for `BEGIN`, built once: this looks at every record (`str::contains`
    /// took 9% of the journal writer's samples).
    static FIND_BEGIN: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(BEGIN));
    FIND_BEGIN.find(text.as_bytes())?;
    let mut out = String::new();
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find(BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        // The label: `RSA `, `EC `, `OPENSSH `, `ENCRYPTED `, or nothing.
        let label_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == ' '))
            .unwrap_or(after.len());
        if !after[..label_len].ends_with("PRIVATE KEY") || !after[label_len..].starts_with("-----")
        {
            out.push_str(&rest[..at + BEGIN.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        out.push_str(MARK);
        changed = true;
        rest = match after.find("-----END ") {
            Some(end) => {
                let tail = &after[end..];
                match tail.find(TAIL) {
                    Some(t) => &tail[t + TAIL.len()..],
                    None => "",
                }
            }
            None => "",
        };
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Whether a serialized record may hold a line of a private key's body: a run of 40 or
/// more base64 characters mixing upper case, lower case and digits.
fn has_key_body(json: &str) -> bool {
    let mut run = [0usize; 4];
    for b in json.bytes().chain(std::iter::once(b' ')) {
        match b {
            b'A'..=b'Z' => run[1] += 1,
            b'a'..=b'z' => run[2] += 1,
            b'0'..=b'9' => run[3] += 1,
            b'+' | b'/' => {}
            _ => {
                if run.iter().sum::<usize>() >= 40 && run[1..].iter().all(|&n| n > 0) {
                    return true;
                }
                run = [0; 4];
                continue;
            }
        }
        run[0] += usize::from(matches!(b, b'+' | b'/'));
    }
    false
}

/// Replaces lines that are a line of a private key's base64 body (an agent printing a key
/// line by line): 40 or more base64 characters, or 16 or more ending in `=` padding, mixing
/// upper case, lower case and digits, with few `/` (a path has many). `None` when there
/// are none.
fn key_body_lines(text: &str) -> Option<String> {
    let is_body = |line: &str| {
        let line = line.trim();
        let data = line.trim_end_matches('=');
        let padded = data.len() < line.len() && line.len() - data.len() <= 2;
        (data.len() >= 40 || (padded && data.len() >= 16))
            && data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            && data.bytes().any(|b| b.is_ascii_uppercase())
            && data.bytes().any(|b| b.is_ascii_lowercase())
            && data.bytes().any(|b| b.is_ascii_digit())
            && data.bytes().filter(|&b| b == b'/').count() * 10 <= data.len()
    };
    if !text.split('\n').any(is_body) {
        return None;
    }
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| if is_body(line) { MARK } else { line })
        .collect();
    Some(lines.join("\n"))
}

/// API-key shapes: a prefix and the least length of the whole word.
const PREFIXES: &[(&str, usize)] = &[
    ("sk-", 20),
    ("sk_live_", 20),
    ("rk_live_", 20),
    ("AIza", 30),
    ("ya29.", 30),
    ("ghp_", 30),
    ("gho_", 30),
    ("ghu_", 30),
    ("ghs_", 30),
    ("ghr_", 30),
    ("github_pat_", 30),
    ("glpat-", 20),
    ("xoxb-", 20),
    ("xoxp-", 20),
    ("xoxa-", 20),
    ("xoxr-", 20),
    ("xoxs-", 20),
    ("xapp-", 20),
    ("hf_", 30),
    ("npm_", 36),
    ("AKIA", 16),
    ("ASIA", 16),
    // A JSON Web Token: its header is base64 of `{"`.
    ("eyJ", 30),
];

/// Replaces bearer tokens and API-key-shaped words; `None` when there are none.
fn shapes(text: &str) -> Option<String> {
    // Every shape is a run of at least 16 token characters (see the minimum lengths), and a
    // bearer token follows "earer ": a text with neither, nearly every text, holds none.
    if !Scan::of(text).shape {
        return None;
    }
    every_shape(text)
}

/// What one pass over a text's bytes tells the secret checks, so that nearly every text (an
/// agent's output line holds no secret) is read once.
struct Scan {
    /// Whether a word starts like a shape or a bearer token. Words start where
    /// [`every_shape`] looks for them: at the start, after a character that is not a letter,
    /// digit, `-` or `_`, or after a JSON escape such as `\n`.
    shape: bool,
    /// Whether there is a run of 40 or more characters a token is made of
    /// (`A-Z a-z 0-9 - _ . = + /`), as a private key's body line is.
    long_run: bool,
}

/// For each pair of bytes (`first | second << 8`), whether a prefix or "bearer" (any case)
/// starts with it: one bit each, 8 KiB.
static PAIRS: [u64; 1024] = {
    const fn set(mut table: [u64; 1024], first: u8, second: u8) -> [u64; 1024] {
        let at = first as usize | (second as usize) << 8;
        table[at >> 6] |= 1 << (at & 63);
        table
    }
    let mut table = [0u64; 1024];
    let mut i = 0;
    while i < PREFIXES.len() {
        let p = PREFIXES[i].0.as_bytes();
        table = set(table, p[0], p[1]);
        i += 1;
    }
    table = set(table, b'b', b'e');
    table = set(table, b'b', b'E');
    table = set(table, b'B', b'e');
    set(table, b'B', b'E')
};

/// Whether a word starting with `first`, `second` may be a shape or a bearer token: one
/// look-up, no branch, as the scan does it for every byte of every record.
fn starts_pair(first: u8, second: u8) -> bool {
    let at = usize::from(first) | usize::from(second) << 8;
    PAIRS[at >> 6] >> (at & 63) & 1 == 1
}

/// Whether `b` is a character a token is made of.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'=' | b'+' | b'/');
        b += 1;
    }
    table
};

/// Finds the byte pairs of [`PAIRS`] with the SIMD searcher of `aho-corasick` (Teddy), about
/// three times as fast as looking each byte up (0.6 → 0.18 ns per byte of journal records);
/// `None` on a CPU without the instructions it needs, where the table is used.
static PAIR_FINDER: std::sync::LazyLock<Option<aho_corasick::packed::Searcher>> =
    std::sync::LazyLock::new(pair_finder);

/// The searcher for [`PAIR_FINDER`], or `None` when the CPU can't run it.
fn pair_finder() -> Option<aho_corasick::packed::Searcher> {
    let mut pairs: Vec<[u8; 2]> = PREFIXES
        .iter()
        .map(|(p, _)| [p.as_bytes()[0], p.as_bytes()[1]])
        .chain([*b"be", *b"bE", *b"Be", *b"BE"])
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    aho_corasick::packed::Config::new()
        .builder()
        .extend(&pairs)
        .build()
}

impl Scan {
    fn of(text: &str) -> Self {
        Self::with(text, PAIR_FINDER.as_ref())
    }

    /// [`Scan::of`], finding the pairs with `finder` (or the table without one).
    fn with(text: &str, finder: Option<&aho_corasick::packed::Searcher>) -> Self {
        let bytes = text.as_bytes();
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        // Whether a shape or a bearer token starts at `i`, where a pair of `PAIRS` does.
        let starts_shape = |i: usize| {
            (i == 0
                || !is_word(bytes[i - 1])
                || (i >= 2 && bytes[i - 2] == b'\\' && matches!(bytes[i - 1], b'n' | b't' | b'r')))
                && {
                    let rest = &bytes[i..];
                    rest.get(..7)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer "))
                        || PREFIXES.iter().any(|(p, _)| rest.starts_with(p.as_bytes()))
                }
        };
        let shape = match finder {
            Some(finder) => {
                let mut at = 0;
                loop {
                    let span = aho_corasick::Span::from(at..bytes.len());
                    match finder.find_in(bytes, span) {
                        Some(pair) if starts_shape(pair.start()) => break true,
                        // Pairs may overlap ("eya"): the next one may start a byte later.
                        Some(pair) => at = pair.start() + 1,
                        None => break false,
                    }
                }
            }
            None => bytes
                .windows(2)
                .enumerate()
                .any(|(i, pair)| starts_pair(pair[0], pair[1]) && starts_shape(i)),
        };
        // A run of 40 holds a whole aligned block of 20: only a text with such a block is
        // measured.
        let long_run = bytes
            .chunks_exact(20)
            .any(|block| block.iter().all(|&b| TOKEN[usize::from(b)]))
            && longest_run(bytes) >= 40;
        Self { shape, long_run }
    }
}

/// The longest run of token characters in `bytes`.
fn longest_run(bytes: &[u8]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for &b in bytes {
        run = if TOKEN[usize::from(b)] { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Whether the text may hold a bearer token (`Bearer `, `bearer `, `BEARER `).
fn has_bearer(text: &str) -> bool {
    let bytes = text.as_bytes();
    memchr::memmem::find(bytes, b"earer ").is_some()
        || memchr::memmem::find(bytes, b"EARER ").is_some()
}

/// [`shapes`] without the first look at token runs.
fn every_shape(text: &str) -> Option<String> {
    let cheap = PREFIXES.iter().any(|(p, _)| text.contains(p)) || has_bearer(text);
    if !cheap {
        return None;
    }
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_.=+/".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        // Start of a word? A key follows `=` in `NAME=value` (an environment dump, a
        // `.env` file), and in serialized JSON an escape such as `\n`, whose `n` is not a
        // word of its own.
        let mut before = out.chars().rev();
        let boundary = match (before.next(), before.next()) {
            (None, _) | (Some('n' | 't' | 'r'), Some('\\')) => true,
            (Some(c), _) => !(c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        };
        let lower_rest = rest.get(..7).map(str::to_ascii_lowercase);
        if boundary && lower_rest.as_deref() == Some("bearer ") {
            let token_len = rest[7..]
                .find(|c| !is_token_char(c))
                .unwrap_or(rest.len() - 7);
            if token_len >= 8 {
                out.push_str(&rest[..7]);
                out.push_str(MARK);
                rest = &rest[7 + token_len..];
                changed = true;
                continue;
            }
        }
        if boundary && let Some((_, min)) = PREFIXES.iter().find(|(p, _)| rest.starts_with(p)) {
            let len = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
            if len >= *min {
                out.push_str(MARK);
                rest = &rest[len..];
                changed = true;
                continue;
            }
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// The look at token runs only skips texts the full check finds nothing in.
        #[test]
        fn the_token_run_filter_changes_nothing(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "sk-", "AKIA", "eyJ", "ghp_", "Bearer ", "bearer ", "BEARER ", "xoxb-", "=",
                    " ", "\\n", "/", ".", "abcDEF123", "0123456789", "ABCDEFGHIJ", "é", "\"",
                ]),
                0..24,
            ),
        ) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(shapes(&text), every_shape(&text));
            proptest::prop_assert_eq!(Scan::of(&text).shape, Scan::with(&text, None).shape);
            let long_run = Scan::of(&text).long_run;
            proptest::prop_assert_eq!(long_run, longest_run(text.as_bytes()) >= 40);
            proptest::prop_assert!(long_run || !has_key_body(&text));
        }
    }

    /// Whether a word starting at `i` starts like a shape or a bearer token, looked at by
    /// itself: what [`Scan::of`] finds in one pass.
    fn shape_at(bytes: &[u8], i: usize) -> bool {
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        let boundary = i == 0
            || !is_word(bytes[i - 1])
            || (i >= 2 && bytes[i - 2] == b'\\' && matches!(bytes[i - 1], b'n' | b't' | b'r'));
        let rest = &bytes[i..];
        boundary
            && (rest
                .get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer "))
                || PREFIXES.iter().any(|(p, _)| rest.starts_with(p.as_bytes())))
    }

    /// The scan finds a word that starts like a shape wherever it is: every prefix and
    /// "bearer" at every offset, after a space, a letter (no word start), a JSON escape and
    /// other characters, as looking at each place by itself finds it; with the SIMD searcher
    /// (which this machine has) and with the table.
    #[test]
    fn shapes_are_found_at_every_offset() {
        #[cfg(target_arch = "x86_64")]
        assert!(
            PAIR_FINDER.is_some(),
            "an x86-64 CPU with SSSE3 runs the SIMD searcher"
        );
        let starts = PREFIXES
            .iter()
            .map(|(p, _)| *p)
            .chain(["bearer ", "BeArEr ", "be"]);
        for start in starts {
            for before in [" ", "x", "\\n", "\\x", "-", "\""] {
                for offset in 0..20 {
                    for after in ["", "abcdefghijklmnopqrstuvwxyz0123456789", " z"] {
                        let text = format!("{}{before}{start}{after}", "a".repeat(offset));
                        let bytes = text.as_bytes();
                        let each = (0..bytes.len()).any(|i| shape_at(bytes, i));
                        assert_eq!(Scan::of(&text).shape, each, "{text:?}");
                        assert_eq!(Scan::with(&text, None).shape, each, "{text:?}");
                        // "be" alone starts no shape.
                        if before == " " && start != "be" {
                            assert!(each, "{text:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn long_runs_are_found_wherever_they_start() {
        for offset in 0..45 {
            for len in [19, 20, 39, 40, 41, 60] {
                let text = format!(
                    "{}{}\"{}",
                    " ".repeat(offset),
                    "aB3/".repeat(20).get(..len).unwrap(),
                    ":".repeat(offset % 7)
                );
                assert_eq!(
                    Scan::of(&text).long_run,
                    len >= 40,
                    "offset {offset}, run {len}"
                );
            }
        }
    }

    #[test]
    fn redacts_named_values_and_shapes() {
        let r = Redactor::new(
            [
                ("OPENAI_API_KEY".to_owned(), "plain-secret-123".to_owned()),
                ("HOME".to_owned(), "/root/home-dir".to_owned()),
                ("GH_TOKEN".to_owned(), "abc".to_owned()),
            ],
            ["profile-token-xyz"],
        );
        let mut record = json!({
            "raw": "key=plain-secret-123 home=/root/home-dir",
            "nested": ["Authorization: Bearer abcdefghijklmnop", {"x": "profile-token-xyz!"}],
            "shapes": "use sk-proj-ABCDEFGHIJKLMNOPQRSTUV and AIzaSyA1234567890abcdefghijklmnopqrs ok",
            "fine": "risk-free sk-short ask-me",
            "n": 3
        });
        r.value(&mut record);
        assert_eq!(record["raw"], "key=[redacted] home=/root/home-dir");
        assert_eq!(record["nested"][0], "Authorization: Bearer [redacted]");
        assert_eq!(record["nested"][1]["x"], "[redacted]!");
        assert_eq!(record["shapes"], "use [redacted] and [redacted] ok");
        assert_eq!(record["fine"], "risk-free sk-short ask-me");
        assert_eq!(record["n"], 3);
    }

    #[test]
    fn serialized_json_is_redacted_like_its_values() {
        let r = Redactor::new(
            [
                ("A_TOKEN".to_owned(), "quote\"d-secret".to_owned()),
                ("B_KEY".to_owned(), "plain-secret-123".to_owned()),
            ],
            [],
        );
        let record = json!({
            "raw": "x quote\"d-secret y plain-secret-123",
            "events": [{"text": "Bearer abcdefghijklmnop\nnext"}],
        });
        let mut walked = record.clone();
        r.value(&mut walked);
        let redacted = r.json(record.to_string());
        assert_eq!(serde_json::from_str::<Value>(&redacted).unwrap(), walked);
        assert_eq!(walked["raw"], "x [redacted] y [redacted]");

        // A "secret" spanning two strings is not one, and one that is a number is not
        // in a string: both are left alone, as the walk leaves them.
        for secret in ["abc\",\"def", "1234567"] {
            let r = Redactor::new([("X_TOKEN".to_owned(), secret.to_owned())], []);
            let text = json!(["xabc", "defy", 12_345_678]).to_string();
            assert_eq!(r.json(text.clone()), text);
        }
    }

    /// A secret (or a key's shape) written with escapes `serde_json` does not use is found
    /// all the same: `\/` (PHP, some Java encoders), `\u` for any character (Python's
    /// default `ensure_ascii`, Go's `\u0026` for `&`, `\u002d` for a dash).
    #[test]
    fn secrets_behind_other_escapes_are_found() {
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let r = Redactor::new(
            [
                ("AWS_SECRET".to_owned(), aws.to_owned()),
                ("DB_PASSWORD".to_owned(), "pässwörd&more".to_owned()),
            ],
            [],
        );
        for (line, field) in [
            (
                r#"{"type":"x","text":"key wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYEXAMPLEKEY end"}"#,
                "text",
            ),
            (r#"{"out":"p\u00e4ssw\u00f6rd\u0026more","n":1}"#, "out"),
            (r#"{"out":"\u0070ässwörd&more"}"#, "out"),
            (
                r#"{"cmd":"curl -H 'x: sk\u002dproj-abcdefghijklmnopqrstuvwx'"}"#,
                "cmd",
            ),
        ] {
            let clean = r.json_changed(line).unwrap_or_else(|| panic!("{line}"));
            let value: Value = serde_json::from_str(&clean).unwrap();
            let mut walked: Value = serde_json::from_str(line).unwrap();
            r.value(&mut walked);
            assert_eq!(value, walked, "{line}");
            let text = value[field].as_str().unwrap();
            assert!(text.contains(MARK), "{line} -> {text}");
            for secret in [aws, "pässwörd", "proj-abcdefghij"] {
                assert!(!clean.contains(secret), "{line} -> {clean}");
            }
        }
        // Such escapes alone change nothing: the document is kept as it is, and members
        // keep their order.
        for line in [
            r#"{"z":"a\/b","a":"caf\u00e9 \u001b[1m"}"#,
            r#"{"a":"\\u0041 \\\/"}"#,
            r#"{"a":"ends in a backslash \\"}"#,
        ] {
            assert_eq!(r.json_changed(line), None, "{line}");
        }
        assert!(has_other_escape(r#""a\/b""#));
        assert!(has_other_escape(r#""\u00e9""#));
        assert!(has_other_escape(r#""\\\u0041""#));
        assert!(!has_other_escape(r#""\\u0041 \\/ \n \u001b \u0000""#));
        assert!(!has_other_escape("\"cut \\"));
    }

    #[test]
    fn private_keys_tokens_and_words_after_escapes() {
        let r = Redactor::new([], []);
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
        let pem = format!(
            "key:\n-----BEGIN PRIVATE KEY-----\n{body}\nMIIEvQ+/abc12XYZ==\n-----END PRIVATE KEY-----\nafter"
        );
        let mut record = json!({
            "final": pem,
            "line": body,
            "begin": "-----BEGIN RSA PRIVATE KEY-----",
            "jwt": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "after_newline": "first line\nghs_16C7e42F292c6912E7710c838347Ae178B4a and\txoxp-1234-5678-abcdefghij",
            "env_dump": "GH_PAT=github_pat_11ABCDEFGHIJKLMNOPQRST_0123456789abcdefghij AWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C9986",
            "path": "/Users/JohnSmith/Documents/Projects2024/MyApp",
        });
        let text = record.to_string();
        r.value(&mut record);
        assert_eq!(record["final"], "key:\n[redacted]\nafter");
        assert_eq!(record["line"], "[redacted]");
        assert_eq!(record["begin"], "[redacted]");
        assert_eq!(record["jwt"], "token [redacted]");
        assert_eq!(
            record["env_dump"],
            "GH_PAT=[redacted] AWS_ACCESS_KEY_ID=[redacted]"
        );
        assert_eq!(
            record["after_newline"],
            "first line\n[redacted] and\t[redacted]"
        );
        assert_eq!(
            record["path"], "/Users/JohnSmith/Documents/Projects2024/MyApp",
            "a path is not a key"
        );
        assert_eq!(
            serde_json::from_str::<Value>(&r.json(text)).unwrap(),
            record
        );
    }

    #[test]
    fn secret_names() {
        for name in [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET",
            "ANTHROPIC_AUTH_TOKEN",
            "DB_PASSWORD",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["HOME", "PATH", "KEYBOARD", "TOKENIZER_PATH"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
