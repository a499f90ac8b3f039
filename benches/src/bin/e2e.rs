//! The end-to-end bench: `orca-etm sync` against the fake Orca at several
//! scales, side by side with the baseline (`baseline`), and the rate-limit
//! floor. Prints a Markdown table (see benches/README.md).
//!
//! ```sh
//! cargo build --release --bins
//! target/release/e2e [--scales 100000,1000000,5000000] [--floor 200000] [--skip-baseline]
//!                    [--baseline-cap-gib 20]
//! ```
//!
//! The fake runs in its own process so that peak RSS (from `/usr/bin/time -v`)
//! is the connector's alone. The baseline keeps the whole tenant in memory,
//! so it runs under an address-space cap (`prlimit --as`): where it would
//! need more than the machine has, the table says it ran out of memory
//! instead of the machine swapping or the kernel killing something else.
//!
//! The runs' files live in a temp dir (`orca-etm-bench-*` under the system's
//! temp dir) that is removed when the bench ends, on an error too. A closed
//! stdout (`e2e | head -1`) ends the bench quietly.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use clap::Parser;

const TOKEN: &str = "bench-token";

/// The end-to-end bench of orca-etm: `orca-etm sync` against the fake Orca
/// at each scale, beside the baseline, then (with --floor) the rate-limit
/// floor. Prints Markdown tables on stdout. Needs `fake-orca`, `orca-etm`
/// and (unless --skip-baseline) `baseline` beside this binary (`cargo build
/// --release --bins`), GNU time at /usr/bin/time and, for the baseline,
/// `prlimit`.
#[derive(Parser, Debug)]
#[command(name = "e2e")]
struct Args {
    /// Tenant sizes to run, in findings, comma-separated (20 findings per
    /// asset on average).
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(1..),
        default_value = "100000,1000000,5000000"
    )]
    scales: Vec<u64>,

    /// Also measure the rate-limit floor: a sync of N findings at 1
    /// request/s, its wall time against requests ÷ rate. Not run without it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    floor: Option<u64>,

    /// Run orca-etm only, not the baseline beside it.
    #[arg(long)]
    skip_baseline: bool,

    /// The baseline's address-space cap in GiB (`prlimit --as`); past it the
    /// table says the baseline ran out of memory.
    #[arg(
        long,
        value_name = "GIB",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=1 << 20)
    )]
    baseline_cap_gib: u64,
}

/// A binary built beside this one (target/release), checked to be there.
fn bin(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding the path of this binary")?;
    let p = me.parent().unwrap_or(Path::new(".")).join(name);
    if !p.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release --bins`",
            p.display()
        );
    }
    Ok(p)
}

struct FakeProc {
    child: Child,
    url: String,
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tenant `start_fake` serves, as fake-orca builds it from its flags.
fn tenant_spec(findings: u64) -> fixtures::tenant::TenantSpec {
    fixtures::tenant::TenantSpec {
        seed: 1,
        assets: (findings / 20).max(10),
        findings,
        odd_share: 0.05,
        over_limit_share: 0.01,
        orphan_findings: 0,
        non_vm_findings: 0,
    }
}

fn start_fake(fake_orca: &Path, findings: u64, rate: f64) -> Result<FakeProc> {
    let spec = tenant_spec(findings);
    let assets = spec.assets;
    let mut child = Command::new(fake_orca)
        .args(["--listen", "127.0.0.1:0", "--seed", "1"])
        .args([
            "--assets",
            &assets.to_string(),
            "--findings",
            &findings.to_string(),
        ])
        .args([
            "--rate",
            &rate.to_string(),
            "--cap",
            "0",
            "--odd-share",
            &spec.odd_share.to_string(),
            "--over-limit-share",
            &spec.over_limit_share.to_string(),
        ])
        .env("FAKE_ORCA_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", fake_orca.display()))?;
    let out = child.stdout.take().context("fake-orca: no stdout")?;
    // From here on the child is killed and reaped on every way out.
    let mut fake = FakeProc {
        child,
        url: String::new(),
    };
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .context("reading fake-orca's address")?;
    if line.is_empty() {
        bail!("fake-orca exited before printing its address");
    }
    fake.url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .with_context(|| format!("fake-orca printed no http:// address: {:?}", line.trim()))?
        .to_string();
    Ok(fake)
}

/// What `/usr/bin/time -v` measured of one command.
#[derive(Debug)]
struct Measured {
    wall: f64,
    cpu: f64,
    max_rss_kib: u64,
    ok: bool,
    /// The last lines the command itself wrote on stderr (before time's
    /// report), to say why it failed.
    stderr_tail: String,
}

fn timed(cmd: &mut Command, cap_bytes: Option<u64>) -> Result<Measured> {
    let mut time = Command::new("/usr/bin/time");
    time.arg("-v");
    if let Some(cap) = cap_bytes {
        time.arg("prlimit").arg(format!("--as={cap}")).arg("--");
    }
    time.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            time.env(k, v);
        }
    }
    let t = std::time::Instant::now();
    let out = time
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running /usr/bin/time (GNU time, Debian package `time`)")?;
    let wall = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> Result<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
            .with_context(|| {
                format!(
                    "no {name:?} in the output of /usr/bin/time -v (is it GNU time?); it said:\n{}",
                    tail(&text, 10)
                )
            })
    };
    let number = |name: &str| -> Result<f64> {
        let v = field(name)?;
        v.parse::<f64>()
            .with_context(|| format!("/usr/bin/time -v: {name} {v:?} is not a number"))
    };
    let cpu = number("User time (seconds):")? + number("System time (seconds):")?;
    let max_rss_kib = number("Maximum resident set size (kbytes):")? as u64;
    // time's report starts at "Command exited…" / "Command terminated…" /
    // "Command being timed:"; what comes before is the command's own.
    let own: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("Command "))
        .collect();
    Ok(Measured {
        wall,
        cpu,
        max_rss_kib,
        ok: out.status.success(),
        stderr_tail: tail(&own.join("\n"), 10),
    })
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Says on stderr why a measured command failed.
fn report_failure(what: &str, m: &Measured) {
    eprintln!("e2e: {what} failed; its last lines on stderr:");
    for l in m.stderr_tail.lines() {
        eprintln!("  {l}");
    }
}

/// The machine, for the record: CPU model, cores, memory.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1048576.0);
    format!("machine: {cpu}, {cores} cores, {mem_gib:.0} GiB")
}

fn config(dir: &Path, url: &str, rate: f64) -> Result<PathBuf> {
    let p = dir.join("orca-etm.toml");
    let text = format!(
        "[orca]\ndomain = \"{url}\"\nallow_insecure_http = true\nrequests_per_second = {rate}\npage_cap = 0\n\
         [output]\ndir = \"{}\"\n[run]\nwork_dir = \"{}\"\n",
        dir.join("out").display(),
        dir.join("work").display()
    );
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// The run's manifest; `ran_ok` says whether the run exited 0 (then the
/// manifest must be there; after a failed run there may be none).
fn manifest(dir: &Path, ran_ok: bool) -> Result<serde_json::Value> {
    let p = dir.join("out/manifest.json");
    let read = || -> Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    if ran_ok {
        read()
    } else {
        Ok(read().unwrap_or_default())
    }
}

/// A fresh directory for one run, inside the bench's temp dir.
fn run_dir(base: &Path, name: &str) -> Result<PathBuf> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Removes one run's files as soon as it is measured (the spill of a 5M run
/// is gigabytes); what is left goes with the temp dir at the end.
fn remove_run_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("e2e: warning: removing {}: {e}", dir.display());
    }
}

fn main() -> ExitCode {
    // Bad arguments: clap's message and exit 2; --help: usage and exit 0.
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read stdout has gone (`e2e | head -1`): nothing to say,
        // and no one to measure for. The temp dir and children are gone
        // already (dropped on the way out of `run`).
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(args: &Args) -> Result<()> {
    let fake_orca = bin("fake-orca")?;
    let orca_etm = bin("orca-etm")?;
    let baseline = if args.skip_baseline {
        None
    } else {
        Some(bin("baseline")?)
    };
    let cap_gib = args.baseline_cap_gib;
    // Removed when dropped: at the end, on an error, on a broken pipe.
    let base = tempfile::Builder::new()
        .prefix("orca-etm-bench-")
        .tempdir()
        .context("creating the bench's temp dir")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", machine())?;
    writeln!(out)?;
    writeln!(out, "| findings | tool | wall s | findings/s | MB/s (Orca JSON) | CPU s | peak RSS MiB | spill MiB | published = expected |")?;
    writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---|")?;
    let mut stage_lines = Vec::new();
    // orca-etm runs that failed: the tables are printed all the same, then
    // the bench exits 1. (The baseline running out of memory is a result.)
    let mut failed = Vec::new();
    for &n in &args.scales {
        let fake = start_fake(&fake_orca, n, 0.0)?;
        let dir = run_dir(base.path(), &format!("sync-{n}"))?;
        let m = timed(
            Command::new(&orca_etm)
                .args(["sync", "--progress", "off", "--config"])
                .arg(config(&dir, &fake.url, 0.0)?)
                .env("ORCA_API_TOKEN", TOKEN),
            None,
        )?;
        if !m.ok {
            report_failure(&format!("orca-etm sync of {n} findings"), &m);
            failed.push(format!("sync of {n} findings"));
        }
        let man = manifest(&dir, m.ok)?;
        let findings = man["counts"]["findings"].as_u64().unwrap_or(0);
        // A fast run that publishes the wrong tenant is no result.
        let want = fixtures::tenant::Tenant::new(tenant_spec(n))
            .expected()
            .clone();
        let assets = man["counts"]["assets"].as_u64().unwrap_or(0);
        let exact = assets == want.assets && findings == want.findings + want.orphan_findings;
        let exact_text = if exact {
            format!("yes ({assets} assets, {findings} findings)")
        } else {
            failed.push(format!(
                "sync of {n} findings published {assets} assets and {findings} findings, expected {} and {}",
                want.assets,
                want.findings + want.orphan_findings
            ));
            format!(
                "**NO**: {assets}/{} assets, {findings}/{} findings",
                want.assets,
                want.findings + want.orphan_findings
            )
        };
        stage_lines.push(format!(
            "- {n}: {}",
            man["stages"]
                .as_object()
                .map(|st| st
                    .iter()
                    .map(|(k, v)| format!(
                        "{k} {:.1} s busy ({:.0}% of its workers' time)",
                        v["busy_seconds"].as_f64().unwrap_or(0.0),
                        v["utilization"].as_f64().unwrap_or(0.0) * 100.0
                    ))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "no manifest (the run failed)".into())
        ));
        let bytes = man["stages"]["parse"]["bytes_in"].as_u64().unwrap_or(0);
        let spill = man["counts"]["spill"]["bytes"].as_u64().unwrap_or(0);
        writeln!(
            out,
            "| {n} | orca-etm{} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {exact_text} |",
            if m.ok { "" } else { " (FAILED)" },
            m.wall,
            findings as f64 / m.wall,
            bytes as f64 / 1e6 / m.wall,
            m.cpu,
            m.max_rss_kib as f64 / 1024.0,
            spill as f64 / 1048576.0
        )?;
        if let Some(baseline) = &baseline {
            let b = timed(
                Command::new(baseline)
                    .args(["--url", &fake.url, "--token-env", "ORCA_API_TOKEN", "--out"])
                    .arg(dir.join("baseline.ndjson"))
                    .env("ORCA_API_TOKEN", TOKEN),
                Some(cap_gib.saturating_mul(1 << 30)),
            )?;
            if b.ok {
                writeln!(
                    out,
                    "| {n} | baseline | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | – | – |",
                    b.wall,
                    findings as f64 / b.wall,
                    bytes as f64 / 1e6 / b.wall,
                    b.cpu,
                    b.max_rss_kib as f64 / 1024.0
                )?;
                if m.wall > 0.0 {
                    writeln!(
                        out,
                        "| {n} | **ratio** | **{:.1}× faster** | | | **{:.1}× less CPU** | **{:.0}× less memory** | | |",
                        b.wall / m.wall,
                        b.cpu / m.cpu.max(0.001),
                        b.max_rss_kib as f64 / (m.max_rss_kib.max(1)) as f64
                    )?;
                }
            } else {
                report_failure(&format!("baseline at {n} findings"), &b);
                writeln!(
                    out,
                    "| {n} | baseline | out of memory after {:.0} s (address space capped at {cap_gib} GiB; peak RSS {:.0} MiB) | | | {:.1} | | – | – |",
                    b.wall,
                    b.max_rss_kib as f64 / 1024.0,
                    b.cpu
                )?;
            }
        }
        remove_run_dir(&dir);
    }
    writeln!(out)?;
    writeln!(out, "orca-etm stage busy time (from each run's manifest):")?;
    for l in &stage_lines {
        writeln!(out, "{l}")?;
    }
    if let Some(n) = args.floor {
        let fake = start_fake(&fake_orca, n, 1.0)?;
        let dir = run_dir(base.path(), "floor")?;
        let m = timed(
            Command::new(&orca_etm)
                .args(["sync", "--progress", "off", "--config"])
                .arg(config(&dir, &fake.url, 1.0)?)
                .env("ORCA_API_TOKEN", TOKEN),
            None,
        )?;
        writeln!(out)?;
        writeln!(out, "rate-limit floor at {n} findings, 1 request/s:")?;
        if m.ok {
            let man = manifest(&dir, true)?;
            let requests = man["fetch"]["requests"].as_u64().unwrap_or(0);
            let page = 1000u64;
            let minimum: u64 = man["fetch"]["queries"]
                .as_array()
                .map(|qs| {
                    qs.iter()
                        // Root queries: one per model, before any split.
                        .filter(|q| q["label"] == q["model"])
                        .map(|q| q["total_items"].as_u64().unwrap_or(0).div_ceil(page).max(1))
                        .sum()
                })
                .unwrap_or(0);
            writeln!(
                out,
                "  wall {:.1} s against floor {} s (requests ÷ rate): {:+.1}%",
                m.wall,
                requests,
                (m.wall / requests.max(1) as f64 - 1.0) * 100.0
            )?;
            writeln!(
                out,
                "  requests {requests} against minimum {minimum}: {:+.1}%",
                (requests as f64 / minimum.max(1) as f64 - 1.0) * 100.0
            )?;
        } else {
            report_failure(&format!("orca-etm sync of {n} findings at 1 request/s"), &m);
            writeln!(out, "  orca-etm sync FAILED after {:.1} s", m.wall)?;
            failed.push(format!("floor sync of {n} findings"));
        }
        remove_run_dir(&dir);
    }
    out.flush()?;
    drop(out);
    let path = base.path().to_path_buf();
    base.close()
        .with_context(|| format!("removing {}", path.display()))?;
    if !failed.is_empty() {
        bail!("orca-etm failed: {}", failed.join(", "));
    }
    Ok(())
}
