//! Binance JSON stream payloads -> normalized events.
//!
//! The high-rate shapes go through [`fast`], a single scalar pass; everything else, and every
//! frame the fast path declines, is parsed in place with simd-json's tape (this module), which is
//! also the reference for what the fast path must produce.
//!
//! Each payload object is scanned once; its (mostly one-letter) keys are collected into [`Fields`] and
//! then interpreted by event type. Works for raw `/ws` payloads and combined-stream wrappers
//! `{"stream":..,"data":..}`, and for array payloads (`!markPrice@arr` style) element by element.

use crate::event::{Event, EventKind, set};
use crate::exchange::tape::{self, decimal, decimal_or_empty, levels, millis, text, uint};
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::wire::Side;
use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};
use simd_json::{Buffers, fill_tape_padded};

#[cfg(test)]
mod differential;
mod fast;

/// One parser thread's Binance decoder (spot or USD-M: same payload shapes).
pub struct BinanceDecoder {
    event: Event,
    buffers: Buffers,
    /// Reused tape; its lifetime is reset between frames (`Tape::reset`).
    tape: Tape<'static>,
    /// Combined-stream name of the last frame.
    stream: String,
    /// Try [`fast`] first (off only to measure or test the general path alone).
    fast_path: bool,
    /// Publish USD-M `@trade` records with `X` = `NA` (price and quantity 0, not market trades)
    /// instead of skipping them.
    pub keep_non_trade: bool,
}

impl BinanceDecoder {
    /// A decoder whose events say `exchange: "binance"` and `market`.
    pub fn new(market: &'static str) -> Self {
        BinanceDecoder {
            event: Event::new("binance", market),
            buffers: Buffers::new(64 * 1024),
            tape: Tape(Vec::with_capacity(1024)),
            stream: String::with_capacity(64),
            fast_path: true,
            keep_non_trade: false,
        }
    }

    /// A decoder that parses every frame with simd-json's tape, without the fast path: the
    /// reference the fast path is tested against, and the comparison in the benchmarks.
    pub fn general_only(market: &'static str) -> Self {
        BinanceDecoder {
            fast_path: false,
            ..Self::new(market)
        }
    }
}

impl Decoder for BinanceDecoder {
    fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        recv_ts_ns: i64,
        emit: &mut dyn FnMut(&mut Event),
    ) -> Result<Decoded, DecodeError> {
        if self.fast_path
            && fast::decode(buf, len, &mut self.event, &mut self.stream, recv_ts_ns).is_some()
        {
            emit(&mut self.event);
            return Ok(Decoded::Events(1));
        }
        let mut tape: Tape<'_> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let res = match fill_tape_padded(buf, len, &mut self.buffers, &mut tape) {
            Ok(()) => decode_root(
                tape.as_value(),
                &mut self.event,
                &mut self.stream,
                recv_ts_ns,
                self.keep_non_trade,
                emit,
            ),
            Err(_) => Err(DecodeError::Json),
        };
        self.tape = tape.reset();
        res
    }

    fn last_stream(&self) -> &str {
        &self.stream
    }
}

fn decode_root(
    root: Value<'_, '_>,
    ev: &mut Event,
    stream: &mut String,
    recv_ts_ns: i64,
    keep_non_trade: bool,
    emit: &mut dyn FnMut(&mut Event),
) -> Result<Decoded, DecodeError> {
    let obj = root.as_object().ok_or(DecodeError::Shape("<root>"))?;
    let mut data = None;
    let mut is_reply = false;
    let mut is_error = false;
    for (k, v) in obj.iter() {
        match k {
            "data" => data = Some(v),
            "stream" => {
                if let Some(name) = v.into_string()
                    && name.len() <= 128
                {
                    set(stream, name);
                }
            }
            "result" | "id" => is_reply = true,
            "error" => is_error = true,
            _ => {}
        }
    }
    if is_error {
        return Err(DecodeError::ExchangeError);
    }
    let payload = match data {
        Some(d) => d,
        None if is_reply => return Ok(Decoded::Control),
        None => root,
    };
    ev.header.receive_ts_ns = recv_ts_ns;
    if let Some(items) = payload.as_array() {
        let mut n = 0;
        for item in items.iter() {
            match decode_payload(item, ev, keep_non_trade)? {
                Decoded::Events(_) => {
                    emit(ev);
                    n += 1;
                }
                Decoded::Skipped(_) => {}
                other => return Ok(other),
            }
        }
        return Ok(Decoded::Events(n));
    }
    let d = decode_payload(payload, ev, keep_non_trade)?;
    if let Decoded::Events(_) = d {
        emit(ev);
    }
    Ok(d)
}

/// The keys Binance market-data payloads use. Unknown keys are ignored (forward compatible).
#[derive(Default)]
#[allow(non_snake_case)]
struct Fields<'t, 'i> {
    e: Option<&'i str>,
    E: Option<Value<'t, 'i>>,
    s: Option<Value<'t, 'i>>,
    t: Option<Value<'t, 'i>>,
    p: Option<Value<'t, 'i>>,
    q: Option<Value<'t, 'i>>,
    T: Option<Value<'t, 'i>>,
    m: Option<Value<'t, 'i>>,
    a: Option<Value<'t, 'i>>,
    f: Option<Value<'t, 'i>>,
    l: Option<Value<'t, 'i>>,
    U: Option<Value<'t, 'i>>,
    u: Option<Value<'t, 'i>>,
    pu: Option<Value<'t, 'i>>,
    b: Option<Value<'t, 'i>>,
    B: Option<Value<'t, 'i>>,
    A: Option<Value<'t, 'i>>,
    X: Option<Value<'t, 'i>>,
    nq: Option<Value<'t, 'i>>,
    P: Option<Value<'t, 'i>>,
    i: Option<Value<'t, 'i>>,
    r: Option<Value<'t, 'i>>,
    o: Option<Value<'t, 'i>>,
}

fn decode_payload(
    payload: Value<'_, '_>,
    ev: &mut Event,
    keep_non_trade: bool,
) -> Result<Decoded, DecodeError> {
    let obj = payload.as_object().ok_or(DecodeError::Shape("data"))?;
    let mut f = Fields::default();
    for (k, v) in obj.iter() {
        match k {
            "e" => f.e = Some(v.into_string().ok_or(DecodeError::Shape("e"))?),
            "E" => f.E = Some(v),
            "s" => f.s = Some(v),
            "t" => f.t = Some(v),
            "p" => f.p = Some(v),
            "q" => f.q = Some(v),
            "T" => f.T = Some(v),
            "m" => f.m = Some(v),
            "a" => f.a = Some(v),
            "f" => f.f = Some(v),
            "l" => f.l = Some(v),
            "U" => f.U = Some(v),
            "u" => f.u = Some(v),
            "pu" => f.pu = Some(v),
            "b" => f.b = Some(v),
            "B" => f.B = Some(v),
            "A" => f.A = Some(v),
            "X" => f.X = Some(v),
            "nq" => f.nq = Some(v),
            "P" => f.P = Some(v),
            "i" => f.i = Some(v),
            "r" => f.r = Some(v),
            "o" => f.o = Some(v),
            _ => {}
        }
    }
    ev.header.transaction_ts_ns = 0;
    match f.e {
        Some("trade") => {
            // USD-M `X` (Trade-Streams): MARKET, INSURANCE_FUND, ADL, or NA for records that are
            // not trades at all (price and quantity 0): those are skipped unless asked for.
            let trade_type = match f.X {
                None => "",
                Some(_) => match text(f.X, "X")? {
                    "MARKET" => "market",
                    "INSURANCE_FUND" => "insurance_fund",
                    "ADL" => "adl",
                    "NA" if !keep_non_trade => return Ok(Decoded::Skipped("non_trade")),
                    "NA" => "na",
                    _ => return Err(DecodeError::Shape("X")),
                },
            };
            symbol(ev, f.s)?;
            ev.header.exchange_ts_ns = millis(f.T, "T")?;
            let t = &mut ev.trade;
            t.trade_id = uint(f.t, "t")?;
            set(&mut t.price, decimal(f.p, "p")?);
            set(&mut t.qty, decimal(f.q, "q")?);
            t.set_side(side(f.m)?);
            set(&mut t.trade_type, trade_type);
            ev.kind = Some(EventKind::Trade);
        }
        Some("aggTrade") => {
            symbol(ev, f.s)?;
            ev.header.exchange_ts_ns = millis(f.T, "T")?;
            let t = &mut ev.agg_trade;
            t.agg_id = uint(f.a, "a")?;
            t.first_trade_id = uint(f.f, "f")?;
            t.last_trade_id = uint(f.l, "l")?;
            set(&mut t.price, decimal(f.p, "p")?);
            set(&mut t.qty, decimal(f.q, "q")?);
            t.set_side(side(f.m)?);
            set(&mut t.normal_qty, decimal_or_empty(f.nq, "nq")?);
            ev.kind = Some(EventKind::AggTrade);
        }
        Some("depthUpdate") => {
            symbol(ev, f.s)?;
            ev.header.exchange_ts_ns = millis(f.E, "E")?;
            ev.clear_depth();
            ev.depth.first_update_id = uint(f.U, "U")?;
            ev.depth.last_update_id = uint(f.u, "u")?;
            if f.pu.is_some() {
                ev.depth.prev_last_update_id = Some(uint(f.pu, "pu")?);
            }
            if f.T.is_some() {
                ev.header.transaction_ts_ns = millis(f.T, "T")?;
            }
            levels(&mut ev.depth.bids, f.b, "b")?;
            levels(&mut ev.depth.asks, f.a, "a")?;
            ev.kind = Some(EventKind::DepthDiff);
        }
        Some("bookTicker") => book_ticker(ev, &f)?,
        Some("markPriceUpdate") => {
            symbol(ev, f.s)?;
            ev.header.exchange_ts_ns = millis(f.E, "E")?;
            let m = &mut ev.mark_price;
            set(&mut m.mark_price, decimal(f.p, "p")?);
            set(&mut m.index_price, decimal_or_empty(f.i, "i")?);
            set(&mut m.estimated_settle_price, decimal_or_empty(f.P, "P")?);
            set(&mut m.funding_rate, decimal_or_empty(f.r, "r")?);
            m.next_funding_time_ns = match f.T {
                Some(_) => millis(f.T, "T")?,
                None => 0,
            };
            ev.kind = Some(EventKind::MarkPrice);
        }
        Some("forceOrder") => force_order(ev, f.o, f.E)?,
        Some("serverShutdown") => return Ok(Decoded::ServerShutdown),
        Some(_) => return Err(DecodeError::UnknownEvent),
        // bookTicker has no `e` (spot has no `E` either; USD-M adds `e`,`E`,`T` in newer payloads).
        None if f.u.is_some() && f.b.is_some() && f.a.is_some() => book_ticker(ev, &f)?,
        None => return Err(DecodeError::UnknownEvent),
    }
    Ok(Decoded::Events(1))
}

fn book_ticker(ev: &mut Event, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    symbol(ev, f.s)?;
    ev.header.exchange_ts_ns = match f.E {
        Some(_) => millis(f.E, "E")?,
        None => 0,
    };
    if f.T.is_some() {
        ev.header.transaction_ts_ns = millis(f.T, "T")?;
    }
    let b = &mut ev.book_ticker;
    b.update_id = uint(f.u, "u")?;
    set(&mut b.bid_price, decimal(f.b, "b")?);
    set(&mut b.bid_qty, decimal(f.B, "B")?);
    set(&mut b.ask_price, decimal(f.a, "a")?);
    set(&mut b.ask_qty, decimal(f.A, "A")?);
    ev.kind = Some(EventKind::BookTicker);
    Ok(())
}

/// `forceOrder`: the order sits in `o` with its own one-letter keys.
fn force_order(
    ev: &mut Event,
    o: Option<Value<'_, '_>>,
    e_time: Option<Value<'_, '_>>,
) -> Result<(), DecodeError> {
    let obj = o
        .and_then(|o| o.as_object())
        .ok_or(DecodeError::Shape("o"))?;
    let (mut s, mut side, mut ot, mut tif, mut q, mut p, mut ap, mut st, mut z, mut t) =
        (None, None, None, None, None, None, None, None, None, None);
    let mut last = None;
    for (k, v) in obj.iter() {
        match k {
            "s" => s = Some(v),
            "S" => side = Some(v),
            "o" => ot = Some(v),
            "f" => tif = Some(v),
            "q" => q = Some(v),
            "p" => p = Some(v),
            "ap" => ap = Some(v),
            "X" => st = Some(v),
            "z" => z = Some(v),
            "l" => last = Some(v),
            "T" => t = Some(v),
            _ => {}
        }
    }
    symbol(ev, s)?;
    ev.header.exchange_ts_ns = match t {
        Some(_) => millis(t, "o.T")?,
        None => millis(e_time, "E")?,
    };
    let l = &mut ev.liquidation;
    l.set_side(match side.and_then(|v| v.into_string()) {
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        _ => return Err(DecodeError::Shape("o.S")),
    });
    set(&mut l.order_type, text(ot, "o.o")?);
    set(&mut l.time_in_force, text(tif, "o.f")?);
    set(&mut l.price, decimal(p, "o.p")?);
    set(&mut l.avg_price, decimal(ap, "o.ap")?);
    set(&mut l.qty, decimal(q, "o.q")?);
    set(&mut l.filled_qty, decimal(z, "o.z")?);
    set(&mut l.status, text(st, "o.X")?);
    set(&mut l.last_filled_qty, decimal_or_empty(last, "o.l")?);
    ev.kind = Some(EventKind::Liquidation);
    Ok(())
}

/// The Binance `s` field into the event's symbol.
#[inline]
fn symbol(ev: &mut Event, v: Option<Value<'_, '_>>) -> Result<(), DecodeError> {
    set(&mut ev.header.symbol, tape::symbol(v, "s")?);
    Ok(())
}

#[inline]
fn side(v: Option<Value<'_, '_>>) -> Result<Side, DecodeError> {
    // `m`: is the buyer the maker? Then the taker sold.
    match v.and_then(|v| v.as_bool()) {
        Some(true) => Ok(Side::Sell),
        Some(false) => Ok(Side::Buy),
        None => Err(DecodeError::Shape("m")),
    }
}
