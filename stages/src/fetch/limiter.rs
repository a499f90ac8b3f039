//! One request-rate limiter per token, shared by every query of the run.
//!
//! Orca counts requests per token, so partitions walked in parallel must
//! share one budget. A 429 with `Retry-After` means the server wants *all*
//! traffic on that token to wait, so the pause applies to every caller.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// Added to the period between requests: the limiter spaces requests when they
/// leave, but the server sees them when they arrive, and connection set-up can
/// delay one request more than the next. Without a margin, two requests could
/// land less than one period apart and be refused.
const SPACING_MARGIN: Duration = Duration::from_millis(30);

pub struct SharedLimiter {
    gcra: Option<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
    waited_nanos: AtomicU64,
}

impl SharedLimiter {
    /// `requests_per_second == 0` means unlimited. Burst is always 1: the
    /// server refuses anything above the rate, even briefly.
    pub fn new(requests_per_second: f64) -> Self {
        let gcra = if requests_per_second > 0.0 && requests_per_second.is_finite() {
            let period = Duration::from_secs_f64(1.0 / requests_per_second) + SPACING_MARGIN;
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)))
        } else {
            None
        };
        SharedLimiter {
            gcra,
            paused_until: Mutex::new(None),
            waited_nanos: AtomicU64::new(0),
        }
    }

    /// Wait until one more request may be sent; returns how long that was.
    pub async fn acquire(&self) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(until) = self.pause_deadline() {
                tokio::time::sleep_until(until).await;
            }
            if let Some(g) = &self.gcra {
                g.until_ready().await;
            }
            // A 429 seen by another query while we waited applies to us too.
            match self.pause_deadline() {
                Some(until) if until > Instant::now() => continue,
                _ => break,
            }
        }
        let waited = start.elapsed();
        self.waited_nanos
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        waited
    }

    /// Hold every request back for `d` from now (never shortens a pause).
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        if let Ok(mut p) = self.paused_until.lock() {
            match *p {
                Some(cur) if cur >= until => {}
                _ => *p = Some(until),
            }
        }
    }

    fn pause_deadline(&self) -> Option<Instant> {
        let p = self.paused_until.lock().ok()?;
        p.filter(|t| *t > Instant::now())
    }

    /// Total time callers spent waiting for the limiter or a pause.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests_at_the_rate() {
        let l = SharedLimiter::new(10.0);
        let mut stamps = Vec::new();
        for _ in 0..5 {
            l.acquire().await;
            stamps.push(std::time::Instant::now());
        }
        for w in stamps.windows(2) {
            assert!(
                w[1] - w[0] >= Duration::from_millis(100),
                "{:?}",
                w[1] - w[0]
            );
        }
        assert!(l.waited() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn pause_holds_everyone() {
        let l = SharedLimiter::new(0.0);
        l.pause_for(Duration::from_millis(300));
        l.pause_for(Duration::from_millis(50)); // must not shorten
        let t = std::time::Instant::now();
        l.acquire().await;
        assert!(t.elapsed() >= Duration::from_millis(290));
        let t = std::time::Instant::now();
        l.acquire().await;
        assert!(t.elapsed() < Duration::from_millis(200));
    }
}
