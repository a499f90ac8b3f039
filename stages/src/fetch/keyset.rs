//! Reading a partition larger than the paging cap in `FirstSeen` order,
//! one stretch of the cap at a time, each starting where the last one ended.
//!
//! Splitting into filtered partitions costs a probe request per partition
//! and pages only partly filled at each partition's end: about a fifth more
//! requests than `total_items ÷ page size` on a tenant of a million
//! findings, and at Orca's one request per second that is a fifth more
//! wall time. A keyset walk costs one request more than the minimum per
//! query (the first page, read in the query's own order before the total is
//! known) and a repeat or two per stretch.
//!
//! Each stretch is the partition filtered to `FirstSeen >= t - 1 ms`, where
//! `t` is the latest `FirstSeen` the previous stretch read: one millisecond
//! early so that the boundary item is read again whether the server's
//! `date_range` start is inclusive or not. The previous stretch's ids (at
//! most the cap) tell repeats from new items. The walk is complete when
//! the new items of all stretches reach the partition's `total_items`.
//!
//! It gives up, and the caller splits instead, when it cannot move on: more
//! items than the cap share one `FirstSeen`, no row has a readable one, or
//! the stretches came up short of the total (rows shifted while paging;
//! items without `FirstSeen` sorted past every stretch).

use std::collections::HashSet;

use super::pager::{walk, WalkEnd};
use super::planner::Partition;
use super::report::QueryReport;
use super::state::RunState;

/// How a keyset walk ended.
#[derive(Debug)]
pub enum Keyset {
    /// Every item counted by the server was read.
    Read(Totals),
    /// It could not finish this way; splitting may (why, and what was read).
    GaveUp(String, Totals),
    /// A page was lost for good: the partition is incomplete.
    Failed(String, Totals),
    Stopped,
}

/// What the stretches read together.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub stretches: u64,
    pub pages: u64,
    pub rows: u64,
    /// Items read once, repeats across stretches excluded.
    pub new_items: u64,
    pub duplicates: u64,
}

/// Walk `part` (of `total` items, over the cap) stretch by stretch. Every
/// stretch is reported on its own in the run's report.
pub async fn walk_past_cap(st: &RunState, part: &Partition, total: u64) -> Keyset {
    let mut reports = Vec::new();
    let outcome = walk_stretches(st, part, total, &mut reports).await;
    let superseded = matches!(outcome, Keyset::GaveUp(..));
    for mut r in reports {
        r.superseded = superseded;
        st.push_report(r);
    }
    outcome
}

async fn walk_stretches(
    st: &RunState,
    part: &Partition,
    total: u64,
    reports: &mut Vec<QueryReport>,
) -> Keyset {
    let mut t = Totals::default();
    let mut from: Option<i64> = None;
    let mut prev: HashSet<String> = HashSet::new();
    loop {
        let stretch = part.stretch(from);
        let w = walk(st, &stretch, None, Some(&prev)).await;
        t.stretches += 1;
        t.pages += w.pages;
        t.rows += w.rows;
        t.new_items += w.unique;
        t.duplicates += w.duplicates;
        reports.push(QueryReport {
            label: stretch.label(),
            model: stretch.model.clone(),
            kind: super::run::kind_name(stretch.kind).to_string(),
            total_items: w.total,
            rows_read: w.rows,
            unique_ids: w.unique,
            duplicates: w.duplicates,
            pages: w.pages,
            // The parent answers for the whole; a stretch only for itself.
            complete: w.end == WalkEnd::Walked,
            ..QueryReport::default()
        });
        match w.end {
            WalkEnd::Walked => {}
            WalkEnd::Stopped => return Keyset::Stopped,
            WalkEnd::Failed(msg) => return Keyset::Failed(msg, t),
            WalkEnd::OverCap(_) => {
                return Keyset::GaveUp("a stretch reported itself over the cap".into(), t)
            }
        }
        if !w.hit_cap {
            return if t.new_items >= total {
                Keyset::Read(t)
            } else {
                Keyset::GaveUp(
                    format!(
                        "the stretches read {} of {total} items (rows shifted while paging, or items without FirstSeen)",
                        t.new_items
                    ),
                    t,
                )
            };
        }
        let Some(latest) = w.max_first_seen_ms else {
            return Keyset::GaveUp("no row of the stretch has a readable FirstSeen".into(), t);
        };
        let next = latest.saturating_sub(1);
        if from.is_some_and(|f| next <= f) {
            return Keyset::GaveUp(
                format!("more items than the cap share FirstSeen {latest}"),
                t,
            );
        }
        tracing::debug!(query = %part.label(), from = next, read = t.new_items, total, "next keyset stretch");
        from = Some(next);
        prev = w.seen;
    }
}
