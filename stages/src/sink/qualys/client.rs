//! The gateway client: the JWT, one request at a time, the rate limit
//! obeyed before the budget runs out, retries.
//!
//! The `Sink` trait is synchronous and each sink has a thread of its own,
//! so the client owns a current-thread tokio runtime and blocks that thread
//! on each request: exactly one request in flight, by construction.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;

use super::config::{Credentials, Endpoints, WebhookConfig};
use super::jwt::Jwt;
use super::metrics::SinkMetrics;
use super::profile::AssetEntry;
use super::rate_limit::RateLimit;
use crate::fetch::retry::RetryPolicy;
use crate::secret::Secret;
use crate::telemetry::Scope;

/// Error bodies are read only this far.
const MAX_ERROR_BODY: usize = 2048;

/// What became of one request.
#[derive(Debug)]
pub enum Sent {
    /// The gateway took the request; `refused` are its per-asset errors
    /// (`sourceNativeKey` → reason).
    Accepted { refused: BTreeMap<String, String> },
    /// HTTP 413: the body is too large for the gateway.
    TooLarge,
    /// HTTP 400/422: the gateway refused the request's content as a whole
    /// (`detail` is what it said, scrubbed). One bad asset does this to the
    /// whole batch, so the sink bisects the batch to find it.
    Invalid { detail: String },
}

/// Counters for the manifest (the metrics carry the same).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub requests: u64,
    pub retries: BTreeMap<&'static str, u64>,
    pub token_refreshes: u64,
    pub rate_limit_waits: u64,
    /// Request body bytes sent, retries included.
    pub bytes_sent: u64,
}

pub struct Gateway {
    rt: tokio::runtime::Runtime,
    state: State,
}

struct State {
    sink: &'static str,
    http: reqwest::Client,
    endpoints: Endpoints,
    creds: Credentials,
    connector_uuid: String,
    source: String,
    jwt: Option<Jwt>,
    /// No call before this (the rate limit said so).
    hold_until: Option<Instant>,
    policy: RetryPolicy,
    jwt_lifetime: Duration,
    jwt_margin: Duration,
    counters: Counters,
    metrics: SinkMetrics,
}

impl Gateway {
    pub fn new(
        sink: &'static str,
        cfg: &WebhookConfig,
        creds: Credentials,
        scope: Scope,
    ) -> Result<Gateway, String> {
        let endpoints = cfg.endpoints()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            // A redirect must not carry the password or the JWT elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orca-etm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Gateway {
            rt,
            state: State {
                sink,
                http,
                endpoints,
                creds,
                connector_uuid: cfg.connector_uuid.trim().to_string(),
                source: cfg.source.clone(),
                jwt: None,
                hold_until: None,
                policy: RetryPolicy {
                    max_per_request: cfg.max_retries,
                    backoff_base: cfg.backoff_base,
                    backoff_max: cfg.backoff_max,
                    retry_after_cap: cfg.max_rate_limit_wait,
                },
                jwt_lifetime: cfg.jwt_lifetime,
                jwt_margin: cfg.jwt_refresh_margin,
                counters: Counters::default(),
                metrics: SinkMetrics::new(scope, sink),
            },
        })
    }

    /// Push one batch, retrying what may be retried; an error means the
    /// sink cannot go on (credentials refused, retries spent, bad request).
    pub fn send(&mut self, assets: &[AssetEntry]) -> Result<Sent, String> {
        self.rt.block_on(self.state.send(assets))
    }

    /// Log in once (`orca-etm check`): are the credentials good?
    pub fn check_credentials(&mut self) -> Result<(), String> {
        self.rt.block_on(self.state.authenticate("first"))
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// Where the documents go (no credentials in it).
    pub fn location(&self) -> String {
        self.state.endpoints.sync.to_string()
    }
}

/// Why a try failed, and whether another may succeed.
enum Failure {
    Retry {
        cause: &'static str,
        detail: String,
        wait: Option<Duration>,
    },
    Fatal(String),
}

impl State {
    fn count_retry(&mut self, cause: &'static str) {
        self.metrics.retry(cause);
        *self.counters.retries.entry(cause).or_default() += 1;
    }

    fn count_request(&mut self, endpoint: &'static str, status: Option<StatusCode>) {
        self.metrics.request(endpoint, status);
        self.counters.requests += 1;
    }

    /// Wait out a spent budget before calling.
    async fn hold(&mut self) {
        if let Some(until) = self.hold_until.take() {
            let now = Instant::now();
            if until > now {
                let wait = until - now;
                tracing::debug!(
                    sink = self.sink,
                    wait_s = wait.as_secs_f64(),
                    "rate limit: waiting for the next window"
                );
                self.metrics.rate_limit_wait(wait.as_secs_f64());
                self.counters.rate_limit_waits += 1;
                tokio::time::sleep(wait).await;
            }
        }
    }

    fn note_rate_limit(&mut self, r: &RateLimit) {
        if let Some(wait) = r.wait_before_next() {
            let wait = self.policy.capped_retry_after(wait);
            self.hold_until = Some(Instant::now() + wait);
        }
    }

    /// Scrub the password and the JWT out of anything the gateway said.
    fn scrub(&self, text: &str) -> String {
        let mut t = text.to_string();
        let pw = self.creds.password.expose();
        if !pw.is_empty() {
            t = t.replace(pw, "[redacted]");
        }
        if let Some(j) = &self.jwt {
            t = t.replace(j.token.expose(), "[redacted]");
        }
        t
    }

    async fn error_text(&self, resp: reqwest::Response) -> String {
        let bytes = resp.bytes().await.unwrap_or_default();
        let cut = &bytes[..bytes.len().min(MAX_ERROR_BODY)];
        self.scrub(String::from_utf8_lossy(cut).trim())
    }

    async fn authenticate(&mut self, cause: &'static str) -> Result<(), String> {
        self.jwt = None;
        let mut retries = 0u32;
        loop {
            let sent = self
                .http
                .post(self.endpoints.auth.clone())
                .form(&[
                    ("username", self.creds.username.as_str()),
                    ("password", self.creds.password.expose()),
                    ("token", "true"),
                ])
                .send()
                .await;
            let failure = match sent {
                Err(e) => {
                    self.count_request("auth", None);
                    transport_failure(&e)
                }
                Ok(resp) => {
                    let status = resp.status();
                    self.count_request("auth", Some(status));
                    if status.is_success() {
                        let text = resp
                            .text()
                            .await
                            .map_err(|e| format!("reading the /auth answer: {e}"))?;
                        let token = text.trim();
                        let usable = !token.is_empty()
                            && !token.contains(char::is_whitespace)
                            && HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
                        if !usable {
                            // Never echo it: it might be a token after all.
                            return Err("the gateway's /auth answer is not a token".into());
                        }
                        self.metrics.token_refresh(cause);
                        self.counters.token_refreshes += 1;
                        tracing::debug!(sink = self.sink, cause, "obtained a gateway token");
                        self.jwt = Some(Jwt::new(
                            Secret::new(token),
                            self.jwt_lifetime,
                            self.jwt_margin,
                        ));
                        return Ok(());
                    }
                    let limit = RateLimit::from_headers(resp.headers());
                    let detail = self.error_text(resp).await;
                    classify(status, detail, &limit, "/auth")
                }
            };
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    cause,
                    detail,
                    wait,
                } => {
                    retries += 1;
                    if retries > self.policy.max_per_request {
                        return Err(format!(
                            "/auth failed after {} retries: {detail}",
                            retries - 1
                        ));
                    }
                    self.count_retry(cause);
                    let wait = wait.map_or_else(
                        || self.policy.backoff(retries),
                        |w| self.policy.capped_retry_after(w),
                    );
                    tracing::warn!(
                        sink = self.sink,
                        cause,
                        "gateway /auth: {detail}; retry {retries} in {:.1}s",
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn body(&self, assets: &[AssetEntry]) -> Vec<u8> {
        let meta = serde_json::json!({
            "requestId": uuid::Uuid::new_v4().to_string(),
            "connectorUuid": self.connector_uuid,
            "source": self.source,
            "assetCount": assets.len(),
        });
        let size: usize = assets.iter().map(|a| a.json.len() + 1).sum();
        let mut body = Vec::with_capacity(size + 256);
        body.extend_from_slice(b"{\"connectorMetaData\":");
        // A json! value of strings and a number always serializes.
        body.extend_from_slice(meta.to_string().as_bytes());
        body.extend_from_slice(b",\"assetData\":[");
        for (i, a) in assets.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&a.json);
        }
        body.extend_from_slice(b"]}");
        body
    }

    async fn send(&mut self, assets: &[AssetEntry]) -> Result<Sent, String> {
        let mut retries = 0u32;
        let mut reauthorized = false;
        loop {
            match &self.jwt {
                None => self.authenticate("first").await?,
                Some(j) if j.due() => self.authenticate("expiry").await?,
                Some(_) => {}
            }
            let Some(jwt) = &self.jwt else {
                return Err("no gateway token".into());
            };
            let mut auth = HeaderValue::from_str(&format!("Bearer {}", jwt.token.expose()))
                .map_err(|_| "the gateway token cannot be sent in a header".to_string())?;
            // Keeps the value out of reqwest/hyper debug output.
            auth.set_sensitive(true);
            self.hold().await;
            // A new body per try: each request has its own requestId.
            let body = self.body(assets);
            let bytes = body.len() as u64;
            let started = Instant::now();
            let sent = self
                .http
                .post(self.endpoints.sync.clone())
                .header(AUTHORIZATION, auth)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await;
            self.metrics.sent_bytes(bytes);
            self.counters.bytes_sent += bytes;
            let failure = match sent {
                Err(e) => {
                    self.count_request("sync", None);
                    self.metrics.duration(started.elapsed().as_secs_f64());
                    transport_failure(&e)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let limit = RateLimit::from_headers(resp.headers());
                    self.note_rate_limit(&limit);
                    if status.is_success() {
                        let answer = resp.bytes().await;
                        self.metrics.duration(started.elapsed().as_secs_f64());
                        self.count_request("sync", Some(status));
                        let refused = match answer {
                            Ok(b) => self.refused_assets(&b),
                            // The gateway said yes; only its details were lost.
                            Err(_) => BTreeMap::new(),
                        };
                        let accepted = assets.len().saturating_sub(refused.len()) as u64;
                        self.metrics.documents_sent(accepted);
                        return Ok(Sent::Accepted { refused });
                    }
                    self.metrics.duration(started.elapsed().as_secs_f64());
                    self.count_request("sync", Some(status));
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        return Ok(Sent::TooLarge);
                    }
                    if status == StatusCode::BAD_REQUEST
                        || status == StatusCode::UNPROCESSABLE_ENTITY
                    {
                        let detail = self.error_text(resp).await;
                        let detail = if detail.is_empty() {
                            format!("HTTP {}", status.as_u16())
                        } else {
                            format!("HTTP {}: {detail}", status.as_u16())
                        };
                        return Ok(Sent::Invalid { detail });
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        if reauthorized {
                            return Err("the gateway refused a fresh token (HTTP 401)".into());
                        }
                        // Once per request: expired or revoked early.
                        reauthorized = true;
                        self.count_retry("unauthorized");
                        tracing::info!(
                            sink = self.sink,
                            "gateway answered 401: fetching a new token"
                        );
                        self.authenticate("unauthorized").await?;
                        continue;
                    }
                    let detail = self.error_text(resp).await;
                    classify(status, detail, &limit, "sync")
                }
            };
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    cause,
                    detail,
                    wait,
                } => {
                    retries += 1;
                    if retries > self.policy.max_per_request {
                        return Err(format!(
                            "gave up after {} retries of one request: {detail}",
                            retries - 1
                        ));
                    }
                    self.count_retry(cause);
                    let wait = wait.map_or_else(
                        || self.policy.backoff(retries),
                        |w| self.policy.capped_retry_after(w),
                    );
                    tracing::warn!(
                        sink = self.sink,
                        cause,
                        "gateway: {detail}; retry {retries} in {:.2}s",
                        wait.as_secs_f64()
                    );
                    // One wait covers both the backoff and a spent budget.
                    let until = Instant::now() + wait;
                    let until = self.hold_until.take().map_or(until, |h| h.max(until));
                    let wait = until.saturating_duration_since(Instant::now());
                    if cause == "http_429" {
                        self.metrics.rate_limit_wait(wait.as_secs_f64());
                        self.counters.rate_limit_waits += 1;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// `assetsError` of a 2xx answer: an object `{key: reason}` (reason a
    /// string or anything else, then as JSON), or a list of objects naming
    /// the asset in `sourceNativeKey`/`assetId`/`key`.
    fn refused_assets(&self, answer: &[u8]) -> BTreeMap<String, String> {
        let Ok(v) = serde_json::from_slice::<Value>(answer) else {
            tracing::warn!(
                sink = self.sink,
                "the gateway's answer is not JSON; taking the batch as accepted"
            );
            return BTreeMap::new();
        };
        let reason = |v: &Value| match v {
            Value::String(s) => self.scrub(s),
            other => self.scrub(&other.to_string()),
        };
        match v.get("assetsError") {
            Some(Value::Object(m)) => m.iter().map(|(k, r)| (k.clone(), reason(r))).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(|e| {
                    let key = ["sourceNativeKey", "assetId", "key"]
                        .iter()
                        .find_map(|k| e.get(*k).and_then(Value::as_str))?;
                    let why = ["error", "message", "reason"]
                        .iter()
                        .find_map(|k| e.get(*k))
                        .map(reason)
                        .unwrap_or_else(|| reason(e));
                    Some((key.to_string(), why))
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    let cause = if e.is_timeout() {
        "timeout"
    } else {
        "transport"
    };
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    Failure::Retry {
        cause,
        detail,
        wait: None,
    }
}

/// 409 (overlapping call), 429 (budget spent), 5xx: worth another try;
/// anything else means this sink cannot succeed.
fn classify(status: StatusCode, detail: String, limit: &RateLimit, what: &str) -> Failure {
    let code = status.as_u16();
    let detail = if detail.is_empty() {
        format!("{what} answered HTTP {code}")
    } else {
        format!("{what} answered HTTP {code}: {detail}")
    };
    match code {
        409 => Failure::Retry {
            cause: "http_409",
            detail,
            wait: None,
        },
        429 => Failure::Retry {
            cause: "http_429",
            detail,
            wait: limit.to_wait,
        },
        500..=599 => Failure::Retry {
            cause: "http_5xx",
            detail,
            wait: None,
        },
        401 | 403 => Failure::Fatal(format!(
            "{detail} (check the username, the password and the user's permissions)"
        )),
        _ => Failure::Fatal(detail),
    }
}
