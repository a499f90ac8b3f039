//! What the user configures for each sink: the `[[sink]]` tables.
//!
//! ```toml
//! [[sink]]
//! type = "ndjson"            # dir defaults to output.dir
//!
//! [[sink]]
//! type = "csv"
//! file = "etm-findings.csv"
//!
//! [[sink]]
//! type = "qualys_webhook"
//! gateway = "gateway.qg1.apps.qualys.com"
//! connector_uuid = "…"
//! ```
//!
//! Settings only; the sinks' runtime state is built from them at run start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

use super::qualys::WebhookConfig;

/// One `[[sink]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    Ndjson(NdjsonConfig),
    Csv(CsvConfig),
    QualysWebhook(Box<WebhookConfig>),
}

/// ETM NDJSON (`etm-assets.ndjson`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdjsonConfig {
    /// Names the sink in logs, metrics and the manifest (default `ndjson`).
    pub name: Option<String>,
    /// Folder of the file (default: `output.dir`).
    pub dir: Option<PathBuf>,
}

/// Findings as CSV for ETM's CSV and AWS S3 CSV connectors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// Default `csv`.
    pub name: Option<String>,
    /// Folder of the file (default: `output.dir`).
    pub dir: Option<PathBuf>,
    /// File name in that folder.
    pub file: String,
    /// Joins the entries of list columns (IPs, MACs, CWE ids).
    pub list_separator: String,
    /// Cells that a spreadsheet would run as a formula (starting with `=`,
    /// `+`, `-`, `@`, tab or CR) get a leading `'`. Off by default: ETM
    /// imports the text as it is, and the guard changes it.
    pub formula_guard: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            name: None,
            dir: None,
            file: super::csv::FILE_NAME.into(),
            list_separator: super::csv::LIST_SEPARATOR.into(),
            formula_guard: false,
        }
    }
}

impl SinkConfig {
    /// The sink's type as written in `type = "…"`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Ndjson(_) => "ndjson",
            SinkConfig::Csv(_) => "csv",
            SinkConfig::QualysWebhook(_) => "qualys_webhook",
        }
    }

    /// The sink's name: `name = "…"`, else its type.
    pub fn name(&self) -> &str {
        let name = match self {
            SinkConfig::Ndjson(c) => c.name.as_deref(),
            SinkConfig::Csv(c) => c.name.as_deref(),
            SinkConfig::QualysWebhook(c) => c.name.as_deref(),
        };
        name.unwrap_or(self.kind())
    }

    /// Files of this sink in `output_dir` (the default folder), to refuse
    /// two sinks writing the same file.
    pub fn files(&self, output_dir: &Path) -> Vec<PathBuf> {
        match self {
            SinkConfig::Ndjson(c) => vec![c
                .dir
                .as_deref()
                .unwrap_or(output_dir)
                .join(super::ndjson::FILE_NAME)],
            SinkConfig::Csv(c) => vec![c.dir.as_deref().unwrap_or(output_dir).join(&c.file)],
            SinkConfig::QualysWebhook(_) => {
                vec![output_dir.join(super::qualys::dead_letter_file(self.name()))]
            }
        }
    }

    /// Checks that make the sink unusable if wrong; reported before the run starts.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || name.len() > 40 || !name.chars().all(ok) {
            return Err(format!(
                "sink name {name:?}: use 1 to 40 letters, digits, '_' and '-'"
            ));
        }
        let at = |e: String| format!("sink {name:?}: {e}");
        match self {
            SinkConfig::Ndjson(_) => Ok(()),
            SinkConfig::Csv(c) => {
                let mut chars = c.list_separator.chars();
                match (chars.next(), chars.next()) {
                    (Some(s), None) if !matches!(s, ',' | '"' | '\r' | '\n' | '\\') => {}
                    _ => {
                        return Err(at(format!(
                            "list_separator {:?} must be one character other than a comma, a quote, a backslash or a line break",
                            c.list_separator
                        )))
                    }
                }
                let file = Path::new(&c.file);
                if c.file.is_empty() || file.file_name() != Some(file.as_os_str()) {
                    return Err(at(format!(
                        "file {:?} must be a plain file name (the folder is `dir`)",
                        c.file
                    )));
                }
                Ok(())
            }
            SinkConfig::QualysWebhook(c) => c.validate().map_err(at),
        }
    }

    /// Relative paths taken from `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let dirs = match self {
            SinkConfig::Ndjson(c) => vec![c.dir.as_mut()],
            SinkConfig::Csv(c) => vec![c.dir.as_mut()],
            SinkConfig::QualysWebhook(c) => vec![c.password_file.as_mut()],
        };
        for p in dirs.into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Validate a run's sinks together: each valid, names and files distinct.
pub fn validate_all(sinks: &[SinkConfig], output_dir: &Path) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut files = HashSet::new();
    for s in sinks {
        s.validate()?;
        if !names.insert(s.name()) {
            return Err(format!(
                "two sinks are named {:?}: give one a `name`",
                s.name()
            ));
        }
        for f in s.files(output_dir) {
            if !files.insert(f.clone()) {
                return Err(format!(
                    "sink {:?} would write {} like another sink: give it another `dir` or `file`",
                    s.name(),
                    f.display()
                ));
            }
        }
    }
    Ok(())
}

/// A sink's name as `'static` (what [`super::Sink::name`] returns): a
/// process runs few distinct sinks, so each name is leaked once.
pub fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let set = names.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        sink: Vec<SinkConfig>,
    }

    fn parse(text: &str) -> Result<Vec<SinkConfig>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.sink)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_type_takes_its_options_and_defaults() {
        let s = parse(
            "[[sink]]\ntype = \"ndjson\"\n[[sink]]\ntype = \"csv\"\nlist_separator = \"|\"\nname = \"findings_csv\"\n",
        )
        .unwrap();
        assert_eq!(s[0], SinkConfig::Ndjson(NdjsonConfig::default()));
        assert_eq!(s[0].name(), "ndjson");
        let SinkConfig::Csv(c) = &s[1] else {
            panic!("{:?}", s[1])
        };
        assert_eq!(c.list_separator, "|");
        assert_eq!(c.file, "etm-findings.csv");
        assert_eq!(s[1].name(), "findings_csv");
        assert!(validate_all(&s, Path::new("out")).is_ok());
    }

    #[test]
    fn unknown_types_and_keys_are_refused() {
        let e = parse("[[sink]]\ntype = \"kafka\"\n").unwrap_err();
        assert!(e.contains("kafka"), "{e}");
        let e = parse("[[sink]]\ntype = \"csv\"\nseparator = \";\"\n").unwrap_err();
        assert!(e.contains("separator"), "{e}");
        let e = parse("[[sink]]\ntype = \"ndjson\"\npath = \"x\"\n").unwrap_err();
        assert!(e.contains("path"), "{e}");
        let e = parse("[[sink]]\ndir = \"x\"\n").unwrap_err();
        assert!(e.contains("type"), "{e}");
    }

    #[test]
    fn clashing_names_files_and_bad_values_are_refused() {
        let two = parse("[[sink]]\ntype = \"ndjson\"\n[[sink]]\ntype = \"ndjson\"\n").unwrap();
        let e = validate_all(&two, Path::new("out")).unwrap_err();
        assert!(e.contains("two sinks are named \"ndjson\""), "{e}");
        let same_file =
            parse("[[sink]]\ntype = \"ndjson\"\n[[sink]]\ntype = \"ndjson\"\nname = \"b\"\ndir = \"out\"\n")
                .unwrap();
        let e = validate_all(&same_file, Path::new("out")).unwrap_err();
        assert!(e.contains("etm-assets.ndjson"), "{e}");
        for (bad, what) in [
            ("list_separator = \",\"", "list_separator"),
            ("list_separator = \";;\"", "list_separator"),
            ("list_separator = '\\'", "list_separator"),
            ("file = \"../x.csv\"", "plain file name"),
            ("name = \"a b\"", "sink name"),
        ] {
            let s = parse(&format!("[[sink]]\ntype = \"csv\"\n{bad}\n")).unwrap();
            let e = validate_all(&s, Path::new("out")).unwrap_err();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_interned_once() {
        assert!(std::ptr::eq(intern("csv_a"), intern("csv_a")));
        assert_eq!(intern("csv_b"), "csv_b");
    }
}
