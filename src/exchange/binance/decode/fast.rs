//! The fast path for Binance's high-rate payloads: trade, aggTrade, depthUpdate and bookTicker.
//!
//! One scalar pass over the frame reads the object and, for a depth diff, copies every level
//! straight into the event while checking it is a plain decimal: no tape, no string unescaping,
//! no second pass over the levels. simd-json's general parse costs about half of the per-message
//! budget on its own (perf/README.md), and these four shapes are the streams that carry most
//! messages (all of the benchmark mix).
//!
//! It accepts only a strict subset of JSON: strings of printable ASCII without escapes, numbers
//! without exponent and at most 18 digits per part, nesting up to [`MAX_DEPTH`], no repeated key
//! among those it reads. Whatever falls outside the subset, any other event type, array payloads,
//! control replies and every error return `None`, and the caller decodes the frame with the
//! general simd-json path, which is the reference: on frames both accept, both produce the same
//! event (`differential.rs` checks this on the fixtures, the benchmark mix and mutations).

use crate::event::{Event, EventKind, Levels, set};
use crate::exchange::is_decimal;
use crate::wire::Side;

/// Deepest nesting skipped inside fields the fast path does not read.
const MAX_DEPTH: u32 = 16;

/// A value seen in the object, by position in the frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    /// A string's contents (without quotes): printable ASCII, no escapes.
    Str(u32, u32),
    /// A number's text.
    Num(u32, u32),
    True,
    False,
    /// `b` or `a` given as an array of `[price, qty]` pairs, already copied into the event.
    Levels,
    /// Anything else (null, objects, other arrays).
    Other,
}

/// Where an array value goes: `b`/`a` arrays of `[price, qty]` pairs into the event's depth
/// levels, any other array skipped.
#[derive(Clone, Copy)]
enum Dest {
    Skip,
    Bids,
    Asks,
}

/// The payload keys the four fast shapes read; the rest are skipped.
#[derive(Default)]
#[allow(non_snake_case)]
struct Fields {
    e: Option<Val>,
    E: Option<Val>,
    s: Option<Val>,
    t: Option<Val>,
    p: Option<Val>,
    q: Option<Val>,
    T: Option<Val>,
    m: Option<Val>,
    a: Option<Val>,
    f: Option<Val>,
    l: Option<Val>,
    U: Option<Val>,
    u: Option<Val>,
    pu: Option<Val>,
    b: Option<Val>,
    B: Option<Val>,
    A: Option<Val>,
    X: Option<Val>,
    nq: Option<Val>,
}

/// Cursor over one frame whose last byte is a 0 sentinel (no rule accepts 0, so every loop stops
/// there). The cursor only moves past non-zero bytes, hence it never passes the sentinel.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    bids_seen: bool,
    asks_seen: bool,
}

/// Decodes the `len` bytes of `buf` into `ev` if they are one of the fast shapes; `None` leaves
/// them to the general path (`ev` may then hold partial fields, which the general path overwrites
/// or ignores). Writes a 0 at `buf[len]` (the frame's padding; none: `None`).
pub(super) fn decode(
    buf: &mut [u8],
    len: usize,
    ev: &mut Event,
    stream: &mut String,
    recv_ts_ns: i64,
) -> Option<()> {
    *buf.get_mut(len)? = 0;
    let frame: &[u8] = &buf[..=len];
    let mut sc = Scan {
        b: frame,
        i: 0,
        bids_seen: false,
        asks_seen: false,
    };
    ev.clear_depth();
    sc.ws();
    sc.eat(b'{')?;
    let mut root = Fields::default();
    let mut data: Option<Fields> = None;
    let mut stream_name: Option<(u32, u32)> = None;
    sc.ws();
    if sc.peek() == b'}' {
        return None;
    }
    loop {
        sc.ws();
        let key = sc.key()?;
        sc.ws();
        sc.eat(b':')?;
        sc.ws();
        match key {
            b"stream" => {
                if stream_name.is_some() {
                    return None;
                }
                match sc.value(ev, Dest::Skip)? {
                    Val::Str(s, e) => stream_name = Some((s, e)),
                    _ => return None,
                }
            }
            b"data" => {
                if data.is_some() || sc.peek() != b'{' {
                    return None;
                }
                let mut f = Fields::default();
                sc.object(ev, &mut f)?;
                data = Some(f);
            }
            b"result" | b"id" | b"error" => return None,
            _ => sc.member(key, ev, &mut root)?,
        }
        sc.ws();
        match sc.next() {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    sc.ws();
    if sc.i != len {
        return None;
    }
    let f = data.as_ref().unwrap_or(&root);
    payload(frame, f, ev)?;
    if let Some((s, e)) = stream_name
        && e - s <= 128
    {
        set(stream, text(frame, s, e));
    }
    ev.header.receive_ts_ns = recv_ts_ns;
    Some(())
}

/// Interprets the collected fields, as the general path's `decode_payload` does for these shapes.
fn payload(b: &[u8], f: &Fields, ev: &mut Event) -> Option<()> {
    let e = match f.e {
        Some(Val::Str(s, e)) => Some(&b[s as usize..e as usize]),
        Some(_) => return None,
        None => None,
    };
    ev.header.transaction_ts_ns = 0;
    match e {
        Some(b"trade") => {
            // USD-M `X`: the three kinds of real trades; anything else (`NA` records, a new
            // kind) is the general path's to judge.
            let trade_type = match f.X {
                None => "",
                Some(Val::Str(s, e)) => match &b[s as usize..e as usize] {
                    b"MARKET" => "market",
                    b"INSURANCE_FUND" => "insurance_fund",
                    b"ADL" => "adl",
                    _ => return None,
                },
                Some(_) => return None,
            };
            symbol(b, ev, f.s)?;
            ev.header.exchange_ts_ns = millis(b, f.T)?;
            let t = &mut ev.trade;
            t.trade_id = uint(b, f.t)?;
            set(&mut t.price, decimal(b, f.p)?);
            set(&mut t.qty, decimal(b, f.q)?);
            t.set_side(side(f.m)?);
            set(&mut t.trade_type, trade_type);
            ev.kind = Some(EventKind::Trade);
        }
        Some(b"aggTrade") => {
            symbol(b, ev, f.s)?;
            ev.header.exchange_ts_ns = millis(b, f.T)?;
            let t = &mut ev.agg_trade;
            t.agg_id = uint(b, f.a)?;
            t.first_trade_id = uint(b, f.f)?;
            t.last_trade_id = uint(b, f.l)?;
            set(&mut t.price, decimal(b, f.p)?);
            set(&mut t.qty, decimal(b, f.q)?);
            t.set_side(side(f.m)?);
            match f.nq {
                None => t.normal_qty.clear(),
                Some(_) => set(&mut t.normal_qty, decimal(b, f.nq)?),
            }
            ev.kind = Some(EventKind::AggTrade);
        }
        Some(b"depthUpdate") => {
            if f.b != Some(Val::Levels) || f.a != Some(Val::Levels) {
                return None;
            }
            symbol(b, ev, f.s)?;
            ev.header.exchange_ts_ns = millis(b, f.E)?;
            ev.depth.first_update_id = uint(b, f.U)?;
            ev.depth.last_update_id = uint(b, f.u)?;
            if f.pu.is_some() {
                ev.depth.prev_last_update_id = Some(uint(b, f.pu)?);
            }
            if f.T.is_some() {
                ev.header.transaction_ts_ns = millis(b, f.T)?;
            }
            ev.kind = Some(EventKind::DepthDiff);
        }
        Some(b"bookTicker") => book_ticker(b, f, ev)?,
        Some(_) => return None,
        None if f.u.is_some() && f.b.is_some() && f.a.is_some() => book_ticker(b, f, ev)?,
        None => return None,
    }
    Some(())
}

fn book_ticker(b: &[u8], f: &Fields, ev: &mut Event) -> Option<()> {
    symbol(b, ev, f.s)?;
    ev.header.exchange_ts_ns = match f.E {
        Some(_) => millis(b, f.E)?,
        None => 0,
    };
    if f.T.is_some() {
        ev.header.transaction_ts_ns = millis(b, f.T)?;
    }
    let t = &mut ev.book_ticker;
    t.update_id = uint(b, f.u)?;
    set(&mut t.bid_price, decimal(b, f.b)?);
    set(&mut t.bid_qty, decimal(b, f.B)?);
    set(&mut t.ask_price, decimal(b, f.a)?);
    set(&mut t.ask_qty, decimal(b, f.A)?);
    ev.kind = Some(EventKind::BookTicker);
    Some(())
}

/// The text of a string or number the scanner accepted.
#[inline]
fn text(b: &[u8], s: u32, e: u32) -> &str {
    let bytes = &b[s as usize..e as usize];
    debug_assert!(bytes.is_ascii());
    // SAFETY: the scanner accepts strings of printable ASCII only and numbers of ASCII digits,
    // signs and dots, so every `Str`/`Num` span is ASCII and hence valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

#[inline]
fn symbol(b: &[u8], ev: &mut Event, v: Option<Val>) -> Option<()> {
    let Some(Val::Str(s, e)) = v else { return None };
    if s == e || e - s > 64 {
        return None;
    }
    set(&mut ev.header.symbol, text(b, s, e));
    Some(())
}

/// A non-negative integer that fits u64 (anything else: general path).
#[inline]
fn uint(b: &[u8], v: Option<Val>) -> Option<u64> {
    let Some(Val::Num(s, e)) = v else { return None };
    let mut n: u64 = 0;
    for &c in &b[s as usize..e as usize] {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

#[inline]
fn millis(b: &[u8], v: Option<Val>) -> Option<i64> {
    i64::try_from(uint(b, v)?).ok()?.checked_mul(1_000_000)
}

#[inline]
fn decimal(b: &[u8], v: Option<Val>) -> Option<&str> {
    let Some(Val::Str(s, e)) = v else { return None };
    let t = text(b, s, e);
    is_decimal(t).then_some(t)
}

#[inline]
fn side(v: Option<Val>) -> Option<Side> {
    // `m`: is the buyer the maker? Then the taker sold.
    match v? {
        Val::True => Some(Side::Sell),
        Val::False => Some(Side::Buy),
        _ => None,
    }
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn peek(&self) -> u8 {
        debug_assert!(self.i < self.b.len());
        // SAFETY: `i` starts at 0 and only moves past non-zero bytes (`next` does not move on 0;
        // every other step follows a `peek`/`literal` that saw a non-zero byte there), and the
        // last byte of `b` is the 0 sentinel, so `i <= b.len() - 1`.
        unsafe { *self.b.get_unchecked(self.i) }
    }

    #[inline(always)]
    fn next(&mut self) -> u8 {
        let c = self.peek();
        self.i += usize::from(c != 0);
        c
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next() == c).then_some(())
    }

    #[inline(always)]
    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// A string's contents, cursor after the closing quote.
    #[inline]
    fn string(&mut self) -> Option<(u32, u32)> {
        self.eat(b'"')?;
        let s = self.i;
        loop {
            match self.peek() {
                b'"' => break,
                // No escapes, no control characters, ASCII only: what Binance sends.
                0x20..=0x7e if self.peek() != b'\\' => self.i += 1,
                _ => return None,
            }
        }
        let e = self.i;
        self.i += 1;
        Some((u32::try_from(s).ok()?, u32::try_from(e).ok()?))
    }

    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        let (s, e) = self.string()?;
        let b: &'a [u8] = self.b;
        Some(&b[s as usize..e as usize])
    }

    /// Up to 18 digits (no leading zero unless alone when `int`); cursor after them.
    #[inline]
    fn digits(&mut self, int: bool) -> Option<()> {
        let s = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        let n = self.i - s;
        let leading_zero = int && n > 1 && self.b[s] == b'0';
        ((1..=18).contains(&n) && !leading_zero).then_some(())
    }

    /// A JSON number without exponent.
    fn number(&mut self) -> Option<Val> {
        let s = self.i;
        if self.peek() == b'-' {
            self.i += 1;
        }
        self.digits(true)?;
        if self.peek() == b'.' {
            self.i += 1;
            self.digits(false)?;
        }
        if matches!(self.peek(), b'e' | b'E') {
            return None;
        }
        Some(Val::Num(
            u32::try_from(s).ok()?,
            u32::try_from(self.i).ok()?,
        ))
    }

    fn literal(&mut self, word: &[u8], v: Val) -> Option<Val> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| {
            self.i = end;
            v
        })
    }

    /// One value; an array goes to `dest`.
    fn value(&mut self, ev: &mut Event, dest: Dest) -> Option<Val> {
        match self.peek() {
            b'"' => {
                let (s, e) = self.string()?;
                Some(Val::Str(s, e))
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true", Val::True),
            b'f' => self.literal(b"false", Val::False),
            b'n' => self.literal(b"null", Val::Other),
            b'[' => match dest {
                Dest::Skip => {
                    self.skip(0)?;
                    Some(Val::Other)
                }
                Dest::Bids | Dest::Asks => {
                    let bids = matches!(dest, Dest::Bids);
                    let (seen, out) = if bids {
                        (&mut self.bids_seen, &mut ev.depth.bids)
                    } else {
                        (&mut self.asks_seen, &mut ev.depth.asks)
                    };
                    // A second `b`/`a` array anywhere in the frame (root and `data`): general path.
                    if std::mem::replace(seen, true) {
                        return None;
                    }
                    self.levels(out)?;
                    Some(Val::Levels)
                }
            },
            b'{' => {
                self.skip(0)?;
                Some(Val::Other)
            }
            _ => None,
        }
    }

    /// The members of a payload object into `f`; cursor after the closing brace.
    fn object(&mut self, ev: &mut Event, f: &mut Fields) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.key()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.member(key, ev, f)?;
            self.ws();
            match self.next() {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The value of member `key` (cursor on it) into its field; a key read twice leaves the path.
    #[inline]
    fn member(&mut self, key: &[u8], ev: &mut Event, f: &mut Fields) -> Option<()> {
        let slot = match key {
            b"e" => &mut f.e,
            b"E" => &mut f.E,
            b"s" => &mut f.s,
            b"t" => &mut f.t,
            b"p" => &mut f.p,
            b"q" => &mut f.q,
            b"T" => &mut f.T,
            b"m" => &mut f.m,
            b"a" => {
                let v = self.value(ev, Dest::Asks)?;
                return put(&mut f.a, v);
            }
            b"f" => &mut f.f,
            b"l" => &mut f.l,
            b"U" => &mut f.U,
            b"u" => &mut f.u,
            b"pu" => &mut f.pu,
            b"b" => {
                let v = self.value(ev, Dest::Bids)?;
                return put(&mut f.b, v);
            }
            b"B" => &mut f.B,
            b"A" => &mut f.A,
            b"X" => &mut f.X,
            b"nq" => &mut f.nq,
            _ => {
                self.value(ev, Dest::Skip)?;
                return Some(());
            }
        };
        let v = self.value(ev, Dest::Skip)?;
        put(slot, v)
    }

    /// `[["price","qty"],...]` straight into `out`, each string checked to be a plain decimal.
    fn levels(&mut self, out: &mut Levels) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.peek() == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.eat(b'[')?;
            self.ws();
            let p = self.decimal()?;
            self.ws();
            self.eat(b',')?;
            self.ws();
            let q = self.decimal()?;
            self.ws();
            self.eat(b']')?;
            out.push(text(self.b, p.0, p.1), text(self.b, q.0, q.1));
            self.ws();
            match self.next() {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A quoted plain decimal (`-`? digits (`.` digits)?, at most 64 bytes after the sign), the
    /// same rule as [`is_decimal`], checked while scanning.
    #[inline]
    fn decimal(&mut self) -> Option<(u32, u32)> {
        self.eat(b'"')?;
        let s = self.i;
        if self.peek() == b'-' {
            self.i += 1;
        }
        let body = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        if self.i == body {
            return None;
        }
        if self.peek() == b'.' {
            self.i += 1;
            let frac = self.i;
            while self.peek().is_ascii_digit() {
                self.i += 1;
            }
            if self.i == frac {
                return None;
            }
        }
        if self.i - body > 64 {
            return None;
        }
        let e = self.i;
        self.eat(b'"')?;
        Some((u32::try_from(s).ok()?, u32::try_from(e).ok()?))
    }

    /// Skips an array or object within the subset; cursor after it.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let close = match self.next() {
            b'[' => b']',
            b'{' => b'}',
            _ => return None,
        };
        self.ws();
        if self.peek() == close {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            if close == b'}' {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            match self.peek() {
                b'[' | b'{' => self.skip(depth + 1)?,
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' => {
                    self.literal(b"true", Val::True)?;
                }
                b'f' => {
                    self.literal(b"false", Val::False)?;
                }
                b'n' => {
                    self.literal(b"null", Val::Other)?;
                }
                _ => return None,
            }
            self.ws();
            match self.next() {
                b',' => continue,
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[inline]
fn put(slot: &mut Option<Val>, v: Val) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(line: &str) -> Option<Event> {
        let mut ev = Event::new("binance", "spot");
        let mut stream = String::new();
        let mut buf = line.as_bytes().to_vec();
        buf.push(b'x');
        decode(&mut buf, line.len(), &mut ev, &mut stream, 7).map(|()| ev)
    }

    #[test]
    fn takes_the_four_shapes() {
        let t = fast(r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":3,"p":"1.5","q":"2","T":4,"m":true,"M":true}}"#).unwrap();
        assert_eq!(t.kind, Some(EventKind::Trade));
        assert_eq!(
            (t.trade.price.as_str(), t.header.exchange_ts_ns),
            ("1.5", 4_000_000)
        );
        let d = fast(r#" {"e":"depthUpdate","E":5,"s":"X","U":1,"u":2,"pu":0,"b":[["1.0","2"] , ["3","0.00"]],"a":[]} "#).unwrap();
        assert_eq!(
            d.depth.bids.iter().collect::<Vec<_>>(),
            [("1.0", "2"), ("3", "0.00")]
        );
        assert_eq!(
            (d.depth.asks.len(), d.depth.prev_last_update_id),
            (0, Some(0))
        );
        let b = fast(r#"{"u":9,"s":"X","b":"1","B":"2","a":"3","A":"4"}"#).unwrap();
        assert_eq!(
            (b.kind, b.header.exchange_ts_ns),
            (Some(EventKind::BookTicker), 0)
        );
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        for line in [
            r#"{"e":"trade","s":"X\u0041","t":1,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"X","t":1.0,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"X","t":1,"p":"1e5","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"X","t":1,"t":2,"p":"1","q":"1","T":1,"m":true}"#,
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":1,"m":true,"x":1e3}"#,
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":1,"m":true} x"#,
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":1,"m":1}"#,
            r#"{"e":"markPriceUpdate","s":"X","p":"1","E":1}"#,
            r#"{"e":"depthUpdate","E":5,"s":"X","U":1,"u":2,"b":[["1","2","3"]],"a":[]}"#,
            r#"{"e":"depthUpdate","E":5,"s":"X","U":1,"u":2,"b":[["1.","2"]],"a":[]}"#,
            r#"{"e":"depthUpdate","E":5,"s":"X","U":1,"u":2,"b":[],"b":[],"a":[]}"#,
            r#"{"result":null,"id":1}"#,
            r#"{"stream":"x","data":[{"e":"trade"}]}"#,
            r#"{"e":"trade","s":"X","t":99999999999999999999,"p":"1","q":"1","T":1,"m":true}"#,
            "{}",
            "",
            "{\"e\":\"trade\"\u{0}",
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":1,"m":tru"#,
        ] {
            assert!(fast(line).is_none(), "{line}");
        }
    }
}
