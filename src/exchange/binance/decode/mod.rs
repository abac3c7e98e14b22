//! Binance JSON stream payloads -> normalized events.
//!
//! The high-rate shapes go through [`fast`], a single scalar pass; everything else, and every
//! frame the fast path declines, is parsed in place with simd-json's tape (this module), which is
//! also the reference for what the fast path must produce.
//!
//! Each payload object is scanned once; its (mostly one-letter) keys are collected into [`Fields`] and
//! then interpreted by event type. Works for raw `/ws` payloads and combined-stream wrappers
//! `{"stream":..,"data":..}`, and for array payloads (`!markPrice@arr` style) element by element.
//!
//! Partial-book streams (`<symbol>@depth5|10|20[@speed]`) are told apart by their stream name:
//! spot sends `{"lastUpdateId","bids","asks"}` (no symbol, no time: the symbol comes from the
//! stream name), USD-M a `depthUpdate`-shaped message whose levels are the top of the book, not
//! changes. Both become `book_snapshot` events with `depth` = the stream's level count.

use crate::event::{Event, EventKind, set};
use crate::exchange::tape::{self, decimal, decimal_or_empty, levels, millis, text};
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::wire::Side;
use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};
use simd_json::{Buffers, fill_tape_padded};

#[cfg(test)]
mod differential;
mod fast;
mod interpret;

use interpret::Key;

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
            && let Some(d) = fast::decode(
                buf,
                len,
                &mut self.event,
                &mut self.stream,
                recv_ts_ns,
                self.keep_non_trade,
            )
        {
            if let Decoded::Events(_) = d {
                if let Some(n) = partial_depth(&self.stream) {
                    top_of_book(&mut self.event, n)?;
                }
                emit(&mut self.event);
            }
            return Ok(d);
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
    if let Some(n) = partial_depth(stream) {
        if payload
            .as_object()
            .is_some_and(|o| o.get("lastUpdateId").is_some())
        {
            spot_partial_book(payload, ev, stream, n)?;
        } else {
            match decode_payload(payload, ev, keep_non_trade)? {
                Decoded::Events(_) => top_of_book(ev, n)?,
                other => return Ok(other),
            }
        }
        emit(ev);
        return Ok(Decoded::Events(1));
    }
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

/// Levels of a partial-book stream (`btcusdt@depth20@100ms` -> 20); `None` for any other stream.
#[inline]
fn partial_depth(stream: &str) -> Option<u32> {
    match stream.split('@').nth(1)? {
        "depth5" => Some(5),
        "depth10" => Some(10),
        "depth20" => Some(20),
        _ => None,
    }
}

/// A USD-M partial-book message (decoded as a `depthUpdate`) into the `book_snapshot` it is:
/// its levels are the top `n` of the book, its `u` the book's update id. The level lists are
/// swapped, not copied (no allocation once both have grown).
fn top_of_book(ev: &mut Event, n: u32) -> Result<(), DecodeError> {
    if ev.kind != Some(EventKind::DepthDiff) {
        return Err(DecodeError::UnknownEvent);
    }
    ev.clear_book();
    std::mem::swap(&mut ev.book.bids, &mut ev.depth.bids);
    std::mem::swap(&mut ev.book.asks, &mut ev.depth.asks);
    ev.book.update_id = ev.depth.last_update_id;
    ev.book.depth = n;
    ev.kind = Some(EventKind::BookSnapshot);
    Ok(())
}

/// A spot partial-book message `{"lastUpdateId","bids","asks"}`: the symbol is the stream's
/// (upper case); the message carries no event time (`exchange_ts_ns` 0).
fn spot_partial_book(
    payload: Value<'_, '_>,
    ev: &mut Event,
    stream: &str,
    n: u32,
) -> Result<(), DecodeError> {
    let obj = payload.as_object().ok_or(DecodeError::Shape("data"))?;
    let sym = stream.split('@').next().unwrap_or("");
    if sym.is_empty() || sym.len() > 64 {
        return Err(DecodeError::Shape("stream"));
    }
    set(&mut ev.header.symbol, sym);
    ev.header.symbol.make_ascii_uppercase();
    ev.header.exchange_ts_ns = 0;
    ev.header.transaction_ts_ns = 0;
    ev.clear_book();
    ev.book.update_id = obj
        .get("lastUpdateId")
        .and_then(|v| v.as_u64())
        .ok_or(DecodeError::Shape("lastUpdateId"))?;
    levels(&mut ev.book.bids, obj.get("bids"), "bids")?;
    levels(&mut ev.book.asks, obj.get("asks"), "asks")?;
    ev.book.depth = n;
    ev.kind = Some(EventKind::BookSnapshot);
    Ok(())
}

/// A payload's members on the tape. Unknown keys are ignored (forward compatible); a repeated
/// key keeps its last value.
#[derive(Default)]
struct TapeFields<'t, 'i> {
    /// Indexed by [`Key`] (`Key as usize`).
    v: [Option<Value<'t, 'i>>; KEYS],
    /// `forceOrder`'s nested order.
    o: Option<Value<'t, 'i>>,
}

const KEYS: usize = Key::r as usize + 1;

impl<'t, 'i> TapeFields<'t, 'i> {
    fn read(obj: simd_json::tape::Object<'t, 'i>) -> Self {
        let mut f = TapeFields::default();
        for (k, v) in obj.iter() {
            let key = match k {
                "e" => Key::e,
                "E" => Key::E,
                "s" => Key::s,
                "t" => Key::t,
                "p" => Key::p,
                "q" => Key::q,
                "T" => Key::T,
                "m" => Key::m,
                "a" => Key::a,
                "f" => Key::f,
                "l" => Key::l,
                "U" => Key::U,
                "u" => Key::u,
                "pu" => Key::pu,
                "b" => Key::b,
                "B" => Key::B,
                "A" => Key::A,
                "X" => Key::X,
                "nq" => Key::nq,
                "P" => Key::P,
                "i" => Key::i,
                "r" => Key::r,
                "o" => {
                    f.o = Some(v);
                    continue;
                }
                _ => continue,
            };
            f.v[key as usize] = Some(v);
        }
        f
    }
}

impl interpret::Fields for TapeFields<'_, '_> {
    const ALL_SHAPES: bool = true;

    #[inline]
    fn has(&self, k: Key) -> bool {
        self.v[k as usize].is_some()
    }

    #[inline]
    fn text(&self, k: Key) -> Option<&str> {
        self.v[k as usize].and_then(|v| v.into_string())
    }

    #[inline]
    fn uint(&self, k: Key) -> Option<u64> {
        self.v[k as usize].and_then(|v| v.as_u64())
    }

    #[inline]
    fn boolean(&self, k: Key) -> Option<bool> {
        self.v[k as usize].and_then(|v| v.as_bool())
    }

    fn depth_levels(&self, ev: &mut Event) -> Result<(), DecodeError> {
        ev.clear_depth();
        levels(&mut ev.depth.bids, self.v[Key::b as usize], "b")?;
        levels(&mut ev.depth.asks, self.v[Key::a as usize], "a")
    }

    fn force_order(&self, ev: &mut Event) -> Result<(), DecodeError> {
        force_order(ev, self.o, self.v[Key::E as usize])
    }
}

fn decode_payload(
    payload: Value<'_, '_>,
    ev: &mut Event,
    keep_non_trade: bool,
) -> Result<Decoded, DecodeError> {
    let obj = payload.as_object().ok_or(DecodeError::Shape("data"))?;
    interpret::payload(&TapeFields::read(obj), ev, keep_non_trade)
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
