//! The gateway's JWT: when to fetch a new one.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;

use crate::secret::Secret;

/// A token and when to replace it.
#[derive(Debug)]
pub struct Jwt {
    pub token: Secret,
    pub refresh_at: Instant,
}

impl Jwt {
    /// A token just received: it lives until its `exp` claim when it has
    /// one, else `lifetime`; it is replaced `margin` before that, or at
    /// half its life when it is shorter than twice the margin.
    pub fn new(token: Secret, lifetime: Duration, margin: Duration) -> Jwt {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let life = match expiry(token.expose()) {
            Some(exp) => exp.saturating_sub(now_unix),
            None => lifetime,
        };
        let use_for = if life > margin * 2 {
            life - margin
        } else {
            life / 2
        };
        Jwt {
            token,
            refresh_at: Instant::now() + use_for,
        }
    }

    pub fn due(&self) -> bool {
        Instant::now() >= self.refresh_at
    }
}

/// The `exp` claim (seconds since the epoch) of a JWT, if it has one that
/// can be read. The signature is the gateway's business, not ours.
pub fn expiry(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0).then(|| Duration::from_secs_f64(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"HS256"}"#), b(claims))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn exp_is_read_when_present() {
        assert_eq!(
            expiry(&token(r#"{"sub":"u","exp":1767225600}"#)),
            Some(Duration::from_secs(1767225600))
        );
        assert_eq!(expiry(&token(r#"{"sub":"u"}"#)), None);
        assert_eq!(expiry("not a jwt"), None);
        assert_eq!(expiry("a.%%%.c"), None);
        assert_eq!(expiry(&token(r#"{"exp":"soon"}"#)), None);
    }

    #[test]
    fn refresh_comes_before_expiry() {
        let margin = Duration::from_secs(300);
        let four_h = Duration::from_secs(4 * 3600);
        let t = Instant::now();
        // No exp: the configured lifetime less the margin.
        let j = Jwt::new(Secret::new(token("{}")), four_h, margin);
        let left = j.refresh_at - t;
        assert!(
            left >= four_h - margin && left < four_h - margin + Duration::from_secs(1),
            "{left:?}"
        );
        // exp in an hour wins over the 4 h default.
        let j = Jwt::new(
            Secret::new(token(&format!(r#"{{"exp":{}}}"#, now() + 3600))),
            four_h,
            margin,
        );
        let left = j.refresh_at - t;
        assert!(
            left <= Duration::from_secs(3301) && left > Duration::from_secs(3290),
            "{left:?}"
        );
        // A short-lived token is used for half its life.
        let j = Jwt::new(
            Secret::new(token(&format!(r#"{{"exp":{}}}"#, now() + 60))),
            four_h,
            margin,
        );
        assert!(j.refresh_at - t <= Duration::from_secs(30));
        assert!(!j.due());
        // Already expired: due at once.
        let j = Jwt::new(Secret::new(token(r#"{"exp":1000}"#)), four_h, margin);
        assert!(j.due());
    }
}
