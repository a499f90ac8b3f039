//! dedupe-by-asset-id: spill partitions on local disk, then assembly.
//!
//! During the pull every record is routed by a hash of its asset id into one
//! of K partition files, so an asset and all its findings meet in one file
//! whatever order they arrived in. At publish time each partition is read
//! into memory alone ([`assemble`]): duplicates (the same asset or finding
//! seen twice, as offset paging produces) are removed there, exactly, and
//! findings are grouped under their asset. A partition larger than the
//! assembly budget is split again by another hash before it is read, so
//! memory is set by configuration, never by the tenant. The sorted documents
//! of all partitions are merged ([`merge`]) into one stream in
//! `externalAssetId` order, so two runs over the same data are identical.

pub mod assemble;
pub mod frame;
pub mod merge;
pub mod render;
pub mod spill;

pub use assemble::{assemble_all, AssembleStats};
pub use merge::{AssembledAsset, AssetHead, Merge};
pub use render::{render, render_document, FindingOut};
pub use spill::{SpillStats, SpillWriter};

/// Settings of the dedupe stage.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupeConfig {
    /// Number of spill partitions written during the pull.
    pub partitions: usize,
    /// Largest partition assembled in memory, in bytes of spilled records;
    /// a larger one is split again first. Peak memory of the publish phase is
    /// a small multiple of this times `assemble_workers`.
    pub assemble_budget_bytes: u64,
    /// Partitions assembled at once.
    pub assemble_workers: usize,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            partitions: 128,
            // 4 MiB rather than 8: at 5,000,000 findings the publish
            // phase peaked at 116 MiB against 88, and ran 13% slower
            // (larger partitions sort out of cache).
            assemble_budget_bytes: 4 << 20,
            assemble_workers: 2,
        }
    }
}

/// The partition of an asset id (`salt` differs per level of re-splitting).
pub fn partition_of(asset_id: &[u8], salt: u64, partitions: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    // Fixed keys: the route must be the same in every process of a run.
    let mut h =
        ahash::RandomState::with_seeds(0x6f72_6361, 0x6574_6d21, salt, 0x5eed).build_hasher();
    h.write(asset_id);
    (h.finish() % partitions.max(1) as u64) as usize
}

/// Errors of the dedupe stage: only local disk can fail it.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    #[error("spill file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl DedupeError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DedupeError + '_ {
        move |source| DedupeError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
