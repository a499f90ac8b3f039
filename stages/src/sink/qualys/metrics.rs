//! What the webhook sink tells Prometheus (names in `crate::telemetry`),
//! labelled with the run's profile and the sink's name.

use metrics::SharedString;
use reqwest::StatusCode;

use crate::telemetry::{self as t, lv, Scope};

#[derive(Debug, Clone)]
pub struct SinkMetrics {
    scope: Scope,
    sink: &'static str,
}

impl SinkMetrics {
    /// Registers the sink's series at zero, so a run that never waited or
    /// dead-lettered still shows them: a missing series reads as "no data"
    /// on a dashboard, not as zero.
    pub fn new(scope: Scope, sink: &'static str) -> SinkMetrics {
        let m = SinkMetrics { scope, sink };
        for name in [
            t::SINK_DEAD_LETTERS,
            t::SINK_SENT_BYTES,
            t::SINK_DOCUMENTS_SENT,
        ] {
            m.scope.counter(name, &[m.sink()]).increment(0);
        }
        for name in [t::SINK_RATE_LIMIT_WAIT, t::SINK_REQUEST_DURATION] {
            // Registering is the point; the handle is not needed.
            let _ = m.scope.histogram_with(name, &[m.sink()]);
        }
        m
    }

    fn sink(&self) -> (&'static str, SharedString) {
        ("sink", lv(self.sink))
    }

    pub fn retry(&self, cause: &'static str) {
        self.scope
            .counter(t::SINK_RETRIES, &[self.sink(), ("reason", lv(cause))])
            .increment(1);
    }

    /// A request to `endpoint` answered `status` (`None`: no answer).
    pub fn request(&self, endpoint: &'static str, status: Option<StatusCode>) {
        let status = status.map_or(lv("error"), |s| SharedString::from(s.as_u16().to_string()));
        self.scope
            .counter(
                t::SINK_REQUESTS,
                &[self.sink(), ("endpoint", lv(endpoint)), ("status", status)],
            )
            .increment(1);
    }

    pub fn duration(&self, seconds: f64) {
        self.scope
            .histogram_with(t::SINK_REQUEST_DURATION, &[self.sink()])
            .record(seconds);
    }

    pub fn rate_limit_wait(&self, seconds: f64) {
        self.scope
            .histogram_with(t::SINK_RATE_LIMIT_WAIT, &[self.sink()])
            .record(seconds);
    }

    pub fn token_refresh(&self, cause: &'static str) {
        self.scope
            .counter(
                t::SINK_TOKEN_REFRESHES,
                &[self.sink(), ("reason", lv(cause))],
            )
            .increment(1);
    }

    pub fn sent_bytes(&self, n: u64) {
        self.scope
            .counter(t::SINK_SENT_BYTES, &[self.sink()])
            .increment(n);
    }

    pub fn documents_sent(&self, n: u64) {
        self.scope
            .counter(t::SINK_DOCUMENTS_SENT, &[self.sink()])
            .increment(n);
    }

    pub fn dead_letter(&self) {
        self.scope
            .counter(t::SINK_DEAD_LETTERS, &[self.sink()])
            .increment(1);
    }
}
