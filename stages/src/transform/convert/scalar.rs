//! Strings, numbers, booleans, lists and IPs.

use std::borrow::Cow;
use std::net::IpAddr;

use simd_json::OwnedValue;

use super::super::out::Out;
use super::super::path::is_missing;
use super::super::stats::TransformStats;
use crate::json::Json;

/// The value unless it is missing (null or a blank string: see
/// [`path::is_missing`](super::super::path::is_missing)).
fn present<'a, J: Json<'a>>(v: Option<J>) -> Option<J> {
    v.filter(|v| !is_missing(*v))
}

/// Any value, copied. Object keys are sorted: Orca's key order is not part
/// of the data, and the output must be byte-stable. A key given twice keeps
/// its first value, as path lookups do.
pub fn json<'a, J: Json<'a>>(v: J) -> Out<'a> {
    json_at(v, 0)
}

/// Past this depth a value is dropped: recursion on hostile nesting must
/// not exhaust the stack.
const MAX_DEPTH: usize = 64;

fn json_at<'a, J: Json<'a>>(v: J, depth: usize) -> Out<'a> {
    if depth > MAX_DEPTH {
        return Out::Null;
    }
    if let Some(s) = v.as_str() {
        return Out::Str(Cow::Borrowed(s));
    }
    if let Some(a) = v.elements() {
        return Out::List(a.map(|e| json_at(e, depth + 1)).collect());
    }
    if let Some(o) = v.entries() {
        let mut entries: Vec<(Cow<'a, str>, Out<'a>)> = o
            .map(|(k, v)| (Cow::Borrowed(k), json_at(v, depth + 1)))
            .collect();
        // Stable: of a repeated key, the first stays first and is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        return Out::Obj(entries);
    }
    if let Some(b) = v.as_bool() {
        return Out::Bool(b);
    }
    if let Some(i) = v.as_i64() {
        return Out::I64(i);
    }
    if let Some(u) = v.as_u64() {
        return Out::U64(u);
    }
    if let Some(f) = v.as_f64() {
        return if f.is_finite() {
            Out::F64(f)
        } else {
            Out::Null
        };
    }
    Out::Null
}

/// A scalar as text; lists and maps are not a string and are counted.
pub fn string<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'a> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    match scalar_text(v) {
        Some(s) => Out::Str(s),
        None => {
            stats.invalid_strings += 1;
            Out::Null
        }
    }
}

/// Text of a string, number or bool.
pub fn scalar_text<'a, J: Json<'a>>(v: J) -> Option<Cow<'a, str>> {
    if let Some(s) = v.as_str() {
        Some(Cow::Borrowed(s))
    } else if let Some(b) = v.as_bool() {
        Some(Cow::Borrowed(if b { "true" } else { "false" }))
    } else if let Some(i) = v.as_i64() {
        Some(i.to_string().into())
    } else if let Some(u) = v.as_u64() {
        Some(u.to_string().into())
    } else {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.to_string().into())
    }
}

/// Integer of a number or numeric string, without counting.
fn to_int<'a, J: Json<'a>>(v: J) -> Option<Out<'static>> {
    if v.as_bool().is_some() {
        return None;
    }
    if let Some(i) = v.as_i64() {
        return Some(Out::I64(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(Out::U64(u));
    }
    if let Some(f) = v.as_f64() {
        return int_of_f64(f);
    }
    let s = v.as_str()?.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Out::I64(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(Out::U64(u));
    }
    s.parse::<f64>().ok().and_then(int_of_f64)
}

fn int_of_f64(f: f64) -> Option<Out<'static>> {
    // 2^63 bounds the i64 range exactly; past it an f64 has no fraction but no i64 either.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(Out::I64(f as i64))
}

fn to_float<'a, J: Json<'a>>(v: J) -> Option<f64> {
    if v.as_bool().is_some() {
        return None;
    }
    let f = match v.as_str() {
        Some(s) => s.trim().parse::<f64>().ok()?,
        None => v.cast_f64()?,
    };
    // Rust parses "inf" and "NaN"; neither is a number JSON can carry.
    f.is_finite().then_some(f)
}

pub fn int<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    to_int(v).unwrap_or_else(|| {
        stats.invalid_numbers += 1;
        Out::Null
    })
}

pub fn float<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    match to_float(v) {
        Some(f) => Out::F64(f),
        None => {
            stats.invalid_numbers += 1;
            Out::Null
        }
    }
}

/// An integer when the value is integral, else a float.
pub fn number<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    if let Some(i) = to_int(v) {
        return i;
    }
    match to_float(v) {
        Some(f) => Out::F64(f),
        None => {
            stats.invalid_numbers += 1;
            Out::Null
        }
    }
}

pub fn boolean<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    if let Some(b) = v.as_bool() {
        return Out::Bool(b);
    }
    if let Some(s) = v.as_str().map(str::trim) {
        for (word, b) in [
            ("true", true),
            ("false", false),
            ("yes", true),
            ("no", false),
            // Numbers sent as strings, as 1 and 0 are read below.
            ("1", true),
            ("0", false),
        ] {
            if s.eq_ignore_ascii_case(word) {
                return Out::Bool(b);
            }
        }
    }
    match v.as_i64() {
        Some(0) => Out::Bool(false),
        Some(1) => Out::Bool(true),
        _ => {
            stats.invalid_bools += 1;
            Out::Null
        }
    }
}

/// The elements of a list-valued field: a list, a to-many relation, a list
/// JSON-encoded in a string, or one bare value standing for a list of one.
pub enum ListItems<J> {
    Borrowed(Vec<J>),
    /// Decoded from a string: owned, so nothing borrows from them past the
    /// conversion that reads them.
    Decoded(Vec<OwnedValue>),
    Empty,
}

impl<J: Copy> ListItems<J> {
    /// The elements borrowed from the input (none for decoded ones).
    pub fn borrowed(&self) -> &[J] {
        match self {
            ListItems::Borrowed(s) => s,
            ListItems::Decoded(_) | ListItems::Empty => &[],
        }
    }
}

/// With `split_commas`, a bare string `"a, b"` is the list `["a", "b"]`
/// (for MACs, IPs and CWE ids, which never contain a comma).
pub fn list_items<'a, J: Json<'a>>(
    v: Option<J>,
    split_commas: bool,
    stats: &mut TransformStats,
) -> ListItems<J> {
    let Some(v) = present(v) else {
        return ListItems::Empty;
    };
    if let Some(a) = v.elements() {
        return ListItems::Borrowed(a.collect());
    }
    if v.is_object() {
        if let Some(list) = super::super::path::relation(Some(v)) {
            let elems: Vec<J> = list.elements().map_or_else(Vec::new, |e| e.collect());
            if !elems.is_empty() {
                return ListItems::Borrowed(elems);
            }
        }
        // A wrapper around some other list shape (`{"value": "a,b"}`).
        return match v.get("value") {
            Some(inner) => list_items(Some(inner), split_commas, stats),
            None => ListItems::Borrowed(vec![v]),
        };
    }
    if let Some(s) = v.as_str() {
        if embedded_text(s).starts_with('[') {
            if let Some(OwnedValue::Array(a)) = decode_embedded(s, stats) {
                return ListItems::Decoded(*a);
            }
        }
        if split_commas && s.contains(',') {
            let parts = s.split(',').map(str::trim).filter(|p| !p.is_empty());
            return ListItems::Decoded(parts.map(OwnedValue::from).collect());
        }
    }
    ListItems::Borrowed(vec![v])
}

/// The text of a JSON-encoded value, without the byte-order mark or
/// blanks some senders put before it.
fn embedded_text(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '\u{feff}' || c.is_whitespace())
}

/// A map or list sent as a JSON-encoded string, decoded. The faults the
/// parse stage mends on a page (lone surrogate, number beyond f64, ...;
/// see [`crate::parse::repair`]) are mended here the same way and counted
/// in `mended_encoded_json`: one bad escape must not cost the whole map.
/// `None` when the text is no JSON even once mended.
pub fn decode_embedded(s: &str, stats: &mut TransformStats) -> Option<OwnedValue> {
    let text = embedded_text(s);
    let mut bytes = text.as_bytes().to_vec();
    if let Ok(v) = simd_json::to_owned_value(&mut bytes) {
        return Some(v);
    }
    let mut mended = Vec::new();
    let mut fixed = crate::parse::repair::repair(text.as_bytes(), &mut mended);
    if mended.is_empty() {
        return None;
    }
    let v = simd_json::to_owned_value(&mut fixed).ok()?;
    stats.mended_encoded_json += mended.len() as u64;
    Some(v)
}

/// The first element of a list, or the value itself when it is not a list.
pub fn first<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'a> {
    match list_items(v, false, stats) {
        ListItems::Decoded(d) => d.first().map_or(Out::Null, |e| json(e).into_static()),
        items => items.borrowed().first().map_or(Out::Null, |e| json(*e)),
    }
}

pub fn string_list<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'a> {
    fn push<'b, K: Json<'b>>(item: K, out: &mut Vec<Out<'static>>, stats: &mut TransformStats) {
        if is_missing(item) {
            return;
        }
        match scalar_text(item) {
            Some(s) => out.push(Out::Str(Cow::Owned(s.into_owned()))),
            None => stats.invalid_strings += 1,
        }
    }
    let mut out = Vec::new();
    match list_items(v, true, stats) {
        ListItems::Empty => return Out::Null,
        ListItems::Decoded(d) => d.iter().for_each(|i| push(i, &mut out, stats)),
        ListItems::Borrowed(b) => b.into_iter().for_each(|i| push(i, &mut out, stats)),
    }
    Out::List(out)
}

/// A valid IPv4 or IPv6 address in canonical form; anything else is null and counted.
pub fn ip<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = present(v) else {
        return Out::Null;
    };
    match v.as_str().and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        Some(ip) => Out::Str(ip.to_string().into()),
        None => {
            stats.invalid_ips += 1;
            Out::Null
        }
    }
}
