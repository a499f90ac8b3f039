//! The transform map: which Orca paths feed which ETM fields, as data.
//!
//! The map is plain serde data so users can print the default as TOML, edit
//! a copy, and load it back; everything a user can get wrong is reported as
//! a [`MapError`] when the map is loaded or compiled, never while records
//! flow.

use serde::{Deserialize, Serialize};

/// The default map, shipped inside the binary.
const DEFAULT_TOML: &str = include_str!("default-map.toml");

/// Everything that can be wrong with a transform map or scoring table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("transform map is not valid TOML for this format: {0}")]
    Toml(String),
    #[error("transform map version {0} is not supported (expected 1)")]
    Version(u32),
    #[error("{section}: field `{target}`: {problem}")]
    Field {
        section: &'static str,
        target: String,
        problem: String,
    },
    #[error("{section}: `{key}` names `{target}`, which {problem}")]
    Key {
        section: &'static str,
        key: &'static str,
        target: String,
        problem: String,
    },
    #[error("scoring: {0}")]
    Scoring(String),
}

/// The whole map: one section for host assets, one for findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformMap {
    /// Format version, so a future format can refuse an old file clearly.
    pub version: u32,
    pub asset: AssetSection,
    pub finding: FindingSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSection {
    /// Output field (dotted target) holding the asset key.
    pub id_field: String,
    /// Output paths Qualys CSAM identification rules match on.
    #[serde(default)]
    pub identity: Vec<String>,
    #[serde(default)]
    pub field: Vec<FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingSection {
    /// Orca paths holding the key of the asset the finding belongs to; not
    /// written into the finding, the assembler nests it under that asset.
    pub asset_id: Vec<String>,
    /// Output field (dotted target) holding Orca's finding id.
    pub id_field: String,
    #[serde(default)]
    pub field: Vec<FieldSpec>,
}

/// One output field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    #[serde(default, rename = "const", skip_serializing_if = "Option::is_none")]
    pub constant: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<Convert>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub omit_null: bool,
    /// Nested fields of a `list`, `zip` or `one`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field: Vec<FieldSpec>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// How a field's value is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Value,
    List,
    Zip,
    One,
}

/// The conversion applied to a source value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convert {
    /// The value as it came.
    Json,
    String,
    Int,
    Float,
    /// An integer when the value is integral, else a float.
    Number,
    Bool,
    Date,
    CloudProvider,
    Severity,
    Qds,
    Patch,
    Tags,
    /// The first element of a list, or the value itself when it is not a list.
    First,
    StringList,
    Ip,
}

impl TransformMap {
    /// The map of `etm-model.md`.
    pub fn default_map() -> TransformMap {
        // The embedded file is covered by a test; failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_toml(DEFAULT_TOML).expect("embedded default-map.toml is valid")
    }

    /// The default map as the commented TOML file users start from.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    pub fn from_toml(s: &str) -> Result<TransformMap, MapError> {
        let map: TransformMap = toml::from_str(s).map_err(|e| MapError::Toml(e.to_string()))?;
        if map.version != 1 {
            return Err(MapError::Version(map.version));
        }
        // Compiling checks everything else (paths, targets, keys); do it here
        // too so a bad file is refused when it is loaded, not at first use.
        crate::transform::template::compile_map(&map)?;
        Ok(map)
    }

    pub fn to_toml(&self) -> String {
        // Serializing plain structs of strings, lists and TOML values cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}
