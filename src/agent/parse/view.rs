//! Read-only JSON for the stream parsers: the [`Json`] accessors the dialects use, and
//! [`Borrowed`], a value that borrows its strings from the line it was parsed from.
//!
//! Every line an agent prints is parsed once and dropped. A `serde_json::Value` (with
//! `preserve_order`) allocates and hashes every key and copies every string; a `Borrowed`
//! allocates only a `Vec` per object or array and a `String` per string with escapes.
//! [`parse`] reads the structure and plain strings by hand and leaves `\u` escapes and
//! numbers other than small positive integers to `serde_json`; what is and isn't JSON
//! (depth limit, number range, surrogates, control characters, trailing characters) is
//! what `serde_json` says, and each accessor answers as the `Value` method of the same name
//! would for the same text (`view::tests`,
//! `json::tests::borrowed_and_value_read_mutated_captures_alike`).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value the dialects can read, as `serde_json::Value`'s methods do.
pub(crate) trait Json: Sized {
    /// The value of an object's member (the last one, when the key repeats).
    fn get(&self, key: &str) -> Option<&Self>;
    /// An array's element.
    fn at(&self, index: usize) -> Option<&Self>;
    fn as_str(&self) -> Option<&str>;
    fn as_u64(&self) -> Option<u64>;
    fn as_i64(&self) -> Option<i64>;
    fn as_f64(&self) -> Option<f64>;
    fn as_bool(&self) -> Option<bool>;
    fn as_array(&self) -> Option<&[Self]>;
    fn is_object(&self) -> bool;
    /// An owned copy, for what outlives the line.
    fn to_value(&self) -> Value;

    /// The value at an RFC 6901 pointer, as `Value::pointer`.
    fn pointer(&self, pointer: &str) -> Option<&Self> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut rest = pointer.strip_prefix('/')?;
        if !rest.as_bytes().contains(&b'~') {
            // The dialects' pointers: nothing to unescape. Split by bytes: `str::split`'s
            // searcher took a third of the time of the lookups.
            let mut target = self;
            while let Some(end) = rest.bytes().position(|b| b == b'/') {
                target = step(target, &rest[..end])?;
                rest = &rest[end + 1..];
            }
            return step(target, rest);
        }
        rest.split('/').try_fold(self, |target, token| {
            step(target, &token.replace("~1", "/").replace("~0", "~"))
        })
    }
}

/// One step of a pointer: a member of an object or an element of an array.
fn step<'v, J: Json>(target: &'v J, token: &str) -> Option<&'v J> {
    if target.is_object() {
        target.get(token)
    } else if target.as_array().is_some() {
        // `Value::pointer`'s index rule: no sign, no leading zero.
        if token.starts_with('+') || (token.starts_with('0') && token.len() > 1) {
            return None;
        }
        target.at(token.parse().ok()?)
    } else {
        None
    }
}

impl Json for Value {
    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }
    fn at(&self, index: usize) -> Option<&Self> {
        Value::get(self, index)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Value::as_u64(self)
    }
    fn as_i64(&self) -> Option<i64> {
        Value::as_i64(self)
    }
    fn as_f64(&self) -> Option<f64> {
        Value::as_f64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_array(&self) -> Option<&[Self]> {
        Value::as_array(self).map(Vec::as_slice)
    }
    fn is_object(&self) -> bool {
        Value::is_object(self)
    }
    fn to_value(&self) -> Value {
        self.clone()
    }
    fn pointer(&self, pointer: &str) -> Option<&Self> {
        Value::pointer(self, pointer)
    }
}

/// A parsed JSON value whose strings borrow from the text when they hold no escapes.
///
/// Numbers are kept as `serde_json` reported them, so the accessors answer as `Value`'s
/// `Number` does. An object is its members in order, duplicates included; lookups take the
/// last, as `Value` keeps the last.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Borrowed<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array(Vec<Borrowed<'a>>),
    Object(Vec<(Cow<'a, str>, Borrowed<'a>)>),
}

impl Json for Borrowed<'_> {
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }
    fn at(&self, index: usize) -> Option<&Self> {
        match self {
            Self::Array(items) => items.get(index),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U64(n) => Some(n),
            Self::I64(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }
    fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U64(n) => i64::try_from(n).ok(),
            Self::I64(n) => Some(n),
            _ => None,
        }
    }
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::U64(n) => Some(n as f64),
            Self::I64(n) => Some(n as f64),
            Self::F64(n) => Some(n),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }
    fn is_object(&self) -> bool {
        matches!(self, Self::Object(_))
    }
    fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::U64(n) => Value::from(*n),
            Self::I64(n) => Value::from(*n),
            Self::F64(n) => Value::from(*n),
            Self::Str(s) => Value::String(s.clone().into_owned()),
            Self::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            // Inserted in order, as `Value`'s own visitor does: a repeated key keeps its
            // first place and its last value.
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone().into_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BorrowedVisitor)
    }
}

struct BorrowedVisitor;

impl<'de> Visitor<'de> for BorrowedVisitor {
    type Value = Borrowed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Borrowed::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Borrowed::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Borrowed::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Borrowed::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Borrowed::U64(n))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        // `Value` stores a non-negative i64 as a positive integer; the accessors agree.
        Ok(u64::try_from(n).map_or(Borrowed::I64(n), Borrowed::U64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // `Value` has no infinities or NaN: it stores them as null.
        Ok(if n.is_finite() {
            Borrowed::F64(n)
        } else {
            Borrowed::Null
        })
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Borrowed::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Borrowed::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Borrowed::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Borrowed::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Agent objects are small; room for 8 members saves most regrowing.
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Borrowed::Object(members))
    }
}

/// An object key, borrowed when it has no escapes (serde's own `Cow` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Parses one line, as `serde_json::from_str::<Value>` would accept or refuse it, and says
/// how deep its arrays and objects nest (0 for a scalar, 1 for an object of scalars).
///
/// By hand, for what costs time: the structure, and strings without escapes (borrowed).
/// A string with escapes and any number but a small positive integer go to `serde_json`,
/// so their rules (escapes, surrogates, number range and rounding) are its own.
pub(crate) fn parse_nested(raw: &str) -> Option<(Borrowed<'_>, u32)> {
    let mut parser = Parser {
        text: raw,
        at: 0,
        depth: 0,
        deepest: 0,
    };
    let value = parser.value()?;
    parser.skip_whitespace();
    (parser.at == raw.len()).then_some((value, parser.deepest))
}

/// [`parse_nested`] without the depth.
#[cfg(test)]
pub(crate) fn parse(raw: &str) -> Option<Borrowed<'_>> {
    parse_nested(raw).map(|(value, _)| value)
}

/// How many bytes `bytes` starts with that a string holds as they are (not `"`, `\`, or a
/// control character), read 8 at a time: strings are most of an agent's line.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of `w` that is below `n` (n <= 128); a byte above the first
    // such byte may be flagged wrongly, the first never is.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let Ok(eight) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(eight);
        let special = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if special != 0 {
            // Little-endian: the lowest flagged bit is the first special byte.
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(bytes.len() - at)
}

/// How deep arrays and objects may nest: `serde_json`'s recursion limit refuses the 128th.
pub(crate) const MAX_DEPTH: u32 = 127;

struct Parser<'a> {
    text: &'a str,
    at: usize,
    depth: u32,
    /// The deepest `depth` reached.
    deepest: u32,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips whitespace, then `byte`; `None` when something else comes.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self) -> Option<Borrowed<'a>> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Borrowed::Str),
            b't' => self.literal("true", Borrowed::Bool(true)),
            b'f' => self.literal("false", Borrowed::Bool(false)),
            b'n' => self.literal("null", Borrowed::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, value: Borrowed<'a>) -> Option<Borrowed<'a>> {
        self.text[self.at..].starts_with(word).then(|| {
            self.at += word.len();
            value
        })
    }

    /// Steps into an array or object past its opening bracket.
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.deepest = self.deepest.max(self.depth);
        self.at += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self) -> Option<Borrowed<'a>> {
        self.enter()?;
        let mut items = Vec::new();
        if !self.closes(b']') {
            loop {
                items.push(self.value()?);
                if !self.after_item(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Borrowed::Array(items))
    }

    fn object(&mut self) -> Option<Borrowed<'a>> {
        self.enter()?;
        // Agent objects are small; room for 8 members saves most regrowing.
        let mut members = Vec::with_capacity(8);
        if !self.closes(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.expect(b':')?;
                members.push((key, self.value()?));
                if !self.after_item(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(Borrowed::Object(members))
    }

    /// Skips whitespace, then `close` when it comes next: an empty array or object.
    fn closes(&mut self, close: u8) -> bool {
        self.skip_whitespace();
        let closes = self.peek() == Some(close);
        self.at += usize::from(closes);
        closes
    }

    /// After an item of an array or object: `true` past a comma (another item follows),
    /// `false` past `close`, `None` on anything else.
    fn after_item(&mut self, close: u8) -> Option<bool> {
        self.skip_whitespace();
        let next = self.peek()?;
        self.at += 1;
        match next {
            b',' => Some(true),
            b if b == close => Some(false),
            _ => None,
        }
    }

    /// A string, at its opening quote: borrowed when it holds no escape.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut at = start + 1;
        let mut escaped = false;
        loop {
            at += plain_run(bytes.get(at..).unwrap_or_default());
            match *bytes.get(at)? {
                b'"' => break,
                // What follows is the escape's to check, by `serde_json` below.
                b'\\' => {
                    escaped = true;
                    at += 2;
                }
                // A raw control character, which a string may not hold.
                _ => return None,
            }
        }
        self.at = at + 1;
        let inner = &self.text[start + 1..at];
        if !escaped {
            return Some(Cow::Borrowed(inner));
        }
        if inner.contains("\\u") {
            return serde_json::from_str(&self.text[start..=at])
                .ok()
                .map(Cow::Owned);
        }
        // The short escapes, which mean one character each.
        let mut out = String::with_capacity(inner.len());
        let mut parts = inner.split('\\');
        out.push_str(parts.next()?);
        let mut parts = parts.peekable();
        while let Some(part) = parts.next() {
            // `\\` splits into an empty part and the text after it.
            if part.is_empty() {
                out.push('\\');
                out.push_str(parts.next()?);
                continue;
            }
            let mut rest = part.chars();
            out.push(match rest.next()? {
                '"' => '"',
                '/' => '/',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                _ => return None,
            });
            out.push_str(rest.as_str());
        }
        Some(Cow::Owned(out))
    }

    /// A number: a small positive integer read here, the rest by `serde_json` (a run of
    /// number characters that isn't one number isn't JSON either way: a number ends at a
    /// delimiter).
    fn number(&mut self) -> Option<Borrowed<'a>> {
        let start = self.at;
        let len = self.text.as_bytes()[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.text.len() - start);
        self.at += len;
        let number = &self.text[start..self.at];
        // Up to 19 digits always fit a u64; a leading zero is refused by `serde_json`.
        if len <= 19
            && number.bytes().all(|b| b.is_ascii_digit())
            && (len == 1 || !number.starts_with('0'))
        {
            return number.parse().ok().map(Borrowed::U64);
        }
        serde_json::from_str(number).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each accessor of `Borrowed` answers as `Value`'s, for every pointer into the text.
    fn assert_agrees(text: &str, pointers: &[&str]) {
        let value: Option<Value> = serde_json::from_str(text).ok();
        let borrowed = parse(text);
        assert_eq!(value.is_some(), borrowed.is_some(), "{text}");
        let (Some(value), Some(borrowed)) = (value, borrowed) else {
            return;
        };
        assert_eq!(borrowed.to_value(), value, "{text}");
        assert_eq!(borrowed.to_value().to_string(), value.to_string(), "{text}");
        for p in pointers {
            let (b, v) = (Json::pointer(&borrowed, p), Json::pointer(&value, p));
            assert_eq!(b.map(Json::to_value), v.cloned(), "{text} {p}");
            let (Some(b), Some(v)) = (b, v) else { continue };
            assert_eq!(b.as_str(), Json::as_str(v), "{text} {p}");
            assert_eq!(b.as_u64(), Json::as_u64(v), "{text} {p}");
            assert_eq!(b.as_i64(), Json::as_i64(v), "{text} {p}");
            assert_eq!(b.as_f64(), Json::as_f64(v), "{text} {p}");
            assert_eq!(b.as_bool(), Json::as_bool(v), "{text} {p}");
            assert_eq!(b.is_object(), Json::is_object(v), "{text} {p}");
            assert_eq!(
                b.as_array().map(<[_]>::len),
                Json::as_array(v).map(<[_]>::len)
            );
        }
    }

    #[test]
    fn accessors_agree_with_value() {
        let pointers = [
            "", "/", "/a", "/a/b", "/a/0", "/a/1", "/a/01", "/a/+1", "/a/-1", "/a~1b", "/m~0n",
            "/a/2", "/a/3", "/a/4", "/a/5", "/a/6", "/a/7", "/x", "/k", "/k/0/z", "a",
        ];
        for text in [
            r#"{"a":{"b":1},"a":[true,2]}"#,
            r#"{"a":[-1,0,18446744073709551615,-9223372036854775808,1.5,-0,0.0,1e300]}"#,
            r#"{"a/b":"slash","m~n":"tilde","x":"esc\"aped\n\u00e9\ud83d\ude00"}"#,
            r#"{"k":[{"z":null},{"z":"y"}],"\u0061":{"b":"escaped key"}}"#,
            r#"{"a":9223372036854775807,"x":-9223372036854775809}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":1} x"#,
            "[1,{\"a\":2}]",
            "\"s\"",
            "null",
            &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
            &format!("{}1{}", "[".repeat(100), "]".repeat(100)),
        ] {
            assert_agrees(text, &pointers);
        }
    }

    /// Nesting up to `serde_json`'s recursion limit is read, one level more is refused.
    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [1, 126, 127, 128, 129] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("[{\"a\":", "}]")] {
                let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
                let serde = serde_json::from_str::<Value>(&text).ok();
                assert_eq!(parse(&text).map(|b| b.to_value()), serde, "{depth} {open}");
            }
        }
        assert!(parse(&format!("{}1{}", "[".repeat(127), "]".repeat(127))).is_some());
        assert!(parse(&format!("{}1{}", "[".repeat(128), "]".repeat(128))).is_none());
    }

    /// `plain_run` stops where a byte-by-byte look does: at the first quote, backslash or
    /// control character, wherever it falls in or across the 8-byte words, after any
    /// non-ASCII bytes (whose high bit must not look like a special byte), or at the end.
    #[test]
    fn plain_run_stops_at_the_first_special_byte() {
        let slow = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        let fillers: [&[u8]; 3] = [b"a", "é".as_bytes(), b"\x7f"];
        for len in 0..40 {
            for filler in fillers {
                let plain: Vec<u8> = filler.iter().copied().cycle().take(len).collect();
                assert_eq!(plain_run(&plain), len);
                for at in 0..len {
                    for special in [b'"', b'\\', 0, 0x1f, b'\n'] {
                        let mut bytes = plain.clone();
                        bytes[at] = special;
                        // A second special byte after the first changes nothing.
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                        assert_eq!(plain_run(&bytes), slow(&bytes), "{bytes:?}");
                    }
                }
            }
        }
        for byte in 0..=255u8 {
            let bytes = [b'x', b'x', b'x', byte, b'x', b'x', b'x', b'x', b'x'];
            assert_eq!(plain_run(&bytes), slow(&bytes), "{byte}");
        }
    }

    /// The depth `parse_nested` gives is the deepest point, not the last one.
    #[test]
    fn nesting_depth_is_the_deepest_point() {
        for (text, depth) in [
            ("1", 0),
            ("\"s\"", 0),
            ("{}", 1),
            ("[]", 1),
            (r#"{"a":1,"b":"x"}"#, 1),
            (r#"{"a":[1,{"b":[[]]}],"c":2}"#, 5),
            ("[[[1]],[2],3]", 3),
            (r#"{"a":{"b":{}},"c":{}}"#, 3),
        ] {
            assert_eq!(parse_nested(text).map(|(_, d)| d), Some(depth), "{text}");
        }
        let deep = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(parse_nested(&deep).map(|(_, d)| d), Some(127));
    }

    /// Every ASCII character (and a few others), raw and after a backslash, in a string
    /// value and in a key, is read or refused as `serde_json` reads or refuses it.
    #[test]
    fn every_character_in_a_string_reads_as_serde_json() {
        for c in (0..=0x7fu8).map(char::from).chain(['é', '\u{2028}', '😀']) {
            for text in [
                format!("\"a{c}b\""),
                format!("\"a\\{c}b\""),
                format!("{{\"k{c}\":1}}"),
                format!("{{\"k\\{c}\":[\"x{c}\"]}}"),
            ] {
                let serde = serde_json::from_str::<Value>(&text).ok();
                assert_eq!(parse(&text).map(|b| b.to_value()), serde, "{text:?}");
            }
        }
    }

    /// JSON's pieces and near misses, for texts put together at random.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\t",
        "\r",
        "\u{b}",
        "\"a\"",
        "\"k\":",
        "\"",
        "\\",
        "\\\"",
        "\\n",
        "\\/",
        "\\u00e9",
        "\\ud83d",
        "\\ude00",
        "\\x",
        "\\u12",
        "\u{1}",
        "\u{1f}",
        "\u{7f}",
        "é",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        "0",
        "01",
        "-0",
        "-",
        "1",
        "-1",
        "1.5",
        "2.",
        ".5",
        "1e400",
        "1e-400",
        "-1.5E+3",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775809",
        "a",
        "e",
        "+",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Any text put together from JSON's pieces is read, or refused, as `serde_json`
        /// reads or refuses it.
        #[test]
        fn reads_any_text_as_serde_json(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24),
        ) {
            let text = pieces.concat();
            let serde = serde_json::from_str::<Value>(&text).ok();
            proptest::prop_assert_eq!(parse(&text).map(|b| b.to_value()), serde, "{}", text);
        }

        /// Every value `serde_json` writes (nested, with escapes and numbers of every
        /// kind) is read back as it was.
        #[test]
        fn reads_back_what_serde_json_writes(value in arb_value(), pretty: bool) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                value.to_string()
            };
            let serde = serde_json::from_str::<Value>(&text).ok();
            proptest::prop_assert_eq!(parse(&text).map(|b| b.to_value()), serde, "{}", text);
        }
    }

    fn arb_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "(\\PC|[\\x00-\\x1f\"\\\\]|\u{2028}){0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::vec(("[a-z\"\\\\]{0,4}", inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn strings_without_escapes_borrow() {
        let Some(Borrowed::Object(members)) = parse(r#"{"a":"plain","b\n":"x\ty"}"#) else {
            panic!("not an object");
        };
        assert!(matches!(members[0].0, Cow::Borrowed("a")));
        assert!(matches!(
            members[0].1,
            Borrowed::Str(Cow::Borrowed("plain"))
        ));
        assert!(matches!(members[1].0, Cow::Owned(_)));
        assert!(matches!(&members[1].1, Borrowed::Str(Cow::Owned(s)) if s == "x\ty"));
    }
}
