//! The transform against the hostile case files, the mapping table of
//! etm-model.md (every row on a real value) and its example document.

use std::sync::Arc;

use serde_json::{json, Value};
use simd_json::OwnedValue;
use stages::model::{EtmRecord, OrcaRecord, RecordKind};
use stages::page::QueryInfo;
use stages::transform::{ScoringConfig, TransformMap, TransformStats, Transformer};

fn transformer() -> Transformer {
    Transformer::new(TransformMap::default_map(), ScoringConfig::default()).unwrap()
}

fn owned(text: &str) -> OwnedValue {
    let mut bytes = text.as_bytes().to_vec();
    simd_json::to_owned_value(&mut bytes).unwrap()
}

fn record(kind: RecordKind, item: OwnedValue) -> OrcaRecord {
    OrcaRecord {
        kind,
        item,
        query: Arc::new(QueryInfo {
            label: "test".into(),
            model: "test".into(),
            kind,
            track_first_seen: false,
        }),
        offset: 0,
    }
}

/// The `data` rows of a case file, as the parse stage would hand them over.
fn case(file: &str) -> Vec<OwnedValue> {
    let path = fixtures::cases_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let OwnedValue::Object(mut body) = owned(&text) else {
        panic!("{file}: not an object")
    };
    let Some(OwnedValue::Array(rows)) = body.remove("data") else {
        panic!("{file}: no data")
    };
    *rows
}

/// (document bytes, parsed) of a record that must transform.
fn doc(
    t: &Transformer,
    kind: RecordKind,
    item: OwnedValue,
    stats: &mut TransformStats,
) -> (Vec<u8>, Value) {
    let out = t.transform(&record(kind, item), stats).unwrap();
    let bytes = match out {
        EtmRecord::Asset(a) => a.json,
        EtmRecord::Finding(f) => f.json,
    };
    let v = serde_json::from_slice(&bytes).unwrap();
    (bytes, v)
}

#[test]
fn case_03_nulls_and_missing() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let rows = case("03-nulls-and-missing.json");
    let (_, a) = doc(&t, RecordKind::Asset, rows[0].clone(), &mut stats);
    assert_eq!(a["externalAssetId"], "vm_111111111111_i-000000000000000c1");
    assert_eq!(a["hostName"], Value::Null);
    assert_eq!(a["cloudProvider"], "EC2");
    assert_eq!(a["biosInfo"]["totalMemory"], Value::Null);
    assert_eq!(a["processor"]["numberOfCpu"], 2);
    assert_eq!(
        a["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env": "prod"})
    );
    let (_, b) = doc(&t, RecordKind::Asset, rows[1].clone(), &mut stats);
    assert_eq!(
        b["externalAssetId"],
        "GcpVmInstance_222222222222_0b7c5e52-3c35-4f7e-9a8a-6f0d8f5d2c11"
    );
    assert_eq!(b["cloudProvider"], "GCP");
    assert_eq!(b["volumes"], json!([]));
    assert_eq!(b["networkInterfaces"], json!([]));
    assert_eq!(b["ports"], json!([]));
    assert_eq!(
        stats,
        TransformStats::default(),
        "nulls and missing keys are not faults"
    );
}

#[test]
fn case_04_unexpected_shapes() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let rows = case("04-unexpected-shapes.json");
    let (_, a) = doc(&t, RecordKind::Asset, rows[0].clone(), &mut stats);
    assert_eq!(
        a["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env": "prod", "team": "payments"})
    );
    assert_eq!(a["processor"]["numberOfCpu"], 4);
    assert_eq!(a["biosInfo"]["totalMemory"], 16384);
    assert_eq!(
        a["networkInterfaces"],
        json!([{"macAddress": "0a:1b:2c:3d:4e:5f", "ipAddress": "10.0.1.15"}])
    );
    assert_eq!(a["cloudProvider"], "EC2");
    assert_eq!(stats, TransformStats::default());
    let (_, b) = doc(&t, RecordKind::Asset, rows[1].clone(), &mut stats);
    assert_eq!(b["externalAssetId"], "vm_111111111111_i-000000000000000d2");
    assert_eq!(
        b["temp_q_customAttributes"]["orcaCustomAttributes"],
        Value::Null
    );
    assert_eq!(stats.undecodable_tags, 1);
}

#[test]
fn case_05_enums_and_dates() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let docs: Vec<Value> = case("05-vulnerability-enums-dates.json")
        .into_iter()
        .map(|r| doc(&t, RecordKind::Finding, r, &mut stats).1)
        .collect();
    let field = |f: &dyn Fn(&Value) -> Value| docs.iter().map(f).collect::<Vec<_>>();
    assert_eq!(
        field(&|d| d["severity"].clone()),
        [5, 4, 3, 3, 2, 3, 1].map(|s| json!(s))
    );
    assert_eq!(
        field(&|d| d["qds"].clone()),
        [95, 80, 55, 55, 25, 55, 5].map(|s| json!(s))
    );
    let plain = json!("2024-03-29T12:00:00Z");
    assert_eq!(
        field(&|d| d["firstFoundOn"].clone()),
        vec![
            plain.clone(),
            plain.clone(),
            json!("2024-03-29T12:00:00.123456789Z"),
            plain.clone(),
            plain.clone(),
            plain.clone(),
            Value::Null
        ]
    );
    assert_eq!(
        field(&|d| d["findingType"]["vulnerability"]["isPatchAvailable"].clone()),
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
    assert_eq!(stats.unmapped_severity, 2);
    assert_eq!(stats.unparseable_dates, 1);
    assert_eq!(stats.unmapped_patch, 1);
}

#[test]
fn case_05_default_severity_is_configurable() {
    let scoring = ScoringConfig {
        qds: [1, 2, 3, 4, 5],
        default_severity: 4,
    };
    let t = Transformer::new(TransformMap::default_map(), scoring).unwrap();
    let mut stats = TransformStats::default();
    let row = case("05-vulnerability-enums-dates.json").remove(2);
    let (_, d) = doc(&t, RecordKind::Finding, row, &mut stats);
    assert_eq!(
        (d["severity"].clone(), d["qds"].clone()),
        (json!(4), json!(4))
    );
}

#[test]
fn case_07_public_spelling() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let row = case("07-public-spelling-finding.json").remove(0);
    let out = t
        .transform(&record(RecordKind::Finding, row), &mut stats)
        .unwrap();
    let EtmRecord::Finding(f) = out else {
        panic!("not a finding")
    };
    assert_eq!(f.asset_id, "vm_111111111111_i-000000000000000a1");
    assert_eq!(f.vendor_id, "3281ec1f-31a8-c881-d181-1b924a1f97c4");
    let d: Value = serde_json::from_slice(&f.json).unwrap();
    let v = &d["findingType"]["vulnerability"];
    assert_eq!(d["externalFindingId"], "CVE-2025-68121");
    assert_eq!(v["cveId"], "CVE-2025-68121");
    assert_eq!(d["severity"], 5);
    assert_eq!(v["isPatchAvailable"], true);
    assert_eq!(v["isExploitAvailable"], false);
    assert_eq!(d["name"], "CVE-2025-68121 - stdlib-1.24.2");
    assert_eq!(v["cvss"]["cvss3Base"], 10.0);
    assert!(d.get("status").is_none());
    assert_eq!(stats, TransformStats::default());
}

#[test]
fn case_02_after_parse_repair() {
    // The parse stage turns `1e400` into null before the transform sees it.
    let path = fixtures::cases_dir().join("02-number-out-of-range.json");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("1e400", "null");
    let OwnedValue::Object(mut body) = owned(&text) else {
        panic!()
    };
    let Some(OwnedValue::Array(rows)) = body.remove("data") else {
        panic!()
    };
    let mut stats = TransformStats::default();
    let (_, a) = doc(
        &transformer(),
        RecordKind::Asset,
        rows[0].clone(),
        &mut stats,
    );
    assert_eq!(a["processor"]["numberOfCpu"], Value::Null);
}

const EXAMPLE_ASSET: &str = r#"{"id":"vm_123456789012_i-0a1b2c3d4e5f60718-id","name":"web-1","type":"AwsEc2Instance",
 "asset_unique_id":"vm_123456789012_i-0a1b2c3d4e5f60718",
 "data":{"Hostname":{"value":"web-1"},"InstanceId":{"value":"i-0a1b2c3d4e5f60718"},
  "PublicDnsName":{"value":"ec2-3-91-10-20.compute-1.amazonaws.com"},
  "MacAddresses":{"value":["0a:1b:2c:3d:4e:5f"]},"assetIps":["10.0.1.15","3.91.10.20"],
  "Memory":{"value":8192},"DistributionName":{"value":"Ubuntu"},"DistributionVersion":{"value":"22.04"},
  "OsBitMode":{"value":"64"},
  "CloudAccount":{"id":"acc-1","name":"prod","type":"CloudAccount","data":{"CloudProvider":{"value":"aws"}}},
  "Tags":{"value":{"team":"payments","env":"prod"}},
  "assetPorts":{"count":1,"value":[{"id":"p1","type":"Port","data":{"PortNumber":{"value":22},"Protocol":{"value":"tcp"},
     "ServiceName":{"value":"ssh"},"FirstSeen":{"value":"2026-01-04T10:00:00+00:00"},"LastUpdated":{"value":"2026-02-01 08:30:00"}}}]},
  "RunningServices":{"value":[{"id":"s1","type":"Service","data":{"Name":{"value":"sshd"},"Exec":{"value":"/usr/sbin/sshd -D"}}}]},
  "CpuType":{"value":"Intel Xeon"},"CpuCount":{"value":2},"CpuFrequency":{"value":2500},
  "TotalDisksBytes":{"value":107374182400},
  "assetApplications":{"count":1,"value":[{"id":"a1","type":"Application","data":{"Name":{"value":"openssl"},
     "Version":{"value":"3.0.2"},"InstallDate":{"value":"2025-11-20"},"IsOsPackage":{"value":true}}}]}}}"#;

const EXAMPLE_FINDING: &str = r#"{"id":"3281ec1f-31a8-c881-d181-1b924a1f97c4","name":"CVE-2025-68121 - stdlib-1.24.2",
 "type":"VulnerabilityV2","asset_unique_id":"vm_123456789012_i-0a1b2c3d4e5f60718",
 "data":{"CVE":{"id":"c1","type":"CVE","data":{"Id":{"value":"CVE-2025-68121"},"PublicName":{"value":"CVE-2025-68121 - stdlib-1.24.2"},
   "HasExploit":{"value":false},"CweTypes":{"value":["CWE-295"]},"Cvss2Score":{"value":null},"Cvss3Score":{"value":10}}},
  "CvssSeverity":{"value":"CRITICAL"},"Description":{"value":"During session resumption in crypto/tls ..."},
  "FirstSeen":{"value":"2026-02-09T13:15:04+00:00"},"CvssVector":{"value":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"},
  "PatchAvailable":{"value":"Yes"},"ThreatImpact":{"value":["Remote code execution"]}}}"#;

/// The example of etm-model.md, cut where the assembler joins the parts.
const WANT_ASSET: &str = concat!(
    r#"{"externalAssetId":"vm_123456789012_i-0a1b2c3d4e5f60718","sourceNativeKey":"vm_123456789012_i-0a1b2c3d4e5f60718","#,
    r#""source":"Orca Security","hostName":"web-1","instanceId":"i-0a1b2c3d4e5f60718","fqdn":"ec2-3-91-10-20.compute-1.amazonaws.com","#,
    r#""cloudProvider":"EC2","operatingSystem":{"name":"Ubuntu","version":"22.04","architecture":"64"},"#,
    r#""biosInfo":{"totalMemory":8192},"processor":{"description":"Intel Xeon","numberOfCpu":2,"speed":2500},"#,
    r#""volumes":[{"size":107374182400}],"#,
    r#""networkInterfaces":[{"macAddress":"0a:1b:2c:3d:4e:5f","ipAddress":"10.0.1.15"},{"ipAddress":"3.91.10.20"}],"#,
    r#""ports":[{"port":22,"protocol":"tcp","detectedService":"ssh","firstFound":"2026-01-04T10:00:00Z","lastUpdated":"2026-02-01T08:30:00Z"}],"#,
    r#""services":[{"name":"sshd","description":"/usr/sbin/sshd -D"}],"#,
    r#""softwares":[{"name":"openssl","version":"3.0.2","installedDate":"2025-11-20T00:00:00Z","isSystemApp":true}],"#,
    r#""temp_q_customAttributes":{"orcaCustomAttributes":{"env":"prod","team":"payments"}}}"#
);

const WANT_FINDING: &str = concat!(
    r#"{"externalFindingId":"CVE-2025-68121","name":"CVE-2025-68121 - stdlib-1.24.2","severity":5,"qds":95,"#,
    r#""vendorProductName":"Orca Security","description":"During session resumption in crypto/tls ...","#,
    r#""firstFoundOn":"2026-02-09T13:15:04Z","impact":"Remote code execution","#,
    r#""findingType":{"vulnerability":{"cveId":"CVE-2025-68121","vendorId":"3281ec1f-31a8-c881-d181-1b924a1f97c4","#,
    r#""isPatchAvailable":true,"isExploitAvailable":false,"cweIds":["CWE-295"],"#,
    r#""cvss":{"vector":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H","cvss2Base":null,"cvss3Base":10.0}}}}"#
);

/// Every row of the mapping table, seed spelling, checked byte for byte
/// (field names, values and order) against the example document.
#[test]
fn example_document_and_every_mapping_row() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let (asset, _) = doc(&t, RecordKind::Asset, owned(EXAMPLE_ASSET), &mut stats);
    assert_eq!(std::str::from_utf8(&asset).unwrap(), WANT_ASSET);
    let (finding, _) = doc(&t, RecordKind::Finding, owned(EXAMPLE_FINDING), &mut stats);
    assert_eq!(std::str::from_utf8(&finding).unwrap(), WANT_FINDING);
    assert_eq!(stats, TransformStats::default());
}

/// The same, compared with the example as etm-model.md itself prints it.
#[test]
fn example_matches_the_spec_file() {
    let spec = std::fs::read_to_string(fixtures::etm_model_spec()).unwrap();
    let start = spec.find("```json").unwrap() + "```json".len();
    let end = start + spec[start..].find("```").unwrap();
    let mut want: Value = serde_json::from_str(&spec[start..end]).unwrap();
    let mut finding = want.as_object_mut().unwrap().remove("finding").unwrap()[0].take();
    finding.as_object_mut().unwrap().remove("status");
    assert_eq!(serde_json::from_str::<Value>(WANT_ASSET).unwrap(), want);
    assert_eq!(
        serde_json::from_str::<Value>(WANT_FINDING).unwrap(),
        finding
    );
}

#[test]
fn output_is_deterministic() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let a1 = doc(&t, RecordKind::Asset, owned(EXAMPLE_ASSET), &mut stats).0;
    let a2 = doc(&t, RecordKind::Asset, owned(EXAMPLE_ASSET), &mut stats).0;
    assert_eq!(a1, a2);
    // A fresh transformer (hash seeds of the input maps differ) gives the same bytes.
    let a3 = doc(
        &transformer(),
        RecordKind::Asset,
        owned(EXAMPLE_ASSET),
        &mut stats,
    )
    .0;
    assert_eq!(a1, a3);
}

#[test]
fn cloud_providers() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let provider = |p: &str, model: &str, stats: &mut TransformStats| {
        let item = format!(
            r#"{{"asset_unique_id":"a","type":"{model}","data":{{"CloudAccount":{{"data":{{"CloudProvider":{{"value":{p}}}}}}}}}}}"#
        );
        doc(&t, RecordKind::Asset, owned(&item), stats).1["cloudProvider"].clone()
    };
    for (p, want) in [
        ("\"AWS\"", "EC2"),
        ("\"aws\"", "EC2"),
        ("\"GCP\"", "GCP"),
        ("\"Azure\"", "AZURE"),
        ("\"AZURE\"", "AZURE"),
        ("\"OCI\"", "OCI"),
        ("\"Alibaba\"", "ALIBABA"),
        ("\"VMWare\"", "SOURCE_TYPE_UNKNOWN"),
        ("\"Vmware\"", "SOURCE_TYPE_UNKNOWN"),
    ] {
        assert_eq!(provider(p, "AwsEc2Instance", &mut stats), want, "{p}");
    }
    assert_eq!(stats.unknown_cloud_provider, 0);
    assert_eq!(
        provider("\"Mars\"", "AwsEc2Instance", &mut stats),
        "SOURCE_TYPE_UNKNOWN"
    );
    assert_eq!(
        provider("7", "AwsEc2Instance", &mut stats),
        "SOURCE_TYPE_UNKNOWN"
    );
    assert_eq!(stats.unknown_cloud_provider, 2);
    for (model, want) in [
        ("AwsEc2Instance", "EC2"),
        ("GcpVmInstance", "GCP"),
        ("AzureComputeVm", "AZURE"),
        ("OciComputeVmInstance", "OCI"),
        ("AliCloudEcsInstance", "ALIBABA"),
        ("VmwareVmInstance", "SOURCE_TYPE_UNKNOWN"),
    ] {
        assert_eq!(provider("null", model, &mut stats), want, "{model}");
        let item =
            format!(r#"{{"asset_unique_id":"a","type":"{model}","data":{{"CloudAccount":null}}}}"#);
        assert_eq!(
            doc(&t, RecordKind::Asset, owned(&item), &mut stats).1["cloudProvider"],
            want
        );
    }
    assert_eq!(stats.unknown_cloud_provider, 2);
}

#[test]
fn numbers_patch_bools_and_lists() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let asset = |data: &str, stats: &mut TransformStats| {
        doc(
            &t,
            RecordKind::Asset,
            owned(&format!(
                r#"{{"asset_unique_id":"a","type":"AwsEc2Instance","data":{data}}}"#
            )),
            stats,
        )
        .1
    };
    let a = asset(
        r#"{"CpuCount":{"value":"4"},"Memory":{"value":16384.0},"CpuFrequency":{"value":"5.1"},"TotalDisksBytes":{"value":"100"}}"#,
        &mut stats,
    );
    assert_eq!(a["processor"]["numberOfCpu"], 4);
    assert_eq!(a["biosInfo"]["totalMemory"], 16384);
    assert!(a["biosInfo"]["totalMemory"].is_i64());
    assert_eq!(a["processor"]["speed"], 5.1);
    assert_eq!(a["volumes"], json!([{"size": 100}]));
    assert_eq!(stats.invalid_numbers, 0);
    let a = asset(
        r#"{"CpuCount":{"value":true},"Memory":{"value":"lots"},"CpuFrequency":{"value":"inf"},"TotalDisksBytes":{"value":"1.5"}}"#,
        &mut stats,
    );
    assert_eq!(a["processor"]["numberOfCpu"], Value::Null);
    assert_eq!(a["biosInfo"]["totalMemory"], Value::Null);
    assert_eq!(a["processor"]["speed"], Value::Null);
    assert_eq!(a["volumes"], json!([]));
    assert_eq!(stats.invalid_numbers, 4);

    // MACs as a bare string, IPs validated and dropped when invalid, by position.
    let a = asset(
        r#"{"MacAddresses":{"value":"aa:aa:aa:aa:aa:aa"},"assetIps":["nope","::1","10.0.0.300"]}"#,
        &mut stats,
    );
    assert_eq!(
        a["networkInterfaces"],
        json!([{"macAddress":"aa:aa:aa:aa:aa:aa"},{"ipAddress":"::1"}])
    );
    assert_eq!(stats.invalid_ips, 2);
    let a = asset(
        r#"{"MacAddresses":{"value":null},"assetIps":{"count":0,"value":null}}"#,
        &mut stats,
    );
    assert_eq!(a["networkInterfaces"], json!([]));
    assert_eq!((stats.invalid_ips, stats.invalid_strings), (2, 0));
    let a = asset(
        r#"{"MacAddresses":{"value":["m1","m2","m3"]},"assetIps":{"count":1,"value":["10.0.0.1"]}}"#,
        &mut stats,
    );
    assert_eq!(
        a["networkInterfaces"],
        json!([{"macAddress":"m1","ipAddress":"10.0.0.1"},{"macAddress":"m2"},{"macAddress":"m3"}])
    );

    // A list sent as one string (comma-separated or JSON-encoded), elements wrapped as {"value": …}.
    let a = asset(
        r#"{"MacAddresses":{"value":"m1, m2"},"assetIps":{"value":"[\"10.0.0.1\",{\"value\":\"10.0.0.2\"}]"}}"#,
        &mut stats,
    );
    assert_eq!(
        a["networkInterfaces"],
        json!([{"macAddress":"m1","ipAddress":"10.0.0.1"},{"macAddress":"m2","ipAddress":"10.0.0.2"}])
    );

    // Tags: a map encoded twice, a map of non-strings, a list of pairs.
    let a = asset(
        r#"{"Tags":{"value":"\"{\\\"env\\\": \\\"prod\\\"}\""}}"#,
        &mut stats,
    );
    assert_eq!(
        a["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env":"prod"})
    );
    let a = asset(
        r#"{"Tags":{"value":{"n":5,"b":true,"z":null}}}"#,
        &mut stats,
    );
    assert_eq!(
        a["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"b":"true","n":"5","z":""})
    );
    let a = asset(
        r#"{"Tags":{"value":[{"Key":"env","Value":"prod"}]}}"#,
        &mut stats,
    );
    assert_eq!(
        a["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env":"prod"})
    );

    let finding = |data: &str, stats: &mut TransformStats| {
        doc(
            &t,
            RecordKind::Finding,
            owned(&format!(
                r#"{{"id":"f","asset_unique_id":"a","name":"item name","data":{data}}}"#
            )),
            stats,
        )
        .1
    };
    let f = finding(
        r#"{"ThreatImpact":{"value":"Data loss"},"HasExploit":{"value":"yes"},"CvssScore":{"value":"7.5"},"CveId":{"value":"CVE-1"}}"#,
        &mut stats,
    );
    assert_eq!(f["impact"], "Data loss");
    assert_eq!(f["name"], "item name");
    assert_eq!(
        f["findingType"]["vulnerability"]["isExploitAvailable"],
        true
    );
    assert_eq!(f["findingType"]["vulnerability"]["cvss"]["cvss3Base"], 7.5);
    assert_eq!(f["externalFindingId"], "CVE-1");
    let f = finding(
        r#"{"CVE":{"data":{"CweTypes":{"value":"CWE-79, CWE-89"}}}}"#,
        &mut stats,
    );
    assert_eq!(
        f["findingType"]["vulnerability"]["cweIds"],
        json!(["CWE-79", "CWE-89"])
    );
    for (p, want) in [
        ("\"YES\"", json!(true)),
        ("\"extended\"", json!(true)),
        ("false", json!(false)),
        ("\"no\"", json!(false)),
    ] {
        let f = finding(
            &format!(r#"{{"PatchAvailable":{{"value":{p}}}}}"#),
            &mut stats,
        );
        assert_eq!(
            f["findingType"]["vulnerability"]["isPatchAvailable"], want,
            "{p}"
        );
    }
    for (s, want) in [
        ("\"critical\"", 5),
        ("\"Info\"", 1),
        ("\"INFORMATIONAL\"", 1),
        ("\"none\"", 1),
        ("\"Medium\"", 3),
    ] {
        assert_eq!(
            finding(
                &format!(r#"{{"CvssSeverity":{{"value":{s}}}}}"#),
                &mut stats
            )["severity"],
            want,
            "{s}"
        );
    }
}

#[test]
fn records_without_keys_are_dead_letters() {
    let t = transformer();
    let mut stats = TransformStats::default();
    for (kind, item, reason) in [
        (
            RecordKind::Asset,
            r#"{"id":"x","data":{"Hostname":{"value":"h"}}}"#,
            "missing_asset_id",
        ),
        (
            RecordKind::Asset,
            r#"{"asset_unique_id":"  ","data":{}}"#,
            "missing_asset_id",
        ),
        (RecordKind::Asset, r#"[1,2]"#, "missing_asset_id"),
        (
            RecordKind::Finding,
            r#"{"id":"f","data":{}}"#,
            "missing_asset_id",
        ),
        (
            RecordKind::Finding,
            r#"{"asset_unique_id":"a","data":{"CvssSeverity":{"value":"??"}}}"#,
            "missing_vendor_id",
        ),
        (
            RecordKind::Finding,
            r#"{"id":{"x":1},"data":{"Inventory":{"data":{"AssetUniqueId":{"value":"a"}}}}}"#,
            "missing_vendor_id",
        ),
    ] {
        let dl = t
            .transform(&record(kind, owned(item)), &mut stats)
            .unwrap_err();
        assert_eq!(
            (dl.stage, dl.reason.as_str()),
            ("transform", reason),
            "{item}"
        );
        assert_eq!(dl.query, "test");
        assert!(!dl.raw.is_empty());
    }
    assert_eq!((stats.missing_asset_id, stats.missing_vendor_id), (4, 2));
    // The refused records' odd values are not counted.
    assert_eq!(stats.unmapped_severity, 0);
}

#[test]
fn transformer_is_shareable_across_workers() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Transformer>();
}

#[test]
fn deep_nesting_is_cut_not_a_crash() {
    let deep = format!("{}\"x\"{}", "[".repeat(1000), "]".repeat(1000));
    let item = format!(
        r#"{{"id":"f","asset_unique_id":"a","data":{{"ThreatImpact":{{"value":[{deep}]}}}}}}"#
    );
    let mut stats = TransformStats::default();
    let (bytes, _) = doc(
        &transformer(),
        RecordKind::Finding,
        owned(&item),
        &mut stats,
    );
    assert!(bytes.len() < 1000);
}

/// Rough throughput, for a look: `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let t = transformer();
    let mut stats = TransformStats::default();
    let (asset, finding) = (owned(EXAMPLE_ASSET), owned(EXAMPLE_FINDING));
    let (ra, rf) = (
        record(RecordKind::Asset, asset),
        record(RecordKind::Finding, finding),
    );
    let n = 100_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        t.transform(&ra, &mut stats).unwrap();
        t.transform(&rf, &mut stats).unwrap();
    }
    let per = start.elapsed() / (2 * n);
    println!("{per:?} per record");
}

#[test]
fn epoch_dates_with_a_fraction_keep_the_digits_sent_in_every_date_field() {
    // Epoch seconds/milliseconds as JSON floats and as strings, in each of
    // the four date fields of the map: the fraction written is the one
    // emitted (binary floating point would give .122999907).
    let t = transformer();
    let mut stats = TransformStats::default();
    for v in ["1711713600.123", "1711713600123.0", "\"1711713600.123\""] {
        let (_, f) = doc(
            &t,
            RecordKind::Finding,
            owned(&format!(
                r#"{{"id":"f","asset_unique_id":"a","data":{{"FirstSeen":{{"value":{v}}}}}}}"#
            )),
            &mut stats,
        );
        assert_eq!(f["firstFoundOn"], "2024-03-29T12:00:00.123Z", "{v}");
        let (_, a) = doc(
            &t,
            RecordKind::Asset,
            owned(&format!(
                r#"{{"asset_unique_id":"a","type":"AwsEc2Instance","data":{{
                    "assetPorts":{{"count":1,"value":[{{"data":{{"PortNumber":{{"value":22}},"FirstSeen":{{"value":{v}}},"LastUpdated":{{"value":{v}}}}}}}]}},
                    "assetApplications":{{"count":1,"value":[{{"data":{{"Name":{{"value":"n"}},"InstallDate":{{"value":{v}}}}}}}]}}}}}}"#
            )),
            &mut stats,
        );
        assert_eq!(
            a["ports"][0]["firstFound"], "2024-03-29T12:00:00.123Z",
            "{v}"
        );
        assert_eq!(
            a["ports"][0]["lastUpdated"], "2024-03-29T12:00:00.123Z",
            "{v}"
        );
        assert_eq!(
            a["softwares"][0]["installedDate"], "2024-03-29T12:00:00.123Z",
            "{v}"
        );
    }
    assert_eq!(stats.unparseable_dates, 0);
}

#[test]
fn blank_values_are_missing_so_the_next_source_or_the_model_tells() {
    // Case 03's kind: a value sent as "" (or blanks) is as missing as null,
    // so a fallback path is tried, not an empty value published.
    let t = transformer();
    let mut stats = TransformStats::default();
    let asset =
        |item: &str, stats: &mut TransformStats| doc(&t, RecordKind::Asset, owned(item), stats).1;
    for (provider, model, want) in [
        ("\"\"", "AwsEc2Instance", "EC2"),
        ("\"  \"", "GcpVmInstance", "GCP"),
    ] {
        let a = asset(
            &format!(
                r#"{{"asset_unique_id":"a","type":"{model}","data":{{"CloudAccount":{{"data":{{"CloudProvider":{{"value":{provider}}}}}}}}}}}"#
            ),
            &mut stats,
        );
        assert_eq!(a["cloudProvider"], want, "{provider} {model}");
    }
    let a = asset(
        r#"{"asset_unique_id":"a","type":"AwsEc2Instance","data":{"Hostname":{"value":""},"InstanceId":{"value":" "},"MacAddresses":{"value":[""]},"assetIps":[""]}}"#,
        &mut stats,
    );
    assert_eq!(a["hostName"], Value::Null);
    assert_eq!(a["instanceId"], Value::Null);
    assert_eq!(a["networkInterfaces"], json!([]));
    assert_eq!(stats, TransformStats::default(), "missing is not invalid");

    let finding = |item: &str, stats: &mut TransformStats| {
        let out = t
            .transform(&record(RecordKind::Finding, owned(item)), stats)
            .unwrap();
        let EtmRecord::Finding(f) = out else {
            panic!("not a finding")
        };
        (
            f.asset_id,
            serde_json::from_slice::<Value>(&f.json).unwrap(),
        )
    };
    let (asset_id, f) = finding(
        r#"{"id":"f","name":"CVE-9 - pkg","asset_unique_id":"","data":{
            "CVE":{"data":{"Id":{"value":""},"PublicName":{"value":""}}},"CveId":{"value":"CVE-9"},
            "Inventory":{"data":{"AssetUniqueId":{"value":"vm_1_i-1"}}}}}"#,
        &mut stats,
    );
    assert_eq!(
        asset_id, "vm_1_i-1",
        "the Inventory link when asset_unique_id is blank"
    );
    assert_eq!(f["externalFindingId"], "CVE-9");
    assert_eq!(f["findingType"]["vulnerability"]["cveId"], "CVE-9");
    assert_eq!(f["name"], "CVE-9 - pkg");
}

#[test]
fn without_a_provider_or_a_type_the_query_model_tells_the_provider() {
    // Case 03's kind: the item's own `type` is missing too; the query that
    // asked for one model still tells it.
    let t = transformer();
    let mut stats = TransformStats::default();
    let mut rec = record(
        RecordKind::Asset,
        owned(r#"{"asset_unique_id":"a","data":{"CloudAccount":null}}"#),
    );
    rec.query = Arc::new(QueryInfo {
        label: "AzureComputeVm".into(),
        model: "AzureComputeVm".into(),
        kind: RecordKind::Asset,
        track_first_seen: false,
    });
    let EtmRecord::Asset(a) = t.transform(&rec, &mut stats).unwrap() else {
        panic!("not an asset")
    };
    let a: Value = serde_json::from_slice(&a.json).unwrap();
    assert_eq!(a["cloudProvider"], "AZURE");
    assert_eq!(stats.unknown_cloud_provider, 0);
}

#[test]
fn faults_inside_a_json_encoded_value_are_mended_like_on_the_page() {
    // Cases 01/02/06's kinds one level down: a map or list sent as a
    // JSON-encoded string carries a lone surrogate, a number beyond f64 or a
    // byte-order mark. The value is mended as the parse stage mends a page
    // (U+FFFD, null, ignored) and counted, not lost whole.
    let t = transformer();
    let mut stats = TransformStats::default();
    let asset = |tags: &str, stats: &mut TransformStats| {
        let item = format!(
            r#"{{"asset_unique_id":"a","type":"AwsEc2Instance","data":{{"Tags":{{"value":{tags}}}}}}}"#
        );
        doc(&t, RecordKind::Asset, owned(&item), stats).1["temp_q_customAttributes"]
            ["orcaCustomAttributes"]
            .clone()
    };
    assert_eq!(
        asset(
            r#""{\"env\":\"bad \\udc00 x\",\"team\":\"payments\"}""#,
            &mut stats
        ),
        json!({"env": "bad \u{fffd} x", "team": "payments"})
    );
    assert_eq!(
        asset(r#""{\"n\":1e400,\"team\":\"payments\"}""#, &mut stats),
        json!({"n": "", "team": "payments"})
    );
    assert_eq!(stats.mended_encoded_json, 2);
    assert_eq!(
        asset(r#""\ufeff{\"env\":\"prod\"}""#, &mut stats),
        json!({"env": "prod"})
    );
    assert_eq!(stats.undecodable_tags, 0);
    assert_eq!(stats.mended_encoded_json, 2, "a BOM is no fault");

    let f = doc(
        &t,
        RecordKind::Finding,
        owned(
            r#"{"id":"f","asset_unique_id":"a","data":{"CVE":{"data":{"CweTypes":{"value":"[\"CWE-79\",\"CWE-\\ud800\"]"}}},
                "ThreatImpact":{"value":"[\"Remote \\udc00 code execution\"]"}}}"#,
        ),
        &mut stats,
    )
    .1;
    assert_eq!(
        f["findingType"]["vulnerability"]["cweIds"],
        json!(["CWE-79", "CWE-\u{fffd}"])
    );
    assert_eq!(f["impact"], "Remote \u{fffd} code execution");
    assert_eq!(stats.mended_encoded_json, 4);
}

#[test]
fn scalars_sent_without_their_value_wrapper_are_read() {
    // Case 04's kind: a scalar field sent bare (`"Hostname": "web-1"`)
    // instead of wrapped (`{"value": "web-1"}`) means the same value.
    let t = transformer();
    let mut stats = TransformStats::default();
    let (_, a) = doc(
        &t,
        RecordKind::Asset,
        owned(
            r#"{"asset_unique_id":"a","type":"VmwareVmInstance","data":{
                "Hostname":"web-1","InstanceId":"i-1","Memory":"16384","CpuCount":4,
                "DistributionName":"Ubuntu","OsBitMode":64,
                "CloudAccount":{"data":{"CloudProvider":"aws"}},
                "assetApplications":{"count":2,"value":[
                    {"data":{"Name":"openssl","IsOsPackage":"1"}},
                    {"data":{"Name":"curl","IsOsPackage":"0"}}]}}}"#,
        ),
        &mut stats,
    );
    assert_eq!(a["hostName"], "web-1");
    assert_eq!(a["instanceId"], "i-1");
    assert_eq!(a["biosInfo"]["totalMemory"], 16384);
    assert_eq!(a["processor"]["numberOfCpu"], 4);
    assert_eq!(a["operatingSystem"]["name"], "Ubuntu");
    assert_eq!(a["operatingSystem"]["architecture"], "64");
    assert_eq!(a["cloudProvider"], "EC2");
    assert_eq!(
        a["softwares"],
        json!([
            {"name":"curl","version":null,"installedDate":null,"isSystemApp":false},
            {"name":"openssl","version":null,"installedDate":null,"isSystemApp":true}
        ])
    );

    let out = t
        .transform(
            &record(
                RecordKind::Finding,
                owned(
                    r#"{"id":"f","name":"n","data":{"CvssSeverity":"HIGH","PatchAvailable":"Extended",
                        "CveId":"CVE-2025-1","HasExploit":"0","FirstSeen":"2024-03-29T12:00:00+00:00",
                        "Inventory":{"data":{"AssetUniqueId":"vm_1_i-1"}}}}"#,
                ),
            ),
            &mut stats,
        )
        .unwrap();
    let EtmRecord::Finding(f) = out else {
        panic!("not a finding")
    };
    assert_eq!(f.asset_id, "vm_1_i-1");
    let f: Value = serde_json::from_slice(&f.json).unwrap();
    assert_eq!(
        (f["severity"].clone(), f["qds"].clone()),
        (json!(4), json!(80))
    );
    assert_eq!(f["externalFindingId"], "CVE-2025-1");
    assert_eq!(f["firstFoundOn"], "2024-03-29T12:00:00Z");
    let v = &f["findingType"]["vulnerability"];
    assert_eq!(v["isPatchAvailable"], true);
    assert_eq!(v["isExploitAvailable"], false);
    assert_eq!(stats, TransformStats::default());
}
