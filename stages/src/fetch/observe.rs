//! What fetch tells Prometheus: per request (status, duration, limiter
//! wait), per page (pages and rows by model), per split, and each model's
//! `total_items` against what was read. Handles are registered once per
//! run, so a request costs a few atomic adds.

use std::collections::HashMap;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString};

use super::planner::Partition;
use super::report::FetchReport;
use crate::telemetry::{self as t, lv, Scope};

struct ModelMetrics {
    pages: Counter,
    rows: Counter,
    expected: Gauge,
    read: Gauge,
}

pub struct FetchMetrics {
    scope: Scope,
    duration: Histogram,
    wait: Histogram,
    by_model: HashMap<String, ModelMetrics>,
}

impl FetchMetrics {
    /// Handles for the models of `plan`; every retry cause starts at zero,
    /// so dashboards and alerts see a series before the first retry.
    pub fn new(scope: Scope, plan: &[Partition]) -> FetchMetrics {
        let by_model = plan
            .iter()
            .map(|p| {
                let model = || [("model", SharedString::from(p.model.clone()))];
                (
                    p.model.clone(),
                    ModelMetrics {
                        pages: scope.counter(t::FETCH_PAGES, &model()),
                        rows: scope.counter(t::FETCH_ROWS, &model()),
                        expected: scope.gauge(t::FETCH_EXPECTED_ITEMS, &model()),
                        read: scope.gauge(t::FETCH_READ_ITEMS, &model()),
                    },
                )
            })
            .collect();
        for reason in t::RETRY_REASONS {
            scope
                .counter(t::FETCH_RETRIES, &[("reason", lv(reason))])
                .increment(0);
        }
        for p in plan {
            for reason in ["over_cap", "over_cap_keyset", "rows_shifted"] {
                let labels = [
                    ("model", SharedString::from(p.model.clone())),
                    ("reason", lv(reason)),
                ];
                scope
                    .counter(t::FETCH_PARTITIONS_SPLIT, &labels)
                    .increment(0);
            }
        }
        scope
            .counter(
                t::STAGE_ERRORS,
                &[("stage", lv("fetch")), ("reason", lv("query_incomplete"))],
            )
            .increment(0);
        FetchMetrics {
            duration: scope.histogram(t::FETCH_REQUEST_DURATION),
            wait: scope.histogram(t::FETCH_RATE_LIMIT_WAIT),
            scope,
            by_model,
        }
    }

    pub fn request(&self, status: SharedString, took: Duration) {
        self.scope
            .counter(t::FETCH_REQUESTS, &[("status", status)])
            .increment(1);
        self.duration.record(took.as_secs_f64());
    }

    pub fn waited(&self, d: Duration) {
        self.wait.record(d.as_secs_f64());
    }

    pub fn retry(&self, reason: &'static str) {
        self.scope
            .counter(t::FETCH_RETRIES, &[("reason", lv(reason))])
            .increment(1);
    }

    pub fn page(&self, model: &str, rows: u64) {
        if let Some(m) = self.by_model.get(model) {
            m.pages.increment(1);
            m.rows.increment(rows);
        }
    }

    /// A model's root query told its `total_items`.
    pub fn expected(&self, model: &str, total: u64) {
        if let Some(m) = self.by_model.get(model) {
            m.expected.set(total as f64);
        }
    }

    pub fn split(&self, model: &str, reason: &'static str) {
        self.scope
            .counter(
                t::FETCH_PARTITIONS_SPLIT,
                &[
                    ("model", SharedString::from(model.to_owned())),
                    ("reason", lv(reason)),
                ],
            )
            .increment(1);
    }

    /// The run's end: distinct items read per model (the leaves' unique ids:
    /// partitions are disjoint, a split parent's own walk is re-read by its
    /// children), and the queries left incomplete.
    pub fn report(&self, report: &FetchReport) {
        let mut read: HashMap<&str, u64> = HashMap::new();
        let mut incomplete = 0u64;
        for q in &report.queries {
            // Leaves: partitions not cut further, and the stretches of a
            // walk past the cap (each reports only the ids new to it).
            if !q.split && !q.superseded {
                *read.entry(q.model.as_str()).or_default() += q.unique_ids;
            }
            if q.label == q.model && !q.complete {
                incomplete += 1;
            }
        }
        for (model, m) in &self.by_model {
            m.read
                .set(read.get(model.as_str()).copied().unwrap_or(0) as f64);
        }
        self.scope
            .counter(
                t::STAGE_ERRORS,
                &[("stage", lv("fetch")), ("reason", lv("query_incomplete"))],
            )
            .increment(incomplete);
    }
}
