//! Payload profiles: how one ETM document becomes one `assetData[]` entry.
//!
//! The `identityAttributes`/`coreAttributes` split is public; the findings
//! block's name and shape Qualys gives on request, so each layout is a
//! named, versioned profile chosen in the config (`payload_profile`).
//! A profile never changes once released; a new layout is a new name.
//!
//! Every profile:
//! - `identityAttributes`: `sourceNativeKey` (the document's, else its
//!   `externalAssetId`), `hostName`, `fqdn`, `instanceUuid` (the
//!   document's `instanceUuid`, else its `instanceId`), `macAddress[]` and
//!   `ipAddress[]` (from `networkInterfaces[]`); absent values are left out.
//! - `coreAttributes`: the whole document except its findings.
//!
//! Profiles differ in the findings block:
//! - `csam-v1`: `findings`, each finding as in the ETM document.
//! - `csam-v1-flat`: `vulnerabilities`, each finding with the fields of
//!   `findingType.vulnerability` lifted to its top level (`findingType`
//!   dropped; a field already at the top level wins).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingShape {
    /// The ETM finding as is.
    Etm,
    /// `findingType.vulnerability.*` merged into the finding.
    FlatVulnerability,
}

#[derive(Debug, PartialEq, Eq)]
pub struct PayloadProfile {
    pub name: &'static str,
    /// Key of the findings block in each `assetData[]` entry.
    pub findings_key: &'static str,
    pub finding_shape: FindingShape,
}

pub const PROFILES: &[PayloadProfile] = &[
    PayloadProfile {
        name: "csam-v1",
        findings_key: "findings",
        finding_shape: FindingShape::Etm,
    },
    PayloadProfile {
        name: "csam-v1-flat",
        findings_key: "vulnerabilities",
        finding_shape: FindingShape::FlatVulnerability,
    },
];

/// One asset, laid out for the request body.
#[derive(Debug, Clone)]
pub struct AssetEntry {
    /// `identityAttributes.sourceNativeKey`: what `assetsError` names.
    pub key: String,
    /// The document's `externalAssetId` (the ledger's key for it).
    pub asset_id: String,
    /// The `assetData[]` element, serialized.
    pub json: Vec<u8>,
    pub findings: usize,
    /// Times sent and refused so far.
    pub refusals: u32,
}

impl PayloadProfile {
    pub fn by_name(name: &str) -> Option<&'static PayloadProfile> {
        PROFILES.iter().find(|p| p.name == name)
    }

    pub fn names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.name).collect()
    }

    /// Start the `assetData[]` entry of a document from its asset part.
    pub fn begin(&'static self, asset_id: &str, asset: &[u8]) -> Result<EntryBuilder, String> {
        let Value::Object(core) =
            serde_json::from_slice::<Value>(asset).map_err(|e| e.to_string())?
        else {
            return Err("the asset is not a JSON object".into());
        };
        let identity = identity(&core, asset_id);
        let key = identity
            .get("sourceNativeKey")
            .and_then(Value::as_str)
            .unwrap_or(asset_id)
            .to_string();
        let mut json = Vec::with_capacity(asset.len() + 512);
        json.extend_from_slice(b"{\"identityAttributes\":");
        serde_json::to_writer(&mut json, &identity).map_err(|e| e.to_string())?;
        // The asset part as rendered: no second copy of it in values.
        json.extend_from_slice(b",\"coreAttributes\":");
        json.extend_from_slice(asset);
        json.extend_from_slice(b",\"");
        json.extend_from_slice(self.findings_key.as_bytes());
        json.extend_from_slice(b"\":[");
        Ok(EntryBuilder {
            profile: self,
            entry: AssetEntry {
                key,
                asset_id: asset_id.to_string(),
                json,
                findings: 0,
                refusals: 0,
            },
        })
    }

    /// The `assetData[]` entry of one whole ETM document (tests, tools).
    pub fn asset_entry(&'static self, asset_id: &str, doc: &[u8]) -> Result<AssetEntry, String> {
        let (asset, findings) = crate::sink::split_document(doc)?;
        let mut b = self.begin(asset_id, &asset)?;
        for f in &findings {
            b.finding(f)?;
        }
        Ok(b.finish())
    }
}

/// An `assetData[]` entry being built, finding by finding.
pub struct EntryBuilder {
    profile: &'static PayloadProfile,
    entry: AssetEntry,
}

impl EntryBuilder {
    pub fn finding(&mut self, finding: &[u8]) -> Result<(), String> {
        let json = &mut self.entry.json;
        if self.entry.findings > 0 {
            json.push(b',');
        }
        match self.profile.finding_shape {
            FindingShape::Etm => json.extend_from_slice(finding),
            FindingShape::FlatVulnerability => {
                let f: Value = serde_json::from_slice(finding).map_err(|e| e.to_string())?;
                serde_json::to_writer(&mut *json, &flatten(f)).map_err(|e| e.to_string())?;
            }
        }
        self.entry.findings += 1;
        Ok(())
    }

    pub fn finish(mut self) -> AssetEntry {
        self.entry.json.extend_from_slice(b"]}");
        self.entry
    }
}

fn identity(doc: &Map<String, Value>, asset_id: &str) -> Map<String, Value> {
    let mut id = Map::new();
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
    };
    let key = text("sourceNativeKey")
        .or_else(|| text("externalAssetId"))
        .unwrap_or_else(|| Value::String(asset_id.to_string()));
    id.insert("sourceNativeKey".into(), key);
    for (out, from) in [
        ("hostName", text("hostName")),
        ("fqdn", text("fqdn")),
        (
            "instanceUuid",
            text("instanceUuid").or_else(|| text("instanceId")),
        ),
    ] {
        if let Some(v) = from {
            id.insert(out.into(), v);
        }
    }
    let interfaces = doc
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (out, field) in [("macAddress", "macAddress"), ("ipAddress", "ipAddress")] {
        let list: Vec<Value> = interfaces
            .iter()
            .filter_map(|i| i.get(field))
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
            .collect();
        if !list.is_empty() {
            id.insert(out.into(), Value::Array(list));
        }
    }
    id
}

fn flatten(finding: Value) -> Value {
    let Value::Object(mut f) = finding else {
        return finding;
    };
    if let Some(Value::Object(mut t)) = f.remove("findingType") {
        if let Some(Value::Object(v)) = t.remove("vulnerability") {
            for (k, val) in v {
                f.entry(k).or_insert(val);
            }
        }
    }
    Value::Object(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOC: &str = r#"{"externalAssetId":"vm_1","sourceNativeKey":"vm_1","source":"Orca Security","hostName":"web-1","instanceId":"i-0a","fqdn":"ec2.example","networkInterfaces":[{"macAddress":"0a:1b","ipAddress":"10.0.0.1"},{"ipAddress":"3.91.10.20"}],"finding":[{"externalFindingId":"CVE-1","status":"NEW","severity":5,"findingType":{"vulnerability":{"cveId":"CVE-1","vendorId":"f-1","cvss":{"cvss3Base":10.0}}}}]}"#;

    #[test]
    fn csam_v1_splits_identity_core_and_findings() {
        let p = PayloadProfile::by_name("csam-v1").unwrap();
        let e = p.asset_entry("vm_1", DOC.as_bytes()).unwrap();
        assert_eq!(e.key, "vm_1");
        assert_eq!(e.findings, 1);
        let got: Value = serde_json::from_slice(&e.json).unwrap();
        let doc: Value = serde_json::from_str(DOC).unwrap();
        assert_eq!(
            got["identityAttributes"],
            json!({"sourceNativeKey":"vm_1","hostName":"web-1","fqdn":"ec2.example","instanceUuid":"i-0a",
                   "macAddress":["0a:1b"],"ipAddress":["10.0.0.1","3.91.10.20"]})
        );
        let mut core = doc.clone();
        let findings = core.as_object_mut().unwrap().remove("finding").unwrap();
        assert_eq!(got["coreAttributes"], core);
        assert_eq!(got["findings"], findings);
        assert_eq!(got.as_object().unwrap().len(), 3);
    }

    #[test]
    fn csam_v1_flat_lifts_the_vulnerability_fields() {
        let p = PayloadProfile::by_name("csam-v1-flat").unwrap();
        let e = p.asset_entry("vm_1", DOC.as_bytes()).unwrap();
        let got: Value = serde_json::from_slice(&e.json).unwrap();
        assert!(got.get("findings").is_none());
        assert_eq!(
            got["vulnerabilities"],
            json!([{"externalFindingId":"CVE-1","status":"NEW","severity":5,"cveId":"CVE-1","vendorId":"f-1","cvss":{"cvss3Base":10.0}}])
        );
    }

    #[test]
    fn an_orphan_document_is_keyed_by_its_asset_id() {
        let p = PayloadProfile::by_name("csam-v1").unwrap();
        let e = p
            .asset_entry("vm_9", br#"{"externalAssetId":"vm_9","finding":[]}"#)
            .unwrap();
        let got: Value = serde_json::from_slice(&e.json).unwrap();
        assert_eq!(got["identityAttributes"], json!({"sourceNativeKey":"vm_9"}));
        assert_eq!(got["findings"], json!([]));
        assert!(p.asset_entry("x", b"[1]").is_err());
        assert!(p.asset_entry("x", b"{\"finding\":3}").is_err());
        assert!(PayloadProfile::by_name("csam-v2").is_none());
    }
}
