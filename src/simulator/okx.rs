//! An OKX v5 public WebSocket simulator on 127.0.0.1 (`mdc simulate --exchange okx`), doing what
//! OKX does, awkward cases included (EXCHANGES.md 4.3):
//! - `{"op":"subscribe"|"unsubscribe","args":[..]}` answered with `event` replies; an unknown
//!   channel or instrument gets `{"event":"error","code":"60018",..}`;
//! - `books`: a `snapshot` push of the instrument's true book (`prevSeqId` -1) on every
//!   subscription, then `update` pushes chained by `seqId`/`prevSeqId` with the CRC32 checksum of
//!   the top 25 levels (or 0, as since OKX's 2026 deprecation); keep-alive updates
//!   (`seqId == prevSeqId`, empty sides) and one sequence reset (`seqId` below `prevSeqId`);
//! - faults on request: updates generated but never sent (a `seqId` gap), wrong checksums,
//!   a dropped connection;
//! - the text `ping` answered with `pong`; a connection we pushed nothing to for `idle_close`
//!   is closed, as OKX closes one silent for 30 s.
//!
//! Every book state is recorded per instrument and `seqId` so tests compare the collector's
//! snapshots with the truth.

use super::generator::Rng;
use crate::exchange::okx::sequence::Crc32;
use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::{Error as WsError, Message, WebSocket};

/// What to serve.
#[derive(Debug, Clone)]
pub struct OkxSimConfig {
    pub listen: String,
    pub seed: u64,
    /// Pushes per second per connection (spread over its subscriptions); 0 = none at all.
    pub rate: u64,
    /// Levels per side of each generated book.
    pub levels: usize,
    /// Each `books` update changes 1 to this many levels.
    pub max_changes: u64,
    /// Every n-th `books` update of an instrument is generated but not sent (0: never).
    pub gap_every: u64,
    /// Every n-th sent `books` update carries a wrong checksum (0: never).
    pub bad_checksum_every: u64,
    /// Every n-th `books` update is a keep-alive (0: never).
    pub keep_alive_every: u64,
    /// After this many updates of an instrument its `seqId` resets (once).
    pub reset_after: Option<u64>,
    /// Send checksums (false: `0`, as OKX does since June 2026).
    pub checksum: bool,
    /// Close a connection we pushed nothing to for this long (OKX: 30 s).
    pub idle_close: Duration,
    /// Close connection `.0` (0 = the first accepted) after it sent `.1` pushes.
    pub drop_after: Option<(usize, u64)>,
    /// Stop generating after this many pushes in total.
    pub total: Option<u64>,
    /// Record every push sent and every book state (tests).
    pub record: bool,
    /// Instruments this exchange does not list: subscribing them gets error `60018`.
    pub unknown: Vec<String>,
    /// After every n-th push on a connection, also send three bad frames: malformed JSON, a push
    /// of a channel nobody subscribed (`candle1m`), and a `books` update whose checksum is a
    /// string (0: never).
    pub bad_every: u64,
    /// Serve the `rubik` long/short ratio endpoints on this address (a new point every 500 ms,
    /// standing in for the 5-minute buckets).
    pub rest_listen: Option<String>,
}

impl Default for OkxSimConfig {
    fn default() -> Self {
        OkxSimConfig {
            listen: "127.0.0.1:0".into(),
            seed: 1,
            rate: 200,
            levels: 40,
            max_changes: 6,
            gap_every: 0,
            bad_checksum_every: 0,
            keep_alive_every: 0,
            reset_after: None,
            checksum: true,
            idle_close: Duration::from_secs(30),
            drop_after: None,
            total: None,
            record: false,
            unknown: Vec::new(),
            bad_every: 0,
            rest_listen: None,
        }
    }
}

/// One instrument's true book and ids, shared by all connections (OKX's `seqId` is per
/// instrument and the same on every connection).
#[derive(Debug, Clone, Default)]
struct Inst {
    bids: BTreeMap<u64, String>,
    asks: BTreeMap<u64, String>,
    seq: u64,
    updates: u64,
    sent_updates: u64,
    reset_done: bool,
    trade_id: u64,
    price: u64,
}

/// A book as `(price, qty)` strings, best first.
pub type Levels = Vec<(String, String)>;

/// Book states of one instrument by `seqId`: (bids, asks).
type History = HashMap<u64, (Levels, Levels)>;

#[derive(Default)]
struct Shared {
    cfg: OkxSimConfig,
    insts: Mutex<HashMap<String, Inst>>,
    /// Per instrument: every book state by `seqId` (with `record`).
    truth: Mutex<HashMap<String, History>>,
    sent_log: Mutex<Vec<String>>,
    sent: AtomicU64,
    connections: AtomicU64,
    gaps: AtomicU64,
    bad_checksums: AtomicU64,
    keep_alives: AtomicU64,
    resets: AtomicU64,
    pings: AtomicU64,
    subscribes: Mutex<Vec<(usize, String)>>,
    unsubscribes: Mutex<Vec<(usize, String)>>,
    idle_closes: AtomicU64,
    bad_frames: AtomicU64,
    /// Every ratio point served: (endpoint, instId, time ms).
    served: Mutex<std::collections::BTreeSet<(String, String, i64)>>,
    rest_requests: AtomicU64,
    stop: AtomicBool,
}

/// A running OKX simulator; stops when dropped.
pub struct OkxSimulator {
    addr: SocketAddr,
    rest_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the simulator did, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkxStats {
    pub connections: u64,
    pub sent: u64,
    pub gaps: u64,
    pub bad_checksums: u64,
    pub keep_alives: u64,
    pub resets: u64,
    pub pings: u64,
    pub idle_closes: u64,
    /// Bad frames sent (`bad_every`).
    pub bad_frames: u64,
    /// (connection, instId) of every `books` subscription and unsubscription.
    pub subscribes: Vec<(usize, String)>,
    pub unsubscribes: Vec<(usize, String)>,
}

impl OkxSimulator {
    pub fn start(cfg: OkxSimConfig) -> std::io::Result<OkxSimulator> {
        let listener = TcpListener::bind(&cfg.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            ..Shared::default()
        });
        let rest_addr = match &shared.cfg.rest_listen {
            Some(a) => Some(start_rest(a, shared.clone())?),
            None => None,
        };
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("okx-sim-accept".into())
            .spawn(move || {
                let per_conn = s.clone();
                super::accept_loop(
                    listener,
                    &s.stop,
                    "okx-sim",
                    &s.connections,
                    move |stream, i| {
                        let _ = serve(stream, i, per_conn.clone());
                    },
                )
            })?;
        Ok(OkxSimulator {
            addr,
            rest_addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `ws://<addr>/ws/v5/public`, the value for `exchanges.okx.ws_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/v5/public", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<rest addr>`, the value for `exchanges.okx.rest_url` (with `rest_listen`).
    pub fn rest_url(&self) -> Option<String> {
        self.rest_addr.map(|a| format!("http://{a}"))
    }

    /// Every ratio point served: (endpoint, instId, time ms); and the requests answered.
    pub fn served_points(&self) -> (std::collections::BTreeSet<(String, String, i64)>, u64) {
        (
            self.shared
                .served
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            self.shared.rest_requests.load(Ordering::Relaxed),
        )
    }

    pub fn stats(&self) -> OkxStats {
        let s = &self.shared;
        let l = |m: &Mutex<Vec<(usize, String)>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        OkxStats {
            connections: s.connections.load(Ordering::Relaxed),
            sent: s.sent.load(Ordering::Relaxed),
            gaps: s.gaps.load(Ordering::Relaxed),
            bad_checksums: s.bad_checksums.load(Ordering::Relaxed),
            keep_alives: s.keep_alives.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            pings: s.pings.load(Ordering::Relaxed),
            idle_closes: s.idle_closes.load(Ordering::Relaxed),
            bad_frames: s.bad_frames.load(Ordering::Relaxed),
            subscribes: l(&s.subscribes),
            unsubscribes: l(&s.unsubscribes),
        }
    }

    /// Every push sent (with `record`), in order.
    pub fn sent_messages(&self) -> Vec<String> {
        self.shared
            .sent_log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The true book of `inst_id` when its `seqId` was `seq` (with `record`), best first.
    pub fn book_at(&self, inst_id: &str, seq: u64) -> Option<(Levels, Levels)> {
        self.shared
            .truth
            .lock()
            .ok()?
            .get(inst_id)?
            .get(&seq)
            .cloned()
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for OkxSimulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// OKX's price text: no trailing `.0` (`30244`, `30243.5`).
fn px(ticks: u64) -> String {
    if ticks.is_multiple_of(10) {
        format!("{}", ticks / 10)
    } else {
        format!("{}.{}", ticks / 10, ticks % 10)
    }
}

/// A size like OKX's (`0.08`, `1.44679`): micro-units, trailing zeros trimmed.
fn sz(micros: u64) -> String {
    let s = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn best_first(i: &Inst) -> (Levels, Levels) {
    (
        i.bids
            .iter()
            .rev()
            .map(|(p, q)| (px(*p), q.clone()))
            .collect(),
        i.asks.iter().map(|(p, q)| (px(*p), q.clone())).collect(),
    )
}

/// OKX's checksum, from the string it is defined on.
fn checksum(bids: &Levels, asks: &Levels) -> i32 {
    let mut parts = Vec::new();
    for k in 0..25 {
        for side in [bids, asks] {
            if let Some((p, q)) = side.get(k) {
                parts.push(format!("{p}:{q}"));
            }
        }
    }
    let mut c = Crc32::new();
    c.update(parts.join(":").as_bytes());
    c.finish() as i32
}

fn levels_json(l: &[(String, String)]) -> String {
    let v: Vec<String> = l
        .iter()
        .map(|(p, q)| format!("[\"{p}\",\"{q}\",\"0\",\"1\"]"))
        .collect();
    format!("[{}]", v.join(","))
}

fn now_ms() -> u64 {
    (crate::clock::realtime_ns() / 1_000_000) as u64
}

impl Shared {
    fn record_truth(&self, inst: &str, i: &Inst) {
        if !self.cfg.record {
            return;
        }
        if let Ok(mut t) = self.truth.lock() {
            t.entry(inst.to_string())
                .or_default()
                .insert(i.seq, best_first(i));
        }
    }

    /// The instrument's state, created with a fresh book on first use.
    fn with_inst<R>(&self, inst: &str, f: impl FnOnce(&mut Inst, &mut Rng) -> R) -> R {
        let mut map = match self.insts.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let seed = self.cfg.seed ^ crate::fnv::fnv1a(inst.bytes());
        let mut rng = Rng(seed | 1);
        let fresh = !map.contains_key(inst);
        let i = map.entry(inst.to_string()).or_default();
        if fresh {
            i.price = 300_000 + rng.next_u64() % 100_000;
            for k in 1..=self.cfg.levels as u64 {
                i.bids
                    .insert(i.price - k, sz(1 + rng.next_u64() % 5_000_000));
                i.asks
                    .insert(i.price + k, sz(1 + rng.next_u64() % 5_000_000));
            }
            // Far from 0, so a reset's small ids never meet ids used before.
            i.seq = 1_000_000_000 + rng.next_u64() % 1000;
            i.trade_id = 100_000 + rng.next_u64() % 1000;
            self.record_truth(inst, i);
        }
        // Each call draws from its own stream, advanced by the instrument's progress.
        let mut rng = Rng((seed ^ i.updates.wrapping_mul(0x9E37_79B9) ^ i.trade_id) | 1);
        f(i, &mut rng)
    }

    /// The `snapshot` push of an instrument's current true book.
    fn snapshot(&self, inst: &str) -> String {
        self.with_inst(inst, |i, _| {
            let (b, a) = best_first(i);
            let c = if self.cfg.checksum { checksum(&b, &a) } else { 0 };
            format!(
                "{{\"arg\":{{\"channel\":\"books\",\"instId\":\"{inst}\"}},\"action\":\"snapshot\",\"data\":[{{\"asks\":{},\"bids\":{},\"ts\":\"{}\",\"checksum\":{c},\"prevSeqId\":-1,\"seqId\":{}}}]}}",
                levels_json(&a),
                levels_json(&b),
                now_ms(),
                i.seq
            )
        })
    }

    /// The next `books` update of an instrument, or `None` when it was generated but withheld
    /// (a gap).
    fn update(&self, inst: &str) -> Option<String> {
        let cfg = &self.cfg;
        self.with_inst(inst, |i, rng| {
            i.updates += 1;
            let prev = i.seq;
            let keep_alive = cfg.keep_alive_every > 0 && i.updates.is_multiple_of(cfg.keep_alive_every);
            let (mut cb, mut ca): (Levels, Levels) = (Vec::new(), Vec::new());
            if keep_alive {
                // seqId == prevSeqId, nothing changes.
                self.keep_alives.fetch_add(1, Ordering::Relaxed);
            } else {
                for _ in 0..1 + rng.next_u64() % cfg.max_changes.max(1) {
                    let bid = rng.next_u64().is_multiple_of(2);
                    let (best_bid, best_ask) = (
                        i.bids.keys().next_back().copied().unwrap_or(i.price - 1),
                        i.asks.keys().next().copied().unwrap_or(i.price + 1),
                    );
                    let r = rng.next_u64();
                    let (side, changes) = if bid {
                        (&mut i.bids, &mut cb)
                    } else {
                        (&mut i.asks, &mut ca)
                    };
                    let price = if bid {
                        best_ask.saturating_sub(1 + r % (cfg.levels as u64 + 5))
                    } else {
                        best_bid + 1 + r % (cfg.levels as u64 + 5)
                    };
                    if side.contains_key(&price) && (side.len() > cfg.levels / 2) && r.is_multiple_of(3) {
                        side.remove(&price);
                        changes.push((px(price), "0".into()));
                    } else {
                        let q = sz(1 + (r >> 20) % 5_000_000);
                        side.insert(price, q.clone());
                        changes.push((px(price), q));
                    }
                }
                let reset = cfg.reset_after.is_some_and(|n| i.updates >= n) && !i.reset_done;
                if reset {
                    i.reset_done = true;
                    i.seq = 10 + rng.next_u64() % 100;
                    self.resets.fetch_add(1, Ordering::Relaxed);
                } else {
                    i.seq += 1 + rng.next_u64() % 3;
                }
            }
            self.record_truth(inst, i);
            if cfg.gap_every > 0 && i.updates.is_multiple_of(cfg.gap_every) && !keep_alive {
                self.gaps.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            i.sent_updates += 1;
            let (b, a) = best_first(i);
            let mut c = if cfg.checksum { checksum(&b, &a) } else { 0 };
            if cfg.bad_checksum_every > 0
                && cfg.checksum
                && i.sent_updates.is_multiple_of(cfg.bad_checksum_every)
                && !keep_alive
            {
                c ^= 0x5a5a;
                self.bad_checksums.fetch_add(1, Ordering::Relaxed);
            }
            Some(format!(
                "{{\"arg\":{{\"channel\":\"books\",\"instId\":\"{inst}\"}},\"action\":\"update\",\"data\":[{{\"asks\":{},\"bids\":{},\"ts\":\"{}\",\"checksum\":{c},\"prevSeqId\":{prev},\"seqId\":{}}}]}}",
                levels_json(&ca),
                levels_json(&cb),
                now_ms(),
                i.seq
            ))
        })
    }

    /// One push of a non-book channel.
    fn other(&self, channel: &str, inst: &str) -> String {
        self.with_inst(inst, |i, rng| {
            let ts = now_ms();
            let arg = format!("{{\"channel\":\"{channel}\",\"instId\":\"{inst}\"}}");
            let data = match channel {
                "trades" => {
                    i.trade_id += 1;
                    let side = if rng.next_u64().is_multiple_of(2) { "buy" } else { "sell" };
                    format!(
                        "{{\"instId\":\"{inst}\",\"tradeId\":\"{}\",\"px\":\"{}\",\"sz\":\"{}\",\"side\":\"{side}\",\"ts\":\"{ts}\",\"count\":\"1\"}}",
                        i.trade_id,
                        px(i.price),
                        sz(1 + rng.next_u64() % 2_000_000)
                    )
                }
                "bbo-tbt" => {
                    let (b, a) = best_first(i);
                    format!(
                        "{{\"asks\":{},\"bids\":{},\"ts\":\"{ts}\",\"seqId\":{}}}",
                        levels_json(&a[..1.min(a.len())]),
                        levels_json(&b[..1.min(b.len())]),
                        i.seq
                    )
                }
                "books5" => {
                    let (b, a) = best_first(i);
                    format!(
                        "{{\"asks\":{},\"bids\":{},\"instId\":\"{inst}\",\"ts\":\"{ts}\",\"seqId\":{}}}",
                        levels_json(&a[..5.min(a.len())]),
                        levels_json(&b[..5.min(b.len())]),
                        i.seq
                    )
                }
                "mark-price" => format!(
                    "{{\"instType\":\"SWAP\",\"instId\":\"{inst}\",\"markPx\":\"{}\",\"ts\":\"{ts}\"}}",
                    px(i.price)
                ),
                "funding-rate" => format!(
                    "{{\"fundingRate\":\"0.0001{}\",\"fundingTime\":\"{}\",\"instId\":\"{inst}\",\"instType\":\"SWAP\",\"nextFundingRate\":\"\",\"nextFundingTime\":\"{}\",\"ts\":\"{ts}\"}}",
                    rng.next_u64() % 100,
                    ts + 3_600_000,
                    ts + 7_200_000
                ),
                _ => format!(
                    "{{\"instId\":\"{inst}\",\"instType\":\"SWAP\",\"oi\":\"{}\",\"oiCcy\":\"{}\",\"oiUsd\":\"{}\",\"ts\":\"{ts}\"}}",
                    100_000 + rng.next_u64() % 1000,
                    1000 + rng.next_u64() % 100,
                    30_000_000 + rng.next_u64() % 1000
                ),
            };
            format!("{{\"arg\":{arg},\"data\":[{data}]}}")
        })
    }
}

/// Generates `n` pushes offline, round-robin over `subs` (channel, instId), each `books`
/// subscription starting with its snapshot push: fixtures for benchmarks and allocation tests.
pub fn generate(cfg: OkxSimConfig, subs: &[(&str, &str)], n: usize) -> Vec<String> {
    let shared = Shared {
        cfg,
        ..Shared::default()
    };
    let mut out: Vec<String> = subs
        .iter()
        .filter(|(c, _)| *c == "books")
        .map(|(_, i)| shared.snapshot(i))
        .collect();
    let mut k = 0;
    while out.len() < n && !subs.is_empty() {
        let (ch, inst) = subs[k % subs.len()];
        k += 1;
        let m = if ch == "books" {
            shared.update(inst)
        } else {
            Some(shared.other(ch, inst))
        };
        out.extend(m);
    }
    out
}

/// The `rubik` ratio endpoints: the last three 500 ms buckets, newest first, as OKX orders them;
/// an instrument that is not a contract gets OKX's `51001`.
fn start_rest(addr: &str, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(|e| std::io::Error::other(e.to_string()))?;
    let local = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("no ip address"))?;
    std::thread::Builder::new()
        .name("okx-sim-rest".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                shared.rest_requests.fetch_add(1, Ordering::Relaxed);
                let url = req.url().to_string();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                let inst = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("instId="))
                    .unwrap_or("")
                    .to_string();
                let endpoint = path
                    .strip_prefix("/api/v5/rubik/stat/contracts/")
                    .unwrap_or("");
                let contract = matches!(
                    crate::exchange::okx::inst_market(&inst),
                    Some("swap" | "futures")
                );
                let (status, body) = if !crate::exchange::okx::poll::SERIES
                    .iter()
                    .any(|(p, _)| *p == endpoint)
                {
                    (404, "{\"code\":\"404\",\"msg\":\"Not Found\"}".to_string())
                } else if !contract {
                    (
                        200,
                        "{\"code\":\"51001\",\"msg\":\"Instrument ID does not exist\",\"data\":[]}"
                            .to_string(),
                    )
                } else {
                    let now = crate::clock::realtime_ns() / 1_000_000;
                    let last = now - now % 500;
                    let pts: Vec<String> = [last, last - 500, last - 1000]
                        .iter()
                        .map(|&ts| {
                            if let Ok(mut s) = shared.served.lock() {
                                s.insert((endpoint.to_string(), inst.clone(), ts));
                            }
                            format!(
                                "[\"{ts}\",\"{}.{:02}\"]",
                                1 + (ts / 500) % 3,
                                (ts / 500) % 100
                            )
                        })
                        .collect();
                    (
                        200,
                        format!(
                            "{{\"code\":\"0\",\"msg\":\"\",\"data\":[{}]}}",
                            pts.join(",")
                        ),
                    )
                };
                let _ =
                    req.respond(tiny_http::Response::from_string(body).with_status_code(status));
            }
        })?;
    Ok(local)
}

/// A `subscribe`/`unsubscribe` op: its args as (channel, instId or instType).
fn parse_op(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let op = v.get("op")?.as_str()?.to_string();
    let args = v
        .get("args")?
        .as_array()?
        .iter()
        .filter_map(|a| {
            let ch = a.get("channel")?.as_str()?.to_string();
            let target = a
                .get("instId")
                .or_else(|| a.get("instType"))?
                .as_str()?
                .to_string();
            Some((ch, target))
        })
        .collect();
    Some((op, args))
}

const SERVED: &[&str] = &[
    "trades",
    "books",
    "books5",
    "bbo-tbt",
    "mark-price",
    "funding-rate",
    "open-interest",
    "liquidation-orders",
];

#[allow(clippy::result_large_err)] // tungstenite's handshake error type
fn serve(stream: TcpStream, index: usize, shared: Arc<Shared>) -> Result<(), WsError> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_nonblocking(false);
    let mut ws: WebSocket<TcpStream> = tungstenite::accept(stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => WsError::ConnectionClosed,
    })?;
    ws.get_ref().set_nonblocking(true)?;
    let cfg = shared.cfg.clone();
    let conn_id = format!("{:08x}", shared.cfg.seed as usize ^ index);
    // Subscriptions in order; `pending` books snapshots go out before any update.
    let mut subs: Vec<(String, String)> = Vec::new();
    let mut snapshots: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut last_push = Instant::now();
    let mut sent_here = 0u64;
    let mut next = 0usize;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let t = t.as_str();
                    if t == "ping" {
                        shared.pings.fetch_add(1, Ordering::Relaxed);
                        ws.write(Message::text("pong"))?;
                        last_push = Instant::now();
                        continue;
                    }
                    let Some((op, args)) = parse_op(t) else {
                        ws.write(Message::text(format!(
                            "{{\"event\":\"error\",\"code\":\"60012\",\"msg\":\"Invalid request: {}\",\"connId\":\"{conn_id}\"}}",
                            t.replace('"', "'")
                        )))?;
                        continue;
                    };
                    for (ch, target) in args {
                        let known = SERVED.contains(&ch.as_str())
                            && !cfg.unknown.contains(&target)
                            && (ch == "liquidation-orders"
                                || crate::exchange::okx::inst_market(&target).is_some());
                        let arg = if ch == "liquidation-orders" {
                            format!("{{\"channel\":\"{ch}\",\"instType\":\"{target}\"}}")
                        } else {
                            format!("{{\"channel\":\"{ch}\",\"instId\":\"{target}\"}}")
                        };
                        if !known {
                            ws.write(Message::text(format!(
                                "{{\"event\":\"error\",\"code\":\"60018\",\"msg\":\"Wrong URL or channel:{ch},instId:{target} doesn't exist.\",\"connId\":\"{conn_id}\"}}"
                            )))?;
                            continue;
                        }
                        let key = (ch.clone(), target.clone());
                        match op.as_str() {
                            "subscribe" => {
                                ws.write(Message::text(format!(
                                    "{{\"event\":\"subscribe\",\"arg\":{arg},\"connId\":\"{conn_id}\"}}"
                                )))?;
                                if ch == "books" {
                                    if let Ok(mut l) = shared.subscribes.lock() {
                                        l.push((index, target.clone()));
                                    }
                                    snapshots.push(target.clone());
                                }
                                if !subs.contains(&key) {
                                    subs.push(key);
                                }
                            }
                            "unsubscribe" => {
                                ws.write(Message::text(format!(
                                    "{{\"event\":\"unsubscribe\",\"arg\":{arg},\"connId\":\"{conn_id}\"}}"
                                )))?;
                                if ch == "books"
                                    && let Ok(mut l) = shared.unsubscribes.lock()
                                {
                                    l.push((index, target.clone()));
                                }
                                subs.retain(|s| *s != key);
                                snapshots.retain(|s| *s != target || ch != "books");
                            }
                            _ => {}
                        }
                    }
                }
                Ok(Message::Close(_)) => {
                    let _ = ws.flush();
                    return Ok(());
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // Snapshots of new `books` subscriptions first.
        for inst in std::mem::take(&mut snapshots) {
            let m = shared.snapshot(&inst);
            send(&mut ws, &shared, m)?;
            last_push = Instant::now();
        }
        // Data, paced over the subscriptions (liquidations are sparse: never generated).
        let data: Vec<&(String, String)> = subs
            .iter()
            .filter(|(c, _)| c != "liquidation-orders")
            .collect();
        let due = if cfg.rate == 0 || data.is_empty() {
            0
        } else {
            let target = (started.elapsed().as_secs_f64() * cfg.rate as f64) as u64;
            target.saturating_sub(sent_here).min(256)
        };
        for _ in 0..due {
            if cfg
                .total
                .is_some_and(|t| shared.sent.load(Ordering::Relaxed) >= t)
            {
                sent_here += due;
                break;
            }
            let (ch, inst) = data[next % data.len()];
            next += 1;
            sent_here += 1;
            let msg = if ch == "books" {
                shared.update(inst)
            } else {
                Some(shared.other(ch, inst))
            };
            if let Some(m) = msg {
                send(&mut ws, &shared, m)?;
                last_push = Instant::now();
            }
            if cfg.bad_every > 0 && sent_here.is_multiple_of(cfg.bad_every) {
                for bad in [
                    "{\"arg\":{\"channel\":\"trades\",\"instId\":".to_string(),
                    format!(
                        "{{\"arg\":{{\"channel\":\"candle1m\",\"instId\":\"{inst}\"}},\"data\":[[\"1597026383085\",\"8533.02\",\"8553.74\",\"8527.17\",\"8548.26\",\"45247\",\"529.5858061\"]]}}"
                    ),
                    format!(
                        "{{\"arg\":{{\"channel\":\"books\",\"instId\":\"{inst}\"}},\"action\":\"update\",\"data\":[{{\"asks\":[],\"bids\":[],\"ts\":\"1\",\"checksum\":\"abc\",\"prevSeqId\":1,\"seqId\":2}}]}}"
                    ),
                ] {
                    shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                    match ws.write(Message::text(bad)) {
                        Ok(()) => {}
                        Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if let Some((c, n)) = cfg.drop_after
                && c == index
                && sent_here >= n
            {
                // The TCP connection just ends, as a network failure does.
                let _ = ws.flush();
                let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
        match ws.flush() {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if last_push.elapsed() >= cfg.idle_close {
            // OKX closes a connection it pushed nothing to for 30 s.
            shared.idle_closes.fetch_add(1, Ordering::Relaxed);
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[allow(clippy::result_large_err)]
fn send(ws: &mut WebSocket<TcpStream>, shared: &Shared, m: String) -> Result<(), WsError> {
    shared.sent.fetch_add(1, Ordering::Relaxed);
    if shared.cfg.record
        && let Ok(mut l) = shared.sent_log.lock()
    {
        l.push(m.clone());
    }
    match ws.write(Message::text(m)) {
        Ok(()) => Ok(()),
        Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}
