//! Whatever values arrive in whatever field, the transform never panics,
//! and reads a record on the page's tape exactly as it reads the same
//! record as an owned tree.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value};
use simd_json::OwnedValue;
use stages::model::{EtmRecord, OrcaRecord, RecordKind};
use stages::page::QueryInfo;
use stages::transform::{ScoringConfig, TransformMap, TransformStats, Transformer};

const FIELDS: &[&str] = &[
    "Hostname",
    "InstanceId",
    "PublicDnsName",
    "MacAddresses",
    "assetIps",
    "Memory",
    "DistributionName",
    "DistributionVersion",
    "OsBitMode",
    "CloudAccount",
    "Tags",
    "assetPorts",
    "RunningServices",
    "CpuType",
    "CpuCount",
    "CpuFrequency",
    "TotalDisksBytes",
    "assetApplications",
    "CVE",
    "CvssSeverity",
    "Description",
    "FirstSeen",
    "ThreatImpact",
    "CvssVector",
    "PatchAvailable",
    "CveId",
    "CvssScore",
    "HasExploit",
    "Inventory",
    "PortNumber",
    "Protocol",
    "ServiceName",
    "LastUpdated",
    "Name",
    "Exec",
    "Version",
    "InstallDate",
    "IsOsPackage",
    "Id",
    "PublicName",
    "CweTypes",
    "Cvss2Score",
    "Cvss3Score",
    "CloudProvider",
    "AssetUniqueId",
];

fn strings() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("{bad".to_owned()),
        Just("[\"a\",1,null]".to_owned()),
        Just("{\"env\":{\"x\":[1]}}".to_owned()),
        Just("2024-03-29T12:00:00.1234567890123Z".to_owned()),
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("0000-01-01T00:00:00+23:59".to_owned()),
        Just("-99999999999999999999".to_owned()),
        Just("170141183460469231731687303715884105727".to_owned()),
        Just("1e400".to_owned()),
        Just("NaN".to_owned()),
        Just("AWS".to_owned()),
        Just("CRITICAL".to_owned()),
        Just("::ffff:1.2.3.4".to_owned()),
        Just("\u{fffd}\u{0}".to_owned()),
        any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        strings().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("value".to_owned()),
        Just("count".to_owned()),
        Just("data".to_owned()),
        Just("key".to_owned()),
        Just("Value".to_owned()),
        Just("0".to_owned()),
        prop::sample::select(FIELDS).prop_map(str::to_owned),
        "[a-z]{0,3}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An item whose every known field holds an arbitrary value, bare or wrapped.
fn item() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((value(), 0..3u8), FIELDS.len()),
        // Mostly a usable key, so most items get past the key check.
        prop_oneof![3 => Just(Value::from("k")), 1 => value()],
        value(),
        leaf(),
    )
        .prop_map(|(vals, id, name, type_)| {
            let mut data = Map::new();
            for (f, (v, wrap)) in FIELDS.iter().zip(vals) {
                let v = match wrap {
                    0 => v,
                    1 => serde_json::json!({ "value": v }),
                    _ => serde_json::json!({ "count": 1, "value": [{ "data": { *f: { "value": v } } }], "data": { *f: { "value": null } } }),
                };
                data.insert((*f).to_owned(), v);
            }
            serde_json::json!({ "id": id, "name": name, "type": type_, "asset_unique_id": id, "data": data })
        })
}

fn owned(v: &Value) -> OwnedValue {
    let mut bytes = serde_json::to_vec(v).unwrap();
    simd_json::to_owned_value(&mut bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_values_never_panic(item in item(), whole in value()) {
        let t = Transformer::new(TransformMap::default_map(), ScoringConfig::default()).unwrap();
        let mut stats = TransformStats::default();
        for kind in [RecordKind::Asset, RecordKind::Finding] {
            for v in [&item, &whole] {
                let rec = OrcaRecord {
                    kind,
                    item: owned(v),
                    query: Arc::new(QueryInfo { label: "p".into(), model: "p".into(), kind, track_first_seen: false }),
                    offset: 0,
                };
                if let Ok(out) = t.transform(&rec, &mut stats) {
                    let bytes = match out {
                        stages::model::EtmRecord::Asset(a) => a.json,
                        stages::model::EtmRecord::Finding(f) => f.json,
                    };
                    // Always one JSON object.
                    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert!(parsed.is_object());
                }
            }
        }
    }
}

fn output(r: Result<EtmRecord, Box<stages::model::DeadLetter>>) -> Result<Vec<u8>, String> {
    match r {
        Ok(EtmRecord::Asset(a)) => Ok([a.asset_id.into_bytes(), a.json].concat()),
        Ok(EtmRecord::Finding(f)) => {
            Ok([f.asset_id.into_bytes(), f.vendor_id.into_bytes(), f.json].concat())
        }
        // Not the raw excerpt: an owned tree forgets the input's key order.
        Err(d) => Err(format!("{} {:?}", d.reason, d.id)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tape_and_owned_records_transform_alike(item in item()) {
        let t = Transformer::new(TransformMap::default_map(), ScoringConfig::default()).unwrap();
        let text = serde_json::to_vec(&item).unwrap();
        let mut on_tape = text.clone();
        let tape = simd_json::to_tape(&mut on_tape).unwrap();
        for kind in [RecordKind::Asset, RecordKind::Finding] {
            let q = Arc::new(QueryInfo { label: "p".into(), model: "p".into(), kind, track_first_seen: false });
            let rec = OrcaRecord { kind, item: owned(&item), query: q.clone(), offset: 7 };
            let (mut s1, mut s2) = (TransformStats::default(), TransformStats::default());
            let from_tree = output(t.transform(&rec, &mut s1));
            let from_tape = output(t.transform_item(kind, tape.as_value(), &q, 7, &mut s2));
            prop_assert_eq!(from_tree, from_tape);
            prop_assert_eq!(format!("{s1:?}"), format!("{s2:?}"));
        }
    }
}
