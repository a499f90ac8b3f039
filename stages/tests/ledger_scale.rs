//! The ledger at 1,000,000 findings: disk per finding and commit time.
//!
//! `cargo test --release -p stages --test ledger_scale -- --ignored --nocapture`

use std::time::Instant;

use rand::{rngs::SmallRng, RngCore, SeedableRng};
use stages::ledger::{decide_asset, run_status, FixPolicy, KnownByAsset, Ledger, RunRecord};

const ASSETS: usize = 10_000;
const PER_ASSET: usize = 100;

/// Sorted assets, each with sorted UUID vendor ids and fingerprints.
fn tenant() -> Vec<(String, Vec<(String, u64)>)> {
    let mut rng = SmallRng::seed_from_u64(4);
    let mut assets: Vec<(String, Vec<(String, u64)>)> = (0..ASSETS)
        .map(|i| {
            let id = format!(
                "vm_{:012}_i-0a1b2c3d4e{:07x}",
                123_456_789_012u64 + i as u64,
                i
            );
            let mut fs: Vec<(String, u64)> = (0..PER_ASSET)
                .map(|_| {
                    let mut b = [0u8; 16];
                    rng.fill_bytes(&mut b);
                    let v = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
                    (v, rng.next_u64())
                })
                .collect();
            fs.sort();
            (id, fs)
        })
        .collect();
    assets.sort();
    assets
}

/// A CVE id from a skewed draw over 40,000, as the synthetic tenant makes.
fn cve_of(x: u64) -> String {
    let u = (x & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
    let k = (u * u * 40_000.0) as u64;
    format!("CVE-{}-{}", 2015 + k % 11, 1000 + k / 11)
}

fn run(l: &mut Ledger, run_id: &str, t: &[(String, Vec<(String, u64)>)]) -> (f64, f64) {
    let policy = FixPolicy {
        preserve_missing: false,
        run_complete: true,
    };
    let start = Instant::now();
    l.begin_run(run_id, "2026-12-03T20:00:00Z").unwrap();
    let mut known = KnownByAsset::new(l.known_findings().unwrap());
    let mut w = l.start_commit(run_id).unwrap();
    for (asset, fs) in t {
        while known.next_before(Some(asset)).unwrap().is_some() {}
        let k = known.take(asset).unwrap();
        let seen = fs.iter().map(|(v, fp)| (v.as_str(), *fp));
        for d in decide_asset(k, seen, policy, |_| false).unwrap() {
            if d.write {
                // The CVE id it is published under, as the pipeline keeps
                // it: repeated across assets, as in real tenants.
                let cve = cve_of(d.fingerprint);
                w.finding_with_external_id(
                    asset,
                    &d.vendor_id,
                    d.status,
                    d.fingerprint,
                    Some(&cve),
                )
                .unwrap();
            }
        }
        w.asset(asset, 1).unwrap();
    }
    let written = start.elapsed().as_secs_f64();
    let c = Instant::now();
    w.finish(&RunRecord::new(run_id, run_status::COMPLETE, "t"))
        .unwrap();
    (written, c.elapsed().as_secs_f64())
}

#[test]
#[ignore = "1,000,000 findings: run with --release -- --ignored"]
fn one_million_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let t = tenant();
    let n = (ASSETS * PER_ASSET) as f64;

    let mut l = Ledger::open(&path).unwrap();
    let (w1, c1) = run(&mut l, "r1", &t);
    let (w2, c2) = run(&mut l, "r2", &t);
    drop(l); // the last connection checkpoints and removes the WAL

    let size = std::fs::metadata(&path).unwrap().len() as f64;
    let wal = dir.path().join("ledger.db-wal");
    let wal = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    println!(
        "ledger at {n} findings: {size} bytes, {:.1} bytes/finding (WAL left: {wal} bytes)",
        size / n
    );
    println!(
        "run 1 (all new):  join+writes {w1:.2}s, commit {c1:.2}s, {:.0} findings/s",
        n / (w1 + c1)
    );
    println!(
        "run 2 (all seen): join+writes {w2:.2}s, commit {c2:.2}s, {:.0} findings/s",
        n / (w2 + c2)
    );
    assert!(size / n <= 100.0, "{} bytes per finding", size / n);
}
