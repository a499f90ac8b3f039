//! Delivering into Qualys: whole runs against the fake Orca and the fake
//! gateway, with NDJSON, CSV and the webhook as sinks of one run. Under
//! each fault, what the gateway accepted is exactly the run's NDJSON, and
//! nothing was sent twice except after a failure answer.

mod common;

use std::path::Path;
use std::time::Duration;

use common::gateway::*;
use common::*;
use fixtures::qualys::GatewayConfig;
use fixtures::tenant::TenantSpec;
use pipeline::config::Config;
use pipeline::manifest::RunStatus;
use pipeline::run::RunOutcome;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 21,
        assets: 40,
        findings: 400,
        ..TenantSpec::default()
    }
}

fn cfg(orca: &Fake, gw: &Gateway, dir: &Path, webhook_extra: &str) -> Config {
    let text = format!(
        "{}{}",
        config_text(&orca.url(), dir, ""),
        sinks_text(dir, &gw.url(), webhook_extra)
    );
    Config::parse(&text).unwrap()
}

/// The key of the `n`-th document of a clean run over `orca`.
fn asset_key(orca: &Fake, n: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start("", |_| {});
    let out = run(&cfg(orca, &gw, dir.path(), ""));
    assert_eq!(out.manifest.status, RunStatus::Complete);
    doc_key(&docs(&out_file(dir.path(), "etm-assets.ndjson"))[n])
}

/// One run, checked: complete, every sink reported, what Qualys accepted
/// is the NDJSON, no needless resend, CSV consistent with NDJSON.
fn run_and_check(gw: &Gateway, cfg: &Config, dir: &Path) -> RunOutcome {
    let out = run(cfg);
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir, "etm-assets.ndjson"));
    assert!(docs.len() >= 40);
    assert_accepted_equals(gw.gw(), &docs, &[]);
    assert_resent_only_after_failures(&gw.sync_calls());
    assert_eq!(
        csv_rows(&out_file(dir, "etm-findings.csv")),
        ndjson_rows(&docs)
    );
    let sinks: Vec<&str> = out
        .manifest
        .outputs
        .iter()
        .map(|o| o.sink.as_str())
        .collect();
    assert_eq!(sinks, ["ndjson", "csv", "qualys_webhook"]);
    let webhook = &out.manifest.outputs[2];
    assert_eq!(webhook.documents, docs.len() as u64);
    assert_eq!(webhook.details["accepted"], docs.len() as u64);
    // Every sink read the same shared batches; sink channels count KiB.
    let kib = &out.manifest.channels["sink_ndjson"]["sent_items"];
    assert!(kib.as_u64().unwrap() > 0);
    for s in ["sink_ndjson", "sink_csv", "sink_qualys_webhook"] {
        assert_eq!(out.manifest.stages[s]["items_in"], docs.len() as u64, "{s}");
        assert_eq!(&out.manifest.channels[s]["sent_items"], kib, "{s}");
    }
    out
}

#[test]
fn a_clean_run_delivers_the_ndjson_in_batches() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start("", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(&gw, &cfg(&orca, &gw, dir.path(), ""), dir.path());
    let calls = gw.sync_calls();
    let docs = out.manifest.counts.assets as usize;
    // Batches of 5, all accepted at the first try, one token.
    assert_eq!(calls.len(), docs.div_ceil(5));
    assert!(calls.iter().all(|c| c.status == 200 && c.assets.len() <= 5));
    assert_eq!(gw.gw().tokens_issued(), 1);
    // One request in flight: no call started before the previous ended.
    for w in calls.windows(2) {
        assert!(
            w[1].start >= w[0].end,
            "calls {} and {} overlap",
            w[0].sync_no,
            w[1].sync_no
        );
    }
    let webhook = &out.manifest.outputs[2];
    assert_eq!(webhook.dead_letters, 0);
    assert_eq!(webhook.details["requests"], calls.len() as u64 + 1);
    // Every document went once, so the bodies hold at least the NDJSON's bytes less the newlines.
    let ndjson_bytes = out.manifest.outputs[0].bytes;
    assert!(
        webhook.bytes > ndjson_bytes - docs as u64,
        "{} vs {ndjson_bytes}",
        webhook.bytes
    );
    assert!(webhook
        .location
        .ends_with("/rest/2.0/am/connector/asset/data/sync"));
    let dead = std::fs::read_to_string(out_file(dir.path(), "qualys_webhook-dead-letters.ndjson"))
        .unwrap();
    assert_eq!(dead, "");
}

#[test]
fn batches_are_cut_by_bytes_too() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start("", |_| {});
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(
        &orca,
        &gw,
        dir.path(),
        "batch_assets = 50\nbatch_bytes = 8192",
    );
    run_and_check(&gw, &cfg, dir.path());
    let calls = gw.sync_calls();
    // 40+ documents of a few KiB each: far more calls than 50 per batch gives.
    assert!(calls.len() > 4, "{} calls", calls.len());
    assert!(calls.iter().any(|c| c.assets.len() > 1));
}

#[test]
fn an_expired_jwt_mid_run_is_refreshed_once_and_the_batch_resent() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    // No `exp` in the token: the sink cannot see the expiry coming.
    let gw = Gateway::start(
        "[[faults]]\nkind = \"expire_tokens\"\nat = 3\n[[faults]]\nkind = \"expire_tokens\"\nat = 7\n",
        |c| c.jwt_exp_claim = false,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(&gw, &cfg(&orca, &gw, dir.path(), ""), dir.path());
    let calls = gw.sync_calls();
    let expired: Vec<u64> = calls
        .iter()
        .filter(|c| c.reason == "expired token")
        .map(|c| c.sync_no)
        .collect();
    assert_eq!(expired, [3, 7]);
    assert_eq!(gw.gw().tokens_issued(), 3);
    // The call after each 401 carries the same assets.
    for n in [3usize, 7] {
        assert_eq!(calls[n - 1].assets, calls[n].assets);
        assert_eq!(calls[n].status, 200);
    }
    let w = &out.manifest.outputs[2].details;
    assert_eq!(w["token_refreshes"], 3);
    assert_eq!(w["retries_unauthorized"], 2);
}

#[test]
fn a_jwt_is_replaced_before_it_expires() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    // Tokens live 1.2 s and say so; each call takes 60 ms.
    let gw = Gateway::start("", |c| {
        c.jwt_ttl = Duration::from_millis(1200);
        c.latency = Duration::from_millis(60);
    });
    let dir = tempfile::tempdir().unwrap();
    run_and_check(
        &gw,
        &cfg(&orca, &gw, dir.path(), "batch_assets = 2"),
        dir.path(),
    );
    let calls = gw.sync_calls();
    assert!(calls.len() >= 20);
    assert!(calls.iter().all(|c| c.status == 200), "a call was refused");
    assert!(gw.gw().tokens_issued() >= 2, "the token was never replaced");
}

#[test]
fn conflicts_are_retried() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start(
        "[[faults]]\nkind = \"status\"\nstatus = 409\nat = 2\n[[faults]]\nkind = \"status\"\nstatus = 409\nfrom = 5\nto = 7\n",
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(&gw, &cfg(&orca, &gw, dir.path(), ""), dir.path());
    assert_eq!(gw.gw().faults_fired(), [1, 3]);
    assert_eq!(out.manifest.outputs[2].details["retries_http_409"], 4);
    // Never a real overlap: one request in flight.
    assert!(gw.sync_calls().iter().all(|c| c.reason != "overlap"));
}

#[test]
fn a_429_storm_is_waited_out() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start(
        "[[faults]]\nkind = \"status\"\nstatus = 429\nfrom = 2\nto = 7\nto_wait_sec = 0.05\n",
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(
        &gw,
        &cfg(&orca, &gw, dir.path(), "max_retries = 8"),
        dir.path(),
    );
    assert_eq!(gw.gw().faults_fired(), [6]);
    let calls = gw.sync_calls();
    // The storm's calls carried one batch, sent until accepted.
    assert!(calls[1..7]
        .iter()
        .all(|c| c.status == 429 && c.assets == calls[1].assets));
    assert_eq!(calls[7].status, 200);
    assert_eq!(calls[7].assets, calls[1].assets);
    // Each retry waited at least what the gateway asked.
    for w in calls[1..8].windows(2) {
        assert!(w[1].start - w[0].end >= Duration::from_millis(50));
    }
    let d = &out.manifest.outputs[2].details;
    assert_eq!(d["retries_http_429"], 6);
    assert_eq!(d["rate_limit_waits"], 6);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start(
        "[[faults]]\nkind = \"status\"\nstatus = 503\nevery = 3\ntimes = 4\n[[faults]]\nkind = \"status\"\nstatus = 500\nat = 1\n",
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(&gw, &cfg(&orca, &gw, dir.path(), ""), dir.path());
    assert_eq!(gw.gw().faults_fired(), [4, 1]);
    assert_eq!(out.manifest.outputs[2].details["retries_http_5xx"], 5);
}

#[test]
fn refused_assets_are_retried_in_later_batches() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    // Every asset whose hash says so is refused once, then accepted.
    let gw = Gateway::start(
        "[[faults]]\nkind = \"asset_error\"\nevery_nth_asset = 3\ntimes = 1\nmessage = \"identification failed\"\n",
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(&gw, &cfg(&orca, &gw, dir.path(), ""), dir.path());
    let refused: usize = gw.sync_calls().iter().map(|c| c.refused.len()).sum();
    assert!(
        refused >= 5,
        "only {refused} refusals: the fault hardly fired"
    );
    assert_eq!(out.manifest.outputs[2].dead_letters, 0);
}

#[test]
fn an_asset_refused_every_time_becomes_a_dead_letter_with_the_reason() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let victim = asset_key(&orca, 7);
    let gw = Gateway::start(
        &format!("[[faults]]\nkind = \"asset_error\"\nassets = [{victim:?}]\nmessage = \"duplicate instance id\"\n"),
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&cfg(&orca, &gw, dir.path(), "asset_retries = 2"));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    assert_accepted_equals(gw.gw(), &docs, &[&victim]);
    assert_resent_only_after_failures(&gw.sync_calls());
    // Sent three times (the first and two retries), refused each time.
    let sent: Vec<_> = gw
        .sync_calls()
        .into_iter()
        .filter(|c| c.assets.contains(&victim))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|c| c.refused == [victim.clone()]));
    let webhook = &out.manifest.outputs[2];
    assert_eq!(webhook.dead_letters, 1);
    let file = webhook.dead_letter_file.as_deref().unwrap();
    assert!(file.ends_with("qualys_webhook-dead-letters.ndjson"));
    let lines = common::docs(Path::new(file));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["asset_id"], victim.as_str());
    assert_eq!(lines[0]["reason"], "duplicate instance id");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["sink"], "qualys_webhook");

    // The ledger forgot the undelivered document: a delta run over the
    // unchanged tenant, to a gateway that now takes it, sends it and only it.
    let healthy = Gateway::start("", |_| {});
    let mut delta = cfg(&orca, &healthy, dir.path(), "");
    delta.delta = true;
    let again = run(&delta);
    assert_eq!(again.manifest.status, RunStatus::Complete);
    assert!(again.manifest.delta);
    let sent: Vec<String> = healthy
        .sync_calls()
        .into_iter()
        .flat_map(|c| c.assets)
        .collect();
    assert_eq!(sent, std::slice::from_ref(&victim));
    assert_eq!(again.manifest.counts.assets, 1);
}

#[test]
fn an_asset_that_spoils_its_batch_is_found_by_halving_and_dead_lettered() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let victim = asset_key(&orca, 20);
    // Any request holding the victim is refused whole with 400.
    let gw = Gateway::start(
        &format!("[[faults]]\nkind = \"bad_asset\"\nassets = [{victim:?}]\nmessage = \"os is not a string\"\n"),
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&cfg(&orca, &gw, dir.path(), "batch_assets = 16"));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    // Everything else arrived, once each (resent only after the 400s).
    assert_accepted_equals(gw.gw(), &docs, &[&victim]);
    let calls = gw.sync_calls();
    assert_resent_only_after_failures(&calls);
    // The victim's batch of 16 halves to 8, 4, 2, 1 (five 400s, four
    // halvings), and the halves beside it go through.
    let refused: Vec<_> = calls.iter().filter(|c| c.status == 400).collect();
    assert_eq!(
        refused.len(),
        5,
        "{:?}",
        refused.iter().map(|c| c.assets.len()).collect::<Vec<_>>()
    );
    assert_eq!(
        refused.iter().map(|c| c.assets.len()).collect::<Vec<_>>(),
        [16, 8, 4, 2, 1]
    );
    assert!(refused.iter().all(|c| c.assets.contains(&victim)));
    let webhook = &out.manifest.outputs[2];
    assert_eq!(webhook.dead_letters, 1);
    assert_eq!(webhook.details["bisections"], 4);
    assert_eq!(webhook.details["accepted"], docs.len() as u64 - 1);
    let file = webhook.dead_letter_file.as_deref().unwrap();
    let lines = common::docs(Path::new(file));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["asset_id"], victim.as_str());
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the gateway refused the asset alone as a bad request (HTTP 400")
            && reason.contains("os is not a string"),
        "{reason}"
    );
}

#[test]
fn a_gateway_that_refuses_every_request_fails_the_sink_without_halving_the_run_away() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    // Every asset is "bad": the fault is the request's, not an asset's.
    let gw = Gateway::start(
        "[[faults]]\nkind = \"bad_asset\"\nevery_nth_asset = 1\n",
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&cfg(&orca, &gw, dir.path(), "batch_assets = 8"));
    assert_eq!(out.manifest.status, RunStatus::Failed);
    let error = out.manifest.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("qualys_webhook")
            && error.contains("refused every request as bad")
            && error.contains("HTTP 400"),
        "{error}"
    );
    assert!(gw.gw().accepted().is_empty());
    // Only the first batch was taken apart, and only until three lone
    // assets were refused alike: 8, 4, 2, 1, 1, 2, 1 (not the whole tree
    // of 2·8 − 1 = 15 requests), then the sink stopped.
    let calls = gw.sync_calls();
    let sizes: Vec<usize> = calls.iter().map(|c| c.assets.len()).collect();
    assert_eq!(sizes, [8, 4, 2, 1, 1, 2, 1]);
    assert!(calls.iter().all(|c| c.status == 400));
}

#[test]
fn the_call_budget_is_never_exceeded_the_sink_waits() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start("", |c| {
        c.calls_per_window = 5;
        c.window = Duration::from_secs(1);
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run_and_check(
        &gw,
        &cfg(&orca, &gw, dir.path(), "batch_assets = 4"),
        dir.path(),
    );
    let calls = gw.sync_calls();
    assert!(
        calls.len() > 10,
        "the run needs more than two windows: {}",
        calls.len()
    );
    assert!(
        calls.iter().all(|c| c.status == 200),
        "{:?}",
        calls.iter().find(|c| c.status != 200)
    );
    let mut per_window: std::collections::BTreeMap<u128, u64> = Default::default();
    for c in &calls {
        *per_window
            .entry(c.start.as_nanos() / 1_000_000_000)
            .or_default() += 1;
    }
    assert!(per_window.values().all(|n| *n <= 5), "{per_window:?}");
    assert!(out.manifest.outputs[2].details["rate_limit_waits"] >= 2);
}

#[test]
fn the_flat_profile_is_what_the_gateway_is_told_to_expect() {
    let orca = Fake::synthetic(spec(), 0.0, "");
    let gw = Gateway::start("", |c: &mut GatewayConfig| {
        c.findings_key = "vulnerabilities".into()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run(&cfg(
        &orca,
        &gw,
        dir.path(),
        "payload_profile = \"csam-v1-flat\"",
    ));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    let accepted = gw.gw().accepted();
    assert_eq!(accepted.len(), docs.len());
    for d in &docs {
        let a = &accepted[&doc_key(d)];
        let findings = a.findings.as_array().unwrap();
        assert_eq!(findings.len(), d["finding"].as_array().unwrap().len());
        for (got, f) in findings.iter().zip(d["finding"].as_array().unwrap()) {
            assert_eq!(
                got["vendorId"],
                f["findingType"]["vulnerability"]["vendorId"]
            );
            assert!(got.get("findingType").is_none());
        }
    }
}
