//! The webhook sink through the `orca-etm` binary: a failing sink fails
//! the run for the ledger while the other sinks' output stands; secrets
//! never reach logs, metrics, the manifest or dead letters; bad sink
//! configs exit 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::gateway::*;
use common::*;
use fixtures::tenant::TenantSpec;
use stages::ledger::Ledger;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 5,
        assets: 30,
        findings: 300,
        ..TenantSpec::default()
    }
}

fn write_config(dir: &Path, orca_url: &str, gateway_url: &str, webhook_extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("orca-etm.toml");
    let text = format!(
        "{}{}",
        config_text(orca_url, dir, ""),
        sinks_text(dir, gateway_url, webhook_extra)
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn sync(config: &Path, log: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["sync", "--progress", "off", "--config"])
        .arg(config)
        .env("ORCA_API_TOKEN", TOKEN)
        .env("ORCA_ETM_LOG", log)
        .env_remove("ORCA_ETM_FAILPOINT")
        .env_remove("QUALYS_PASSWORD")
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn runs(dir: &Path) -> Vec<stages::ledger::RunRecord> {
    Ledger::open_read_only(&dir.join("state/default/ledger.db"))
        .unwrap()
        .runs(10)
        .unwrap()
}

#[test]
fn a_failing_webhook_fails_the_run_for_the_ledger_and_the_files_stand() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let ndjson = out_file(dir.path(), "etm-assets.ndjson");

    // The gateway fails every sync call: the webhook gives up.
    let first = {
        let gw = Gateway::start("[[faults]]\nkind = \"status\"\nstatus = 503\n", |_| {});
        let config = write_config(dir.path(), &orca.url(), &gw.url(), "max_retries = 2");
        let o = sync(&config, "warn");
        assert_eq!(o.status.code(), Some(4), "{}", said(&o));
        assert!(gw.gw().accepted().is_empty());
        // The first call and its two retries, then nothing more.
        assert_eq!(gw.sync_calls().len(), 3);
        // The summary shows each sink, the failed one too.
        let out = String::from_utf8_lossy(&o.stdout);
        let sinks: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("sink "))
            .collect();
        assert_eq!(sinks.len(), 3, "{out}");
        assert!(sinks[0].starts_with("sink ndjson: "), "{out}");
        assert!(sinks[1].starts_with("sink csv: "), "{out}");
        assert!(
            sinks[2].starts_with("sink qualys_webhook: FAILED: ")
                && sinks[2].contains("gave up after 2 retries"),
            "{out}"
        );
        std::fs::read(&ndjson).unwrap()
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_file(dir.path(), "manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["status"], "failed");
    let error = manifest["error"].as_str().unwrap();
    assert!(
        error.contains("qualys_webhook") && error.contains("gave up after 2 retries"),
        "{error}"
    );
    // NDJSON and CSV are complete and agree.
    let docs1: Vec<serde_json::Value> = String::from_utf8_lossy(&first)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(docs1.len() >= 30);
    assert_eq!(
        csv_rows(&out_file(dir.path(), "etm-findings.csv")),
        ndjson_rows(&docs1)
    );
    let outputs: Vec<&str> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["sink"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["ndjson", "csv"]);
    let failed = manifest["failed_sinks"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].as_str().unwrap().starts_with("qualys_webhook: "),
        "{failed:?}"
    );
    // Its NDJSON and CSV are this run's.
    assert_eq!(manifest["output_run_id"], manifest["run_id"]);
    // The ledger did not take the run: it knows no finding.
    let r = runs(dir.path());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, "failed");
    let ledger = Ledger::open_read_only(&dir.path().join("state/default/ledger.db")).unwrap();
    assert_eq!(ledger.known_findings().unwrap().count(), 0);
    drop(ledger);

    // The next run, the gateway healthy, computes the same statuses (all
    // NEW again) and delivers them.
    let gw = Gateway::start("", |_| {});
    let config = write_config(dir.path(), &orca.url(), &gw.url(), "max_retries = 2");
    let o = sync(&config, "warn");
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let second = std::fs::read(&ndjson).unwrap();
    assert!(second == first, "the rerun's documents differ");
    assert!(docs1
        .iter()
        .flat_map(|d| d["finding"].as_array().unwrap())
        .all(|f| f["status"] == "NEW"));
    assert_accepted_equals(gw.gw(), &docs1, &[]);
    assert_eq!(runs(dir.path())[0].status, "complete");
}

/// Every file under `dir`, as text.
fn all_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push((
                p.clone(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
            ));
        }
    }
}

#[test]
fn no_log_line_manifest_or_dead_letter_shows_the_password_or_a_jwt() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        "[[faults]]\nkind = \"expire_tokens\"\nat = 2\n\
         [[faults]]\nkind = \"status\"\nstatus = 503\nat = 4\n\
         [[faults]]\nkind = \"status\"\nstatus = 429\nat = 5\nto_wait_sec = 0.02\n\
         [[faults]]\nkind = \"asset_error\"\nevery_nth_asset = 4\n",
        |c| c.jwt_exp_claim = false,
    );
    let config = write_config(dir.path(), &orca.url(), &gw.url(), "asset_retries = 1");
    let o = sync(&config, "debug");
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let log = said(&o);
    // The log did speak about the sink at debug level.
    assert!(log.contains("obtained a gateway token"), "{log}");
    let tokens = gw.gw().issued_tokens();
    assert_eq!(tokens.len(), 2);
    let mut files = Vec::new();
    all_files(&dir.path().join("out"), &mut files);
    let dead = files
        .iter()
        .find(|(p, _)| p.ends_with("qualys_webhook-dead-letters.ndjson"))
        .expect("the sink's dead letters");
    assert!(dead.1.lines().count() >= 1, "no asset was dead-lettered");
    files.push(("stdout+stderr".into(), log));
    for (path, text) in &files {
        assert!(
            !text.contains(PASSWORD),
            "{} shows the password",
            path.display()
        );
        assert!(
            !text.contains(TOKEN),
            "{} shows the Orca token",
            path.display()
        );
        for t in &tokens {
            // The signature alone is what makes a token a token.
            let sig = t.rsplit('.').next().unwrap();
            assert!(!text.contains(sig), "{} shows a JWT", path.display());
        }
    }
}

#[test]
fn metrics_name_the_sink_and_never_a_secret() {
    let recorder = pipeline::telemetry::install().unwrap();
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start(
        "[[faults]]\nkind = \"status\"\nstatus = 503\nat = 2\n\
         [[faults]]\nkind = \"asset_error\"\nevery_nth_asset = 5\n",
        |c| {
            c.calls_per_window = 3;
            c.window = std::time::Duration::from_millis(300);
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{}",
        config_text(&orca.url(), dir.path(), ""),
        sinks_text(
            dir.path(),
            &gw.url(),
            "asset_retries = 0\nbatch_assets = 10"
        )
    );
    let out = run(&pipeline::config::Config::parse(&text).unwrap());
    assert_eq!(
        out.manifest.status,
        pipeline::manifest::RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let rendered = recorder.render();
    use stages::telemetry as t;
    for name in [
        t::SINK_REQUESTS,
        t::SINK_RETRIES,
        t::SINK_DOCUMENTS_SENT,
        t::SINK_SENT_BYTES,
        t::SINK_REQUEST_DURATION,
        t::SINK_RATE_LIMIT_WAIT,
        t::SINK_TOKEN_REFRESHES,
        t::SINK_DEAD_LETTERS,
    ] {
        assert!(
            rendered
                .lines()
                .any(|l| l.starts_with(name) && l.contains("sink=\"qualys_webhook\"")),
            "{name} missing:\n{rendered}"
        );
    }
    let line = |prefix: &str| {
        rendered
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{prefix}:\n{rendered}"))
    };
    let accepted = gw.gw().accepted().len() as f64;
    assert_eq!(
        line("orca_etm_sink_documents_sent_total{profile=\"default\",sink=\"qualys_webhook\"}"),
        accepted
    );
    let dead = out.manifest.outputs[2].dead_letters as f64;
    assert!(dead >= 1.0);
    assert_eq!(
        line("orca_etm_sink_dead_letters_total{profile=\"default\",sink=\"qualys_webhook\"}"),
        dead
    );
    assert!(!rendered.contains(PASSWORD));
    for t in gw.gw().issued_tokens() {
        assert!(!rendered.contains(t.rsplit('.').next().unwrap()));
    }
}

#[test]
fn bad_sink_configs_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_text("http://127.0.0.1:9/api/", dir.path(), "");
    let cases = [
        (
            "[[sink]]\ntype = \"qualys_webhook\"\ngateway = \"https://gw.example\"\nconnector_uuid = \"0d9f3a51-2b7c-4e1a-9d3e-8c6b5a4f3e21\"\nusername = \"u\"\npassword_env = \"ORCA_ETM_TEST_NO_SUCH_VAR\"\n",
            "ORCA_ETM_TEST_NO_SUCH_VAR",
        ),
        ("[[sink]]\ntype = \"csv\"\ncolumns = 3\n", "columns"),
        ("[[sink]]\ntype = \"s3\"\n", "s3"),
        (
            "[[sink]]\ntype = \"qualys_webhook\"\ngateway = \"http://gw.example\"\nconnector_uuid = \"0d9f3a51-2b7c-4e1a-9d3e-8c6b5a4f3e21\"\n",
            "refusing plain http",
        ),
    ];
    for (i, (sinks, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&p, format!("{base}{sinks}")).unwrap();
        let o = sync(&p, "warn");
        assert_eq!(o.status.code(), Some(2), "{sinks}: {}", said(&o));
        let s = said(&o);
        assert!(
            s.contains("bad configuration") && s.contains(want),
            "{sinks}: {s}"
        );
    }
}

#[test]
fn check_logs_in_to_each_webhook_gateway() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start("", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &orca.url(), &gw.url(), "");
    let check = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .args(["check", "--config"])
            .arg(config)
            .env("ORCA_API_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let o = check(&config);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        said(&o).contains("sink qualys_webhook: http://127.0.0.1:"),
        "{}",
        said(&o)
    );
    assert_eq!(gw.gw().tokens_issued(), 1);
    assert!(gw.sync_calls().is_empty(), "check sends no data");

    std::fs::write(password_file(dir.path()), "not-the-password\n").unwrap();
    let o = check(&config);
    assert_eq!(o.status.code(), Some(4), "{}", said(&o));
    let s = said(&o);
    assert!(s.contains("/auth answered HTTP 401"), "{s}");
    assert!(!s.contains("not-the-password"));
}
