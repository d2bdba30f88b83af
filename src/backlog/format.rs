//! The one way Looper writes JSON documents: 2-space indentation, keys in their stored order,
//! a trailing newline.

use serde_json::Value;

/// Renders a JSON value the way every Looper-written file looks.
pub fn to_pretty_string(value: &Value) -> String {
    // Writing a `Value` into a `Vec` cannot fail: every key is a string and no IO is done.
    let mut out = serde_json::to_string_pretty(value).unwrap_or_default();
    out.push('\n');
    out
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_has_two_spaces_and_newline() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":[1,{"c":null}]}"#).unwrap();
        assert_eq!(
            to_pretty_string(&v),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
