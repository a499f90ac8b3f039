//! One sync run: plan → pull → publish → commit.
//!
//! ```text
//! pull:    fetch ─pages─▶ parse ×N ─records─▶ transform ×M ─etm records─▶ spill
//!                            └───────────── dead letters ─────────────▶ dead-letters.ndjson
//! publish: spill partitions ─▶ assemble (rayon) ─▶ merge ─▶ sink ─▶ rename into place
//! ```
//!
//! Fetch runs on tokio; the CPU stages are plain threads on bounded channels,
//! so a slow stage backs pressure up to fetch instead of growing memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stages::channel::{self, ChannelStats, Receiver, Sender};
use stages::dedupe::{self, Merge, SpillWriter};
use stages::fetch::{self, FetchError, FetchReport};
use stages::model::{DeadLetter, EtmRecord, OrcaRecord};
use stages::page::{Page, PageVerdict};
use stages::parse::{Parser, Repair};
use stages::secret::Secret;
use stages::sink::{DeadLetterWriter, NdjsonSink, Sink, SinkReport};
use stages::transform::{TransformStats, Transformer};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::manifest::{Counts, Manifest, RunStatus};
use crate::progress::Progress;
use crate::runtime::{spawn_worker, Failure, StageStats};

/// How a sync is driven (the CLI sets these; tests too).
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Draw a progress bar (terminal) or log progress lines.
    pub progress: crate::progress::Mode,
    /// Stop the run from outside (tests); SIGINT/SIGTERM also stop it when
    /// `handle_signals` is set.
    pub cancel: Option<CancellationToken>,
    pub handle_signals: bool,
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
            RunError::Io { .. } => 4,
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
}

/// Run one full sync.
pub fn sync(cfg: &Config, token: &Secret, opts: SyncOptions) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let run_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let map = cfg.transform_map()?;
    let transformer = Arc::new(
        Transformer::new(map, cfg.scoring.clone())
            .map_err(|e| RunError::TransformMap(e.to_string()))?,
    );

    let out_dir = cfg.output.dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    let work = cfg.run.work_dir.join(&run_id);
    let spill = SpillWriter::create(&work.join("spill"), cfg.dedupe.partitions).map_err(|e| {
        RunError::Io {
            path: work.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let dead_letters = DeadLetterWriter::create(&out_dir).map_err(io_err(&out_dir))?;
    tracing::info!(run_id, output = %out_dir.display(), "sync started");

    let pull = pull(cfg, token, &opts, transformer, spill, dead_letters);
    let mut status = RunStatus::Complete;
    let mut error = None;
    let fetch_report = match &pull.fetch {
        Ok(r) => {
            if !r.complete {
                status = RunStatus::Partial;
                let missing: Vec<String> = r
                    .incomplete()
                    .map(|q| match &q.error {
                        Some(e) => format!("{}: {e}", q.label),
                        None => format!(
                            "{}: read {} of {} items",
                            q.label,
                            q.unique_ids,
                            q.total_items.unwrap_or(0)
                        ),
                    })
                    .collect();
                error = Some(format!("incomplete queries: {}", missing.join("; ")));
            }
            Some(r.clone())
        }
        Err(FetchError::Cancelled) => {
            status = RunStatus::Partial;
            error = Some("interrupted: the run was stopped before it read everything".into());
            None
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
    let spilled = lock(&tallies.spill).take();
    let dlw = lock(&tallies.dead_letter_writer).take();

    let mut outputs: Vec<SinkReport> = Vec::new();
    let mut output = None;
    if status != RunStatus::Failed {
        match publish(cfg, &work, spilled, &mut counts) {
            Ok(report) => {
                output = Some(PathBuf::from(&report.location));
                outputs.push(report);
                if let Some(dlw) = dlw {
                    match dlw.commit() {
                        Ok(c) => counts.dead_letters_by_reason = c,
                        Err(e) => tracing::warn!("dead letters could not be saved: {e}"),
                    }
                }
            }
            Err(e) => {
                status = RunStatus::Failed;
                error = Some(format!("publish failed: {e}"));
            }
        }
    } else if let Some((_, s)) = spilled {
        counts.spill = s;
    }
    if counts.dead_letters_by_reason.is_empty() {
        counts.dead_letters_by_reason = lock(&tallies.dead_letters).clone();
    }
    counts.dead_letters = counts.dead_letters_by_reason.values().sum();
    let _ = std::fs::remove_dir_all(&work);

    let ended_at = chrono::Utc::now();
    let manifest = Manifest {
        run_id,
        connector: "orca-etm",
        connector_version: env!("CARGO_PKG_VERSION"),
        status,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ended_at: ended_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        error,
        counts,
        fetch: fetch_report,
        outputs,
        stages: pull.stages,
        channels: pull.channels,
    };
    let manifest_path = out_dir.join(crate::manifest::FILE_NAME);
    write_manifest(&manifest_path, &manifest)?;
    match manifest.status {
        RunStatus::Complete => tracing::info!(run_id = %manifest.run_id, "sync complete"),
        s => {
            tracing::warn!(run_id = %manifest.run_id, status = ?s, error = manifest.error.as_deref().unwrap_or(""), "sync not complete")
        }
    }
    Ok(RunOutcome {
        manifest,
        manifest_path,
        output,
    })
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
    tallies: Arc<Tallies>,
    stages: BTreeMap<&'static str, serde_json::Value>,
    channels: BTreeMap<&'static str, serde_json::Value>,
}

fn pull(
    cfg: &Config,
    token: &Secret,
    opts: &SyncOptions,
    transformer: Arc<Transformer>,
    spill: SpillWriter,
    dead_letters: DeadLetterWriter,
) -> Pulled {
    let tallies = Arc::new(Tallies::default());
    *lock(&tallies.dead_letter_writer) = Some(dead_letters);
    let failure = Failure::default();
    let cancel = opts.cancel.clone().unwrap_or_default();

    let (pages_tx, pages_rx) = channel::bounded::<Page>("pages", cfg.run.page_queue());
    let (rec_tx, rec_rx) = channel::bounded::<Vec<OrcaRecord>>("records", cfg.run.record_queue());
    let (etm_tx, etm_rx) =
        channel::bounded::<Vec<EtmRecord>>("etm_records", cfg.run.record_queue());
    let (dl_tx, dl_rx) = channel::bounded::<Vec<DeadLetter>>("dead_letters", 10_000);
    let channel_stats: Vec<Arc<ChannelStats>> = vec![
        pages_tx.stats().clone(),
        rec_tx.stats().clone(),
        etm_tx.stats().clone(),
        dl_tx.stats().clone(),
    ];

    let on_fail: Arc<dyn Fn() + Send + Sync> = {
        let cancel = cancel.clone();
        let (a, b, c, d) = (
            pages_rx.clone(),
            rec_rx.clone(),
            etm_rx.clone(),
            dl_rx.clone(),
        );
        Arc::new(move || {
            cancel.cancel();
            a.close();
            b.close();
            c.close();
            d.close();
        })
    };

    let parse_stats = StageStats::new("parse", cfg.run.parse_workers);
    let transform_stats = StageStats::new("transform", cfg.run.transform_workers);
    let spill_stats = StageStats::new("spill", 1);
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

    for i in 0..cfg.run.parse_workers {
        let (rx, tx, dl) = (pages_rx.clone(), rec_tx.clone(), dl_tx.clone());
        let (stats, tallies, progress) = (parse_stats.clone(), tallies.clone(), progress.clone());
        spawn(
            "parse",
            i,
            Box::new(move || parse_worker(rx, tx, dl, &stats, &tallies, &progress)),
        );
    }
    for i in 0..cfg.run.transform_workers {
        let (rx, tx, dl) = (rec_rx.clone(), etm_tx.clone(), dl_tx.clone());
        let (stats, tallies, t) = (
            transform_stats.clone(),
            tallies.clone(),
            transformer.clone(),
        );
        spawn(
            "transform",
            i,
            Box::new(move || transform_worker(rx, tx, dl, &t, &stats, &tallies)),
        );
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
        spawn(
            "dead_letters",
            0,
            Box::new(move || dead_letter_worker(rx, &tallies)),
        );
    }
    // Only workers hold channel ends from here on, so each stage ends when
    // the one before it has ended.
    drop((pages_rx, rec_tx, rec_rx, etm_tx, etm_rx, dl_tx, dl_rx));

    let fetch = run_fetch(cfg, token, opts, pages_tx, cancel);
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
        fetch::run(&cfg.orca, token, pages_tx, cancel).await
    })
}

async fn wait_for_signal() {
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

fn parse_worker(
    rx: Receiver<Page>,
    tx: Sender<Vec<OrcaRecord>>,
    dl: Sender<Vec<DeadLetter>>,
    stats: &StageStats,
    tallies: &Tallies,
    progress: &Progress,
) -> Result<(), String> {
    let mut parser = Parser::new();
    let mut repairs: BTreeMap<Repair, u64> = BTreeMap::new();
    while let Some(page) = rx.recv_blocking() {
        let t = Instant::now();
        let parsed = parser.parse(&page.query, page.offset, &page.body);
        let n_out = parsed.records.len() as u64;
        for (k, v) in &parsed.repairs {
            *repairs.entry(*k).or_default() += v;
        }
        if let PageVerdict::Read(s) = &parsed.verdict {
            progress.page(&page.query.label, page.query.label == page.query.model, s);
        }
        stats.record(1, page.body.len() as u64, n_out, t);
        if !parsed.records.is_empty() && tx.send_blocking(parsed.records).is_err() {
            break;
        }
        if !parsed.dead_letters.is_empty() && dl.send_blocking(parsed.dead_letters).is_err() {
            break;
        }
        // Fetch may have given up on this page (cancelled): nothing to tell.
        let _ = page.ack.send(parsed.verdict);
    }
    let mut total = lock(&tallies.repairs);
    for (k, v) in repairs {
        *total.entry(k).or_default() += v;
    }
    Ok(())
}

fn transform_worker(
    rx: Receiver<Vec<OrcaRecord>>,
    tx: Sender<Vec<EtmRecord>>,
    dl: Sender<Vec<DeadLetter>>,
    transformer: &Transformer,
    stats: &StageStats,
    tallies: &Tallies,
) -> Result<(), String> {
    let mut local = TransformStats::default();
    while let Some(batch) = rx.recv_blocking() {
        let t = Instant::now();
        let n_in = batch.len() as u64;
        let mut out = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for rec in &batch {
            match transformer.transform(rec, &mut local) {
                Ok(r) => out.push(r),
                Err(d) => dead.push(d),
            }
        }
        drop(batch);
        stats.record(n_in, 0, out.len() as u64, t);
        if !out.is_empty() && tx.send_blocking(out).is_err() {
            break;
        }
        if !dead.is_empty() && dl.send_blocking(dead).is_err() {
            break;
        }
    }
    lock(&tallies.transform).merge(&local);
    Ok(())
}

fn spill_worker(
    rx: Receiver<Vec<EtmRecord>>,
    mut spill: SpillWriter,
    stats: &StageStats,
    tallies: &Tallies,
) -> Result<(), String> {
    while let Some(batch) = rx.recv_blocking() {
        let t = Instant::now();
        for rec in &batch {
            spill.write(rec).map_err(|e| e.to_string())?;
        }
        stats.record(batch.len() as u64, 0, batch.len() as u64, t);
    }
    let done = spill.finish().map_err(|e| e.to_string())?;
    *lock(&tallies.spill) = Some(done);
    Ok(())
}

fn dead_letter_worker(rx: Receiver<Vec<DeadLetter>>, tallies: &Tallies) -> Result<(), String> {
    let mut writer = lock(&tallies.dead_letter_writer).take();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(batch) = rx.recv_blocking() {
        for d in &batch {
            *counts
                .entry(format!("{}:{}", d.stage, d.reason))
                .or_default() += 1;
            if let Some(w) = writer.as_mut() {
                w.write(d)
                    .map_err(|e| format!("dead-letters.ndjson: {e}"))?;
            }
        }
    }
    *lock(&tallies.dead_letters) = counts;
    *lock(&tallies.dead_letter_writer) = writer;
    Ok(())
}

/// Assemble the spilled partitions and stream the documents to the sink.
fn publish(
    cfg: &Config,
    work: &Path,
    spilled: Option<(Vec<PathBuf>, dedupe::SpillStats)>,
    counts: &mut Counts,
) -> Result<SinkReport, String> {
    let (parts, spill_stats) = spilled.ok_or("the spill stage left no partitions")?;
    counts.spill = spill_stats;
    let (runs, assembled) =
        dedupe::assemble_all(parts, &cfg.dedupe, &work.join("runs")).map_err(|e| e.to_string())?;
    counts.add_assembly(&assembled);
    let mut sink: Box<dyn Sink> =
        Box::new(NdjsonSink::create(&cfg.output.dir).map_err(|e| e.to_string())?);
    let mut merge = Merge::open(runs).map_err(|e| e.to_string())?;
    let mut doc = Vec::with_capacity(64 << 10);
    while let Some(asset) = merge.next_asset().map_err(|e| e.to_string())? {
        doc.clear();
        dedupe::render(&mut doc, &asset, |_| "NEW", &[]);
        *counts.findings_by_status.entry("NEW").or_default() += asset.findings.len() as u64;
        sink.write(asset.asset_id.as_bytes(), &doc)
            .map_err(|e| e.to_string())?;
    }
    merge.remove_files().map_err(|e| e.to_string())?;
    sink.commit().map_err(|e| e.to_string())
}
