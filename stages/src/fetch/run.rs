//! The run: walk every planned query, split what does not fit, check that
//! what was read adds up, and report.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::OrcaClient;
use super::config::{FetchConfig, OverCap};
use super::error::FetchError;
use super::keyset::{walk_past_cap, Keyset, Totals};
use super::observe::FetchMetrics;
use super::pager::{walk, Walk, WalkEnd};
use super::planner::{plan_kinds, Kinds, Partition};
use super::report::{FetchReport, QueryReport};
use super::state::RunState;
use crate::channel;
use crate::model::RecordKind;
use crate::page::Page;
use crate::secret::Secret;
use crate::telemetry::Scope;

/// How a run is driven beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// What to pull (a profile's findings types).
    pub kinds: Kinds,
    /// The labels of the run's metrics.
    pub scope: Scope,
    /// "Now" for the time windows of splits (default: the clock at start).
    pub now_ms: Option<i64>,
}

/// Pull every planned query from Orca and send each raw page on `out`.
///
/// Returns `Err` only for what makes the whole run pointless (bad token, wrong
/// URL, bad config, cancellation, downstream gone). A query that cannot be
/// completed is recorded in the report with `complete = false` and the run goes
/// on; [`FetchReport::complete`] is then false.
pub async fn run(
    cfg: &FetchConfig,
    token: &Secret,
    out: channel::Sender<Page>,
    cancel: CancellationToken,
) -> Result<FetchReport, FetchError> {
    run_with(cfg, token, out, cancel, RunOptions::default()).await
}

/// [`run`] with "now" given, so time windows are reproducible in tests.
pub async fn run_at(
    cfg: &FetchConfig,
    token: &Secret,
    out: channel::Sender<Page>,
    cancel: CancellationToken,
    now_ms: i64,
) -> Result<FetchReport, FetchError> {
    let opts = RunOptions {
        now_ms: Some(now_ms),
        ..RunOptions::default()
    };
    run_with(cfg, token, out, cancel, opts).await
}

/// [`run`] pulling `opts.kinds`, its metrics labelled with `opts.scope`.
pub async fn run_with(
    cfg: &FetchConfig,
    token: &Secret,
    out: channel::Sender<Page>,
    cancel: CancellationToken,
    opts: RunOptions,
) -> Result<FetchReport, FetchError> {
    cfg.validate().map_err(FetchError::Config)?;
    let client = OrcaClient::new(cfg, token)?;
    let reads = match (opts.kinds.assets, opts.kinds.findings) {
        (true, true) => "host assets and findings",
        (true, false) => "host assets",
        (false, true) => "findings",
        (false, false) => "nothing",
    };
    tracing::info!(url = %client.url(), models = ?cfg.models, reads, "fetch starting");
    let stop = cancel.child_token();
    let now_ms = opts
        .now_ms
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let plan = plan_kinds(&cfg.models, opts.kinds);
    let metrics = FetchMetrics::new(opts.scope, &plan);
    let st = Arc::new(RunState::new(
        cfg.clone(),
        client,
        out,
        stop,
        now_ms,
        metrics,
    ));

    let mut tasks = JoinSet::new();
    for part in plan {
        tasks.spawn(process(st.clone(), part, None));
    }
    let mut lost_tasks = 0u32;
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            // A query whose task died has no report: the run cannot be complete.
            lost_tasks += 1;
            tracing::error!("fetch query task failed: {e}");
        }
    }

    if let Some(e) = st.take_fatal() {
        return Err(e);
    }
    // Interrupted (SIGINT, SIGTERM, a daemon stopping): the report still
    // says what was read, and which queries were cut short.
    let interrupted = cancel.is_cancelled();
    let mut queries = st.take_reports();
    queries.sort_by(|a, b| a.label.cmp(&b.label));
    let complete = !interrupted && lost_tasks == 0 && queries.iter().all(|q| q.complete);
    let report = FetchReport {
        requests: st.requests.load(Ordering::Relaxed),
        pages: st.pages.load(Ordering::Relaxed),
        retries_by_cause: st.retries.snapshot(),
        retry_budget_left: st.budget.left(),
        rate_limit_wait: st.limiter.waited(),
        partitions_split: st.splits.load(Ordering::Relaxed),
        complete,
        interrupted,
        queries,
    };
    st.metrics.report(&report);
    tracing::info!(
        requests = report.requests,
        pages = report.pages,
        complete = report.complete,
        interrupted = report.interrupted,
        "fetch finished"
    );
    Ok(report)
}

/// The children of one split: the parent's total, and the totals the
/// children's first pages reported so far.
struct Coverage {
    target: u64,
    seen: AtomicU64,
}

impl Coverage {
    fn covered(&self) -> bool {
        self.seen.load(Ordering::Acquire) >= self.target
    }
}

/// What a finished partition tells its parent.
struct Node {
    total: Option<u64>,
    complete: bool,
}

/// Walk a partition; if it must be split, process the children (in parallel,
/// bounded by the walker semaphore) and check that their totals add up.
///
/// Siblings (disjoint by construction) share a [`Coverage`]: once the totals
/// seen so far reach the parent's total, the siblings not yet started must be
/// empty, and probing them would waste a request each.
fn process(
    st: Arc<RunState>,
    part: Partition,
    coverage: Option<Arc<Coverage>>,
) -> Pin<Box<dyn Future<Output = Node> + Send>> {
    Box::pin(async move {
        // The permit covers the walk only: a parent waiting for its children
        // must not hold a slot they need.
        let w = match st.walkers.acquire().await {
            Ok(_permit) => {
                if let Some(c) = coverage.as_deref().filter(|c| c.covered()) {
                    tracing::debug!(query = %part.label(), target = c.target, "skipped: siblings already cover the parent's total");
                    return Node {
                        total: Some(0),
                        complete: true,
                    };
                }
                walk(&st, &part, coverage.as_deref().map(|c| &c.seen), None).await
            }
            Err(_) => return interrupted(&st, unread_report(&part)),
        };
        let mut rep = base_report(&part, &w);
        let (total, children, reason) = match &w.end {
            WalkEnd::Stopped => return interrupted(&st, rep),
            WalkEnd::Failed(msg) => {
                tracing::warn!(query = %rep.label, "partition incomplete: {msg}");
                rep.error = Some(msg.clone());
                return finish(&st, rep);
            }
            WalkEnd::OverCap(t) if st.cfg.over_cap == OverCap::Keyset && part.keyset.is_none() => {
                let t = *t;
                tracing::info!(query = %rep.label, total = t, "over the paging cap: reading on in FirstSeen order");
                st.metrics.split(&part.model, "over_cap_keyset");
                let ks = {
                    // The stretches are this partition's walk: they hold its slot.
                    let Ok(_permit) = st.walkers.acquire().await else {
                        return interrupted(&st, rep);
                    };
                    walk_past_cap(&st, &part, t).await
                };
                match ks {
                    Keyset::Stopped => return interrupted(&st, rep),
                    Keyset::Read(k) => {
                        add_stretches(&mut rep, &k);
                        rep.complete = true;
                        return finish(&st, rep);
                    }
                    Keyset::Failed(msg, k) => {
                        add_stretches(&mut rep, &k);
                        tracing::warn!(query = %rep.label, "partition incomplete: {msg}");
                        rep.error = Some(msg);
                        return finish(&st, rep);
                    }
                    Keyset::GaveUp(why, k) => {
                        add_stretches(&mut rep, &k);
                        tracing::warn!(query = %rep.label, "reading in FirstSeen order gave up ({why}); splitting instead");
                        (
                            t,
                            part.split_over_cap(t, st.cfg.effective_page_cap(), st.now_ms),
                            "over_cap",
                        )
                    }
                }
            }
            WalkEnd::OverCap(t) => (
                *t,
                part.split_over_cap(*t, st.cfg.effective_page_cap(), st.now_ms),
                "over_cap",
            ),
            WalkEnd::Walked if w.is_complete() => {
                rep.complete = true;
                return finish(&st, rep);
            }
            WalkEnd::Walked => match w.total {
                // Rows shifted under the walk: cut into one-page windows and
                // read again; a single page cannot shift.
                Some(t) if t > st.cfg.page_size => (
                    t,
                    part.split_shifted(t, st.cfg.page_size, st.now_ms),
                    "rows_shifted",
                ),
                _ => {
                    rep.error = Some(shortfall_message(&w));
                    tracing::warn!(query = %rep.label, "partition incomplete: {}", shortfall_message(&w));
                    return finish(&st, rep);
                }
            },
        };
        if children.is_empty() {
            let why = if reason == "over_cap" {
                format!(
                    "total_items {total} exceeds the paging cap {} and the partition cannot be split further",
                    st.cfg.effective_page_cap()
                )
            } else {
                shortfall_message(&w)
            };
            rep.error = Some(why);
            return finish(&st, rep);
        }
        RunState::bump(&st.splits);
        st.metrics.split(&part.model, reason);
        tracing::info!(query = %rep.label, total, reason, children = children.len(), "splitting partition");
        rep.split = true;
        rep.split_reason = Some(reason.to_string());

        let cov = Arc::new(Coverage {
            target: total,
            seen: AtomicU64::new(0),
        });
        let mut tasks = JoinSet::new();
        for c in children {
            tasks.spawn(process(st.clone(), c, Some(cov.clone())));
        }
        let mut sum = 0u64;
        let mut all_complete = true;
        let mut unknown = false;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(n) => {
                    all_complete &= n.complete;
                    match n.total {
                        Some(t) => sum += t,
                        None => unknown = true,
                    }
                }
                Err(e) => {
                    all_complete = false;
                    tracing::error!(query = %rep.label, "partition task failed: {e}");
                }
            }
        }
        rep.children_total = Some(sum);
        if st.stop.is_cancelled() {
            return interrupted(&st, rep);
        }
        let covered = !unknown && sum >= total;
        rep.complete = all_complete && covered;
        if !covered {
            rep.error = Some(format!(
                "sub-partitions hold {sum} of {total} items: {} items are reachable by no partition (e.g. no or out-of-range FirstSeen)",
                total.saturating_sub(sum)
            ));
        } else if !all_complete {
            rep.error = Some("some sub-partitions are incomplete".to_string());
        }
        finish(&st, rep)
    })
}

/// A keyset walk's reading, added to its partition's report (whose first
/// page, in the partition's own order, is already counted).
fn add_stretches(rep: &mut QueryReport, k: &Totals) {
    rep.rows_read += k.rows;
    rep.pages += k.pages;
    rep.duplicates += k.duplicates;
    // Page 1's ids are read again by the first stretch: count items once.
    rep.unique_ids = k.new_items;
    rep.split = true;
    rep.split_reason = Some("over_cap_keyset".to_string());
}

pub(super) fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Asset => "asset",
        RecordKind::Finding => "finding",
    }
}

/// A partition the run's stop cut short (or never let start): reported,
/// so the manifest says which queries an interrupted run did not finish.
fn interrupted(st: &RunState, mut rep: QueryReport) -> Node {
    rep.complete = false;
    rep.error = Some(if rep.pages == 0 {
        "interrupted before it was read".to_string()
    } else {
        "interrupted before it was read through".to_string()
    });
    finish(st, rep);
    Node {
        total: None,
        complete: false,
    }
}

fn finish(st: &RunState, rep: QueryReport) -> Node {
    let node = Node {
        total: rep.total_items,
        complete: rep.complete,
    };
    st.push_report(rep);
    node
}

/// The report of a partition before any page of it was read.
fn unread_report(part: &Partition) -> QueryReport {
    QueryReport {
        label: part.label(),
        model: part.model.clone(),
        kind: kind_name(part.kind).to_string(),
        ..QueryReport::default()
    }
}

fn base_report(part: &Partition, w: &Walk) -> QueryReport {
    QueryReport {
        total_items: match w.end {
            WalkEnd::OverCap(t) => Some(t),
            _ => w.total,
        },
        rows_read: w.rows,
        unique_ids: w.unique,
        duplicates: w.duplicates,
        pages: w.pages,
        ..unread_report(part)
    }
}

fn shortfall_message(w: &Walk) -> String {
    match w.total {
        Some(t) => format!(
            "read {} unique items of total_items {t} ({} rows, {} duplicates, {} pages); the rest could not be reached",
            w.unique, w.rows, w.duplicates, w.pages
        ),
        None => format!(
            "the server sent no total_items and the walk stopped at the paging cap after {} rows",
            w.rows
        ),
    }
}
