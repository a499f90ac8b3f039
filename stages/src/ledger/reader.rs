//! Reading the ledger: runs, and the sorted streams of known findings and
//! assets.
//!
//! The streams read in batches by key ("keyset" paging): each batch is a
//! fresh short query that resumes after the last key read, so no statement
//! outlives a batch and memory is one batch whatever the ledger's size. Each
//! stream owns its connection and holds one read transaction open for its
//! life: in WAL mode that pins the snapshot of its first read, so batches
//! read after the run's writer committed still see the state before it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, Row};

use super::{open_reader, Known, LedgerError, RunRecord, Status};

/// Rows read per query of a stream: big enough that query overhead is
/// noise, small enough that a batch is a few hundred KiB.
const BATCH: usize = 4096;

const RUN_COLUMNS: &str = "run_id, status, started_at, ended_at, duration_seconds, assets, \
                           findings_by_status, dead_letters, details";

/// The ledger open for reading only, without the writer lock.
#[derive(Debug)]
pub struct LedgerReader {
    conn: Connection,
    path: PathBuf,
}

impl LedgerReader {
    pub(crate) fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        Ok(LedgerReader {
            conn: open_reader(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
        runs(&self.conn, limit)
    }

    /// The newest `complete` run.
    pub fn last_complete_run(&self) -> Result<Option<RunRecord>, LedgerError> {
        last_complete_run(&self.conn)
    }

    /// See [`super::Ledger::known_findings`].
    pub fn known_findings(&self) -> Result<KnownFindings, LedgerError> {
        KnownFindings::open(&self.path)
    }

    /// See [`super::Ledger::known_assets`].
    pub fn known_assets(&self) -> Result<KnownAssets, LedgerError> {
        KnownAssets::open(&self.path)
    }
}

pub(crate) fn runs(conn: &Connection, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT ?1"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query([limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(run_from_row(row)?);
    }
    Ok(out)
}

pub(crate) fn last_complete_run(conn: &Connection) -> Result<Option<RunRecord>, LedgerError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'complete' ORDER BY seq DESC LIMIT 1"
    ))?;
    let mut rows = st.query([])?;
    match rows.next()? {
        Some(row) => Ok(Some(run_from_row(row)?)),
        None => Ok(None),
    }
}

fn run_from_row(row: &Row<'_>) -> Result<RunRecord, LedgerError> {
    let by_status: String = row.get(6)?;
    let details: String = row.get(8)?;
    Ok(RunRecord {
        run_id: row.get(0)?,
        status: row.get(1)?,
        started_at: row.get(2)?,
        ended_at: row.get(3)?,
        duration_seconds: row.get(4)?,
        assets: count(row.get(5)?),
        findings_by_status: serde_json::from_str(&by_status)?,
        dead_letters: count(row.get(7)?),
        details: serde_json::from_str(&details)?,
    })
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Open a stream's connection and pin its snapshot: the read transaction
/// begins, and its first read (the run ids) fixes what it will see.
fn snapshot(path: &Path) -> Result<(Connection, HashMap<i64, String>), LedgerError> {
    let conn = open_reader(path)?;
    conn.execute_batch("BEGIN DEFERRED")?;
    let mut runs = HashMap::new();
    {
        let mut st = conn.prepare("SELECT seq, run_id FROM runs")?;
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            runs.insert(row.get(0)?, row.get(1)?);
        }
    }
    Ok((conn, runs))
}

// CROSS JOIN makes `assets` the outer loop, walked in `asset_id` order by
// its unique index, with each asset's findings read in primary-key
// (`vendor_id`) order: rows come out sorted without a sort step, so a batch
// costs its own size, not the ledger's. The external id is one primary-key
// lookup per row. A unit test checks the plan.
const FINDINGS_FIRST: &str = "
SELECT a.id, a.asset_id, f.vendor_id, f.status, f.fingerprint, f.first_seen, f.last_seen, e.value
FROM assets a CROSS JOIN findings f ON f.asset = a.id
LEFT JOIN external_ids e ON e.id = f.external_id
ORDER BY a.asset_id, f.vendor_id LIMIT ?1";
const FINDINGS_AFTER_ASSET: &str = "
SELECT a.id, a.asset_id, f.vendor_id, f.status, f.fingerprint, f.first_seen, f.last_seen, e.value
FROM assets a CROSS JOIN findings f ON f.asset = a.id
LEFT JOIN external_ids e ON e.id = f.external_id
WHERE a.asset_id > ?1
ORDER BY a.asset_id, f.vendor_id LIMIT ?2";
const FINDINGS_SAME_ASSET: &str = "
SELECT ?1, NULL, f.vendor_id, f.status, f.fingerprint, f.first_seen, f.last_seen, e.value
FROM findings f
LEFT JOIN external_ids e ON e.id = f.external_id
WHERE f.asset = ?1 AND f.vendor_id > ?2
ORDER BY f.vendor_id LIMIT ?3";

/// One row of the findings streams, as read.
struct FindingRow {
    asset: i64,
    /// `None` from [`FINDINGS_SAME_ASSET`], which stays in the cursor's asset.
    asset_id: Option<String>,
    vendor_id: String,
    status: i64,
    fingerprint: i64,
    first: i64,
    last: i64,
    external_id: Option<String>,
}

impl FindingRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<FindingRow> {
        Ok(FindingRow {
            asset: r.get(0)?,
            asset_id: r.get(1)?,
            vendor_id: r.get(2)?,
            status: r.get(3)?,
            fingerprint: r.get(4)?,
            first: r.get(5)?,
            last: r.get(6)?,
            external_id: r.get(7)?,
        })
    }
}

/// Where a findings stream has read up to.
#[derive(Debug)]
struct Cursor {
    asset: i64,
    asset_id: String,
    vendor_id: String,
}

/// The known findings, sorted by (`asset_id`, `vendor_id`) bytewise; see
/// [`super::Ledger::known_findings`].
#[derive(Debug)]
pub struct KnownFindings {
    conn: Connection,
    runs: HashMap<i64, String>,
    buf: VecDeque<Known>,
    cursor: Option<Cursor>,
    done: bool,
}

impl KnownFindings {
    pub(crate) fn open(path: &Path) -> Result<KnownFindings, LedgerError> {
        let (conn, runs) = snapshot(path)?;
        Ok(KnownFindings {
            conn,
            runs,
            buf: VecDeque::with_capacity(BATCH),
            cursor: None,
            done: false,
        })
    }

    fn run_id(&self, seq: i64) -> Result<String, LedgerError> {
        self.runs
            .get(&seq)
            .cloned()
            .ok_or_else(|| LedgerError::Corrupt(format!("finding names unknown run #{seq}")))
    }

    fn known(&self, asset_id: &str, row: FindingRow) -> Result<Known, LedgerError> {
        let status = Status::from_code(row.status).ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "finding {asset_id}/{}: status code {}",
                row.vendor_id, row.status
            ))
        })?;
        Ok(Known {
            asset_id: asset_id.to_owned(),
            status,
            // Stored as the same 64 bits, read back unchanged.
            fingerprint: row.fingerprint as u64,
            external_id: row.external_id,
            first_seen_run: self.run_id(row.first)?,
            last_seen_run: self.run_id(row.last)?,
            vendor_id: row.vendor_id,
        })
    }

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<FindingRow>, LedgerError> {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(params, FindingRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Read the next batch into `buf`; sets `done` when there is none.
    fn fill(&mut self) -> Result<(), LedgerError> {
        let batch = BATCH as i64;
        // First the rest of the asset the last batch ended in…
        if let Some(c) = &self.cursor {
            let got = self.query(
                FINDINGS_SAME_ASSET,
                rusqlite::params![c.asset, c.vendor_id, batch],
            )?;
            if !got.is_empty() {
                let (asset, asset_id) = (c.asset, c.asset_id.clone());
                for row in got {
                    let k = self.known(&asset_id, row)?;
                    self.buf.push_back(k);
                }
                self.set_cursor(asset, asset_id);
                return Ok(());
            }
        }
        // …then the assets after it.
        let got = match &self.cursor {
            None => self.query(FINDINGS_FIRST, [batch])?,
            Some(c) => self.query(FINDINGS_AFTER_ASSET, rusqlite::params![c.asset_id, batch])?,
        };
        if got.is_empty() {
            self.done = true;
            return Ok(());
        }
        let mut last = (0, String::new());
        for mut row in got {
            let asset_id = row.asset_id.take().unwrap_or_default();
            let asset = row.asset;
            let k = self.known(&asset_id, row)?;
            self.buf.push_back(k);
            last = (asset, asset_id);
        }
        self.set_cursor(last.0, last.1);
        Ok(())
    }

    fn set_cursor(&mut self, asset: i64, asset_id: String) {
        let vendor_id = self
            .buf
            .back()
            .map(|k| k.vendor_id.clone())
            .unwrap_or_default();
        self.cursor = Some(Cursor {
            asset,
            asset_id,
            vendor_id,
        });
    }
}

impl Iterator for KnownFindings {
    type Item = Result<Known, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                // An error ends the stream: resuming could skip or repeat keys.
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

const ASSETS_AFTER: &str = "
SELECT asset_id, doc_fingerprint FROM assets
WHERE asset_id > ?1 AND doc_fingerprint IS NOT NULL
ORDER BY asset_id LIMIT ?2";

/// The assets with a recorded document, sorted by `asset_id` bytewise,
/// with their document fingerprint.
#[derive(Debug)]
pub struct KnownAssets {
    conn: Connection,
    buf: VecDeque<(String, u64)>,
    after: Option<String>,
    done: bool,
}

impl KnownAssets {
    pub(crate) fn open(path: &Path) -> Result<KnownAssets, LedgerError> {
        let (conn, _) = snapshot(path)?;
        Ok(KnownAssets {
            conn,
            buf: VecDeque::with_capacity(BATCH),
            after: None,
            done: false,
        })
    }

    fn fill(&mut self) -> Result<(), LedgerError> {
        let mut st = self.conn.prepare_cached(if self.after.is_some() {
            ASSETS_AFTER
        } else {
            // Every string is >= '', so the first batch starts at the start.
            "SELECT asset_id, doc_fingerprint FROM assets
             WHERE asset_id >= ?1 AND doc_fingerprint IS NOT NULL
             ORDER BY asset_id LIMIT ?2"
        })?;
        let after = self.after.as_deref().unwrap_or("");
        let mut rows = st.query(rusqlite::params![after, BATCH as i64])?;
        while let Some(r) = rows.next()? {
            let fp: i64 = r.get(1)?;
            self.buf.push_back((r.get(0)?, fp as u64));
        }
        drop(rows);
        drop(st);
        match self.buf.back() {
            Some((id, _)) => self.after = Some(id.clone()),
            None => self.done = true,
        }
        Ok(())
    }
}

impl Iterator for KnownAssets {
    type Item = Result<(String, u64), LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// The plan of a query, one detail line per step.
#[cfg(test)]
pub(crate) fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let nulls = vec![rusqlite::types::Null; st.parameter_count()];
    let rows = st
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_never_sort() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::migrate(&mut conn, Path::new(":memory:")).unwrap();
        for sql in [
            FINDINGS_FIRST,
            FINDINGS_AFTER_ASSET,
            FINDINGS_SAME_ASSET,
            ASSETS_AFTER,
        ] {
            let plan = plan(&conn, sql);
            assert!(
                !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sql} sorts: {plan:?}"
            );
            assert!(
                plan.iter().all(|l| !l.starts_with("SCAN f")),
                "{sql} scans findings: {plan:?}"
            );
        }
    }

    #[test]
    fn unknown_ledger_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let err = LedgerReader::open(&dir.path().join("none.db")).unwrap_err();
        assert!(matches!(err, LedgerError::NotFound { .. }));
        // Nothing was created by looking.
        assert!(!dir.path().join("none.db").exists());
    }
}
