//! What observing a run costs: rendering `/metrics` for a run's worth of
//! series, and the metric updates fetch makes per request. Multiplied by a
//! 1,000,000-finding run's ~1,050 requests and one scrape a second, they
//! bound the exporter's share of that run's CPU time (see
//! `benches/metrics-overhead.sh` for the end-to-end figure).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use metrics::SharedString;
use pipeline::config::Config;
use pipeline::runtime::StageStats;
use pipeline::telemetry::{self, RunMeter};
use stages::channel;
use stages::telemetry::{self as t, lv, Scope};
use stages::transform::TransformStats;

const MODELS: [&str; 7] = [
    "AwsEc2Instance",
    "AzureComputeVm",
    "GcpVmInstance",
    "VmwareVmInstance",
    "OciComputeVmInstance",
    "AliCloudEcsInstance",
    "VulnerabilityV2",
];

fn bench(c: &mut Criterion) {
    let exporter = telemetry::install().unwrap();
    let cfg = Config::parse("profile = \"bench\"\n[orca]\ndomain = \"x\"\n").unwrap();
    // A run's registry: its stages, channels and fetch series.
    let meter = RunMeter::start(&cfg);
    let mut keep = Vec::new();
    for (stage, workers) in [
        ("parse", 2),
        ("transform", 1),
        ("spill", 1),
        ("sink_ndjson", 1),
    ] {
        let s = StageStats::new(stage, workers);
        s.record(1000, 1 << 20, 1000, Instant::now());
        meter.stage(&s);
        keep.push(s);
    }
    let mut chans = Vec::new();
    for name in [
        "pages",
        "records",
        "etm_records",
        "dead_letters",
        "ledger_writes",
    ] {
        let (tx, rx) = channel::bounded::<Vec<u8>>(name, 1000);
        tx.send_blocking(vec![0; 10]).unwrap();
        meter.channel(tx.stats());
        chans.push((tx, rx));
    }
    let scope = meter.scope().clone();
    let duration = scope.histogram(t::FETCH_REQUEST_DURATION);
    let wait = scope.histogram(t::FETCH_RATE_LIMIT_WAIT);
    let per_model: Vec<_> = MODELS
        .iter()
        .map(|m| {
            let l = [("model", SharedString::const_str(m))];
            (
                scope.counter(t::FETCH_PAGES, &l),
                scope.counter(t::FETCH_ROWS, &l),
            )
        })
        .collect();
    for status in ["200", "429", "503"] {
        scope
            .counter(t::FETCH_REQUESTS, &[("status", lv(status))])
            .increment(1);
    }
    duration.record(0.2);
    wait.record(1.0);

    let mut g = c.benchmark_group("telemetry");
    g.sample_size(20);
    g.bench_function("render /metrics (one run's series)", |b| {
        b.iter(|| exporter.render().len())
    });
    let mut i = 0usize;
    g.bench_function("metric updates of one Orca request", |b| {
        b.iter(|| {
            i += 1;
            // As the pager does: wait, request by status, duration, page and rows.
            wait.record(0.001);
            scope
                .counter(t::FETCH_REQUESTS, &[("status", lv("200"))])
                .increment(1);
            duration.record(0.05);
            let (pages, rows) = &per_model[i % MODELS.len()];
            pages.increment(1);
            rows.increment(1000);
        })
    });
    let mut now = TransformStats::default();
    let mut reported = TransformStats::default();
    g.bench_function("a transform worker's report (once a second)", |b| {
        b.iter(|| {
            now.truncated_tags += 3;
            now.unmapped_severity += 1;
            telemetry::transform_deltas(&Scope::new("bench"), &now, &mut reported);
        })
    });
    g.finish();
    drop(chans);
    drop(keep);
}

criterion_group!(benches, bench);
criterion_main!(benches);
