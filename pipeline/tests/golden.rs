//! The recorded pages of `fixtures/orca/` give `fixtures/golden/recorded.ndjson`,
//! byte for byte. Regenerate (after checking the difference!) with
//! `UPDATE_GOLDEN=1 cargo test -p pipeline --test golden`.

mod common;

use common::*;
use pipeline::manifest::RunStatus;

fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/recorded.ndjson")
}

#[test]
fn recorded_pages_give_the_golden_output() {
    let fake = Fake::pages(fixtures::recorded::pages(), "");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let got = std::fs::read(out_file(dir.path(), "etm-assets.ndjson")).unwrap();
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read(&path).expect("golden file missing: run with UPDATE_GOLDEN=1");
    if got != want {
        let (g, w) = (
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
        );
        for (i, (a, b)) in g.lines().zip(w.lines()).enumerate() {
            assert_eq!(a, b, "line {} differs", i + 1);
        }
        assert_eq!(g.lines().count(), w.lines().count(), "line counts differ");
    }
}
