//! Crash safety: `orca-etm sync` killed with SIGKILL at many points of a
//! run (during fetch, spill, publish, between the output's rename and the
//! ledger's commit), then run again, ends exactly where an uninterrupted
//! run ends: same output bytes, same ledger, nothing wrongly fixed, no
//! temporary file left in the output folder.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::items::Items;
use common::*;
use stages::ledger::Ledger;

const PAGE: usize = 20;

/// The tenant of the first run, and the changed one every later run reads.
fn tenants() -> (Items, Items) {
    let t1 = Items::generate(40, 25);
    let mut t2 = t1.clone();
    for a in [3, 17, 29] {
        t2.remove_finding(a, 4);
        t2.add_finding(a, 40);
    }
    t2.change_finding(8, 2, "changed between runs");
    t2.remove_asset(21);
    (t1, t2)
}

fn write_config(dir: &Path, url: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("orca-etm.toml");
    let orca = format!("page_size = {PAGE}\nmax_retries_per_request = 1");
    std::fs::write(&p, config_text(url, dir, &orca)).unwrap();
    p
}

fn sync_cmd(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orca-etm"));
    c.args(["sync", "--progress", "off", "--config"])
        .arg(config)
        .env("ORCA_API_TOKEN", TOKEN)
        .env("ORCA_ETM_LOG", "warn")
        .env_remove("ORCA_ETM_FAILPOINT");
    c
}

fn sync_ok(config: &Path) {
    let out = sync_cmd(config).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a sync until it reaches `point`, then SIGKILL it.
fn sync_killed_at(config: &Path, point: &str) {
    let mut child = sync_cmd(config)
        .env("ORCA_ETM_FAILPOINT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reached = false;
    let mut said = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains("failpoint") && line.contains("reached") {
            reached = true;
            break;
        }
        said.push_str(&line);
        said.push('\n');
    }
    // std's kill is SIGKILL on Unix: no destructor, no handler runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(reached, "{point} was never reached ({status}): {said}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{point}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// What must end equal: the output, and the ledger's findings and assets
/// (run ids named by role, since each run has its own).
#[derive(Debug, PartialEq)]
struct End {
    ndjson: Vec<u8>,
    findings: Vec<String>,
    assets: Vec<(String, u64)>,
    out_files: Vec<String>,
}

fn end_state(dir: &Path, base_run: &str) -> End {
    let ledger = Ledger::open_read_only(&dir.join("state/default/ledger.db")).unwrap();
    let role = |r: &str| if r == base_run { "base" } else { "later" };
    let findings = ledger
        .known_findings()
        .unwrap()
        .map(|k| {
            let k = k.unwrap();
            format!(
                "{} {} {} {:x} {:?} {} {}",
                k.asset_id,
                k.vendor_id,
                k.status,
                k.fingerprint,
                k.external_id,
                role(&k.first_seen_run),
                role(&k.last_seen_run)
            )
        })
        .collect();
    let assets = ledger.known_assets().unwrap().map(|a| a.unwrap()).collect();
    let mut out_files: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out_files.sort();
    End {
        ndjson: std::fs::read(dir.join("out/etm-assets.ndjson")).unwrap(),
        findings,
        assets,
        out_files,
    }
}

fn last_runs(dir: &Path) -> Vec<stages::ledger::RunRecord> {
    Ledger::open_read_only(&dir.join("state/default/ledger.db"))
        .unwrap()
        .runs(10)
        .unwrap()
}

#[test]
fn sigkill_at_any_point_then_a_rerun_ends_as_an_uninterrupted_run() {
    let (t1, t2) = tenants();
    let root = tempfile::tempdir().unwrap();

    // The state every case starts from: one complete run over t1.
    let base = root.path().join("base");
    {
        let fake = Fake::pages(t1.pages(PAGE), "");
        sync_ok(&write_config(&base, &fake.url()));
    }
    let base_run = last_runs(&base)[0].run_id.clone();

    let fake = Fake::pages(t2.pages(PAGE), "");
    let reference = root.path().join("reference");
    copy_dir(&base, &reference);
    sync_ok(&write_config(&reference, &fake.url()));
    let expected = end_state(&reference, &base_run);
    let fixed = expected
        .findings
        .iter()
        .filter(|f| f.contains(" FIXED "))
        .count();
    assert_eq!(
        fixed,
        3 + 25,
        "three removed findings and a removed asset's"
    );
    assert_eq!(
        expected.out_files,
        ["dead-letters.ndjson", "etm-assets.ndjson", "manifest.json"]
    );

    let points = [
        "sync.started",
        "parse.page@1",
        "parse.page@2",
        "parse.page@5",
        "parse.page@13",
        "parse.page@30",
        "parse.page@51",
        "spill.batch@1",
        "spill.batch@4",
        "spill.batch@20",
        "spill.batch@45",
        "publish.document@1",
        "publish.document@2",
        "publish.document@9",
        "publish.document@20",
        "publish.document@33",
        "publish.document@40",
        "ledger.applied",
        "publish.sinks_committed",
        "publish.manifest_written",
    ];
    for point in points {
        let dir = root.path().join(point.replace(['.', '@'], "-"));
        copy_dir(&base, &dir);
        let config = write_config(&dir, &fake.url());
        sync_killed_at(&config, point);
        sync_ok(&config);
        let got = end_state(&dir, &base_run);
        assert!(
            got.ndjson == expected.ndjson,
            "{point}: output differs from the uninterrupted run"
        );
        assert_eq!(got.findings, expected.findings, "{point}: ledger findings");
        assert_eq!(got.assets, expected.assets, "{point}: ledger assets");
        assert_eq!(got.out_files, expected.out_files, "{point}: output folder");
        let work = dir.join("work");
        assert!(
            !work.exists() || std::fs::read_dir(&work).unwrap().next().is_none(),
            "{point}: spill files left"
        );
        // The killed run is on record as interrupted, the rerun complete.
        let runs = last_runs(&dir);
        assert_eq!(runs.len(), 3, "{point}");
        assert_eq!(runs[0].status, "complete", "{point}");
        assert_eq!(runs[1].status, "failed", "{point}");
        assert_eq!(runs[1].details["interrupted"], true, "{point}");
    }
}

#[test]
fn a_killed_first_run_leaves_nothing_that_counts() {
    let (t1, _) = tenants();
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::pages(t1.pages(PAGE), "");
    let reference = root.path().join("reference");
    sync_ok(&write_config(&reference, &fake.url()));
    let run = last_runs(&reference)[0].run_id.clone();
    let expected = end_state(&reference, &run);

    let dir = root.path().join("killed");
    let config = write_config(&dir, &fake.url());
    sync_killed_at(&config, "ledger.applied");
    sync_ok(&config);
    let run = last_runs(&dir)[0].run_id.clone();
    let got = end_state(&dir, &run);
    assert!(got.ndjson == expected.ndjson);
    assert_eq!(
        got.findings, expected.findings,
        "all NEW, as if never killed"
    );
    assert_eq!(got.out_files, expected.out_files);
}
