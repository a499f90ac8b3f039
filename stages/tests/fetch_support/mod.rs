//! Test helpers for the fetch stage: a tiny Orca-like server on 127.0.0.1:0
//! whose answers each test scripts, a synthetic tenant that implements the
//! filter grammar the planner emits, and a stand-in for the parse stage.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use stages::channel::{self, Receiver};
use stages::fetch::FetchConfig;
use stages::page::{Page, PageSummary, PageVerdict};

pub const TOKEN: &str = "tok-SECRET-5f2b9c71e0";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub n: usize,
    pub at: Instant,
    pub auth: Option<String>,
    pub content_type: Option<String>,
    pub path: String,
    pub body: Value,
}

impl Req {
    pub fn model(&self) -> &str {
        self.body["query"]["models"][0].as_str().unwrap_or("")
    }
    pub fn offset(&self) -> u64 {
        self.body["start_at_index"].as_u64().unwrap_or(0)
    }
    pub fn limit(&self) -> u64 {
        self.body["limit"].as_u64().unwrap_or(0)
    }
    pub fn filtered(&self) -> bool {
        self.body["query"].get("with").is_some()
    }
    /// A filter beyond the findings' relation leaf (i.e. a split partition).
    pub fn partitioned(&self) -> bool {
        let w = &self.body["query"]["with"];
        w.get("key").is_some() || w["type"] == "operation"
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Response + Send + Sync>;

pub struct Fake {
    pub base_url: String,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

/// Serve `handler` on a fresh loopback port for the rest of the test.
pub async fn serve(handler: Handler) -> Fake {
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let l2 = log.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let log = l2.clone();
            let handler = handler.clone();
            async move {
                let req = {
                    let mut g = log.lock().unwrap();
                    let req = Req {
                        n: g.len(),
                        at: Instant::now(),
                        auth: header(&headers, "authorization"),
                        content_type: header(&headers, "content-type"),
                        path: uri.path().to_string(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    };
                    g.push(req.clone());
                    req
                };
                handler(&req)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Fake {
        base_url: format!("http://{addr}/api/"),
        log,
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn json_reply(status: u16, v: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// An answer whose body is `body` as it is (a byte-order mark, say).
pub fn raw_reply(status: u16, body: &'static [u8]) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

pub fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    r.headers_mut().insert(name, value.parse().unwrap());
    r
}

/// A 200 whose body arrives one byte every `every`.
pub fn drip_reply(every: Duration) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        for b in br#"{"status":"success","total_items":0,"data":[]}"#.iter() {
            if tx.send(Ok(Bytes::from(vec![*b]))).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}

/// A config for tests: the fake's URL, no rate limit, quick backoff.
pub fn config(fake: &Fake) -> FetchConfig {
    FetchConfig {
        domain: fake.base_url.clone(),
        allow_insecure_http: true,
        requests_per_second: 0.0,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..FetchConfig::default()
    }
}

// ---------------------------------------------------------------- tenant

#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub model: String,
    pub severity: Option<String>,
    pub first_seen: Option<i64>,
    /// Sort key with ties, used when the tenant shuffles ties.
    pub tie: u32,
}

/// 2020-01-01 and 2024-12-31 in ms: items are spread between them.
pub const T0: i64 = 1_577_836_800_000;
pub const T1: i64 = 1_735_603_200_000;
pub const NOW: i64 = 1_764_000_000_000;

/// `n` items of `model`, ids sortable, FirstSeen spread evenly, severities cycling.
pub fn items(model: &str, n: usize) -> Vec<Item> {
    let sev = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE"];
    (0..n)
        .map(|i| Item {
            id: format!("{model}-{i:07}"),
            model: model.to_string(),
            severity: Some(sev[i % sev.len()].to_string()),
            first_seen: Some(T0 + (T1 - T0) / n.max(1) as i64 * i as i64),
            tie: (i / 100) as u32,
        })
        .collect()
}

pub struct Tenant {
    pub items: Vec<Item>,
    pub cap: u64,
    pub shuffle_ties: bool,
}

impl Tenant {
    pub fn new(mut items: Vec<Item>, cap: u64) -> Self {
        items.sort_by(|a, b| a.id.cmp(&b.id));
        Tenant {
            items,
            cap,
            shuffle_ties: false,
        }
    }

    pub fn matching(&self, body: &Value) -> Result<Vec<&Item>, String> {
        let model = body["query"]["models"][0].as_str().unwrap_or("");
        let filter = body["query"].get("with");
        let mut out = Vec::new();
        for it in self.items.iter().filter(|i| i.model == model) {
            if match filter {
                Some(f) => eval(f, it)?,
                None => true,
            } {
                out.push(it);
            }
        }
        if body["order_by[]"][0] == "FirstSeen" {
            // Orca does not say where items without FirstSeen sort; last is
            // the harder case for a walk in FirstSeen order.
            out.sort_by_key(|i| (i.first_seen.is_none(), i.first_seen, i.id.clone()));
        }
        if self.shuffle_ties {
            out.sort_by_key(|i| i.tie);
            let mut rng = rand::thread_rng();
            for group in out.chunk_by_mut(|a, b| a.tie == b.tie) {
                group.shuffle(&mut rng);
            }
        }
        Ok(out)
    }

    pub fn total(&self, body: &Value) -> usize {
        self.matching(body).map(|v| v.len()).unwrap_or(0)
    }

    /// The page a well-behaved Orca would answer.
    pub fn answer(&self, req: &Req) -> Response {
        let all = match self.matching(&req.body) {
            Ok(v) => v,
            Err(e) => return json_reply(400, json!({"error": e})),
        };
        let off = req.offset() as usize;
        if off as u64 >= self.cap {
            return json_reply(
                400,
                json!({"error": format!("start_at_index beyond total_supported_items {}", self.cap)}),
            );
        }
        let end = (off + req.limit() as usize).min(all.len());
        let rows = if off < end { &all[off..end] } else { &[][..] };
        page_body(all.len(), rows)
    }
}

pub fn page_body(total: usize, rows: &[&Item]) -> Response {
    let data: Vec<Value> = rows.iter().map(|i| item_json(i)).collect();
    json_reply(
        200,
        json!({"status": "success", "total_items": total, "data": data}),
    )
}

pub fn item_json(i: &Item) -> Value {
    json!({
        "id": i.id, "name": i.id, "type": i.model,
        "data": {
            "CvssSeverity": {"value": i.severity},
            "FirstSeen": {"value": i.first_seen},
        }
    })
}

fn eval(f: &Value, it: &Item) -> Result<bool, String> {
    if f["type"] == "operation" {
        let vals = f["values"].as_array().ok_or("operation without values")?;
        let mut res = Vec::new();
        for v in vals {
            res.push(eval(v, it)?);
        }
        return match f["operator"].as_str() {
            Some("and") => Ok(res.iter().all(|b| *b)),
            Some("or") => Ok(res.iter().any(|b| *b)),
            o => Err(format!("bad operator {o:?}")),
        };
    }
    if f.get("keys").is_some() {
        // The relation to the asset models: every test finding has one.
        return Ok(f["operator"] == "has");
    }
    let key = f["key"].as_str().unwrap_or("");
    let vals = f["values"].as_array().cloned().unwrap_or_default();
    match (key, f["operator"].as_str()) {
        ("CvssSeverity", Some(op @ ("in" | "not_in"))) => {
            let hit = it
                .severity
                .as_ref()
                .is_some_and(|s| vals.iter().any(|v| v.as_str() == Some(s)));
            Ok(if op == "in" { hit } else { !hit })
        }
        ("FirstSeen", Some("date_range")) => {
            let (s, e) = (vals[0].as_i64().unwrap(), vals[1].as_i64().unwrap());
            Ok(it.first_seen.is_some_and(|t| s <= t && t < e))
        }
        _ => Err(format!("Unknown field '{key}'")),
    }
}

// ---------------------------------------------------------------- parse side

#[derive(Debug, Default)]
pub struct Parsed {
    /// Every id of every page read, duplicates included.
    pub ids: Vec<String>,
    pub pages: Vec<(String, u64)>,
}

impl Parsed {
    pub fn unique(&self) -> usize {
        let mut v = self.ids.clone();
        v.sort();
        v.dedup();
        v.len()
    }
    pub fn count_by_prefix(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        let mut v = self.ids.clone();
        v.sort();
        v.dedup();
        for id in v {
            let p = id.split('-').next().unwrap_or("").to_string();
            *m.entry(p).or_default() += 1;
        }
        m
    }
}

/// Plays the parse stage: answers every page with a verdict built by serde_json.
pub fn spawn_parser(rx: Receiver<Page>) -> tokio::task::JoinHandle<Parsed> {
    tokio::spawn(async move {
        let mut out = Parsed::default();
        while let Some(page) = rx.recv_async().await {
            let verdict = match serde_json::from_slice::<Value>(&page.body) {
                Err(e) => PageVerdict::Malformed(e.to_string()),
                Ok(v) if v["status"] != "success" => {
                    PageVerdict::Failure(v["error"].as_str().unwrap_or("no error text").to_string())
                }
                Ok(v) => match v["data"].as_array() {
                    None => PageVerdict::Malformed("no data array".into()),
                    Some(data) => {
                        let ids: Vec<String> = data
                            .iter()
                            .filter_map(|i| i["id"].as_str().map(str::to_string))
                            .collect();
                        out.ids.extend(ids.iter().cloned());
                        out.pages.push((page.query.label.clone(), page.offset));
                        let max_first_seen_ms = if page.query.track_first_seen {
                            data.iter()
                                .filter_map(|i| {
                                    let mut b = serde_json::to_vec(i).ok()?;
                                    let o = simd_json::to_owned_value(&mut b).ok()?;
                                    stages::parse::first_seen_ms(&o)
                                })
                                .max()
                        } else {
                            None
                        };
                        PageVerdict::Read(PageSummary {
                            total_items: v["total_items"].as_u64(),
                            rows: data.len(),
                            ids,
                            dead_letters: 0,
                            max_first_seen_ms,
                        })
                    }
                },
            };
            let _ = page.ack.send(verdict);
        }
        out
    })
}

pub fn pipe() -> (channel::Sender<Page>, Receiver<Page>) {
    channel::bounded("pages", 4)
}
