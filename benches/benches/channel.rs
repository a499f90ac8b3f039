//! The channel runtime: batches through a chain of no-op stages, each a
//! thread on a bounded, metered channel.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stages::channel;

const BATCHES: u64 = 10_000;
const BATCH: usize = 100;

fn chain(stages: usize) -> u64 {
    let (tx0, mut rx) = channel::bounded::<Vec<u64>>("c0", 4 * BATCH);
    let mut handles = Vec::new();
    for _ in 0..stages {
        let (tx, next) = channel::bounded::<Vec<u64>>("c", 4 * BATCH);
        let input = rx;
        handles.push(std::thread::spawn(move || {
            while let Some(b) = input.recv_blocking() {
                if tx.send_blocking(b).is_err() {
                    break;
                }
            }
        }));
        rx = next;
    }
    let producer = std::thread::spawn(move || {
        for i in 0..BATCHES {
            if tx0.send_blocking(vec![i; BATCH]).is_err() {
                break;
            }
        }
    });
    let mut n = 0;
    while let Some(b) = rx.recv_blocking() {
        n += b.len() as u64;
    }
    let _ = producer.join();
    for h in handles {
        let _ = h.join();
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCHES * BATCH as u64));
    for stages in [1, 3] {
        g.bench_function(format!("{stages} no-op stages, batches of {BATCH}"), |b| {
            b.iter(|| chain(stages))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
