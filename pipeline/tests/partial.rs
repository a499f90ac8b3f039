//! `publish_partial = false`: a partial run publishes nothing, so a
//! downstream that takes a missing finding for a fixed one never sees a
//! partial document; the run is still on record as partial (exit 3).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use fixtures::tenant::TenantSpec;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 3,
        assets: 20,
        findings: 200,
        ..TenantSpec::default()
    }
}

fn sync(dir: &Path, url: &str, top: &str) -> Output {
    let config = dir.join("orca-etm.toml");
    let text = format!(
        "{top}{}",
        config_text(url, dir, "max_retries_per_request = 1")
    );
    std::fs::write(&config, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["sync", "--progress", "off", "--config"])
        .arg(&config)
        .env("ORCA_API_TOKEN", TOKEN)
        .env("ORCA_ETM_LOG", "warn")
        .output()
        .unwrap()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out_file(dir, "manifest.json")).unwrap()).unwrap()
}

/// The findings query fails: every asset is read, no finding is.
const FINDINGS_FAIL: &str =
    "[[faults]]\nkind = \"status\"\nstatus = 500\nmodel = \"VulnerabilityV2\"\n";

#[test]
fn a_partial_run_publishes_nothing_when_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let good = Fake::synthetic(spec(), 0.0, "");
    let o = sync(dir.path(), &good.url(), "publish_partial = false\n");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let before = std::fs::read(out_file(dir.path(), "etm-assets.ndjson")).unwrap();
    let good_run = manifest(dir.path())["run_id"].clone();

    let failing = Fake::synthetic(spec(), 0.0, FINDINGS_FAIL);
    let o = sync(dir.path(), &failing.url(), "publish_partial = false\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(
        out.contains("output: none written (previous output left in place)"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(out_file(dir.path(), "etm-assets.ndjson")).unwrap(),
        before,
        "the complete run's documents stay, findings and all"
    );
    let m = manifest(dir.path());
    assert_eq!(m["status"], "partial");
    assert_eq!(m["output_run_id"], good_run);
    assert_ne!(m["run_id"], good_run);
    assert_eq!(m["outputs"], serde_json::json!([]));
}

#[test]
fn by_default_a_partial_run_publishes_what_it_read_and_fixes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = Fake::synthetic(spec(), 0.0, "");
    assert_eq!(sync(dir.path(), &good.url(), "").status.code(), Some(0));

    let failing = Fake::synthetic(spec(), 0.0, FINDINGS_FAIL);
    let o = sync(dir.path(), &failing.url(), "");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let m = manifest(dir.path());
    assert_eq!(m["status"], "partial");
    assert_eq!(m["output_run_id"], m["run_id"]);
    // Every asset, no finding (none was read), none FIXED.
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    assert_eq!(docs.len() as u64, spec().assets);
    assert!(docs.iter().all(|d| d["finding"] == serde_json::json!([])));
    assert_eq!(m["counts"]["findings_by_status"], serde_json::json!({}));
}
