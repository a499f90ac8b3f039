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
use std::time::Instant;

use stages::channel::{self, Receiver, Sender};
use stages::dedupe::render::{minimal_asset, open_object};
use stages::dedupe::{self, AssembleStats, AssetHead, Merge, SpillStats};
use stages::ledger::{
    decide_asset, Decision, FixPolicy, Known, KnownAssets, KnownByAsset, KnownFindings, Ledger,
    LedgerError, RunRecord, Status,
};
use stages::sink::{PartBatch, Sink, SinkReport};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::runtime::StageStats;
use crate::sink_stage::{channel_snapshot, SinkStage};
use crate::telemetry::RunMeter;

/// The ETM field a finding is published under; a `FIXED` finding keeps it
/// (also spelled out in `external_id_of`, as serde needs a literal).
const EXTERNAL_ID_FIELD: &str = "externalFindingId";

/// Findings per batch of ledger writes: large enough that the channel is
/// not the cost, small enough that a batch is a few hundred KiB.
const LEDGER_BATCH_FINDINGS: usize = 2048;
/// Findings' writes queued for the ledger thread (about 80 bytes each).
const LEDGER_QUEUE_FINDINGS: usize = 65_536;
/// Bytes of document parts that close a batch for the sinks: few channel
/// operations per document, little latency per batch.
const SINK_BATCH_BYTES: usize = 1 << 20;
/// KiB of parts queued for each sink: a slow sink holds at most this much.
const SINK_QUEUE_KIB: usize = 4096;
/// An asset's findings are kept in memory between the two passes over them
/// up to this many bytes; past it the second pass reads them again from the
/// run file, so an asset of any size costs bounded memory.
const KEEP_FINDINGS_BYTES: usize = 1 << 20;

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
            let stage = SinkStage::spawn(scope, sink, SINK_QUEUE_KIB)
                .map_err(|e| PublishError::Sinks(format!("cannot start {name}: {e}")))?;
            meter.stage(stage.stats());
            meter.channel(stage.channel_stats());
            slots.push(stage);
        }
        let (tx, rx) = channel::bounded::<LedgerBatch>("ledger_writes", LEDGER_QUEUE_FINDINGS);
        meter.channel(tx.stats());
        let ledger_stats = StageStats::new("ledger", 1);
        meter.stage(&ledger_stats);
        let (ready_tx, ready_rx) = flume::bounded::<Result<(), String>>(1);
        let (commit_tx, commit_rx) = flume::bounded::<(RunRecord, Vec<String>)>(1);
        let writer = std::thread::Builder::new()
            .name("ledger".into())
            .spawn_scoped(scope, {
                let stats = ledger_stats.clone();
                move || ledger_worker(ledger, run_id, rx, ready_tx, commit_rx, &stats)
            })
            .map_err(|e| PublishError::LedgerWriter(e.to_string()))?;

        let mut p = Publisher {
            settings,
            unreadable,
            known,
            known_assets: known_assets.peekable(),
            slots,
            pending: PartBatch::default(),
            ledger: tx,
            batch: Vec::new(),
            batch_findings: 0,
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
        let waited = Instant::now();
        let ready = ready_rx.recv();
        // What the ledger cost the run: the time publishing waited for its
        // writes (they otherwise overlap rendering and the sinks). Its
        // commit, after the manifest is written, is not in it (~0.1 s per
        // million findings).
        let mut snapshot = ledger_stats.snapshot();
        snapshot["publish_waited_seconds"] =
            serde_json::json!((waited.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        out.stages.insert("ledger", snapshot);
        match ready {
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
        // Documents a sink could not deliver are forgotten, so the next run
        // (a delta one too) sends them again.
        let undelivered: Vec<String> = out
            .reports
            .iter()
            .flat_map(|r| r.undelivered.iter().cloned())
            .collect();
        if commit_tx.send((run, undelivered)).is_err() {
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

/// Ledger writes on their way to the ledger thread, weighed in findings.
struct LedgerBatch(Vec<AssetWrites>);

impl channel::Weighted for LedgerBatch {
    fn weight(&self) -> usize {
        self.0.iter().map(|a| a.findings.len().max(1)).sum()
    }
}

/// The ledger thread: applies the writes in the run's one transaction,
/// says when all are in, and commits only when told to.
fn ledger_worker(
    ledger: &mut Ledger,
    run_id: &str,
    rx: Receiver<LedgerBatch>,
    ready: flume::Sender<Result<(), String>>,
    commit: flume::Receiver<(RunRecord, Vec<String>)>,
    stats: &StageStats,
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
    while let Some(LedgerBatch(batch)) = rx.recv_blocking() {
        let t = Instant::now();
        let findings: u64 = batch.iter().map(|a| a.findings.len() as u64).sum();
        for a in batch {
            if let Err(e) = apply(a) {
                rx.close();
                let _ = ready.send(Err(e.to_string()));
                return Err(e);
            }
        }
        stats.record(findings, 0, findings, t);
    }
    stages::failpoint::hit("ledger.applied");
    let _ = ready.send(Ok(()));
    match commit.recv() {
        Ok((run, undelivered)) => {
            let t = Instant::now();
            for asset_id in &undelivered {
                w.forget_document(asset_id)?;
            }
            let done = w.finish(&run);
            stats.record(0, 0, 0, t);
            done
        }
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
    /// Document parts rendered but not yet handed to the sinks.
    pending: PartBatch,
    ledger: Sender<LedgerBatch>,
    batch: Vec<AssetWrites>,
    batch_findings: usize,
    out: &'a mut Published,
}

/// The second pass over one asset's findings: its decisions in vendor id
/// order, a seen finding's being the next of the asset's findings.
struct Pass {
    asset_id: String,
    decisions: std::iter::Peekable<std::vec::IntoIter<Decision>>,
    /// Publish the document (not an unchanged asset of a delta run).
    emit: bool,
    writes: Vec<FindingWrite>,
}

/// A decision for a finding this run read (else one it did not).
fn is_seen(d: &Decision) -> bool {
    d.emit && d.status.is_open()
}

impl Publisher<'_, '_> {
    fn stream(&mut self, merge: &mut Merge) -> Result<(), PublishError> {
        while let Some(head) = merge.next_head()? {
            self.leave_known_before(Some(&head.asset_id))?;
            self.asset(merge, &head)?;
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
        let fixed: Vec<Decision> = decisions.into_iter().filter(|d| d.emit).collect();
        if fixed.is_empty() {
            return Ok(());
        }
        self.pending.begin(&asset_id, &minimal_asset(&asset_id));
        let mut writes = Vec::with_capacity(fixed.len());
        for d in fixed {
            self.fixed(&d, true)?;
            writes.push(FindingWrite {
                vendor_id: d.vendor_id,
                status: Status::Fixed,
                fingerprint: d.fingerprint,
                external_id: None,
            });
        }
        self.out.gone_documents += 1;
        self.end_document()?;
        self.queue(AssetWrites {
            asset_id,
            findings: writes,
            doc: None,
            gone: false,
        })
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

    /// One asset of this run, in two passes over its findings: the first
    /// reads their ids and fingerprints (what the ledger decides on and
    /// what tells a changed document), the second publishes them with
    /// their status. Small assets keep their findings between the passes;
    /// a large one is read again from its run file.
    fn asset(&mut self, merge: &mut Merge, head: &AssetHead) -> Result<(), PublishError> {
        let known = self.known.take(&head.asset_id)?;
        let mut seen: Vec<(String, u64)> = Vec::with_capacity(head.findings as usize);
        let mut kept: Option<Vec<Vec<u8>>> = Some(Vec::new());
        let mut kept_bytes = 0usize;
        merge.findings::<PublishError>(|vendor, json| {
            seen.push((String::from_utf8_lossy(vendor).into_owned(), xxh3_64(json)));
            kept_bytes += json.len();
            if kept_bytes > KEEP_FINDINGS_BYTES {
                kept = None;
            } else if let Some(k) = kept.as_mut() {
                k.push(json.to_vec());
            }
            Ok(())
        })?;
        let decisions = self.decide(known, seen.iter().map(|(v, fp)| (v.as_str(), *fp)))?;
        let doc_fp = document_fingerprint(&head.asset_id, head.json.as_deref(), &seen);
        drop(seen);
        let changed = self.known_fingerprint(&head.asset_id)? != Some(doc_fp);
        let fixes = decisions.iter().any(|d| d.emit && !d.status.is_open());
        let emit = !self.settings.delta || changed || fixes;

        if emit {
            match &head.json {
                Some(j) => self.pending.begin(&head.asset_id, j),
                None => self
                    .pending
                    .begin(&head.asset_id, &minimal_asset(&head.asset_id)),
            }
        }
        let mut pass = Pass {
            asset_id: head.asset_id.clone(),
            writes: Vec::with_capacity(decisions.len().min(LEDGER_BATCH_FINDINGS)),
            decisions: decisions.into_iter().peekable(),
            emit,
        };
        match kept {
            Some(list) => {
                for json in &list {
                    self.seen(&mut pass, json)?;
                }
            }
            None => merge.reread::<PublishError>(head, |_, json| self.seen(&mut pass, json))?,
        }
        while let Some(d) = pass.decisions.next() {
            if is_seen(&d) {
                return Err(PublishError::Finish(format!(
                    "asset {}: a finding the ledger decided on is missing from the second pass",
                    head.asset_id
                )));
            }
            self.unseen(&mut pass, d)?;
        }
        if emit {
            if head.json.is_none() {
                self.out.orphan_documents += 1;
            }
            self.end_document()?;
        } else {
            self.out.unchanged_assets += 1;
        }
        self.queue(AssetWrites {
            asset_id: head.asset_id.clone(),
            findings: pass.writes,
            doc: Some(doc_fp),
            gone: false,
        })
    }

    /// The next finding this run read, with the decisions on findings it
    /// did not read that come before it.
    fn seen(&mut self, pass: &mut Pass, json: &[u8]) -> Result<(), PublishError> {
        while let Some(d) = pass.decisions.next_if(|d| !is_seen(d)) {
            self.unseen(pass, d)?;
        }
        let Some(d) = pass.decisions.next() else {
            return Err(PublishError::Finish(
                "a finding of the second pass has no decision".into(),
            ));
        };
        let external_id = match (d.previous, &d.known_external_id) {
            (Some(_), Some(_)) => None,
            _ => external_id_of(json),
        };
        if pass.emit {
            let status = d.status.as_str();
            self.pending.finding_with(|buf| {
                open_object(buf, json);
                buf.extend_from_slice(b"\"status\":\"");
                buf.extend_from_slice(status.as_bytes());
                buf.extend_from_slice(b"\"}");
            });
            self.count(d.status)?;
        }
        pass.writes.push(FindingWrite {
            vendor_id: d.vendor_id,
            status: d.status,
            fingerprint: d.fingerprint,
            external_id,
        });
        self.queue_part_of(pass)
    }

    /// A large asset's writes go to the ledger in batches as they come,
    /// its document's fingerprint with the last one.
    fn queue_part_of(&mut self, pass: &mut Pass) -> Result<(), PublishError> {
        if pass.writes.len() < LEDGER_BATCH_FINDINGS {
            return Ok(());
        }
        let findings =
            std::mem::replace(&mut pass.writes, Vec::with_capacity(LEDGER_BATCH_FINDINGS));
        self.queue(AssetWrites {
            asset_id: pass.asset_id.clone(),
            findings,
            doc: None,
            gone: false,
        })
    }

    /// A known finding this run did not read: published FIXED when decided so.
    fn unseen(&mut self, pass: &mut Pass, d: Decision) -> Result<(), PublishError> {
        if !d.emit {
            return Ok(());
        }
        self.fixed(&d, pass.emit)?;
        pass.writes.push(FindingWrite {
            vendor_id: d.vendor_id,
            status: Status::Fixed,
            fingerprint: d.fingerprint,
            external_id: None,
        });
        self.queue_part_of(pass)
    }

    /// A FIXED finding into the current document (when it is published).
    fn fixed(&mut self, d: &Decision, emit: bool) -> Result<(), PublishError> {
        if emit {
            self.pending
                .finding(&fixed_finding(&d.vendor_id, d.known_external_id.as_deref()));
            self.count(Status::Fixed)?;
        }
        Ok(())
    }

    /// One finding published: counted, and the parts handed on when a batch is full.
    fn count(&mut self, status: Status) -> Result<(), PublishError> {
        *self
            .out
            .findings_by_status
            .entry(status.as_str())
            .or_default() += 1;
        self.out.findings += 1;
        if self.pending.bytes() >= SINK_BATCH_BYTES {
            self.send_documents()?;
        }
        Ok(())
    }

    /// The current document is complete.
    fn end_document(&mut self) -> Result<(), PublishError> {
        self.pending.end();
        if self.pending.bytes() >= SINK_BATCH_BYTES {
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
            PartBatch::with_capacity(64 << 10),
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
        let batch = LedgerBatch(std::mem::take(&mut self.batch));
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
pub fn document_fingerprint(
    asset_id: &str,
    json: Option<&[u8]>,
    findings: &[(String, u64)],
) -> u64 {
    let mut h = Xxh3::new();
    match json {
        Some(j) => {
            h.update(b"A");
            h.update(j);
        }
        None => {
            h.update(b"O");
            h.update(asset_id.as_bytes());
        }
    }
    for (vendor_id, fp) in findings {
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
        let json = Some(&b"{\"hostName\":\"h\"}"[..]);
        let fs = |a: u64, b: u64| vec![("f1".to_string(), a), ("f2".to_string(), b)];
        let base = document_fingerprint("a", json, &fs(1, 2));
        assert_eq!(base, document_fingerprint("a", json, &fs(1, 2)));
        assert_ne!(base, document_fingerprint("a", json, &fs(1, 3)));
        let mut one = fs(1, 2);
        one.pop();
        assert_ne!(base, document_fingerprint("a", json, &one));
        let other = Some(&b"{\"hostName\":\"g\"}"[..]);
        assert_ne!(base, document_fingerprint("a", other, &fs(1, 2)));
        assert_ne!(base, document_fingerprint("a", None, &fs(1, 2)));
        // Fingerprints persist in ledgers: the hash of a known input is fixed.
        assert_eq!(
            document_fingerprint("a", None, &[]),
            xxhash_rust::xxh3::xxh3_64(b"Oa")
        );
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
