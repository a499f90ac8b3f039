//! The metric contract as a sync exports it: every metric present, its
//! values the same as the run's manifest, labels of low cardinality only,
//! no secret; and `/metrics` served by `orca-etm sync --metrics-listen`.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use common::prom::{eventually, sample, Http};
use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::manifest::{Manifest, RunStatus};
use pipeline::telemetry::{self, MetricsServer, Readiness};
use stages::telemetry::{self as t, Kind};

/// The exporter of this test process, and its listener.
fn exporter() -> (&'static telemetry::Exporter, MetricsServer) {
    let e = telemetry::install().unwrap();
    let ready = Readiness::default();
    ready.set(true);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), ready).unwrap();
    (e, server)
}

fn scrape(http: &Http, server: &MetricsServer) -> String {
    let (status, body) = http
        .get(&format!("http://{}/metrics", server.addr()))
        .unwrap();
    assert_eq!(status, 200);
    body
}

/// Sum of the samples of `name` whose labels include every `want` pair.
fn total(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// `(name, labels, value)` of every `orca_etm_` sample line.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| l.starts_with(t::PREFIX))
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let mut map = BTreeMap::new();
            // Our label values hold no `,` or `"`; the contract test checks.
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                map.insert(k.to_string(), v.trim_matches('"').to_string());
            }
            (name.to_string(), map, value.parse().unwrap())
        })
        .collect()
}

fn manifest_u64(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or_else(|| panic!("{path:?} in {v}"))
}

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 11,
        assets: 40,
        findings: 800,
        odd_share: 0.2,
        over_limit_share: 0.1,
        orphan_findings: 3,
        non_vm_findings: 5,
    }
}

#[test]
fn a_sync_exports_the_whole_contract_and_agrees_with_its_manifest() {
    let (_e, server) = exporter();
    let http = Http::new();
    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 429\nevery = 5\nretry_after = 0\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        &fake.url(),
        dir.path(),
        "page_size = 50\npage_cap = 200\nover_cap = \"split\"",
    );
    let profile = "contract";
    cfg.profile = profile.into();
    let out = run(&cfg);
    let m = &out.manifest;
    assert_eq!(m.status, RunStatus::Complete, "{:?}", m.error);
    let text = scrape(&http, &server);
    let p = [("profile", profile)];

    // Every metric of the contract is there, typed, with help text, and
    // histograms have buckets, never quantiles; but serve's own and the
    // webhook sink's (tests/serve.rs, tests/qualys_cli.rs): this run writes
    // NDJSON.
    for metric in t::METRICS {
        if [t::PROFILE_ACTIVE, t::SCHEDULE_NEXT_RUN].contains(&metric.name)
            || metric.name.starts_with("orca_etm_sink_")
        {
            continue;
        }
        let kind = metric.kind.as_str();
        assert!(
            text.contains(&format!("# TYPE {} {kind}\n", metric.name)),
            "{} is not exported as a {kind}",
            metric.name
        );
        assert!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "{} has no help",
            metric.name
        );
        let series = if metric.kind == Kind::Histogram {
            format!("{}_bucket{{", metric.name)
        } else {
            format!("{}{{", metric.name)
        };
        assert!(text.contains(&series), "{} has no sample", metric.name);
    }
    assert!(
        !text.contains("quantile="),
        "a histogram rendered as a summary"
    );

    // Low-cardinality labels only: never an asset or finding id.
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    let mut ids: HashSet<String> = HashSet::new();
    for d in &docs {
        ids.insert(d["externalAssetId"].as_str().unwrap().to_string());
        for f in d["finding"].as_array().unwrap() {
            ids.insert(
                f["findingType"]["vulnerability"]["vendorId"]
                    .as_str()
                    .unwrap()
                    .into(),
            );
        }
    }
    assert!(ids.len() > 800);
    for (name, labels, _) in samples(&text) {
        for (k, v) in &labels {
            assert!(
                t::LABELS.contains(&k.as_str()) || k == "le",
                "{name}: label {k}"
            );
            assert!(!ids.contains(v), "{name} is labelled with an id: {v}");
            assert!(!v.contains(TOKEN));
        }
    }
    assert!(!text.contains(TOKEN));

    // Fetch: the same numbers as the manifest.
    let f = m.fetch.as_ref().unwrap();
    assert_eq!(total(&text, t::FETCH_REQUESTS, &p), f.requests as f64);
    let refused = total(
        &text,
        t::FETCH_REQUESTS,
        &[("profile", profile), ("status", "429")],
    );
    assert!(refused >= 1.0, "the 429s are counted by status");
    assert_eq!(
        total(
            &text,
            t::FETCH_RETRIES,
            &[("profile", profile), ("reason", "http_429")]
        ),
        *f.retries_by_cause.get("http_429").unwrap() as f64
    );
    assert_eq!(
        total(&text, t::FETCH_RETRIES, &p),
        f.retries_by_cause.values().sum::<u64>() as f64
    );
    assert_eq!(total(&text, t::FETCH_PAGES, &p), f.pages as f64);
    assert_eq!(
        total(&text, t::FETCH_PARTITIONS_SPLIT, &p),
        f.partitions_split as f64
    );
    assert!(f.partitions_split > 0, "the cap of 200 splits the findings");
    let rows: u64 = f.queries.iter().map(|q| q.rows_read).sum();
    assert_eq!(total(&text, t::FETCH_ROWS, &p), rows as f64);
    assert_eq!(
        total(&text, &format!("{}_count", t::FETCH_REQUEST_DURATION), &p),
        f.requests as f64
    );
    assert_eq!(
        total(&text, &format!("{}_count", t::FETCH_RATE_LIMIT_WAIT), &p),
        f.requests as f64
    );
    for q in f.queries.iter().filter(|q| q.label == q.model) {
        let model = [("profile", profile), ("model", q.model.as_str())];
        assert_eq!(
            total(&text, t::FETCH_EXPECTED_ITEMS, &model),
            q.total_items.unwrap() as f64,
            "{}",
            q.model
        );
        let read: u64 = f
            .queries
            .iter()
            .filter(|l| l.model == q.model && !l.split)
            .map(|l| l.unique_ids)
            .sum();
        assert_eq!(read, q.total_items.unwrap(), "{}", q.model);
        assert_eq!(total(&text, t::FETCH_READ_ITEMS, &model), read as f64);
    }

    // The run.
    let status = |s: &str| total(&text, t::RUN_STATUS, &[("profile", profile), ("status", s)]);
    assert_eq!(
        (
            status("processing"),
            status("complete"),
            status("partial"),
            status("failed")
        ),
        (0.0, 1.0, 0.0, 0.0)
    );
    assert_eq!(
        total(
            &text,
            t::RUNS,
            &[("profile", profile), ("status", "complete")]
        ),
        1.0
    );
    assert_eq!(total(&text, t::RUN_DURATION, &p), m.duration_seconds);
    for (s, n) in [("NEW", 800), ("ACTIVE", 0), ("REOPENED", 0), ("FIXED", 0)] {
        let got = total(
            &text,
            t::RUN_FINDINGS,
            &[("profile", profile), ("status", s)],
        );
        assert_eq!(
            got,
            *m.counts.findings_by_status.get(s).unwrap_or(&0) as f64
        );
        assert!(got >= n as f64, "{s}: {got}");
    }
    assert_eq!(total(&text, t::RUN_ASSETS, &p), m.counts.assets as f64);
    let now = chrono::Utc::now().timestamp() as f64;
    let last = total(&text, t::RUN_LAST_SUCCESS, &p);
    assert!((now - last).abs() < 60.0, "last success {last}, now {now}");
    assert_eq!(total(&text, t::RUN_SUCCESS_MAX_AGE, &p), 26.0 * 3600.0);
    assert!(total(&text, t::RUN_PEAK_RSS, &p) > 1e6);

    // Stages and channels: the manifest's counters, sampled.
    for (stage, v) in &m.stages {
        let s = [("profile", profile), ("stage", *stage)];
        assert_eq!(
            total(&text, t::STAGE_ITEMS_RECEIVED, &s),
            manifest_u64(v, &["items_in"])
        );
        assert_eq!(
            total(&text, t::STAGE_ITEMS_SENT, &s),
            manifest_u64(v, &["items_out"])
        );
        assert_eq!(
            total(&text, t::STAGE_BYTES_RECEIVED, &s),
            manifest_u64(v, &["bytes_in"])
        );
        assert_eq!(
            total(&text, t::STAGE_WORKERS, &s),
            manifest_u64(v, &["workers"])
        );
        let util = total(&text, t::STAGE_UTILIZATION, &s);
        assert!((0.0..=1.0).contains(&util), "{stage}: {util}");
    }
    for stage in ["transform", "spill"] {
        let s = [("profile", profile), ("stage", stage)];
        assert!(total(&text, t::STAGE_BYTES_SENT, &s) > 0.0, "{stage}");
    }
    assert_eq!(
        total(
            &text,
            t::STAGE_BYTES_SENT,
            &[("profile", profile), ("stage", "spill")]
        ),
        m.counts.spill.bytes as f64
    );
    for (channel, v) in &m.channels {
        let c = [("profile", profile), ("channel", *channel)];
        assert_eq!(
            total(&text, t::CHANNEL_SENT, &c),
            manifest_u64(v, &["sent_items"])
        );
        assert_eq!(
            total(&text, t::CHANNEL_CAPACITY, &c),
            manifest_u64(v, &["capacity"])
        );
        assert_eq!(total(&text, t::CHANNEL_QUEUED, &c), 0.0, "the run is over");
    }

    // Data quality: the transform counters of the manifest, by metric.
    for (field, n) in &m.counts.transform {
        if let Some((metric, reason)) = t::transform_counter(field) {
            assert_eq!(
                total(&text, metric, &[("profile", profile), ("reason", reason)]),
                *n as f64,
                "{field}"
            );
        }
    }
    let truncated: u64 = m
        .counts
        .transform
        .iter()
        .filter(|(k, _)| k.starts_with("truncated_"))
        .map(|(_, v)| v)
        .sum();
    assert!(truncated > 0, "over-limit assets are truncated");
    assert_eq!(
        total(
            &text,
            t::STAGE_DISCARDED,
            &[
                ("profile", profile),
                ("stage", "transform"),
                ("reason", "truncated")
            ]
        ),
        truncated as f64
    );
    assert!(
        total(&text, t::TRANSFORM_UNMAPPED, &p) > 0.0,
        "odd values are unmapped"
    );
    assert_eq!(
        total(
            &text,
            t::STAGE_DISCARDED,
            &[
                ("profile", profile),
                ("stage", "assemble"),
                ("reason", "duplicate")
            ]
        ),
        (m.counts.duplicates.assets + m.counts.duplicates.findings) as f64
    );
    assert_eq!(
        total(&text, t::STAGE_ERRORS, &p),
        0.0,
        "a complete run counts no error"
    );
    assert_eq!(
        total(
            &text,
            t::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let (s, body) = http
        .get(&format!("http://{}/healthz", server.addr()))
        .unwrap();
    assert_eq!((s, body.as_str()), (200, "ok\n"));
    let (s, _) = http
        .get(&format!("http://{}/readyz", server.addr()))
        .unwrap();
    assert_eq!(s, 200);
}

/// A page of three records: one fine, one without its asset id (a
/// transform dead letter), one that is not JSON (a parse dead letter).
fn bad_page() -> Bytes {
    Bytes::from_static(
        br#"{"status":"success","total_items":3,"data":[
{"id":"a-1","name":"ok","type":"AwsEc2Instance","asset_unique_id":"vm_1_i-1","data":{"Hostname":{"value":"ok"}}},
{"id":"a-2","name":"no id","type":"AwsEc2Instance","data":{"Hostname":{"value":"x"}}},
{"id":"a-3","name":"broken","data":{"Hostname":{"value": }}}
]}"#,
    )
}

#[test]
fn dead_letters_and_repairs_are_counted_as_the_manifest_counts_them() {
    let (e, _server) = exporter();
    let mut pages = one_page("AwsEc2Instance", bad_page());
    pages.insert(
        "AzureComputeVm".into(),
        vec![case_body("01-lone-surrogate.json")],
    );
    let fake = Fake::pages(pages, "");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fake.url(), dir.path(), "");
    let profile = "quality";
    cfg.profile = profile.into();
    let out = run(&cfg);
    let m: &Manifest = &out.manifest;
    let text = e.render();
    let p = [("profile", profile)];
    assert!(
        m.counts.dead_letters >= 2,
        "{:?}",
        m.counts.dead_letters_by_reason
    );
    assert_eq!(
        total(&text, t::DEAD_LETTERS, &p),
        m.counts.dead_letters as f64
    );
    for (key, n) in &m.counts.dead_letters_by_reason {
        let (stage, reason) = key.split_once(':').unwrap();
        assert_eq!(
            total(
                &text,
                t::DEAD_LETTERS,
                &[("profile", profile), ("stage", stage), ("reason", reason)]
            ),
            *n as f64,
            "{key}"
        );
        assert!(
            t::DEAD_LETTER_REASONS.contains(&(stage, reason)),
            "{key} is not listed in the contract"
        );
    }
    let discarded = total(
        &text,
        t::STAGE_DISCARDED,
        &[("profile", profile), ("reason", "dead_letter")],
    );
    assert_eq!(discarded, m.counts.dead_letters as f64);
    assert_eq!(
        total(
            &text,
            t::PARSE_REPAIRED,
            &[("profile", profile), ("reason", "lone_surrogate")]
        ),
        *m.counts.repairs.get("lone_surrogate").unwrap() as f64
    );
    assert_eq!(
        total(&text, t::PARSE_REPAIRED, &p),
        m.counts.repairs.values().sum::<u64>() as f64
    );
}

#[test]
fn a_failed_run_keeps_the_last_success_and_is_counted() {
    let (e, _server) = exporter();
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    // Over a cap of 300, read on in FirstSeen stretches (the default).
    let mut cfg = config(&fake.url(), dir.path(), "page_size = 100\npage_cap = 300");
    let profile = "fails-later";
    cfg.profile = profile.into();
    let first_run = run(&cfg);
    assert_eq!(first_run.manifest.status, RunStatus::Complete);
    let p = [("profile", profile)];
    let text = e.render();
    let f = first_run.manifest.fetch.as_ref().unwrap();
    let q = f.query("VulnerabilityV2").unwrap();
    assert_eq!(q.split_reason.as_deref(), Some("over_cap_keyset"));
    let model = [("profile", profile), ("model", "VulnerabilityV2")];
    let announced = q.total_items.unwrap() as f64;
    assert!(announced > 300.0, "over the cap");
    assert_eq!(total(&text, t::FETCH_EXPECTED_ITEMS, &model), announced);
    assert_eq!(total(&text, t::FETCH_READ_ITEMS, &model), announced);
    assert_eq!(total(&text, t::FETCH_ROWS, &model), q.rows_read as f64);
    let first = total(&e.render(), t::RUN_LAST_SUCCESS, &p);
    assert!(first > 0.0);
    drop(fake);

    // The same profile, its token now refused at the third request.
    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 403\nat = 3\n",
    );
    cfg.orca.domain = fake.url();
    std::thread::sleep(Duration::from_millis(1100));
    let out = run(&cfg);
    assert_eq!(out.manifest.status, RunStatus::Failed);
    let text = e.render();
    assert_eq!(
        total(&text, t::RUN_LAST_SUCCESS, &p),
        first,
        "only a complete run sets it"
    );
    let s = |st: &str| {
        total(
            &text,
            t::RUN_STATUS,
            &[("profile", profile), ("status", st)],
        )
    };
    assert_eq!((s("complete"), s("failed")), (0.0, 1.0));
    assert_eq!(
        total(
            &text,
            t::RUNS,
            &[("profile", profile), ("status", "failed")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &text,
            t::RUNS,
            &[("profile", profile), ("status", "complete")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &text,
            t::FETCH_REQUESTS,
            &[("profile", profile), ("status", "403")]
        ),
        1.0
    );

    // A new process (a cron'd sync) learns the last success from the ledger.
    let fresh = {
        let path = cfg.ledger_path();
        let l = stages::ledger::Ledger::open_read_only(&path).unwrap();
        let r = l.last_complete_run().unwrap().unwrap();
        chrono::DateTime::parse_from_rfc3339(&r.ended_at.unwrap())
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0
    };
    assert_eq!(fresh, first, "the ledger's end time is the metric's");
}

#[test]
fn sync_metrics_listen_serves_metrics_while_the_run_goes_on() {
    // Slow on purpose (10 requests/s), so /metrics is read mid-run.
    let fake = Fake::synthetic(spec(), 10.0, "");
    let dir = tempfile::tempdir().unwrap();
    let mut text = config_text(
        &fake.url(),
        dir.path(),
        "page_size = 25\nrequests_per_second = 10",
    );
    text = format!("profile = \"listening\"\n{text}");
    let cfg_path = dir.path().join("orca-etm.toml");
    std::fs::write(&cfg_path, text).unwrap();
    let port = common::prom::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["sync", "--progress", "off", "--config"])
        .arg(&cfg_path)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("ORCA_API_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = Http::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mid_run = eventually("metrics of a running sync", Duration::from_secs(30), || {
        let (_, body) = http.get(&url)?;
        let running = sample(
            &body,
            &format!(
                "{}{{profile=\"listening\",status=\"processing\"}}",
                t::RUN_STATUS
            ),
        );
        let pages = sample(
            &body,
            &format!(
                "{}{{profile=\"listening\",stage=\"parse\"}}",
                t::STAGE_ITEMS_RECEIVED
            ),
        );
        (running == Some(1.0) && pages.is_some_and(|p| p > 0.0)).then_some(body)
    });
    assert!(mid_run.contains(t::CHANNEL_BLOCKED));
    let (s, _) = http
        .get(&format!("http://127.0.0.1:{port}/healthz"))
        .unwrap();
    assert_eq!(s, 200);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        http.get(&url).is_none(),
        "the listener goes away with the process"
    );
}

#[test]
fn a_pushgateway_url_that_cannot_be_used_is_a_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("orca-etm.toml");
    std::fs::write(
        &cfg_path,
        config_text("http://127.0.0.1:9/api/", dir.path(), ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(["sync", "--progress", "off", "--config"])
        .arg(&cfg_path)
        .args(["--pushgateway", "ftp://ops:hunter2-secret@pg.example/"])
        .env("ORCA_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pushgateway URL: use http:// or https://"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
