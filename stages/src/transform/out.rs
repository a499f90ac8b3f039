//! The output tree: a JSON value whose objects keep the map's field order.
//!
//! serde_json's `preserve_order` feature would do the same, but features are
//! unified across the workspace and would change key order for every other
//! stage; a tiny tree of our own keeps that decision local.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    List(Vec<Out>),
    Obj(Vec<(Box<str>, Out)>),
}

impl Out {
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
    pub fn get(&self, key: &str) -> Option<&Out> {
        match self {
            Out::Obj(entries) => entries.iter().find(|(k, _)| &**k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing this tree into a Vec cannot fail: keys are strings and
        // serde_json writes non-finite floats as null.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for Out {
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
