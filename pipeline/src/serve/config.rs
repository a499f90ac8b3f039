//! The `orca-etm serve` configuration: the settings of a sync config,
//! shared by every profile, plus `[[profiles]]`.
//!
//! ```toml
//! [orca]
//! domain = "app.eu.orcasecurity.io"
//! [metrics]
//! listen = "0.0.0.0:9464"
//!
//! [[profiles]]
//! name = "vulnerabilities"
//! schedule = { cron = "0 2 * * *" }
//!
//! [[profiles]]
//! name = "inventory"
//! findings_types = ["host_assets"]
//! schedule = { every = "6h" }
//! ```
//!
//! Each profile is a sync of its own: its ledger is
//! `<run.state_dir>/<name>/ledger.db` and its output `<output.dir>/<name>`
//! unless it names another `output_dir`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::schedule::{Schedule, ScheduleSpec};
use crate::config::{check_profile_name, Config, ConfigError, FindingsType};

/// A serve config, checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The shared settings (their `profile` is unused).
    pub base: Config,
    pub profiles: Vec<Profile>,
}

/// One profile: what it pulls, how it maps it, when it runs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// An inactive profile is never run (it stays in the config, as in the seed).
    pub active: bool,
    pub schedule: Schedule,
    /// The sync config of this profile's runs.
    pub config: Config,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "active_by_default")]
    active: bool,
    schedule: ScheduleSpec,
    findings_types: Option<Vec<FindingsType>>,
    transform_map: Option<PathBuf>,
    output_dir: Option<PathBuf>,
    preserve_missing: Option<bool>,
    publish_partial: Option<bool>,
    delta: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    success_max_age: Option<Duration>,
}

fn active_by_default() -> bool {
    true
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::de_duration(d).map(Some)
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        ServeConfig::parse_in(&text, base).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse `text`, relative paths taken from `dir`.
    pub fn parse_in(text: &str, dir: &Path) -> Result<ServeConfig, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        if table.contains_key("profile") {
            return Err(
                "a serve config names its profiles in [[profiles]], not with `profile`".into(),
            );
        }
        let specs: Vec<ProfileSpec> = match table.remove("profiles") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| format!("profiles: {e}"))?,
            None => Vec::new(),
        };
        if specs.is_empty() {
            return Err("no [[profiles]]: a serve config needs at least one".into());
        }
        let shared = toml::to_string(&table).map_err(|e| e.to_string())?;
        let base = Config::parse_in(&shared, dir)?;
        let mut names = HashSet::new();
        let mut profiles = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.clone();
            check_profile_name(&name)?;
            if !names.insert(name.clone()) {
                return Err(format!("profile {name:?} is declared twice"));
            }
            let p = profile(&base, spec, dir).map_err(|e| format!("profile {name:?}: {e}"))?;
            profiles.push(p);
        }
        Ok(ServeConfig { base, profiles })
    }
}

fn profile(base: &Config, spec: ProfileSpec, dir: &Path) -> Result<Profile, String> {
    let schedule = Schedule::parse(&spec.schedule)?;
    let mut cfg = base.clone();
    cfg.profile = spec.name.clone();
    cfg.output.dir = match spec.output_dir {
        Some(d) => dir.join(d),
        None => base.output.dir.join(&spec.name),
    };
    if let Some(m) = spec.transform_map {
        cfg.transform_map = Some(dir.join(m));
    }
    if let Some(t) = spec.findings_types {
        if t.is_empty() {
            return Err("findings_types must name vulnerabilities, host_assets or both".into());
        }
        cfg.findings_types = t;
    }
    if let Some(p) = spec.preserve_missing {
        cfg.preserve_missing = p;
    }
    if let Some(p) = spec.publish_partial {
        cfg.publish_partial = p;
    }
    if let Some(d) = spec.delta {
        cfg.delta = d;
    }
    if let Some(a) = spec.success_max_age {
        if a.is_zero() {
            return Err("success_max_age must be greater than zero".into());
        }
        cfg.metrics.success_max_age = a;
    }
    // A transform map that does not load fails the daemon's start, not
    // its first run hours later.
    cfg.transform_map().map_err(|e| e.to_string())?;
    Ok(Profile {
        name: spec.name,
        description: spec.description,
        active: spec.active,
        schedule,
        config: cfg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "[orca]\ndomain = \"x\"\n[output]\ndir = \"out\"\n[run]\nstate_dir = \"state\"\n";

    fn parse(profiles: &str) -> Result<ServeConfig, String> {
        ServeConfig::parse_in(&format!("{BASE}{profiles}"), Path::new("/etc/orca-etm"))
    }

    #[test]
    fn profiles_get_their_own_ledger_and_output() {
        let c = parse(
            "[[profiles]]\nname = \"vulns\"\nfindings_types = [\"vulnerabilities\"]\nschedule = { cron = \"0 2 * * *\" }\n\
             [[profiles]]\nname = \"assets\"\nfindings_types = [\"host_assets\"]\nschedule = { every = \"6h\" }\noutput_dir = \"/srv/assets\"\npreserve_missing = true\npublish_partial = false\n\
             [[profiles]]\nname = \"old\"\nactive = false\nschedule = { once = \"now\" }\ndescription = \"kept for later\"\n",
        )
        .unwrap();
        let [v, a, o] = &c.profiles[..] else {
            panic!("three profiles")
        };
        assert_eq!(
            v.config.ledger_path(),
            Path::new("/etc/orca-etm/state/vulns/ledger.db")
        );
        assert_eq!(
            a.config.ledger_path(),
            Path::new("/etc/orca-etm/state/assets/ledger.db")
        );
        assert_eq!(v.config.output.dir, Path::new("/etc/orca-etm/out/vulns"));
        assert_eq!(a.config.output.dir, Path::new("/srv/assets"));
        assert!(v.config.kinds().findings && !v.config.kinds().assets);
        assert!(a.config.kinds().assets && !a.config.kinds().findings);
        assert!(a.config.preserve_missing && !v.config.preserve_missing);
        assert!(!a.config.publish_partial && v.config.publish_partial);
        assert!(v.active && a.active && !o.active);
        assert!(o.config.kinds().assets && o.config.kinds().findings);
        assert!(matches!(v.schedule, Schedule::Cron(_)));
        assert!(matches!(a.schedule, Schedule::Every(d) if d == Duration::from_secs(6 * 3600)));
        assert!(matches!(o.schedule, Schedule::Once(None)));
        assert_eq!(o.description, "kept for later");
    }

    #[test]
    fn mistakes_are_refused_with_what_is_wrong() {
        for (profiles, want) in [
            ("", "at least one"),
            ("[[profiles]]\nname = \"a\"\n", "schedule"),
            ("[[profiles]]\nname = \"a\"\nschedule = { cron = \"99 * * * *\" }\n", "profile \"a\": cron"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\n[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\n", "twice"),
            ("[[profiles]]\nname = \"../x\"\nschedule = { every = \"1h\" }\n", "names a folder"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\nfindings_types = []\n", "findings_types"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\nfindings_types = [\"cloud_accounts\"]\n", "cloud_accounts"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\nsheduel = 1\n", "sheduel"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\", cron = \"* * * * *\" }\n", "schedule"),
            ("[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\ntransform_map = \"missing.toml\"\n", "missing.toml"),
            ("profile = \"x\"\n[[profiles]]\nname = \"a\"\nschedule = { every = \"1h\" }\n", "[[profiles]]"),
        ] {
            let text = if profiles.starts_with("profile =") {
                format!("{profiles}{BASE}")
            } else {
                format!("{BASE}{profiles}")
            };
            let e = ServeConfig::parse_in(&text, Path::new("/nonexistent")).unwrap_err();
            assert!(e.contains(want), "{profiles:?}: {e}");
        }
    }
}
