//! Records a sink could not deliver, shared by the network sinks (Kafka, NATS): dropped by
//! `backpressure: drop_newest` (reason `sink_dropped`), given up after a producer reset
//! (`sink_reset`: the broker lost its state or the producer hit a fatal error, and the record could
//! not be re-sent), or given up after a retry deadline / as not retriable (`sink_failed`). This
//! remembers what was lost per stream and reason and, once the sink's queue has room again,
//! publishes one `gap` event per stream (`stream` = the event type, from the first to the last lost
//! record's receive time) into that sink, so its consumers know exactly where data is missing.
//! Other sinks lost nothing and get no gap.

use crate::encode::record::Record;
use crate::event::{Event, EventKind, set};

struct Dropped {
    reason: &'static str,
    /// The event type whose records were lost, or the stream a lost `gap` was about.
    stream: String,
    exchange: &'static str,
    market: &'static str,
    symbol: String,
    from_ts_ns: i64,
    to_ts_ns: i64,
}

/// Dropped ranges waiting to be reported.
pub struct Drops {
    /// The sink reporting (logs).
    pub sink: &'static str,
    /// `gap_events_total{reason=...}` by reason.
    pub counters: Vec<(&'static str, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    pending: Vec<Dropped>,
    event: Event,
    buf: Vec<u8>,
}

impl Default for Drops {
    fn default() -> Self {
        Drops {
            sink: "",
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
        sink: &'static str,
        counters: Vec<(&'static str, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
    ) -> Self {
        Drops {
            sink,
            counters,
            ..Drops::default()
        }
    }

    /// Notes a dropped record (extends its stream's open range; allocates only for a new stream).
    pub fn note(&mut self, r: &Record) {
        self.note_parts(
            "sink_dropped",
            r.kind.as_str(),
            r.exchange,
            r.market,
            &r.symbol,
            (r.recv_ts_ns, r.recv_ts_ns),
        );
    }

    fn note_parts(
        &mut self,
        reason: &'static str,
        stream: &str,
        exchange: &'static str,
        market: &'static str,
        symbol: &str,
        (from, to): (i64, i64),
    ) {
        if let Some(d) = self.pending.iter_mut().find(|d| {
            d.stream == stream
                && d.reason == reason
                && d.symbol == symbol
                && d.exchange == exchange
                && d.market == market
        }) {
            d.from_ts_ns = d.from_ts_ns.min(from);
            d.to_ts_ns = d.to_ts_ns.max(to);
            return;
        }
        self.pending.push(Dropped {
            reason,
            stream: stream.to_string(),
            exchange,
            market,
            symbol: symbol.to_string(),
            from_ts_ns: from,
            to_ts_ns: to,
        });
    }

    /// Notes a record given up after it left the publisher: its identity is read back from the
    /// payload this sink encoded (`json`: the JSON object, else the Protobuf `Envelope`). A lost
    /// `gap` is noted again as itself (same stream, reason and range), so an announcement of
    /// missing data is never what goes missing. False when the payload is not one of ours.
    pub fn note_payload(&mut self, reason: &'static str, json: bool, payload: &[u8]) -> bool {
        struct Id {
            exchange: String,
            market: String,
            symbol: String,
            kind: String,
            ts: i64,
            gap: Option<(String, String, i64, i64)>,
        }
        let id = if json {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
                return false;
            };
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let i = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
            Id {
                exchange: s("exchange"),
                market: s("market"),
                symbol: s("symbol"),
                kind: s("type"),
                ts: i("receive_ts_ns"),
                gap: (s("type") == "gap")
                    .then(|| (s("stream"), s("reason"), i("from_ts_ns"), i("to_ts_ns"))),
            }
        } else {
            let Ok(env) = <crate::wire::Envelope as prost::Message>::decode(payload) else {
                return false;
            };
            let gap = match &env.payload {
                Some(crate::wire::envelope::Payload::Gap(g)) => {
                    Some((g.stream.clone(), g.reason.clone(), g.from_ts_ns, g.to_ts_ns))
                }
                _ => None,
            };
            Id {
                exchange: env.exchange,
                market: env.market,
                symbol: env.symbol,
                kind: env.r#type,
                ts: env.receive_ts_ns,
                gap,
            }
        };
        let Some(kind) = EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == id.kind)
        else {
            return false;
        };
        let (exchange, market) = (
            crate::sink::intern::intern(&id.exchange),
            crate::sink::intern::intern(&id.market),
        );
        match id.gap {
            Some((stream, gap_reason, from, to)) if kind == EventKind::Gap => {
                let r = crate::sink::intern::intern(&gap_reason);
                let r = if r.is_empty() { reason } else { r };
                self.note_parts(r, &stream, exchange, market, &id.symbol, (from, to));
            }
            _ => self.note_parts(
                reason,
                kind.as_str(),
                exchange,
                market,
                &id.symbol,
                (id.ts, id.ts),
            ),
        }
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
        let mut buf = std::mem::take(&mut self.buf);
        self.each_pending(|e| {
            buf.clear();
            if json {
                crate::encode::json::write_event(e, &mut buf);
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
            } else {
                crate::encode::protobuf::write_event(e, &mut buf);
            }
            send(e.header.exchange, e.header.market, &e.header.symbol, &buf)
        });
        self.buf = buf;
    }

    /// Each pending gap as a whole [`Record`] (both encodings, the JSON line with its `\n`), in
    /// `rec`, handed to `send`; stops at the first refusal.
    pub fn report_records(&mut self, rec: &mut Record, mut send: impl FnMut(&Record) -> bool) {
        self.each_pending(|e| {
            rec.kind = EventKind::Gap;
            rec.exchange = e.header.exchange;
            rec.market = e.header.market;
            set(&mut rec.symbol, &e.header.symbol);
            rec.recv_ts_ns = e.header.receive_ts_ns;
            rec.parsed_ts_ns = e.header.receive_ts_ns;
            rec.position = 0;
            rec.position_unique = false;
            rec.variant = "";
            rec.json.clear();
            crate::encode::json::write_event(e, &mut rec.json);
            rec.proto.clear();
            crate::encode::protobuf::write_event(e, &mut rec.proto);
            send(rec)
        });
    }

    /// The pending gaps, last noted first, as `gap` events to `send`; each accepted one is
    /// logged, counted and forgotten.
    fn each_pending(&mut self, mut send: impl FnMut(&Event) -> bool) {
        while let Some(d) = self.pending.last() {
            let e = &mut self.event;
            e.kind = Some(EventKind::Gap);
            e.header.exchange = d.exchange;
            e.header.market = d.market;
            set(&mut e.header.symbol, &d.symbol);
            e.header.exchange_ts_ns = 0;
            e.header.receive_ts_ns = d.to_ts_ns;
            set(&mut e.gap.stream, &d.stream);
            set(&mut e.gap.reason, d.reason);
            e.gap.from_ts_ns = d.from_ts_ns;
            e.gap.to_ts_ns = d.to_ts_ns;
            if !send(e) {
                return;
            }
            log::warn!(
                "event=sink_gap sink={} reason={} stream={} symbol={} from_ts_ns={} to_ts_ns={}",
                self.sink,
                d.reason,
                d.stream,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `gap` that Kafka itself could not deliver is announced again as itself.
    #[test]
    fn a_lost_gap_is_announced_again() {
        let mut d = Drops::default();
        let lost = br#"{"exchange":"binance","market":"spot","symbol":"BTCUSDT","type":"gap","exchange_ts_ns":0,"receive_ts_ns":9,"stream":"btcusdt@trade","reason":"disconnect","from_ts_ns":5,"to_ts_ns":9}"#;
        assert!(d.note_payload("sink_failed", true, lost));
        let mut sent = Vec::new();
        d.report(true, |_, _, symbol, payload| {
            sent.push((symbol.to_string(), payload.to_vec()));
            true
        });
        assert_eq!(sent.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&sent[0].1).unwrap();
        assert_eq!(v["stream"], "btcusdt@trade");
        assert_eq!(v["reason"], "disconnect");
        assert_eq!(
            (v["from_ts_ns"].as_i64(), v["to_ts_ns"].as_i64()),
            (Some(5), Some(9))
        );
        assert!(d.is_empty());
        // A lost trade becomes a gap of its type with the sink's reason.
        let trade = br#"{"exchange":"binance","market":"spot","symbol":"ETHUSDT","type":"trade","exchange_ts_ns":1,"receive_ts_ns":7,"trade_id":1,"price":"1","qty":"1","side":"buy"}"#;
        assert!(d.note_payload("sink_reset", true, trade));
        assert!(!d.note_payload("sink_reset", true, b"not json"));
    }
}
