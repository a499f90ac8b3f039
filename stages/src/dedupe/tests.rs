use super::*;
use crate::model::{EtmAsset, EtmFinding, EtmRecord};

fn asset(id: &str) -> EtmRecord {
    EtmRecord::Asset(EtmAsset {
        asset_id: id.into(),
        json: format!(r#"{{"externalAssetId":"{id}","hostName":"h-{id}"}}"#).into_bytes(),
    })
}

fn finding(asset: &str, v: &str, extra: &str) -> EtmRecord {
    EtmRecord::Finding(EtmFinding {
        asset_id: asset.into(),
        vendor_id: v.into(),
        json: format!(r#"{{"externalFindingId":"CVE-{v}"{extra}}}"#).into_bytes(),
    })
}

/// Spill, assemble and merge `records`; the NDJSON text and the counts.
fn publish(records: &[EtmRecord], cfg: &DedupeConfig) -> (String, AssembleStats) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SpillWriter::create(&dir.path().join("spill"), cfg.partitions).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    let (parts, _) = w.finish().unwrap();
    let (runs, stats) = assemble_all(parts, cfg, &dir.path().join("runs")).unwrap();
    let mut out = String::new();
    let mut last = String::new();
    let mut merge = Merge::open(runs).unwrap();
    while let Some(a) = merge.next_asset().unwrap() {
        assert!(a.asset_id > last, "documents must come in asset id order");
        last = a.asset_id.clone();
        let mut doc = Vec::new();
        render(&mut doc, &a, |_| "NEW", &[]);
        out.push_str(std::str::from_utf8(&doc).unwrap());
        out.push('\n');
    }
    merge.remove_files().unwrap();
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "spill and run files are removed: {left:?}");
    (out, stats)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn groups_findings_under_assets_sorted_and_deduped() {
    let recs = vec![
        finding("b", "2", ""),
        asset("b"),
        finding("a", "9", ""),
        finding("b", "1", ""),
        asset("a"),
        finding("b", "2", ""), // duplicate
        asset("b"),            // duplicate
        asset("c"),
    ];
    let (out, stats) = publish(&recs, &DedupeConfig::default());
    assert_eq!(
        out,
        concat!(
            r#"{"externalAssetId":"a","hostName":"h-a","finding":[{"externalFindingId":"CVE-9","status":"NEW"}]}"#,
            "\n",
            r#"{"externalAssetId":"b","hostName":"h-b","finding":[{"externalFindingId":"CVE-1","status":"NEW"},{"externalFindingId":"CVE-2","status":"NEW"}]}"#,
            "\n",
            r#"{"externalAssetId":"c","hostName":"h-c","finding":[]}"#,
            "\n"
        )
    );
    assert_eq!(stats.assets, 3);
    assert_eq!(stats.findings, 3);
    assert_eq!(stats.duplicate_assets, 1);
    assert_eq!(stats.duplicate_findings, 1);
    assert_eq!(stats.conflicting_duplicates, 0);
    assert_eq!(stats.orphan_assets, 0);
}

#[test]
fn orphan_findings_get_a_minimal_document() {
    let (out, stats) = publish(&[finding("gone\"1", "7", "")], &DedupeConfig::default());
    assert_eq!(
        out,
        "{\"externalAssetId\":\"gone\\\"1\",\"sourceNativeKey\":\"gone\\\"1\",\"source\":\"Orca Security\",\"finding\":[{\"externalFindingId\":\"CVE-7\",\"status\":\"NEW\"}]}\n"
    );
    serde_json::from_str::<serde_json::Value>(out.trim()).unwrap();
    assert_eq!((stats.orphan_assets, stats.orphan_findings), (1, 1));
}

#[test]
fn conflicting_duplicates_keep_the_same_one_whatever_the_order() {
    let a = finding("x", "1", r#","v":1"#);
    let b = finding("x", "1", r#","v":2"#);
    let (one, s1) = publish(
        &[asset("x"), a.clone(), b.clone()],
        &DedupeConfig::default(),
    );
    let (two, s2) = publish(&[b, asset("x"), a], &DedupeConfig::default());
    assert_eq!(one, two);
    assert!(one.contains(r#""v":2"#));
    assert_eq!(s1.conflicting_duplicates, 1);
    assert_eq!(s2.conflicting_duplicates, 1);
}

#[test]
fn oversized_partitions_are_split_and_give_the_same_output() {
    let mut recs = Vec::new();
    for a in 0..300 {
        recs.push(asset(&format!("asset-{a:04}")));
        for f in 0..(a % 7) {
            recs.push(finding(&format!("asset-{a:04}"), &format!("{f}"), ""));
        }
    }
    let roomy = DedupeConfig::default();
    let tight = DedupeConfig {
        partitions: 3,
        assemble_budget_bytes: 2_000,
        assemble_workers: 2,
    };
    let (a, sa) = publish(&recs, &roomy);
    let (b, sb) = publish(&recs, &tight);
    assert_eq!(a, b);
    assert_eq!(sa.resplits, 0);
    assert!(sb.resplits >= 3, "{sb:?}");
    assert_eq!(sb.assets, 300);
    assert_eq!(sb.findings, (0..300).map(|a| a % 7).sum::<u64>());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    #[test]
    fn output_is_independent_of_arrival_order_and_duplication(
        seed in 0u64..1000,
        dup in proptest::collection::vec(0usize..40, 0..30),
    ) {
        use rand::{seq::SliceRandom, SeedableRng};
        let mut recs = Vec::new();
        for a in 0..20 {
            recs.push(asset(&format!("a{a}")));
            for f in 0..(a % 4) {
                recs.push(finding(&format!("a{a}"), &format!("f{f}"), ""));
            }
        }
        let (clean, _) = publish(&recs, &DedupeConfig::default());
        let mut noisy = recs.clone();
        for d in dup {
            noisy.push(recs[d % recs.len()].clone());
        }
        noisy.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(seed));
        let cfg = DedupeConfig { partitions: 4, assemble_budget_bytes: 600, assemble_workers: 2 };
        let (got, _) = publish(&noisy, &cfg);
        proptest::prop_assert_eq!(got, clean);
    }
}

#[test]
fn findings_stream_once_read_again_from_disk_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DedupeConfig {
        partitions: 2,
        ..DedupeConfig::default()
    };
    let mut recs = vec![asset("a1"), asset("a2"), asset("a3")];
    for a in ["a1", "a2", "a3"] {
        for v in 0..50 {
            recs.push(finding(a, &format!("{a}-v{v:03}"), ""));
        }
    }
    let mut w = SpillWriter::create(&dir.path().join("spill"), cfg.partitions).unwrap();
    for r in &recs {
        w.write(r).unwrap();
    }
    let (parts, _) = w.finish().unwrap();
    let (runs, _) = assemble_all(parts, &cfg, &dir.path().join("runs")).unwrap();
    let mut merge = Merge::open(runs).unwrap();

    // a1: read, then read again from its run file: the same, in order.
    let h1 = merge.next_head().unwrap().unwrap();
    assert_eq!((h1.asset_id.as_str(), h1.findings), ("a1", 50));
    let mut first = Vec::new();
    merge
        .findings::<DedupeError>(|v, j| {
            first.push((v.to_vec(), j.to_vec()));
            Ok(())
        })
        .unwrap();
    let mut again = Vec::new();
    merge
        .reread::<DedupeError>(&h1, |v, j| {
            again.push((v.to_vec(), j.to_vec()));
            Ok(())
        })
        .unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(first, again);
    assert_eq!(first[0].0, b"a1-v000");

    // a2: its findings never read; the next head still comes right.
    let h2 = merge.next_head().unwrap().unwrap();
    assert_eq!(h2.asset_id, "a2");
    let h3 = merge.next_head().unwrap().unwrap();
    assert_eq!((h3.asset_id.as_str(), h3.findings), ("a3", 50));
    let a3 = {
        let mut n = 0;
        merge
            .findings::<DedupeError>(|v, _| {
                assert!(v.starts_with(b"a3-"));
                n += 1;
                Ok(())
            })
            .unwrap();
        n
    };
    assert_eq!(a3, 50);
    // A skipped asset can still be read from disk.
    let mut n2 = 0;
    merge
        .reread::<DedupeError>(&h2, |v, _| {
            assert!(v.starts_with(b"a2-"));
            n2 += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n2, 50);
    assert!(merge.next_head().unwrap().is_none());
}
