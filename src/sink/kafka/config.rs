//! `sinks.kafka`: the user's section, its validation, and the librdkafka properties it implies.

use crate::event::EventKind;
use crate::setting::{ConfigError, duration, section};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The section as written (every key optional but `enabled`/`brokers` matter).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Turn the sink on.
    #[serde(default)]
    pub enabled: bool,
    /// Bootstrap servers, `host:port[,host:port]`.
    #[serde(default = "d_brokers")]
    pub brokers: String,
    /// Topic template: `{exchange}`, `{market}`, `{type}`, `{symbol}`.
    #[serde(default = "d_topic")]
    pub topic: String,
    /// Per-type topic templates overriding `topic`, e.g. `{ trade: marketdata.raw }`.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// `protobuf` (the `Envelope`) or `json` (the JSON Lines object, without the newline).
    #[serde(default = "d_format")]
    pub format: String,
    /// Record key: `symbol` (default; keeps a symbol's order within one partition), `none`, or a
    /// template with the same placeholders as `topic`.
    #[serde(default = "d_key")]
    pub key: String,
    /// `all`, `1` or `0`.
    #[serde(default = "d_acks")]
    pub acks: String,
    /// Idempotent producer (no duplicates from librdkafka's own retries).
    #[serde(default = "yes")]
    pub idempotence: bool,
    /// `linger.ms`: how long librdkafka waits to fill a batch.
    #[serde(default = "d_linger")]
    pub linger_ms: u32,
    /// `batch.size` in bytes.
    #[serde(default = "d_batch_size")]
    pub batch_size: u32,
    /// `lz4` | `gzip` | `snappy` | `zstd` | `none`.
    #[serde(default = "d_compression")]
    pub compression: String,
    /// `message.timeout.ms`: librdkafka's own retry budget per message.
    #[serde(default = "d_message_timeout")]
    pub message_timeout: String,
    /// After librdkafka gives up on a message we re-enqueue it with exponential backoff until this
    /// deadline (from its first failure); then it is counted as failed and logged.
    #[serde(default = "d_retry_deadline")]
    pub retry_deadline: String,
    /// First and largest delay between our own re-enqueues.
    #[serde(default = "d_retry_backoff")]
    pub retry_backoff: String,
    #[serde(default = "d_retry_backoff_max")]
    pub retry_backoff_max: String,
    /// Bound on librdkafka's queue (`queue.buffering.max.messages`); when full the publisher waits.
    #[serde(default = "d_queue_messages")]
    pub queue_max_messages: u32,
    /// Bound on librdkafka's queue in KiB (`queue.buffering.max.kbytes`).
    #[serde(default = "d_queue_kbytes")]
    pub queue_max_kbytes: u32,
    /// Bound on the copies we keep of records librdkafka gave up on (our retry queue), in KiB.
    /// Past it, `drop_newest` gives new failures up (announced as `gap`s) and `block` takes no new
    /// record until the copies are re-sent. Memory of the sink is at most `queue_max_kbytes` +
    /// `retry_max_kbytes`, plus one more `queue_max_kbytes` for the moment a producer reset moves
    /// librdkafka's queue into the retry queue.
    #[serde(default = "d_retry_kbytes")]
    pub retry_max_kbytes: u32,
    /// No acknowledgement for this long while records are in flight and the brokers answer
    /// metadata requests: the producer is wedged (a broker that came back without its state, a
    /// re-created topic); it is recreated and what was not acknowledged is re-sent.
    #[serde(default = "d_stall_timeout")]
    pub stall_timeout: String,
    /// What a full queue does: `block` (default: the publisher waits, the rings fill, the readers
    /// stop reading and TCP pushes back on the exchange; nothing is dropped inside the process) or
    /// `drop_newest` (the record is dropped and counted in `kafka_dropped_total`), or `spool`
    /// (what librdkafka's queue cannot take goes to a bounded file, `spool`, and is produced from
    /// it in order once the queue has room: the other sinks never wait; past `spool.max_bytes`
    /// records are dropped as with `drop_newest`).
    #[serde(default = "d_backpressure")]
    pub backpressure: String,
    /// Where and how much `backpressure: spool` keeps (`./spool/kafka`, 1 GiB).
    #[serde(default = "d_spool")]
    pub spool: crate::sink::spool::SpoolConfig,
    /// Refuse to start when the brokers cannot be reached within `metadata_timeout`.
    #[serde(default)]
    pub required: bool,
    /// Timeout of the metadata request used for reachability.
    #[serde(default = "d_metadata_timeout")]
    pub metadata_timeout: String,
    /// How often reachability is checked (for `/readyz`).
    #[serde(default = "d_health_interval")]
    pub health_interval: String,
    /// Deadline of the final flush at shutdown.
    #[serde(default = "d_flush_timeout")]
    pub flush_timeout: String,
    /// `plaintext` | `ssl` | `sasl_plaintext` | `sasl_ssl`.
    #[serde(default = "d_protocol")]
    pub security_protocol: String,
    /// CA certificate file for TLS (`ssl.ca.location`).
    #[serde(default)]
    pub ssl_ca_location: Option<String>,
    /// `PLAIN` | `SCRAM-SHA-256` | `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    /// SASL user; give it (and the password) through the environment:
    /// `MDC_SINKS__KAFKA__SASL_USERNAME`, `MDC_SINKS__KAFKA__SASL_PASSWORD`.
    #[serde(default)]
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Option<crate::setting::secret::Secret>,
    /// Any librdkafka property, applied last (overrides the keys above).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}
fn d_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn d_topic() -> String {
    "marketdata.{type}".into()
}
fn d_format() -> String {
    "protobuf".into()
}
fn d_key() -> String {
    "symbol".into()
}
fn d_acks() -> String {
    "all".into()
}
fn d_linger() -> u32 {
    5
}
fn d_batch_size() -> u32 {
    1 << 20
}
fn d_compression() -> String {
    "lz4".into()
}
fn d_message_timeout() -> String {
    "120s".into()
}
fn d_retry_deadline() -> String {
    "10m".into()
}
fn d_retry_backoff() -> String {
    "100ms".into()
}
fn d_retry_backoff_max() -> String {
    "10s".into()
}
fn d_queue_messages() -> u32 {
    1_000_000
}
fn d_queue_kbytes() -> u32 {
    1 << 20
}
fn d_retry_kbytes() -> u32 {
    256 * 1024
}
fn d_stall_timeout() -> String {
    "5s".into()
}
fn d_spool() -> crate::sink::spool::SpoolConfig {
    crate::sink::spool::SpoolConfig::for_sink("kafka")
}
fn d_backpressure() -> String {
    "block".into()
}
fn d_metadata_timeout() -> String {
    "3s".into()
}
fn d_health_interval() -> String {
    "2s".into()
}
fn d_flush_timeout() -> String {
    "10s".into()
}
fn d_protocol() -> String {
    "plaintext".into()
}

/// Output encoding on Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFormat {
    Protobuf,
    Json,
    /// The exchange's payload byte for byte (`mdc job`, seed D), names in record headers.
    Raw,
}

/// The validated section.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub raw: KafkaConfig,
    pub format: KafkaFormat,
    pub message_timeout: Duration,
    pub retry_deadline: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub metadata_timeout: Duration,
    pub health_interval: Duration,
    pub flush_timeout: Duration,
    pub stall_timeout: Duration,
}

const PLACEHOLDERS: [&str; 4] = ["{exchange}", "{market}", "{type}", "{symbol}"];

fn check_template(key: &str, t: &str) -> Result<(), ConfigError> {
    if t.is_empty() {
        return Err(ConfigError::new(key, "must not be empty"));
    }
    let mut rest = t.to_string();
    for p in PLACEHOLDERS {
        rest = rest.replace(p, "x");
    }
    if let Some(c) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ConfigError::new(
            key,
            format!(
                "`{t}`: `{c}` is not allowed (letters, digits, . _ - and {})",
                PLACEHOLDERS.join(" ")
            ),
        ));
    }
    Ok(())
}

impl KafkaSettings {
    /// Validates `sinks.kafka`; `Ok(None)` when disabled.
    pub fn from_section(value: serde_yaml::Value) -> Result<Option<KafkaSettings>, ConfigError> {
        let mut raw: KafkaConfig = section("sinks.kafka", value)?;
        raw.spool.fill_path("kafka");
        let k = |s: &str| format!("sinks.kafka.{s}");
        let dur =
            |name: &str, v: &str| duration::parse(v).map_err(|r| ConfigError::new(k(name), r));
        if raw.brokers.trim().is_empty() {
            return Err(ConfigError::new(
                k("brokers"),
                "must name at least one broker",
            ));
        }
        check_template(&k("topic"), &raw.topic)?;
        for (t, tpl) in &raw.topics {
            if !EventKind::ALL.iter().any(|e| e.as_str() == t) && t != "book_snapshot" && t != "gap"
            {
                let known: Vec<&str> = EventKind::ALL.iter().map(|e| e.as_str()).collect();
                return Err(ConfigError::new(
                    k(&format!("topics.{t}")),
                    format!("unknown type (known: {})", known.join(", ")),
                ));
            }
            check_template(&k(&format!("topics.{t}")), tpl)?;
        }
        let format = match raw.format.as_str() {
            "protobuf" => KafkaFormat::Protobuf,
            "json" => KafkaFormat::Json,
            "raw" => KafkaFormat::Raw,
            o => {
                return Err(ConfigError::new(
                    k("format"),
                    format!("`{o}` is not one of protobuf, json, raw"),
                ));
            }
        };
        if raw.key != "symbol" && raw.key != "none" {
            check_template(&k("key"), &raw.key)?;
        }
        if !["all", "-1", "0", "1"].contains(&raw.acks.as_str()) {
            return Err(ConfigError::new(
                k("acks"),
                format!("`{}` is not one of all, 1, 0", raw.acks),
            ));
        }
        if raw.idempotence && raw.acks != "all" && raw.acks != "-1" {
            return Err(ConfigError::new(
                k("acks"),
                "idempotence requires acks: all",
            ));
        }
        if !["lz4", "gzip", "snappy", "zstd", "none"].contains(&raw.compression.as_str()) {
            return Err(ConfigError::new(
                k("compression"),
                format!(
                    "`{}` is not one of lz4, gzip, snappy, zstd, none",
                    raw.compression
                ),
            ));
        }
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
            .contains(&raw.security_protocol.as_str())
        {
            return Err(ConfigError::new(
                k("security_protocol"),
                format!(
                    "`{}` is not one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                    raw.security_protocol
                ),
            ));
        }
        if raw.security_protocol.starts_with("sasl") {
            match raw.sasl_mechanism.as_deref() {
                Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") => {}
                other => {
                    return Err(ConfigError::new(
                        k("sasl_mechanism"),
                        format!("{other:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
                    ));
                }
            }
            if raw.sasl_username.is_none() || raw.sasl_password.is_none() {
                return Err(ConfigError::new(
                    k("sasl_username"),
                    "SASL needs sasl_username and sasl_password (set them from the environment: MDC_SINKS__KAFKA__SASL_USERNAME / MDC_SINKS__KAFKA__SASL_PASSWORD)",
                ));
            }
        }
        if let Some(ca) = &raw.ssl_ca_location
            && !std::path::Path::new(ca).is_file()
        {
            return Err(ConfigError::new(
                k("ssl_ca_location"),
                format!("`{ca}` is not a readable file"),
            ));
        }
        if !["block", "drop_newest", "spool"].contains(&raw.backpressure.as_str()) {
            return Err(ConfigError::new(
                k("backpressure"),
                format!(
                    "`{}` is not one of block, drop_newest, spool",
                    raw.backpressure
                ),
            ));
        }
        if raw.backpressure == "spool" {
            raw.spool
                .check()
                .map_err(|r| ConfigError::new(k("spool"), r))?;
        }
        if raw.queue_max_messages == 0 || raw.queue_max_kbytes == 0 || raw.retry_max_kbytes == 0 {
            return Err(ConfigError::new(
                k("queue_max_messages"),
                "queue bounds must be positive",
            ));
        }
        let s = KafkaSettings {
            format,
            message_timeout: dur("message_timeout", &raw.message_timeout)?,
            retry_deadline: dur("retry_deadline", &raw.retry_deadline)?,
            retry_backoff: dur("retry_backoff", &raw.retry_backoff)?,
            retry_backoff_max: dur("retry_backoff_max", &raw.retry_backoff_max)?,
            metadata_timeout: dur("metadata_timeout", &raw.metadata_timeout)?,
            health_interval: dur("health_interval", &raw.health_interval)?,
            flush_timeout: dur("flush_timeout", &raw.flush_timeout)?,
            stall_timeout: dur("stall_timeout", &raw.stall_timeout)?,
            raw,
        };
        if s.stall_timeout < Duration::from_millis(500) {
            return Err(ConfigError::new(k("stall_timeout"), "at least 500ms"));
        }
        if s.health_interval < Duration::from_millis(50) {
            return Err(ConfigError::new(k("health_interval"), "at least 50ms"));
        }
        if s.message_timeout < Duration::from_millis(100) {
            return Err(ConfigError::new(k("message_timeout"), "at least 100ms"));
        }
        if !s.raw.enabled {
            return Ok(None);
        }
        // Probe the librdkafka properties now, so a bad `properties` entry fails validation:
        // librdkafka's configuration object only, no client (`check-config` contacts nobody),
        // and the error names the property, never its value (it may be a secret).
        if let Err(e) = s.client_config().create_native_config() {
            let why = match e {
                rdkafka::error::KafkaError::ClientConfig(_, desc, key, _) => {
                    format!("`{key}` rejected by librdkafka: {desc}")
                }
                other => format!(
                    "rejected by librdkafka: {}",
                    other
                        .rdkafka_error_code()
                        .map_or("invalid".to_string(), |c| c.to_string())
                ),
            };
            return Err(ConfigError::new(k("properties"), why));
        }
        Ok(Some(s))
    }

    /// librdkafka properties of the reachability checker: the same brokers and security, no
    /// producer state (so it answers for the brokers, whatever the producer is going through).
    pub fn health_client_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        c.set("enable.idempotence", "false")
            .set("statistics.interval.ms", "0")
            .set("client.id", "mdc-health");
        c
    }

    /// librdkafka properties for the producer.
    pub fn client_config(&self) -> ClientConfig {
        let r = &self.raw;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &r.brokers)
            .set("acks", &r.acks)
            .set("enable.idempotence", r.idempotence.to_string())
            .set("linger.ms", r.linger_ms.to_string())
            .set("batch.size", r.batch_size.to_string())
            .set("compression.type", &r.compression)
            .set(
                "message.timeout.ms",
                self.message_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                r.queue_max_messages.to_string(),
            )
            .set("queue.buffering.max.kbytes", r.queue_max_kbytes.to_string())
            .set("statistics.interval.ms", "1000")
            .set("security.protocol", &r.security_protocol);
        if let Some(ca) = &r.ssl_ca_location {
            c.set("ssl.ca.location", ca);
        }
        if let Some(m) = &r.sasl_mechanism {
            c.set("sasl.mechanism", m);
        }
        if let Some(u) = &r.sasl_username {
            c.set("sasl.username", u);
        }
        if let Some(p) = &r.sasl_password {
            c.set("sasl.password", p.expose());
        }
        for (k, v) in &r.properties {
            c.set(k, v);
        }
        c
    }
}
