//! Errors that end the whole run. Everything else (a query that cannot be
//! completed) is recorded in the report and the run goes on as `partial`.
//!
//! No variant ever holds the token: messages come from Orca's answer with the
//! token scrubbed out, URLs never carry it, and the header value is marked
//! sensitive so reqwest never prints it either.

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 401/403: bad, expired or under-privileged token.
    #[error(
        "Orca refused the API token (HTTP {status}): {}; check the token and its permissions",
        .message.trim_end().trim_end_matches('.')
    )]
    Unauthorized { status: u16, message: String },
    /// 404: the base URL is wrong (wrong region or path).
    #[error("Orca answered 404 Not Found for {url}: check the configured domain / base URL")]
    NotFound { url: String },
    /// No request of the run got any HTTP answer (refused, DNS, timeouts):
    /// every query would fail the same way, so the run stops at the first.
    #[error(
        "cannot reach Orca at {url}: {}; check the domain, DNS, proxy and firewall",
        .detail.trim_end().trim_end_matches('.')
    )]
    Unreachable { url: String, detail: String },
    /// The check: Orca answered, but not one query with a page.
    #[error("Orca answered no query with a page, so the token is not proven: {0}")]
    NoQueryAnswered(String),
    #[error("invalid fetch configuration: {0}")]
    Config(String),
    /// The parse stage went away (channel closed or a page's ack dropped).
    #[error("the downstream stage stopped; fetch stopped with it")]
    DownstreamClosed,
}
