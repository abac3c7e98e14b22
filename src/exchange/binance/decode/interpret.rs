//! The one interpretation of Binance payloads, written once over [`Fields`]: the fast path's scan
//! (`fast.rs`) and the general path's simd-json tape (`mod.rs`) each collect a payload's members
//! and answer the same questions, so the two cannot drift apart in what an event means; they
//! differ only in what JSON they can read.

use crate::event::{Event, EventKind, set};
use crate::exchange::{DecodeError, Decoded, is_decimal};
use crate::wire::Side;

/// The payload keys any Binance shape reads.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key {
    e,
    E,
    s,
    t,
    p,
    q,
    T,
    m,
    a,
    f,
    l,
    U,
    u,
    pu,
    b,
    B,
    A,
    X,
    nq,
    P,
    i,
    r,
}

impl Key {
    /// The key as Binance spells it (error reasons name it).
    pub(super) const fn name(self) -> &'static str {
        match self {
            Key::e => "e",
            Key::E => "E",
            Key::s => "s",
            Key::t => "t",
            Key::p => "p",
            Key::q => "q",
            Key::T => "T",
            Key::m => "m",
            Key::a => "a",
            Key::f => "f",
            Key::l => "l",
            Key::U => "U",
            Key::u => "u",
            Key::pu => "pu",
            Key::b => "b",
            Key::B => "B",
            Key::A => "A",
            Key::X => "X",
            Key::nq => "nq",
            Key::P => "P",
            Key::i => "i",
            Key::r => "r",
        }
    }
}

/// One payload object's members, as a decoding path collected them.
pub(super) trait Fields {
    /// Whether this reader collects the members of every shape (the general path); the fast path
    /// collects those of trade, aggTrade, depthUpdate and bookTicker only and declines the rest.
    const ALL_SHAPES: bool;
    fn has(&self, k: Key) -> bool;
    /// A string member's contents (`None`: absent or not a string).
    fn text(&self, k: Key) -> Option<&str>;
    /// A non-negative integer member.
    fn uint(&self, k: Key) -> Option<u64>;
    fn boolean(&self, k: Key) -> Option<bool>;
    /// The depth levels `b` and `a` into the event (the fast path copied them while scanning).
    fn depth_levels(&self, ev: &mut Event) -> Result<(), DecodeError>;
    /// `forceOrder`: the order in its nested `o` object (general path only).
    fn force_order(&self, ev: &mut Event) -> Result<(), DecodeError>;
}

/// Interprets a payload into `ev`.
#[inline(always)]
pub(super) fn payload<F: Fields>(
    f: &F,
    ev: &mut Event,
    keep_non_trade: bool,
) -> Result<Decoded, DecodeError> {
    let e = match f.has(Key::e) {
        true => Some(f.text(Key::e).ok_or(DecodeError::Shape("e"))?),
        false => None,
    };
    ev.header.transaction_ts_ns = 0;
    match e {
        Some("trade") => {
            // USD-M `X` (Trade-Streams): MARKET, INSURANCE_FUND, ADL, or NA for records that are
            // not trades at all (price and quantity 0): those are skipped unless asked for.
            let trade_type = match f.has(Key::X) {
                false => "",
                true => match f.text(Key::X).ok_or(DecodeError::Shape("X"))? {
                    "MARKET" => "market",
                    "INSURANCE_FUND" => "insurance_fund",
                    "ADL" => "adl",
                    "NA" if !keep_non_trade => return Ok(Decoded::Skipped("non_trade")),
                    "NA" => "na",
                    _ => return Err(DecodeError::Shape("X")),
                },
            };
            symbol(f, ev)?;
            ev.header.exchange_ts_ns = millis(f, Key::T)?;
            let t = &mut ev.trade;
            t.trade_id = uint(f, Key::t)?;
            set(&mut t.price, decimal(f, Key::p)?);
            set(&mut t.qty, decimal(f, Key::q)?);
            t.set_side(side(f)?);
            set(&mut t.trade_type, trade_type);
            ev.kind = Some(EventKind::Trade);
        }
        Some("aggTrade") => {
            symbol(f, ev)?;
            ev.header.exchange_ts_ns = millis(f, Key::T)?;
            let t = &mut ev.agg_trade;
            t.agg_id = uint(f, Key::a)?;
            t.first_trade_id = uint(f, Key::f)?;
            t.last_trade_id = uint(f, Key::l)?;
            set(&mut t.price, decimal(f, Key::p)?);
            set(&mut t.qty, decimal(f, Key::q)?);
            t.set_side(side(f)?);
            set(&mut t.normal_qty, decimal_or_empty(f, Key::nq)?);
            ev.kind = Some(EventKind::AggTrade);
        }
        Some("depthUpdate") => {
            symbol(f, ev)?;
            ev.header.exchange_ts_ns = millis(f, Key::E)?;
            f.depth_levels(ev)?;
            ev.depth.first_update_id = uint(f, Key::U)?;
            ev.depth.last_update_id = uint(f, Key::u)?;
            if f.has(Key::pu) {
                ev.depth.prev_last_update_id = Some(uint(f, Key::pu)?);
            }
            if f.has(Key::T) {
                ev.header.transaction_ts_ns = millis(f, Key::T)?;
            }
            ev.kind = Some(EventKind::DepthDiff);
        }
        Some("bookTicker") => book_ticker(f, ev)?,
        Some(_) if !F::ALL_SHAPES => return Err(DecodeError::UnknownEvent),
        Some("markPriceUpdate") => {
            symbol(f, ev)?;
            ev.header.exchange_ts_ns = millis(f, Key::E)?;
            let m = &mut ev.mark_price;
            set(&mut m.mark_price, decimal(f, Key::p)?);
            set(&mut m.index_price, decimal_or_empty(f, Key::i)?);
            set(&mut m.estimated_settle_price, decimal_or_empty(f, Key::P)?);
            set(&mut m.funding_rate, decimal_or_empty(f, Key::r)?);
            m.next_funding_time_ns = match f.has(Key::T) {
                true => millis(f, Key::T)?,
                false => 0,
            };
            ev.kind = Some(EventKind::MarkPrice);
        }
        Some("forceOrder") => f.force_order(ev)?,
        Some("serverShutdown") => return Ok(Decoded::ServerShutdown),
        Some(_) => return Err(DecodeError::UnknownEvent),
        // bookTicker has no `e` (spot has no `E` either; USD-M adds `e`,`E`,`T` in newer payloads).
        None if f.has(Key::u) && f.has(Key::b) && f.has(Key::a) => book_ticker(f, ev)?,
        None => return Err(DecodeError::UnknownEvent),
    }
    Ok(Decoded::Events(1))
}

#[inline(always)]
fn book_ticker<F: Fields>(f: &F, ev: &mut Event) -> Result<(), DecodeError> {
    symbol(f, ev)?;
    ev.header.exchange_ts_ns = match f.has(Key::E) {
        true => millis(f, Key::E)?,
        false => 0,
    };
    if f.has(Key::T) {
        ev.header.transaction_ts_ns = millis(f, Key::T)?;
    }
    let b = &mut ev.book_ticker;
    b.update_id = uint(f, Key::u)?;
    set(&mut b.bid_price, decimal(f, Key::b)?);
    set(&mut b.bid_qty, decimal(f, Key::B)?);
    set(&mut b.ask_price, decimal(f, Key::a)?);
    set(&mut b.ask_qty, decimal(f, Key::A)?);
    ev.kind = Some(EventKind::BookTicker);
    Ok(())
}

#[inline(always)]
fn symbol<F: Fields>(f: &F, ev: &mut Event) -> Result<(), DecodeError> {
    let s = f.text(Key::s).ok_or(DecodeError::Shape("s"))?;
    if s.is_empty() || s.len() > 64 {
        return Err(DecodeError::Shape("s"));
    }
    set(&mut ev.header.symbol, s);
    Ok(())
}

#[inline(always)]
fn uint<F: Fields>(f: &F, k: Key) -> Result<u64, DecodeError> {
    f.uint(k).ok_or_else(|| DecodeError::Shape(k.name()))
}

#[inline(always)]
fn millis<F: Fields>(f: &F, k: Key) -> Result<i64, DecodeError> {
    i64::try_from(uint(f, k)?)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or_else(|| DecodeError::Shape(k.name()))
}

#[inline(always)]
fn decimal<F: Fields>(f: &F, k: Key) -> Result<&str, DecodeError> {
    let s = f.text(k).ok_or_else(|| DecodeError::Shape(k.name()))?;
    if is_decimal(s) {
        Ok(s)
    } else {
        Err(DecodeError::BadDecimal(k.name()))
    }
}

/// A decimal, or `""` where the member is absent or an empty string (no funding on delivery
/// contracts).
#[inline(always)]
fn decimal_or_empty<F: Fields>(f: &F, k: Key) -> Result<&str, DecodeError> {
    if !f.has(k) || f.text(k) == Some("") {
        return Ok("");
    }
    decimal(f, k)
}

#[inline(always)]
fn side<F: Fields>(f: &F) -> Result<Side, DecodeError> {
    // `m`: is the buyer the maker? Then the taker sold.
    match f.boolean(Key::m) {
        Some(true) => Ok(Side::Sell),
        Some(false) => Ok(Side::Buy),
        None => Err(DecodeError::Shape("m")),
    }
}
