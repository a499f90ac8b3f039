//! Turning what the user typed into the API base URL.

use reqwest::Url;

use super::error::FetchError;

/// The API base URL (always ending in `/`), from any accepted domain form:
/// `app.eu.orcasecurity.io`, `app.eu.orcasecurity.io/api`,
/// `https://app.eu.orcasecurity.io/api/` (with or without the trailing slash),
/// and `http://…` to a loopback address only when `allow_insecure_http`.
pub fn base_url(domain: &str, allow_insecure_http: bool) -> Result<Url, FetchError> {
    let d = domain.trim();
    if d.is_empty() {
        return Err(FetchError::Config("the Orca domain is empty".into()));
    }
    let lower = d.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("https://") || lower.starts_with("http://") {
        d.to_string()
    } else if lower.contains("://") {
        return Err(FetchError::Config(format!(
            "unsupported scheme in Orca domain {d:?}: use https://"
        )));
    } else {
        format!("https://{d}")
    };
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| FetchError::Config(format!("invalid Orca domain {d:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http && url.host_str().is_some_and(crate::net::is_loopback) => {}
        "http" if allow_insecure_http => {
            return Err(FetchError::Config(format!(
                "refusing plain http base URL {d:?}: allow_insecure_http is for a loopback address only (the token would travel in clear)"
            )))
        }
        "http" => {
            return Err(FetchError::Config(format!(
            "refusing plain http base URL {d:?}: use https:// or set allow_insecure_http for tests"
        )))
        }
        other => {
            return Err(FetchError::Config(format!(
                "unsupported scheme {other:?} in Orca domain {d:?}"
            )))
        }
    }
    if matches!(url.host_str(), None | Some("")) {
        return Err(FetchError::Config(format!("no host in Orca domain {d:?}")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in the URL would end up in logs and errors.
        return Err(FetchError::Config(
            "the Orca domain must not contain credentials; the token is configured separately"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(FetchError::Config(format!(
            "the Orca domain {d:?} must not contain a query or fragment"
        )));
    }
    let path = url.path().trim_end_matches('/').to_string();
    // A bare host means the standard `/api/` prefix; an explicit path is kept.
    let path = if path.is_empty() {
        "/api/".to_string()
    } else {
        format!("{path}/")
    };
    url.set_path(&path);
    Ok(url)
}

/// The query endpoint under a base URL.
pub fn query_url(base: &Url) -> Result<Url, FetchError> {
    base.join("serving-layer/query")
        .map_err(|e| FetchError::Config(format!("cannot build query URL from {base}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(d: &str, insecure: bool) -> String {
        base_url(d, insecure).unwrap().to_string()
    }

    #[test]
    fn every_domain_form() {
        let eu = "https://app.eu.orcasecurity.io/api/";
        assert_eq!(ok("app.eu.orcasecurity.io", false), eu);
        assert_eq!(ok("  app.eu.orcasecurity.io/ ", false), eu);
        assert_eq!(ok("app.eu.orcasecurity.io/api", false), eu);
        assert_eq!(ok("https://app.eu.orcasecurity.io/api/", false), eu);
        assert_eq!(ok("https://app.eu.orcasecurity.io/api", false), eu);
        assert_eq!(ok("https://app.eu.orcasecurity.io", false), eu);
        assert_eq!(ok("HTTPS://app.eu.orcasecurity.io/api/", false), eu);
        assert_eq!(
            ok("http://127.0.0.1:8080/api/", true),
            "http://127.0.0.1:8080/api/"
        );
        assert_eq!(
            ok("http://127.0.0.1:8080/api", true),
            "http://127.0.0.1:8080/api/"
        );
        assert_eq!(
            ok("http://localhost:8088", true),
            "http://localhost:8088/api/"
        );
        assert_eq!(ok("http://[::1]:8088/api/", true), "http://[::1]:8088/api/");
        assert_eq!(
            query_url(&base_url("api.orcasecurity.io", false).unwrap())
                .unwrap()
                .as_str(),
            "https://api.orcasecurity.io/api/serving-layer/query"
        );
    }

    #[test]
    fn refusals() {
        for (d, insecure) in [
            ("http://127.0.0.1:8080/api/", false),
            ("http://10.0.0.5:8080/api/", true),
            ("http://orca-proxy.internal/api/", true),
            ("", false),
            ("ftp://x.example/api/", false),
            ("https://user:pw@x.example/api/", false),
            ("https://x.example/api/?a=1", false),
            ("https://", false),
        ] {
            assert!(
                matches!(base_url(d, insecure), Err(FetchError::Config(_))),
                "{d:?} must be refused"
            );
        }
    }
}
