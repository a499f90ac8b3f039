//! `orca-etm serve`: profiles on their schedules, each with its own ledger
//! and output, never overlapping; metrics and health between runs; SIGTERM
//! stopping a running sync at a safe point.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::prom::{eventually, sample, Http};
use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::manifest::RunStatus;
use pipeline::serve::{serve, ServeConfig, ServeOptions};
use stages::ledger::Ledger;
use stages::secret::Secret;
use stages::telemetry as t;
use tokio_util::sync::CancellationToken;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 3,
        assets: 30,
        findings: 300,
        odd_share: 0.0,
        over_limit_share: 0.0,
        orphan_findings: 0,
        non_vm_findings: 0,
    }
}

/// The shared part of a serve config against `url`, in `dir`.
fn base(url: &str, dir: &Path, orca_extra: &str) -> String {
    // A sync config without its `profile`, plus where /metrics listens.
    format!(
        "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
        config_text(url, dir, orca_extra)
    )
}

fn runs_of(dir: &Path, profile: &str) -> Vec<stages::ledger::RunRecord> {
    let path = dir.join("state").join(profile).join("ledger.db");
    Ledger::open_read_only(&path).unwrap().runs(100).unwrap()
}

#[test]
fn profiles_run_on_their_schedules_each_with_its_own_ledger_and_output() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\
[[profiles]]\nname = \"often\"\nschedule = {{ every = \"1s\" }}\n\
[[profiles]]\nname = \"inventory\"\nfindings_types = [\"host_assets\"]\nschedule = {{ once = \"now\" }}\n\
[[profiles]]\nname = \"paused\"\nactive = false\nschedule = {{ once = \"now\" }}\n\
[[profiles]]\nname = \"nightly\"\nschedule = {{ cron = \"0 3 * * *\" }}\n",
        base(&fake.url(), dir.path(), "page_size = 100")
    );
    let cfg = ServeConfig::parse_in(&text, dir.path()).unwrap();
    let shutdown = CancellationToken::new();
    let (tx, rx) = flume::bounded::<SocketAddr>(1);
    let daemon = {
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        std::thread::spawn(move || {
            serve(
                &cfg,
                &Secret::new(TOKEN),
                ServeOptions {
                    shutdown: Some(shutdown),
                    on_listening: Some(tx),
                    ..ServeOptions::default()
                },
            )
        })
    };
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let http = Http::new();
    let metrics = format!("http://{addr}/metrics");
    let runs = |body: &str, p: &str| {
        sample(
            body,
            &format!("{}{{profile=\"{p}\",status=\"complete\"}}", t::RUNS),
        )
        .unwrap_or(0.0)
    };
    let body = eventually(
        "three runs of `often`, one of `inventory`",
        Duration::from_secs(60),
        || {
            let (_, body) = http.get(&metrics)?;
            (runs(&body, "often") >= 3.0 && runs(&body, "inventory") == 1.0).then_some(body)
        },
    );
    // Between runs as during them.
    assert_eq!(http.get(&format!("http://{addr}/healthz")).unwrap().0, 200);
    assert_eq!(http.get(&format!("http://{addr}/readyz")).unwrap().0, 200);
    let gauge = |name: &str, p: &str| sample(&body, &format!("{name}{{profile=\"{p}\"}}"));
    assert_eq!(gauge(t::PROFILE_ACTIVE, "paused"), Some(0.0));
    assert_eq!(gauge(t::PROFILE_ACTIVE, "often"), Some(1.0));
    assert_eq!(gauge(t::SCHEDULE_NEXT_RUN, "paused"), Some(0.0));
    assert_eq!(
        gauge(t::SCHEDULE_NEXT_RUN, "inventory"),
        Some(0.0),
        "once: no next run"
    );
    let nightly = gauge(t::SCHEDULE_NEXT_RUN, "nightly").unwrap() as i64;
    assert_eq!(nightly % 86_400, 3 * 3600, "03:00 UTC");
    assert!(nightly > chrono::Utc::now().timestamp());

    shutdown.cancel();
    let log = daemon.join().unwrap().unwrap();
    assert!(
        http.get(&metrics).is_none(),
        "the listener stops with the daemon"
    );

    assert!(log
        .iter()
        .all(|r| r.profile == "often" || r.profile == "inventory"));
    assert_eq!(log.iter().filter(|r| r.profile == "inventory").count(), 1);
    // One run at a time, `often` start to start at least its interval apart.
    for w in log.windows(2) {
        assert!(w[1].started >= w[0].ended, "{:?} overlaps {:?}", w[1], w[0]);
    }
    let often: Vec<_> = log.iter().filter(|r| r.profile == "often").collect();
    assert!(often.len() >= 3);
    for w in often.windows(2) {
        assert!(
            w[1].started - w[0].started >= chrono::Duration::milliseconds(1000),
            "{:?}",
            w
        );
    }
    for r in &log {
        assert_eq!(r.status, Ok(RunStatus::Complete), "{r:?}");
    }

    // Each profile its ledger and its output.
    assert_eq!(runs_of(dir.path(), "often").len(), often.len());
    assert_eq!(runs_of(dir.path(), "inventory").len(), 1);
    assert!(!dir.path().join("state/paused").exists());
    assert!(!dir.path().join("state/nightly").exists());
    let often_docs = docs(&dir.path().join("out/often/etm-assets.ndjson"));
    let inventory_docs = docs(&dir.path().join("out/inventory/etm-assets.ndjson"));
    assert_eq!(often_docs.len(), 30);
    assert_eq!(inventory_docs.len(), 30);
    assert_eq!(all_findings(&often_docs).len(), 300);
    assert!(
        all_findings(&inventory_docs).is_empty(),
        "inventory pulls no findings"
    );
}

#[test]
fn sigterm_stops_a_running_sync_at_a_safe_point_and_the_daemon_exits() {
    // 5 requests/s and pages of 10: a run of several seconds.
    let fake = Fake::synthetic(spec(), 5.0, "");
    let dir = tempfile::tempdir().unwrap();
    let port = common::prom::free_port();
    let text = format!(
        "{}[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
[[profiles]]\nname = \"long\"\nschedule = {{ every = \"1h\" }}\n",
        config_text(
            &fake.url(),
            dir.path(),
            "page_size = 10\nrequests_per_second = 5"
        )
    );
    let cfg_path = dir.path().join("serve.toml");
    std::fs::write(&cfg_path, text).unwrap();
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["serve", "--config"])
        .arg(&cfg_path)
        .env("ORCA_API_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let http = Http::new();
    eventually("the sync under way", Duration::from_secs(30), || {
        let (_, body) = http.get(&format!("http://127.0.0.1:{port}/metrics"))?;
        let pages = sample(
            &body,
            &format!(
                "{}{{profile=\"long\",model=\"VulnerabilityV2\"}}",
                t::FETCH_PAGES
            ),
        )
        .or_else(|| {
            sample(
                &body,
                &format!(
                    "{}{{profile=\"long\",model=\"AwsEc2Instance\"}}",
                    t::FETCH_PAGES
                ),
            )
        })?;
        (pages >= 3.0).then_some(())
    });
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = eventually("the daemon to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("signal received"), "{stderr}");
    assert!(!stderr.contains(TOKEN));

    // The run ended at a safe point: recorded as partial (not left
    // `processing`, not a crash), what it read published, nothing fixed.
    let runs = runs_of(dir.path(), "long");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "partial", "{:?}", runs[0]);
    assert_ne!(
        runs[0].details.get("interrupted"),
        Some(&serde_json::json!(true))
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/long/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["status"], "partial");
    assert!(manifest["error"].as_str().unwrap().contains("interrupted"));
    assert!(manifest["counts"]["findings_by_status"]
        .get("FIXED")
        .is_none());
    assert!(dir.path().join("out/long/etm-assets.ndjson").exists());
}
