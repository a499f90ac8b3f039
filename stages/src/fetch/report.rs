//! What fetch tells the run manifest: per partition, what was expected and
//! what was read; per run, requests, retries, waits and whether it is complete.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryReport {
    pub label: String,
    pub model: String,
    /// `asset` or `finding`.
    pub kind: String,
    /// `total_items` from the partition's first page.
    pub total_items: Option<u64>,
    /// Rows received, duplicates included.
    pub rows_read: u64,
    pub unique_ids: u64,
    pub duplicates: u64,
    pub pages: u64,
    /// For a leaf: every item was read. For a split parent: every child is
    /// complete and the children's totals cover this partition's total.
    pub complete: bool,
    pub error: Option<String>,
    /// This partition was cut into children (its own rows were still sent on).
    pub split: bool,
    /// `over_cap` (too big for one walk) or `rows_shifted` (walk came up short).
    pub split_reason: Option<String>,
    /// Sum of the children's `total_items`, for a split parent.
    pub children_total: Option<u64>,
    /// A stretch of a walk past the cap that gave up: the split that
    /// replaced the walk read its items again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FetchReport {
    /// Every partition walked, split parents included, sorted by label.
    pub queries: Vec<QueryReport>,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Pages handed to the parse stage.
    pub pages: u64,
    pub retries_by_cause: BTreeMap<String, u64>,
    pub retry_budget_left: u32,
    #[serde(serialize_with = "as_secs")]
    pub rate_limit_wait: Duration,
    pub partitions_split: u64,
    /// Every query complete: the run may treat unseen findings as fixed.
    pub complete: bool,
    /// The run was stopped (SIGINT, SIGTERM) before it read everything;
    /// `queries` says how far each got.
    pub interrupted: bool,
}

impl FetchReport {
    pub fn incomplete(&self) -> impl Iterator<Item = &QueryReport> {
        self.queries.iter().filter(|q| !q.complete)
    }

    pub fn query(&self, label: &str) -> Option<&QueryReport> {
        self.queries.iter().find(|q| q.label == label)
    }
}

fn as_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
