//! Whole runs over a synthetic tenant: counts against the generator's
//! expectations, determinism, the CLI, and secrets.

mod common;

use common::*;
use fixtures::tenant::{Tenant, TenantSpec};
use pipeline::manifest::RunStatus;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 11,
        assets: 400,
        findings: 12_000,
        odd_share: 0.1,
        over_limit_share: 0.03,
        orphan_findings: 25,
        non_vm_findings: 40,
    }
}

#[test]
fn a_sync_publishes_exactly_the_generated_tenant() {
    let s = spec();
    let expected = Tenant::new(s.clone()).expected().clone();
    let fake = Fake::synthetic(s, 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));

    let orphan_docs: Vec<_> = docs
        .iter()
        .filter(|d| d.get("hostName").is_none())
        .collect();
    assert_eq!(docs.len() - orphan_docs.len(), expected.assets as usize);
    assert_eq!(
        out.manifest.counts.orphan_assets as usize,
        orphan_docs.len()
    );
    let orphan_findings: usize = orphan_docs
        .iter()
        .map(|d| d["finding"].as_array().unwrap().len())
        .sum();
    assert_eq!(orphan_findings as u64, expected.orphan_findings);
    let findings = all_findings(&docs);
    assert_eq!(
        findings.len() as u64,
        expected.findings + expected.orphan_findings
    );
    assert_eq!(out.manifest.counts.findings, findings.len() as u64);
    assert_eq!(out.manifest.counts.dead_letters, 0);

    // Severities: the canonical ones map 5..1, null/unknown to the default (3).
    let mut by_sev = [0u64; 6];
    for f in &findings {
        by_sev[f["severity"].as_u64().unwrap() as usize] += 1;
    }
    let e = &expected.findings_by_severity;
    assert_eq!(by_sev[5], e["CRITICAL"]);
    assert_eq!(by_sev[4], e["HIGH"]);
    assert_eq!(by_sev[3], e["MEDIUM"] + e["UNMAPPED"]);
    assert_eq!(by_sev[2], e["LOW"]);
    assert_eq!(by_sev[1], e["NONE"]);

    // Lists are cut at 200, and each cut is counted.
    for d in &docs {
        for list in ["softwares", "services"] {
            if let Some(l) = d.get(list).and_then(|l| l.as_array()) {
                assert!(l.len() <= 200, "{list} over 200");
            }
        }
        if let Some(t) = d["temp_q_customAttributes"]["orcaCustomAttributes"].as_object() {
            assert!(t.len() <= 200);
        }
    }
    let t = &out.manifest.counts.transform;
    assert_eq!(
        t.get("truncated_softwares").copied().unwrap_or(0),
        expected.assets_over_software_limit
    );
    assert_eq!(
        t.get("truncated_services").copied().unwrap_or(0),
        expected.assets_over_service_limit
    );
    assert_eq!(
        t.get("truncated_tags").copied().unwrap_or(0),
        expected.assets_over_tag_limit
    );
    // Findings' unparseable dates, plus any of assets' ports and software.
    assert!(t.get("unparseable_dates").copied().unwrap_or(0) >= expected.unparseable_dates);

    // Every document names its source and every finding its vendor product.
    assert!(docs.iter().all(|d| d["source"] == "Orca Security"));
    assert!(
        findings
            .iter()
            .all(|f| f["vendorProductName"] == "Orca Security"
                || f.get("vendorProductName").is_none())
    );
    assert!(findings.iter().all(|f| f["status"] == "NEW"));

    // Queries: total_items against rows read, all complete.
    let fetch = out.manifest.fetch.unwrap();
    assert!(fetch.complete);
    assert!(fetch
        .queries
        .iter()
        .filter(|q| !q.split)
        .all(|q| q.complete));
}

#[test]
fn two_runs_over_the_same_tenant_are_byte_identical() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run(&config(&fake.url(), a.path(), ""));
    // Different paging and concurrency must not change a byte.
    run(&config(
        &fake.url(),
        b.path(),
        "page_size = 333\nconcurrency = 3",
    ));
    let x = std::fs::read(out_file(a.path(), "etm-assets.ndjson")).unwrap();
    let y = std::fs::read(out_file(b.path(), "etm-assets.ndjson")).unwrap();
    assert!(!x.is_empty());
    assert!(x == y, "outputs differ");
    // Sorted by externalAssetId, findings by vendorId.
    let docs = docs(&out_file(a.path(), "etm-assets.ndjson"));
    let ids: Vec<&str> = docs
        .iter()
        .map(|d| d["externalAssetId"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for d in &docs {
        let v: Vec<&str> = d["finding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["findingType"]["vulnerability"]["vendorId"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn no_temporary_file_is_left_in_the_output_folder() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    run(&config(&fake.url(), dir.path(), ""));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["dead-letters.ndjson", "etm-assets.ndjson", "manifest.json"]
    );
    // Spill files and the run's folder under work_dir are gone, and so is
    // work_dir itself, which nothing else used.
    assert!(!dir.path().join("work").exists(), "spill files removed");
}

/// The CLI end to end: exit codes, summary, and the token nowhere.
mod cli {
    use super::*;
    use std::process::Command;

    fn orca_etm(config: &std::path::Path) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .args(["sync", "--config"])
            .arg(config)
            .args(["--progress", "log"])
            .env("ORCA_API_TOKEN", TOKEN)
            .env("ORCA_ETM_LOG", "debug")
            .output()
            .unwrap()
    }

    fn write_config(dir: &std::path::Path, url: &str, extra: &str) -> std::path::PathBuf {
        let p = dir.join("orca-etm.toml");
        std::fs::write(&p, config_text(url, dir, extra)).unwrap();
        p
    }

    fn assert_no_token_anywhere(dir: &std::path::Path, out: &std::process::Output) {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(TOKEN));
        for e in std::fs::read_dir(dir.join("out")).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&text).contains(TOKEN),
                "token in {p:?}"
            );
        }
    }

    #[test]
    fn complete_run_exits_0_and_prints_a_summary() {
        let fake = Fake::synthetic(spec(), 0.0, "");
        let dir = tempfile::tempdir().unwrap();
        let out = orca_etm(&write_config(dir.path(), &fake.url(), ""));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("complete"), "{stdout}");
        assert!(stdout.contains("etm-assets.ndjson"), "{stdout}");
        assert_no_token_anywhere(dir.path(), &out);
    }

    #[test]
    fn refused_token_exits_4_without_printing_it() {
        let fake = Fake::synthetic(
            spec(),
            0.0,
            "[[faults]]\nkind = \"status\"\nstatus = 401\nbody = '{\"error\": \"bad token\"}'\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let out = orca_etm(&write_config(dir.path(), &fake.url(), ""));
        assert_eq!(out.status.code(), Some(4));
        assert_no_token_anywhere(dir.path(), &out);
    }

    #[test]
    fn partial_run_exits_3() {
        let fake = Fake::synthetic(
            spec(),
            0.0,
            "[[faults]]\nkind = \"status\"\nstatus = 503\nmodel = \"AzureComputeVm\"\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let out = orca_etm(&write_config(
            dir.path(),
            &fake.url(),
            "max_retries_per_request = 1",
        ));
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_token_anywhere(dir.path(), &out);
    }

    #[test]
    fn bad_config_exits_2() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "[orca]\ndomain = 3\n").unwrap();
        let out = orca_etm(&p);
        assert_eq!(out.status.code(), Some(2));
        let missing = Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .args(["sync", "--config"])
            .arg(write_config(dir.path(), "http://127.0.0.1:9/api/", ""))
            .env_remove("ORCA_API_TOKEN")
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("ORCA_API_TOKEN"));
    }

    #[test]
    fn transform_map_print_default_round_trips() {
        let out = Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .args(["transform-map", "--print-default"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        stages::transform::TransformMap::from_toml(&text).unwrap();
        assert!(text.contains("externalAssetId"));
    }
}

#[test]
fn an_asset_too_large_to_keep_between_passes_is_published_whole_and_tracked() {
    // Few assets, many findings: the heaviest asset carries megabytes of
    // findings, which the publish phase reads twice from its run file
    // instead of keeping them in memory.
    let s = TenantSpec {
        seed: 5,
        assets: 12,
        findings: 9_000,
        orphan_findings: 0,
        non_vm_findings: 0,
        ..spec()
    };
    let expected = Tenant::new(s.clone()).expected().clone();
    let fake = Fake::synthetic(s, 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fake.url(), dir.path(), "");
    let first = run(&cfg);
    assert_eq!(first.manifest.status, RunStatus::Complete);
    // The ledger is a stage of the manifest: every finding written, and the
    // time publishing waited on it.
    let ledger = &first.manifest.stages["ledger"];
    assert_eq!(ledger["items_in"], expected.findings);
    assert!(ledger["publish_waited_seconds"].as_f64().unwrap() >= 0.0);
    let path = out_file(dir.path(), "etm-assets.ndjson");
    let text = std::fs::read_to_string(&path).unwrap();
    let big = text.lines().max_by_key(|l| l.len()).unwrap();
    assert!(
        big.len() > 2 << 20,
        "the heaviest document is {} bytes",
        big.len()
    );
    let docs = docs(&path);
    assert_eq!(all_findings(&docs).len() as u64, expected.findings);
    let vendor_ids = |d: &serde_json::Value| -> Vec<String> {
        d["finding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["findingType"]["vulnerability"]["vendorId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let big: serde_json::Value = serde_json::from_str(big).unwrap();
    let ids = vendor_ids(&big);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert!(big["finding"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "NEW"));

    // The ledger took every one of them: the next run sees them ACTIVE.
    let second = run(&cfg);
    assert_eq!(second.manifest.status, RunStatus::Complete);
    assert_eq!(
        second.manifest.counts.findings_by_status.get("ACTIVE"),
        Some(&expected.findings)
    );
    let again = docs_of(&path, big["externalAssetId"].as_str().unwrap());
    assert_eq!(vendor_ids(&again), ids);
    assert!(again["finding"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["status"] == "ACTIVE"));
}

fn docs_of(path: &std::path::Path, id: &str) -> serde_json::Value {
    docs(path)
        .into_iter()
        .find(|d| d["externalAssetId"] == id)
        .unwrap()
}
