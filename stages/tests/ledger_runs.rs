//! The ledger driven the way the publish phase drives it: a sorted join of
//! each run's findings with the known ones, one write transaction per run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use stages::ledger::{
    decide_asset, run_status, FixPolicy, Known, KnownByAsset, Ledger, LedgerError, RunRecord,
    RunWriter, Status, SCHEMA_VERSION,
};

/// asset id → (document fingerprint, vendor id → finding fingerprint).
type Tenant = BTreeMap<String, (u64, BTreeMap<String, u64>)>;
/// (asset id, vendor id) → status published.
type Emitted = BTreeMap<(String, String), Status>;

/// (asset id, document fingerprint, [(vendor id, fingerprint)]).
type AssetSpec<'a> = (&'a str, u64, &'a [(&'a str, u64)]);

fn tenant(assets: &[AssetSpec<'_>]) -> Tenant {
    assets
        .iter()
        .map(|(a, doc, fs)| {
            let fs = fs.iter().map(|(v, fp)| (v.to_string(), *fp)).collect();
            (a.to_string(), (*doc, fs))
        })
        .collect()
}

fn key(a: &str, v: &str) -> (String, String) {
    (a.to_owned(), v.to_owned())
}

/// Decide and write one asset's findings; returns what was published.
fn publish_asset(
    w: &mut RunWriter<'_>,
    asset_id: &str,
    known: Vec<Known>,
    seen: &BTreeMap<String, u64>,
    policy: FixPolicy,
    unreadable: &BTreeSet<(String, String)>,
    emitted: &mut Emitted,
) {
    let seen = seen.iter().map(|(v, fp)| (v.as_str(), *fp));
    let unreadable = |v: &str| unreadable.contains(&key(asset_id, v));
    for d in decide_asset(known, seen, policy, unreadable).unwrap() {
        if d.write {
            w.finding(asset_id, &d.vendor_id, d.status, d.fingerprint)
                .unwrap();
        }
        if d.emit {
            emitted.insert(key(asset_id, &d.vendor_id), d.status);
        }
    }
}

/// One run, as the pipeline does it. `complete: false` is a run some query
/// of which was not read to the end.
fn sync(
    ledger: &mut Ledger,
    run_id: &str,
    t: &Tenant,
    preserve_missing: bool,
    complete: bool,
    unreadable: &BTreeSet<(String, String)>,
) -> Emitted {
    let policy = FixPolicy {
        preserve_missing,
        run_complete: complete,
    };
    ledger.begin_run(run_id, "2026-12-03T20:00:00Z").unwrap();
    let mut known = KnownByAsset::new(ledger.known_findings().unwrap());
    let known_assets: Vec<String> = ledger
        .known_assets()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    let mut w = ledger.start_commit(run_id).unwrap();
    let mut emitted = Emitted::new();
    let none = BTreeMap::new();
    for (asset_id, (doc, findings)) in t {
        // Known assets before this one that the run did not publish.
        while let Some((gone, k)) = known.next_before(Some(asset_id)).unwrap() {
            publish_asset(&mut w, &gone, k, &none, policy, unreadable, &mut emitted);
        }
        let k = known.take(asset_id).unwrap();
        publish_asset(
            &mut w,
            asset_id,
            k,
            findings,
            policy,
            unreadable,
            &mut emitted,
        );
        w.asset(asset_id, *doc).unwrap();
    }
    while let Some((gone, k)) = known.next_before(None).unwrap() {
        publish_asset(&mut w, &gone, k, &none, policy, unreadable, &mut emitted);
    }
    if complete {
        for a in known_assets.iter().filter(|a| !t.contains_key(*a)) {
            w.asset_gone(a).unwrap();
        }
    }
    let mut run = RunRecord::new(
        run_id,
        if complete {
            run_status::COMPLETE
        } else {
            run_status::PARTIAL
        },
        "2026-12-03T20:00:00Z",
    );
    run.ended_at = Some("2026-12-03T20:01:00Z".into());
    run.duration_seconds = Some(60.0);
    run.assets = t.len() as u64;
    for s in emitted.values() {
        *run.findings_by_status.entry(s.as_str().into()).or_default() += 1;
    }
    w.finish(&run).unwrap();
    emitted
}

/// Every known finding: key → (status, fingerprint, first seen, last seen).
fn state(ledger: &Ledger) -> BTreeMap<(String, String), (Status, u64, String, String)> {
    ledger
        .known_findings()
        .unwrap()
        .map(|k| {
            let k = k.unwrap();
            (
                (k.asset_id, k.vendor_id),
                (k.status, k.fingerprint, k.first_seen_run, k.last_seen_run),
            )
        })
        .collect()
}

fn statuses(ledger: &Ledger) -> BTreeMap<(String, String), Status> {
    state(ledger).into_iter().map(|(k, v)| (k, v.0)).collect()
}

fn emitted(list: &[(&str, &str, Status)]) -> Emitted {
    list.iter().map(|(a, v, s)| (key(a, v), *s)).collect()
}

fn no_unreadable() -> BTreeSet<(String, String)> {
    BTreeSet::new()
}

// Run 1: A{f1,f2,f3} B{g1} C{h1}. Run 2: f3 removed, f2 changed, f4 added,
// asset C removed. Run 3: f3 back.
fn three_tenants() -> [Tenant; 3] {
    [
        tenant(&[
            ("A", 10, &[("f1", 1), ("f2", 2), ("f3", 3)]),
            ("B", 20, &[("g1", 1)]),
            ("C", 30, &[("h1", 1)]),
        ]),
        tenant(&[
            ("A", 11, &[("f1", 1), ("f2", 22), ("f4", 4)]),
            ("B", 20, &[("g1", 1)]),
        ]),
        tenant(&[
            ("A", 12, &[("f1", 1), ("f2", 22), ("f3", 3), ("f4", 4)]),
            ("B", 20, &[("g1", 1)]),
        ]),
    ]
}

#[test]
fn three_runs_without_preserve() {
    use Status::*;
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("p/ledger.db")).unwrap();
    let [t1, t2, t3] = three_tenants();
    let nu = no_unreadable();

    let e1 = sync(&mut l, "r1", &t1, false, true, &nu);
    assert_eq!(
        e1,
        emitted(&[
            ("A", "f1", New),
            ("A", "f2", New),
            ("A", "f3", New),
            ("B", "g1", New),
            ("C", "h1", New)
        ])
    );

    let e2 = sync(&mut l, "r2", &t2, false, true, &nu);
    assert_eq!(
        e2,
        emitted(&[
            ("A", "f1", Active),
            ("A", "f2", Active),
            ("A", "f3", Fixed),
            ("A", "f4", New),
            ("B", "g1", Active),
            ("C", "h1", Fixed),
        ])
    );
    let s2 = state(&l);
    assert_eq!(s2[&key("A", "f2")], (Active, 22, "r1".into(), "r2".into()));
    // Fixing does not move "last seen".
    assert_eq!(s2[&key("A", "f3")], (Fixed, 3, "r1".into(), "r1".into()));
    assert_eq!(s2[&key("C", "h1")].0, Fixed);
    let assets: Vec<_> = l.known_assets().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(assets, [("A".to_string(), 11), ("B".to_string(), 20)]);

    let e3 = sync(&mut l, "r3", &t3, false, true, &nu);
    assert_eq!(
        e3,
        emitted(&[
            ("A", "f1", Active),
            ("A", "f2", Active),
            ("A", "f3", Reopened),
            ("A", "f4", Active),
            ("B", "g1", Active),
        ])
    );
    let s3 = state(&l);
    assert_eq!(s3[&key("A", "f3")], (Reopened, 3, "r1".into(), "r3".into()));
    // Already fixed: stays fixed, not emitted again.
    assert_eq!(s3[&key("C", "h1")].0, Fixed);

    let runs = l.runs(10).unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r3", "r2", "r1"]);
    assert_eq!(runs[1].findings_by_status["FIXED"], 2);
    assert_eq!(l.last_complete_run().unwrap().unwrap().run_id, "r3");
}

#[test]
fn three_runs_with_preserve_missing() {
    use Status::*;
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let [t1, t2, t3] = three_tenants();
    let nu = no_unreadable();

    sync(&mut l, "r1", &t1, true, true, &nu);
    let e2 = sync(&mut l, "r2", &t2, true, true, &nu);
    // Missing findings keep their status and are not re-emitted.
    assert_eq!(
        e2,
        emitted(&[
            ("A", "f1", Active),
            ("A", "f2", Active),
            ("A", "f4", New),
            ("B", "g1", Active),
        ])
    );
    let s2 = statuses(&l);
    assert_eq!(s2[&key("A", "f3")], New);
    assert_eq!(s2[&key("C", "h1")], New);

    let e3 = sync(&mut l, "r3", &t3, true, true, &nu);
    assert_eq!(e3[&key("A", "f3")], Active);
    assert_eq!(e3[&key("A", "f4")], Active);
    assert!(!e3.contains_key(&key("C", "h1")));
    assert_eq!(statuses(&l)[&key("C", "h1")], New);
}

#[test]
fn a_partial_run_fixes_nothing_and_the_next_complete_run_does() {
    use Status::*;
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let nu = no_unreadable();
    let full = tenant(&[("A", 1, &[("f1", 1), ("f2", 2)]), ("B", 2, &[("g1", 1)])]);
    let half = tenant(&[("A", 1, &[("f1", 1)])]);

    sync(&mut l, "r1", &full, false, true, &nu);
    let e2 = sync(&mut l, "r2", &half, false, false, &nu);
    assert_eq!(e2, emitted(&[("A", "f1", Active)]));
    let s2 = statuses(&l);
    assert_eq!(s2[&key("A", "f2")], New);
    assert_eq!(s2[&key("B", "g1")], New);
    assert_eq!(l.known_assets().unwrap().count(), 2, "no asset gone");
    assert_eq!(l.runs(1).unwrap()[0].status, "partial");
    assert_eq!(l.last_complete_run().unwrap().unwrap().run_id, "r1");

    let e3 = sync(&mut l, "r3", &half, false, true, &nu);
    assert_eq!(
        e3,
        emitted(&[("A", "f1", Active), ("A", "f2", Fixed), ("B", "g1", Fixed)])
    );
}

#[test]
fn unreadable_findings_are_never_fixed() {
    use Status::*;
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let nu = no_unreadable();
    sync(
        &mut l,
        "r1",
        &tenant(&[("A", 1, &[("f1", 1), ("f2", 2)])]),
        false,
        true,
        &nu,
    );
    let unreadable = BTreeSet::from([key("A", "f2")]);
    let e2 = sync(
        &mut l,
        "r2",
        &tenant(&[("A", 1, &[])]),
        false,
        true,
        &unreadable,
    );
    assert_eq!(e2, emitted(&[("A", "f1", Fixed)]));
    assert_eq!(statuses(&l)[&key("A", "f2")], New);
}

#[test]
fn an_incomplete_run_that_tries_to_fix_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let t = tenant(&[("A", 1, &[("f1", 1)])]);
    sync(&mut l, "r1", &t, false, true, &no_unreadable());
    let before = state(&l);

    l.begin_run("r2", "t").unwrap();
    let mut w = l.start_commit("r2").unwrap();
    w.finding("A", "f1", Status::Fixed, 1).unwrap();
    let err = w
        .finish(&RunRecord::new("r2", run_status::PARTIAL, "t"))
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::FixedByIncompleteRun { fixed: 1, .. }),
        "{err}"
    );
    assert_eq!(state(&l), before);

    let mut w = l.start_commit("r2").unwrap();
    w.asset_gone("A").unwrap();
    let err = w
        .finish(&RunRecord::new("r2", run_status::FAILED, "t"))
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::FixedByIncompleteRun { gone: 1, .. }),
        "{err}"
    );
    assert_eq!(l.known_assets().unwrap().count(), 1);
}

/// Everything a run could change, runs table aside.
fn dump(l: &Ledger) -> (String, Vec<(String, u64)>) {
    let findings = format!("{:?}", state(l));
    let assets = l.known_assets().unwrap().map(|r| r.unwrap()).collect();
    (findings, assets)
}

#[test]
fn a_dropped_writer_leaves_the_ledger_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let t1 = three_tenants()[0].clone();
    {
        let mut l = Ledger::open(&path).unwrap();
        sync(&mut l, "r1", &t1, false, true, &no_unreadable());
        let before = dump(&l);

        l.begin_run("r2", "2026-12-03T21:00:00Z").unwrap();
        let mut w = l.start_commit("r2").unwrap();
        w.finding("A", "f1", Status::Fixed, 99).unwrap();
        w.finding("A", "new", Status::New, 5).unwrap();
        w.finding("Z", "z1", Status::New, 5).unwrap();
        w.asset("A", 12345).unwrap();
        w.asset_gone("B").unwrap();
        drop(w); // the crash
        assert_eq!(dump(&l), before);
        assert_eq!(l.runs(1).unwrap()[0].status, "processing");
        // The process dies here: the ledger is dropped without ending r2.
    }
    let l = Ledger::open(&path).unwrap();
    let runs = l.runs(10).unwrap();
    assert_eq!(runs[0].run_id, "r2");
    assert_eq!(runs[0].status, "failed");
    assert_eq!(runs[0].details["interrupted"], true);
    assert_eq!(runs[1].status, "complete");
    assert_eq!(l.last_complete_run().unwrap().unwrap().run_id, "r1");
    let (findings, _) = dump(&l);
    assert!(!findings.contains("\"Z\""));
}

#[test]
fn a_failed_run_records_only_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    l.begin_run("r1", "t0").unwrap();
    let mut run = RunRecord::new("r1", run_status::FAILED, "t0");
    run.dead_letters = 3;
    run.details =
        serde_json::json!({"queries": [{"label": "vulns", "total_items": 10, "rows_read": 4}]});
    l.record_run(&run).unwrap();
    let got = l.runs(5).unwrap();
    assert_eq!(got, vec![run]);
    assert!(matches!(
        l.begin_run("r1", "t"),
        Err(LedgerError::RunExists { .. })
    ));
    assert!(matches!(
        l.start_commit("nope"),
        Err(LedgerError::RunNotBegun { .. })
    ));
    let bad = RunRecord::new("r1", run_status::PROCESSING, "t0");
    assert!(matches!(
        l.record_run(&bad),
        Err(LedgerError::InvalidRunStatus(_))
    ));
}

#[test]
fn one_writer_at_a_time_and_readers_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut first = Ledger::open(&path).unwrap();
    first.begin_run("r1", "t").unwrap();

    match Ledger::open(&path) {
        Err(LedgerError::Busy { path: p }) => assert_eq!(p, path),
        other => panic!("expected Busy, got {other:?}"),
    }
    let err = Ledger::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("another sync is running on this ledger"),
        "{err}"
    );

    let reader = Ledger::open_read_only(&path).unwrap();
    let runs = reader.runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "processing");

    drop(first);
    let second = Ledger::open(&path).unwrap();
    assert_eq!(second.runs(1).unwrap()[0].status, "failed");
    // The reader still works after writers came and went.
    assert_eq!(reader.runs(1).unwrap()[0].status, "failed");
}

#[test]
fn reading_works_while_the_run_writes_and_after_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut l = Ledger::open(&path).unwrap();
    // More than one read batch, so the stream reads after the commit.
    let many: Vec<(String, u64)> = (0..10_000).map(|i| (format!("v{i:05}"), i)).collect();
    let fs: Vec<(&str, u64)> = many.iter().map(|(v, fp)| (v.as_str(), *fp)).collect();
    sync(
        &mut l,
        "r1",
        &tenant(&[("A", 1, &fs)]),
        false,
        true,
        &no_unreadable(),
    );

    l.begin_run("r2", "t").unwrap();
    let mut known = l.known_findings().unwrap();
    let first = known.next().unwrap().unwrap();
    assert_eq!(
        (first.vendor_id.as_str(), first.status),
        ("v00000", Status::New)
    );
    let mut w = l.start_commit("r2").unwrap();
    for (v, fp) in &many {
        w.finding("A", v, Status::Fixed, *fp).unwrap();
    }
    w.finish(&RunRecord::new("r2", run_status::COMPLETE, "t"))
        .unwrap();
    // The stream still sees the state before r2.
    let rest: Vec<Known> = known.map(|k| k.unwrap()).collect();
    assert_eq!(rest.len(), 9_999);
    assert!(rest.iter().all(|k| k.status == Status::New));
    // A new stream sees r2.
    assert!(l
        .known_findings()
        .unwrap()
        .all(|k| k.unwrap().status == Status::Fixed));
}

#[test]
fn known_findings_are_sorted_bytewise() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    let ids = [
        "",
        "0",
        "9a",
        "A",
        "Z",
        "_x",
        "-x",
        "a",
        "vm_1",
        "VM_1",
        "vm-1",
        "vm_10",
        "vm_2",
        "z",
        "é",
        "e\u{301}",
        "ä",
        "Ω",
        "\u{7f}",
        "a\u{10000}",
        "a\u{ffff}",
        "日本",
        "~",
        "Vm_1",
    ];
    l.begin_run("r1", "t").unwrap();
    let mut w = l.start_commit("r1").unwrap();
    let mut expected = Vec::new();
    // Written in reverse, so order comes from the ledger, not the writes.
    for a in ids.iter().rev() {
        for v in ids.iter().rev() {
            w.finding(a, v, Status::New, 1).unwrap();
            expected.push((a.to_string(), v.to_string()));
        }
        // One asset with more findings than a read batch.
        if *a == "vm_1" {
            for i in (0..9_000).rev() {
                let v = format!("{:x}-{i}", i * 7919 % 4096);
                w.finding(a, &v, Status::New, 1).unwrap();
                expected.push((a.to_string(), v));
            }
        }
        w.asset(a, 7).unwrap();
    }
    w.finish(&RunRecord::new("r1", run_status::COMPLETE, "t"))
        .unwrap();
    expected.sort(); // Rust's String order: bytewise.

    let got: Vec<(String, String)> = l
        .known_findings()
        .unwrap()
        .map(|k| {
            let k = k.unwrap();
            (k.asset_id, k.vendor_id)
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "known_findings is not in bytewise order");

    let assets: Vec<String> = l.known_assets().unwrap().map(|r| r.unwrap().0).collect();
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(assets, sorted);
}

/// The v1 schema exactly as a build of that version created it.
const V1_SCHEMA: &str = "
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
INSERT INTO runs VALUES (1, 'old-run', 'complete', '2026-01-01T00:00:00Z',
    '2026-01-01T00:10:00Z', 600.0, 1, '{\"NEW\":1}');
INSERT INTO assets VALUES (1, 'vm_1', 42);
INSERT INTO findings VALUES (1, 'uuid-1', 0, -5, 1, 1);
PRAGMA user_version = 1;
";

fn make_v1(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(V1_SCHEMA).unwrap();
}

#[test]
fn a_v1_ledger_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    make_v1(&path);
    // A reader does not migrate: it says what to do.
    assert!(matches!(
        Ledger::open_read_only(&path),
        Err(LedgerError::SchemaOutdated { found: 1, .. })
    ));

    let mut l = Ledger::open(&path).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let run = l.last_complete_run().unwrap().unwrap();
    assert_eq!(run.run_id, "old-run");
    assert_eq!(run.dead_letters, 0);
    assert_eq!(run.details, serde_json::json!({}));
    assert_eq!(run.findings_by_status["NEW"], 1);
    let k: Vec<Known> = l.known_findings().unwrap().map(|k| k.unwrap()).collect();
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].fingerprint, (-5i64) as u64);
    assert_eq!(k[0].first_seen_run, "old-run");

    // And the migrated ledger carries on.
    let e = sync(
        &mut l,
        "new-run",
        &tenant(&[("vm_1", 42, &[("uuid-1", (-5i64) as u64)])]),
        false,
        true,
        &no_unreadable(),
    );
    assert_eq!(e[&key("vm_1", "uuid-1")], Status::Active);
    drop(l);
    assert_eq!(
        Ledger::open_read_only(&path)
            .unwrap()
            .runs(5)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_newer_ledger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        Ledger::open(&path),
        Err(LedgerError::SchemaTooNew { .. })
    ));
}

#[test]
fn external_ids_are_kept_interned_and_survive_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let mut l = Ledger::open(&path).unwrap();
    l.begin_run("r1", "t").unwrap();
    let mut w = l.start_commit("r1").unwrap();
    // The same CVE on two assets is one interned row.
    w.finding_with_external_id("A", "f1", Status::New, 1, Some("CVE-2024-1"))
        .unwrap();
    w.finding_with_external_id("B", "f2", Status::New, 2, Some("CVE-2024-1"))
        .unwrap();
    w.finding_with_external_id("B", "f3", Status::New, 3, None)
        .unwrap();
    w.finish(&RunRecord::new("r1", run_status::COMPLETE, "t"))
        .unwrap();

    l.begin_run("r2", "t").unwrap();
    let mut w = l.start_commit("r2").unwrap();
    // Fixing (no id given) keeps the recorded one.
    w.finding("A", "f1", Status::Fixed, 1).unwrap();
    w.finish(&RunRecord::new("r2", run_status::COMPLETE, "t"))
        .unwrap();

    let known: Vec<(String, Status, Option<String>)> = l
        .known_findings()
        .unwrap()
        .map(|k| {
            let k = k.unwrap();
            (k.vendor_id, k.status, k.external_id)
        })
        .collect();
    assert_eq!(
        known,
        [
            ("f1".into(), Status::Fixed, Some("CVE-2024-1".into())),
            ("f2".into(), Status::New, Some("CVE-2024-1".into())),
            ("f3".into(), Status::New, None),
        ]
    );
    drop(l);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM external_ids", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}
