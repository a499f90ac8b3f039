//! The ledger's tables, as migration steps, and the connection settings.
//!
//! `MIGRATIONS[i]` upgrades a database at `PRAGMA user_version` `i` to
//! `i + 1`; a new database runs them all. A step is never edited once
//! released: a change is a new step.
//!
//! Size matters (1,000,000+ findings at under 100 bytes each): asset and run
//! ids, long strings repeated on every finding, are interned as integers;
//! `findings` is `WITHOUT ROWID`, so its primary key *is* the table and no
//! second index is stored; the fingerprint is an integer (8 bytes) and the
//! status a small integer (0 bytes for 0 and 1).
//!
//! Text columns use SQLite's `BINARY` collation (memcmp of the UTF-8 bytes),
//! which is the order of Rust's `str` comparison: the ledger's sorted
//! streams and the pipeline's sorted streams agree byte for byte.

/// v1: runs, interned assets with their document fingerprint, findings.
const V1: &str = "
CREATE TABLE runs (
    seq                INTEGER PRIMARY KEY,
    run_id             TEXT NOT NULL UNIQUE,
    status             TEXT NOT NULL
                       CHECK (status IN ('processing', 'complete', 'partial', 'failed')),
    started_at         TEXT NOT NULL,
    ended_at           TEXT,
    duration_seconds   REAL,
    assets             INTEGER NOT NULL DEFAULT 0,
    findings_by_status TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE assets (
    id              INTEGER PRIMARY KEY,
    asset_id        TEXT COLLATE BINARY NOT NULL UNIQUE,
    doc_fingerprint INTEGER
);
CREATE TABLE findings (
    asset       INTEGER NOT NULL,
    vendor_id   TEXT COLLATE BINARY NOT NULL,
    status      INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (asset, vendor_id)
) WITHOUT ROWID;
";

/// v2: a run also records its dead letters and, in `details`, each query's
/// `total_items` against the rows read (what made it partial, if it was).
const V2: &str = "
ALTER TABLE runs ADD COLUMN dead_letters INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
";

/// v3: each finding remembers the `externalFindingId` it was published
/// with, so a later run can publish it as `FIXED` under the same id. The
/// ids (CVE ids under the default map) repeat across assets and are
/// interned: a finding pays an integer, not the string.
const V3: &str = "
CREATE TABLE external_ids (
    id    INTEGER PRIMARY KEY,
    value TEXT COLLATE BINARY NOT NULL UNIQUE
);
ALTER TABLE findings ADD COLUMN external_id INTEGER;
";

pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Settings of the writing connection. WAL lets the run's readers keep a
/// consistent snapshot while the writer works; `synchronous = NORMAL` is
/// safe against a killed process in WAL mode (only a power loss can lose
/// the last commit, which a rerun redoes). The WAL is cut back after
/// checkpoints so one big run does not leave a WAL as big as the ledger.
pub(crate) const WRITER_PRAGMAS: &str = "
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -8192;
PRAGMA journal_size_limit = 67108864;
PRAGMA busy_timeout = 5000;
";

/// Settings of reading connections: wait out a checkpoint rather than fail.
pub(crate) const READER_PRAGMAS: &str = "
PRAGMA busy_timeout = 5000;
";
