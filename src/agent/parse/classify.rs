//! Failure classification shared by the parsers: from an API error's structured parts
//! (status, error type) or, where a CLI gives only a message (codex `turn.failed`, pi
//! `errorMessage`), from that message.
//!
//! These functions only ever see the text of a CLI's *error* event, never arbitrary output,
//! so a `429` in a file the agent printed cannot make a run look rate-limited.

use serde_json::Value;

use super::json::{status_at, str_at};
use crate::agent::event::FailureClass;

/// Error `type`/`code` values that mean a rate or usage limit, from the Responses, Messages
/// and Gemini APIs.
const RATE_LIMIT_KINDS: &[&str] = &[
    "rate_limit_exceeded",
    "rate_limit_error",
    "rate_limit",
    "insufficient_quota",
    "usage_limit_reached",
    "resource_exhausted",
];

/// Error `type`/`code` values that mean bad or missing credentials.
const AUTH_KINDS: &[&str] = &[
    "authentication_error",
    "authentication_failed",
    "permission_error",
    "invalid_api_key",
    "unauthenticated",
    "permission_denied",
    "unauthorized",
];

/// Error `type`/`code` values of server-side trouble, worth a retry.
const SERVER_KINDS: &[&str] = &[
    "server_error",
    "api_error",
    "overloaded_error",
    "internal",
    "unavailable",
];

/// Phrases that only appear in rate- or usage-limit messages.
const RATE_LIMIT_WORDS: &[&str] = &[
    "rate limit",
    "rate_limit",
    "too many requests",
    "usage limit",
    "quota",
];

/// Phrases that only appear in credential errors.
const AUTH_WORDS: &[&str] = &[
    "unauthorized",
    "invalid api key",
    "invalid_api_key",
    "authentication",
];

/// Classifies an API error from its parts. `kinds` are the error's `type`, `code` or status
/// name; `message` is used for reset times and, when the parts say nothing, for the class.
pub(crate) fn api_error(status: Option<u16>, kinds: &[&str], message: &str) -> FailureClass {
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_ascii_lowercase()).collect();
    let lower = message.to_ascii_lowercase();
    let is_kind = |set: &[&str]| kinds.iter().any(|k| set.contains(&k.as_str()));
    let says = |set: &[&str]| set.iter().any(|w| lower.contains(w));
    if status == Some(429)
        || is_kind(RATE_LIMIT_KINDS)
        || (status.is_none() && says(RATE_LIMIT_WORDS))
    {
        return FailureClass::RateLimited {
            reset_at: reset_hint(message),
            retry_after_s: retry_after_hint(message),
        };
    }
    if matches!(status, Some(401 | 403))
        || is_kind(AUTH_KINDS)
        || (status.is_none() && says(AUTH_WORDS))
    {
        return FailureClass::Auth;
    }
    let retryable = match status {
        Some(s) => s >= 500 || s == 408 || s == 409,
        // Without a status, trust the error type; a bare message is most often a dropped
        // connection or an overloaded server.
        None => kinds.is_empty() || is_kind(SERVER_KINDS),
    };
    FailureClass::Api { status, retryable }
}

/// Classifies a CLI's error message: the raw response body when it is or holds JSON
/// (`{"error": {"type", "code", "message", "status"}}`), otherwise the text, where a
/// standalone 4xx/5xx number is taken as the HTTP status.
pub(crate) fn error_message(message: &str) -> FailureClass {
    // The body may be the whole message or wrapped in words (gemini: `[API Error: {…}]`).
    let body = serde_json::from_str::<Value>(message)
        .ok()
        .or_else(|| crate::agent::report::last_json_object(message).map(Value::Object));
    if let Some(body) = body
        && let Some(error) = body.get("error").filter(|e| e.is_object())
    {
        let status = status_at(error, "/status").or_else(|| status_at(error, "/code"));
        let kinds: Vec<&str> = ["/type", "/code", "/status"]
            .iter()
            .filter_map(|p| str_at(error, p))
            .filter(|k| !k.is_empty())
            .collect();
        let text = str_at(error, "/message").unwrap_or(message);
        return api_error(status, &kinds, text);
    }
    api_error(http_status(message), &[], message)
}

/// A rate-limit or auth class read from a non-fatal error message, if it says so; other
/// classes are not hints.
pub(crate) fn hint(message: &str) -> Option<FailureClass> {
    match error_message(message) {
        class @ (FailureClass::RateLimited { .. } | FailureClass::Auth) => Some(class),
        _ => None,
    }
}

/// The first standalone number from 400 to 599 in a message (`last status: 429 Too Many`).
fn http_status(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        // A dot joins digits in addresses and versions (`127.0.0.1`, `4.29.1`), but may
        // also end a sentence (`error 500.`).
        let digit = |j: Option<usize>| j.and_then(|j| bytes.get(j)).is_some_and(u8::is_ascii_digit);
        let joins = |j: usize, beyond: Option<usize>| {
            bytes[j].is_ascii_alphanumeric() || bytes[j] == b'.' && digit(beyond)
        };
        let bounded_before = start == 0 || !joins(start - 1, start.checked_sub(2));
        let bounded_after = i == bytes.len() || !joins(i, Some(i + 1));
        if i - start == 3 && bounded_before && bounded_after {
            let status: u16 = text[start..i].parse().ok()?;
            if (400..600).contains(&status) {
                return Some(status);
            }
        }
    }
    None
}

/// When a limit resets, from the CLI's words: claude's older `…|<unix seconds>` suffix, or the
/// phrase after `resets at`, `reset at`, `try again at` or `resets`.
pub(crate) fn reset_hint(text: &str) -> Option<String> {
    if let Some((_, tail)) = text.rsplit_once('|') {
        let tail = tail.trim();
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            return tail.parse().ok().and_then(epoch_to_rfc3339);
        }
    }
    phrase_after(
        text,
        &["resets at ", "reset at ", "try again at ", "resets "],
    )
}

/// Seconds to wait, from `try again in 20s` or `try again in 2 days 3 hours`.
#[expect(
    clippy::cast_sign_loss,
    reason = "negative totals are filtered out first"
)]
fn retry_after_hint(text: &str) -> Option<u64> {
    let phrase = phrase_after(text, &["try again in ", "retry after ", "retry in "])?;
    let span: jiff::Span = phrase.parse().ok()?;
    let seconds = span
        .total(jiff::SpanTotal::from(jiff::Unit::Second).days_are_24_hours())
        .ok()?;
    (seconds >= 0.0).then(|| seconds.ceil() as u64)
}

/// The rest of the sentence after the first marker found (ASCII case-insensitive).
fn phrase_after(text: &str, markers: &[&str]) -> Option<String> {
    // ASCII lowercasing keeps byte offsets, so indices into `lower` are valid in `text`.
    let lower = text.to_ascii_lowercase();
    markers.iter().find_map(|marker| {
        let start = lower.find(marker)? + marker.len();
        let rest = &text[start..];
        let end = [rest.find(". "), rest.find('\n')]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let phrase = rest[..end]
            .trim()
            .trim_end_matches(|c| ".,;:]}".contains(c))
            .trim();
        (!phrase.is_empty()).then(|| phrase.to_owned())
    })
}

/// A Unix time in seconds as RFC 3339.
pub(crate) fn epoch_to_rfc3339(seconds: i64) -> Option<String> {
    jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_json_bodies_classify_by_type() {
        let body = r#"{"error": {"message": "mock http error 400", "type": "invalid_request_error", "code": "mock_error"}}"#;
        assert_eq!(
            error_message(body),
            FailureClass::Api {
                status: None,
                retryable: false
            }
        );
        let body = r#"{"error": {"message": "Rate limit reached for gpt-5 on tokens per min. Please try again in 20s. Visit …", "type": "requests", "code": "rate_limit_exceeded"}}"#;
        assert_eq!(
            error_message(body),
            FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(20)
            }
        );
        let body = r#"{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}"#;
        assert_eq!(error_message(body), FailureClass::Auth);
        let body = r#"{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(error_message(body), FailureClass::rate_limited());
    }

    #[test]
    fn plain_messages_classify_by_status_and_words() {
        assert_eq!(
            error_message(
                "exceeded retry limit, last status: 429 Too Many Requests, request id: abc"
            ),
            FailureClass::rate_limited()
        );
        assert_eq!(
            error_message("unexpected status 401 Unauthorized: missing bearer"),
            FailureClass::Auth
        );
        assert_eq!(
            error_message(
                "You've hit your usage limit. Upgrade to Pro, or try again at Nov 24th, 2026 3:05 PM."
            ),
            FailureClass::RateLimited {
                reset_at: Some("Nov 24th, 2026 3:05 PM".into()),
                retry_after_s: None
            }
        );
        assert_eq!(
            error_message("You've hit your usage limit. Try again in 2 days 3 hours."),
            FailureClass::RateLimited {
                reset_at: None,
                retry_after_s: Some(2 * 86_400 + 3 * 3_600)
            }
        );
        assert_eq!(
            error_message("stream disconnected before completion: mock upstream exploded"),
            FailureClass::Api {
                status: None,
                retryable: true
            }
        );
        // An address or a version is not a status.
        assert_eq!(
            http_status("gateway 127.0.0.1:18081 v4.29.1 and 4290"),
            None
        );
        assert_eq!(http_status("(500)"), Some(500));
        assert_eq!(http_status("mock http error 500. This is"), Some(500));
    }

    #[test]
    fn a_status_beats_the_words() {
        // A 400 that merely mentions quotas is a client error, not a rate limit.
        assert_eq!(
            api_error(Some(400), &[], "bad quota field"),
            FailureClass::Api {
                status: Some(400),
                retryable: false
            }
        );
        assert_eq!(
            api_error(Some(529), &["overloaded_error"], "Overloaded"),
            FailureClass::Api {
                status: Some(529),
                retryable: true
            }
        );
    }

    #[test]
    fn reset_hints() {
        assert_eq!(
            reset_hint("Claude AI usage limit reached|1795485600"),
            Some("2026-11-24T02:00:00Z".into())
        );
        assert_eq!(
            reset_hint("You've hit your limit · resets 3pm (Europe/Berlin)"),
            Some("3pm (Europe/Berlin)".into())
        );
        assert_eq!(reset_hint("mock http error 500"), None);
    }

    #[test]
    fn hints_are_only_rate_limits_and_auth() {
        assert_eq!(
            hint("Reconnecting... 2/5 (stream error: 429 Too Many Requests)"),
            Some(FailureClass::rate_limited())
        );
        assert_eq!(hint("Reconnecting... 1/5 (connection reset)"), None);
    }
}
