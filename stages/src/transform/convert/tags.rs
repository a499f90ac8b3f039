//! Orca tags to ETM custom attributes.

use std::collections::BTreeMap;

use simd_json::prelude::*;
use simd_json::OwnedValue;

use super::super::out::Out;
use super::super::stats::{Counter, TransformStats};
use super::scalar::{json, scalar_text};

/// The tag map with keys and values as strings, sorted by key so a cut at
/// `limit` keeps the same tags on every run. A map sent as a JSON-encoded
/// string is decoded; a list of `{key, value}` pairs (the AWS shape) is
/// accepted too. Anything else is null and counted.
pub fn tags(
    v: Option<&OwnedValue>,
    limit: Option<usize>,
    counter: Counter,
    stats: &mut TransformStats,
) -> Out<'static> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Out::Null;
    };
    let decoded;
    let v = match v.as_str() {
        Some(s) if s.trim().is_empty() => return Out::Null,
        Some(s) => {
            let mut bytes = s.as_bytes().to_vec();
            match simd_json::to_owned_value(&mut bytes) {
                // Encoded twice (a JSON string holding the JSON map) is seen in the wild.
                Ok(OwnedValue::String(inner)) => {
                    let mut bytes = inner.into_bytes();
                    match simd_json::to_owned_value(&mut bytes) {
                        Ok(d) => {
                            decoded = d;
                            &decoded
                        }
                        Err(_) => {
                            stats.undecodable_tags += 1;
                            return Out::Null;
                        }
                    }
                }
                Ok(d) => {
                    decoded = d;
                    &decoded
                }
                Err(_) => {
                    stats.undecodable_tags += 1;
                    return Out::Null;
                }
            }
        }
        None => v,
    };
    let Some(mut map) = collect(v) else {
        stats.undecodable_tags += 1;
        return Out::Null;
    };
    if let Some(limit) = limit {
        if map.len() > limit {
            stats.bump(counter);
            // BTreeMap::split_off keeps the first `limit` keys in `map`.
            if let Some(k) = map.keys().nth(limit).cloned() {
                map.split_off(&k);
            }
        }
    }
    Out::Obj(
        map.into_iter()
            .map(|(k, v)| (k.into(), Out::Str(v.into())))
            .collect(),
    )
}

fn collect(v: &OwnedValue) -> Option<BTreeMap<String, String>> {
    if let Some(o) = v.as_object() {
        return Some(o.iter().map(|(k, v)| (k.to_string(), text(v))).collect());
    }
    let list = v.as_array()?;
    let mut map = BTreeMap::new();
    for pair in list {
        let o = pair.as_object()?;
        let key = o
            .get("key")
            .or_else(|| o.get("Key"))
            .and_then(scalar_text)?
            .into_owned();
        let value = o
            .get("value")
            .or_else(|| o.get("Value"))
            .map(text)
            .unwrap_or_default();
        map.insert(key, value);
    }
    Some(map)
}

/// A tag value as text: strings as they are, null as empty, others as JSON.
fn text(v: &OwnedValue) -> String {
    if v.is_null() {
        return String::new();
    }
    // Via the sorted output tree, so nested maps come out in one order.
    scalar_text(v)
        .map(|s| s.into_owned())
        .unwrap_or_else(|| String::from_utf8(json(v).to_json()).unwrap_or_default())
}
