//! parse: the project's simd-json path beside serde_json on the same bytes,
//! beside owned trees (what the pipeline built before it read rows off the
//! tape), and beside simd-json's raw tape (the ceiling).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stages::model::RecordKind;
use stages::page::QueryInfo;
use stages::parse::Parser;

fn bench(c: &mut Criterion) {
    let t = benches::tenant(100_000);
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
        let mut g = c.benchmark_group(format!("parse/{model}"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        let mut parser = Parser::new();
        g.bench_function("orca-etm parse (tape, verdict, ids)", |b| {
            b.iter(|| match parser.parse(&q, 0, &body).verdict {
                stages::page::PageVerdict::Read(s) => s.rows,
                _ => 0,
            })
        });
        g.bench_function("orca-etm parse, then visit every row", |b| {
            b.iter(|| {
                let mut n = 0usize;
                parser.parse(&q, 0, &body).for_each_row(|_| n += 1);
                n
            })
        });
        g.bench_function("owned trees (simd-json OwnedValue, before)", |b| {
            b.iter_batched_ref(
                || body.clone(),
                |buf| simd_json::to_owned_value(buf).map(|_| 1).unwrap_or(0),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("serde_json::Value", |b| {
            b.iter(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .map(|v| v["data"].as_array().map_or(0, |a| a.len()))
                    .unwrap_or(0)
            })
        });
        // The ceiling: simd-json's tape alone, with its buffers and tape
        // reused and the input copy made outside the timing (the project's
        // parse pays for its copy of the body).
        let mut buffers = simd_json::Buffers::default();
        let mut tape = simd_json::Tape::null();
        g.bench_function("simd-json tape (ceiling)", |b| {
            b.iter_batched_ref(
                || {
                    let mut padded = body.clone();
                    padded.resize(body.len() + simd_json::INPUT_PADDING, b' ');
                    padded
                },
                |buf| {
                    let mut t = std::mem::replace(&mut tape, simd_json::Tape::null()).reset();
                    let n = simd_json::fill_tape_padded(buf, body.len(), &mut buffers, &mut t)
                        .map(|()| t.0.len())
                        .unwrap_or(0);
                    tape = t.reset();
                    n
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
