//! Deribit JSON-RPC notifications -> normalized events, read in place by [`Scan`] so that prices
//! and amounts, which Deribit sends as JSON numbers, keep exactly the characters sent.
//!
//! A notification is `{"jsonrpc":"2.0","method":"subscription","params":{"channel":..,"data":..}}`;
//! `data` is an array of trades, or one object (book, ticker, volatility index). Replies
//! (`{"id":..,"result":..}`) are control frames, error replies (`{"id":..,"error":{..}}`) are
//! counted exchange errors, `heartbeat` notifications are control frames (the reader answers a
//! `test_request` itself, before anything is queued). Keys are matched whatever their order;
//! unknown keys are ignored; the whole frame is checked as JSON before anything is emitted.

use super::market_of;
use crate::event::{Event, EventKind, Levels, set};
use crate::exchange::number::plain_decimal;
use crate::exchange::scan::{Scan, Val};
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::wire::Side;

/// One parser thread's Deribit decoder.
pub struct DeribitDecoder {
    event: Event,
    /// The `channel` of the last notification.
    stream: String,
    /// Plain-decimal forms of exponent numbers in levels (`1e-05` -> `0.00001`).
    price: String,
    qty: String,
    /// Error replies logged with what they answer (bounded: bad input cannot flood the log).
    errors: crate::metrics::LogThrottle,
}

impl Default for DeribitDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DeribitDecoder {
    pub fn new() -> Self {
        DeribitDecoder {
            event: Event::new("deribit", "swap"),
            stream: String::with_capacity(64),
            price: String::with_capacity(32),
            qty: String::with_capacity(32),
            errors: crate::metrics::LogThrottle::default(),
        }
    }
}

type R<T> = Result<T, DecodeError>;

impl Decoder for DeribitDecoder {
    fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        recv_ts_ns: i64,
        emit: &mut dyn FnMut(&mut Event),
    ) -> R<Decoded> {
        let root = Scan::new(buf, len).map_err(|_| DecodeError::Json)?;
        let mut cx = Cx {
            sc: root,
            ev: &mut self.event,
            price: &mut self.price,
            qty: &mut self.qty,
        };
        cx.ev.header.receive_ts_ns = recv_ts_ns;
        cx.ev.header.exchange = "deribit";
        cx.ev.header.transaction_ts_ns = 0;
        let res = decode_root(&mut cx, &mut self.stream, emit);
        if let Err(DecodeError::ExchangeError) = res
            && self.errors.hit()
        {
            // Which request it answers, by our JSON-RPC id (`request_kind`).
            let id = reply_id(&root).unwrap_or(0);
            let text = String::from_utf8_lossy(root.bytes(0, len.min(400) as u32));
            log::warn!(
                "event=exchange_error_reply exchange=deribit id={id} request=\"{}\" count={} reply={text}",
                super::request_kind(id),
                self.errors.count()
            );
        }
        res
    }

    fn last_stream(&self) -> &str {
        &self.stream
    }
}

/// The numeric `id` of a reply.
fn reply_id(root: &Scan<'_>) -> Option<u64> {
    let mut c = *root;
    let at = c.next_value().ok()?;
    let mut id = None;
    members(*root, at, "<root>", |k, v| {
        if k == b"id" {
            id = root.uint(v);
        }
    })
    .ok()?;
    id
}

/// What a decoding step works with.
struct Cx<'a, 'e> {
    sc: Scan<'a>,
    ev: &'e mut Event,
    price: &'e mut String,
    qty: &'e mut String,
}

/// Calls `f(key, value)` for every member of the object at `at`.
fn members<'a>(
    sc: Scan<'a>,
    at: Val,
    name: &'static str,
    mut f: impl FnMut(&'a [u8], Val),
) -> R<()> {
    let Val::Obj(pos) = at else {
        return Err(DecodeError::Shape(name));
    };
    let mut c = sc.at(pos);
    let bad = |_| DecodeError::Shape(name);
    c.object().map_err(bad)?;
    let mut first = true;
    while let Some(k) = c.key(first).map_err(bad)? {
        first = false;
        let v = c.next_value().map_err(bad)?;
        f(k, v);
    }
    Ok(())
}

/// Calls `f(element)` for every element of the array at `at`.
fn elements<'a>(
    sc: Scan<'a>,
    at: Val,
    name: &'static str,
    mut f: impl FnMut(Val) -> R<()>,
) -> R<()> {
    let Val::Arr(pos) = at else {
        return Err(DecodeError::Shape(name));
    };
    let mut c = sc.at(pos);
    let bad = |_| DecodeError::Shape(name);
    c.array().map_err(bad)?;
    let mut first = true;
    while c.element(first).map_err(bad)? {
        first = false;
        f(c.next_value().map_err(bad)?)?;
    }
    Ok(())
}

fn decode_root(
    cx: &mut Cx<'_, '_>,
    stream: &mut String,
    emit: &mut dyn FnMut(&mut Event),
) -> R<Decoded> {
    let sc = cx.sc;
    let (mut method, mut params, mut error, mut reply) = (None, None, false, false);
    let mut root = sc;
    // The root must be an object.
    let at = match root.next_value() {
        Ok(v @ Val::Obj(_)) => v,
        _ => return Err(DecodeError::Shape("<root>")),
    };
    members(sc, at, "<root>", |k, v| match k {
        b"method" => method = Some(v),
        b"params" => params = Some(v),
        b"error" => error = true,
        b"result" | b"id" => reply = true,
        _ => {}
    })?;
    if error {
        return Err(DecodeError::ExchangeError);
    }
    let method = match method {
        Some(m) => sc.text(m).ok_or(DecodeError::Shape("method"))?,
        None if reply => return Ok(Decoded::Control),
        None => return Err(DecodeError::Shape("method")),
    };
    match method {
        "subscription" => {}
        "heartbeat" => return Ok(Decoded::Control),
        _ => return Err(DecodeError::UnknownEvent),
    }
    let (mut channel, mut data) = (None, None);
    members(
        sc,
        params.ok_or(DecodeError::Shape("params"))?,
        "params",
        |k, v| match k {
            b"channel" => channel = Some(v),
            b"data" => data = Some(v),
            _ => {}
        },
    )?;
    let channel = channel
        .and_then(|c| sc.text(c))
        .filter(|c| c.len() <= 128)
        .ok_or(DecodeError::Shape("params.channel"))?;
    set(stream, channel);
    let data = data.ok_or(DecodeError::Shape("params.data"))?;
    let kind = channel.split('.').next().unwrap_or("");
    match kind {
        "trades" => {
            let mut n = 0;
            elements(sc, data, "data", |t| {
                trade(cx, t)?;
                emit(cx.ev);
                n += 1;
                Ok(())
            })?;
            Ok(Decoded::Events(n))
        }
        "book" => {
            book(cx, data, channel)?;
            emit(cx.ev);
            Ok(Decoded::Events(1))
        }
        "ticker" => ticker(cx, data, emit),
        "deribit_volatility_index" => {
            volatility_index(cx, data)?;
            emit(cx.ev);
            Ok(Decoded::Events(1))
        }
        _ => Err(DecodeError::UnknownEvent),
    }
}

/// A JSON number as exact plain-decimal text into `out` (an exponent moves the point, digit by
/// digit); strings and other values are errors naming the field.
fn number_into(sc: &Scan<'_>, v: Option<Val>, out: &mut String, name: &'static str) -> R<()> {
    let s = v
        .and_then(|v| sc.number(v))
        .ok_or(DecodeError::Shape(name))?;
    if s.len() > 64 {
        return Err(DecodeError::BadDecimal(name));
    }
    out.clear();
    plain_decimal(s, out).map_err(|_| DecodeError::BadDecimal(name))
}

/// Like [`number_into`], but `null` or absent is `""` (ticker fields Deribit leaves empty).
fn opt_number_into(sc: &Scan<'_>, v: Option<Val>, out: &mut String, name: &'static str) -> R<()> {
    match v {
        None | Some(Val::Null) => {
            out.clear();
            Ok(())
        }
        _ => number_into(sc, v, out, name),
    }
}

fn millis(sc: &Scan<'_>, v: Option<Val>, name: &'static str) -> R<i64> {
    v.and_then(|v| sc.uint(v))
        .and_then(|ms| i64::try_from(ms).ok())
        .and_then(|ms| ms.checked_mul(1_000_000))
        .ok_or(DecodeError::Shape(name))
}

/// Sets symbol and market from `instrument_name`.
fn instrument(cx: &mut Cx<'_, '_>, v: Option<Val>) -> R<()> {
    let name = v
        .and_then(|v| cx.sc.text(v))
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or(DecodeError::Shape("instrument_name"))?;
    set(&mut cx.ev.header.symbol, name);
    cx.ev.header.market = market_of(name);
    Ok(())
}

/// The keys of a trade this decoder reads.
#[derive(Default)]
struct TradeFields {
    trade_seq: Option<Val>,
    trade_id: Option<Val>,
    timestamp: Option<Val>,
    tick_direction: Option<Val>,
    price: Option<Val>,
    mark_price: Option<Val>,
    index_price: Option<Val>,
    iv: Option<Val>,
    instrument_name: Option<Val>,
    direction: Option<Val>,
    amount: Option<Val>,
    liquidation: Option<Val>,
    block_trade_id: Option<Val>,
    contracts: Option<Val>,
    combo_id: Option<Val>,
    combo_trade_id: Option<Val>,
}

/// The trailing digits of a trade id (`"137486952"`, `"ETH-2754263"`), for the numeric
/// `trade_id`; 0 when there are none.
fn id_digits(id: &str) -> u64 {
    let digits = id.rsplit('-').next().unwrap_or("");
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    digits.parse().unwrap_or(0)
}

fn trade(cx: &mut Cx<'_, '_>, at: Val) -> R<()> {
    let sc = cx.sc;
    let mut f = TradeFields::default();
    members(sc, at, "data", |k, v| {
        let slot = match k {
            b"trade_seq" => &mut f.trade_seq,
            b"trade_id" => &mut f.trade_id,
            b"timestamp" => &mut f.timestamp,
            b"tick_direction" => &mut f.tick_direction,
            b"price" => &mut f.price,
            b"mark_price" => &mut f.mark_price,
            b"index_price" => &mut f.index_price,
            b"iv" => &mut f.iv,
            b"instrument_name" => &mut f.instrument_name,
            b"direction" => &mut f.direction,
            b"amount" => &mut f.amount,
            b"liquidation" => &mut f.liquidation,
            b"block_trade_id" => &mut f.block_trade_id,
            b"contracts" => &mut f.contracts,
            b"combo_id" => &mut f.combo_id,
            b"combo_trade_id" => &mut f.combo_trade_id,
            _ => return,
        };
        *slot = Some(v);
    })?;
    instrument(cx, f.instrument_name)?;
    cx.ev.header.exchange_ts_ns = millis(&sc, f.timestamp, "timestamp")?;
    let t = &mut cx.ev.trade;
    let id = f
        .trade_id
        .and_then(|v| sc.text(v))
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or(DecodeError::Shape("trade_id"))?;
    set(&mut t.trade_id_text, id);
    t.trade_id = id_digits(id);
    t.trade_seq = match f.trade_seq {
        None => 0,
        Some(v) => sc.uint(v).ok_or(DecodeError::Shape("trade_seq"))?,
    };
    number_into(&sc, f.price, &mut t.price, "price")?;
    number_into(&sc, f.amount, &mut t.qty, "amount")?;
    t.set_side(match f.direction.and_then(|v| sc.text(v)) {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        _ => return Err(DecodeError::Shape("direction")),
    });
    opt_number_into(&sc, f.mark_price, &mut t.mark_price, "mark_price")?;
    opt_number_into(&sc, f.index_price, &mut t.index_price, "index_price")?;
    opt_number_into(&sc, f.iv, &mut t.iv, "iv")?;
    let opt_text = |v: Option<Val>, name| match v {
        None | Some(Val::Null) => Ok(""),
        Some(v) => sc
            .text(v)
            .filter(|s| s.len() <= 64)
            .ok_or(DecodeError::Shape(name)),
    };
    set(&mut t.liquidation, opt_text(f.liquidation, "liquidation")?);
    set(
        &mut t.block_trade_id,
        opt_text(f.block_trade_id, "block_trade_id")?,
    );
    set(&mut t.combo_id, opt_text(f.combo_id, "combo_id")?);
    opt_number_into(&sc, f.contracts, &mut t.contracts, "contracts")?;
    // A combo trade id is a number in some messages and a string in others: kept as text.
    match f.combo_trade_id {
        Some(v @ Val::Num { .. }) => {
            number_into(&sc, Some(v), &mut t.combo_trade_id, "combo_trade_id")?
        }
        v => set(&mut t.combo_trade_id, opt_text(v, "combo_trade_id")?),
    }
    t.tick_direction = match f.tick_direction {
        None | Some(Val::Null) => None,
        Some(v) => Some(
            sc.int(v)
                .and_then(|d| i32::try_from(d).ok())
                .ok_or(DecodeError::Shape("tick_direction"))?,
        ),
    };
    t.trade_type.clear();
    cx.ev.kind = Some(EventKind::Trade);
    Ok(())
}

/// Where a side's levels go.
#[derive(Clone, Copy)]
enum Dest {
    DiffBids,
    DiffAsks,
    BookBids,
    BookAsks,
}

/// One side's `[action, price, amount]` entries; `delete` is quantity `"0"`. (Grouped books
/// send `[price, amount]`.)
fn levels(cx: &mut Cx<'_, '_>, at: Option<Val>, into: Dest, name: &'static str) -> R<()> {
    let sc = cx.sc;
    let at = at.ok_or(DecodeError::Shape(name))?;
    let (ev, price, qty) = (&mut *cx.ev, &mut *cx.price, &mut *cx.qty);
    let out: &mut Levels = match into {
        Dest::DiffBids => &mut ev.depth.bids,
        Dest::DiffAsks => &mut ev.depth.asks,
        Dest::BookBids => &mut ev.book.bids,
        Dest::BookAsks => &mut ev.book.asks,
    };
    elements(sc, at, name, |lvl| {
        let mut parts = [None; 3];
        let mut n = 0;
        elements(sc, lvl, name, |v| {
            if n < 3 {
                parts[n] = Some(v);
            }
            n += 1;
            Ok(())
        })?;
        let (action, p, q) = match n {
            3 => (parts[0].and_then(|a| sc.text(a)), parts[1], parts[2]),
            2 => (Some("change"), parts[0], parts[1]),
            _ => return Err(DecodeError::Shape(name)),
        };
        number_into(&sc, p, price, name)?;
        match action {
            Some("new" | "change") => {
                number_into(&sc, q, qty, name)?;
                if qty.starts_with('-') {
                    return Err(DecodeError::BadDecimal(name));
                }
                out.push(price, qty);
            }
            Some("delete") => out.push(price, "0"),
            _ => return Err(DecodeError::Shape(name)),
        }
        Ok(())
    })
}

/// `book.{instrument}.{interval}` (a snapshot, then changes) -> `depth_diff`;
/// `book.{instrument}.{group}.{depth}.{interval}` (the top `depth` levels, whole, each time) ->
/// `book_snapshot` of that depth.
fn book(cx: &mut Cx<'_, '_>, at: Val, channel: &str) -> R<()> {
    let sc = cx.sc;
    let (mut ty, mut ts, mut name, mut change, mut prev, mut bids, mut asks) =
        (None, None, None, None, None, None, None);
    members(sc, at, "data", |k, v| match k {
        b"type" => ty = Some(v),
        b"timestamp" => ts = Some(v),
        b"instrument_name" => name = Some(v),
        b"change_id" => change = Some(v),
        b"prev_change_id" => prev = Some(v),
        b"bids" => bids = Some(v),
        b"asks" => asks = Some(v),
        _ => {}
    })?;
    instrument(cx, name)?;
    cx.ev.header.exchange_ts_ns = millis(&sc, ts, "timestamp")?;
    let id = change
        .and_then(|v| sc.uint(v))
        .ok_or(DecodeError::Shape("change_id"))?;
    let mut parts = channel.split('.');
    if let (Some(_), Some(_), Some(_), Some(depth), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        cx.ev.clear_book();
        cx.ev.book.update_id = id;
        cx.ev.book.depth = depth
            .parse()
            .map_err(|_| DecodeError::Shape("params.channel"))?;
        levels(cx, bids, Dest::BookBids, "bids")?;
        levels(cx, asks, Dest::BookAsks, "asks")?;
        cx.ev.kind = Some(EventKind::BookSnapshot);
        return Ok(());
    }
    cx.ev.clear_depth();
    let d = &mut cx.ev.depth;
    d.first_update_id = id;
    d.last_update_id = id;
    d.prev_last_update_id = match prev {
        None | Some(Val::Null) => None,
        Some(v) => Some(sc.uint(v).ok_or(DecodeError::Shape("prev_change_id"))?),
    };
    d.snapshot = match ty.and_then(|t| sc.text(t)) {
        Some("snapshot") => true,
        Some("change") => false,
        _ => return Err(DecodeError::Shape("type")),
    };
    levels(cx, bids, Dest::DiffBids, "bids")?;
    levels(cx, asks, Dest::DiffAsks, "asks")?;
    cx.ev.kind = Some(EventKind::DepthDiff);
    Ok(())
}

/// The keys of a ticker this decoder reads.
#[derive(Default)]
struct TickerFields {
    timestamp: Option<Val>,
    instrument_name: Option<Val>,
    mark_price: Option<Val>,
    index_price: Option<Val>,
    current_funding: Option<Val>,
    funding_8h: Option<Val>,
    estimated_delivery_price: Option<Val>,
    mark_iv: Option<Val>,
    bid_iv: Option<Val>,
    ask_iv: Option<Val>,
    underlying_price: Option<Val>,
    underlying_index: Option<Val>,
    interest_rate: Option<Val>,
    interest_value: Option<Val>,
    settlement_price: Option<Val>,
    greeks: Option<Val>,
    open_interest: Option<Val>,
    best_bid_price: Option<Val>,
    best_bid_amount: Option<Val>,
    best_ask_price: Option<Val>,
    best_ask_amount: Option<Val>,
}

/// A ticker: `mark_price`, then `open_interest`, then `book_ticker` (three events, one time).
fn ticker(cx: &mut Cx<'_, '_>, at: Val, emit: &mut dyn FnMut(&mut Event)) -> R<Decoded> {
    let sc = cx.sc;
    let mut f = TickerFields::default();
    members(sc, at, "data", |k, v| {
        let slot = match k {
            b"timestamp" => &mut f.timestamp,
            b"instrument_name" => &mut f.instrument_name,
            b"mark_price" => &mut f.mark_price,
            b"index_price" => &mut f.index_price,
            b"current_funding" => &mut f.current_funding,
            b"funding_8h" => &mut f.funding_8h,
            b"estimated_delivery_price" => &mut f.estimated_delivery_price,
            b"mark_iv" => &mut f.mark_iv,
            b"bid_iv" => &mut f.bid_iv,
            b"ask_iv" => &mut f.ask_iv,
            b"underlying_price" => &mut f.underlying_price,
            b"underlying_index" => &mut f.underlying_index,
            b"interest_rate" => &mut f.interest_rate,
            b"interest_value" => &mut f.interest_value,
            b"settlement_price" => &mut f.settlement_price,
            b"greeks" => &mut f.greeks,
            b"open_interest" => &mut f.open_interest,
            b"best_bid_price" => &mut f.best_bid_price,
            b"best_bid_amount" => &mut f.best_bid_amount,
            b"best_ask_price" => &mut f.best_ask_price,
            b"best_ask_amount" => &mut f.best_ask_amount,
            _ => return,
        };
        *slot = Some(v);
    })?;
    instrument(cx, f.instrument_name)?;
    cx.ev.header.exchange_ts_ns = millis(&sc, f.timestamp, "timestamp")?;

    let m = &mut cx.ev.mark_price;
    number_into(&sc, f.mark_price, &mut m.mark_price, "mark_price")?;
    opt_number_into(&sc, f.index_price, &mut m.index_price, "index_price")?;
    opt_number_into(
        &sc,
        f.estimated_delivery_price,
        &mut m.estimated_settle_price,
        "estimated_delivery_price",
    )?;
    opt_number_into(
        &sc,
        f.current_funding,
        &mut m.funding_rate,
        "current_funding",
    )?;
    m.next_funding_time_ns = 0;
    opt_number_into(&sc, f.funding_8h, &mut m.funding_8h, "funding_8h")?;
    opt_number_into(&sc, f.mark_iv, &mut m.mark_iv, "mark_iv")?;
    opt_number_into(&sc, f.bid_iv, &mut m.bid_iv, "bid_iv")?;
    opt_number_into(&sc, f.ask_iv, &mut m.ask_iv, "ask_iv")?;
    opt_number_into(
        &sc,
        f.underlying_price,
        &mut m.underlying_price,
        "underlying_price",
    )?;
    opt_number_into(&sc, f.interest_rate, &mut m.interest_rate, "interest_rate")?;
    opt_number_into(
        &sc,
        f.interest_value,
        &mut m.interest_value,
        "interest_value",
    )?;
    opt_number_into(
        &sc,
        f.settlement_price,
        &mut m.settlement_price,
        "settlement_price",
    )?;
    set(
        &mut m.underlying_index,
        match f.underlying_index {
            None | Some(Val::Null) => "",
            Some(v) => sc
                .text(v)
                .filter(|s| s.len() <= 64)
                .ok_or(DecodeError::Shape("underlying_index"))?,
        },
    );
    let mut g: [Option<Val>; 5] = [None; 5];
    if let Some(at) = f.greeks.filter(|v| *v != Val::Null) {
        members(sc, at, "greeks", |k, v| {
            let i = match k {
                b"delta" => 0,
                b"gamma" => 1,
                b"vega" => 2,
                b"theta" => 3,
                b"rho" => 4,
                _ => return,
            };
            g[i] = Some(v);
        })?;
    }
    opt_number_into(&sc, g[0], &mut m.delta, "greeks.delta")?;
    opt_number_into(&sc, g[1], &mut m.gamma, "greeks.gamma")?;
    opt_number_into(&sc, g[2], &mut m.vega, "greeks.vega")?;
    opt_number_into(&sc, g[3], &mut m.theta, "greeks.theta")?;
    opt_number_into(&sc, g[4], &mut m.rho, "greeks.rho")?;

    // Read everything before the first emit: a bad field skips the whole ticker.
    let o = &mut cx.ev.open_interest;
    opt_number_into(&sc, f.open_interest, &mut o.open_interest, "open_interest")?;
    o.open_interest_value.clear();
    o.open_interest_ccy.clear();
    o.open_interest_usd.clear();
    let b = &mut cx.ev.book_ticker;
    b.update_id = 0;
    opt_number_into(&sc, f.best_bid_price, &mut b.bid_price, "best_bid_price")?;
    opt_number_into(&sc, f.best_bid_amount, &mut b.bid_qty, "best_bid_amount")?;
    opt_number_into(&sc, f.best_ask_price, &mut b.ask_price, "best_ask_price")?;
    opt_number_into(&sc, f.best_ask_amount, &mut b.ask_qty, "best_ask_amount")?;

    let mut n = 0;
    cx.ev.kind = Some(EventKind::MarkPrice);
    emit(cx.ev);
    n += 1;
    if !cx.ev.open_interest.open_interest.is_empty() {
        cx.ev.kind = Some(EventKind::OpenInterest);
        emit(cx.ev);
        n += 1;
    }
    cx.ev.kind = Some(EventKind::BookTicker);
    emit(cx.ev);
    n += 1;
    Ok(Decoded::Events(n))
}

fn volatility_index(cx: &mut Cx<'_, '_>, at: Val) -> R<()> {
    let sc = cx.sc;
    let (mut vol, mut ts, mut name) = (None, None, None);
    members(sc, at, "data", |k, v| match k {
        b"volatility" => vol = Some(v),
        b"timestamp" => ts = Some(v),
        b"index_name" => name = Some(v),
        _ => {}
    })?;
    let name = name
        .and_then(|v| sc.text(v))
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .ok_or(DecodeError::Shape("index_name"))?;
    cx.ev.header.exchange_ts_ns = millis(&sc, ts, "timestamp")?;
    set(&mut cx.ev.header.symbol, name);
    cx.ev.header.market = "index";
    let v = &mut cx.ev.volatility_index;
    set(&mut v.index_name, name);
    number_into(&sc, vol, &mut v.volatility, "volatility")?;
    cx.ev.kind = Some(EventKind::VolatilityIndex);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> (R<Decoded>, Vec<String>) {
        let mut d = DeribitDecoder::new();
        let mut buf = line.as_bytes().to_vec();
        buf.extend_from_slice(&[0; 64]);
        let mut out = Vec::new();
        let r = d.decode(&mut buf, line.len(), 7, &mut |ev| {
            let mut j = Vec::new();
            crate::encode::json::write_event(ev, &mut j);
            out.push(String::from_utf8(j).unwrap());
        });
        (r, out)
    }

    #[test]
    fn exponent_numbers_become_plain_decimals_and_deletes_are_zero() {
        let (r, out) = run(
            r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-1JAN27-1000-C.100ms","data":{"type":"change","timestamp":1,"prev_change_id":5,"instrument_name":"BTC-1JAN27-1000-C","change_id":6,"bids":[["new",1e-05,2.50],["delete",0.0005,0.0]],"asks":[]}}}"#,
        );
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert!(
            out[0].contains(r#""bids":[["0.00001","2.50"],["0.0005","0"]]"#),
            "{}",
            out[0]
        );
        assert!(out[0].contains(r#""market":"option""#), "{}", out[0]);
        assert!(out[0].contains(r#""prev_last_update_id":5"#), "{}", out[0]);
    }

    #[test]
    fn replies_heartbeats_and_errors() {
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","id":3,"result":["trades.BTC-PERPETUAL.raw"]}"#).0,
            Ok(Decoded::Control)
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}"#).0,
            Ok(Decoded::Control)
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","id":3,"error":{"code":10001,"message":"x"}}"#).0,
            Err(DecodeError::ExchangeError)
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.X","data":[{"price":"1"}]}}"#).0,
            Err(DecodeError::Shape("instrument_name"))
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.X","data":[]"#).0,
            Err(DecodeError::Json)
        );
        assert_eq!(
            run(r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.X","data":{}}}"#).0,
            Err(DecodeError::UnknownEvent)
        );
    }

    #[test]
    fn prefixed_trade_ids_keep_their_text_and_digits() {
        assert_eq!(id_digits("137486952"), 137486952);
        assert_eq!(id_digits("ETH-2754263"), 2754263);
        assert_eq!(id_digits("ETH-"), 0);
        assert_eq!(id_digits("abc"), 0);
    }
}
