use std::sync::Arc;

use simd_json::prelude::*;
use simd_json::OwnedValue;

use super::{OwnedPage, Parser, Repair, BOM};
use crate::model::RecordKind;
use crate::page::{PageSummary, PageVerdict, QueryInfo};

fn query(kind: RecordKind) -> Arc<QueryInfo> {
    Arc::new(QueryInfo {
        label: "AwsEc2Instance".into(),
        model: "AwsEc2Instance".into(),
        kind,
        track_first_seen: false,
    })
}

fn case(name: &str) -> Vec<u8> {
    let path = fixtures::cases_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn summary(p: &OwnedPage) -> &PageSummary {
    match &p.verdict {
        PageVerdict::Read(s) => s,
        other => panic!("expected a read page, got {other:?}"),
    }
}

fn names(p: &OwnedPage) -> Vec<String> {
    p.records
        .iter()
        .map(|r| r.item.get_str("name").unwrap_or_default().to_string())
        .collect()
}

#[test]
fn lone_surrogate_costs_one_value_not_the_page() {
    let mut parser = Parser::new();
    let page = parser.parse_owned(
        &query(RecordKind::Asset),
        0,
        &case("01-lone-surrogate.json"),
    );
    let s = summary(&page);
    assert_eq!(s.rows, 3);
    assert_eq!(s.total_items, Some(3));
    assert_eq!(
        s.ids,
        vec![
            "vm_111111111111_i-000000000000000a1-id",
            "vm_111111111111_i-000000000000000a2-id",
            "vm_111111111111_i-000000000000000a3-id"
        ]
    );
    assert_eq!(names(&page), vec!["ok-1", "bad \u{fffd} name", "ok-3"]);
    let host = page.records[1]
        .item
        .get("data")
        .and_then(|d| d.get("Hostname"))
        .and_then(|h| h.get_str("value"));
    assert_eq!(host, Some("bad \u{fffd} name"));
    assert_eq!(page.repairs.get(&Repair::LoneSurrogate), Some(&2));
    assert!(page.dead_letters.is_empty());
}

#[test]
fn number_out_of_range_becomes_null_and_is_counted() {
    let mut parser = Parser::new();
    let page = parser.parse_owned(
        &query(RecordKind::Asset),
        0,
        &case("02-number-out-of-range.json"),
    );
    assert_eq!(summary(&page).rows, 1);
    let cpu = page.records[0]
        .item
        .get("data")
        .and_then(|d| d.get("CpuCount"))
        .and_then(|c| c.get("value"))
        .cloned();
    assert_eq!(cpu, Some(OwnedValue::null()));
    assert_eq!(page.repairs.get(&Repair::NumberOutOfRange), Some(&1));
    // Other values of the record are intact.
    let mem = page.records[0]
        .item
        .get("data")
        .and_then(|d| d.get("Memory"))
        .and_then(|c| c.get_u64("value"));
    assert_eq!(mem, Some(8192));
}

#[test]
fn byte_order_mark_is_ignored() {
    let mut parser = Parser::new();
    let body = case("06-byte-order-mark.json");
    assert!(body.starts_with(BOM));
    let page = parser.parse_owned(&query(RecordKind::Asset), 0, &body);
    assert_eq!(names(&page), vec!["bom"]);
    assert!(page.repairs.is_empty());
}

#[test]
fn every_case_file_is_read_without_losing_a_row() {
    let dir = fixtures::cases_dir();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let page = Parser::new().parse_owned(&query(RecordKind::Finding), 0, &body);
        let s = summary(&page);
        assert_eq!(
            s.rows,
            page.records.len() + page.dead_letters.len(),
            "{path:?}"
        );
        assert_eq!(Some(s.rows as u64), s.total_items, "{path:?}");
        seen += 1;
    }
    assert!(seen >= 7);
}

#[test]
fn an_unreadable_row_is_a_dead_letter_with_its_id() {
    let body = br#"{"status":"success","total_items":3,"data":[
        {"id":"a","name":"one"},
        {"id":"b","name": tru, "x": [1,}},
        {"id":"c","name":"three"}]}"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Finding), 2000, body);
    assert_eq!(names(&page), vec!["one", "three"]);
    assert_eq!(page.dead_letters.len(), 1);
    let dl = &page.dead_letters[0];
    assert_eq!(dl.reason, "invalid_json");
    assert_eq!(dl.stage, "parse");
    assert_eq!(dl.offset, 2000);
    assert_eq!(dl.query, "AwsEc2Instance");
    assert!(dl.raw.contains(r#""id":"b""#));
    let s = summary(&page);
    assert_eq!(s.ids, vec!["a", "b", "c"]);
    assert_eq!(s.dead_letters, 1);
}

#[test]
fn non_object_rows_are_dead_letters() {
    let body = br#"{"status":"success","data":[{"id":"a"}, 7, "x", null]}"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, body);
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.dead_letters.len(), 3);
    assert!(page
        .dead_letters
        .iter()
        .all(|d| d.reason == "not_an_object"));
    assert_eq!(page.dead_letters[0].raw, "7");
}

#[test]
fn truncated_bodies_are_malformed_not_data() {
    let full = br#"{"status":"success","total_items":2,"data":[{"id":"a"},{"id":"b"}]}"#;
    for cut in [10, 40, 50, full.len() - 1] {
        let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, &full[..cut]);
        assert!(
            matches!(page.verdict, PageVerdict::Malformed(_)),
            "cut at {cut}: {:?}",
            page.verdict
        );
        assert!(page.records.is_empty());
    }
    for body in [
        &b""[..],
        b"<html>502 Bad Gateway</html>",
        b"null",
        br#"{"status":"success"}"#,
    ] {
        let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, body);
        assert!(
            matches!(page.verdict, PageVerdict::Malformed(_)),
            "{body:?}"
        );
    }
}

#[test]
fn failure_status_is_an_error_not_data() {
    let body = br#"{"status":"failure","error":"invalid limit 1000000","data":[{"id":"x"}]}"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, body);
    assert_eq!(
        page.verdict,
        PageVerdict::Failure("Orca answered status `failure`: invalid limit 1000000".into())
    );
    assert!(page.records.is_empty());
}

#[test]
fn unknown_top_level_keys_are_ignored_and_empty_pages_end() {
    let body = br#"{"status":"success","total_items":5,"data":[],"next":"x","took_ms":3}"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Asset), 5000, body);
    let s = summary(&page);
    assert_eq!((s.rows, s.total_items), (0, Some(5)));
    let bare = br#"[{"id":"a"},{"id":"b"}]"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, bare);
    assert_eq!(summary(&page).ids, vec!["a", "b"]);
}

#[test]
fn a_parser_is_reusable_across_pages() {
    let mut p = Parser::new();
    let a = p.parse_owned(&query(RecordKind::Asset), 0, br#"{"data":[{"id":"a"}]}"#);
    let b = p.parse_owned(
        &query(RecordKind::Asset),
        0,
        &case("01-lone-surrogate.json"),
    );
    let c = p.parse_owned(&query(RecordKind::Asset), 0, br#"{"data":[{"id":"c"}]}"#);
    assert_eq!(summary(&a).ids, vec!["a"]);
    assert_eq!(summary(&b).rows, 3);
    assert_eq!(summary(&c).ids, vec!["c"]);
}

proptest::proptest! {
    #[test]
    fn never_panics_and_never_loses_a_row(rows in proptest::collection::vec("\\PC{0,30}", 0..6)) {
        // Arbitrary (often invalid) row texts inside a well-formed envelope.
        let body = format!(r#"{{"status":"success","data":[{}]}}"#, rows.iter().map(|r| format!("{{\"id\":\"{}\"}}", r)).collect::<Vec<_>>().join(","));
        let page = Parser::new().parse_owned(&query(RecordKind::Finding), 0, body.as_bytes());
        if let PageVerdict::Read(s) = &page.verdict {
            proptest::prop_assert_eq!(s.rows, page.records.len() + page.dead_letters.len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Parser::new().parse_owned(&query(RecordKind::Asset), 0, &bytes);
    }
}

#[test]
fn latest_first_seen_is_reported_when_asked() {
    let body = br#"{"status":"success","data":[
        {"id":"a","data":{"FirstSeen":{"value":"2024-03-29T12:00:00+00:00"}}},
        {"id":"b","data":{"FirstSeen":{"value":1711800000000}}},
        {"id":"c","data":{"FirstSeen":{"value":"not a date"}}},
        {"id":"d","data":{}}]}"#;
    let mut q = (*query(RecordKind::Finding)).clone();
    assert_eq!(
        summary(&Parser::new().parse_owned(&Arc::new(q.clone()), 0, body)).max_first_seen_ms,
        None
    );
    q.track_first_seen = true;
    let page = Parser::new().parse_owned(&Arc::new(q), 0, body);
    // 2024-03-30T12:00:00Z, the epoch-ms row, is the latest readable one.
    assert_eq!(summary(&page).max_first_seen_ms, Some(1_711_800_000_000));
    assert_eq!(summary(&page).ids, vec!["a", "b", "c", "d"]);
}

#[test]
fn pages_over_the_whole_page_limit_are_read_row_by_row_alike() {
    // 600 rows of about 4 KiB: past WHOLE_PAGE_MAX, so read row by row.
    let pad = "x".repeat(4000);
    let rows: Vec<String> = (0..600)
        .map(|i| match i {
            // A lone surrogate, mended; and a row nothing can mend.
            7 => format!(r#"{{"id":"r{i}","name":"bad \udc00 {pad}"}}"#),
            9 => format!(r#"{{"id":"r{i}","name": tru, "x": [1,}}}}"#),
            _ => format!(
                r#"{{"id":"r{i}","name":"{pad}","data":{{"FirstSeen":{{"value":"2024-01-01T00:00:{:02}Z"}}}}}}"#,
                i % 60
            ),
        })
        .collect();
    let body = format!(
        r#"{{"status":"success","total_items":600,"data":[{}]}}"#,
        rows.join(",")
    );
    assert!(body.len() > super::WHOLE_PAGE_MAX);
    let mut q = (*query(RecordKind::Asset)).clone();
    q.track_first_seen = true;
    let page = Parser::new().parse_owned(&Arc::new(q), 100, body.as_bytes());
    let s = summary(&page);
    assert_eq!((s.rows, s.total_items, s.dead_letters), (600, Some(600), 1));
    assert_eq!(s.ids.len(), 600);
    assert_eq!(s.max_first_seen_ms, Some(1_704_067_259_000));
    assert_eq!(page.records.len(), 599);
    assert_eq!(page.records[0].item.get_str("id"), Some("r0"));
    assert_eq!(page.records[599 - 1].item.get_str("id"), Some("r599"));
    assert!(page.records[7]
        .item
        .get_str("name")
        .unwrap()
        .starts_with("bad \u{fffd}"));
    assert_eq!(page.repairs.get(&Repair::LoneSurrogate), Some(&1));
    assert_eq!(page.dead_letters[0].id.as_deref(), Some("r9"));
    assert_eq!(page.dead_letters[0].offset, 100);
}

#[test]
fn byte_order_marks_and_blanks_before_the_answer_are_ignored() {
    // Case 06's kind: the mark twice, after blanks, before a bare array,
    // and before a page that must be read row by row (a row to mend).
    let body = br#"{"status":"success","total_items":2,"data":[{"id":"a","name":"one"},{"id":"b","name":"bad \udc00"}]}"#;
    let bare = br#"[{"id":"a","name":"one"},{"id":"b","name":"two"}]"#;
    for prefix in [
        &b"\xEF\xBB\xBF\xEF\xBB\xBF"[..],
        b" \r\n\xEF\xBB\xBF",
        b"\xEF\xBB\xBF \n",
    ] {
        for (text, want) in [
            (&body[..], vec!["one", "bad \u{fffd}"]),
            (&bare[..], vec!["one", "two"]),
        ] {
            let mut b = prefix.to_vec();
            b.extend_from_slice(text);
            let page = Parser::new().parse_owned(&query(RecordKind::Asset), 0, &b);
            assert_eq!(summary(&page).rows, 2, "{prefix:?}");
            assert_eq!(names(&page), want, "{prefix:?}");
            assert!(page.dead_letters.is_empty());
        }
    }
}

#[test]
fn an_unreadable_row_keeps_its_whole_id_whatever_its_escapes() {
    // The id of a dead letter is what keeps its finding from being marked
    // FIXED: it must be the id the ledger knows, not its text up to the
    // first backslash; an id that cannot be read faithfully is no id.
    let body = br#"{"status":"success","data":[
        {"id":"a\/b","x": [1,}},
        {"id":"c\"d\u0065","x": [1,}},
        {"id":"x\udc00y","x": [1,}},
        {"id":12345,"x": [1,}},
        {"id":"ok","name":"fine"}]}"#;
    let page = Parser::new().parse_owned(&query(RecordKind::Finding), 0, body);
    let ids: Vec<Option<&str>> = page.dead_letters.iter().map(|d| d.id.as_deref()).collect();
    assert_eq!(ids, vec![Some("a/b"), Some("c\"de"), None, Some("12345")]);
    assert_eq!(summary(&page).ids, vec!["a/b", "c\"de", "12345", "ok"]);
}

#[test]
fn asset_pages_past_their_own_limit_are_read_row_by_row_and_findings_pages_whole() {
    // About 400 KiB: under WHOLE_PAGE_MAX, over WHOLE_ASSET_PAGE_MAX.
    let pad = "t".repeat(1000);
    let rows: Vec<String> = (0..400)
        .map(|i| format!(r#"{{"id":"r{i}","asset_unique_id":"a{i}","name":"{pad}"}}"#))
        .collect();
    let body = format!(
        r#"{{"status":"success","total_items":400,"data":[{}]}}"#,
        rows.join(",")
    );
    assert!(body.len() > super::WHOLE_ASSET_PAGE_MAX && body.len() < super::WHOLE_PAGE_MAX);
    let mut parser = Parser::new();
    let assets = query(RecordKind::Asset);
    let page = parser.parse(&assets, 0, body.as_bytes());
    assert!(matches!(page.rows, super::Rows::Each { .. }));
    let mut ids = Vec::new();
    page.for_each_row(|r| ids.push(r.get_str("id").map(str::to_string)));
    let findings = query(RecordKind::Finding);
    let page = parser.parse(&findings, 0, body.as_bytes());
    assert!(matches!(page.rows, super::Rows::Tape { .. }));
    let mut again = Vec::new();
    page.for_each_row(|r| again.push(r.get_str("id").map(str::to_string)));
    // Read alike either way.
    assert_eq!(ids.len(), 400);
    assert_eq!(ids, again);
    assert_eq!(ids[399].as_deref(), Some("r399"));
}
