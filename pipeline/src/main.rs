//! `orca-etm`: pull host assets and vulnerability findings from Orca
//! Security and deliver them as Qualys ETM host-asset documents.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pipeline::config::Config;
use pipeline::manifest::{Manifest, RunStatus};
use pipeline::progress::Mode;
use pipeline::run::{RunError, RunOutcome, SyncOptions};

/// glibc's malloc keeps a heap per thread and returns little to the OS: with
/// parse, transform and assembly threads taking turns, peak RSS grew with
/// the tenant (166 MiB at 1M findings against 80 MiB at 100k). mimalloc,
/// told to return freed memory at once (`pipeline::alloc`), keeps it flat
/// and is as fast on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (also in the README).
const EXIT_BAD_CONFIG: u8 = 2;
const EXIT_FAILED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "orca-etm",
    version,
    about = "Orca Security → Qualys ETM connector: a full pull of host assets and their vulnerability findings"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: a full pull from Orca into the configured sinks (ETM
    /// NDJSON by default; CSV, Qualys webhook).
    Sync {
        #[command(flatten)]
        target: ProfileArgs,
        /// How progress shows on stderr.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        progress: Mode,
        /// Publish only the assets whose document changed since the last
        /// run, and those with newly FIXED findings (the first run of a
        /// profile is always full).
        #[arg(long)]
        delta: bool,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// Run the profiles of a serve config on their schedules, serving
    /// /metrics, /healthz and /readyz (see README, Operations).
    Serve {
        /// A serve config: the sync config's tables plus [[profiles]] with
        /// their schedules (see README, Operations).
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        metrics: MetricsArgs,
    },
    /// The recent runs of the config's profile, newest first.
    Runs {
        #[command(flatten)]
        target: ProfileArgs,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Run the main job against a built-in fake Orca tenant on loopback.
    Demo {
        /// Output folder.
        #[arg(long, default_value = "orca-etm-demo")]
        out: PathBuf,
        /// Host assets in the fake tenant. The tenant also holds 5 findings
        /// of an asset no asset query returns (published under a minimal
        /// document and counted as an orphan: N + 1 documents) and 10
        /// findings of non-VM assets (left out).
        #[arg(long, default_value_t = 200)]
        assets: u64,
        /// Findings in the whole tenant, spread over the assets: a total,
        /// not per asset (default: 20 × --assets).
        #[arg(long)]
        findings: Option<u64>,
        /// Seed of the synthetic tenant: the same seed, the same tenant
        /// and byte-identical output.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// How progress shows on stderr.
        #[arg(long, value_enum, default_value_t = Mode::Auto)]
        progress: Mode,
        /// Also start the fake Qualys gateway and deliver to it (CSAM
        /// webhook), beside NDJSON and CSV files.
        #[arg(long)]
        qualys: bool,
    },
    /// Validate the config and test the connection and token: Orca is
    /// asked for one row per query, each webhook sink logs in once.
    Check {
        #[command(flatten)]
        target: ProfileArgs,
    },
    /// The transform map (Orca paths → ETM fields).
    ///
    /// --print-default prints the built-in map, to copy, edit and name in
    /// the config's `transform_map`.
    #[command(group(clap::ArgGroup::new("action").required(true)))]
    TransformMap {
        /// Print the default map (TOML) on stdout.
        #[arg(long, group = "action")]
        print_default: bool,
    },
}

impl Command {
    /// The subcommand as typed, to name it in error messages.
    fn name(&self) -> &'static str {
        match self {
            Command::Sync { .. } => "sync",
            Command::Serve { .. } => "serve",
            Command::Runs { .. } => "runs",
            Command::Demo { .. } => "demo",
            Command::Check { .. } => "check",
            Command::TransformMap { .. } => "transform-map",
        }
    }
}

/// Prometheus flags (override the config's `[metrics]`).
/// The config and the profile of it that sync, check and runs work on.
#[derive(clap::Args)]
struct ProfileArgs {
    /// A sync config, or a serve config with --profile (see README). The
    /// Orca token comes from ORCA_API_TOKEN or auth.api_token_file, never
    /// from the command line.
    #[arg(long)]
    config: PathBuf,
    /// On a serve config, which of its [[profiles]] to use (needed when
    /// it has several). On a sync config it must equal the config's own
    /// `profile` (else exit 2): it checks, it does not override.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(clap::Args)]
struct MetricsArgs {
    /// Serve /metrics, /healthz and /readyz on ADDR (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Push each run's final metrics to this Prometheus Pushgateway.
    #[arg(long, value_name = "URL")]
    pushgateway: Option<String>,
}

fn main() -> ExitCode {
    pipeline::alloc::return_freed_memory_at_once();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let cmd = cli.command.name();
    match cli.command {
        Command::Sync {
            target,
            progress,
            delta,
            metrics,
        } => {
            let cfg = match Config::load_profile(&target.config, target.profile.as_deref()) {
                Ok(c) => c,
                Err(e) => return bad_config(cmd, &e.to_string()),
            };
            let token = match cfg.token() {
                Ok(t) => t,
                Err(e) => return bad_config(cmd, &e.to_string()),
            };
            let opts = SyncOptions {
                progress,
                cancel: None,
                handle_signals: true,
                delta,
            };
            let listen = metrics.metrics_listen.or(cfg.metrics.listen);
            let pushgateway = metrics
                .pushgateway
                .or_else(|| cfg.metrics.pushgateway.clone());
            if let Some(url) = &pushgateway {
                if let Err(e) = pipeline::telemetry::push_url(url, &cfg.metrics.job, &cfg.profile) {
                    return bad_config(cmd, &e.to_string());
                }
            }
            let exporter = match (listen.is_some() || pushgateway.is_some())
                .then(pipeline::telemetry::install)
                .transpose()
            {
                Ok(e) => e,
                Err(e) => return failed(cmd, &e),
            };
            let ready = pipeline::telemetry::Readiness::default();
            let server = match listen
                .map(|a| pipeline::telemetry::MetricsServer::start(a, ready.clone()))
                .transpose()
            {
                Ok(s) => s,
                Err(e) => return failed(cmd, &format!("cannot serve metrics: {e}")),
            };
            ready.set(true);
            let outcome = pipeline::run::sync(&cfg, &token, opts);
            // Whatever the run's status: a failed run is what most needs seeing.
            if let (Some(url), Some(e)) = (&pushgateway, exporter) {
                let body = e.render_profile(&cfg.profile);
                match pipeline::telemetry::push_blocking(url, &cfg.metrics.job, &cfg.profile, body)
                {
                    Ok(()) => tracing::info!("metrics pushed to the Pushgateway"),
                    Err(e) => tracing::error!("metrics push failed: {e}"),
                }
            }
            drop(server);
            finish(cmd, outcome)
        }
        Command::Serve { config, metrics } => {
            let cfg = match pipeline::serve::ServeConfig::load(&config) {
                Ok(c) => c,
                Err(e) => return bad_config(cmd, &e.to_string()),
            };
            let token = match cfg.base.token() {
                Ok(t) => t,
                Err(e) => return bad_config(cmd, &e.to_string()),
            };
            let pushgateway = metrics
                .pushgateway
                .or_else(|| cfg.base.metrics.pushgateway.clone());
            for p in cfg.profiles.iter().filter(|_| pushgateway.is_some()) {
                let url = pushgateway.as_deref().unwrap_or_default();
                if let Err(e) = pipeline::telemetry::push_url(url, &cfg.base.metrics.job, &p.name) {
                    return bad_config(cmd, &e.to_string());
                }
            }
            let opts = pipeline::serve::ServeOptions {
                listen: metrics.metrics_listen,
                pushgateway,
                shutdown: None,
                handle_signals: true,
                on_listening: None,
            };
            match pipeline::serve::serve(&cfg, &token, opts) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => failed(cmd, &e.to_string()),
            }
        }
        Command::Demo {
            out,
            assets,
            findings,
            seed,
            progress,
            qualys,
        } => {
            let opts = pipeline::demo::DemoOptions {
                out,
                assets,
                findings: findings.unwrap_or(assets * 20),
                seed,
                qualys,
            };
            let sync = SyncOptions {
                progress,
                cancel: None,
                handle_signals: true,
                delta: false,
            };
            finish(cmd, pipeline::demo::run(&opts, sync))
        }
        Command::Runs {
            target,
            limit,
            json,
        } => {
            let cfg = match Config::load_profile(&target.config, target.profile.as_deref()) {
                Ok(c) => c,
                Err(e) => return bad_config(cmd, &e.to_string()),
            };
            match pipeline::runs::list(&cfg, limit) {
                Ok(runs) if json => match serde_json::to_string_pretty(&runs) {
                    Ok(text) => {
                        println!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => failed(cmd, &e.to_string()),
                },
                Ok(runs) if runs.is_empty() => {
                    println!(
                        "no runs recorded yet for profile {:?} (ledger {})",
                        cfg.profile,
                        cfg.ledger_path().display()
                    );
                    ExitCode::SUCCESS
                }
                Ok(runs) => {
                    print!("{}", pipeline::runs::table(&runs));
                    ExitCode::SUCCESS
                }
                Err(e) => failed(cmd, &e.to_string()),
            }
        }
        Command::Check { target } => {
            match pipeline::check::run(&target.config, target.profile.as_deref()) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err((EXIT_BAD_CONFIG, e)) => bad_config(cmd, &e),
                Err((code, e)) => {
                    eprintln!("orca-etm {cmd}: {e}");
                    ExitCode::from(code)
                }
            }
        }
        Command::TransformMap { print_default } => {
            // clap asks for one of the flags; this only guards a new one
            // added without its branch here.
            if !print_default {
                eprintln!("orca-etm {cmd}: nothing to do: pass --print-default (see --help)");
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            print!("{}", stages::transform::TransformMap::default_toml());
            ExitCode::SUCCESS
        }
    }
}

/// Every subcommand says its errors alike: `orca-etm <subcommand>: bad
/// configuration: …` for exit 2, `orca-etm <subcommand>: …` otherwise.
fn failed(cmd: &str, e: &str) -> ExitCode {
    eprintln!("orca-etm {cmd}: {e}");
    ExitCode::from(EXIT_FAILED)
}

fn bad_config(cmd: &str, e: &str) -> ExitCode {
    eprintln!("orca-etm {cmd}: bad configuration: {e}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

fn finish(cmd: &str, outcome: Result<RunOutcome, RunError>) -> ExitCode {
    match outcome {
        Ok(o) => {
            print_summary(&o.manifest, &o);
            ExitCode::from(o.manifest.status.exit_code() as u8)
        }
        Err(e) if e.exit_code() == 2 => bad_config(cmd, &e.to_string()),
        Err(e) => failed(cmd, &e.to_string()),
    }
}

fn print_summary(m: &Manifest, o: &RunOutcome) {
    let c = &m.counts;
    let status = match m.status {
        RunStatus::Complete => "complete",
        RunStatus::Partial => "PARTIAL",
        RunStatus::Failed => "FAILED",
    };
    println!("run {} {status} in {:.1}s", m.run_id, m.duration_seconds);
    if let Some(e) = &m.error {
        println!("  reason: {e}");
    }
    let by_status = c
        .findings_by_status
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let by_status = if by_status.is_empty() {
        by_status
    } else {
        format!("  ({by_status})")
    };
    println!(
        "  assets: {}  findings: {}{by_status}",
        c.assets, c.findings
    );
    // A delta run's counts are of what it published: say what it left out.
    if m.delta && m.output_run_id.as_deref() == Some(m.run_id.as_str()) {
        println!(
            "  delta: {} assets unchanged since run {} (left out)",
            c.unchanged_assets,
            m.base_run.as_deref().unwrap_or("-")
        );
    }
    // "Duplicates" are rows read twice, whether the tenant served them twice
    // or overlapping reads past the paging cap did: merged, never published twice.
    println!(
        "  dead letters: {}  repaired values: {}  orphan assets: {}  rows read twice (merged): {}",
        c.dead_letters,
        c.repairs.values().sum::<u64>(),
        c.orphan_assets,
        c.duplicates.assets + c.duplicates.findings
    );
    if let Some(f) = &m.fetch {
        println!(
            "  orca: {} requests, {} pages, {} retries, {} partitions split",
            f.requests,
            f.pages,
            f.retries_by_cause.values().sum::<u64>(),
            f.partitions_split
        );
    }
    match (&o.output, m.outputs.as_slice()) {
        (_, []) if m.failed_sinks.is_empty() => {
            println!("  output: none written (previous output left in place)")
        }
        (Some(p), [_]) if m.failed_sinks.is_empty() => println!("  output: {}", p.display()),
        (None, [only]) if m.failed_sinks.is_empty() => println!("  output: {}", only.location),
        // With several sinks, each one's delivery.
        (_, outputs) => {
            println!("  outputs:");
            for out in outputs {
                let dead = if out.dead_letters > 0 {
                    format!(", {} dead letters", out.dead_letters)
                } else {
                    String::new()
                };
                println!(
                    "    sink {}: {} documents{dead} → {}",
                    out.sink, out.documents, out.location
                );
            }
            for failed in &m.failed_sinks {
                let (name, why) = failed.split_once(": ").unwrap_or((failed, ""));
                println!("    sink {name}: FAILED: {why}");
            }
        }
    }
    println!("  manifest: {}", o.manifest_path.display());
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORCA_ETM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: never in files, pipes or CI logs.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(pipeline::progress::LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
