//! Progress of the pull: a bar on a terminal, log lines otherwise.
//!
//! Rows are counted as the parse stage reads them, against the `total_items`
//! Orca announced for each model's query. The ETA takes the larger of what
//! the current row rate and the request rate limit allow, so a rate-limited
//! run does not promise an end it cannot reach.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stages::page::PageSummary;

/// The bar being drawn, if any, for [`LogWriter`] to write around.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Where log lines go: stderr, one whole line at a time, with the progress
/// bar (when one is drawn) lifted while it is written, so that a line never
/// lands inside the bar nor the bar inside a line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::with_capacity(256))
    }
}

/// One log event, written out when the formatter is done with it.
pub struct LogLine(Vec<u8>);

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let out = || {
            use std::io::Write;
            // Nowhere to report a failed write to stderr.
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(b) => b.suspend(out),
            None => out(),
        }
    }
}

/// How often log mode says how the pull goes (`Mode::Log`'s help says 10 s).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How progress is shown. The variants' doc comments are `--progress`'s help.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A bar when stderr is a terminal, log lines otherwise
    #[default]
    Auto,
    /// A bar on stderr (log lines when stderr is not a terminal)
    Bar,
    /// A log line every 10 s (pages, rows, total_items, rows/s, ETA)
    Log,
    /// Nothing
    Off,
}

impl Mode {
    /// What `self` comes to given whether stderr is a terminal, and a
    /// warning when that is not what was asked for: a bar cannot be drawn
    /// off a terminal (it would show nothing at all), so log lines instead.
    pub fn resolve(self, terminal: bool) -> (Mode, Option<&'static str>) {
        match self {
            Mode::Auto if terminal => (Mode::Bar, None),
            Mode::Auto => (Mode::Log, None),
            Mode::Bar if !terminal => (
                Mode::Log,
                Some("--progress bar: stderr is not a terminal, so progress shows as log lines instead"),
            ),
            m => (m, None),
        }
    }
}

#[derive(Clone)]
pub struct Progress(Arc<Inner>);

struct Inner {
    pages: AtomicU64,
    rows: AtomicU64,
    totals: Mutex<HashMap<String, u64>>,
    done: AtomicBool,
    started: Instant,
    page_size: u64,
    rate: f64,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Progress {
    pub fn start(mode: Mode, page_size: u64, rate: f64) -> Progress {
        let p = Progress(Arc::new(Inner {
            pages: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            totals: Mutex::new(HashMap::new()),
            done: AtomicBool::new(false),
            started: Instant::now(),
            page_size: page_size.max(1),
            rate,
            ticker: Mutex::new(None),
        }));
        let (mode, warning) = mode.resolve(std::io::stderr().is_terminal());
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        if mode != Mode::Off {
            let me = p.clone();
            let h = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || me.tick(mode))
                .ok();
            if let Ok(mut t) = p.0.ticker.lock() {
                *t = h;
            }
        }
        p
    }

    /// A page was read. `root` marks the first level query of a model, whose
    /// `total_items` is the model's total.
    pub fn page(&self, label: &str, root: bool, s: &PageSummary) {
        self.0.pages.fetch_add(1, Ordering::Relaxed);
        self.0.rows.fetch_add(s.rows as u64, Ordering::Relaxed);
        if let (true, Some(t)) = (root, s.total_items) {
            if let Ok(mut totals) = self.0.totals.lock() {
                totals.insert(label.to_string(), t);
            }
        }
    }

    pub fn finish(&self) {
        self.0.done.store(true, Ordering::Relaxed);
        let h = self.0.ticker.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = h {
            let _ = h.join();
        }
    }

    fn snapshot(&self) -> (u64, u64, u64, f64, Option<Duration>) {
        let i = &self.0;
        let rows = i.rows.load(Ordering::Relaxed);
        let pages = i.pages.load(Ordering::Relaxed);
        let total: u64 = i.totals.lock().map(|t| t.values().sum()).unwrap_or(0);
        let secs = i.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / secs;
        let left = total.saturating_sub(rows);
        let eta = (total > 0 && rate > 0.0).then(|| {
            let by_rows = left as f64 / rate;
            let by_limit = if i.rate > 0.0 {
                (left as f64 / i.page_size as f64).ceil() / i.rate
            } else {
                0.0
            };
            Duration::from_secs_f64(by_rows.max(by_limit))
        });
        (pages, rows, total, rate, eta)
    }

    fn tick(&self, mode: Mode) {
        let bar = (mode == Mode::Bar).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            if let Ok(mut shown) = BAR.lock() {
                *shown = Some(b.clone());
            }
            b
        });
        let mut last_log = Instant::now();
        while !self.0.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let (pages, rows, total, rate, eta) = self.snapshot();
            let eta_text = eta.map_or("?".to_string(), |d| format!("{}s", d.as_secs()));
            match &bar {
                Some(b) => {
                    b.set_length(total.max(rows));
                    b.set_position(rows);
                    b.set_message(format!("{pages} pages, {rate:.0} rows/s, ETA {eta_text}"));
                }
                None if last_log.elapsed() >= LOG_EVERY => {
                    last_log = Instant::now();
                    tracing::info!(pages, rows, total_items = total, rows_per_second = rate as u64, eta = %eta_text, "pulling");
                }
                None => {}
            }
        }
        if let Some(b) = bar {
            if let Ok(mut shown) = BAR.lock() {
                *shown = None;
            }
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_off_a_terminal_falls_back_to_log_lines_with_a_warning() {
        assert_eq!(Mode::Auto.resolve(true), (Mode::Bar, None));
        assert_eq!(Mode::Auto.resolve(false), (Mode::Log, None));
        assert_eq!(Mode::Bar.resolve(true), (Mode::Bar, None));
        let (mode, warning) = Mode::Bar.resolve(false);
        assert_eq!(mode, Mode::Log);
        assert!(warning.is_some_and(|w| w.contains("not a terminal")));
        for m in [Mode::Log, Mode::Off] {
            assert_eq!(m.resolve(false), (m, None));
            assert_eq!(m.resolve(true), (m, None));
        }
    }
}
