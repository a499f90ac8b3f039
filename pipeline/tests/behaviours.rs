//! The server behaviours of `shared/cases/README.md`, each a whole run
//! against the fake Orca.

mod common;

use common::*;
use fixtures::tenant::{Tenant, TenantSpec};
use pipeline::manifest::RunStatus;

fn spec(assets: u64, findings: u64) -> TenantSpec {
    TenantSpec {
        seed: 7,
        assets,
        findings,
        odd_share: 0.0,
        over_limit_share: 0.0,
        orphan_findings: 0,
        non_vm_findings: 0,
    }
}

/// Findings published and distinct (asset, vendor id) keys.
fn finding_keys(docs: &[serde_json::Value]) -> (usize, usize) {
    let mut keys = std::collections::HashSet::new();
    let mut n = 0;
    for d in docs {
        for f in d["finding"].as_array().unwrap() {
            n += 1;
            keys.insert((
                d["externalAssetId"].as_str().unwrap().to_string(),
                f["findingType"]["vulnerability"]["vendorId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
    }
    (n, keys.len())
}

fn expect_all_read(dir: &std::path::Path, s: &TenantSpec) {
    let expected = Tenant::new(s.clone()).expected().clone();
    let docs = docs(&out_file(dir, "etm-assets.ndjson"));
    assert_eq!(docs.len() as u64, expected.assets);
    let (n, distinct) = finding_keys(&docs);
    assert_eq!(n, distinct, "no finding published twice");
    assert_eq!(n as u64, expected.findings);
}

#[test]
fn every_third_request_429_with_retry_after_is_honoured() {
    let s = spec(12, 60);
    let fake = Fake::synthetic(
        s.clone(),
        1.0,
        "[[faults]]\nkind = \"status\"\nstatus = 429\nevery = 3\nretry_after = 7\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &fake.url(),
        dir.path(),
        "requests_per_second = 1.0\nretry_after_cap = \"30s\"",
    );
    let out = run(&cfg);
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    expect_all_read(dir.path(), &s);
    let log = fake.orca().requests();
    let scripted: Vec<_> = log.iter().filter(|r| r.seq % 3 == 0).collect();
    assert!(!scripted.is_empty());
    for r in &scripted {
        assert_eq!(r.status, 429);
        if let Some(next) = log.iter().find(|n| n.seq == r.seq + 1) {
            let gap = next.at - r.at;
            assert!(
                gap.as_secs_f64() >= 6.9,
                "Retry-After 7 not honoured: next request after {gap:?}"
            );
        }
    }
    // Only the scripted answers were 429: the client never ran over the limit.
    assert!(log
        .iter()
        .filter(|r| r.seq % 3 != 0)
        .all(|r| r.status == 200));
    let fetch = out.manifest.fetch.unwrap();
    assert_eq!(
        fetch.retries_by_cause.values().sum::<u64>(),
        scripted.len() as u64 - u64::from(log.last().unwrap().seq.is_multiple_of(3))
    );
}

#[test]
fn token_refused_at_the_50th_request_fails_the_run_without_the_token() {
    let s = spec(100, 500);
    let fake = Fake::synthetic(
        s,
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 403\nat = 50\nbody = '{\"error\": \"Given token not valid for any token type\"}'\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fake.url(), dir.path(), "page_size = 10");
    let out = run(&cfg);
    assert_eq!(out.manifest.status, RunStatus::Failed);
    assert_eq!(out.manifest.status.exit_code(), 4);
    let err = out.manifest.error.clone().unwrap();
    assert!(
        err.contains("Given token not valid for any token type"),
        "{err}"
    );
    assert!(out.output.is_none());
    assert!(
        !out_file(dir.path(), "etm-assets.ndjson").exists(),
        "a failed run publishes nothing"
    );
    let manifest = std::fs::read_to_string(&out.manifest_path).unwrap();
    assert!(!manifest.contains(TOKEN));
    assert_eq!(out.manifest.counts.findings_by_status.get("FIXED"), None);
    assert!(out
        .manifest
        .fixing
        .as_deref()
        .unwrap()
        .contains("no finding is marked FIXED"));
    assert_eq!(
        fake.orca().requests().len(),
        50,
        "the run stops at the refusal"
    );
}

#[test]
fn a_dripping_response_times_out_and_is_retried() {
    let s = spec(10, 40);
    let fake = Fake::synthetic(
        s.clone(),
        0.0,
        "[[faults]]\nkind = \"drip\"\ninterval_secs = 20\nat = 2\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &fake.url(),
        dir.path(),
        "read_timeout = \"1s\"\nrequest_timeout = \"5s\"",
    );
    let t = std::time::Instant::now();
    let out = run(&cfg);
    assert!(
        t.elapsed().as_secs() < 15,
        "the run must not wait for the drip"
    );
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    expect_all_read(dir.path(), &s);
    let fetch = out.manifest.fetch.unwrap();
    assert!(fetch.retries_by_cause.values().sum::<u64>() >= 1);
}

#[test]
fn a_short_page_mid_walk_loses_no_row() {
    let s = spec(20, 2_500);
    let fake = Fake::synthetic(
        s.clone(),
        0.0,
        "[[faults]]\nkind = \"short_page\"\nmodel = \"VulnerabilityV2\"\noffset = 1000\nrows = 500\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    expect_all_read(dir.path(), &s);
}

#[test]
fn the_same_page_for_two_offsets_is_detected_and_deduped() {
    let s = spec(20, 3_000);
    let fake = Fake::synthetic(
        s.clone(),
        0.0,
        "[[faults]]\nkind = \"repeat_page\"\nmodel = \"VulnerabilityV2\"\noffset = 2000\nof_offset = 1000\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    expect_all_read(dir.path(), &s);
    let fetch = out.manifest.fetch.unwrap();
    let dups: u64 = fetch.queries.iter().map(|q| q.duplicates).sum();
    assert!(
        dups >= 1000,
        "the repeated page is reported as duplicates: {dups}"
    );
}

#[test]
fn items_behind_the_deep_paging_cap_are_all_read() {
    // Both ways past the cap: stretches in FirstSeen order (the default),
    // and filtered partitions that each fit.
    for (over_cap, reason) in [("keyset", "over_cap_keyset"), ("split", "over_cap")] {
        let s = spec(50, 25_000);
        let fake = Fake::synthetic(s.clone(), 0.0, "");
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("page_cap = 10000\nover_cap = \"{over_cap}\"");
        let out = run(&config(&fake.url(), dir.path(), &extra));
        assert_eq!(
            out.manifest.status,
            RunStatus::Complete,
            "{over_cap}: {:?}",
            out.manifest.error
        );
        expect_all_read(dir.path(), &s);
        let fetch = out.manifest.fetch.unwrap();
        let v = fetch.query("VulnerabilityV2").unwrap();
        assert_eq!(v.split_reason.as_deref(), Some(reason), "{over_cap}");
        assert!(
            v.complete && v.total_items == Some(25_000),
            "{over_cap}: {v:?}"
        );
        assert!(fake.orca().requests().iter().all(|r| r.offset < 10_000));
    }
}

#[test]
fn shuffled_ties_still_read_every_item_exactly_once() {
    let s = spec(20, 3_000);
    let fake = Fake::synthetic(
        s.clone(),
        0.0,
        "[[faults]]\nkind = \"shuffle_ties\"\nmodel = \"VulnerabilityV2\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    expect_all_read(dir.path(), &s);
}

#[test]
fn a_page_failing_on_every_retry_makes_the_run_partial() {
    let s = spec(20, 5_000);
    let fake = Fake::synthetic(
        s.clone(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 500\nmodel = \"VulnerabilityV2\"\noffset = 2000\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(
        &fake.url(),
        dir.path(),
        "max_retries_per_request = 3",
    ));
    assert_eq!(out.manifest.status, RunStatus::Partial);
    assert_eq!(out.manifest.status.exit_code(), 3);
    assert!(out
        .manifest
        .error
        .as_deref()
        .unwrap_or("")
        .contains("VulnerabilityV2"));
    // What was read is published, as open findings.
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    let (n, _) = finding_keys(&docs);
    assert!((4_000..5_000).contains(&n), "published {n} findings");
    assert!(all_findings(&docs).iter().all(|f| f["status"] != "FIXED"));
}
