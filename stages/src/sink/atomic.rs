//! A file written under a temporary name and renamed into place when done.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file that appears at `path` only when [`AtomicFile::commit`] is called;
/// dropped uncommitted, it leaves nothing behind.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    bytes: u64,
}

impl AtomicFile {
    pub fn create(path: &Path) -> std::io::Result<AtomicFile> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A dot name in the same folder: same filesystem (rename is atomic)
        // and hidden from readers globbing `*.ndjson`.
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let out = BufWriter::with_capacity(256 << 10, File::create(&tmp)?);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(out),
            bytes: 0,
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.bytes += buf.len() as u64;
        match &mut self.out {
            Some(o) => o.write_all(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush, sync, and rename into place.
    pub fn commit(mut self) -> std::io::Result<PathBuf> {
        let out = self
            .out
            .take()
            .ok_or_else(|| std::io::Error::other("file already committed"))?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(self.path.clone())
    }
}

/// So writers that take `io::Write` (the CSV writer) write into it directly.
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            Some(o) => o.write(buf)?,
            None => return Err(std::io::Error::other("file already committed")),
        };
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Remove the temporary files that processes no longer running left in
/// `dir` (a run killed before its commit); returns how many. A temporary
/// file of a live process is left alone: it may be another run's.
pub fn remove_stale(dir: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = stale_pid(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The process id in a temporary name `.<name>.<pid>.tmp`.
fn stale_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = inner.rsplit_once('.')?;
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without /proc, assume alive: never remove what may be in use.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // pid 0 is never a user process; ours is alive.
        let dead = dir.path().join(".etm-assets.ndjson.0.tmp");
        let mine = dir
            .path()
            .join(format!(".manifest.json.{}.tmp", std::process::id()));
        let other = dir.path().join("notes.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale(dir.path()).unwrap(), 1);
        assert!(!dead.exists() && mine.exists() && other.exists());
        assert_eq!(remove_stale(&dir.path().join("none")).unwrap(), 0);
        assert_eq!(stale_pid(".a.b.123.tmp"), Some(123));
        assert_eq!(stale_pid("a.123.tmp"), None);
    }

    #[test]
    fn appears_only_on_commit_and_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");

        let mut g = AtomicFile::create(&path).unwrap();
        g.write_all(b"half").unwrap();
        drop(g);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
