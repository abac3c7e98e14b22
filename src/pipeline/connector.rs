//! Stage 0 (off the hot path): opens exchange connections and hands them to reader threads.
//!
//! TCP connect, TLS and the WebSocket handshake are blocking and can take a while, so they run on
//! this dedicated thread, never on a reader. A reader reports a connection that ended; the connector
//! reconnects it after an exponential backoff with full jitter (100 ms doubling to 30 s; a session
//! that lived longer than a minute starts again from the bottom).

use crate::exchange::ConnectionSpec;
use crate::metrics::health::{ConnState, ConnStatus};
use crate::setting::secret::url_shown;
use crossbeam_channel::{Receiver, Sender};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::WebSocket;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;

/// A client WebSocket over plain TCP or rustls.
pub type WsStream = WebSocket<MaybeTlsStream<TcpStream>>;

/// Where one configured connection goes and who handles it.
#[derive(Debug, Clone)]
pub struct ConnTarget {
    pub conn: u32,
    /// Index of the exchange plan (decoder) in the topology.
    pub source: u16,
    pub reader: usize,
    pub parser: usize,
    pub spec: ConnectionSpec,
    /// What `/connections` and `/health` show of it.
    pub status: Arc<ConnStatus>,
}

/// A freshly opened connection for a reader.
pub struct Established {
    pub conn: u32,
    /// Session number of this connection (see [`crate::pipeline::frame::Frame::session`]).
    pub session: u32,
    pub source: u16,
    pub parser: usize,
    pub ws: WsStream,
    /// Subscription messages still to send, paced by `max_messages_per_sec`.
    pub subscribe: Vec<String>,
    pub max_messages_per_sec: u32,
    /// Subscription messages per hour on this connection (see `ConnectionSpec`).
    pub max_requests_per_hour: Option<u32>,
    /// Expected interval of the server's pings (see [`crate::exchange::ConnectionSpec`]).
    pub server_ping_interval: Duration,
    pub keep_alive: crate::exchange::KeepAlive,
    pub ping_interval: Duration,
    pub liveness_timeout: Duration,
    pub status: Arc<ConnStatus>,
}

/// What the connector tells a reader.
pub enum ToReader {
    /// Drive this new session.
    Open(Box<Established>),
    /// A planned rollover finished: close this session cleanly, without a gap (its replacement
    /// already delivers everything it did).
    Retire { conn: u32, session: u32 },
    /// Send these text messages on every open session of `conn`, paced like subscriptions (a
    /// book's re-subscription: OKX pushes a fresh snapshot of one instrument).
    Send { conn: u32, messages: Vec<String> },
}

/// What readers and parsers tell the connector.
#[derive(Debug)]
pub enum Report {
    /// A session ended (readers).
    Ended(Ended),
    /// The replacement session delivers everything the old one does: retire the old (parsers).
    RolloverDone { conn: u32, old_gen: u32 },
    /// The exchange announced it will close this session (`serverShutdown`): roll over now
    /// (parsers).
    RolloverWanted { conn: u32, session: u32 },
    /// Messages to send on a connection (parsers: a book asks its exchange for a new snapshot;
    /// the refresher: unsubscribe expired instruments).
    Send { conn: u32, messages: Vec<String> },
    /// A connection added while running (the refresher: newly listed instruments). Its parser
    /// was told first, so its frames are never unknown there.
    Add(Box<ConnTarget>),
    /// What a connection carries from its next session on (the refresher: expired instruments
    /// removed); the running session keeps going.
    Respec {
        conn: u32,
        spec: Box<crate::exchange::ConnectionSpec>,
    },
}

/// A reader's report that a session ended.
#[derive(Debug)]
pub struct Ended {
    pub conn: u32,
    pub session: u32,
    pub reason: String,
    /// How long the session lasted (long sessions reset the backoff).
    pub lived: Duration,
}

/// Reconnect backoff: exponential with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: u32,
    /// A session at least this long resets the attempt count.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before attempt number `attempt` (1-based), uniformly drawn from `[0, cap]`.
    pub fn delay(&self, attempt: u32, rng: &mut u64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(self.factor.saturating_pow(attempt.saturating_sub(1)));
        let cap = exp.min(self.max);
        // xorshift64*: jitter only, not security.
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        let r = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        cap.mul_f64(frac)
    }
}

/// New connections allowed per sliding window, for all exchange connections of the process
/// (Binance: 300 per 5 minutes per IP; exceeding it gets the IP banned).
#[derive(Debug)]
pub struct ConnRate {
    limit: usize,
    window: Duration,
    recent: std::collections::VecDeque<Instant>,
}

impl ConnRate {
    pub fn new(limit: usize, window: Duration) -> ConnRate {
        ConnRate {
            limit: limit.max(1),
            window,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Takes a slot now (`None`) or says how long to wait for one.
    pub fn acquire(&mut self, now: Instant) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limit {
            return self.recent.front().map(|t| *t + self.window - now);
        }
        self.recent.push_back(now);
        None
    }
}

/// Opens `url` (ws:// or wss://) with timeouts, then switches the socket to non-blocking mode for
/// the reader's poll loop.
pub fn connect(url: &str, max_message_bytes: usize, timeout: Duration) -> Result<WsStream, String> {
    let req = url
        .into_client_request()
        .map_err(|e| format!("bad url {}: {e}", url_shown(url)))?;
    let uri = req.uri().clone();
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {}", url_shown(url)))?;
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs: Vec<_> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .collect();
    let mut last_err = format!("{host} resolved to no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = format!("connect {addr}: {e}"),
        }
    }
    let tcp = tcp.ok_or(last_err)?;
    let _ = tcp.set_nodelay(true);
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    // Frames up to well above our own skip limit are read whole, then counted and skipped by the
    // reader, so one huge message never kills a connection (and the data behind it).
    let limit = (max_message_bytes * 2).max(64 << 20);
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let (ws, _resp) = tungstenite::client_tls_with_config(req, tcp, Some(cfg), None)
        .map_err(|e| format!("handshake with {}: {e}", url_shown(url)))?;
    let sock = tcp_of(&ws);
    sock.set_read_timeout(None).map_err(|e| e.to_string())?;
    sock.set_write_timeout(None).map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The TCP socket under a (possibly TLS) WebSocket.
pub fn tcp_of(ws: &WsStream) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::Rustls(s) => s.get_ref(),
        // tungstenite's enum is non-exhaustive; only the variants above are enabled.
        #[allow(unreachable_patterns)]
        _ => unreachable!("only plain and rustls streams are enabled"),
    }
}

/// The connector thread's state.
pub struct Connector {
    pub targets: Vec<ConnTarget>,
    pub to_readers: Vec<Sender<ToReader>>,
    pub reports: Receiver<Report>,
    pub backoff: Backoff,
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    /// Shared budget of new connections.
    pub rate: ConnRate,
    pub shutdown: Arc<AtomicBool>,
}

/// Life of one configured connection: its live session, the replacement being rolled in, and
/// when the next (re)connect or planned rollover is due.
#[derive(Debug, Default)]
struct Slot {
    active: Option<u32>,
    replacing: Option<u32>,
    next_session: u32,
    /// Reconnect due (no live session).
    reconnect_at: Option<Instant>,
    /// Planned rollover due (a live session that reaches its maximum age).
    roll_at: Option<Instant>,
    attempts: u32,
    roll_attempts: u32,
    /// When the running rollover began (a `rollover` span).
    roll_started_ns: i64,
}

impl Connector {
    /// Maximum age of connection `i`: staggered over the last 5 % below the configured age so
    /// that connections opened together do not all roll over at the same moment.
    fn age_of(&self, i: usize) -> Option<Duration> {
        let age = self.targets[i].spec.max_age?;
        let n = self.targets.len().max(1) as u32;
        Some(age - age / 20 * i as u32 / n)
    }

    /// Runs until shutdown: connect everything, reconnect whatever ends, roll over sessions that
    /// reach their maximum age or that the exchange announces it will close.
    pub fn run(mut self) {
        let mut slots: Vec<Slot> = (0..self.targets.len())
            .map(|_| Slot {
                reconnect_at: Some(Instant::now()),
                ..Slot::default()
            })
            .collect();
        let mut rng = (crate::clock::realtime_ns() as u64) | 1;
        // Per-host limits of new connections (OKX: 3 per second per IP).
        let mut host_rates: std::collections::HashMap<String, ConnRate> = self
            .targets
            .iter()
            .filter_map(|t| {
                let n = t.spec.connects_per_second?;
                let host = crate::exchange::url_host(&t.spec.url).to_string();
                Some((
                    host,
                    ConnRate::new(n.max(1) as usize, Duration::from_secs(1)),
                ))
            })
            .collect();
        while !self.shutdown.load(Ordering::Relaxed) {
            #[allow(clippy::needless_range_loop)] // `slots` and `targets` share the index
            for i in 0..self.targets.len() {
                if self.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                let reconnect = slots[i].reconnect_at.is_some_and(|d| d <= now);
                let roll = slots[i].roll_at.is_some_and(|d| d <= now)
                    && slots[i].active.is_some()
                    && slots[i].replacing.is_none();
                if !reconnect && !roll {
                    continue;
                }
                let host = crate::exchange::url_host(&self.targets[i].spec.url);
                let host_wait = host_rates.get_mut(host).and_then(|r| r.acquire(now));
                if let Some(wait) = host_wait.or_else(|| self.rate.acquire(now)) {
                    log::warn!(
                        "event=connection_rate_limited conn={} wait_ms={} note=\"new-connection budget per window spent\"",
                        self.targets[i].conn,
                        wait.as_millis()
                    );
                    let at = Some(now + wait);
                    if reconnect {
                        slots[i].reconnect_at = at;
                    } else {
                        slots[i].roll_at = at;
                    }
                    continue;
                }
                let session = slots[i].next_session;
                let t = &self.targets[i];
                let started_ns = crate::clock::realtime_ns();
                let result = connect(&t.spec.url, self.max_message_bytes, self.connect_timeout);
                if crate::trace::enabled() {
                    crate::trace::record(crate::trace::Span {
                        name: "connect",
                        start_ns: started_ns,
                        end_ns: crate::clock::realtime_ns(),
                        attrs: vec![
                            ("conn", t.conn.into()),
                            ("session", session.into()),
                            ("url", url_shown(&t.spec.url).into_owned().into()),
                            ("streams", t.spec.streams.len().into()),
                            (
                                "purpose",
                                if reconnect { "connect" } else { "rollover" }.into(),
                            ),
                        ],
                        error: result.as_ref().err().cloned(),
                    });
                }
                if !reconnect && result.is_ok() {
                    slots[i].roll_started_ns = started_ns;
                }
                match result {
                    Ok(ws) => {
                        slots[i].next_session += 1;
                        log::info!(
                            "event={} conn={} session={session} url={} streams={}",
                            if reconnect {
                                "connected"
                            } else {
                                "rollover_started"
                            },
                            t.conn,
                            url_shown(&t.spec.url),
                            t.spec.streams.len()
                        );
                        let est = Established {
                            conn: t.conn,
                            session,
                            source: t.source,
                            parser: t.parser,
                            ws,
                            subscribe: t.spec.subscribe.clone(),
                            max_messages_per_sec: t.spec.max_messages_per_sec,
                            max_requests_per_hour: t.spec.max_requests_per_hour,
                            server_ping_interval: t.spec.server_ping_interval,
                            keep_alive: t.spec.keep_alive,
                            ping_interval: t.spec.ping_interval,
                            liveness_timeout: t.spec.liveness_timeout,
                            status: t.status.clone(),
                        };
                        if reconnect {
                            t.status.set_state(ConnState::Open);
                            t.status.session.store(session, Ordering::Relaxed);
                            t.status
                                .opened_ns
                                .store(crate::clock::realtime_ns(), Ordering::Relaxed);
                        } else {
                            t.status.set_state(ConnState::RollingOver);
                        }
                        if self.to_readers[t.reader]
                            .send(ToReader::Open(Box::new(est)))
                            .is_err()
                        {
                            return; // reader gone: shutting down
                        }
                        let s = &mut slots[i];
                        if reconnect {
                            s.active = Some(session);
                            s.reconnect_at = None;
                            s.roll_at = self.age_of(i).map(|a| Instant::now() + a);
                        } else {
                            s.replacing = Some(session);
                            s.roll_at = None;
                        }
                    }
                    Err(e) => {
                        let s = &mut slots[i];
                        let attempt = if reconnect {
                            s.attempts += 1;
                            s.attempts
                        } else {
                            s.roll_attempts += 1;
                            s.roll_attempts
                        };
                        let d = self.backoff.delay(attempt, &mut rng);
                        log::warn!(
                            "event={} conn={} attempt={attempt} retry_in_ms={} error=\"{e}\"",
                            if reconnect {
                                "connect_failed"
                            } else {
                                "rollover_connect_failed"
                            },
                            t.conn,
                            d.as_millis(),
                        );
                        t.status.set_error(&e);
                        if reconnect {
                            t.status.set_state(ConnState::Down);
                            s.reconnect_at = Some(Instant::now() + d);
                        } else {
                            s.roll_at = Some(Instant::now() + d);
                        }
                    }
                }
            }
            let next = slots
                .iter()
                .flat_map(|s| [s.reconnect_at, s.roll_at])
                .flatten()
                .min();
            let wait = next
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            let report = match self.reports.recv_timeout(wait) {
                Ok(r) => r,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            let conn = match &report {
                Report::Add(t) => {
                    if let Some(n) = t.spec.connects_per_second {
                        let host = crate::exchange::url_host(&t.spec.url).to_string();
                        host_rates.entry(host).or_insert_with(|| {
                            ConnRate::new(n.max(1) as usize, Duration::from_secs(1))
                        });
                    }
                    log::info!(
                        "event=connection_added conn={} streams={}",
                        t.conn,
                        t.spec.streams.len()
                    );
                    slots.push(Slot {
                        reconnect_at: Some(Instant::now()),
                        ..Slot::default()
                    });
                    push_added(&mut self.targets, report);
                    continue;
                }
                Report::Ended(e) => e.conn,
                Report::RolloverDone { conn, .. }
                | Report::RolloverWanted { conn, .. }
                | Report::Send { conn, .. }
                | Report::Respec { conn, .. } => *conn,
            };
            let Some(i) = self.targets.iter().position(|t| t.conn == conn) else {
                continue;
            };
            let age = self.age_of(i);
            let status = self.targets[i].status.clone();
            let s = &mut slots[i];
            match report {
                Report::Ended(ended) if s.replacing == Some(ended.session) => {
                    // The replacement failed during the overlap; the old session carries on.
                    s.replacing = None;
                    s.roll_attempts += 1;
                    status.set_error(&ended.reason);
                    status.set_state(ConnState::Subscribed);
                    let d = self.backoff.delay(s.roll_attempts, &mut rng);
                    log::warn!(
                        "event=rollover_failed conn={conn} session={} reason=\"{}\" retry_in_ms={}",
                        ended.session,
                        ended.reason,
                        d.as_millis()
                    );
                    s.roll_at = Some(Instant::now() + d);
                }
                Report::Ended(ended) if s.active == Some(ended.session) => {
                    if let Some(r) = s.replacing.take() {
                        // The old session died during the overlap: the replacement takes over.
                        log::warn!(
                            "event=disconnected conn={conn} session={} reason=\"{}\" note=\"during rollover, replacement session={r} takes over\"",
                            ended.session,
                            ended.reason
                        );
                        s.active = Some(r);
                        s.roll_attempts = 0;
                        s.roll_at = age.map(|a| Instant::now() + a);
                        status.set_error(&ended.reason);
                        status.set_state(ConnState::Subscribed);
                        status.session.store(r, Ordering::Relaxed);
                        status
                            .opened_ns
                            .store(crate::clock::realtime_ns(), Ordering::Relaxed);
                        continue;
                    }
                    if ended.lived >= self.backoff.reset_after {
                        s.attempts = 0;
                    }
                    s.attempts += 1;
                    let d = self.backoff.delay(s.attempts, &mut rng);
                    log::warn!(
                        "event=disconnected conn={conn} session={} reason=\"{}\" lived_ms={} reconnect_in_ms={}",
                        ended.session,
                        ended.reason,
                        ended.lived.as_millis(),
                        d.as_millis()
                    );
                    s.active = None;
                    s.roll_at = None;
                    s.reconnect_at = Some(Instant::now() + d);
                    status.set_error(&ended.reason);
                    status.set_state(ConnState::Down);
                    status.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                Report::Ended(_) => {} // a session already retired
                Report::RolloverDone { old_gen, .. } => {
                    let (Some(old), Some(new)) = (s.active, s.replacing) else {
                        continue;
                    };
                    if old != old_gen {
                        continue;
                    }
                    log::info!("event=rollover_done conn={conn} old_gen={old} new_gen={new}");
                    if crate::trace::enabled() {
                        crate::trace::record(crate::trace::Span {
                            name: "rollover",
                            start_ns: s.roll_started_ns,
                            end_ns: crate::clock::realtime_ns(),
                            attrs: vec![
                                ("conn", conn.into()),
                                ("old_session", old.into()),
                                ("new_session", new.into()),
                            ],
                            error: None,
                        });
                    }
                    s.active = Some(new);
                    s.replacing = None;
                    s.roll_attempts = 0;
                    status.set_state(ConnState::Subscribed);
                    status.session.store(new, Ordering::Relaxed);
                    status
                        .opened_ns
                        .store(crate::clock::realtime_ns(), Ordering::Relaxed);
                    status.rollovers.fetch_add(1, Ordering::Relaxed);
                    s.roll_at = age.map(|a| Instant::now() + a);
                    let reader = self.targets[i].reader;
                    if self.to_readers[reader]
                        .send(ToReader::Retire { conn, session: old })
                        .is_err()
                    {
                        return;
                    }
                }
                Report::Send { conn, messages } => {
                    // Only a live connection carries the book; a reconnect subscribes afresh
                    // (and so pushes a snapshot) anyway.
                    if s.active.is_some() {
                        let reader = self.targets[i].reader;
                        if self.to_readers[reader]
                            .send(ToReader::Send { conn, messages })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Report::Respec { spec, .. } => {
                    log::info!(
                        "event=connection_respec conn={conn} streams={}",
                        spec.streams.len()
                    );
                    self.targets[i].spec = *spec;
                }
                Report::Add(_) => {}
                Report::RolloverWanted { session, .. } => {
                    if s.active == Some(session) && s.replacing.is_none() {
                        log::warn!(
                            "event=server_shutdown conn={conn} session={session} action=rollover"
                        );
                        s.roll_at = Some(Instant::now());
                    }
                }
            }
        }
    }
}

/// Appends the target of a [`Report::Add`].
fn push_added(targets: &mut Vec<ConnTarget>, report: Report) {
    if let Report::Add(t) = report {
        targets.push(*t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_budget_is_a_sliding_window() {
        let t0 = Instant::now();
        let mut r = ConnRate::new(3, Duration::from_secs(300));
        for i in 0..3 {
            assert_eq!(r.acquire(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(
            r.acquire(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(290))
        );
        assert_eq!(
            r.acquire(t0 + Duration::from_secs(300)),
            None,
            "the first slot came free"
        );
        assert!(r.acquire(t0 + Duration::from_secs(300)).is_some());
    }

    #[test]
    fn backoff_is_capped_with_full_jitter() {
        let b = Backoff::default();
        let mut rng = 7u64;
        for attempt in 1..40 {
            let d = b.delay(attempt, &mut rng);
            assert!(d <= b.max);
            assert!(d <= b.initial * 2u32.saturating_pow(attempt - 1));
        }
    }
}
