//! The Protobuf form of an event: an `Envelope` (see `proto/marketdata.proto`) encoded straight from the
//! reusable [`Event`] without building an owned `Envelope` (its `oneof` would drop and re-allocate the
//! payload for every message). `tests` below prove the bytes decode as `wire::Envelope`.

use crate::event::{Event, EventKind};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// Appends `ev` as an `Envelope` message (no length prefix).
pub fn write_event(ev: &Event, out: &mut Vec<u8>) {
    let Some(kind) = ev.kind else { return };
    let h = &ev.header;
    bytes_field(1, h.exchange.as_bytes(), out);
    bytes_field(2, h.market.as_bytes(), out);
    bytes_field(3, h.symbol.as_bytes(), out);
    bytes_field(4, kind.as_str().as_bytes(), out);
    int64_field(5, h.exchange_ts_ns, out);
    int64_field(6, h.receive_ts_ns, out);
    let tag = kind.proto_field();
    match kind {
        EventKind::Trade => message_field(tag, &ev.trade, out),
        EventKind::AggTrade => message_field(tag, &ev.agg_trade, out),
        EventKind::DepthDiff => message_field(tag, &ev.depth, out),
        EventKind::BookTicker => message_field(tag, &ev.book_ticker, out),
        EventKind::BookSnapshot => message_field(tag, &ev.book, out),
        EventKind::MarkPrice => message_field(tag, &ev.mark_price, out),
        EventKind::Liquidation => message_field(tag, &ev.liquidation, out),
        EventKind::OpenInterest => message_field(tag, &ev.open_interest, out),
        EventKind::LongShortRatio => message_field(tag, &ev.long_short_ratio, out),
        EventKind::FundingRate => message_field(tag, &ev.funding_rate, out),
        EventKind::Gap => message_field(tag, &ev.gap, out),
    }
}

/// Appends `ev` preceded by its varint length (the file sink's framing, as `writeDelimitedTo`).
pub fn write_event_delimited(ev: &Event, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    scratch.clear();
    write_event(ev, scratch);
    encode_varint(scratch.len() as u64, out);
    out.extend_from_slice(scratch);
}

fn bytes_field(tag: u32, v: &[u8], out: &mut Vec<u8>) {
    if v.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

fn int64_field(tag: u32, v: i64, out: &mut Vec<u8>) {
    if v == 0 {
        return;
    }
    encode_key(tag, WireType::Varint, out);
    encode_varint(v as u64, out);
}

fn message_field<M: Message>(tag: u32, m: &M, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    let len = m.encoded_len();
    encode_varint(len as u64, out);
    out.reserve(len);
    // `encode_raw`: `encode` would compute the whole length again before writing.
    m.encode_raw(out);
}

/// Length of the varint prefix for a message of `len` bytes (for size accounting).
pub fn delimited_len(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, envelope::Payload};

    #[test]
    fn decodes_as_envelope() {
        let mut ev = Event::new("binance", "spot");
        ev.kind = Some(EventKind::DepthDiff);
        ev.header.symbol.push_str("BTCUSDT");
        ev.header.exchange_ts_ns = 1_617_566_591_307_000_000;
        ev.header.receive_ts_ns = 1_617_566_591_308_000_123;
        ev.depth.first_update_id = 9;
        ev.depth.last_update_id = 11;
        ev.push_bid("55000.00000000", "135.66466600");
        ev.push_ask("58042.29000000", "0.00000000");
        let mut out = Vec::new();
        write_event(&ev, &mut out);
        let env = wire::Envelope::decode(out.as_slice()).unwrap();
        assert_eq!(env.exchange, "binance");
        assert_eq!(env.r#type, "depth_diff");
        assert_eq!(env.receive_ts_ns, 1_617_566_591_308_000_123);
        let Some(Payload::DepthDiff(d)) = env.payload else {
            panic!("wrong payload")
        };
        assert_eq!(d.bids[0].price, "55000.00000000");
        assert_eq!(d.asks[0].qty, "0.00000000");
        assert_eq!(d.last_update_id, 11);
        assert_eq!(d.prev_last_update_id, None);
    }
}
