//! `dead-letters.ndjson`: every record that could not be used, with why.

use std::collections::BTreeMap;
use std::path::Path;

use super::atomic::AtomicFile;
use crate::model::DeadLetter;

pub const FILE_NAME: &str = "dead-letters.ndjson";

/// Writes dead letters beside the output and counts them by stage and reason.
pub struct DeadLetterWriter {
    file: AtomicFile,
    counts: BTreeMap<String, u64>,
}

impl DeadLetterWriter {
    pub fn create(dir: &Path) -> std::io::Result<DeadLetterWriter> {
        Ok(DeadLetterWriter {
            file: AtomicFile::create(&dir.join(FILE_NAME))?,
            counts: BTreeMap::new(),
        })
    }

    pub fn write(&mut self, dl: &DeadLetter) -> std::io::Result<()> {
        *self
            .counts
            .entry(format!("{}:{}", dl.stage, dl.reason))
            .or_default() += 1;
        let mut line = serde_json::to_vec(dl).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Counts by `stage:reason`.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    pub fn commit(self) -> std::io::Result<BTreeMap<String, u64>> {
        self.file.commit()?;
        Ok(self.counts)
    }
}
