//! Small things a new user meets at the command line: every subcommand
//! names itself in its errors alike, Orca's refusal reads as one sentence,
//! `--progress bar` off a terminal says it logs instead, a delta run says
//! what it left out, and `transform-map` without a flag says what it takes.

mod common;

use std::path::Path;

use common::cli::*;
use common::*;
use fixtures::tenant::TenantSpec;

fn spec() -> TenantSpec {
    TenantSpec {
        seed: 7,
        assets: 10,
        findings: 40,
        ..TenantSpec::default()
    }
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("out/manifest.json")).unwrap()).unwrap()
}

#[test]
fn every_subcommand_says_a_config_error_alike() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "no_such_key = 1\n{}",
            config_text("http://127.0.0.1:9/api/", dir.path(), "")
        ),
    );
    for cmd in ["sync", "check", "runs"] {
        let o = orca_etm(&[cmd, "--config", arg(&config)]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {o:?}");
        let err = stderr(&o);
        assert!(err.contains("no_such_key"), "{cmd}: {err}");
        let prefix = format!("orca-etm {cmd}: bad configuration: ");
        assert!(err.lines().any(|l| l.starts_with(&prefix)), "{cmd}: {err}");
    }
}

#[test]
fn a_refused_token_reads_as_one_sentence() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &config_text(&fake.url(), dir.path(), ""));
    let o = orca_etm_as(&["check", "--config", arg(&config)], "not-the-token");
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.starts_with("orca-etm check: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("or are invalid; check the token and its permissions"),
        "{line}"
    );
    assert!(!line.contains(".;"), "{line}");
}

#[test]
fn a_bar_off_a_terminal_says_it_logs_instead() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &config_text(&fake.url(), dir.path(), ""));
    // Output captured: stderr is a pipe, not a terminal.
    let o = orca_etm(&["sync", "--progress", "bar", "--config", arg(&config)]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = stderr(&o);
    let warned = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("not a terminal"))
        .count();
    assert_eq!(warned, 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn a_second_delta_run_says_how_many_assets_it_left_out() {
    let fake = Fake::synthetic(spec(), 0.0, "");
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &config_text(&fake.url(), dir.path(), ""));
    let args = [
        "sync",
        "--delta",
        "--progress",
        "off",
        "--config",
        arg(&config),
    ];

    // The first run of a profile is full: nothing to say about a delta.
    let o = orca_etm(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(!stdout(&o).contains("delta:"), "{}", stdout(&o));
    let first = manifest(dir.path());
    let assets = first["counts"]["assets"].as_u64().unwrap();
    assert!(assets > 0, "{first}");
    let base = first["run_id"].as_str().unwrap().to_string();

    // The second sees the same tenant: every asset unchanged, none published.
    let o = orca_etm(&args);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let second = manifest(dir.path());
    assert_eq!(second["delta"], true, "{second}");
    assert_eq!(second["counts"]["unchanged_assets"], assets, "{second}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines.contains(&"assets: 0  findings: 0"), "{out}");
    let want = format!("delta: {assets} assets unchanged since run {base} (left out)");
    assert!(lines.contains(&want.as_str()), "{out}");
}

#[test]
fn transform_map_without_a_flag_names_the_flags() {
    let o = orca_etm(&["transform-map"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--print-default"), "{}", stderr(&o));
    let help = orca_etm(&["transform-map", "--help"]);
    assert_eq!(help.status.code(), Some(0), "{help:?}");
    let help = stdout(&help);
    assert!(help.contains("--print-default"), "{help}");
    assert!(help.contains("transform_map"), "{help}");
}
