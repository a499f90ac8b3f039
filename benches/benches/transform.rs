//! transform: records per second through the default transform map, read
//! off the page's tape as the pipeline does, beside the same records as
//! owned trees.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stages::json::Json;
use stages::model::RecordKind;
use stages::page::QueryInfo;
use stages::parse::Parser;
use stages::transform::{ScoringConfig, TransformMap, TransformStats, Transformer};

fn bench(c: &mut Criterion) {
    let t = benches::tenant(100_000);
    let tr = match Transformer::new(TransformMap::default_map(), ScoringConfig::default()) {
        Ok(t) => t,
        Err(e) => panic!("default map: {e}"),
    };
    for (model, kind) in [
        ("VulnerabilityV2", RecordKind::Finding),
        ("AwsEc2Instance", RecordKind::Asset),
    ] {
        let body = benches::page_body(&t, model, 0, 1000);
        let q = Arc::new(QueryInfo {
            label: model.into(),
            model: model.into(),
            kind,
            track_first_seen: false,
        });
        let records = Parser::new().parse_owned(&q, 0, &body).records;
        let mut text = body.clone();
        let tape = match simd_json::to_tape(&mut text) {
            Ok(t) => t,
            Err(e) => panic!("page does not parse: {e}"),
        };
        let rows: Vec<_> = tape
            .as_value()
            .get("data")
            .and_then(|d| d.elements())
            .map(|e| e.collect())
            .unwrap_or_default();
        assert_eq!(rows.len(), records.len());
        let mut g = c.benchmark_group(format!("transform/{model}"));
        g.throughput(Throughput::Elements(records.len() as u64));
        g.bench_function("default map, rows on the tape (pipeline)", |b| {
            b.iter(|| {
                let mut stats = TransformStats::default();
                rows.iter()
                    .filter(|r| tr.transform_item(kind, **r, &q, 0, &mut stats).is_ok())
                    .count()
            })
        });
        g.bench_function("default map, owned trees", |b| {
            b.iter(|| {
                let mut stats = TransformStats::default();
                records
                    .iter()
                    .filter(|r| tr.transform(r, &mut stats).is_ok())
                    .count()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
