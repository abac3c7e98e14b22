//! Real recorded Binance book streams (tests/fixtures/*/book_replay, see the READMEs there) replay
//! through the book's sync procedure exactly as a live collector would (diffs before the snapshot
//! buffered, the snapshot applied where its response arrived): no false gap, no crossed book, and
//! exactly the applied/dropped counts the recordings were checked with.

use mdc::book::sync::{DiffRef, Outcome, Rules, Snapshot, SymbolBook};
use mdc::event::Levels;
use mdc::exchange::binance::sequence::Sequence;
use serde_json::Value;

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap().to_owned(),
                l[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn levels(v: &Value) -> Levels {
    let mut out = Levels::default();
    for (p, q) in pairs(v) {
        out.push(&p, &q);
    }
    out
}

/// `(file, applied, dropped)` from the fixture README's table.
fn expectations(market: &str) -> Vec<(String, u64, u64)> {
    let readme = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{market}/book_replay/README.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("diffs applied"))
        .map(|l| {
            let file = l.split('`').nth(1).unwrap().to_string();
            let check = l.split('|').nth(4).unwrap();
            let num = |after: &str| -> u64 {
                let i = check.find(after).unwrap();
                check[..i]
                    .trim_end()
                    .rsplit(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            (file, num(" diffs applied"), num(" dropped"))
        })
        .collect()
}

fn replay(market: &str, rules: Rules) -> usize {
    let cases = expectations(market);
    assert!(!cases.is_empty());
    for (file, applied, dropped) in &cases {
        let path = format!(
            "{}/tests/fixtures/{market}/book_replay/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let mut book = SymbolBook::new(rules, 1_000_000);
        for (n, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line).unwrap();
            let out = if let Some(l) = v.get("lastUpdateId") {
                book.on_snapshot(&Snapshot {
                    last_update_id: l.as_u64().unwrap(),
                    bids: pairs(&v["bids"]),
                    asks: pairs(&v["asks"]),
                    ..Snapshot::default()
                })
            } else {
                let d = &v["data"];
                let (b, a) = (levels(&d["b"]), levels(&d["a"]));
                book.on_diff(DiffRef {
                    ts_ns: 0,
                    txn_ts_ns: 0,
                    first: d["U"].as_u64().unwrap(),
                    last: d["u"].as_u64().unwrap(),
                    prev: d.get("pu").and_then(Value::as_u64),
                    bids: &b,
                    asks: &a,
                    checksum: None,
                })
            };
            assert!(
                matches!(out, Outcome::Applied | Outcome::Buffered | Outcome::Stale),
                "{market}/{file} line {}: {out:?}",
                n + 1
            );
        }
        assert!(book.is_live(), "{file}: synced at the end");
        assert_eq!(
            (book.applied, book.dropped),
            (*applied, *dropped),
            "{market}/{file}"
        );
        let (bid, ask) = (book.bids.best().unwrap(), book.asks.best().unwrap());
        assert!(bid.key < ask.key, "{file}: not crossed");
    }
    cases.len()
}

#[test]
fn spot_recordings_replay_without_false_gaps() {
    assert_eq!(replay("binance_spot", Sequence::Spot.rules()), 33);
}

#[test]
fn usdm_recordings_replay_without_false_gaps() {
    assert_eq!(replay("binance_usdm", Sequence::Futures.rules()), 15);
}
