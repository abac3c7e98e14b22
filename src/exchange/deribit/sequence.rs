//! How Deribit chains an instrument's `book` notifications (EXCHANGES.md 4.4, Deribit docs
//! "book.{instrument_name}.{interval}"), for the exchange-neutral book in `book::sync`:
//! the `snapshot` notification loads the book; every `change` carries `prev_change_id`, which
//! equals the previous notification's `change_id` when nothing was missed; anything else is a
//! break, and the instrument is re-subscribed for a new snapshot.

use crate::book::sync::{Outcome, SequenceRules};

/// Deribit's sequence rules (one instance for every instrument).
#[derive(Debug)]
pub struct DeribitSequence;

/// The rules as the book takes them.
pub static RULES: DeribitSequence = DeribitSequence;

impl SequenceRules for DeribitSequence {
    #[inline]
    fn check(&self, l: u64, _first: u64, last: u64, prev: Option<u64>, _fresh: bool) -> Outcome {
        match prev {
            Some(p) if p == l && last > l => Outcome::Applied,
            // Already in the book (a change from before the snapshot that loaded it).
            _ if last <= l => Outcome::Stale,
            // A change without `prev_change_id` after the snapshot cannot be proven continuous.
            _ => Outcome::Gap,
        }
    }

    fn reaches(&self, l: u64, _first: u64, prev: Option<u64>) -> bool {
        prev.is_some_and(|p| p <= l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_id_chain() {
        let r = &RULES;
        assert_eq!(r.check(10, 12, 12, Some(10), true), Outcome::Applied);
        assert_eq!(r.check(12, 13, 13, Some(11), false), Outcome::Gap);
        assert_eq!(r.check(12, 9, 9, Some(8), false), Outcome::Stale);
        assert_eq!(r.check(12, 12, 12, Some(10), false), Outcome::Stale);
        assert_eq!(r.check(12, 14, 14, None, false), Outcome::Gap);
        assert!(r.reaches(10, 12, Some(10)));
        assert!(!r.reaches(10, 12, Some(11)));
    }
}
