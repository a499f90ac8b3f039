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

/// How long a held lock is waited for before the ledger is called busy. A
/// run of this process that just ended may still hold it for a moment: a
/// child process spawned (by another thread) between its `fork` and its
/// `exec` holds a copy of every descriptor, the lock's too. A second sync
/// still hears "busy" within this, not after its pull.
pub(crate) const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

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
    /// [`LedgerError::Busy`] if anyone still holds it after [`GRACE`].
    pub(crate) fn acquire(db: &Path) -> Result<WriterLock, LedgerError> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LedgerError::io(&path))?;
        let deadline = std::time::Instant::now() + GRACE;
        loop {
            match FileExt::try_lock_exclusive(&file) {
                Ok(true) => return Ok(WriterLock { _file: file }),
                Ok(false) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(false) => {
                    return Err(LedgerError::Busy {
                        path: db.to_path_buf(),
                    })
                }
                Err(e) => return Err(LedgerError::io(&path)(e)),
            }
        }
    }
}
