//! A Deribit JSON-RPC 2.0 WebSocket simulator on 127.0.0.1 (`mdc simulate --exchange deribit`),
//! doing what Deribit does, awkward cases included (EXCHANGES.md 4.4):
//! - `public/subscribe` / `public/unsubscribe` answered with the channels as `result`; an unknown
//!   channel or instrument gets a JSON-RPC error reply;
//! - `public/set_heartbeat` (interval >= 10, else an error): every interval a `heartbeat`
//!   notification of type `test_request`; a connection that did not answer the previous one
//!   with `public/test` is closed at once, as Deribit does;
//! - `book`: a `snapshot` notification of the instrument's true book on every subscription, then
//!   `change` notifications chained by `change_id`/`prev_change_id`, levels `[action, price,
//!   amount]` with `new`/`change`/`delete`; prices and amounts as JSON numbers the way Deribit
//!   writes them (`6000.0`, `37311.5`, and `5e-05` for tiny option prices);
//! - `trades` (string ids, prefixed for non-BTC instruments), `ticker` (greeks for options) and
//!   `deribit_volatility_index`;
//! - faults on request: changes generated but never sent (a `change_id` gap), a dropped
//!   connection, bad frames;
//! - `public/get_instruments` over HTTP (`rest_listen`), filtered by currency and kind.
//!
//! Every book state is recorded per instrument and `change_id`, in the plain decimal text the
//! collector must output, so tests compare the collector's snapshots with the truth.

use super::generator::Rng;
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
pub struct DeribitSimConfig {
    pub listen: String,
    pub seed: u64,
    /// Notifications per second per connection (spread over its subscriptions); 0 = none.
    pub rate: u64,
    /// Levels per side of each generated book.
    pub levels: usize,
    /// Every n-th `book` change of an instrument is generated but not sent (0: never).
    pub gap_every: u64,
    /// Only instruments whose name contains this get gaps (`""`: all).
    pub gap_only: String,
    /// One heartbeat second lasts this long (tests shorten Deribit's 10 s minimum).
    pub heartbeat_unit: Duration,
    /// Close connection `.0` (0 = the first accepted) after it sent `.1` notifications.
    pub drop_after: Option<(usize, u64)>,
    /// Stop generating after this many notifications in total.
    pub total: Option<u64>,
    /// Record every book state (tests).
    pub record: bool,
    /// Instruments listed by `public/get_instruments` (and the only ones served when not
    /// empty).
    pub instruments: Vec<String>,
    /// After every n-th notification on a connection, also send three bad frames: malformed
    /// JSON, a notification of an unsubscribed channel kind (`chart.trades`), and a book change
    /// whose price is a string (0: never).
    pub bad_every: u64,
    /// Serve `public/get_instruments` on this address.
    pub rest_listen: Option<String>,
}

impl Default for DeribitSimConfig {
    fn default() -> Self {
        DeribitSimConfig {
            listen: "127.0.0.1:0".into(),
            seed: 1,
            rate: 200,
            levels: 30,
            gap_every: 0,
            gap_only: String::new(),
            heartbeat_unit: Duration::from_secs(1),
            drop_after: None,
            total: None,
            record: false,
            instruments: Vec::new(),
            bad_every: 0,
            rest_listen: None,
        }
    }
}

/// One instrument's true book and ids, shared by all connections.
#[derive(Debug, Clone, Default)]
struct Inst {
    bids: BTreeMap<u64, u64>,
    asks: BTreeMap<u64, u64>,
    change_id: u64,
    changes: u64,
    trade_seq: u64,
    price: u64,
}

/// A book as `(price, qty)` plain-decimal strings, best first.
pub type Levels = Vec<(String, String)>;

/// Book states of one instrument by `change_id`: (bids, asks).
type History = HashMap<u64, (Levels, Levels)>;

#[derive(Default)]
struct Shared {
    cfg: DeribitSimConfig,
    /// The instruments listed now (starts as `cfg.instruments`; tests list and expire some
    /// while running).
    listed: Mutex<Vec<String>>,
    insts: Mutex<HashMap<String, Inst>>,
    truth: Mutex<HashMap<String, History>>,
    /// Trades sent: (instrument, trade_id text).
    trades: Mutex<Vec<(String, String)>>,
    /// Volatility index values sent: (index, text).
    volatility: Mutex<Vec<(String, String)>>,
    sent: AtomicU64,
    connections: AtomicU64,
    gaps: AtomicU64,
    test_requests: AtomicU64,
    tests_answered: AtomicU64,
    heartbeat_closes: AtomicU64,
    subscribes: Mutex<Vec<(usize, String)>>,
    unsubscribes: Mutex<Vec<(usize, String)>>,
    bad_frames: AtomicU64,
    rest_requests: AtomicU64,
    stop: AtomicBool,
}

/// A running Deribit simulator; stops when dropped.
pub struct DeribitSimulator {
    addr: SocketAddr,
    rest_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the simulator did, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeribitStats {
    pub connections: u64,
    pub sent: u64,
    pub gaps: u64,
    pub test_requests: u64,
    pub tests_answered: u64,
    /// Connections closed for an unanswered `test_request`.
    pub heartbeat_closes: u64,
    pub bad_frames: u64,
    pub rest_requests: u64,
    /// (connection, channel) of every `book` subscription and unsubscription.
    pub subscribes: Vec<(usize, String)>,
    pub unsubscribes: Vec<(usize, String)>,
}

impl DeribitSimulator {
    pub fn start(cfg: DeribitSimConfig) -> std::io::Result<DeribitSimulator> {
        let listener = TcpListener::bind(&cfg.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            listed: Mutex::new(cfg.instruments.clone()),
            cfg,
            ..Shared::default()
        });
        let rest_addr = match &shared.cfg.rest_listen {
            Some(a) => Some(start_rest(a, shared.clone())?),
            None => None,
        };
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("deribit-sim-accept".into())
            .spawn(move || {
                let per_conn = s.clone();
                super::accept_loop(
                    listener,
                    &s.stop,
                    "deribit-sim",
                    &s.connections,
                    move |stream, i| {
                        let _ = serve(stream, i, per_conn.clone());
                    },
                )
            })?;
        Ok(DeribitSimulator {
            addr,
            rest_addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `ws://<addr>/ws/api/v2`, the value for `exchanges.deribit.ws_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/api/v2", self.addr)
    }

    /// `http://<rest addr>`, the value for `exchanges.deribit.rest_url` (with `rest_listen`).
    pub fn rest_url(&self) -> Option<String> {
        self.rest_addr.map(|a| format!("http://{a}"))
    }

    pub fn stats(&self) -> DeribitStats {
        let s = &self.shared;
        let l = |m: &Mutex<Vec<(usize, String)>>| m.lock().map(|v| v.clone()).unwrap_or_default();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeribitStats {
            connections: n(&s.connections),
            sent: n(&s.sent),
            gaps: n(&s.gaps),
            test_requests: n(&s.test_requests),
            tests_answered: n(&s.tests_answered),
            heartbeat_closes: n(&s.heartbeat_closes),
            bad_frames: n(&s.bad_frames),
            rest_requests: n(&s.rest_requests),
            subscribes: l(&s.subscribes),
            unsubscribes: l(&s.unsubscribes),
        }
    }

    /// Lists `instruments` from now on: the others expire (no more data, unknown to new
    /// subscriptions and to `public/get_instruments`), new ones can be subscribed.
    pub fn set_instruments(&self, instruments: Vec<String>) {
        if let Ok(mut l) = self.shared.listed.lock() {
            *l = instruments;
        }
    }

    /// Every trade sent: (instrument, trade_id).
    pub fn trades_sent(&self) -> Vec<(String, String)> {
        self.shared
            .trades
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Every volatility index value sent: (index name, value text).
    pub fn volatility_sent(&self) -> Vec<(String, String)> {
        self.shared
            .volatility
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The true book of `inst` at `change_id` (with `record`), best first, plain decimals.
    pub fn book_at(&self, inst: &str, change_id: u64) -> Option<(Levels, Levels)> {
        self.shared
            .truth
            .lock()
            .ok()?
            .get(inst)?
            .get(&change_id)
            .cloned()
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for DeribitSimulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_option(inst: &str) -> bool {
    crate::exchange::deribit::inst_market(inst) == Some("option")
}

/// A price as Deribit writes it, and as the collector must output it. Options: ticks of
/// 0.00001 (below 0.0001 Deribit's JSON has the exponent form, `5e-05`); others: ticks of 0.5
/// (`37311.5`, `37317.0`).
fn price(ticks: u64, option: bool) -> (String, String) {
    if option {
        if ticks < 10 {
            return (format!("{ticks}e-05"), format!("0.0000{ticks}"));
        }
        let s = format!("{}.{:05}", ticks / 100_000, ticks % 100_000);
        let mut s = s.trim_end_matches('0').to_string();
        if s.ends_with('.') {
            s.push('0');
        }
        (s.clone(), s)
    } else {
        let s = format!("{}.{}", ticks / 2, if ticks % 2 == 1 { 5 } else { 0 });
        (s.clone(), s)
    }
}

/// An amount as Deribit writes it (always with a fraction: `6000.0`, `0.1`).
fn amount(units: u64, option: bool) -> String {
    if option {
        format!("{}.{}", units / 10, units % 10)
    } else {
        format!("{}.0", units * 10)
    }
}

fn best_first(i: &Inst, option: bool) -> (Levels, Levels) {
    let lv = |(p, q): (&u64, &u64)| (price(*p, option).1, amount(*q, option));
    (
        i.bids.iter().rev().map(lv).collect(),
        i.asks.iter().map(lv).collect(),
    )
}

fn now_ms() -> u64 {
    (crate::clock::realtime_ns() / 1_000_000) as u64
}

fn note(method: &str, channel: &str, data: &str) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{{\"channel\":\"{channel}\",\"data\":{data}}}}}"
    )
}

impl Shared {
    fn record_truth(&self, inst: &str, i: &Inst) {
        if !self.cfg.record {
            return;
        }
        if let Ok(mut t) = self.truth.lock() {
            t.entry(inst.to_string())
                .or_default()
                .insert(i.change_id, best_first(i, is_option(inst)));
        }
    }

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
            // Options around 0.0005 so that the lowest bids need the exponent form.
            i.price = if is_option(inst) {
                40 + rng.next_u64() % 20
            } else {
                70_000 + rng.next_u64() % 10_000
            };
            for k in 1..=self.cfg.levels as u64 {
                if k < i.price {
                    i.bids.insert(i.price - k, 1 + rng.next_u64() % 500);
                }
                i.asks.insert(i.price + k, 1 + rng.next_u64() % 500);
            }
            i.change_id = 31_479_219_781 + rng.next_u64() % 1000;
            i.trade_seq = 1000 + rng.next_u64() % 1000;
            self.record_truth(inst, i);
        }
        let mut rng = Rng((seed ^ i.changes.wrapping_mul(0x9E37_79B9) ^ i.trade_seq) | 1);
        f(i, &mut rng)
    }

    fn snapshot(&self, inst: &str, interval: &str) -> String {
        let option = is_option(inst);
        self.with_inst(inst, |i, _| {
            let lv = |(p, q): (&u64, &u64)| {
                format!("[\"new\",{},{}]", price(*p, option).0, amount(*q, option))
            };
            let bids: Vec<String> = i.bids.iter().rev().map(lv).collect();
            let asks: Vec<String> = i.asks.iter().map(lv).collect();
            note(
                "subscription",
                &format!("book.{inst}.{interval}"),
                &format!(
                    "{{\"type\":\"snapshot\",\"timestamp\":{},\"instrument_name\":\"{inst}\",\"change_id\":{},\"bids\":[{}],\"asks\":[{}]}}",
                    now_ms(),
                    i.change_id,
                    bids.join(","),
                    asks.join(",")
                ),
            )
        })
    }

    /// The next `change` of an instrument, or `None` when it was withheld (a gap).
    fn change(&self, inst: &str, interval: &str) -> Option<String> {
        let cfg = &self.cfg;
        let option = is_option(inst);
        self.with_inst(inst, |i, rng| {
            i.changes += 1;
            let prev = i.change_id;
            let (mut cb, mut ca) = (Vec::new(), Vec::new());
            for _ in 0..1 + rng.next_u64() % 4 {
                let bid = rng.next_u64().is_multiple_of(2);
                let best_bid = i.bids.keys().next_back().copied().unwrap_or(1);
                let best_ask = i.asks.keys().next().copied().unwrap_or(i.price + 1);
                let r = rng.next_u64();
                let (side, out) = if bid {
                    (&mut i.bids, &mut cb)
                } else {
                    (&mut i.asks, &mut ca)
                };
                let p = if bid {
                    best_ask.saturating_sub(1 + r % (cfg.levels as u64 + 3)).max(1)
                } else {
                    best_bid + 1 + r % (cfg.levels as u64 + 3)
                };
                let sent_px = price(p, option).0;
                if side.contains_key(&p) && side.len() > cfg.levels / 2 && r.is_multiple_of(3) {
                    side.remove(&p);
                    out.push(format!("[\"delete\",{sent_px},0.0]"));
                } else {
                    let q = 1 + (r >> 20) % 500;
                    let action = if side.insert(p, q).is_some() {
                        "change"
                    } else {
                        "new"
                    };
                    out.push(format!("[\"{action}\",{sent_px},{}]", amount(q, option)));
                }
            }
            i.change_id += 1 + rng.next_u64() % 5;
            self.record_truth(inst, i);
            if cfg.gap_every > 0
                && i.changes.is_multiple_of(cfg.gap_every)
                && inst.contains(cfg.gap_only.as_str())
            {
                self.gaps.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(note(
                "subscription",
                &format!("book.{inst}.{interval}"),
                &format!(
                    "{{\"type\":\"change\",\"timestamp\":{},\"prev_change_id\":{prev},\"instrument_name\":\"{inst}\",\"change_id\":{},\"bids\":[{}],\"asks\":[{}]}}",
                    now_ms(),
                    i.change_id,
                    cb.join(","),
                    ca.join(",")
                ),
            ))
        })
    }

    fn trade(&self, inst: &str, interval: &str) -> String {
        let option = is_option(inst);
        let msg = self.with_inst(inst, |i, rng| {
            i.trade_seq += 1;
            let cur = inst.split(['-', '_']).next().unwrap_or("");
            let id = if cur == "BTC" {
                format!("{}", 137_486_952 + i.trade_seq)
            } else {
                format!("{cur}-{}", 2_754_263 + i.trade_seq)
            };
            let dir = if rng.next_u64().is_multiple_of(2) {
                "buy"
            } else {
                "sell"
            };
            let iv = if option { ",\"iv\":78.44" } else { "" };
            let liq = if i.trade_seq.is_multiple_of(7) {
                ",\"liquidation\":\"T\""
            } else {
                ""
            };
            let data = format!(
                "[{{\"trade_seq\":{},\"trade_id\":\"{id}\",\"timestamp\":{},\"tick_direction\":{},\"price\":{},\"mark_price\":{}{iv},\"instrument_name\":\"{inst}\",\"index_price\":56127.59,\"direction\":\"{dir}\",\"amount\":{}{liq}}}]",
                i.trade_seq,
                now_ms(),
                rng.next_u64() % 4,
                price(i.price, option).0,
                price(i.price + 1, option).0,
                amount(1 + rng.next_u64() % 100, option)
            );
            (id, note("subscription", &format!("trades.{inst}.{interval}"), &data))
        });
        if let Ok(mut t) = self.trades.lock() {
            t.push((inst.to_string(), msg.0));
        }
        msg.1
    }

    fn ticker(&self, inst: &str, interval: &str) -> String {
        let option = is_option(inst);
        self.with_inst(inst, |i, _| {
            let (bb, ba) = (
                i.bids.iter().next_back().map(|(p, q)| (*p, *q)).unwrap_or((0, 0)),
                i.asks.iter().next().map(|(p, q)| (*p, *q)).unwrap_or((0, 0)),
            );
            let extra = if option {
                ",\"underlying_price\":2115.89,\"underlying_index\":\"SYN.ETH-9APR21\",\"mark_iv\":78.74,\"interest_rate\":0.0,\"greeks\":{\"vega\":0.46511,\"theta\":-5.09811,\"rho\":0.16173,\"gamma\":1e-05,\"delta\":0.8609},\"bid_iv\":51.06,\"ask_iv\":117.97,\"last_price\":null"
            } else {
                ",\"current_funding\":-1.2e-05,\"funding_8h\":0.00010412,\"estimated_delivery_price\":56127.59,\"last_price\":56170.5"
            };
            let data = format!(
                "{{\"timestamp\":{},\"stats\":{{\"volume\":null,\"low\":null}},\"state\":\"open\",\"open_interest\":{},\"mark_price\":{},\"instrument_name\":\"{inst}\",\"index_price\":2103.4,\"best_bid_price\":{},\"best_bid_amount\":{},\"best_ask_price\":{},\"best_ask_amount\":{}{extra}}}",
                now_ms(),
                amount(i.price, option),
                price(i.price, option).0,
                price(bb.0, option).0,
                amount(bb.1, option),
                price(ba.0, option).0,
                amount(ba.1, option),
            );
            note("subscription", &format!("ticker.{inst}.{interval}"), &data)
        })
    }

    fn volatility(&self, index: &str) -> String {
        let n = self.sent.load(Ordering::Relaxed);
        let v = format!("{}.{:02}", 40 + n % 20, n % 100);
        if let Ok(mut l) = self.volatility.lock() {
            l.push((index.to_string(), v.clone()));
        }
        note(
            "subscription",
            &format!("deribit_volatility_index.{index}"),
            &format!(
                "{{\"volatility\":{v},\"timestamp\":{},\"index_name\":\"{index}\"}}",
                now_ms()
            ),
        )
    }

    /// Whether `inst` is listed (everything is when no list was given).
    fn is_listed(&self, inst: &str) -> bool {
        self.listed
            .lock()
            .map(|l| l.is_empty() || l.iter().any(|i| i == inst))
            .unwrap_or(true)
    }

    /// Whether the simulator serves this channel.
    fn known(&self, channel: &str) -> bool {
        let parts: Vec<&str> = channel.split('.').collect();
        match parts.as_slice() {
            ["deribit_volatility_index", ix] => ix.ends_with("_usd"),
            [kind, inst, interval] => {
                matches!(*kind, "trades" | "book" | "ticker")
                    && matches!(*interval, "100ms" | "raw" | "agg2")
                    && crate::exchange::deribit::inst_market(inst).is_some()
                    && self.is_listed(inst)
            }
            _ => false,
        }
    }
}

/// `public/get_instruments?currency=..&kind=..&expired=..` over the configured instruments.
fn start_rest(addr: &str, shared: Arc<Shared>) -> std::io::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(|e| std::io::Error::other(e.to_string()))?;
    let local = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("no ip address"))?;
    std::thread::Builder::new()
        .name("deribit-sim-rest".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                shared.rest_requests.fetch_add(1, Ordering::Relaxed);
                let url = req.url().to_string();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                let param = |k: &str| {
                    query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                        .map(str::to_string)
                };
                let (status, body) = if path != "/api/v2/public/get_instruments" {
                    (404, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}".to_string())
                } else if let Some(currency) = param("currency") {
                    let kind = param("kind");
                    let listed = shared.listed.lock().map(|l| l.clone()).unwrap_or_default();
                    let items: Vec<String> = listed
                        .iter()
                        .filter(|i| {
                            currency == "any" || i.split(['-', '_']).next() == Some(currency.as_str())
                        })
                        .filter(|i| {
                            let k = match crate::exchange::deribit::inst_market(i) {
                                Some("option") => "option",
                                Some("spot") => "spot",
                                _ => "future",
                            };
                            kind.as_deref().is_none_or(|want| want == k)
                        })
                        .map(|i| {
                            format!(
                                "{{\"instrument_name\":\"{i}\",\"kind\":\"{}\",\"is_active\":true,\"tick_size\":0.0005}}",
                                if is_option(i) { "option" } else { "future" }
                            )
                        })
                        .collect();
                    (
                        200,
                        format!(
                            "{{\"jsonrpc\":\"2.0\",\"result\":[{}],\"usIn\":1,\"usOut\":2,\"usDiff\":1,\"testnet\":false}}",
                            items.join(",")
                        ),
                    )
                } else {
                    (400, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"Invalid params\",\"data\":{\"param\":\"currency\",\"reason\":\"must be present\"}}}".to_string())
                };
                let _ =
                    req.respond(tiny_http::Response::from_string(body).with_status_code(status));
            }
        })?;
    Ok(local)
}

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
    let mut subs: Vec<String> = Vec::new();
    let mut snapshots: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut sent_here = 0u64;
    let mut next = 0usize;
    // (interval, next test_request due, an unanswered one is out)
    let mut heartbeat: Option<(Duration, Instant, bool)> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                        ws.write(Message::text("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":11050,\"message\":\"bad_request\"}}"))?;
                        continue;
                    };
                    let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
                    let method = v.get("method").and_then(|m| m.as_str()).unwrap_or("");
                    let params = v.get("params").cloned().unwrap_or_default();
                    let reply = |result: String| {
                        format!(
                            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result},\"usIn\":1,\"usOut\":2,\"usDiff\":1,\"testnet\":false}}"
                        )
                    };
                    let error = |code: i64, msg: &str| {
                        format!(
                            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":{code},\"message\":\"{msg}\"}},\"usIn\":1,\"usOut\":2,\"usDiff\":1,\"testnet\":false}}"
                        )
                    };
                    match method {
                        "public/set_heartbeat" => {
                            match params.get("interval").and_then(|i| i.as_u64()) {
                                Some(n) if n >= 10 => {
                                    let every = cfg.heartbeat_unit * n as u32;
                                    heartbeat = Some((every, Instant::now() + every, false));
                                    ws.write(Message::text(reply("\"ok\"".into())))?;
                                }
                                _ => ws.write(Message::text(error(-32602, "Invalid params")))?,
                            }
                        }
                        "public/test" => {
                            shared.tests_answered.fetch_add(1, Ordering::Relaxed);
                            if let Some(h) = heartbeat.as_mut() {
                                h.2 = false;
                            }
                            ws.write(Message::text(reply("{\"version\":\"1.2.26\"}".into())))?;
                        }
                        "public/subscribe" | "public/unsubscribe" => {
                            let chans: Vec<String> = params
                                .get("channels")
                                .and_then(|c| c.as_array())
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|c| c.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default();
                            // Unsubscribing works for whatever is subscribed, expired or not.
                            let (ok, bad): (Vec<String>, Vec<String>) =
                                chans.into_iter().partition(|c| {
                                    shared.known(c)
                                        || (method == "public/unsubscribe" && subs.contains(c))
                                });
                            for c in &bad {
                                ws.write(Message::text(error(
                                    -32602,
                                    &format!("Invalid params: channel {c}"),
                                )))?;
                            }
                            let list: Vec<String> = ok.iter().map(|c| format!("\"{c}\"")).collect();
                            ws.write(Message::text(reply(format!("[{}]", list.join(",")))))?;
                            for c in ok {
                                let book = c.starts_with("book.");
                                if method == "public/subscribe" {
                                    if book {
                                        if let Ok(mut l) = shared.subscribes.lock() {
                                            l.push((index, c.clone()));
                                        }
                                        snapshots.push(c.clone());
                                    }
                                    if !subs.contains(&c) {
                                        subs.push(c);
                                    }
                                } else {
                                    if book && let Ok(mut l) = shared.unsubscribes.lock() {
                                        l.push((index, c.clone()));
                                    }
                                    snapshots.retain(|s| *s != c);
                                    subs.retain(|s| *s != c);
                                }
                            }
                        }
                        _ => ws.write(Message::text(error(-32601, "Method not found")))?,
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
        if let Some((every, due, outstanding)) = heartbeat.as_mut()
            && Instant::now() >= *due
        {
            if *outstanding {
                // Deribit closes a connection that left a test_request unanswered.
                shared.heartbeat_closes.fetch_add(1, Ordering::Relaxed);
                let _ = ws.close(None);
                let _ = ws.flush();
                return Ok(());
            }
            shared.test_requests.fetch_add(1, Ordering::Relaxed);
            *outstanding = true;
            *due = Instant::now() + *every;
            ws.write(Message::text(
                "{\"jsonrpc\":\"2.0\",\"method\":\"heartbeat\",\"params\":{\"type\":\"test_request\"}}",
            ))?;
        }
        for ch in std::mem::take(&mut snapshots) {
            let mut p = ch.split('.');
            let (_, inst, interval) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
            let m = shared.snapshot(inst, interval);
            send(&mut ws, &shared, m)?;
        }
        let due = if cfg.rate == 0 || subs.is_empty() {
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
            let ch = subs[next % subs.len()].clone();
            next += 1;
            sent_here += 1;
            let mut p = ch.split('.');
            let (kind, inst, interval) = (
                p.next().unwrap_or(""),
                p.next().unwrap_or(""),
                p.next().unwrap_or(""),
            );
            // An expired instrument's channels fall silent.
            if kind != "deribit_volatility_index" && !shared.is_listed(inst) {
                continue;
            }
            let msg = match kind {
                "book" => shared.change(inst, interval),
                "trades" => Some(shared.trade(inst, interval)),
                "ticker" => Some(shared.ticker(inst, interval)),
                _ => Some(shared.volatility(inst)),
            };
            if let Some(m) = msg {
                send(&mut ws, &shared, m)?;
            }
            if cfg.bad_every > 0 && sent_here.is_multiple_of(cfg.bad_every) {
                for bad in [
                    "{\"jsonrpc\":\"2.0\",\"method\":\"subscription\",\"params\":{\"channel\":\"trades.".to_string(),
                    note("subscription", "chart.trades.BTC-PERPETUAL.1", "{\"tick\":1}"),
                    note(
                        "subscription",
                        &format!("book.{inst}.100ms"),
                        &format!("{{\"type\":\"change\",\"timestamp\":1,\"prev_change_id\":1,\"instrument_name\":\"{inst}\",\"change_id\":2,\"bids\":[[\"new\",\"1.0\",1.0]],\"asks\":[]}}"),
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
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[allow(clippy::result_large_err)]
fn send(ws: &mut WebSocket<TcpStream>, shared: &Shared, m: String) -> Result<(), WsError> {
    shared.sent.fetch_add(1, Ordering::Relaxed);
    match ws.write(Message::text(m)) {
        Ok(()) => Ok(()),
        Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Generates `n` notifications offline, round-robin over `channels` (e.g.
/// `book.BTC-PERPETUAL.100ms`), each book channel starting with its snapshot: fixtures for
/// benchmarks and allocation tests.
pub fn generate(cfg: DeribitSimConfig, channels: &[&str], n: usize) -> Vec<String> {
    let shared = Shared {
        cfg,
        ..Shared::default()
    };
    let split = |c: &str| -> (String, String, String) {
        let mut p = c.split('.');
        (
            p.next().unwrap_or("").to_string(),
            p.next().unwrap_or("").to_string(),
            p.next().unwrap_or("").to_string(),
        )
    };
    let mut out: Vec<String> = channels
        .iter()
        .filter(|c| c.starts_with("book."))
        .map(|c| {
            let (_, inst, iv) = split(c);
            shared.snapshot(&inst, &iv)
        })
        .collect();
    let mut k = 0;
    while out.len() < n && !channels.is_empty() {
        let (kind, inst, iv) = split(channels[k % channels.len()]);
        k += 1;
        let m = match kind.as_str() {
            "book" => shared.change(&inst, &iv),
            "trades" => Some(shared.trade(&inst, &iv)),
            "ticker" => Some(shared.ticker(&inst, &iv)),
            _ => Some(shared.volatility(&inst)),
        };
        out.extend(m);
    }
    out
}
