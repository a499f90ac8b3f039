//! ETM NDJSON: one document per line, renamed into place when the run's
//! publish phase has finished.

use std::path::{Path, PathBuf};

use super::atomic::AtomicFile;
use super::{Sink, SinkError, SinkReport};

/// File name of the documents in the output folder.
pub const FILE_NAME: &str = "etm-assets.ndjson";

pub struct NdjsonSink {
    name: &'static str,
    file: AtomicFile,
    documents: u64,
}

impl NdjsonSink {
    pub fn create(dir: &Path) -> Result<NdjsonSink, SinkError> {
        NdjsonSink::named("ndjson", dir)
    }

    /// A sink called `name` (logs, metrics, manifest) writing into `dir`.
    pub fn named(name: &'static str, dir: &Path) -> Result<NdjsonSink, SinkError> {
        let path = dir.join(FILE_NAME);
        let file = AtomicFile::create(&path).map_err(io(name, &path))?;
        Ok(NdjsonSink {
            name,
            file,
            documents: 0,
        })
    }
}

fn io<'a>(name: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        sink: name,
        path: path.to_path_buf(),
        source,
    }
}

impl Sink for NdjsonSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, _asset_id: &[u8], doc: &[u8]) -> Result<(), SinkError> {
        let path: PathBuf = self.file.path().to_path_buf();
        self.file.write_all(doc).map_err(io(self.name, &path))?;
        self.file.write_all(b"\n").map_err(io(self.name, &path))?;
        self.documents += 1;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let bytes = self.file.bytes();
        let documents = self.documents;
        let path = self.file.path().to_path_buf();
        let name = self.name;
        let done = self.file.commit().map_err(io(name, &path))?;
        Ok(SinkReport {
            sink: name.into(),
            documents,
            bytes,
            location: done.display().to_string(),
            ..SinkReport::default()
        })
    }
}
