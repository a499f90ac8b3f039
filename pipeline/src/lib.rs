//! orca-etm runtime: configuration, the run lifecycle, stage workers,
//! progress and the run manifest. The CLI (`orca-etm`) is a thin layer over
//! [`run::sync`].

pub mod alloc;
pub mod check;
pub mod config;
pub mod demo;
pub mod manifest;
pub mod progress;
pub mod publish;
pub mod run;
pub mod runs;
pub mod runtime;
pub mod serve;
pub mod sink_stage;
pub mod sinks;
pub mod telemetry;
