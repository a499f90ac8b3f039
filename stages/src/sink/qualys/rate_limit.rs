//! The gateway's `X-RateLimit-*` headers, and how long they tell us to wait.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// What one answer said about the call budget.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub window: Option<Duration>,
    pub to_wait: Option<Duration>,
}

impl RateLimit {
    pub fn from_headers(h: &HeaderMap) -> RateLimit {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        RateLimit {
            limit: num("x-ratelimit-limit").map(|n| n as u64),
            remaining: num("x-ratelimit-remaining").map(|n| n as u64),
            window: num("x-ratelimit-window-sec").map(Duration::from_secs_f64),
            to_wait: num("x-ratelimit-towait-sec").map(Duration::from_secs_f64),
        }
    }

    /// How long to hold the next call so it does not land in a spent
    /// budget: once `Remaining` is 0, until the window turns
    /// (`ToWait-Sec` when given, else a whole window, which is surely
    /// enough). Nothing while budget is left.
    pub fn wait_before_next(&self) -> Option<Duration> {
        match self.remaining {
            Some(0) => self.to_wait.or(self.window),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn budget_left_means_no_wait() {
        let r = RateLimit::from_headers(&headers(&[
            ("X-RateLimit-Limit", "300"),
            ("X-RateLimit-Remaining", "12"),
            ("X-RateLimit-Window-Sec", "3600"),
        ]));
        assert_eq!(r.limit, Some(300));
        assert_eq!(r.remaining, Some(12));
        assert_eq!(r.window, Some(Duration::from_secs(3600)));
        assert_eq!(r.wait_before_next(), None);
        assert_eq!(
            RateLimit::from_headers(&HeaderMap::new()).wait_before_next(),
            None
        );
    }

    #[test]
    fn a_spent_budget_waits_to_wait_or_the_window() {
        let r = RateLimit::from_headers(&headers(&[
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Window-Sec", "2"),
            ("X-RateLimit-ToWait-Sec", "0.25"),
        ]));
        assert_eq!(r.wait_before_next(), Some(Duration::from_millis(250)));
        let r = RateLimit::from_headers(&headers(&[
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Window-Sec", "2"),
        ]));
        assert_eq!(r.wait_before_next(), Some(Duration::from_secs(2)));
        let r = RateLimit::from_headers(&headers(&[
            ("X-RateLimit-Remaining", "zero"),
            ("X-RateLimit-ToWait-Sec", "-4"),
        ]));
        assert_eq!(r, RateLimit::default());
    }
}
