//! Stage and channel counters sampled when `/metrics` is scraped or a
//! snapshot is pushed.
//!
//! The stages count in plain atomics ([`StageStats`], [`ChannelStats`]) on
//! their hot paths; a run registers them here, and rendering reads them.
//! When a run ends its last values are folded into per-(profile, stage)
//! totals, so counters never go backwards across the runs of a daemon and
//! the last run's gauges (capacity, utilization) stay readable between runs.
//!
//! Rendered by hand because the `metrics` facade has integer counters only,
//! and busy/blocked time are fractional seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use stages::channel::ChannelStats;
use stages::telemetry::{self as t, Source};

use crate::runtime::StageStats;

type Key = (Arc<str>, &'static str);

#[derive(Default)]
struct StageSeries {
    live: Vec<(u64, Arc<StageStats>)>,
    items_in: u64,
    items_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    busy: f64,
    workers: usize,
    utilization: f64,
}

#[derive(Default)]
struct ChannelSeries {
    live: Vec<(u64, Arc<ChannelStats>)>,
    sent: u64,
    blocked: f64,
    capacity: u64,
}

#[derive(Default)]
struct Inner {
    stages: BTreeMap<Key, StageSeries>,
    channels: BTreeMap<Key, ChannelSeries>,
}

/// The registry of every run's stages and channels in this process.
#[derive(Default)]
pub struct Live {
    inner: Mutex<Inner>,
    next_run: AtomicU64,
}

/// The process's registry.
pub fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(Live::default)
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new run's registration id.
    pub(crate) fn begin(&self) -> u64 {
        self.next_run.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn stage(&self, run: u64, profile: &Arc<str>, s: &Arc<StageStats>) {
        let mut inner = self.lock();
        let series = inner.stages.entry((profile.clone(), s.name)).or_default();
        series.workers = s.workers;
        series.live.push((run, s.clone()));
    }

    pub(crate) fn channel(&self, run: u64, profile: &Arc<str>, c: &Arc<ChannelStats>) {
        let mut inner = self.lock();
        let series = inner.channels.entry((profile.clone(), c.name)).or_default();
        series.capacity = c.capacity;
        series.live.push((run, c.clone()));
    }

    /// Fold run `run`'s final values into the totals and let its stats go.
    pub(crate) fn end(&self, run: u64) {
        let mut inner = self.lock();
        for series in inner.stages.values_mut() {
            let (ended, live): (Vec<_>, Vec<_>) =
                series.live.drain(..).partition(|(r, _)| *r == run);
            series.live = live;
            for (_, s) in ended {
                series.items_in += s.items_in();
                series.items_out += s.items_out();
                series.bytes_in += s.bytes_in();
                series.bytes_out += s.bytes_out();
                series.busy += s.busy_seconds();
                series.utilization = s.utilization();
            }
        }
        for series in inner.channels.values_mut() {
            let (ended, live): (Vec<_>, Vec<_>) =
                series.live.drain(..).partition(|(r, _)| *r == run);
            series.live = live;
            for (_, c) in ended {
                series.sent += c.sent_items();
                series.blocked += c.blocked_seconds();
            }
        }
    }

    /// Append the sampled metrics, in the text exposition format.
    pub fn render_into(&self, out: &mut String) {
        let inner = self.lock();
        for m in t::METRICS.iter().filter(|m| m.source == Source::Sampled) {
            let mut lines = String::new();
            if let Some(get) = stage_value(m.name) {
                for ((profile, stage), s) in &inner.stages {
                    let _ = writeln!(
                        lines,
                        "{}{{profile=\"{}\",stage=\"{}\"}} {}",
                        m.name,
                        escape(profile),
                        escape(stage),
                        get(s)
                    );
                }
            } else if let Some(get) = channel_value(m.name) {
                for ((profile, channel), c) in &inner.channels {
                    let _ = writeln!(
                        lines,
                        "{}{{profile=\"{}\",channel=\"{}\"}} {}",
                        m.name,
                        escape(profile),
                        escape(channel),
                        get(c)
                    );
                }
            }
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
            let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.as_str());
            out.push_str(&lines);
            out.push('\n');
        }
    }
}

fn stage_value(name: &str) -> Option<fn(&StageSeries) -> f64> {
    fn sum<F: Fn(&StageStats) -> f64>(s: &StageSeries, f: F) -> f64 {
        s.live.iter().map(|(_, x)| f(x)).sum()
    }
    Some(match name {
        t::STAGE_ITEMS_RECEIVED => |s| s.items_in as f64 + sum(s, |x| x.items_in() as f64),
        t::STAGE_ITEMS_SENT => |s| s.items_out as f64 + sum(s, |x| x.items_out() as f64),
        t::STAGE_BYTES_RECEIVED => |s| s.bytes_in as f64 + sum(s, |x| x.bytes_in() as f64),
        t::STAGE_BYTES_SENT => |s| s.bytes_out as f64 + sum(s, |x| x.bytes_out() as f64),
        t::STAGE_BUSY => |s| s.busy + sum(s, |x| x.busy_seconds()),
        t::STAGE_WORKERS => |s| match s.live.is_empty() {
            true => s.workers as f64,
            false => sum(s, |x| x.workers as f64),
        },
        // A running stage's own average; between runs, the last run's.
        t::STAGE_UTILIZATION => |s| match s.live.is_empty() {
            true => s.utilization,
            false => sum(s, |x| x.utilization()) / s.live.len() as f64,
        },
        _ => return None,
    })
}

fn channel_value(name: &str) -> Option<fn(&ChannelSeries) -> f64> {
    fn sum<F: Fn(&ChannelStats) -> f64>(c: &ChannelSeries, f: F) -> f64 {
        c.live.iter().map(|(_, x)| f(x)).sum()
    }
    Some(match name {
        t::CHANNEL_QUEUED => |c| sum(c, |x| x.queued_items() as f64),
        t::CHANNEL_CAPACITY => |c| c.capacity as f64,
        t::CHANNEL_SENT => |c| c.sent as f64 + sum(c, |x| x.sent_items() as f64),
        t::CHANNEL_BLOCKED => |c| c.blocked + sum(c, |x| x.blocked_seconds()),
        _ => return None,
    })
}

/// A label value as the text format wants it.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use stages::channel;
    use std::time::Instant;

    #[test]
    fn every_sampled_metric_has_a_reader() {
        for m in t::METRICS.iter().filter(|m| m.source == Source::Sampled) {
            let stage = stage_value(m.name).is_some();
            let chan = channel_value(m.name).is_some();
            assert!(stage != chan, "{}: sampled from exactly one kind", m.name);
            let label = if stage { "stage" } else { "channel" };
            assert_eq!(m.labels, &["profile", label][..], "{}", m.name);
        }
    }

    fn sample(text: &str, metric: &str, labels: &str) -> Option<f64> {
        let prefix = format!("{metric}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn runs_fold_into_totals_that_never_go_back() {
        let live = Live::default();
        let profile: Arc<str> = Arc::from("p-live");
        let (tx, rx) = channel::bounded::<Vec<u8>>("records", 10);
        let stats = StageStats::new("parse", 2);

        let run = live.begin();
        live.stage(run, &profile, &stats);
        live.channel(run, &profile, tx.stats());
        tx.send_blocking(vec![1, 2, 3]).unwrap();
        stats.record(1, 100, 3, Instant::now());
        stats.add_bytes_out(40);
        let mut text = String::new();
        live.render_into(&mut text);
        let labels = "profile=\"p-live\",stage=\"parse\"";
        let ch = "profile=\"p-live\",channel=\"records\"";
        assert_eq!(sample(&text, t::STAGE_ITEMS_RECEIVED, labels), Some(1.0));
        assert_eq!(sample(&text, t::STAGE_ITEMS_SENT, labels), Some(3.0));
        assert_eq!(sample(&text, t::STAGE_BYTES_RECEIVED, labels), Some(100.0));
        assert_eq!(sample(&text, t::STAGE_BYTES_SENT, labels), Some(40.0));
        assert_eq!(sample(&text, t::STAGE_WORKERS, labels), Some(2.0));
        assert_eq!(sample(&text, t::CHANNEL_QUEUED, ch), Some(3.0));
        assert_eq!(sample(&text, t::CHANNEL_CAPACITY, ch), Some(10.0));
        assert_eq!(sample(&text, t::CHANNEL_SENT, ch), Some(3.0));
        assert!(text.contains(&format!("# TYPE {} counter\n", t::CHANNEL_BLOCKED)));
        assert!(text.contains(&format!("# TYPE {} gauge\n", t::CHANNEL_QUEUED)));

        live.end(run);
        drop((tx, rx));
        // A second run of the profile adds to the first.
        let (tx, _rx) = channel::bounded::<Vec<u8>>("records", 20);
        let stats = StageStats::new("parse", 1);
        let run = live.begin();
        live.stage(run, &profile, &stats);
        live.channel(run, &profile, tx.stats());
        stats.record(2, 10, 2, Instant::now());
        tx.send_blocking(vec![9]).unwrap();
        let mut text = String::new();
        live.render_into(&mut text);
        assert_eq!(sample(&text, t::STAGE_ITEMS_RECEIVED, labels), Some(3.0));
        assert_eq!(sample(&text, t::STAGE_BYTES_RECEIVED, labels), Some(110.0));
        assert_eq!(sample(&text, t::STAGE_WORKERS, labels), Some(1.0));
        assert_eq!(sample(&text, t::CHANNEL_SENT, ch), Some(4.0));
        assert_eq!(sample(&text, t::CHANNEL_CAPACITY, ch), Some(20.0));
        live.end(run);
        // Between runs: nothing queued, the totals and last capacity stay.
        let mut text = String::new();
        live.render_into(&mut text);
        assert_eq!(sample(&text, t::CHANNEL_QUEUED, ch), Some(0.0));
        assert_eq!(sample(&text, t::CHANNEL_SENT, ch), Some(4.0));
        assert_eq!(sample(&text, t::STAGE_ITEMS_SENT, labels), Some(5.0));
    }
}
