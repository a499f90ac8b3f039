//! The fetch stage: pulls host assets and VulnerabilityV2 findings from
//! Orca's Serving-Layer query API and hands every raw page to the parse stage.
//!
//! - [`config`]: what the user configures; [`base_url`](mod@base_url): the domain forms.
//! - [`client`]: one HTTP request, classified; [`retry`]: backoff and budget;
//!   [`limiter`]: the per-token request rate shared by every query.
//! - [`planner`]: the queries, their bodies, and how partitions are split;
//!   `pager`: the offset walk of one partition; [`run`](run()): the whole run.
//! - [`report`]: what goes into the run manifest.
//!
//! # Calling it
//!
//! ```no_run
//! # async fn demo(token: stages::secret::Secret) -> Result<(), stages::fetch::FetchError> {
//! use stages::{channel, fetch, page::Page};
//! let cfg: fetch::FetchConfig = toml::from_str("domain = \"app.eu.orcasecurity.io\"").unwrap();
//! let (pages_tx, pages_rx) = channel::bounded::<Page>("fetch_to_parse", 8);
//! let cancel = tokio_util::sync::CancellationToken::new();
//! // The parse stage drains `pages_rx` and answers every `page.ack`.
//! # drop(pages_rx);
//! let report = fetch::run(&cfg, &token, pages_tx, cancel).await?;
//! if !report.complete {
//!     // The run is `partial`: publish what was read, mark nothing FIXED.
//! }
//! # Ok(()) }
//! ```
//!
//! # Splitting and completeness
//!
//! Each partition is walked from offset 0; page 1 gives `total_items`. If it
//! exceeds `page_cap`, it is read on in `FirstSeen` order, one stretch of
//! the cap at a time, each starting at the latest `FirstSeen` of the last
//! (`keyset`; `over_cap = "keyset"`, the default): about one request more
//! than the minimum. Where that cannot move on (more items than the cap
//! share one `FirstSeen`, rows shifted while paging), or with
//! `over_cap = "split"`, the partition is split (page 1's rows still go
//! downstream; dedupe removes the repeats): findings by severity (five
//! buckets plus a `not_in` complement, so none falls between), then by
//! `FirstSeen` windows, at least four and enough for ~80% of the cap each,
//! newest first, recursively. Siblings are disjoint, so once their totals
//! reach the parent's, the ones not yet started are skipped.
//!
//! A walk advances by the rows received, stops at an empty page, at the cap,
//! or as soon as its unique ids reach `total_items`. Fewer unique ids than
//! `total_items` means rows shifted under the walk (ties, a page served
//! twice): the partition is re-split into windows of about one page each
//! (a single page cannot shift) and read again.
//!
//! A leaf is complete when its unique ids reach its `total_items`; a split
//! parent when every child is complete *and* the children's totals add up to
//! its own (items no window reaches, e.g. without `FirstSeen`, show up as a
//! shortfall). Anything less is reported with `complete = false` and the
//! numbers, never dropped silently; the run's report is complete only if
//! every partition is.

pub mod base_url;
mod check;
pub mod client;
pub mod config;
pub mod error;
mod keyset;
pub mod limiter;
mod pager;
pub mod planner;
pub mod report;
pub mod retry;
mod run;
mod state;

pub use base_url::base_url;
pub use check::check;
pub use config::{FetchConfig, OverCap, FINDING_MODEL, VM_MODELS};
pub use error::FetchError;
pub use report::{FetchReport, QueryReport};
pub use run::{run, run_at};
