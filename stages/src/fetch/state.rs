//! Runtime state of one fetch run, shared by every partition task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::OrcaClient;
use super::config::FetchConfig;
use super::error::FetchError;
use super::limiter::SharedLimiter;
use super::observe::FetchMetrics;
use super::report::QueryReport;
use super::retry::{RetryBudget, RetryPolicy, RetryStats};
use crate::channel;
use crate::page::Page;

pub struct RunState {
    pub cfg: FetchConfig,
    pub client: OrcaClient,
    pub limiter: SharedLimiter,
    pub policy: RetryPolicy,
    pub budget: RetryBudget,
    pub retries: RetryStats,
    pub metrics: FetchMetrics,
    pub out: channel::Sender<Page>,
    /// Fires on outside cancellation or on the first run-fatal error.
    pub stop: CancellationToken,
    /// Bounds how many partitions are walked at once.
    pub walkers: Semaphore,
    /// "Now" fixed at run start, so every time window of the run agrees.
    pub now_ms: i64,
    pub requests: AtomicU64,
    pub pages: AtomicU64,
    pub splits: AtomicU64,
    /// Some request of this run got an HTTP answer (any status): Orca is
    /// reachable, so a request that never gets one is that request's trouble.
    pub answered: AtomicBool,
    fatal: Mutex<Option<FetchError>>,
    reports: Mutex<Vec<QueryReport>>,
}

impl RunState {
    pub fn new(
        cfg: FetchConfig,
        client: OrcaClient,
        out: channel::Sender<Page>,
        stop: CancellationToken,
        now_ms: i64,
        metrics: FetchMetrics,
    ) -> Self {
        RunState {
            metrics,
            limiter: SharedLimiter::new(cfg.requests_per_second),
            policy: RetryPolicy::from_config(&cfg),
            budget: RetryBudget::new(cfg.retry_budget),
            retries: RetryStats::default(),
            walkers: Semaphore::new(cfg.concurrency.max(1)),
            cfg,
            client,
            out,
            stop,
            now_ms,
            requests: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            splits: AtomicU64::new(0),
            answered: AtomicBool::new(false),
            fatal: Mutex::new(None),
            reports: Mutex::new(Vec::new()),
        }
    }

    /// Record a run-fatal error (the first one wins) and stop every task.
    pub fn fail(&self, e: FetchError) {
        if let Ok(mut f) = self.fatal.lock() {
            if f.is_none() {
                *f = Some(e);
            }
        }
        self.stop.cancel();
    }

    pub fn take_fatal(&self) -> Option<FetchError> {
        self.fatal.lock().ok().and_then(|mut f| f.take())
    }

    pub fn push_report(&self, r: QueryReport) {
        if let Ok(mut v) = self.reports.lock() {
            v.push(r);
        }
    }

    pub fn take_reports(&self) -> Vec<QueryReport> {
        self.reports
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
