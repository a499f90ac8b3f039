//! The faults of `shared/cases/01` and `02` in every other place a page
//! can carry them, through parse and transform as the pipeline runs them:
//! each kind is mended the same way wherever it stands, to the value the
//! cases README names, and counted.

use std::sync::Arc;

use serde_json::{json, Value};
use stages::model::{EtmRecord, RecordKind};
use stages::page::{PageVerdict, QueryInfo};
use stages::parse::{Parser, Repair};
use stages::transform::{ScoringConfig, TransformMap, TransformStats, Transformer};

/// An AwsEc2Instance query of `kind` and the default transform map.
fn query_and_transformer(kind: RecordKind) -> (Arc<QueryInfo>, Transformer) {
    let q = Arc::new(QueryInfo {
        label: "q".into(),
        model: "AwsEc2Instance".into(),
        kind,
        track_first_seen: false,
    });
    let t = Transformer::new(TransformMap::default_map(), ScoringConfig::default()).unwrap();
    (q, t)
}

/// Documents (as JSON) of one page body, the repairs and the transform counts.
fn run(
    kind: RecordKind,
    body: impl AsRef<[u8]>,
) -> (Vec<Value>, Vec<(Repair, u64)>, TransformStats) {
    let (q, t) = query_and_transformer(kind);
    let page = Parser::new().parse_owned(&q, 0, body.as_ref());
    assert!(
        matches!(page.verdict, PageVerdict::Read(_)),
        "{:?}",
        page.verdict
    );
    assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
    let mut stats = TransformStats::default();
    let docs = page
        .records
        .iter()
        .map(|r| match t.transform(r, &mut stats).unwrap() {
            EtmRecord::Asset(a) => serde_json::from_slice(&a.json).unwrap(),
            EtmRecord::Finding(f) => serde_json::from_slice(&f.json).unwrap(),
        })
        .collect();
    (docs, page.repairs.into_iter().collect(), stats)
}

#[test]
fn lone_surrogates_anywhere_become_one_replacement_character_each() {
    let (docs, repairs, stats) = run(
        RecordKind::Asset,
        r#"{"status":"success","note":"\ud800","total_items":1,"data":[{"id":"a-id","asset_unique_id":"a","type":"AwsEc2Instance",
            "data":{"PublicDnsName":{"value":"h\udc00.example"},"Ho\udc00stname":{"value":"ignored"},
            "Tags":{"value":{"k\ud800":"v\udfff","env":"prod"}},
            "RunningServices":{"value":[{"data":{"Name":{"value":"\udc00sshd"},"Exec":{"value":"/usr/sbin/sshd"}}}]}}}]}"#,
    );
    let d = &docs[0];
    assert_eq!(d["fqdn"], "h\u{fffd}.example");
    assert_eq!(d["hostName"], Value::Null, "a mended key is another key");
    assert_eq!(
        d["temp_q_customAttributes"]["orcaCustomAttributes"],
        json!({"env": "prod", "k\u{fffd}": "v\u{fffd}"})
    );
    assert_eq!(
        d["services"],
        json!([{"name": "\u{fffd}sshd", "description": "/usr/sbin/sshd"}])
    );
    // The envelope's one and the row's five.
    assert_eq!(repairs, vec![(Repair::LoneSurrogate, 6)]);
    assert_eq!(stats, TransformStats::default());

    let (docs, repairs, _) = run(
        RecordKind::Finding,
        r#"{"status":"success","data":[{"id":"f","asset_unique_id":"a","name":"n",
            "data":{"Description":{"value":"bad \udc00 text"},"CVE":{"data":{"Id":{"value":"CVE-2024-\ud8003094"},
            "CweTypes":{"value":["CWE-\udc00"]}}},"CvssVector":{"value":"CVSS:3.1/\udc00"}}}]}"#,
    );
    let f = &docs[0];
    assert_eq!(f["description"], "bad \u{fffd} text");
    assert_eq!(f["externalFindingId"], "CVE-2024-\u{fffd}3094");
    assert_eq!(
        f["findingType"]["vulnerability"]["cveId"],
        "CVE-2024-\u{fffd}3094"
    );
    assert_eq!(
        f["findingType"]["vulnerability"]["cweIds"],
        json!(["CWE-\u{fffd}"])
    );
    assert_eq!(
        f["findingType"]["vulnerability"]["cvss"]["vector"],
        "CVSS:3.1/\u{fffd}"
    );
    assert_eq!(repairs, vec![(Repair::LoneSurrogate, 4)]);
}

#[test]
fn numbers_beyond_f64_are_null_and_counted_in_every_numeric_field() {
    let (docs, repairs, stats) = run(
        RecordKind::Asset,
        r#"{"status":"success","data":[{"id":"a-id","asset_unique_id":"a","type":"AwsEc2Instance",
            "data":{"CpuCount":{"value":1e400},"Memory":{"value":-1e400},"CpuFrequency":{"value":1E+400},
            "TotalDisksBytes":{"value":2e999},"Hostname":{"value":"h"},
            "assetPorts":{"count":1,"value":[{"data":{"PortNumber":{"value":1e400},"Protocol":{"value":"tcp"},
                "FirstSeen":{"value":1e400},"LastUpdated":{"value":1711713600}}}]},
            "assetApplications":{"count":1,"value":[{"data":{"Name":{"value":"n"},"InstallDate":{"value":-1e400}}}]}}}]}"#,
    );
    let d = &docs[0];
    assert_eq!(d["hostName"], "h");
    assert_eq!(d["processor"]["numberOfCpu"], Value::Null);
    assert_eq!(d["processor"]["speed"], Value::Null);
    assert_eq!(d["biosInfo"]["totalMemory"], Value::Null);
    assert_eq!(d["volumes"], json!([]));
    assert_eq!(
        d["ports"],
        json!([{"port": null, "protocol": "tcp", "detectedService": null,
                "firstFound": null, "lastUpdated": "2024-03-29T12:00:00Z"}])
    );
    assert_eq!(d["softwares"][0]["installedDate"], Value::Null);
    assert_eq!(repairs, vec![(Repair::NumberOutOfRange, 7)]);
    // Nulled by the parse stage: not counted twice.
    assert_eq!(stats, TransformStats::default());

    let (docs, repairs, stats) = run(
        RecordKind::Finding,
        r#"{"status":"success","total_items":1,"data":[{"id":"f","asset_unique_id":"a",
            "data":{"FirstSeen":{"value":1e400},"CVE":{"data":{"Cvss2Score":{"value":1e400},"Cvss3Score":{"value":"1e400"}}},
            "CvssSeverity":{"value":"HIGH"}}}]}"#,
    );
    let f = &docs[0];
    assert_eq!(f["firstFoundOn"], Value::Null);
    assert_eq!(
        f["findingType"]["vulnerability"]["cvss"]["cvss2Base"],
        Value::Null
    );
    assert_eq!(f["severity"], 4);
    assert_eq!(repairs, vec![(Repair::NumberOutOfRange, 2)]);
    // A number beyond f64 sent as a string is the transform's to null and count.
    assert_eq!(
        f["findingType"]["vulnerability"]["cvss"]["cvss3Base"],
        Value::Null
    );
    assert_eq!(stats.invalid_numbers, 1);

    // Integers beyond 64 bits, bare or as strings, in integer fields.
    let (docs, repairs, stats) = run(
        RecordKind::Asset,
        r#"{"status":"success","data":[{"id":"a-id","asset_unique_id":"a","type":"AwsEc2Instance",
            "data":{"CpuCount":{"value":123456789012345678901234567890},"Memory":{"value":"99999999999999999999999"}}}]}"#,
    );
    assert_eq!(docs[0]["processor"]["numberOfCpu"], Value::Null);
    assert_eq!(docs[0]["biosInfo"]["totalMemory"], Value::Null);
    assert_eq!(repairs, vec![(Repair::NumberOutOfRange, 1)]);
    assert_eq!(stats.invalid_numbers, 2);
}

#[test]
fn text_broken_below_the_escapes_is_mended_the_same_way() {
    // Case 01's kind in raw bytes: invalid UTF-8 (a stray byte, a cut
    // sequence) and a raw control character inside a string.
    let mut body = br#"{"status":"success","data":[{"id":"a-id","asset_unique_id":"a","data":{"Hostname":{"value":"web"#.to_vec();
    body.extend_from_slice(b"\xff-1\"},\"CpuType\":{\"value\":\"Xeon \xe2\x82\"},\"DistributionName\":{\"value\":\"Ubu\nntu\"}}}]}");
    let (docs, repairs, _) = run(RecordKind::Asset, body);
    assert_eq!(docs[0]["hostName"], "web\u{fffd}-1");
    assert_eq!(docs[0]["processor"]["description"], "Xeon \u{fffd}");
    assert_eq!(docs[0]["operatingSystem"]["name"], "Ubu\nntu");
    assert_eq!(
        repairs,
        vec![(Repair::InvalidUtf8, 1), (Repair::ControlCharacter, 1)]
    );
}

/// Documents and dead letters of one page, visited as the pipeline does
/// (rows marked when a broken character was replaced).
fn run_marked(
    kind: RecordKind,
    body: &[u8],
) -> (
    Vec<EtmRecord>,
    Vec<stages::model::DeadLetter>,
    TransformStats,
) {
    let (q, t) = query_and_transformer(kind);
    let mut parser = Parser::new();
    let mut page = parser.parse(&q, 0, body);
    let mut dead = std::mem::take(&mut page.dead_letters);
    let (mut out, mut stats) = (Vec::new(), TransformStats::default());
    page.for_each_row_marked(|row, replaced| {
        match t.transform_marked(kind, row, replaced, &q, 0, &mut stats) {
            Ok(r) => out.push(r),
            Err(d) => dead.push(*d),
        }
    });
    (out, dead, stats)
}

#[test]
fn ids_that_differ_only_in_a_broken_character_are_never_merged() {
    // Two findings whose ids differ only inside a lone surrogate, a third
    // whose asset id does, and a fourth whose broken character is in its
    // text only: that one is published with U+FFFD as the cases README says.
    let (out, dead, stats) = run_marked(
        RecordKind::Finding,
        br#"{"status":"success","data":[
            {"id":"v-\udc00","asset_unique_id":"a","name":"n1"},
            {"id":"v-\udc01","asset_unique_id":"a","name":"n2"},
            {"id":"v-3","asset_unique_id":"a-\ud800","name":"n3"},
            {"id":"v-4","asset_unique_id":"a","name":"bad \udc00 name"}]}"#,
    );
    assert_eq!(stats.ambiguous_id, 3);
    let reasons: Vec<(&str, &str, Option<&str>)> = dead
        .iter()
        .map(|d| (d.stage, d.reason.as_str(), d.id.as_deref()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("transform", "ambiguous_id", None),
            ("transform", "ambiguous_id", None),
            // Its own id is sound: the ledger keeps it from FIXED.
            ("transform", "ambiguous_id", Some("v-3")),
        ]
    );
    assert!(dead[0].detail.contains("its Orca id"), "{}", dead[0].detail);
    assert!(dead[2].detail.contains("asset id"), "{}", dead[2].detail);
    let [EtmRecord::Finding(f)] = &out[..] else {
        panic!("one finding published: {out:?}")
    };
    assert_eq!((f.asset_id.as_str(), f.vendor_id.as_str()), ("a", "v-4"));

    // Invalid UTF-8 bytes in asset ids: two different bytes, two dead
    // letters, not one asset made of both.
    let mut body = br#"{"status":"success","data":[{"id":"i1","asset_unique_id":"a-"#.to_vec();
    body.push(0xff);
    body.extend_from_slice(br#"","type":"AwsEc2Instance"},{"id":"i2","asset_unique_id":"a-"#);
    body.push(0xfe);
    body.extend_from_slice(br#"","type":"AwsEc2Instance"},{"id":"i3","asset_unique_id":"b","type":"AwsEc2Instance"}]}"#);
    let (out, dead, stats) = run_marked(RecordKind::Asset, &body);
    assert_eq!(stats.ambiguous_id, 2);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead
        .iter()
        .all(|d| d.reason == "ambiguous_id" && d.record == "asset"));
    let [EtmRecord::Asset(a)] = &out[..] else {
        panic!("one asset published: {out:?}")
    };
    assert_eq!(a.asset_id, "b");

    // A real U+FFFD in an id, sent as such, is an id like any other.
    let (out, dead, _) = run_marked(
        RecordKind::Finding,
        r#"{"status":"success","data":[{"id":"v-\ufffd","asset_unique_id":"a","name":"n"}]}"#
            .as_bytes(),
    );
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(out.len(), 1);
}
