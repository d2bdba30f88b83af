//! Timestamps: Looper writes RFC 3339 UTC; it reads any reasonable ISO-8601 form.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// Parses an ISO-8601-ish timestamp. A date or date-time without an offset is taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        return TimeZone::UTC.to_timestamp(dt).ok();
    }
    if let Ok(d) = s.parse::<Date>() {
        return TimeZone::UTC.to_timestamp(d.at(0, 0, 0, 0)).ok();
    }
    None
}

/// Now, as Looper writes it: RFC 3339 UTC with whole seconds.
pub fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
