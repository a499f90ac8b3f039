//! Rendering of an assembled asset into its ETM document (one JSON line).

use super::merge::AssembledAsset;

/// One finding of a document being rendered.
#[derive(Debug, Clone, Copy)]
pub enum FindingOut<'a> {
    /// A finding of this run: its JSON without `status`, and the status.
    Seen { json: &'a [u8], status: &'a str },
    /// A complete finding object (e.g. a `FIXED` one the ledger remembers).
    Complete(&'a [u8]),
}

/// Append the document of `asset` to `doc`, giving each finding the status
/// `status_of(i)` (index into `asset.findings`), then the extra findings
/// (already complete JSON objects).
pub fn render(
    doc: &mut Vec<u8>,
    asset: &AssembledAsset,
    mut status_of: impl FnMut(usize) -> &'static str,
    extra: &[Vec<u8>],
) {
    let seen = asset
        .findings
        .iter()
        .enumerate()
        .map(|(i, (_, json))| FindingOut::Seen {
            json,
            status: status_of(i),
        });
    let extra = extra.iter().map(|j| FindingOut::Complete(j));
    render_document(
        doc,
        &asset.asset_id,
        asset.json.as_deref(),
        seen.chain(extra),
    );
}

/// Append one ETM document: the asset's JSON (or the minimal document of an
/// asset only its findings named, when `asset_json` is `None`) with
/// `findings`, in the order given, as its `finding` list.
pub fn render_document<'a>(
    doc: &mut Vec<u8>,
    asset_id: &str,
    asset_json: Option<&[u8]>,
    findings: impl IntoIterator<Item = FindingOut<'a>>,
) {
    match asset_json {
        Some(a) => open_object(doc, a),
        None => minimal_document(doc, asset_id),
    }
    doc.extend_from_slice(b"\"finding\":[");
    for (i, f) in findings.into_iter().enumerate() {
        if i > 0 {
            doc.push(b',');
        }
        match f {
            FindingOut::Seen { json, status } => {
                open_object(doc, json);
                doc.extend_from_slice(b"\"status\":\"");
                doc.extend_from_slice(status.as_bytes());
                doc.extend_from_slice(b"\"}");
            }
            FindingOut::Complete(json) => doc.extend_from_slice(json),
        }
    }
    doc.extend_from_slice(b"]}");
}

/// Copy a serialized JSON object without its closing brace, ready for more
/// members (a trailing comma is added when it has any).
pub fn open_object(doc: &mut Vec<u8>, obj: &[u8]) {
    let body = obj.trim_ascii_end();
    let body = body.strip_suffix(b"}").unwrap_or(body);
    doc.extend_from_slice(body);
    if body.trim_ascii() != b"{" {
        doc.push(b',');
    }
}

/// The asset object of an asset that only its findings named: its keys and
/// the source, a complete JSON object.
pub fn minimal_asset(id: &str) -> Vec<u8> {
    let mut doc = Vec::with_capacity(2 * id.len() + 80);
    minimal_document(&mut doc, id);
    // `minimal_document` leaves the object open for more members.
    doc.pop();
    doc.push(b'}');
    doc
}

/// The document of an asset that only its findings named.
pub fn minimal_document(doc: &mut Vec<u8>, id: &str) {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    doc.extend_from_slice(b"{\"externalAssetId\":");
    doc.extend_from_slice(id.as_bytes());
    doc.extend_from_slice(b",\"sourceNativeKey\":");
    doc.extend_from_slice(id.as_bytes());
    doc.extend_from_slice(b",\"source\":\"Orca Security\",");
}
