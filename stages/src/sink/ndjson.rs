//! ETM NDJSON: one document per line, renamed into place when the run's
//! publish phase has finished.

use std::path::{Path, PathBuf};

use super::atomic::AtomicFile;
use super::{Sink, SinkError, SinkReport};
use crate::dedupe::render::open_object;

/// File name of the documents in the output folder.
pub const FILE_NAME: &str = "etm-assets.ndjson";

pub struct NdjsonSink {
    name: &'static str,
    file: AtomicFile,
    documents: u64,
    /// Findings written of the current document.
    in_document: Option<u64>,
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
            in_document: None,
        })
    }
}

impl NdjsonSink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let name = self.name;
        let path: PathBuf = self.file.path().to_path_buf();
        self.file.write_all(bytes).map_err(io(name, &path))
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

    fn begin_document(&mut self, _asset_id: &str, asset: &[u8]) -> Result<(), SinkError> {
        let mut head = Vec::with_capacity(asset.len() + 16);
        open_object(&mut head, asset);
        head.extend_from_slice(b"\"finding\":[");
        self.put(&head)?;
        self.in_document = Some(0);
        Ok(())
    }

    fn finding(&mut self, finding: &[u8]) -> Result<(), SinkError> {
        let n = self.in_document.unwrap_or(0);
        if n > 0 {
            self.put(b",")?;
        }
        self.put(finding)?;
        self.in_document = Some(n + 1);
        Ok(())
    }

    fn end_document(&mut self) -> Result<(), SinkError> {
        self.put(b"]}\n")?;
        self.in_document = None;
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
