//! The webhook sink against the fake gateway, without the pipeline: the
//! answers that must stop it, and 413 splitting.

use std::path::Path;
use std::time::Duration;

use fixtures::qualys::{self, FakeQualys, GatewayConfig, GatewayFaults};
use stages::secret::Secret;
use stages::sink::qualys::{Credentials, WebhookConfig};
use stages::sink::{write_document, QualysWebhookSink, Sink, SinkError};

const PW: &str = "pw-3e0c1b7d-do-not-print";

struct Gw {
    rt: tokio::runtime::Runtime,
    gw: Option<FakeQualys>,
}

impl Gw {
    fn start(faults: &str) -> Gw {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let gw = rt
            .block_on(qualys::start(GatewayConfig {
                password: PW.into(),
                faults: GatewayFaults::from_toml(faults).unwrap(),
                ..GatewayConfig::default()
            }))
            .unwrap();
        Gw { rt, gw: Some(gw) }
    }
    fn gw(&self) -> &FakeQualys {
        self.gw.as_ref().unwrap()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(g) = self.gw.take() {
            self.rt.block_on(g.shutdown());
        }
    }
}

fn sink(
    gw: &Gw,
    dir: &Path,
    password: &str,
    tune: impl FnOnce(&mut WebhookConfig),
) -> QualysWebhookSink {
    let mut cfg = WebhookConfig {
        gateway: gw.gw().base_url(),
        allow_insecure_http: true,
        connector_uuid: gw.gw().config().connector_uuid.clone(),
        batch_assets: 2,
        max_retries: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..WebhookConfig::default()
    };
    tune(&mut cfg);
    let creds = Credentials {
        username: "qualys-user".into(),
        password: Secret::new(password),
    };
    QualysWebhookSink::create(&cfg, creds, dir, stages::telemetry::Scope::new("test")).unwrap()
}

fn doc(i: usize) -> (String, Vec<u8>) {
    let id = format!("vm_{i}");
    let d =
        format!(r#"{{"externalAssetId":"{id}","hostName":"h{i}","finding":[{{"status":"NEW"}}]}}"#);
    (id, d.into_bytes())
}

fn write_all(s: &mut QualysWebhookSink, n: usize) -> Result<(), SinkError> {
    for i in 0..n {
        let (id, d) = doc(i);
        write_document(s, &id, &d)?;
    }
    Ok(())
}

#[test]
fn refused_credentials_stop_the_sink_without_showing_the_password() {
    let gw = Gw::start("");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), "wrong-password", |_| {});
    let e = write_all(&mut s, 2).unwrap_err().to_string();
    assert!(
        e.contains("/auth answered HTTP 401") && e.contains("check the username"),
        "{e}"
    );
    assert!(!e.contains("wrong-password"));
    assert_eq!(
        gw.gw().calls().len(),
        1,
        "credentials refused are not retried"
    );
}

#[test]
fn a_token_refused_right_after_login_stops_the_sink() {
    let gw = Gw::start("[[faults]]\nkind = \"expire_tokens\"\n");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), PW, |_| {});
    let e = write_all(&mut s, 2).unwrap_err().to_string();
    assert!(e.contains("refused a fresh token"), "{e}");
    // Login, call (401), login again, call (401): once, not forever.
    assert_eq!(gw.gw().tokens_issued(), 2);
    assert_eq!(gw.gw().calls().len(), 4);
}

/// Each sync call's (asset count, status), in order.
fn sync_calls(gw: &Gw) -> Vec<(usize, u16)> {
    gw.gw()
        .calls()
        .iter()
        .filter(|c| c.sync_no > 0)
        .map(|c| (c.assets.len(), c.status))
        .collect()
}

#[test]
fn a_wrong_connector_is_not_retried_and_the_gateway_says_why() {
    let gw = Gw::start("");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), PW, |c| {
        c.connector_uuid = "0d9f3a51-2b7c-4e1a-9d3e-8c6b5a4f3e21".into()
    });
    let e = write_all(&mut s, 2).unwrap_err().to_string();
    assert!(
        e.contains("HTTP 400") && e.contains("unknown connectorUuid"),
        "{e}"
    );
    // /auth, then the batch of two and its halves, each once (a 400 is
    // never retried as such); nothing accepted, so the sink stops rather
    // than dead-letter the assets.
    let sync: Vec<(usize, u16)> = sync_calls(&gw);
    assert_eq!(sync, [(2, 400), (1, 400), (1, 400)]);
    assert!(e.contains("refused every request as bad"), "{e}");
}

#[test]
fn a_wrong_connector_stops_after_three_lone_refusals_not_a_whole_bisection() {
    let gw = Gw::start("");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), PW, |c| {
        c.batch_assets = 100;
        c.connector_uuid = "0d9f3a51-2b7c-4e1a-9d3e-8c6b5a4f3e21".into()
    });
    let e = write_all(&mut s, 100).unwrap_err().to_string();
    assert!(e.contains("refused every request as bad"), "{e}");
    assert!(e.contains("unknown connectorUuid"), "{e}");
    // Down the first halves to a lone asset, then its neighbours: three
    // lone refusals alike and nothing accepted. A whole bisection would
    // have taken 199 calls.
    let sizes: Vec<usize> = sync_calls(&gw).iter().map(|c| c.0).collect();
    assert_eq!(sizes, [100, 50, 25, 12, 6, 3, 1, 2, 1, 1]);
    assert!(sync_calls(&gw).iter().all(|c| c.1 == 400));
    assert!(gw.gw().accepted().is_empty());
}

#[test]
fn too_large_splits_the_batch_and_dead_letters_a_lone_asset() {
    // Calls 1 (4 assets) and 2 (the first half) are too large; the first
    // half splits into two lone assets: call 3 too large again (dead
    // letter), call 4 accepted; call 5 takes the second half.
    let gw = Gw::start("[[faults]]\nkind = \"status\"\nstatus = 413\nfrom = 1\nto = 3\n");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), PW, |c| c.batch_assets = 4);
    write_all(&mut s, 4).unwrap();
    let report = Box::new(s).commit().unwrap();
    let sizes: Vec<(usize, u16)> = sync_calls(&gw);
    assert_eq!(sizes, [(4, 413), (2, 413), (1, 413), (1, 200), (2, 200)]);
    assert_eq!(report.dead_letters, 1);
    assert_eq!(
        gw.gw().accepted().keys().collect::<Vec<_>>(),
        ["vm_1", "vm_2", "vm_3"]
    );
    let dead =
        std::fs::read_to_string(dir.path().join("qualys_webhook-dead-letters.ndjson")).unwrap();
    assert!(
        dead.contains("\"asset_id\":\"vm_0\"") && dead.contains("413"),
        "{dead}"
    );
}

#[test]
fn nothing_is_sent_before_a_batch_fills_and_commit_sends_the_rest() {
    let gw = Gw::start("");
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(&gw, dir.path(), PW, |c| c.batch_assets = 10);
    write_all(&mut s, 3).unwrap();
    assert!(gw.gw().calls().is_empty());
    let r = Box::new(s).commit().unwrap();
    assert_eq!(r.documents, 3);
    assert_eq!(gw.gw().accepted().len(), 3);
    assert_eq!(gw.gw().calls().len(), 2);
}
