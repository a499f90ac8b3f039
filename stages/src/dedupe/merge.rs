//! Merge of the sorted run files into one stream in asset id order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use super::{frame, DedupeError};

/// Errors of a merge: reading a run, or the consumer refusing a document.
#[derive(Debug, thiserror::Error)]
pub enum MergeError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Dedupe(#[from] DedupeError),
    #[error(transparent)]
    Consumer(E),
}

/// Stream every document of `runs` to `each(asset_id, document)` in asset id
/// order; run files are removed afterwards. Returns the number of documents.
pub fn merge_runs<E, F>(runs: Vec<PathBuf>, mut each: F) -> Result<u64, MergeError<E>>
where
    E: std::error::Error + 'static,
    F: FnMut(&[u8], &[u8]) -> Result<(), E>,
{
    let mut readers = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, path) in runs.iter().enumerate() {
        let f = File::open(path).map_err(DedupeError::io(path))?;
        let mut r = BufReader::with_capacity(32 << 10, f);
        let mut fr = frame::Frame::default();
        if frame::read(&mut r, &mut fr).map_err(DedupeError::io(path))? {
            heap.push(Reverse((
                std::mem::take(&mut fr.a),
                i,
                std::mem::take(&mut fr.c),
            )));
        }
        readers.push(r);
    }
    let mut n = 0;
    let mut fr = frame::Frame::default();
    while let Some(Reverse((id, i, doc))) = heap.pop() {
        each(&id, &doc).map_err(MergeError::Consumer)?;
        n += 1;
        if frame::read(&mut readers[i], &mut fr).map_err(DedupeError::io(&runs[i]))? {
            heap.push(Reverse((
                std::mem::take(&mut fr.a),
                i,
                std::mem::take(&mut fr.c),
            )));
        }
    }
    drop(readers);
    for path in &runs {
        std::fs::remove_file(path).map_err(DedupeError::io(path))?;
    }
    Ok(n)
}
