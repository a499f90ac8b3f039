//! Orca tags to ETM custom attributes.

use std::collections::BTreeMap;

use simd_json::OwnedValue;

use crate::json::Json;

use super::super::out::Out;
use super::super::stats::{Counter, TransformStats};
use super::scalar::{decode_embedded, json, scalar_text};

/// The tag map with keys and values as strings, sorted by key so a cut at
/// `limit` keeps the same tags on every run. A map sent as a JSON-encoded
/// string is decoded; a list of `{key, value}` pairs (the AWS shape) is
/// accepted too. Anything else is null and counted.
pub fn tags<'a, J: Json<'a>>(
    v: Option<J>,
    limit: Option<usize>,
    counter: Counter,
    stats: &mut TransformStats,
) -> Out<'static> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Out::Null;
    };
    let map = match v.as_str() {
        Some(s) if s.trim().is_empty() => return Out::Null,
        Some(s) => match decode(s, stats) {
            Some(d) => collect(&d),
            None => None,
        },
        None => collect(v),
    };
    let Some(mut map) = map else {
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

/// A map sent as a JSON-encoded string (encoded twice is seen in the wild
/// too: a JSON string holding the JSON map), mended as a page is.
fn decode(s: &str, stats: &mut TransformStats) -> Option<OwnedValue> {
    match decode_embedded(s, stats)? {
        OwnedValue::String(inner) => decode_embedded(&inner, stats),
        d => Some(d),
    }
}

fn collect<'a, J: Json<'a>>(v: J) -> Option<BTreeMap<String, String>> {
    if let Some(o) = v.entries() {
        let mut map = BTreeMap::new();
        for (k, v) in o {
            // A key given twice keeps its first value, as everywhere else.
            map.entry(k.to_string()).or_insert_with(|| text(v));
        }
        return Some(map);
    }
    let list = v.elements()?;
    let mut map = BTreeMap::new();
    for pair in list {
        if !pair.is_object() {
            return None;
        }
        let key = pair
            .get("key")
            .or_else(|| pair.get("Key"))
            .and_then(scalar_text)?
            .into_owned();
        let value = pair
            .get("value")
            .or_else(|| pair.get("Value"))
            .map(text)
            .unwrap_or_default();
        map.insert(key, value);
    }
    Some(map)
}

/// A tag value as text: strings as they are, null as empty, others as JSON.
fn text<'a, J: Json<'a>>(v: J) -> String {
    if v.is_null() {
        return String::new();
    }
    // Via the sorted output tree, so nested maps come out in one order.
    scalar_text(v)
        .map(|s| s.into_owned())
        .unwrap_or_else(|| String::from_utf8(json(v).to_json()).unwrap_or_default())
}
