//! `orca-etm check`: the connector's "Registered" check. Validates the
//! config, the transform map and the token, and asks Orca for one row of
//! each kind, so a bad domain or token shows before a long run.

use std::path::Path;

use stages::fetch;

use crate::config::Config;

/// Lines to print on success; on failure the exit code and the message.
pub fn run(path: &Path, profile: Option<&str>) -> Result<Vec<String>, (u8, String)> {
    let cfg = Config::load_profile(path, profile).map_err(|e| (2, e.to_string()))?;
    let token = cfg.token().map_err(|e| (2, e.to_string()))?;
    let map = cfg.transform_map().map_err(|e| (2, e.to_string()))?;
    stages::transform::Transformer::new(map, cfg.scoring.clone())
        .map_err(|e| (2, e.to_string()))?;
    let base = fetch::base_url(&cfg.orca.domain, cfg.orca.allow_insecure_http)
        .map_err(|e| (2, e.to_string()))?;
    let mut lines = vec![
        format!("config {}: valid", path.display()),
        format!("orca base URL: {base}"),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (4, e.to_string()))?;
    let probe = rt.block_on(fetch::check(&cfg.orca, &token));
    match probe {
        Ok(found) => {
            for (query, said) in found {
                lines.push(format!("  {query}: {said}"));
            }
            lines.push("connection and token: OK".into());
        }
        Err(e) => return Err((4, e.to_string())),
    }
    check_webhooks(&cfg, &mut lines)?;
    Ok(lines)
}

/// Each Qualys webhook sink logs in once: a wrong password or gateway
/// shows here, not after a long pull.
fn check_webhooks(cfg: &Config, lines: &mut Vec<String>) -> Result<(), (u8, String)> {
    for s in &cfg.sinks {
        let stages::sink::SinkConfig::QualysWebhook(w) = s else {
            continue;
        };
        let name = stages::sink::config::intern(s.name());
        let creds = w
            .credentials()
            .map_err(|e| (2, format!("sink {name:?}: {e}")))?;
        let scope = stages::telemetry::Scope::new(&cfg.profile);
        let mut gw = stages::sink::qualys::client::Gateway::new(name, w, creds, scope)
            .map_err(|e| (2, format!("sink {name:?}: {e}")))?;
        gw.check_credentials()
            .map_err(|e| (4, format!("sink {name:?}: {e}")))?;
        lines.push(format!(
            "sink {name}: {} accepted the credentials",
            gw.location()
        ));
    }
    Ok(())
}
