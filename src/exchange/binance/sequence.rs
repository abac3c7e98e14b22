//! How Binance chains a symbol's depth diffs (EXCHANGES.md 4.1, 4.2), for the exchange-neutral
//! book in `book::sync`:
//! - spot: drop diffs with `u <= L` (L = snapshot `lastUpdateId`); the first applied diff has
//!   `U <= L+1 <= u`; afterwards `U == prev u + 1`, a larger `U` is a gap.
//! - USD-M futures: drop `u < L`; the first applied diff has `U <= L <= u` (or `pu == L`);
//!   afterwards `pu == prev u`, anything else is a gap (update ids are shared by all symbols,
//!   so `U` jumps past `pu + 1`).

use crate::book::sync::{Outcome, SequenceRules};

/// Which procedure a Binance market follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    Spot,
    Futures,
}

impl SequenceRules for Sequence {
    #[inline]
    fn check(&self, l: u64, first: u64, last: u64, prev: Option<u64>, fresh: bool) -> Outcome {
        match self {
            Sequence::Spot => {
                if last <= l {
                    Outcome::Stale
                } else if first > l.saturating_add(1) {
                    Outcome::Gap
                } else {
                    Outcome::Applied
                }
            }
            Sequence::Futures => {
                if fresh {
                    if last < l {
                        Outcome::Stale
                    } else if (first <= l && l <= last) || prev == Some(l) {
                        Outcome::Applied
                    } else {
                        Outcome::Gap
                    }
                } else if last <= l {
                    Outcome::Stale
                } else if prev == Some(l) {
                    Outcome::Applied
                } else {
                    Outcome::Gap
                }
            }
        }
    }

    fn reaches(&self, l: u64, first: u64, prev: Option<u64>) -> bool {
        first <= l.saturating_add(1) || (*self == Sequence::Futures && prev == Some(l))
    }
}

impl Sequence {
    /// The rules as the book takes them.
    pub fn rules(self) -> crate::book::sync::Rules {
        match self {
            Sequence::Spot => &Sequence::Spot,
            Sequence::Futures => &Sequence::Futures,
        }
    }
}
