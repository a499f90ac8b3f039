//! A profile's findings types: one that does not pull vulnerabilities never
//! marks a finding FIXED; one that does not pull host assets still
//! publishes every finding under its asset id.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::config::FindingsType;
use pipeline::manifest::RunStatus;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 21,
        assets: 25,
        findings: 250,
        odd_share: 0.0,
        over_limit_share: 0.0,
        orphan_findings: 0,
        non_vm_findings: 0,
    }
}

/// Finding vendor ids per asset id.
fn findings_by_asset(docs: &[serde_json::Value]) -> BTreeMap<String, BTreeSet<String>> {
    docs.iter()
        .map(|d| {
            let ids = d["finding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    f["findingType"]["vulnerability"]["vendorId"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            (d["externalAssetId"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn statuses(docs: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in all_findings(docs) {
        *out.entry(f["status"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

#[test]
fn a_profile_without_vulnerabilities_marks_no_finding_fixed() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.url(), dir.path(), "page_size = 100");
    let out = out_file(dir.path(), "etm-assets.ndjson");

    assert_eq!(run(&cfg).manifest.status, RunStatus::Complete);
    assert_eq!(statuses(&docs(&out)), BTreeMap::from([("NEW".into(), 250)]));

    // The same profile (same ledger), host assets only: it reads no
    // finding, which says nothing about whether any is fixed.
    cfg.findings_types = vec![FindingsType::HostAssets];
    let before = fake.orca().requests().len();
    let o = run(&cfg);
    assert_eq!(
        o.manifest.status,
        RunStatus::Complete,
        "{:?}",
        o.manifest.error
    );
    let asked: BTreeSet<String> = fake.orca().requests()[before..]
        .iter()
        .flat_map(|r| r.models.clone())
        .collect();
    assert!(!asked.contains("VulnerabilityV2"), "{asked:?}");
    let d = docs(&out);
    assert_eq!(d.len(), 25, "every host asset is published");
    assert!(all_findings(&d).is_empty(), "no finding, and none FIXED");
    assert!(o.manifest.counts.findings_by_status.is_empty());
    assert!(
        o.manifest
            .fixing
            .as_deref()
            .unwrap()
            .contains("findings_types"),
        "{:?}",
        o.manifest.fixing
    );

    // Back to both: every finding is still open in the ledger, so ACTIVE
    // (neither NEW nor REOPENED).
    cfg.findings_types = vec![FindingsType::Vulnerabilities, FindingsType::HostAssets];
    assert_eq!(run(&cfg).manifest.status, RunStatus::Complete);
    assert_eq!(
        statuses(&docs(&out)),
        BTreeMap::from([("ACTIVE".into(), 250)])
    );
}

#[test]
fn a_profile_without_host_assets_publishes_findings_under_their_asset_ids() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let full_dir = tempfile::tempdir().unwrap();
    let full = run(&config(&fake.url(), full_dir.path(), "page_size = 100"));
    assert_eq!(full.manifest.status, RunStatus::Complete);
    let full_docs = docs(&out_file(full_dir.path(), "etm-assets.ndjson"));
    let expected: BTreeMap<_, _> = findings_by_asset(&full_docs)
        .into_iter()
        .filter(|(_, f)| !f.is_empty())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.url(), dir.path(), "page_size = 100");
    cfg.findings_types = vec![FindingsType::Vulnerabilities];
    let before = fake.orca().requests().len();
    let o = run(&cfg);
    assert_eq!(
        o.manifest.status,
        RunStatus::Complete,
        "{:?}",
        o.manifest.error
    );
    let asked: BTreeSet<String> = fake.orca().requests()[before..]
        .iter()
        .flat_map(|r| r.models.clone())
        .collect();
    assert_eq!(asked, BTreeSet::from(["VulnerabilityV2".to_string()]));

    let d = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    assert_eq!(
        findings_by_asset(&d),
        expected,
        "the same findings under the same asset ids"
    );
    assert_eq!(all_findings(&d).len(), 250);
    for doc in &d {
        assert!(doc.get("hostName").is_none_or(|h| h.is_null()), "{doc}");
    }
    assert_eq!(statuses(&d), BTreeMap::from([("NEW".into(), 250)]));
    assert!(
        o.manifest.fixing.is_none(),
        "findings were all read: it may fix"
    );
}
