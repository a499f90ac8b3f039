//! Several sinks per run: every document to each, each sink a stage of its
//! own in the manifest.

mod common;

use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::manifest::RunStatus;

fn small() -> TenantSpec {
    TenantSpec {
        seed: 3,
        assets: 150,
        findings: 1_500,
        ..TenantSpec::default()
    }
}

#[test]
fn the_manifest_shows_each_sink_as_a_stage_and_a_channel() {
    let fake = Fake::synthetic(small(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&config(&fake.url(), dir.path(), ""));
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );
    let docs = out.manifest.counts.assets;
    assert!(docs >= 150);
    let stage = &out.manifest.stages["sink_ndjson"];
    assert_eq!(stage["workers"], 1);
    assert_eq!(stage["items_in"], docs);
    assert_eq!(stage["items_out"], docs);
    let channel = &out.manifest.channels["sink_ndjson"];
    assert_eq!(channel["sent_items"], docs);
    assert_eq!(channel["capacity"], 512);
    // Batches of at most 64 documents.
    let batches = channel["sent_batches"].as_u64().unwrap();
    assert_eq!(batches, docs.div_ceil(64));
}
