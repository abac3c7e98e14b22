//! One side of a local order book: a sorted vector with the best level at the *end*.
//!
//! Measured against an ordered map (`BTreeMap`) and a price ladder (`bench/book.rs`, results in
//! `perf/`): most updates touch the top of the book, which sits at the end of the vector, so an
//! insert or removal shifts only the few levels above it; lookups are a binary search over
//! contiguous memory; nothing allocates once the vector has grown to the book's depth. A ladder needs
//! the symbol's tick size (not in the stream) and wastes memory on sparse books; a `BTreeMap`
//! allocates nodes as levels come and go.

use super::price::Dec;

/// A price level: ordering key, and the exchange's exact price and quantity strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub key: u128,
    pub price: Dec,
    pub qty: Dec,
}

/// Bids ascend (best = highest = last); asks descend (best = lowest = last).
#[derive(Debug, Clone)]
pub struct Side {
    levels: Vec<Level>,
    bids: bool,
}

impl Side {
    pub fn new(bids: bool) -> Side {
        Side {
            levels: Vec::with_capacity(1024),
            bids,
        }
    }

    #[inline]
    fn find(&self, key: u128) -> Result<usize, usize> {
        if self.bids {
            self.levels.binary_search_by(|l| l.key.cmp(&key))
        } else {
            self.levels.binary_search_by(|l| key.cmp(&l.key))
        }
    }

    /// Sets the absolute quantity at a price; a zero quantity removes the level (removing an
    /// unknown level is normal and does nothing).
    #[inline]
    pub fn set(&mut self, key: u128, price: Dec, qty: Dec) {
        match self.find(key) {
            Ok(i) => {
                if qty.is_zero() {
                    self.levels.remove(i);
                } else {
                    self.levels[i].qty = qty;
                    self.levels[i].price = price;
                }
            }
            Err(i) => {
                if !qty.is_zero() {
                    self.levels.insert(i, Level { key, price, qty });
                }
            }
        }
    }

    /// The best level.
    #[inline]
    pub fn best(&self) -> Option<&Level> {
        self.levels.last()
    }

    /// Levels from the best outward.
    pub fn best_first(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn clear(&mut self) {
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::price::price_key;

    fn set(s: &mut Side, p: &str, q: &str) {
        s.set(
            price_key(p).unwrap(),
            Dec::new(p).unwrap(),
            Dec::new(q).unwrap(),
        );
    }

    #[test]
    fn keeps_best_first_order() {
        let mut b = Side::new(true);
        set(&mut b, "10.0", "1");
        set(&mut b, "12.0", "2");
        set(&mut b, "11.0", "3");
        set(&mut b, "11.0", "4");
        set(&mut b, "9.5", "0.000");
        let v: Vec<(&str, &str)> = b
            .best_first()
            .map(|l| (l.price.as_str(), l.qty.as_str()))
            .collect();
        assert_eq!(v, [("12.0", "2"), ("11.0", "4"), ("10.0", "1")]);
        set(&mut b, "12.00", "0");
        assert_eq!(b.best().unwrap().price.as_str(), "11.0");
        let mut a = Side::new(false);
        set(&mut a, "13", "1");
        set(&mut a, "12.5", "1");
        set(&mut a, "14", "1");
        assert_eq!(a.best().unwrap().price.as_str(), "12.5");
        let v: Vec<&str> = a.best_first().map(|l| l.price.as_str()).collect();
        assert_eq!(v, ["12.5", "13", "14"]);
    }
}
