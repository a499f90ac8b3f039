//! Assembly of one partition: duplicates out, findings grouped under their
//! asset, written as a sorted run file for the merge.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{frame, partition_of, DedupeConfig, DedupeError};

/// Counts of the publish phase's assembly.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AssembleStats {
    /// Assets assembled (one per asset id, orphans included).
    pub assets: u64,
    pub findings: u64,
    /// The same asset / finding read more than once (offset paging).
    pub duplicate_assets: u64,
    pub duplicate_findings: u64,
    /// Duplicates whose content differed (the record changed while paging);
    /// the greater one in byte order is kept so runs stay deterministic.
    pub conflicting_duplicates: u64,
    /// Findings whose asset did not come back from the asset queries: they
    /// are published under a minimal document for their asset id.
    pub orphan_assets: u64,
    pub orphan_findings: u64,
    /// Partitions over the assembly budget that were split again.
    pub resplits: u64,
}

impl AssembleStats {
    fn add(&mut self, o: &AssembleStats) {
        self.assets += o.assets;
        self.findings += o.findings;
        self.duplicate_assets += o.duplicate_assets;
        self.duplicate_findings += o.duplicate_findings;
        self.conflicting_duplicates += o.conflicting_duplicates;
        self.orphan_assets += o.orphan_assets;
        self.orphan_findings += o.orphan_findings;
        self.resplits += o.resplits;
    }
}

/// Assemble every partition into a sorted run file in `runs_dir`; returns
/// the run files (to be merged) and the counts. Spill files are removed as
/// they are consumed.
pub fn assemble_all(
    parts: Vec<PathBuf>,
    cfg: &DedupeConfig,
    runs_dir: &Path,
) -> Result<(Vec<PathBuf>, AssembleStats), DedupeError> {
    std::fs::create_dir_all(runs_dir).map_err(DedupeError::io(runs_dir))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.assemble_workers.max(1))
        .thread_name(|i| format!("assemble-{i}"))
        .build()
        .map_err(|e| DedupeError::io(runs_dir)(std::io::Error::other(e)))?;
    let results: Vec<Result<(Vec<PathBuf>, AssembleStats), DedupeError>> = pool.install(|| {
        parts
            .par_iter()
            .enumerate()
            .map(|(i, p)| assemble_file(p, &format!("{i:05}"), 0, cfg, runs_dir))
            .collect()
    });
    let mut runs = Vec::new();
    let mut stats = AssembleStats::default();
    for r in results {
        let (r, s) = r?;
        runs.extend(r);
        stats.add(&s);
    }
    Ok((runs, stats))
}

fn assemble_file(
    path: &Path,
    name: &str,
    level: u64,
    cfg: &DedupeConfig,
    runs_dir: &Path,
) -> Result<(Vec<PathBuf>, AssembleStats), DedupeError> {
    let size = std::fs::metadata(path)
        .map_err(DedupeError::io(path))?
        .len();
    // One asset can never be split; past a few levels the partition is one
    // huge asset and is assembled as it is.
    if size > cfg.assemble_budget_bytes && level < 4 {
        let ways = size.div_ceil(cfg.assemble_budget_bytes).clamp(2, 64) as usize;
        let subs = resplit(path, level + 1, ways)?;
        let mut runs = Vec::new();
        let mut stats = AssembleStats {
            resplits: 1,
            ..AssembleStats::default()
        };
        for (j, sub) in subs.iter().enumerate() {
            let (r, s) = assemble_file(sub, &format!("{name}.{j}"), level + 1, cfg, runs_dir)?;
            runs.extend(r);
            stats.add(&s);
        }
        return Ok((runs, stats));
    }
    let run = runs_dir.join(format!("run-{name}.docs"));
    let stats = assemble_one(path, &run)?;
    std::fs::remove_file(path).map_err(DedupeError::io(path))?;
    Ok((vec![run], stats))
}

/// Split a partition file `ways` ways by a hash salted with `level`.
fn resplit(path: &Path, level: u64, ways: usize) -> Result<Vec<PathBuf>, DedupeError> {
    let mut outs = Vec::with_capacity(ways);
    let mut paths = Vec::with_capacity(ways);
    for j in 0..ways {
        let p = path.with_extension(format!("{j}.spill"));
        outs.push(BufWriter::new(
            File::create(&p).map_err(DedupeError::io(&p))?,
        ));
        paths.push(p);
    }
    let mut r =
        BufReader::with_capacity(64 << 10, File::open(path).map_err(DedupeError::io(path))?);
    let mut f = frame::Frame::default();
    while frame::read(&mut r, &mut f).map_err(DedupeError::io(path))? {
        let j = partition_of(&f.a, level, ways);
        frame::write(&mut outs[j], f.tag, &f.a, &f.b, &f.c).map_err(DedupeError::io(&paths[j]))?;
    }
    for (o, p) in outs.into_iter().zip(&paths) {
        o.into_inner()
            .map_err(|e| DedupeError::io(p)(e.into_error()))?;
    }
    std::fs::remove_file(path).map_err(DedupeError::io(path))?;
    Ok(paths)
}

/// A finding's vendor id and serialized JSON.
type VendorFinding = (Vec<u8>, Vec<u8>);

/// Read one partition, dedupe, group, and write it sorted by asset id: per
/// asset an `ASSET` (or `ORPHAN`) frame carrying the number of findings,
/// then that many `FINDING` frames sorted by vendor id.
fn assemble_one(path: &Path, run: &Path) -> Result<AssembleStats, DedupeError> {
    let mut stats = AssembleStats::default();
    let mut assets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut findings: HashMap<Vec<u8>, Vec<VendorFinding>> = HashMap::new();
    let mut r =
        BufReader::with_capacity(64 << 10, File::open(path).map_err(DedupeError::io(path))?);
    let mut f = frame::Frame::default();
    while frame::read(&mut r, &mut f).map_err(DedupeError::io(path))? {
        let f = std::mem::take(&mut f);
        match f.tag {
            frame::ASSET => match assets.get_mut(&f.a) {
                Some(kept) => {
                    stats.duplicate_assets += 1;
                    if *kept != f.c {
                        stats.conflicting_duplicates += 1;
                        if f.c > *kept {
                            *kept = f.c;
                        }
                    }
                }
                None => {
                    assets.insert(f.a, f.c);
                }
            },
            _ => findings.entry(f.a).or_default().push((f.b, f.c)),
        }
    }
    for list in findings.values_mut() {
        // By (vendor id, content): a vendor id's duplicates are adjacent and
        // the greatest content, the one kept, is last.
        list.sort_unstable();
    }
    // Bytewise order, the order of the merge and of the ledger.
    let mut ids: Vec<&Vec<u8>> = assets.keys().chain(findings.keys()).collect();
    ids.sort_unstable();
    ids.dedup();

    let mut out =
        BufWriter::with_capacity(64 << 10, File::create(run).map_err(DedupeError::io(run))?);
    let written: std::io::Result<()> = (|| {
        for id in ids {
            let asset = assets.get(id);
            let groups: Vec<&[VendorFinding]> = findings
                .get(id)
                .map(|l| l.chunk_by(|x, y| x.0 == y.0).collect())
                .unwrap_or_default();
            if asset.is_none() {
                stats.orphan_assets += 1;
                stats.orphan_findings += groups.len() as u64;
            }
            let count = (groups.len() as u32).to_le_bytes();
            let (tag, json) = match asset {
                Some(a) => (frame::ASSET, a.as_slice()),
                None => (frame::ORPHAN, &[][..]),
            };
            frame::write(&mut out, tag, id, &count, json)?;
            for group in groups {
                let (vendor, json) = &group[group.len() - 1];
                stats.duplicate_findings += group.len() as u64 - 1;
                if group.iter().any(|(_, j)| j != json) {
                    stats.conflicting_duplicates += 1;
                }
                frame::write(&mut out, frame::FINDING, id, vendor, json)?;
                stats.findings += 1;
            }
            stats.assets += 1;
        }
        out.flush()
    })();
    written.map_err(DedupeError::io(run))?;
    Ok(stats)
}
