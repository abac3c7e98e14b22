//! Counters that hot-path threads update without sharing a cache line per message.
//!
//! Each thread owns a [`Counters`] handle: plain `u64`s it increments locally, copied to its own
//! single-writer atomics by [`Counters::publish`] every few milliseconds (off the per-message path).
//! The exporter sums the atomics of every thread at scrape time (see [`server`]).

pub mod alloc;
pub mod health;
pub mod http;
pub mod latency;
pub mod server;
pub mod status;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A family of counters with one label, e.g. `processor_events_total{type=...}`.
pub struct CounterFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub label: &'static str,
    pub values: Vec<&'static str>,
    threads: Mutex<Vec<Arc<[AtomicU64]>>>,
}

impl CounterFamily {
    fn new(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: &[&'static str],
    ) -> Arc<Self> {
        Arc::new(CounterFamily {
            name,
            help,
            label,
            values: values.to_vec(),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// A new per-thread handle (called once per thread at startup).
    pub fn handle(&self) -> Counters {
        let shared: Arc<[AtomicU64]> = self.values.iter().map(|_| AtomicU64::new(0)).collect();
        if let Ok(mut t) = self.threads.lock() {
            t.push(shared.clone());
        }
        Counters {
            local: vec![0; self.values.len()],
            shared,
        }
    }

    /// Sum over threads, per label value.
    pub fn totals(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.values.len()];
        if let Ok(t) = self.threads.lock() {
            for shared in t.iter() {
                for (o, a) in out.iter_mut().zip(shared.iter()) {
                    *o += a.load(Ordering::Relaxed);
                }
            }
        }
        out
    }
}

/// One thread's view of a [`CounterFamily`].
pub struct Counters {
    local: Vec<u64>,
    shared: Arc<[AtomicU64]>,
}

impl Counters {
    /// Adds `n` to the counter with label index `i` (thread-local; no atomics).
    #[inline]
    pub fn add(&mut self, i: usize, n: u64) {
        if let Some(c) = self.local.get_mut(i) {
            *c += n;
        }
    }

    /// This thread's count for label index `i`.
    pub fn get(&self, i: usize) -> u64 {
        self.local.get(i).copied().unwrap_or(0)
    }

    /// Makes local counts visible to the exporter.
    pub fn publish(&self) {
        for (l, s) in self.local.iter().zip(self.shared.iter()) {
            s.store(*l, Ordering::Relaxed);
        }
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.publish();
    }
}

/// Every metric the collector exports. Built once; handles are taken by threads at startup.
pub struct Metrics {
    /// `processor_events_total{type}`: normalized events produced by parsers.
    pub events: Arc<CounterFamily>,
    /// `processor_parse_errors_total{reason}`: frames skipped by decoders.
    pub parse_errors: Arc<CounterFamily>,
    /// `processor_publish_errors_total{sink}`: records a sink failed to take.
    pub publish_errors: Arc<CounterFamily>,
    /// `sink_records_total{sink}`: records handed to each sink.
    pub sink_records: Arc<CounterFamily>,
    /// `frames_received_total{kind}`: WebSocket messages read (text, binary, ping, ...).
    pub frames: Arc<CounterFamily>,
    /// `frames_skipped_total{reason}`: messages the reader did not pass on.
    pub frames_skipped: Arc<CounterFamily>,
    /// `bytes_received_total{kind}`: payload bytes of text messages.
    pub bytes: Arc<CounterFamily>,
    /// `websocket_disconnects_total{reason}`.
    pub disconnects: Arc<CounterFamily>,
    /// `websocket_connections`: currently open exchange connections.
    pub connections: AtomicI64,
    /// Connections the configuration asks for (readiness compares against it).
    pub connections_expected: AtomicI64,
    /// Connections whose subscriptions have all been sent.
    pub connections_subscribed: AtomicI64,
    /// Values registered by components at startup (sinks' own counters and gauges).
    pub extra: Mutex<Vec<Extra>>,
    /// Reachability of every enabled sink (readiness).
    pub sinks: Mutex<Vec<SinkHealth>>,
    /// `pipeline_stage_latency_seconds{stage}`: receive -> parsed, parsed -> handed to the sinks,
    /// handed -> acknowledged (Kafka).
    pub latency: latency::LatencyFamily,
    /// `processor_publish_latency_seconds{sink}`: per sink, from the record being encoded to the
    /// sink having it (Kafka: acknowledged by the brokers; file, null: written).
    pub publish_latency: latency::LatencyFamily,
    /// Connections and stream freshness for `/health`, `/status`, `/connections`.
    pub board: health::StatusBoard,
    /// Static facts for `/status` (version, exchanges, sinks, shard), set at startup.
    pub info: Mutex<serde_json::Value>,
    /// Process start (ns, realtime).
    pub started_ns: i64,
    /// Set by `POST /admin/reload` (`http.admin: true`); the main thread re-reads the config.
    pub reload_requested: AtomicBool,
}

/// A value a component exports under its own name, read at scrape time.
#[derive(Clone)]
pub struct Extra {
    pub name: &'static str,
    pub help: &'static str,
    /// Label pairs, e.g. `[("sink", "kafka")]`.
    pub labels: Vec<(&'static str, String)>,
    pub kind: ExtraKind,
}

/// How an [`Extra`] value is read.
#[derive(Clone)]
pub enum ExtraKind {
    /// A monotonic count.
    Counter(Arc<AtomicU64>),
    /// A level that goes up and down.
    Gauge(Arc<AtomicI64>),
    /// A gauge holding an `f64` (bits in an `AtomicU64`).
    GaugeF64(Arc<AtomicU64>),
}

/// What `/readyz` and `/health` know about one sink.
#[derive(Clone)]
pub struct SinkHealth {
    pub name: &'static str,
    /// Last reachability check result.
    pub reachable: Arc<AtomicBool>,
    /// Messages queued inside the sink (not yet acknowledged): `sink_queue_depth{sink}`.
    pub queue_depth: Arc<AtomicI64>,
    /// Bytes waiting in the sink's spool (`backpressure: spool`): `sink_spool_bytes{sink}`.
    pub spool_bytes: Arc<AtomicI64>,
    /// Records this sink alone did not deliver (dropped by `drop_newest`, a full spool, or given
    /// up): `sink_dropped_total{sink}`.
    pub dropped: Arc<AtomicU64>,
    /// Why the last check or write failed (shown by `/readyz` and `/health` while unreachable).
    pub last_error: Arc<Mutex<String>>,
}

impl SinkHealth {
    /// Marks the sink unreachable, saying why.
    pub fn down(&self, why: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            why.clone_into(&mut e);
        }
        self.reachable.store(false, Ordering::Relaxed);
    }
}

/// Labels of `frames_skipped_total`.
pub mod skip {
    pub const OVERSIZE: usize = 0;
    pub const BINARY: usize = 1;
    /// Records the exchange sends on a market-data stream that are not market data (Binance
    /// USD-M `NA` trades), skipped by the parser.
    pub const NON_TRADE: usize = 2;
    pub const VALUES: &[&str] = &["oversize", "binary", "non_trade"];
}

/// Labels of `frames_received_total`.
pub mod frame {
    pub const TEXT: usize = 0;
    pub const BINARY: usize = 1;
    pub const PING: usize = 2;
    pub const PONG: usize = 3;
    pub const CLOSE: usize = 4;
    pub const VALUES: &[&str] = &["text", "binary", "ping", "pong", "close"];
}

/// Labels of `websocket_disconnects_total`.
pub mod disconnect {
    pub const SERVER_CLOSE: usize = 0;
    pub const EOF: usize = 1;
    pub const ERROR: usize = 2;
    pub const PROTOCOL: usize = 3;
    pub const LIVENESS: usize = 4;
    pub const VALUES: &[&str] = &[
        "server_close",
        "eof",
        "io_error",
        "protocol_error",
        "liveness",
    ];
}

/// Labels of `processor_parse_errors_total` (see `DecodeError::reason`).
pub const PARSE_ERROR_REASONS: &[&str] = &[
    "invalid_json",
    "unexpected_shape",
    "bad_decimal",
    "unknown_event",
    "exchange_error",
];

impl Metrics {
    /// Builds the families; `sinks` names the enabled sinks.
    pub fn new(sinks: &[&'static str]) -> Arc<Metrics> {
        let kinds: Vec<&'static str> = crate::event::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        Arc::new(Metrics {
            events: CounterFamily::new(
                "processor_events_total",
                "Normalized events produced, by type.",
                "type",
                &kinds,
            ),
            parse_errors: CounterFamily::new(
                "processor_parse_errors_total",
                "Frames skipped because they could not be decoded, by reason.",
                "reason",
                PARSE_ERROR_REASONS,
            ),
            publish_errors: CounterFamily::new(
                "processor_publish_errors_total",
                "Records a sink failed to take, by sink.",
                "sink",
                sinks,
            ),
            sink_records: CounterFamily::new(
                "sink_records_total",
                "Records handed to a sink, by sink.",
                "sink",
                sinks,
            ),
            frames: CounterFamily::new(
                "frames_received_total",
                "WebSocket messages read from exchanges, by kind.",
                "kind",
                frame::VALUES,
            ),
            frames_skipped: CounterFamily::new(
                "frames_skipped_total",
                "WebSocket messages not passed to parsers, by reason.",
                "reason",
                skip::VALUES,
            ),
            bytes: CounterFamily::new(
                "bytes_received_total",
                "Payload bytes of WebSocket messages read, by kind.",
                "kind",
                frame::VALUES,
            ),
            disconnects: CounterFamily::new(
                "websocket_disconnects_total",
                "Exchange connections that ended, by reason.",
                "reason",
                disconnect::VALUES,
            ),
            connections: AtomicI64::new(0),
            connections_expected: AtomicI64::new(0),
            connections_subscribed: AtomicI64::new(0),
            extra: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            board: health::StatusBoard::default(),
            info: Mutex::new(serde_json::Value::Null),
            started_ns: crate::clock::realtime_ns(),
            reload_requested: AtomicBool::new(false),
            latency: latency::LatencyFamily::new(
                "pipeline_stage_latency_seconds",
                "Latency per pipeline stage (hdrhistogram since start): receive_to_parsed (socket read to encoded), parsed_to_sink (encoded to handed to every sink), receive_to_sink (socket read to handed to every sink), sink_to_ack (handed to Kafka to acknowledged).",
            ),
            publish_latency: latency::LatencyFamily::new(
                "processor_publish_latency_seconds",
                "Per sink: record encoded -> the sink has it (Kafka: acknowledged by the brokers; file, null: written), since start.",
            ),
        })
    }

    /// Registers a counter (called at startup, never per message).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        let a = Arc::new(AtomicU64::new(0));
        self.register(name, help, labels, ExtraKind::Counter(a.clone()));
        a
    }

    /// Registers an integer gauge.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicI64> {
        let a = Arc::new(AtomicI64::new(0));
        self.register(name, help, labels, ExtraKind::Gauge(a.clone()));
        a
    }

    /// Registers `value` (already counted elsewhere) as one more counter name.
    pub fn counter_alias(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: &Arc<AtomicU64>,
    ) -> Arc<AtomicU64> {
        self.register(name, help, labels, ExtraKind::Counter(value.clone()));
        value.clone()
    }

    /// Registers `value` (already kept elsewhere) as one more gauge name.
    pub fn gauge_alias(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: &Arc<AtomicI64>,
    ) -> Arc<AtomicI64> {
        self.register(name, help, labels, ExtraKind::Gauge(value.clone()));
        value.clone()
    }

    /// Registers a float gauge (store with `f64::to_bits`).
    pub fn gauge_f64(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        let a = Arc::new(AtomicU64::new(0));
        self.register(name, help, labels, ExtraKind::GaugeF64(a.clone()));
        a
    }

    fn register(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        kind: ExtraKind,
    ) {
        if let Ok(mut e) = self.extra.lock() {
            e.push(Extra {
                name,
                help,
                labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                kind,
            });
        }
    }

    /// Current values of the registered counters named `name`, by their first label's value.
    pub fn counter_values(&self, name: &str) -> Vec<(String, u64)> {
        let Ok(extras) = self.extra.lock() else {
            return Vec::new();
        };
        extras
            .iter()
            .filter(|x| x.name == name)
            .filter_map(|x| match &x.kind {
                ExtraKind::Counter(a) => Some((
                    x.labels.first().map(|(_, v)| v.clone()).unwrap_or_default(),
                    a.load(Ordering::Relaxed),
                )),
                _ => None,
            })
            .collect()
    }

    /// The health of sink `name`, registered on first use (a sink behind the threaded adapter
    /// and the adapter share one).
    pub fn sink_health(&self, name: &'static str) -> SinkHealth {
        if let Ok(s) = self.sinks.lock()
            && let Some(h) = s.iter().find(|h| h.name == name)
        {
            return h.clone();
        }
        let l = [("sink", name)];
        let h = SinkHealth {
            name,
            reachable: Arc::new(AtomicBool::new(true)),
            queue_depth: self.gauge(
                "sink_queue_depth",
                "Records queued inside the sink, not yet delivered (acknowledged).",
                &l,
            ),
            spool_bytes: self.gauge(
                "sink_spool_bytes",
                "Bytes waiting in the sink's on-disk spool (backpressure: spool).",
                &l,
            ),
            last_error: Arc::new(Mutex::new(String::new())),
            dropped: self.counter(
                "sink_dropped_total",
                "Records this sink alone did not deliver (backpressure: drop_newest, a full spool, or given up after its deadline); announced as gap events in it.",
                &l,
            ),
        };
        if let Ok(mut s) = self.sinks.lock() {
            s.push(h.clone());
        }
        h
    }

    /// Names of sinks whose last check failed.
    pub fn unreachable_sinks(&self) -> Vec<&'static str> {
        self.sinks
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|h| !h.reachable.load(Ordering::Relaxed))
                    .map(|h| h.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The unreachable sinks with the reason each gave.
    fn unreachable_reasons(&self) -> Vec<String> {
        self.sinks
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|h| !h.reachable.load(Ordering::Relaxed))
                    .map(|h| {
                        let e = h.last_error.lock().map(|e| e.clone()).unwrap_or_default();
                        if e.is_empty() {
                            format!("sink {} unreachable", h.name)
                        } else {
                            format!("sink {} unreachable: {e}", h.name)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Index of a parse error reason in `parse_errors`.
    pub fn parse_error_index(reason: &str) -> usize {
        PARSE_ERROR_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0)
    }

    /// Why the process is not ready, or `None` when every configured connection is open and
    /// subscribed and every enabled sink is reachable.
    pub fn not_ready(&self) -> Option<String> {
        let expected = self.connections_expected.load(Ordering::Relaxed);
        let open = self.connections.load(Ordering::Relaxed);
        let subscribed = self.connections_subscribed.load(Ordering::Relaxed);
        let mut why = Vec::new();
        if open < expected || subscribed < expected {
            why.push(format!(
                "connections: {open} open, {subscribed} subscribed of {expected}"
            ));
        }
        why.extend(self.unreachable_reasons());
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// All counter families, for export.
    pub fn families(&self) -> [&Arc<CounterFamily>; 8] {
        [
            &self.events,
            &self.parse_errors,
            &self.publish_errors,
            &self.sink_records,
            &self.frames,
            &self.frames_skipped,
            &self.bytes,
            &self.disconnects,
        ]
    }
}

/// Logs a repeated condition at most at a bounded rate: the first `burst` times, then every
/// `every`-th time (with the running count), so bad input cannot flood the log.
#[derive(Debug, Default)]
pub struct LogThrottle {
    count: u64,
}

impl LogThrottle {
    /// Counts one occurrence; true when this one should be logged.
    pub fn hit(&mut self) -> bool {
        self.count += 1;
        self.count <= 5 || self.count.is_multiple_of(10_000)
    }

    /// Occurrences so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}
