//! The one-writer lock: an OS advisory lock on `<ledger>.lock`.
//!
//! A lock file beside the database rather than SQLite's own locking: SQLite
//! would only make a second sync wait or fail at its first write, after it
//! had pulled the whole tenant; this refuses at once. `flock` locks belong
//! to the open file, so a second `Ledger` in the same process is refused
//! too, and the OS drops the lock when the process dies however it dies, so
//! a crash never leaves a stale lock. The file itself is never removed:
//! removing it would race with a process that just opened it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use super::LedgerError;

/// Held for the life of a [`super::Ledger`]; closing the file releases it.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

/// `<ledger>.lock` for a ledger at `<ledger>`.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut p = OsString::from(db.as_os_str());
    p.push(".lock");
    PathBuf::from(p)
}

impl WriterLock {
    /// Take the lock for the ledger at `db`, or fail with
    /// [`LedgerError::Busy`] at once if anyone holds it.
    pub(crate) fn acquire(db: &Path) -> Result<WriterLock, LedgerError> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LedgerError::io(&path))?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(WriterLock { _file: file }),
            Ok(false) => Err(LedgerError::Busy {
                path: db.to_path_buf(),
            }),
            Err(e) => Err(LedgerError::io(&path)(e)),
        }
    }
}
