//! Merge of the sorted run files into one stream of assembled assets in
//! asset id order.
//!
//! An asset comes as its head ([`Merge::next_head`]) and then its findings,
//! read as a stream ([`Merge::findings`]) and, if the caller needs them a
//! second time, read again from the run file ([`Merge::reread`]). An asset
//! with tens of thousands of findings is never held whole: what it costs
//! is set by the caller, not by the asset.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
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

/// The head of the next asset: what it is and where its findings lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetHead {
    pub asset_id: String,
    /// The asset's ETM document without findings; `None` for an asset only
    /// its findings named.
    pub json: Option<Vec<u8>>,
    /// Its findings, deduplicated, in vendor id order.
    pub findings: u32,
    run: usize,
    /// Byte offset of its first finding frame in the run file.
    findings_at: u64,
}

/// Streams the assets of many sorted run files in asset id order.
pub struct Merge {
    runs: Vec<PathBuf>,
    readers: Vec<BufReader<File>>,
    /// Bytes read so far from each run file.
    pos: Vec<u64>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
    heads: Vec<frame::Frame>,
    /// The head returned last whose findings were not read yet.
    pending: Option<(usize, u32)>,
    frame: frame::Frame,
}

impl Merge {
    pub fn open(runs: Vec<PathBuf>) -> Result<Merge, DedupeError> {
        let mut m = Merge {
            readers: Vec::with_capacity(runs.len()),
            pos: vec![0; runs.len()],
            heap: BinaryHeap::with_capacity(runs.len()),
            heads: Vec::with_capacity(runs.len()),
            pending: None,
            frame: frame::Frame::default(),
            runs,
        };
        for (i, path) in m.runs.iter().enumerate() {
            let f = File::open(path).map_err(DedupeError::io(path))?;
            // Small: a large tenant merges hundreds of run files at once,
            // each read sequentially (the OS reads ahead anyway).
            let mut r = BufReader::with_capacity(8 << 10, f);
            let mut head = frame::Frame::default();
            if frame::read(&mut r, &mut head).map_err(DedupeError::io(path))? {
                m.pos[i] = frame::size(&head);
                m.heap.push(Reverse((head.a.clone(), i)));
            }
            m.readers.push(r);
            m.heads.push(head);
        }
        Ok(m)
    }

    /// The next asset in asset id order, `None` at the end. Its findings
    /// are read with [`Merge::findings`] before the next head; unread, they
    /// are skipped.
    pub fn next_head(&mut self) -> Result<Option<AssetHead>, DedupeError> {
        if self.pending.is_some() {
            self.findings(|_, _| Ok(()))?;
        }
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
        self.pending = Some((i, count));
        Ok(Some(AssetHead {
            asset_id: String::from_utf8_lossy(&head.a).into_owned(),
            json: (head.tag == frame::ASSET).then_some(head.c),
            findings: count,
            run: i,
            findings_at: self.pos[i],
        }))
    }

    /// Read the findings of the asset [`Merge::next_head`] returned last, in
    /// vendor id order: `each(vendor_id, finding_json)`.
    pub fn findings<E>(
        &mut self,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DedupeError>,
    {
        let Some((i, count)) = self.pending.take() else {
            return Ok(());
        };
        let path = &self.runs[i];
        let f = &mut self.frame;
        for _ in 0..count {
            if !frame::read(&mut self.readers[i], f).map_err(DedupeError::io(path))? {
                return Err(DedupeError::io(path)(std::io::Error::other(
                    "run file ends inside an asset",
                ))
                .into());
            }
            self.pos[i] += frame::size(f);
            each(&f.b, &f.c)?;
        }
        let mut next = frame::Frame::default();
        if frame::read(&mut self.readers[i], &mut next).map_err(DedupeError::io(path))? {
            self.pos[i] += frame::size(&next);
            self.heap.push(Reverse((next.a.clone(), i)));
            self.heads[i] = next;
        }
        Ok(())
    }

    /// Read `head`'s findings again from its run file, as [`Merge::findings`] did.
    pub fn reread<E>(
        &self,
        head: &AssetHead,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DedupeError>,
    {
        let path = &self.runs[head.run];
        let io = DedupeError::io(path);
        let mut file = File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(head.findings_at))
            .map_err(DedupeError::io(path))?;
        let mut r = BufReader::with_capacity(64 << 10, file);
        let mut f = frame::Frame::default();
        for _ in 0..head.findings {
            if !frame::read(&mut r, &mut f).map_err(DedupeError::io(path))? {
                return Err(DedupeError::io(path)(std::io::Error::other(
                    "run file ends inside an asset",
                ))
                .into());
            }
            each(&f.b, &f.c)?;
        }
        Ok(())
    }

    /// The next asset with all its findings in memory (tests, tools: the
    /// publish phase streams them).
    pub fn next_asset(&mut self) -> Result<Option<AssembledAsset>, DedupeError> {
        let Some(head) = self.next_head()? else {
            return Ok(None);
        };
        let mut findings = Vec::with_capacity(head.findings as usize);
        self.findings::<DedupeError>(|v, j| {
            findings.push((String::from_utf8_lossy(v).into_owned(), j.to_vec()));
            Ok(())
        })?;
        Ok(Some(AssembledAsset {
            asset_id: head.asset_id,
            json: head.json,
            findings,
        }))
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
