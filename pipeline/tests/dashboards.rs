//! `dashboards/` against the metric contract and against real Prometheus
//! tools: the dashboard names only metrics that exist, `promtool` checks
//! and unit-tests the rules, and a real Prometheus scraping a sync answers
//! every PromQL expression of the dashboard with data.
//!
//! Prometheus, promtool and the Pushgateway come from the distribution's
//! packages (.ci/run installs them). Without them these tests fail when CI
//! or ORCA_ETM_REQUIRE_PROMETHEUS is set, and are skipped with a notice
//! otherwise.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::prom::{self, dashboard_exprs, dashboards, eventually, grafana_expr, Http};
use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::manifest::RunStatus;
use pipeline::telemetry::{self, MetricsServer, Readiness};
use stages::telemetry::{self as t, Kind};

/// One Prometheus at a time: two cores are shared with the rest of the suite.
static HEAVY: Mutex<()> = Mutex::new(());

/// The `orca_etm_…` names in a text (recording rule names, `orca_etm:…`, excluded).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(t::PREFIX) {
        let before_ok = i == 0
            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if before_ok && !tail[end..].starts_with(':') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The contract's name for a series name (`_bucket`, `_sum`, `_count` of a histogram).
fn contract_name(series: &str) -> Option<&'static str> {
    if let Some(m) = t::metric(series) {
        return Some(m.name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        t::metric(base)
            .filter(|m| m.kind == Kind::Histogram)
            .map(|m| m.name)
    })
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_that_exist() {
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    let mut used = BTreeSet::new();
    for (title, e) in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{title}: {e} names no metric");
        for n in names {
            let m =
                contract_name(&n).unwrap_or_else(|| panic!("{title}: {n} is not in the contract"));
            used.insert(m);
        }
        assert!(
            e.contains("profile=~\"$profile\""),
            "{title}: {e} ignores the profile variable"
        );
    }
    for file in ["alerts.yml", "recording.yml"] {
        let text = std::fs::read_to_string(dashboards().join(file)).unwrap();
        for n in metric_names(&text) {
            assert!(
                contract_name(&n).is_some(),
                "{file}: {n} is not in the contract"
            );
        }
    }
    // What the issue asks the dashboard to show.
    for m in [
        t::RUN_STATUS,
        t::RUN_DURATION,
        t::RUN_LAST_SUCCESS,
        t::RUN_FINDINGS,
        t::STAGE_ITEMS_RECEIVED,
        t::STAGE_ITEMS_SENT,
        t::CHANNEL_QUEUED,
        t::CHANNEL_CAPACITY,
        t::CHANNEL_BLOCKED,
        t::STAGE_BUSY,
        t::STAGE_UTILIZATION,
        t::FETCH_REQUESTS,
        t::FETCH_REQUEST_DURATION,
        t::FETCH_RETRIES,
        t::FETCH_RATE_LIMIT_WAIT,
        t::FETCH_EXPECTED_ITEMS,
        t::FETCH_READ_ITEMS,
        t::DEAD_LETTERS,
        t::TRANSFORM_TRUNCATED,
        t::TRANSFORM_UNMAPPED,
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }

    // Importable: a Prometheus data-source variable and a profile variable,
    // and every panel reads from the chosen data source.
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboards().join("orca-etm.json")).unwrap())
            .unwrap();
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).unwrap();
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("profile")["type"], "query");
    assert!(var("profile")["definition"]
        .as_str()
        .unwrap()
        .contains(t::RUN_STATUS));
    for p in d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
    {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
    }
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let Some(promtool) = prom::tool("promtool") else {
        return;
    };
    let dir = dashboards();
    let run = |args: &[&str]| {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        text
    };
    run(&["check", "rules", "alerts.yml", "recording.yml"]);
    run(&["check", "config", "prometheus.yml"]);
    let tested = run(&[
        "test",
        "rules",
        "tests/alerts.test.yml",
        "tests/recording.test.yml",
    ]);
    assert!(tested.matches("SUCCESS").count() >= 2, "{tested}");

    // Every alert has a unit test.
    let alerts = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("tests/alerts.test.yml")).unwrap();
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for n in names {
        assert!(
            tests.contains(&format!("alertname: {n}\n")),
            "alert {n} has no promtool test"
        );
        let fires = tests
            .split(&format!("alertname: {n}\n"))
            .skip(1)
            .any(|after| !after.trim_start().starts_with("exp_alerts: []"));
        assert!(fires, "no test shows alert {n} firing");
    }
}

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 5,
        assets: 60,
        findings: 1200,
        odd_share: 0.2,
        over_limit_share: 0.1,
        orphan_findings: 2,
        non_vm_findings: 3,
    }
}

#[test]
fn a_real_prometheus_answers_every_dashboard_expression_with_data() {
    let (Some(prometheus), Some(_)) = (prom::tool("prometheus"), prom::tool("promtool")) else {
        return;
    };
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    telemetry::install().unwrap();
    let ready = Readiness::default();
    ready.set(true);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), ready).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rules = dashboards();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n  - {}\n\
         scrape_configs:\n  - job_name: orca-etm\n    static_configs:\n      - targets: ['{}']\n",
        rules.join("alerts.yml").display(),
        rules.join("recording.yml").display(),
        server.addr()
    );
    let p = prom::prometheus(&prometheus, dir.path(), &config);
    let http = Http::new();
    eventually(
        "Prometheus scraping orca-etm",
        Duration::from_secs(30),
        || {
            let up = http.query(p.addr, "up{job=\"orca-etm\"} == 1").ok()?;
            (!up.is_empty()).then_some(())
        },
    );

    // A run of some seconds (20 requests/s, 429s, a split), scraped each second.
    let fake = Fake::synthetic(
        spec(),
        20.0,
        "[[faults]]\nkind = \"status\"\nstatus = 429\nevery = 7\nretry_after = 1\n",
    );
    let profile = "prom-e2e";
    let mut cfg = config_from(
        &fake,
        dir.path(),
        "page_size = 50\npage_cap = 400\nrequests_per_second = 20",
    );
    cfg.profile = profile.into();
    let out = run(&cfg);
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    // The end of the run, scraped more than once.
    std::thread::sleep(Duration::from_secs(3));

    let mut empty = Vec::new();
    for (title, e) in dashboard_exprs() {
        let q = grafana_expr(&e, profile, "10m");
        match http.query(p.addr, &q) {
            Ok(result) if result.is_empty() => empty.push(format!("{title}: {q} returned no data")),
            Ok(result) => {
                let values: Vec<f64> = result
                    .iter()
                    .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                    .collect();
                if !values.iter().any(|v| v.is_finite()) {
                    empty.push(format!("{title}: {q} returned only {values:?}"));
                }
            }
            Err(err) => empty.push(format!("{title}: {q} failed: {err}")),
        }
    }
    assert!(empty.is_empty(), "{}\n{}", empty.join("\n"), p.log_text());
    eprintln!(
        "{} dashboard expressions answered with data",
        dashboard_exprs().len()
    );

    // The numbers are the run's.
    let one = |q: &str| -> f64 {
        let r = http.query(p.addr, q).unwrap();
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    let f = out.manifest.fetch.as_ref().unwrap();
    let sel = format!("{{profile=\"{profile}\"}}");
    assert_eq!(
        one(&format!("sum(orca_etm_fetch_requests_total{sel})")),
        f.requests as f64
    );
    assert!(
        one(&format!(
            "sum(orca_etm_fetch_requests_total{{profile=\"{profile}\",status=\"429\"}})"
        )) >= 1.0
    );
    assert_eq!(
        one(&format!(
            "sum(orca_etm_run_findings{{profile=\"{profile}\",status=\"NEW\"}})"
        )),
        out.manifest.counts.findings_by_status["NEW"] as f64
    );
    let mid_run = one(&format!(
        "max_over_time(orca_etm_run_status{{profile=\"{profile}\",status=\"processing\"}}[5m])"
    ));
    assert_eq!(mid_run, 1.0, "Prometheus saw the run while it ran");

    // The rules loaded, and every one of them evaluates.
    let rules = http.json(&format!("http://{}/api/v1/rules", p.addr));
    let mut n = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            n += 1;
            assert_eq!(r["health"], "ok", "{r}");
        }
    }
    assert_eq!(n, 12);
    drop(server);
}

fn config_from(fake: &Fake, dir: &std::path::Path, extra: &str) -> pipeline::config::Config {
    config(&fake.url(), dir, extra)
}

#[test]
fn runs_pushed_to_a_real_pushgateway_reach_prometheus_and_fire_the_run_alerts() {
    let (Some(pg_bin), Some(prometheus)) = (
        prom::tool("prometheus-pushgateway"),
        prom::tool("prometheus"),
    ) else {
        return;
    };
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pg = prom::pushgateway(&pg_bin, dir.path());
    let http = Http::new();
    let profile = "pushed";
    let cfg_path = dir.path().join("orca-etm.toml");
    let sync = |fake: &Fake| {
        let text = format!(
            "profile = \"{profile}\"\n{}[metrics]\njob = \"orca-etm-cron\"\n",
            config_text(&fake.url(), dir.path(), "page_size = 100")
        );
        std::fs::write(&cfg_path, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_orca-etm"))
            .args(["sync", "--progress", "off", "--config"])
            .arg(&cfg_path)
            .args(["--pushgateway", &format!("http://{}", pg.addr)])
            .env("ORCA_API_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let pushed = |http: &Http| -> String {
        let (s, body) = http.get(&format!("http://{}/metrics", pg.addr)).unwrap();
        assert_eq!(s, 200);
        body
    };
    let series = |name: &str, labels: &str| {
        format!("{name}{{instance=\"\",job=\"orca-etm-cron\",profile=\"{profile}\"{labels}}}")
    };

    // A complete run: its snapshot, grouped by job and profile.
    let fake = Fake::synthetic(spec(), 0.0, "");
    let out = sync(&fake);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(fake);
    let body = pushed(&http);
    let status = |body: &str, s: &str| {
        prom::sample(body, &series(t::RUN_STATUS, &format!(",status=\"{s}\"")))
    };
    assert_eq!(status(&body, "complete"), Some(1.0));
    assert_eq!(status(&body, "processing"), Some(0.0));
    let last_success = prom::sample(&body, &series(t::RUN_LAST_SUCCESS, "")).unwrap();
    assert!(last_success > 1.7e9);
    assert_eq!(
        prom::sample(&body, &series(t::RUN_FINDINGS, ",status=\"NEW\"")),
        Some((spec().findings + spec().orphan_findings) as f64)
    );
    assert!(
        prom::sample(&body, &series(t::STAGE_ITEMS_RECEIVED, ",stage=\"parse\"")).unwrap() > 0.0
    );
    assert!(!body.contains(TOKEN));

    // A failed run (token refused): pushed all the same, the last success kept.
    let fake = Fake::synthetic(
        spec(),
        0.0,
        "[[faults]]\nkind = \"status\"\nstatus = 401\nat = 2\n",
    );
    let out = sync(&fake);
    assert_eq!(out.status.code(), Some(4));
    let body = pushed(&http);
    assert_eq!(status(&body, "failed"), Some(1.0));
    assert_eq!(status(&body, "complete"), Some(0.0));
    assert_eq!(
        prom::sample(&body, &series(t::RUN_LAST_SUCCESS, "")),
        Some(last_success),
        "only a complete run sets the last success"
    );
    assert_eq!(
        prom::sample(&body, &series(t::FETCH_REQUESTS, ",status=\"401\"")),
        Some(1.0)
    );

    // Prometheus scraping the Pushgateway: the run overview and the
    // failed-run alert work from the pushed snapshot.
    let rules = dashboards();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['{}']\n",
        rules.join("alerts.yml").display(),
        pg.addr
    );
    let p = prom::prometheus(&prometheus, &dir.path().join("prom"), &config);
    for (title, e) in dashboard_exprs()
        .into_iter()
        .filter(|(_, e)| !e.contains("rate(") && !e.contains("increase("))
    {
        let q = grafana_expr(&e, profile, "10m");
        eventually(&format!("{title}: {q}"), Duration::from_secs(20), || {
            let r = http.query(p.addr, &q).ok()?;
            (!r.is_empty()).then_some(())
        });
    }
    let alert = eventually("OrcaEtmRunFailed firing", Duration::from_secs(30), || {
        let v = http.json(&format!("http://{}/api/v1/alerts", p.addr));
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "OrcaEtmRunFailed" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["labels"]["profile"], profile);
    assert_eq!(alert["labels"]["job"], "orca-etm-cron");
}
