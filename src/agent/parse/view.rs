//! Read-only JSON for the stream parsers: the [`Json`] accessors the dialects use, and
//! [`Borrowed`], a value that borrows its strings from the line it was parsed from.
//!
//! Every line an agent prints is parsed once and dropped. A `serde_json::Value` (with
//! `preserve_order`) allocates and hashes every key and copies every string; a `Borrowed`
//! allocates only a `Vec` per object or array and a `String` per string with escapes.
//! `serde_json` still does the parsing, so what is and isn't JSON (depth limit, number
//! range, surrogates, trailing characters) is unchanged, and each accessor answers as the
//! `Value` method of the same name would for the same text (`view::tests`,
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
        let rest = pointer.strip_prefix('/')?;
        if !rest.contains('~') {
            // The dialects' pointers: nothing to unescape.
            return rest.split('/').try_fold(self, step);
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

/// Parses one line, as `serde_json::from_str::<Value>` would accept or refuse it.
pub(crate) fn parse(raw: &str) -> Option<Borrowed<'_>> {
    serde_json::from_str(raw).ok()
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
