//! What the fetch stage hands to the parse stage, and the verdict it gets back.
//!
//! Paging is offset-based and the next offset depends on how many rows the
//! current page held, so fetch must learn the outcome of each page before it
//! asks for the next one. Rather than parse every body twice, fetch hands the
//! raw body downstream together with a one-shot reply channel, and the parse
//! stage (the only place that parses JSON) answers with a [`PageVerdict`].

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::model::RecordKind;

/// One query (or partition of a query) the planner sends to Orca.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryInfo {
    /// Stable, human-readable label, e.g. `VulnerabilityV2[severity=HIGH,first_seen=1700000000000..1710000000000]`.
    /// Used in dead letters, the manifest and logs; never contains a secret.
    pub label: String,
    /// The Orca model(s) the query asks for, e.g. `AwsEc2Instance` or `VulnerabilityV2`.
    pub model: String,
    /// Whether its rows are host assets or findings.
    pub kind: RecordKind,
    /// The parse stage reports the latest `FirstSeen` of each page (a walk
    /// in `FirstSeen` order needs it to know where its next stretch starts).
    pub track_first_seen: bool,
}

/// A raw page body on its way to the parse stage.
#[derive(Debug)]
pub struct Page {
    pub query: Arc<QueryInfo>,
    /// `start_at_index` the page was requested with.
    pub offset: u64,
    pub body: Bytes,
    /// The parse stage answers here once it has read the page; dropped without
    /// an answer only when the pipeline is shutting down.
    pub ack: oneshot::Sender<PageVerdict>,
}

/// What the parse stage learned from one page body.
#[derive(Debug, Clone, PartialEq)]
pub enum PageVerdict {
    /// The body was a success answer; its rows went downstream (bad rows as dead letters).
    Read(PageSummary),
    /// The body was not a readable answer at all (truncated, not JSON, no
    /// `data` array). Transient: fetch retries the same request.
    Malformed(String),
    /// A readable answer whose `status` is not `success`: an error, not data.
    Failure(String),
}

/// Summary of a page that was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageSummary {
    /// `total_items` of the answer, when the server counted.
    pub total_items: Option<u64>,
    /// Number of elements of `data` (good rows and dead letters together).
    pub rows: usize,
    /// Orca `id` of every row whose id could be read (including rows that
    /// became dead letters, when their id could be salvaged), in page order.
    pub ids: Vec<String>,
    /// Rows that became dead letters.
    pub dead_letters: usize,
    /// The latest `FirstSeen` of the page's rows, in ms since the epoch,
    /// when the query asked for it and a row had a readable one.
    pub max_first_seen_ms: Option<i64>,
}

impl crate::channel::Weighted for Page {
    fn weight(&self) -> usize {
        1
    }
}
