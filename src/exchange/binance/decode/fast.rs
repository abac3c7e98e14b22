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

use super::interpret::{self, Key};
use crate::event::{Event, Levels, set};
use crate::exchange::{DecodeError, Decoded};

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
    keep_non_trade: bool,
) -> Option<Decoded> {
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
    // Scanned in place (moving a filled `Fields` costs a 200-byte copy per frame).
    let mut data = Fields::default();
    let mut has_data = false;
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
                if has_data || sc.peek() != b'{' {
                    return None;
                }
                sc.object(ev, &mut data)?;
                has_data = true;
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
    let f = Scanned {
        b: frame,
        f: if has_data { &data } else { &root },
    };
    // Any error: the general path decodes the frame again and names it.
    let decoded = interpret::payload(&f, ev, keep_non_trade).ok()?;
    if let Some((s, e)) = stream_name
        && e - s <= 128
    {
        set(stream, text(frame, s, e));
    }
    ev.header.receive_ts_ns = recv_ts_ns;
    Some(decoded)
}

/// The members the scan collected, over the frame's bytes.
struct Scanned<'a> {
    b: &'a [u8],
    f: &'a Fields,
}

impl Scanned<'_> {
    #[inline(always)]
    fn get(&self, k: Key) -> Option<Val> {
        let f = self.f;
        match k {
            Key::e => f.e,
            Key::E => f.E,
            Key::s => f.s,
            Key::t => f.t,
            Key::p => f.p,
            Key::q => f.q,
            Key::T => f.T,
            Key::m => f.m,
            Key::a => f.a,
            Key::f => f.f,
            Key::l => f.l,
            Key::U => f.U,
            Key::u => f.u,
            Key::pu => f.pu,
            Key::b => f.b,
            Key::B => f.B,
            Key::A => f.A,
            Key::X => f.X,
            Key::nq => f.nq,
            // Not collected: only shapes that do not read them are covered.
            Key::P | Key::i | Key::r => None,
        }
    }
}

impl interpret::Fields for Scanned<'_> {
    const ALL_SHAPES: bool = false;

    #[inline(always)]
    fn has(&self, k: Key) -> bool {
        self.get(k).is_some()
    }

    #[inline(always)]
    fn text(&self, k: Key) -> Option<&str> {
        match self.get(k)? {
            Val::Str(s, e) => Some(text(self.b, s, e)),
            _ => None,
        }
    }

    #[inline(always)]
    fn uint(&self, k: Key) -> Option<u64> {
        uint(self.b, self.get(k))
    }

    #[inline(always)]
    fn boolean(&self, k: Key) -> Option<bool> {
        match self.get(k)? {
            Val::True => Some(true),
            Val::False => Some(false),
            _ => None,
        }
    }

    /// The scan copied `b` and `a` into the event already; other shapes of them decline.
    #[inline]
    fn depth_levels(&self, _ev: &mut Event) -> Result<(), DecodeError> {
        if self.f.b != Some(Val::Levels) || self.f.a != Some(Val::Levels) {
            return Err(DecodeError::Shape("b"));
        }
        Ok(())
    }

    fn force_order(&self, _ev: &mut Event) -> Result<(), DecodeError> {
        Err(DecodeError::UnknownEvent)
    }
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

/// A non-negative integer that fits u64 (anything else: general path).
#[inline(always)]
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
    /// same rule as [`is_decimal`](crate::exchange::is_decimal), checked while scanning.
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
    use crate::event::EventKind;

    fn fast(line: &str) -> Option<Event> {
        let mut ev = Event::new("binance", "spot");
        let mut stream = String::new();
        let mut buf = line.as_bytes().to_vec();
        buf.push(b'x');
        decode(&mut buf, line.len(), &mut ev, &mut stream, 7, false).map(|_| ev)
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
