//! The stages of the orca-etm pipeline, one module each.
//!
//! Data flows `fetch` → `parse` → `transform` → `dedupe` → `sink`. The types
//! that cross a stage boundary live in [`model`] and [`page`], so that a stage
//! depends on its neighbours' data, never on their code.

pub mod channel;
pub mod dedupe;
pub mod failpoint;
pub mod fetch;
pub mod json;
pub mod ledger;
pub mod model;
pub mod net;
pub mod page;
pub mod parse;
pub mod secret;
pub mod sink;
pub mod telemetry;
pub mod transform;
