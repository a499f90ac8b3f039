//! `orca-etm demo`: the main job against the built-in fake Orca tenant on
//! loopback, so a new user sees real output with no account and no token.
//! With `--qualys`, the fake Qualys gateway is started too and the run
//! delivers to three sinks: NDJSON, CSV and the CSAM webhook.

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
    /// Also deliver to the fake Qualys gateway (and write the CSV).
    pub qualys: bool,
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

    let gateway = if opts.qualys {
        Some(start_gateway(&rt, opts)?)
    } else {
        None
    };

    let mut text = format!(
        "[orca]\ndomain = \"{}\"\nallow_insecure_http = true\nrequests_per_second = 0\n[output]\ndir = \"{}\"\n[run]\nwork_dir = \"{}\"\nstate_dir = \"{}\"\n",
        fake.base_url(),
        toml_escape(&opts.out.display().to_string()),
        toml_escape(&opts.out.join(".work").display().to_string()),
        toml_escape(&opts.out.join(".state").display().to_string()),
    );
    if let Some(g) = &gateway {
        text.push_str(&format!(
            "[[sink]]\ntype = \"ndjson\"\n[[sink]]\ntype = \"csv\"\n\
             [[sink]]\ntype = \"qualys_webhook\"\ngateway = \"{}\"\nallow_insecure_http = true\n\
             connector_uuid = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
            g.fake.base_url(),
            g.connector_uuid,
            DEMO_USER,
            toml_escape(&g.password_file.display().to_string()),
        ));
    }
    let cfg = Config::parse(&text).map_err(|message| {
        RunError::Config(crate::config::ConfigError::Invalid {
            path: PathBuf::from("<demo>"),
            message,
        })
    })?;
    let outcome = sync(&cfg, &Secret::new(token), sync_opts);
    let _ = std::fs::remove_dir_all(opts.out.join(".work"));
    rt.block_on(fake.shutdown());
    if let Some(g) = gateway {
        let _ = std::fs::remove_file(&g.password_file);
        let accepted = g.fake.accepted();
        let findings: usize = accepted
            .values()
            .map(|a| a.findings.as_array().map_or(0, Vec::len))
            .sum();
        tracing::info!(
            assets = accepted.len(),
            findings,
            sync_calls = g.fake.calls().iter().filter(|c| c.sync_no > 0).count(),
            "the fake Qualys gateway accepted"
        );
        rt.block_on(g.fake.shutdown());
    }
    outcome
}

const DEMO_USER: &str = "demo";

/// The fake gateway of `--qualys` and what the webhook sink needs to log in.
struct DemoGateway {
    fake: fixtures::qualys::FakeQualys,
    connector_uuid: String,
    /// The random password, in a file of the demo's state folder (removed
    /// after the run): the sink reads passwords from a file or the
    /// environment, never from the config.
    password_file: PathBuf,
}

fn start_gateway(
    rt: &tokio::runtime::Runtime,
    opts: &DemoOptions,
) -> Result<DemoGateway, RunError> {
    let io = |path: PathBuf| move |source| RunError::Io { path, source };
    let password = uuid::Uuid::new_v4().simple().to_string();
    let connector_uuid = uuid::Uuid::new_v4().to_string();
    let state = opts.out.join(".state");
    std::fs::create_dir_all(&state).map_err(io(state.clone()))?;
    let password_file = state.join("demo-qualys-password");
    std::fs::write(&password_file, format!("{password}\n")).map_err(io(password_file.clone()))?;
    let fake = rt
        .block_on(fixtures::qualys::start(fixtures::qualys::GatewayConfig {
            username: DEMO_USER.into(),
            password,
            connector_uuid: connector_uuid.clone(),
            ..fixtures::qualys::GatewayConfig::default()
        }))
        .map_err(io(opts.out.clone()))?;
    tracing::info!(url = %fake.base_url(), "fake Qualys gateway listening on loopback");
    Ok(DemoGateway {
        fake,
        connector_uuid,
        password_file,
    })
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
