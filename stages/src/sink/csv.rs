//! Findings as CSV for ETM's CSV and AWS S3 CSV connectors.
//!
//! One row per finding with its asset's columns repeated; an asset without
//! findings still gets one row (finding columns empty), so every host asset
//! is delivered. The columns are [`COLUMNS`], in that order, under a header
//! row; RFC 4180 (quoted where needed, `""` inside quotes, CRLF line ends)
//! is the `csv` crate's. Lists (IPs, MACs, CWE ids) are joined with the
//! configured separator (default `;`); inside an entry, the separator and
//! `\` are escaped with a `\`, so a hostile entry cannot pass for two.
//! With `formula_guard`, a cell a spreadsheet would run as a formula gets
//! a leading `'`. Written under a temporary name and renamed into place at
//! commit.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::atomic::AtomicFile;
use super::config::{intern, CsvConfig, SinkConfig};
use super::{Sink, SinkError, SinkReport};

pub const FILE_NAME: &str = "etm-findings.csv";
pub const LIST_SEPARATOR: &str = ";";

/// Where a column's value is in the ETM document.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A JSON pointer into the asset document.
    Asset(&'static str),
    /// One field of every `networkInterfaces[]` entry, joined.
    Interfaces(&'static str),
    /// A JSON pointer into the finding.
    Finding(&'static str),
    /// A list in the finding, joined.
    FindingList(&'static str),
}

/// The columns, in order. The README's table is this list; change both.
pub const COLUMNS: &[(&str, Source)] = &[
    ("externalAssetId", Source::Asset("/externalAssetId")),
    ("sourceNativeKey", Source::Asset("/sourceNativeKey")),
    ("hostName", Source::Asset("/hostName")),
    ("fqdn", Source::Asset("/fqdn")),
    ("instanceId", Source::Asset("/instanceId")),
    ("cloudProvider", Source::Asset("/cloudProvider")),
    ("osName", Source::Asset("/operatingSystem/name")),
    ("osVersion", Source::Asset("/operatingSystem/version")),
    (
        "osArchitecture",
        Source::Asset("/operatingSystem/architecture"),
    ),
    ("ipAddresses", Source::Interfaces("ipAddress")),
    ("macAddresses", Source::Interfaces("macAddress")),
    ("source", Source::Asset("/source")),
    (
        "findingVendorId",
        Source::Finding("/findingType/vulnerability/vendorId"),
    ),
    ("externalFindingId", Source::Finding("/externalFindingId")),
    ("cveId", Source::Finding("/findingType/vulnerability/cveId")),
    ("findingName", Source::Finding("/name")),
    ("status", Source::Finding("/status")),
    ("severity", Source::Finding("/severity")),
    ("qds", Source::Finding("/qds")),
    ("firstFoundOn", Source::Finding("/firstFoundOn")),
    ("impact", Source::Finding("/impact")),
    ("description", Source::Finding("/description")),
    (
        "isPatchAvailable",
        Source::Finding("/findingType/vulnerability/isPatchAvailable"),
    ),
    (
        "isExploitAvailable",
        Source::Finding("/findingType/vulnerability/isExploitAvailable"),
    ),
    (
        "cweIds",
        Source::FindingList("/findingType/vulnerability/cweIds"),
    ),
    (
        "cvssVector",
        Source::Finding("/findingType/vulnerability/cvss/vector"),
    ),
    (
        "cvss2Base",
        Source::Finding("/findingType/vulnerability/cvss/cvss2Base"),
    ),
    (
        "cvss3Base",
        Source::Finding("/findingType/vulnerability/cvss/cvss3Base"),
    ),
    ("vendorProductName", Source::Finding("/vendorProductName")),
];

/// The asset fields the columns read. The rest of a document (software,
/// services, ports…, often most of its bytes) is skipped without being
/// built into values.
#[derive(serde::Deserialize)]
struct AssetFields {
    #[serde(rename = "externalAssetId")]
    external_asset_id: Option<Value>,
    #[serde(rename = "sourceNativeKey")]
    source_native_key: Option<Value>,
    #[serde(rename = "hostName")]
    host_name: Option<Value>,
    fqdn: Option<Value>,
    #[serde(rename = "instanceId")]
    instance_id: Option<Value>,
    #[serde(rename = "cloudProvider")]
    cloud_provider: Option<Value>,
    #[serde(rename = "operatingSystem")]
    operating_system: Option<Value>,
    #[serde(rename = "networkInterfaces")]
    network_interfaces: Option<Value>,
    source: Option<Value>,
}

/// Top-level fields `AssetFields` keeps; every `Source::Asset` column
/// reads one of them (a test checks).
const ASSET_FIELDS: &[&str] = &[
    "externalAssetId",
    "sourceNativeKey",
    "hostName",
    "fqdn",
    "instanceId",
    "cloudProvider",
    "operatingSystem",
    "networkInterfaces",
    "source",
];

impl AssetFields {
    /// The kept fields as an object (for the columns' pointers).
    fn into_value(self) -> Value {
        let values = [
            self.external_asset_id,
            self.source_native_key,
            self.host_name,
            self.fqdn,
            self.instance_id,
            self.cloud_provider,
            self.operating_system,
            self.network_interfaces,
            self.source,
        ];
        let asset: serde_json::Map<String, Value> = ASSET_FIELDS
            .iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
        Value::Object(asset)
    }
}

pub struct CsvSink {
    name: &'static str,
    out: csv::Writer<AtomicFile>,
    path: PathBuf,
    separator: char,
    formula_guard: bool,
    documents: u64,
    rows: u64,
    /// One row's fields, reused.
    row: Vec<String>,
    /// The document being written.
    current: Option<Current>,
}

/// The document being written: its asset's columns, its findings so far.
struct Current {
    asset_id: String,
    columns: Value,
    findings: u64,
}

impl CsvSink {
    /// Open `<dir>/<file>` (under its temporary name) and write the header.
    pub fn create(cfg: &CsvConfig, default_dir: &Path) -> Result<CsvSink, SinkError> {
        let name = intern(SinkConfig::Csv(cfg.clone()).name());
        let path = cfg.dir.as_deref().unwrap_or(default_dir).join(&cfg.file);
        let file = AtomicFile::create(&path).map_err(io(name, &path))?;
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(file);
        out.write_record(COLUMNS.iter().map(|(h, _)| *h))
            .map_err(csv_err(name, &path))?;
        Ok(CsvSink {
            name,
            out,
            path,
            // Validated as one character; `;` only if built by hand wrongly.
            separator: cfg.list_separator.chars().next().unwrap_or(';'),
            formula_guard: cfg.formula_guard,
            documents: 0,
            rows: 0,
            row: Vec::with_capacity(COLUMNS.len()),
            current: None,
        })
    }

    fn bad(&self, asset_id: &str, message: String) -> SinkError {
        SinkError::Document {
            sink: self.name,
            asset_id: asset_id.to_string(),
            message,
        }
    }

    fn write_row(&mut self, finding: Option<&Value>) -> Result<(), SinkError> {
        let Some(cur) = &self.current else {
            return Err(self.bad("", "a part outside a document".into()));
        };
        fill_row(&mut self.row, self.separator, &cur.columns, finding);
        if self.formula_guard {
            for cell in &mut self.row {
                guard_formula(cell);
            }
        }
        self.out
            .write_record(&self.row)
            .map_err(csv_err(self.name, &self.path))?;
        self.rows += 1;
        Ok(())
    }
}

/// One row's cells for `asset` and `finding` (none: the asset alone).
fn fill_row(row: &mut Vec<String>, separator: char, asset: &Value, finding: Option<&Value>) {
    row.clear();
    for (_, source) in COLUMNS {
        let cell = match (source, finding) {
            (Source::Asset(p), _) => asset.pointer(p).map(scalar).unwrap_or_default(),
            (Source::Interfaces(field), _) => {
                let items = asset
                    .get("networkInterfaces")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i.get(*field));
                join(items, separator)
            }
            (Source::Finding(p), Some(f)) => f.pointer(p).map(scalar).unwrap_or_default(),
            (Source::FindingList(p), Some(f)) => {
                let items = f.pointer(p).and_then(Value::as_array).into_iter().flatten();
                join(items, separator)
            }
            (_, None) => String::new(),
        };
        row.push(cell);
    }
}

/// A cell: strings as they are, numbers and booleans as JSON writes them,
/// null as empty, anything else (unexpected here) as its JSON text.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join<'a>(items: impl Iterator<Item = &'a Value>, separator: char) -> String {
    let mut cell = String::new();
    for (i, item) in items.filter(|v| !v.is_null()).enumerate() {
        if i > 0 {
            cell.push(separator);
        }
        for c in scalar(item).chars() {
            if c == separator || c == '\\' {
                cell.push('\\');
            }
            cell.push(c);
        }
    }
    cell
}

/// A leading `'` on a cell a spreadsheet would take for a formula.
fn guard_formula(cell: &mut String) {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.insert(0, '\'');
    }
}

fn io<'a>(name: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SinkError + 'a {
    move |source| SinkError::Io {
        sink: name,
        path: path.to_path_buf(),
        source,
    }
}

fn csv_err<'a>(name: &'static str, path: &'a Path) -> impl FnOnce(csv::Error) -> SinkError + 'a {
    move |e| SinkError::Io {
        sink: name,
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

impl Sink for CsvSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn begin_document(&mut self, asset_id: &str, asset: &[u8]) -> Result<(), SinkError> {
        // Documents come from our own renderer; one that does not parse is
        // a bug upstream, and failing this sink says so louder than a row
        // quietly missing.
        let fields: AssetFields =
            serde_json::from_slice(asset).map_err(|e| self.bad(asset_id, e.to_string()))?;
        self.current = Some(Current {
            asset_id: asset_id.to_string(),
            columns: fields.into_value(),
            findings: 0,
        });
        Ok(())
    }

    fn finding(&mut self, finding: &[u8]) -> Result<(), SinkError> {
        let f: Value = serde_json::from_slice(finding).map_err(|e| {
            let id = self.current.as_ref().map_or("", |c| c.asset_id.as_str());
            self.bad(id, e.to_string())
        })?;
        self.write_row(Some(&f))?;
        if let Some(c) = self.current.as_mut() {
            c.findings += 1;
        }
        Ok(())
    }

    fn end_document(&mut self) -> Result<(), SinkError> {
        // An asset without findings still gets its row.
        if self.current.as_ref().is_some_and(|c| c.findings == 0) {
            self.write_row(None)?;
        }
        self.current = None;
        self.documents += 1;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let CsvSink {
            name,
            out,
            path,
            documents,
            rows,
            ..
        } = *self;
        let file = out
            .into_inner()
            .map_err(|e| io(name, &path)(std::io::Error::other(e.error().to_string())))?;
        let bytes = file.bytes();
        let done = file.commit().map_err(io(name, &path))?;
        Ok(SinkReport {
            sink: name.into(),
            documents,
            bytes,
            location: done.display().to_string(),
            details: [("rows".to_string(), rows)].into_iter().collect(),
            ..SinkReport::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::write_document;

    fn sink(dir: &Path, sep: &str) -> CsvSink {
        let cfg = CsvConfig {
            list_separator: sep.into(),
            ..CsvConfig::default()
        };
        CsvSink::create(&cfg, dir).unwrap()
    }

    const DOC: &str = r#"{"externalAssetId":"vm_1","sourceNativeKey":"vm_1","source":"Orca Security","hostName":"web, \"one\"","cloudProvider":"EC2","operatingSystem":{"name":"Ubuntu","version":"22.04","architecture":"64"},"networkInterfaces":[{"macAddress":"0a:1b","ipAddress":"10.0.0.1"},{"ipAddress":"fe80::1"}],"finding":[{"externalFindingId":"CVE-1","name":"multi\nline","severity":5,"qds":95,"status":"NEW","vendorProductName":"Orca Security","firstFoundOn":"2026-02-09T13:15:04Z","findingType":{"vulnerability":{"cveId":"CVE-1","vendorId":"f-1","isPatchAvailable":true,"isExploitAvailable":false,"cweIds":["CWE-79","CWE-89"],"cvss":{"vector":"AV:N","cvss2Base":null,"cvss3Base":10.0}}}},{"vendorProductName":"Orca Security","findingType":{"vulnerability":{"vendorId":"f-2"}},"status":"FIXED"}]}"#;

    #[test]
    fn rows_are_quoted_by_rfc_4180_in_the_documented_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), ";");
        write_document(&mut s, "vm_1", DOC.as_bytes()).unwrap();
        write_document(
            &mut s,
            "vm_2",
            br#"{"externalAssetId":"vm_2","hostName":"bare","finding":[]}"#,
        )
        .unwrap();
        let report = Box::new(s).commit().unwrap();
        assert_eq!(report.documents, 2);
        assert_eq!(report.details["rows"], 3);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let header = COLUMNS
            .iter()
            .map(|(h, _)| *h)
            .collect::<Vec<_>>()
            .join(",");
        let want = format!(
            "{header}\r\n\
             vm_1,vm_1,\"web, \"\"one\"\"\",,,EC2,Ubuntu,22.04,64,10.0.0.1;fe80::1,0a:1b,Orca Security,f-1,CVE-1,CVE-1,\"multi\nline\",NEW,5,95,2026-02-09T13:15:04Z,,,true,false,CWE-79;CWE-89,AV:N,,10.0,Orca Security\r\n\
             vm_1,vm_1,\"web, \"\"one\"\"\",,,EC2,Ubuntu,22.04,64,10.0.0.1;fe80::1,0a:1b,Orca Security,f-2,,,,FIXED,,,,,,,,,,,,Orca Security\r\n\
             vm_2,,bare,,,,,,,,,,,,,,,,,,,,,,,,,,\r\n"
        );
        assert_eq!(text, want);
        assert_eq!(report.bytes, text.len() as u64);
    }

    #[test]
    fn a_reader_reads_back_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), "|");
        write_document(&mut s, "vm_1", DOC.as_bytes()).unwrap();
        Box::new(s).commit().unwrap();
        let mut r = csv::Reader::from_path(dir.path().join(FILE_NAME)).unwrap();
        let headers = r.headers().unwrap().clone();
        assert_eq!(headers.len(), COLUMNS.len());
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        assert_eq!(&rows[0][col("hostName")], "web, \"one\"");
        assert_eq!(&rows[0][col("findingName")], "multi\nline");
        assert_eq!(&rows[0][col("ipAddresses")], "10.0.0.1|fe80::1");
        assert_eq!(&rows[0][col("cweIds")], "CWE-79|CWE-89");
        assert_eq!(&rows[1][col("findingVendorId")], "f-2");
    }

    #[test]
    fn a_list_entry_holding_the_separator_is_escaped_not_split() {
        let items = [
            Value::from("10.0.0.1"),
            Value::from("10.0.0.2;10.0.0.3"),
            Value::Null,
            Value::from(r"a\b"),
        ];
        assert_eq!(join(items.iter(), ';'), r"10.0.0.1;10.0.0.2\;10.0.0.3;a\\b");
        assert_eq!(join(items.iter(), '|'), r"10.0.0.1|10.0.0.2;10.0.0.3|a\\b");
        assert_eq!(join([].iter(), ';'), "");
    }

    /// A reader's split: `\` escapes the next character.
    fn split(cell: &str, sep: char) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut chars = cell.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.last_mut().unwrap().extend(chars.next()),
                c if c == sep => out.push(String::new()),
                c => out.last_mut().unwrap().push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn joined_lists_split_back_into_their_entries(
            items in proptest::collection::vec("[a-z0-9;|\\\\:.]{0,6}", 1..6),
            sep in proptest::sample::select(vec![';', '|', ' ']),
        ) {
            let values: Vec<Value> = items.iter().map(|s| Value::from(s.as_str())).collect();
            proptest::prop_assert_eq!(split(&join(values.iter(), sep), sep), items);
        }
    }

    #[test]
    fn the_formula_guard_marks_only_cells_a_spreadsheet_would_run() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CsvConfig {
            formula_guard: true,
            ..CsvConfig::default()
        };
        let mut s = CsvSink::create(&cfg, dir.path()).unwrap();
        let doc = r#"{"externalAssetId":"vm_1","hostName":"=HYPERLINK(\"http://x\")","finding":[{"name":"@SUM(1)","description":"-1+2","severity":3,"findingType":{"vulnerability":{"vendorId":"f-1","cweIds":["CWE-1"]}}}]}"#;
        write_document(&mut s, "vm_1", doc.as_bytes()).unwrap();
        Box::new(s).commit().unwrap();
        let mut r = csv::Reader::from_path(dir.path().join(FILE_NAME)).unwrap();
        let headers = r.headers().unwrap().clone();
        let row = r.records().next().unwrap().unwrap();
        let col = |name: &str| &row[headers.iter().position(|h| h == name).unwrap()];
        assert_eq!(col("hostName"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(col("findingName"), "'@SUM(1)");
        assert_eq!(col("description"), "'-1+2");
        assert_eq!(col("externalAssetId"), "vm_1");
        assert_eq!(col("severity"), "3");
        assert_eq!(col("cweIds"), "CWE-1");
    }

    #[test]
    fn every_asset_column_reads_a_kept_field() {
        for (header, source) in COLUMNS {
            let top = match source {
                Source::Asset(p) => p.split('/').nth(1).unwrap(),
                Source::Interfaces(_) => "networkInterfaces",
                _ => continue,
            };
            assert!(ASSET_FIELDS.contains(&top), "{header} reads {top}");
        }
    }

    #[test]
    fn nothing_appears_until_commit_and_bad_documents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), ";");
        write_document(&mut s, "vm_1", DOC.as_bytes()).unwrap();
        assert!(!dir.path().join(FILE_NAME).exists());
        let e = s.begin_document("vm_x", b"{not json").unwrap_err();
        assert!(
            matches!(&e, SinkError::Document { asset_id, .. } if asset_id == "vm_x"),
            "{e}"
        );
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
