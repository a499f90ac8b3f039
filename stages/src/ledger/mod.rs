//! The ledger: the connector's memory across runs (project issue 4).
//!
//! This first step holds the finding status rules; the storage follows.

pub mod status;

pub use status::{
    status_missing, status_seen, status_unreadable, FixPolicy, MissingOutcome, Status,
};
