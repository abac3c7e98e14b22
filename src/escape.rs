//! Byte escaping for names that travel where only some characters may: URLs (`%XX`), Kafka topic
//! names (`-XX`). Exchanges list symbols in UTF-8 (Binance since December 2025).

use std::borrow::Cow;

/// `s` with every byte `keep` refuses written as `mark` and two upper-case hex digits; borrowed
/// when nothing needs escaping (the usual ASCII symbol).
pub fn bytes(s: &str, keep: impl Fn(u8) -> bool, mark: char) -> Cow<'_, str> {
    if s.bytes().all(&keep) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push(mark);
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    Cow::Owned(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";
