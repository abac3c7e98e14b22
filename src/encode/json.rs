//! The JSON Lines form of an event: one object per line, decimals as strings with the exchange's digits,
//! ids and timestamps as integers. Written by hand (no serde) so it allocates nothing.

use crate::event::{Event, EventKind, Levels};
use crate::wire::Side;

/// Appends `ev` as one JSON object followed by `\n`.
pub fn write_event(ev: &Event, out: &mut Vec<u8>) {
    let Some(kind) = ev.kind else { return };
    let h = &ev.header;
    out.extend_from_slice(b"{\"exchange\":");
    string(out, h.exchange);
    out.extend_from_slice(b",\"market\":");
    string(out, h.market);
    out.extend_from_slice(b",\"symbol\":");
    string(out, &h.symbol);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"exchange_ts_ns\":");
    int(out, h.exchange_ts_ns);
    out.extend_from_slice(b",\"receive_ts_ns\":");
    int(out, h.receive_ts_ns);
    if h.transaction_ts_ns != 0 {
        key(out, "transaction_ts_ns");
        int(out, h.transaction_ts_ns);
    }
    match kind {
        EventKind::Trade => {
            let t = &ev.trade;
            field_u64(out, "trade_id", t.trade_id);
            field_str(out, "price", &t.price);
            field_str(out, "qty", &t.qty);
            field_side(out, t.side());
            if !t.trade_type.is_empty() {
                field_str(out, "trade_type", &t.trade_type);
            }
            if !t.trade_id_text.is_empty() {
                field_str(out, "trade_id_text", &t.trade_id_text);
            }
            if t.trade_seq != 0 {
                field_u64(out, "trade_seq", t.trade_seq);
            }
            opt_str(out, "mark_price", &t.mark_price);
            opt_str(out, "index_price", &t.index_price);
            opt_str(out, "iv", &t.iv);
            opt_str(out, "liquidation", &t.liquidation);
            if let Some(d) = t.tick_direction {
                key(out, "tick_direction");
                int(out, i64::from(d));
            }
            opt_str(out, "block_trade_id", &t.block_trade_id);
            opt_str(out, "contracts", &t.contracts);
            opt_str(out, "combo_id", &t.combo_id);
            opt_str(out, "combo_trade_id", &t.combo_trade_id);
        }
        EventKind::AggTrade => {
            let t = &ev.agg_trade;
            field_u64(out, "agg_id", t.agg_id);
            field_u64(out, "first_trade_id", t.first_trade_id);
            field_u64(out, "last_trade_id", t.last_trade_id);
            field_str(out, "price", &t.price);
            field_str(out, "qty", &t.qty);
            field_side(out, t.side());
            if !t.normal_qty.is_empty() {
                field_str(out, "normal_qty", &t.normal_qty);
            }
        }
        EventKind::DepthDiff => {
            let d = &ev.depth;
            field_u64(out, "first_update_id", d.first_update_id);
            field_u64(out, "last_update_id", d.last_update_id);
            if let Some(pu) = d.prev_last_update_id {
                field_u64(out, "prev_last_update_id", pu);
            }
            out.extend_from_slice(b",\"bids\":");
            levels(out, &d.bids);
            out.extend_from_slice(b",\"asks\":");
            levels(out, &d.asks);
            if d.resyncing {
                out.extend_from_slice(b",\"resyncing\":true");
            }
            if d.snapshot {
                out.extend_from_slice(b",\"snapshot\":true");
            }
            if let Some(c) = d.checksum {
                key(out, "checksum");
                int(out, c as i64);
            }
        }
        EventKind::MarkPrice => {
            let m = &ev.mark_price;
            field_str(out, "mark_price", &m.mark_price);
            field_str(out, "index_price", &m.index_price);
            field_str(out, "estimated_settle_price", &m.estimated_settle_price);
            field_str(out, "funding_rate", &m.funding_rate);
            key(out, "next_funding_time_ns");
            int(out, m.next_funding_time_ns);
            opt_str(out, "funding_8h", &m.funding_8h);
            opt_str(out, "mark_iv", &m.mark_iv);
            opt_str(out, "underlying_price", &m.underlying_price);
            opt_str(out, "underlying_index", &m.underlying_index);
            opt_str(out, "delta", &m.delta);
            opt_str(out, "gamma", &m.gamma);
            opt_str(out, "vega", &m.vega);
            opt_str(out, "theta", &m.theta);
            opt_str(out, "rho", &m.rho);
            opt_str(out, "bid_iv", &m.bid_iv);
            opt_str(out, "ask_iv", &m.ask_iv);
            opt_str(out, "interest_rate", &m.interest_rate);
            opt_str(out, "interest_value", &m.interest_value);
            opt_str(out, "settlement_price", &m.settlement_price);
        }
        EventKind::Liquidation => {
            let l = &ev.liquidation;
            field_side(out, l.side());
            field_str(out, "order_type", &l.order_type);
            field_str(out, "time_in_force", &l.time_in_force);
            field_str(out, "price", &l.price);
            field_str(out, "avg_price", &l.avg_price);
            field_str(out, "qty", &l.qty);
            field_str(out, "filled_qty", &l.filled_qty);
            field_str(out, "status", &l.status);
            if !l.last_filled_qty.is_empty() {
                field_str(out, "last_filled_qty", &l.last_filled_qty);
            }
            if !l.position_side.is_empty() {
                field_str(out, "position_side", &l.position_side);
            }
        }
        EventKind::OpenInterest => {
            let o = &ev.open_interest;
            field_str(out, "open_interest", &o.open_interest);
            if !o.open_interest_value.is_empty() {
                field_str(out, "open_interest_value", &o.open_interest_value);
            }
            if !o.open_interest_ccy.is_empty() {
                field_str(out, "open_interest_ccy", &o.open_interest_ccy);
            }
            if !o.open_interest_usd.is_empty() {
                field_str(out, "open_interest_usd", &o.open_interest_usd);
            }
        }
        EventKind::LongShortRatio => {
            let r = &ev.long_short_ratio;
            field_str(out, "kind", &r.kind);
            field_str(out, "period", &r.period);
            field_str(out, "long_short_ratio", &r.long_short_ratio);
            field_str(out, "long_account", &r.long_account);
            field_str(out, "short_account", &r.short_account);
        }
        EventKind::FundingRate => {
            let f = &ev.funding_rate;
            field_str(out, "funding_rate", &f.funding_rate);
            key(out, "funding_time_ns");
            int(out, f.funding_time_ns);
            field_str(out, "mark_price", &f.mark_price);
            if !f.next_funding_rate.is_empty() {
                field_str(out, "next_funding_rate", &f.next_funding_rate);
            }
            if f.next_funding_time_ns != 0 {
                key(out, "next_funding_time_ns");
                int(out, f.next_funding_time_ns);
            }
        }
        EventKind::Gap => {
            let g = &ev.gap;
            field_str(out, "stream", &g.stream);
            field_str(out, "reason", &g.reason);
            key(out, "from_ts_ns");
            int(out, g.from_ts_ns);
            key(out, "to_ts_ns");
            int(out, g.to_ts_ns);
        }
        EventKind::VolatilityIndex => {
            let v = &ev.volatility_index;
            field_str(out, "index_name", &v.index_name);
            field_str(out, "volatility", &v.volatility);
        }
        EventKind::BookSnapshot => {
            let b = &ev.book;
            field_u64(out, "update_id", b.update_id);
            field_u64(out, "depth", b.depth as u64);
            out.extend_from_slice(b",\"bids\":");
            levels(out, &b.bids);
            out.extend_from_slice(b",\"asks\":");
            levels(out, &b.asks);
        }
        EventKind::BookTicker => {
            let b = &ev.book_ticker;
            field_u64(out, "update_id", b.update_id);
            field_str(out, "bid_price", &b.bid_price);
            field_str(out, "bid_qty", &b.bid_qty);
            field_str(out, "ask_price", &b.ask_price);
            field_str(out, "ask_qty", &b.ask_qty);
        }
    }
    out.extend_from_slice(b"}\n");
}

fn levels(out: &mut Vec<u8>, levels: &Levels) {
    out.push(b'[');
    for (i, (price, qty)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        string(out, price);
        out.push(b',');
        string(out, qty);
        out.push(b']');
    }
    out.push(b']');
}

fn field_side(out: &mut Vec<u8>, side: Side) {
    out.extend_from_slice(match side {
        Side::Buy => b",\"side\":\"buy\"".as_slice(),
        Side::Sell => b",\"side\":\"sell\"".as_slice(),
        Side::Unspecified => b",\"side\":null".as_slice(),
    });
}

fn field_u64(out: &mut Vec<u8>, name: &str, v: u64) {
    key(out, name);
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// A string field written only when not empty (fields only some exchanges send).
fn opt_str(out: &mut Vec<u8>, name: &str, v: &str) {
    if !v.is_empty() {
        field_str(out, name, v);
    }
}

fn field_str(out: &mut Vec<u8>, name: &str, v: &str) {
    key(out, name);
    string(out, v);
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Writes `s` as a JSON string, escaping what JSON requires (exchange text is not trusted).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_quotes() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\nd\u{1}e");
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#""a\"b\\c\nd\u0001e""#);
    }
}
