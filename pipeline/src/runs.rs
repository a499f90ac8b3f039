//! `orca-etm runs`: the recent runs of a profile, from its ledger, as the
//! seed's connector lists its states.

use std::fmt::Write as _;

use stages::ledger::{Ledger, LedgerError, RunRecord};

use crate::config::Config;

/// The last `limit` runs of the profile of `cfg`, newest first.
/// A profile that never ran has no ledger yet: that is no runs, not an error.
pub fn list(cfg: &Config, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
    let path = cfg.ledger_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    // Read-only and without the writer lock: works while a sync runs.
    Ledger::open_read_only(&path)?.runs(limit)
}

/// The runs as a table for people: each column as wide as its widest cell,
/// so a `failed (interrupted)` status or a long findings list never shifts
/// a row.
pub fn table(runs: &[RunRecord]) -> String {
    const HEADER: [&str; 7] = [
        "RUN", "STATUS", "STARTED", "DURATION", "ASSETS", "FINDINGS", "DEAD",
    ];
    // Numbers right-aligned, text left.
    const RIGHT: [bool; 7] = [false, false, false, true, true, false, true];
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|r| {
            let findings = ["NEW", "ACTIVE", "REOPENED", "FIXED"]
                .iter()
                .filter_map(|s| r.findings_by_status.get(*s).map(|n| format!("{s} {n}")))
                .collect::<Vec<_>>()
                .join(", ");
            let status = match r.details.get("interrupted") {
                Some(serde_json::Value::Bool(true)) => format!("{} (interrupted)", r.status),
                _ => r.status.clone(),
            };
            let duration = r
                .duration_seconds
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into());
            [
                r.run_id.clone(),
                status,
                r.started_at.clone(),
                duration,
                r.assets.to_string(),
                if findings.is_empty() {
                    "-".into()
                } else {
                    findings
                },
                r.dead_letters.to_string(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if RIGHT[i] {
                let _ = write!(line, "{:pad$}{cell}", "");
            } else {
                let _ = write!(line, "{cell}{:pad$}", "");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, status: &str, findings: &[(&str, u64)]) -> RunRecord {
        let mut r = RunRecord::new(id, status, "2026-12-04T16:18:31.255Z");
        r.duration_seconds = Some(6.25);
        r.assets = 100;
        r.findings_by_status = findings.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        r
    }

    #[test]
    fn every_column_lines_up_whatever_the_cells() {
        let mut interrupted = run("20261204T161801Z-ddda5e7f", "failed", &[]);
        interrupted.details = serde_json::json!({"interrupted": true});
        interrupted.duration_seconds = None;
        interrupted.assets = 0;
        let runs = [
            run(
                "20261204T161831Z-bd674acb",
                "complete",
                &[
                    ("NEW", 12),
                    ("ACTIVE", 20000),
                    ("REOPENED", 3),
                    ("FIXED", 1234),
                ],
            ),
            interrupted,
            run("20261204T161745Z-1d6ea094", "complete", &[("NEW", 20000)]),
        ];
        let text = table(&runs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[2].contains("failed (interrupted)"), "{text}");
        assert!(lines[3].contains("NEW 20000"), "{text}");
        // Each header starts where its left-aligned column's cells start, and
        // right-aligned columns end where their header ends.
        let start = |h: &str| lines[0].find(h).unwrap();
        let end = |h: &str| start(h) + h.len();
        for line in &lines[1..] {
            for h in ["STATUS", "STARTED", "FINDINGS"] {
                let at = start(h);
                assert_eq!(&line[at - 2..at], "  ", "{h}:\n{text}");
                assert_ne!(&line[at..at + 1], " ", "{h}:\n{text}");
            }
            for h in ["DURATION", "ASSETS"] {
                let at = end(h);
                assert_ne!(&line[at - 1..at], " ", "{h}:\n{text}");
                assert_eq!(&line[at..at + 2], "  ", "{h}:\n{text}");
            }
            assert_eq!(line.len(), lines[0].len(), "DEAD ends the line:\n{text}");
        }
        // No column wider than its widest cell.
        let findings = "NEW 12, ACTIVE 20000, REOPENED 3, FIXED 1234";
        assert_eq!(
            start("DEAD") - start("FINDINGS"),
            findings.len() + 2,
            "{text}"
        );
        let short = table(&runs[2..]);
        let header = short.lines().next().unwrap();
        assert_eq!(
            header.find("DEAD").unwrap() - header.find("FINDINGS").unwrap(),
            "NEW 20000".len() + 2,
            "{short}"
        );
        assert!(text.lines().all(|l| l == l.trim_end()), "{text:?}");
    }
}
