//! An Orca that cannot be read at all: `sync` fails (exit 4) without
//! publishing over the last good output, says the cause once, and `check`
//! does not call such a connection OK.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use fixtures::tenant::TenantSpec;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 11,
        assets: 20,
        findings: 200,
        ..TenantSpec::default()
    }
}

fn write_config(dir: &Path, orca_url: &str, extra: &str) -> PathBuf {
    let p = dir.join("orca-etm.toml");
    std::fs::write(&p, config_text(orca_url, dir, extra)).unwrap();
    p
}

fn orca_etm(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("ORCA_API_TOKEN", TOKEN)
        .env("ORCA_ETM_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("ORCA_ETM_FAILPOINT")
        .output()
        .unwrap()
}

fn sync(config: &Path) -> Output {
    orca_etm(&["sync", "--progress", "off"], config)
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out_file(dir, "manifest.json")).unwrap()).unwrap()
}

/// A good run first, so there is output a failed run must leave alone.
fn good_run(dir: &Path) -> Vec<u8> {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let o = sync(&write_config(dir, &fake.url(), ""));
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    std::fs::read(out_file(dir, "etm-assets.ndjson")).unwrap()
}

#[test]
fn a_refused_connection_fails_the_run_and_keeps_the_last_output() {
    let dir = tempfile::tempdir().unwrap();
    let before = good_run(dir.path());
    assert!(!before.is_empty());
    let good = manifest(dir.path());
    assert_eq!(good["output_run_id"], good["run_id"]);

    let config = write_config(dir.path(), &dead_url(), "max_retries_per_request = 2");
    let o = sync(&config);
    let text = said(&o);
    assert_eq!(o.status.code(), Some(4), "{text}");
    assert!(
        text.contains("cannot reach Orca at http://127.0.0.1:"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));
    assert_eq!(
        std::fs::read(out_file(dir.path(), "etm-assets.ndjson")).unwrap(),
        before,
        "a run that read nothing does not publish over the last output"
    );
    let m = manifest(dir.path());
    assert_eq!(m["status"], "failed");
    let err = m["error"].as_str().unwrap();
    // Said once, not once per model.
    assert_eq!(err.matches("cannot reach Orca").count(), 1, "{err}");
    assert!(!m.to_string().contains(TOKEN));
    // The manifest describes the failed run, and says whose output is beside it.
    assert_ne!(m["run_id"], good["run_id"]);
    assert_eq!(m["output_run_id"], good["run_id"], "{m}");
    // Still so after another failed run.
    assert_eq!(sync(&config).status.code(), Some(4));
    let again = manifest(dir.path());
    assert_ne!(again["run_id"], m["run_id"]);
    assert_eq!(again["output_run_id"], good["run_id"], "{again}");

    let runs = orca_etm(&["runs", "--json"], &config);
    assert_eq!(runs.status.code(), Some(0), "{}", said(&runs));
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let newest = &runs.as_array().unwrap()[0];
    assert_eq!(newest["status"], "failed", "{newest}");
}

#[test]
fn every_query_refused_fails_the_run_and_keeps_the_last_output() {
    let dir = tempfile::tempdir().unwrap();
    let before = good_run(dir.path());

    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 400\nbody = '{\"error\": \"unknown field Asset\"}'\n",
    );
    let o = sync(&write_config(dir.path(), &fake.url(), ""));
    let text = said(&o);
    assert_eq!(o.status.code(), Some(4), "{text}");
    assert_eq!(
        std::fs::read(out_file(dir.path(), "etm-assets.ndjson")).unwrap(),
        before
    );
    let m = manifest(dir.path());
    assert_eq!(m["status"], "failed");
    let err = m["error"].as_str().unwrap();
    assert!(err.starts_with("no query could be read: "), "{err}");
    // One cause, every query named once before it.
    assert_eq!(err.matches("unknown field Asset").count(), 1, "{err}");
    for model in [
        "AwsEc2Instance",
        "AzureComputeVm",
        "GcpVmInstance",
        "VulnerabilityV2",
    ] {
        assert!(err.contains(model), "{model} missing from {err}");
    }
}

#[test]
fn queries_failing_alike_are_named_together_in_a_partial_run() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 500\nmodel = \"AzureComputeVm\"\n\
         [[faults]]\nkind = \"status\"\nstatus = 500\nmodel = \"GcpVmInstance\"\n",
    );
    let o = sync(&write_config(
        dir.path(),
        &fake.url(),
        "max_retries_per_request = 1",
    ));
    assert_eq!(o.status.code(), Some(3), "{}", said(&o));
    let m = manifest(dir.path());
    assert_eq!(m["status"], "partial");
    let err = m["error"].as_str().unwrap();
    assert!(err.starts_with("incomplete queries: "), "{err}");
    assert_eq!(err.matches("HTTP 500").count(), 1, "{err}");
    let (labels, _) = err["incomplete queries: ".len()..]
        .split_once(": ")
        .unwrap();
    assert!(
        labels.contains("AzureComputeVm") && labels.contains("GcpVmInstance"),
        "{err}"
    );
    assert!(out_file(dir.path(), "etm-assets.ndjson").exists());
}

#[test]
fn check_fails_when_orca_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let o = orca_etm(&["check"], &write_config(dir.path(), &dead_url(), ""));
    let text = said(&o);
    assert_eq!(o.status.code(), Some(4), "{text}");
    assert!(text.contains("cannot reach Orca"), "{text}");
    assert!(!text.contains("OK"), "{text}");
}

#[test]
fn check_fails_when_no_query_is_answered_with_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::synthetic(spec(), 0.0, "[[faults]]\nkind = \"status\"\nstatus = 503\n");
    let o = orca_etm(&["check"], &write_config(dir.path(), &fake.url(), ""));
    let text = said(&o);
    assert_eq!(o.status.code(), Some(4), "{text}");
    assert!(text.contains("answered no query with a page"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(!text.contains("connection and token: OK"), "{text}");
}

#[test]
fn check_passes_when_some_query_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 400\nmodel = \"AzureComputeVm\"\n",
    );
    let o = orca_etm(&["check"], &write_config(dir.path(), &fake.url(), ""));
    let text = said(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("AzureComputeVm: refused: Orca rejected the query (HTTP 400)"),
        "{text}"
    );
    assert!(text.contains("connection and token: OK"), "{text}");
}
