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
    // The channel counts KiB of document parts, in batches of about 1 MiB.
    let channel = &out.manifest.channels["sink_ndjson"];
    assert_eq!(channel["capacity"], 4096);
    let ndjson = std::fs::metadata(out_file(dir.path(), "etm-assets.ndjson"))
        .unwrap()
        .len();
    let kib = channel["sent_items"].as_u64().unwrap();
    // Parts are the file less its framing (`"finding":[`, commas, `]}`,
    // newlines) plus the asset ids: within a tenth of it.
    assert!(
        kib * 1024 >= ndjson * 9 / 10 && kib * 1024 <= ndjson * 11 / 10,
        "{kib} KiB for {ndjson} bytes"
    );
    // A batch closes once it holds 1 MiB.
    let batches = channel["sent_batches"].as_u64().unwrap();
    assert_eq!(batches, (kib * 1024).div_ceil(1 << 20), "{kib} KiB");
}

#[test]
fn the_readme_lists_the_csv_columns_in_their_order() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = readme
        .split("<!-- csv-columns:")
        .nth(1)
        .expect("the README's CSV column table");
    let listed: Vec<String> = table
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .nth(2)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect();
    let code: Vec<&str> = stages::sink::csv::COLUMNS.iter().map(|(h, _)| *h).collect();
    assert_eq!(listed, code);
}

#[test]
fn the_readme_config_for_webhook_and_csv_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .find(|b| b.contains("type = \"qualys_webhook\""))
        .and_then(|b| b.split("```").next())
        .expect("the README's webhook config");
    let cfg = pipeline::config::Config::parse(block).unwrap();
    let kinds: Vec<&str> = cfg.sinks.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, ["ndjson", "csv", "qualys_webhook"]);
}
