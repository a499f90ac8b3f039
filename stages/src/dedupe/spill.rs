//! Writing records to their partition files during the pull.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{frame, partition_of, DedupeError};
use crate::model::EtmRecord;

/// Counts of one spill.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SpillStats {
    pub assets: u64,
    pub findings: u64,
    pub bytes: u64,
}

/// The open partition files of a run.
pub struct SpillWriter {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
    stats: SpillStats,
}

impl SpillWriter {
    /// Create `partitions` empty files in `dir` (created if needed).
    pub fn create(dir: &Path, partitions: usize) -> Result<SpillWriter, DedupeError> {
        std::fs::create_dir_all(dir).map_err(DedupeError::io(dir))?;
        let mut files = Vec::with_capacity(partitions);
        for p in 0..partitions.max(1) {
            let path = part_path(dir, p);
            let f = File::create(&path).map_err(DedupeError::io(&path))?;
            files.push(BufWriter::with_capacity(32 << 10, f));
        }
        Ok(SpillWriter {
            dir: dir.to_path_buf(),
            files,
            stats: SpillStats::default(),
        })
    }

    pub fn write(&mut self, rec: &EtmRecord) -> Result<(), DedupeError> {
        let (tag, asset, vendor, json) = match rec {
            EtmRecord::Asset(a) => (frame::ASSET, &a.asset_id, "", &a.json),
            EtmRecord::Finding(f) => (frame::FINDING, &f.asset_id, f.vendor_id.as_str(), &f.json),
        };
        let p = partition_of(asset.as_bytes(), 0, self.files.len());
        let n = frame::write(
            &mut self.files[p],
            tag,
            asset.as_bytes(),
            vendor.as_bytes(),
            json,
        )
        .map_err(DedupeError::io(&part_path(&self.dir, p)))?;
        self.stats.bytes += n;
        match tag {
            frame::ASSET => self.stats.assets += 1,
            _ => self.stats.findings += 1,
        }
        Ok(())
    }

    pub fn stats(&self) -> &SpillStats {
        &self.stats
    }

    /// Flush and close every file; returns the partition paths in order.
    pub fn finish(self) -> Result<(Vec<PathBuf>, SpillStats), DedupeError> {
        let mut paths = Vec::with_capacity(self.files.len());
        for (p, f) in self.files.into_iter().enumerate() {
            let path = part_path(&self.dir, p);
            let f = f
                .into_inner()
                .map_err(|e| DedupeError::io(&path)(e.into_error()))?;
            // No fsync: spill files are private to this run; a crashed run
            // starts again from an empty spill folder.
            drop(f);
            paths.push(path);
        }
        Ok((paths, self.stats))
    }
}

fn part_path(dir: &Path, p: usize) -> PathBuf {
    dir.join(format!("part-{p:05}.spill"))
}
