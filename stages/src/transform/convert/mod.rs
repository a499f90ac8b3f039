//! Conversions from an Orca value to an output value.
//!
//! Every conversion is total: whatever arrives, it returns a value (often
//! `null`) and counts what it could not use, so one odd field never costs
//! the record.

mod date;
mod enums;
mod scalar;
mod tags;

use crate::json::Json;

use super::map::Convert;
use super::out::Out;
use super::scoring::ScoringConfig;
use super::stats::{Counter, TransformStats};

pub use date::parse_date;
use scalar::json;
pub use scalar::{list_items, ListItems};

/// What a conversion may read and count.
pub struct Env<'a> {
    pub scoring: &'a ScoringConfig,
    pub stats: &'a mut TransformStats,
    /// The Orca model the record's query asked for, when it asked for one.
    pub model: Option<&'a str>,
}

/// Apply `conv` to the value found (or `None` when no source had one).
/// `limit`/`counter` only matter for `tags`.
pub fn apply<'a, J: Json<'a>>(
    conv: Convert,
    v: Option<J>,
    limit: Option<usize>,
    counter: Counter,
    env: &mut Env<'_>,
) -> Out<'a> {
    let stats = &mut *env.stats;
    match conv {
        Convert::Json => v.map_or(Out::Null, json),
        Convert::String => scalar::string(v, stats),
        Convert::Int => scalar::int(v, stats),
        Convert::Float => scalar::float(v, stats),
        Convert::Number => scalar::number(v, stats),
        Convert::Bool => scalar::boolean(v, stats),
        Convert::Date => date::date(v, stats),
        Convert::CloudProvider => enums::cloud_provider(v, env.model, stats),
        Convert::Severity => Out::U64(u64::from(enums::severity(v, env.scoring, Some(stats)))),
        Convert::Qds => {
            // The severity field already counted an unmapped value; don't count twice.
            let sev = enums::severity(v, env.scoring, None);
            Out::U64(u64::from(env.scoring.qds_of(sev)))
        }
        Convert::Patch => enums::patch(v, stats),
        Convert::Tags => tags::tags(v, limit, counter, stats),
        Convert::First => scalar::first(v, stats),
        Convert::StringList => scalar::string_list(v, stats),
        Convert::Ip => scalar::ip(v, stats),
    }
}
