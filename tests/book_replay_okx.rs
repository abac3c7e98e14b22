//! Every recorded OKX book stream (tests/fixtures/okx/book_replay, see the README there) replays
//! through the decoder and the book's sync procedure with OKX's rules: the snapshot push loads
//! the book, every update applies (no false gap), and every push's non-zero checksum is verified
//! against the maintained book. A reference book kept here with plain maps, and the checksum
//! string built from it, agree with the exchange on every push.

use mdc::book::sync::{DiffRef, Outcome, Snapshot, SymbolBook};
use mdc::exchange::Decoder;
use mdc::exchange::okx::decode::OkxDecoder;
use mdc::exchange::okx::sequence::{Crc32, RULES};
use mdc::pipeline::frame::Frame;
use std::collections::BTreeMap;

/// A plain reference book: price (as a sortable number) -> (price, qty) strings as sent.
#[derive(Default)]
struct Reference {
    bids: BTreeMap<i128, (String, String)>,
    asks: BTreeMap<i128, (String, String)>,
}

fn key(p: &str) -> i128 {
    // Exact: scaled by 10^12 (the recordings have at most 10 fractional digits).
    let (i, f) = p.split_once('.').unwrap_or((p, ""));
    assert!(f.len() <= 12, "{p}");
    i.parse::<i128>().unwrap() * 1_000_000_000_000 + format!("{f:0<12}").parse::<i128>().unwrap()
}

impl Reference {
    fn apply(&mut self, bids: &[(String, String)], asks: &[(String, String)]) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for (p, q) in levels {
                if q.bytes().all(|c| c == b'0' || c == b'.') {
                    side.remove(&key(p));
                } else {
                    side.insert(key(p), (p.clone(), q.clone()));
                }
            }
        }
    }

    fn checksum(&self) -> i32 {
        let bids: Vec<_> = self.bids.values().rev().take(25).collect();
        let asks: Vec<_> = self.asks.values().take(25).collect();
        let mut parts = Vec::new();
        for i in 0..25 {
            for side in [&bids, &asks] {
                if let Some((p, q)) = side.get(i) {
                    parts.push(format!("{p}:{q}"));
                }
            }
        }
        let mut c = Crc32::new();
        c.update(parts.join(":").as_bytes());
        c.finish() as i32
    }
}

#[test]
fn every_okx_recording_replays_with_every_checksum_verified() {
    let dir = format!(
        "{}/tests/fixtures/okx/book_replay",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files = 0;
    let mut verified = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut dec = OkxDecoder::new();
        let mut book = SymbolBook::new(&RULES, 1000);
        let mut reference = Reference::default();
        let (mut pushes, mut snapshots) = (0, 0);
        for line in text.lines() {
            let mut frame = Frame::with_capacity(64);
            frame.fill(line.as_bytes());
            let len = frame.len;
            let mut outcome = None;
            let mut sent = None;
            dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                let d = &ev.depth;
                let own = |l: &mdc::event::Levels| -> Vec<(String, String)> {
                    l.iter()
                        .map(|(p, q)| (p.to_string(), q.to_string()))
                        .collect()
                };
                if d.snapshot {
                    // Some recordings re-subscribed: a second snapshot replaces the book.
                    reference = Reference::default();
                    snapshots += 1;
                }
                reference.apply(&own(&d.bids), &own(&d.asks));
                sent = d.checksum;
                outcome = Some(if d.snapshot {
                    book.take_request();
                    book.on_snapshot(&Snapshot::pushed(d, ev.header.exchange_ts_ns))
                } else {
                    book.on_diff(DiffRef {
                        first: d.first_update_id,
                        last: d.last_update_id,
                        prev: d.prev_last_update_id,
                        ts_ns: ev.header.exchange_ts_ns,
                        txn_ts_ns: 0,
                        bids: &d.bids,
                        asks: &d.asks,
                        checksum: d.checksum,
                    })
                });
            })
            .unwrap_or_else(|e| panic!("{path:?}: {e} in {line}"));
            assert_eq!(outcome, Some(Outcome::Applied), "{path:?}: {line}");
            let sent = sent.expect("every recorded push carries a checksum");
            assert_eq!(reference.checksum(), sent, "{path:?}: reference book");
            assert_eq!(
                mdc::exchange::okx::sequence::checksum(&book.bids, &book.asks),
                sent
            );
            verified += 1;
            pushes += 1;
        }
        assert!(book.is_live(), "{path:?}");
        assert_eq!(book.applied as usize + snapshots, pushes, "{path:?}");
        files += 1;
    }
    assert_eq!(files, 23);
    assert_eq!(verified, 5473, "every push of every recording");
}

/// A push whose checksum disagrees with the book re-syncs it; so does a broken seqId chain, while
/// keep-alive and reset updates apply.
#[test]
fn checksum_mismatch_and_seq_gap_resync_but_keep_alive_and_reset_apply() {
    let mut book = SymbolBook::new(&RULES, 1000);
    book.take_request();
    let snap = Snapshot {
        last_update_id: 10,
        bids: vec![("100".into(), "1".into())],
        asks: vec![("101".into(), "2".into())],
        ..Snapshot::default()
    };
    assert_eq!(book.on_snapshot(&snap), Outcome::Applied);
    let none = mdc::event::Levels::default();
    let mut bid = mdc::event::Levels::default();
    bid.push("99.5", "3");
    let d = |first, prev, bids, checksum| DiffRef {
        first,
        last: first,
        prev: Some(prev),
        ts_ns: 0,
        txn_ts_ns: 0,
        bids,
        asks: &none,
        checksum,
    };
    assert_eq!(book.on_diff(d(15, 10, &bid, None)), Outcome::Applied);
    assert_eq!(
        book.on_diff(d(15, 15, &none, None)),
        Outcome::Applied,
        "keep-alive"
    );
    assert_eq!(
        book.on_diff(d(3, 15, &none, None)),
        Outcome::Applied,
        "reset"
    );
    let good = mdc::exchange::okx::sequence::checksum(&book.bids, &book.asks);
    assert_eq!(book.on_diff(d(5, 3, &none, Some(good))), Outcome::Applied);
    assert_eq!(
        book.on_diff(d(6, 5, &none, Some(good ^ 1))),
        Outcome::ChecksumMismatch
    );
    assert!(!book.is_live());
    book.take_request();
    assert_eq!(
        book.on_snapshot(&Snapshot {
            last_update_id: 20,
            ..snap.clone()
        }),
        Outcome::Applied
    );
    assert_eq!(book.on_diff(d(22, 21, &none, None)), Outcome::Gap);
}
