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
    let at = root.container()?;
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

/// Walks the object under `c`, leaving the cursor after it: `f(key, c)` reads the member's value
/// from `c` (returns true) or leaves it to be skipped (false). Values are read in place, so a
/// nested object is walked once, not skipped and then revisited.
fn object<'a>(
    c: &mut Scan<'a>,
    name: &'static str,
    mut f: impl FnMut(&'a [u8], &mut Scan<'a>) -> R<bool>,
) -> R<()> {
    let bad = |_| DecodeError::Shape(name);
    c.object().map_err(bad)?;
    let mut first = true;
    while let Some(k) = c.key(first).map_err(bad)? {
        first = false;
        if !f(k, c)? {
            c.next_value().map_err(bad)?;
        }
    }
    Ok(())
}

/// Walks the array under `c`: `f(c)` reads each element in place.
fn array<'a>(
    c: &mut Scan<'a>,
    name: &'static str,
    mut f: impl FnMut(&mut Scan<'a>) -> R<()>,
) -> R<()> {
    let bad = |_| DecodeError::Shape(name);
    c.array().map_err(bad)?;
    let mut first = true;
    while c.element(first).map_err(bad)? {
        first = false;
        f(c)?;
    }
    Ok(())
}

/// The value under the cursor (a container by position, skipped).
#[inline]
fn val(c: &mut Scan<'_>, name: &'static str) -> R<Val> {
    c.next_value().map_err(|_| DecodeError::Shape(name))
}

/// Calls `f(key, value)` for every member of the object at `at` (values by position).
fn members<'a>(
    sc: Scan<'a>,
    at: Val,
    name: &'static str,
    mut f: impl FnMut(&'a [u8], Val),
) -> R<()> {
    let Val::Obj(pos) = at else {
        return Err(DecodeError::Shape(name));
    };
    object(&mut sc.at(pos), name, |k, c| {
        f(k, val(c, name)?);
        Ok(true)
    })
}

fn decode_root(
    cx: &mut Cx<'_, '_>,
    stream: &mut String,
    emit: &mut dyn FnMut(&mut Event),
) -> R<Decoded> {
    let sc = cx.sc;
    let (mut method, mut params, mut error, mut reply) = (None, None, false, false);
    let mut done = None;
    // Deribit writes `method` before `params`: the notification is then decoded in the same
    // walk; in another order `params` is revisited once `method` is known.
    let mut c = sc;
    object(&mut c, "<root>", |k, c| {
        match k {
            b"method" => method = Some(val(c, "method")?),
            b"params"
                if done.is_none()
                    && !error
                    && method.and_then(|m| sc.text(m)) == Some("subscription") =>
            {
                done = Some(notification(cx, c, stream, emit)?);
            }
            b"params" => params = Some(val(c, "params")?),
            b"error" => {
                error = true;
                return Ok(false);
            }
            b"result" | b"id" => {
                reply = true;
                return Ok(false);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if error {
        return Err(DecodeError::ExchangeError);
    }
    if let Some(d) = done {
        return Ok(d);
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
    match params {
        Some(Val::Obj(pos)) => notification(cx, &mut sc.at(pos), stream, emit),
        _ => Err(DecodeError::Shape("params")),
    }
}

/// `params` of a subscription notification (`channel`, `data`), under the cursor.
fn notification<'a>(
    cx: &mut Cx<'a, '_>,
    c: &mut Scan<'a>,
    stream: &mut String,
    emit: &mut dyn FnMut(&mut Event),
) -> R<Decoded> {
    let sc = cx.sc;
    let (mut channel, mut data, mut done) = (None::<&'a str>, None, None);
    object(c, "params", |k, c| {
        match k {
            b"channel" => {
                let ch = val(c, "params.channel")?;
                channel = Some(
                    sc.text(ch)
                        .filter(|c| c.len() <= 128)
                        .ok_or(DecodeError::Shape("params.channel"))?,
                );
            }
            // The channel first (as Deribit writes it): the data is decoded where it lies.
            b"data" if done.is_none() && channel.is_some() => {
                let ch = channel.unwrap_or("");
                set(stream, ch);
                done = Some(data_in(cx, c, ch, emit)?);
            }
            b"data" => data = Some(val(c, "params.data")?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if let Some(d) = done {
        return Ok(d);
    }
    let channel = channel.ok_or(DecodeError::Shape("params.channel"))?;
    set(stream, channel);
    let pos = match data {
        Some(Val::Obj(p) | Val::Arr(p)) => p,
        _ => return Err(DecodeError::Shape("params.data")),
    };
    data_in(cx, &mut sc.at(pos), channel, emit)
}

/// The `data` of a notification of `channel`, under the cursor.
fn data_in<'a>(
    cx: &mut Cx<'a, '_>,
    c: &mut Scan<'a>,
    channel: &str,
    emit: &mut dyn FnMut(&mut Event),
) -> R<Decoded> {
    match channel.split('.').next().unwrap_or("") {
        "trades" => {
            let mut n = 0;
            array(c, "data", |c| {
                trade(cx, c)?;
                emit(cx.ev);
                n += 1;
                Ok(())
            })?;
            Ok(Decoded::Events(n))
        }
        "book" => {
            book(cx, c, channel)?;
            emit(cx.ev);
            Ok(Decoded::Events(1))
        }
        "ticker" => ticker(cx, c, emit),
        "deribit_volatility_index" => {
            volatility_index(cx, c)?;
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

fn trade<'a>(cx: &mut Cx<'a, '_>, c: &mut Scan<'a>) -> R<()> {
    let sc = cx.sc;
    let mut f = TradeFields::default();
    object(c, "data", |k, c| {
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
            _ => return Ok(false),
        };
        *slot = Some(val(c, "data")?);
        Ok(true)
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
fn levels<'a>(cx: &mut Cx<'a, '_>, c: &mut Scan<'a>, into: Dest, name: &'static str) -> R<()> {
    let sc = cx.sc;
    let (ev, price, qty) = (&mut *cx.ev, &mut *cx.price, &mut *cx.qty);
    let out: &mut Levels = match into {
        Dest::DiffBids => &mut ev.depth.bids,
        Dest::DiffAsks => &mut ev.depth.asks,
        Dest::BookBids => &mut ev.book.bids,
        Dest::BookAsks => &mut ev.book.asks,
    };
    array(c, name, |c| {
        let mut parts = [None; 3];
        let mut n = 0;
        array(c, name, |c| {
            let v = val(c, name)?;
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
/// `book_snapshot` of that depth. Levels are read where they lie.
fn book<'a>(cx: &mut Cx<'a, '_>, c: &mut Scan<'a>, channel: &str) -> R<()> {
    let sc = cx.sc;
    let grouped = channel.split('.').nth(4).map(|_| {
        channel
            .split('.')
            .nth(3)
            .and_then(|d| d.parse::<u32>().ok())
    });
    let (bid_dest, ask_dest) = match grouped {
        Some(None) => return Err(DecodeError::Shape("params.channel")),
        Some(Some(depth)) => {
            cx.ev.clear_book();
            cx.ev.book.depth = depth;
            (Dest::BookBids, Dest::BookAsks)
        }
        None => {
            cx.ev.clear_depth();
            (Dest::DiffBids, Dest::DiffAsks)
        }
    };
    let (mut ty, mut ts, mut name, mut change, mut prev) = (None, None, None, None, None);
    let (mut seen_bids, mut seen_asks) = (false, false);
    object(c, "data", |k, c| {
        match k {
            b"type" => ty = Some(val(c, "type")?),
            b"timestamp" => ts = Some(val(c, "timestamp")?),
            b"instrument_name" => name = Some(val(c, "instrument_name")?),
            b"change_id" => change = Some(val(c, "change_id")?),
            b"prev_change_id" => prev = Some(val(c, "prev_change_id")?),
            b"bids" if !seen_bids => {
                seen_bids = true;
                levels(cx, c, bid_dest, "bids")?;
            }
            b"asks" if !seen_asks => {
                seen_asks = true;
                levels(cx, c, ask_dest, "asks")?;
            }
            b"bids" => return Err(DecodeError::Shape("bids")),
            b"asks" => return Err(DecodeError::Shape("asks")),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !seen_bids {
        return Err(DecodeError::Shape("bids"));
    }
    if !seen_asks {
        return Err(DecodeError::Shape("asks"));
    }
    instrument(cx, name)?;
    cx.ev.header.exchange_ts_ns = millis(&sc, ts, "timestamp")?;
    let id = change
        .and_then(|v| sc.uint(v))
        .ok_or(DecodeError::Shape("change_id"))?;
    if grouped.is_some() {
        cx.ev.book.update_id = id;
        cx.ev.kind = Some(EventKind::BookSnapshot);
        return Ok(());
    }
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
fn ticker<'a>(
    cx: &mut Cx<'a, '_>,
    c: &mut Scan<'a>,
    emit: &mut dyn FnMut(&mut Event),
) -> R<Decoded> {
    let sc = cx.sc;
    let mut f = TickerFields::default();
    let mut g: [Option<Val>; 5] = [None; 5];
    object(c, "data", |k, c| {
        let slot = match k {
            b"greeks" if matches!(c.container(), Some(Val::Obj(_))) => {
                object(c, "greeks", |k, c| {
                    let i = match k {
                        b"delta" => 0,
                        b"gamma" => 1,
                        b"vega" => 2,
                        b"theta" => 3,
                        b"rho" => 4,
                        _ => return Ok(false),
                    };
                    g[i] = Some(val(c, "greeks")?);
                    Ok(true)
                })?;
                return Ok(true);
            }
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
            _ => return Ok(false),
        };
        *slot = Some(val(c, "data")?);
        Ok(true)
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
    if matches!(f.greeks, Some(v) if v != Val::Null) {
        return Err(DecodeError::Shape("greeks"));
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

fn volatility_index<'a>(cx: &mut Cx<'a, '_>, c: &mut Scan<'a>) -> R<()> {
    let sc = cx.sc;
    let (mut vol, mut ts, mut name) = (None, None, None);
    object(c, "data", |k, c| {
        let slot = match k {
            b"volatility" => &mut vol,
            b"timestamp" => &mut ts,
            b"index_name" => &mut name,
            _ => return Ok(false),
        };
        *slot = Some(val(c, "data")?);
        Ok(true)
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
