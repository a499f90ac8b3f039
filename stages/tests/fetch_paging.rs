//! Paging and partitioning against a synthetic tenant that implements the
//! planner's filter grammar and a 10,000-offset cap.

mod fetch_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fetch_support::*;
use stages::fetch::{run_at, FetchConfig, FetchReport, OverCap};
use stages::secret::Secret;
use tokio_util::sync::CancellationToken;

async fn go(cfg: FetchConfig) -> (FetchReport, Parsed) {
    let (tx, rx) = pipe();
    let parser = spawn_parser(rx);
    let rep = run_at(&cfg, &Secret::new(TOKEN), tx, CancellationToken::new(), NOW)
        .await
        .unwrap();
    (rep, parser.await.unwrap())
}

fn one_model(fake: &Fake, model: &str) -> FetchConfig {
    FetchConfig {
        models: vec![model.to_string()],
        ..config(fake)
    }
}

/// The split strategy alone (also the keyset walk's fallback).
fn split_only(cfg: FetchConfig) -> FetchConfig {
    FetchConfig {
        over_cap: OverCap::Split,
        ..cfg
    }
}

#[tokio::test]
async fn assets_25000_behind_a_10000_cap_are_split_and_all_read() {
    let t = Arc::new(Tenant::new(items("AwsEc2Instance", 25_000), 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let (rep, parsed) = go(split_only(one_model(&fake, "AwsEc2Instance"))).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 25_000);
    let parent = rep.query("AwsEc2Instance").unwrap();
    assert!(parent.split && parent.complete);
    assert_eq!(parent.split_reason.as_deref(), Some("over_cap"));
    assert_eq!(
        (parent.total_items, parent.children_total),
        (Some(25_000), Some(25_000))
    );
    let leaves: Vec<_> = rep
        .queries
        .iter()
        .filter(|q| q.model == "AwsEc2Instance" && !q.split)
        .collect();
    assert!(leaves
        .iter()
        .all(|q| q.complete && q.total_items.unwrap() <= 10_000));
    let sum: u64 = leaves.iter().map(|q| q.unique_ids).sum();
    assert_eq!(sum, 25_000);
    // Requests: the minimum per leaf, plus one first page per split parent;
    // every request stayed under the cap.
    let min: u64 = leaves
        .iter()
        .map(|q| q.total_items.unwrap().div_ceil(1000).max(1))
        .sum();
    let ec2 = fake
        .requests()
        .iter()
        .filter(|r| r.model() == "AwsEc2Instance")
        .count() as u64;
    assert_eq!(ec2, min + rep.partitions_split, "{rep:#?}");
    assert!(rep.partitions_split <= 3, "{rep:#?}");
    assert!(fake.requests().iter().all(|r| r.offset() < 10_000));
}

#[tokio::test]
async fn findings_split_by_severity_first_then_time() {
    let mut all = items("VulnerabilityV2", 25_000);
    // Unknown and missing severities must land in the complement bucket.
    for (i, it) in all.iter_mut().enumerate().take(30) {
        it.severity = if i % 2 == 0 {
            None
        } else {
            Some("hazardous".into())
        };
    }
    // One severity with more than the cap, so it needs time windows too.
    for it in all.iter_mut().skip(30).take(12_000) {
        it.severity = Some("HIGH".into());
    }
    let t = Arc::new(Tenant::new(all, 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let cfg = FetchConfig {
        models: vec!["AwsEc2Instance".into()],
        ..config(&fake)
    };
    let (rep, parsed) = go(split_only(cfg)).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["VulnerabilityV2"], 25_000);
    let v = rep.query("VulnerabilityV2").unwrap();
    assert!(v.split && v.complete);
    assert_eq!(v.children_total, Some(25_000));
    let other = rep.query("VulnerabilityV2[severity=OTHER]").unwrap();
    assert_eq!((other.total_items, other.unique_ids), (Some(30), 30));
    let high = rep.query("VulnerabilityV2[severity=HIGH]").unwrap();
    assert!(high.split && high.complete, "{high:?}");
    // The findings query, HIGH, and HIGH's one window that held all of it.
    assert_eq!(rep.partitions_split, 3, "{rep:#?}");
}

#[tokio::test]
async fn items_no_window_can_reach_are_reported_not_dropped() {
    let mut all = items("AwsEc2Instance", 12_000);
    for it in all.iter_mut().take(50) {
        it.first_seen = None;
    }
    let t = Arc::new(Tenant::new(all, 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(!rep.complete);
    let p = rep.query("AwsEc2Instance").unwrap();
    assert!(p.split && !p.complete);
    assert_eq!(p.children_total, Some(11_950));
    assert!(p.error.as_deref().unwrap().contains("50 items"), "{p:?}");
    // The leaves themselves are complete; what they could reach was read.
    assert_eq!(rep.incomplete().count(), 1);
    assert!(parsed.unique() >= 11_950);
}

#[tokio::test]
async fn short_page_mid_walk_loses_no_rows() {
    let t = Arc::new(Tenant::new(items("AwsEc2Instance", 3000), 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| {
        if r.model() == "AwsEc2Instance" && r.offset() == 1000 {
            let all = t2.matching(&r.body).unwrap();
            return page_body(all.len(), &all[1000..1500]);
        }
        t2.answer(r)
    }))
    .await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 3000);
    let offsets: Vec<u64> = fake
        .requests()
        .iter()
        .filter(|r| r.model() == "AwsEc2Instance")
        .map(|r| r.offset())
        .collect();
    assert_eq!(offsets, vec![0, 1000, 1500, 2500]);
    assert_eq!(rep.query("AwsEc2Instance").unwrap().duplicates, 0);
}

#[tokio::test]
async fn page_served_twice_is_detected_and_reread() {
    let t = Arc::new(Tenant::new(items("AwsEc2Instance", 3000), 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| {
        // The unpartitioned query answers offset 1000 with the rows of offset 0.
        if r.model() == "AwsEc2Instance" && r.offset() == 1000 && !r.filtered() {
            let all = t2.matching(&r.body).unwrap();
            return page_body(all.len(), &all[0..1000]);
        }
        t2.answer(r)
    }))
    .await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 3000);
    let p = rep.query("AwsEc2Instance").unwrap();
    assert_eq!(p.duplicates, 1000);
    assert_eq!(p.unique_ids, 2000);
    assert!(p.split);
    assert_eq!(p.split_reason.as_deref(), Some("rows_shifted"));
    assert_eq!(p.children_total, Some(3000));
}

#[tokio::test]
async fn shuffled_ties_are_read_exactly_once_after_dedupe() {
    let mut tenant = Tenant::new(items("AwsEc2Instance", 3000), 10_000);
    // Tie groups of 300 straddle every page boundary, so a shuffle moves rows
    // between pages.
    for (i, it) in tenant.items.iter_mut().enumerate() {
        it.tie = (i / 300) as u32;
    }
    tenant.shuffle_ties = true;
    let t = Arc::new(tenant);
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 3000);
    let leaves_unique: u64 = rep
        .queries
        .iter()
        .filter(|q| q.model == "AwsEc2Instance" && !q.split)
        .map(|q| q.unique_ids)
        .sum();
    assert_eq!(leaves_unique, 3000, "{rep:#?}");
    let p = rep.query("AwsEc2Instance").unwrap();
    assert_eq!(p.split_reason.as_deref(), Some("rows_shifted"), "{p:?}");
}

#[tokio::test]
async fn page_3_of_5_failing_every_retry_costs_only_its_rows() {
    let mut all = items("AwsEc2Instance", 5000);
    all.extend(items("AzureComputeVm", 5000));
    all.extend(items("VulnerabilityV2", 100));
    let t = Arc::new(Tenant::new(all, 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| {
        if r.model() == "AwsEc2Instance" && r.offset() == 2000 {
            return json_reply(502, serde_json::json!({"error": "bad gateway"}));
        }
        t2.answer(r)
    }))
    .await;
    let cfg = FetchConfig {
        models: vec!["AwsEc2Instance".into(), "AzureComputeVm".into()],
        max_retries_per_request: 3,
        ..config(&fake)
    };
    let (rep, parsed) = go(cfg).await;
    assert!(!rep.complete);
    let ec2 = rep.query("AwsEc2Instance").unwrap();
    assert!(!ec2.complete);
    // The lost page costs its own rows only: the walk steps over it and
    // reads on (0, 1000, 3000, 4000, then the empty page at 5000).
    assert_eq!((ec2.pages, ec2.unique_ids), (5, 4000));
    assert!(
        ec2.error.as_deref().unwrap().contains("offset 2000"),
        "{ec2:?}"
    );
    assert_eq!(rep.retries_by_cause.get("http_502"), Some(&3));
    assert!(rep.query("AzureComputeVm").unwrap().complete);
    assert!(rep.query("VulnerabilityV2").unwrap().complete);
    assert_eq!(rep.incomplete().count(), 1);
    let counts = parsed.count_by_prefix();
    assert_eq!(counts["AwsEc2Instance"], 4000);
    assert_eq!(counts["AzureComputeVm"], 5000);
}

#[tokio::test]
async fn pages_rows_that_led_to_a_split_are_still_sent() {
    let t = Arc::new(Tenant::new(items("GcpVmInstance", 10_500), 10_000));
    let t2 = t.clone();
    let first = Arc::new(AtomicBool::new(true));
    let fake = serve(Arc::new(move |r: &Req| {
        if r.model() == "GcpVmInstance" && !r.filtered() {
            assert!(first.swap(false, Ordering::SeqCst), "parent read once only");
        }
        t2.answer(r)
    }))
    .await;
    let (rep, parsed) = go(split_only(one_model(&fake, "GcpVmInstance"))).await;
    assert!(rep.complete);
    let p = rep.query("GcpVmInstance").unwrap();
    assert_eq!((p.pages, p.rows_read), (1, 1000));
    // 10,500 distinct, plus each split parent's first page read again below it.
    assert_eq!(parsed.count_by_prefix()["GcpVmInstance"], 10_500);
    assert_eq!(
        parsed.ids.iter().filter(|i| i.starts_with("Gcp")).count() as u64,
        10_500 + 1000 * rep.partitions_split
    );
}

#[tokio::test]
async fn windows_older_than_the_data_are_not_probed_once_totals_are_covered() {
    let mut all = items("AwsEc2Instance", 25_000);
    // Everything first seen in the last months: old windows are empty.
    for (i, it) in all.iter_mut().enumerate() {
        it.first_seen = Some(T1 - 15_000_000_000 + i as i64 * 500_000);
    }
    let t = Arc::new(Tenant::new(all, 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let cfg = split_only(FetchConfig {
        concurrency: 1,
        ..one_model(&fake, "AwsEc2Instance")
    });
    let (rep, parsed) = go(cfg).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 25_000);
    let probed_old = fake
        .requests()
        .iter()
        .filter(|r| r.model() == "AwsEc2Instance" && r.filtered())
        .filter(|r| {
            let w = &r.body["query"]["with"]["values"];
            w[1].as_i64().is_some_and(|end| end <= T0)
        })
        .count();
    assert_eq!(probed_old, 0, "empty old windows were probed");
}

#[tokio::test]
async fn over_the_cap_is_read_on_in_first_seen_stretches() {
    let t = Arc::new(Tenant::new(items("AwsEc2Instance", 25_000), 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["AwsEc2Instance"], 25_000);
    let parent = rep.query("AwsEc2Instance").unwrap();
    assert!(parent.split && parent.complete);
    assert_eq!(parent.split_reason.as_deref(), Some("over_cap_keyset"));
    assert_eq!(
        (parent.total_items, parent.unique_ids),
        (Some(25_000), 25_000)
    );
    assert_eq!(rep.partitions_split, 0, "nothing was split: {rep:#?}");
    // Three stretches: from the start, then from just before the latest
    // FirstSeen of the one before.
    let stretches: Vec<_> = rep
        .queries
        .iter()
        .filter(|q| q.label.contains("first_seen"))
        .collect();
    assert_eq!(stretches.len(), 3, "{rep:#?}");
    assert!(rep.query("AwsEc2Instance[by_first_seen]").is_some());
    // Requests: the minimum (25 pages), the first page in id order, and one
    // more page for the boundary items the stretches read twice.
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.model() == "AwsEc2Instance")
        .collect();
    assert_eq!(requests.len(), 27, "{rep:#?}");
    assert!(requests.iter().all(|r| r.offset() < 10_000));
    let keyed: Vec<_> = requests
        .iter()
        .filter(|r| r.body["order_by[]"][0] == "FirstSeen")
        .collect();
    assert_eq!(keyed.len(), 26);
    // Each later stretch starts 1 ms before the latest FirstSeen read.
    let step = (T1 - T0) / 25_000;
    let starts: Vec<i64> = keyed
        .iter()
        .filter_map(|r| r.body["query"]["with"]["values"][0].as_i64())
        .collect();
    assert!(starts.contains(&(T0 + step * 9_999 - 1)), "{starts:?}");
}

#[tokio::test]
async fn stretches_that_cannot_move_on_fall_back_to_splitting() {
    // More items than the cap share one FirstSeen: a stretch cannot start
    // past them, so the findings are split by severity instead.
    let mut all = items("VulnerabilityV2", 12_000);
    for it in all.iter_mut() {
        it.first_seen = Some(T0);
    }
    let t = Arc::new(Tenant::new(all, 10_000));
    let t2 = t.clone();
    let fake = serve(Arc::new(move |r: &Req| t2.answer(r))).await;
    let (rep, parsed) = go(one_model(&fake, "AwsEc2Instance")).await;
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.count_by_prefix()["VulnerabilityV2"], 12_000);
    let v = rep.query("VulnerabilityV2").unwrap();
    assert_eq!(v.split_reason.as_deref(), Some("over_cap"));
    assert_eq!(v.children_total, Some(12_000));
    assert!(rep.query("VulnerabilityV2[severity=HIGH]").is_some());
    // The stretches it read are superseded by the split: the items read
    // once each are the split's leaves.
    let stretches: Vec<_> = rep
        .queries
        .iter()
        .filter(|q| q.label.contains("first_seen"))
        .collect();
    assert!(!stretches.is_empty() && stretches.iter().all(|q| q.superseded));
    let read: u64 = rep
        .queries
        .iter()
        .filter(|q| q.model == "VulnerabilityV2" && !q.split && !q.superseded)
        .map(|q| q.unique_ids)
        .sum();
    assert_eq!(read, 12_000);
}
