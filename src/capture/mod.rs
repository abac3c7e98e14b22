//! Raw capture (`capture:`): every frame the exchanges sent, exactly as sent, and the REST
//! snapshot bodies the books were synced from, written beside whatever sinks run, so history can
//! be normalized again later (`mdc replay`). One JSON line per frame:
//!
//! `{"receive_ts_ns":…,"exchange":"binance","market":"spot","conn":3,"session":0,"raw":"<frame text>"}`
//!
//! and per REST body `{"receive_ts_ns":…,"exchange":…,"market":…,"rest":"<url>","symbol":…,
//! "raw":"<body>"}`, in hourly and size-rotated files, each zstd-compressed once closed.
//!
//! So that `mdc replay` can give exactly the live run's output (books and gaps included), the
//! parser also records what it saw besides data, in the order it saw it (`"event"` lines):
//! a connection's streams (`conn`, repeated at the top of every file so each file replays on its
//! own), the connection markers (`connected`, `disconnected`, `subscribed`, `dropped`), and the
//! moment a REST snapshot was applied to a book (`book_loaded`, with `rest_ts`: the
//! `receive_ts_ns` of the body line it applied, 0 when the request failed).
//!
//! The parsers (and REST workers) only copy the frame into a recycled slot of a bounded queue
//! ([`Tap`]); the writer thread (`capture`) formats and writes, and a compressor thread
//! (`capture-zstd`) compresses closed files, so neither disk nor compression sits on the hot
//! path. A full queue waits (`backpressure: block`, the default: a capture is complete or it is
//! not a capture) or drops and counts (`drop_newest`).

mod writer;

use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use writer::{CaptureWriter, line_of};

/// `capture:` in config.yaml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub enabled: bool,
    /// Directory of the capture files (created if absent).
    pub path: String,
    /// A file is closed (and compressed) past this many bytes, and at each new UTC hour.
    pub rotate_bytes: u64,
    /// `zstd` (closed files become `.jsonl.zst`) or `none`.
    pub compression: String,
    /// zstd level (1-19).
    pub zstd_level: i32,
    /// Frames queued for the writer at most.
    pub queue_capacity: usize,
    /// `block` (default) or `drop_newest` when the queue is full.
    pub backpressure: String,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            enabled: false,
            path: "./capture".into(),
            rotate_bytes: 256 << 20,
            compression: "zstd".into(),
            zstd_level: 3,
            queue_capacity: 16_384,
            backpressure: "block".into(),
        }
    }
}

impl CaptureConfig {
    /// `Err((key, reason))`.
    pub fn check(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("capture.{k}");
        if self.path.is_empty() {
            return Err((key("path"), "must not be empty".into()));
        }
        if self.rotate_bytes < 1 << 16 {
            return Err((key("rotate_bytes"), "must be at least 65536".into()));
        }
        if !["zstd", "none"].contains(&self.compression.as_str()) {
            return Err((
                key("compression"),
                format!("`{}` is not one of zstd, none", self.compression),
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err((key("zstd_level"), "must be between 1 and 19".into()));
        }
        if !(16..=1 << 22).contains(&self.queue_capacity) {
            return Err((
                key("queue_capacity"),
                "must be between 16 and 4194304".into(),
            ));
        }
        if !["block", "drop_newest"].contains(&self.backpressure.as_str()) {
            return Err((
                key("backpressure"),
                format!("`{}` is not one of block, drop_newest", self.backpressure),
            ));
        }
        Ok(())
    }
}

/// One captured message in a recycled slot.
pub struct Item {
    pub receive_ts_ns: i64,
    pub exchange: &'static str,
    pub market: &'static str,
    pub conn: u32,
    /// The connection's session (a planned rollover runs two side by side for a moment).
    pub session: u32,
    /// REST: the URL requested (empty for a WebSocket frame).
    pub rest: String,
    /// REST: the symbol whose snapshot it is (`book_loaded`: whose book loaded it).
    pub symbol: String,
    /// Not a frame nor a REST body: `conn`, `connected`, `disconnected`, `subscribed`, `dropped`,
    /// `book_loaded` (empty for frames and REST bodies).
    pub event: &'static str,
    /// `book_loaded`: the body's `receive_ts_ns` (0: the request failed); `conn`: the rollover
    /// timeout in ms.
    pub aux: i64,
    /// A frame's or body's bytes; `conn`: its streams as a JSON array.
    pub bytes: Vec<u8>,
}

impl Item {
    fn new() -> Item {
        Item {
            receive_ts_ns: 0,
            exchange: "",
            market: "",
            conn: 0,
            session: 0,
            rest: String::new(),
            symbol: String::new(),
            event: "",
            aux: 0,
            bytes: Vec::with_capacity(4096),
        }
    }

    fn reset(&mut self, receive_ts_ns: i64, exchange: &'static str, market: &'static str) {
        self.receive_ts_ns = receive_ts_ns;
        self.exchange = exchange;
        self.market = market;
        self.conn = 0;
        self.session = 0;
        self.rest.clear();
        self.symbol.clear();
        self.event = "";
        self.aux = 0;
        self.bytes.clear();
    }
}

/// The capture `event` of a connection marker.
pub fn marker_name(kind: crate::pipeline::frame::FrameKind) -> &'static str {
    use crate::pipeline::frame::FrameKind;
    match kind {
        FrameKind::Data => "",
        FrameKind::Connected => "connected",
        FrameKind::Disconnected => "disconnected",
        FrameKind::Subscribed => "subscribed",
        FrameKind::Dropped => "dropped",
    }
}

/// Shared by every [`Tap`].
struct Shared {
    made: AtomicUsize,
    capacity: usize,
    block: bool,
    dropped: Arc<AtomicU64>,
    /// Set when the writer stops: nothing waits for a slot any more.
    stopped: Arc<AtomicBool>,
}

/// The producers' side: a parser's (one per parser) or the REST workers'. Cloned per thread.
#[derive(Clone)]
pub struct Tap {
    tx: crossbeam_channel::Sender<Item>,
    free: crossbeam_channel::Receiver<Item>,
    shared: Arc<Shared>,
    /// Connection -> (exchange, market), as the topology numbered them.
    conns: Vec<(&'static str, &'static str)>,
}

impl Tap {
    /// Registers the connection `conn` (before its first frame) and records its streams (a
    /// `conn` line, which the writer repeats at the top of every file).
    pub fn add_conn(
        &mut self,
        conn: u32,
        exchange: &'static str,
        market: &'static str,
        streams: &[crate::exchange::StreamSpec],
        rollover_timeout: Duration,
    ) {
        let i = conn as usize;
        if self.conns.len() <= i {
            self.conns.resize(i + 1, ("", ""));
        }
        self.conns[i] = (exchange, market);
        self.put(crate::clock::realtime_ns(), exchange, market, |it| {
            it.conn = conn;
            it.event = "conn";
            it.aux = rollover_timeout.as_millis().min(i64::MAX as u128) as i64;
            streams_json(streams, &mut it.bytes);
        });
    }

    /// A connection marker (`connected`, …) of `conn`'s session `session`, in frame order.
    pub fn marker(&self, conn: u32, session: u32, receive_ts_ns: i64, event: &'static str) {
        let (exchange, market) = self.conns.get(conn as usize).copied().unwrap_or(("", ""));
        self.put(receive_ts_ns, exchange, market, |it| {
            it.conn = conn;
            it.session = session;
            it.event = event;
        });
    }

    /// A REST snapshot (the body received at `rest_ts`, 0: the request failed) was applied to
    /// `symbol`'s book at `now_ns`, in frame order.
    pub fn book_loaded(
        &self,
        exchange: &'static str,
        market: &'static str,
        symbol: &str,
        now_ns: i64,
        rest_ts: i64,
    ) {
        self.put(now_ns, exchange, market, |it| {
            it.event = "book_loaded";
            it.symbol.push_str(symbol);
            it.aux = rest_ts;
        });
    }

    /// A free slot: recycled, new while fewer than the queue's capacity exist, or (`block`)
    /// the next one the writer frees.
    fn slot(&self) -> Option<Item> {
        if let Ok(i) = self.free.try_recv() {
            return Some(i);
        }
        let s = &self.shared;
        if s.made.fetch_add(1, Ordering::Relaxed) < s.capacity {
            return Some(Item::new());
        }
        s.made.fetch_sub(1, Ordering::Relaxed);
        while s.block && !s.stopped.load(Ordering::Relaxed) {
            if let Ok(i) = self.free.recv_timeout(Duration::from_millis(100)) {
                return Some(i);
            }
        }
        None
    }

    /// Queues one line: a free slot (or a counted drop), cleared and stamped, then `fill`ed.
    #[inline]
    fn put(
        &self,
        receive_ts_ns: i64,
        exchange: &'static str,
        market: &'static str,
        fill: impl FnOnce(&mut Item),
    ) {
        let Some(mut it) = self.slot() else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        it.reset(receive_ts_ns, exchange, market);
        fill(&mut it);
        if self.tx.try_send(it).is_err() {
            // Slots never outnumber the queue: only a stopped writer refuses.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A WebSocket frame of connection `conn` (its session `session`), as received.
    #[inline]
    pub fn frame(&self, conn: u32, session: u32, receive_ts_ns: i64, bytes: &[u8]) {
        let (exchange, market) = self.conns.get(conn as usize).copied().unwrap_or(("", ""));
        self.put(receive_ts_ns, exchange, market, |it| {
            it.conn = conn;
            it.session = session;
            it.bytes.extend_from_slice(bytes);
        });
    }

    /// A REST snapshot body (`url`, for `symbol`), as received.
    pub fn rest(
        &self,
        exchange: &'static str,
        market: &'static str,
        url: &str,
        symbol: &str,
        receive_ts_ns: i64,
        body: &[u8],
    ) {
        self.put(receive_ts_ns, exchange, market, |it| {
            it.rest.push_str(url);
            it.symbol.push_str(symbol);
            it.bytes.extend_from_slice(body);
        });
    }
}

/// `streams` as the JSON array a `conn` line carries (read back by `mdc replay`).
fn streams_json(streams: &[crate::exchange::StreamSpec], out: &mut Vec<u8>) {
    use crate::encode::json::string;
    out.push(b'[');
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, &s.name);
        out.extend_from_slice(b",\"channel\":");
        string(out, &s.channel);
        out.extend_from_slice(b",\"symbol\":");
        string(out, &s.symbol);
        out.extend_from_slice(b",\"market\":");
        string(out, s.market);
        out.extend_from_slice(if s.book {
            b",\"book\":true"
        } else {
            b",\"book\":false"
        });
        out.extend_from_slice(if s.watched {
            b",\"watched\":true}"
        } else {
            b",\"watched\":false}"
        });
    }
    out.push(b']');
}

/// Starts the writer and compressor threads; returns the first tap (clone it per producer) and
/// the writer's handle (close it after the parsers stopped).
pub fn start(cfg: &CaptureConfig, metrics: &Metrics) -> Result<(Tap, CaptureWriter), String> {
    let (tx, rx) = crossbeam_channel::bounded(cfg.queue_capacity);
    let (free_tx, free) = crossbeam_channel::bounded(cfg.queue_capacity);
    let dropped = metrics.counter(
        "capture_dropped_total",
        "Frames the raw capture could not keep (its queue full with backpressure drop_newest, or the writer stopped).",
        &[],
    );
    let stopped = Arc::new(AtomicBool::new(false));
    let writer = CaptureWriter::start(cfg, rx, free_tx, stopped.clone(), metrics)?;
    let tap = Tap {
        tx,
        free,
        shared: Arc::new(Shared {
            made: AtomicUsize::new(0),
            capacity: cfg.queue_capacity,
            block: cfg.backpressure == "block",
            dropped,
            stopped,
        }),
        conns: Vec::new(),
    };
    Ok((tap, writer))
}
