//! The final snapshot of a run, pushed to a Prometheus Pushgateway.
//!
//! `PUT <url>/metrics/job/<job>/profile/<profile>` replaces the group's
//! metrics with this run's, so nothing of an older run lingers; the
//! last-success time survives a failed run because every run reports it
//! from the ledger.
//!
//! Credentials in the URL (`https://user:pass@host/`) are sent as basic
//! auth and never shown: errors name the URL without them.

use std::time::Duration;

use reqwest::Url;
use stages::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("pushgateway URL: {0}")]
    Url(String),
    #[error("push to {url} failed: {message}")]
    Send { url: String, message: String },
    #[error("push to {url} refused: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// A group URL, its credentials taken out.
#[derive(Debug)]
pub struct GroupUrl {
    pub url: Url,
    auth: Option<(String, Secret)>,
}

/// The group URL of `job` and `profile` under the Pushgateway at `base`.
pub fn push_url(base: &str, job: &str, profile: &str) -> Result<GroupUrl, PushError> {
    let mut url = Url::parse(base).map_err(|e| PushError::Url(format!("cannot parse it: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PushError::Url("use http:// or https://".into()));
    }
    if job.is_empty() || profile.is_empty() {
        return Err(PushError::Url(
            "the job and profile must not be empty".into(),
        ));
    }
    let auth = match (url.username(), url.password()) {
        ("", None) => None,
        (user, pass) => Some((
            percent_decode(user),
            Secret::new(pass.map(percent_decode).unwrap_or_default()),
        )),
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.path_segments_mut()
        .map_err(|_| PushError::Url("not a base URL".into()))?
        .pop_if_empty()
        .extend(["metrics", "job", job, "profile", profile]);
    Ok(GroupUrl { url, auth })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Push `body` (text format) to the group of `job` and `profile`.
pub async fn push(base: &str, job: &str, profile: &str, body: String) -> Result<(), PushError> {
    let group = push_url(base, job, profile)?;
    let shown = group.url.to_string();
    let send_err = |e: reqwest::Error| PushError::Send {
        url: shown.clone(),
        message: e.without_url().to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(send_err)?;
    let mut req = client
        .put(group.url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(body);
    if let Some((user, pass)) = &group.auth {
        req = req.basic_auth(user, Some(pass.expose()));
    }
    let resp = req.send().await.map_err(send_err)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let mut text = resp.text().await.unwrap_or_default();
    text.truncate(1024);
    Err(PushError::Refused {
        url: shown,
        status: status.as_u16(),
        body: text.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_urls() {
        let g = push_url("http://127.0.0.1:9091", "orca-etm", "eu").unwrap();
        assert_eq!(
            g.url.as_str(),
            "http://127.0.0.1:9091/metrics/job/orca-etm/profile/eu"
        );
        assert!(g.auth.is_none());
        assert_eq!(
            push_url("http://pg:9091/prefix/", "j b", "p")
                .unwrap()
                .url
                .as_str(),
            "http://pg:9091/prefix/metrics/job/j%20b/profile/p"
        );
        assert!(matches!(
            push_url("ftp://x", "j", "p"),
            Err(PushError::Url(_))
        ));
        assert!(matches!(push_url("::", "j", "p"), Err(PushError::Url(_))));
    }

    #[test]
    fn credentials_leave_the_url() {
        let g = push_url("https://ops:s%40cret-pw@pg.example:9091/", "j", "p").unwrap();
        assert_eq!(
            g.url.as_str(),
            "https://pg.example:9091/metrics/job/j/profile/p"
        );
        let (user, pass) = g.auth.as_ref().unwrap();
        assert_eq!(user, "ops");
        assert_eq!(pass.expose(), "s@cret-pw");
        assert!(!format!("{g:?}").contains("cret-pw"));
    }
}
