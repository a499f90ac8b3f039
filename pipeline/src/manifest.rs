//! The run manifest: what a run did, beside its output, for people and scripts.

use std::collections::BTreeMap;

use serde::Serialize;
use stages::dedupe::{AssembleStats, SpillStats};
use stages::fetch::FetchReport;
use stages::sink::SinkReport;

/// How a run ended. The exit code follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Everything read and published.
    Complete,
    /// Something was not read (a query incomplete, the run interrupted):
    /// what was read is published as open findings, nothing is closed.
    Partial,
    /// The run could not go on (bad token, wrong domain, a stage failed):
    /// nothing is published, the previous output stays.
    Failed,
}

impl RunStatus {
    /// The name used in the manifest and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    /// Process exit code (README: 0 complete, 2 bad config, 3 partial, 4 failed).
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Complete => 0,
            RunStatus::Partial => 3,
            RunStatus::Failed => 4,
        }
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub run_id: String,
    pub connector: &'static str,
    pub connector_version: &'static str,
    /// The connector profile (names the ledger).
    pub profile: String,
    pub status: RunStatus,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    /// Why the run is not complete, when it is not.
    pub error: Option<String>,
    /// Delta output: only assets whose document changed since `base_run`.
    pub delta: bool,
    pub base_run: Option<String>,
    /// The run whose documents the output files beside this manifest hold:
    /// this run's id when it published, else the last run that did (a
    /// failed run leaves the previous output in place). None: no output yet.
    pub output_run_id: Option<String>,
    /// Why no finding was marked FIXED, when none could be.
    pub fixing: Option<String>,
    pub counts: Counts,
    /// Every query and partition read, with `total_items` against rows read.
    pub fetch: Option<FetchReport>,
    pub outputs: Vec<SinkReport>,
    /// Sinks that failed this run, each `name: why` (their output, if any,
    /// is the previous run's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_sinks: Vec<String>,
    /// Per-stage and per-channel counters (utilization, blocked time).
    pub stages: BTreeMap<&'static str, serde_json::Value>,
    pub channels: BTreeMap<&'static str, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Host asset documents published (orphans included).
    pub assets: u64,
    pub findings: u64,
    pub findings_by_status: BTreeMap<&'static str, u64>,
    /// Documents made for findings whose asset did not come back.
    pub orphan_assets: u64,
    /// Delta output: assets left out because their document did not change.
    pub unchanged_assets: u64,
    /// Assets of earlier runs that this run did not see.
    pub gone_assets: u64,
    pub dead_letters: u64,
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    /// Values mended while parsing, by kind (lone surrogates, numbers out of range…).
    pub repairs: BTreeMap<&'static str, u64>,
    /// Values the transform nulled, defaulted or cut, by reason (incl. truncations).
    pub transform: BTreeMap<&'static str, u64>,
    pub duplicates: Duplicates,
    pub spill: SpillStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Duplicates {
    pub assets: u64,
    pub findings: u64,
    pub conflicting: u64,
}

impl Counts {
    /// Duplicates removed at assembly; documents and findings published are
    /// counted by the publish phase.
    pub fn add_assembly(&mut self, a: &AssembleStats) {
        self.duplicates = Duplicates {
            assets: a.duplicate_assets,
            findings: a.duplicate_findings,
            conflicting: a.conflicting_duplicates,
        };
    }
}

pub const FILE_NAME: &str = "manifest.json";

/// The `output_run_id` of the manifest at `path` (the last run's): whose
/// output is in place. A manifest without the field (older versions) names
/// its own run when that run was not failed. Unreadable: None.
pub fn output_run_of(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let m: serde_json::Value = serde_json::from_slice(&text).ok()?;
    match m.get("output_run_id") {
        Some(id) => id.as_str().map(str::to_string),
        None => (m.get("status")?.as_str()? != "failed")
            .then(|| m.get("run_id")?.as_str().map(str::to_string))
            .flatten(),
    }
}
