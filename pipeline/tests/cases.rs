//! Every hostile input of `shared/cases/`, through the whole run, with the
//! outcome the cases README names.

mod common;

use common::*;
use pipeline::manifest::RunStatus;
use serde_json::{json, Value};

fn run_case(
    model: &str,
    file: &str,
) -> (tempfile::TempDir, Vec<Value>, pipeline::manifest::Manifest) {
    let fake = Fake::pages(one_page(model, case_body(file)), "");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    (dir, docs, out.manifest)
}

/// One page of AzureComputeVm assets and one of findings.
fn azure_and_findings(
    assets: impl Into<bytes::Bytes>,
    findings: impl Into<bytes::Bytes>,
) -> std::collections::BTreeMap<String, Vec<bytes::Bytes>> {
    std::collections::BTreeMap::from([
        ("AzureComputeVm".to_string(), vec![assets.into()]),
        ("VulnerabilityV2".to_string(), vec![findings.into()]),
    ])
}

#[test]
fn case_01_lone_surrogate_costs_one_value_not_the_page() {
    let (_d, docs, m) = run_case("AwsEc2Instance", "01-lone-surrogate.json");
    let hosts: Vec<&str> = docs
        .iter()
        .map(|d| d["hostName"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, vec!["ok-1", "bad \u{fffd} name", "ok-3"]);
    assert_eq!(m.counts.repairs.get("lone_surrogate"), Some(&2));
    assert_eq!(m.counts.dead_letters, 0);
}

#[test]
fn case_02_number_out_of_range_is_null_and_counted() {
    let (_d, docs, m) = run_case("AwsEc2Instance", "02-number-out-of-range.json");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["hostName"], "big-cpu");
    assert_eq!(docs[0]["processor"]["numberOfCpu"], Value::Null);
    assert_eq!(docs[0]["biosInfo"]["totalMemory"], 8192);
    assert_eq!(m.counts.repairs.get("number_out_of_range"), Some(&1));
}

#[test]
fn case_03_nulls_and_missing_fall_back_to_the_model() {
    let body = case_body("03-nulls-and-missing.json");
    // The GCP record arrives on the AWS query's page: the fallback comes from
    // the item's own `type`, not from the query.
    let (_d, docs, m) = run_case("AwsEc2Instance", "03-nulls-and-missing.json");
    drop(body);
    assert_eq!(docs.len(), 2);
    let aws = doc_by_id(&docs, "vm_111111111111_i-000000000000000c1");
    assert_eq!(aws["cloudProvider"], "EC2");
    assert_eq!(aws["hostName"], Value::Null);
    assert_eq!(aws["biosInfo"]["totalMemory"], Value::Null);
    let gcp = doc_by_id(
        &docs,
        "GcpVmInstance_222222222222_0b7c5e52-3c35-4f7e-9a8a-6f0d8f5d2c11",
    );
    assert_eq!(gcp["cloudProvider"], "GCP");
    assert_eq!(m.counts.dead_letters, 0);
}

#[test]
fn case_04_unexpected_shapes_are_decoded() {
    let (_d, docs, m) = run_case("AwsEc2Instance", "04-unexpected-shapes.json");
    let d1 = doc_by_id(&docs, "vm_111111111111_i-000000000000000d1");
    assert_eq!(
        d1["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env": "prod", "team": "payments"})
    );
    assert_eq!(d1["processor"]["numberOfCpu"], 4);
    assert_eq!(d1["biosInfo"]["totalMemory"], 16384);
    let nics = d1["networkInterfaces"].as_array().unwrap();
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["macAddress"], "0a:1b:2c:3d:4e:5f");
    let d2 = doc_by_id(&docs, "vm_111111111111_i-000000000000000d2");
    let attrs = &d2["temp_q_customAttributes"];
    assert!(
        attrs.is_null() || attrs["orcaCustomAttributes"].is_null(),
        "no custom attributes from an undecodable tag map: {attrs}"
    );
    assert_eq!(m.counts.transform.get("undecodable_tags"), Some(&1));
}

#[test]
fn case_05_enums_and_dates() {
    let (_d, docs, m) = run_case("VulnerabilityV2", "05-vulnerability-enums-dates.json");
    assert_eq!(docs.len(), 1, "all seven findings belong to one asset");
    let f = docs[0]["finding"].as_array().unwrap();
    assert_eq!(f.len(), 7);
    let sev: Vec<i64> = f.iter().map(|x| x["severity"].as_i64().unwrap()).collect();
    assert_eq!(sev, vec![5, 4, 3, 3, 2, 3, 1], "default severity is 3");
    let dates: Vec<Value> = f.iter().map(|x| x["firstFoundOn"].clone()).collect();
    let d = json!("2024-03-29T12:00:00Z");
    assert_eq!(
        dates,
        vec![
            d.clone(),
            d.clone(),
            json!("2024-03-29T12:00:00.123456789Z"),
            d.clone(),
            d.clone(),
            d,
            Value::Null
        ]
    );
    let patch: Vec<Value> = f
        .iter()
        .map(|x| x["findingType"]["vulnerability"]["isPatchAvailable"].clone())
        .collect();
    assert_eq!(
        patch,
        vec![
            json!(true),
            json!(true),
            json!(false),
            Value::Null,
            Value::Null,
            json!(true),
            json!(false)
        ]
    );
    assert_eq!(m.counts.transform.get("unparseable_dates"), Some(&1));
    assert_eq!(m.counts.transform.get("unmapped_patch"), Some(&1));
    assert_eq!(m.counts.transform.get("unmapped_severity"), Some(&2));
    // The asset of these findings is in no asset answer: a minimal document.
    assert_eq!(
        docs[0]["externalAssetId"],
        "vm_111111111111_i-000000000000000a1"
    );
    assert_eq!(docs[0]["source"], "Orca Security");
    assert_eq!(m.counts.orphan_assets, 1);
}

#[test]
fn case_06_byte_order_mark_is_ignored() {
    let (_d, docs, m) = run_case("AwsEc2Instance", "06-byte-order-mark.json");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["hostName"], "bom");
    assert!(m.counts.repairs.is_empty());
}

#[test]
fn case_07_public_spelling_finding() {
    let (_d, docs, _m) = run_case("VulnerabilityV2", "07-public-spelling-finding.json");
    let d = doc_by_id(&docs, "vm_111111111111_i-000000000000000a1");
    let f = &d["finding"][0];
    assert_eq!(f["externalFindingId"], "CVE-2025-68121");
    assert_eq!(f["findingType"]["vulnerability"]["cveId"], "CVE-2025-68121");
    assert_eq!(f["severity"], 5);
    assert_eq!(f["findingType"]["vulnerability"]["isPatchAvailable"], true);
    assert_eq!(
        f["findingType"]["vulnerability"]["isExploitAvailable"],
        false
    );
    assert_eq!(f["name"], "CVE-2025-68121 - stdlib-1.24.2");
    assert_eq!(
        f["findingType"]["vulnerability"]["vendorId"],
        "3281ec1f-31a8-c881-d181-1b924a1f97c4"
    );
}

#[test]
fn variants_of_the_cases_kinds_through_the_whole_run() {
    // The kinds of cases 01, 03, 04, 05, 06 and 07 in forms the files do
    // not carry, read off the page as the pipeline reads it (on the tape).
    let assets = "\u{feff}\u{feff}".to_string()
        + r#"{"status":"success","total_items":1,"data":[{"id":"x1","name":"x","type":"AzureComputeVm",
        "asset_unique_id":"AzureComputeVm_1_x1","data":{"Hostname":"bare-host","CpuCount":"8",
        "CloudAccount":{"data":{"CloudProvider":{"value":""}}},"InstanceId":{"value":""},
        "Tags":{"value":"{\"env\": \"bad \\udc00 tag\", \"team\": \"payments\"}"}}}]}"#;
    let findings = r#"{"status":"success","total_items":2,"data":[
        {"id":"f1","name":"CVE-2024-1 - pkg","type":"VulnerabilityV2","asset_unique_id":"",
         "data":{"CveId":{"value":"CVE-2024-1"},"CVE":{"data":{"Id":{"value":""}}},"CvssSeverity":"high",
                 "FirstSeen":{"value":1711713600.123},"PatchAvailable":"Extended",
                 "Inventory":{"data":{"AssetUniqueId":{"value":"AzureComputeVm_1_x1"}}}}},
        {"id":"f2","name":"CVE-2024-2 - pkg","type":"VulnerabilityV2","asset_unique_id":"AzureComputeVm_1_x1",
         "data":{"CveId":{"value":"CVE-2024-2"},"CvssSeverity":{"value":"LOW"},
                 "FirstSeen":{"value":"1711713600123.0"}}}]}"#;
    let fake = Fake::pages(azure_and_findings(assets, findings), "");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let m = &out.manifest;
    assert_eq!(m.counts.dead_letters, 0);
    let docs = docs(&out_file(dir.path(), "etm-assets.ndjson"));
    assert_eq!(docs.len(), 1);
    let d = doc_by_id(&docs, "AzureComputeVm_1_x1");
    assert_eq!(d["hostName"], "bare-host");
    assert_eq!(d["instanceId"], Value::Null);
    assert_eq!(d["processor"]["numberOfCpu"], 8);
    assert_eq!(d["cloudProvider"], "AZURE");
    assert_eq!(
        d["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env": "bad \u{fffd} tag", "team": "payments"})
    );
    assert_eq!(m.counts.transform.get("mended_encoded_json"), Some(&1));
    let f = d["finding"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["externalFindingId"], "CVE-2024-1");
    assert_eq!(f[0]["severity"], 4);
    assert_eq!(f[0]["firstFoundOn"], "2024-03-29T12:00:00.123Z");
    assert_eq!(
        f[0]["findingType"]["vulnerability"]["isPatchAvailable"],
        true
    );
    assert_eq!(f[1]["severity"], 2);
    assert_eq!(f[1]["firstFoundOn"], "2024-03-29T12:00:00.123Z");
    assert_eq!(m.counts.transform.get("unknown_cloud_provider"), None);
}

#[test]
fn ids_told_apart_only_by_a_broken_character_are_dead_letters_and_fix_nothing() {
    // Case 01's kind in an id: `v-\udc00` and `v-\udc01` both read as
    // `v-\u{fffd}`. Published, they would be one finding; the ledger would
    // take either for the other.
    let asset = r#"{"status":"success","total_items":1,"data":[{"id":"x1","name":"x","type":"AzureComputeVm",
        "asset_unique_id":"AzureComputeVm_1_x1","data":{"Hostname":"h"}}]}"#;
    let finding = |id: &str| {
        format!(
            r#"{{"id":"{id}","name":"CVE-2024-1 - pkg","type":"VulnerabilityV2","asset_unique_id":"AzureComputeVm_1_x1",
               "data":{{"CveId":{{"value":"CVE-2024-1"}},"CvssSeverity":"high"}}}}"#
        )
    };
    let sync = |dir: &std::path::Path, ids: &[&str]| {
        let rows: Vec<String> = ids.iter().map(|id| finding(id)).collect();
        let findings = format!(
            r#"{{"status":"success","total_items":{},"data":[{}]}}"#,
            ids.len(),
            rows.join(",")
        );
        let fake = Fake::pages(azure_and_findings(asset, findings), "");
        run(&config(&fake.url(), dir, ""))
    };
    let dir = tempfile::tempdir().unwrap();
    let first = sync(dir.path(), &["v-1", "v-2"]);
    assert_eq!(
        first.manifest.counts.findings_by_status.get("NEW"),
        Some(&2)
    );

    // v-2 is gone, but two findings could not be told apart: either may be it.
    let out = sync(dir.path(), &["v-1", r"v-\udc00", r"v-\udc01"]);
    let m = &out.manifest;
    assert_eq!(m.status, RunStatus::Complete, "{:?}", m.error);
    assert_eq!(m.counts.dead_letters, 2);
    assert_eq!(
        m.counts
            .dead_letters_by_reason
            .get("transform:ambiguous_id"),
        Some(&2)
    );
    assert_eq!(m.counts.repairs.get("lone_surrogate"), Some(&2));
    assert_eq!(m.counts.findings, 1);
    assert_eq!(m.counts.findings_by_status.get("FIXED"), None);
    assert!(
        m.fixing
            .as_deref()
            .is_some_and(|f| f.contains("no finding is marked FIXED")),
        "{:?}",
        m.fixing
    );
    let letters = std::fs::read_to_string(out_file(dir.path(), "dead-letters.ndjson")).unwrap();
    let letters: Vec<Value> = letters
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    for l in &letters {
        assert_eq!(l["reason"], "ambiguous_id");
        assert_eq!(l["record"], "finding");
        assert!(l.get("id").is_none(), "{l}");
    }
}

#[test]
fn every_case_file_has_a_test() {
    let tested = ["01-", "02-", "03-", "04-", "05-", "06-", "07-"];
    for e in std::fs::read_dir(fixtures::cases_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            assert!(
                tested.iter().any(|t| name.starts_with(t)),
                "a new case file needs a test: {name}"
            );
        }
    }
}
