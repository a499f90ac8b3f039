//! The run's sinks, from the `[[sink]]` tables: checked (credentials
//! included) before the run starts, opened when publishing begins.

use std::path::Path;

use stages::sink::qualys::Credentials;
use stages::sink::{
    config::intern, CsvSink, NdjsonSink, QualysWebhookSink, Sink, SinkConfig, SinkError,
};

use stages::telemetry::Scope;

use crate::config::{Config, ConfigError};

/// A sink ready to open: its settings and, for the webhook, its credentials.
pub struct Planned {
    pub config: SinkConfig,
    credentials: Option<Credentials>,
}

/// The sinks in force (none configured: one NDJSON sink into `output.dir`),
/// with every credential read now, so a missing one is a bad config (exit
/// 2) rather than a run that fails after pulling everything.
pub fn plan(cfg: &Config) -> Result<Vec<Planned>, ConfigError> {
    let configs = if cfg.sinks.is_empty() {
        vec![SinkConfig::Ndjson(Default::default())]
    } else {
        cfg.sinks.clone()
    };
    configs
        .into_iter()
        .map(|config| {
            let credentials = match &config {
                SinkConfig::QualysWebhook(w) => Some(
                    w.credentials()
                        .map_err(|e| ConfigError::Sink(format!("sink {:?}: {e}", config.name())))?,
                ),
                _ => None,
            };
            Ok(Planned {
                config,
                credentials,
            })
        })
        .collect()
}

/// Open every planned sink, in order; files appear only at commit.
pub fn open(
    planned: &[Planned],
    output_dir: &Path,
    scope: &Scope,
) -> Result<Vec<Box<dyn Sink>>, SinkError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::with_capacity(planned.len());
    for p in planned {
        let name = intern(p.config.name());
        match (&p.config, &p.credentials) {
            (SinkConfig::Ndjson(c), _) => {
                let dir = c.dir.as_deref().unwrap_or(output_dir);
                std::fs::create_dir_all(dir).map_err(|source| SinkError::Io {
                    sink: name,
                    path: dir.to_path_buf(),
                    source,
                })?;
                sinks.push(Box::new(NdjsonSink::named(name, dir)?));
            }
            (SinkConfig::Csv(c), _) => sinks.push(Box::new(CsvSink::create(c, output_dir)?)),
            (SinkConfig::QualysWebhook(c), Some(creds)) => sinks.push(Box::new(
                QualysWebhookSink::create(c, creds.clone(), output_dir, scope.clone())?,
            )),
            (SinkConfig::QualysWebhook(_), None) => {
                return Err(SinkError::Delivery {
                    sink: name,
                    message: "no credentials".into(),
                })
            }
        }
    }
    Ok(sinks)
}
