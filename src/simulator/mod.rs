//! A Binance-format exchange simulator on 127.0.0.1 for tests and the benchmark harness.
//!
//! Serves `/stream` (subscribe with `SUBSCRIBE` messages, or `?streams=a/b` in the URL) and `/ws/..`,
//! generates deterministic messages from a seed at a chosen rate, answers pings, sends its own pings
//! and checks the pong payloads, and can inject faults (malformed JSON, unknown events, huge or binary
//! frames, a connection cut in the middle of a frame). Everything it sends as market data can be
//! recorded so tests compare the collector's output with the truth.

pub mod deribit;
pub mod generator;
pub mod okx;
mod server;

use generator::StreamGen;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Something abnormal the simulator does once a connection has sent `after` data messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A text frame that is not valid JSON.
    Malformed,
    /// A well-formed event of a type nobody knows.
    UnknownEvent,
    /// Valid JSON with a wrong field type (`"t"` as a string).
    WrongType,
    /// A text frame of this many bytes.
    Huge(usize),
    /// A binary frame.
    Binary,
    /// Half of a frame, then the TCP connection is shut down.
    CutMidFrame,
    /// A clean WebSocket close.
    Close,
    /// Stop sending and stop reading (no pongs) while keeping the TCP connection open.
    Stall,
    /// Keep sending data but stop reading, so pings are never answered.
    NoPong,
    /// Send Binance's `serverShutdown` event, keep serving for this long, then close.
    ServerShutdown(Duration),
}

/// What to serve.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address (port 0 picks a free one).
    pub listen: String,
    pub seed: u64,
    /// Data messages per second per connection; 0 = as fast as possible.
    pub rate: u64,
    /// Stop generating after this many data messages in total (then stay connected and idle).
    pub total: Option<u64>,
    /// Faults per connection index (0 = first accepted connection): `(after n messages, fault)`.
    pub faults: Vec<(usize, u64, Fault)>,
    /// Keep every data message sent, in order, for tests.
    pub record: bool,
    /// Send a ping with a unique payload at this interval.
    pub ping_interval: Option<Duration>,
    /// Bind but do not accept until [`Simulator::resume`] (an exchange that is down, without
    /// giving its port away).
    pub paused: bool,
    /// Sequence gaps: every n-th depth diff of a symbol is generated (the true book moves) but not
    /// sent. `(symbol upper case, n)`.
    pub depth_gaps: Vec<(String, u64)>,
    /// Keep, per symbol, the initial book and every generated depth diff (sent or not), so tests
    /// can rebuild the true book at any update id.
    pub record_depth: bool,
    /// Serve REST depth snapshots (`/api/v3/depth`, `/fapi/v1/depth`) on this address.
    pub rest_listen: Option<String>,
    /// REST depth snapshots are taken inside the last generated diff (`lastUpdateId` strictly
    /// between its `U` and `u`, half of its changes in), as on the real exchange; `false` serves
    /// the book exactly at a diff boundary.
    pub snapshot_mid_diff: bool,
    /// Answers for the first REST requests, in order, before normal service.
    pub rest_faults: Vec<RestFault>,
    /// Binance USD-M instead of spot: futures payload shapes, routed paths (`/public/stream`,
    /// `/market/stream` only deliver their own streams; a stream on the wrong path gets nothing).
    pub futures: bool,
    /// On every connection after the first, this many messages are generated before the handshake
    /// completes and never sent: the data a real exchange streamed while we were away.
    pub lose_on_reconnect: u64,
    /// Trade ids carry their generation time in ns (see `StreamGen::stamp_trade_ids`).
    pub stamp_trade_ids: bool,
    /// Benchmarks: each connection pre-generates this many messages of its streams' mix and sends
    /// them in a loop (no formatting or locks per message, so the simulator is not the bottleneck);
    /// trade ids are re-stamped with the send time when `stamp_trade_ids`. 0 = generate live.
    pub replay: usize,
}

/// An abnormal REST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestFault {
    /// HTTP 429 with an optional `Retry-After` (seconds).
    TooManyRequests(Option<u64>),
    /// HTTP 418 (IP ban) with an optional `Retry-After` (seconds).
    Banned(Option<u64>),
    /// Any other status (400, 403, 451, 5xx) with Binance's error body.
    Status(u16),
}

/// Recorded depth history of one symbol.
#[derive(Debug, Clone, Default)]
pub struct DepthHistory {
    /// The initial book as a REST body.
    pub initial: String,
    /// Every generated diff (combined-stream message), in order, sent or not.
    pub diffs: Vec<String>,
    /// Every REST snapshot body served, in order.
    pub snapshots: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".into(),
            seed: 1,
            rate: 1000,
            total: None,
            faults: Vec::new(),
            record: false,
            ping_interval: None,
            paused: false,
            depth_gaps: Vec::new(),
            record_depth: false,
            rest_listen: None,
            snapshot_mid_diff: true,
            rest_faults: Vec::new(),
            futures: false,
            lose_on_reconnect: 0,
            stamp_trade_ids: false,
            replay: 0,
        }
    }
}

/// A connection subscribed to a stream: its index and where copies of the stream go.
pub(crate) type Subscriber = (usize, crossbeam_channel::Sender<String>);

/// State shared by the accept loop and connection threads.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub streams: Mutex<HashMap<String, StreamGen>>,
    pub sent_log: Mutex<Vec<String>>,
    pub sent: AtomicU64,
    pub connections: AtomicU64,
    pub pings_sent: AtomicU64,
    pub pongs_matched: AtomicU64,
    pub subscribe_messages: AtomicU64,
    /// Arrival of every SUBSCRIBE: (connection index, time).
    pub subscribe_log: Mutex<Vec<(usize, std::time::Instant)>>,
    /// Arrival of every message from the client (text, ping, pong): (connection index, time).
    pub inbound_log: Mutex<Vec<(usize, std::time::Instant)>>,
    /// Streams each connection asked for (URL and SUBSCRIBE), by connection index.
    pub subscribed: Mutex<HashMap<usize, Vec<String>>>,
    pub stop: AtomicBool,
    pub paused: AtomicBool,
    pub depth_log: Mutex<HashMap<String, DepthHistory>>,
    pub depth_counts: Mutex<HashMap<String, u64>>,
    pub gaps_injected: AtomicU64,
    pub rest_requests: AtomicU64,
    pub rest_faults: Mutex<std::collections::VecDeque<RestFault>>,
    pub rest_times: Mutex<Vec<(std::time::Instant, u16)>>,
    /// Every data point served by the REST series endpoints: (type, symbol, time ms).
    pub served_points: Mutex<std::collections::BTreeSet<(String, String, i64)>>,
    /// Messages generated and never sent (`lose_on_reconnect`).
    pub lost_log: Mutex<Vec<String>>,
    /// Live subscribers per stream, in subscription order: the first generates the stream's
    /// messages and every other one gets a copy of each (an exchange broadcasts a stream to every
    /// connection subscribed to it; two connections never split it).
    pub subscribers: Mutex<HashMap<String, Vec<Subscriber>>>,
    /// Streams that stopped (no more messages; the connection stays up).
    pub muted: Mutex<std::collections::HashSet<String>>,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    rest_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Binds and starts serving in background threads.
    pub fn start(cfg: SimConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(&cfg.listen)?;
        let cfg_paused = cfg.paused;
        let rest_faults = cfg.rest_faults.clone();
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            streams: Mutex::new(HashMap::new()),
            sent_log: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            pongs_matched: AtomicU64::new(0),
            subscribe_messages: AtomicU64::new(0),
            subscribe_log: Mutex::new(Vec::new()),
            inbound_log: Mutex::new(Vec::new()),
            subscribed: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(cfg_paused),
            depth_log: Mutex::new(HashMap::new()),
            depth_counts: Mutex::new(HashMap::new()),
            gaps_injected: AtomicU64::new(0),
            rest_requests: AtomicU64::new(0),
            rest_faults: Mutex::new(rest_faults.into()),
            rest_times: Mutex::new(Vec::new()),
            served_points: Mutex::new(std::collections::BTreeSet::new()),
            lost_log: Mutex::new(Vec::new()),
            subscribers: Mutex::new(HashMap::new()),
            muted: Mutex::new(std::collections::HashSet::new()),
        });
        let rest_addr = match &shared.cfg.rest_listen {
            Some(addr) => Some(server::start_rest(addr, shared.clone())?),
            None => None,
        };
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("sim-accept".into())
            .spawn(move || server::accept_loop(listener, s))?;
        Ok(Simulator {
            addr,
            rest_addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://<addr>`, the value for `exchanges.binance_spot.ws_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://<rest addr>`, the value for `exchanges.binance_spot.rest_url`.
    pub fn rest_url(&self) -> Option<String> {
        self.rest_addr.map(|a| format!("http://{a}"))
    }

    /// Per symbol: the initial book and every generated depth diff (with `record_depth`).
    pub fn depth_history(&self) -> HashMap<String, DepthHistory> {
        self.shared
            .depth_log
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Depth diffs generated but not sent (sequence gaps injected).
    pub fn gaps_injected(&self) -> u64 {
        self.shared.gaps_injected.load(Ordering::Relaxed)
    }

    /// REST requests served, and each one's time and HTTP status.
    pub fn rest_requests(&self) -> (u64, Vec<(std::time::Instant, u16)>) {
        (
            self.shared.rest_requests.load(Ordering::Relaxed),
            self.shared
                .rest_times
                .lock()
                .map(|t| t.clone())
                .unwrap_or_default(),
        )
    }

    /// Messages generated but never sent (`lose_on_reconnect`), in order.
    pub fn lost_messages(&self) -> Vec<String> {
        self.shared
            .lost_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Every REST series point served: (type, symbol, time in ms).
    pub fn served_points(&self) -> std::collections::BTreeSet<(String, String, i64)> {
        self.shared
            .served_points
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Data messages sent so far (all connections).
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// The recorded data messages (with `record: true`).
    pub fn sent_messages(&self) -> Vec<String> {
        self.shared
            .sent_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// `(pings sent, pongs that echoed the payload)`.
    pub fn pings(&self) -> (u64, u64) {
        (
            self.shared.pings_sent.load(Ordering::Relaxed),
            self.shared.pongs_matched.load(Ordering::Relaxed),
        )
    }

    /// SUBSCRIBE messages received.
    pub fn subscribe_messages(&self) -> u64 {
        self.shared.subscribe_messages.load(Ordering::Relaxed)
    }

    /// Arrival times of SUBSCRIBE messages: (connection index, instant).
    pub fn subscribe_log(&self) -> Vec<(usize, std::time::Instant)> {
        self.shared
            .subscribe_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Stops generating `stream` (e.g. `ethusdt@trade`); its connection keeps going.
    pub fn mute(&self, stream: &str) {
        if let Ok(mut m) = self.shared.muted.lock() {
            m.insert(stream.to_string());
        }
    }

    /// Arrival times of every message the client sent (SUBSCRIBE, pings, pongs), by connection.
    pub fn inbound_log(&self) -> Vec<(usize, std::time::Instant)> {
        self.shared
            .inbound_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Streams each connection subscribed (URL plus messages), by connection index.
    pub fn subscriptions(&self) -> HashMap<usize, Vec<String>> {
        self.shared
            .subscribed
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Starts accepting connections (see [`SimConfig::paused`]).
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::Relaxed);
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections on `listener` until `stop`, each served on its own thread named
/// `<name>-<i>` by `serve(stream, i)` (`i` counts from 0); joins them before returning.
pub(crate) fn accept_loop(
    listener: std::net::TcpListener,
    stop: &std::sync::atomic::AtomicBool,
    name: &str,
    connections: &std::sync::atomic::AtomicU64,
    serve: impl Fn(std::net::TcpStream, usize) + Clone + Send + 'static,
) {
    use std::sync::atomic::Ordering;
    let _ = listener.set_nonblocking(true);
    let mut threads = Vec::new();
    let mut index = 0usize;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let i = index;
                index += 1;
                connections.fetch_add(1, Ordering::Relaxed);
                let serve = serve.clone();
                if let Ok(t) = std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || serve(stream, i))
                {
                    threads.push(t);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}
