//! A slow sink shows where the backpressure is, on `/metrics` while the run
//! goes on: the channel in front of it near capacity, the sender upstream
//! (the publish thread) blocked more and more, the sink's utilization near
//! 1; the fast sinks fed by the same batches idle, their channels empty.

mod common;

use std::time::{Duration, Instant};

use common::gateway::{sinks_text, Gateway};
use common::prom::{sample, Http};
use common::*;
use fixtures::tenant::TenantSpec;
use pipeline::manifest::RunStatus;
use pipeline::telemetry::{self, MetricsServer, Readiness};
use stages::telemetry as t;

const PROFILE: &str = "slow-sink";
const SLOW: &str = "sink_qualys_webhook";
const FAST: &str = "sink_ndjson";

/// One scrape, taken at `at` (seconds since the run started).
struct Scrape {
    at: f64,
    text: String,
}

impl Scrape {
    fn channel(&self, name: &str, channel: &str) -> f64 {
        sample(
            &self.text,
            &format!("{name}{{profile=\"{PROFILE}\",channel=\"{channel}\"}}"),
        )
        .unwrap_or(0.0)
    }

    fn stage(&self, name: &str, stage: &str) -> f64 {
        sample(
            &self.text,
            &format!("{name}{{profile=\"{PROFILE}\",stage=\"{stage}\"}}"),
        )
        .unwrap_or(0.0)
    }

    fn fill(&self, channel: &str) -> f64 {
        let cap = self.channel(t::CHANNEL_CAPACITY, channel);
        if cap == 0.0 {
            return 0.0;
        }
        self.channel(t::CHANNEL_QUEUED, channel) / cap
    }
}

#[test]
fn a_slow_sink_shows_as_a_full_channel_a_blocked_sender_and_a_busy_stage() {
    telemetry::install().unwrap();
    let ready = Readiness::default();
    ready.set(true);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), ready).unwrap();

    let orca = Fake::synthetic(
        TenantSpec {
            seed: 9,
            assets: 2_000,
            findings: 40_000,
            odd_share: 0.0,
            over_limit_share: 0.0,
            orphan_findings: 0,
            non_vm_findings: 0,
        },
        0.0,
        "",
    );
    // Every call to the gateway takes 100 ms, for 40 documents (~17 KiB
    // each): the webhook takes about 7 MiB a second, the publish thread
    // renders several times that, and the ~35 MiB of documents are far more
    // than a sink channel holds (4 MiB).
    let gw = Gateway::start("", |c| {
        c.latency = Duration::from_millis(100);
        c.calls_per_window = 0;
    });
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "profile = \"{PROFILE}\"\n{}{}",
        config_text(&orca.url(), dir.path(), ""),
        sinks_text(dir.path(), &gw.url(), "batch_assets = 40")
    );
    let cfg = pipeline::config::Config::parse(&text).unwrap();

    let started = Instant::now();
    let run = std::thread::spawn(move || run(&cfg));
    let http = Http::new();
    let url = format!("http://{}/metrics", server.addr());
    let mut scrapes = Vec::new();
    while !run.is_finished() {
        if let Some((200, text)) = http.get(&url) {
            scrapes.push(Scrape {
                at: started.elapsed().as_secs_f64(),
                text,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.join().unwrap();
    assert_eq!(
        out.manifest.status,
        RunStatus::Complete,
        "{:?}",
        out.manifest.error
    );

    // While the sinks run: the scrapes where the slow sink's channel exists.
    let publishing: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.channel(t::CHANNEL_CAPACITY, SLOW) > 0.0)
        .collect();
    assert!(
        publishing.len() >= 10,
        "{} scrapes while publishing",
        publishing.len()
    );

    if std::env::var_os("BACKPRESSURE_TRACE").is_some() {
        for s in &publishing {
            eprintln!(
                "{:5.2}s fill {SLOW} {:.2} {FAST} {:.2} blocked {:.2} busy {:.2} queued {} cap {}",
                s.at,
                s.fill(SLOW),
                s.fill(FAST),
                s.channel(t::CHANNEL_BLOCKED, SLOW),
                s.stage(t::STAGE_BUSY, SLOW),
                s.channel(t::CHANNEL_QUEUED, SLOW),
                s.channel(t::CHANNEL_CAPACITY, SLOW),
            );
        }
    }
    // The channel in front of the slow sink near capacity, the fast one's
    // near empty, at the same moments. Near: within one batch of it (the
    // channel weighs KiB, a batch is up to 1 MiB, and a sender waits for
    // room for its whole batch).
    let ch = &out.manifest.channels[SLOW];
    let batch_kib = ch["sent_items"].as_f64().unwrap() / ch["sent_batches"].as_f64().unwrap();
    let near_full = |s: &Scrape| {
        let (queued, cap) = (
            s.channel(t::CHANNEL_QUEUED, SLOW),
            s.channel(t::CHANNEL_CAPACITY, SLOW),
        );
        queued >= 0.5 * cap && queued + 1.5 * batch_kib >= cap
    };
    let full: Vec<&&Scrape> = publishing.iter().filter(|s| near_full(s)).collect();
    assert!(
        full.len() * 2 >= publishing.len(),
        "the slow sink's channel was near capacity in {} of {} scrapes",
        full.len(),
        publishing.len()
    );
    // The fast sink's channel: emptier than the slow one's at every one of
    // those moments, and at most one batch in it at nearly all of them (a
    // scrape can catch a batch the instant it landed, before the sink's
    // thread was scheduled: one batch is a quarter of its capacity, and on
    // a loaded 2-core machine a second one can wait a moment too).
    let fast = &out.manifest.channels[FAST];
    let fast_batch_kib =
        fast["sent_items"].as_f64().unwrap() / fast["sent_batches"].as_f64().unwrap();
    for s in &full {
        assert!(
            s.fill(FAST) < s.fill(SLOW),
            "{FAST} at {:.2} while {SLOW} is at {:.2}",
            s.fill(FAST),
            s.fill(SLOW)
        );
    }
    let idle = full
        .iter()
        .filter(|s| s.channel(t::CHANNEL_QUEUED, FAST) <= 1.5 * fast_batch_kib)
        .count();
    assert!(
        idle * 10 >= full.len() * 9,
        "{FAST} held more than one batch in {} of the {} scrapes where {SLOW} is full",
        full.len() - idle,
        full.len()
    );

    // The sender upstream of it blocked, more and more.
    let (first, last) = (full[0], full[full.len() - 1]);
    let blocked = |s: &Scrape| s.channel(t::CHANNEL_BLOCKED, SLOW);
    assert!(
        last.at - first.at >= 1.0,
        "full for {:.1}s",
        last.at - first.at
    );
    assert!(
        blocked(last) - blocked(first) >= 0.7 * (last.at - first.at),
        "blocked {:.2}s of {:.2}s",
        blocked(last) - blocked(first),
        last.at - first.at
    );
    let mut previous = 0.0;
    for s in &publishing {
        assert!(blocked(s) >= previous, "blocked time went back");
        previous = blocked(s);
    }

    // The slow sink busy nearly all the time, the fast one hardly.
    let busy = |s: &Scrape, stage| s.stage(t::STAGE_BUSY, stage);
    let window = last.at - first.at;
    let slow_util = (busy(last, SLOW) - busy(first, SLOW)) / window;
    let fast_util = (busy(last, FAST) - busy(first, FAST)) / window;
    eprintln!(
        "{} scrapes publishing, {} with {SLOW} within a batch of capacity; over {window:.1}s: \
         {SLOW} blocked {:.2}s, utilization {slow_util:.2}; {FAST} fill {:.2}, utilization {fast_util:.2}",
        publishing.len(),
        full.len(),
        blocked(last) - blocked(first),
        last.fill(FAST),
    );
    assert!(slow_util >= 0.8, "{SLOW} utilization {slow_util:.2}");
    assert!(fast_util <= 0.2, "{FAST} utilization {fast_util:.2}");

    // After the run: the run averages, and the manifest agrees.
    let end = http.get(&url).unwrap().1;
    let end = Scrape { at: 0.0, text: end };
    let slow_avg = end.stage(t::STAGE_UTILIZATION, SLOW);
    assert!(slow_avg >= 0.8, "{SLOW} run utilization {slow_avg:.2}");
    assert!(end.stage(t::STAGE_UTILIZATION, FAST) <= 0.2);
    let m_blocked = out.manifest.channels[SLOW]["blocked_seconds"]
        .as_f64()
        .unwrap();
    assert!((end.channel(t::CHANNEL_BLOCKED, SLOW) - m_blocked).abs() < 0.01);
    assert_eq!(end.channel(t::CHANNEL_QUEUED, SLOW), 0.0);
    assert_eq!(gw.gw().accepted().len(), 2_000);
    let doc_bytes = out.manifest.channels[SLOW]["sent_items"].as_f64().unwrap();
    assert!(
        doc_bytes > 4.0 * 4096.0,
        "{doc_bytes} KiB: more than the channel holds"
    );
}
