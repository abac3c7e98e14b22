//! Which session of a connection the parser listens to, and the make-before-break rollover.
//!
//! A planned rollover (maximum age, `serverShutdown`) opens a replacement session next to the old
//! one; both deliver the same streams for a moment. Per stream (event type + symbol) the old
//! session stays the authority until it has delivered everything the new one has (an event whose
//! position is at or past the new session's latest); from then on the new session is, and only its
//! events past the last one published pass. Positions are the exchange's ids (trade id, update id)
//! or, where it gives none, its event time. When every stream seen during the overlap has switched,
//! the parser reports [`Report::RolloverDone`] and the reader closes the old session: nothing is
//! lost and nothing is published twice. If the overlap outlasts `rollover_timeout`, the old session
//! is closed anyway and a `gap` names each stream that was not proven continuous.
//!
//! Outside a rollover the per-frame cost is one comparison (is this the live session?).

use super::connector::Report;
use crate::event::{Event, EventKind};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A stream during an overlap.
#[derive(Debug, Default)]
struct Stream {
    kind: Option<EventKind>,
    /// The exchange's stream name (for a gap event).
    name: String,
    old_last: Option<u64>,
    old_last_ts: i64,
    new_last: Option<u64>,
    new_first_ts: i64,
    /// The new session is the authority; `high` is the last position published.
    switched: bool,
    high: u64,
    // Where positions are event times (not unique), fingerprints of the events at the last
    // position of each session, and of those published at `high` (with whether the new session
    // has delivered its copy): two events in one millisecond are two events, not a copy.
    old_at_last: Vec<u64>,
    new_at_last: Vec<u64>,
    at_high: Vec<(u64, bool)>,
}

impl Stream {
    /// The new session becomes the authority after the old one's last event at `high`.
    fn switch(&mut self, high: u64) {
        self.switched = true;
        self.high = high;
        self.at_high.clear();
        if self.old_last == Some(high) {
            self.at_high
                .extend(self.old_at_last.iter().map(|&f| (f, false)));
        }
        if self.new_last == Some(high) {
            for i in 0..self.new_at_last.len() {
                let f = self.new_at_last[i];
                self.match_copy(f);
            }
        }
    }

    /// Marks an event published at `high` as delivered by the new session too; false when none
    /// with this fingerprint is left (the new session's event is a new one).
    fn match_copy(&mut self, fp: u64) -> bool {
        match self.at_high.iter_mut().find(|(f, seen)| *f == fp && !*seen) {
            Some(e) => {
                e.1 = true;
                true
            }
            None => false,
        }
    }
}

/// Records `fp` as an event at `pos`, the last position of a session (`last`, `at_last`).
fn note(last: &mut Option<u64>, at_last: &mut Vec<u64>, pos: u64, fp: u64) {
    if *last != Some(pos) {
        at_last.clear();
    }
    at_last.push(fp);
    *last = Some(pos);
}

/// Is every fingerprint of `sub` in `sup`, counting repeats?
fn contains_all(sup: &[u64], sub: &[u64]) -> bool {
    let mut used = vec![false; sup.len()];
    sub.iter().all(
        |f| match (0..sup.len()).find(|&i| !used[i] && sup[i] == *f) {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        },
    )
}

/// Two sessions of one connection side by side.
#[derive(Debug)]
struct Overlap {
    old: u32,
    new: u32,
    started_ns: i64,
    /// Set when the reader has sent every subscription of the new session.
    subscribed_ns: Option<i64>,
    /// By symbol, then event type (looked up by `&str`: no allocation per event).
    streams: HashMap<String, Vec<Stream>>,
    /// Streams first seen in the frame being decoded (named once the decoder knows the name).
    unnamed: Vec<(String, EventKind)>,
}

#[derive(Debug, Default)]
struct Conn {
    active: Option<u32>,
    overlap: Option<Overlap>,
    timeout_ns: i64,
}

/// What the parser does with a connection-level marker.
#[derive(Debug, PartialEq, Eq)]
pub enum Marker {
    /// A marker of the live session (or of a new session when none is live): handle as usual.
    Live,
    /// The replacement session of a rollover: no gap, no re-sync.
    Replacement,
    /// The old session died during an overlap; the replacement took over. The streams listed by
    /// [`Sessions::take_unproven`] may have lost data.
    Promoted,
    /// A retired or failed replacement session: ignore.
    Ignore,
}

/// A stream whose continuity across a rollover could not be proven.
#[derive(Debug, Clone)]
pub struct Unproven {
    pub conn: u32,
    pub stream: String,
    pub symbol: String,
    pub from_ts_ns: i64,
    pub to_ts_ns: i64,
}

/// Process-wide rollover counters (shared by the parsers, touched off the per-event path).
#[derive(Clone)]
pub struct RolloverMetrics {
    pub done: Arc<AtomicU64>,
    pub forced: Arc<AtomicU64>,
    pub duplicates: Arc<AtomicU64>,
}

impl RolloverMetrics {
    pub fn register(m: &crate::metrics::Metrics) -> Self {
        RolloverMetrics {
            done: m.counter(
                "rollovers_total",
                "Planned make-before-break rollovers by outcome.",
                &[("outcome", "done")],
            ),
            forced: m.counter(
                "rollovers_total",
                "Planned make-before-break rollovers by outcome.",
                &[("outcome", "forced")],
            ),
            duplicates: m.counter(
                "rollover_duplicates_dropped_total",
                "Events delivered by both sessions of a rollover and published once.",
                &[],
            ),
        }
    }
}

/// One parser's sessions, by connection id.
#[derive(Default)]
pub struct Sessions {
    pub metrics: Option<RolloverMetrics>,
    published_duplicates: u64,
    conns: Vec<Conn>,
    reports: Option<Sender<Report>>,
    overlaps: usize,
    unproven: Vec<Unproven>,
    /// Rollovers completed / forced by the timeout (for metrics and tests).
    pub done: u64,
    pub forced: u64,
    /// Events dropped as copies during overlaps.
    pub duplicates: u64,
    /// Reused for event fingerprints during overlaps.
    scratch: Vec<u8>,
}

/// Minimum time between the new session's last subscription and the switch, so that the first
/// events of late subscriptions are seen before the old session goes away.
const SETTLE_NS: i64 = 200_000_000;

impl Sessions {
    pub fn new(reports: Option<Sender<Report>>) -> Self {
        Sessions {
            reports,
            ..Sessions::default()
        }
    }

    /// Makes counters visible to the exporter.
    pub fn publish(&mut self) {
        if let Some(m) = &self.metrics {
            let d = self.duplicates - self.published_duplicates;
            if d > 0 {
                m.duplicates.fetch_add(d, Ordering::Relaxed);
                self.published_duplicates = self.duplicates;
            }
        }
    }

    /// Asks the connector to send `messages` on connection `conn` (off the per-frame path: only
    /// when a book re-syncs).
    pub fn send(&self, conn: u32, messages: Vec<String>) {
        if let Some(r) = &self.reports {
            let _ = r.send(Report::Send { conn, messages });
        }
    }

    /// Tracks connection `conn` with its rollover overlap limit.
    pub fn add(&mut self, conn: u32, rollover_timeout: std::time::Duration) {
        let i = conn as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, Conn::default);
        }
        self.conns[i].timeout_ns = rollover_timeout.as_nanos().min(i64::MAX as u128) as i64;
    }

    /// True while some connection of this parser is rolling over.
    #[inline]
    pub fn rolling(&self) -> bool {
        self.overlaps > 0
    }

    /// Should data of session `session` of `conn` be decoded at all?
    #[inline]
    pub fn wants(&self, conn: u32, session: u32) -> bool {
        match self.conns.get(conn as usize) {
            Some(c) => {
                c.active == Some(session) || c.overlap.as_ref().is_some_and(|o| o.new == session)
            }
            None => true,
        }
    }

    /// A session connected.
    pub fn on_connected(&mut self, conn: u32, session: u32, ts: i64) -> Marker {
        let Some(c) = self.conns.get_mut(conn as usize) else {
            return Marker::Live;
        };
        match c.active {
            Some(old) if old != session => {
                if c.overlap.is_none() {
                    self.overlaps += 1;
                }
                c.overlap = Some(Overlap {
                    old,
                    new: session,
                    started_ns: ts,
                    subscribed_ns: None,
                    streams: HashMap::with_capacity(64),
                    unnamed: Vec::new(),
                });
                Marker::Replacement
            }
            _ => {
                c.active = Some(session);
                Marker::Live
            }
        }
    }

    /// The reader has sent every subscription of session `session`.
    pub fn on_subscribed(&mut self, conn: u32, session: u32, ts: i64) {
        if let Some(Some(o)) = self
            .conns
            .get_mut(conn as usize)
            .map(|c| c.overlap.as_mut())
            && o.new == session
        {
            o.subscribed_ns = Some(ts);
        }
    }

    /// A session ended (unplanned).
    pub fn on_disconnected(&mut self, conn: u32, session: u32, ts: i64) -> Marker {
        let Some(c) = self.conns.get_mut(conn as usize) else {
            return Marker::Live;
        };
        if let Some(o) = &c.overlap {
            if o.new == session {
                log::warn!(
                    "event=rollover_aborted conn={conn} session={session} reason=\"replacement lost\""
                );
                c.overlap = None;
                self.overlaps -= 1;
                return Marker::Ignore;
            }
            if o.old == session {
                let o = c.overlap.take();
                self.overlaps -= 1;
                c.active = o.as_ref().map(|o| o.new);
                if let Some(o) = o {
                    collect_unproven(&o, conn, ts, &mut self.unproven);
                }
                return Marker::Promoted;
            }
        }
        if c.active == Some(session) {
            c.active = None;
            Marker::Live
        } else {
            Marker::Ignore
        }
    }

    /// Streams a promoted or forced rollover could not prove continuous (drained by the caller).
    pub fn take_unproven(&mut self) -> std::vec::Drain<'_, Unproven> {
        self.unproven.drain(..)
    }

    /// Decides whether a decoded event of session `session` is published. Outside a rollover: always.
    #[inline]
    pub fn admit(&mut self, conn: u32, session: u32, ev: &Event) -> bool {
        let Some(c) = self.conns.get_mut(conn as usize) else {
            return true;
        };
        let Some(o) = c.overlap.as_mut() else {
            return true;
        };
        let (Some(kind), Some(pos)) = (ev.kind, ev.position()) else {
            // Nothing to order it by: only the authority's copy passes.
            return session == o.old;
        };
        let symbol = ev.header.symbol.as_str();
        if !o
            .streams
            .get(symbol)
            .is_some_and(|v| v.iter().any(|s| s.kind == Some(kind)))
        {
            o.unnamed.push((symbol.to_string(), kind));
            o.streams
                .entry(symbol.to_string())
                .or_default()
                .push(Stream {
                    kind: Some(kind),
                    ..Stream::default()
                });
        }
        let Some(st) = o
            .streams
            .get_mut(symbol)
            .and_then(|v| v.iter_mut().find(|s| s.kind == Some(kind)))
        else {
            return session == o.old;
        };
        let ts = ev.header.receive_ts_ns;
        let pass = if ev.position_is_unique() {
            admit_unique(st, session, o.old, o.new, pos, ts)
        } else {
            let fp = ev.fingerprint(&mut self.scratch);
            admit_timed(st, session, o.old, o.new, pos, fp, ts)
        };
        if !pass {
            self.duplicates += 1;
        }
        pass
    }

    /// Names the streams first seen in the frame just decoded.
    pub fn name_streams(&mut self, conn: u32, stream: &str) {
        if let Some(Some(o)) = self
            .conns
            .get_mut(conn as usize)
            .map(|c| c.overlap.as_mut())
        {
            for (symbol, kind) in o.unnamed.drain(..) {
                if let Some(st) = o
                    .streams
                    .get_mut(&symbol)
                    .and_then(|v| v.iter_mut().find(|s| s.kind == Some(kind)))
                {
                    stream.clone_into(&mut st.name);
                }
            }
        }
    }

    /// The exchange announced the end of session `session`: ask the connector for a replacement.
    pub fn on_server_shutdown(&mut self, conn: u32, session: u32) {
        let live = self
            .conns
            .get(conn as usize)
            .is_some_and(|c| c.active == Some(session) && c.overlap.is_none());
        if live && let Some(r) = &self.reports {
            let _ = r.send(Report::RolloverWanted { conn, session });
        }
    }

    /// Completes rollovers whose streams have all switched, and forces those past their timeout.
    pub fn check(&mut self, now: i64) {
        if self.overlaps == 0 {
            return;
        }
        for (i, c) in self.conns.iter_mut().enumerate() {
            let Some(o) = &c.overlap else { continue };
            let settled = o.subscribed_ns.is_some_and(|t| now - t >= SETTLE_NS);
            let proven = !o.streams.is_empty() && o.streams.values().flatten().all(|s| s.switched);
            let timed_out = now - o.started_ns >= c.timeout_ns;
            if !(timed_out || settled && proven) {
                continue;
            }
            let Some(o) = c.overlap.take() else { continue };
            self.overlaps -= 1;
            let counter = self.metrics.as_ref().map(|m| {
                if settled && proven {
                    &m.done
                } else {
                    &m.forced
                }
            });
            if let Some(c) = counter {
                c.fetch_add(1, Ordering::Relaxed);
            }
            if settled && proven {
                self.done += 1;
            } else {
                self.forced += 1;
                collect_unproven(&o, i as u32, now, &mut self.unproven);
                log::warn!(
                    "event=rollover_forced conn={i} old_gen={} new_gen={} unproven_streams={} note=\"overlap timeout\"",
                    o.old,
                    o.new,
                    o.streams.values().flatten().filter(|s| !s.switched).count()
                );
            }
            c.active = Some(o.new);
            if let Some(r) = &self.reports {
                let _ = r.send(Report::RolloverDone {
                    conn: i as u32,
                    old_gen: o.old,
                });
            }
        }
    }
}

/// [`Sessions::admit`] for a stream whose positions are exchange ids: equal means the same event.
fn admit_unique(st: &mut Stream, session: u32, old: u32, new: u32, pos: u64, ts: i64) -> bool {
    if session == old {
        if st.switched {
            return false;
        }
        if st.new_last.is_some_and(|n| pos >= n) {
            // The old session has delivered everything the new one has: switch.
            st.switched = true;
            st.high = pos;
        }
        st.old_last = Some(pos);
        st.old_last_ts = ts;
        true
    } else if session == new {
        if st.new_last.is_none() {
            st.new_first_ts = ts;
        }
        st.new_last = Some(pos);
        if st.switched {
            if pos > st.high {
                st.high = pos;
                true
            } else {
                false
            }
        } else {
            if let Some(old) = st.old_last
                && pos <= old
            {
                // The new session is at or behind the old one: it delivers all that follows.
                st.switched = true;
                st.high = old;
            }
            false
        }
    } else {
        false
    }
}

/// [`Sessions::admit`] for a stream whose positions are event times: at an equal time, the
/// fingerprints tell a copy from another event of the same millisecond.
fn admit_timed(
    st: &mut Stream,
    session: u32,
    old: u32,
    new: u32,
    pos: u64,
    fp: u64,
    ts: i64,
) -> bool {
    if session == old {
        if st.switched {
            return false;
        }
        note(&mut st.old_last, &mut st.old_at_last, pos, fp);
        st.old_last_ts = ts;
        // Switch once the old session has delivered everything the new one has: it is past the
        // new one's last time, or at it with every event the new one had there.
        if let Some(n) = st.new_last
            && (pos > n || (pos == n && contains_all(&st.old_at_last, &st.new_at_last)))
        {
            st.switch(pos);
        }
        true
    } else if session == new {
        if st.new_last.is_none() {
            st.new_first_ts = ts;
        }
        if !st.switched {
            match st.old_last {
                // The new session is at or behind the old one: it delivers all that follows,
                // this event included unless it is a copy of one the old one published.
                Some(o) if pos <= o => st.switch(o),
                _ => {
                    note(&mut st.new_last, &mut st.new_at_last, pos, fp);
                    return false;
                }
            }
        }
        note(&mut st.new_last, &mut st.new_at_last, pos, fp);
        if pos > st.high {
            st.high = pos;
            st.at_high.clear();
            st.at_high.push((fp, true));
            true
        } else if pos == st.high && !st.match_copy(fp) {
            st.at_high.push((fp, true));
            true
        } else {
            false
        }
    } else {
        false
    }
}

/// Streams of an ended overlap that had not switched although the new session delivered data the
/// old one never did: events may be missing between the old's last and the new's first.
fn collect_unproven(o: &Overlap, conn: u32, now: i64, out: &mut Vec<Unproven>) {
    for (symbol, s) in o
        .streams
        .iter()
        .flat_map(|(sym, v)| v.iter().map(move |s| (sym, s)))
    {
        if s.switched || s.new_last.is_none() {
            continue;
        }
        out.push(Unproven {
            conn,
            stream: s.name.clone(),
            symbol: symbol.clone(),
            from_ts_ns: if s.old_last_ts > 0 {
                s.old_last_ts
            } else {
                s.new_first_ts
            },
            to_ts_ns: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: u64) -> Event {
        let mut e = Event::new("binance", "spot");
        e.kind = Some(EventKind::Trade);
        e.header.symbol = "BTCUSDT".into();
        e.trade.trade_id = id;
        e
    }

    fn rolling() -> Sessions {
        let mut s = Sessions::new(None);
        s.add(0, std::time::Duration::from_secs(10));
        assert_eq!(s.on_connected(0, 0, 1), Marker::Live);
        assert_eq!(s.on_connected(0, 1, 2), Marker::Replacement);
        s.on_subscribed(0, 1, 2);
        s
    }

    /// Publishes from interleaved (session, id) arrivals; returns the ids published.
    fn run(s: &mut Sessions, arrivals: &[(u32, u64)]) -> Vec<u64> {
        arrivals
            .iter()
            .filter(|(g, id)| s.admit(0, *g, &trade(*id)))
            .map(|(_, id)| *id)
            .collect()
    }

    #[test]
    fn new_session_behind_the_old_switches_without_loss_or_copy() {
        let mut s = rolling();
        let out = run(
            &mut s,
            &[
                (0, 10),
                (0, 11),
                (1, 10),
                (0, 12),
                (1, 11),
                (1, 12),
                (1, 13),
                (0, 13),
                (1, 14),
            ],
        );
        assert_eq!(out, vec![10, 11, 12, 13, 14]);
    }

    #[test]
    fn new_session_ahead_of_the_old_waits_for_it() {
        let mut s = rolling();
        let out = run(
            &mut s,
            &[
                (0, 10),
                (1, 12),
                (1, 13),
                (0, 11),
                (0, 12),
                (0, 13),
                (1, 14),
                (0, 14),
                (0, 15),
                (1, 15),
            ],
        );
        assert_eq!(out, vec![10, 11, 12, 13, 14, 15]);
        s.check(2 + SETTLE_NS);
        assert_eq!(s.done, 1);
        assert!(s.wants(0, 1) && !s.wants(0, 0));
        assert!(s.admit(0, 1, &trade(16)));
    }

    #[test]
    fn a_stream_the_new_session_never_proves_is_reported_after_the_timeout() {
        let mut s = rolling();
        // The new session starts past a hole the old never fills.
        run(&mut s, &[(0, 10), (1, 20)]);
        s.name_streams(0, "btcusdt@trade");
        s.check(1_000_000_000);
        assert_eq!(s.done + s.forced, 0, "waits within the timeout");
        s.check(20_000_000_000);
        assert_eq!(s.forced, 1);
        let u: Vec<_> = s.take_unproven().collect();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].stream, "btcusdt@trade");
    }

    /// A liquidation at event time `ms` whose quantity `q` tells it apart from others in that ms.
    fn liquidation(ms: i64, q: &str) -> Event {
        let mut e = Event::new("binance", "usdm");
        e.kind = Some(EventKind::Liquidation);
        e.header.symbol = "BTCUSDT".into();
        e.header.exchange_ts_ns = ms * 1_000_000;
        e.liquidation.qty = q.into();
        e
    }

    /// Publishes from interleaved (session, ms, qty) arrivals; returns what was published.
    fn run_timed(s: &mut Sessions, arrivals: &[(u32, i64, &str)]) -> Vec<(i64, String)> {
        arrivals
            .iter()
            .filter(|(g, ms, q)| s.admit(0, *g, &liquidation(*ms, q)))
            .map(|(_, ms, q)| (*ms, q.to_string()))
            .collect()
    }

    fn timed(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(m, q)| (*m, q.to_string())).collect()
    }

    #[test]
    fn events_sharing_a_millisecond_are_not_taken_for_copies() {
        // The new session is behind: it switches on its copy of A, then B (same ms) is new.
        let mut s = rolling();
        let out = run_timed(
            &mut s,
            &[
                (0, 100, "A"),
                (1, 100, "A"),
                (1, 100, "B"),
                (0, 100, "B"),
                (1, 101, "C"),
            ],
        );
        assert_eq!(out, timed(&[(100, "A"), (100, "B"), (101, "C")]));

        // The new session is ahead with A and B: the old one must deliver both before it switches.
        let mut s = rolling();
        let out = run_timed(
            &mut s,
            &[
                (0, 99, "Z"),
                (1, 100, "A"),
                (1, 100, "B"),
                (0, 100, "A"),
                (0, 100, "B"),
                (1, 100, "D"),
                (0, 100, "D"),
                (1, 101, "C"),
                (0, 101, "C"),
            ],
        );
        assert_eq!(
            out,
            timed(&[(99, "Z"), (100, "A"), (100, "B"), (100, "D"), (101, "C")])
        );

        // Two identical events in one ms are two events: each session's second copy counts.
        let mut s = rolling();
        let out = run_timed(
            &mut s,
            &[
                (0, 100, "A"),
                (1, 100, "A"),
                (0, 100, "A"),
                (1, 100, "A"),
                (1, 100, "A"),
            ],
        );
        assert_eq!(out, timed(&[(100, "A"), (100, "A"), (100, "A")]));
    }

    #[test]
    fn a_replacement_that_dies_leaves_the_old_session_live() {
        let mut s = rolling();
        assert_eq!(s.on_disconnected(0, 1, 5), Marker::Ignore);
        assert!(!s.rolling());
        assert!(s.wants(0, 0) && !s.wants(0, 1));
    }
}
