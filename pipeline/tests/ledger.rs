//! Findings across runs: statuses, "Preserve Findings Missing in Latest
//! Sync", partial runs, delta output, the runs listing and the one-writer
//! rule, each over a tenant that changes between runs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::items::{asset_uid, finding_id, Items};
use common::*;
use pipeline::config::Config;
use pipeline::manifest::RunStatus;
use pipeline::run::{sync, RunError, RunOutcome, SyncOptions};
use serde_json::Value;
use stages::ledger::{Ledger, LedgerError};
use stages::secret::Secret;

const PAGE: usize = 4;

/// One run over `t` (served by a fresh fake) with the given extra config.
fn run_over(t: &Items, dir: &Path, top: &str, faults: &str) -> RunOutcome {
    let fake = Fake::pages(t.pages(PAGE), faults);
    let cfg = cfg_for(&fake.url(), dir, top, "");
    run(&cfg)
}

fn cfg_for(url: &str, dir: &Path, top: &str, orca: &str) -> Config {
    let orca = format!("page_size = {PAGE}\nmax_retries_per_request = 1\n{orca}");
    let text = format!("{top}\n{}", config_text(url, dir, &orca));
    Config::parse(&text).unwrap()
}

/// (asset id, vendor id) → status, of the published documents.
fn statuses(out: &RunOutcome) -> BTreeMap<(String, String), String> {
    let Some(path) = &out.output else {
        return BTreeMap::new();
    };
    let mut m = BTreeMap::new();
    for d in docs(path) {
        for f in d["finding"].as_array().unwrap() {
            let v = f["findingType"]["vulnerability"]["vendorId"]
                .as_str()
                .unwrap();
            let prev = m.insert(
                (
                    d["externalAssetId"].as_str().unwrap().to_string(),
                    v.to_string(),
                ),
                f["status"].as_str().unwrap().to_string(),
            );
            assert!(prev.is_none(), "{v} published twice");
        }
    }
    m
}

fn key(a: usize, k: usize) -> (String, String) {
    (asset_uid(a), finding_id(a, k))
}

fn count(m: &BTreeMap<(String, String), String>, status: &str) -> usize {
    m.values().filter(|s| *s == status).count()
}

/// Run 1: four assets; run 2: a finding removed, one added, one changed,
/// one asset removed; run 3: the removed finding back.
fn tenants() -> (Items, Items, Items) {
    let t1 = Items::generate(4, 3);
    let mut t2 = t1.clone();
    t2.remove_finding(0, 1);
    t2.add_finding(0, 9);
    t2.change_finding(1, 0, "the description changed");
    t2.remove_asset(3);
    let mut t3 = t2.clone();
    t3.add_finding(0, 1);
    (t1, t2, t3)
}

#[test]
fn three_runs_give_every_status() {
    let (t1, t2, t3) = tenants();
    let dir = tempfile::tempdir().unwrap();

    let r1 = run_over(&t1, dir.path(), "", "");
    assert_eq!(r1.manifest.status, RunStatus::Complete);
    let s1 = statuses(&r1);
    assert_eq!((s1.len(), count(&s1, "NEW")), (12, 12));

    let r2 = run_over(&t2, dir.path(), "", "");
    assert_eq!(r2.manifest.status, RunStatus::Complete);
    let s2 = statuses(&r2);
    assert_eq!(s2[&key(0, 0)], "ACTIVE");
    assert_eq!(s2[&key(0, 1)], "FIXED", "removed finding");
    assert_eq!(s2[&key(0, 9)], "NEW", "added finding");
    assert_eq!(s2[&key(1, 0)], "ACTIVE", "changed finding");
    for k in 0..3 {
        assert_eq!(s2[&key(3, k)], "FIXED", "finding of the removed asset");
    }
    assert_eq!(count(&s2, "FIXED"), 4);
    assert_eq!(count(&s2, "NEW"), 1);
    assert_eq!(count(&s2, "ACTIVE"), 8);
    let c = &r2.manifest.counts;
    assert_eq!(c.findings_by_status["FIXED"], 4);
    assert_eq!(c.gone_assets, 1);
    // The removed asset's FIXED findings come under a minimal document, and
    // a FIXED finding keeps the id it was published under.
    let d2 = docs(r2.output.as_ref().unwrap());
    let gone = doc_by_id(&d2, &asset_uid(3));
    assert!(gone.get("hostName").is_none());
    assert_eq!(gone["finding"].as_array().unwrap().len(), 3);
    let a0 = doc_by_id(&d2, &asset_uid(0));
    let fixed = a0["finding"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "FIXED")
        .unwrap();
    assert_eq!(fixed["externalFindingId"], common::items::cve(0, 1));
    assert_eq!(fixed["vendorProductName"], "Orca Security");
    // Findings stay in vendorId order with the FIXED one among them.
    let ids: Vec<&str> = a0["finding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["findingType"]["vulnerability"]["vendorId"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let r3 = run_over(&t3, dir.path(), "", "");
    let s3 = statuses(&r3);
    assert_eq!(s3[&key(0, 1)], "REOPENED");
    assert_eq!(s3[&key(0, 9)], "ACTIVE");
    assert_eq!(s3[&key(0, 0)], "ACTIVE");
    assert!(
        !s3.keys().any(|(a, _)| *a == asset_uid(3)),
        "FIXED findings are published once, when fixed"
    );
    assert_eq!(s3.len(), 10);

    let runs =
        pipeline::runs::list(&cfg_for("http://127.0.0.1:9/", dir.path(), "", ""), 10).unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == "complete"));
    assert_eq!(runs[0].run_id, r3.manifest.run_id);
    assert_eq!(runs[1].findings_by_status["FIXED"], 4);
    assert_eq!(runs[2].findings_by_status["NEW"], 12);
}

#[test]
fn preserve_missing_keeps_statuses_and_re_emits_nothing() {
    let (t1, t2, t3) = tenants();
    let dir = tempfile::tempdir().unwrap();
    let top = "preserve_missing = true";
    run_over(&t1, dir.path(), top, "");
    let r2 = run_over(&t2, dir.path(), top, "");
    let s2 = statuses(&r2);
    assert_eq!(count(&s2, "FIXED"), 0);
    assert!(!s2.contains_key(&key(0, 1)), "not re-emitted");
    assert!(!s2.keys().any(|(a, _)| *a == asset_uid(3)));
    assert_eq!(s2[&key(0, 9)], "NEW");
    assert_eq!(s2.len(), 9);
    assert!(r2
        .manifest
        .fixing
        .as_deref()
        .unwrap()
        .contains("preserve_missing"));
    // It kept its status: seen again it is ACTIVE, not REOPENED.
    let r3 = run_over(&t3, dir.path(), top, "");
    assert_eq!(statuses(&r3)[&key(0, 1)], "ACTIVE");

    // Switching the setting off fixes what is still missing.
    let r4 = run_over(&t3, dir.path(), "", "");
    let s4 = statuses(&r4);
    assert_eq!(count(&s4, "FIXED"), 3);
    assert!((0..3).all(|k| s4[&key(3, k)] == "FIXED"));
}

#[test]
fn a_partial_run_fixes_nothing_and_the_next_complete_run_does() {
    let (t1, t2, _) = tenants();
    let dir = tempfile::tempdir().unwrap();
    run_over(&t1, dir.path(), "", "");
    // Every attempt at the findings' second page fails.
    let fault =
        "[[faults]]\nkind = \"status\"\nstatus = 503\nmodel = \"VulnerabilityV2\"\noffset = 4\n";
    let r2 = run_over(&t2, dir.path(), "", fault);
    assert_eq!(r2.manifest.status, RunStatus::Partial);
    assert_eq!(r2.manifest.status.exit_code(), 3);
    let s2 = statuses(&r2);
    assert!(!s2.is_empty(), "what was read is published");
    assert_eq!(count(&s2, "FIXED"), 0);
    assert!(s2.values().all(|s| s == "ACTIVE" || s == "NEW"));
    assert!(r2
        .manifest
        .fixing
        .as_deref()
        .unwrap()
        .contains("did not read everything"));

    let r3 = run_over(&t2, dir.path(), "", "");
    assert_eq!(r3.manifest.status, RunStatus::Complete);
    let s3 = statuses(&r3);
    assert_eq!(s3[&key(0, 1)], "FIXED");
    assert_eq!(count(&s3, "FIXED"), 4);
    // Findings the partial run read are not new any more.
    assert_eq!(
        s3[&key(0, 9)],
        if s2.contains_key(&key(0, 9)) {
            "ACTIVE"
        } else {
            "NEW"
        }
    );

    let runs = pipeline::runs::list(&r3_cfg(dir.path()), 10).unwrap();
    let st: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(st, ["complete", "partial", "complete"]);
}

fn r3_cfg(dir: &Path) -> Config {
    cfg_for("http://127.0.0.1:9/", dir, "", "")
}

#[test]
fn a_failed_run_fixes_nothing() {
    let (t1, t2, _) = tenants();
    let dir = tempfile::tempdir().unwrap();
    run_over(&t1, dir.path(), "", "");
    let fault = "[[faults]]\nkind = \"status\"\nstatus = 403\nat = 3\nbody = '{\"error\": \"Given token not valid for any token type\"}'\n";
    let r2 = run_over(&t2, dir.path(), "", fault);
    assert_eq!(r2.manifest.status, RunStatus::Failed);
    assert!(r2.output.is_none());
    // The next complete run still sees the removed finding as open: it is
    // this run that fixes it.
    let r3 = run_over(&t2, dir.path(), "", "");
    assert_eq!(statuses(&r3)[&key(0, 1)], "FIXED");
    let runs = pipeline::runs::list(&r3_cfg(dir.path()), 10).unwrap();
    assert_eq!(runs[1].status, "failed");
    assert_eq!(runs[1].findings_by_status.get("FIXED"), None);
}

#[test]
fn a_finding_that_could_not_be_read_is_never_fixed() {
    let t1 = Items::generate(2, 3);
    let dir = tempfile::tempdir().unwrap();
    run_over(&t1, dir.path(), "", "");
    // Run 2: finding (0, 1) is served broken past mending (a missing
    // colon); its id is still legible, so only it is spared.
    let mut pages = t1.pages(100);
    let body = pages.get_mut("VulnerabilityV2").unwrap();
    let text = String::from_utf8(body[0].to_vec()).unwrap();
    let victim = finding_id(0, 1);
    let at = text.find(&format!("\"id\":\"{victim}\"")).unwrap();
    let broken = format!(
        "{}\"id\":\"{victim}\",\"bad\" 1{}",
        &text[..at],
        &text[at + victim.len() + 7..]
    );
    body[0] = bytes::Bytes::from(broken);
    let fake = Fake::pages(pages, "");
    let out = run(&cfg_for(&fake.url(), dir.path(), "", ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    assert_eq!(
        out.manifest.counts.dead_letters, 1,
        "{:#?}",
        out.manifest.counts
    );
    let s = statuses(&out);
    assert!(!s.contains_key(&key(0, 1)), "neither published nor fixed");
    assert_eq!(count(&s, "FIXED"), 0);
    assert_eq!(s.len(), 5);

    // A finding dead letter without a legible id withholds every fix.
    let mut t2 = t1.clone();
    t2.remove_finding(1, 2);
    let mut pages = t2.pages(100);
    let body = pages.get_mut("VulnerabilityV2").unwrap();
    let text = String::from_utf8(body[0].to_vec()).unwrap();
    let broken = text.replacen(",\"id\":\"f", ",\"id\" \"f", 1);
    assert_ne!(broken, text);
    body[0] = bytes::Bytes::from(broken);
    let fake = Fake::pages(pages, "");
    let out = run(&cfg_for(&fake.url(), dir.path(), "", ""));
    assert_eq!(out.manifest.status, RunStatus::Complete);
    assert_eq!(count(&statuses(&out), "FIXED"), 0);
    assert!(out
        .manifest
        .fixing
        .as_deref()
        .unwrap()
        .contains("could not be read nor identified"));
}

#[test]
fn delta_output_holds_exactly_the_changed_assets() {
    let t1 = Items::generate(6, 3);
    let dir = tempfile::tempdir().unwrap();
    let top = "delta = true";
    // The first run of a profile is full, delta or not.
    let r1 = run_over(&t1, dir.path(), top, "");
    assert!(!r1.manifest.delta);
    assert_eq!(docs(r1.output.as_ref().unwrap()).len(), 6);

    // Unchanged tenant: nothing to publish.
    let r2 = run_over(&t1, dir.path(), top, "");
    assert!(r2.manifest.delta);
    assert_eq!(
        r2.manifest.base_run.as_deref(),
        Some(r1.manifest.run_id.as_str())
    );
    assert_eq!(std::fs::read(r2.output.as_ref().unwrap()).unwrap(), b"");
    assert_eq!(r2.manifest.counts.unchanged_assets, 6);

    // One changed finding: exactly its asset, with all its findings.
    let mut t2 = t1.clone();
    t2.change_finding(2, 1, "changed");
    let r3 = run_over(&t2, dir.path(), top, "");
    let d3 = docs(r3.output.as_ref().unwrap());
    assert_eq!(d3.len(), 1);
    assert_eq!(d3[0]["externalAssetId"], asset_uid(2));
    assert_eq!(d3[0]["finding"].as_array().unwrap().len(), 3);
    assert_eq!(d3[0]["finding"][1]["description"], "changed");

    // A removed finding: its asset, carrying the FIXED one; a removed asset:
    // its minimal document with its FIXED findings.
    let mut t3 = t2.clone();
    t3.remove_finding(4, 0);
    t3.remove_asset(5);
    let r4 = run_over(&t3, dir.path(), top, "");
    let d4 = docs(r4.output.as_ref().unwrap());
    let ids: Vec<&str> = d4
        .iter()
        .map(|d| d["externalAssetId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [asset_uid(4), asset_uid(5)]);
    assert_eq!(count(&statuses(&r4), "FIXED"), 4);

    // `--delta` on the command line does the same as the key.
    let fake = Fake::pages(t3.pages(PAGE), "");
    let cfg = cfg_for(&fake.url(), dir.path(), "", "");
    let out = sync(
        &cfg,
        &Secret::new(TOKEN),
        SyncOptions {
            delta: true,
            ..SyncOptions::default()
        },
    )
    .unwrap();
    assert!(out.manifest.delta);
    assert_eq!(std::fs::read(out.output.unwrap()).unwrap(), b"");
}

#[test]
fn a_second_sync_on_a_busy_ledger_refuses_at_once() {
    let t = Items::generate(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::pages(t.pages(PAGE), "");
    let cfg = cfg_for(&fake.url(), dir.path(), "", "");
    let held = Ledger::open(&cfg.ledger_path()).unwrap();
    let started = std::time::Instant::now();
    let err = sync(&cfg, &Secret::new(TOKEN), SyncOptions::default()).unwrap_err();
    assert!(
        matches!(err, RunError::Ledger(LedgerError::Busy { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("another sync is running"), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert!(fake.orca().requests().is_empty(), "nothing was fetched");
    assert!(!dir.path().join("out").join("manifest.json").exists());
    drop(held);
    assert_eq!(run(&cfg).manifest.status, RunStatus::Complete);
}

#[test]
fn profiles_have_ledgers_of_their_own() {
    let t = Items::generate(2, 2);
    let dir = tempfile::tempdir().unwrap();
    let a = run_over(&t, dir.path(), "profile = \"a\"", "");
    let b = run_over(&t, dir.path(), "profile = \"b\"", "");
    assert_eq!(count(&statuses(&a), "NEW"), 4);
    assert_eq!(count(&statuses(&b), "NEW"), 4, "b knows nothing of a");
    assert_eq!(b.manifest.profile, "b");
    assert!(dir.path().join("state/a/ledger.db").exists());
    assert!(dir.path().join("state/b/ledger.db").exists());
}

/// `orca-etm runs` from the command line.
#[test]
fn runs_lists_recent_runs_for_people_and_scripts() {
    let (t1, t2, _) = tenants();
    let dir = tempfile::tempdir().unwrap();
    let r1 = run_over(&t1, dir.path(), "", "");
    let r2 = run_over(&t2, dir.path(), "", "");
    let config = dir.path().join("orca-etm.toml");
    std::fs::write(
        &config,
        config_text("http://127.0.0.1:9/api/", dir.path(), ""),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .arg("runs")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], r2.manifest.run_id.as_str());
    assert_eq!(runs[0]["status"], "complete");
    assert_eq!(runs[0]["assets"], 4);
    assert_eq!(runs[0]["findings_by_status"]["FIXED"], 4);
    assert_eq!(runs[1]["run_id"], r1.manifest.run_id.as_str());
    assert_eq!(runs[1]["details"]["queries"][0]["complete"], true);
    assert!(runs[0]["duration_seconds"].as_f64().unwrap() >= 0.0);

    let out = cli(&["--limit", "1"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("RUN"));
    assert!(
        lines[1].contains(&r2.manifest.run_id) && lines[1].contains("FIXED 4"),
        "{text}"
    );

    // No ledger yet: no runs, said with the ledger's path (a wrong
    // state_dir shows), not a failure.
    let empty = tempfile::tempdir().unwrap();
    let config2 = empty.path().join("orca-etm.toml");
    std::fs::write(
        &config2,
        config_text("http://127.0.0.1:9/api/", empty.path(), ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["runs", "--config"])
        .arg(&config2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("no runs recorded yet for profile \"default\""),
        "{said}"
    );
    assert!(
        said.contains(
            &empty
                .path()
                .join("state/default/ledger.db")
                .display()
                .to_string()
        ),
        "{said}"
    );
}
