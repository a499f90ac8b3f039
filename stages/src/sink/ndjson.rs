//! ETM NDJSON: one document per line, renamed into place when the run's
//! publish phase has finished.

use std::path::{Path, PathBuf};

use super::atomic::AtomicFile;
use super::{Sink, SinkError, SinkReport};

/// File name of the documents in the output folder.
pub const FILE_NAME: &str = "etm-assets.ndjson";

pub struct NdjsonSink {
    file: AtomicFile,
    documents: u64,
}

impl NdjsonSink {
    pub fn create(dir: &Path) -> Result<NdjsonSink, SinkError> {
        let path = dir.join(FILE_NAME);
        let file = AtomicFile::create(&path).map_err(io(&path))?;
        Ok(NdjsonSink { file, documents: 0 })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        sink: "ndjson",
        path: path.to_path_buf(),
        source,
    }
}

impl Sink for NdjsonSink {
    fn name(&self) -> &'static str {
        "ndjson"
    }

    fn write(&mut self, _asset_id: &[u8], doc: &[u8]) -> Result<(), SinkError> {
        let path: PathBuf = self.file.path().to_path_buf();
        self.file.write_all(doc).map_err(io(&path))?;
        self.file.write_all(b"\n").map_err(io(&path))?;
        self.documents += 1;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let bytes = self.file.bytes();
        let documents = self.documents;
        let path = self.file.path().to_path_buf();
        let done = self.file.commit().map_err(io(&path))?;
        Ok(SinkReport {
            sink: "ndjson".into(),
            documents,
            bytes,
            location: done.display().to_string(),
        })
    }
}
