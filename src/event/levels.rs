//! Price levels of one book side, packed: every price and quantity of a message in one string.
//!
//! One buffer per side is reused from message to message by clearing it: no per-level `String`s
//! to keep, park and re-take (measured the same speed as those, with less bookkeeping). The
//! strings are the exchange's decimals exactly as sent (never parsed into floating point).

use crate::wire;

/// One side (bids or asks) of a depth diff or book snapshot, in the order given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Levels {
    /// Every price and quantity, concatenated in order.
    text: String,
    /// Per level: the end offsets in `text` of its price and of its quantity (the price starts
    /// where the previous level's quantity ended).
    ends: Vec<[u32; 2]>,
}

impl Levels {
    /// Room for `levels` levels of `text` bytes in total before anything reallocates.
    pub fn with_capacity(levels: usize, text: usize) -> Self {
        Levels {
            text: String::with_capacity(text),
            ends: Vec::with_capacity(levels),
        }
    }

    /// Removes every level, keeping the capacity.
    #[inline]
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Appends a level.
    #[inline]
    pub fn push(&mut self, price: &str, qty: &str) {
        self.text.push_str(price);
        let p = self.text.len();
        self.text.push_str(qty);
        // Offsets fit u32: a side holds the levels of one message (under 4 GB, which simd-json
        // refuses) or of one book (a few thousand levels).
        self.ends.push([p as u32, self.text.len() as u32]);
    }

    /// Number of levels.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no level.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The levels in order, as `(price, qty)`.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            levels: self,
            ends: self.ends.iter(),
            start: 0,
        }
    }

    /// The levels as Protobuf `Level` messages (owned; for tests and tools, not the hot path).
    pub fn to_wire(&self) -> Vec<wire::Level> {
        self.iter()
            .map(|(p, q)| wire::Level {
                price: p.to_owned(),
                qty: q.to_owned(),
            })
            .collect()
    }
}

impl<'a> IntoIterator for &'a Levels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over [`Levels`], yielding `(price, qty)`.
#[derive(Clone)]
pub struct Iter<'a> {
    levels: &'a Levels,
    ends: std::slice::Iter<'a, [u32; 2]>,
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let &[p, q] = self.ends.next()?;
        let (p, q) = (p as usize, q as usize);
        let text = &self.levels.text;
        let level = (&text[self.start..p], &text[p..q]);
        self.start = q;
        Some(level)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::Levels;

    #[test]
    fn packs_and_returns_levels_in_order() {
        let mut l = Levels::default();
        assert!(l.is_empty());
        assert_eq!(l.iter().next(), None);
        l.push("61837.63", "0.5");
        l.push("", "2");
        l.push("1.25", "");
        assert_eq!(l.len(), 3);
        let v: Vec<_> = l.iter().collect();
        assert_eq!(v, [("61837.63", "0.5"), ("", "2"), ("1.25", "")]);
        assert_eq!(l.iter().nth(2), Some(("1.25", "")));
        assert_eq!(l.iter().len(), 3);
        assert_eq!(l.to_wire()[0].price, "61837.63");
        l.clear();
        assert!(l.is_empty());
        assert_eq!(l.iter().next(), None);
        l.push("9", "8");
        assert_eq!(l.iter().collect::<Vec<_>>(), [("9", "8")]);
    }
}
