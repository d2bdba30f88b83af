//! Rate limits (DESIGN §6): when an agent's CLI reports one, the time it lifts is kept in
//! `<state>/limits.json` by agent name, so a restarted Looper keeps using the fallback, or
//! keeps waiting, instead of hammering the API. A limit without a reset time backs off:
//! 1 minute, doubling with each consecutive limit of the same agent, at most 30 minutes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The on-disk format's version.
const VERSION: u32 = 1;
const BACKOFF_FIRST_S: i64 = 60;
const BACKOFF_MAX_S: i64 = 30 * 60;

/// One agent's limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Limit {
    /// When the agent may be used again.
    pub(crate) until: Timestamp,
    /// What the CLI said, in words (`rate-limited, reset 3:05 PM`).
    pub(crate) reason: String,
    /// Consecutive limits without a successful run between them.
    pub(crate) strikes: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LimitsFile {
    v: u32,
    limits: BTreeMap<String, Limit>,
}

/// The limits of one project's agents.
#[derive(Debug)]
pub(crate) struct Limits {
    path: PathBuf,
    map: BTreeMap<String, Limit>,
}

impl Limits {
    /// Reads `<state>/limits.json`. A file that is not Looper's (unreadable, another
    /// version) is an error naming it: waits must not be forgotten silently.
    pub(crate) fn load(state: &Path) -> anyhow::Result<Limits> {
        let path = state.join("limits.json");
        let map = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: LimitsFile = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is not a limits file Looper can read: delete it to forget the \
                         agents' rate limits",
                        path.display()
                    )
                })?;
                if file.v != VERSION {
                    anyhow::bail!(
                        "{} has version {} and this Looper reads version {VERSION}: delete it \
                         to forget the agents' rate limits",
                        path.display(),
                        file.v
                    );
                }
                file.limits
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Limits { path, map })
    }

    /// The agent's limit if it still holds at `now`.
    pub(crate) fn active(&self, agent: &str, now: Timestamp) -> Option<&Limit> {
        self.map.get(agent).filter(|l| l.until > now)
    }

    /// Records a limit reported at `now`; returns it.
    pub(crate) fn hit(
        &mut self,
        agent: &str,
        reset_at: Option<&str>,
        retry_after_s: Option<u64>,
        now: Timestamp,
    ) -> anyhow::Result<Limit> {
        let strikes = self.map.get(agent).map_or(0, |l| l.strikes) + 1;
        let backoff = || {
            let exp = strikes.saturating_sub(1).min(10);
            let seconds = (BACKOFF_FIRST_S << exp).min(BACKOFF_MAX_S);
            now + SignedDuration::from_secs(seconds)
        };
        let until = retry_after_s
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| now + SignedDuration::from_secs(s))
            .or_else(|| reset_at.and_then(|r| r.parse::<Timestamp>().ok()))
            .filter(|t| *t > now)
            .unwrap_or_else(backoff);
        let reason = match (reset_at, retry_after_s) {
            (Some(r), _) => format!("rate-limited, reset {r}"),
            (None, Some(s)) => format!("rate-limited, retry after {s}s"),
            (None, None) => "rate-limited, no reset time given: backing off".to_owned(),
        };
        let limit = Limit {
            until,
            reason,
            strikes,
        };
        self.map.insert(agent.to_owned(), limit.clone());
        self.save()?;
        Ok(limit)
    }

    /// Forgets an agent's limit after a run that was not limited.
    pub(crate) fn clear(&mut self, agent: &str) -> anyhow::Result<()> {
        if self.map.remove(agent).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> anyhow::Result<()> {
        let file = LimitsFile {
            v: VERSION,
            limits: self.map.clone(),
        };
        let text = serde_json::to_string_pretty(&file)? + "\n";
        crate::file::write_atomic(&self.path, text.as_bytes(), 0o600)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reset_times_back_off_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-11-30T12:00:00Z");
        let mut limits = Limits::load(dir.path()).unwrap();
        let l = limits.hit("codex", None, Some(20), now).unwrap();
        assert_eq!(l.until, at("2026-11-30T12:00:20Z"));
        let l = limits
            .hit("claude", Some("2026-11-30T13:00:00Z"), None, now)
            .unwrap();
        assert_eq!(l.until, at("2026-11-30T13:00:00Z"));
        // Words Looper cannot read as a time back off: 1, 2, 4 minutes ...
        let l = limits
            .hit("pi", Some("3pm (Europe/Berlin)"), None, now)
            .unwrap();
        assert_eq!(l.until, at("2026-11-30T12:01:00Z"));
        let l = limits.hit("pi", None, None, now).unwrap();
        assert_eq!(l.until, at("2026-11-30T12:02:00Z"));
        for _ in 0..20 {
            limits.hit("pi", None, None, now).unwrap();
        }
        assert_eq!(
            limits.active("pi", now).unwrap().until,
            at("2026-11-30T12:30:00Z")
        );

        // A restarted Looper sees the same limits.
        let again = Limits::load(dir.path()).unwrap();
        assert_eq!(again.active("claude", now).unwrap().strikes, 1);
        assert!(again.active("codex", at("2026-11-30T12:00:21Z")).is_none());
        let mut again = again;
        again.clear("claude").unwrap();
        assert!(
            Limits::load(dir.path())
                .unwrap()
                .active("claude", now)
                .is_none()
        );

        std::fs::write(dir.path().join("limits.json"), "{\"v\": 9, \"limits\": {}}").unwrap();
        let err = Limits::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("has version 9"), "{err:#}");
    }
}
