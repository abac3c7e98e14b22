//! Seeded mutation fuzzing of the Deribit decoder (and its JSON pull reader) and the book behind
//! it: every recorded Deribit line and a simulated stream, mutated (byte flips from a JSON-heavy alphabet, deletions, insertions,
//! truncations, repeated slices), never panic, never make the decoder lose its footing (a good
//! push decodes right after any bad one), and whatever depth events they yield go through the
//! book's sequence and checksum procedure without a panic either.

use mdc::book::sync::{DiffRef, Snapshot, SymbolBook};
use mdc::exchange::deribit::decode::DeribitDecoder;
use mdc::exchange::deribit::sequence::RULES;
use mdc::exchange::{Decoded, Decoder};
use mdc::pipeline::frame::Frame;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ALPHABET: &[u8] = b"{}[]\":,-.0123456789eE+ \\nulltruefalse\x00\xff\xc3\xa9abcXYZ";

fn mutate(rng: &mut Rng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if i < m.len() => m[i] = ALPHABET[rng.below(ALPHABET.len())],
            1 if i < m.len() => {
                let n = 1 + rng.below(8).min(m.len() - i - 1);
                m.drain(i..i + n);
            }
            2 => m.insert(i, ALPHABET[rng.below(ALPHABET.len())]),
            3 => m.truncate(i),
            4 if i < m.len() => {
                let end = (i + 1 + rng.below(40)).min(m.len());
                let slice = m[i..end].to_vec();
                m.splice(i..i, slice);
            }
            _ => {
                // A digit run made huge (ids, seqIds, checksums beyond their types).
                if i < m.len() && m[i].is_ascii_digit() {
                    m.splice(i..i, b"99999999999999999999".iter().copied());
                }
            }
        }
    }
    m
}

fn corpus() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/deribit");
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                let text = std::fs::read_to_string(&p).unwrap();
                // The long replays: their first lines are enough shapes.
                out.extend(text.lines().take(40).map(|l| l.as_bytes().to_vec()));
            }
        }
    }
    let sim = mdc::simulator::deribit::generate(
        mdc::simulator::deribit::DeribitSimConfig::default(),
        &[
            "book.BTC-PERPETUAL.100ms",
            "trades.BTC-PERPETUAL.100ms",
            "book.ETH-26DEC25-4000-C.100ms",
            "ticker.ETH-26DEC25-4000-C.100ms",
            "trades.ETH-26DEC25-4000-C.100ms",
            "deribit_volatility_index.btc_usd",
        ],
        300,
    );
    out.extend(sim.into_iter().map(String::into_bytes));
    out
}

#[test]
fn mutated_pushes_never_panic_and_never_derail_the_decoder() {
    let corpus = corpus();
    let good = br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.raw","data":[{"trade_seq":1,"trade_id":"7","timestamp":1,"price":1.5,"instrument_name":"BTC-PERPETUAL","direction":"buy","amount":2e1}]}}"#;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut dec = DeribitDecoder::new();
    let mut book = SymbolBook::new(&RULES, 1000);
    let mut frame = Frame::with_capacity(4096);
    let (mut ok, mut errors) = (0u64, 0u64);
    for round in 0..200_000usize {
        let base = &corpus[round % corpus.len()];
        let input = if round % 10 == 0 {
            base.clone()
        } else {
            mutate(&mut rng, base)
        };
        frame.fill(&input);
        let len = frame.len;
        let res = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
            let d = &ev.depth;
            if ev.kind != Some(mdc::event::EventKind::DepthDiff) {
                return;
            }
            if d.snapshot {
                book.take_request();
                book.on_snapshot(&Snapshot::pushed(d, 0));
            } else {
                book.on_diff(DiffRef::of(d, 0, 0));
            }
        });
        match res {
            Ok(_) => ok += 1,
            Err(_) => errors += 1,
        }
        // The decoder keeps its footing.
        frame.fill(good);
        let len = frame.len;
        let mut n = 0;
        assert_eq!(
            dec.decode(&mut frame.buf, len, 1, &mut |_| n += 1),
            Ok(Decoded::Events(1)),
            "after {:?}",
            String::from_utf8_lossy(&input)
        );
        assert_eq!(n, 1);
    }
    assert!(ok > 20_000 && errors > 50_000, "ok {ok}, errors {errors}");
}
