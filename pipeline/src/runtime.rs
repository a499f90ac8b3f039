//! Stage workers: threads that drain one channel into another, with the
//! counters that tell which stage is the slow one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Counters of one stage (all its workers together).
#[derive(Debug)]
pub struct StageStats {
    pub name: &'static str,
    pub workers: usize,
    items_in: AtomicU64,
    items_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    busy_nanos: AtomicU64,
    started: Instant,
}

impl StageStats {
    pub fn new(name: &'static str, workers: usize) -> Arc<StageStats> {
        Arc::new(StageStats {
            name,
            workers,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    pub fn record(&self, items_in: u64, bytes_in: u64, items_out: u64, busy_since: Instant) {
        self.items_in.fetch_add(items_in, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.items_out.fetch_add(items_out, Ordering::Relaxed);
        self.busy_nanos
            .fetch_add(busy_since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Bytes the stage wrote or handed on (where it knows them cheaply).
    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    pub fn items_in(&self) -> u64 {
        self.items_in.load(Ordering::Relaxed)
    }
    pub fn items_out(&self) -> u64 {
        self.items_out.load(Ordering::Relaxed)
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
    pub fn busy_seconds(&self) -> f64 {
        self.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Share of its workers' wall time the stage spent working (0..1).
    pub fn utilization(&self) -> f64 {
        let wall = self.started.elapsed().as_secs_f64() * self.workers.max(1) as f64;
        if wall > 0.0 {
            (self.busy_seconds() / wall).min(1.0)
        } else {
            0.0
        }
    }

    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "workers": self.workers,
            "items_in": self.items_in(),
            "items_out": self.items_out(),
            "bytes_in": self.bytes_in(),
            "busy_seconds": round3(self.busy_seconds()),
            "utilization": round3(self.utilization()),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The first failure of any worker, named by stage; later ones are dropped.
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<Failed>>>);

#[derive(Debug)]
struct Failed {
    message: String,
    /// `(stage, reason)` when a worker failed, for the errors counter.
    origin: Option<(&'static str, &'static str)>,
}

impl Failure {
    pub fn set(&self, message: String) {
        self.put(message, None);
    }

    /// A worker of `stage` failed (`reason`: `failed` or `panicked`).
    pub fn set_in(&self, stage: &'static str, reason: &'static str, message: String) {
        self.put(message, Some((stage, reason)));
    }

    fn put(&self, message: String, origin: Option<(&'static str, &'static str)>) {
        if let Ok(mut f) = self.0.lock() {
            f.get_or_insert(Failed { message, origin });
        }
    }

    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|f| f.message.clone()))
    }

    /// The stage and reason of the first failure, if a worker failed.
    pub fn origin(&self) -> Option<(&'static str, &'static str)> {
        self.0.lock().ok().and_then(|f| f.as_ref()?.origin)
    }
}

/// Spawn a named worker thread. An error or a panic is recorded in `failure`
/// with the stage's name and `on_fail` runs (to cancel the run and close
/// channels, so no other stage waits forever).
pub fn spawn_worker<F>(
    stage: &'static str,
    index: usize,
    failure: Failure,
    on_fail: Arc<dyn Fn() + Send + Sync>,
    body: F,
) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("{stage}-{index}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let (reason, message) = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => ("failed", format!("stage {stage} failed: {e}")),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    ("panicked", format!("stage {stage} panicked: {what}"))
                }
            };
            tracing::error!(stage, "{message}");
            failure.set_in(stage, reason, message);
            on_fail();
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_panicking_worker_is_named_and_triggers_on_fail() {
        let failure = Failure::default();
        let fired = Arc::new(AtomicBool::new(false));
        let f2 = fired.clone();
        let h = spawn_worker(
            "transform",
            0,
            failure.clone(),
            Arc::new(move || f2.store(true, Ordering::SeqCst)),
            || -> Result<(), String> { panic!("boom") },
        )
        .unwrap();
        h.join().unwrap();
        assert_eq!(
            failure.get().as_deref(),
            Some("stage transform panicked: boom")
        );
        assert_eq!(failure.origin(), Some(("transform", "panicked")));
        assert!(fired.load(Ordering::SeqCst));
    }

    #[test]
    fn first_failure_wins() {
        let f = Failure::default();
        f.set("a".into());
        f.set("b".into());
        assert_eq!(f.get().as_deref(), Some("a"));
    }
}
