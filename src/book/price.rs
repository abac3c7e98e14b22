//! Exact decimals for the book: the exchange's digits kept inline (no allocation), plus a scaled
//! integer used only to order price levels.

/// A decimal string as the exchange sent it, stored inline (at most [`Dec::CAP`] bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    len: u8,
    bytes: [u8; Dec::CAP],
}

impl Dec {
    /// Longest decimal kept; Binance prices and quantities are at most ~20 characters.
    pub const CAP: usize = 31;

    /// Copies `s`; `None` if it is longer than [`Dec::CAP`].
    #[inline]
    pub fn new(s: &str) -> Option<Dec> {
        if s.len() > Self::CAP {
            return None;
        }
        let mut bytes = [0u8; Self::CAP];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Dec {
            len: s.len() as u8,
            bytes,
        })
    }

    /// A quantity from the exchange: a plain non-negative decimal (digits, optional `.digits`);
    /// `None` for a sign (`-0`, `-1`), an exponent, or anything else a book must not take in.
    #[inline]
    pub fn quantity(s: &str) -> Option<Dec> {
        let b = s.as_bytes();
        if b.first() == Some(&b'-') || !is_decimal(s) {
            return None;
        }
        Dec::new(s)
    }

    /// The exchange's digits.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Built from a &str, so the prefix is valid UTF-8; "" is unreachable.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// The exchange's digits as bytes (no UTF-8 check: for hashing and checksums).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// True when the value is zero ("0", "0.00000000"): a level removal.
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.bytes[..self.len as usize]
            .iter()
            .all(|&c| c == b'0' || c == b'.')
    }
}

impl std::fmt::Debug for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Fractional digits of the ordering key: prices are compared as integers scaled by 10^18.
const SCALE_DIGITS: u32 = 18;

/// Orders prices exactly: the decimal scaled by 10^18 as a `u128` (prices up to 3.4e20 with up to 18
/// fractional digits). `None` for anything that is not a plain non-negative decimal.
#[inline]
pub fn price_key(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b[..0]),
    };
    if int.is_empty() || frac.len() > SCALE_DIGITS as usize || int.len() > 20 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u128;
    }
    let mut f: u128 = 0;
    for &c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        f = f * 10 + (c - b'0') as u128;
    }
    let f = f * 10u128.pow(SCALE_DIGITS - frac.len() as u32);
    v.checked_mul(10u128.pow(SCALE_DIGITS))?.checked_add(f)
}

/// True when `s` is a plain decimal as exchanges send them: optional `-`, digits, optional `.digits`.
#[inline]
pub fn is_decimal(s: &str) -> bool {
    let b = s.as_bytes();
    let b = b.strip_prefix(b"-").unwrap_or(b);
    if b.is_empty() || b.len() > 64 {
        return false;
    }
    let mut dot = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            if dot || i == 0 || i == b.len() - 1 {
                return false;
            }
            dot = true;
        } else if !c.is_ascii_digit() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_numbers() {
        let k = |s| price_key(s).unwrap();
        assert!(k("61837.63000000") < k("61837.64"));
        assert_eq!(k("1.5"), k("1.50000000"));
        assert!(k("0.00000001") > k("0"));
        assert!(k("100") > k("99.999999999999999999"[..17].as_ref()));
        assert!(
            price_key("1e5").is_none() && price_key("-1").is_none() && price_key(".5").is_none()
        );
        assert!(Dec::new("0.00000000").unwrap().is_zero());
        for bad in ["-0", "-1.5", "1e3", "", "1.", "0x10", " 1"] {
            assert!(Dec::quantity(bad).is_none(), "{bad}");
        }
        assert_eq!(Dec::quantity("0.00100000").unwrap().as_str(), "0.00100000");
        assert!(!Dec::new("0.00000001").unwrap().is_zero());
        assert_eq!(
            Dec::new("61837.63000000").unwrap().as_str(),
            "61837.63000000"
        );
    }
}
