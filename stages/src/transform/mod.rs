//! Transform stage: an Orca item becomes an ETM asset document or finding.
//!
//! What goes where is data ([`TransformMap`], TOML), compiled once by
//! [`Transformer::new`]; the conversions, scoring and limits it names live
//! in the submodules. The transform never fails on a value: odd values
//! become null or a default and are counted in [`TransformStats`]; only a
//! record without its key becomes a [`DeadLetter`].

mod convert;
mod limits;
mod map;
mod out;
mod path;
mod scoring;
mod stats;
mod template;

pub use convert::parse_date;
pub use map::{AssetSection, Convert, FieldSpec, FindingSection, Kind, MapError, TransformMap};
pub use scoring::ScoringConfig;
pub use stats::TransformStats;

use crate::json::Json;
use crate::model::{
    raw_excerpt, DeadLetter, EtmAsset, EtmFinding, EtmRecord, OrcaRecord, RecordKind,
};
use crate::page::QueryInfo;
use crate::parse::key_is_ambiguous;
use convert::Env;
use template::{compile_map, key_text, Compiled};

/// The compiled map plus scoring; shareable across worker threads.
pub struct Transformer {
    compiled: Compiled,
    scoring: ScoringConfig,
    identity: Vec<String>,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformer")
            .field("scoring", &self.scoring)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Transformer {
    pub fn new(map: TransformMap, scoring: ScoringConfig) -> Result<Transformer, MapError> {
        scoring.validate()?;
        if map.version != 1 {
            return Err(MapError::Version(map.version));
        }
        let compiled = compile_map(&map)?;
        Ok(Transformer {
            compiled,
            scoring,
            identity: map.asset.identity,
        })
    }

    /// Output paths of the asset document that CSAM identification rules
    /// match on (`sourceNativeKey`, `hostName`, …), as the map lists them.
    pub fn identity_fields(&self) -> &[String] {
        &self.identity
    }

    /// Transform an owned record (tests, tools).
    pub fn transform(
        &self,
        rec: &OrcaRecord,
        stats: &mut TransformStats,
    ) -> Result<EtmRecord, Box<DeadLetter>> {
        self.transform_item(rec.kind, &rec.item, &rec.query, rec.offset, stats)
    }

    /// Transform one Orca item of `query`'s page at `offset`, read where it
    /// lies (on the page's tape, in the pipeline).
    pub fn transform_item<'a, J: Json<'a>>(
        &'a self,
        kind: RecordKind,
        item: J,
        query: &QueryInfo,
        offset: u64,
        stats: &mut TransformStats,
    ) -> Result<EtmRecord, Box<DeadLetter>> {
        self.transform_marked(kind, item, false, query, offset, stats)
    }

    /// [`Transformer::transform_item`] for a row whose broken characters
    /// the parser replaced (`replaced`, from
    /// [`crate::parse::ParsedPage::for_each_row_marked`]): a key that holds
    /// one of them could be another record's key too, so the record is a
    /// dead letter (`ambiguous_id`) rather than merged into a stranger.
    pub fn transform_marked<'a, J: Json<'a>>(
        &'a self,
        kind: RecordKind,
        item: J,
        replaced: bool,
        query: &QueryInfo,
        offset: u64,
        stats: &mut TransformStats,
    ) -> Result<EtmRecord, Box<DeadLetter>> {
        let rec = Item {
            kind,
            item,
            query,
            offset,
        };
        // Keys are read with a scratch counter: a record refused for want of
        // a key must not also count the odd values it carried.
        let mut scratch = TransformStats::default();
        let mut probe = Env {
            scoring: &self.scoring,
            stats: &mut scratch,
            model: Some(&query.model),
        };
        match rec.kind {
            RecordKind::Asset => {
                let tpl = &self.compiled.asset;
                let id = tpl.id.eval(rec.item, &mut probe);
                let Some(asset_id) = key_text(&id).map(str::to_owned) else {
                    stats.missing_asset_id += 1;
                    return Err(dead_letter(
                        &rec,
                        "missing_asset_id",
                        "the asset has no readable asset unique id",
                    ));
                };
                if key_is_ambiguous(replaced, &asset_id) {
                    stats.ambiguous_id += 1;
                    return Err(ambiguous(&rec, "its asset unique id"));
                }
                let doc = tpl.eval(
                    rec.item,
                    &mut Env {
                        scoring: &self.scoring,
                        stats,
                        model: Some(&rec.query.model),
                    },
                );
                Ok(EtmRecord::Asset(EtmAsset {
                    asset_id,
                    json: doc.to_json(),
                }))
            }
            RecordKind::Finding => {
                let link = convert::apply(
                    Convert::String,
                    self.compiled.finding_asset_id.first(rec.item),
                    None,
                    stats::Counter::truncated_other,
                    &mut probe,
                );
                let Some(asset_id) = key_text(&link).map(str::to_owned) else {
                    stats.missing_asset_id += 1;
                    return Err(dead_letter(
                        &rec,
                        "missing_asset_id",
                        "the finding names no asset it belongs to",
                    ));
                };
                let tpl = &self.compiled.finding;
                let id = tpl.id.eval(rec.item, &mut probe);
                let Some(vendor_id) = key_text(&id).map(str::to_owned) else {
                    stats.missing_vendor_id += 1;
                    return Err(dead_letter(
                        &rec,
                        "missing_vendor_id",
                        "the finding has no readable Orca id",
                    ));
                };
                if key_is_ambiguous(replaced, &vendor_id) {
                    stats.ambiguous_id += 1;
                    // No id: the ledger cannot tell which finding this was,
                    // so this run marks none FIXED.
                    let mut d = ambiguous(&rec, "its Orca id");
                    d.id = None;
                    return Err(d);
                }
                if key_is_ambiguous(replaced, &asset_id) {
                    stats.ambiguous_id += 1;
                    // The finding itself is known: it is kept from FIXED.
                    let mut d = ambiguous(&rec, "the asset id it names");
                    d.id = Some(vendor_id);
                    return Err(d);
                }
                let doc = tpl.eval(
                    rec.item,
                    &mut Env {
                        scoring: &self.scoring,
                        stats,
                        model: Some(&rec.query.model),
                    },
                );
                Ok(EtmRecord::Finding(EtmFinding {
                    asset_id,
                    vendor_id,
                    json: doc.to_json(),
                }))
            }
        }
    }
}

/// One item and where it came from.
struct Item<'q, J> {
    kind: RecordKind,
    item: J,
    query: &'q QueryInfo,
    offset: u64,
}

/// A record whose key `what` held a replaced broken character.
fn ambiguous<'a, J: Json<'a>>(rec: &Item<'_, J>, what: &str) -> Box<DeadLetter> {
    dead_letter(
        rec,
        "ambiguous_id",
        &format!(
            "{what} holds a broken character (invalid UTF-8 or a lone surrogate escape), read as \
             U+FFFD: it could be another record's id too, so the record is not published"
        ),
    )
}

fn dead_letter<'a, J: Json<'a>>(rec: &Item<'_, J>, reason: &str, detail: &str) -> Box<DeadLetter> {
    let raw = rec.item.to_json_vec();
    Box::new(DeadLetter {
        stage: "transform",
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        record: rec.kind.as_str(),
        id: crate::parse::item_id(rec.item),
        query: rec.query.label.clone(),
        offset: rec.offset,
        raw: raw_excerpt(&raw),
    })
}
