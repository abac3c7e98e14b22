//! `backpressure: drop_newest` loses records on purpose; this remembers what was lost per stream
//! and, once librdkafka's queue has room again, publishes one `gap` event per stream (reason
//! `sink_dropped`, `stream` = the event type, from the first to the last dropped record's receive
//! time) into this sink, so its consumers know exactly where data is missing. Other sinks lost
//! nothing and get no gap.

use crate::event::{Event, EventKind, set};
use crate::pipeline::record::Record;

struct Dropped {
    kind: EventKind,
    exchange: &'static str,
    market: &'static str,
    symbol: String,
    from_ts_ns: i64,
    to_ts_ns: i64,
}

/// Dropped ranges waiting to be reported.
pub struct Drops {
    /// `gap_events_total{reason="sink_dropped"}`.
    pub counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    pending: Vec<Dropped>,
    event: Event,
    buf: Vec<u8>,
}

impl Default for Drops {
    fn default() -> Self {
        Drops {
            counter: None,
            pending: Vec::new(),
            event: Event::new("", ""),
            buf: Vec::with_capacity(512),
        }
    }
}

impl Drops {
    /// Counting reported gaps in `counter`.
    pub fn counted(counter: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Drops {
            counter: Some(counter),
            ..Drops::default()
        }
    }

    /// Notes a dropped record (extends its stream's open range; allocates only for a new stream).
    pub fn note(&mut self, r: &Record) {
        let ts = r.recv_ts_ns;
        if let Some(d) = self.pending.iter_mut().find(|d| {
            d.kind == r.kind
                && d.symbol == r.symbol
                && d.exchange == r.exchange
                && d.market == r.market
        }) {
            d.from_ts_ns = d.from_ts_ns.min(ts);
            d.to_ts_ns = d.to_ts_ns.max(ts);
            return;
        }
        self.pending.push(Dropped {
            kind: r.kind,
            exchange: r.exchange,
            market: r.market,
            symbol: r.symbol.clone(),
            from_ts_ns: ts,
            to_ts_ns: ts,
        });
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
            set(&mut e.gap.reason, "sink_dropped");
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
                "event=sink_gap sink=kafka stream={} symbol={} from_ts_ns={} to_ts_ns={}",
                d.kind.as_str(),
                d.symbol,
                d.from_ts_ns,
                d.to_ts_ns
            );
            self.pending.pop();
            if let Some(c) = &self.counter {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}
