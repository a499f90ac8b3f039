//! `orca-etm demo`, the first command of the README, run as a new user
//! runs it: the binary, its exit code, its summary and its files, checked
//! against what the generator says the fake tenant holds.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::docs;

use fixtures::tenant::{Tenant, TenantSpec};
use serde_json::Value;

fn demo(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["demo", "--progress", "off", "--assets", "60", "--seed", "7"])
        .arg("--out")
        .arg(out)
        .args(extra)
        // No colour codes in the log lines we read.
        .env("NO_COLOR", "1")
        .env("ORCA_ETM_LOG", "info")
        .output()
        .unwrap()
}

fn expected() -> fixtures::tenant::Expected {
    let spec = TenantSpec {
        seed: 7,
        assets: 60,
        findings: 60 * 20,
        ..TenantSpec::default()
    };
    Tenant::new(spec).expected().clone()
}

#[test]
fn the_demo_writes_every_asset_and_finding_of_the_fake_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = demo(&out, &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want = expected();
    let docs = docs(&out.join("etm-assets.ndjson"));
    // Orphan findings are published under a minimal document of their own.
    let orphans = docs
        .iter()
        .filter(|d| d.get("operatingSystem").is_none() && d.get("hostName").is_none())
        .count() as u64;
    assert_eq!(docs.len() as u64, want.assets + orphans);
    let findings: usize = docs
        .iter()
        .map(|d| d["finding"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(findings as u64, want.findings + want.orphan_findings);
    assert!(
        stdout.contains(&format!(
            "assets: {}  findings: {}  (NEW {})",
            docs.len(),
            findings,
            findings
        )),
        "{stdout}"
    );
    assert!(stdout.contains("etm-assets.ndjson"), "{stdout}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["counts"]["orphan_assets"], orphans);
    assert!(orphans > 0, "the demo tenant shows an orphan finding");
    // The work folder is cleaned up; nothing half-written is left.
    assert!(!out.join(".work").exists());
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "{name} left behind");
    }
}

#[test]
fn the_demo_with_qualys_delivers_the_same_documents_to_the_fake_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = demo(&out, &["--qualys"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let docs = docs(&out.join("etm-assets.ndjson"));
    let findings: usize = docs
        .iter()
        .map(|d| d["finding"].as_array().map_or(0, Vec::len))
        .sum();
    for sink in ["ndjson", "csv", "qualys_webhook"] {
        assert!(
            stdout.contains(&format!("sink {sink}: {} documents", docs.len())),
            "{sink}: {stdout}"
        );
    }
    // What the gateway accepted, as the demo logs it.
    let accepted = stderr
        .lines()
        .find(|l| l.contains("the fake Qualys gateway accepted"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        accepted.contains(&format!("assets={}", docs.len()))
            && accepted.contains(&format!("findings={findings}")),
        "{accepted}"
    );
    // One CSV row per finding, plus one per asset without findings.
    let bare = docs
        .iter()
        .filter(|d| d["finding"].as_array().is_none_or(Vec::is_empty))
        .count();
    let rows = csv::Reader::from_path(out.join("etm-findings.csv"))
        .unwrap()
        .records()
        .count();
    assert_eq!(rows, findings + bare);
    // The password file lived only for the run.
    assert!(!out.join(".state/demo-qualys-password").exists());
    assert!(
        std::fs::read_to_string(out.join("qualys_webhook-dead-letters.ndjson"))
            .unwrap()
            .is_empty()
    );
}
