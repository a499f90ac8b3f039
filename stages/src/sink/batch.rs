//! A batch of document parts, built once by the publish phase and shared by
//! every sink's channel without copying (each sink receives the same
//! `Arc<PartBatch>`).
//!
//! A document travels as parts: its asset, its findings one by one, its
//! end ([`Part`]). A batch closes at a size, whatever the documents', so
//! an asset with fifty thousand findings crosses the channel in pieces and
//! no stage holds its document whole (but a sink that must send it whole).

use crate::channel::Weighted;

/// One part of the document stream, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// A document begins: its asset id, and the asset's JSON object
    /// without `finding`.
    Begin { asset_id: &'a str, asset: &'a [u8] },
    /// One finding of the current document: a complete JSON object.
    Finding(&'a [u8]),
    /// The current document is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Begin { id_end: usize },
    Finding,
    End,
}

/// Parts in publish order, in one buffer.
#[derive(Debug, Default, Clone)]
pub struct PartBatch {
    buf: Vec<u8>,
    /// Per part: its kind and where it ends in `buf` (it starts where the
    /// one before ends).
    spans: Vec<(Kind, usize)>,
    documents: usize,
}

impl PartBatch {
    pub fn with_capacity(bytes: usize) -> PartBatch {
        PartBatch {
            buf: Vec::with_capacity(bytes),
            spans: Vec::new(),
            documents: 0,
        }
    }

    pub fn begin(&mut self, asset_id: &str, asset: &[u8]) {
        self.buf.extend_from_slice(asset_id.as_bytes());
        let id_end = self.buf.len();
        self.buf.extend_from_slice(asset);
        self.spans.push((Kind::Begin { id_end }, self.buf.len()));
    }

    /// A finding written by `write` straight into the batch.
    pub fn finding_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buf);
        self.spans.push((Kind::Finding, self.buf.len()));
    }

    pub fn finding(&mut self, json: &[u8]) {
        self.finding_with(|b| b.extend_from_slice(json));
    }

    pub fn end(&mut self) {
        self.spans.push((Kind::End, self.buf.len()));
        self.documents += 1;
    }

    /// Parts in the batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Documents that end in this batch.
    pub fn documents(&self) -> usize {
        self.documents
    }

    /// Bytes of the parts (ids included).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The parts in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = Part<'_>> + '_ {
        let mut start = 0;
        self.spans.iter().map(move |&(kind, end)| {
            let part = match kind {
                Kind::Begin { id_end } => Part::Begin {
                    // Written from a &str just above.
                    asset_id: std::str::from_utf8(&self.buf[start..id_end]).unwrap_or_default(),
                    asset: &self.buf[id_end..end],
                },
                Kind::Finding => Part::Finding(&self.buf[start..end]),
                Kind::End => Part::End,
            };
            start = end;
            part
        })
    }
}

/// Sink channels are bounded in KiB of documents: documents range from a
/// few hundred bytes to tens of MiB, so a count of them bounds nothing.
impl Weighted for PartBatch {
    fn weight(&self) -> usize {
        self.bytes().div_ceil(1024).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_in_order() {
        let mut b = PartBatch::default();
        assert!(b.is_empty());
        b.begin("a-1", br#"{"x":1}"#);
        b.finding(br#"{"f":1}"#);
        b.finding_with(|buf| buf.extend_from_slice(b"{}"));
        b.end();
        b.begin("é", b"{}");
        b.end();
        let got: Vec<Part<'_>> = b.iter().collect();
        assert_eq!(
            got,
            vec![
                Part::Begin {
                    asset_id: "a-1",
                    asset: br#"{"x":1}"#
                },
                Part::Finding(br#"{"f":1}"#),
                Part::Finding(b"{}"),
                Part::End,
                Part::Begin {
                    asset_id: "é",
                    asset: b"{}"
                },
                Part::End,
            ]
        );
        assert_eq!((b.len(), b.documents()), (6, 2));
        assert_eq!(b.bytes(), 3 + 7 + 7 + 2 + 2 + 2);
        assert_eq!(b.weight(), 1);
    }

    #[test]
    fn weight_is_kib() {
        let mut b = PartBatch::default();
        b.begin("a", &vec![b' '; 4096]);
        assert_eq!(b.weight(), 5);
    }
}
