//! The output tree: a JSON value whose objects keep the map's field order.
//!
//! serde_json's `preserve_order` feature would do the same, but features are
//! unified across the workspace and would change key order for every other
//! stage; a tiny tree of our own keeps that decision local.

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Strings and keys borrow from the input record and the compiled map
/// where they can: a document is built without copying what it repeats.
#[derive(Debug, Clone, PartialEq)]
pub enum Out<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'a, str>),
    List(Vec<Out<'a>>),
    Obj(Vec<(Cow<'a, str>, Out<'a>)>),
}

impl Out<'_> {
    /// The same value borrowing from `self` (for constants of the map).
    pub fn reborrow(&self) -> Out<'_> {
        match self {
            Out::Null => Out::Null,
            Out::Bool(b) => Out::Bool(*b),
            Out::I64(i) => Out::I64(*i),
            Out::U64(u) => Out::U64(*u),
            Out::F64(f) => Out::F64(*f),
            Out::Str(s) => Out::Str(Cow::Borrowed(s)),
            Out::List(l) => Out::List(l.iter().map(Out::reborrow).collect()),
            Out::Obj(o) => Out::Obj(
                o.iter()
                    .map(|(k, v)| (Cow::Borrowed(&**k), v.reborrow()))
                    .collect(),
            ),
        }
    }

    /// The same value owning everything, to outlive what it borrowed from.
    pub fn into_static(self) -> Out<'static> {
        match self {
            Out::Null => Out::Null,
            Out::Bool(b) => Out::Bool(b),
            Out::I64(i) => Out::I64(i),
            Out::U64(u) => Out::U64(u),
            Out::F64(f) => Out::F64(f),
            Out::Str(s) => Out::Str(Cow::Owned(s.into_owned())),
            Out::List(l) => Out::List(l.into_iter().map(Out::into_static).collect()),
            Out::Obj(o) => Out::Obj(
                o.into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_static()))
                    .collect(),
            ),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Out::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Out::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under a top-level key of an object.
    pub fn get(&self, key: &str) -> Option<&Out<'_>> {
        match self {
            Out::Obj(entries) => entries.iter().find(|(k, _)| &**k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The tree as JSON, in a Vec of exactly its length. Documents wait in
    /// channels and spill buffers by the thousand: a Vec grown by doubling
    /// holds up to twice its bytes (the peak of a pull was a third slack),
    /// so each is written into a reused buffer and copied out at its size.
    pub fn to_json(&self) -> Vec<u8> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // Serializing this tree into a Vec cannot fail: keys are strings and
        // serde_json writes non-finite floats as null.
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                let _ = serde_json::to_writer(&mut *buf, self);
                let out = buf.as_slice().to_vec();
                // One huge document must not stay a worker's for good.
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                out
            }
            Err(_) => serde_json::to_vec(self).unwrap_or_default(),
        })
    }
}

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Null => s.serialize_unit(),
            Out::Bool(b) => s.serialize_bool(*b),
            Out::I64(i) => s.serialize_i64(*i),
            Out::U64(u) => s.serialize_u64(*u),
            Out::F64(f) => s.serialize_f64(*f),
            Out::Str(v) => s.serialize_str(v),
            Out::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Out::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_exactly_as_long_as_its_buffer() {
        let long = "x".repeat(5000);
        let doc = Out::Obj(vec![
            ("a".into(), Out::Str(long.as_str().into())),
            ("b".into(), Out::I64(7)),
        ]);
        let json = doc.to_json();
        assert_eq!(json.len(), json.capacity());
        assert_eq!(&json[..6], br#"{"a":""#);
        assert!(json.ends_with(br#"","b":7}"#));
        // And the next one, through the same reused buffer.
        let small = Out::Obj(vec![("k".into(), Out::Bool(true))]).to_json();
        assert_eq!(small, br#"{"k":true}"#);
        assert_eq!(small.len(), small.capacity());
    }
}
