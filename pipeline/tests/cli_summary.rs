//! What a person at the command line sees: the run summary names every
//! output (a CSV-only run too), logs in a pipe carry no colour codes, a
//! profile that never ran lists no runs instead of failing, `--profile`
//! picks one of a serve config's profiles, and no work folder is left behind.

mod common;

use std::process::Command;

use common::cli::*;
use common::*;
use fixtures::tenant::TenantSpec;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 5,
        assets: 12,
        findings: 60,
        ..TenantSpec::default()
    }
}

#[test]
fn runs_of_a_profile_that_never_ran_is_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &config_text("http://127.0.0.1:9", dir.path(), ""),
    );
    let o = orca_etm(&["runs", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let ledger = dir.path().join("state/default/ledger.db");
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "no runs recorded yet for profile \"default\" (ledger {})",
            ledger.display()
        )
    );
    let o = orca_etm(&["runs", "--json", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs, serde_json::json!([]));
    // Listing creates nothing: the ledger is the sync's to make.
    assert!(!ledger.exists());
}

#[test]
fn a_csv_only_run_names_its_output_and_piped_logs_have_no_colour() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[sink]]\ntype = \"csv\"\n",
        config_text(&fake.url(), dir.path(), "")
    );
    let config = config_file(dir.path(), &text);
    let o = orca_etm(&["sync", "--progress", "log", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let csv = dir.path().join("out/etm-findings.csv");
    assert!(csv.is_file());
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.contains(&format!("output: {}", csv.display()).as_str()),
        "{out}"
    );
    assert!(!out.contains("none written"), "{out}");
    // A clean first run: every finding NEW, no rows read twice; the
    // orphans' findings are published under their own minimal documents.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    let orphan_assets = manifest["counts"]["orphan_assets"].as_u64().unwrap();
    assert!(orphan_assets > 0, "{manifest}");
    let expected = fixtures::tenant::Tenant::new(spec()).expected().clone();
    let (assets, findings) = (
        expected.assets + orphan_assets,
        expected.findings + expected.orphan_findings,
    );
    assert!(
        lines
            .iter()
            .any(|l| *l
                == format!("assets: {assets}  findings: {findings}  (NEW {findings})").as_str()),
        "{out}"
    );
    assert!(out.contains("rows read twice (merged): 0"), "{out}");

    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("INFO"), "logs at info expected: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in piped logs: {err:?}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "colour codes in the summary: {out:?}"
    );

    // The run's scratch space is gone, folder and all.
    assert!(!dir.path().join("work").exists());
}

#[test]
fn profile_picks_one_of_a_serve_configs_profiles() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[profiles]]\nname = \"vulns\"\nschedule = {{ once = \"now\" }}\n\
         [[profiles]]\nname = \"assets\"\nfindings_types = [\"host_assets\"]\nschedule = {{ once = \"now\" }}\n",
        config_text(&fake.url(), dir.path(), "")
    );
    let config = config_file(dir.path(), &text);

    let o = orca_etm(&["sync", "--progress", "off", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--profile (vulns, assets)"), "{err}");

    let o = orca_etm(&[
        "sync",
        "--progress",
        "off",
        "--profile",
        "vulns",
        "--config",
        arg(&config),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    // The profile's own output folder and ledger, as the daemon would use.
    assert!(dir.path().join("out/vulns/etm-assets.ndjson").is_file());
    assert!(dir.path().join("state/vulns/ledger.db").is_file());
    assert!(!dir.path().join("state/assets").exists());

    let o = orca_etm(&[
        "runs",
        "--json",
        "--profile",
        "vulns",
        "--config",
        arg(&config),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "complete", "{runs}");

    let o = orca_etm(&["runs", "--profile", "nope", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no profile \"nope\""));
}

#[test]
fn an_interrupted_sync_says_which_queries_it_did_not_finish() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    // About 20 requests at 4 a second: a run of some 5 s, stopped at 1.5 s.
    let config = config_file(
        dir.path(),
        &config_text(
            &fake.url(),
            dir.path(),
            "requests_per_second = 4\npage_size = 10",
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["sync", "--progress", "off", "--config", arg(&config)])
        .env("ORCA_API_TOKEN", TOKEN)
        .env("ORCA_ETM_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains(" PARTIAL in "), "{out}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/manifest.json")).unwrap())
            .unwrap();
    let error = manifest["error"].as_str().unwrap();
    assert!(error.starts_with("interrupted: "), "{error}");
    let fetch = &manifest["fetch"];
    assert_eq!(fetch["interrupted"], true, "{manifest}");
    assert_eq!(fetch["complete"], false);
    let queries = fetch["queries"].as_array().unwrap();
    // Every query of the plan is on record: read through, or cut short.
    let roots: Vec<&serde_json::Value> = queries
        .iter()
        .filter(|q| q["label"] == q["model"])
        .collect();
    assert_eq!(roots.len(), 7, "{queries:?}");
    let cut: Vec<&str> = roots
        .iter()
        .filter(|q| q["complete"] == false)
        .map(|q| q["label"].as_str().unwrap())
        .collect();
    assert!(!cut.is_empty(), "{queries:?}");
    for q in &roots {
        if q["complete"] == false {
            assert!(
                q["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("interrupted before it was read"),
                "{q}"
            );
        }
    }
    // The message names the same queries.
    assert!(
        error.ends_with(&format!("(not read through: {})", cut.join(", "))),
        "{error}"
    );
    // Some were read: the run got going before the signal.
    assert!(fetch["pages"].as_u64().unwrap() > 0);

    // The ledger's record of the run has them too.
    let runs = orca_etm(&["runs", "--json", "--config", arg(&config)]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs[0]["status"], "partial", "{runs}");
    let recorded = runs[0]["details"]["queries"].as_array().unwrap();
    assert_eq!(recorded.len(), 7, "{runs}");
    let recorded_cut: Vec<&str> = recorded
        .iter()
        .filter(|q| q["complete"] == false)
        .map(|q| q["query"].as_str().unwrap())
        .collect();
    assert_eq!(recorded_cut, cut, "{runs}");
}

#[test]
fn a_token_file_wins_over_the_environment_and_says_so() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("orca-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let text = format!(
        "[auth]\napi_token_file = {:?}\n{}",
        token_file.display().to_string(),
        config_text(&fake.url(), dir.path(), "")
    );
    let config = config_file(dir.path(), &text);
    let o = Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["check", "--config", arg(&config)])
        .env("ORCA_API_TOKEN", "a-stale-token-from-the-shell")
        .env("ORCA_ETM_LOG", "warn")
        .output()
        .unwrap();
    // The file's token is the one Orca accepts.
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("both auth.api_token_file and the environment variable hold an Orca token: using the file's"),
        "{err}"
    );
    assert!(!err.contains("a-stale-token-from-the-shell") && !err.contains(TOKEN));
}
