//! The CSAM "Generic API Webhook" sink: ETM documents pushed to the
//! gateway's asset sync endpoint (`../../../shared/spec/qualys-wire.md`).
//!
//! - [`config`]: the settings; credentials from the environment or a file.
//! - [`profile`]: how a document becomes an `assetData[]` entry.
//! - [`client`]: the JWT, one request in flight, rate limit, retries.
//! - [`jwt`], [`rate_limit`]: the token's life and the budget headers.
//! - [`metrics`]: the sink's metric names.
//!
//! Documents are batched by count (`batch_assets`) and by body size
//! (`batch_bytes`). An asset the gateway refuses in `assetsError` goes back
//! into a later batch, up to `asset_retries` times, then into the sink's
//! dead-letter file with the gateway's reason. A batch the gateway refuses
//! whole as a bad request (400/422) or as too large (413) is halved until
//! the asset at fault stands alone, and that asset is dead-lettered; but
//! if nothing at all has been accepted yet, the fault is not the asset's
//! (a wrong connector UUID, say) and the sink fails instead of bisecting
//! the whole run away: at the end of the first batch, or as soon as
//! [`LONE_REFUSALS_BEFORE_GIVING_UP`] assets were refused alone for the same
//! reason with nothing accepted (about log2(batch) + 3 requests). What the
//! gateway accepted
//! cannot be taken back, so `commit` only sends what is left and saves the
//! dead letters: unlike the files, this sink's output is visible as it goes.

pub mod client;
pub mod config;
pub mod jwt;
pub mod metrics;
pub mod profile;
pub mod rate_limit;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub use config::{Credentials, WebhookConfig};
pub use profile::PayloadProfile;

use self::client::{Gateway, Sent};
use self::metrics::SinkMetrics;
use self::profile::{AssetEntry, EntryBuilder};
use super::atomic::AtomicFile;
use super::config::{intern, SinkConfig};
use super::{Sink, SinkError, SinkReport};
use crate::telemetry::Scope;

/// Lone assets refused for the same reason, with nothing accepted, that
/// show the request rather than the assets is at fault. Three, not one:
/// the first assets of a run may be bad themselves.
pub const LONE_REFUSALS_BEFORE_GIVING_UP: usize = 3;

/// The sink's dead-letter file in the output folder.
pub fn dead_letter_file(sink_name: &str) -> String {
    format!("{sink_name}-dead-letters.ndjson")
}

/// JSON overhead of a request around its assets (metadata, brackets).
const BODY_OVERHEAD: usize = 256;

pub struct QualysWebhookSink {
    name: &'static str,
    profile: &'static PayloadProfile,
    gateway: Gateway,
    batch_assets: usize,
    batch_bytes: usize,
    asset_retries: u32,
    pending: VecDeque<AssetEntry>,
    pending_bytes: usize,
    /// The document being received.
    current: Option<(String, EntryBuilder)>,
    dead: AtomicFile,
    dead_path: PathBuf,
    dead_letters: u64,
    undelivered: Vec<String>,
    documents: u64,
    accepted: u64,
    /// Refused assets queued again.
    resent: u64,
    /// Assets refused alone as bad requests, with the gateway's words: dead
    /// letters once anything else was accepted (see the module doc).
    suspects: Vec<(AssetEntry, String)>,
    /// Requests sent only to find the asset at fault in a refused batch.
    bisections: u64,
    metrics: SinkMetrics,
}

impl QualysWebhookSink {
    /// Ready to send; nothing is sent (not even `/auth`) before the first batch.
    pub fn create(
        cfg: &WebhookConfig,
        creds: Credentials,
        out_dir: &Path,
        scope: Scope,
    ) -> Result<QualysWebhookSink, SinkError> {
        let name = intern(SinkConfig::QualysWebhook(Box::new(cfg.clone())).name());
        let fail = |message: String| SinkError::Delivery {
            sink: name,
            message,
        };
        let profile = PayloadProfile::by_name(&cfg.payload_profile)
            .ok_or_else(|| fail(format!("unknown payload_profile {:?}", cfg.payload_profile)))?;
        let metrics = SinkMetrics::new(scope.clone(), name);
        let gateway = Gateway::new(name, cfg, creds, scope).map_err(fail)?;
        let dead_path = out_dir.join(dead_letter_file(name));
        let dead = AtomicFile::create(&dead_path).map_err(|source| SinkError::Io {
            sink: name,
            path: dead_path.clone(),
            source,
        })?;
        Ok(QualysWebhookSink {
            name,
            profile,
            gateway,
            batch_assets: cfg.batch_assets.max(1),
            batch_bytes: cfg.batch_bytes,
            asset_retries: cfg.asset_retries,
            pending: VecDeque::new(),
            pending_bytes: 0,
            current: None,
            dead,
            dead_path,
            dead_letters: 0,
            undelivered: Vec::new(),
            documents: 0,
            accepted: 0,
            resent: 0,
            suspects: Vec::new(),
            bisections: 0,
            metrics,
        })
    }

    fn fail(&self, message: String) -> SinkError {
        SinkError::Delivery {
            sink: self.name,
            message,
        }
    }

    fn bad(&self, asset_id: &str, message: String) -> SinkError {
        SinkError::Document {
            sink: self.name,
            asset_id: asset_id.to_string(),
            message,
        }
    }

    /// A full batch is waiting (by count or by size).
    fn batch_ready(&self) -> bool {
        self.pending.len() >= self.batch_assets
            || self.pending_bytes + BODY_OVERHEAD > self.batch_bytes
    }

    /// Take the next batch off the front: up to `batch_assets`, within
    /// `batch_bytes` (at least one asset, however large).
    fn next_batch(&mut self) -> Vec<AssetEntry> {
        let mut batch = Vec::new();
        let mut bytes = BODY_OVERHEAD;
        while let Some(front) = self.pending.front() {
            let size = front.json.len() + 1;
            if !batch.is_empty()
                && (batch.len() >= self.batch_assets || bytes + size > self.batch_bytes)
            {
                break;
            }
            bytes += size;
            self.pending_bytes -= front.json.len();
            batch.extend(self.pending.pop_front());
        }
        batch
    }

    fn send_next(&mut self) -> Result<(), SinkError> {
        let batch = self.next_batch();
        self.send_entries(batch)?;
        self.settle_suspects()
    }

    /// Assets refused alone as bad requests become dead letters, unless
    /// the gateway has accepted nothing yet: then every request is bad and
    /// the sink stops with what the gateway said.
    fn settle_suspects(&mut self) -> Result<(), SinkError> {
        if self.suspects.is_empty() {
            return Ok(());
        }
        if self.accepted == 0 {
            let (_, detail) = &self.suspects[0];
            return Err(self.fail(format!(
                "the gateway refused every request as bad, so the fault is not one asset's: {detail}"
            )));
        }
        for (entry, detail) in std::mem::take(&mut self.suspects) {
            self.dead_letter(
                &entry,
                &format!("the gateway refused the asset alone as a bad request ({detail})"),
            )?;
        }
        Ok(())
    }

    /// Send the two halves of a batch the gateway refused whole.
    fn bisect(&mut self, mut first: Vec<AssetEntry>) -> Result<(), SinkError> {
        let second = first.split_off(first.len() / 2);
        self.bisections += 1;
        self.metrics.retry("bisect");
        self.send_entries(first)?;
        self.send_entries(second)
    }

    fn send_entries(&mut self, batch: Vec<AssetEntry>) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.gateway.send(&batch).map_err(|e| self.fail(e))? {
            Sent::Accepted { mut refused } => {
                for mut entry in batch {
                    let Some(reason) = refused.remove(&entry.key) else {
                        self.accepted += 1;
                        continue;
                    };
                    entry.refusals += 1;
                    if entry.refusals > self.asset_retries {
                        self.dead_letter(&entry, &reason)?;
                    } else {
                        self.metrics.retry("asset_error");
                        tracing::debug!(sink = self.name, asset = %entry.key, "the gateway refused an asset; it goes again in a later batch");
                        self.resent += 1;
                        self.pending_bytes += entry.json.len();
                        self.pending.push_back(entry);
                    }
                }
                if !refused.is_empty() {
                    tracing::warn!(
                        sink = self.name,
                        unknown = refused.len(),
                        "the gateway named assets that were not in the request"
                    );
                }
                Ok(())
            }
            Sent::TooLarge | Sent::Invalid { .. } if batch.len() > 1 => self.bisect(batch),
            Sent::Invalid { detail } => {
                let entry = batch
                    .into_iter()
                    .next()
                    .ok_or_else(|| self.fail("an empty batch was refused".into()))?;
                self.suspects.push((entry, detail));
                if self.accepted == 0
                    && self.suspects.len() >= LONE_REFUSALS_BEFORE_GIVING_UP
                    && self.suspects.iter().all(|(_, d)| *d == self.suspects[0].1)
                {
                    // Asset after asset refused alike and none accepted: the
                    // request is at fault, not the assets. Stop before
                    // halving the rest of the batch down to single assets.
                    return self.settle_suspects();
                }
                Ok(())
            }
            Sent::TooLarge => {
                let entry = &batch[0];
                self.dead_letter(
                    entry,
                    "the gateway refused the asset alone as too large (HTTP 413)",
                )
            }
        }
    }

    fn dead_letter(&mut self, entry: &AssetEntry, reason: &str) -> Result<(), SinkError> {
        tracing::warn!(sink = self.name, asset = %entry.key, "asset not delivered: {reason}");
        self.metrics.dead_letter();
        let line = serde_json::json!({
            "sink": self.name,
            "asset_id": entry.key,
            "reason": reason,
            "attempts": entry.refusals,
            "findings": entry.findings,
        });
        let mut text = line.to_string().into_bytes();
        text.push(b'\n');
        self.dead.write_all(&text).map_err(|source| SinkError::Io {
            sink: self.name,
            path: self.dead_path.clone(),
            source,
        })?;
        self.dead_letters += 1;
        self.undelivered.push(entry.asset_id.clone());
        Ok(())
    }
}

impl Sink for QualysWebhookSink {
    fn name(&self) -> &'static str {
        self.name
    }

    fn begin_document(&mut self, asset_id: &str, asset: &[u8]) -> Result<(), SinkError> {
        let builder = self
            .profile
            .begin(asset_id, asset)
            .map_err(|message| self.bad(asset_id, message))?;
        self.current = Some((asset_id.to_string(), builder));
        Ok(())
    }

    fn finding(&mut self, finding: &[u8]) -> Result<(), SinkError> {
        let Some((id, builder)) = self.current.as_mut() else {
            return Err(self.bad("", "a finding outside a document".into()));
        };
        if let Err(message) = builder.finding(finding) {
            let id = id.clone();
            return Err(self.bad(&id, message));
        }
        Ok(())
    }

    fn end_document(&mut self) -> Result<(), SinkError> {
        let Some((_, builder)) = self.current.take() else {
            return Err(self.bad("", "a document end outside a document".into()));
        };
        let entry = builder.finish();
        self.pending_bytes += entry.json.len();
        self.pending.push_back(entry);
        self.documents += 1;
        while self.batch_ready() {
            self.send_next()?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        // Refused assets come back to the queue until accepted or dead.
        while !self.pending.is_empty() {
            self.send_next()?;
        }
        let QualysWebhookSink {
            name,
            gateway,
            dead,
            dead_path,
            dead_letters,
            undelivered,
            documents,
            accepted,
            resent,
            bisections,
            ..
        } = *self;
        let done = dead.commit().map_err(|source| SinkError::Io {
            sink: name,
            path: dead_path,
            source,
        })?;
        let c = gateway.counters();
        let mut details: std::collections::BTreeMap<String, u64> = [
            ("accepted".to_string(), accepted),
            ("requests".to_string(), c.requests),
            ("token_refreshes".to_string(), c.token_refreshes),
            ("rate_limit_waits".to_string(), c.rate_limit_waits),
        ]
        .into_iter()
        .collect();
        for (cause, n) in &c.retries {
            details.insert(format!("retries_{cause}"), *n);
        }
        if resent > 0 {
            details.insert("retries_asset_error".into(), resent);
        }
        if bisections > 0 {
            details.insert("bisections".into(), bisections);
        }
        Ok(SinkReport {
            sink: name.into(),
            documents,
            bytes: c.bytes_sent,
            location: gateway.location(),
            dead_letters,
            dead_letter_file: Some(done.display().to_string()),
            details,
            undelivered,
        })
    }
}
