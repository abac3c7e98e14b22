//! A pull reader over one JSON text that keeps every number's exact text.
//!
//! simd-json's tape turns numbers into `f64`/`i64`, which loses what an exchange sending prices as
//! JSON numbers wrote (Deribit: `6000.0`, `1e-05`); this reader hands out the span of each
//! number and string instead, so a price reaches the sink with the exchange's own digits
//! ([`number::plain_decimal`](super::number::plain_decimal) only moves the point of an exponent
//! form). It allocates nothing and reads the frame in place.
//!
//! Use: [`Scan::new`] checks the whole text once (full JSON grammar, nesting up to
//! [`MAX_DEPTH`]) so a decoder never emits events from a truncated or malformed frame; then cursors
//! ([`Scan::at`]) walk objects and arrays member by member, skipping what they do not read.
//! Strings are returned raw (between the quotes): a caller that reads a string's text requires
//! [`Val::Str`] without escapes ([`Scan::text`]); skipped strings may hold any escape or UTF-8.

/// Deepest nesting accepted (deeper: the frame is rejected, never a stack overflow).
pub const MAX_DEPTH: u32 = 64;

/// One value, by position in the frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Val {
    /// A string's raw contents (between the quotes) and whether it holds escapes.
    Str {
        start: u32,
        end: u32,
        escaped: bool,
    },
    /// A number's text, as written.
    Num {
        start: u32,
        end: u32,
    },
    Bool(bool),
    Null,
    /// An object or array starting at this offset (its `{` / `[`); read it with [`Scan::at`].
    Obj(u32),
    Arr(u32),
}

/// A cursor over a frame whose last byte is a 0 sentinel (no rule accepts 0, so every loop stops
/// there; the cursor never moves past it).
#[derive(Clone, Copy)]
pub struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

/// The bytes of the little-endian word `x` that are `"`, `\\` or below 0x20, as their high bits
/// (SWAR: a byte `b` is below `n` when `b - n` borrows into its high bit while `b`'s own high
/// bit is clear). A borrow only runs upwards, so the lowest set bit marks exactly the first such
/// byte (bits above it may be false alarms).
#[inline(always)]
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\'))) | below_space
}

/// The frame is not JSON (or nests deeper than [`MAX_DEPTH`], or is over 4 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

type R<T> = Result<T, Invalid>;

impl<'a> Scan<'a> {
    /// Checks that `buf[..len]` is one JSON value (whitespace around it allowed) and returns a
    /// cursor on it. Writes the 0 sentinel at `buf[len]` (the frame's padding).
    pub fn new(buf: &'a mut [u8], len: usize) -> R<Scan<'a>> {
        if len >= u32::MAX as usize {
            return Err(Invalid);
        }
        *buf.get_mut(len).ok_or(Invalid)? = 0;
        let b: &'a [u8] = &buf[..=len];
        let mut sc = Scan { b, i: 0 };
        sc.ws();
        let start = sc.i;
        sc.value(0)?;
        sc.ws();
        if sc.i != len {
            return Err(Invalid);
        }
        Ok(Scan { b, i: start })
    }

    /// A cursor at byte `pos` (an offset from [`Val::Obj`] / [`Val::Arr`]).
    #[inline]
    pub fn at(&self, pos: u32) -> Scan<'a> {
        Scan {
            b: self.b,
            i: (pos as usize).min(self.b.len() - 1),
        }
    }

    /// The bytes of a span.
    #[inline]
    pub fn bytes(&self, start: u32, end: u32) -> &'a [u8] {
        self.b.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// A string's text when it has no escapes and is printable ASCII (names, enums, ids).
    #[inline]
    pub fn text(&self, v: Val) -> Option<&'a str> {
        match v {
            Val::Str {
                start,
                end,
                escaped: false,
            } => {
                let s = self.bytes(start, end);
                if s.iter().all(|c| (0x20..0x7f).contains(c)) {
                    // SAFETY: every byte was just checked to be printable ASCII, which is UTF-8.
                    Some(unsafe { std::str::from_utf8_unchecked(s) })
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// A number's text as written.
    #[inline]
    pub fn number(&self, v: Val) -> Option<&'a str> {
        match v {
            Val::Num { start, end } => {
                let s = self.bytes(start, end);
                debug_assert!(s.is_ascii());
                // SAFETY: a `Num` span comes only from `num`, whose grammar admits ASCII digits,
                // `-`, `+`, `.`, `e` and `E` alone, so it is ASCII and hence UTF-8.
                Some(unsafe { std::str::from_utf8_unchecked(s) })
            }
            _ => None,
        }
    }

    /// A non-negative integer that fits u64 (no fraction, no exponent).
    pub fn uint(&self, v: Val) -> Option<u64> {
        let Val::Num { start, end } = v else {
            return None;
        };
        let mut n: u64 = 0;
        for &c in self.bytes(start, end) {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        }
        Some(n)
    }

    /// An integer that fits i64.
    pub fn int(&self, v: Val) -> Option<i64> {
        let Val::Num { start, end } = v else {
            return None;
        };
        let s = self.bytes(start, end);
        let (neg, digits) = match s.split_first() {
            Some((b'-', d)) => (true, d),
            _ => (false, s),
        };
        let n = i64::try_from(self.uint(Val::Num {
            start: start + u32::from(neg),
            end: start + u32::from(neg) + digits.len() as u32,
        })?)
        .ok()?;
        Some(if neg { -n } else { n })
    }

    #[inline(always)]
    fn peek(&self) -> u8 {
        // In bounds: `i <= b.len() - 1` (see the type's invariant).
        self.b[self.i]
    }

    #[inline(always)]
    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> R<()> {
        if self.peek() == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Enters the object under the cursor.
    pub fn object(&mut self) -> R<()> {
        self.ws();
        self.eat(b'{')?;
        self.ws();
        Ok(())
    }

    /// The next member's key of the object entered (cursor then on its value), or `None` after
    /// the closing brace. `first` is true for the first call after [`Scan::object`].
    pub fn key(&mut self, first: bool) -> R<Option<&'a [u8]>> {
        self.ws();
        if self.peek() == b'}' {
            self.i += 1;
            return Ok(None);
        }
        if !first {
            self.eat(b',')?;
            self.ws();
        }
        let (s, e, _) = self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Ok(Some(&self.b[s..e]))
    }

    /// Enters the array under the cursor.
    pub fn array(&mut self) -> R<()> {
        self.ws();
        self.eat(b'[')?;
        Ok(())
    }

    /// Moves to the next element of the array entered (`true`, cursor on it) or past its
    /// closing bracket (`false`).
    pub fn element(&mut self, first: bool) -> R<bool> {
        self.ws();
        if self.peek() == b']' {
            self.i += 1;
            return Ok(false);
        }
        if !first {
            self.eat(b',')?;
            self.ws();
        }
        Ok(true)
    }

    /// The value under the cursor; an object or array is skipped and returned by position.
    /// The frame was checked whole by [`Scan::new`], so containers are skipped by bracket
    /// counting alone (each byte looked at once, no grammar).
    pub fn next_value(&mut self) -> R<Val> {
        self.ws();
        match self.peek() {
            b'{' => {
                let at = self.i as u32;
                self.skip_container();
                Ok(Val::Obj(at))
            }
            b'[' => {
                let at = self.i as u32;
                self.skip_container();
                Ok(Val::Arr(at))
            }
            _ => self.value(0),
        }
    }

    /// The container under the cursor, by position, without moving (the root of a frame).
    pub fn container(&self) -> Option<Val> {
        let mut c = *self;
        c.ws();
        match c.peek() {
            b'{' => Some(Val::Obj(c.i as u32)),
            b'[' => Some(Val::Arr(c.i as u32)),
            _ => None,
        }
    }

    /// Past the object or array under the cursor, in a frame already checked whole: counts
    /// brackets outside strings. Stops at the 0 sentinel whatever happens.
    fn skip_container(&mut self) {
        let b = self.b;
        let mut i = self.i;
        let mut depth = 0u32;
        loop {
            let c = b[i];
            i += 1;
            match c {
                b'"' => loop {
                    let c = b[i];
                    if c == 0 {
                        self.i = i;
                        return;
                    }
                    i += 1;
                    if c == b'\\' {
                        if b[i] == 0 {
                            self.i = i;
                            return;
                        }
                        i += 1;
                    } else if c == b'"' {
                        break;
                    }
                },
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.i = i;
                        return;
                    }
                }
                0 => {
                    self.i = i - 1;
                    return;
                }
                _ => {}
            }
        }
    }

    /// A string; cursor after the closing quote. Escapes are checked, not decoded.
    #[inline]
    fn string(&mut self) -> R<(usize, usize, bool)> {
        self.eat(b'"')?;
        let s = self.i;
        let mut escaped = false;
        loop {
            // Eight bytes at a time up to the first quote, backslash or control character (the
            // 0 sentinel is one, so this never passes the end).
            if let Some(w) = self.b.get(self.i..self.i + 8) {
                let m = special(u64::from_le_bytes([
                    w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
                ]));
                if m == 0 {
                    self.i += 8;
                    continue;
                }
                self.i += (m.trailing_zeros() / 8) as usize;
            }
            match self.peek() {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek() {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_ascii_hexdigit() {
                                    return Err(Invalid);
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(Invalid),
                    }
                }
                // Control characters (and the 0 sentinel) end the frame as invalid.
                0..=0x1f => return Err(Invalid),
                _ => self.i += 1,
            }
        }
        let e = self.i;
        self.i += 1;
        Ok((s, e, escaped))
    }

    fn digits(&mut self) -> R<usize> {
        let s = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        if self.i == s {
            return Err(Invalid);
        }
        Ok(self.i - s)
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn num(&mut self) -> R<Val> {
        let s = self.i;
        if self.peek() == b'-' {
            self.i += 1;
        }
        let first = self.peek();
        if self.digits()? > 1 && first == b'0' {
            return Err(Invalid);
        }
        if self.peek() == b'.' {
            self.i += 1;
            self.digits()?;
        }
        if matches!(self.peek(), b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.i += 1;
            }
            self.digits()?;
        }
        Ok(Val::Num {
            start: s as u32,
            end: self.i as u32,
        })
    }

    fn literal(&mut self, word: &[u8], v: Val) -> R<Val> {
        let end = self.i + word.len();
        if self.b.get(self.i..end) == Some(word) {
            self.i = end;
            Ok(v)
        } else {
            Err(Invalid)
        }
    }

    fn value(&mut self, depth: u32) -> R<Val> {
        match self.peek() {
            b'"' => {
                let (s, e, escaped) = self.string()?;
                Ok(Val::Str {
                    start: s as u32,
                    end: e as u32,
                    escaped,
                })
            }
            b'-' | b'0'..=b'9' => self.num(),
            b't' => self.literal(b"true", Val::Bool(true)),
            b'f' => self.literal(b"false", Val::Bool(false)),
            b'n' => self.literal(b"null", Val::Null),
            b'{' => {
                let at = self.i as u32;
                if depth >= MAX_DEPTH {
                    return Err(Invalid);
                }
                self.object()?;
                let mut first = true;
                while self.key(first)?.is_some() {
                    first = false;
                    self.value(depth + 1)?;
                }
                Ok(Val::Obj(at))
            }
            b'[' => {
                let at = self.i as u32;
                if depth >= MAX_DEPTH {
                    return Err(Invalid);
                }
                self.array()?;
                let mut first = true;
                while self.element(first)? {
                    first = false;
                    self.value(depth + 1)?;
                }
                Ok(Val::Arr(at))
            }
            _ => Err(Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> bool {
        let mut buf = s.as_bytes().to_vec();
        buf.push(0);
        Scan::new(&mut buf, s.len()).is_ok()
    }

    #[test]
    fn accepts_json_and_rejects_the_rest() {
        for ok in [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e-3, true, false, null, \"x\\\"y\\u00e9\"]} ",
            "{\"k\":{\"n\":{}}}",
            "0",
            "\"é\"",
            "-0.0",
            "1E+5",
        ] {
            assert!(check(ok), "{ok}");
        }
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1 2]",
            "[1,]",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\nb\"",
            "{} {}",
            "tru",
            "nul",
            "[\"a\u{0}\"]",
        ] {
            assert!(!check(bad), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(!check(&deep));
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check(&ok));
    }

    /// The eight-byte string loop finds every quote, backslash and control character wherever
    /// it falls in a word.
    #[test]
    fn strings_with_specials_at_every_position() {
        for len in 0..40 {
            let plain = "é".repeat(len / 2) + &"a".repeat(len % 2);
            assert!(check(&format!("\"{plain}\"")), "{len}");
            for pos in 0..=plain.len() {
                if !plain.is_char_boundary(pos) {
                    continue;
                }
                let (a, b) = plain.split_at(pos);
                assert!(check(&format!("\"{a}\\\"{b}\"")), "escaped quote at {pos}");
                assert!(check(&format!("\"{a}\\u00e9{b}\"")), "escape at {pos}");
                for bad in ["\"", "\\x", "\n", "\u{1}", "\u{0}"] {
                    assert!(
                        !check(&format!("\"{a}{bad}{b}\"")),
                        "{bad:?} at {pos} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn skipping_a_container_ignores_brackets_and_quotes_inside_strings() {
        let s = r#"{"a":{"s":"x\"}]\\","t":[1,{"u":"]"}]},"b":2,"c":[[],{}],"d":true}"#;
        let mut buf = s.as_bytes().to_vec();
        buf.push(0);
        let root = Scan::new(&mut buf, s.len()).unwrap();
        let mut c = root;
        c.object().unwrap();
        let mut seen = Vec::new();
        let mut first = true;
        while let Some(k) = c.key(first).unwrap() {
            first = false;
            let v = c.next_value().unwrap();
            seen.push((k.to_vec(), v));
        }
        let keys: Vec<&[u8]> = seen.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [b"a".as_slice(), b"b", b"c", b"d"]);
        assert_eq!(root.uint(seen[1].1), Some(2));
        assert_eq!(seen[3].1, Val::Bool(true));
        assert_eq!(root.container(), Some(Val::Obj(0)));
    }

    #[test]
    fn walks_members_and_keeps_number_text() {
        let s = "{\"p\":6000.0,\"q\":1e-05,\"n\":\"BTC\",\"l\":[[\"new\",1.5,2]],\"e\":\"a\\nb\",\"i\":-42}";
        let mut buf = s.as_bytes().to_vec();
        buf.push(0);
        let root = Scan::new(&mut buf, s.len()).unwrap();
        let mut c = root;
        c.object().unwrap();
        let mut got = Vec::new();
        let mut first = true;
        while let Some(k) = c.key(first).unwrap() {
            first = false;
            let v = c.next_value().unwrap();
            got.push((String::from_utf8(k.to_vec()).unwrap(), v));
        }
        assert_eq!(root.number(got[0].1), Some("6000.0"));
        assert_eq!(root.number(got[1].1), Some("1e-05"));
        assert_eq!(root.text(got[2].1), Some("BTC"));
        assert_eq!(
            root.text(got[4].1),
            None,
            "escaped strings are not read as text"
        );
        assert_eq!(root.int(got[5].1), Some(-42));
        assert_eq!(root.uint(got[5].1), None);
        let Val::Arr(at) = got[3].1 else { panic!() };
        let mut a = root.at(at);
        a.array().unwrap();
        assert!(a.element(true).unwrap());
        let Val::Arr(inner) = a.next_value().unwrap() else {
            panic!()
        };
        assert!(!a.element(false).unwrap());
        let mut l = root.at(inner);
        l.array().unwrap();
        assert!(l.element(true).unwrap());
        assert_eq!(root.text(l.next_value().unwrap()), Some("new"));
        assert!(l.element(false).unwrap());
        assert_eq!(root.number(l.next_value().unwrap()), Some("1.5"));
        assert!(l.element(false).unwrap());
        assert_eq!(root.uint(l.next_value().unwrap()), Some(2));
        assert!(!l.element(false).unwrap());
    }
}
