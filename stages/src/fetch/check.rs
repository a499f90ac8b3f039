//! The "Registered" check: one small request per query of the plan, so a
//! wrong domain, a refused token or a missing permission shows at once.

use super::client::{OrcaClient, Outcome};
use super::config::FetchConfig;
use super::error::FetchError;
use super::planner::plan;
use crate::secret::Secret;

/// `total_items` of each root query (`limit` 1), or the first fatal error.
/// A query Orca refuses (400) is reported with its reason in place of a
/// count. The check fails when Orca cannot be reached at all, or when not
/// one query was answered with a page: nothing then proves the token works.
pub async fn check(cfg: &FetchConfig, token: &Secret) -> Result<Vec<(String, String)>, FetchError> {
    let client = OrcaClient::new(cfg, token)?;
    let mut found = Vec::new();
    let mut read_one = false;
    for p in plan(&cfg.models) {
        let reply = client.post(p.body(0, 1)).await;
        if !reply.answered {
            if let Outcome::Transient { detail, cause, .. } = reply.outcome {
                return Err(FetchError::Unreachable {
                    url: client.url().to_string(),
                    detail: format!("({cause}) {detail}"),
                });
            }
        }
        read_one |= matches!(reply.outcome, Outcome::Body(_));
        let said = match reply.outcome {
            Outcome::Body(body) => serde_json::from_slice::<serde_json::Value>(
                crate::parse::skip_byte_order_marks(&body),
            )
            .ok()
            .and_then(|v| v.get("total_items").and_then(|t| t.as_u64()))
            .map_or_else(
                || "answered (no count)".to_string(),
                |t| format!("{t} item{}", if t == 1 { "" } else { "s" }),
            ),
            Outcome::Transient { detail, .. } => format!("not answered now: {detail}"),
            Outcome::QueryFailed(e) => format!("refused: {e}"),
            Outcome::Fatal(e) => return Err(e),
        };
        found.push((p.label(), said));
        if cfg.requests_per_second > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(
                1.0 / cfg.requests_per_second,
            ))
            .await;
        }
    }
    if !read_one {
        let why: Vec<String> = found.iter().map(|(q, s)| format!("{q}: {s}")).collect();
        return Err(FetchError::NoQueryAnswered(why.join("; ")));
    }
    Ok(found)
}
