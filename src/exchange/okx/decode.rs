//! OKX v5 pushes -> normalized events, parsed in place with simd-json's tape.
//!
//! A push is `{"arg":{"channel":..,"instId"|"instType":..},"action"?:..,"data":[..]}`; every
//! element of `data` is one event (a `liquidation-orders` element one per `details` entry).
//! Replies are `{"event":"subscribe"|"unsubscribe"|"error"|"notice",..}`: acknowledgements are
//! control frames, `error` (e.g. `60018`, an unknown instrument) is counted as an exchange error,
//! and `notice` `64008` (the connection closes soon for an upgrade) starts a rollover like
//! Binance's `serverShutdown`. Keys are matched whatever their order; unknown keys are ignored.

use crate::event::{Event, EventKind, set};
use crate::exchange::tape::{
    self, Field, decimal, decimal_or_empty, int, levels, millis_str, text, uint, uint_str,
};
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::wire::Side;
use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};
use simd_json::{Buffers, fill_tape_padded};

/// One parser thread's OKX decoder.
pub struct OkxDecoder {
    event: Event,
    buffers: Buffers,
    /// Reused tape; its lifetime is reset between frames (`Tape::reset`).
    tape: Tape<'static>,
    /// `<channel>:<instId|instType>` of the last push.
    stream: String,
}

impl Default for OkxDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl OkxDecoder {
    pub fn new() -> Self {
        OkxDecoder {
            event: Event::new("okx", "spot"),
            buffers: Buffers::new(64 * 1024),
            tape: Tape(Vec::with_capacity(1024)),
            stream: String::with_capacity(64),
        }
    }
}

impl Decoder for OkxDecoder {
    fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        recv_ts_ns: i64,
        emit: &mut dyn FnMut(&mut Event),
    ) -> Result<Decoded, DecodeError> {
        let mut tape: Tape<'_> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let res = match fill_tape_padded(buf, len, &mut self.buffers, &mut tape) {
            Ok(()) => decode_root(
                tape.as_value(),
                &mut self.event,
                &mut self.stream,
                recv_ts_ns,
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

/// The channels this decoder maps (`books-l2-tbt` / `books50-l2-tbt` / `trades-all` share the
/// shapes of `books` / `trades`).
const KNOWN: &[&str] = &[
    "trades",
    "trades-all",
    "books",
    "books-l2-tbt",
    "books50-l2-tbt",
    "books5",
    "bbo-tbt",
    "mark-price",
    "funding-rate",
    "open-interest",
    "liquidation-orders",
];

/// What a push's `arg` says.
#[derive(Default, Clone, Copy)]
struct Arg<'i> {
    channel: &'i str,
    inst_id: Option<&'i str>,
    inst_type: Option<&'i str>,
}

fn decode_root(
    root: Value<'_, '_>,
    ev: &mut Event,
    stream: &mut String,
    recv_ts_ns: i64,
    emit: &mut dyn FnMut(&mut Event),
) -> Result<Decoded, DecodeError> {
    let obj = root.as_object().ok_or(DecodeError::Shape("<root>"))?;
    let (mut arg, mut action, mut data, mut event, mut code) = (None, None, None, None, None);
    for (k, v) in obj.iter() {
        match k {
            "arg" => arg = Some(v),
            "action" => action = Some(v),
            "data" => data = Some(v),
            "event" => event = Some(v),
            "code" => code = Some(v),
            _ => {}
        }
    }
    if let Some(e) = event {
        return match e.into_string() {
            Some("error") => Err(DecodeError::ExchangeError),
            Some("notice") if code.and_then(|c| c.into_string()) == Some("64008") => {
                Ok(Decoded::ServerShutdown)
            }
            Some(_) => Ok(Decoded::Control),
            None => Err(DecodeError::Shape("event")),
        };
    }
    let arg = parse_arg(arg)?;
    if !KNOWN.contains(&arg.channel) {
        return Err(DecodeError::UnknownEvent);
    }
    stream.clear();
    stream.push_str(arg.channel);
    stream.push(':');
    stream.push_str(arg.inst_id.or(arg.inst_type).unwrap_or(""));
    let items = data
        .and_then(|d| d.as_array())
        .ok_or(DecodeError::Shape("data"))?;
    let snapshot = match action.map(|a| a.into_string()) {
        None => false,
        Some(Some("snapshot")) => true,
        Some(Some("update")) => false,
        Some(_) => return Err(DecodeError::Shape("action")),
    };
    ev.header.receive_ts_ns = recv_ts_ns;
    ev.header.exchange = "okx";
    let mut n = 0;
    for item in items.iter() {
        let obj = item.as_object().ok_or(DecodeError::Shape("data"))?;
        let f = Fields::read(obj);
        ev.header.transaction_ts_ns = 0;
        match arg.channel {
            "liquidation-orders" => {
                n += liquidations(ev, &arg, &f, emit)?;
                continue;
            }
            "trades" | "trades-all" => trade(ev, &arg, &f)?,
            "books" | "books-l2-tbt" | "books50-l2-tbt" => depth(ev, &arg, &f, snapshot)?,
            "books5" => books5(ev, &arg, &f)?,
            "bbo-tbt" => bbo(ev, &arg, &f)?,
            "mark-price" => mark_price(ev, &arg, &f)?,
            "funding-rate" => funding(ev, &arg, &f)?,
            "open-interest" => open_interest(ev, &arg, &f)?,
            _ => return Err(DecodeError::UnknownEvent),
        }
        emit(ev);
        n += 1;
    }
    Ok(Decoded::Events(n))
}

fn parse_arg<'i>(v: Field<'_, 'i>) -> Result<Arg<'i>, DecodeError> {
    let obj = v
        .and_then(|v| v.as_object())
        .ok_or(DecodeError::Shape("arg"))?;
    let mut a = Arg::default();
    let mut channel = None;
    for (k, v) in obj.iter() {
        match k {
            "channel" => channel = Some(v),
            "instId" => a.inst_id = Some(tape::symbol(Some(v), "arg.instId")?),
            "instType" => a.inst_type = Some(text(Some(v), "arg.instType")?),
            _ => {}
        }
    }
    a.channel = tape::symbol(channel, "arg.channel")?;
    Ok(a)
}

/// The keys of OKX data elements this decoder reads.
#[derive(Default)]
#[allow(non_snake_case)]
struct Fields<'t, 'i> {
    instId: Field<'t, 'i>,
    instType: Field<'t, 'i>,
    tradeId: Field<'t, 'i>,
    px: Field<'t, 'i>,
    sz: Field<'t, 'i>,
    side: Field<'t, 'i>,
    ts: Field<'t, 'i>,
    asks: Field<'t, 'i>,
    bids: Field<'t, 'i>,
    checksum: Field<'t, 'i>,
    seqId: Field<'t, 'i>,
    prevSeqId: Field<'t, 'i>,
    markPx: Field<'t, 'i>,
    fundingRate: Field<'t, 'i>,
    fundingTime: Field<'t, 'i>,
    nextFundingRate: Field<'t, 'i>,
    nextFundingTime: Field<'t, 'i>,
    oi: Field<'t, 'i>,
    oiCcy: Field<'t, 'i>,
    oiUsd: Field<'t, 'i>,
    details: Field<'t, 'i>,
}

impl<'t, 'i> Fields<'t, 'i> {
    fn read(obj: simd_json::tape::Object<'t, 'i>) -> Self {
        let mut f = Fields::default();
        for (k, v) in obj.iter() {
            let slot = match k {
                "instId" => &mut f.instId,
                "instType" => &mut f.instType,
                "tradeId" => &mut f.tradeId,
                "px" => &mut f.px,
                "sz" => &mut f.sz,
                "side" => &mut f.side,
                "ts" => &mut f.ts,
                "asks" => &mut f.asks,
                "bids" => &mut f.bids,
                "checksum" => &mut f.checksum,
                "seqId" => &mut f.seqId,
                "prevSeqId" => &mut f.prevSeqId,
                "markPx" => &mut f.markPx,
                "fundingRate" => &mut f.fundingRate,
                "fundingTime" => &mut f.fundingTime,
                "nextFundingRate" => &mut f.nextFundingRate,
                "nextFundingTime" => &mut f.nextFundingTime,
                "oi" => &mut f.oi,
                "oiCcy" => &mut f.oiCcy,
                "oiUsd" => &mut f.oiUsd,
                "details" => &mut f.details,
                _ => continue,
            };
            *slot = Some(v);
        }
        f
    }
}

/// Sets the event's symbol (the element's `instId`, else the push's) and market (its
/// `instType`, else the instId's shape).
fn instrument(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    let id = match f.instId {
        Some(_) => tape::symbol(f.instId, "instId")?,
        None => arg.inst_id.ok_or(DecodeError::Shape("instId"))?,
    };
    set(&mut ev.header.symbol, id);
    ev.header.market = match f.instType {
        Some(_) => match text(f.instType, "instType")? {
            "SPOT" | "MARGIN" => "spot",
            "SWAP" => "swap",
            "FUTURES" => "futures",
            "OPTION" => "option",
            _ => return Err(DecodeError::Shape("instType")),
        },
        None => super::market_of(id),
    };
    Ok(())
}

/// `ts` (ms as a string) in ns; 0 where not sent.
#[inline]
fn ts(f: &Fields<'_, '_>) -> Result<i64, DecodeError> {
    match f.ts {
        Some(_) => millis_str(f.ts, "ts"),
        None => Ok(0),
    }
}

#[inline]
fn side(v: Field<'_, '_>, name: &'static str) -> Result<Side, DecodeError> {
    match v.and_then(|v| v.into_string()) {
        Some("buy") => Ok(Side::Buy),
        Some("sell") => Ok(Side::Sell),
        _ => Err(DecodeError::Shape(name)),
    }
}

fn trade(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = millis_str(f.ts, "ts")?;
    let t = &mut ev.trade;
    t.trade_id = uint_str(f.tradeId, "tradeId")?;
    set(&mut t.price, decimal(f.px, "px")?);
    set(&mut t.qty, decimal(f.sz, "sz")?);
    t.set_side(side(f.side, "side")?);
    t.trade_type.clear();
    ev.kind = Some(EventKind::Trade);
    Ok(())
}

/// `seqId` as an update id (0 where not sent: recordings before OKX added it).
#[inline]
fn seq_id(f: &Fields<'_, '_>) -> Result<u64, DecodeError> {
    match f.seqId {
        Some(_) => uint(f.seqId, "seqId"),
        None => Ok(0),
    }
}

fn depth(
    ev: &mut Event,
    arg: &Arg<'_>,
    f: &Fields<'_, '_>,
    snapshot: bool,
) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    ev.clear_depth();
    let seq = seq_id(f)?;
    ev.depth.first_update_id = seq;
    ev.depth.last_update_id = seq;
    // `prevSeqId` is -1 on the snapshot push: no predecessor.
    ev.depth.prev_last_update_id = match f.prevSeqId {
        Some(_) => u64::try_from(int(f.prevSeqId, "prevSeqId")?).ok(),
        None => None,
    };
    ev.depth.snapshot = snapshot;
    ev.depth.checksum = match f.checksum {
        None => None,
        Some(_) => {
            let c = int(f.checksum, "checksum")?;
            let c = i32::try_from(c).map_err(|_| DecodeError::Shape("checksum"))?;
            // Deprecated in 2026: OKX sends 0, which is no checksum at all.
            (c != 0).then_some(c)
        }
    };
    levels(&mut ev.depth.bids, f.bids, "bids")?;
    levels(&mut ev.depth.asks, f.asks, "asks")?;
    ev.kind = Some(EventKind::DepthDiff);
    Ok(())
}

/// `books5`: the exchange's own 5-level book every 100 ms, as a `book_snapshot` of depth 5.
fn books5(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    ev.clear_book();
    ev.book.update_id = seq_id(f)?;
    ev.book.depth = 5;
    levels(&mut ev.book.bids, f.bids, "bids")?;
    levels(&mut ev.book.asks, f.asks, "asks")?;
    ev.kind = Some(EventKind::BookSnapshot);
    Ok(())
}

/// The first level of `bids`/`asks` as (price, qty); `("", "")` for an empty side.
fn top<'i>(v: Field<'_, 'i>, name: &'static str) -> Result<(&'i str, &'i str), DecodeError> {
    let arr = v
        .and_then(|v| v.as_array())
        .ok_or(DecodeError::Shape(name))?;
    match arr.get(0) {
        None => Ok(("", "")),
        Some(l) => {
            let l = l.as_array().ok_or(DecodeError::Shape(name))?;
            Ok((decimal(l.get(0), name)?, decimal(l.get(1), name)?))
        }
    }
}

fn bbo(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    let (bp, bq) = top(f.bids, "bids")?;
    let (ap, aq) = top(f.asks, "asks")?;
    let b = &mut ev.book_ticker;
    b.update_id = seq_id(f)?;
    set(&mut b.bid_price, bp);
    set(&mut b.bid_qty, bq);
    set(&mut b.ask_price, ap);
    set(&mut b.ask_qty, aq);
    ev.kind = Some(EventKind::BookTicker);
    Ok(())
}

fn mark_price(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    let m = &mut ev.mark_price;
    set(&mut m.mark_price, decimal(f.markPx, "markPx")?);
    m.index_price.clear();
    m.estimated_settle_price.clear();
    m.funding_rate.clear();
    m.next_funding_time_ns = 0;
    ev.kind = Some(EventKind::MarkPrice);
    Ok(())
}

fn funding(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    let r = &mut ev.funding_rate;
    // A recorded push (2021-12) has `nextFundingRate` without `fundingRate`: kept as "".
    set(
        &mut r.funding_rate,
        decimal_or_empty(f.fundingRate, "fundingRate")?,
    );
    r.funding_time_ns = millis_str(f.fundingTime, "fundingTime")?;
    r.mark_price.clear();
    set(
        &mut r.next_funding_rate,
        decimal_or_empty(f.nextFundingRate, "nextFundingRate")?,
    );
    r.next_funding_time_ns = match f.nextFundingTime {
        Some(v) if v.into_string() == Some("") => 0,
        Some(_) => millis_str(f.nextFundingTime, "nextFundingTime")?,
        None => 0,
    };
    ev.kind = Some(EventKind::FundingRate);
    Ok(())
}

fn open_interest(ev: &mut Event, arg: &Arg<'_>, f: &Fields<'_, '_>) -> Result<(), DecodeError> {
    instrument(ev, arg, f)?;
    ev.header.exchange_ts_ns = ts(f)?;
    let o = &mut ev.open_interest;
    set(&mut o.open_interest, decimal(f.oi, "oi")?);
    o.open_interest_value.clear();
    set(
        &mut o.open_interest_ccy,
        decimal_or_empty(f.oiCcy, "oiCcy")?,
    );
    set(
        &mut o.open_interest_usd,
        decimal_or_empty(f.oiUsd, "oiUsd")?,
    );
    ev.kind = Some(EventKind::OpenInterest);
    Ok(())
}

/// One `liquidation` per `details` entry of an element.
fn liquidations(
    ev: &mut Event,
    arg: &Arg<'_>,
    f: &Fields<'_, '_>,
    emit: &mut dyn FnMut(&mut Event),
) -> Result<usize, DecodeError> {
    instrument(ev, arg, f)?;
    let details = f
        .details
        .and_then(|d| d.as_array())
        .ok_or(DecodeError::Shape("details"))?;
    let mut n = 0;
    for d in details.iter() {
        let obj = d.as_object().ok_or(DecodeError::Shape("details"))?;
        let (mut bk_px, mut sz, mut sd, mut pos, mut t) = (None, None, None, None, None);
        for (k, v) in obj.iter() {
            match k {
                "bkPx" => bk_px = Some(v),
                "sz" => sz = Some(v),
                "side" => sd = Some(v),
                "posSide" => pos = Some(v),
                "ts" => t = Some(v),
                _ => {}
            }
        }
        ev.header.exchange_ts_ns = millis_str(t, "details.ts")?;
        let l = &mut ev.liquidation;
        l.set_side(side(sd, "details.side")?);
        set(&mut l.price, decimal(bk_px, "details.bkPx")?);
        set(&mut l.qty, decimal(sz, "details.sz")?);
        set(
            &mut l.position_side,
            match pos {
                Some(v) if v.into_string() == Some("") => "",
                Some(_) => text(pos, "details.posSide")?,
                None => "",
            },
        );
        l.order_type.clear();
        l.time_in_force.clear();
        l.avg_price.clear();
        l.filled_qty.clear();
        l.status.clear();
        l.last_filled_qty.clear();
        ev.kind = Some(EventKind::Liquidation);
        emit(ev);
        n += 1;
    }
    Ok(n)
}
