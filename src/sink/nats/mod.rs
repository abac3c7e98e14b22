//! `sinks.nats`: every event published to NATS JetStream (or core NATS) on seed C's subjects
//! (`trade-data.{exchange}.{market}.{symbol}`, ...; [`subject`]).
//!
//! The publisher thread only copies each record into a recycled message slot and hands it over a
//! bounded queue to the sink's own thread ([`client`]), which runs the official `async-nats`
//! client on a small current-thread runtime: publishes with a bounded window of
//! unacknowledged messages, each with a `Nats-Msg-Id` from the event's identity so a retry after
//! a reconnect is de-duplicated by the server. A full queue makes the publisher wait
//! (backpressure, nothing dropped), as the Kafka sink does.

pub mod client;
pub mod subject;

use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::event::EventKind;
use crate::metrics::Metrics;
use crate::setting::{ConfigError, section};
use crate::sink::spool::SpoolConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// `sinks.nats` as written by the user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Server URL(s): one string or a list (a cluster).
    #[serde(default = "default_url")]
    pub url: UrlList,
    /// `json` (seed C's default) or `protobuf`.
    #[serde(default = "default_format")]
    pub format: String,
    /// `jetstream` (acknowledged, persisted) or `core` (lowest latency, no persistence).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The JetStream stream, created at start when absent.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Per-type subject templates overriding seed C's (`trade: "md.{exchange}.{symbol}"`).
    #[serde(default)]
    pub subjects: BTreeMap<String, String>,
    /// Limits of a stream created by `mdc`.
    #[serde(default)]
    pub stream_limits: StreamLimits,
    /// Credentials (each may be `${ENV_VAR}`; redacted by `check-config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<crate::setting::secret::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<crate::setting::secret::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey_seed: Option<crate::setting::secret::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_file: Option<String>,
    /// TLS: a CA file to trust, and whether TLS is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    #[serde(default)]
    pub tls_required: bool,
    /// Unacknowledged JetStream publishes at most (default 4096).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Records queued between the publisher thread and the NATS thread (default 65536).
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// What a full queue does: `block` (the publisher waits: nothing lost, but every sink waits
    /// with it), `drop_newest` (this sink alone loses the records, counted in
    /// `nats_dropped_total` and announced in this sink as `gap` events; the other sinks go on) or
    /// `spool` (the overflow goes to a bounded file and is replayed in order when NATS takes
    /// messages again; past `spool.max_bytes` records are dropped as with `drop_newest`).
    #[serde(default = "default_backpressure")]
    pub backpressure: String,
    /// Where and how much `backpressure: spool` keeps (`./spool/nats`, 1 GiB).
    #[serde(default = "default_spool")]
    pub spool: SpoolConfig,
    /// A message not acknowledged within this time (retries included) is counted as lost
    /// (`nats_dropped_total`) and logged (default 120s).
    #[serde(default = "default_timeout")]
    pub publish_timeout: String,
}

fn default_spool() -> SpoolConfig {
    SpoolConfig::for_sink("nats")
}

/// One URL or several.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum UrlList {
    One(String),
    Many(Vec<String>),
}

impl UrlList {
    pub fn list(&self) -> Vec<String> {
        match self {
            UrlList::One(u) => vec![u.clone()],
            UrlList::Many(v) => v.clone(),
        }
    }
}

/// Limits of the stream `mdc` creates (an existing stream is used as it is).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamLimits {
    /// Oldest message kept (`0` or absent: no limit). e.g. `7d`, `24h`.
    pub max_age: String,
    /// Bytes kept (-1: no limit).
    pub max_bytes: i64,
    /// `file` or `memory`.
    pub storage: String,
    pub replicas: usize,
    /// Window in which a repeated `Nats-Msg-Id` is dropped by the server (default 2m).
    pub duplicate_window: String,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_age: "0s".into(),
            max_bytes: -1,
            storage: "file".into(),
            replicas: 1,
            duplicate_window: "2m".into(),
        }
    }
}

fn default_url() -> UrlList {
    UrlList::One("nats://127.0.0.1:4222".into())
}
fn default_format() -> String {
    "json".into()
}
fn default_mode() -> String {
    "jetstream".into()
}
fn default_stream() -> String {
    "MARKET_DATA".into()
}
fn default_in_flight() -> usize {
    4096
}
fn default_queue() -> usize {
    65_536
}
fn default_backpressure() -> String {
    "block".into()
}
fn default_timeout() -> String {
    "120s".into()
}

/// A validated `sinks.nats`.
#[derive(Debug, Clone)]
pub struct NatsPlan {
    pub cfg: NatsConfig,
    /// Subject template per event kind (index = `kind as usize`).
    pub templates: Vec<String>,
    pub publish_timeout: Duration,
    pub max_age: Duration,
    pub duplicate_window: Duration,
}

pub struct Factory;
pub static FACTORY: Factory = Factory;

fn dur(key: &str, v: &str) -> Result<Duration, ConfigError> {
    crate::setting::duration::parse(v).map_err(|r| ConfigError::new(key, r))
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn plan(&self, value: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError> {
        Ok(NatsPlan::from_section(value)?.map(|p| Box::new(p) as Box<dyn SinkPlan>))
    }
}

impl NatsPlan {
    pub fn from_section(value: serde_yaml::Value) -> Result<Option<NatsPlan>, ConfigError> {
        let prefix = "sinks.nats";
        let mut cfg: NatsConfig = section(prefix, value)?;
        let key = |k: &str| format!("{prefix}.{k}");
        for (i, u) in cfg.url.list().iter().enumerate() {
            let ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| u.starts_with(s) && u.len() > s.len());
            if !ok {
                return Err(ConfigError::new(
                    format!("{prefix}.url[{i}]"),
                    format!("`{u}` must be nats://host:port (or tls://, ws://, wss://)"),
                ));
            }
        }
        if !["json", "protobuf"].contains(&cfg.format.as_str()) {
            return Err(ConfigError::new(
                key("format"),
                format!("`{}` is not json or protobuf", cfg.format),
            ));
        }
        if !["jetstream", "core"].contains(&cfg.mode.as_str()) {
            return Err(ConfigError::new(
                key("mode"),
                format!("`{}` is not jetstream or core", cfg.mode),
            ));
        }
        if cfg.stream.is_empty()
            || !cfg
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::new(
                key("stream"),
                "must be letters, digits, `_` or `-`",
            ));
        }
        let mut templates: Vec<String> = EventKind::ALL
            .iter()
            .map(|k| subject::default_template(*k).to_string())
            .collect();
        for (t, tpl) in &cfg.subjects {
            let k = format!("{prefix}.subjects.{t}");
            let Some(kind) = EventKind::ALL.iter().find(|k| k.as_str() == t) else {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(ConfigError::new(
                    k,
                    format!("unknown type (known: {})", known.join(", ")),
                ));
            };
            subject::check_template(tpl).map_err(|r| ConfigError::new(k.clone(), r))?;
            templates[*kind as usize] = tpl.clone();
        }
        if !["block", "drop_newest", "spool"].contains(&cfg.backpressure.as_str()) {
            return Err(ConfigError::new(
                key("backpressure"),
                format!("`{}` is not block, drop_newest or spool", cfg.backpressure),
            ));
        }
        cfg.spool.fill_path("nats");
        if cfg.backpressure == "spool" {
            cfg.spool
                .check()
                .map_err(|r| ConfigError::new(key("spool"), r))?;
        }
        if cfg.max_in_flight == 0 || cfg.max_in_flight > 1_000_000 {
            return Err(ConfigError::new(
                key("max_in_flight"),
                "must be between 1 and 1000000",
            ));
        }
        if cfg.queue_capacity < 16 || cfg.queue_capacity > 16_777_216 {
            return Err(ConfigError::new(
                key("queue_capacity"),
                "must be between 16 and 16777216",
            ));
        }
        let publish_timeout = dur(&key("publish_timeout"), &cfg.publish_timeout)?;
        let l = &cfg.stream_limits;
        let max_age = dur(&key("stream_limits.max_age"), &l.max_age)?;
        let duplicate_window = dur(&key("stream_limits.duplicate_window"), &l.duplicate_window)?;
        if !["file", "memory"].contains(&l.storage.as_str()) {
            return Err(ConfigError::new(
                key("stream_limits.storage"),
                format!("`{}` is not file or memory", l.storage),
            ));
        }
        if l.replicas == 0 || l.replicas > 5 {
            return Err(ConfigError::new(
                key("stream_limits.replicas"),
                "must be between 1 and 5",
            ));
        }
        if cfg.password.is_some() != cfg.user.is_some() {
            return Err(ConfigError::new(
                key("password"),
                "user and password go together",
            ));
        }
        if !cfg.enabled {
            return Ok(None);
        }
        Ok(Some(NatsPlan {
            cfg,
            templates,
            publish_timeout,
            max_age,
            duplicate_window,
        }))
    }

    /// The wildcard subjects the stream must capture (one per distinct template).
    pub fn stream_subjects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.templates {
            let w = subject::wildcard(t);
            if !out.contains(&w) {
                out.push(w);
            }
        }
        out
    }
}

impl SinkPlan for NatsPlan {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn formats(&self) -> Formats {
        if self.cfg.format == "protobuf" {
            Formats::PROTOBUF
        } else {
            Formats::JSON
        }
    }

    fn effective(&self) -> serde_yaml::Value {
        // Secrets serialize as `***`.
        serde_yaml::to_value(&self.cfg).unwrap_or(serde_yaml::Value::Null)
    }

    fn start(&self, metrics: &Arc<Metrics>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(client::NatsSink::start(self.clone(), metrics)?))
    }
}

/// A record's message id: the event's identity (exchange, market, symbol, type, position; the
/// receive time too where the position is a time two events can share).
pub fn msg_id(rec: &Record, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(
        out,
        "{}.{}.{}.{}.{}",
        rec.exchange,
        rec.market,
        rec.symbol,
        rec.kind.as_str(),
        rec.position
    );
    if !rec.position_unique {
        let _ = write!(out, ".{}", rec.recv_ts_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(y: &str) -> Result<Option<NatsPlan>, ConfigError> {
        NatsPlan::from_section(serde_yaml::from_str(y).unwrap())
    }

    #[test]
    fn config_errors_name_the_key() {
        for (y, key) in [
            ("enabled: true\nurl: http://x", "sinks.nats.url[0]"),
            ("enabled: true\nformat: avro", "sinks.nats.format"),
            (
                "enabled: true\nsubjects: { trade: \"a.*.b\" }",
                "sinks.nats.subjects.trade",
            ),
            (
                "enabled: true\nsubjects: { trades: \"a.b\" }",
                "sinks.nats.subjects.trades",
            ),
            ("enabled: true\nbogus: 1", "sinks.nats"),
            (
                "enabled: true\nstream_limits: { storage: disk }",
                "sinks.nats.stream_limits.storage",
            ),
        ] {
            let e = plan(y).unwrap_err();
            assert!(e.to_string().contains(key), "{y}: {e}");
        }
        assert!(plan("enabled: false").unwrap().is_none());
    }

    #[test]
    fn stream_subjects_and_secrets() {
        let p = plan("enabled: true\ntoken: s3cret\nsubjects: { gap: \"mdc-gaps.{exchange}\" }")
            .unwrap()
            .unwrap();
        let subs = p.stream_subjects();
        assert!(subs.contains(&"trade-data.*.*.*".to_string()));
        assert!(subs.contains(&"lsr-data.*.*.*.*".to_string()));
        assert!(subs.contains(&"mdc-gaps.*".to_string()));
        let eff = serde_yaml::to_string(&p.effective()).unwrap();
        assert!(!eff.contains("s3cret") && eff.contains("***"), "{eff}");
    }
}
