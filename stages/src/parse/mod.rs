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
use std::ops::Range;
use std::sync::Arc;

use simd_json::{Buffers, OwnedValue, Tape, INPUT_PADDING};

use crate::json::{Json, TapeValue};
use crate::model::{raw_excerpt, DeadLetter, OrcaRecord};
use crate::page::{PageSummary, PageVerdict, QueryInfo};
pub use repair::Repair;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body without what some servers and proxies put before the JSON:
/// byte-order marks (once or more) and blanks around them. JSON itself
/// allows the blanks; the mark is no JSON and would cost the whole answer.
pub fn skip_byte_order_marks(mut body: &[u8]) -> &[u8] {
    loop {
        let trimmed = body.trim_ascii_start();
        match trimmed.strip_prefix(BOM) {
            Some(rest) => body = rest,
            None => return trimmed,
        }
    }
}

/// A parse worker's reusable state: simd-json's scratch buffers, the page
/// copy it parses in place, and the tape's allocation.
#[derive(Default)]
pub struct Parser {
    buffers: Buffers,
    scratch: Vec<u8>,
    tape: Option<Tape<'static>>,
    /// A page read row by row parses each row into this.
    row_scratch: Vec<u8>,
}

/// Pages larger than this are read row by row: a page's tape takes five to
/// ten times its bytes (36 MiB for a 3.5 MiB page of assets), a row's a few
/// KiB. Findings pages (about 1 MiB) are read whole, the fastest way.
pub const WHOLE_PAGE_MAX: usize = 2 << 20;

/// The same bound for pages of assets: their values are dense (tags,
/// services, software lists), so their tape runs to ten times their bytes,
/// and two workers each holding the tape of a 2 MiB page were the peak of
/// a whole pull's memory. Assets are a small share of a tenant's bytes, so
/// reading their rows one by one costs little time.
pub const WHOLE_ASSET_PAGE_MAX: usize = 256 << 10;

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parser")
    }
}

/// One page parsed: its verdict at once, its rows to visit
/// ([`ParsedPage::for_each_row`]). The rows borrow the parser's buffers,
/// so a page is read before the next one is parsed.
pub struct ParsedPage<'p> {
    pub verdict: PageVerdict,
    /// Rows that could not be read.
    pub dead_letters: Vec<DeadLetter>,
    /// Values mended, by kind.
    pub repairs: BTreeMap<Repair, u64>,
    rows: Rows<'p>,
}

enum Rows<'p> {
    None,
    /// The page parsed whole: the rows are the object elements of its
    /// `data` (or of the page itself, when it is a bare array).
    Tape {
        tape: Tape<'p>,
        /// Where the tape's allocation goes back for the next page.
        home: &'p mut Option<Tape<'static>>,
    },
    /// The page read row by row: where each readable object row is (or its
    /// mended text), each parsed again on its own when visited.
    Each {
        body: &'p [u8],
        rows: Vec<RowText>,
        reader: RowReader<'p>,
    },
}

/// Where a row's text is.
enum RowText {
    /// In the body, as it came.
    At(Range<usize>),
    /// Mended ([`repair`]); `replaced`: a broken character (invalid UTF-8,
    /// a lone surrogate) became U+FFFD, so two texts that differed only
    /// there now read alike.
    Mended { text: Vec<u8>, replaced: bool },
}

/// Parses one row at a time into reused buffers.
struct RowReader<'p> {
    buffers: &'p mut Buffers,
    scratch: &'p mut Vec<u8>,
    home: &'p mut Option<Tape<'static>>,
}

impl RowReader<'_> {
    /// Parse `text` and hand its value to `f`; the parse error otherwise.
    fn read<R>(&mut self, text: &[u8], f: impl FnOnce(TapeValue<'_>) -> R) -> Result<R, String> {
        let scratch: &mut Vec<u8> = self.scratch;
        scratch.clear();
        scratch.extend_from_slice(text);
        scratch.resize(text.len() + INPUT_PADDING, b' ');
        let mut tape = self.home.take().unwrap_or_else(Tape::null).reset();
        let out = match simd_json::fill_tape_padded(scratch, text.len(), self.buffers, &mut tape) {
            Ok(()) => Ok(f(tape.as_value())),
            Err(e) => Err(e.to_string()),
        };
        *self.home = Some(tape.reset());
        out
    }
}

/// A page as owned records (tests and tools; the pipeline visits rows in place).
#[derive(Debug)]
pub struct OwnedPage {
    pub verdict: PageVerdict,
    pub records: Vec<OrcaRecord>,
    pub dead_letters: Vec<DeadLetter>,
    pub repairs: BTreeMap<Repair, u64>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse one answer body of `query` requested at `offset`.
    ///
    /// The fast path is simd-json's tape over a copy of the body, nothing
    /// more: the rows are read where they lie. Only when the body does not
    /// parse whole is it cut into rows ([`split`]), each read alone, mended
    /// if it carries a known fault ([`repair`]), or made a dead letter.
    pub fn parse<'p>(
        &'p mut self,
        query: &Arc<QueryInfo>,
        offset: u64,
        body: &'p [u8],
    ) -> ParsedPage<'p> {
        let body = skip_byte_order_marks(body);
        let whole_max = match query.kind {
            crate::model::RecordKind::Asset => WHOLE_ASSET_PAGE_MAX,
            crate::model::RecordKind::Finding => WHOLE_PAGE_MAX,
        };
        self.fit(body.len().min(whole_max));
        let Parser {
            buffers,
            scratch,
            tape: home,
            row_scratch,
        } = self;
        if body.len() <= whole_max {
            scratch.clear();
            scratch.extend_from_slice(body);
            scratch.resize(body.len() + INPUT_PADDING, b' ');
            let mut tape = home.take().unwrap_or_else(Tape::null).reset();
            match simd_json::fill_tape_padded(scratch, body.len(), buffers, &mut tape) {
                Ok(()) => return whole(query, offset, tape, home),
                Err(_) => *home = Some(tape.reset()),
            }
        }
        let reader = RowReader {
            buffers,
            scratch: row_scratch,
            home,
        };
        by_rows(query, offset, body, reader)
    }

    /// Let go of buffers a much larger page grew (an asset page's tape is
    /// five times its 3 MiB), so a worker holds what the pages it reads
    /// now need, not what the largest one once did.
    fn fit(&mut self, len: usize) {
        const SLACK: usize = 4;
        let grown = |cap: usize| cap > SLACK * (len + INPUT_PADDING) && cap > 1 << 20;
        if grown(self.scratch.capacity()) || grown(self.row_scratch.capacity()) {
            *self = Parser::default();
        }
    }

    /// Parse one page into owned records.
    pub fn parse_owned(&mut self, query: &Arc<QueryInfo>, offset: u64, body: &[u8]) -> OwnedPage {
        let mut page = self.parse(query, offset, body);
        let mut records = Vec::new();
        let verdict = page.verdict.clone();
        let dead_letters = std::mem::take(&mut page.dead_letters);
        let repairs = std::mem::take(&mut page.repairs);
        page.for_each_row(|row| {
            let mut text = row.to_json_vec();
            if let Ok(item) = simd_json::to_owned_value(&mut text) {
                records.push(OrcaRecord {
                    kind: query.kind,
                    item,
                    query: query.clone(),
                    offset,
                });
            }
        });
        OwnedPage {
            verdict,
            records,
            dead_letters,
            repairs,
        }
    }
}

impl<'p> ParsedPage<'p> {
    fn only(verdict: PageVerdict) -> Self {
        ParsedPage {
            verdict,
            dead_letters: Vec::new(),
            repairs: BTreeMap::new(),
            rows: Rows::None,
        }
    }

    /// Visit every readable row, in page order.
    pub fn for_each_row(self, mut f: impl FnMut(TapeValue<'_>)) {
        self.for_each_row_marked(|row, _| f(row))
    }

    /// [`ParsedPage::for_each_row`], each row with whether a broken
    /// character in it was replaced by U+FFFD: a key read from such a row
    /// may stand for several different keys (see [`key_is_ambiguous`]).
    pub fn for_each_row_marked(self, mut f: impl FnMut(TapeValue<'_>, bool)) {
        match self.rows {
            Rows::None => {}
            Rows::Tape { tape, home } => {
                for row in data_rows(tape.as_value()).into_iter().flatten() {
                    if row.is_object() {
                        f(row, false);
                    }
                }
                *home = Some(tape.reset());
            }
            Rows::Each {
                body,
                rows,
                mut reader,
            } => {
                for row in &rows {
                    let (text, replaced) = match row {
                        RowText::At(r) => (&body[r.clone()], false),
                        RowText::Mended { text, replaced } => (text.as_slice(), *replaced),
                    };
                    // Each of these rows parsed once already.
                    let _ = reader.read(text, |row| f(row, replaced));
                }
            }
        }
    }

    fn summary(&mut self) -> &mut PageSummary {
        match &mut self.verdict {
            PageVerdict::Read(s) => s,
            _ => unreachable!("rows are only counted on a page that was read"),
        }
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

    /// Count one row: an object is read (its id noted), anything else is a
    /// dead letter.
    /// `replaced`: the row's broken characters were replaced, so an id
    /// holding U+FFFD is no id (two rows may share it without being one).
    fn count_row<'a>(
        &mut self,
        query: &Arc<QueryInfo>,
        offset: u64,
        row: impl Json<'a>,
        replaced: bool,
    ) -> bool {
        if row.is_object() {
            let first_seen = query.track_first_seen.then(|| first_seen_ms(row)).flatten();
            let summary = self.summary();
            if let Some(id) = item_id(row).filter(|id| !key_is_ambiguous(replaced, id)) {
                summary.ids.push(id);
            }
            if first_seen > summary.max_first_seen_ms {
                summary.max_first_seen_ms = first_seen;
            }
            return true;
        }
        let raw = row.to_json_vec();
        self.push_dead(
            query,
            offset,
            "not_an_object",
            format!("a row of `data` is a {:?}, not an object", row.value_type()),
            &raw,
            None,
        );
        false
    }
}

/// The rows of an answer: the elements of `data`, or of the answer itself
/// when it is a bare array.
fn data_rows<'a, J: Json<'a>>(root: J) -> Option<impl Iterator<Item = J> + 'a> {
    if root.is_array() {
        root.elements()
    } else {
        root.get("data")?.elements()
    }
}

/// The fast path: the body parsed whole.
fn whole<'p>(
    query: &Arc<QueryInfo>,
    offset: u64,
    tape: Tape<'p>,
    home: &'p mut Option<Tape<'static>>,
) -> ParsedPage<'p> {
    let root = tape.as_value();
    let mut page = if root.is_array() {
        ParsedPage::only(PageVerdict::Read(PageSummary::default()))
    } else if root.is_object() {
        let (status, total_items) = match envelope_fields(root) {
            Ok(f) => f,
            Err(v) => return ParsedPage::only(v),
        };
        if let Some(v) = status {
            return ParsedPage::only(v);
        }
        match root.get("data") {
            Some(d) if d.is_array() => {}
            Some(d) if d.is_null() => {}
            Some(_) => return malformed("`data` is not an array"),
            None => return malformed("the answer has no `data`"),
        }
        ParsedPage::only(PageVerdict::Read(PageSummary {
            total_items,
            ..PageSummary::default()
        }))
    } else {
        return malformed(&format!(
            "the answer is a JSON {:?}, not an object",
            root.value_type()
        ));
    };
    let mut rows = 0;
    for row in data_rows(root).into_iter().flatten() {
        rows += 1;
        page.count_row(query, offset, row, false);
    }
    page.summary().rows = rows;
    page.rows = Rows::Tape { tape, home };
    page
}

/// The slow path: cut the body into rows and read each alone.
fn by_rows<'p>(
    query: &Arc<QueryInfo>,
    offset: u64,
    body: &'p [u8],
    mut reader: RowReader<'p>,
) -> ParsedPage<'p> {
    let Some(layout) = split::layout(body) else {
        return malformed("the body is not a complete JSON answer (truncated or not JSON)");
    };
    let mut repairs = BTreeMap::new();
    // The envelope without its rows: status and total_items.
    let mut envelope = Vec::with_capacity(body.len() - layout.data.len() + 2);
    envelope.extend_from_slice(&body[..layout.data.start]);
    envelope.extend_from_slice(b"[]");
    envelope.extend_from_slice(&body[layout.data.end..]);
    let envelope = match read_mended(&envelope, &mut repairs) {
        Ok((v, _)) => v,
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
    let mut readable = Vec::with_capacity(layout.rows.len());
    for range in layout.rows {
        let raw = &body[range.clone()];
        let first = match reader.read(raw, |v| page.count_row(query, offset, v, false)) {
            Ok(true) => {
                readable.push(RowText::At(range));
                continue;
            }
            Ok(false) => continue,
            Err(e) => e,
        };
        let mut mended = Vec::new();
        let fixed = repair::repair(raw, &mut mended);
        let replaced = mended
            .iter()
            .any(|r| matches!(r, Repair::InvalidUtf8 | Repair::LoneSurrogate));
        let read = match mended.is_empty() {
            true => Err(first.clone()),
            false => reader.read(&fixed, |v| page.count_row(query, offset, v, replaced)),
        };
        match read {
            Ok(object) => {
                for r in mended {
                    *repairs.entry(r).or_default() += 1;
                }
                if object {
                    readable.push(RowText::Mended {
                        text: fixed,
                        replaced,
                    });
                }
            }
            Err(_) => page.push_dead(query, offset, "invalid_json", first, raw, salvage_id(raw)),
        }
    }
    page.repairs = repairs;
    page.rows = Rows::Each {
        body,
        rows: readable,
        reader,
    };
    page
}

/// Parse `raw`; if it fails, mend it and parse again. Returns the value
/// and the text that parsed (mended or not).
fn read_mended(
    raw: &[u8],
    repairs: &mut BTreeMap<Repair, u64>,
) -> Result<(OwnedValue, Vec<u8>), String> {
    let mut scratch = raw.to_vec();
    let first = match simd_json::to_owned_value(&mut scratch) {
        Ok(v) => return Ok((v, raw.to_vec())),
        Err(e) => e.to_string(),
    };
    let mut mended = Vec::new();
    let fixed = repair::repair(raw, &mut mended);
    let mut scratch = fixed.clone();
    match simd_json::to_owned_value(&mut scratch) {
        Ok(v) if !mended.is_empty() => {
            for r in mended {
                *repairs.entry(r).or_default() += 1;
            }
            Ok((v, fixed))
        }
        _ => Err(first),
    }
}

/// `status` (as a verdict when it is not `success`) and `total_items` of an answer.
fn envelope_fields<'a, J: Json<'a>>(
    v: J,
) -> Result<(Option<PageVerdict>, Option<u64>), PageVerdict> {
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
                .get("error")
                .and_then(|e| e.as_str())
                .or_else(|| v.get("message").and_then(|m| m.as_str()))
                .unwrap_or("no error text");
            let status = s.as_str().map_or_else(
                || String::from_utf8_lossy(&s.to_json_vec()).into_owned(),
                str::to_string,
            );
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

/// An item's `FirstSeen` in ms since the epoch, in any date form the
/// transform reads.
pub fn first_seen_ms<'a, J: Json<'a>>(item: J) -> Option<i64> {
    let v = item.get("data")?.get("FirstSeen")?;
    let v = v.get("value").unwrap_or(v);
    let text = match v.as_str() {
        Some(s) => crate::transform::parse_date(s)?,
        None => crate::transform::parse_date(&String::from_utf8_lossy(&v.to_json_vec()))?,
    };
    chrono::DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The Orca `id` of an item, as text.
pub fn item_id<'a, J: Json<'a>>(item: J) -> Option<String> {
    let id = item.get("id")?;
    if let Some(s) = id.as_str() {
        return (!s.is_empty()).then(|| s.to_string());
    }
    id.as_u64()
        .map(|u| u.to_string())
        .or_else(|| id.as_i64().map(|i| i.to_string()))
}

/// Whether a key read from a row whose broken characters were replaced
/// ([`ParsedPage::for_each_row_marked`]) cannot be trusted: it holds U+FFFD,
/// so `a\udc00` and `a\udc01` (or two different invalid bytes) would read
/// as one id, merging two assets or two findings into one.
pub fn key_is_ambiguous(replaced: bool, key: &str) -> bool {
    replaced && key.contains('\u{fffd}')
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
                    let v = &after[q..];
                    if v[0].is_ascii_digit() {
                        let end = v
                            .iter()
                            .position(|c| !c.is_ascii_digit())
                            .unwrap_or(v.len());
                        return std::str::from_utf8(&v[..end]).ok().map(str::to_string);
                    }
                    if v[0] != b'"' {
                        return None;
                    }
                    // The whole string literal, escapes decoded: an id cut at
                    // its first backslash would be another finding's key. One
                    // that does not decode (a lone surrogate) is no id.
                    let mut end = 1;
                    while *v.get(end)? != b'"' {
                        end += if v[end] == b'\\' { 2 } else { 1 };
                    }
                    return serde_json::from_slice::<String>(&v[..=end])
                        .ok()
                        .filter(|id| !id.is_empty());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn malformed<'p>(why: &str) -> ParsedPage<'p> {
    ParsedPage::only(PageVerdict::Malformed(why.to_string()))
}

#[cfg(test)]
mod tests;
