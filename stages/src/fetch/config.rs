//! Configuration of the fetch stage (what the user writes). Runtime state
//! (limiter, budget, counters) lives elsewhere, built from this at run start.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The six VM models whose instances are ETM host assets.
pub const VM_MODELS: [&str; 6] = [
    "AwsEc2Instance",
    "AzureComputeVm",
    "GcpVmInstance",
    "VmwareVmInstance",
    "OciComputeVmInstance",
    "AliCloudEcsInstance",
];

/// The findings model.
pub const FINDING_MODEL: &str = "VulnerabilityV2";

/// Fetch settings. Durations accept seconds as a number (`30`, `0.5`) or a
/// string with a unit (`"30s"`, `"500ms"`, `"2m"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// `app.eu.orcasecurity.io`, `https://app.eu.orcasecurity.io/api/`, or
    /// `http://127.0.0.1:PORT/api/` (the last only with `allow_insecure_http`).
    pub domain: String,
    pub allow_insecure_http: bool,
    pub page_size: u64,
    /// Requests per second for the token, shared by all queries; 0 = unlimited.
    pub requests_per_second: f64,
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the next bytes of an answer.
    #[serde(deserialize_with = "de_duration")]
    pub read_timeout: Duration,
    /// Longest time for one request, from send to the last body byte.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Retries of one request (not counting the first try).
    pub max_retries_per_request: u32,
    /// Retries of the whole run; once spent, a request that fails is not retried.
    pub retry_budget: u32,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_base: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_max: Duration,
    /// Upper bound on a server's `Retry-After`, so a bad header cannot stall the run.
    #[serde(deserialize_with = "de_duration")]
    pub retry_after_cap: Duration,
    /// Deepest offset the server serves; partitions larger than this are
    /// split. 0: the server has no cap.
    pub page_cap: u64,
    /// Largest partition walked in one offset walk, whatever the server's
    /// cap: the walk keeps the ids of its partition to count duplicates, so
    /// this bounds the fetch stage's memory on any tenant.
    pub max_partition_items: u64,
    /// Partitions walked at once (the shared limiter still bounds requests/s).
    pub concurrency: usize,
    /// How a query larger than the paging cap is read: `keyset` walks it in
    /// `FirstSeen` order, each stretch of the cap starting where the last
    /// one ended (about one extra request per query); `split` cuts it into
    /// filtered partitions that each fit (a probe request per partition).
    /// `keyset` falls back to `split` when it cannot make progress.
    pub over_cap: OverCap,
    /// The asset models; findings are limited to assets of these models.
    pub models: Vec<String>,
}

/// See [`FetchConfig::over_cap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverCap {
    Keyset,
    Split,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            domain: "api.orcasecurity.io".to_string(),
            allow_insecure_http: false,
            page_size: 1000,
            requests_per_second: 1.0,
            connect_timeout: Duration::from_secs(10),
            // Below the 20 s drip of a stalled server, above a slow first byte.
            read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            max_retries_per_request: 5,
            retry_budget: 200,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            retry_after_cap: Duration::from_secs(120),
            page_cap: 10_000,
            max_partition_items: 10_000,
            concurrency: 2,
            over_cap: OverCap::Keyset,
            models: VM_MODELS.iter().map(|m| m.to_string()).collect(),
        }
    }
}

impl FetchConfig {
    /// Checks that make the run pointless if wrong; reported before any request.
    /// The largest partition walked: the server's cap (`0`: none) or
    /// `max_partition_items`, whichever is smaller.
    pub fn effective_page_cap(&self) -> u64 {
        let server = if self.page_cap == 0 {
            u64::MAX
        } else {
            self.page_cap
        };
        server.min(self.max_partition_items.max(self.page_size))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.page_size == 0 {
            return Err("page_size must be at least 1".into());
        }
        if self.page_cap != 0 && self.page_cap < self.page_size {
            return Err(format!(
                "page_cap ({}) must be at least page_size ({})",
                self.page_cap, self.page_size
            ));
        }
        if !self.requests_per_second.is_finite() || self.requests_per_second < 0.0 {
            return Err("requests_per_second must be a number >= 0".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.models.is_empty() {
            return Err("models must name at least one asset model".into());
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        Ok(())
    }
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => secs(s).map_err(serde::de::Error::custom),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("invalid duration {s}"))
}

/// `"30s"`, `"500ms"`, `"2m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration unit in {text:?}")),
    };
    secs(n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_toml() {
        let c: FetchConfig = toml::from_str(
            "domain = \"app.eu.orcasecurity.io\"\nread_timeout = \"500ms\"\nbackoff_base = 2\n",
        )
        .unwrap();
        assert_eq!(c.domain, "app.eu.orcasecurity.io");
        assert_eq!(c.read_timeout, Duration::from_millis(500));
        assert_eq!(c.backoff_base, Duration::from_secs(2));
        assert_eq!(c.page_size, 1000);
        assert_eq!(c.page_cap, 10_000);
        assert_eq!(c.requests_per_second, 1.0);
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.models.len(), 6);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(toml::from_str::<FetchConfig>("read_timeout = \"5 fortnights\"").is_err());
        assert!(toml::from_str::<FetchConfig>("nonsense = 1").is_err());
        let c = FetchConfig {
            page_size: 0,
            ..FetchConfig::default()
        };
        assert!(c.validate().is_err());
        let c = FetchConfig {
            page_cap: 10,
            ..FetchConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn duration_forms() {
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("-1s").is_err());
    }
}
