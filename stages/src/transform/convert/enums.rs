//! Orca enumerations mapped onto ETM's.

use std::borrow::Cow;

use crate::json::Json;

use super::super::out::Out;
use super::super::path::is_missing;
use super::super::scoring::ScoringConfig;
use super::super::stats::TransformStats;

const UNKNOWN_PROVIDER: &str = "SOURCE_TYPE_UNKNOWN";

/// Provider names and, for records without a provider, model names.
const PROVIDERS: &[(&str, &str)] = &[
    ("AWS", "EC2"),
    ("GCP", "GCP"),
    ("Azure", "AZURE"),
    ("OCI", "OCI"),
    ("Alibaba", "ALIBABA"),
    ("VMWare", UNKNOWN_PROVIDER),
    ("AwsEc2Instance", "EC2"),
    ("GcpVmInstance", "GCP"),
    ("AzureComputeVm", "AZURE"),
    ("OciComputeVmInstance", "OCI"),
    ("AliCloudEcsInstance", "ALIBABA"),
    ("VmwareVmInstance", UNKNOWN_PROVIDER),
];

/// The ETM provider of an Orca provider or model name. With no value at
/// all (no provider, no `type` on the item), `model` (the model the query
/// asked for) tells it.
pub fn cloud_provider<'a, J: Json<'a>>(
    v: Option<J>,
    model: Option<&str>,
    stats: &mut TransformStats,
) -> Out<'static> {
    let name = match v {
        Some(v) => v.as_str().map(str::trim),
        None => model.map(str::trim),
    };
    let hit = name.and_then(|n| {
        PROVIDERS
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, etm)| *etm)
    });
    match hit {
        Some(etm) => Out::Str(Cow::Borrowed(etm)),
        None => {
            stats.unknown_cloud_provider += 1;
            Out::Str(Cow::Borrowed(UNKNOWN_PROVIDER))
        }
    }
}

const SEVERITIES: &[(&str, u8)] = &[
    ("CRITICAL", 5),
    ("HIGH", 4),
    ("MEDIUM", 3),
    ("LOW", 2),
    ("NONE", 1),
    ("INFO", 1),
    ("INFORMATIONAL", 1),
];

/// ETM severity 1–5; the configured default (counted when `stats` is given)
/// for anything the table does not know, null included.
pub fn severity<'a, J: Json<'a>>(
    v: Option<J>,
    scoring: &ScoringConfig,
    stats: Option<&mut TransformStats>,
) -> u8 {
    let name = v.and_then(|v| v.as_str()).map(str::trim);
    let hit = name.and_then(|n| {
        SEVERITIES
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, s)| *s)
    });
    match hit {
        Some(s) => s,
        None => {
            if let Some(stats) = stats {
                stats.unmapped_severity += 1;
            }
            scoring.default_severity
        }
    }
}

/// `Yes`/`Extended`/`true` → true, `No`/`false` → false, null stays null,
/// anything else is null and counted.
pub fn patch<'a, J: Json<'a>>(v: Option<J>, stats: &mut TransformStats) -> Out<'static> {
    let Some(v) = v.filter(|v| !is_missing(*v)) else {
        return Out::Null;
    };
    if let Some(b) = v.as_bool() {
        return Out::Bool(b);
    }
    let s = v.as_str().map(str::trim).unwrap_or("");
    let is = |w: &str| s.eq_ignore_ascii_case(w);
    if is("yes") || is("extended") || is("true") {
        Out::Bool(true)
    } else if is("no") || is("false") {
        Out::Bool(false)
    } else {
        stats.unmapped_patch += 1;
        Out::Null
    }
}
