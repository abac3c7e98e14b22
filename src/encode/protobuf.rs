//! The Protobuf form of an event: an `Envelope` (see `proto/marketdata.proto`) encoded straight from the
//! reusable [`Event`] without building an owned `Envelope` (its `oneof` would drop and re-allocate the
//! payload for every message). `tests` below prove the bytes decode as `wire::Envelope`.

use crate::event::{BookSnapshot, DepthDiff, Event, EventKind, Levels};
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
    int64_field(7, h.transaction_ts_ns, out);
    let tag = kind.proto_field();
    match kind {
        EventKind::Trade => message_field(tag, &ev.trade, out),
        EventKind::AggTrade => message_field(tag, &ev.agg_trade, out),
        EventKind::DepthDiff => depth_field(tag, &ev.depth, out),
        EventKind::BookTicker => message_field(tag, &ev.book_ticker, out),
        EventKind::BookSnapshot => book_field(tag, &ev.book, out),
        EventKind::MarkPrice => message_field(tag, &ev.mark_price, out),
        EventKind::Liquidation => message_field(tag, &ev.liquidation, out),
        EventKind::OpenInterest => message_field(tag, &ev.open_interest, out),
        EventKind::LongShortRatio => message_field(tag, &ev.long_short_ratio, out),
        EventKind::FundingRate => message_field(tag, &ev.funding_rate, out),
        EventKind::VolatilityIndex => message_field(tag, &ev.volatility_index, out),
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
    varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

fn int64_field(tag: u32, v: i64, out: &mut Vec<u8>) {
    if v == 0 {
        return;
    }
    encode_key(tag, WireType::Varint, out);
    varint(v as u64, out);
}

fn message_field<M: Message>(tag: u32, m: &M, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    let len = m.encoded_len();
    varint(len as u64, out);
    out.reserve(len);
    // `encode_raw`: `encode` would compute the whole length again before writing.
    m.encode_raw(out);
}

// Depth diffs and book snapshots are most of the traffic and mostly levels: they are written by
// hand (the same bytes prost writes, proven by the tests below) with each level's length computed
// once and single-byte varints written directly, instead of prost's generic per-level passes.

#[inline]
fn varint(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        encode_varint(v, out);
    }
}

#[inline]
fn varint_len(v: u64) -> usize {
    if v < 0x80 { 1 } else { encoded_len_varint(v) }
}

/// Bytes of one `Level` message: its non-empty strings, each with a key and a length.
#[inline]
fn level_len(price: &str, qty: &str) -> usize {
    let str_len = |s: &str| {
        if s.is_empty() {
            0
        } else {
            1 + varint_len(s.len() as u64) + s.len()
        }
    };
    str_len(price) + str_len(qty)
}

#[inline]
fn levels_len(tag_len: usize, ls: &Levels) -> usize {
    ls.iter()
        .map(|(price, qty)| {
            let n = level_len(price, qty);
            tag_len + varint_len(n as u64) + n
        })
        .sum()
}

#[inline]
fn write_levels(tag: u32, ls: &Levels, out: &mut Vec<u8>) {
    let key = ((tag << 3) | 2) as u8; // tags 2..=4: one-byte keys
    for (price, qty) in ls {
        out.push(key);
        varint(level_len(price, qty) as u64, out);
        for (t, v) in [(0x0au8, price), (0x12u8, qty)] {
            if !v.is_empty() {
                out.push(t);
                varint(v.len() as u64, out);
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
}

fn uint_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

fn uint_write(key: u8, v: u64, out: &mut Vec<u8>) {
    if v != 0 {
        out.push(key);
        varint(v, out);
    }
}

fn depth_field(tag: u32, d: &DepthDiff, out: &mut Vec<u8>) {
    let len = uint_len(d.first_update_id)
        + uint_len(d.last_update_id)
        + levels_len(1, &d.bids)
        + levels_len(1, &d.asks)
        + d.prev_last_update_id.map_or(0, |v| 1 + varint_len(v))
        + if d.resyncing { 2 } else { 0 }
        + if d.snapshot { 2 } else { 0 }
        + d.checksum.map_or(0, |c| 1 + varint_len(c as i64 as u64));
    encode_key(tag, WireType::LengthDelimited, out);
    varint(len as u64, out);
    out.reserve(len);
    uint_write(0x08, d.first_update_id, out);
    uint_write(0x10, d.last_update_id, out);
    write_levels(3, &d.bids, out);
    write_levels(4, &d.asks, out);
    if let Some(v) = d.prev_last_update_id {
        // `optional`: present even when 0.
        out.push(0x28);
        varint(v, out);
    }
    if d.resyncing {
        out.extend_from_slice(&[0x30, 1]);
    }
    if d.snapshot {
        out.extend_from_slice(&[0x38, 1]);
    }
    if let Some(c) = d.checksum {
        // `optional int32`: present even when 0; negative values sign-extend to 10 bytes.
        out.push(0x40);
        varint(c as i64 as u64, out);
    }
}

fn book_field(tag: u32, b: &BookSnapshot, out: &mut Vec<u8>) {
    let len = uint_len(b.update_id)
        + levels_len(1, &b.bids)
        + levels_len(1, &b.asks)
        + uint_len(b.depth as u64);
    encode_key(tag, WireType::LengthDelimited, out);
    varint(len as u64, out);
    out.reserve(len);
    uint_write(0x08, b.update_id, out);
    write_levels(2, &b.bids, out);
    write_levels(3, &b.asks, out);
    uint_write(0x20, b.depth as u64, out);
}

/// Length of the varint prefix for a message of `len` bytes (for size accounting).
pub fn delimited_len(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, envelope::Payload};

    fn levels(ls: &[(&str, &str)]) -> Levels {
        let mut out = Levels::default();
        for (p, q) in ls {
            out.push(p, q);
        }
        out
    }

    #[test]
    fn hand_written_depth_and_book_encoding_is_prosts() {
        let long = "9".repeat(200);
        let twenty: Vec<String> = (0..20).map(|i| format!("{i}.01")).collect();
        for d in [
            DepthDiff::default(),
            DepthDiff {
                first_update_id: 1,
                last_update_id: 300,
                bids: levels(&[("1.5", "0"), ("", "2"), (&long, "3")]),
                asks: levels(&[("2.25", "")]),
                prev_last_update_id: Some(0),
                resyncing: true,
                snapshot: true,
                checksum: Some(-1_234_567_890),
            },
            DepthDiff {
                first_update_id: u64::MAX,
                last_update_id: 1 << 40,
                bids: levels(
                    &twenty
                        .iter()
                        .map(|p| (p.as_str(), "1.00000000"))
                        .collect::<Vec<_>>(),
                ),
                asks: Levels::default(),
                prev_last_update_id: Some(77),
                resyncing: false,
                snapshot: false,
                checksum: Some(0),
            },
        ] {
            let mut ours = Vec::new();
            depth_field(12, &d, &mut ours);
            let mut theirs = Vec::new();
            prost::encoding::message::encode(12, &d.to_wire(), &mut theirs);
            assert_eq!(ours, theirs, "{d:?}");
        }
        for b in [
            BookSnapshot::default(),
            BookSnapshot {
                update_id: 5,
                bids: levels(&[("1", "2"), (&long, &long)]),
                asks: levels(&[("3", "4")]),
                depth: 20,
            },
        ] {
            let mut ours = Vec::new();
            book_field(14, &b, &mut ours);
            let mut theirs = Vec::new();
            prost::encoding::message::encode(14, &b.to_wire(), &mut theirs);
            assert_eq!(ours, theirs, "{b:?}");
        }
    }

    #[test]
    fn varints_are_prosts() {
        let mut values: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        values.extend([0, u64::MAX, 1_617_566_591_308_000_123, (-5i64) as u64]);
        for v in values {
            let (mut ours, mut theirs) = (vec![7u8], vec![7u8]);
            varint(v, &mut ours);
            encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
        }
    }

    #[test]
    fn decodes_as_envelope() {
        let mut ev = Event::new("binance", "spot");
        ev.kind = Some(EventKind::DepthDiff);
        ev.header.symbol.push_str("BTCUSDT");
        ev.header.exchange_ts_ns = 1_617_566_591_307_000_000;
        ev.header.receive_ts_ns = 1_617_566_591_308_000_123;
        ev.depth.first_update_id = 9;
        ev.depth.last_update_id = 11;
        ev.depth.bids.push("55000.00000000", "135.66466600");
        ev.depth.asks.push("58042.29000000", "0.00000000");
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
