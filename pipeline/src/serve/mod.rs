//! `orca-etm serve`: the profiles of a serve config as a daemon.
//!
//! One scheduler loop runs the profiles' syncs one at a time, in the order
//! they fall due: profiles share the Orca token, whose rate limit is per
//! token, and a profile's runs therefore never overlap (its ledger lock
//! would refuse a second one anyway). `/metrics`, `/healthz` and `/readyz`
//! are served from their own thread, between runs as during them.
//!
//! SIGTERM or SIGINT: no new run starts; a running sync is stopped at its
//! next safe point (fetch stops, what was read is published as a partial
//! run, the ledger records it), then the daemon exits. A second signal
//! exits at once: the ledger is crash-safe, the next run repairs.

pub mod config;
pub mod schedule;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stages::ledger::Ledger;
use stages::secret::Secret;
use stages::telemetry::{self as t, Scope};
use tokio_util::sync::CancellationToken;

pub use config::{Profile, ServeConfig};
pub use schedule::Schedule;

use crate::manifest::RunStatus;
use crate::run::{sync, SyncOptions};
use crate::telemetry::{self, MetricsServer, Readiness};

/// Where `/metrics` listens when neither the flag nor the config says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// How the daemon is driven (the CLI sets these; tests too).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `metrics.listen`.
    pub listen: Option<SocketAddr>,
    /// Overrides `metrics.pushgateway`.
    pub pushgateway: Option<String>,
    /// Stop from outside (tests); SIGTERM/SIGINT too with `handle_signals`.
    pub shutdown: Option<CancellationToken>,
    pub handle_signals: bool,
    /// Told the listener's address once it is bound (tests bind port 0).
    pub on_listening: Option<flume::Sender<SocketAddr>>,
}

/// One run the daemon made.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub profile: String,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// The run's status, or why it could not start.
    pub status: Result<RunStatus, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Metrics(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Poll period of the scheduler's waits: how fast a signal is noticed
/// between runs.
const TICK: Duration = Duration::from_millis(100);

/// Run the daemon until shut down; returns the runs it made.
pub fn serve(
    cfg: &ServeConfig,
    token: &Secret,
    opts: ServeOptions,
) -> Result<Vec<RunLog>, ServeError> {
    let exporter = telemetry::install().map_err(ServeError::Metrics)?;
    let listen = match opts.listen.or(cfg.base.metrics.listen) {
        Some(a) => a,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|e| ServeError::Metrics(format!("{e}")))?,
    };
    let ready = Readiness::default();
    let server =
        MetricsServer::start(listen, ready.clone()).map_err(|source| ServeError::Listen {
            addr: listen,
            source,
        })?;
    if let Some(tx) = &opts.on_listening {
        let _ = tx.send(server.addr());
    }
    let shutdown = opts.shutdown.clone().unwrap_or_default();
    if opts.handle_signals {
        watch_signals(shutdown.clone(), ready.clone());
    }
    let pushgateway = opts
        .pushgateway
        .clone()
        .or_else(|| cfg.base.metrics.pushgateway.clone());

    let now = Utc::now();
    let mut next: Vec<Option<DateTime<Utc>>> = cfg
        .profiles
        .iter()
        .map(|p| {
            let scope = Scope::new(&p.name);
            scope
                .gauge(t::PROFILE_ACTIVE, &[])
                .set(if p.active { 1.0 } else { 0.0 });
            let at = p
                .active
                .then(|| p.schedule.first(now, last_start(p)))
                .flatten();
            scope.gauge(t::SCHEDULE_NEXT_RUN, &[]).set(unix(at));
            tracing::info!(profile = %p.name, active = p.active, next = ?at, "profile scheduled");
            at
        })
        .collect();
    ready.set(true);

    let mut log = Vec::new();
    while !shutdown.is_cancelled() {
        // The earliest due profile; ties go to the first in the config.
        let Some((i, at)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (i, at)))
            .min_by_key(|(i, at)| (*at, *i))
        else {
            tracing::info!("no run left to schedule; serving metrics until stopped");
            wait_until(&shutdown, None);
            break;
        };
        if !wait_until(&shutdown, Some(at)) {
            break;
        }
        let p = &cfg.profiles[i];
        let started = Utc::now();
        tracing::info!(profile = %p.name, "scheduled run starting");
        let run = sync(
            &p.config,
            token,
            SyncOptions {
                progress: crate::progress::Mode::Off,
                cancel: Some(shutdown.child_token()),
                handle_signals: false,
                delta: false,
            },
        );
        let ended = Utc::now();
        let status = match &run {
            Ok(o) => Ok(o.manifest.status),
            Err(e) => Err(e.to_string()),
        };
        match &status {
            Ok(s) => tracing::info!(profile = %p.name, status = s.as_str(), "scheduled run ended"),
            Err(e) => tracing::error!(profile = %p.name, "scheduled run could not start: {e}"),
        }
        drop(run);
        if let Some(url) = &pushgateway {
            let body = exporter.render_profile(&p.name);
            if let Err(e) = telemetry::push_blocking(url, &cfg.base.metrics.job, &p.name, body) {
                tracing::warn!(profile = %p.name, "metrics push failed: {e}");
            }
        }
        next[i] = p.schedule.next(started, ended);
        Scope::new(&p.name)
            .gauge(t::SCHEDULE_NEXT_RUN, &[])
            .set(unix(next[i]));
        log.push(RunLog {
            profile: p.name.clone(),
            started,
            ended,
            status,
        });
    }
    ready.set(false);
    tracing::info!(runs = log.len(), "serve stopped");
    drop(server);
    Ok(log)
}

/// Sleep until `at` (or for ever); false if shut down first.
fn wait_until(shutdown: &CancellationToken, at: Option<DateTime<Utc>>) -> bool {
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let left = match at {
            Some(at) => match (at - Utc::now()).to_std() {
                Ok(d) if !d.is_zero() => d,
                _ => return true,
            },
            None => TICK,
        };
        std::thread::sleep(left.min(TICK));
    }
}

/// When the profile's latest run started, from its ledger (read-only).
fn last_start(p: &Profile) -> Option<DateTime<Utc>> {
    let path = p.config.ledger_path();
    if !path.exists() {
        return None;
    }
    let runs = Ledger::open_read_only(&path).and_then(|l| l.runs(1)).ok()?;
    let started = &runs.first()?.started_at;
    DateTime::parse_from_rfc3339(started)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn unix(at: Option<DateTime<Utc>>) -> f64 {
    at.map(|t| t.timestamp_millis() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// First SIGTERM/SIGINT: shut down at the next safe point. Second: exit now.
fn watch_signals(shutdown: CancellationToken, ready: Readiness) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot watch for signals: {e}");
                    return;
                }
            };
            rt.block_on(async {
                crate::run::wait_for_signal().await;
                tracing::warn!("signal received: no new run starts; a running sync stops at its next safe point (a second signal exits at once)");
                ready.set(false);
                shutdown.cancel();
                crate::run::wait_for_signal().await;
                tracing::error!("second signal: exiting now");
                std::process::exit(130);
            });
        });
    if let Err(e) = spawned {
        tracing::error!("cannot watch for signals: {e}");
    }
}
