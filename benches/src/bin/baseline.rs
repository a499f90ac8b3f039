//! The baseline of the end-to-end bench: the way peer connectors pull Orca.
//!
//! Fetch every page of every query with an offset walk, parse each into
//! generic `serde_json::Value`s, keep every asset and finding in memory,
//! build every document at the end, write the file. Kept deliberately
//! plain: it is what orca-etm is measured against, not a second product.
//!
//! `baseline --url URL --token-env VAR --out FILE [--page-size N]`

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{json, Map, Value};

const MODELS: [&str; 6] = [
    "AwsEc2Instance",
    "AzureComputeVm",
    "GcpVmInstance",
    "VmwareVmInstance",
    "OciComputeVmInstance",
    "AliCloudEcsInstance",
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn v<'a>(item: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = item;
    for p in path {
        cur = &cur[*p];
    }
    cur
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = arg("--url").ok_or("--url")?;
    let token = std::env::var(arg("--token-env").unwrap_or("ORCA_API_TOKEN".into()))?;
    let out = arg("--out").ok_or("--out")?;
    let page_size: u64 = arg("--page-size").map_or(Ok(1000), |s| s.parse())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let query_url = format!("{}serving-layer/query", url);

    let fetch_all = |models: Vec<&str>| -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let mut rows = Vec::new();
        let mut offset = 0;
        loop {
            let body = json!({
                "query": {"models": models, "type": "object_set"},
                "limit": page_size, "start_at_index": offset,
                "order_by[]": ["id"], "select": [], "get_results_and_count": true,
                "full_graph_fetch": {"enabled": true}, "max_tier": 2
            });
            let text = rt.block_on(async {
                client
                    .post(&query_url)
                    .header("Authorization", format!("Token {token}"))
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await
            })?;
            let page: Value = serde_json::from_str(&text)?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            if data.is_empty() {
                return Ok(rows);
            }
            offset += data.len() as u64;
            rows.extend(data);
        }
    };

    let mut assets = Vec::new();
    for m in MODELS {
        assets.extend(fetch_all(vec![m])?);
    }
    let vulns = fetch_all(vec!["VulnerabilityV2"])?;

    let mut by_asset: HashMap<String, Vec<Value>> = HashMap::new();
    for f in vulns {
        let id = f["asset_unique_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let d = &f["data"];
        let sev = match d["CvssSeverity"]["value"]
            .as_str()
            .unwrap_or("")
            .to_uppercase()
            .as_str()
        {
            "CRITICAL" => 5,
            "HIGH" => 4,
            "MEDIUM" => 3,
            "LOW" => 2,
            "NONE" => 1,
            _ => 3,
        };
        by_asset.entry(id).or_default().push(json!({
            "externalFindingId": v(d, &["CVE", "data", "Id", "value"]),
            "name": v(d, &["CVE", "data", "PublicName", "value"]),
            "severity": sev,
            "status": "NEW",
            "description": d["Description"]["value"],
            "firstFoundOn": d["FirstSeen"]["value"],
            "findingType": {"vulnerability": {
                "cveId": v(d, &["CVE", "data", "Id", "value"]),
                "vendorId": f["id"],
                "cvss": {"vector": d["CvssVector"]["value"],
                         "cvss3Base": v(d, &["CVE", "data", "Cvss3Score", "value"])}}}
        }));
    }
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    for a in assets {
        let id = a["asset_unique_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let d = &a["data"];
        let mut doc = Map::new();
        doc.insert("externalAssetId".into(), json!(id));
        doc.insert("hostName".into(), d["Hostname"]["value"].clone());
        doc.insert("instanceId".into(), d["InstanceId"]["value"].clone());
        doc.insert("fqdn".into(), d["PublicDnsName"]["value"].clone());
        doc.insert(
            "operatingSystem".into(),
            json!({"name": d["DistributionName"]["value"], "version": d["DistributionVersion"]["value"]}),
        );
        doc.insert("softwares".into(), d["assetApplications"].clone());
        doc.insert(
            "finding".into(),
            json!(by_asset.remove(&id).unwrap_or_default()),
        );
        docs.insert(id, Value::Object(doc));
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    for (_, d) in docs {
        serde_json::to_writer(&mut f, &d)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}
