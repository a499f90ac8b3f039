//! dedupe and assemble: records through spill, assembly and the sorted
//! merge; and NDJSON encoding of the assembled documents.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stages::dedupe::{self, DedupeConfig, Merge, SpillWriter};
use stages::model::{EtmAsset, EtmFinding, EtmRecord};
use stages::sink::{NdjsonSink, Sink};

/// 2,000 assets with 25 findings each (+10% duplicates), realistic sizes.
fn records() -> Vec<EtmRecord> {
    let mut out = Vec::new();
    for a in 0..2_000u32 {
        let id = format!("vm_123456789012_i-{a:017x}");
        out.push(EtmRecord::Asset(EtmAsset {
            asset_id: id.clone(),
            json: format!(
                r#"{{"externalAssetId":"{id}","hostName":"host-{a}","softwares":[{}]}}"#,
                (0..20)
                    .map(|i| format!(r#"{{"name":"pkg{i}","version":"1.{i}"}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into_bytes(),
        }));
        for f in 0..25u32 {
            let v = format!("f{a:08x}-{f:04x}-4000-8000-000000000000");
            let rec = EtmRecord::Finding(EtmFinding {
                asset_id: id.clone(),
                vendor_id: v.clone(),
                json: format!(r#"{{"externalFindingId":"CVE-2024-{f}","name":"CVE-2024-{f} - pkg","severity":4,"qds":80,"description":"{}","findingType":{{"vulnerability":{{"vendorId":"{v}"}}}}}}"#, "x".repeat(300)).into_bytes(),
            });
            if f % 10 == 0 {
                out.push(rec.clone());
            }
            out.push(rec);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let recs = records();
    let mut g = c.benchmark_group("dedupe");
    g.sample_size(10);
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("spill + assemble + merge", |b| {
        b.iter(|| {
            let dir = tempfile_dir();
            let cfg = DedupeConfig::default();
            let mut w = match SpillWriter::create(&dir.join("spill"), cfg.partitions) {
                Ok(w) => w,
                Err(e) => panic!("{e}"),
            };
            for r in &recs {
                let _ = w.write(r);
            }
            let Ok((parts, _)) = w.finish() else {
                panic!("spill")
            };
            let Ok((runs, _)) = dedupe::assemble_all(parts, &cfg, &dir.join("runs")) else {
                panic!("assemble")
            };
            let Ok(mut m) = Merge::open(runs) else {
                panic!("merge")
            };
            let mut n = 0;
            while let Ok(Some(a)) = m.next_asset() {
                n += a.findings.len();
            }
            let _ = m.remove_files();
            let _ = std::fs::remove_dir_all(&dir);
            n
        })
    });
    g.finish();

    // NDJSON encoding: render + write of assembled documents.
    let dir = tempfile_dir();
    let cfg = DedupeConfig::default();
    let Ok(mut w) = SpillWriter::create(&dir.join("spill"), 8) else {
        panic!("spill")
    };
    for r in &recs {
        let _ = w.write(r);
    }
    let Ok((parts, _)) = w.finish() else {
        panic!("spill")
    };
    let Ok((runs, _)) = dedupe::assemble_all(parts, &cfg, &dir.join("runs")) else {
        panic!("assemble")
    };
    let Ok(mut m) = Merge::open(runs) else {
        panic!("merge")
    };
    let mut assets = Vec::new();
    while let Ok(Some(a)) = m.next_asset() {
        assets.push(a);
    }
    let mut doc = Vec::new();
    let bytes: usize = assets
        .iter()
        .map(|a| {
            doc.clear();
            dedupe::render(&mut doc, a, |_| "NEW", &[]);
            doc.len() + 1
        })
        .sum();
    let minimal: Vec<Vec<u8>> = assets
        .iter()
        .map(|a| dedupe::render::minimal_asset(&a.asset_id))
        .collect();
    let mut g = c.benchmark_group("ndjson");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(
        format!("render + write {} documents in parts", assets.len()),
        |b| {
            b.iter(|| {
                let Ok(sink) = NdjsonSink::create(&dir.join("out")) else {
                    panic!("sink")
                };
                // As the publish phase hands documents over: in parts, each
                // finding given its status on the way.
                let mut sink: Box<dyn Sink> = Box::new(sink);
                let mut finding = Vec::with_capacity(1024);
                for (a, min) in assets.iter().zip(&minimal) {
                    let _ = sink.begin_document(&a.asset_id, a.json.as_deref().unwrap_or(min));
                    for (_, json) in &a.findings {
                        finding.clear();
                        dedupe::render::open_object(&mut finding, json);
                        finding.extend_from_slice(b"\"status\":\"NEW\"}");
                        let _ = sink.finding(&finding);
                    }
                    let _ = sink.end_document();
                }
                sink.commit().map(|r| r.documents).unwrap_or(0)
            })
        },
    );
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "orca-etm-bench-dedupe-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let _ = std::fs::create_dir_all(&d);
    d
}

criterion_group!(benches, bench);
criterion_main!(benches);
