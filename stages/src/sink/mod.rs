//! sink: where assembled documents go.
//!
//! A sink sees documents in `externalAssetId` order and makes them visible
//! only at [`Sink::commit`], so a reader never sees half a run and a run that
//! fails leaves the previous output in place.

pub mod atomic;
pub mod batch;
pub mod dead_letters;
pub mod ndjson;

pub use batch::DocBatch;
pub use dead_letters::DeadLetterWriter;
pub use ndjson::NdjsonSink;

/// What a sink delivered, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkReport {
    pub sink: String,
    pub documents: u64,
    pub bytes: u64,
    /// Where the output is (a file path, a URL without credentials).
    pub location: String,
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
}

/// A destination of ETM documents.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// One document (a JSON object without a trailing newline).
    fn write(&mut self, asset_id: &[u8], doc: &[u8]) -> Result<(), SinkError>;
    /// Make the run's output visible, atomically where the medium allows.
    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError>;
}
