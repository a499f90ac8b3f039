//! The run's one write transaction.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{run_status, LedgerError, RunRecord, Status};

// A finding seen again moves `last_seen`; one being fixed keeps the run
// that last saw it. `first_seen` is only ever set on insert, so a reopened
// finding keeps its first sighting.
// The external id is given when the caller knows it (a finding seen this
// run) and kept otherwise (one being fixed).
const UPSERT_FINDING: &str = "
INSERT INTO findings (asset, vendor_id, status, fingerprint, first_seen, last_seen, external_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
ON CONFLICT (asset, vendor_id) DO UPDATE SET
    status = excluded.status,
    fingerprint = excluded.fingerprint,
    last_seen = CASE WHEN excluded.status = 3 THEN findings.last_seen ELSE excluded.last_seen END,
    external_id = COALESCE(excluded.external_id, findings.external_id)";
const FIND_EXTERNAL: &str = "SELECT id FROM external_ids WHERE value = ?1";
const INSERT_EXTERNAL: &str = "INSERT INTO external_ids (value) VALUES (?1)";
/// External ids remembered by a writer; past this the cache starts afresh
/// (CVE ids number in the hundreds of thousands at most, so it rarely does).
const EXTERNAL_CACHE: usize = 200_000;

const FIND_ASSET: &str = "SELECT id FROM assets WHERE asset_id = ?1";
const INSERT_ASSET: &str = "INSERT INTO assets (asset_id) VALUES (?1)";
const SET_DOC: &str = "UPDATE assets SET doc_fingerprint = ?2 WHERE id = ?1";
const ASSET_GONE: &str = "UPDATE assets SET doc_fingerprint = NULL WHERE asset_id = ?1";

/// Writes one run's statuses and asset fingerprints in one transaction;
/// from [`super::Ledger::start_commit`].
///
/// Dropping it without [`RunWriter::finish`] rolls everything back: the
/// ledger stays exactly as it was before the run (the run's `processing`
/// row aside, which the next open reports as interrupted).
///
/// Calls in (`asset_id`, `vendor_id`) order are the fast path (the asset id
/// is interned once per asset, and inserts append to the B-tree), but any
/// order is correct.
#[derive(Debug)]
pub struct RunWriter<'a> {
    tx: Transaction<'a>,
    run_id: String,
    run_seq: i64,
    /// The asset of the previous call and its interned id.
    current: Option<(String, i64)>,
    /// Interned external ids (`externalFindingId` → key).
    externals: std::collections::HashMap<String, i64>,
    fixed: u64,
    gone: u64,
}

impl<'a> RunWriter<'a> {
    pub(crate) fn start(
        conn: &'a mut Connection,
        run_id: &str,
    ) -> Result<RunWriter<'a>, LedgerError> {
        // IMMEDIATE: take SQLite's write lock now, not at the first write.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let run_seq: Option<i64> = tx
            .query_row("SELECT seq FROM runs WHERE run_id = ?1", [run_id], |r| {
                r.get(0)
            })
            .optional()?;
        let run_seq = run_seq.ok_or_else(|| LedgerError::RunNotBegun {
            run_id: run_id.to_owned(),
        })?;
        Ok(RunWriter {
            tx,
            run_id: run_id.to_owned(),
            run_seq,
            current: None,
            externals: std::collections::HashMap::new(),
            fixed: 0,
            gone: 0,
        })
    }

    /// The interned id of `asset_id`, created if new.
    fn asset_key(&mut self, asset_id: &str) -> Result<i64, LedgerError> {
        if let Some((id, key)) = &self.current {
            if id == asset_id {
                return Ok(*key);
            }
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached(FIND_ASSET)?
            .query_row([asset_id], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(k) => k,
            None => {
                self.tx.prepare_cached(INSERT_ASSET)?.execute([asset_id])?;
                self.tx.last_insert_rowid()
            }
        };
        self.current = Some((asset_id.to_owned(), key));
        Ok(key)
    }

    /// The interned key of an external id, created if new.
    fn external_key(&mut self, value: &str) -> Result<i64, LedgerError> {
        if let Some(k) = self.externals.get(value) {
            return Ok(*k);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached(FIND_EXTERNAL)?
            .query_row([value], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(k) => k,
            None => {
                self.tx.prepare_cached(INSERT_EXTERNAL)?.execute([value])?;
                self.tx.last_insert_rowid()
            }
        };
        if self.externals.len() >= EXTERNAL_CACHE {
            self.externals.clear();
        }
        self.externals.insert(value.to_owned(), key);
        Ok(key)
    }

    /// Record `status` and `fingerprint` for the finding: call it for every
    /// finding the run published (seen, or being fixed), and for no other.
    /// Findings kept as they were need no call.
    pub fn finding(
        &mut self,
        asset_id: &str,
        vendor_id: &str,
        status: Status,
        fingerprint: u64,
    ) -> Result<(), LedgerError> {
        self.finding_with_external_id(asset_id, vendor_id, status, fingerprint, None)
    }

    /// [`RunWriter::finding`], also recording the `externalFindingId` the
    /// finding was published with (`None` keeps the one recorded before).
    pub fn finding_with_external_id(
        &mut self,
        asset_id: &str,
        vendor_id: &str,
        status: Status,
        fingerprint: u64,
        external_id: Option<&str>,
    ) -> Result<(), LedgerError> {
        let asset = self.asset_key(asset_id)?;
        let external = match external_id {
            Some(e) => Some(self.external_key(e)?),
            None => None,
        };
        self.tx
            .prepare_cached(UPSERT_FINDING)?
            .execute(rusqlite::params![
                asset,
                vendor_id,
                status.code(),
                // The same 64 bits as SQLite's signed integer.
                fingerprint as i64,
                self.run_seq,
                external,
            ])?;
        if status == Status::Fixed {
            self.fixed += 1;
        }
        Ok(())
    }

    /// Record the fingerprint of the asset's published document.
    pub fn asset(&mut self, asset_id: &str, doc_fingerprint: u64) -> Result<(), LedgerError> {
        let asset = self.asset_key(asset_id)?;
        self.tx
            .prepare_cached(SET_DOC)?
            .execute(rusqlite::params![asset, doc_fingerprint as i64])?;
        Ok(())
    }

    /// Forget an asset's document: the next run takes it for changed (a
    /// delta run sends it again). For a document a sink could not deliver.
    pub fn forget_document(&mut self, asset_id: &str) -> Result<(), LedgerError> {
        self.tx.prepare_cached(ASSET_GONE)?.execute([asset_id])?;
        Ok(())
    }

    /// Record that a known asset is no longer in the tenant: it leaves
    /// [`super::Ledger::known_assets`], so if it comes back its document
    /// counts as changed. Its findings are handled by [`RunWriter::finding`]
    /// like any other missing finding.
    pub fn asset_gone(&mut self, asset_id: &str) -> Result<(), LedgerError> {
        self.tx.prepare_cached(ASSET_GONE)?.execute([asset_id])?;
        if self.current.as_ref().is_some_and(|(id, _)| id == asset_id) {
            self.current = None;
        }
        self.gone += 1;
        Ok(())
    }

    /// Write the run's row and commit everything the run wrote.
    ///
    /// Refuses, committing nothing, a run whose record is not this run's, or
    /// whose status is not `complete`, `partial` or `failed`, or which is
    /// not `complete` but fixed findings or removed assets: the last
    /// guards the rule that an incomplete run closes nothing even against a
    /// caller's mistake.
    pub fn finish(self, run: &RunRecord) -> Result<(), LedgerError> {
        if run.run_id != self.run_id {
            return Err(LedgerError::RunMismatch {
                expected: self.run_id,
                got: run.run_id.clone(),
            });
        }
        if run.status != run_status::COMPLETE && (self.fixed > 0 || self.gone > 0) {
            return Err(LedgerError::FixedByIncompleteRun {
                run_id: self.run_id,
                status: run.status.clone(),
                fixed: self.fixed,
                gone: self.gone,
            });
        }
        write_run_row(&self.tx, run)?;
        self.tx.commit()?;
        Ok(())
    }
}

/// Update a begun run's row with its end.
pub(crate) fn write_run_row(conn: &Connection, run: &RunRecord) -> Result<(), LedgerError> {
    if ![
        run_status::COMPLETE,
        run_status::PARTIAL,
        run_status::FAILED,
    ]
    .contains(&run.status.as_str())
    {
        return Err(LedgerError::InvalidRunStatus(run.status.clone()));
    }
    let n = conn
        .prepare_cached(
            "UPDATE runs SET status = ?2, started_at = ?3, ended_at = ?4, duration_seconds = ?5,
                 assets = ?6, findings_by_status = ?7, dead_letters = ?8, details = ?9
             WHERE run_id = ?1",
        )?
        .execute(rusqlite::params![
            run.run_id,
            run.status,
            run.started_at,
            run.ended_at,
            run.duration_seconds,
            i64::try_from(run.assets).unwrap_or(i64::MAX),
            serde_json::to_string(&run.findings_by_status)?,
            i64::try_from(run.dead_letters).unwrap_or(i64::MAX),
            serde_json::to_string(&run.details)?,
        ])?;
    if n == 0 {
        return Err(LedgerError::RunNotBegun {
            run_id: run.run_id.clone(),
        });
    }
    Ok(())
}
