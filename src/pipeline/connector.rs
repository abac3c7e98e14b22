//! Stage 0 (off the hot path): opens exchange connections and hands them to reader threads.
//!
//! TCP connect, TLS and the WebSocket handshake are blocking and can take a while, so they run on
//! this dedicated thread, never on a reader. A reader reports a connection that ended; the connector
//! reconnects it after an exponential backoff with full jitter (100 ms doubling to 30 s; a session
//! that lived longer than a minute starts again from the bottom).

use crate::exchange::ConnectionSpec;
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
}

/// A freshly opened connection for a reader.
pub struct Established {
    pub conn: u32,
    pub source: u16,
    pub parser: usize,
    pub ws: WsStream,
    /// Subscription messages still to send, paced by `max_messages_per_sec`.
    pub subscribe: Vec<String>,
    pub max_messages_per_sec: u32,
    pub ping_interval: Duration,
    pub liveness_timeout: Duration,
}

/// A reader's report that a connection ended.
#[derive(Debug)]
pub struct Ended {
    pub conn: u32,
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
        .map_err(|e| format!("bad url {url}: {e}"))?;
    let uri = req.uri().clone();
    let host = uri.host().ok_or_else(|| format!("no host in {url}"))?;
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
        .map_err(|e| format!("handshake with {url}: {e}"))?;
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
    pub to_readers: Vec<Sender<Established>>,
    pub ended: Receiver<Ended>,
    pub backoff: Backoff,
    pub max_message_bytes: usize,
    pub connect_timeout: Duration,
    /// Shared budget of new connections.
    pub rate: ConnRate,
    pub shutdown: Arc<AtomicBool>,
}

impl Connector {
    /// Runs until shutdown: connect everything, then reconnect whatever ends.
    pub fn run(mut self) {
        let n = self.targets.len();
        let mut due: Vec<Option<Instant>> = vec![Some(Instant::now()); n];
        let mut attempts = vec![0u32; n];
        let mut rng = (crate::clock::realtime_ns() as u64) | 1;
        while !self.shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            for (i, t) in self.targets.iter().enumerate() {
                if self.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                if due[i].is_none_or(|d| d > now) {
                    continue;
                }
                if let Some(wait) = self.rate.acquire(Instant::now()) {
                    log::warn!(
                        "event=connection_rate_limited conn={} wait_ms={} note=\"new-connection budget per window spent\"",
                        t.conn,
                        wait.as_millis()
                    );
                    due[i] = Some(Instant::now() + wait);
                    continue;
                }
                match connect(&t.spec.url, self.max_message_bytes, self.connect_timeout) {
                    Ok(ws) => {
                        log::info!(
                            "event=connected conn={} url={} streams={}",
                            t.conn,
                            t.spec.url,
                            t.spec.streams.len()
                        );
                        due[i] = None;
                        let est = Established {
                            conn: t.conn,
                            source: t.source,
                            parser: t.parser,
                            ws,
                            subscribe: t.spec.subscribe.clone(),
                            max_messages_per_sec: t.spec.max_messages_per_sec,
                            ping_interval: t.spec.ping_interval,
                            liveness_timeout: t.spec.liveness_timeout,
                        };
                        if self.to_readers[t.reader].send(est).is_err() {
                            return; // reader gone: shutting down
                        }
                    }
                    Err(e) => {
                        attempts[i] += 1;
                        let d = self.backoff.delay(attempts[i], &mut rng);
                        log::warn!(
                            "event=connect_failed conn={} attempt={} retry_in_ms={} error=\"{}\"",
                            t.conn,
                            attempts[i],
                            d.as_millis(),
                            e
                        );
                        due[i] = Some(Instant::now() + d);
                    }
                }
            }
            let next = due.iter().flatten().min().copied();
            let wait = next
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match self.ended.recv_timeout(wait) {
                Ok(ended) => {
                    let Some(i) = self.targets.iter().position(|t| t.conn == ended.conn) else {
                        continue;
                    };
                    if ended.lived >= self.backoff.reset_after {
                        attempts[i] = 0;
                    }
                    attempts[i] += 1;
                    let d = self.backoff.delay(attempts[i], &mut rng);
                    log::warn!(
                        "event=disconnected conn={} reason=\"{}\" lived_ms={} reconnect_in_ms={}",
                        ended.conn,
                        ended.reason,
                        ended.lived.as_millis(),
                        d.as_millis()
                    );
                    due[i] = Some(Instant::now() + d);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
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
