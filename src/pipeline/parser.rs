//! Stage 3: a pinned parser thread decodes frames in place and encodes each event into the next
//! recycled [`Record`] of its ring to the publisher.
//!
//! A parser owns one decoder per exchange plan and reads the rings of every reader; a connection is
//! always decoded by the same parser, so events of a symbol keep their order. Undecodable frames are
//! counted by reason and logged with a throttle; they never stop the thread.

use super::frame::{Frame, FrameKind};
use super::gaps::Gaps;
use super::ring::{Consumer, Producer};
use super::sessions::{Marker, Sessions};
use super::watch::StreamWatch;
use crate::book::Books;
use crate::clock::realtime_ns;
use crate::encode::record::Record;
use crate::encode::{Formats, json, protobuf};
use crate::event::{Event, EventKind, set};
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::metrics::latency::Recorder;
use crate::metrics::{Counters, LogThrottle, Metrics};
use crate::pipeline::idle::{FullWait, Idle};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Frames taken from one ring before looking at the next (fairness between readers).
const BATCH: usize = 256;

/// Default size above which a ring slot's buffer is given back after use (256 KiB): bounds the
/// memory a burst of large messages can leave pinned in the rings.
pub const SHRINK_ABOVE: usize = 256 << 10;

/// Decode + encode, independent of threads and rings (also used by tests and benchmarks).
pub struct Stage {
    /// One decoder per exchange plan, indexed by `Frame::source`.
    pub decoders: Vec<Box<dyn Decoder>>,
    pub formats: Formats,
    events: Tally,
    errors: Counters,
    /// `frames_skipped_total{reason}`: records skipped on purpose by a decoder.
    skipped: Counters,
    skip_log: LogThrottle,
    error_logs: HashMap<&'static str, LogThrottle>,
    /// Slot buffers grown beyond this are shrunk back to `frame_bytes` once processed.
    pub shrink_above: usize,
    pub frame_bytes: usize,
    /// Local order books of the symbols this parser decodes (when `book.enabled`).
    pub books: Option<Books>,
    /// Silent-stream detection of this parser's connections.
    pub watch: Option<StreamWatch>,
    /// Gap markers of this parser's connections.
    pub gaps: Gaps,
    /// Live session per connection, and rollovers in progress.
    pub sessions: Sessions,
    last_watch_check_ns: i64,
    last_rollover_check_ns: i64,
    last_merge_ns: i64,
    /// The current frame as received, when a sink keeps the exchange's message.
    raw: Vec<u8>,
    /// Benchmarks only (`mdc bench`): trade ids carry the simulator's send time; records
    /// `sim_send_to_receive`. `None` in production.
    pub probe: Option<Recorder>,
    /// Connections and books added or changed while running (the refresher).
    pub control: Option<crossbeam_channel::Receiver<ToParser>>,
    /// Raw capture (`capture.enabled`): every data frame, as received, before any decoding.
    pub capture: Option<crate::capture::Tap>,
}

/// What the refresher tells a parser when an exchange's instruments change while running.
pub enum ToParser {
    /// A new connection of this parser: track its sessions, gaps and stream silence. Sent
    /// before the connector opens it.
    AddConn {
        conn: u32,
        label: String,
        exchange: &'static str,
        market: &'static str,
        streams: Vec<crate::exchange::StreamSpec>,
        silence_timeout: Duration,
        rollover_timeout: Duration,
        freshness: Option<std::sync::Arc<[std::sync::atomic::AtomicI64]>>,
    },
    /// Streams a connection stopped carrying (expired instruments).
    RemoveStreams { conn: u32, names: Vec<String> },
    /// Books for instruments listed while running (every parser keeps every book).
    AddBooks {
        source: usize,
        spec: crate::book::BookSpec,
        counters: HashMap<String, crate::book::BookCounters>,
    },
    /// Books of expired instruments.
    RemoveBooks { source: usize, symbols: Vec<String> },
}

impl Stage {
    pub fn new(decoders: Vec<Box<dyn Decoder>>, formats: Formats, metrics: &Metrics) -> Self {
        let mut error_logs = HashMap::new();
        for r in crate::metrics::PARSE_ERROR_REASONS {
            error_logs.insert(*r, LogThrottle::default());
        }
        Stage {
            decoders,
            formats,
            events: Tally {
                events: metrics.events.handle(),
                latency: metrics.latency.recorder(&[("stage", "receive_to_parsed")]),
            },
            errors: metrics.parse_errors.handle(),
            skipped: metrics.frames_skipped.handle(),
            skip_log: LogThrottle::default(),
            error_logs,
            shrink_above: SHRINK_ABOVE,
            frame_bytes: 4096,
            books: None,
            watch: None,
            gaps: Gaps::default(),
            sessions: Sessions::default(),
            last_watch_check_ns: 0,
            last_rollover_check_ns: 0,
            last_merge_ns: 0,
            raw: if formats.raw {
                Vec::with_capacity(4096)
            } else {
                Vec::new()
            },
            probe: None,
            control: None,
            capture: None,
        }
    }

    /// The frame size the slots are made for (`runtime.frame_bytes`): buffers shrink back to it
    /// after an outsized message, and the raw copy is reserved for it.
    pub fn set_frame_bytes(&mut self, n: usize) {
        self.frame_bytes = n;
        if self.formats.raw {
            self.raw.reserve(n);
        }
    }

    /// Decodes one frame and hands every event to `out` (which blocks while its ring is full).
    /// Depth diffs go through the symbol's local book first; a due `book_snapshot` follows its diff.
    #[inline]
    pub fn process<W: FullWait>(
        &mut self,
        frame: &mut Frame,
        out: &mut Producer<Record>,
        idle: &mut W,
    ) {
        let formats = self.formats;
        let (conn, session, ts) = (frame.conn, frame.session, frame.recv_ts_ns);
        if frame.kind == FrameKind::Connected {
            // A connection added while running was announced before it was opened.
            self.poll_control();
        }
        if frame.kind != FrameKind::Data
            && let Some(c) = &self.capture
        {
            c.marker(conn, session, ts, crate::capture::marker_name(frame.kind));
        }
        match frame.kind {
            FrameKind::Data => {
                if let Some(c) = &self.capture {
                    c.frame(
                        conn,
                        session,
                        ts,
                        frame.buf.get(..frame.len).unwrap_or_default(),
                    );
                }
                if !self.sessions.wants(conn, session) {
                    return; // a retired session's last frames
                }
                self.gaps.on_data(conn, ts)
            }
            FrameKind::Disconnected => {
                match self.sessions.on_disconnected(conn, session, ts) {
                    Marker::Live => {}
                    // The replacement is live: only streams it had not yet proven may miss data
                    // (their books re-sync by themselves on the sequence break).
                    Marker::Promoted => return self.unproven(out, idle, "disconnect"),
                    Marker::Replacement | Marker::Ignore => return,
                }
                if let Some(b) = self.books.as_mut() {
                    b.on_disconnect(conn);
                }
                if let Some(w) = self.watch.as_mut() {
                    w.on_disconnected(conn);
                }
                self.gaps.on_disconnected(conn, ts);
                return;
            }
            FrameKind::Subscribed => {
                self.sessions.on_subscribed(conn, session, ts);
                return;
            }
            FrameKind::Connected => {
                if self.sessions.on_connected(conn, session, ts) != Marker::Live {
                    return; // a rollover's replacement: no gap, the old session still delivers
                }
                if let Some(w) = self.watch.as_mut() {
                    w.on_connected(conn, ts);
                }
                let events = &mut self.events;
                self.gaps.on_connected(conn, ts, &mut |ev: &Event| {
                    emit(out, formats, events, idle, ev, &[], false)
                });
                return;
            }
            FrameKind::Dropped => {
                let events = &mut self.events;
                self.gaps.on_dropped(conn, ts, &mut |ev: &Event| {
                    emit(out, formats, events, idle, ev, &[], false)
                });
                return;
            }
        }
        let Some(decoder) = self.decoders.get_mut(frame.source as usize) else {
            return;
        };
        let events = &mut self.events;
        let books = &mut self.books;
        let gaps = &mut self.gaps;
        let sessions = &mut self.sessions;
        let probe = &mut self.probe;
        let (source, len, recv_ts) = (frame.source, frame.len, frame.recv_ts_ns);
        // The message as received, before simd-json decodes it in place (only when a sink
        // keeps it).
        self.raw.clear();
        if formats.raw {
            self.raw
                .extend_from_slice(frame.buf.get(..len).unwrap_or_default());
        }
        let raw = &self.raw[..];
        let mut raw_first = true;
        let res = decoder.decode(&mut frame.buf, len, recv_ts, &mut |ev: &mut Event| {
            if !sessions.admit(conn, session, ev) {
                return; // the other session of a rollover delivers (or delivered) this one
            }
            if let Some(p) = probe.as_mut()
                && ev.kind == Some(EventKind::Trade)
            {
                p.record_ns(recv_ts - ev.trade.trade_id as i64);
            }
            let due = match (ev.kind, books.as_mut()) {
                (Some(EventKind::DepthDiff), Some(b)) => b.on_diff(source, conn, ev, recv_ts),
                _ => false,
            };
            if let Some(from) = books.as_mut().and_then(|b| b.take_gap()) {
                gaps.on_book_gap(conn, &ev.header.symbol, from, recv_ts, &mut |g: &Event| {
                    emit(out, formats, events, idle, g, &[], false)
                });
            }
            emit(out, formats, events, idle, ev, raw, raw_first);
            raw_first = false;
            if due
                && let Some(b) = books.as_mut()
                && let Some(snap) =
                    b.snapshot(source, &ev.header.symbol, ev.header.exchange_ts_ns, recv_ts)
            {
                emit(out, formats, events, idle, snap, &[], false);
            }
        });
        if let Some(b) = self.books.as_mut() {
            while let Some(o) = b.take_outbox() {
                self.sessions.send(o.conn, o.messages);
            }
        }
        if let Some(w) = self.watch.as_mut() {
            w.on_frame(conn, decoder.last_stream(), recv_ts);
        }
        if self.sessions.rolling() {
            self.sessions.name_streams(conn, decoder.last_stream());
        }
        match res {
            Ok(Decoded::Events(_) | Decoded::Control) => {}
            Ok(Decoded::Skipped(reason)) => {
                let i = crate::metrics::skip::VALUES
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(crate::metrics::skip::NON_TRADE);
                self.skipped.add(i, 1);
                if self.skip_log.hit() {
                    log::info!(
                        "event=frame_skipped reason={reason} conn={conn} count={}",
                        self.skip_log.count()
                    );
                }
            }
            Ok(Decoded::ServerShutdown) => {
                log::warn!("event=server_shutdown conn={conn} session={session}");
                self.sessions.on_server_shutdown(conn, session);
            }
            Err(e) => self.skip(frame, e),
        }
        frame.shrink_if_above(self.shrink_above, self.frame_bytes);
    }

    /// Applies what the refresher sent (connections and books added or changed while running).
    pub fn poll_control(&mut self) {
        let Some(rx) = self.control.as_ref() else {
            return;
        };
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(crossbeam_channel::TryRecvError::Empty) => return,
            // No refresher runs (nothing to follow): stop looking.
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.control = None;
                return;
            }
        };
        let Some(rx) = self.control.clone() else {
            return;
        };
        for msg in std::iter::once(msg).chain(rx.try_iter()) {
            match msg {
                ToParser::AddConn {
                    conn,
                    label,
                    exchange,
                    market,
                    streams,
                    silence_timeout,
                    rollover_timeout,
                    freshness,
                } => {
                    if let Some(c) = self.capture.as_mut() {
                        c.add_conn(conn, exchange, market, &streams, rollover_timeout);
                    }
                    self.sessions.add(conn, rollover_timeout);
                    if let Some(w) = self.watch.as_mut() {
                        w.add(conn, label, &streams, silence_timeout, freshness);
                    }
                    self.gaps.add(conn, exchange, market, &streams);
                }
                ToParser::RemoveStreams { conn, names } => {
                    if let Some(w) = self.watch.as_mut() {
                        w.unwatch(conn, &names);
                    }
                    self.gaps.remove_streams(conn, &names);
                }
                ToParser::AddBooks {
                    source,
                    spec,
                    counters,
                } => {
                    if let Some(b) = self.books.as_mut() {
                        b.add_symbols(source, &spec, &counters);
                    }
                }
                ToParser::RemoveBooks { source, symbols } => {
                    if let Some(b) = self.books.as_mut() {
                        b.remove_symbols(source, &symbols);
                    }
                }
            }
        }
    }

    /// Applies REST snapshots that arrived for this parser's books and checks for silent streams
    /// and rollovers (off the per-frame path).
    pub fn poll_books<W: FullWait>(&mut self, out: &mut Producer<Record>, idle: &mut W) {
        self.poll_books_at(realtime_ns(), out, idle)
    }

    /// [`Stage::poll_books`] at the time `now` (`mdc replay`: the captured one).
    pub fn poll_books_at<W: FullWait>(
        &mut self,
        now: i64,
        out: &mut Producer<Record>,
        idle: &mut W,
    ) {
        self.poll_control();
        if let Some(w) = self.watch.as_mut()
            && now - self.last_watch_check_ns >= 500_000_000
        {
            self.last_watch_check_ns = now;
            w.check(now);
        }
        if self.sessions.rolling() && now - self.last_rollover_check_ns >= 10_000_000 {
            self.last_rollover_check_ns = now;
            self.sessions.check(now);
            self.unproven(out, idle, "rollover");
        }
        let formats = self.formats;
        let events = &mut self.events;
        if let Some(b) = self.books.as_mut() {
            b.poll(now, &mut |ev: &Event| {
                emit(out, formats, events, idle, ev, &[], false)
            });
            while let Some(o) = b.take_outbox() {
                self.sessions.send(o.conn, o.messages);
            }
        }
    }

    /// A `gap` per stream a rollover could not prove continuous.
    fn unproven<W: FullWait>(&mut self, out: &mut Producer<Record>, idle: &mut W, reason: &str) {
        let formats = self.formats;
        let events = &mut self.events;
        let gaps = &mut self.gaps;
        for u in self.sessions.take_unproven() {
            gaps.on_stream_gap(
                u.conn,
                &u.stream,
                &u.symbol,
                reason,
                u.from_ts_ns,
                u.to_ts_ns,
                &mut |g: &Event| emit(out, formats, events, idle, g, &[], false),
            );
        }
    }

    fn skip(&mut self, frame: &Frame, e: DecodeError) {
        let reason = e.reason();
        self.errors.add(Metrics::parse_error_index(reason), 1);
        if let Some(t) = self.error_logs.get_mut(reason)
            && t.hit()
        {
            let n = frame.len.min(160);
            log::warn!(
                "event=frame_skipped reason={reason} conn={} detail=\"{e}\" count={} bytes={} head={:?}",
                frame.conn,
                t.count(),
                frame.len,
                String::from_utf8_lossy(&frame.buf[..n])
            );
        }
    }

    /// Makes counters visible to the exporter.
    pub fn publish(&mut self) {
        self.events.events.publish();
        // Merging walks the whole histogram: every 100 ms is plenty for a scrape.
        let now = realtime_ns();
        if now - self.last_merge_ns >= 100_000_000 {
            self.last_merge_ns = now;
            self.events.latency.merge();
            if let Some(p) = self.probe.as_mut() {
                p.merge();
            }
        }
        self.errors.publish();
        self.skipped.publish();
        self.sessions.publish();
    }
}

/// What a parser counts per event: events by type, and receive -> parsed latency.
pub struct Tally {
    events: Counters,
    latency: Recorder,
}

/// Counts an event and writes it into the next record slot, waiting while the ring is full.
#[inline]
fn emit<W: FullWait>(
    out: &mut Producer<Record>,
    formats: Formats,
    tally: &mut Tally,
    idle: &mut W,
    ev: &Event,
    raw: &[u8],
    raw_first: bool,
) {
    if let Some(kind) = ev.kind {
        tally.events.add(kind as usize, 1);
    }
    loop {
        let written = out.write_with(|r| {
            fill(r, ev, formats);
            if formats.raw {
                r.raw.extend_from_slice(raw);
                r.raw_first = raw_first && !raw.is_empty();
            }
            r.parsed_ts_ns - r.recv_ts_ns
        });
        match written {
            Some(ns) => {
                tally.latency.record_ns(ns);
                break;
            }
            None => idle.wait(),
        }
    }
    idle.reset();
}

/// Encodes one event into a record slot, in the formats the sinks need.
#[inline]
pub fn fill(r: &mut Record, ev: &Event, formats: Formats) {
    let Some(kind) = ev.kind else { return };
    r.kind = kind;
    r.exchange = ev.header.exchange;
    r.market = ev.header.market;
    set(&mut r.symbol, &ev.header.symbol);
    r.recv_ts_ns = ev.header.receive_ts_ns;
    r.position = ev.position().unwrap_or(0);
    r.position_unique = ev.position_is_unique();
    r.variant = match kind {
        EventKind::LongShortRatio => match ev.long_short_ratio.kind.as_str() {
            "top_position" => "top-position",
            "top_account" => "top-account",
            "global_account" => "all-account",
            _ => "other",
        },
        _ => "",
    };
    r.json.clear();
    if formats.json {
        json::write_event(ev, &mut r.json);
    }
    r.proto.clear();
    if formats.protobuf {
        protobuf::write_event(ev, &mut r.proto);
    }
    r.raw.clear();
    r.raw_first = false;
    r.parsed_ts_ns = realtime_ns();
}

/// A parser thread: its input rings (one per reader), its output ring, its stage.
pub struct Parser {
    pub name: String,
    pub inputs: Vec<Consumer<Frame>>,
    pub output: Producer<Record>,
    pub stage: Stage,
    pub idle: Idle,
    /// `ring_occupancy` gauge per input ring (set every 10 ms).
    pub occupancy: Vec<std::sync::Arc<std::sync::atomic::AtomicI64>>,
    /// `thread_allocations_total` of this thread (when the binary counts allocations).
    pub allocations: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Parser {
    /// Runs until every reader has gone and its rings are drained.
    pub fn run(mut self) {
        let mut last_publish = Instant::now();
        let mut spare_idle = Idle::new(crate::pipeline::idle::IdlePolicy::Yield, 0);
        loop {
            let mut did = 0usize;
            for input in &mut self.inputs {
                for _ in 0..BATCH {
                    let stage = &mut self.stage;
                    let out = &mut self.output;
                    let idle = &mut spare_idle;
                    if input.read_with(|f| stage.process(f, out, idle)).is_none() {
                        break;
                    }
                    did += 1;
                }
            }
            self.stage.poll_books(&mut self.output, &mut spare_idle);
            if did == 0 {
                if self.inputs.iter_mut().all(|i| i.is_finished()) {
                    break;
                }
                let inputs = &self.inputs;
                self.idle
                    .wait_or_park(|| inputs.iter().any(|i| !i.is_empty()));
            } else {
                self.idle.reset();
            }
            if last_publish.elapsed() >= Duration::from_millis(10) {
                last_publish = Instant::now();
                self.stage.publish();
                super::export_thread_gauges(
                    &self.occupancy,
                    &self.inputs,
                    self.allocations.as_deref(),
                );
            }
        }
        self.stage.publish();
        log::info!("event=thread_stopped thread={}", self.name);
    }
}
