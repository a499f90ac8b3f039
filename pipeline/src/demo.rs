//! `orca-etm demo`: the main job against the built-in fake Orca tenant on
//! loopback, so a new user sees real output with no account and no token.

use std::path::PathBuf;

use fixtures::server::{FakeConfig, Source};
use fixtures::tenant::TenantSpec;
use stages::secret::Secret;

use crate::config::Config;
use crate::run::{sync, RunError, RunOutcome, SyncOptions};

/// Size and place of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out: PathBuf,
    pub assets: u64,
    pub findings: u64,
    pub seed: u64,
}

/// Start the fake Orca, run a sync against it, stop the fake.
pub fn run(opts: &DemoOptions, sync_opts: SyncOptions) -> Result<RunOutcome, RunError> {
    // A fresh random token each time: the demo shows the token path without
    // a secret to leak.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("fake-orca")
        .enable_all()
        .build()
        .map_err(|e| RunError::Io {
            path: opts.out.clone(),
            source: e,
        })?;
    let spec = TenantSpec {
        seed: opts.seed,
        assets: opts.assets,
        findings: opts.findings,
        ..TenantSpec::default()
    };
    let fake = rt
        .block_on(fixtures::server::start(FakeConfig {
            source: Source::Synthetic(spec),
            token: token.clone(),
            rate_limit_per_sec: 0.0,
            ..FakeConfig::default()
        }))
        .map_err(|e| RunError::Io {
            path: opts.out.clone(),
            source: e,
        })?;
    tracing::info!(url = %fake.base_url(), "fake Orca tenant listening on loopback");

    let text = format!(
        "[orca]\ndomain = \"{}\"\nallow_insecure_http = true\nrequests_per_second = 0\n[output]\ndir = \"{}\"\n[run]\nwork_dir = \"{}\"\nstate_dir = \"{}\"\n",
        fake.base_url(),
        toml_escape(&opts.out.display().to_string()),
        toml_escape(&opts.out.join(".work").display().to_string()),
        toml_escape(&opts.out.join(".state").display().to_string()),
    );
    let cfg = Config::parse(&text).map_err(|message| {
        RunError::Config(crate::config::ConfigError::Invalid {
            path: PathBuf::from("<demo>"),
            message,
        })
    })?;
    let outcome = sync(&cfg, &Secret::new(token), sync_opts);
    let _ = std::fs::remove_dir_all(opts.out.join(".work"));
    rt.block_on(fake.shutdown());
    outcome
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
