//! Shared test harness: a fake Orca on loopback and a sync against it.
#![allow(dead_code)]

pub mod cli;
pub mod gateway;
pub mod items;
pub mod prom;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fixtures::faults::FaultScript;
use fixtures::server::{FakeConfig, FakeOrca, Source};
use fixtures::tenant::TenantSpec;
use pipeline::config::Config;
use pipeline::run::{sync, RunOutcome, SyncOptions};
use serde_json::Value;
use stages::secret::Secret;

pub const TOKEN: &str = "test-token-5f1d2c9e-never-print-me";

/// A fake Orca running on its own runtime for the length of a test.
pub struct Fake {
    pub rt: tokio::runtime::Runtime,
    pub orca: Option<FakeOrca>,
}

impl Fake {
    pub fn start(cfg: FakeConfig) -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let orca = rt.block_on(fixtures::server::start(cfg)).unwrap();
        Fake {
            rt,
            orca: Some(orca),
        }
    }

    pub fn synthetic(spec: TenantSpec, rate: f64, faults: &str) -> Fake {
        Fake::start(FakeConfig {
            source: Source::Synthetic(spec),
            token: TOKEN.into(),
            rate_limit_per_sec: rate,
            faults: FaultScript::from_toml(faults).unwrap(),
            ..FakeConfig::default()
        })
    }

    /// Serve `pages` (model → bodies) and nothing else.
    pub fn pages(pages: BTreeMap<String, Vec<Bytes>>, faults: &str) -> Fake {
        Fake::start(FakeConfig {
            source: Source::Pages(pages),
            token: TOKEN.into(),
            rate_limit_per_sec: 0.0,
            faults: FaultScript::from_toml(faults).unwrap(),
            ..FakeConfig::default()
        })
    }

    pub fn orca(&self) -> &FakeOrca {
        self.orca.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.orca().base_url()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(o) = self.orca.take() {
            self.rt.block_on(o.shutdown());
        }
    }
}

/// Config text for a sync against `url` writing into `dir`; `orca_extra`
/// lines (`key = value`) override the `[orca]` defaults of the tests.
pub fn config_text(url: &str, dir: &Path, orca_extra: &str) -> String {
    let mut orca: Vec<(String, String)> = [
        ("domain", format!("\"{url}\"")),
        ("allow_insecure_http", "true".into()),
        ("requests_per_second", "0".into()),
        ("backoff_base", "\"10ms\"".into()),
        ("backoff_max", "\"200ms\"".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for line in orca_extra.lines().filter(|l| l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match orca.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => orca.push((k, v)),
        }
    }
    let orca: String = orca.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    format!(
        "[orca]\n{orca}[output]\ndir = \"{}\"\n[run]\nwork_dir = \"{}\"\nstate_dir = \"{}\"\n",
        dir.join("out").display(),
        dir.join("work").display(),
        dir.join("state").display()
    )
}

pub fn config(url: &str, dir: &Path, orca_extra: &str) -> Config {
    Config::parse(&config_text(url, dir, orca_extra)).unwrap()
}

pub fn run(cfg: &Config) -> RunOutcome {
    let opts = SyncOptions {
        progress: pipeline::progress::Mode::Off,
        cancel: None,
        handle_signals: false,
        delta: false,
    };
    sync(cfg, &Secret::new(TOKEN), opts).unwrap()
}

/// The documents of an NDJSON output.
pub fn docs(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn doc_by_id<'a>(docs: &'a [Value], id: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["externalAssetId"] == id)
        .unwrap_or_else(|| panic!("no document for {id}"))
}

pub fn case_body(name: &str) -> Bytes {
    Bytes::from(std::fs::read(fixtures::cases_dir().join(name)).unwrap())
}

/// Model → one page.
pub fn one_page(model: &str, body: Bytes) -> BTreeMap<String, Vec<Bytes>> {
    BTreeMap::from([(model.to_string(), vec![body])])
}

pub fn out_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("out").join(name)
}

pub fn all_findings(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .flat_map(|d| d["finding"].as_array().unwrap().iter())
        .collect()
}
