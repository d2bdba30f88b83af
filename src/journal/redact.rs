//! Redaction (DESIGN §2): known secret shapes never reach the journal. Values of environment
//! variables named like `*_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD` (Looper's own and the
//! agent profiles'), bearer tokens, and API-key-shaped words (`sk-…`, `sk-ant-…`, `AIza…`,
//! `ghp_…`, `AKIA…`) are replaced by `[redacted]` in every string of a record.

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
        Self { values, in_json }
    }

    /// Redacts a serialized JSON document without parsing it, with the same result as
    /// walking its strings. A secret JSON escapes is looked for only as JSON writes it, the
    /// others as they are: so a match cannot leave one string for another (that takes an
    /// unescaped quote), and a replacement outside a string (`[redacted]` is not JSON there),
    /// or after the first half of an escape, breaks the document: then it is parsed and
    /// walked instead.
    pub fn json(&self, json: String) -> String {
        let Some(clean) = self.text_in(&json, true) else {
            return json;
        };
        if serde_json::from_str::<serde::de::IgnoredAny>(&clean).is_ok() {
            return clean;
        }
        match serde_json::from_str::<Value>(&json) {
            Ok(mut value) => {
                self.value(&mut value);
                value.to_string()
            }
            Err(_) => clean,
        }
    }

    /// Redacts every string in `value`, in place.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(clean) = self.text(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }

    /// The text with secrets replaced, or `None` when it holds none.
    pub fn text(&self, text: &str) -> Option<String> {
        self.text_in(text, false)
    }

    fn text_in(&self, text: &str, json: bool) -> Option<String> {
        let secrets = if json { &self.in_json } else { &self.values };
        let mut out: Option<String> = None;
        for secret in secrets {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(secret.as_str()) {
                out = Some(current.replace(secret.as_str(), MARK));
            }
        }
        let current = out.as_deref().unwrap_or(text);
        if let Some(clean) = shapes(current) {
            out = Some(clean);
        }
        out
    }
}

/// Replaces bearer tokens and API-key-shaped words; `None` when there are none.
fn shapes(text: &str) -> Option<String> {
    const PREFIXES: &[(&str, usize)] = &[
        ("sk-", 20),
        ("AIza", 30),
        ("ghp_", 30),
        ("github_pat_", 30),
        ("xoxb-", 20),
        ("AKIA", 16),
    ];
    let cheap = PREFIXES.iter().any(|(p, _)| text.contains(p)) || text.contains("earer ");
    if !cheap {
        return None;
    }
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_.=+/".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while !rest.is_empty() {
        // Start of a word?
        let boundary = out.chars().last().is_none_or(|c| !is_token_char(c));
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
