//! Configuration: YAML file -> environment overrides -> typed, validated [`Config`].
//!
//! Everything is checked before any thread starts. Unknown keys and bad values become a
//! [`ConfigError`] naming the key path (e.g. `exchanges.binance_spot.channels[2]`); `mdc` prints it on
//! one line and exits with status 2. Adapter and sink sections are validated by their own factories
//! (see `exchange::REGISTRY`, `sink::REGISTRY`), so adding one never touches this module.

pub mod env;
pub mod insecure;

pub use crate::pipeline::idle::IdlePolicy;
pub use crate::setting::{ConfigError, duration, section, shard};

use crate::exchange::{self, ExchangePlan};
use crate::sink::{self, SinkPlan};
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use std::path::Path;
use std::time::Duration;

/// Top level of `config.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    exchanges: Mapping,
    #[serde(default)]
    sinks: Mapping,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    runtime: RuntimeConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    book: crate::book::BookConfig,
    #[serde(default)]
    tracing: TracingConfig,
    #[serde(default)]
    capture: crate::capture::CaptureConfig,
}

/// `tracing:`: OpenTelemetry spans (connect, subscribe, rollover, book re-sync, publish batches)
/// exported over OTLP/HTTP; needs the `otlp` cargo feature (on by default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`); empty: off.
    pub otlp_endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: String::new(),
            service_name: "mdc".into(),
        }
    }
}

/// `http:`: the operations endpoint (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address; an empty string disables the endpoint.
    pub listen: String,
    /// `/health` freshness: a stream whose last message is older than this (by channel, e.g.
    /// `depth`, `trade`; `default` for the rest; "off" for none) makes the process unhealthy.
    /// Entries given here replace the built-in ones of the same channel.
    pub stale_after: std::collections::BTreeMap<String, String>,
    /// `POST /admin/reload` re-reads the configuration file (as SIGHUP does). Off by default:
    /// whoever reaches the port could trigger it.
    pub admin: bool,
    /// Admin endpoints answer clients other than loopback too (off: 403 for them).
    pub admin_remote: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8086".into(),
            stale_after: Self::default_stale_after(),
            admin: false,
            admin_remote: false,
        }
    }
}

impl HttpConfig {
    fn default_stale_after() -> std::collections::BTreeMap<String, String> {
        // Trades and liquidations are sparse on quiet symbols: no limit unless asked for. Mark
        // prices are pushed every 1 s or 3 s whatever happens.
        [
            ("default", "5m"),
            ("depth", "60s"),
            ("bookTicker", "60s"),
            ("markPrice", "10s"),
            ("trade", "off"),
            ("aggTrade", "off"),
            ("forceOrder", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Freshness limit of a channel in ns (0 = none).
    pub fn stale_after_ns(&self, channel: &str) -> i64 {
        let v = self
            .stale_after
            .get(channel)
            .or_else(|| self.stale_after.get("default"));
        match v.map(String::as_str) {
            None | Some("off") => 0,
            Some(d) => duration::parse(d)
                .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                .unwrap_or(0),
        }
    }
}

/// `runtime.cpus`: optional pinning of threads to CPU ids.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// CPU per reader thread (index i pins reader i).
    pub readers: Vec<usize>,
    /// CPU per parser thread.
    pub parsers: Vec<usize>,
    /// CPU of the publisher thread.
    pub publisher: Option<usize>,
}

impl CpuConfig {
    /// No pinning asked.
    pub fn is_empty(&self) -> bool {
        self.readers.is_empty() && self.parsers.is_empty() && self.publisher.is_none()
    }
}

/// How the pipeline stages map to threads.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PipelineMode {
    /// `inline` where it is cheaper (one reader and one parser, no pinning asked, fewer usable
    /// cores than hot threads), else `threads`; decided at start and logged.
    Auto,
    Threads,
    Inline,
}

impl PipelineMode {
    /// What `auto` becomes on this machine (`threads`/`inline` stay as they are): inline when
    /// a hand-off between threads would wait for the scheduler anyway.
    pub fn resolve(self, rt: &RuntimeConfig) -> (PipelineMode, String) {
        match self {
            PipelineMode::Auto => {
                let cores = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                let hot = rt.readers + rt.parsers + 1;
                let pinned = !rt.cpus.is_empty();
                if rt.readers == 1 && rt.parsers == 1 && !pinned && cores < hot {
                    (
                        PipelineMode::Inline,
                        format!("{cores} usable cores for {hot} hot threads"),
                    )
                } else {
                    (
                        PipelineMode::Threads,
                        format!(
                            "{cores} usable cores for {hot} hot threads{}",
                            if pinned { ", pinning asked" } else { "" }
                        ),
                    )
                }
            }
            m => (m, "configured".into()),
        }
    }
}

/// `runtime:`: threads, rings and pinning.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Reader threads; connections are spread over them.
    pub readers: usize,
    /// Parser threads; each connection is decoded by one parser, so per-symbol order holds.
    pub parsers: usize,
    /// Optional pinning.
    pub cpus: CpuConfig,
    /// Slots per reader->parser and parser->publisher ring (rounded up to a power of two).
    pub ring_capacity: usize,
    /// Initial buffer size of a ring slot; slots grow once to the largest message seen.
    pub frame_bytes: usize,
    /// Text messages larger than this are counted and skipped, never buffered.
    pub max_message_bytes: usize,
    /// Idle strategy of reader, parser and publisher threads.
    pub idle: IdlePolicy,
    /// `threads`: reader, parser and publisher on their own threads (one core each); `inline`:
    /// one thread reads, parses, encodes and publishes each message before the next (no hand-off
    /// between threads: the lowest latency when there are fewer cores than hot threads).
    pub pipeline: PipelineMode,
    /// Sleep of the `sleep` idle policy, microseconds.
    pub idle_sleep_us: u64,
    /// Deadline for draining and flushing after SIGINT/SIGTERM.
    pub shutdown_timeout: String,
    /// Reconnect backoff of every exchange connection.
    pub reconnect: ReconnectConfig,
    /// `"i/n"`: collect only the (exchange, symbol) pairs this instance owns among n (stable
    /// hash); `"ordinal/n"` takes i from the host name's trailing number (StatefulSet). Empty: all.
    pub shard: String,
}

/// `runtime.reconnect`: exponential backoff with full jitter, per connection, forever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First delay cap.
    pub initial: String,
    /// Largest delay cap.
    pub max: String,
    /// Growth of the cap per failed attempt.
    pub factor: u32,
    /// A session that lived this long starts the backoff again from `initial`.
    pub reset_after: String,
    /// New connections allowed per 5 minutes, all exchanges together (Binance: 300 per IP).
    pub max_per_5m: usize,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial: "100ms".into(),
            max: "30s".into(),
            factor: 2,
            reset_after: "2m".into(),
            max_per_5m: 300,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            readers: 1,
            parsers: 1,
            cpus: CpuConfig::default(),
            ring_capacity: 4096,
            frame_bytes: 4096,
            max_message_bytes: 8 << 20,
            idle: IdlePolicy::Park,
            pipeline: PipelineMode::Auto,
            idle_sleep_us: 50,
            shutdown_timeout: "5s".into(),
            reconnect: ReconnectConfig::default(),
            shard: String::new(),
        }
    }
}

/// `log:`: level and format (`RUST_LOG` wins over `level`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// error | warn | info | debug | trace (or any env_logger filter).
    pub level: String,
    /// `text` or `json` (one JSON object per line).
    pub format: LogFormat,
    /// Also append every log line to this file (seed E's `system.log`); `""`: stderr only.
    pub file: String,
    /// Also append error lines to this file (seed E's `error.log`); `""`: none.
    pub error_file: String,
    /// How often the `event=status` line is logged (events per type and rate, connections,
    /// sinks, gaps); `"off"`: never.
    pub status_interval: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            file: String::new(),
            error_file: String::new(),
            status_interval: "10s".into(),
        }
    }
}

/// The validated configuration the runtime is built from.
#[derive(Debug)]
pub struct Config {
    pub exchanges: Vec<Box<dyn ExchangePlan>>,
    /// Enabled sinks only.
    pub sinks: Vec<Box<dyn SinkPlan>>,
    pub http: HttpConfig,
    pub runtime: RuntimeConfig,
    pub log: LogConfig,
    /// `book:`: local order books.
    pub book: crate::book::BookConfig,
    /// `tracing:`: OTLP spans.
    pub tracing: TracingConfig,
    /// `capture:`: raw frames and REST bodies as received.
    pub capture: crate::capture::CaptureConfig,
    /// Parsed `runtime.shutdown_timeout`.
    pub shutdown_timeout: Duration,
    /// Parsed `runtime.reconnect`.
    pub reconnect: crate::pipeline::connector::Backoff,
    /// Parsed `runtime.shard` (`None`: this instance collects everything).
    pub shard: Option<shard::Shard>,
    /// Parsed `log.status_interval` (`None`: off).
    pub status_interval: Option<Duration>,
    /// The merged tree (file + environment), for `mdc check-config`.
    pub merged: Value,
    /// The file it was loaded from (re-read on a reload); `None` when built from text.
    pub path: Option<std::path::PathBuf>,
}

impl Config {
    /// Loads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read the config file: {e}"),
            )
        })?;
        let mut c = Self::from_yaml(&text, std::env::vars())?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses YAML text with the given environment (tests pass their own).
    pub fn from_yaml(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut root: Value = serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "config".into());
            ConfigError::new(at, format!("invalid YAML: {e}"))
        })?;
        if root.is_null() {
            root = Value::Mapping(Mapping::new());
        }
        env::apply(&mut root, vars)?;
        let mut raw: Raw = section("", root.clone())?;

        let mut exchanges = Vec::new();
        for (name, value) in raw.exchanges {
            let name = key_name(&name, "exchanges")?;
            let factory = exchange::factory(&name).ok_or_else(|| {
                let known: Vec<&str> = exchange::REGISTRY.iter().map(|f| f.name()).collect();
                ConfigError::new(
                    format!("exchanges.{name}"),
                    format!("unknown exchange (known: {})", known.join(", ")),
                )
            })?;
            if let Some(plan) = factory.plan(value)? {
                exchanges.push(plan);
            }
        }
        let shard = match raw.runtime.shard.trim() {
            "" => None,
            s => {
                let host = std::env::var("HOSTNAME").ok().or_else(|| {
                    std::fs::read_to_string("/etc/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                });
                Some(
                    shard::Shard::parse(s, host.as_deref())
                        .map_err(|r| ConfigError::new("runtime.shard", r))?,
                )
            }
        };
        if let Some(sh) = shard {
            for plan in exchanges.iter_mut() {
                let name = plan.name();
                plan.retain(&|key| sh.owns(name, key));
            }
            exchanges.retain(|p| !p.connections().is_empty());
        }

        let mut sinks = Vec::new();
        for (name, value) in raw.sinks {
            let name = key_name(&name, "sinks")?;
            let factory = sink::factory(&name).ok_or_else(|| {
                let known: Vec<&str> = sink::REGISTRY.iter().map(|f| f.name()).collect();
                ConfigError::new(
                    format!("sinks.{name}"),
                    format!("unknown sink (known: {})", known.join(", ")),
                )
            })?;
            if let Some(plan) = factory.plan(value)? {
                sinks.push(plan);
            }
        }
        if sinks.is_empty() {
            return Err(ConfigError::new(
                "sinks",
                "no sink is enabled (enable at least `sinks.file`)",
            ));
        }

        let rt = &raw.runtime;
        let range = |key: &str, v: usize, lo: usize, hi: usize| {
            if v < lo || v > hi {
                Err(ConfigError::new(
                    format!("runtime.{key}"),
                    format!("{v} is out of range {lo}..={hi}"),
                ))
            } else {
                Ok(())
            }
        };
        range("readers", rt.readers, 1, 64)?;
        range("parsers", rt.parsers, 1, 64)?;
        range("ring_capacity", rt.ring_capacity, 16, 1 << 20)?;
        range("frame_bytes", rt.frame_bytes, 256, 16 << 20)?;
        range("max_message_bytes", rt.max_message_bytes, 1024, 256 << 20)?;
        if rt.pipeline == PipelineMode::Inline && (rt.readers != 1 || rt.parsers != 1) {
            return Err(ConfigError::new(
                "runtime.pipeline",
                "`inline` runs everything on one thread: set readers: 1 and parsers: 1",
            ));
        }
        if rt.idle_sleep_us > 100_000 {
            return Err(ConfigError::new("runtime.idle_sleep_us", "at most 100000"));
        }
        if rt.cpus.readers.len() > rt.readers {
            return Err(ConfigError::new(
                format!("runtime.cpus.readers[{}]", rt.readers),
                format!("more CPUs than readers ({})", rt.readers),
            ));
        }
        if rt.cpus.parsers.len() > rt.parsers {
            return Err(ConfigError::new(
                format!("runtime.cpus.parsers[{}]", rt.parsers),
                format!("more CPUs than parsers ({})", rt.parsers),
            ));
        }
        let shutdown_timeout = duration::parse(&rt.shutdown_timeout)
            .map_err(|r| ConfigError::new("runtime.shutdown_timeout", r))?;
        raw.capture
            .check()
            .map_err(|(k, r)| ConfigError::new(k, r))?;
        let status_interval = match raw.log.status_interval.trim() {
            "off" | "0s" => None,
            s => Some(
                duration::parse(s)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(1))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "log.status_interval",
                            format!("`{s}` is not a duration of at least 1s, or \"off\""),
                        )
                    })?,
            ),
        };
        let rc = &rt.reconnect;
        let d = |k: &str, v: &str| {
            duration::parse(v).map_err(|r| ConfigError::new(format!("runtime.reconnect.{k}"), r))
        };
        let reconnect = crate::pipeline::connector::Backoff {
            initial: d("initial", &rc.initial)?,
            max: d("max", &rc.max)?,
            factor: rc.factor,
            reset_after: d("reset_after", &rc.reset_after)?,
        };
        if rc.max_per_5m == 0 {
            return Err(ConfigError::new(
                "runtime.reconnect.max_per_5m",
                "must be positive",
            ));
        }
        if reconnect.factor == 0 || reconnect.factor > 10 {
            return Err(ConfigError::new(
                "runtime.reconnect.factor",
                "between 1 and 10",
            ));
        }
        if reconnect.initial.is_zero() || reconnect.max < reconnect.initial {
            return Err(ConfigError::new(
                "runtime.reconnect.max",
                "must be at least initial (> 0)",
            ));
        }
        let otlp = raw.tracing.otlp_endpoint.trim();
        if !otlp.is_empty() {
            if !(otlp.starts_with("http://") || otlp.starts_with("https://")) {
                return Err(ConfigError::new(
                    "tracing.otlp_endpoint",
                    format!(
                        "`{}` is not an http(s):// URL like http://127.0.0.1:4318",
                        crate::setting::secret::url_shown(otlp)
                    ),
                ));
            }
            if !cfg!(feature = "otlp") {
                return Err(ConfigError::new(
                    "tracing.otlp_endpoint",
                    "this binary was built without the `otlp` feature",
                ));
            }
        }
        let mut stale = HttpConfig::default_stale_after();
        stale.append(&mut raw.http.stale_after);
        raw.http.stale_after = stale;
        for (k, v) in &raw.http.stale_after {
            if v != "off" {
                duration::parse(v)
                    .map_err(|r| ConfigError::new(format!("http.stale_after.{k}"), r))?;
            }
        }
        if !raw.http.listen.is_empty() && raw.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new(
                "http.listen",
                format!(
                    "`{}` is not an address like 127.0.0.1:8086",
                    raw.http.listen
                ),
            ));
        }
        let b = &raw.book;
        if b.depth > 5000 {
            return Err(ConfigError::new(
                "book.depth",
                "at most 5000 (0 = the full book)",
            ));
        }
        if b.max_concurrent_snapshots == 0 || b.max_concurrent_snapshots > 16 {
            return Err(ConfigError::new(
                "book.max_concurrent_snapshots",
                "between 1 and 16",
            ));
        }
        if b.max_buffered_diffs == 0 {
            return Err(ConfigError::new(
                "book.max_buffered_diffs",
                "must be positive",
            ));
        }
        if b.rest_snapshot_limit == 0 {
            return Err(ConfigError::new(
                "book.rest_snapshot_limit",
                "must be positive",
            ));
        }
        for plan in &exchanges {
            let Some(spec) = plan.books() else { continue };
            // Stream-snapshot markets (OKX) request no REST snapshots: no limit applies.
            if !b.enabled || spec.source.is_none() {
                continue;
            }
            let (limit, key) = match spec.snapshot_limit {
                Some(l) => (l, format!("exchanges.{}.rest_snapshot_limit", plan.name())),
                None => (
                    b.rest_snapshot_limit,
                    "book.rest_snapshot_limit".to_string(),
                ),
            };
            if limit == 0 || limit > spec.max_snapshot_limit {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "{limit} is outside 1..={} ({})",
                        spec.max_snapshot_limit,
                        plan.name()
                    ),
                ));
            }
            if !spec.accepted_limits.is_empty() && !spec.accepted_limits.contains(&limit) {
                let ok: Vec<String> = spec.accepted_limits.iter().map(u32::to_string).collect();
                return Err(ConfigError::new(
                    key,
                    format!(
                        "{limit} is not a depth {} accepts (one of {}); set exchanges.{}.rest_snapshot_limit",
                        plan.name(),
                        ok.join(", "),
                        plan.name()
                    ),
                ));
            }
        }
        Ok(Config {
            exchanges,
            sinks,
            http: raw.http,
            runtime: raw.runtime,
            log: raw.log,
            book: raw.book,
            tracing: raw.tracing,
            capture: raw.capture,
            shutdown_timeout,
            reconnect,
            shard,
            status_interval,
            merged: root,
            path: None,
        })
    }

    /// Settings that weaken security, `(key, why)` ([`insecure::findings`]).
    pub fn insecure_settings(&self) -> Vec<(String, String)> {
        insecure::findings(&self.merged)
    }

    /// The effective configuration as YAML with secrets redacted: the merged tree with every
    /// defaulted top-level section filled in.
    pub fn effective_yaml(&self) -> String {
        let mut v = self.merged.clone();
        if let Value::Mapping(m) = &mut v {
            let put = |m: &mut Mapping, k: &str, val: Value| {
                m.insert(Value::String(k.into()), val);
            };
            put(
                m,
                "http",
                serde_yaml::to_value(&self.http).unwrap_or(Value::Null),
            );
            put(
                m,
                "runtime",
                serde_yaml::to_value(&self.runtime).unwrap_or(Value::Null),
            );
            put(
                m,
                "log",
                serde_yaml::to_value(&self.log).unwrap_or(Value::Null),
            );
            put(
                m,
                "capture",
                serde_yaml::to_value(&self.capture).unwrap_or(Value::Null),
            );
            put(
                m,
                "tracing",
                serde_yaml::to_value(&self.tracing).unwrap_or(Value::Null),
            );
            let mut ex = Mapping::new();
            for p in &self.exchanges {
                ex.insert(Value::String(p.name().into()), p.effective());
            }
            put(m, "exchanges", Value::Mapping(ex));
            let mut sk = Mapping::new();
            for p in &self.sinks {
                sk.insert(Value::String(p.name().into()), p.effective());
            }
            put(m, "sinks", Value::Mapping(sk));
        }
        redact(&mut v);
        serde_yaml::to_string(&v).unwrap_or_default()
    }
}

fn key_name(k: &Value, parent: &str) -> Result<String, ConfigError> {
    // YAML reads a bare `null:` key as the null value; it names the null sink.
    if k.is_null() {
        return Ok("null".into());
    }
    k.as_str()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::new(parent, "section names must be strings"))
}

/// Replaces the value of every key that names a secret with `"***"`
/// ([`crate::setting::secret::is_secret_key`]; a PostgreSQL DSN keeps its host and database, only
/// its password goes), and removes the user info of URLs (`*url`, `*endpoint` keys).
pub fn redact(v: &mut Value) {
    use crate::setting::secret::{REDACTED, is_secret_key, url_shown};
    match v {
        Value::Mapping(m) => {
            for (k, val) in m.iter_mut() {
                let key = k.as_str().unwrap_or("").to_ascii_lowercase();
                if key == "dsn"
                    && let Value::String(dsn) = val
                {
                    *dsn = crate::sink::postgres::redact(dsn);
                } else if is_secret_key(&key) && !val.is_null() {
                    *val = Value::String(REDACTED.into());
                } else if (key.ends_with("url") || key.ends_with("endpoint"))
                    && let Value::String(u) = val
                {
                    *u = url_shown(u).into_owned();
                } else {
                    redact(val);
                }
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(redact),
        _ => {}
    }
}
