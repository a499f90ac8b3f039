//! sink: where assembled documents go.
//!
//! A sink sees documents in `externalAssetId` order and makes them visible
//! only at [`Sink::commit`], so a reader never sees half a run and a run that
//! fails leaves the previous output in place.

pub mod atomic;
pub mod batch;
pub mod config;
pub mod csv;
pub mod dead_letters;
pub mod ndjson;
pub mod qualys;

pub use self::csv::CsvSink;
pub use batch::DocBatch;
pub use config::SinkConfig;
pub use dead_letters::DeadLetterWriter;
pub use ndjson::NdjsonSink;
pub use qualys::QualysWebhookSink;

/// What a sink delivered, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkReport {
    pub sink: String,
    pub documents: u64,
    pub bytes: u64,
    /// Where the output is (a file path, a URL without credentials).
    pub location: String,
    /// Documents this sink could not deliver, each in its dead-letter file.
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_letters: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_file: Option<String>,
    /// The sink's own counters (CSV rows, webhook requests and retries…).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub details: std::collections::BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Errors of a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {path}: {source}")]
    Io {
        sink: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A document the sink cannot read (a bug upstream: we rendered it).
    #[error("{sink}: document of asset {asset_id} is not valid JSON: {message}")]
    Document {
        sink: &'static str,
        asset_id: String,
        message: String,
    },
    /// The destination refused or could not be reached after every retry.
    #[error("{sink}: {message}")]
    Delivery { sink: &'static str, message: String },
}

/// A destination of ETM documents.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// One document (a JSON object without a trailing newline).
    fn write(&mut self, asset_id: &[u8], doc: &[u8]) -> Result<(), SinkError>;
    /// Make the run's output visible, atomically where the medium allows.
    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError>;
}
