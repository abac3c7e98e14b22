//! Seeded mutation fuzzing of the OKX decoder and the book behind it: every recorded OKX line and
//! a simulated stream, mutated (byte flips from a JSON-heavy alphabet, deletions, insertions,
//! truncations, repeated slices), never panic, never make the decoder lose its footing (a good
//! push decodes right after any bad one), and whatever depth events they yield go through the
//! book's sequence and checksum procedure without a panic either.

mod common;

use common::fuzz::{Rng, mutate};
use mdc::book::sync::{DiffRef, Snapshot, SymbolBook};
use mdc::exchange::okx::decode::OkxDecoder;
use mdc::exchange::okx::sequence::RULES;
use mdc::exchange::{Decoded, Decoder};
use mdc::pipeline::frame::Frame;

fn corpus() -> Vec<Vec<u8>> {
    // The long replays: their first lines are enough shapes.
    let mut out = common::fuzz::fixture_lines("okx", 40);
    let sim = mdc::simulator::okx::generate(
        mdc::simulator::okx::OkxSimConfig {
            keep_alive_every: 7,
            reset_after: Some(50),
            ..Default::default()
        },
        &[
            ("books", "BTC-USDT"),
            ("trades", "BTC-USDT"),
            ("bbo-tbt", "ETH-USDT-SWAP"),
            ("funding-rate", "ETH-USDT-SWAP"),
            ("open-interest", "ETH-USDT-SWAP"),
            ("mark-price", "ETH-USDT-SWAP"),
            ("books5", "ETH-USDT-SWAP"),
        ],
        300,
    );
    out.extend(sim.into_iter().map(String::into_bytes));
    out
}

#[test]
fn mutated_pushes_never_panic_and_never_derail_the_decoder() {
    let corpus = corpus();
    let good = br#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"7","px":"1.5","sz":"2","side":"buy","ts":"1"}]}"#;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut dec = OkxDecoder::new();
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
