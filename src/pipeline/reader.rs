//! Stage 1: a pinned reader thread drives its non-blocking WebSockets with one `mio::Poll`.
//!
//! For every text message it takes the receive timestamp right after the read returns it, copies
//! the bytes into the next recycled [`Frame`] of the ring to the connection's parser, and moves on.
//! Control frames stay here: server pings are answered with the same payload (tungstenite queues the
//! pong; we flush it and count it against the outgoing message budget), binary and oversize messages
//! are counted and skipped. When a ring is full the reader waits for the parser instead of dropping
//! (the socket then stops being read and TCP pushes back on the exchange).

use super::connector::{Ended, Report, ToReader, WsStream, tcp_of};
use super::frame::{Frame, FrameKind};
use super::ring::Producer;
use crate::clock::realtime_ns;
use crate::exchange::KeepAlive;
use crate::metrics::{Counters, LogThrottle, Metrics, disconnect, frame, skip};
use crate::pipeline::idle::Idle;
use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tungstenite::{Error as WsError, Message};

/// Messages read from one connection before the reader looks at the others and its timers.
const READ_BUDGET: usize = 256;

/// Window of the exchange's per-connection message limit, with a margin: messages sent `1 s` apart
/// may arrive closer together.
const SEND_WINDOW: Duration = Duration::from_millis(1150);

/// The exchange's limit on messages we send per connection per second (Binance spot: 5, pongs
/// included). Pongs go out as soon as a ping is read (tungstenite), so they cannot be spaced; our
/// own messages (subscriptions, pings) are, leaving room in every window for the most pongs the
/// server's ping rate can put into one window.
struct Budget {
    limit: usize,
    /// Our own messages within the last [`SEND_WINDOW`].
    own: VecDeque<Instant>,
    /// Pongs within the last [`SEND_WINDOW`] (catches bursts the ping gap would not predict).
    pongs: VecDeque<Instant>,
    last_ping: Option<Instant>,
    /// Shortest of the configured server ping interval and the last observed gap.
    ping_gap: Duration,
    expected_gap: Duration,
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= SEND_WINDOW)
    {
        q.pop_front();
    }
}

impl Budget {
    /// `limit` messages per window; the server is expected to ping every `expected_gap`.
    fn new(limit: usize, expected_gap: Duration) -> Budget {
        let limit = limit.max(1);
        Budget {
            limit,
            own: VecDeque::with_capacity(limit + 1),
            pongs: VecDeque::with_capacity(limit + 1),
            last_ping: None,
            ping_gap: expected_gap,
            expected_gap,
        }
    }

    /// May we send one of our own messages now? Any window holds at most our messages of the
    /// last window, this one, and the pongs one window can bring (at least one, for a first ping).
    fn allows(&mut self, now: Instant) -> bool {
        prune(&mut self.own, now);
        prune(&mut self.pongs, now);
        let by_rate = SEND_WINDOW
            .as_nanos()
            .div_ceil(self.ping_gap.as_nanos().max(1)) as usize;
        let pongs = by_rate.max(self.pongs.len()).max(1);
        self.own.len() + 1 + pongs <= self.limit || (self.own.is_empty() && self.pongs.is_empty())
    }

    fn record(&mut self, now: Instant) {
        self.own.push_back(now);
    }

    /// A ping arrived (its pong leaves at once).
    fn pong(&mut self, now: Instant) {
        if let Some(last) = self.last_ping {
            self.ping_gap = now.duration_since(last).min(self.expected_gap);
        }
        self.last_ping = Some(now);
        prune(&mut self.pongs, now);
        self.pongs.push_back(now);
    }
}

/// Subscription messages sent within the last hour, against the exchange's hourly limit (OKX:
/// 480 per connection); a message that does not fit waits, logged once per minute at most.
struct Hourly {
    limit: u32,
    sent: VecDeque<Instant>,
    logged: Option<Instant>,
}

impl Hourly {
    fn allows(&mut self, now: Instant, conn: u32) -> bool {
        const HOUR: Duration = Duration::from_secs(3600);
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit as usize {
            return true;
        }
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.logged = Some(now);
            log::warn!(
                "event=request_budget_spent conn={conn} limit_per_hour={} note=\"subscription messages wait for the exchange's hourly limit\"",
                self.limit
            );
        }
        false
    }
}

/// One open connection owned by this reader.
struct Conn {
    /// Configured connection and session (see [`Frame::session`]).
    conn: u32,
    session: u32,
    source: u16,
    parser: usize,
    ws: WsStream,
    pending: VecDeque<String>,
    /// Everything we sent in the last [`SEND_WINDOW`] (our messages and the pongs), for the
    /// exchange's per-connection message limit.
    sends: Budget,
    subscribed: bool,
    /// The exchange's hourly limit of subscription messages, if it has one.
    hourly: Option<Hourly>,
    /// SUBSCRIBE messages this session needed (for the `subscribe` span).
    subscribe_messages: usize,
    opened: Instant,
    status: Arc<crate::metrics::health::ConnStatus>,
    /// Text messages not yet added to `status.messages`.
    unpublished: u64,
    /// Receive time (CLOCK_REALTIME ns) of the last message of any kind.
    last_rx_ns: i64,
    last_ping: Instant,
    keep_alive: KeepAlive,
    ping_interval: Duration,
    liveness_ns: i64,
    pings_sent: u64,
    /// Set when a ping of ours is out, cleared by any pong.
    awaiting_pong_since: Option<Instant>,
}

/// A reader thread's state.
pub struct Reader {
    pub name: String,
    /// One ring per parser thread.
    pub outputs: Vec<Producer<Frame>>,
    pub incoming: Receiver<ToReader>,
    pub ended: Sender<Report>,
    pub metrics: Arc<Metrics>,
    pub max_message_bytes: usize,
    pub spin: bool,
    pub idle: Idle,
    pub shutdown: Arc<AtomicBool>,
    /// Times a ring to a parser was full (the reader waited: backpressure, nothing dropped).
    pub ring_full_waits: Arc<std::sync::atomic::AtomicU64>,
    /// `thread_allocations_total` of this thread (when the binary counts allocations).
    pub allocations: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// `runtime.pipeline: inline`: this thread also parses and publishes (no rings to parsers).
    pub inline: Option<super::inline::Inline>,
}

struct Stats {
    frames: Counters,
    bytes: Counters,
    skipped: Counters,
    disconnects: Counters,
    oversize_log: LogThrottle,
    binary_log: LogThrottle,
}

impl Reader {
    /// Runs until shutdown; returns after closing its connections and dropping its rings.
    pub fn run(mut self) {
        let mut poll = match Poll::new() {
            Ok(p) => p,
            Err(e) => {
                log::error!("event=reader_failed thread={} error=\"{e}\"", self.name);
                return;
            }
        };
        let mut events = Events::with_capacity(256);
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut stats = Stats {
            frames: self.metrics.frames.handle(),
            bytes: self.metrics.bytes.handle(),
            skipped: self.metrics.frames_skipped.handle(),
            disconnects: self.metrics.disconnects.handle(),
            oversize_log: LogThrottle::default(),
            binary_log: LogThrottle::default(),
        };
        let mut last_publish = Instant::now();
        let mut ready: Vec<usize> = Vec::new();
        let mut carry: Vec<usize> = Vec::new();

        while !self.shutdown.load(Ordering::Relaxed) {
            while let Ok(cmd) = self.incoming.try_recv() {
                let est = match cmd {
                    ToReader::Open(est) => *est,
                    ToReader::Retire { conn, session } => {
                        let slot = conns.iter_mut().find(|c| {
                            c.as_ref()
                                .is_some_and(|c| c.conn == conn && c.session == session)
                        });
                        if let Some(c) = slot.and_then(Option::take) {
                            self.retire(&poll, c);
                        }
                        continue;
                    }
                    ToReader::Send { conn, messages } => {
                        for c in conns.iter_mut().flatten().filter(|c| c.conn == conn) {
                            c.pending.extend(messages.iter().cloned());
                        }
                        continue;
                    }
                };
                // Sessions live in the first free slot; the slot index is the poll token.
                let id = conns
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or(conns.len());
                let fd = tcp_of(&est.ws).as_raw_fd();
                if let Err(e) = poll.registry().register(
                    &mut SourceFd(&fd),
                    Token(id),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    log::error!("event=register_failed conn={id} error=\"{e}\"");
                    let _ = self.ended.send(Report::Ended(Ended {
                        conn: est.conn,
                        session: est.session,
                        reason: format!("poll register: {e}"),
                        lived: Duration::ZERO,
                    }));
                    continue;
                }
                if conns.len() <= id {
                    conns.resize_with(id + 1, || None);
                }
                let rate = est.max_messages_per_sec.max(1);
                let conn = Conn {
                    conn: est.conn,
                    session: est.session,
                    source: est.source,
                    parser: est.parser,
                    ws: est.ws,
                    subscribe_messages: est.subscribe.len(),
                    pending: est.subscribe.into(),
                    sends: Budget::new(rate as usize, est.server_ping_interval),
                    subscribed: false,
                    hourly: est.max_requests_per_hour.map(|n| Hourly {
                        limit: n.max(1),
                        sent: VecDeque::new(),
                        logged: None,
                    }),
                    opened: Instant::now(),
                    status: est.status,
                    unpublished: 0,
                    last_rx_ns: realtime_ns(),
                    // The first ping goes out at once: it proves the connection both ways, and
                    // the first masked frame of this thread (tungstenite seeds its masking RNG
                    // and grows its write buffer then) happens at connect, not in steady state.
                    last_ping: Instant::now()
                        .checked_sub(est.ping_interval)
                        .unwrap_or_else(Instant::now),
                    keep_alive: est.keep_alive,
                    ping_interval: est.ping_interval,
                    liveness_ns: est.liveness_timeout.as_nanos().min(i64::MAX as u128) as i64,
                    pings_sent: 0,
                    awaiting_pong_since: None,
                };
                self.marker(&conn, FrameKind::Connected);
                self.metrics.connections.fetch_add(1, Ordering::Relaxed);
                conns[id] = Some(conn);
                // Data may already sit in the handshake buffers: read before waiting on the poll.
                ready.push(id);
            }

            let pacing = conns.iter().flatten().any(|c| !c.pending.is_empty());
            let timeout = if self.spin || !ready.is_empty() {
                Duration::ZERO
            } else if pacing || self.inline.is_some() {
                Duration::from_millis(5)
            } else {
                Duration::from_millis(50)
            };
            if let Err(e) = poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                log::error!("event=poll_failed thread={} error=\"{e}\"", self.name);
            }
            for ev in events.iter() {
                ready.push(ev.token().0);
            }
            let did = !ready.is_empty();
            for id in ready.drain(..) {
                let Some(conn) = conns.get_mut(id).and_then(Option::as_mut) else {
                    continue;
                };
                match self.read_conn(conn, &mut stats) {
                    // Budget spent with data left: read it next round, after the others.
                    Ok(true) => carry.push(id),
                    Ok(false) => {}
                    Err(reason) => {
                        if let Some(conn) = conns[id].take() {
                            self.end(&poll, conn, reason);
                        }
                    }
                }
            }
            ready.append(&mut carry);
            ready.sort_unstable();
            ready.dedup();
            let now = Instant::now();
            for slot in conns.iter_mut() {
                let Some(conn) = slot else { continue };
                if let Err(reason) = self.pace(conn, now)
                    && let Some(conn) = slot.take()
                {
                    stats.disconnects.add(reason.0, 1);
                    self.end(&poll, conn, reason);
                }
            }
            if now.duration_since(last_publish) >= Duration::from_millis(10) {
                last_publish = now;
                stats.frames.publish();
                stats.bytes.publish();
                stats.skipped.publish();
                stats.disconnects.publish();
                if let Some(a) = &self.allocations {
                    a.store(
                        crate::metrics::alloc::thread_allocations(),
                        Ordering::Relaxed,
                    );
                }
                for c in conns.iter_mut().flatten() {
                    if c.unpublished > 0 {
                        c.status
                            .messages
                            .fetch_add(c.unpublished, Ordering::Relaxed);
                        c.unpublished = 0;
                    }
                }
            }
            if let Some(inline) = self.inline.as_mut() {
                inline.tick();
            }
            if did {
                self.idle.reset();
            }
        }
        for slot in conns.iter_mut() {
            if let Some(mut conn) = slot.take() {
                let _ = conn.ws.close(None);
                let _ = conn.ws.flush();
                // No Disconnected marker: the pipeline is draining, books need no re-sync.
                self.release(&poll, &conn);
            }
        }
        if let Some(inline) = self.inline.take() {
            inline.finish();
        }
        log::info!(
            "event=thread_stopped thread={} text_frames={}",
            self.name,
            stats.frames.get(frame::TEXT)
        );
    }

    /// Reads until the socket would block. `Err(reason)` when the connection is finished.
    /// Reads until the socket would block or [`READ_BUDGET`] messages were read (`Ok(true)`: more
    /// may be waiting), so one busy connection never starves the others, the pacing of
    /// subscriptions, pings and liveness, or the counters.
    fn read_conn(&mut self, conn: &mut Conn, stats: &mut Stats) -> Result<bool, (usize, String)> {
        let id = conn.conn;
        let mut budget = READ_BUDGET;
        let mut more = false;
        loop {
            if budget == 0 {
                more = true;
                break;
            }
            budget -= 1;
            let msg = conn.ws.read();
            if msg.is_ok() {
                conn.last_rx_ns = realtime_ns();
            }
            match msg {
                Ok(Message::Text(text)) => {
                    let ts = conn.last_rx_ns;
                    let bytes = text.as_bytes();
                    if let Some(answer) = conn.keep_alive.answer(bytes) {
                        // Answered before anything else: the server closes a connection whose
                        // heartbeat request stays unanswered.
                        stats.frames.add(frame::PING, 1);
                        conn.sends.pong(Instant::now());
                        match conn
                            .ws
                            .send(Message::Text(tungstenite::Utf8Bytes::from_static(answer)))
                        {
                            Ok(()) => {}
                            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(e) => {
                                stats.disconnects.add(disconnect::ERROR, 1);
                                return Err((disconnect::ERROR, format!("heartbeat answer: {e}")));
                            }
                        }
                        continue;
                    }
                    if conn.keep_alive.is_pong(bytes) {
                        conn.awaiting_pong_since = None;
                        stats.frames.add(frame::PONG, 1);
                        continue;
                    }
                    stats.frames.add(frame::TEXT, 1);
                    stats.bytes.add(frame::TEXT, bytes.len() as u64);
                    conn.unpublished += 1;
                    if bytes.len() > self.max_message_bytes {
                        stats.skipped.add(skip::OVERSIZE, 1);
                        self.marker(conn, FrameKind::Dropped);
                        if stats.oversize_log.hit() {
                            log::warn!(
                                "event=frame_skipped reason=oversize conn={id} bytes={} limit={} count={}",
                                bytes.len(),
                                self.max_message_bytes,
                                stats.oversize_log.count()
                            );
                        }
                        continue;
                    }
                    let session = conn.session;
                    self.push(conn.parser, |f| {
                        f.fill(bytes);
                        f.conn = id;
                        f.session = session;
                        f.source = conn.source;
                        f.recv_ts_ns = ts;
                    });
                }
                Ok(Message::Binary(b)) => {
                    stats.frames.add(frame::BINARY, 1);
                    stats.bytes.add(frame::BINARY, b.len() as u64);
                    stats.skipped.add(skip::BINARY, 1);
                    if stats.binary_log.hit() {
                        log::warn!(
                            "event=frame_skipped reason=binary conn={id} bytes={} count={}",
                            b.len(),
                            stats.binary_log.count()
                        );
                    }
                }
                Ok(Message::Ping(_)) => {
                    // tungstenite answers with a pong at once (on the next read); it counts
                    // against the exchange's outgoing message limit like our own messages.
                    stats.frames.add(frame::PING, 1);
                    conn.sends.pong(Instant::now());
                }
                Ok(Message::Pong(_)) => {
                    conn.awaiting_pong_since = None;
                    stats.frames.add(frame::PONG, 1);
                }
                Ok(Message::Frame(_)) => {}
                Ok(Message::Close(cf)) => {
                    stats.frames.add(frame::CLOSE, 1);
                    let _ = conn.ws.flush();
                    stats.disconnects.add(disconnect::SERVER_CLOSE, 1);
                    let why = cf.map(|c| format!("server closed: {} {}", c.code, c.reason));
                    return Err((
                        disconnect::SERVER_CLOSE,
                        why.unwrap_or_else(|| "server closed".into()),
                    ));
                }
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(WsError::Io(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    stats.disconnects.add(disconnect::EOF, 1);
                    return Err((disconnect::EOF, "connection closed".into()));
                }
                Err(WsError::Io(e)) => {
                    stats.disconnects.add(disconnect::ERROR, 1);
                    return Err((disconnect::ERROR, format!("io: {e}")));
                }
                Err(e) => {
                    stats.disconnects.add(disconnect::PROTOCOL, 1);
                    return Err((disconnect::PROTOCOL, e.to_string()));
                }
            }
        }
        match conn.ws.flush() {
            Ok(()) => Ok(more),
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(more),
            Err(e) => {
                stats.disconnects.add(disconnect::ERROR, 1);
                Err((disconnect::ERROR, format!("write: {e}")))
            }
        }
    }

    /// Sends the next pending subscription when the outgoing budget allows; marks the connection
    /// subscribed once nothing is pending (streams carried in the URL need no message).
    fn pace(&mut self, conn: &mut Conn, now: Instant) -> Result<(), (usize, String)> {
        let silent_ns = realtime_ns() - conn.last_rx_ns;
        if silent_ns > conn.liveness_ns {
            return Err((
                disconnect::LIVENESS,
                format!(
                    "liveness: nothing received for {} ms (pings unanswered)",
                    silent_ns / 1_000_000
                ),
            ));
        }
        if let Some(since) = conn.awaiting_pong_since
            && now.duration_since(since).as_nanos() as i64 > conn.liveness_ns
        {
            return Err((
                disconnect::LIVENESS,
                format!(
                    "liveness: no pong for {} ms",
                    now.duration_since(since).as_millis()
                ),
            ));
        }
        let since_rx = Duration::from_nanos(silent_ns.max(0) as u64);
        if conn.keep_alive.due(
            conn.ping_interval,
            now.duration_since(conn.last_ping),
            since_rx,
        ) && conn.sends.allows(now)
        {
            conn.last_ping = now;
            conn.awaiting_pong_since.get_or_insert(now);
            conn.pings_sent += 1;
            conn.sends.record(now);
            // Static payloads: a ping allocates nothing (any pong answers it).
            let ping = match conn.keep_alive {
                KeepAlive::WsPing | KeepAlive::WsPingAnswering { .. } => {
                    Message::Ping(tungstenite::Bytes::from_static(b"mdc"))
                }
                KeepAlive::Text { ping, .. } => {
                    Message::Text(tungstenite::Utf8Bytes::from_static(ping))
                }
            };
            match conn.ws.send(ping) {
                Ok(()) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err((disconnect::ERROR, format!("ping: {e}"))),
            }
        }
        if !conn.pending.is_empty()
            && conn.sends.allows(now)
            && conn
                .hourly
                .as_mut()
                .is_none_or(|h| h.allows(now, conn.conn))
            && let Some(msg) = conn.pending.pop_front()
        {
            conn.sends.record(now);
            if let Some(h) = conn.hourly.as_mut() {
                h.sent.push_back(now);
            }
            match conn.ws.send(Message::text(msg)) {
                Ok(()) => {}
                // Queued by tungstenite; written out on the next flush.
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err((disconnect::ERROR, format!("subscribe: {e}"))),
            }
        }
        if conn.pending.is_empty() && !conn.subscribed {
            conn.subscribed = true;
            self.metrics
                .connections_subscribed
                .fetch_add(1, Ordering::Relaxed);
            self.marker(conn, FrameKind::Subscribed);
            if crate::trace::enabled() {
                let end = realtime_ns();
                crate::trace::record(crate::trace::Span {
                    name: "subscribe",
                    start_ns: end - conn.opened.elapsed().as_nanos() as i64,
                    end_ns: end,
                    attrs: vec![
                        ("conn", conn.conn.into()),
                        ("session", conn.session.into()),
                        ("messages", conn.subscribe_messages.into()),
                    ],
                    error: None,
                });
            }
            if conn.status.state() == crate::metrics::health::ConnState::Open {
                conn.status
                    .set_state(crate::metrics::health::ConnState::Subscribed);
            }
        }
        Ok(())
    }

    /// Stops polling a session's socket and takes it out of the connection gauges.
    fn release(&self, poll: &Poll, conn: &Conn) {
        let _ = poll
            .registry()
            .deregister(&mut SourceFd(&tcp_of(&conn.ws).as_raw_fd()));
        self.metrics.connections.fetch_sub(1, Ordering::Relaxed);
        if conn.subscribed {
            self.metrics
                .connections_subscribed
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn end(&mut self, poll: &Poll, conn: Conn, (_, reason): (usize, String)) {
        self.release(poll, &conn);
        self.marker(&conn, FrameKind::Disconnected);
        let _ = self.ended.send(Report::Ended(Ended {
            conn: conn.conn,
            session: conn.session,
            reason,
            lived: conn.opened.elapsed(),
        }));
    }

    /// Closes a session a rollover replaced: a clean WebSocket close, no marker (the parser has
    /// already switched to the replacement), no report.
    fn retire(&mut self, poll: &Poll, mut conn: Conn) {
        let _ = conn.ws.close(None);
        let _ = conn.ws.flush();
        self.release(poll, &conn);
        log::info!(
            "event=session_retired conn={} session={} lived_s={}",
            conn.conn,
            conn.session,
            conn.opened.elapsed().as_secs()
        );
    }

    /// Queues a connection-level marker so the parser sees it in order with the data.
    fn marker(&mut self, conn: &Conn, kind: FrameKind) {
        let ts = realtime_ns();
        let (id, session) = (conn.conn, conn.session);
        self.push(conn.parser, |f| {
            f.len = 0;
            f.kind = kind;
            f.conn = id;
            f.session = session;
            f.source = conn.source;
            f.recv_ts_ns = ts;
        });
    }

    /// Writes into the parser's ring, waiting while it is full (backpressure, nothing dropped).
    #[inline]
    fn push(&mut self, parser: usize, mut fill: impl FnMut(&mut Frame)) {
        if let Some(inline) = self.inline.as_mut() {
            inline.process(&mut fill);
            return;
        }
        let Some(out) = self.outputs.get_mut(parser) else {
            return;
        };
        if out.write_with(&mut fill).is_some() {
            return;
        }
        // Full: only now (never per message) touch the shared counter.
        self.ring_full_waits.fetch_add(1, Ordering::Relaxed);
        let mut idle = Idle::new(crate::pipeline::idle::IdlePolicy::Yield, 0);
        while out.write_with(&mut fill).is_none() {
            idle.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OKX allows 480 subscription requests per connection per hour: one more waits until the
    /// oldest is an hour old.
    #[test]
    fn hourly_request_budget_is_a_sliding_hour() {
        let t0 = Instant::now();
        let mut h = Hourly {
            limit: 2,
            sent: VecDeque::new(),
            logged: None,
        };
        assert!(h.allows(t0, 0));
        h.sent.push_back(t0);
        assert!(h.allows(t0 + Duration::from_secs(10), 0));
        h.sent.push_back(t0 + Duration::from_secs(10));
        assert!(!h.allows(t0 + Duration::from_secs(3599), 0));
        assert!(h.logged.is_some(), "the wait is logged");
        assert!(h.allows(t0 + Duration::from_secs(3600), 0));
        assert_eq!(h.sent.len(), 1);
    }
}
