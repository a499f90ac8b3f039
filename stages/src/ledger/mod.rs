//! The ledger: the connector's memory across runs (project issue 4).
//!
//! One SQLite file per connector profile holds, per finding key
//! (`externalAssetId`, `vendorId`), its last status, a fingerprint of its
//! content and the runs that first and last saw it; per asset, the
//! fingerprint of its last published document; per run, its status, times,
//! counts and the queries' completeness.
//!
//! A run drives it like this (`sync` in `stages/tests/ledger_runs.rs` is
//! the reference driver):
//!
//! 1. [`Ledger::open`] takes the one-writer lock and marks runs left
//!    `processing` by a dead process as `failed` (`details.interrupted`).
//! 2. [`Ledger::begin_run`] records the run as `processing`, committed at
//!    once, so a crash leaves a visible trace.
//! 3. At publish, [`Ledger::known_findings`] (and [`Ledger::known_assets`])
//!    stream the previous state sorted by key from their own read snapshot,
//!    while [`Ledger::start_commit`]'s [`RunWriter`] writes the new state in
//!    the run's single write transaction. [`join`] groups the known stream
//!    by asset and applies the [`status`] rules.
//! 4. Once every sink acknowledged the output, [`RunWriter::finish`] writes
//!    the run row and commits. Anything short of that, a crash, an error, a
//!    dropped writer, leaves the ledger as it was before the run.
//!
//! Configuration (the ledger's path, `preserve_missing`) belongs to the
//! caller; this module holds runtime state only.

pub mod join;
mod lock;
mod migrate;
pub mod reader;
pub mod schema;
pub mod status;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

pub use join::{decide_asset, Decision, KnownByAsset};
pub use reader::{KnownAssets, KnownFindings, LedgerReader};
pub use schema::SCHEMA_VERSION;
pub use status::{
    status_missing, status_seen, status_unreadable, FixPolicy, MissingOutcome, Status,
};
pub use writer::RunWriter;

/// The statuses a run can have.
pub mod run_status {
    /// Begun, not yet ended (or ended by a crash, until the next open).
    pub const PROCESSING: &str = "processing";
    /// Every query read to the end and every sink acknowledged.
    pub const COMPLETE: &str = "complete";
    /// Some query was not read to the end: published what it read, fixed nothing.
    pub const PARTIAL: &str = "partial";
    /// Ended without publishing, or interrupted.
    pub const FAILED: &str = "failed";
}

/// A finding as the ledger knows it from earlier runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub asset_id: String,
    pub vendor_id: String,
    pub status: Status,
    pub fingerprint: u64,
    /// The `externalFindingId` it was last published with, when known.
    pub external_id: Option<String>,
    pub first_seen_run: String,
    pub last_seen_run: String,
}

/// One run, as `orca-etm runs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// One of [`run_status`].
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Asset documents published.
    pub assets: u64,
    /// Findings published, by status name (`NEW`, `ACTIVE`, …).
    pub findings_by_status: BTreeMap<String, u64>,
    pub dead_letters: u64,
    /// Everything else: the queries' `total_items` against rows read, and
    /// `interrupted` for a run a crash ended.
    pub details: serde_json::Value,
}

impl RunRecord {
    /// A run with the given status and nothing counted yet.
    pub fn new(run_id: &str, status: &str, started_at: &str) -> RunRecord {
        RunRecord {
            run_id: run_id.to_owned(),
            status: status.to_owned(),
            started_at: started_at.to_owned(),
            ended_at: None,
            duration_seconds: None,
            assets: 0,
            findings_by_status: BTreeMap::new(),
            dead_letters: 0,
            details: serde_json::Value::Object(Default::default()),
        }
    }
}

/// Errors of the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: another sync is running on this ledger")]
    Busy { path: PathBuf },
    #[error("ledger {path} does not exist: no sync has run for this profile yet")]
    NotFound { path: PathBuf },
    #[error("ledger file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger {path} has schema version {found}, newer than this build's {supported}: use a newer orca-etm")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("ledger {path} has schema version {found}, this build reads {supported}: a sync with this build migrates it")]
    SchemaOutdated {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("run {run_id} is already in the ledger")]
    RunExists { run_id: String },
    #[error("run {run_id} was not begun (begin_run first)")]
    RunNotBegun { run_id: String },
    #[error("run {expected} was finished with the record of run {got}")]
    RunMismatch { expected: String, got: String },
    #[error("run status {0:?} cannot end a run: complete, partial or failed")]
    InvalidRunStatus(String),
    #[error("run {run_id} is {status} but wrote {fixed} FIXED findings and {gone} gone assets: only a complete run may fix anything; nothing was committed")]
    FixedByIncompleteRun {
        run_id: String,
        status: String,
        fixed: u64,
        gone: u64,
    },
    #[error(
        "{what} out of order: {next:?} after {previous:?} (the join needs bytewise sorted input)"
    )]
    OutOfOrder {
        what: &'static str,
        previous: String,
        next: String,
    },
    #[error("ledger row is corrupt: {0}")]
    Corrupt(String),
    #[error("run record JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl LedgerError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
        move |source| LedgerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The ledger of one connector profile, open for a run: holds the
/// one-writer lock until dropped.
#[derive(Debug)]
pub struct Ledger {
    // Declared before the lock so the database is closed before the lock is
    // released.
    conn: Connection,
    path: PathBuf,
    _lock: lock::WriterLock,
}

impl Ledger {
    /// Open (creating it and its folder if needed) the ledger at `path`,
    /// migrate it to [`SCHEMA_VERSION`], and take the one-writer lock on
    /// `<path>.lock`: [`LedgerError::Busy`] at once if another process, or
    /// another `Ledger` of this process, has it open.
    ///
    /// Runs still `processing` are left over from a process that died
    /// mid-run (the lock proves no one else is running): they become
    /// `failed` with `details.interrupted = true`. `failed` rather than a
    /// fifth status so `runs` consumers see the documented four.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(LedgerError::io(dir))?;
        }
        let lock = lock::WriterLock::acquire(path)?;
        let mut conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "ledger is not in WAL mode");
        }
        conn.execute_batch(schema::WRITER_PRAGMAS)?;
        migrate::migrate(&mut conn, path)?;
        let stale = conn.execute(
            "UPDATE runs SET status = 'failed',
                 details = json_set(details, '$.interrupted', json('true'))
             WHERE status = 'processing'",
            [],
        )?;
        if stale > 0 {
            tracing::warn!(path = %path.display(), runs = stale, "ledger: runs interrupted by a crash marked failed");
        }
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Open the ledger at `path` to read its runs, without the lock (for
    /// `orca-etm runs`, also while a sync is running).
    pub fn open_read_only(path: &Path) -> Result<LedgerReader, LedgerError> {
        LedgerReader::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
        reader::runs(&self.conn, limit)
    }

    /// The newest `complete` run, the base of delta output.
    pub fn last_complete_run(&self) -> Result<Option<RunRecord>, LedgerError> {
        reader::last_complete_run(&self.conn)
    }

    /// Record run `run_id` as `processing`, committed at once.
    pub fn begin_run(&mut self, run_id: &str, started_at: &str) -> Result<(), LedgerError> {
        let exists: Option<i64> = self
            .conn
            .query_row("SELECT seq FROM runs WHERE run_id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(LedgerError::RunExists {
                run_id: run_id.to_owned(),
            });
        }
        self.conn.execute(
            "INSERT INTO runs (run_id, status, started_at) VALUES (?1, 'processing', ?2)",
            [run_id, started_at],
        )?;
        Ok(())
    }

    /// The known findings sorted by (`asset_id`, `vendor_id`) bytewise,
    /// streamed in batches from a read snapshot taken now: nothing this run
    /// writes is visible to it, whenever it is read.
    ///
    /// The stream owns its own connection, so it can be read while a
    /// [`RunWriter`] of this ledger writes.
    pub fn known_findings(&self) -> Result<KnownFindings, LedgerError> {
        KnownFindings::open(&self.path)
    }

    /// The assets with a recorded document, sorted by `asset_id` bytewise,
    /// with their document fingerprint; same snapshot rules as
    /// [`Ledger::known_findings`].
    pub fn known_assets(&self) -> Result<KnownAssets, LedgerError> {
        KnownAssets::open(&self.path)
    }

    /// Open the run's one write transaction. Nothing it writes is visible to
    /// anyone, nor kept, until [`RunWriter::finish`].
    pub fn start_commit(&mut self, run_id: &str) -> Result<RunWriter<'_>, LedgerError> {
        RunWriter::start(&mut self.conn, run_id)
    }

    /// End a run that commits no finding (it failed before publishing, or
    /// its sinks did not acknowledge): writes only its run row.
    pub fn record_run(&mut self, run: &RunRecord) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        writer::write_run_row(&tx, run)?;
        tx.commit()?;
        Ok(())
    }
}

/// Open a connection that only reads, failing clearly if there is no ledger.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    if !path.exists() {
        return Err(LedgerError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(schema::READER_PRAGMAS)?;
    let found = migrate::version(&conn)?;
    if found != SCHEMA_VERSION {
        let path = path.to_path_buf();
        let supported = SCHEMA_VERSION;
        return Err(if found > SCHEMA_VERSION {
            LedgerError::SchemaTooNew {
                path,
                found,
                supported,
            }
        } else {
            LedgerError::SchemaOutdated {
                path,
                found,
                supported,
            }
        });
    }
    Ok(conn)
}
