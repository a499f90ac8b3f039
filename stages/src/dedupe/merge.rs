//! Merge of the sorted run files into one stream of assembled assets in
//! asset id order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use super::{frame, DedupeError};

/// One asset with its findings, deduplicated and sorted by vendor id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AssembledAsset {
    pub asset_id: String,
    /// The asset's ETM document without findings; `None` when only its
    /// findings came back (the asset itself was not in the asset queries).
    pub json: Option<Vec<u8>>,
    /// `(vendor id, finding JSON without status)`, sorted by vendor id.
    pub findings: Vec<(String, Vec<u8>)>,
}

/// Streams the assets of many sorted run files in asset id order.
pub struct Merge {
    runs: Vec<PathBuf>,
    readers: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    heads: Vec<frame::Frame>,
}

impl Merge {
    pub fn open(runs: Vec<PathBuf>) -> Result<Merge, DedupeError> {
        let mut m = Merge {
            readers: Vec::with_capacity(runs.len()),
            heap: BinaryHeap::with_capacity(runs.len()),
            heads: Vec::with_capacity(runs.len()),
            runs,
        };
        for (i, path) in m.runs.iter().enumerate() {
            let f = File::open(path).map_err(DedupeError::io(path))?;
            let mut r = BufReader::with_capacity(32 << 10, f);
            let mut head = frame::Frame::default();
            if frame::read(&mut r, &mut head).map_err(DedupeError::io(path))? {
                m.heap.push(Reverse((head.a.clone(), i)));
            }
            m.readers.push(r);
            m.heads.push(head);
        }
        Ok(m)
    }

    /// The next asset in asset id order, `None` at the end.
    pub fn next_asset(&mut self) -> Result<Option<AssembledAsset>, DedupeError> {
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let path = &self.runs[i];
        let head = std::mem::take(&mut self.heads[i]);
        let count = head
            .b
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| DedupeError::io(path)(std::io::Error::other("torn asset frame")))?;
        let mut asset = AssembledAsset {
            asset_id: String::from_utf8_lossy(&head.a).into_owned(),
            json: (head.tag == frame::ASSET).then_some(head.c),
            findings: Vec::with_capacity(count as usize),
        };
        let mut f = frame::Frame::default();
        for _ in 0..count {
            if !frame::read(&mut self.readers[i], &mut f).map_err(DedupeError::io(path))? {
                return Err(DedupeError::io(path)(std::io::Error::other(
                    "run file ends inside an asset",
                )));
            }
            asset.findings.push((
                String::from_utf8_lossy(&f.b).into_owned(),
                std::mem::take(&mut f.c),
            ));
        }
        let mut next = frame::Frame::default();
        if frame::read(&mut self.readers[i], &mut next).map_err(DedupeError::io(path))? {
            self.heap.push(Reverse((next.a.clone(), i)));
            self.heads[i] = next;
        }
        Ok(Some(asset))
    }

    /// Remove the run files (after the last asset was taken).
    pub fn remove_files(self) -> Result<(), DedupeError> {
        drop(self.readers);
        for path in &self.runs {
            std::fs::remove_file(path).map_err(DedupeError::io(path))?;
        }
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = Result<AssembledAsset, DedupeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_asset().transpose()
    }
}
