//! Gap markers: when data of a stream may be missing, the parser emits an explicit `gap` event
//! (`stream`, `reason`, `from_ts_ns`, `to_ts_ns`) into every sink, so consumers never have to guess.
//!
//! Reasons: `disconnect` (an unplanned disconnect: from the last frame received on the connection
//! to the moment it is back, one event per stream it carries), `dropped_frame` (the reader skipped
//! a message, e.g. over `max_message_bytes`: the stream is unknown, so every stream of the
//! connection), `book_resync` (a depth sequence break: from the last applied diff to the diff that
//! revealed it). Per-frame cost: one store into a vector slot.

use crate::event::{Event, EventKind, set};
use crate::exchange::StreamSpec;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

struct ConnGaps {
    exchange: &'static str,
    market: &'static str,
    /// (stream, symbol upper case or "" for all-market streams).
    streams: Vec<StreamSpec>,
    last_data_ns: i64,
    down_since_ns: Option<i64>,
}

/// One parser's gap bookkeeping, by connection id.
pub struct Gaps {
    conns: Vec<Option<ConnGaps>>,
    event: Event,
    /// `gap_events_total{reason}` (gaps are rare: counted on the shared atomic directly).
    pub counters: Vec<(&'static str, Arc<AtomicU64>)>,
}

/// Reasons a parser emits gaps for (the Kafka sink adds `sink_dropped` itself).
pub const REASONS: &[&str] = &["disconnect", "dropped_frame", "book_resync", "rollover"];

impl Default for Gaps {
    fn default() -> Self {
        Gaps {
            conns: Vec::new(),
            event: Event::new("", ""),
            counters: Vec::new(),
        }
    }
}

impl Gaps {
    /// Tracks connection `conn` carrying `streams`.
    pub fn add(
        &mut self,
        conn: u32,
        exchange: &'static str,
        market: &'static str,
        streams: &[StreamSpec],
    ) {
        let i = conn as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(ConnGaps {
            exchange,
            market,
            streams: streams.to_vec(),
            last_data_ns: 0,
            down_since_ns: None,
        });
    }

    /// Connection `conn` no longer carries the streams named `names` (expired instruments).
    pub fn remove_streams(&mut self, conn: u32, names: &[String]) {
        if let Some(Some(c)) = self.conns.get_mut(conn as usize) {
            c.streams.retain(|s| !names.contains(&s.name));
        }
    }

    /// A data frame arrived.
    #[inline]
    pub fn on_data(&mut self, conn: u32, ts: i64) {
        if let Some(Some(c)) = self.conns.get_mut(conn as usize) {
            c.last_data_ns = ts;
        }
    }

    /// The connection went down (unplanned).
    pub fn on_disconnected(&mut self, conn: u32, ts: i64) {
        if let Some(Some(c)) = self.conns.get_mut(conn as usize)
            && c.down_since_ns.is_none()
        {
            c.down_since_ns = Some(if c.last_data_ns > 0 {
                c.last_data_ns
            } else {
                ts
            });
        }
    }

    /// The connection is back: one `disconnect` gap per stream.
    pub fn on_connected(&mut self, conn: u32, ts: i64, emit: &mut dyn FnMut(&Event)) {
        let Some(Some(c)) = self.conns.get_mut(conn as usize) else {
            return;
        };
        let Some(from) = c.down_since_ns.take() else {
            return;
        };
        c.last_data_ns = ts;
        self.every_stream(conn, "disconnect", from, ts, emit);
    }

    /// The reader dropped a frame of this connection (its stream is unknown: all of them).
    pub fn on_dropped(&mut self, conn: u32, ts: i64, emit: &mut dyn FnMut(&Event)) {
        let Some(Some(c)) = self.conns.get(conn as usize) else {
            return;
        };
        let from = if c.last_data_ns > 0 {
            c.last_data_ns
        } else {
            ts
        };
        self.every_stream(conn, "dropped_frame", from, ts, emit);
    }

    /// One gap event per stream of `conn`.
    fn every_stream(
        &mut self,
        conn: u32,
        reason: &str,
        from: i64,
        to: i64,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some(Some(c)) = self.conns.get(conn as usize) else {
            return;
        };
        for s in &c.streams {
            let g = Gap {
                market: s.market,
                stream: &s.name,
                symbol: &s.symbol,
                reason,
                from,
                to,
            };
            g.emit(&mut self.event, &self.counters, c, emit);
        }
    }

    /// A depth sequence break of `symbol` on `conn`: a gap on its depth stream.
    pub fn on_book_gap(
        &mut self,
        conn: u32,
        symbol: &str,
        from: i64,
        ts: i64,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some(Some(c)) = self.conns.get(conn as usize) else {
            return;
        };
        if let Some(s) = c.streams.iter().find(|s| s.book && s.symbol == symbol) {
            let g = Gap {
                market: s.market,
                stream: &s.name,
                symbol: &s.symbol,
                reason: "book_resync",
                from,
                to: ts,
            };
            g.emit(&mut self.event, &self.counters, c, emit);
        }
    }

    /// A gap on one named stream of `conn` (e.g. a rollover that could not prove continuity).
    #[allow(clippy::too_many_arguments)]
    pub fn on_stream_gap(
        &mut self,
        conn: u32,
        stream: &str,
        symbol: &str,
        reason: &str,
        from: i64,
        to: i64,
        emit: &mut dyn FnMut(&Event),
    ) {
        let Some(Some(c)) = self.conns.get(conn as usize) else {
            return;
        };
        let market = c
            .streams
            .iter()
            .find(|s| s.name == stream)
            .map_or("", |s| s.market);
        let g = Gap {
            market,
            stream,
            symbol,
            reason,
            from,
            to,
        };
        g.emit(&mut self.event, &self.counters, c, emit);
    }
}

/// One gap to announce.
struct Gap<'a> {
    /// The stream's market (an OKX connection can carry spot and swap instruments).
    market: &'static str,
    stream: &'a str,
    symbol: &'a str,
    reason: &'a str,
    from: i64,
    to: i64,
}

impl Gap<'_> {
    /// Fills the reusable event, hands it to `emit`, counts it by reason.
    fn emit(
        &self,
        e: &mut Event,
        counters: &[(&'static str, Arc<AtomicU64>)],
        c: &ConnGaps,
        emit: &mut dyn FnMut(&Event),
    ) {
        fill(
            e,
            c.exchange,
            if self.market.is_empty() {
                c.market
            } else {
                self.market
            },
            self.stream,
            self.symbol,
            self.reason,
            self.from,
            self.to,
        );
        emit(e);
        if let Some((_, n)) = counters.iter().find(|(r, _)| *r == self.reason) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn fill(
    e: &mut Event,
    exchange: &'static str,
    market: &'static str,
    stream: &str,
    symbol: &str,
    reason: &str,
    from: i64,
    to: i64,
) {
    e.kind = Some(EventKind::Gap);
    e.header.exchange = exchange;
    e.header.market = market;
    set(&mut e.header.symbol, symbol);
    e.header.exchange_ts_ns = 0;
    e.header.receive_ts_ns = to;
    set(&mut e.gap.stream, stream);
    set(&mut e.gap.reason, reason);
    e.gap.from_ts_ns = from;
    e.gap.to_ts_ns = to;
}
