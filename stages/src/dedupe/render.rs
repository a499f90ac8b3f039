//! Rendering of an assembled asset into its ETM document (one JSON line).

use super::merge::AssembledAsset;

/// Append the document of `asset` to `doc`, giving each finding the status
/// `status_of(i)` (index into `asset.findings`), then the extra findings
/// (already complete JSON objects, e.g. `FIXED` ones the ledger remembers).
pub fn render(
    doc: &mut Vec<u8>,
    asset: &AssembledAsset,
    mut status_of: impl FnMut(usize) -> &'static str,
    extra: &[Vec<u8>],
) {
    match &asset.json {
        Some(a) => open_object(doc, a),
        None => minimal_document(doc, &asset.asset_id),
    }
    doc.extend_from_slice(b"\"finding\":[");
    let mut first = true;
    for (i, (_, json)) in asset.findings.iter().enumerate() {
        if !first {
            doc.push(b',');
        }
        first = false;
        open_object(doc, json);
        doc.extend_from_slice(b"\"status\":\"");
        doc.extend_from_slice(status_of(i).as_bytes());
        doc.extend_from_slice(b"\"}");
    }
    for json in extra {
        if !first {
            doc.push(b',');
        }
        first = false;
        doc.extend_from_slice(json);
    }
    doc.extend_from_slice(b"]}");
}

/// Copy a serialized JSON object without its closing brace, ready for more
/// members (a trailing comma is added when it has any).
fn open_object(doc: &mut Vec<u8>, obj: &[u8]) {
    let body = obj.trim_ascii_end();
    let body = body.strip_suffix(b"}").unwrap_or(body);
    doc.extend_from_slice(body);
    if body.trim_ascii() != b"{" {
        doc.push(b',');
    }
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
