//! A small tenant held as Orca items, to be changed between runs and served
//! by the fake Orca as recorded pages.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

/// Host assets and findings by id, in the nested item shape.
#[derive(Clone, Debug, Default)]
pub struct Items {
    /// asset unique id → item.
    pub assets: BTreeMap<String, Value>,
    /// finding id → item.
    pub findings: BTreeMap<String, Value>,
}

pub fn asset_uid(n: usize) -> String {
    format!("vm_123456789012_i-{n:017x}")
}

pub fn finding_id(asset: usize, k: usize) -> String {
    format!("f{asset:07x}-{k:04x}-4000-8000-000000000000")
}

pub fn cve(asset: usize, k: usize) -> String {
    format!("CVE-2025-{:05}", asset * 100 + k)
}

impl Items {
    /// `assets` EC2 assets with `per_asset` findings each.
    pub fn generate(assets: usize, per_asset: usize) -> Items {
        let mut t = Items::default();
        for a in 0..assets {
            t.add_asset(a);
            for k in 0..per_asset {
                t.add_finding(a, k);
            }
        }
        t
    }

    pub fn add_asset(&mut self, a: usize) {
        let uid = asset_uid(a);
        self.assets.insert(
            uid.clone(),
            json!({
                "id": format!("a{a:07x}-0000-4000-8000-000000000000"),
                "name": format!("host-{a}"),
                "type": "AwsEc2Instance",
                "asset_unique_id": uid,
                "data": {
                    "Hostname": {"value": format!("host-{a}")},
                    "InstanceId": {"value": format!("i-{a:017x}")},
                    "CloudAccount": {"type": "CloudAccount", "data": {"CloudProvider": {"value": "aws"}}},
                    "DistributionName": {"value": "Ubuntu"},
                    "DistributionVersion": {"value": "22.04"}
                }
            }),
        );
    }

    pub fn add_finding(&mut self, a: usize, k: usize) {
        let id = finding_id(a, k);
        let severity = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"][k % 5];
        self.findings.insert(
            id.clone(),
            json!({
                "id": id,
                "name": format!("{} - pkg-{k}", cve(a, k)),
                "type": "VulnerabilityV2",
                "asset_unique_id": asset_uid(a),
                "data": {
                    "CVE": {"type": "CVE", "data": {
                        "Id": {"value": cve(a, k)},
                        "PublicName": {"value": format!("{} - pkg-{k}", cve(a, k))},
                        "HasExploit": {"value": k.is_multiple_of(2)}
                    }},
                    "CvssSeverity": {"value": severity},
                    "Description": {"value": format!("{} in pkg-{k}", cve(a, k))},
                    "FirstSeen": {"value": "2026-01-04T10:00:00+00:00"},
                    "PatchAvailable": {"value": "Yes"}
                }
            }),
        );
    }

    pub fn remove_finding(&mut self, a: usize, k: usize) {
        assert!(self.findings.remove(&finding_id(a, k)).is_some());
    }

    /// Change what a finding says (its content, not its key).
    pub fn change_finding(&mut self, a: usize, k: usize, description: &str) {
        let f = self.findings.get_mut(&finding_id(a, k)).unwrap();
        f["data"]["Description"] = json!({ "value": description });
    }

    /// Remove an asset and its findings.
    pub fn remove_asset(&mut self, a: usize) {
        let uid = asset_uid(a);
        assert!(self.assets.remove(&uid).is_some());
        self.findings
            .retain(|_, f| f["asset_unique_id"] != uid.as_str());
    }

    /// Model → answer bodies of `page_size` rows, as the fake serves them.
    pub fn pages(&self, page_size: usize) -> BTreeMap<String, Vec<Bytes>> {
        let mut out = BTreeMap::new();
        let assets: Vec<&Value> = self.assets.values().collect();
        let findings: Vec<&Value> = self.findings.values().collect();
        out.insert("AwsEc2Instance".to_string(), bodies(&assets, page_size));
        out.insert("VulnerabilityV2".to_string(), bodies(&findings, page_size));
        out
    }
}

fn bodies(items: &[&Value], page_size: usize) -> Vec<Bytes> {
    let total = items.len();
    items
        .chunks(page_size.max(1))
        .map(|chunk| {
            let body = json!({"status": "success", "total_items": total, "data": chunk});
            Bytes::from(serde_json::to_vec(&body).unwrap())
        })
        .collect()
}
