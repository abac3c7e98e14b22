//! How OKX chains an instrument's `books` pushes (EXCHANGES.md 4.3, OKX docs "Sequence ID"), for
//! the exchange-neutral book in `book::sync`:
//! - the `snapshot` push loads the book (`prevSeqId` = -1, sent to us as no `prev`);
//! - every update's `prevSeqId` equals the previous push's `seqId`; that includes the two
//!   documented exceptions: the keep-alive after ~60 s without changes (`seqId == prevSeqId`,
//!   empty sides) and the reset after maintenance (`seqId < prevSeqId`);
//! - anything else is a break;
//! - pushes recorded before OKX sent `seqId` (2021-2022) carry no ids: only their checksum
//!   proves them.
//!
//! The checksum: CRC32 of the top 25 bids and asks after the push, interleaved
//! `bidPx:bidSz:askPx:askSz:...` (a side with fewer levels leaves its part out) with the
//! exchange's own strings, compared as a signed 32-bit integer. OKX sends `0` since its 2026
//! deprecation: the decoder then reports no checksum.

use crate::book::side::Side;
use crate::book::sync::{Outcome, SequenceRules};

/// Levels per side the checksum covers.
pub const CHECKSUM_LEVELS: usize = 25;

/// OKX's sequence rules (one instance for every instrument).
#[derive(Debug)]
pub struct OkxSequence;

/// The rules as the book takes them.
pub static RULES: OkxSequence = OkxSequence;

impl SequenceRules for OkxSequence {
    #[inline]
    fn check(&self, l: u64, _first: u64, last: u64, prev: Option<u64>, _fresh: bool) -> Outcome {
        match prev {
            // No ids sent (old recordings): the checksum is the only proof.
            None => Outcome::Applied,
            // The chain holds: a normal update, a keep-alive (seqId == prevSeqId) or a reset
            // (seqId < prevSeqId).
            Some(p) if p == l => Outcome::Applied,
            // Already in the book (a push before the snapshot that loaded it).
            Some(p) if p < l && last <= l => Outcome::Stale,
            Some(_) => Outcome::Gap,
        }
    }

    fn reaches(&self, l: u64, _first: u64, prev: Option<u64>) -> bool {
        prev.is_none_or(|p| p <= l)
    }

    fn checksum(&self, bids: &Side, asks: &Side) -> Option<i32> {
        Some(checksum(bids, asks))
    }
}

/// OKX's checksum of a book, computed without building the string.
pub fn checksum(bids: &Side, asks: &Side) -> i32 {
    let mut crc = Crc32::new();
    let mut first = true;
    let mut b = bids.best_first().take(CHECKSUM_LEVELS);
    let mut a = asks.best_first().take(CHECKSUM_LEVELS);
    loop {
        let (nb, na) = (b.next(), a.next());
        if nb.is_none() && na.is_none() {
            break;
        }
        for l in [nb, na].into_iter().flatten() {
            if !first {
                crc.update(b":");
            }
            first = false;
            crc.update(l.price.as_str().as_bytes());
            crc.update(b":");
            crc.update(l.qty.as_str().as_bytes());
        }
    }
    crc.finish() as i32
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), table-driven.
pub struct Crc32(u32);

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        let mut c = Crc32::new();
        c.update(b"");
        assert_eq!(c.finish(), 0);
    }

    /// The documented example: snapshot (-1,10) -> (10,15) -> (15,15) keep-alive -> (15,3)
    /// reset -> (3,5); a break and a stale push are told apart.
    #[test]
    fn seq_id_chain_with_keep_alive_and_reset() {
        let r = &RULES;
        assert_eq!(r.check(10, 15, 15, Some(10), true), Outcome::Applied);
        assert_eq!(r.check(15, 15, 15, Some(15), false), Outcome::Applied);
        assert_eq!(r.check(15, 3, 3, Some(15), false), Outcome::Applied);
        assert_eq!(r.check(3, 5, 5, Some(3), false), Outcome::Applied);
        assert_eq!(r.check(5, 9, 9, Some(7), false), Outcome::Gap);
        assert_eq!(r.check(5, 4, 4, Some(2), false), Outcome::Stale);
        assert_eq!(r.check(5, 0, 0, None, false), Outcome::Applied);
        assert!(r.reaches(10, 12, Some(10)));
        assert!(!r.reaches(10, 14, Some(12)));
    }
}
