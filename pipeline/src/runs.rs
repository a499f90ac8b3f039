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

/// The runs as a table for people.
pub fn table(runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:<10} {:<24} {:>9} {:>8} {:<44} {:>6}",
        "RUN", "STATUS", "STARTED", "DURATION", "ASSETS", "FINDINGS", "DEAD"
    );
    for r in runs {
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
        let _ = writeln!(
            out,
            "{:<26} {:<10} {:<24} {:>9} {:>8} {:<44} {:>6}",
            r.run_id,
            status,
            r.started_at,
            duration,
            r.assets,
            if findings.is_empty() {
                "-".into()
            } else {
                findings
            },
            r.dead_letters
        );
    }
    out
}
