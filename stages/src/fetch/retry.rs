//! When and how long to wait before trying the same request again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use super::config::FetchConfig;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_per_request: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    pub fn from_config(cfg: &FetchConfig) -> Self {
        RetryPolicy {
            max_per_request: cfg.max_retries_per_request,
            backoff_base: cfg.backoff_base,
            backoff_max: cfg.backoff_max,
            retry_after_cap: cfg.retry_after_cap,
        }
    }

    /// Delay before retry number `retry` (1-based): exponential, capped, with
    /// "equal jitter" (half fixed, half random) so parallel partitions that
    /// failed together do not come back together, yet never retry instantly.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(30)));
        let d = exp.min(self.backoff_max);
        let half = d / 2;
        let jitter = rand::thread_rng().gen_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }

    /// The server's `Retry-After`, bounded so one bad header cannot stall the run.
    pub fn capped_retry_after(&self, d: Duration) -> Duration {
        d.min(self.retry_after_cap)
    }
}

/// Retries left for the whole run, shared by all partitions.
pub struct RetryBudget {
    left: AtomicU32,
}

impl RetryBudget {
    pub fn new(n: u32) -> Self {
        RetryBudget {
            left: AtomicU32::new(n),
        }
    }

    /// Take one retry; false once the budget is spent.
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn left(&self) -> u32 {
        self.left.load(Ordering::Acquire)
    }
}

/// Retries counted by cause (`http_429`, `timeout`, `malformed`, …).
#[derive(Default)]
pub struct RetryStats {
    by_cause: Mutex<BTreeMap<String, u64>>,
}

impl RetryStats {
    pub fn count(&self, cause: &str) {
        if let Ok(mut m) = self.by_cause.lock() {
            *m.entry(cause.to_string()).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_cause.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_per_request: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            retry_after_cap: Duration::from_secs(5),
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d20 = p.backoff(20);
            assert!(d20 >= Duration::from_millis(500) && d20 <= Duration::from_millis(1000));
        }
        assert_eq!(
            p.capped_retry_after(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn budget_runs_out() {
        let b = RetryBudget::new(2);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        assert_eq!(b.left(), 0);
    }
}
