//! Telemetry at run time: the Prometheus exporter, the `/metrics`,
//! `/healthz` and `/readyz` endpoints, the Pushgateway push, and the
//! per-run reporting ([`RunMeter`]).
//!
//! The contract (names, units, help, buckets) is `stages::telemetry`. Every
//! metric carries a `profile` label, so one daemon serving several profiles
//! exports them side by side, and a push to a Pushgateway group of
//! `profile` never clashes with another profile's.
//!
//! Without an installed exporter the `metrics` facade is a no-op and the
//! sampled registry is only read when rendering: observing costs nothing.

mod exporter;
mod http;
mod live;
mod push;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use metrics::SharedString;
use stages::channel::ChannelStats;
use stages::ledger::Ledger;
use stages::telemetry::{self as t, lv, Scope};
use stages::transform::TransformStats;

pub use exporter::{install, installed, Exporter};
pub use http::{MetricsServer, Readiness};
pub use live::{live, Live};
pub use push::{push, push_url, PushError};

use crate::config::Config;
use crate::manifest::RunStatus;
use crate::run::{RunError, RunOutcome};
use crate::runtime::StageStats;

/// [`push`] from a thread that is not async.
pub fn push_blocking(base: &str, job: &str, profile: &str, body: String) -> Result<(), PushError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PushError::Send {
            url: "the pushgateway".into(),
            message: e.to_string(),
        })?;
    rt.block_on(push(base, job, profile, body))
}

/// One run's telemetry: registers its stages and channels for sampling,
/// and reports the run's start and end. Dropping it retires the run's
/// sampled series into the process totals.
#[derive(Debug)]
pub struct RunMeter {
    scope: Scope,
    profile: Arc<str>,
    run: u64,
    started: Instant,
}

impl RunMeter {
    /// A run of `cfg`'s profile begins.
    pub fn start(cfg: &Config) -> RunMeter {
        let scope = Scope::new(&cfg.profile);
        let meter = RunMeter {
            profile: Arc::from(cfg.profile.as_str()),
            run: live().begin(),
            started: Instant::now(),
            scope,
        };
        let s = &meter.scope;
        set_status(s, "processing");
        s.gauge(t::RUN_START, &[]).set(unix_now());
        s.gauge(t::RUN_SUCCESS_MAX_AGE, &[])
            .set(cfg.metrics.success_max_age.as_secs_f64());
        // From the ledger, so a fresh process (a cron'd sync pushing to a
        // Pushgateway) still tells when the last good run was.
        if let Some(at) = last_success(cfg) {
            s.gauge(t::RUN_LAST_SUCCESS, &[]).set(at);
        }
        zero_known_series(s);
        meter
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Sample `stats` until the run ends.
    pub fn stage(&self, stats: &Arc<StageStats>) {
        live().stage(self.run, &self.profile, stats);
        self.scope
            .counter(
                t::STAGE_ERRORS,
                &[("stage", lv(stats.name)), ("reason", lv("failed"))],
            )
            .increment(0);
    }

    /// Sample a channel until the run ends.
    pub fn channel(&self, stats: &Arc<ChannelStats>) {
        live().channel(self.run, &self.profile, stats);
    }

    /// A worker of `stage` failed.
    pub fn stage_error(&self, stage: &'static str, reason: &'static str) {
        self.scope
            .counter(
                t::STAGE_ERRORS,
                &[("stage", lv(stage)), ("reason", lv(reason))],
            )
            .increment(1);
    }

    /// Items a stage dropped, by reason (`duplicate`, `dead_letter`, `truncated`).
    pub fn discarded(&self, stage: &'static str, reason: &'static str, n: u64) {
        if n > 0 {
            self.scope
                .counter(
                    t::STAGE_DISCARDED,
                    &[("stage", lv(stage)), ("reason", lv(reason))],
                )
                .increment(n);
        }
    }

    /// The run ended (or could not start).
    pub fn finish(&self, outcome: &Result<RunOutcome, RunError>) {
        let s = &self.scope;
        let status = match outcome {
            Ok(o) => o.manifest.status,
            Err(_) => RunStatus::Failed,
        };
        set_status(s, status.as_str());
        s.counter(t::RUNS, &[("status", lv(status.as_str()))])
            .increment(1);
        let duration = match outcome {
            Ok(o) => o.manifest.duration_seconds,
            Err(_) => self.started.elapsed().as_secs_f64(),
        };
        s.gauge(t::RUN_DURATION, &[]).set(duration);
        if let Ok(o) = outcome {
            let c = &o.manifest.counts;
            for st in stages::ledger::Status::ALL {
                let n = c.findings_by_status.get(st.as_str()).copied().unwrap_or(0);
                s.gauge(t::RUN_FINDINGS, &[("status", lv(st.as_str()))])
                    .set(n as f64);
            }
            s.gauge(t::RUN_ASSETS, &[]).set(c.assets as f64);
            self.discarded(
                "assemble",
                "duplicate",
                c.duplicates.assets + c.duplicates.findings,
            );
            if status == RunStatus::Complete {
                // The ledger's end time, so a later process seeding from
                // the ledger reports the very same value.
                let ended = rfc3339_seconds(&o.manifest.ended_at).unwrap_or_else(unix_now);
                s.gauge(t::RUN_LAST_SUCCESS, &[]).set(ended);
            }
        }
        if let Some(rss) = peak_rss_bytes() {
            s.gauge(t::RUN_PEAK_RSS, &[]).set(rss as f64);
        }
    }
}

impl Drop for RunMeter {
    fn drop(&mut self) {
        live().end(self.run);
    }
}

/// Report the transform counters that grew since `reported` (a worker's
/// running totals), then remember them as reported.
pub fn transform_deltas(meter: &Scope, now: &TransformStats, reported: &mut TransformStats) {
    let mut truncated = 0;
    for ((field, v), (_, before)) in now.iter().zip(reported.iter()) {
        let delta = v.saturating_sub(before);
        if delta == 0 {
            continue;
        }
        if let Some((metric, reason)) = t::transform_counter(field) {
            meter
                .counter(metric, &[("reason", lv(reason))])
                .increment(delta);
            if metric == t::TRANSFORM_TRUNCATED {
                truncated += delta;
            }
        }
    }
    *reported = now.clone();
    if truncated > 0 {
        meter
            .counter(
                t::STAGE_DISCARDED,
                &[("stage", lv("transform")), ("reason", lv("truncated"))],
            )
            .increment(truncated);
    }
}

/// Values the parser mended on one page.
pub fn repaired(scope: &Scope, reason: &'static str, n: u64) {
    scope
        .counter(t::PARSE_REPAIRED, &[("reason", lv(reason))])
        .increment(n);
}

/// Count a batch of dead letters, grouped by `(stage, reason)`.
pub fn dead_letters(scope: &Scope, counts: &BTreeMap<(&'static str, &str), u64>) {
    for ((stage, reason), n) in counts {
        let labels = [
            ("stage", lv(stage)),
            ("reason", SharedString::from(reason.to_string())),
        ];
        scope.counter(t::DEAD_LETTERS, &labels).increment(*n);
        scope
            .counter(
                t::STAGE_DISCARDED,
                &[("stage", lv(stage)), ("reason", lv("dead_letter"))],
            )
            .increment(*n);
    }
}

fn set_status(s: &Scope, status: &str) {
    for st in t::RUN_STATUSES {
        s.gauge(t::RUN_STATUS, &[("status", lv(st))])
            .set(if st == status { 1.0 } else { 0.0 });
    }
}

/// Series whose label values are known before they happen start at zero,
/// so a dashboard shows 0 rather than "no data" and `increase()` sees the
/// first one.
fn zero_known_series(s: &Scope) {
    for (stage, reason) in t::DEAD_LETTER_REASONS {
        s.counter(
            t::DEAD_LETTERS,
            &[("stage", lv(stage)), ("reason", lv(reason))],
        )
        .increment(0);
    }
    for (stage, reason) in [
        ("parse", "dead_letter"),
        ("transform", "dead_letter"),
        ("transform", "truncated"),
        ("assemble", "duplicate"),
    ] {
        s.counter(
            t::STAGE_DISCARDED,
            &[("stage", lv(stage)), ("reason", lv(reason))],
        )
        .increment(0);
    }
    for (field, _) in TransformStats::default().iter() {
        if let Some((metric, reason)) = t::transform_counter(field) {
            s.counter(metric, &[("reason", lv(reason))]).increment(0);
        }
    }
    for r in stages::parse::Repair::ALL {
        s.counter(t::PARSE_REPAIRED, &[("reason", lv(r.as_str()))])
            .increment(0);
    }
}

/// When the profile's last complete run ended, from its ledger (read-only:
/// never created, never locked).
fn last_success(cfg: &Config) -> Option<f64> {
    let path = cfg.ledger_path();
    if !path.exists() {
        return None;
    }
    let run = Ledger::open_read_only(&path)
        .and_then(|l| l.last_complete_run())
        .ok()??;
    rfc3339_seconds(&run.ended_at?)
}

fn rfc3339_seconds(text: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(at.timestamp_millis() as f64 / 1000.0)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The process's peak resident set (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
