//! Real Prometheus, Pushgateway and promtool for the tests that need them,
//! started on 127.0.0.1 with temporary state, and a small HTTP client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tool from the distribution's packages (`apt-get install prometheus
/// prometheus-pushgateway`). Missing: the test fails when CI or
/// ORCA_ETM_REQUIRE_PROMETHEUS is set, and is skipped with a notice otherwise.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let required = ["CI", "ORCA_ETM_REQUIRE_PROMETHEUS"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0" && s != "false"));
        let msg = format!(
            "`{name}` is not installed: apt-get install -y prometheus prometheus-pushgateway \
             (.ci/run does this in CI)"
        );
        if required {
            panic!(
                "{msg}; CI or ORCA_ETM_REQUIRE_PROMETHEUS is set, so this test may not be skipped"
            );
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// A loopback port free a moment ago, for a child process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when the test ends, however it ends.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(mut cmd: Command, addr: SocketAddr, log: PathBuf, ready_path: &str) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let d = Daemon { child, addr, log };
        let http = Http::new();
        let url = format!("http://{addr}{ready_path}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(&url).map(|(s, _)| s) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "{} did not come up: {}",
                cmd_name(&d),
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn cmd_name(d: &Daemon) -> String {
    format!("process {}", d.child.id())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start Prometheus with `config` (YAML) in `dir`.
pub fn prometheus(bin: &Path, dir: &Path, config: &str) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
    Daemon::spawn(cmd, addr, dir.join("prometheus.log"), "/-/ready")
}

/// Start a Pushgateway (no persistence).
pub fn pushgateway(bin: &Path, dir: &Path) -> Daemon {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
    Daemon::spawn(cmd, addr, dir.join("pushgateway.log"), "/-/ready")
}

/// A blocking HTTP client over its own runtime.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// Status and body, or `None` if nothing answered.
    pub fn get(&self, url: &str) -> Option<(u16, String)> {
        self.rt.block_on(async {
            let r = self.client.get(url).send().await.ok()?;
            let status = r.status().as_u16();
            Some((status, r.text().await.ok()?))
        })
    }

    /// A PromQL instant query; the `data.result` array.
    pub fn query(&self, prom: SocketAddr, expr: &str) -> Result<Vec<Value>, String> {
        self.rt.block_on(async {
            let r = self
                .client
                .get(format!("http://{prom}/api/v1/query"))
                .query(&[("query", expr)])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let text = r.text().await.map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
            if v["status"] != "success" {
                return Err(format!("{}: {}", v["errorType"], v["error"]));
            }
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        })
    }

    pub fn json(&self, url: &str) -> Value {
        let (status, body) = self.get(url).unwrap_or_else(|| panic!("{url}: no answer"));
        assert_eq!(status, 200, "{url}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Poll `f` every 200 ms until it returns `Some`, or panic with `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of a sample line `name{labels} value` in a text exposition,
/// labels given in the order they are written.
pub fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    let prefix = format!("{name_and_labels} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The repository's `dashboards/` folder.
pub fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Every PromQL expression of the Grafana dashboard, with its panel title.
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dashboards().join("orca-etm.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
                }
            }
        }
    }
    walk(d["panels"].as_array().unwrap(), &mut out);
    out
}

/// A dashboard expression as Grafana would send it, for `profile`.
pub fn grafana_expr(expr: &str, profile: &str, range: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", range)
        .replace("${profile}", profile)
        .replace("$profile", profile)
}
