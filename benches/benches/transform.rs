//! transform: records per second through the default transform map.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
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
        });
        let records = Parser::new().parse(&q, 0, &body).records;
        let mut g = c.benchmark_group(format!("transform/{model}"));
        g.throughput(Throughput::Elements(records.len() as u64));
        g.bench_function("default map", |b| {
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
