//! The fields of one JSON Lines object, found by scanning the encoder's output where it lies: a
//! row needs a dozen values by name, and building a `serde_json::Value` tree for that cost ~1 µs
//! and a dozen allocations per row. Values come back as the text the encoder wrote (a number's
//! digits, a string's contents, an array's JSON), so decimals reach `NUMERIC` exactly as the
//! exchange sent them. Tolerates whitespace and nesting; anything that is not a JSON object
//! fails the scan (the row is skipped and counted).

/// One value of the object, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    /// A number as written.
    Num(&'a [u8]),
    /// A string's contents between the quotes, escapes not yet undone.
    Str(&'a [u8]),
    /// An array or object as written.
    Json(&'a [u8]),
}

/// The (key, value) spans of the last object scanned; reused row after row.
#[derive(Default)]
pub struct Fields {
    /// Key contents and value text, as byte ranges of the line.
    spans: Vec<(u32, u32, u32, u32)>,
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// End (one past the closing quote) of the string whose opening quote is at `i`.
fn string_end(s: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// End of the value starting at `i`.
fn value_end(s: &[u8], i: usize) -> Option<usize> {
    match s.get(i)? {
        b'"' => string_end(s, i),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < s.len() {
                match s[j] {
                    b'"' => {
                        j = string_end(s, j)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

impl Fields {
    /// Finds the top-level fields of `line`; `false` when it is not one JSON object.
    pub fn scan(&mut self, line: &[u8]) -> bool {
        self.spans.clear();
        if line.len() > u32::MAX as usize {
            return false;
        }
        let mut i = skip_ws(line, 0);
        if line.get(i) != Some(&b'{') {
            return false;
        }
        i = skip_ws(line, i + 1);
        if line.get(i) == Some(&b'}') {
            return skip_ws(line, i + 1) == line.len();
        }
        loop {
            if line.get(i) != Some(&b'"') {
                return false;
            }
            let Some(kend) = string_end(line, i) else {
                return false;
            };
            let key = (i + 1, kend - 1);
            i = skip_ws(line, kend);
            if line.get(i) != Some(&b':') {
                return false;
            }
            i = skip_ws(line, i + 1);
            let Some(vend) = value_end(line, i) else {
                return false;
            };
            self.spans
                .push((key.0 as u32, key.1 as u32, i as u32, vend as u32));
            i = skip_ws(line, vend);
            match line.get(i) {
                Some(b',') => i = skip_ws(line, i + 1),
                Some(b'}') => return skip_ws(line, i + 1) == line.len(),
                _ => return false,
            }
        }
    }

    /// The text of `key`'s value in `line` (the line last scanned) as written: JSON.
    pub fn raw<'a>(&self, line: &'a [u8], key: &str) -> Option<&'a [u8]> {
        let &(_, _, a, b) = self
            .spans
            .iter()
            .find(|&&(ka, kb, _, _)| line.get(ka as usize..kb as usize) == Some(key.as_bytes()))?;
        line.get(a as usize..b as usize)
    }

    /// The value of `key` in `line` (the line last scanned); `None` when absent.
    pub fn get<'a>(&self, line: &'a [u8], key: &str) -> Option<Val<'a>> {
        let v = self.raw(line, key)?;
        Some(match v {
            b"null" => Val::Null,
            b"true" => Val::Bool(true),
            b"false" => Val::Bool(false),
            [b'"', inner @ .., b'"'] => Val::Str(inner),
            [b'[' | b'{', ..] => Val::Json(v),
            _ => Val::Num(v),
        })
    }
}

/// An integer written as JSON digits (no fraction, no exponent).
pub fn parse_i64(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A string's contents with its escapes undone, into `out`; `None` when an escape is malformed,
/// the text is not UTF-8, or it holds a NUL (which PostgreSQL's text cannot store).
pub fn unescape<'a>(raw: &'a [u8], out: &'a mut String) -> Option<&'a str> {
    if !raw.contains(&b'\\') {
        let s = std::str::from_utf8(raw).ok()?;
        return (!s.contains('\0')).then_some(s);
    }
    out.clear();
    let text = std::str::from_utf8(raw).ok()?;
    let mut chars = text.chars();
    let hex4 = |c: &mut std::str::Chars| -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + c.next()?.to_digit(16)?;
        }
        Some(v)
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(cp)?
            }
            _ => return None,
        };
        out.push(e);
    }
    (!out.contains('\0')).then_some(out.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind_of_value() {
        let line = br#"{"type":"trade","price":"61837.63000000","trade_id":42,"neg":-7,"ok":true,"no":null,"bids":[["1.5","2"],["1.4","3"]],"o":{"a":"}"},"s":"a\"b\\c\u00e9"}"#;
        let mut f = Fields::default();
        assert!(f.scan(line));
        assert_eq!(f.get(line, "type"), Some(Val::Str(b"trade")));
        assert_eq!(f.get(line, "price"), Some(Val::Str(b"61837.63000000")));
        assert_eq!(f.get(line, "trade_id"), Some(Val::Num(b"42")));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"1.5"), None);
        assert_eq!(f.get(line, "ok"), Some(Val::Bool(true)));
        assert_eq!(f.get(line, "no"), Some(Val::Null));
        assert_eq!(
            f.get(line, "bids"),
            Some(Val::Json(br#"[["1.5","2"],["1.4","3"]]"#))
        );
        assert_eq!(f.get(line, "o"), Some(Val::Json(br#"{"a":"}"}"#)));
        assert_eq!(f.get(line, "missing"), None);
        let Some(Val::Str(s)) = f.get(line, "s") else {
            panic!()
        };
        let mut out = String::new();
        assert_eq!(unescape(s, &mut out), Some("a\"b\\c\u{e9}"));
    }

    #[test]
    fn tolerates_whitespace_and_refuses_what_is_not_an_object() {
        let mut f = Fields::default();
        let line = b" { \"a\" : 1 , \"b\" : [ 1 , 2 ] }\n";
        assert!(f.scan(line));
        assert_eq!(f.get(line, "a"), Some(Val::Num(b"1")));
        assert_eq!(f.get(line, "b"), Some(Val::Json(b"[ 1 , 2 ]")));
        assert!(f.scan(b"{}"));
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":\"x}",
            b"{\"a\":[1,2}",
            b"{\"a\":1} x",
            b"{\"a\":1 \"b\":2}",
        ] {
            assert!(!f.scan(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn escapes() {
        let mut out = String::new();
        assert_eq!(
            unescape(br"\ud83d\ude00 \n", &mut out),
            Some("\u{1F600} \n")
        );
        for bad in [
            &br"\u0000"[..],
            br"\ud83d",
            br"\x",
            br"\u12",
            b"a\0b",
            b"\xff",
        ] {
            assert_eq!(unescape(bad, &mut String::new()), None, "{bad:?}");
        }
    }
}
