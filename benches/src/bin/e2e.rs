//! The end-to-end bench: `orca-etm sync` against the fake Orca at several
//! scales, side by side with the baseline (`baseline`), and the rate-limit
//! floor. Prints a Markdown table (see benches/README.md).
//!
//! ```sh
//! cargo build --release --bins
//! target/release/e2e [--scales 100000,1000000,5000000] [--floor 20000] [--skip-baseline]
//!                    [--baseline-cap-gib 20]
//! ```
//!
//! The fake runs in its own process so that peak RSS (from `/usr/bin/time -v`)
//! is the connector's alone. The baseline keeps the whole tenant in memory,
//! so it runs under an address-space cap (`prlimit --as`): where it would
//! need more than the machine has, the table says it ran out of memory
//! instead of the machine swapping or the kernel killing something else.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const TOKEN: &str = "bench-token";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn bin(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.parent().unwrap_or(Path::new(".")).join(name)
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

fn start_fake(findings: u64, rate: f64) -> Result<FakeProc, String> {
    let assets = (findings / 20).max(10);
    let mut child = Command::new(bin("fake-orca"))
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
            "0.05",
        ])
        .env("FAKE_ORCA_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("fake-orca: {e} (build with `cargo build --release --bins`)"))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| format!("fake-orca said: {line}"))?
        .to_string();
    Ok(FakeProc { child, url })
}

/// What `/usr/bin/time -v` measured of one command.
#[derive(Default, Debug)]
struct Measured {
    wall: f64,
    cpu: f64,
    max_rss_kib: u64,
    ok: bool,
}

fn timed(cmd: &mut Command, cap_bytes: Option<u64>) -> Measured {
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
    let out = match time.stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("/usr/bin/time: {e}");
            return Measured::default();
        }
    };
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let secs = |name: &str| {
        field(name)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Measured {
        wall: t.elapsed().as_secs_f64(),
        cpu: secs("User time (seconds):") + secs("System time (seconds):"),
        max_rss_kib: field("Maximum resident set size (kbytes):")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ok: out.status.success(),
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

fn config(dir: &Path, url: &str, rate: f64) -> PathBuf {
    let p = dir.join("orca-etm.toml");
    let text = format!(
        "[orca]\ndomain = \"{url}\"\nallow_insecure_http = true\nrequests_per_second = {rate}\npage_cap = 0\n\
         [output]\ndir = \"{}\"\n[run]\nwork_dir = \"{}\"\n",
        dir.join("out").display(),
        dir.join("work").display()
    );
    let _ = std::fs::write(&p, text);
    p
}

fn manifest(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("out/manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn main() -> Result<(), String> {
    let scales: Vec<u64> = arg("--scales")
        .unwrap_or_else(|| "100000,1000000,5000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cap_gib: u64 = arg("--baseline-cap-gib")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let base = std::env::temp_dir().join(format!("orca-etm-bench-{}", std::process::id()));
    println!("{}", machine());
    println!();
    println!("| findings | tool | wall s | findings/s | MB/s (Orca JSON) | CPU s | peak RSS MiB | spill MiB |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut stage_lines = Vec::new();
    for &n in &scales {
        let fake = start_fake(n, 0.0)?;
        let dir = base.join(format!("sync-{n}"));
        let _ = std::fs::create_dir_all(&dir);
        let m = timed(
            Command::new(bin("orca-etm"))
                .args(["sync", "--progress", "off", "--config"])
                .arg(config(&dir, &fake.url, 0.0))
                .env("ORCA_API_TOKEN", TOKEN),
            None,
        );
        let man = manifest(&dir);
        let findings = man["counts"]["findings"].as_u64().unwrap_or(0);
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
                .unwrap_or_default()
        ));
        let bytes = man["stages"]["parse"]["bytes_in"].as_u64().unwrap_or(0);
        let spill = man["counts"]["spill"]["bytes"].as_u64().unwrap_or(0);
        println!(
            "| {n} | orca-etm{} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} |",
            if m.ok { "" } else { " (FAILED)" },
            m.wall,
            findings as f64 / m.wall,
            bytes as f64 / 1e6 / m.wall,
            m.cpu,
            m.max_rss_kib as f64 / 1024.0,
            spill as f64 / 1048576.0
        );
        if !flag("--skip-baseline") {
            let b = timed(
                Command::new(bin("baseline"))
                    .args(["--url", &fake.url, "--token-env", "ORCA_API_TOKEN", "--out"])
                    .arg(dir.join("baseline.ndjson"))
                    .env("ORCA_API_TOKEN", TOKEN),
                Some(cap_gib << 30),
            );
            if b.ok {
                println!(
                    "| {n} | baseline | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} | – |",
                    b.wall,
                    findings as f64 / b.wall,
                    bytes as f64 / 1e6 / b.wall,
                    b.cpu,
                    b.max_rss_kib as f64 / 1024.0
                );
                if m.wall > 0.0 {
                    println!(
                        "| {n} | **ratio** | **{:.1}× faster** | | | **{:.1}× less CPU** | **{:.0}× less memory** | |",
                        b.wall / m.wall,
                        b.cpu / m.cpu.max(0.001),
                        b.max_rss_kib as f64 / (m.max_rss_kib.max(1)) as f64
                    );
                }
            } else {
                println!(
                    "| {n} | baseline | out of memory after {:.0} s (address space capped at {cap_gib} GiB; peak RSS {:.0} MiB) | | | {:.1} | | – |",
                    b.wall,
                    b.max_rss_kib as f64 / 1024.0,
                    b.cpu
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    println!("orca-etm stage busy time (from each run's manifest):");
    for l in &stage_lines {
        println!("{l}");
    }
    if let Some(n) = arg("--floor").and_then(|s| s.parse::<u64>().ok()) {
        let fake = start_fake(n, 1.0)?;
        let dir = base.join("floor");
        let _ = std::fs::create_dir_all(&dir);
        let m = timed(
            Command::new(bin("orca-etm"))
                .args(["sync", "--progress", "off", "--config"])
                .arg(config(&dir, &fake.url, 1.0))
                .env("ORCA_API_TOKEN", TOKEN),
            None,
        );
        let man = manifest(&dir);
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
        println!();
        println!("rate-limit floor at {n} findings, 1 request/s:");
        println!(
            "  wall {:.1} s against floor {} s (requests ÷ rate): {:+.1}%",
            m.wall,
            requests,
            (m.wall / requests.max(1) as f64 - 1.0) * 100.0
        );
        println!(
            "  requests {requests} against minimum {minimum}: {:+.1}%",
            (requests as f64 / minimum.max(1) as f64 - 1.0) * 100.0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
