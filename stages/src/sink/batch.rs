//! A batch of rendered documents, built once by the publish phase and
//! shared by every sink's channel without copying (each sink receives the
//! same `Arc<DocBatch>`).

use crate::channel::Weighted;

/// Documents in publish order: each an asset id and its JSON document, in
/// one buffer so a batch is two allocations whatever its size.
#[derive(Debug, Default, Clone)]
pub struct DocBatch {
    buf: Vec<u8>,
    /// Per document: where its id ends and where its document ends in `buf`.
    spans: Vec<(usize, usize)>,
}

impl DocBatch {
    pub fn with_capacity(docs: usize, bytes: usize) -> DocBatch {
        DocBatch {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(docs),
        }
    }

    pub fn push(&mut self, asset_id: &[u8], doc: &[u8]) {
        self.buf.extend_from_slice(asset_id);
        let id_end = self.buf.len();
        self.buf.extend_from_slice(doc);
        self.spans.push((id_end, self.buf.len()));
    }

    /// Documents in the batch.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of the documents (ids included).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// `(asset_id, document)` in the order they were pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0;
        self.spans.iter().map(move |&(id_end, end)| {
            let item = (&self.buf[start..id_end], &self.buf[id_end..end]);
            start = end;
            item
        })
    }
}

impl Weighted for DocBatch {
    fn weight(&self) -> usize {
        self.len().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_come_back_in_order_with_their_ids() {
        let mut b = DocBatch::default();
        assert!(b.is_empty());
        b.push(b"a-1", br#"{"x":1}"#);
        b.push(b"", b"{}");
        b.push(b"c", br#"{"y":[1,2]}"#);
        let got: Vec<(&[u8], &[u8])> = b.iter().collect();
        assert_eq!(
            got,
            vec![
                (&b"a-1"[..], &br#"{"x":1}"#[..]),
                (&b""[..], &b"{}"[..]),
                (&b"c"[..], &br#"{"y":[1,2]}"#[..]),
            ]
        );
        assert_eq!(b.len(), 3);
        assert_eq!(b.weight(), 3);
        assert_eq!(b.bytes(), 3 + 7 + 2 + 1 + 11);
    }
}
