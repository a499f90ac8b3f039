//! The fetch stage against small scripted servers: auth, errors, retries,
//! timeouts, the rate limiter, cancellation.

mod fetch_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fetch_support::*;
use serde_json::json;
use stages::fetch::{run, run_at, FetchConfig, FetchError, VM_MODELS};
use stages::secret::Secret;
use tokio_util::sync::CancellationToken;

fn small_tenant(per_model: usize) -> Arc<Tenant> {
    let mut all = Vec::new();
    for m in VM_MODELS.iter().chain(["VulnerabilityV2"].iter()) {
        all.extend(items(m, per_model));
    }
    Arc::new(Tenant::new(all, 10_000))
}

async fn run_against(
    cfg: &FetchConfig,
) -> (Result<stages::fetch::FetchReport, FetchError>, Parsed) {
    let (tx, rx) = pipe();
    let parser = spawn_parser(rx);
    let r = run_at(cfg, &Secret::new(TOKEN), tx, CancellationToken::new(), NOW).await;
    (r, parser.await.unwrap())
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    assert!(!text.contains("SECRET-5f2b"), "token leaked: {text}");
}

#[tokio::test]
async fn sends_auth_header_json_body_and_reads_everything() {
    let t = small_tenant(1500);
    let fake = serve(Arc::new(move |r: &Req| t.answer(r))).await;
    let (r, parsed) = run_against(&config(&fake)).await;
    let rep = r.unwrap();
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.unique(), 7 * 1500);
    assert_eq!(parsed.ids.len(), 7 * 1500, "no row read twice");
    // Minimum: 2 pages per query, and no closing empty request.
    assert_eq!(rep.requests, 14);
    assert_eq!(rep.queries.len(), 7);
    for q in &rep.queries {
        assert_eq!(
            (q.total_items, q.unique_ids, q.pages),
            (Some(1500), 1500, 2),
            "{q:?}"
        );
    }
    for req in fake.requests() {
        assert_eq!(req.path, "/api/serving-layer/query");
        assert_eq!(req.auth.as_deref(), Some(format!("Token {TOKEN}").as_str()));
        assert_eq!(req.content_type.as_deref(), Some("application/json"));
        assert_eq!(req.body["get_results_and_count"], true);
        assert_eq!(req.body["max_tier"], 2);
        assert_eq!(req.body["full_graph_fetch"], json!({"enabled": true}));
        assert_eq!(req.limit(), 1000);
    }
    let reqs = fake.requests();
    let f: Vec<_> = reqs
        .iter()
        .filter(|r| r.model() == "VulnerabilityV2")
        .collect();
    assert_eq!(f[0].body["order_by[]"], json!(["id"]));
    assert_eq!(f[0].body["query"]["with"]["keys"], json!(["Inventory"]));
    let a = reqs.iter().find(|r| r.model() == "GcpVmInstance").unwrap();
    assert_eq!(a.body["order_by[]"], json!(["AssetUniqueId"]));
    // The report goes into the manifest: it must serialize.
    let s = serde_json::to_string(&rep).unwrap();
    assert!(s.contains("\"rate_limit_wait\""));
}

#[tokio::test]
async fn forbidden_is_fatal_with_orca_message_and_no_token() {
    let t = small_tenant(10);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n == 3 {
            json_reply(
                403,
                json!({"error": "Given token not valid for any token type"}),
            )
        } else {
            t.answer(r)
        }
    }))
    .await;
    let (r, _) = run_against(&config(&fake)).await;
    let e = r.unwrap_err();
    match &e {
        FetchError::Unauthorized { status, message } => {
            assert_eq!(*status, 403);
            assert_eq!(message, "Given token not valid for any token type");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(e
        .to_string()
        .contains("Given token not valid for any token type"));
    assert_no_token(&format!("{e} {e:?}"));
    // The run stopped: no request after the refusal (one may have been in flight).
    assert!(fake.requests().len() <= 5, "{}", fake.requests().len());
}

#[tokio::test]
async fn unauthorized_echoing_the_token_is_scrubbed() {
    let fake = serve(Arc::new(|r: &Req| {
        json_reply(
            401,
            json!({"message": format!("bad credentials: {}", r.auth.clone().unwrap_or_default())}),
        )
    }))
    .await;
    let (r, _) = run_against(&config(&fake)).await;
    let e = r.unwrap_err();
    assert!(
        matches!(e, FetchError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("bad credentials"));
    assert_no_token(&format!("{e} {e:?}"));
}

#[tokio::test]
async fn not_found_names_the_url() {
    let fake = serve(Arc::new(|_: &Req| {
        json_reply(404, json!({"message": "no route"}))
    }))
    .await;
    let (r, _) = run_against(&config(&fake)).await;
    match r.unwrap_err() {
        FetchError::NotFound { url } => {
            assert_eq!(url, format!("{}serving-layer/query", fake.base_url))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn config_errors_are_fatal_and_never_show_the_token() {
    let (tx, _rx) = pipe();
    let cfg = FetchConfig {
        domain: "http://127.0.0.1:9/api/".into(),
        ..FetchConfig::default()
    };
    let e = run(
        &cfg,
        &Secret::new(TOKEN),
        tx.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::Config(_)), "{e:?}");
    assert_no_token(&format!("{e} {e:?}"));
    let e = run(
        &FetchConfig::default(),
        &Secret::new(format!("{TOKEN}\r\n")),
        tx,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::Config(_)), "{e:?}");
    assert_no_token(&format!("{e} {e:?}"));
}

#[tokio::test]
async fn transport_errors_never_show_the_token() {
    // Nothing listens there: every attempt fails to connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = FetchConfig {
        domain: format!("http://{addr}/api"),
        allow_insecure_http: true,
        requests_per_second: 0.0,
        max_retries_per_request: 1,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        models: vec!["AwsEc2Instance".into()],
        ..FetchConfig::default()
    };
    let (tx, rx) = pipe();
    let _p = spawn_parser(rx);
    let e = run(&cfg, &Secret::new(TOKEN), tx, CancellationToken::new())
        .await
        .unwrap_err();
    // Nothing ever answered: the run stops at the first query to give up
    // instead of spending every other query's retries the same way.
    let FetchError::Unreachable { url, detail } = &e else {
        panic!("expected Unreachable, got {e:?}");
    };
    assert_eq!(url, &format!("http://{addr}/api/serving-layer/query"));
    assert!(detail.contains("2 attempts, last (connect)"), "{detail}");
    assert_no_token(&format!("{e} {e:?}"));
}

#[tokio::test]
async fn retry_after_is_honoured_and_pauses_every_query() {
    let t = small_tenant(1200);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n % 3 == 2 {
            with_header(
                json_reply(429, json!({"error": "Too many requests"})),
                "retry-after",
                "1",
            )
        } else {
            t.answer(r)
        }
    }))
    .await;
    let cfg = FetchConfig {
        models: vec!["AwsEc2Instance".into(), "AzureComputeVm".into()],
        concurrency: 2,
        // Spaced requests, so none is already in flight when a 429 comes back.
        requests_per_second: 10.0,
        // 429s are pacing, not failures: they must not need the run's budget.
        retry_budget: 0,
        ..config(&fake)
    };
    let (r, parsed) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(parsed.unique(), 3 * 1200);
    let reqs = fake.requests();
    let throttled: Vec<_> = reqs.iter().filter(|r| r.n % 3 == 2).collect();
    assert!(!throttled.is_empty());
    assert_eq!(
        rep.retries_by_cause.get("http_429").copied(),
        Some(throttled.len() as u64)
    );
    for t in throttled {
        // No request at all (from any query) until Retry-After has passed.
        if let Some(next) = reqs.iter().find(|r| r.n == t.n + 1) {
            let gap = next.at - t.at;
            assert!(
                gap >= Duration::from_secs(1),
                "request {} came {gap:?} after a 429",
                next.n
            );
        }
    }
    assert!(rep.rate_limit_wait >= Duration::from_millis(900));
}

#[tokio::test]
async fn retry_after_is_capped() {
    let t = small_tenant(5);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n == 0 {
            with_header(json_reply(503, json!({})), "retry-after", "3600")
        } else {
            t.answer(r)
        }
    }))
    .await;
    let cfg = FetchConfig {
        retry_after_cap: Duration::from_millis(200),
        models: vec!["AwsEc2Instance".into()],
        ..config(&fake)
    };
    let started = Instant::now();
    let (r, _) = run_against(&cfg).await;
    assert!(r.unwrap().complete);
    assert!(started.elapsed() < Duration::from_secs(5));
    let reqs = fake.requests();
    let ec2: Vec<_> = reqs
        .iter()
        .filter(|r| r.model() == "AwsEc2Instance")
        .collect();
    assert_eq!(ec2[0].n, 0);
    assert!(ec2[1].at - ec2[0].at >= Duration::from_millis(200));
}

#[tokio::test]
async fn retry_budget_exhausted_makes_queries_incomplete() {
    let fake = serve(Arc::new(|_: &Req| {
        json_reply(500, json!({"error": "boom"}))
    }))
    .await;
    let cfg = FetchConfig {
        max_retries_per_request: 10,
        retry_budget: 3,
        ..config(&fake)
    };
    let (r, parsed) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(!rep.complete);
    assert_eq!(rep.retries_by_cause.get("http_500"), Some(&3));
    assert_eq!(rep.retry_budget_left, 0);
    assert_eq!(rep.requests, 7 + 3);
    assert_eq!(rep.incomplete().count(), 7);
    assert!(rep
        .queries
        .iter()
        .any(|q| q.error.as_deref().unwrap_or("").contains("retry budget")));
    assert!(parsed.ids.is_empty());
}

#[tokio::test]
async fn dripping_server_hits_read_timeout_and_is_retried() {
    let t = small_tenant(20);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n == 0 {
            drip_reply(Duration::from_secs(20))
        } else {
            t.answer(r)
        }
    }))
    .await;
    let cfg = FetchConfig {
        read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(30),
        models: vec!["AwsEc2Instance".into()],
        ..config(&fake)
    };
    let started = Instant::now();
    let (r, parsed) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(rep.retries_by_cause.get("timeout"), Some(&1));
    assert_eq!(parsed.unique(), 40);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn malformed_page_is_retried_and_failure_status_fails_the_query() {
    let t = small_tenant(10);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.model() == "AwsEc2Instance" && r.n < 3 {
            // Truncated body: the parse stage says Malformed.
            return axum::response::IntoResponse::into_response((
                [("content-type", "application/json")],
                "{\"status\":\"success\",\"total_items\":10,\"data\":[{\"id\"",
            ));
        }
        if r.model() == "AzureComputeVm" {
            return json_reply(
                200,
                json!({"status": "failure", "error": "invalid limit 1000"}),
            );
        }
        t.answer(r)
    }))
    .await;
    let (r, parsed) = run_against(&config(&fake)).await;
    let rep = r.unwrap();
    assert!(!rep.complete);
    assert!(rep.retries_by_cause.get("malformed").copied().unwrap_or(0) >= 1);
    assert!(rep.query("AwsEc2Instance").unwrap().complete);
    let az = rep.query("AzureComputeVm").unwrap();
    assert!(!az.complete);
    assert!(az.error.as_deref().unwrap().contains("invalid limit 1000"));
    assert_eq!(rep.incomplete().count(), 1);
    assert_eq!(parsed.unique(), 6 * 10);
}

#[tokio::test]
async fn bad_request_names_the_field_and_other_queries_go_on() {
    let t = small_tenant(10);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.model() == "VulnerabilityV2" {
            json_reply(400, json!({"error": "Unknown field 'CvssSeverity'"}))
        } else {
            t.answer(r)
        }
    }))
    .await;
    let (r, parsed) = run_against(&config(&fake)).await;
    let rep = r.unwrap();
    assert!(!rep.complete);
    let v = rep.query("VulnerabilityV2").unwrap();
    assert!(!v.complete);
    assert!(
        v.error
            .as_deref()
            .unwrap()
            .contains("Unknown field 'CvssSeverity'"),
        "{v:?}"
    );
    assert_eq!(rep.incomplete().count(), 1);
    assert_eq!(parsed.unique(), 60);
    // A 400 is not retried.
    assert_eq!(rep.retries_by_cause.values().sum::<u64>(), 0);
}

#[tokio::test]
async fn request_rate_never_exceeds_the_limit() {
    let t = small_tenant(150);
    let fake = serve(Arc::new(move |r: &Req| t.answer(r))).await;
    let cfg = FetchConfig {
        requests_per_second: 10.0,
        page_size: 100,
        concurrency: 4,
        ..config(&fake)
    };
    let (r, parsed) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(rep.complete);
    assert_eq!(parsed.unique(), 7 * 150);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 14);
    let mut at: Vec<Instant> = reqs.iter().map(|r| r.at).collect();
    at.sort();
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(100),
            "gap {:?}",
            w[1] - w[0]
        );
    }
    assert!(rep.rate_limit_wait > Duration::ZERO);
}

#[tokio::test]
async fn cancellation_stops_the_run() {
    let fake = serve(Arc::new(|_: &Req| drip_reply(Duration::from_secs(5)))).await;
    let cfg = config(&fake);
    let (tx, rx) = pipe();
    let _p = spawn_parser(rx);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.cancel();
    });
    let started = Instant::now();
    let rep = run(&cfg, &Secret::new(TOKEN), tx, cancel).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    // The report says how far each query got: none was read through.
    assert!(rep.interrupted && !rep.complete, "{rep:?}");
    assert!(!rep.queries.is_empty());
    for q in &rep.queries {
        assert!(!q.complete, "{q:?}");
        assert_eq!(q.pages, 0, "{q:?}");
        assert_eq!(
            q.error.as_deref(),
            Some("interrupted before it was read"),
            "{q:?}"
        );
    }
}

#[tokio::test]
async fn dropped_ack_means_downstream_closed() {
    let t = small_tenant(10);
    let fake = serve(Arc::new(move |r: &Req| t.answer(r))).await;
    let (tx, rx) = pipe();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    tokio::spawn(async move {
        // Drops every page (and its ack) unanswered, as a shutting-down parser would.
        while let Some(p) = rx.recv_async().await {
            s2.fetch_add(1, Ordering::SeqCst);
            drop(p);
        }
    });
    let e = run(
        &config(&fake),
        &Secret::new(TOKEN),
        tx,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::DownstreamClosed), "{e:?}");
    assert!(seen.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn silent_server_hits_read_timeout_before_any_header() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let cfg = FetchConfig {
        domain: format!("http://{addr}/api/"),
        allow_insecure_http: true,
        requests_per_second: 0.0,
        read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(60),
        max_retries_per_request: 1,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        models: vec!["AwsEc2Instance".into()],
        ..FetchConfig::default()
    };
    let started = Instant::now();
    let (r, _) = run_against(&cfg).await;
    let e = r.unwrap_err();
    let FetchError::Unreachable { detail, .. } = &e else {
        panic!("expected Unreachable, got {e:?}");
    };
    assert!(detail.contains("2 attempts, last (timeout)"), "{detail}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_query_never_answered_after_orca_answered_another_is_only_incomplete() {
    // The first connection gets an empty page; every later one is held
    // silent. Orca was reachable, so the silent query is that query's
    // trouble: the run goes on and reports it incomplete.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut held = Vec::new();
        let mut first = true;
        while let Ok((mut sock, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let body = r#"{"status":"success","total_items":0,"data":[]}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            } else {
                held.push(sock);
            }
        }
    });
    let cfg = FetchConfig {
        domain: format!("http://{addr}/api/"),
        allow_insecure_http: true,
        requests_per_second: 0.0,
        read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(60),
        max_retries_per_request: 1,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        concurrency: 1,
        models: vec!["AwsEc2Instance".into()],
        ..FetchConfig::default()
    };
    let (r, _) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(!rep.complete);
    let assets = rep.query("AwsEc2Instance").unwrap();
    assert!(assets.complete, "{assets:?}");
    let findings = rep.incomplete().next().unwrap();
    assert_eq!(findings.model, "VulnerabilityV2");
    assert!(
        findings.error.as_deref().unwrap().contains("gave up"),
        "{findings:?}"
    );
    assert_eq!(rep.retries_by_cause.get("timeout"), Some(&1));
}

#[tokio::test]
async fn slow_but_steady_drip_hits_the_total_timeout() {
    let t = small_tenant(5);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n == 0 {
            // Never idle long enough for the read timeout, but never done.
            drip_reply(Duration::from_millis(50))
        } else {
            t.answer(r)
        }
    }))
    .await;
    let cfg = FetchConfig {
        read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_millis(600),
        models: vec!["AwsEc2Instance".into()],
        concurrency: 1,
        ..config(&fake)
    };
    let (r, parsed) = run_against(&cfg).await;
    let rep = r.unwrap();
    assert!(rep.complete, "{rep:#?}");
    assert_eq!(rep.retries_by_cause.get("timeout"), Some(&1));
    assert_eq!(parsed.unique(), 10);
}

#[tokio::test]
async fn an_error_body_with_a_byte_order_mark_is_read_as_json() {
    // Case 06's kind on another answer: Orca's words come out clean, not the
    // body's text with its braces and mark.
    let t = small_tenant(10);
    let fake = serve(Arc::new(move |r: &Req| {
        if r.n == 3 {
            raw_reply(
                403,
                b"\xEF\xBB\xBF{\"error\": \"Given token not valid for any token type\"}",
            )
        } else {
            t.answer(r)
        }
    }))
    .await;
    let (r, _) = run_against(&config(&fake)).await;
    match r.unwrap_err() {
        FetchError::Unauthorized { status, message } => {
            assert_eq!(status, 403);
            assert_eq!(message, "Given token not valid for any token type");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn the_registered_check_reads_a_count_behind_a_byte_order_mark() {
    let fake = serve(Arc::new(|_: &Req| {
        raw_reply(
            200,
            b"\xEF\xBB\xBF{\"status\": \"success\", \"total_items\": 42, \"data\": []}",
        )
    }))
    .await;
    let mut cfg = config(&fake);
    cfg.models = vec!["AwsEc2Instance".into()];
    cfg.requests_per_second = 0.0;
    let found = stages::fetch::check(&cfg, &Secret::new(TOKEN))
        .await
        .unwrap();
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|(_, said)| said == "42 items"),
        "{found:?}"
    );
}
