//! The fetch stage: pulls host assets and VulnerabilityV2 findings from
//! Orca's Serving-Layer query API and hands every raw page to the parse stage.
//!
//! - [`config`]: what the user configures; [`base_url`]: the domain forms.
//! - [`client`]: one HTTP request, classified; [`retry`]: backoff and budget;
//!   [`limiter`]: the per-token request rate shared by every query.
//! - [`planner`]: the queries, their bodies, and how partitions are split;
//!   [`pager`]: the offset walk of one partition; [`run`](run()): the whole run.
//! - [`report`]: what goes into the run manifest.

pub mod base_url;
pub mod client;
pub mod config;
pub mod error;
pub mod limiter;
mod pager;
pub mod planner;
pub mod report;
pub mod retry;
mod run;
mod state;

pub use base_url::base_url;
pub use config::{FetchConfig, FINDING_MODEL, VM_MODELS};
pub use error::FetchError;
pub use report::{FetchReport, QueryReport};
pub use run::{run, run_at};
