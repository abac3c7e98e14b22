//! Records this sink could not deliver: dropped by `backpressure: drop_newest` (reason
//! `sink_dropped`), given up after a producer reset (`sink_reset`: the broker lost its state or the
//! producer hit a fatal error, and the record could not be re-sent), or given up after
//! `retry_deadline` / as not retriable (`sink_failed`). This remembers what was lost per stream and
//! reason and, once librdkafka's queue has room again, publishes one `gap` event per stream
//! (`stream` = the event type, from the first to the last lost record's receive time) into this
//! sink, so its consumers know exactly where data is missing. Other sinks lost nothing and get no
//! gap.

use crate::event::{Event, EventKind, set};
use crate::pipeline::record::Record;

struct Dropped {
    reason: &'static str,
    kind: EventKind,
    exchange: &'static str,
    market: &'static str,
    symbol: String,
    from_ts_ns: i64,
    to_ts_ns: i64,
}

/// Dropped ranges waiting to be reported.
pub struct Drops {
    /// `gap_events_total{reason=...}` by reason.
    pub counters: Vec<(&'static str, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    pending: Vec<Dropped>,
    event: Event,
    buf: Vec<u8>,
}

impl Default for Drops {
    fn default() -> Self {
        Drops {
            counters: Vec::new(),
            pending: Vec::new(),
            event: Event::new("", ""),
            buf: Vec::with_capacity(512),
        }
    }
}

impl Drops {
    /// Counting reported gaps in `counters` (by reason).
    pub fn counted(
        counters: Vec<(&'static str, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    ) -> Self {
        Drops {
            counters,
            ..Drops::default()
        }
    }

    /// Notes a dropped record (extends its stream's open range; allocates only for a new stream).
    pub fn note(&mut self, r: &Record) {
        self.note_parts(
            "sink_dropped",
            r.kind,
            r.exchange,
            r.market,
            &r.symbol,
            r.recv_ts_ns,
        );
    }

    fn note_parts(
        &mut self,
        reason: &'static str,
        kind: EventKind,
        exchange: &'static str,
        market: &'static str,
        symbol: &str,
        ts: i64,
    ) {
        if let Some(d) = self.pending.iter_mut().find(|d| {
            d.kind == kind
                && d.reason == reason
                && d.symbol == symbol
                && d.exchange == exchange
                && d.market == market
        }) {
            d.from_ts_ns = d.from_ts_ns.min(ts);
            d.to_ts_ns = d.to_ts_ns.max(ts);
            return;
        }
        self.pending.push(Dropped {
            reason,
            kind,
            exchange,
            market,
            symbol: symbol.to_string(),
            from_ts_ns: ts,
            to_ts_ns: ts,
        });
    }

    /// Notes a record given up after it left the publisher: its identity is read back from the
    /// payload this sink encoded (`json`: the JSON object, else the Protobuf `Envelope`). A gap
    /// about a gap is not announced again. False when the payload is not one of ours.
    pub fn note_payload(&mut self, reason: &'static str, json: bool, payload: &[u8]) -> bool {
        let (exchange, market, symbol, kind, ts) = if json {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
                return false;
            };
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let ts = v.get("receive_ts_ns").and_then(|x| x.as_i64()).unwrap_or(0);
            (s("exchange"), s("market"), s("symbol"), s("type"), ts)
        } else {
            let Ok(env) = <crate::wire::Envelope as prost::Message>::decode(payload) else {
                return false;
            };
            (
                env.exchange,
                env.market,
                env.symbol,
                env.r#type,
                env.receive_ts_ns,
            )
        };
        let Some(kind) = EventKind::ALL.iter().copied().find(|k| k.as_str() == kind) else {
            return false;
        };
        if kind == EventKind::Gap {
            return true;
        }
        self.note_parts(
            reason,
            kind,
            super::intern::intern(&exchange),
            super::intern::intern(&market),
            &symbol,
            ts,
        );
        true
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Encodes each pending gap (`json`: JSON object, else Protobuf `Envelope`) and hands it to
    /// `send(exchange, market, symbol, payload)`; stops at the first refusal (queue still full) and
    /// keeps the rest for the next call.
    pub fn report(
        &mut self,
        json: bool,
        mut send: impl FnMut(&'static str, &'static str, &str, &[u8]) -> bool,
    ) {
        while let Some(d) = self.pending.last() {
            let e = &mut self.event;
            e.kind = Some(EventKind::Gap);
            e.header.exchange = d.exchange;
            e.header.market = d.market;
            set(&mut e.header.symbol, &d.symbol);
            e.header.exchange_ts_ns = 0;
            e.header.receive_ts_ns = d.to_ts_ns;
            set(&mut e.gap.stream, d.kind.as_str());
            set(&mut e.gap.reason, d.reason);
            e.gap.from_ts_ns = d.from_ts_ns;
            e.gap.to_ts_ns = d.to_ts_ns;
            self.buf.clear();
            if json {
                crate::encode::json::write_event(e, &mut self.buf);
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                }
            } else {
                crate::encode::protobuf::write_event(e, &mut self.buf);
            }
            if !send(d.exchange, d.market, &d.symbol, &self.buf) {
                return;
            }
            log::warn!(
                "event=sink_gap sink=kafka reason={} stream={} symbol={} from_ts_ns={} to_ts_ns={}",
                d.reason,
                d.kind.as_str(),
                d.symbol,
                d.from_ts_ns,
                d.to_ts_ns
            );
            if let Some((_, c)) = self.counters.iter().find(|(r, _)| *r == d.reason) {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.pending.pop();
        }
    }
}
