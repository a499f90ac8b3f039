//! Reading one partition: one page at a time, each page retried until the
//! parse stage has read it, the offset advanced by the rows actually received.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::client::Outcome;
use super::planner::Partition;
use super::state::RunState;
use crate::page::{Page, PageSummary, PageVerdict, QueryInfo};

/// Why a page could not be had.
#[derive(Debug)]
pub enum PageError {
    /// This partition cannot be completed (the reason says why).
    Query(String),
    /// This page could not be had after every retry; later pages may still be.
    GaveUp(String),
    /// The run is stopping (cancelled, run-fatal error, downstream gone).
    Stop,
}

/// Fetch one page, hand it downstream, and retry the same request until the
/// parse stage reads it, the retries run out, or the run stops.
pub async fn read_page(
    st: &RunState,
    info: &Arc<QueryInfo>,
    part: &Partition,
    offset: u64,
    limit: u64,
) -> Result<PageSummary, PageError> {
    let body = part.body(offset, limit);
    let mut retries = 0u32;
    loop {
        tokio::select! {
            _ = st.stop.cancelled() => return Err(PageError::Stop),
            waited = st.limiter.acquire() => st.metrics.waited(waited),
        }
        RunState::bump(&st.requests);
        let sent_at = std::time::Instant::now();
        let reply = tokio::select! {
            _ = st.stop.cancelled() => return Err(PageError::Stop),
            r = st.client.post(body.clone()) => r,
        };
        st.metrics.request(reply.status, sent_at.elapsed());
        if reply.answered {
            st.answered.store(true, Ordering::Release);
        }
        let unanswered = !reply.answered;
        let (cause, retry_after, detail) = match reply.outcome {
            Outcome::Body(bytes) => {
                let (ack, verdict) = oneshot::channel();
                let page = Page {
                    query: info.clone(),
                    offset,
                    body: bytes,
                    ack,
                };
                let sent = tokio::select! {
                    _ = st.stop.cancelled() => return Err(PageError::Stop),
                    r = st.out.send_async(page) => r,
                };
                if sent.is_err() {
                    st.fail(super::FetchError::DownstreamClosed);
                    return Err(PageError::Stop);
                }
                RunState::bump(&st.pages);
                let verdict = tokio::select! {
                    _ = st.stop.cancelled() => return Err(PageError::Stop),
                    v = verdict => v,
                };
                match verdict {
                    Ok(PageVerdict::Read(s)) => {
                        st.metrics.page(&info.model, s.rows as u64);
                        return Ok(s);
                    }
                    Ok(PageVerdict::Failure(msg)) => {
                        return Err(PageError::Query(format!(
                            "Orca answered a failure at offset {offset}: {msg}"
                        )))
                    }
                    Ok(PageVerdict::Malformed(why)) => ("malformed", None, why),
                    Err(_) => {
                        st.fail(super::FetchError::DownstreamClosed);
                        return Err(PageError::Stop);
                    }
                }
            }
            Outcome::Transient {
                cause,
                retry_after,
                detail,
            } => (cause, retry_after, detail),
            Outcome::QueryFailed(msg) => return Err(PageError::Query(msg)),
            Outcome::Fatal(e) => {
                st.fail(e);
                return Err(PageError::Stop);
            }
        };
        if retries >= st.policy.max_per_request {
            if unanswered && !st.answered.load(Ordering::Acquire) {
                // Not one request of the run was answered: the other queries
                // would spend their retries the same way; stop them now.
                st.fail(super::FetchError::Unreachable {
                    url: st.client.url().to_string(),
                    detail: format!("{} attempts, last ({cause}): {detail}", retries + 1),
                });
                return Err(PageError::Stop);
            }
            return Err(PageError::GaveUp(format!(
                "gave up at offset {offset} after {} attempts; last error ({cause}): {detail}",
                retries + 1
            )));
        }
        // A 429 is the server pacing us, not failing: it counts against the
        // per-request limit but not the run's budget, or a long run against a
        // strict server would end partial although nothing was wrong.
        if cause != "http_429" && !st.budget.take() {
            return Err(PageError::Query(format!(
                "retry budget of the run exhausted at offset {offset}; last error ({cause}): {detail}"
            )));
        }
        retries += 1;
        st.retries.count(cause);
        st.metrics.retry(cause);
        let wait = retry_after
            .map(|d| st.policy.capped_retry_after(d))
            .unwrap_or_else(|| st.policy.backoff(retries));
        // What the log says is the pause the retry will see, either way.
        let pause_ms = wait.as_millis() as u64;
        let wait = if cause == "http_429" {
            // The token is over its limit: every query waits, not only this
            // one, and the retry goes through the limiter like any request.
            st.limiter.pause_for(wait);
            std::time::Duration::ZERO
        } else {
            wait
        };
        tracing::warn!(
            query = %info.label, offset, cause, retry = retries,
            wait_ms = pause_ms, "retrying Orca request: {detail}"
        );
        tokio::select! {
            _ = st.stop.cancelled() => return Err(PageError::Stop),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How a walk ended.
#[derive(Debug, PartialEq)]
pub enum WalkEnd {
    /// Walked as far as it goes (empty page, all ids seen, or the cap).
    Walked,
    /// Page 1 said the partition is larger than the cap.
    OverCap(u64),
    Failed(String),
    Stopped,
}

#[derive(Debug)]
pub struct Walk {
    pub total: Option<u64>,
    pub rows: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub pages: u64,
    /// The walk saw an empty page: the server has nothing past `offset`.
    pub saw_end: bool,
    pub end: WalkEnd,
    /// Ids a keyset stretch read again from the previous stretch (its
    /// lower bound overlaps the previous stretch's end); in `duplicates` too.
    pub repeats: u64,
    /// A keyset stretch stopped at the cap with more to read.
    pub hit_cap: bool,
    /// The latest `FirstSeen` read (keyset stretches only).
    pub max_first_seen_ms: Option<i64>,
    /// The ids read (bounded by the cap), for the next stretch to tell
    /// repeats from new items.
    pub seen: HashSet<String>,
}

impl Walk {
    /// Every item counted by the server was read.
    pub fn is_complete(&self) -> bool {
        self.end == WalkEnd::Walked
            && match self.total {
                Some(t) => self.unique >= t,
                // The server did not count: only an empty page proves the end.
                None => self.saw_end,
            }
    }
}

/// Walk one partition from offset 0. Stops at an empty page, as soon as the
/// unique ids reach `total_items` (no final empty request), or at the cap.
///
/// `siblings_total`, when given, receives this partition's `total_items` as
/// soon as page 1 tells it, so the parent can skip siblings once covered.
///
/// A keyset stretch (`part.keyset`) is expected to be larger than the cap:
/// it reads up to the cap instead of ending `OverCap`, counts ids of the
/// previous stretch (`prev`) as repeats, and notes the latest `FirstSeen`.
pub async fn walk(
    st: &RunState,
    part: &Partition,
    siblings_total: Option<&AtomicU64>,
    prev: Option<&HashSet<String>>,
) -> Walk {
    let stretch = part.keyset.is_some();
    let info = Arc::new(QueryInfo {
        label: part.label(),
        model: part.model.clone(),
        kind: part.kind,
        track_first_seen: stretch,
    });
    let cap = st.cfg.effective_page_cap();
    let mut w = Walk {
        total: None,
        rows: 0,
        unique: 0,
        duplicates: 0,
        pages: 0,
        saw_end: false,
        end: WalkEnd::Walked,
        repeats: 0,
        hit_cap: false,
        max_first_seen_ms: None,
        seen: HashSet::new(),
    };
    // Bounded by the cap: a partition never walks past it.
    let mut seen: HashSet<String> = HashSet::new();
    let mut offset = 0u64;
    // A page lost after every retry does not cost the pages behind it: the
    // walk steps over it (by the page size, its rows unknown) and reads on,
    // so a partial run publishes as much as could be read. A few lost pages
    // in a row mean the server is gone for this partition.
    let mut lost: Option<String> = None;
    let mut lost_in_a_row = 0;
    while offset < cap {
        let limit = st.cfg.page_size.min(cap - offset);
        let s = match read_page(st, &info, part, offset, limit).await {
            Ok(s) => {
                lost_in_a_row = 0;
                s
            }
            Err(PageError::GaveUp(msg)) if w.pages > 0 && lost_in_a_row < 2 => {
                tracing::warn!(query = %info.label, offset, "page lost, reading on past it: {msg}");
                lost.get_or_insert(msg);
                lost_in_a_row += 1;
                offset += limit;
                continue;
            }
            Err(PageError::Query(msg) | PageError::GaveUp(msg)) => {
                w.end = WalkEnd::Failed(lost.unwrap_or(msg));
                return w;
            }
            Err(PageError::Stop) => {
                w.end = WalkEnd::Stopped;
                return w;
            }
        };
        w.pages += 1;
        w.rows += s.rows as u64;
        let ided = s.ids.len().min(s.rows);
        for id in s.ids {
            if prev.is_some_and(|p| p.contains(&id)) {
                if seen.insert(id) {
                    w.repeats += 1;
                }
                w.duplicates += 1;
            } else if seen.insert(id) {
                w.unique += 1;
            } else {
                w.duplicates += 1;
            }
        }
        if s.max_first_seen_ms > w.max_first_seen_ms {
            w.max_first_seen_ms = s.max_first_seen_ms;
        }
        // Rows whose id could not be read cannot be deduplicated; count them
        // as distinct so they do not look like missing rows.
        w.unique += (s.rows - ided) as u64;
        if w.pages == 1 {
            w.total = s.total_items;
            if let (true, Some(t)) = (part.is_root(), w.total) {
                st.metrics.expected(&part.model, t);
            }
            if let (Some(acc), Some(t)) = (siblings_total, w.total) {
                acc.fetch_add(t, Ordering::AcqRel);
            }
            if let Some(t) = w.total {
                if t > cap && !stretch {
                    w.end = WalkEnd::OverCap(t);
                    return w;
                }
            }
        }
        if s.rows == 0 {
            w.saw_end = true;
            break;
        }
        // By rows received, not by the limit: a short page mid-walk is not the end.
        offset += s.rows as u64;
        // A stretch's total counts the repeats of the previous one too.
        let read = w.unique + w.repeats;
        if w.total.is_some_and(|t| read >= t) {
            break;
        }
    }
    w.hit_cap = stretch && offset >= cap && !w.saw_end;
    if let Some(msg) = lost {
        w.end = WalkEnd::Failed(msg);
    }
    w.seen = seen;
    w
}
