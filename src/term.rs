//! What the terminal can show: colour only on a terminal, never with `NO_COLOR`.

use std::io::IsTerminal;

/// Whether stdout gets ANSI colour.
pub fn stdout_color() -> bool {
    color_for(std::io::stdout().is_terminal())
}

/// Whether stderr gets ANSI colour (`looper run`'s progress lines).
pub fn stderr_color() -> bool {
    color_for(std::io::stderr().is_terminal())
}

/// Colour on a terminal, never with `NO_COLOR`, always with `CLICOLOR_FORCE`.
fn color_for(terminal: bool) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    terminal
}

/// The SGR code for a word that says how something went: green for `done`, `passed`, `ok`;
/// red for `attempt`, `failed`, `blocked`, `broken`; yellow for what is still going or was
/// cut short; none otherwise.
pub fn outcome_code(word: &str) -> &'static str {
    match word.trim().to_ascii_lowercase().as_str() {
        "done" | "passed" | "ok" | "ok:" => "32",
        "attempt" | "failed" | "failed:" | "blocked" | "broken" | "violation" => "31",
        "unfinished" | "interrupted" | "running" | "doing" | "deferred" | "waiting" => "33",
        _ => "0",
    }
}

/// `padded` (a word already padded to its column) coloured by what `word` means.
pub fn outcome(on: bool, word: &str, padded: &str) -> String {
    match outcome_code(word) {
        "0" => padded.to_owned(),
        code => paint(on, code, padded),
    }
}

/// A cost for people: `$0.0123`, `$0.0123 (estimated)` when a price table made it up from
/// tokens, `unknown` when there is none.
pub fn cost(usd: Option<f64>, estimated: bool) -> String {
    match usd {
        None => "unknown".into(),
        Some(c) if estimated => format!("${c:.4} (estimated)"),
        Some(c) => format!("${c:.4}"),
    }
}

/// Wraps `text` in an SGR colour code when `on`.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The terminal width: `COLUMNS`, else the size of the terminal on stdout, else 100.
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
        })
        .filter(|w| *w >= 40)
        .unwrap_or(100)
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`.
pub fn seconds(ms: u64) -> String {
    #[expect(
        clippy::cast_precision_loss,
        reason = "durations are far below 2^52 ms"
    )]
    let s = ms as f64 / 1000.0;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// A moment for people, in UTC: `2026-11-30 14:05:09 UTC`.
pub fn clock(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `text` made safe for a terminal: every control character but newline and tab becomes
/// U+FFFD, so an agent's output, titles or notes shown by Looper can't clear the screen,
/// move the cursor, set the window title, write the clipboard (OSC 52) or ask the terminal to
/// type (a device status report). With `keep_sgr`, colour sequences (`ESC [ digits ; m`)
/// stay, Looper's own among them; without it nothing of an escape is left to interpret.
pub fn printable(text: &str, keep_sgr: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if keep_sgr && c == '\x1b' {
            let params = rest[1..].strip_prefix('[').map(|after| {
                after.len()
                    - after
                        .trim_start_matches(|p: char| p.is_ascii_digit() || p == ';')
                        .len()
            });
            if let Some(n) = params
                && rest[2 + n..].starts_with('m')
            {
                out.push_str(&rest[..3 + n]);
                rest = &rest[3 + n..];
                continue;
            }
        }
        out.push(if unsafe_char(c) { '\u{fffd}' } else { c });
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn escapes_become_visible_and_colour_stays_only_when_asked() {
        let hostile = "a\x1b[31mred\x1b[0m\x1b]0;title\x07\x1b[2J\x1b[6n\r\n\tb\u{9b}c";
        assert_eq!(
            printable(hostile, false),
            "a\u{fffd}[31mred\u{fffd}[0m\u{fffd}]0;title\u{fffd}\u{fffd}[2J\u{fffd}[6n\u{fffd}\n\tb\u{fffd}c"
        );
        assert_eq!(
            printable(hostile, true),
            "a\x1b[31mred\x1b[0m\u{fffd}]0;title\u{fffd}\u{fffd}[2J\u{fffd}[6n\u{fffd}\n\tb\u{fffd}c"
        );
        assert!(matches!(
            printable("plain\ttext\n", false),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
