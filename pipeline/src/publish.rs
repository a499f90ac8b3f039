//! The publish phase: assembled assets joined with the ledger, rendered
//! with each finding's status, streamed to every sink; the ledger commits
//! only once every sink has acknowledged.
//!
//! ```text
//! spill partitions ─▶ assemble ─▶ merge (asset id order) ─▶ join with the ledger's known findings
//!                                                      ├─▶ render ─batches─▶ sink_<name> ×N ─▶ commit
//!                                                      └─▶ ledger writes ─▶ ledger thread (one transaction)
//! ```
//!
//! The ledger's writes go to a thread of their own over a bounded channel,
//! and so does every sink (`sink_stage`): rendered documents are batched
//! once and shared by all sinks' channels, so SQLite's work and each
//! sink's overlap rendering instead of adding to it, and a slow sink shows
//! as its own full channel. The order of the end matters for crash safety:
//! documents streamed, every ledger write applied, sinks commit, then the
//! caller writes the manifest, then the ledger commits. A crash before the
//! ledger commit leaves the ledger as it was, so the rerun computes the
//! same statuses and delivers the same documents again (at-least-once,
//! keyed by asset id, so harmless).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use stages::channel::{self, Receiver, Sender};
use stages::dedupe::{self, AssembleStats, AssembledAsset, FindingOut, Merge, SpillStats};
use stages::ledger::{
    decide_asset, Decision, FixPolicy, Known, KnownAssets, KnownByAsset, KnownFindings, Ledger,
    LedgerError, RunRecord, Status,
};
use stages::sink::{DocBatch, Sink, SinkReport};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::sink_stage::{channel_snapshot, SinkStage};
use crate::telemetry::RunMeter;

/// The ETM field a finding is published under; a `FIXED` finding keeps it
/// (also spelled out in `external_id_of`, as serde needs a literal).
const EXTERNAL_ID_FIELD: &str = "externalFindingId";

/// Findings per batch of ledger writes: large enough that the channel is
/// not the cost, small enough that a batch is a few hundred KiB.
const LEDGER_BATCH_FINDINGS: usize = 2048;
/// Asset entries (each with its findings) queued for the ledger thread.
const LEDGER_QUEUE: usize = 4096;
/// Documents per batch sent to the sinks, and the bytes that close a batch
/// early: few channel operations per document, little latency per batch.
const SINK_BATCH_DOCS: usize = 64;
const SINK_BATCH_BYTES: usize = 1 << 20;
/// Documents queued for each sink: a slow sink holds at most this many.
const SINK_QUEUE_DOCS: usize = 512;

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("assembly: {0}")]
    Dedupe(#[from] dedupe::DedupeError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("every sink failed: {0}")]
    Sinks(String),
    #[error("the ledger writer stopped: {0}")]
    LedgerWriter(String),
    #[error("{0}")]
    Finish(String),
}

/// Findings this run could not read, so the ledger never takes them for
/// gone (`shared/cases/README.md`: a finding that could not be read must
/// never be marked FIXED because it could not be read).
#[derive(Debug, Default)]
pub struct Unreadable {
    /// Orca ids (`vendorId`) of finding records that became dead letters.
    vendor_ids: HashSet<String>,
    /// Finding dead letters whose id could not be read either: any known
    /// finding might be one of them.
    unidentified: u64,
}

/// More unreadable findings than this and the run fixes nothing: the set
/// must not grow with a hostile tenant.
const UNREADABLE_CAP: usize = 100_000;

impl Unreadable {
    /// Note a finding record that could not be read, with its id if known.
    pub fn add(&mut self, id: Option<&str>) {
        match id {
            Some(v) if self.vendor_ids.len() < UNREADABLE_CAP => {
                self.vendor_ids.insert(v.to_owned());
            }
            _ => self.unidentified += 1,
        }
    }

    pub fn contains(&self, vendor_id: &str) -> bool {
        self.vendor_ids.contains(vendor_id)
    }

    /// Why this run may fix nothing although it read everything, if so.
    pub fn withholds_fixing(&self) -> Option<String> {
        (self.unidentified > 0).then(|| {
            format!(
                "{} finding record(s) could not be read nor identified: no finding is marked FIXED this run",
                self.unidentified
            )
        })
    }

    pub fn len(&self) -> u64 {
        self.vendor_ids.len() as u64 + self.unidentified
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How this run publishes.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub policy: FixPolicy,
    /// Publish only changed assets (and those with newly FIXED findings).
    pub delta: bool,
    /// Every host asset was read (the run is complete and pulls assets),
    /// so a known asset this run did not see is gone.
    pub assets_complete: bool,
}

/// What the publish phase did.
#[derive(Debug, Default)]
pub struct Published {
    pub assembled: AssembleStats,
    pub spill: SpillStats,
    /// One per sink that committed.
    pub reports: Vec<SinkReport>,
    /// Sinks that failed (name: error); the run is `failed` for the ledger.
    pub failed_sinks: Vec<String>,
    /// Documents published (same for every sink).
    pub documents: u64,
    /// Findings published, by status.
    pub findings_by_status: BTreeMap<&'static str, u64>,
    pub findings: u64,
    /// Delta: assets left out because their document did not change.
    pub unchanged_assets: u64,
    /// Known assets this run did not see (recorded as gone when complete).
    pub gone_assets: u64,
    /// Documents published only to carry FIXED findings of a gone asset.
    pub gone_documents: u64,
    /// Orphan assets published (findings without their asset record).
    pub orphan_documents: u64,
    /// The sink stages' counters and their channels', for the manifest.
    pub stages: BTreeMap<&'static str, serde_json::Value>,
    pub channels: BTreeMap<&'static str, serde_json::Value>,
}

/// The ledger's share of one asset.
struct AssetWrites {
    asset_id: String,
    findings: Vec<FindingWrite>,
    /// The document fingerprint to record.
    doc: Option<u64>,
    /// The asset left the tenant (complete runs only).
    gone: bool,
}

struct FindingWrite {
    vendor_id: String,
    status: Status,
    fingerprint: u64,
    external_id: Option<String>,
}

/// Assemble the spilled partitions and publish every document.
///
/// `finish` runs once every sink has committed (the output is in place),
/// and returns the run record to commit in the ledger; if it fails, or a
/// sink failed, the ledger keeps nothing of this run's findings.
#[allow(clippy::too_many_arguments)]
pub fn publish(
    work: &Path,
    dedupe_cfg: &dedupe::DedupeConfig,
    spilled: (Vec<PathBuf>, SpillStats),
    sinks: Vec<Box<dyn Sink>>,
    ledger: &mut Ledger,
    run_id: &str,
    settings: Settings,
    unreadable: &Unreadable,
    meter: &RunMeter,
    finish: impl FnOnce(&Published) -> Result<RunRecord, String>,
) -> Result<Published, PublishError> {
    let (parts, spill) = spilled;
    let (runs, assembled) = dedupe::assemble_all(parts, dedupe_cfg, &work.join("runs"))?;
    let mut merge = Merge::open(runs)?;

    // Both streams pin their snapshot now, before the writer begins.
    let known = KnownByAsset::new(ledger.known_findings()?);
    let known_assets = ledger.known_assets()?;

    let mut out = Published {
        assembled,
        spill,
        ..Published::default()
    };

    std::thread::scope(|scope| {
        let mut slots = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let name = sink.name();
            let stage = SinkStage::spawn(scope, sink, SINK_QUEUE_DOCS)
                .map_err(|e| PublishError::Sinks(format!("cannot start {name}: {e}")))?;
            meter.stage(stage.stats());
            meter.channel(stage.channel_stats());
            slots.push(stage);
        }
        let (tx, rx) = channel::bounded::<Vec<AssetWrites>>("ledger_writes", LEDGER_QUEUE);
        meter.channel(tx.stats());
        let (ready_tx, ready_rx) = flume::bounded::<Result<(), String>>(1);
        let (commit_tx, commit_rx) = flume::bounded::<RunRecord>(1);
        let writer = std::thread::Builder::new()
            .name("ledger".into())
            .spawn_scoped(scope, move || {
                ledger_worker(ledger, run_id, rx, ready_tx, commit_rx)
            })
            .map_err(|e| PublishError::LedgerWriter(e.to_string()))?;

        let mut p = Publisher {
            settings,
            unreadable,
            known,
            known_assets: known_assets.peekable(),
            slots,
            pending: DocBatch::default(),
            ledger: tx,
            batch: Vec::new(),
            batch_findings: 0,
            doc: Vec::with_capacity(64 << 10),
            out: &mut out,
        };
        let streamed = p.stream(&mut merge);
        let Publisher {
            mut slots, ledger, ..
        } = p;
        drop(ledger);
        // The sinks see the end of their input and finish writing while
        // the ledger finishes applying.
        for s in &mut slots {
            s.close_input();
        }
        if let Err(e) = streamed {
            drop(commit_tx);
            let _ = writer.join();
            return Err(e);
        }
        merge.remove_files()?;

        // Every write reached the ledger's transaction before any output
        // becomes visible: a ledger that cannot take the run fails it
        // while the previous output is still in place.
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(PublishError::LedgerWriter(e)),
            Err(_) => {
                return Err(PublishError::LedgerWriter(join_error(writer.join())));
            }
        }
        commit_sinks(slots, &mut out, meter)?;
        let run = finish(&out).map_err(PublishError::Finish)?;
        if !out.failed_sinks.is_empty() {
            // A sink failed: its output is incomplete, so this run's
            // statuses must not become the ledger's.
            drop(commit_tx);
            let _ = writer.join();
            return Ok(out);
        }
        if commit_tx.send(run).is_err() {
            return Err(PublishError::LedgerWriter(join_error(writer.join())));
        }
        match writer.join() {
            Ok(r) => r.map_err(PublishError::Ledger)?,
            Err(_) => return Err(PublishError::LedgerWriter("panicked".into())),
        }
        Ok(out)
    })
}

fn join_error(r: std::thread::Result<Result<(), LedgerError>>) -> String {
    match r {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => "ended early".into(),
        Err(_) => "panicked".into(),
    }
}

/// Commit every sink at once and wait for all; a sink that failed (now or
/// while writing) is listed, the others' output stands.
fn commit_sinks(
    mut slots: Vec<SinkStage<'_>>,
    out: &mut Published,
    meter: &RunMeter,
) -> Result<(), PublishError> {
    for s in &mut slots {
        s.release(true);
    }
    for s in slots {
        let (name, stats, channel) = (s.name, s.stats().clone(), s.channel_stats().clone());
        let result = s.join();
        out.stages.insert(name, stats.snapshot());
        out.channels.insert(name, channel_snapshot(&channel));
        match result {
            Ok(r) => out.reports.push(r),
            Err(e) => {
                meter.stage_error(name, "failed");
                out.failed_sinks.push(labelled(name, &e));
            }
        }
    }
    if out.reports.is_empty() && !out.failed_sinks.is_empty() {
        return Err(PublishError::Sinks(out.failed_sinks.join("; ")));
    }
    Ok(())
}

/// The ledger thread: applies the writes in the run's one transaction,
/// says when all are in, and commits only when told to.
fn ledger_worker(
    ledger: &mut Ledger,
    run_id: &str,
    rx: Receiver<Vec<AssetWrites>>,
    ready: flume::Sender<Result<(), String>>,
    commit: flume::Receiver<RunRecord>,
) -> Result<(), LedgerError> {
    let mut w = match ledger.start_commit(run_id) {
        Ok(w) => w,
        Err(e) => {
            rx.close();
            let _ = ready.send(Err(e.to_string()));
            return Err(e);
        }
    };
    let mut apply = |a: AssetWrites| -> Result<(), LedgerError> {
        for f in &a.findings {
            w.finding_with_external_id(
                &a.asset_id,
                &f.vendor_id,
                f.status,
                f.fingerprint,
                f.external_id.as_deref(),
            )?;
        }
        if let Some(fp) = a.doc {
            w.asset(&a.asset_id, fp)?;
        }
        if a.gone {
            w.asset_gone(&a.asset_id)?;
        }
        Ok(())
    };
    while let Some(batch) = rx.recv_blocking() {
        for a in batch {
            if let Err(e) = apply(a) {
                rx.close();
                let _ = ready.send(Err(e.to_string()));
                return Err(e);
            }
        }
    }
    stages::failpoint::hit("ledger.applied");
    let _ = ready.send(Ok(()));
    match commit.recv() {
        Ok(run) => w.finish(&run),
        // Not told to commit: dropping the writer rolls the run back.
        Err(_) => Ok(()),
    }
}

/// The streaming half of publishing (the publish thread's state).
struct Publisher<'a, 's> {
    settings: Settings,
    unreadable: &'a Unreadable,
    known: KnownByAsset<KnownFindings>,
    known_assets: std::iter::Peekable<KnownAssets>,
    slots: Vec<SinkStage<'s>>,
    /// Documents rendered but not yet handed to the sinks.
    pending: DocBatch,
    ledger: Sender<Vec<AssetWrites>>,
    batch: Vec<AssetWrites>,
    batch_findings: usize,
    doc: Vec<u8>,
    out: &'a mut Published,
}

impl Publisher<'_, '_> {
    fn stream(&mut self, merge: &mut Merge) -> Result<(), PublishError> {
        while let Some(asset) = merge.next_asset()? {
            self.leave_known_before(Some(&asset.asset_id))?;
            self.asset(&asset)?;
        }
        self.leave_known_before(None)?;
        self.send_documents()?;
        self.flush()
    }

    /// Known assets before `bound` that this run did not publish.
    fn leave_known_before(&mut self, bound: Option<&str>) -> Result<(), PublishError> {
        while let Some((asset_id, known)) = self.known.next_before(bound)? {
            self.gone_findings(asset_id, known)?;
        }
        while let Some(next) = self.known_assets.peek() {
            let id = match next {
                Ok((id, _)) => id,
                Err(_) => match self.known_assets.next() {
                    Some(Err(e)) => return Err(e.into()),
                    _ => continue,
                },
            };
            if bound.is_some_and(|b| id.as_str() >= b) {
                break;
            }
            if let Some(Ok((id, _))) = self.known_assets.next() {
                self.out.gone_assets += 1;
                if self.settings.policy.run_complete || self.settings.assets_complete {
                    self.queue(AssetWrites {
                        asset_id: id,
                        findings: Vec::new(),
                        doc: None,
                        gone: true,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The recorded fingerprint of `asset_id`'s document, if any.
    fn known_fingerprint(&mut self, asset_id: &str) -> Result<Option<u64>, PublishError> {
        match self.known_assets.peek() {
            Some(Ok((id, fp))) if id == asset_id => {
                let fp = *fp;
                self.known_assets.next();
                Ok(Some(fp))
            }
            Some(Err(_)) => match self.known_assets.next() {
                Some(Err(e)) => Err(e.into()),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// A known asset absent from this run: its open findings are decided as
    /// missing (FIXED only by a complete run that does not preserve them).
    fn gone_findings(&mut self, asset_id: String, known: Vec<Known>) -> Result<(), PublishError> {
        let decisions = self.decide(known, std::iter::empty())?;
        let mut writes = Vec::new();
        let mut fixed = Vec::new();
        for d in decisions.into_iter().filter(|d| d.emit) {
            fixed.push(fixed_finding(&d.vendor_id, d.known_external_id.as_deref()));
            writes.push(FindingWrite {
                vendor_id: d.vendor_id,
                status: Status::Fixed,
                fingerprint: d.fingerprint,
                external_id: None,
            });
        }
        if !fixed.is_empty() {
            self.doc.clear();
            dedupe::render_document(
                &mut self.doc,
                &asset_id,
                None,
                fixed.iter().map(|j| FindingOut::Complete(j)),
            );
            *self.out.findings_by_status.entry("FIXED").or_default() += fixed.len() as u64;
            self.out.findings += fixed.len() as u64;
            self.out.gone_documents += 1;
            self.write_document(&asset_id)?;
        }
        if !writes.is_empty() {
            self.queue(AssetWrites {
                asset_id,
                findings: writes,
                doc: None,
                gone: false,
            })?;
        }
        Ok(())
    }

    fn decide<'s>(
        &self,
        known: Vec<Known>,
        seen: impl IntoIterator<Item = (&'s str, u64)>,
    ) -> Result<Vec<Decision>, PublishError> {
        let unreadable = self.unreadable;
        Ok(decide_asset(known, seen, self.settings.policy, |v| {
            unreadable.contains(v)
        })?)
    }

    /// One asset of this run.
    fn asset(&mut self, asset: &AssembledAsset) -> Result<(), PublishError> {
        let known = self.known.take(&asset.asset_id)?;
        let fps: Vec<u64> = asset.findings.iter().map(|(_, j)| xxh3_64(j)).collect();
        let seen = asset
            .findings
            .iter()
            .zip(&fps)
            .map(|((v, _), fp)| (v.as_str(), *fp));
        let decisions = self.decide(known, seen)?;
        let doc_fp = document_fingerprint(asset, &fps);
        let changed = self.known_fingerprint(&asset.asset_id)? != Some(doc_fp);

        let mut writes = Vec::with_capacity(decisions.len());
        let mut fixed: Vec<Vec<u8>> = Vec::new();
        // Decisions come in vendor id order, as do the asset's findings:
        // a seen one is the next of `asset.findings`.
        let mut next_seen = 0usize;
        let mut order: Vec<(Option<usize>, Status)> = Vec::with_capacity(decisions.len());
        for d in decisions {
            if d.emit && d.status.is_open() {
                let i = next_seen;
                next_seen += 1;
                let json = asset.findings.get(i).map(|(_, j)| j.as_slice());
                let external_id = match (d.previous, &d.known_external_id) {
                    (Some(_), Some(_)) => None,
                    _ => json.and_then(external_id_of),
                };
                order.push((Some(i), d.status));
                writes.push(FindingWrite {
                    vendor_id: d.vendor_id,
                    status: d.status,
                    fingerprint: d.fingerprint,
                    external_id,
                });
            } else if d.emit {
                order.push((None, Status::Fixed));
                fixed.push(fixed_finding(&d.vendor_id, d.known_external_id.as_deref()));
                writes.push(FindingWrite {
                    vendor_id: d.vendor_id,
                    status: Status::Fixed,
                    fingerprint: d.fingerprint,
                    external_id: None,
                });
            }
        }

        if !self.settings.delta || changed || !fixed.is_empty() {
            let mut fixed_iter = fixed.iter();
            let findings = order.iter().filter_map(|(i, status)| match i {
                Some(i) => asset.findings.get(*i).map(|(_, json)| FindingOut::Seen {
                    json,
                    status: status.as_str(),
                }),
                None => fixed_iter.next().map(|j| FindingOut::Complete(j)),
            });
            self.doc.clear();
            dedupe::render_document(
                &mut self.doc,
                &asset.asset_id,
                asset.json.as_deref(),
                findings,
            );
            for (_, status) in &order {
                *self
                    .out
                    .findings_by_status
                    .entry(status.as_str())
                    .or_default() += 1;
            }
            self.out.findings += order.len() as u64;
            if asset.json.is_none() {
                self.out.orphan_documents += 1;
            }
            self.write_document(&asset.asset_id)?;
        } else {
            self.out.unchanged_assets += 1;
        }
        self.queue(AssetWrites {
            asset_id: asset.asset_id.clone(),
            findings: writes,
            doc: Some(doc_fp),
            gone: false,
        })
    }

    /// The rendered document (in `self.doc`) to every sink, in batches.
    fn write_document(&mut self, asset_id: &str) -> Result<(), PublishError> {
        self.pending.push(asset_id.as_bytes(), &self.doc);
        if self.pending.len() >= SINK_BATCH_DOCS || self.pending.bytes() >= SINK_BATCH_BYTES {
            self.send_documents()?;
        }
        self.out.documents += 1;
        stages::failpoint::hit("publish.document");
        Ok(())
    }

    /// The pending batch to every sink; stops the run once no sink stands.
    fn send_documents(&mut self) -> Result<(), PublishError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = Arc::new(std::mem::replace(
            &mut self.pending,
            DocBatch::with_capacity(SINK_BATCH_DOCS, 64 << 10),
        ));
        let mut standing = 0;
        for s in &self.slots {
            if s.failed().is_none() {
                s.send(batch.clone());
                standing += 1;
            }
        }
        if standing == 0 {
            let errors: Vec<String> = self
                .slots
                .iter()
                .filter_map(|s| s.failed().map(|e| labelled(s.name, &e)))
                .collect();
            return Err(PublishError::Sinks(errors.join("; ")));
        }
        Ok(())
    }

    fn queue(&mut self, w: AssetWrites) -> Result<(), PublishError> {
        self.batch_findings += w.findings.len().max(1);
        self.batch.push(w);
        if self.batch_findings >= LEDGER_BATCH_FINDINGS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PublishError> {
        self.batch_findings = 0;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.ledger
            .send_blocking(batch)
            .map_err(|_| PublishError::LedgerWriter("the ledger thread stopped".into()))
    }
}

/// A sink's error named by the sink as users wrote it (`ndjson`, from its
/// stage `sink_ndjson`), unless the error names it already.
fn labelled(stage: &str, error: &str) -> String {
    let name = stage.strip_prefix("sink_").unwrap_or(stage);
    match error.strip_prefix(name) {
        Some(rest) if rest.starts_with(':') => error.to_string(),
        _ => format!("{name}: {error}"),
    }
}

/// Fingerprint of an asset's content: its document and its findings' ids
/// and content, statuses excluded, so a finding going from NEW to ACTIVE
/// does not count as a change but one coming, going or changing does.
pub fn document_fingerprint(asset: &AssembledAsset, finding_fps: &[u64]) -> u64 {
    let mut h = Xxh3::new();
    match &asset.json {
        Some(j) => {
            h.update(b"A");
            h.update(j);
        }
        None => {
            h.update(b"O");
            h.update(asset.asset_id.as_bytes());
        }
    }
    for ((vendor_id, _), fp) in asset.findings.iter().zip(finding_fps) {
        h.update(&(vendor_id.len() as u64).to_le_bytes());
        h.update(vendor_id.as_bytes());
        h.update(&fp.to_le_bytes());
    }
    h.digest()
}

/// The `externalFindingId` of a rendered finding, if it has one.
fn external_id_of(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ids<'a> {
        #[serde(rename = "externalFindingId", borrow)]
        external: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Ids<'_>>(json)
        .ok()?
        .external
        .map(|c| c.into_owned())
        .filter(|s| !s.is_empty())
}

/// A finding of an earlier run that this run did not see, as published:
/// its keys and `FIXED`.
pub fn fixed_finding(vendor_id: &str, external_id: Option<&str>) -> Vec<u8> {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut j = String::with_capacity(160);
    j.push('{');
    if let Some(e) = external_id {
        j.push_str(&format!("\"{EXTERNAL_ID_FIELD}\":{},", quote(e)));
    }
    j.push_str(
        "\"vendorProductName\":\"Orca Security\",\"findingType\":{\"vulnerability\":{\"vendorId\":",
    );
    j.push_str(&quote(vendor_id));
    j.push_str("}},\"status\":\"FIXED\"}");
    j.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_errors_name_their_sink_once() {
        assert_eq!(labelled("sink_csv", "csv: disk full"), "csv: disk full");
        assert_eq!(labelled("sink_csv", "disk full"), "csv: disk full");
        assert_eq!(labelled("sink_csv", "csvx: a"), "csv: csvx: a");
    }

    #[test]
    fn fixed_findings_keep_their_keys() {
        let j = fixed_finding("f-1", Some("CVE-2024-1"));
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["externalFindingId"], "CVE-2024-1");
        assert_eq!(v["findingType"]["vulnerability"]["vendorId"], "f-1");
        assert_eq!(v["status"], "FIXED");
        assert_eq!(v["vendorProductName"], "Orca Security");
        let j = fixed_finding("q\"x", None);
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert!(v.get("externalFindingId").is_none());
        assert_eq!(v["findingType"]["vulnerability"]["vendorId"], "q\"x");
    }

    #[test]
    fn external_ids_are_read_from_rendered_findings() {
        assert_eq!(
            external_id_of(br#"{"externalFindingId":"CVE-1","name":"x","findingType":{"vulnerability":{"externalFindingId":"no"}}}"#),
            Some("CVE-1".into())
        );
        assert_eq!(external_id_of(br#"{"externalFindingId":null}"#), None);
        assert_eq!(external_id_of(br#"{"name":"x"}"#), None);
        assert_eq!(external_id_of(b"not json"), None);
    }

    #[test]
    fn document_fingerprint_ignores_nothing_but_status() {
        let a = AssembledAsset {
            asset_id: "a".into(),
            json: Some(b"{\"hostName\":\"h\"}".to_vec()),
            findings: vec![("f1".into(), b"{}".to_vec()), ("f2".into(), b"{}".to_vec())],
        };
        let base = document_fingerprint(&a, &[1, 2]);
        assert_eq!(base, document_fingerprint(&a, &[1, 2]));
        assert_ne!(base, document_fingerprint(&a, &[1, 3]));
        let mut b = a.clone();
        b.findings.pop();
        assert_ne!(base, document_fingerprint(&b, &[1]));
        let mut c = a.clone();
        c.json = Some(b"{\"hostName\":\"g\"}".to_vec());
        assert_ne!(base, document_fingerprint(&c, &[1, 2]));
        let mut d = a.clone();
        d.json = None;
        assert_ne!(base, document_fingerprint(&d, &[1, 2]));
    }

    #[test]
    fn unreadable_findings_withhold_fixing_only_when_unidentified() {
        let mut u = Unreadable::default();
        u.add(Some("v1"));
        assert!(u.contains("v1"));
        assert!(u.withholds_fixing().is_none());
        u.add(None);
        assert!(u.withholds_fixing().unwrap().contains("1 finding record"));
        assert_eq!(u.len(), 2);
    }
}
