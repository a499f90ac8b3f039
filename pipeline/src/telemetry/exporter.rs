//! The process's Prometheus recorder, and the text it renders.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use stages::telemetry::{self as t, Kind};

use super::live::live;

/// The installed recorder.
pub struct Exporter {
    handle: PrometheusHandle,
}

static EXPORTER: OnceLock<Result<Exporter, String>> = OnceLock::new();

/// Install the Prometheus recorder as the process's `metrics` recorder
/// (once; later calls return the same one). Fails if another recorder was
/// installed first.
pub fn install() -> Result<&'static Exporter, String> {
    EXPORTER.get_or_init(build).as_ref().map_err(|e| e.clone())
}

/// The recorder, if installed.
pub fn installed() -> Option<&'static Exporter> {
    EXPORTER.get().and_then(|e| e.as_ref().ok())
}

fn build() -> Result<Exporter, String> {
    let mut b = PrometheusBuilder::new();
    for m in t::METRICS.iter().filter(|m| m.kind == Kind::Histogram) {
        b = b
            .set_buckets_for_metric(Matcher::Full(m.name.to_string()), m.buckets)
            .map_err(|e| format!("{}: {e}", m.name))?;
    }
    let handle = b
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    t::describe_all();
    metrics::gauge!(t::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(Exporter { handle })
}

impl Exporter {
    /// Every metric, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        let mut out = self.handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        live().render_into(&mut out);
        out
    }

    /// The metrics of one profile (and those of no profile, like the build
    /// info): what a push to that profile's Pushgateway group may carry, as
    /// the Pushgateway refuses a `profile` label that differs from the group's.
    pub fn render_profile(&self, profile: &str) -> String {
        only_profile(&self.render(), profile)
    }
}

/// Keep the samples of `profile` (and those without a profile label), and
/// the metric families that still have samples.
pub fn only_profile(text: &str, profile: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut header = String::new();
    let mut kept_any = false;
    let mut family: Option<&str> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            // `# HELP name …` / `# TYPE name …`: the header of a family,
            // written out only once the family has a sample to keep.
            let name = line.split_whitespace().nth(2);
            if name != family {
                family = name;
                header.clear();
                kept_any = false;
            }
            let to = if kept_any { &mut out } else { &mut header };
            to.push_str(line);
            to.push('\n');
            continue;
        }
        if label_value(line, "profile").is_none_or(|p| p == profile) {
            if !kept_any {
                out.push_str(&header);
                kept_any = true;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The value of label `name` on a sample line, if it has one.
fn label_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let open = line.find('{')?;
    let mut rest = &line[open + 1..];
    loop {
        let eq = rest.find("=\"")?;
        let key = rest[..eq].trim_start_matches(',').trim();
        let value_start = eq + 2;
        let bytes = rest.as_bytes();
        let mut i = value_start;
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if key == name {
            return Some(&rest[value_start..i]);
        }
        rest = &rest[i + 1..];
        if rest.starts_with('}') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_profile_is_cut_out_of_the_text() {
        let text = "\
# HELP a_total help a
# TYPE a_total counter
a_total{profile=\"x\",status=\"200\"} 3
a_total{profile=\"y\",status=\"200\"} 4
# HELP b help b
# TYPE b gauge
b{profile=\"y\"} 1

# TYPE info gauge
info{version=\"0.1.0\"} 1
c{stage=\"parse\",profile=\"x\"} 2
d{reason=\"a\\\"profile=\\\"x\",profile=\"y\"} 2
";
        let x = only_profile(text, "x");
        assert_eq!(
            x,
            "\
# HELP a_total help a
# TYPE a_total counter
a_total{profile=\"x\",status=\"200\"} 3
# TYPE info gauge
info{version=\"0.1.0\"} 1
c{stage=\"parse\",profile=\"x\"} 2
"
        );
        assert!(only_profile(text, "y").contains("b{profile=\"y\"} 1"));
        assert!(!only_profile(text, "y").contains("profile=\"x\",status"));
    }

    #[test]
    fn label_values_are_read_past_escapes() {
        assert_eq!(
            label_value("m{a=\"1\",profile=\"p\"} 1", "profile"),
            Some("p")
        );
        assert_eq!(label_value("m{a=\"q\\\"x\"} 1", "profile"), None);
        assert_eq!(label_value("m 1", "profile"), None);
    }
}
