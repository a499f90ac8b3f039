//! sink: where assembled documents go.
//!
//! A sink sees documents in `externalAssetId` order, each in parts (its
//! asset, its findings one by one, its end), and makes them visible only at
//! [`Sink::commit`], so a reader never sees half a run and a run that fails
//! leaves the previous output in place.

pub mod atomic;
pub mod batch;
pub mod config;
pub mod csv;
pub mod dead_letters;
pub mod ndjson;
pub mod qualys;

pub use self::csv::CsvSink;
pub use batch::{Part, PartBatch};
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
    /// Assets (`externalAssetId`) this sink could not deliver: the ledger
    /// forgets their documents, so a delta run sends them again.
    #[serde(skip)]
    pub undelivered: Vec<String>,
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
///
/// Each document comes in parts: [`Sink::begin_document`] with the asset
/// (its ETM document without `finding`), [`Sink::finding`] for each of its
/// findings in order, [`Sink::end_document`]. The pipeline never holds a
/// document whole; a sink that must deliver one whole builds it itself.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// A document begins: `asset` is a JSON object (the asset's fields).
    fn begin_document(&mut self, asset_id: &str, asset: &[u8]) -> Result<(), SinkError>;
    /// One finding of the current document: a JSON object.
    fn finding(&mut self, finding: &[u8]) -> Result<(), SinkError>;
    /// The current document is complete.
    fn end_document(&mut self) -> Result<(), SinkError>;
    /// Make the run's output visible, atomically where the medium allows.
    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError>;
}

/// Hand one part to a sink.
pub fn write_part(sink: &mut dyn Sink, part: Part<'_>) -> Result<(), SinkError> {
    match part {
        Part::Begin { asset_id, asset } => sink.begin_document(asset_id, asset),
        Part::Finding(f) => sink.finding(f),
        Part::End => sink.end_document(),
    }
}

/// A whole rendered document (`{…asset…,"finding":[…]}`) cut into its
/// parts: the asset object without `finding`, and each finding.
pub fn split_document(doc: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    use crate::json::Json;
    let mut text = doc.to_vec();
    let tape = simd_json::to_tape(&mut text).map_err(|e| e.to_string())?;
    let root = tape.as_value();
    let entries = root
        .entries()
        .ok_or_else(|| "the document is not a JSON object".to_string())?;
    let mut asset = b"{".to_vec();
    let mut findings = Vec::new();
    for (k, v) in entries {
        if k == "finding" {
            if v.is_null() {
                continue;
            }
            let list = v
                .elements()
                .ok_or_else(|| "`finding` is not a list".to_string())?;
            findings.extend(list.map(|f| f.to_json_vec()));
            continue;
        }
        if asset.len() > 1 {
            asset.push(b',');
        }
        asset.extend_from_slice(&serde_json::to_vec(k).unwrap_or_default());
        asset.push(b':');
        v.write_json(&mut asset);
    }
    asset.push(b'}');
    Ok((asset, findings))
}

/// Hand a whole rendered document to a sink in parts (tests and tools; the
/// pipeline renders parts directly).
pub fn write_document(sink: &mut dyn Sink, asset_id: &str, doc: &[u8]) -> Result<(), SinkError> {
    let (asset, findings) = split_document(doc).map_err(|message| SinkError::Document {
        sink: "write_document",
        asset_id: asset_id.to_string(),
        message,
    })?;
    sink.begin_document(asset_id, &asset)?;
    for f in &findings {
        sink.finding(f)?;
    }
    sink.end_document()
}
