//! When a profile runs: once, every interval, or on a cron expression.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// A schedule as written in the config:
/// `{ every = "6h" }`, `{ cron = "0 2 * * *" }` (UTC) or
/// `{ once = "2026-12-05T02:00:00Z" }` / `{ once = "now" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduleSpec {
    Once(String),
    Every(String),
    Cron(String),
}

/// A schedule, checked.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// One run: at a time, or (`None`) as soon as the daemon starts.
    Once(Option<DateTime<Utc>>),
    /// Runs this far apart, start to start; a run longer than the interval
    /// is followed at once by the next, never overlapped.
    Every(Duration),
    /// Runs at each match of the expression, in UTC; matches that fall
    /// during a run are skipped, not queued.
    Cron(Box<croner::Cron>),
}

impl FromStr for Schedule {
    type Err = String;

    /// Only for tests and messages: `every 6h`, `cron 0 2 * * *`, `once now`.
    fn from_str(s: &str) -> Result<Schedule, String> {
        let (kind, arg) = s.split_once(' ').ok_or("expected \"<kind> <value>\"")?;
        Schedule::parse(&match kind {
            "once" => ScheduleSpec::Once(arg.into()),
            "every" => ScheduleSpec::Every(arg.into()),
            "cron" => ScheduleSpec::Cron(arg.into()),
            _ => return Err(format!("unknown schedule kind {kind:?}")),
        })
    }
}

impl Schedule {
    pub fn parse(spec: &ScheduleSpec) -> Result<Schedule, String> {
        match spec {
            ScheduleSpec::Once(at) if at.trim().eq_ignore_ascii_case("now") => {
                Ok(Schedule::Once(None))
            }
            ScheduleSpec::Once(at) => DateTime::parse_from_rfc3339(at.trim())
                .map(|t| Schedule::Once(Some(t.with_timezone(&Utc))))
                .map_err(|e| format!("once = {at:?}: an RFC 3339 time or \"now\" ({e})")),
            ScheduleSpec::Every(d) => {
                let d = stages::fetch::config::parse_duration(d)
                    .map_err(|e| format!("every = {d:?}: {e}"))?;
                if d < Duration::from_secs(1) {
                    return Err("every: the interval must be at least 1s".into());
                }
                Ok(Schedule::Every(d))
            }
            ScheduleSpec::Cron(expr) => {
                let cron = croner::Cron::new(expr.trim())
                    .with_seconds_optional()
                    .parse()
                    .map_err(|e| format!("cron = {expr:?}: {e}"))?;
                // An expression that never matches (Feb 30th) would leave
                // the profile silently idle.
                cron.find_next_occurrence(&Utc::now(), false)
                    .map_err(|e| format!("cron = {expr:?} never matches: {e}"))?;
                Ok(Schedule::Cron(Box::new(cron)))
            }
        }
    }

    /// The first run of a daemon's life, given when the profile's last run
    /// (of any status) started, from its ledger.
    pub fn first(
        &self,
        now: DateTime<Utc>,
        last_start: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Once(None) => Some(now),
            // Done already if a run started at or after the time.
            Schedule::Once(Some(at)) if last_start.is_some_and(|l| l >= *at) => None,
            Schedule::Once(Some(at)) => Some((*at).max(now)),
            Schedule::Every(d) => Some(match last_start {
                Some(l) => add(l, *d).max(now),
                None => now,
            }),
            Schedule::Cron(c) => c.find_next_occurrence(&now, false).ok(),
        }
    }

    /// After a run that started at `started` and ended at `now`.
    pub fn next(&self, started: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Once(_) => None,
            Schedule::Every(d) => Some(add(started, *d).max(now)),
            Schedule::Cron(c) => c.find_next_occurrence(&now, false).ok(),
        }
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_runs_at_once_then_start_to_start() {
        let s: Schedule = "every 6h".parse().unwrap();
        let now = t("2026-12-04T10:00:00Z");
        assert_eq!(s.first(now, None), Some(now));
        // The last run (before a restart) started 2h ago: 4h to go.
        assert_eq!(
            s.first(now, Some(t("2026-12-04T08:00:00Z"))),
            Some(t("2026-12-04T14:00:00Z"))
        );
        assert_eq!(s.first(now, Some(t("2026-12-03T08:00:00Z"))), Some(now));
        assert_eq!(
            s.next(t("2026-12-04T10:00:00Z"), t("2026-12-04T10:30:00Z")),
            Some(t("2026-12-04T16:00:00Z"))
        );
        // A run longer than the interval: the next starts when it ends.
        assert_eq!(
            s.next(t("2026-12-04T10:00:00Z"), t("2026-12-04T17:00:00Z")),
            Some(t("2026-12-04T17:00:00Z"))
        );
    }

    #[test]
    fn cron_is_utc_and_skips_matches_missed_during_a_run() {
        let s: Schedule = "cron 30 2 * * *".parse().unwrap();
        let now = t("2026-12-04T10:00:00Z");
        assert_eq!(s.first(now, None), Some(t("2026-12-05T02:30:00Z")));
        // A run from 02:30 to 03:00 next day is followed by the day after.
        assert_eq!(
            s.next(t("2026-12-05T02:30:00Z"), t("2026-12-05T03:00:00Z")),
            Some(t("2026-12-06T02:30:00Z"))
        );
        let s: Schedule = "cron */15 * * * MON-FRI".parse().unwrap();
        // 2026-12-05 is a Saturday.
        assert_eq!(
            s.first(t("2026-12-05T12:01:00Z"), None),
            Some(t("2026-12-07T00:00:00Z"))
        );
        let s: Schedule = "cron @hourly".parse().unwrap();
        assert_eq!(s.first(now, None), Some(t("2026-12-04T11:00:00Z")));
    }

    #[test]
    fn once_runs_once() {
        let now = t("2026-12-04T10:00:00Z");
        let s: Schedule = "once now".parse().unwrap();
        assert_eq!(s.first(now, Some(now)), Some(now));
        assert_eq!(s.next(now, now), None);
        let s: Schedule = "once 2026-12-04T12:00:00Z".parse().unwrap();
        assert_eq!(s.first(now, None), Some(t("2026-12-04T12:00:00Z")));
        // Its time passed while the daemon was down, never run: run now.
        let later = t("2026-12-04T13:00:00Z");
        assert_eq!(s.first(later, Some(t("2026-12-04T11:00:00Z"))), Some(later));
        // It ran: never again, even after a restart.
        assert_eq!(s.first(later, Some(t("2026-12-04T12:00:01Z"))), None);
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        for (spec, want) in [
            ("cron 61 * * * *", "cron = \"61 * * * *\""),
            ("cron * * 30 2 *", "never matches"),
            ("cron not a cron", "cron ="),
            ("every 0s", "at least 1s"),
            ("every soon", "every = \"soon\""),
            ("once tomorrow", "RFC 3339"),
        ] {
            let e = spec.parse::<Schedule>().unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
