//! Order-book structure and hot-path costs (criterion):
//! - `apply_level/*`: one level update (set or remove) on a ~200-level side, with the update
//!   distribution of the simulator's depth stream (near the top, 20% removals), for the candidates:
//!   the sorted vector used by `book::side` (best at the end), an ordered map (`BTreeMap`), and a
//!   price ladder (array indexed by tick, needs the tick size).
//! - `apply_diff/sorted_vec`: a whole 20-level diff through `SymbolBook::on_diff` (sync checks,
//!   decimal parsing, both sides).
//! - `snapshot20`: building the 20-level `book_snapshot` event of a synced book.
//!
//! Run: `cargo bench --bench book` (results in perf/).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdc::book::price::{Dec, price_key};
use mdc::book::side::Side;
use mdc::book::sync::{DiffRef, Snapshot, SymbolBook};
use mdc::event::{Event, Levels};
use mdc::exchange::binance::sequence::Sequence;
use mdc::simulator::generator::Rng;
use std::collections::BTreeMap;
use std::hint::black_box;

fn price(cents: u64) -> String {
    format!("{}.{:02}000000", cents / 100, cents % 100)
}

/// (cents, qty-or-zero) updates around a mid of 6,000,000 cents.
fn updates(n: usize) -> Vec<(u64, u64)> {
    let mut r = Rng(42);
    (0..n)
        .map(|_| {
            let off = r.range(0, 200);
            let q = if r.chance(20) {
                0
            } else {
                r.range(1, 2_000_000_000)
            };
            (6_000_000 - off, q)
        })
        .collect()
}

fn bench_structures(c: &mut Criterion) {
    let ups = updates(4096);
    let prepared: Vec<(u128, Dec, Dec, u64, u64)> = ups
        .iter()
        .map(|(p, q)| {
            let ps = price(*p);
            let qs = format!("{}.{:08}", q / 100_000_000, q % 100_000_000);
            (
                price_key(&ps).unwrap(),
                Dec::new(&ps).unwrap(),
                Dec::new(&qs).unwrap(),
                *p,
                *q,
            )
        })
        .collect();
    let mut g = c.benchmark_group("apply_level");
    g.throughput(Throughput::Elements(1));
    let mut side = Side::new(true);
    for (k, p, q, ..) in &prepared {
        side.set(*k, *p, *q);
    }
    let mut i = 0;
    g.bench_function("sorted_vec", |b| {
        b.iter(|| {
            let (k, p, q, ..) = &prepared[i & 4095];
            side.set(*k, *p, *q);
            i += 1;
        })
    });
    let mut map: BTreeMap<u128, (Dec, Dec)> = BTreeMap::new();
    let mut i = 0;
    g.bench_function("btreemap", |b| {
        b.iter(|| {
            let (k, p, q, ..) = &prepared[i & 4095];
            if q.is_zero() {
                map.remove(k);
            } else {
                map.insert(*k, (*p, *q));
            }
            i += 1;
        })
    });
    // Ladder: 1-cent ticks, 4096 slots around the mid; best tracked by scanning on removal.
    let base = 6_000_000 - 2048;
    let mut ladder: Vec<Option<(Dec, Dec)>> = vec![None; 4096];
    let mut best = 0usize;
    let mut i = 0;
    g.bench_function("price_ladder", |b| {
        b.iter(|| {
            let (_, p, q, cents, qty) = &prepared[i & 4095];
            let idx = (*cents - base) as usize;
            if *qty == 0 {
                ladder[idx] = None;
                if idx == best {
                    while best > 0 && ladder[best].is_none() {
                        best -= 1;
                    }
                }
            } else {
                ladder[idx] = Some((*p, *q));
                best = best.max(idx);
            }
            i += 1;
            black_box(best)
        })
    });
    g.finish();
}

fn bench_book(c: &mut Criterion) {
    // A synced book of ~200 levels per side.
    let mut book = SymbolBook::new(Sequence::Spot.rules(), 1000);
    let mut snap = Snapshot {
        last_update_id: 1,
        ..Default::default()
    };
    for i in 0..200u64 {
        snap.bids.push((price(6_000_000 - i), "1.00000000".into()));
        snap.asks.push((price(6_000_001 + i), "1.00000000".into()));
    }
    let none = Levels::default();
    let _ = book.on_diff(DiffRef {
        ts_ns: 0,
        txn_ts_ns: 0,
        first: 1,
        last: 1,
        prev: None,
        bids: &none,
        asks: &none,
        checksum: None,
    });
    book.on_snapshot(&snap);
    let mut r = Rng(7);
    let diffs: Vec<(Levels, Levels)> = (0..256)
        .map(|_| {
            let side = |r: &mut Rng, ask: bool| -> Levels {
                let mut levels = Levels::default();
                for _ in 0..10 {
                    let off = r.range(0, 150);
                    let p = if ask {
                        6_000_001 + off
                    } else {
                        6_000_000 - off
                    };
                    let q = if r.chance(20) {
                        0
                    } else {
                        r.range(1, 2_000_000_000)
                    };
                    levels.push(
                        &price(p),
                        &format!("{}.{:08}", q / 100_000_000, q % 100_000_000),
                    );
                }
                levels
            };
            (side(&mut r, false), side(&mut r, true))
        })
        .collect();
    let mut g = c.benchmark_group("book");
    g.throughput(Throughput::Elements(20));
    let mut id = 1u64;
    g.bench_function("apply_diff20/sorted_vec (per level: divide by 20)", |b| {
        b.iter(|| {
            id += 1;
            let (bids, asks) = &diffs[(id & 255) as usize];
            black_box(book.on_diff(DiffRef {
                ts_ns: 0,
                txn_ts_ns: 0,
                first: id,
                last: id,
                prev: None,
                bids,
                asks,
                checksum: None,
            }))
        })
    });
    g.throughput(Throughput::Elements(1));
    let mut ev = Event::new("binance", "spot");
    g.bench_function("snapshot20", |b| {
        b.iter(|| {
            ev.clear_book();
            for l in book.bids.best_first().take(20) {
                ev.book.bids.push(l.price.as_str(), l.qty.as_str());
            }
            for l in book.asks.best_first().take(20) {
                ev.book.asks.push(l.price.as_str(), l.qty.as_str());
            }
            black_box(&ev);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_structures, bench_book);
criterion_main!(benches);
