//! parse: page bodies into Orca records, with simd-json.
//!
//! The fast path parses the whole body once and moves each row out of it.
//! Only when that fails does the page get cut into rows ([`split`]); each row
//! is then parsed alone, mended if it carries a known fault ([`repair`]), and
//! made a dead letter if it still cannot be read. One bad record never costs
//! the page.

pub mod repair;
pub mod split;

use std::collections::BTreeMap;
use std::sync::Arc;

use simd_json::prelude::*;
use simd_json::OwnedValue;

use crate::model::{raw_excerpt, DeadLetter, OrcaRecord};
use crate::page::{PageSummary, PageVerdict, QueryInfo};
pub use repair::Repair;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One parsed page.
#[derive(Debug)]
pub struct ParsedPage {
    pub verdict: PageVerdict,
    pub records: Vec<OrcaRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Values mended, by kind.
    pub repairs: BTreeMap<Repair, u64>,
}

/// A parse worker's reusable state (simd-json scratch buffers).
#[derive(Default)]
pub struct Parser {
    buffers: simd_json::Buffers,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parser")
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one answer body of `query` requested at `offset`.
    pub fn parse(&mut self, query: &Arc<QueryInfo>, offset: u64, body: &[u8]) -> ParsedPage {
        let body = body.strip_prefix(BOM).unwrap_or(body);
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        match simd_json::owned::to_value_with_buffers(&mut self.scratch, &mut self.buffers) {
            Ok(value) => whole(query, offset, value),
            Err(_) => self.by_rows(query, offset, body),
        }
    }

    /// The slow path: cut the body into rows and read each alone.
    fn by_rows(&mut self, query: &Arc<QueryInfo>, offset: u64, body: &[u8]) -> ParsedPage {
        let Some(layout) = split::layout(body) else {
            return malformed("the body is not a complete JSON answer (truncated or not JSON)");
        };
        let mut repairs = BTreeMap::new();
        // The envelope without its rows: status and total_items.
        let mut envelope = Vec::with_capacity(body.len() - layout.data.len() + 2);
        envelope.extend_from_slice(&body[..layout.data.start]);
        envelope.extend_from_slice(b"[]");
        envelope.extend_from_slice(&body[layout.data.end..]);
        let envelope = match self.read_mended(&envelope, &mut repairs) {
            Ok(v) => v,
            Err(e) => return malformed(&format!("the answer envelope is not JSON: {e}")),
        };
        let (status, total_items) = match envelope_fields(&envelope) {
            Ok(f) => f,
            Err(v) => return ParsedPage::only(v),
        };
        if let Some(v) = status {
            return ParsedPage::only(v);
        }

        let mut page = ParsedPage::only(PageVerdict::Read(PageSummary {
            total_items,
            rows: layout.rows.len(),
            ..PageSummary::default()
        }));
        page.records.reserve(layout.rows.len());
        for range in layout.rows {
            let raw = &body[range];
            match self.read_mended(raw, &mut repairs) {
                Ok(item) => page.push_row(query, offset, item, raw),
                Err(e) => page.push_dead(query, offset, "invalid_json", e, raw, salvage_id(raw)),
            }
        }
        page.repairs = repairs;
        page
    }

    /// Parse `raw`; if it fails, mend it and parse again.
    fn read_mended(
        &mut self,
        raw: &[u8],
        repairs: &mut BTreeMap<Repair, u64>,
    ) -> Result<OwnedValue, String> {
        self.scratch.clear();
        self.scratch.extend_from_slice(raw);
        let first =
            match simd_json::owned::to_value_with_buffers(&mut self.scratch, &mut self.buffers) {
                Ok(v) => return Ok(v),
                Err(e) => e.to_string(),
            };
        let mut mended = Vec::new();
        let mut fixed = repair::repair(raw, &mut mended);
        match simd_json::owned::to_value_with_buffers(&mut fixed, &mut self.buffers) {
            Ok(v) if !mended.is_empty() => {
                for r in mended {
                    *repairs.entry(r).or_default() += 1;
                }
                Ok(v)
            }
            _ => Err(first),
        }
    }
}

impl ParsedPage {
    fn only(verdict: PageVerdict) -> Self {
        ParsedPage {
            verdict,
            records: Vec::new(),
            dead_letters: Vec::new(),
            repairs: BTreeMap::new(),
        }
    }

    fn summary(&mut self) -> &mut PageSummary {
        match &mut self.verdict {
            PageVerdict::Read(s) => s,
            _ => unreachable!("rows are only pushed onto a page that was read"),
        }
    }

    fn push_row(&mut self, query: &Arc<QueryInfo>, offset: u64, item: OwnedValue, raw: &[u8]) {
        if !item.is_object() {
            let id = None;
            return self.push_dead(
                query,
                offset,
                "not_an_object",
                format!(
                    "a row of `data` is a {:?}, not an object",
                    item.value_type()
                ),
                raw,
                id,
            );
        }
        if let Some(id) = item_id(&item) {
            self.summary().ids.push(id);
        }
        self.records.push(OrcaRecord {
            kind: query.kind,
            item,
            query: query.clone(),
            offset,
        });
    }

    fn push_dead(
        &mut self,
        query: &Arc<QueryInfo>,
        offset: u64,
        reason: &str,
        detail: String,
        raw: &[u8],
        id: Option<String>,
    ) {
        let summary = self.summary();
        summary.dead_letters += 1;
        if let Some(id) = &id {
            summary.ids.push(id.clone());
        }
        self.dead_letters.push(DeadLetter {
            stage: "parse",
            reason: reason.to_string(),
            detail,
            record: query.kind.as_str(),
            id,
            query: query.label.clone(),
            offset,
            raw: raw_excerpt(raw),
        });
    }
}

/// The fast path: the body parsed whole.
fn whole(query: &Arc<QueryInfo>, offset: u64, value: OwnedValue) -> ParsedPage {
    let rows = match value {
        OwnedValue::Array(rows) => {
            let mut page = ParsedPage::only(PageVerdict::Read(PageSummary {
                rows: rows.len(),
                ..PageSummary::default()
            }));
            page.push_rows(query, offset, *rows);
            return page;
        }
        OwnedValue::Object(mut obj) => {
            let data = obj.remove("data");
            let envelope = OwnedValue::Object(obj);
            let (status, total_items) = match envelope_fields(&envelope) {
                Ok(f) => f,
                Err(v) => return ParsedPage::only(v),
            };
            if let Some(v) = status {
                return ParsedPage::only(v);
            }
            let rows = match data {
                Some(OwnedValue::Array(rows)) => *rows,
                Some(OwnedValue::Static(simd_json::StaticNode::Null)) => Vec::new(),
                Some(_) => return malformed("`data` is not an array"),
                None => return malformed("the answer has no `data`"),
            };
            let mut page = ParsedPage::only(PageVerdict::Read(PageSummary {
                total_items,
                rows: rows.len(),
                ..PageSummary::default()
            }));
            page.push_rows(query, offset, rows);
            return page;
        }
        other => other,
    };
    malformed(&format!(
        "the answer is a JSON {:?}, not an object",
        rows.value_type()
    ))
}

impl ParsedPage {
    fn push_rows(&mut self, query: &Arc<QueryInfo>, offset: u64, rows: Vec<OwnedValue>) {
        self.records.reserve(rows.len());
        for item in rows {
            // Only non-objects need their raw text, and they are small.
            let raw = if item.is_object() {
                Vec::new()
            } else {
                simd_json::to_vec(&item).unwrap_or_default()
            };
            self.push_row(query, offset, item, &raw);
        }
    }
}

/// `status` (as a verdict when it is not `success`) and `total_items` of an answer.
fn envelope_fields(v: &OwnedValue) -> Result<(Option<PageVerdict>, Option<u64>), PageVerdict> {
    if !v.is_object() {
        return Err(PageVerdict::Malformed(
            "the answer is not a JSON object".into(),
        ));
    }
    let status = match v.get("status") {
        None => None,
        Some(s)
            if s.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("success")) =>
        {
            None
        }
        Some(s) => {
            let said = v
                .get_str("error")
                .or_else(|| v.get_str("message"))
                .unwrap_or("no error text");
            let status = s.as_str().map_or_else(|| s.to_string(), str::to_string);
            Some(PageVerdict::Failure(format!(
                "Orca answered status `{status}`: {said}"
            )))
        }
    };
    let total = v.get("total_items").and_then(|t| {
        t.as_u64()
            .or_else(|| t.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
    });
    Ok((status, total))
}

/// The Orca `id` of an item, as text.
pub fn item_id(item: &OwnedValue) -> Option<String> {
    match item.get("id")? {
        OwnedValue::String(s) if !s.is_empty() => Some(s.clone()),
        OwnedValue::Static(n) if n.as_u64().is_some() || n.as_i64().is_some() => {
            Some(n.to_string())
        }
        _ => None,
    }
}

/// Best-effort `id` of a row that could not be parsed: the first `"id": "…"`
/// at the row's top level, so the row still counts towards completeness and
/// its finding is never closed because it could not be read.
fn salvage_id(raw: &[u8]) -> Option<String> {
    let mut depth = 0i32;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < raw.len() && raw[j] != b'"' {
                    j += if raw[j] == b'\\' { 2 } else { 1 };
                }
                let key = raw.get(start..j)?;
                i = j + 1;
                if depth == 1 && key == b"id" {
                    let rest = raw.get(i..)?;
                    let colon = rest.iter().position(|c| !c.is_ascii_whitespace())?;
                    if rest[colon] != b':' {
                        continue;
                    }
                    let after = &rest[colon + 1..];
                    let q = after.iter().position(|c| !c.is_ascii_whitespace())?;
                    if after[q] != b'"' {
                        return None;
                    }
                    let v = &after[q + 1..];
                    let end = v.iter().position(|&c| c == b'"' || c == b'\\')?;
                    return std::str::from_utf8(&v[..end]).ok().map(str::to_string);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn malformed(why: &str) -> ParsedPage {
    ParsedPage::only(PageVerdict::Malformed(why.to_string()))
}

#[cfg(test)]
mod tests;
