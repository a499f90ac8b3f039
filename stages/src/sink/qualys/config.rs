//! The `qualys_webhook` sink's settings. Durations take the fetch stage's
//! forms (`30`, `"500ms"`, `"4h"`).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::profile::PayloadProfile;
use crate::fetch::config::de_duration;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Default `qualys_webhook`.
    pub name: Option<String>,
    /// The platform's gateway: `gateway.qg1.apps.qualys.com` or a full
    /// `https://…` URL; plain `http://` only with `allow_insecure_http`,
    /// and then only to a loopback address (tests).
    pub gateway: String,
    pub allow_insecure_http: bool,
    /// The connector's UUID, from the Qualys UI.
    pub connector_uuid: String,
    /// The Qualys user; else read from the environment variable `username_env`.
    pub username: Option<String>,
    pub username_env: String,
    /// The password comes from `password_file` (first line) when set, else
    /// from the environment variable `password_env`; never from this file.
    pub password_env: String,
    pub password_file: Option<PathBuf>,
    /// How `assetData[]` is laid out (see `profile`): `csam-v1`, `csam-v1-flat`.
    pub payload_profile: String,
    /// `connectorMetaData.source`.
    pub source: String,
    /// Assets per request, and the request body size that closes a batch early.
    pub batch_assets: usize,
    pub batch_bytes: usize,
    /// How long a JWT lives when the token does not say (`exp`).
    #[serde(deserialize_with = "de_duration")]
    pub jwt_lifetime: Duration,
    /// A new JWT is fetched this long before the old one expires.
    #[serde(deserialize_with = "de_duration")]
    pub jwt_refresh_margin: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Retries of one request after 409, 429, 5xx or a transport error.
    pub max_retries: u32,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_base: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub backoff_max: Duration,
    /// Longest wait the gateway's rate-limit headers can impose at once.
    #[serde(deserialize_with = "de_duration")]
    pub max_rate_limit_wait: Duration,
    /// Times an asset the gateway refused (`assetsError`) is sent again
    /// before it becomes a dead letter.
    pub asset_retries: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: None,
            gateway: String::new(),
            allow_insecure_http: false,
            connector_uuid: String::new(),
            username: None,
            username_env: "QUALYS_USERNAME".into(),
            password_env: "QUALYS_PASSWORD".into(),
            password_file: None,
            payload_profile: "csam-v1".into(),
            source: "Orca Security".into(),
            // Public client code sends 50 assets per request.
            batch_assets: 50,
            batch_bytes: 4 << 20,
            // Qualys JWTs are valid 4 hours.
            jwt_lifetime: Duration::from_secs(4 * 3600),
            jwt_refresh_margin: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_retries: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_rate_limit_wait: Duration::from_secs(3600),
            asset_retries: 2,
        }
    }
}

/// Who the sink authenticates as.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// The gateway's two endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub auth: Url,
    pub sync: Url,
}

pub const SYNC_PATH: &str = "rest/2.0/am/connector/asset/data/sync";

impl WebhookConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.endpoints()?;
        uuid::Uuid::parse_str(self.connector_uuid.trim()).map_err(|_| {
            format!(
                "connector_uuid {:?} is not a UUID (copy it from the connector in the Qualys UI)",
                self.connector_uuid
            )
        })?;
        if PayloadProfile::by_name(&self.payload_profile).is_none() {
            return Err(format!(
                "payload_profile {:?} is unknown; known: {}",
                self.payload_profile,
                PayloadProfile::names().join(", ")
            ));
        }
        if self.batch_assets == 0 || self.batch_assets > 10_000 {
            return Err("batch_assets must be between 1 and 10000".into());
        }
        if self.batch_bytes < 1024 {
            return Err("batch_bytes must be at least 1024".into());
        }
        for (name, d) in [
            ("jwt_lifetime", self.jwt_lifetime),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err("username is empty (leave it out to read username_env)".into());
        }
        Ok(())
    }

    /// `<gateway>/auth` and `<gateway>/rest/2.0/am/connector/asset/data/sync`.
    pub fn endpoints(&self) -> Result<Endpoints, String> {
        let g = self.gateway.trim();
        if g.is_empty() {
            return Err("gateway is missing (e.g. \"gateway.qg1.apps.qualys.com\")".into());
        }
        let lower = g.to_ascii_lowercase();
        let text = if lower.starts_with("https://") || lower.starts_with("http://") {
            g.to_string()
        } else if lower.contains("://") {
            return Err(format!("gateway {g:?}: use https://"));
        } else {
            format!("https://{g}")
        };
        let mut url = Url::parse(&text).map_err(|e| format!("gateway {g:?}: {e}"))?;
        let host = url.host_str().unwrap_or("").to_string();
        if host.is_empty() {
            return Err(format!("gateway {g:?} names no host"));
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure_http && crate::net::is_loopback(&host) => {}
            "http" if self.allow_insecure_http => {
                return Err(format!(
                    "gateway {g:?}: plain http is allowed only to a loopback address (the password would travel in clear)"
                ))
            }
            _ => {
                return Err(format!(
                    "gateway {g:?}: refusing plain http; use https:// (allow_insecure_http is for loopback tests)"
                ))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("gateway must not contain credentials; they are configured apart".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "gateway {g:?} must not contain a query or fragment"
            ));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let join = |p: &str| url.join(p).map_err(|e| format!("gateway {g:?}: {e}"));
        Ok(Endpoints {
            auth: join("auth")?,
            sync: join(SYNC_PATH)?,
        })
    }

    /// The username and password, from where the config says; errors name
    /// the place, never a value.
    pub fn credentials(&self) -> Result<Credentials, String> {
        let username = match &self.username {
            Some(u) => u.trim().to_string(),
            None => std::env::var(&self.username_env)
                .ok()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    format!(
                        "no Qualys username: set `username` or the environment variable {}",
                        self.username_env
                    )
                })?,
        };
        let password = match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read the Qualys password file {}: {e}",
                        path.display()
                    )
                })?;
                let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
                if first.is_empty() {
                    return Err(format!(
                        "the Qualys password file {} is empty",
                        path.display()
                    ));
                }
                Secret::new(first)
            }
            None => match std::env::var(&self.password_env) {
                Ok(p) if !p.is_empty() => Secret::new(p),
                _ => {
                    return Err(format!(
                        "no Qualys password: set the environment variable {} or `password_file`",
                        self.password_env
                    ))
                }
            },
        };
        Ok(Credentials { username, password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(gateway: &str, insecure: bool) -> WebhookConfig {
        WebhookConfig {
            gateway: gateway.into(),
            allow_insecure_http: insecure,
            connector_uuid: "2f6c3c7e-6b1a-4b7e-9a55-0f5cfc0b1e11".into(),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn gateway_forms_and_endpoints() {
        let e = cfg("gateway.qg1.apps.qualys.com", false)
            .endpoints()
            .unwrap();
        assert_eq!(e.auth.as_str(), "https://gateway.qg1.apps.qualys.com/auth");
        assert_eq!(
            e.sync.as_str(),
            "https://gateway.qg1.apps.qualys.com/rest/2.0/am/connector/asset/data/sync"
        );
        let e = cfg("http://127.0.0.1:8080", true).endpoints().unwrap();
        assert_eq!(e.auth.as_str(), "http://127.0.0.1:8080/auth");
        let e = cfg("https://proxy.example/qualys", false)
            .endpoints()
            .unwrap();
        assert_eq!(e.auth.as_str(), "https://proxy.example/qualys/auth");
        assert!(cfg("gateway.qg1.apps.qualys.com", false).validate().is_ok());
    }

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        let e = cfg("http://127.0.0.1:8080", false).endpoints().unwrap_err();
        assert!(e.contains("refusing plain http"), "{e}");
        let e = cfg("http://gateway.example", true).endpoints().unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(cfg("http://[::1]:9000", true).endpoints().is_ok());
        assert!(cfg("http://localhost:9000", true).endpoints().is_ok());
        let e = cfg("https://u:p@gateway.example", false)
            .endpoints()
            .unwrap_err();
        assert!(e.contains("credentials"), "{e}");
        assert!(cfg("ftp://x", false).endpoints().is_err());
        assert!(cfg("", false).endpoints().is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = cfg("gateway.qg1.apps.qualys.com", false);
        c.connector_uuid = "not-a-uuid".into();
        assert!(c.validate().unwrap_err().contains("connector_uuid"));
        let mut c = cfg("gateway.qg1.apps.qualys.com", false);
        c.payload_profile = "csam-v9".into();
        let e = c.validate().unwrap_err();
        assert!(e.contains("csam-v9") && e.contains("csam-v1"), "{e}");
        let mut c = cfg("gateway.qg1.apps.qualys.com", false);
        c.batch_assets = 0;
        assert!(c.validate().unwrap_err().contains("batch_assets"));
    }

    #[test]
    fn credentials_from_file_or_env_never_show_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cr3t-from-file\nsecond line\n").unwrap();
        let mut c = cfg("gateway.qg1.apps.qualys.com", false);
        c.username = Some("api_user".into());
        c.password_env = "ORCA_ETM_TEST_QUALYS_PW_UNSET".into();
        let e = c.credentials().unwrap_err();
        assert!(e.contains("ORCA_ETM_TEST_QUALYS_PW_UNSET"), "{e}");
        c.password_file = Some(file);
        let creds = c.credentials().unwrap();
        assert_eq!(creds.username, "api_user");
        assert_eq!(creds.password.expose(), "s3cr3t-from-file");
        assert!(!format!("{creds:?}").contains("s3cr3t"));
        c.username = None;
        c.username_env = "ORCA_ETM_TEST_QUALYS_USER_UNSET".into();
        assert!(c
            .credentials()
            .unwrap_err()
            .contains("ORCA_ETM_TEST_QUALYS_USER_UNSET"));
    }
}
