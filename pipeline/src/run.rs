//! One sync run: plan → pull → publish → commit.
//!
//! ```text
//! pull:    fetch ─pages─▶ workers ×N (parse → transform) ─etm records─▶ spill
//!                            └──────── dead letters ────────▶ dead-letters.ndjson
//! publish: spill partitions ─▶ assemble (rayon) ─▶ merge ─▶ sink ─▶ rename into place
//! ```
//!
//! Fetch runs on tokio; the CPU stages are plain threads on bounded channels,
//! so a slow stage backs pressure up to fetch instead of growing memory.
//!
//! Parse and transform run chained in one worker per page: the parse leaves
//! the page on simd-json's tape, borrowing the page buffer, and the
//! transform reads each row where it lies. Handing parsed rows across a
//! channel would mean owned trees again (nine times the tape's parse time,
//! about ten times the page in memory). Each half still counts its own busy
//! time, so the manifest and metrics show parse and transform apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stages::channel::{self, ChannelStats, Receiver, Sender};
use stages::dedupe::{self, SpillWriter};
use stages::fetch::{self, FetchError, FetchReport};
use stages::model::{DeadLetter, EtmRecord, RecordKind};
use stages::page::{Page, PageVerdict};
use stages::parse::{Parser, Repair};
use stages::secret::Secret;
use stages::sink::DeadLetterWriter;
use stages::transform::{TransformStats, Transformer};
use tokio_util::sync::CancellationToken;

use stages::failpoint;
use stages::ledger::{FixPolicy, Ledger, LedgerError, RunRecord};

use crate::config::{Config, ConfigError};
use crate::manifest::{Counts, Manifest, RunStatus};
use crate::progress::Progress;
use crate::publish::{Settings, Unreadable};
use crate::runtime::{spawn_worker, Failure, StageStats};
use crate::telemetry::{self, RunMeter};
use stages::telemetry::Scope;

/// How a sync is driven (the CLI sets these; tests too).
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Draw a progress bar (terminal) or log progress lines.
    pub progress: crate::progress::Mode,
    /// Stop the run from outside (tests); SIGINT/SIGTERM also stop it when
    /// `handle_signals` is set.
    pub cancel: Option<CancellationToken>,
    pub handle_signals: bool,
    /// Delta output for this run (as the config's `delta`).
    pub delta: bool,
}

/// What a finished run tells its caller.
#[derive(Debug)]
pub struct RunOutcome {
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    /// The NDJSON file, when the run published.
    pub output: Option<PathBuf>,
}

/// A run that could not start: exit code 2 (config) or 4 (environment).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("transform map: {0}")]
    TransformMap(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) | RunError::TransformMap(_) => 2,
            RunError::Io { .. } | RunError::Ledger(_) => 4,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Counters the workers fill and the manifest reads.
#[derive(Default)]
struct Tallies {
    repairs: Mutex<BTreeMap<Repair, u64>>,
    transform: Mutex<TransformStats>,
    dead_letters: Mutex<BTreeMap<String, u64>>,
    spill: Mutex<Option<(Vec<PathBuf>, dedupe::SpillStats)>>,
    dead_letter_writer: Mutex<Option<DeadLetterWriter>>,
    unreadable: Mutex<Unreadable>,
}

/// The incomplete queries, those that failed alike named together, so one
/// cause met by every model is said once.
fn incomplete_reason(r: &FetchReport) -> String {
    let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
    for q in r.incomplete() {
        let reason = match &q.error {
            Some(e) => e.clone(),
            None => format!(
                "read {} of {} items",
                q.unique_ids,
                q.total_items.unwrap_or(0)
            ),
        };
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, labels)) => labels.push(&q.label),
            None => by_reason.push((reason, vec![&q.label])),
        }
    }
    by_reason
        .iter()
        .map(|(reason, labels)| format!("{}: {reason}", labels.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Run one full sync.
pub fn sync(cfg: &Config, token: &Secret, opts: SyncOptions) -> Result<RunOutcome, RunError> {
    let meter = RunMeter::start(cfg);
    let outcome = sync_metered(cfg, token, opts, &meter);
    meter.finish(&outcome);
    outcome
}

fn sync_metered(
    cfg: &Config,
    token: &Secret,
    opts: SyncOptions,
    meter: &RunMeter,
) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let run_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let started_text = started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let map = cfg.transform_map()?;
    let sinks = crate::sinks::plan(cfg)?;
    let transformer = Arc::new(
        Transformer::new(map, cfg.scoring.clone())
            .map_err(|e| RunError::TransformMap(e.to_string()))?,
    );

    // The ledger first: a second sync of this profile refuses here, before
    // it has touched anything of the running one.
    let mut ledger = Ledger::open(&cfg.ledger_path())?;
    let base_run = ledger.last_complete_run()?.map(|r| r.run_id);
    let delta = (cfg.delta || opts.delta) && base_run.is_some();
    ledger.begin_run(&run_id, &started_text)?;

    let out_dir = cfg.output.dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    // Holding the profile's lock, whatever a killed run of it left behind
    // is nobody's: its temporaries in the output folder, its spill files.
    let stale = stages::sink::atomic::remove_stale(&out_dir).map_err(io_err(&out_dir))?;
    let work_root = cfg.run.work_dir.join(&cfg.profile);
    if work_root.exists() {
        std::fs::remove_dir_all(&work_root).map_err(io_err(&work_root))?;
    }
    if stale > 0 {
        tracing::warn!(
            files = stale,
            "removed temporary files of an interrupted run"
        );
    }
    let work = work_root.join(&run_id);
    let spill = SpillWriter::create(&work.join("spill"), cfg.dedupe.partitions).map_err(|e| {
        RunError::Io {
            path: work.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let dead_letters = DeadLetterWriter::create(&out_dir).map_err(io_err(&out_dir))?;
    tracing::info!(run_id, profile = %cfg.profile, delta, output = %out_dir.display(), "sync started");
    failpoint::hit("sync.started");

    let pull = pull(cfg, token, &opts, meter, transformer, spill, dead_letters);
    let mut status = RunStatus::Complete;
    let mut error = None;
    let fetch_report = match &pull.fetch {
        Ok(r) if r.interrupted => {
            status = RunStatus::Partial;
            // The queries, not each of their partitions: the manifest has those.
            let cut: Vec<&str> = r
                .incomplete()
                .filter(|q| q.label == q.model)
                .map(|q| q.label.as_str())
                .collect();
            error =
                Some(format!(
                "interrupted: the run was stopped before it read everything (not read through: {})",
                if cut.is_empty() { "none".to_string() } else { cut.join(", ") }
            ));
            Some(r.clone())
        }
        Ok(r) => {
            if !r.complete {
                let why = incomplete_reason(r);
                if r.queries
                    .iter()
                    .all(|q| q.total_items.is_none() && q.pages == 0)
                {
                    // Not one query was read: publishing would put an empty
                    // output over the last good one.
                    status = RunStatus::Failed;
                    error = Some(format!("no query could be read: {why}"));
                } else {
                    status = RunStatus::Partial;
                    error = Some(format!("incomplete queries: {why}"));
                }
            }
            Some(r.clone())
        }
        Err(e) => {
            status = RunStatus::Failed;
            error = Some(e.to_string());
            None
        }
    };
    if let Some(f) = &pull.failure {
        status = RunStatus::Failed;
        error = Some(f.clone());
    }
    if let Some((stage, reason)) = pull.failure_origin {
        meter.stage_error(stage, reason);
    }

    let mut counts = Counts::default();
    let tallies = &pull.tallies;
    counts.repairs = lock(&tallies.repairs)
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    counts.transform = lock(&tallies.transform)
        .iter()
        .filter(|(_, v)| *v > 0)
        .collect();
    counts.dead_letters_by_reason = lock(&tallies.dead_letters).clone();
    counts.dead_letters = counts.dead_letters_by_reason.values().sum();
    let spilled = lock(&tallies.spill).take();
    let dlw = lock(&tallies.dead_letter_writer).take();
    let unreadable = std::mem::take(&mut *lock(&tallies.unreadable));
    let kinds = cfg.kinds();
    // A run that did not ask for findings read none of them: that is no
    // evidence that any is fixed.
    let withheld = match unreadable.withholds_fixing() {
        None if !kinds.findings => Some(
            "findings_types leaves out vulnerabilities: no finding is marked FIXED".to_string(),
        ),
        w => w,
    };
    let policy = FixPolicy {
        preserve_missing: cfg.preserve_missing,
        run_complete: status == RunStatus::Complete && withheld.is_none(),
    };

    let mut manifest = Manifest {
        run_id: run_id.clone(),
        connector: "orca-etm",
        connector_version: env!("CARGO_PKG_VERSION"),
        profile: cfg.profile.clone(),
        status,
        started_at: started_text.clone(),
        ended_at: String::new(),
        duration_seconds: 0.0,
        error,
        delta,
        base_run: if delta { base_run } else { None },
        output_run_id: None,
        fixing: fixing_note(status, cfg.preserve_missing, withheld.as_deref()),
        counts,
        fetch: fetch_report,
        outputs: Vec::new(),
        failed_sinks: Vec::new(),
        stages: pull.stages,
        channels: pull.channels,
    };
    let manifest_path = out_dir.join(crate::manifest::FILE_NAME);
    let mut output = None;
    // Set once the ledger holds this run's end (a committed publish).
    let mut recorded = false;

    let withheld_partial = manifest.status == RunStatus::Partial && !cfg.publish_partial;
    if withheld_partial {
        tracing::warn!("publish_partial = false: a partial run publishes nothing; the previous output stays in place");
    }
    if manifest.status != RunStatus::Failed && !withheld_partial {
        match (spilled, crate::sinks::open(&sinks, &out_dir, meter.scope())) {
            (None, _) => {
                manifest.status = RunStatus::Failed;
                manifest.error = Some("the spill stage left no partitions".into());
            }
            (_, Err(e)) => {
                manifest.status = RunStatus::Failed;
                manifest.error = Some(format!("cannot open the output: {e}"));
            }
            (Some(spilled), Ok(sinks)) => {
                let published = crate::publish::publish(
                    &work,
                    &cfg.dedupe,
                    spilled,
                    sinks,
                    &mut ledger,
                    &run_id,
                    Settings {
                        policy,
                        delta,
                        assets_complete: status == RunStatus::Complete && kinds.assets,
                    },
                    &unreadable,
                    meter,
                    |p| {
                        failpoint::hit("publish.sinks_committed");
                        if let Some(dlw) = dlw {
                            if let Err(e) = dlw.commit() {
                                tracing::warn!("dead letters could not be saved: {e}");
                            }
                        }
                        fill_published(&mut manifest, p);
                        if !p.failed_sinks.is_empty() {
                            manifest.status = RunStatus::Failed;
                            manifest.error =
                                Some(format!("sink failed: {}", p.failed_sinks.join("; ")));
                        }
                        end_manifest(&mut manifest, started);
                        write_manifest(&manifest_path, &manifest).map_err(|e| e.to_string())?;
                        failpoint::hit("publish.manifest_written");
                        Ok(run_record(&manifest))
                    },
                );
                match published {
                    Ok(p) => {
                        output = p
                            .reports
                            .iter()
                            .find(|r| r.sink == "ndjson")
                            .map(|r| PathBuf::from(&r.location));
                        recorded = p.failed_sinks.is_empty();
                    }
                    Err(e) => {
                        manifest.status = RunStatus::Failed;
                        manifest.error = Some(format!("publish failed: {e}"));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    // Only if empty: another run's spill is never touched.
    let _ = std::fs::remove_dir(&work_root);
    let _ = std::fs::remove_dir(&cfg.run.work_dir);
    if !recorded {
        if manifest.outputs.is_empty() {
            manifest.output_run_id = crate::manifest::output_run_of(&manifest_path);
        }
        end_manifest(&mut manifest, started);
        ledger.record_run(&run_record(&manifest))?;
        write_manifest(&manifest_path, &manifest)?;
    }
    match manifest.status {
        RunStatus::Complete => tracing::info!(run_id = %manifest.run_id, "sync complete"),
        s => {
            tracing::warn!(run_id = %manifest.run_id, status = s.as_str(), error = manifest.error.as_deref().unwrap_or(""), "sync not complete")
        }
    }
    Ok(RunOutcome {
        manifest,
        manifest_path,
        output,
    })
}

/// Why this run fixes nothing, when it fixes nothing.
fn fixing_note(
    status: RunStatus,
    preserve_missing: bool,
    withheld: Option<&str>,
) -> Option<String> {
    match (status, withheld) {
        (RunStatus::Complete, None) if preserve_missing => {
            Some("preserve_missing: findings absent from this run keep their status".into())
        }
        (RunStatus::Complete, None) => None,
        (RunStatus::Complete, Some(w)) => Some(w.into()),
        _ => Some("the run did not read everything: no finding is marked FIXED".into()),
    }
}

fn fill_published(m: &mut Manifest, p: &crate::publish::Published) {
    m.counts.add_assembly(&p.assembled);
    m.counts.spill = p.spill.clone();
    m.counts.assets = p.documents;
    m.counts.findings = p.findings;
    m.counts.findings_by_status = p.findings_by_status.clone();
    m.counts.orphan_assets = p.orphan_documents;
    m.counts.unchanged_assets = p.unchanged_assets;
    m.counts.gone_assets = p.gone_assets;
    m.outputs = p.reports.clone();
    m.failed_sinks = p.failed_sinks.clone();
    m.output_run_id = Some(m.run_id.clone());
    m.stages
        .extend(p.stages.iter().map(|(k, v)| (*k, v.clone())));
    m.channels
        .extend(p.channels.iter().map(|(k, v)| (*k, v.clone())));
}

fn end_manifest(m: &mut Manifest, started: Instant) {
    m.ended_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    m.duration_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
}

/// The ledger's record of a run, from its manifest.
fn run_record(m: &Manifest) -> RunRecord {
    let mut r = RunRecord::new(&m.run_id, m.status.as_str(), &m.started_at);
    r.ended_at = Some(m.ended_at.clone());
    r.duration_seconds = Some(m.duration_seconds);
    r.assets = m.counts.assets;
    r.findings_by_status = m
        .counts
        .findings_by_status
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    r.dead_letters = m.counts.dead_letters;
    let queries: Vec<serde_json::Value> = m
        .fetch
        .iter()
        .flat_map(|f| f.queries.iter())
        .filter(|q| q.label == q.model)
        .map(|q| {
            serde_json::json!({
                "query": q.label,
                "total_items": q.total_items,
                "unique_ids": q.unique_ids,
                "complete": q.complete,
            })
        })
        .collect();
    r.details = serde_json::json!({
        "queries": queries,
        "delta": m.delta,
        "error": m.error,
        "fixing": m.fixing,
    });
    r
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A worker that panicked while holding a tally only loses that tally's
    // last update; the run's failure is reported through `Failure`.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_manifest(path: &Path, m: &Manifest) -> Result<(), RunError> {
    let mut text = serde_json::to_vec_pretty(m).map_err(|e| RunError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    text.push(b'\n');
    let mut f = stages::sink::atomic::AtomicFile::create(path).map_err(io_err(path))?;
    f.write_all(&text).map_err(io_err(path))?;
    f.commit().map_err(io_err(path))?;
    Ok(())
}

/// What the pull phase leaves for publishing.
struct Pulled {
    fetch: Result<FetchReport, FetchError>,
    failure: Option<String>,
    failure_origin: Option<(&'static str, &'static str)>,
    tallies: Arc<Tallies>,
    stages: BTreeMap<&'static str, serde_json::Value>,
    channels: BTreeMap<&'static str, serde_json::Value>,
}

fn pull(
    cfg: &Config,
    token: &Secret,
    opts: &SyncOptions,
    meter: &RunMeter,
    transformer: Arc<Transformer>,
    spill: SpillWriter,
    dead_letters: DeadLetterWriter,
) -> Pulled {
    let tallies = Arc::new(Tallies::default());
    *lock(&tallies.dead_letter_writer) = Some(dead_letters);
    let failure = Failure::default();
    let cancel = opts.cancel.clone().unwrap_or_default();

    let (pages_tx, pages_rx) = channel::bounded::<Page>("pages", cfg.run.page_queue());
    let (etm_tx, etm_rx) =
        channel::bounded::<Vec<EtmRecord>>("etm_records", cfg.run.record_queue());
    let (dl_tx, dl_rx) = channel::bounded::<Vec<DeadLetter>>("dead_letters", 10_000);
    let channel_stats: Vec<Arc<ChannelStats>> = vec![
        pages_tx.stats().clone(),
        etm_tx.stats().clone(),
        dl_tx.stats().clone(),
    ];
    for c in &channel_stats {
        meter.channel(c);
    }

    let on_fail: Arc<dyn Fn() + Send + Sync> = {
        let cancel = cancel.clone();
        let (a, c, d) = (pages_rx.clone(), etm_rx.clone(), dl_rx.clone());
        Arc::new(move || {
            cancel.cancel();
            a.close();
            c.close();
            d.close();
        })
    };

    let parse_stats = StageStats::new("parse", cfg.run.workers);
    let transform_stats = StageStats::new("transform", cfg.run.workers);
    let spill_stats = StageStats::new("spill", 1);
    for s in [&parse_stats, &transform_stats, &spill_stats] {
        meter.stage(s);
    }
    let progress = Progress::start(
        opts.progress,
        cfg.orca.page_size,
        cfg.orca.requests_per_second,
    );

    let mut handles = Vec::new();
    let mut spawn =
        |stage, i, body: Box<dyn FnOnce() -> Result<(), String> + Send>| match spawn_worker(
            stage,
            i,
            failure.clone(),
            on_fail.clone(),
            body,
        ) {
            Ok(h) => handles.push(h),
            Err(e) => {
                failure.set(format!("cannot start stage {stage}: {e}"));
                on_fail();
            }
        };

    for i in 0..cfg.run.workers {
        let w = Worker {
            pages: pages_rx.clone(),
            records: etm_tx.clone(),
            dead_letters: dl_tx.clone(),
            transformer: transformer.clone(),
            parse: parse_stats.clone(),
            transform: transform_stats.clone(),
            tallies: tallies.clone(),
            progress: progress.clone(),
            scope: meter.scope().clone(),
        };
        spawn("parse+transform", i, Box::new(move || w.run()));
    }
    {
        let (rx, stats, tallies) = (etm_rx.clone(), spill_stats.clone(), tallies.clone());
        spawn(
            "spill",
            0,
            Box::new(move || spill_worker(rx, spill, &stats, &tallies)),
        );
    }
    {
        let (rx, tallies) = (dl_rx.clone(), tallies.clone());
        let scope = meter.scope().clone();
        spawn(
            "dead_letters",
            0,
            Box::new(move || dead_letter_worker(rx, &tallies, &scope)),
        );
    }
    // Only workers hold channel ends from here on, so each stage ends when
    // the one before it has ended.
    drop((pages_rx, etm_tx, etm_rx, dl_tx, dl_rx));

    let fetch = run_fetch(cfg, token, opts, meter.scope(), pages_tx, cancel);
    for h in handles {
        let _ = h.join();
    }
    progress.finish();

    let mut stages = BTreeMap::new();
    for s in [&parse_stats, &transform_stats, &spill_stats] {
        stages.insert(s.name, s.snapshot());
    }
    let channels = channel_stats
        .iter()
        .map(|c| {
            (
                c.name,
                serde_json::json!({
                    "capacity": c.capacity,
                    "sent_items": c.sent_items(),
                    "sent_batches": c.sent_batches(),
                    "blocked_seconds": (c.blocked_seconds() * 1000.0).round() / 1000.0,
                }),
            )
        })
        .collect();
    Pulled {
        fetch,
        failure: failure.get(),
        failure_origin: failure.origin(),
        tallies,
        stages,
        channels,
    }
}

/// Fetch on a tokio runtime of its own; SIGINT/SIGTERM cancel it.
fn run_fetch(
    cfg: &Config,
    token: &Secret,
    opts: &SyncOptions,
    scope: &Scope,
    pages_tx: Sender<Page>,
    cancel: CancellationToken,
) -> Result<FetchReport, FetchError> {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fetch")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Err(FetchError::Config(format!(
                "cannot start the I/O runtime: {e}"
            )))
        }
    };
    rt.block_on(async {
        if opts.handle_signals {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::warn!("signal received: stopping the fetch, publishing what was read as a partial run");
                cancel.cancel();
            });
        }
        let fetch_opts = fetch::RunOptions {
            kinds: cfg.kinds(),
            scope: scope.clone(),
            now_ms: None,
        };
        fetch::run_with(&cfg.orca, token, pages_tx, cancel, fetch_opts).await
    })
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One CPU worker: parses a page, answers fetch, transforms the page's rows.
struct Worker {
    pages: Receiver<Page>,
    records: Sender<Vec<EtmRecord>>,
    dead_letters: Sender<Vec<DeadLetter>>,
    transformer: Arc<Transformer>,
    parse: Arc<StageStats>,
    transform: Arc<StageStats>,
    tallies: Arc<Tallies>,
    progress: Progress,
    scope: Scope,
}

/// How often a worker's running tallies reach the metrics.
const TALLY_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Worker {
    fn run(self) -> Result<(), String> {
        let mut parser = Parser::new();
        let mut repairs: BTreeMap<Repair, u64> = BTreeMap::new();
        let mut stats = TransformStats::default();
        // What of `stats` the metrics have seen: reported about once a
        // second, not per record.
        let mut reported = TransformStats::default();
        let mut last_report = Instant::now();
        while let Some(page) = self.pages.recv_blocking() {
            let t = Instant::now();
            let mut parsed = parser.parse(&page.query, page.offset, &page.body);
            for (k, v) in &parsed.repairs {
                *repairs.entry(*k).or_default() += v;
                telemetry::repaired(&self.scope, k.as_str(), *v);
            }
            let rows = match &parsed.verdict {
                PageVerdict::Read(s) => {
                    let q = &page.query;
                    self.progress.page(&q.label, q.label == q.model, s);
                    (s.rows - s.dead_letters) as u64
                }
                _ => 0,
            };
            self.parse.record(1, page.body.len() as u64, rows, t);
            failpoint::hit("parse.page");
            // Fetch learns how the page read (and asks for the next one)
            // while its rows are transformed.
            let _ = page.ack.send(parsed.verdict.clone());

            let t = Instant::now();
            let mut dead = std::mem::take(&mut parsed.dead_letters);
            let mut out = Vec::with_capacity(rows as usize);
            let (q, offset, kind) = (&page.query, page.offset, page.query.kind);
            let mut bytes_out = 0u64;
            parsed.for_each_row_marked(|row, replaced| {
                match self
                    .transformer
                    .transform_marked(kind, row, replaced, q, offset, &mut stats)
                {
                    Ok(r) => {
                        bytes_out += match &r {
                            EtmRecord::Asset(a) => a.json.len(),
                            EtmRecord::Finding(f) => f.json.len(),
                        } as u64;
                        out.push(r)
                    }
                    Err(d) => dead.push(*d),
                }
            });
            self.transform.record(rows, 0, out.len() as u64, t);
            self.transform.add_bytes_out(bytes_out);
            if last_report.elapsed() >= TALLY_REPORT_EVERY {
                telemetry::transform_deltas(&self.scope, &stats, &mut reported);
                last_report = Instant::now();
            }
            if !out.is_empty() && self.records.send_blocking(out).is_err() {
                break;
            }
            if !dead.is_empty() && self.dead_letters.send_blocking(dead).is_err() {
                break;
            }
        }
        let mut total = lock(&self.tallies.repairs);
        for (k, v) in repairs {
            *total.entry(k).or_default() += v;
        }
        drop(total);
        telemetry::transform_deltas(&self.scope, &stats, &mut reported);
        lock(&self.tallies.transform).merge(&stats);
        Ok(())
    }
}

fn spill_worker(
    rx: Receiver<Vec<EtmRecord>>,
    mut spill: SpillWriter,
    stats: &StageStats,
    tallies: &Tallies,
) -> Result<(), String> {
    while let Some(batch) = rx.recv_blocking() {
        let t = Instant::now();
        let before = spill.stats().bytes;
        for rec in &batch {
            spill.write(rec).map_err(|e| e.to_string())?;
        }
        failpoint::hit("spill.batch");
        stats.record(batch.len() as u64, 0, batch.len() as u64, t);
        stats.add_bytes_out(spill.stats().bytes - before);
    }
    let done = spill.finish().map_err(|e| e.to_string())?;
    *lock(&tallies.spill) = Some(done);
    Ok(())
}

fn dead_letter_worker(
    rx: Receiver<Vec<DeadLetter>>,
    tallies: &Tallies,
    scope: &Scope,
) -> Result<(), String> {
    let mut writer = lock(&tallies.dead_letter_writer).take();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut unreadable = Unreadable::default();
    while let Some(batch) = rx.recv_blocking() {
        let mut in_batch: BTreeMap<(&'static str, &str), u64> = BTreeMap::new();
        for d in &batch {
            *in_batch.entry((d.stage, d.reason.as_str())).or_default() += 1;
        }
        telemetry::dead_letters(scope, &in_batch);
        for d in &batch {
            *counts
                .entry(format!("{}:{}", d.stage, d.reason))
                .or_default() += 1;
            if d.record == RecordKind::Finding.as_str() {
                unreadable.add(d.id.as_deref());
            }
            if let Some(w) = writer.as_mut() {
                w.write(d)
                    .map_err(|e| format!("dead-letters.ndjson: {e}"))?;
            }
        }
    }
    *lock(&tallies.dead_letters) = counts;
    *lock(&tallies.dead_letter_writer) = writer;
    *lock(&tallies.unreadable) = unreadable;
    Ok(())
}
