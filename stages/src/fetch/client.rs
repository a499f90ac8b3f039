//! The HTTP client for the Serving-Layer query endpoint: one request, one
//! classified outcome. Retrying is the caller's business (see `retry`).

use std::time::Duration;

use bytes::Bytes;
use metrics::SharedString;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::base_url::{base_url, query_url};
use super::config::FetchConfig;
use super::error::FetchError;
use crate::secret::Secret;

/// Error bodies are read only this far: enough for Orca's message, never a flood.
const MAX_ERROR_BODY: usize = 4096;

/// One request's outcome, and what to count it as.
#[derive(Debug)]
pub struct Reply {
    pub outcome: Outcome,
    /// The HTTP status, or `timeout`/`connect`/`transport` when none came
    /// back whole (the `status` label of the requests counter).
    pub status: SharedString,
    /// A status line came back: Orca (or something in front of it) is
    /// reachable, whatever the outcome.
    pub answered: bool,
}

/// What one request came back with.
#[derive(Debug)]
pub enum Outcome {
    /// A 2xx answer and its body, for the parse stage to judge.
    Body(Bytes),
    /// Worth retrying the same request.
    Transient {
        cause: &'static str,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// This query cannot succeed (400, other 4xx, permanent 5xx).
    QueryFailed(String),
    /// The whole run cannot succeed (401/403/404).
    Fatal(FetchError),
}

pub struct OrcaClient {
    http: reqwest::Client,
    url: Url,
    /// Kept only to scrub it out of anything the server echoes back.
    token: Secret,
}

impl OrcaClient {
    pub fn new(cfg: &FetchConfig, token: &Secret) -> Result<Self, FetchError> {
        if token.is_empty() {
            return Err(FetchError::Config("the Orca API token is empty".into()));
        }
        let url = query_url(&base_url(&cfg.domain, cfg.allow_insecure_http)?)?;
        let mut auth =
            HeaderValue::from_str(&format!("Token {}", token.expose())).map_err(|_| {
                FetchError::Config(
                    "the Orca API token contains characters not allowed in an HTTP header".into(),
                )
            })?;
        // Keeps the value out of reqwest/hyper debug output.
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .timeout(cfg.request_timeout)
            // Orca is reached directly; an https→http redirect must not carry the token.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orca-etm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(OrcaClient {
            http,
            url,
            token: token.clone(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POST one query body and classify the answer.
    pub async fn post(&self, body: Bytes) -> Reply {
        let resp = match self.http.post(self.url.clone()).body(body).send().await {
            Ok(r) => r,
            Err(e) => return self.transport_error(&e, false),
        };
        let status = resp.status();
        if status.is_success() {
            return match read_body(resp).await {
                Ok(b) => Reply {
                    outcome: Outcome::Body(b),
                    status: status_label(status),
                    answered: true,
                },
                Err(e) => self.transport_error(&e, true),
            };
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let message = self.error_message(resp).await;
        Reply {
            outcome: classify_status(status, message, retry_after, &self.url),
            status: status_label(status),
            answered: true,
        }
    }

    fn transport_error(&self, e: &reqwest::Error, answered: bool) -> Reply {
        let cause = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            // Resets, truncated bodies, protocol errors.
            "transport"
        };
        // The reqwest error names the URL (no secret in it) and the cause chain.
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        Reply {
            outcome: Outcome::Transient {
                cause,
                retry_after: None,
                detail: self.scrub(&detail),
            },
            status: SharedString::const_str(cause),
            answered,
        }
    }

    /// Orca's own words from an error body (`error` or `message`), else the text.
    async fn error_message(&self, mut resp: reqwest::Response) -> String {
        let mut buf = Vec::new();
        // Read chunk by chunk so a huge or endless error body cannot hold us.
        while buf.len() < MAX_ERROR_BODY {
            match resp.chunk().await {
                Ok(Some(c)) => buf.extend_from_slice(&c),
                _ => break,
            }
        }
        buf.truncate(MAX_ERROR_BODY);
        let text = match serde_json::from_slice::<serde_json::Value>(
            crate::parse::skip_byte_order_marks(&buf),
        ) {
            Ok(v) => ["error", "message", "detail"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| v.to_string()),
            Err(_) => String::from_utf8_lossy(&buf).trim().to_string(),
        };
        self.scrub(&text)
    }

    /// A server (or proxy) may echo the Authorization header back; never let it through.
    fn scrub(&self, text: &str) -> String {
        let t = self.token.expose();
        if t.is_empty() {
            text.to_string()
        } else {
            text.replace(t, "[redacted]")
        }
    }
}

/// The common codes without an allocation per request.
/// A page's body in one buffer of its size. Collected chunk by chunk into a
/// buffer grown by doubling, a 3.5 MiB page of assets could hold up to twice
/// that while it waited for the parse stage; with `Content-Length` (Orca
/// sends it) the buffer is sized once, and without it the body is copied to
/// its size when the slack is large.
async fn read_body(mut resp: reqwest::Response) -> Result<Bytes, reqwest::Error> {
    // Trust the header only as a first size, never as a promise.
    const MAX_PRESIZE: u64 = 64 << 20;
    let mut buf = bytes::BytesMut::with_capacity(
        resp.content_length().unwrap_or(0).min(MAX_PRESIZE) as usize,
    );
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
    }
    if buf.capacity() > buf.len() + buf.len() / 8 + 4096 {
        return Ok(Bytes::copy_from_slice(&buf));
    }
    Ok(buf.freeze())
}

fn status_label(status: StatusCode) -> SharedString {
    match status.as_u16() {
        200 => SharedString::const_str("200"),
        400 => SharedString::const_str("400"),
        401 => SharedString::const_str("401"),
        403 => SharedString::const_str("403"),
        404 => SharedString::const_str("404"),
        429 => SharedString::const_str("429"),
        500 => SharedString::const_str("500"),
        502 => SharedString::const_str("502"),
        503 => SharedString::const_str("503"),
        504 => SharedString::const_str("504"),
        code => SharedString::from(code.to_string()),
    }
}

fn classify_status(
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
    url: &Url,
) -> Outcome {
    let code = status.as_u16();
    let shown = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        message
    };
    match code {
        401 | 403 => Outcome::Fatal(FetchError::Unauthorized {
            status: code,
            message: shown,
        }),
        404 => Outcome::Fatal(FetchError::NotFound {
            url: url.to_string(),
        }),
        408 | 429 | 500 | 502 | 503 | 504 => Outcome::Transient {
            cause: match code {
                408 => "http_408",
                429 => "http_429",
                500 => "http_500",
                502 => "http_502",
                503 => "http_503",
                _ => "http_504",
            },
            retry_after,
            detail: format!("HTTP {code}: {shown}"),
        },
        400 => Outcome::QueryFailed(format!("Orca rejected the query (HTTP 400): {shown}")),
        _ => Outcome::QueryFailed(format!("HTTP {code}: {shown}")),
    }
}

/// Numeric `Retry-After` only; an HTTP date falls back to our own backoff.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    v.parse::<f64>()
        .ok()
        .and_then(|f| Duration::try_from_secs_f64(f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn status_classes() {
        let url = Url::parse("https://x.example/api/serving-layer/query").unwrap();
        let c = |code: u16| {
            classify_status(StatusCode::from_u16(code).unwrap(), "m".into(), None, &url)
        };
        assert!(matches!(
            c(401),
            Outcome::Fatal(FetchError::Unauthorized { status: 401, .. })
        ));
        assert!(matches!(
            c(403),
            Outcome::Fatal(FetchError::Unauthorized { status: 403, .. })
        ));
        assert!(matches!(
            c(404),
            Outcome::Fatal(FetchError::NotFound { .. })
        ));
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(c(code), Outcome::Transient { .. }), "{code}");
        }
        assert!(matches!(c(400), Outcome::QueryFailed(_)));
        assert!(matches!(c(501), Outcome::QueryFailed(_)));
        assert!(matches!(c(422), Outcome::QueryFailed(_)));
    }

    #[test]
    fn bad_token_header_is_config_error_without_token() {
        let cfg = FetchConfig::default();
        let err = match OrcaClient::new(&cfg, &Secret::new("sec\nret-tok")) {
            Err(e) => e,
            Ok(_) => panic!("a token with a newline must be refused"),
        };
        assert!(matches!(err, FetchError::Config(_)));
        assert!(!format!("{err} {err:?}").contains("ret-tok"));
    }
}
