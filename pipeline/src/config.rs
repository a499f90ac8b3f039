//! The `orca-etm` configuration file (TOML).
//!
//! Settings only: runtime state lives in `run`. The Orca token is never a
//! setting: it comes from the environment or a file named here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use stages::dedupe::DedupeConfig;
use stages::fetch::{FetchConfig, Kinds};
use stages::secret::Secret;
use stages::sink::SinkConfig;
use stages::transform::{ScoringConfig, TransformMap};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Orca tenant: domain, paging, rate, timeouts, retries. Every key
    /// has a default (the domain: `api.orcasecurity.io`), so the table may
    /// be left out.
    #[serde(default)]
    pub orca: FetchConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub dedupe: DedupeConfig,
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// A transform map file replacing the default (clone it with
    /// `orca-etm transform-map --print-default`). Relative to the config file.
    #[serde(default)]
    pub transform_map: Option<PathBuf>,
    /// "Preserve Findings Missing in Latest Sync": findings absent from this
    /// run keep their previous status instead of being marked FIXED.
    #[serde(default)]
    pub preserve_missing: bool,
    /// What a partial run (a query not read through, an interrupted run)
    /// does with what it read: publish it (true, the default: open findings
    /// only, nothing FIXED) or publish nothing, leaving the previous output
    /// in place (false), for a downstream that would take a finding missing
    /// from a document for a fixed one.
    #[serde(default = "publish_partial_default")]
    pub publish_partial: bool,
    /// The connector profile this config is: it names the ledger
    /// (`<run.state_dir>/<profile>/ledger.db`), so two profiles never share
    /// findings' history.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Publish only the assets whose document changed since the last run
    /// that committed, and those carrying newly FIXED findings (`--delta`
    /// sets it too). The first run of a profile is always full.
    #[serde(default)]
    pub delta: bool,
    /// What this profile pulls: `vulnerabilities` (findings) and/or
    /// `host_assets` (the seed's "Findings Type").
    #[serde(default = "all_findings_types")]
    pub findings_types: Vec<FindingsType>,
    /// Prometheus: the scrape endpoint and the Pushgateway.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where documents go: `[[sink]]` tables (`type = "ndjson" | "csv" |
    /// "qualys_webhook"`). None: one NDJSON sink into `output.dir`.
    #[serde(default, rename = "sink", deserialize_with = "de_sinks")]
    pub sinks: Vec<SinkConfig>,
}

/// What a profile pulls from Orca.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingsType {
    /// VulnerabilityV2 findings (published under their asset ids).
    Vulnerabilities,
    /// The host assets of the VM models.
    HostAssets,
}

fn all_findings_types() -> Vec<FindingsType> {
    vec![FindingsType::Vulnerabilities, FindingsType::HostAssets]
}

/// Prometheus settings (`--metrics-listen` and `--pushgateway` override).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (and `/healthz`, `/readyz`) here during a sync;
    /// `serve` always listens (default `127.0.0.1:9464`).
    pub listen: Option<SocketAddr>,
    /// Push a final snapshot of each run to this Pushgateway.
    pub pushgateway: Option<String>,
    /// The Pushgateway `job` grouping label.
    pub job: String,
    /// Alert when no run completed for this long (exported as
    /// `orca_etm_run_success_max_age_seconds` for the alert rule).
    #[serde(deserialize_with = "de_duration")]
    pub success_max_age: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            pushgateway: None,
            job: "orca-etm".into(),
            success_max_age: Duration::from_secs(26 * 3600),
        }
    }
}

/// `"26h"`, `"90m"`, `"30s"` or a number of seconds.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => stages::fetch::config::parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// `[[sink]]` tables one by one, so that a mistake names its table: the
/// tagged enum reads each table whole, and TOML's position for an error
/// inside it is the first `[[sink]]` of the file, whichever table was wrong.
fn de_sinks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SinkConfig>, D::Error> {
    use serde::de::Error;
    let tables = Vec::<toml::Value>::deserialize(d)?;
    let count = tables.len();
    tables
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = t
                .get("type")
                .and_then(|v| v.as_str())
                .map(|k| format!(" (type = {k:?})"))
                .unwrap_or_default();
            SinkConfig::deserialize(t).map_err(|e| {
                D::Error::custom(format!(
                    "[[sink]] {} of {count}{kind}: {}",
                    i + 1,
                    e.message()
                ))
            })
        })
        .collect()
}

/// A TOML error as people read it; one inside a `[[sink]]` table (see
/// [`de_sinks`]) points at that table's header, not at the first one.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let sink = e
        .message()
        .strip_prefix("[[sink]] ")
        .and_then(|rest| rest.split_once(" of "))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    let header = sink.and_then(|n| {
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("[[sink]]"))
            .nth(n.checked_sub(1)?)
    });
    match header {
        Some((line, _)) => format!("TOML error at line {}: {}", line + 1, e.message()),
        None => e.to_string(),
    }
}

fn publish_partial_default() -> bool {
    true
}

fn default_profile() -> String {
    "default".into()
}

/// A profile name names folders (its ledger's, its work's): letters,
/// digits, `-`, `_` and `.`, not starting with a dot.
pub fn check_profile_name(name: &str) -> Result<(), String> {
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(name_ok) {
        return Err(format!(
            "profile {name:?}: use letters, digits, '-', '_' and '.' (it names a folder)"
        ));
    }
    Ok(())
}

/// The ledger file of a profile in a state folder.
pub fn ledger_path(state_dir: &Path, profile: &str) -> PathBuf {
    state_dir.join(profile).join("ledger.db")
}

/// Where the Orca API token comes from: an environment variable, or a file
/// (first line, trimmed). Never the command line, never this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub api_token_env: String,
    pub api_token_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_token_env: "ORCA_API_TOKEN".into(),
            api_token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Folder of `etm-assets.ndjson`, `manifest.json`, `dead-letters.ndjson`.
    pub dir: PathBuf,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: PathBuf::from("orca-etm-out"),
        }
    }
}

/// How the run uses the machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Spill files and other run-private state (removed after each run).
    pub work_dir: PathBuf,
    /// State kept across runs: each profile's ledger of findings.
    pub state_dir: PathBuf,
    /// Threads that parse pages and apply the transform map (default: one
    /// per core). Each parses a page, then transforms its rows in place.
    pub workers: usize,
    /// Memory the run may use, in MiB. Channel capacities and the assembly
    /// budget are derived from it, so peak memory follows this, not the tenant.
    pub memory_budget_mib: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            work_dir: PathBuf::from("orca-etm-work"),
            state_dir: PathBuf::from("orca-etm-state"),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_budget_mib: 256,
        }
    }
}

impl RunConfig {
    /// Pages waiting to be parsed (each up to a few MiB of JSON).
    pub fn page_queue(&self) -> usize {
        ((self.memory_budget_mib / 64) as usize).clamp(2, 16)
    }

    /// Records in flight between the workers and the spill.
    pub fn record_queue(&self) -> usize {
        ((self.memory_budget_mib * 16) as usize).clamp(1_000, 64_000)
    }
}

/// A configuration that cannot be used; exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no Orca API token: set the environment variable {env} or auth.api_token_file")]
    NoToken { env: String },
    #[error("cannot read the Orca API token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("transform map {path}: {message}")]
    TransformMap { path: PathBuf, message: String },
    /// A sink that cannot be opened as configured (e.g. no Qualys password).
    #[error("{0}")]
    Sink(String),
}

impl Config {
    /// Read and validate a config file; relative paths in it are taken from
    /// the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// The config of one profile, from a sync config or a serve config:
    /// `sync`, `check` and `runs` take either, so a profile the daemon runs
    /// can be checked, run by hand and listed with the same file. `profile`
    /// picks one of a serve config's `[[profiles]]` (needed when it has
    /// several); for a sync config it must be the config's own.
    pub fn load_profile(path: &Path, profile: Option<&str>) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        // `[[profiles]]` or `profiles = [...]`: a serve config either way.
        let is_serve = toml::from_str::<toml::Table>(&text)
            .map(|t| t.contains_key("profiles"))
            .unwrap_or(false);
        if !is_serve {
            let cfg = Config::parse_in(&text, base).map_err(invalid)?;
            // Another name would mean another ledger beside the same output
            // folder: two histories publishing over each other's files.
            match profile {
                Some(name) if name != cfg.profile => {
                    return Err(invalid(format!(
                        "--profile {name:?}: this sync config is profile {:?} (its `profile` key); \
                         --profile picks one of a serve config's [[profiles]]. For another \
                         profile, use a config of its own",
                        cfg.profile
                    )))
                }
                _ => return Ok(cfg),
            }
        }
        let serve = crate::serve::ServeConfig::parse_in(&text, base).map_err(invalid)?;
        let names = || {
            serve
                .profiles
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let found = match profile {
            Some(name) => serve
                .profiles
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    invalid(format!(
                        "no profile {name:?} in [[profiles]] (it has: {})",
                        names()
                    ))
                })?,
            None => match serve.profiles.as_slice() {
                [only] => only,
                _ => {
                    return Err(invalid(format!(
                        "a serve config with several profiles: say which with --profile ({})",
                        names()
                    )))
                }
            },
        };
        Ok(found.config.clone())
    }

    /// [`Config::parse`], relative paths taken from `base`.
    pub fn parse_in(text: &str, base: &Path) -> Result<Config, String> {
        let mut cfg = Config::parse(text)?;
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// Parse and validate TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        cfg.orca.validate()?;
        cfg.scoring.validate().map_err(|e| e.to_string())?;
        if cfg.run.workers == 0 {
            return Err("run.workers must be at least 1".into());
        }
        if cfg.dedupe.partitions == 0 || cfg.dedupe.partitions > 4096 {
            return Err("dedupe.partitions must be between 1 and 4096".into());
        }
        if cfg.run.memory_budget_mib < 32 {
            return Err("run.memory_budget_mib must be at least 32".into());
        }
        if cfg.findings_types.is_empty() {
            return Err("findings_types must name vulnerabilities, host_assets or both".into());
        }
        if cfg.metrics.job.is_empty() {
            return Err("metrics.job must not be empty".into());
        }
        if cfg.metrics.success_max_age.is_zero() {
            return Err("metrics.success_max_age must be greater than zero".into());
        }
        check_profile_name(&cfg.profile)?;
        stages::sink::config::validate_all(&cfg.sinks, &cfg.output.dir)?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            Some(&mut self.output.dir),
            Some(&mut self.run.work_dir),
            Some(&mut self.run.state_dir),
            self.transform_map.as_mut(),
            self.auth.api_token_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for s in &mut self.sinks {
            s.resolve_paths(base);
        }
    }

    /// What the fetch stage pulls.
    pub fn kinds(&self) -> Kinds {
        Kinds {
            assets: self.findings_types.contains(&FindingsType::HostAssets),
            findings: self.findings_types.contains(&FindingsType::Vulnerabilities),
        }
    }

    /// This profile's ledger file.
    pub fn ledger_path(&self) -> PathBuf {
        ledger_path(&self.run.state_dir, &self.profile)
    }

    /// The transform map in force: the configured file, or the default.
    pub fn transform_map(&self) -> Result<TransformMap, ConfigError> {
        match &self.transform_map {
            None => Ok(TransformMap::default_map()),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConfigError::TransformMap {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                TransformMap::from_toml(&text).map_err(|e| ConfigError::TransformMap {
                    path: path.clone(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// The Orca token: from the file when one is named, else the environment.
    pub fn token(&self) -> Result<Secret, ConfigError> {
        if let Some(path) = &self.auth.api_token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                path: path.clone(),
                source,
            })?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if !token.is_empty() {
                // The file is the config's own word; say so when the
                // environment holds another token that is being ignored.
                if std::env::var(&self.auth.api_token_env).is_ok_and(|t| !t.trim().is_empty()) {
                    tracing::warn!(
                        file = %path.display(),
                        env = %self.auth.api_token_env,
                        "both auth.api_token_file and the environment variable hold an Orca token: using the file's"
                    );
                }
                return Ok(Secret::new(token));
            }
        }
        match std::env::var(&self.auth.api_token_env) {
            Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
            _ => Err(ConfigError::NoToken {
                env: self.auth.api_token_env.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_defaults() {
        let cfg = Config::parse("[orca]\ndomain = \"app.eu.orcasecurity.io\"\n").unwrap();
        assert_eq!(cfg.orca.domain, "app.eu.orcasecurity.io");
        assert_eq!(cfg.orca.page_size, 1000);
        assert_eq!(cfg.output.dir, PathBuf::from("orca-etm-out"));
        assert_eq!(cfg.auth.api_token_env, "ORCA_API_TOKEN");
        assert!(!cfg.preserve_missing);
        assert!(cfg.publish_partial);
        assert!(!cfg.delta);
        assert_eq!(
            cfg.ledger_path(),
            PathBuf::from("orca-etm-state/default/ledger.db")
        );
        assert_eq!(cfg.scoring.default_severity, 3);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let e = Config::parse("[orca]\ndomain = \"x\"\n[output]\ndri = \"y\"\n").unwrap_err();
        assert!(e.contains("dri"), "{e}");
        let e = Config::parse("[orca]\ndomain = \"x\"\n[run]\nworkers = 0\n").unwrap_err();
        assert!(e.contains("run.workers"), "{e}");
        assert!(Config::parse("apiToken = \"secret\"\n[orca]\ndomain = \"x\"\n").is_err());
        for bad in ["", "../up", ".hidden", "a/b", "sp ace"] {
            let text = format!("profile = {bad:?}\n[orca]\ndomain = \"x\"\n");
            let e = Config::parse(&text).unwrap_err();
            assert!(e.contains("profile"), "{bad}: {e}");
        }
        assert_eq!(
            Config::parse("profile = \"eu-prod_2\"\n[orca]\ndomain = \"x\"\n")
                .unwrap()
                .profile,
            "eu-prod_2"
        );
    }

    #[test]
    fn token_from_file_or_env_and_never_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok-from-file\n").unwrap();
        let mut cfg = Config::parse("[orca]\ndomain = \"x\"\n").unwrap();
        cfg.auth.api_token_env = "ORCA_ETM_TEST_TOKEN_UNSET_VAR".into();
        assert!(matches!(cfg.token(), Err(ConfigError::NoToken { .. })));
        cfg.auth.api_token_file = Some(file);
        assert_eq!(cfg.token().unwrap().expose(), "tok-from-file");
    }

    #[test]
    fn a_mistake_in_a_sink_table_names_that_table_and_its_line() {
        let text = "[orca]\ndomain = \"x\"\n\n[[sink]]\ntype = \"ndjson\"\n\n[[sink]]\ntype = \"csv\"\nformulaguard = true\n";
        let e = Config::parse(text).unwrap_err();
        assert!(
            e.starts_with("TOML error at line 7: [[sink]] 2 of 2 (type = \"csv\"): unknown field `formulaguard`"),
            "{e}"
        );
        let e = Config::parse("[[sink]]\ntype = \"nd\"\n").unwrap_err();
        assert!(
            e.starts_with(
                "TOML error at line 1: [[sink]] 1 of 1 (type = \"nd\"): unknown variant `nd`"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_orca_table_may_be_left_out() {
        let cfg = Config::parse("profile = \"p\"\n").unwrap();
        assert_eq!(cfg.orca.domain, "api.orcasecurity.io");
        assert_eq!(cfg.orca.page_size, 1000);
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("orca-etm.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_profile_is_picked_from_a_serve_config_and_must_be_a_sync_configs_own() {
        let dir = tempfile::tempdir().unwrap();
        let sync = write(dir.path(), "profile = \"eu\"\n[orca]\ndomain = \"x\"\n");
        assert_eq!(Config::load_profile(&sync, None).unwrap().profile, "eu");
        let eu = Config::load_profile(&sync, Some("eu")).unwrap();
        assert_eq!(
            eu.ledger_path(),
            dir.path().join("orca-etm-state/eu/ledger.db")
        );
        // Not another profile's ledger beside this one's output.
        let e = Config::load_profile(&sync, Some("us")).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");
        assert!(
            e.to_string().contains("this sync config is profile \"eu\""),
            "{e}"
        );

        let one = "[orca]\ndomain = \"x\"\n[[profiles]]\nname = \"vulns\"\nschedule = { once = \"now\" }\n";
        let serve = write(dir.path(), one);
        let cfg = Config::load_profile(&serve, None).unwrap();
        assert_eq!(cfg.profile, "vulns");
        assert_eq!(
            cfg.ledger_path(),
            dir.path().join("orca-etm-state/vulns/ledger.db")
        );

        let two =
            format!("{one}[[profiles]]\nname = \"assets\"\nschedule = {{ every = \"6h\" }}\n");
        let serve = write(dir.path(), &two);
        let e = Config::load_profile(&serve, None).unwrap_err().to_string();
        assert!(
            e.contains("--profile") && e.contains("vulns, assets"),
            "{e}"
        );
        assert_eq!(
            Config::load_profile(&serve, Some("assets"))
                .unwrap()
                .profile,
            "assets"
        );
        let e = Config::load_profile(&serve, Some("nope")).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("no profile \"nope\""), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orca-etm.toml");
        std::fs::write(
            &path,
            "transform_map = \"map.toml\"\n[orca]\ndomain = \"x\"\n[output]\ndir = \"out\"\n",
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.output.dir, dir.path().join("out"));
        assert_eq!(cfg.transform_map, Some(dir.path().join("map.toml")));
        assert!(matches!(
            cfg.transform_map(),
            Err(ConfigError::TransformMap { .. })
        ));
    }
}
