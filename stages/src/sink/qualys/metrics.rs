//! Metric names of the webhook sink (label `sink`: the sink's name).

/// Requests by `endpoint` (`auth`, `sync`) and `status` (HTTP code, or
/// `error` when no answer came).
pub const REQUESTS: &str = "orca_etm_sink_requests_total";
/// Retries by `cause` (`http_409`, `http_429`, `http_5xx`, `unauthorized`,
/// `transport`, `asset_error`).
pub const RETRIES: &str = "orca_etm_sink_retries_total";
/// Documents the gateway accepted.
pub const DOCUMENTS_SENT: &str = "orca_etm_sink_documents_sent_total";
/// Request body bytes sent, retries included.
pub const BYTES_SENT: &str = "orca_etm_sink_bytes_sent_total";
/// Seconds per request (histogram).
pub const REQUEST_DURATION: &str = "orca_etm_sink_request_duration_seconds";
/// Seconds spent holding a call for the rate limit (histogram).
pub const RATE_LIMIT_WAIT: &str = "orca_etm_sink_rate_limit_wait_seconds";
/// JWTs fetched, by `cause` (`first`, `expiry`, `unauthorized`).
pub const TOKEN_REFRESHES: &str = "orca_etm_sink_token_refreshes_total";
/// Documents given up on, written to the sink's dead-letter file.
pub const DEAD_LETTERS: &str = "orca_etm_sink_dead_letters_total";
