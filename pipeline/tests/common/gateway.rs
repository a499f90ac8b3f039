//! A fake Qualys gateway beside the fake Orca, configs with several sinks,
//! and the checks the webhook tests share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fixtures::qualys::{FakeQualys, GatewayCall, GatewayConfig, GatewayFaults};
use serde_json::Value;

pub const PASSWORD: &str = "qualys-pw-7c1e9a40-never-print-me";
pub const USER: &str = "orca-etm-user";
pub const CONNECTOR: &str = "0d9f3a51-2b7c-4e1a-9d3e-8c6b5a4f3e21";

pub struct Gateway {
    pub rt: tokio::runtime::Runtime,
    pub gw: Option<FakeQualys>,
}

impl Gateway {
    /// A gateway for this suite's user, with `faults` (TOML) and `tune`
    /// applied to its config.
    pub fn start(faults: &str, tune: impl FnOnce(&mut GatewayConfig)) -> Gateway {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = GatewayConfig {
            username: USER.into(),
            password: PASSWORD.into(),
            connector_uuid: CONNECTOR.into(),
            faults: GatewayFaults::from_toml(faults).unwrap(),
            ..GatewayConfig::default()
        };
        tune(&mut cfg);
        let gw = rt.block_on(fixtures::qualys::start(cfg)).unwrap();
        Gateway { rt, gw: Some(gw) }
    }

    pub fn gw(&self) -> &FakeQualys {
        self.gw.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.gw().base_url()
    }

    pub fn sync_calls(&self) -> Vec<GatewayCall> {
        self.gw()
            .calls()
            .into_iter()
            .filter(|c| c.endpoint == fixtures::qualys::Endpoint::Sync)
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(g) = self.gw.take() {
            self.rt.block_on(g.shutdown());
        }
    }
}

/// The password file every webhook test config names (written anew).
pub fn password_file(dir: &Path) -> PathBuf {
    let p = dir.join("qualys-password");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
    p
}

/// `[[sink]]` tables: NDJSON, CSV and the webhook to `gateway_url`, with
/// quick retries; `webhook_extra` lines go into the webhook's table.
pub fn sinks_text(dir: &Path, gateway_url: &str, webhook_extra: &str) -> String {
    let mut webhook: Vec<(String, String)> = [
        ("gateway", format!("{gateway_url:?}")),
        ("allow_insecure_http", "true".into()),
        ("connector_uuid", format!("{CONNECTOR:?}")),
        ("username", format!("{USER:?}")),
        (
            "password_file",
            format!("{:?}", password_file(dir).display().to_string()),
        ),
        ("batch_assets", "5".into()),
        ("backoff_base", "\"10ms\"".into()),
        ("backoff_max", "\"80ms\"".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for line in webhook_extra.lines().filter(|l| l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match webhook.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => webhook.push((k, v)),
        }
    }
    let webhook: String = webhook
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    format!(
        "[[sink]]\ntype = \"ndjson\"\n\n[[sink]]\ntype = \"csv\"\n\n[[sink]]\ntype = \"qualys_webhook\"\n{webhook}"
    )
}

/// The ETM document the gateway holds for each asset: its core attributes
/// with its findings back under `finding` (profile `csam-v1`).
pub fn accepted_documents(gw: &FakeQualys) -> BTreeMap<String, Value> {
    gw.accepted()
        .into_iter()
        .map(|(k, a)| {
            let mut doc = a.core.clone();
            doc["finding"] = a.findings.clone();
            (k, doc)
        })
        .collect()
}

pub fn doc_key(d: &Value) -> String {
    d.get("sourceNativeKey")
        .or_else(|| d.get("externalAssetId"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

/// What Qualys accepted is exactly the run's NDJSON (less `except`), each
/// document accepted once.
pub fn assert_accepted_equals(gw: &FakeQualys, ndjson: &[Value], except: &[&str]) {
    let accepted = accepted_documents(gw);
    let want: BTreeMap<String, &Value> = ndjson
        .iter()
        .map(|d| (doc_key(d), d))
        .filter(|(k, _)| !except.contains(&k.as_str()))
        .collect();
    assert_eq!(
        accepted.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "accepted assets differ from the NDJSON's"
    );
    for (k, doc) in &want {
        assert_eq!(&accepted[k], *doc, "asset {k} differs");
    }
    for (k, a) in gw.accepted() {
        assert_eq!(a.times, 1, "asset {k} accepted {} times", a.times);
    }
}

/// Every asset sent more than once was sent again only after a failure
/// answer: each call but its last was not a 2xx, or refused it.
pub fn assert_resent_only_after_failures(calls: &[GatewayCall]) {
    let mut by_key: BTreeMap<&str, Vec<&GatewayCall>> = BTreeMap::new();
    for c in calls {
        for k in &c.assets {
            by_key.entry(k).or_default().push(c);
        }
    }
    for (k, sent) in by_key {
        for c in &sent[..sent.len() - 1] {
            let failed = c.status != 200 || c.refused.iter().any(|r| r == k);
            assert!(
                failed,
                "asset {k} sent again after call {} accepted it ({})",
                c.sync_no, c.reason
            );
        }
    }
}

/// The CSV's (asset, finding, status) rows, and the NDJSON's.
pub fn csv_rows(path: &Path) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (a, f, s) = (
        col("externalAssetId"),
        col("findingVendorId"),
        col("status"),
    );
    let mut rows: Vec<_> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[a].to_string(), rec[f].to_string(), rec[s].to_string())
        })
        .collect();
    rows.sort();
    rows
}

pub fn ndjson_rows(docs: &[Value]) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for d in docs {
        let id = d["externalAssetId"].as_str().unwrap().to_string();
        let findings = d["finding"].as_array().unwrap();
        if findings.is_empty() {
            rows.push((id.clone(), String::new(), String::new()));
        }
        for f in findings {
            rows.push((
                id.clone(),
                f["findingType"]["vulnerability"]["vendorId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                f["status"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    rows.sort();
    rows
}
