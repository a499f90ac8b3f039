//! The metric contract: every metric orca-etm exports, in one place.
//!
//! Each metric is declared once in [`METRICS`] with its kind, unit, labels
//! and help text; code refers to it by the constant, never by a literal, so
//! the dashboards, the alert rules and the code cannot drift apart (a test
//! checks `dashboards/` against this table).
//!
//! Rules (checked by the tests below):
//! - names start with `orca_etm_`; counters end in `_total`, times are in
//!   `_seconds`, sizes in `_bytes`;
//! - histograms have explicit buckets ([`Metric::buckets`]), never quantiles;
//! - labels are of low cardinality only (see [`LABELS`]): never an asset or
//!   finding id, never a query label with a time window in it.
//!
//! Two ways a value gets out:
//! - [`Source::Recorded`]: through the `metrics` facade (a no-op when no
//!   exporter is installed), always in batches on hot paths: per request,
//!   per page, per batch of dead letters, or once per run.
//! - [`Source::Sampled`]: read from the stages' own atomic counters
//!   (`ChannelStats`, `StageStats`) when `/metrics` is scraped or a snapshot
//!   is pushed, so the per-item hot paths pay nothing for being observed.

use std::sync::Arc;

use metrics::{SharedString, Unit};

/// Every metric name starts with this.
pub const PREFIX: &str = "orca_etm_";

/// The only label names a metric may carry.
pub const LABELS: [&str; 9] = [
    "profile", "stage", "channel", "model", "status", "reason", "sink", "endpoint", "version",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Emitted through the `metrics` facade.
    Recorded,
    /// Read from the stages' atomics at scrape/push time.
    Sampled,
}

/// One metric of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub source: Source,
    /// Bucket upper bounds (histograms only).
    pub buckets: &'static [f64],
}

// ── stages (sampled) ───────────────────────────────────────────────────────
pub const STAGE_ITEMS_RECEIVED: &str = "orca_etm_stage_items_received_total";
pub const STAGE_ITEMS_SENT: &str = "orca_etm_stage_items_sent_total";
pub const STAGE_BYTES_RECEIVED: &str = "orca_etm_stage_received_bytes_total";
pub const STAGE_BYTES_SENT: &str = "orca_etm_stage_sent_bytes_total";
pub const STAGE_BUSY: &str = "orca_etm_stage_busy_seconds_total";
pub const STAGE_WORKERS: &str = "orca_etm_stage_workers";
pub const STAGE_UTILIZATION: &str = "orca_etm_stage_utilization_ratio";
// ── stages (recorded) ──────────────────────────────────────────────────────
pub const STAGE_ERRORS: &str = "orca_etm_stage_errors_total";
pub const STAGE_DISCARDED: &str = "orca_etm_stage_discarded_items_total";
// ── channels (sampled) ─────────────────────────────────────────────────────
pub const CHANNEL_QUEUED: &str = "orca_etm_channel_queued_items";
pub const CHANNEL_CAPACITY: &str = "orca_etm_channel_capacity_items";
pub const CHANNEL_SENT: &str = "orca_etm_channel_sent_items_total";
pub const CHANNEL_BLOCKED: &str = "orca_etm_channel_send_blocked_seconds_total";
// ── fetch ──────────────────────────────────────────────────────────────────
pub const FETCH_REQUESTS: &str = "orca_etm_fetch_requests_total";
pub const FETCH_REQUEST_DURATION: &str = "orca_etm_fetch_request_duration_seconds";
pub const FETCH_RETRIES: &str = "orca_etm_fetch_retries_total";
pub const FETCH_RATE_LIMIT_WAIT: &str = "orca_etm_fetch_rate_limit_wait_seconds";
pub const FETCH_PAGES: &str = "orca_etm_fetch_pages_total";
pub const FETCH_ROWS: &str = "orca_etm_fetch_rows_total";
pub const FETCH_EXPECTED_ITEMS: &str = "orca_etm_fetch_expected_items";
pub const FETCH_READ_ITEMS: &str = "orca_etm_fetch_read_items";
pub const FETCH_PARTITIONS_SPLIT: &str = "orca_etm_fetch_partitions_split_total";
// ── run ────────────────────────────────────────────────────────────────────
pub const RUN_STATUS: &str = "orca_etm_run_status";
pub const RUNS: &str = "orca_etm_runs_total";
pub const RUN_DURATION: &str = "orca_etm_run_duration_seconds";
pub const RUN_START: &str = "orca_etm_run_start_timestamp_seconds";
pub const RUN_LAST_SUCCESS: &str = "orca_etm_run_last_success_timestamp_seconds";
pub const RUN_SUCCESS_MAX_AGE: &str = "orca_etm_run_success_max_age_seconds";
pub const RUN_FINDINGS: &str = "orca_etm_run_findings";
pub const RUN_ASSETS: &str = "orca_etm_run_assets";
pub const RUN_PEAK_RSS: &str = "orca_etm_run_peak_resident_memory_bytes";
// ── data quality ───────────────────────────────────────────────────────────
pub const DEAD_LETTERS: &str = "orca_etm_dead_letters_total";
pub const PARSE_REPAIRED: &str = "orca_etm_parse_repaired_values_total";
pub const TRANSFORM_TRUNCATED: &str = "orca_etm_transform_truncated_total";
pub const TRANSFORM_UNMAPPED: &str = "orca_etm_transform_unmapped_values_total";
pub const TRANSFORM_INVALID: &str = "orca_etm_transform_invalid_values_total";
// ── sinks (the Qualys webhook's own; every sink is also a stage) ─────────────
pub const SINK_REQUESTS: &str = "orca_etm_sink_requests_total";
pub const SINK_RETRIES: &str = "orca_etm_sink_retries_total";
pub const SINK_DOCUMENTS_SENT: &str = "orca_etm_sink_documents_sent_total";
pub const SINK_SENT_BYTES: &str = "orca_etm_sink_sent_bytes_total";
pub const SINK_REQUEST_DURATION: &str = "orca_etm_sink_request_duration_seconds";
pub const SINK_RATE_LIMIT_WAIT: &str = "orca_etm_sink_rate_limit_wait_seconds";
pub const SINK_TOKEN_REFRESHES: &str = "orca_etm_sink_token_refreshes_total";
pub const SINK_DEAD_LETTERS: &str = "orca_etm_sink_dead_letters_total";
// ── serve ──────────────────────────────────────────────────────────────────
pub const PROFILE_ACTIVE: &str = "orca_etm_profile_active";
pub const SCHEDULE_NEXT_RUN: &str = "orca_etm_schedule_next_run_timestamp_seconds";
pub const BUILD_INFO: &str = "orca_etm_build_info";

/// An Orca request takes from milliseconds (loopback) to the 120 s timeout.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Waits for the limiter: 0 when unlimited, about 1 s at Orca's 1 request/s,
/// up to the Retry-After cap after a 429.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
];

const P: &[&str] = &["profile"];
const P_STAGE: &[&str] = &["profile", "stage"];
const P_STAGE_REASON: &[&str] = &["profile", "stage", "reason"];
const P_CHANNEL: &[&str] = &["profile", "channel"];
const P_STATUS: &[&str] = &["profile", "status"];
const P_REASON: &[&str] = &["profile", "reason"];
const P_MODEL: &[&str] = &["profile", "model"];
const P_MODEL_REASON: &[&str] = &["profile", "model", "reason"];
const P_SINK: &[&str] = &["profile", "sink"];
const P_SINK_REASON: &[&str] = &["profile", "sink", "reason"];
const P_SINK_ENDPOINT_STATUS: &[&str] = &["profile", "sink", "endpoint", "status"];

const fn m(
    name: &'static str,
    kind: Kind,
    unit: Unit,
    labels: &'static [&'static str],
    source: Source,
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        unit,
        labels,
        help,
        source,
        buckets: &[],
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        unit: Unit::Seconds,
        labels,
        help,
        source: Source::Recorded,
        buckets,
    }
}

use Kind::{Counter, Gauge};
use Source::{Recorded, Sampled};

/// The whole contract.
pub const METRICS: &[Metric] = &[
    m(STAGE_ITEMS_RECEIVED, Counter, Unit::Count, P_STAGE, Sampled,
      "Items a stage took in (pages for parse, records after it)."),
    m(STAGE_ITEMS_SENT, Counter, Unit::Count, P_STAGE, Sampled,
      "Items a stage handed on downstream."),
    m(STAGE_BYTES_RECEIVED, Counter, Unit::Bytes, P_STAGE, Sampled,
      "Bytes a stage took in (page bodies for parse)."),
    m(STAGE_BYTES_SENT, Counter, Unit::Bytes, P_STAGE, Sampled,
      "Bytes a stage wrote or handed on (ETM JSON for transform, spill and sinks)."),
    m(STAGE_BUSY, Counter, Unit::Seconds, P_STAGE, Sampled,
      "Seconds a stage's workers spent working (not waiting for input), summed over workers."),
    m(STAGE_WORKERS, Gauge, Unit::Count, P_STAGE, Sampled,
      "Worker threads of a stage."),
    m(STAGE_UTILIZATION, Gauge, Unit::Percent, P_STAGE, Sampled,
      "Share of its workers' wall time a stage spent working over the current (or last) run, 0..1."),
    m(STAGE_ERRORS, Counter, Unit::Count, P_STAGE_REASON, Recorded,
      "Errors by stage and type: a worker that failed or panicked, a query left incomplete, a sink that failed."),
    m(STAGE_DISCARDED, Counter, Unit::Count, P_STAGE_REASON, Recorded,
      "Items a stage did not pass on, by reason: duplicate, dead_letter, truncated."),
    m(CHANNEL_QUEUED, Gauge, Unit::Count, P_CHANNEL, Sampled,
      "Items queued in a bounded channel between two stages."),
    m(CHANNEL_CAPACITY, Gauge, Unit::Count, P_CHANNEL, Sampled,
      "Capacity of a bounded channel, in items."),
    m(CHANNEL_SENT, Counter, Unit::Count, P_CHANNEL, Sampled,
      "Items sent through a channel."),
    m(CHANNEL_BLOCKED, Counter, Unit::Seconds, P_CHANNEL, Sampled,
      "Seconds senders spent blocked on a full channel: backpressure from the stage downstream."),
    m(FETCH_REQUESTS, Counter, Unit::Count, P_STATUS, Recorded,
      "Requests to Orca by outcome: the HTTP status, or timeout/connect/transport when none came back."),
    histogram(FETCH_REQUEST_DURATION, P, REQUEST_BUCKETS,
      "Time of one Orca request, from send to the last body byte."),
    m(FETCH_RETRIES, Counter, Unit::Count, P_REASON, Recorded,
      "Orca requests retried, by cause (http_429, http_503, timeout, malformed, ...)."),
    histogram(FETCH_RATE_LIMIT_WAIT, P, WAIT_BUCKETS,
      "Time a request waited for the per-token rate limiter (or a Retry-After pause) before it was sent."),
    m(FETCH_PAGES, Counter, Unit::Count, P_MODEL, Recorded,
      "Pages read from Orca and handed to parse, by model."),
    m(FETCH_ROWS, Counter, Unit::Count, P_MODEL, Recorded,
      "Rows received from Orca, by model (duplicates and re-read rows of split partitions included)."),
    m(FETCH_EXPECTED_ITEMS, Gauge, Unit::Count, P_MODEL, Recorded,
      "Items Orca announced (total_items) for a model's query in the current or last run."),
    m(FETCH_READ_ITEMS, Gauge, Unit::Count, P_MODEL, Recorded,
      "Distinct items read for a model's query in the last run (to compare with total_items)."),
    m(FETCH_PARTITIONS_SPLIT, Counter, Unit::Count, P_MODEL_REASON, Recorded,
      "Queries read past the paging cap: in FirstSeen stretches (over_cap_keyset), or split into partitions that each fit (over_cap), or split because rows shifted under the walk (rows_shifted)."),
    m(RUN_STATUS, Gauge, Unit::Count, P_STATUS, Recorded,
      "1 for the status of the current or last run (processing, complete, partial, failed), 0 for the others."),
    m(RUNS, Counter, Unit::Count, P_STATUS, Recorded,
      "Runs ended, by status."),
    m(RUN_DURATION, Gauge, Unit::Seconds, P, Recorded,
      "Duration of the last run that ended."),
    m(RUN_START, Gauge, Unit::Seconds, P, Recorded,
      "Unix time the current or last run started."),
    m(RUN_LAST_SUCCESS, Gauge, Unit::Seconds, P, Recorded,
      "Unix time the last complete run ended (only a complete run sets it; taken from the ledger at start)."),
    m(RUN_SUCCESS_MAX_AGE, Gauge, Unit::Seconds, P, Recorded,
      "Configured age after which the absence of a complete run is alerted on (metrics.success_max_age)."),
    m(RUN_FINDINGS, Gauge, Unit::Count, P_STATUS, Recorded,
      "Findings published by the last run, by status (NEW, ACTIVE, REOPENED, FIXED)."),
    m(RUN_ASSETS, Gauge, Unit::Count, P, Recorded,
      "Host asset documents published by the last run."),
    m(RUN_PEAK_RSS, Gauge, Unit::Bytes, P, Recorded,
      "Peak resident memory of the process at the end of the last run."),
    m(DEAD_LETTERS, Counter, Unit::Count, P_STAGE_REASON, Recorded,
      "Records that could not be used, by stage and reason (written to dead-letters.ndjson)."),
    m(PARSE_REPAIRED, Counter, Unit::Count, P_REASON, Recorded,
      "Malformed values mended while parsing, by kind (lone_surrogate, number_out_of_range, ...)."),
    m(TRANSFORM_TRUNCATED, Counter, Unit::Count, P_REASON, Recorded,
      "Lists cut to the 200-entry limit by the transform, by list (tags, services, softwares, other)."),
    m(TRANSFORM_UNMAPPED, Counter, Unit::Count, P_REASON, Recorded,
      "Values the transform map had no mapping for, by field (severity, patch, cloud_provider)."),
    m(TRANSFORM_INVALID, Counter, Unit::Count, P_REASON, Recorded,
      "Values the transform nulled because they could not be read, by kind (date, number, string, bool, ip, tags); encoded_json_mended: faults mended inside a JSON-encoded map or list."),
    m(SINK_REQUESTS, Counter, Unit::Count, P_SINK_ENDPOINT_STATUS, Recorded,
      "Requests of a webhook sink to the Qualys gateway, by endpoint (auth, sync) and HTTP status (error when none came back)."),
    m(SINK_RETRIES, Counter, Unit::Count, P_SINK_REASON, Recorded,
      "Webhook sink retries by cause (http_409, http_429, http_5xx, unauthorized, transport, asset_error, bisect)."),
    m(SINK_DOCUMENTS_SENT, Counter, Unit::Count, P_SINK, Recorded,
      "Documents the Qualys gateway accepted."),
    m(SINK_SENT_BYTES, Counter, Unit::Bytes, P_SINK, Recorded,
      "Request body bytes a webhook sink sent, retries included."),
    histogram(SINK_REQUEST_DURATION, P_SINK, REQUEST_BUCKETS,
      "Time of one webhook request to the Qualys gateway."),
    histogram(SINK_RATE_LIMIT_WAIT, P_SINK, WAIT_BUCKETS,
      "Time a webhook sink held a call for the gateway's rate limit."),
    m(SINK_TOKEN_REFRESHES, Counter, Unit::Count, P_SINK_REASON, Recorded,
      "Gateway tokens (JWT) fetched, by cause (first, expiry, unauthorized)."),
    m(SINK_DEAD_LETTERS, Counter, Unit::Count, P_SINK, Recorded,
      "Documents a webhook sink gave up on (written to its dead-letter file)."),
    m(PROFILE_ACTIVE, Gauge, Unit::Count, P, Recorded,
      "1 if a serve profile is active (scheduled), 0 if inactive."),
    m(SCHEDULE_NEXT_RUN, Gauge, Unit::Seconds, P, Recorded,
      "Unix time of a serve profile's next scheduled run (0: none left)."),
    m(BUILD_INFO, Gauge, Unit::Count, &["version"], Recorded,
      "Always 1; the connector's version as a label."),
];

/// The contract entry of `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// Register help text and units with the installed recorder (call once,
/// after installing it).
pub fn describe_all() {
    for m in METRICS.iter().filter(|m| m.source == Source::Recorded) {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.unit, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.unit, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.unit, m.help),
        }
    }
}

/// Where a transform counter (`TransformStats` field) is exported:
/// `(metric, reason)`. `None` for counters exported another way (records
/// refused for want of an id are dead letters).
pub fn transform_counter(field: &str) -> Option<(&'static str, &'static str)> {
    Some(match field {
        "truncated_tags" => (TRANSFORM_TRUNCATED, "tags"),
        "truncated_services" => (TRANSFORM_TRUNCATED, "services"),
        "truncated_softwares" => (TRANSFORM_TRUNCATED, "softwares"),
        "truncated_other" => (TRANSFORM_TRUNCATED, "other"),
        "unmapped_severity" => (TRANSFORM_UNMAPPED, "severity"),
        "unmapped_patch" => (TRANSFORM_UNMAPPED, "patch"),
        "unknown_cloud_provider" => (TRANSFORM_UNMAPPED, "cloud_provider"),
        "unparseable_dates" => (TRANSFORM_INVALID, "date"),
        "undecodable_tags" => (TRANSFORM_INVALID, "tags"),
        "mended_encoded_json" => (TRANSFORM_INVALID, "encoded_json_mended"),
        "invalid_numbers" => (TRANSFORM_INVALID, "number"),
        "invalid_strings" => (TRANSFORM_INVALID, "string"),
        "invalid_bools" => (TRANSFORM_INVALID, "bool"),
        "invalid_ips" => (TRANSFORM_INVALID, "ip"),
        _ => return None,
    })
}

/// Causes of a retried request (`fetch::client` and the pager), listed so
/// their counters exist at zero before the first retry.
pub const RETRY_REASONS: [&str; 10] = [
    "http_408",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "timeout",
    "connect",
    "transport",
    "malformed",
];

/// Dead-letter `(stage, reason)` pairs the stages produce.
pub const DEAD_LETTER_REASONS: [(&str, &str); 5] = [
    ("parse", "invalid_json"),
    ("parse", "not_an_object"),
    ("transform", "missing_asset_id"),
    ("transform", "missing_vendor_id"),
    ("transform", "ambiguous_id"),
];

/// Statuses of [`RUN_STATUS`].
pub const RUN_STATUSES: [&str; 4] = ["processing", "complete", "partial", "failed"];

/// The labels every metric of one profile carries. Cheap to clone: the
/// profile name is shared, not copied, into each metric key.
#[derive(Debug, Clone)]
pub struct Scope {
    profile: Arc<str>,
}

impl Scope {
    pub fn new(profile: &str) -> Scope {
        Scope {
            profile: Arc::from(profile),
        }
    }

    pub fn profile(&self) -> SharedString {
        SharedString::from(self.profile.clone())
    }

    pub fn profile_str(&self) -> &str {
        &self.profile
    }

    pub fn counter(
        &self,
        name: &'static str,
        labels: &[(&'static str, SharedString)],
    ) -> metrics::Counter {
        let labels = self.labels(labels);
        metrics::counter!(name, labels)
    }

    pub fn gauge(
        &self,
        name: &'static str,
        labels: &[(&'static str, SharedString)],
    ) -> metrics::Gauge {
        let labels = self.labels(labels);
        metrics::gauge!(name, labels)
    }

    pub fn histogram(&self, name: &'static str) -> metrics::Histogram {
        metrics::histogram!(name, "profile" => self.profile())
    }

    pub fn histogram_with(
        &self,
        name: &'static str,
        labels: &[(&'static str, SharedString)],
    ) -> metrics::Histogram {
        let labels = self.labels(labels);
        metrics::histogram!(name, labels)
    }

    fn labels(&self, extra: &[(&'static str, SharedString)]) -> Vec<metrics::Label> {
        let mut v = Vec::with_capacity(extra.len() + 1);
        v.push(metrics::Label::new("profile", self.profile()));
        v.extend(
            extra
                .iter()
                .map(|(k, val)| metrics::Label::new(*k, val.clone())),
        );
        v
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new("default")
    }
}

/// A label value from a static string (no allocation).
pub fn lv(s: &'static str) -> SharedString {
    SharedString::const_str(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} declared twice", m.name);
            assert!(m.name.starts_with(PREFIX), "{}", m.name);
            assert!(
                m.name[PREFIX.len()..]
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert!(!m.help.is_empty() && m.help.ends_with('.'), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "{}", m.name),
                _ => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            match m.unit {
                Unit::Seconds => assert!(
                    m.name.ends_with("_seconds") || m.name.ends_with("_seconds_total"),
                    "{}",
                    m.name
                ),
                Unit::Bytes => assert!(
                    m.name.ends_with("_bytes") || m.name.ends_with("_bytes_total"),
                    "{}",
                    m.name
                ),
                Unit::Percent => assert!(m.name.ends_with("_ratio"), "{}", m.name),
                Unit::Count => assert!(
                    !m.name.contains("_seconds") && !m.name.contains("_bytes"),
                    "{}",
                    m.name
                ),
                u => panic!("{}: unit {u:?} not used by the contract", m.name),
            }
            if m.kind == Kind::Histogram {
                assert!(!m.buckets.is_empty(), "{} needs explicit buckets", m.name);
                assert!(
                    m.buckets.windows(2).all(|w| w[0] < w[1]),
                    "{}: buckets must increase",
                    m.name
                );
            } else {
                assert!(m.buckets.is_empty(), "{}", m.name);
            }
            for l in m.labels {
                assert!(LABELS.contains(l), "{}: label {l} is not allowed", m.name);
            }
            if m.name != BUILD_INFO {
                assert_eq!(m.labels.first(), Some(&"profile"), "{}", m.name);
            }
        }
    }

    #[test]
    fn every_transform_counter_is_exported_or_a_dead_letter() {
        let stats = crate::transform::TransformStats::default();
        for (field, _) in stats.iter() {
            match transform_counter(field) {
                Some((metric, _)) => {
                    assert!([TRANSFORM_TRUNCATED, TRANSFORM_UNMAPPED, TRANSFORM_INVALID]
                        .contains(&metric))
                }
                None => assert!(
                    DEAD_LETTER_REASONS.iter().any(|(_, r)| *r == field),
                    "transform counter {field} is exported nowhere"
                ),
            }
        }
    }

    #[test]
    fn every_dead_letter_reason_is_listed() {
        // Reasons in the stage sources that name a dead letter.
        let sources = [
            ("parse", include_str!("parse/mod.rs")),
            ("transform", include_str!("transform/mod.rs")),
        ];
        for (stage, src) in sources {
            for (s, reason) in DEAD_LETTER_REASONS.iter().filter(|(s, _)| *s == stage) {
                assert!(src.contains(&format!("\"{reason}\"")), "{s}: {reason}");
            }
        }
    }
}
