//! A sink as a stage worker: one thread per sink, fed by its own metered
//! bounded channel of shared batches of document parts.
//!
//! ```text
//! publish ─Arc<PartBatch>─▶ sink_ndjson ──▶ NdjsonSink
//!         ─Arc<PartBatch>─▶ sink_csv ─────▶ CsvSink
//!         ─Arc<PartBatch>─▶ sink_qualys_webhook ─▶ QualysWebhookSink
//! ```
//!
//! The channels are bounded in KiB of parts (see [`PartBatch`]).
//!
//! A slow sink shows as its channel full, the publish thread blocked on it
//! and its stage's utilization near 1. A sink that fails records why, drops
//! its output and keeps draining its channel, so the other sinks go on.
//! Nothing becomes visible until the publish phase says [`SinkStage::finish`]
//! with `commit = true`, which it does only once the ledger holds every write.

use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use stages::channel::{self, ChannelStats, Receiver, Sender};
use stages::sink::{write_part, PartBatch, Sink, SinkReport};

use crate::runtime::{Failure, StageStats};

/// One running sink stage.
pub struct SinkStage<'scope> {
    pub name: &'static str,
    input: Option<Sender<Arc<PartBatch>>>,
    commit: Option<flume::Sender<()>>,
    worker: ScopedJoinHandle<'scope, Result<SinkReport, String>>,
    stats: Arc<StageStats>,
    channel: Arc<ChannelStats>,
    failure: Failure,
}

/// `sink_<name>`, the stage's and its channel's name. Interned: metric and
/// manifest names are `'static`, and a process runs few distinct sinks.
pub fn stage_name(sink: &str) -> &'static str {
    stages::sink::config::intern(&format!("sink_{sink}"))
}

impl<'scope> SinkStage<'scope> {
    /// Start `sink`'s worker in `scope`, behind a channel of `capacity_kib` KiB.
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        sink: Box<dyn Sink>,
        capacity_kib: usize,
    ) -> std::io::Result<SinkStage<'scope>> {
        let name = stage_name(sink.name());
        let (tx, rx) = channel::bounded::<Arc<PartBatch>>(name, capacity_kib);
        let (commit_tx, commit_rx) = flume::bounded::<()>(1);
        let stats = StageStats::new(name, 1);
        let failure = Failure::default();
        let worker = {
            let (stats, failure) = (stats.clone(), failure.clone());
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn_scoped(scope, move || {
                    work(name, sink, rx, commit_rx, &stats, &failure)
                })?
        };
        Ok(SinkStage {
            name,
            channel: tx.stats().clone(),
            input: Some(tx),
            commit: Some(commit_tx),
            worker,
            stats,
            failure,
        })
    }

    /// Queue a batch, blocking while the sink's channel is full. A sink
    /// that failed takes batches and drops them.
    pub fn send(&self, batch: Arc<PartBatch>) {
        if let Some(tx) = &self.input {
            // The worker drains until every sender is gone, so this fails
            // only if the worker thread itself is gone: that is a failure
            // the worker already recorded (or a panic `finish` reports).
            let _ = tx.send_blocking(batch);
        }
    }

    /// Why the sink failed, once it has.
    pub fn failed(&self) -> Option<String> {
        self.failure.get()
    }

    pub fn channel_stats(&self) -> &Arc<ChannelStats> {
        &self.channel
    }

    pub fn stats(&self) -> &Arc<StageStats> {
        &self.stats
    }

    /// No more documents: the sink sees the end of its input.
    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// Tell the sink to commit (`true`) or to drop its output (`false`).
    /// Split from [`SinkStage::join`] so that several sinks commit at once.
    pub fn release(&mut self, commit: bool) {
        self.close_input();
        if let Some(tx) = self.commit.take() {
            if commit {
                let _ = tx.send(());
            }
        }
    }

    /// Wait for the worker: the sink's report, or why it failed.
    pub fn join(mut self) -> Result<SinkReport, String> {
        self.release(false);
        match self.worker.join() {
            Ok(r) => r,
            Err(panic) => Err(format!("panicked: {}", panic_message(&*panic))),
        }
    }
}

fn work(
    name: &'static str,
    sink: Box<dyn Sink>,
    rx: Receiver<Arc<PartBatch>>,
    commit: flume::Receiver<()>,
    stats: &StageStats,
    failure: &Failure,
) -> Result<SinkReport, String> {
    let mut sink = Some(sink);
    while let Some(batch) = rx.recv_blocking() {
        let Some(s) = sink.as_mut() else {
            // Failed: drain, so the publish thread never blocks on us.
            continue;
        };
        let t = Instant::now();
        let mut error = None;
        for part in batch.iter() {
            let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                write_part(&mut **s, part)
            }));
            match wrote {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error = Some(e.to_string());
                    break;
                }
                Err(panic) => {
                    error = Some(format!("panicked: {}", panic_message(&*panic)));
                    break;
                }
            }
        }
        let docs = batch.documents() as u64;
        stats.record(docs, batch.bytes() as u64, docs, t);
        if let Some(e) = error {
            tracing::error!(sink = name, "sink failed, the others go on: {e}");
            failure.set(e);
            // Dropped uncommitted: its temporary output goes with it.
            sink = None;
        }
    }
    if let Some(e) = failure.get() {
        return Err(e);
    }
    let Some(sink) = sink else {
        return Err("stopped".into());
    };
    if commit.recv().is_err() {
        // Not told to commit: the run does not publish; drop the output.
        return Err("not committed: the run did not publish".into());
    }
    let t = Instant::now();
    let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.commit()));
    stats.record(0, 0, 0, t);
    match committed {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            tracing::error!(sink = name, "sink failed to commit: {e}");
            failure.set(e.to_string());
            Err(e.to_string())
        }
        Err(panic) => Err(format!("panicked: {}", panic_message(&*panic))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The manifest's entry for a channel.
pub fn channel_snapshot(c: &ChannelStats) -> serde_json::Value {
    serde_json::json!({
        "capacity": c.capacity,
        "sent_items": c.sent_items(),
        "sent_batches": c.sent_batches(),
        "blocked_seconds": (c.blocked_seconds() * 1000.0).round() / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stages::sink::SinkError;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    /// A sink that records what it got, optionally slowly, optionally
    /// failing at its n-th document or at commit.
    struct TestSink {
        name: &'static str,
        got: Arc<Mutex<Vec<String>>>,
        delay: Duration,
        fail_at: Option<u64>,
        fail_commit: bool,
        seen: u64,
        committed: Arc<AtomicU64>,
        /// The document being received, as `id=asset` and its findings.
        current: String,
    }

    impl TestSink {
        fn new(name: &'static str) -> (TestSink, Arc<Mutex<Vec<String>>>, Arc<AtomicU64>) {
            let got = Arc::new(Mutex::new(Vec::new()));
            let committed = Arc::new(AtomicU64::new(0));
            (
                TestSink {
                    name,
                    got: got.clone(),
                    delay: Duration::ZERO,
                    fail_at: None,
                    fail_commit: false,
                    seen: 0,
                    committed: committed.clone(),
                    current: String::new(),
                },
                got,
                committed,
            )
        }
    }

    fn failure(what: &str) -> SinkError {
        SinkError::Io {
            sink: "test",
            path: "nowhere".into(),
            source: std::io::Error::other(what.to_string()),
        }
    }

    impl Sink for TestSink {
        fn name(&self) -> &'static str {
            self.name
        }
        fn begin_document(&mut self, asset_id: &str, asset: &[u8]) -> Result<(), SinkError> {
            self.current = format!("{asset_id}={}", String::from_utf8_lossy(asset));
            Ok(())
        }
        fn finding(&mut self, finding: &[u8]) -> Result<(), SinkError> {
            self.current.push_str(&String::from_utf8_lossy(finding));
            Ok(())
        }
        fn end_document(&mut self) -> Result<(), SinkError> {
            self.seen += 1;
            if self.fail_at == Some(self.seen) {
                return Err(failure("disk on fire"));
            }
            std::thread::sleep(self.delay);
            let doc = std::mem::take(&mut self.current);
            self.got.lock().unwrap().push(doc);
            Ok(())
        }
        fn commit(self: Box<Self>) -> Result<SinkReport, SinkError> {
            if self.fail_commit {
                return Err(failure("rename refused"));
            }
            self.committed.fetch_add(1, Ordering::SeqCst);
            Ok(SinkReport {
                sink: self.name.into(),
                documents: self.got.lock().unwrap().len() as u64,
                ..SinkReport::default()
            })
        }
    }

    fn batches(n: usize, per: usize) -> Vec<Arc<PartBatch>> {
        (0..n)
            .map(|b| {
                let mut batch = PartBatch::default();
                for i in 0..per {
                    let id = format!("a{}", b * per + i);
                    batch.begin(&id, b"{}");
                    if i % 2 == 1 {
                        batch.finding(b"{\"f\":1}");
                    }
                    batch.end();
                }
                Arc::new(batch)
            })
            .collect()
    }

    #[test]
    fn a_failing_sink_drains_while_the_others_get_everything() {
        let (good, good_got, good_commits) = TestSink::new("good");
        let (mut bad, bad_got, bad_commits) = TestSink::new("bad");
        bad.fail_at = Some(7);
        std::thread::scope(|scope| {
            // Capacity 4 with 50 batches of 3: the bad sink must drain, or
            // the second send to it would block forever.
            let mut stages = vec![
                SinkStage::spawn(scope, Box::new(good), 4).unwrap(),
                SinkStage::spawn(scope, Box::new(bad), 4).unwrap(),
            ];
            for b in batches(50, 3) {
                for s in &stages {
                    s.send(b.clone());
                }
            }
            for s in &mut stages {
                s.release(true);
            }
            let results: Vec<_> = stages.into_iter().map(|s| (s.name, s.join())).collect();
            assert_eq!(results[0].0, "sink_good");
            assert_eq!(results[0].1.as_ref().unwrap().documents, 150);
            assert_eq!(results[1].0, "sink_bad");
            let e = results[1].1.as_ref().unwrap_err();
            assert!(e.contains("disk on fire"), "{e}");
        });
        assert_eq!(good_got.lock().unwrap().len(), 150);
        assert_eq!(good_got.lock().unwrap()[148], "a148={}{\"f\":1}");
        assert_eq!(good_got.lock().unwrap()[149], "a149={}");
        assert_eq!(bad_got.lock().unwrap().len(), 6);
        assert_eq!(good_commits.load(Ordering::SeqCst), 1);
        assert_eq!(bad_commits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn nothing_commits_unless_told_and_a_failed_commit_is_reported() {
        let (a, _, a_commits) = TestSink::new("a");
        let (mut b, _, _) = TestSink::new("b");
        b.fail_commit = true;
        std::thread::scope(|scope| {
            let sa = SinkStage::spawn(scope, Box::new(a), 8).unwrap();
            let mut sb = SinkStage::spawn(scope, Box::new(b), 8).unwrap();
            for batch in batches(2, 2) {
                sa.send(batch.clone());
                sb.send(batch);
            }
            let e = sa.join().unwrap_err();
            assert!(e.contains("not committed"), "{e}");
            sb.release(true);
            let e = sb.join().unwrap_err();
            assert!(e.contains("rename refused"), "{e}");
        });
        assert_eq!(a_commits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_slow_sink_shows_as_a_full_channel_and_a_busy_stage() {
        let (mut slow, got, _) = TestSink::new("slow");
        slow.delay = Duration::from_millis(3);
        std::thread::scope(|scope| {
            let mut s = SinkStage::spawn(scope, Box::new(slow), 4).unwrap();
            for b in batches(40, 2) {
                s.send(b);
            }
            let channel = s.channel_stats().clone();
            let stats = s.stats().clone();
            s.release(true);
            assert_eq!(s.join().unwrap().documents, 80);
            // Bounded in KiB: each small batch weighs one.
            assert_eq!(channel.sent_items(), 40);
            assert_eq!(channel.sent_batches(), 40);
            assert!(channel.blocked_seconds() > 0.0, "the sender never waited");
            assert_eq!(stats.items_in(), 80);
            assert_eq!(stats.items_out(), 80);
            // Sleeping is busy time for the stage: it did nothing but work.
            assert!(stats.utilization() > 0.5, "{}", stats.utilization());
        });
        assert_eq!(got.lock().unwrap().len(), 80);
    }

    #[test]
    fn stage_names_are_interned() {
        let a = stage_name("csv");
        let b = stage_name("csv");
        assert_eq!(a, "sink_csv");
        assert!(std::ptr::eq(a, b));
    }
}
