//! The transform map as data: TOML round trips, user edits, errors, limits.

use std::sync::Arc;

use serde_json::{json, Value};
use simd_json::OwnedValue;
use stages::model::{EtmRecord, OrcaRecord, RecordKind};
use stages::page::QueryInfo;
use stages::transform::{MapError, ScoringConfig, TransformMap, TransformStats, Transformer};

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

fn asset_bytes(t: &Transformer, item: &str, stats: &mut TransformStats) -> Vec<u8> {
    match t
        .transform(&record(RecordKind::Asset, owned(item)), stats)
        .unwrap()
    {
        EtmRecord::Asset(a) => a.json,
        EtmRecord::Finding(_) => panic!("asset expected"),
    }
}

#[test]
fn default_toml_round_trips() {
    let map = TransformMap::from_toml(TransformMap::default_toml()).unwrap();
    assert_eq!(map, TransformMap::default_map());
    let again = TransformMap::from_toml(&map.to_toml()).unwrap();
    assert_eq!(again, map);
}

#[test]
fn a_user_map_can_rename_and_resource() {
    let text = TransformMap::default_toml().replace(
        "target = \"hostName\"\nsource = [\"data.Hostname.value\"]",
        "target = \"host\"\nsource = [\"data.Name.value\", \"name\"]",
    );
    assert_ne!(text, TransformMap::default_toml());
    // `identity` still names hostName, which the edit removed: refused on load.
    let err = TransformMap::from_toml(&text).unwrap_err();
    assert!(
        err.to_string().contains("identity") && err.to_string().contains("hostName"),
        "{err}"
    );

    let text = text.replace("\"hostName\", ", "\"host\", ");
    let map = TransformMap::from_toml(&text).unwrap();
    let t = Transformer::new(map, ScoringConfig::default()).unwrap();
    let mut stats = TransformStats::default();
    let out: Value = serde_json::from_slice(&asset_bytes(
        &t,
        r#"{"asset_unique_id":"a","name":"from-item","data":{"Hostname":{"value":"ignored"}}}"#,
        &mut stats,
    ))
    .unwrap();
    assert_eq!(out["host"], "from-item");
    assert!(out.get("hostName").is_none());
    assert!(t.identity_fields().contains(&"host".to_owned()));
}

#[test]
fn a_user_map_can_add_a_constant_and_omit_nulls() {
    let text = format!(
        "{}\n{}",
        TransformMap::default_toml().replace("[finding]", "[[asset.field]]\ntarget = \"extra.origin\"\nconst = \"lab\"\n\n[[asset.field]]\ntarget = \"maybe\"\nsource = [\"data.Nope.value\"]\nomit_null = true\n\n[finding]"),
        ""
    );
    let t = Transformer::new(
        TransformMap::from_toml(&text).unwrap(),
        ScoringConfig::default(),
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&asset_bytes(
        &t,
        r#"{"asset_unique_id":"a"}"#,
        &mut TransformStats::default(),
    ))
    .unwrap();
    assert_eq!(out["extra"], json!({"origin": "lab"}));
    assert!(out.get("maybe").is_none());
}

#[test]
fn bad_maps_say_what_is_wrong() {
    let d = TransformMap::default_toml();
    let cases: Vec<(String, &str)> = vec![
        (
            d.replace("convert = \"cloud_provider\"", "convert = \"planet\""),
            "planet",
        ),
        (
            d.replace(
                "source = [\"data.Hostname.value\"]",
                "source = [\"data..Hostname\"]",
            ),
            "hostName",
        ),
        (
            d.replace("target = \"fqdn\"", "target = \"hostName\""),
            "hostName",
        ),
        (
            d.replace("id_field = \"externalAssetId\"", "id_field = \"assetKey\""),
            "assetKey",
        ),
        (
            d.replace("sort_by = [\"name\", \"version\"]", "sort_by = [\"nom\"]"),
            "nom",
        ),
        (
            d.replace("counter = \"truncated_services\"", "counter = \"cut\""),
            "cut",
        ),
        (d.replace("version = 1", "version = 2"), "version 2"),
        (
            d.replace(
                "target = \"source\"\nconst",
                "target = \"source\"\nsource = [\"x\"]\nconst",
            ),
            "both const and source",
        ),
        (
            d.replace(
                "target = \"operatingSystem.name\"",
                "target = \"hostName.name\"",
            ),
            "hostName",
        ),
        (format!("{d}\nunexpected = 1\n"), "unexpected"),
        ("not toml at all [".into(), "TOML"),
    ];
    for (text, needle) in cases {
        let err = TransformMap::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn scoring_is_validated() {
    let bad = [
        ScoringConfig {
            qds: [5, 25, 55, 80, 101],
            default_severity: 3,
        },
        ScoringConfig {
            qds: [5, 25, 55, 80, 95],
            default_severity: 0,
        },
        ScoringConfig {
            qds: [5, 25, 55, 80, 95],
            default_severity: 6,
        },
    ];
    for s in bad {
        assert!(matches!(
            Transformer::new(TransformMap::default_map(), s),
            Err(MapError::Scoring(_))
        ));
    }
    let s: ScoringConfig = toml::from_str("qds = [1, 2, 3, 4, 5]").unwrap();
    assert_eq!(s.default_severity, 3);
}

fn asset_with(field: &str, entries: Vec<String>) -> String {
    format!(
        r#"{{"asset_unique_id":"a","data":{{"{field}":{{"count":{},"value":[{}]}}}}}}"#,
        entries.len(),
        entries.join(",")
    )
}

fn node(fields: &[(&str, String)]) -> String {
    let data: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!(r#""{k}":{{"value":"{v}"}}"#))
        .collect();
    format!(r#"{{"data":{{{}}}}}"#, data.join(","))
}

/// A reproducible shuffle, so the input order differs from sorted order.
fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn limits_keep_200_sorted_and_count() {
    let t = Transformer::new(TransformMap::default_map(), ScoringConfig::default()).unwrap();
    let mut stats = TransformStats::default();
    let order = shuffled(250);

    let tags: Vec<String> = order
        .iter()
        .map(|i| format!(r#""k{i:03}":"v{i}""#))
        .collect();
    let item = format!(
        r#"{{"asset_unique_id":"a","data":{{"Tags":{{"value":{{{}}}}}}}}}"#,
        tags.join(",")
    );
    let out: Value = serde_json::from_slice(&asset_bytes(&t, &item, &mut stats)).unwrap();
    let kept = out["temp_q_customAttributes"]["orcaCustomAttributes"]
        .as_object()
        .unwrap();
    assert_eq!(kept.len(), 200);
    assert!(kept.contains_key("k000") && kept.contains_key("k199") && !kept.contains_key("k200"));
    assert_eq!(stats.truncated_tags, 1);

    let services = |ord: &[usize]| -> String {
        asset_with(
            "RunningServices",
            ord.iter()
                .map(|i| {
                    node(&[
                        ("Name", format!("svc{i:03}")),
                        ("Exec", format!("/bin/{i}")),
                    ])
                })
                .collect(),
        )
    };
    let a = asset_bytes(&t, &services(&order), &mut stats);
    let forward: Vec<usize> = (0..250).collect();
    assert_eq!(
        a,
        asset_bytes(&t, &services(&forward), &mut stats),
        "order of the input must not matter"
    );
    let out: Value = serde_json::from_slice(&a).unwrap();
    let names: Vec<&str> = out["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 200);
    assert_eq!((names[0], names[199]), ("svc000", "svc199"));
    assert_eq!(stats.truncated_services, 2);

    // Softwares: by name, then version.
    let apps: Vec<String> = order
        .iter()
        .map(|i| {
            node(&[
                ("Name", format!("pkg{:03}", i / 2)),
                ("Version", format!("{}.0", i % 2)),
            ])
        })
        .collect();
    let out: Value = serde_json::from_slice(&asset_bytes(
        &t,
        &asset_with("assetApplications", apps),
        &mut stats,
    ))
    .unwrap();
    let sw = out["softwares"].as_array().unwrap();
    assert_eq!(sw.len(), 200);
    assert_eq!(
        (sw[0]["name"].as_str(), sw[0]["version"].as_str()),
        (Some("pkg000"), Some("0.0"))
    );
    assert_eq!(
        (sw[1]["name"].as_str(), sw[1]["version"].as_str()),
        (Some("pkg000"), Some("1.0"))
    );
    assert_eq!(sw[199]["name"], "pkg099");
    assert_eq!(stats.truncated_softwares, 1);

    // 200 exactly is not a cut.
    let tags: Vec<String> = (0..200).map(|i| format!(r#""k{i}":"v""#)).collect();
    let item = format!(
        r#"{{"asset_unique_id":"a","data":{{"Tags":{{"value":{{{}}}}}}}}}"#,
        tags.join(",")
    );
    asset_bytes(&t, &item, &mut stats);
    assert_eq!(stats.truncated_tags, 1);
}

#[test]
fn stats_merge_and_iterate() {
    let mut a = TransformStats {
        invalid_ips: 2,
        ..Default::default()
    };
    let b = TransformStats {
        invalid_ips: 1,
        truncated_tags: 4,
        ..Default::default()
    };
    a += &b;
    a += b;
    let all: Vec<(&str, u64)> = a.iter().collect();
    assert!(all.contains(&("invalid_ips", 4)));
    assert!(all.contains(&("truncated_tags", 8)));
    assert!(all.contains(&("unparseable_dates", 0)));
    assert_eq!(all.len(), 17);
}
