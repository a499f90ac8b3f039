//! What to ask Orca: the queries of a run, their request bodies, and how a
//! query too large for one offset walk is cut into partitions that fit.

use bytes::Bytes;
use serde_json::{json, Value};

use super::config::FINDING_MODEL;
use crate::model::RecordKind;

/// 2000-01-01T00:00:00Z: the start of the first time window. Items first seen
/// earlier (or never) are not reachable by windows; the totals check reports them.
pub const WINDOW_ORIGIN_MS: i64 = 946_684_800_000;
const DAY_MS: i64 = 86_400_000;

/// Fewest windows a time split makes. Items are rarely spread evenly over
/// the window (most were first seen recently), so halving would take many
/// levels, each costing a probe per window; four windows per level converge
/// faster for about the same number of empty probes.
pub const MIN_TIME_FANOUT: u64 = 4;

/// Severity values Orca uses, one bucket each, plus the complement bucket.
pub const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeverityBucket {
    Is(&'static str),
    /// Anything not in [`SEVERITIES`] (null, unknown, other case): so that no
    /// finding falls between buckets.
    Other,
}

/// `start_ms <= FirstSeen < end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// Up to `n` equal, adjacent windows covering this one exactly.
    pub fn split(self, n: u64) -> Vec<Window> {
        let width = self.end_ms.saturating_sub(self.start_ms);
        if width < 2 || n < 2 {
            return Vec::new();
        }
        let n = (n as i64).min(width);
        let step = (width + n - 1) / n;
        let mut out = Vec::with_capacity(n as usize);
        let mut s = self.start_ms;
        while s < self.end_ms {
            let e = s.saturating_add(step).min(self.end_ms);
            out.push(Window {
                start_ms: s,
                end_ms: e,
            });
            s = e;
        }
        out
    }
}

/// One query or partition of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub kind: RecordKind,
    /// The model queried: one VM model, or `VulnerabilityV2`.
    pub model: String,
    /// For findings: the asset models they must belong to.
    pub asset_models: Vec<String>,
    pub severity: Option<SeverityBucket>,
    pub window: Option<Window>,
    /// A stretch of a walk past the cap in `FirstSeen` order.
    pub keyset: Option<Stretch>,
}

/// One stretch of a keyset walk: ordered by `FirstSeen`, from `from_ms`
/// (inclusive; `None` for the first stretch, which has no lower bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub from_ms: Option<i64>,
}

/// The upper bound of a stretch's `FirstSeen` range: 2100-01-01.
const KEYSET_END_MS: i64 = 4_102_444_800_000;

/// The queries of a run: one per asset model, then the findings of those assets.
pub fn plan(models: &[String]) -> Vec<Partition> {
    let mut out: Vec<Partition> = models
        .iter()
        .map(|m| Partition {
            kind: RecordKind::Asset,
            model: m.clone(),
            asset_models: Vec::new(),
            severity: None,
            window: None,
            keyset: None,
        })
        .collect();
    out.push(Partition {
        kind: RecordKind::Finding,
        model: FINDING_MODEL.to_string(),
        asset_models: models.to_vec(),
        severity: None,
        window: None,
        keyset: None,
    });
    out
}

impl Partition {
    /// Stable, readable, secret-free name, e.g.
    /// `VulnerabilityV2[severity=HIGH,first_seen=1700000000000..1710000000000]`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        match &self.severity {
            Some(SeverityBucket::Is(s)) => parts.push(format!("severity={s}")),
            Some(SeverityBucket::Other) => parts.push("severity=OTHER".to_string()),
            None => {}
        }
        if let Some(w) = self.window {
            parts.push(format!("first_seen={}..{}", w.start_ms, w.end_ms));
        }
        match self.keyset {
            Some(Stretch { from_ms: Some(t) }) => parts.push(format!("first_seen>={t}")),
            Some(Stretch { from_ms: None }) => parts.push("by_first_seen".to_string()),
            None => {}
        }
        if parts.is_empty() {
            self.model.clone()
        } else {
            format!("{}[{}]", self.model, parts.join(","))
        }
    }

    fn order_key(&self) -> &'static str {
        match (self.keyset, self.kind) {
            (Some(_), _) => "FirstSeen",
            (None, RecordKind::Asset) => "AssetUniqueId",
            (None, RecordKind::Finding) => "id",
        }
    }

    /// The stretch of a keyset walk of this partition starting at `from_ms`.
    pub fn stretch(&self, from_ms: Option<i64>) -> Partition {
        Partition {
            keyset: Some(Stretch { from_ms }),
            ..self.clone()
        }
    }

    /// The filter tree (`with`), if any.
    pub fn filter(&self) -> Option<Value> {
        let mut leaves = Vec::new();
        if self.kind == RecordKind::Finding {
            leaves.push(json!({
                "keys": ["Inventory"],
                "models": self.asset_models,
                "type": "object_set",
                "operator": "has",
            }));
        }
        match &self.severity {
            Some(SeverityBucket::Is(s)) => leaves.push(json!({
                "key": "CvssSeverity", "values": [s], "type": "str", "operator": "in",
            })),
            Some(SeverityBucket::Other) => leaves.push(json!({
                "key": "CvssSeverity", "values": SEVERITIES, "type": "str", "operator": "not_in",
            })),
            None => {}
        }
        if let Some(w) = self.window {
            leaves.push(json!({
                "key": "FirstSeen", "values": [w.start_ms, w.end_ms],
                "type": "datetime", "operator": "date_range",
            }));
        }
        if let Some(Stretch { from_ms: Some(t) }) = self.keyset {
            leaves.push(json!({
                "key": "FirstSeen", "values": [t, KEYSET_END_MS],
                "type": "datetime", "operator": "date_range",
            }));
        }
        match leaves.len() {
            0 => None,
            1 => leaves.pop(),
            _ => Some(json!({"type": "operation", "operator": "and", "values": leaves})),
        }
    }

    /// The request body for one page.
    pub fn body(&self, offset: u64, limit: u64) -> Bytes {
        let mut query = json!({"models": [self.model], "type": "object_set"});
        if let (Some(f), Some(q)) = (self.filter(), query.as_object_mut()) {
            q.insert("with".to_string(), f);
        }
        let body = json!({
            "query": query,
            "limit": limit,
            "start_at_index": offset,
            "order_by[]": [self.order_key()],
            "select": [],
            "get_results_and_count": true,
            "full_graph_fetch": {"enabled": true},
            "max_tier": 2,
        });
        Bytes::from(body.to_string())
    }

    fn with_severity(&self, s: SeverityBucket) -> Partition {
        Partition {
            severity: Some(s),
            ..self.clone()
        }
    }

    fn with_window(&self, w: Window) -> Partition {
        Partition {
            window: Some(w),
            ..self.clone()
        }
    }

    /// Children of a partition whose `total` exceeds the cap: findings by
    /// severity first (cheap, and it usually divides well), then by time
    /// windows, cut at once into enough windows that each would hold ~80% of
    /// the cap if spread evenly, so few probes are wasted on halving.
    /// Empty when it cannot be cut further.
    pub fn split_over_cap(&self, total: u64, cap: u64, now_ms: i64) -> Vec<Partition> {
        if self.kind == RecordKind::Finding && self.severity.is_none() {
            let mut out: Vec<Partition> = SEVERITIES
                .iter()
                .map(|s| self.with_severity(SeverityBucket::Is(s)))
                .collect();
            out.push(self.with_severity(SeverityBucket::Other));
            return out;
        }
        let per_window = ((cap as f64) * 0.8).max(1.0);
        let n = ((total as f64) / per_window).ceil() as u64;
        self.split_time(n.max(MIN_TIME_FANOUT), now_ms)
    }

    /// Children of a partition whose walk came up short (rows shifted while
    /// paging): windows small enough to hold about one page each, since a
    /// one-page partition cannot shift between pages.
    pub fn split_shifted(&self, total: u64, page_size: u64, now_ms: i64) -> Vec<Partition> {
        let n = total.div_ceil(page_size.max(1));
        self.split_time(n.max(MIN_TIME_FANOUT), now_ms)
    }

    fn split_time(&self, n: u64, now_ms: i64) -> Vec<Partition> {
        let w = self.window.unwrap_or(Window {
            start_ms: WINDOW_ORIGIN_MS,
            end_ms: now_ms.saturating_add(DAY_MS).max(WINDOW_ORIGIN_MS + 1),
        });
        // Newest first: items cluster in recent windows, and once the windows
        // read so far account for the parent's total the rest can be skipped.
        w.split(n)
            .into_iter()
            .rev()
            .map(|c| self.with_window(c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::config::VM_MODELS;

    fn models() -> Vec<String> {
        VM_MODELS.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn plan_is_six_models_then_findings() {
        let p = plan(&models());
        assert_eq!(p.len(), 7);
        assert_eq!(p[0].label(), "AwsEc2Instance");
        assert!(p[..6].iter().all(|q| q.kind == RecordKind::Asset));
        assert_eq!(p[6].model, "VulnerabilityV2");
        assert_eq!(p[6].kind, RecordKind::Finding);
    }

    #[test]
    fn asset_body_exact() {
        let p = plan(&models());
        let v: Value = serde_json::from_slice(&p[0].body(2000, 1000)).unwrap();
        assert_eq!(
            v,
            json!({
                "query": {"models": ["AwsEc2Instance"], "type": "object_set"},
                "limit": 1000, "start_at_index": 2000,
                "order_by[]": ["AssetUniqueId"], "select": [],
                "get_results_and_count": true,
                "full_graph_fetch": {"enabled": true}, "max_tier": 2
            })
        );
    }

    #[test]
    fn finding_body_with_all_filters() {
        let p = plan(&models()).pop().unwrap();
        let v: Value = serde_json::from_slice(&p.body(0, 1000)).unwrap();
        assert_eq!(v["order_by[]"], json!(["id"]));
        assert_eq!(
            v["query"]["with"],
            json!({"keys": ["Inventory"], "models": VM_MODELS, "type": "object_set", "operator": "has"})
        );
        let kids = p.split_over_cap(25_000, 10_000, 1_700_000_000_000);
        assert_eq!(kids.len(), 6);
        let other = kids[5].with_window(Window {
            start_ms: 5,
            end_ms: 9,
        });
        assert_eq!(
            other.label(),
            "VulnerabilityV2[severity=OTHER,first_seen=5..9]"
        );
        let v: Value = serde_json::from_slice(&other.body(0, 10)).unwrap();
        assert_eq!(
            v["query"]["with"],
            json!({"type": "operation", "operator": "and", "values": [
                {"keys": ["Inventory"], "models": VM_MODELS, "type": "object_set", "operator": "has"},
                {"key": "CvssSeverity", "values": ["CRITICAL","HIGH","MEDIUM","LOW","NONE"], "type": "str", "operator": "not_in"},
                {"key": "FirstSeen", "values": [5, 9], "type": "datetime", "operator": "date_range"}
            ]})
        );
        let v: Value = serde_json::from_slice(&kids[0].body(0, 10)).unwrap();
        assert_eq!(
            v["query"]["with"]["values"][1],
            json!({"key": "CvssSeverity", "values": ["CRITICAL"], "type": "str", "operator": "in"})
        );
    }

    #[test]
    fn time_split_covers_window_exactly_and_sizes_for_cap() {
        let now = 1_700_000_000_000;
        let p = plan(&models()).remove(0);
        let kids = p.split_over_cap(25_000, 10_000, now);
        // ceil(25000 / 8000) = 4 windows at once.
        assert_eq!(kids.len(), 4);
        let mut ws: Vec<Window> = kids.iter().map(|k| k.window.unwrap()).collect();
        assert!(ws[0].start_ms > ws[1].start_ms, "newest window first");
        ws.reverse();
        assert_eq!(ws[0].start_ms, WINDOW_ORIGIN_MS);
        assert_eq!(ws[3].end_ms, now + DAY_MS);
        for pair in ws.windows(2) {
            assert_eq!(pair[0].end_ms, pair[1].start_ms);
        }
        // Recursion keeps within the parent window.
        let grandkids = kids[1].split_shifted(5500, 1000, now);
        assert_eq!(grandkids.len(), 6);
        assert_eq!(kids[1].window.unwrap(), ws[2]);
        assert_eq!(grandkids[5].window.unwrap().start_ms, ws[2].start_ms);
        assert_eq!(grandkids[0].window.unwrap().end_ms, ws[2].end_ms);
        // Never fewer than MIN_TIME_FANOUT windows.
        assert_eq!(p.split_over_cap(10_001, 10_000, now).len(), 4);
    }

    #[test]
    fn findings_in_a_window_still_split_by_severity_first() {
        let f = plan(&models()).pop().unwrap();
        let w = Window {
            start_ms: 100,
            end_ms: 101,
        };
        let kids = f.with_window(w).split_over_cap(20_000, 10_000, 0);
        assert_eq!(kids.len(), 6);
        assert!(kids
            .iter()
            .all(|k| k.window == Some(w) && k.severity.is_some()));
        // A one-millisecond window of one severity cannot be cut further.
        assert!(kids[0].split_over_cap(20_000, 10_000, 0).is_empty());
    }

    #[test]
    fn window_cannot_split_below_one_ms() {
        let w = Window {
            start_ms: 10,
            end_ms: 11,
        };
        assert!(w.split(4).is_empty());
        let w = Window {
            start_ms: 10,
            end_ms: 13,
        };
        assert_eq!(w.split(10).len(), 3);
    }
}
