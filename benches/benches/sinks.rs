//! sinks: per-document cost of the CSV sink and of laying a document out
//! for the Qualys webhook (payload profile csam-v1), on realistic documents
//! (25 findings, 20 software entries each).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stages::sink::config::CsvConfig;
use stages::sink::qualys::PayloadProfile;
use stages::sink::{split_document, CsvSink, Sink};

/// 1,000 documents as the publish phase renders them.
fn documents() -> Vec<(String, Vec<u8>)> {
    (0..1_000u32)
        .map(|a| {
            let id = format!("vm_123456789012_i-{a:017x}");
            let softwares = (0..20)
                .map(|i| format!(r#"{{"name":"pkg{i}","version":"1.{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",");
            let findings = (0..25u32)
                .map(|f| {
                    format!(
                        r#"{{"externalFindingId":"CVE-2024-{f}","name":"CVE-2024-{f} - pkg","severity":4,"qds":80,"status":"NEW","vendorProductName":"Orca Security","description":"{}","firstFoundOn":"2026-02-09T13:15:04Z","findingType":{{"vulnerability":{{"cveId":"CVE-2024-{f}","vendorId":"f{a:08x}-{f:04x}","isPatchAvailable":true,"cweIds":["CWE-79","CWE-89"],"cvss":{{"vector":"CVSS:3.1/AV:N","cvss2Base":null,"cvss3Base":7.5}}}}}}}}"#,
                        "x".repeat(300)
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let doc = format!(
                r#"{{"externalAssetId":"{id}","sourceNativeKey":"{id}","source":"Orca Security","hostName":"host-{a}","cloudProvider":"EC2","networkInterfaces":[{{"macAddress":"0a:1b:2c:3d:4e:5f","ipAddress":"10.0.1.15"}}],"softwares":[{softwares}],"finding":[{findings}]}}"#
            );
            (id, doc.into_bytes())
        })
        .collect()
}

/// A document as the publish phase hands it to sinks: the asset, then each finding.
type Parts = (String, Vec<u8>, Vec<Vec<u8>>);

fn bench(c: &mut Criterion) {
    let docs = documents();
    let bytes: usize = docs.iter().map(|(_, d)| d.len()).sum();
    let parts: Vec<Parts> = docs
        .iter()
        .map(|(id, d)| match split_document(d) {
            Ok((asset, findings)) => (id.clone(), asset, findings),
            Err(e) => panic!("{e}"),
        })
        .collect();
    let mut g = c.benchmark_group("sinks");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes as u64));
    let dir = std::env::temp_dir().join(format!("orca-etm-bench-sinks-{}", std::process::id()));
    g.bench_function("csv (1000 docs, 25000 rows)", |b| {
        b.iter(|| {
            let Ok(mut sink) = CsvSink::create(&CsvConfig::default(), &dir) else {
                panic!("csv sink")
            };
            for (id, asset, findings) in &parts {
                let _ = sink.begin_document(id, asset);
                for f in findings {
                    let _ = sink.finding(f);
                }
                let _ = sink.end_document();
            }
            Box::new(sink).commit().map(|r| r.bytes).unwrap_or(0)
        })
    });
    let Some(profile) = PayloadProfile::by_name("csam-v1") else {
        panic!("profile")
    };
    g.bench_function("qualys csam-v1 layout (1000 docs)", |b| {
        b.iter(|| {
            parts
                .iter()
                .filter_map(|(id, asset, findings)| {
                    let mut e = profile.begin(id, asset).ok()?;
                    for f in findings {
                        e.finding(f).ok()?;
                    }
                    Some(e.finish().json.len())
                })
                .sum::<usize>()
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
