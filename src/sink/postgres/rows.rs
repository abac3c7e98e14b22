//! Records into rows: each record's JSON Lines object becomes one binary COPY row of its event
//! type's table, column by column, the values taken as the encoder wrote them (no tree, no
//! allocation in steady state). A batch is one buffer per table, handed whole to the writer.

use super::fields::{Fields, Val, parse_i64, unescape};
use super::pgbinary::CopyBuf;
use super::schema::{Col, Table};
use crate::encode::record::Record;

/// Rows waiting to be written, one binary COPY buffer per table (indexed like the tables).
pub struct Batch {
    pub bufs: Vec<CopyBuf>,
    pub rows: usize,
    /// Realtime nanoseconds of the first row (the batch goes after `batch_interval`).
    pub oldest_ns: i64,
}

impl Batch {
    pub fn new(tables: usize) -> Batch {
        Batch {
            bufs: (0..tables).map(|_| CopyBuf::default()).collect(),
            rows: 0,
            oldest_ns: 0,
        }
    }

    pub fn clear(&mut self) {
        for b in &mut self.bufs {
            b.clear();
        }
        self.rows = 0;
    }
}

/// Builds rows; holds the scratch space reused from row to row.
#[derive(Default)]
pub struct RowBuilder {
    fields: Fields,
    text: String,
}

/// A JSONB value PostgreSQL would refuse as a whole (`\u0000` in a string): written as NULL.
fn jsonb_refuses(json: &[u8]) -> bool {
    json.windows(6).any(|w| w == b"\\u0000")
}

impl RowBuilder {
    /// Appends `rec` as a row of `table` to `buf`; `false` (nothing appended) when the record is
    /// not a JSON object or a value does not fit its column.
    pub fn add(&mut self, table: &Table, buf: &mut CopyBuf, rec: &Record) -> bool {
        let line = rec.json.strip_suffix(b"\n").unwrap_or(&rec.json);
        let RowBuilder { fields, text } = self;
        if !fields.scan(line) {
            return false;
        }
        buf.begin_row();
        for (col, ty) in &table.columns {
            if *ty == Col::Raw {
                if rec.raw.is_empty() || jsonb_refuses(&rec.raw) {
                    buf.null();
                } else {
                    buf.jsonb(&rec.raw);
                }
                continue;
            }
            let key = match ty {
                Col::Time(src) => src,
                _ => col,
            };
            let ok = match (ty, fields.get(line, key)) {
                (_, None | Some(Val::Null)) => {
                    buf.null();
                    true
                }
                (Col::Time(_), Some(Val::Num(d))) => {
                    parse_i64(d).map(|ns| buf.timestamptz_ns(ns)).is_some()
                }
                (Col::Int8, Some(Val::Num(d))) => parse_i64(d).map(|n| buf.int8(n)).is_some(),
                (Col::Numeric, Some(Val::Str(b""))) => {
                    buf.null();
                    true
                }
                (Col::Numeric, Some(Val::Str(d) | Val::Num(d))) => {
                    std::str::from_utf8(d).is_ok_and(|d| buf.numeric(d))
                }
                (Col::Bool, Some(Val::Bool(b))) => {
                    buf.bool(b);
                    true
                }
                (Col::Text, Some(Val::Str(s))) => unescape(s, text).map(|t| buf.text(t)).is_some(),
                (Col::Text, Some(Val::Num(v) | Val::Json(v))) => {
                    std::str::from_utf8(v).map(|t| buf.text(t)).is_ok()
                }
                (Col::Text, Some(Val::Bool(b))) => {
                    buf.text(if b { "true" } else { "false" });
                    true
                }
                (Col::Jsonb, Some(_)) => match fields.raw(line, key) {
                    Some(v) if !jsonb_refuses(v) => {
                        buf.jsonb(v);
                        true
                    }
                    _ => false,
                },
                _ => false,
            };
            if !ok {
                buf.abandon_row();
                return false;
            }
        }
        buf.end_row();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::sink::postgres::schema::tables;

    fn record(kind: EventKind, json: &str) -> Record {
        let mut r = Record::with_capacity(64);
        r.kind = kind;
        r.json.extend_from_slice(json.as_bytes());
        r
    }

    #[test]
    fn a_trade_becomes_one_row_and_bad_values_none() {
        let tables = tables();
        let t = &tables[EventKind::Trade as usize];
        let mut b = RowBuilder::default();
        let mut buf = CopyBuf::default();
        let ok = record(
            EventKind::Trade,
            "{\"type\":\"trade\",\"exchange\":\"binance\",\"market\":\"spot\",\"symbol\":\"BTCUSDT\",\"trade_id\":1,\"price\":\"61837.63000000\",\"qty\":\"0.00100000\",\"side\":\"buy\",\"exchange_ts_ns\":1700000000000000000,\"receive_ts_ns\":1700000000000000001}\n",
        );
        assert!(b.add(t, &mut buf, &ok));
        assert_eq!(buf.rows(), 1);
        for bad in [
            "not json",
            "{\"trade_id\":\"x\"}",
            "{\"trade_id\":1.5}",
            "{\"price\":\"1e5\"}",
            "{\"symbol\":\"a\\u0000b\"}",
            "{\"exchange_ts_ns\":true}",
        ] {
            assert!(!b.add(t, &mut buf, &record(EventKind::Trade, bad)), "{bad}");
        }
        assert_eq!(buf.rows(), 1);
        assert_eq!(buf.row_range(0, 1).len(), buf.buf.len() - 19);
    }
}
