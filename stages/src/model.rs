//! Records as they cross stage boundaries.

use std::sync::Arc;

use crate::page::QueryInfo;

/// Whether an Orca item is a host asset or a vulnerability finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Asset,
    Finding,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Asset => "asset",
            RecordKind::Finding => "finding",
        }
    }
}

/// One Orca item, parsed, as the parse stage emits it.
#[derive(Debug, Clone)]
pub struct OrcaRecord {
    pub kind: RecordKind,
    /// The whole item (`id`, `name`, `type`, `asset_unique_id`, `data`, …).
    pub item: simd_json::OwnedValue,
    /// Where it came from, for dead letters.
    pub query: Arc<QueryInfo>,
    pub offset: u64,
}

/// A host asset after the transform map: its ETM document without findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtmAsset {
    /// `externalAssetId`: the Orca asset unique id.
    pub asset_id: String,
    /// The ETM document as one serialized JSON object, without `finding`.
    pub json: Vec<u8>,
}

/// A finding after the transform map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtmFinding {
    /// The asset it belongs to (`externalAssetId`).
    pub asset_id: String,
    /// Orca's finding id (`findingType.vulnerability.vendorId`): unique within the asset.
    pub vendor_id: String,
    /// The ETM finding as one serialized JSON object, without `status`
    /// (the assembler adds it, since it depends on the run's history).
    pub json: Vec<u8>,
}

/// What the transform stage emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtmRecord {
    Asset(EtmAsset),
    Finding(EtmFinding),
}

/// A record that could not be used, with the reason, as written to
/// `dead-letters.ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Stage that rejected it (`parse`, `transform`, …).
    pub stage: &'static str,
    /// Short machine-readable reason, e.g. `invalid_json`, `missing_asset_id`.
    pub reason: String,
    /// Human explanation.
    pub detail: String,
    /// What the record was: `asset` or `finding` (from its query).
    pub record: &'static str,
    /// The Orca item `id`, when it could still be read: for a finding, the
    /// key the ledger knows it by, so a finding that could not be read is
    /// never taken for one that is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Query label and page offset it came from.
    pub query: String,
    pub offset: u64,
    /// The first KiB of the raw record (lossy UTF-8).
    pub raw: String,
}

/// Cut a raw record to the first KiB for a dead letter, on a char boundary.
pub fn raw_excerpt(raw: &[u8]) -> String {
    const MAX: usize = 1024;
    let cut = &raw[..raw.len().min(MAX)];
    String::from_utf8_lossy(cut).into_owned()
}
