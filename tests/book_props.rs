//! Property tests (proptest) of the local order book: after a snapshot, any sequence of valid
//! diffs (consecutive update ids, any levels set or removed) keeps the book equal to a naive
//! model (two sorted maps), each side sorted best first, and the book uncrossed; the same holds
//! for USD-M's `pu` chaining.

use mdc::book::sync::{DiffRef, Outcome, Snapshot, SymbolBook};
use mdc::event::levels::Levels;
use mdc::exchange::binance::sequence::Sequence;
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Prices as the exchange writes them: one canonical text per price.
fn px(p: u32) -> String {
    format!("{}.{:02}", p / 100, p % 100)
}

fn qty(q: u32) -> String {
    if q == 0 {
        "0.000".into()
    } else {
        format!("{}.{:03}", q / 1000, q % 1000)
    }
}

type Side = Vec<(u32, u32)>;

fn check(book: &SymbolBook, bids: &BTreeMap<u32, u32>, asks: &BTreeMap<u32, u32>) {
    let got_b: Vec<(String, String)> = book
        .bids
        .best_first()
        .map(|l| (l.price.as_str().to_string(), l.qty.as_str().to_string()))
        .collect();
    let got_a: Vec<(String, String)> = book
        .asks
        .best_first()
        .map(|l| (l.price.as_str().to_string(), l.qty.as_str().to_string()))
        .collect();
    let want_b: Vec<(String, String)> = bids.iter().rev().map(|(p, q)| (px(*p), qty(*q))).collect();
    let want_a: Vec<(String, String)> = asks.iter().map(|(p, q)| (px(*p), qty(*q))).collect();
    assert_eq!(got_b, want_b, "bids equal the model, best first");
    assert_eq!(got_a, want_a, "asks equal the model, best first");
    if let (Some(b), Some(a)) = (bids.keys().next_back(), asks.keys().next()) {
        assert!(b < a, "uncrossed");
    }
}

fn run(futures: bool, snap_b: Side, snap_a: Side, diffs: Vec<(Side, Side, u64)>) {
    let rules = if futures {
        Sequence::Futures.rules()
    } else {
        Sequence::Spot.rules()
    };
    let mut book = SymbolBook::new(rules, 1000);
    let (mut mb, mut ma) = (BTreeMap::new(), BTreeMap::new());
    for (p, q) in &snap_b {
        if *q > 0 {
            mb.insert(*p, *q);
        }
    }
    for (p, q) in &snap_a {
        if *q > 0 {
            ma.insert(*p, *q);
        }
    }
    let snap = Snapshot {
        last_update_id: 100,
        bids: mb.iter().map(|(p, q)| (px(*p), qty(*q))).collect(),
        asks: ma.iter().map(|(p, q)| (px(*p), qty(*q))).collect(),
        ..Snapshot::default()
    };
    book.take_request();
    assert_eq!(book.on_snapshot(&snap), Outcome::Applied);
    check(&book, &mb, &ma);
    let mut last = 100u64;
    let (mut bids, mut asks) = (Levels::default(), Levels::default());
    for (db, da, span) in diffs {
        bids.clear();
        asks.clear();
        for (p, q) in &db {
            bids.push(&px(*p), &qty(*q));
        }
        for (p, q) in &da {
            asks.push(&px(*p), &qty(*q));
        }
        // Spot: U = previous u + 1. USD-M: `pu` = previous u, and U may jump (ids are shared
        // across symbols).
        let first = if futures { last + 1 + span } else { last + 1 };
        let l = first + span;
        let out = book.on_diff(DiffRef {
            first,
            last: l,
            prev: futures.then_some(last),
            ts_ns: 1,
            txn_ts_ns: 0,
            bids: &bids,
            asks: &asks,
            checksum: None,
        });
        assert_eq!(out, Outcome::Applied);
        for (p, q) in db {
            if q == 0 {
                mb.remove(&p);
            } else {
                mb.insert(p, q);
            }
        }
        for (p, q) in da {
            if q == 0 {
                ma.remove(&p);
            } else {
                ma.insert(p, q);
            }
        }
        last = l;
        assert!(book.is_live());
        check(&book, &mb, &ma);
    }
}

fn side(lo: u32, hi: u32, n: usize) -> impl Strategy<Value = Side> {
    vec((lo..hi, 0u32..5000), 0..n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn spot_diffs_keep_the_book_equal_to_a_model(
        snap_b in side(1_000, 10_000, 40),
        snap_a in side(10_001, 20_000, 40),
        diffs in vec((side(1_000, 10_000, 8), side(10_001, 20_000, 8), 0u64..4), 1..80),
    ) {
        run(false, snap_b, snap_a, diffs);
    }

    #[test]
    fn usdm_diffs_keep_the_book_equal_to_a_model(
        snap_b in side(1_000, 10_000, 40),
        snap_a in side(10_001, 20_000, 40),
        diffs in vec((side(1_000, 10_000, 8), side(10_001, 20_000, 8), 0u64..4), 1..80),
    ) {
        run(true, snap_b, snap_a, diffs);
    }
}
