//! The fast path against the general simd-json path: on every frame the fast path accepts, both
//! must emit the same events (JSON Lines and Protobuf bytes) and keep the same stream name; on the
//! rest the decoder's answer is the general path's. Inputs: the recorded fixtures of both markets,
//! the benchmark mix, and seeded mutations of them (byte swaps from a JSON-heavy alphabet,
//! deletions, insertions, truncations, repeated slices and members).

use super::{BinanceDecoder, fast};
use crate::encode::{json, protobuf};
use crate::event::Event;
use crate::exchange::{DecodeError, Decoded, Decoder};
use crate::pipeline::frame::Frame;

type Outcome = (
    Result<Decoded, DecodeError>,
    Vec<(Vec<u8>, Vec<u8>)>,
    String,
);

fn run(dec: &mut BinanceDecoder, msg: &[u8]) -> Outcome {
    let mut frame = Frame::with_capacity(msg.len());
    frame.fill(msg);
    let len = frame.len;
    let mut out = Vec::new();
    let res = dec.decode(&mut frame.buf, len, 42, &mut |ev| {
        let (mut j, mut p) = (Vec::new(), Vec::new());
        json::write_event(ev, &mut j);
        protobuf::write_event(ev, &mut p);
        out.push((j, p));
    });
    (res, out, dec.last_stream().to_owned())
}

/// Whether the fast path alone takes `msg`.
fn fast_accepts(msg: &[u8]) -> bool {
    let mut buf = msg.to_vec();
    buf.push(0);
    let mut ev = Event::new("binance", "spot");
    fast::decode(&mut buf, msg.len(), &mut ev, &mut String::new(), 0, false).is_some()
}

fn corpus() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut out = Vec::new();
    for market in ["binance_spot", "binance_usdm"] {
        let dir = std::fs::read_dir(format!("{root}/{market}")).expect("fixture dir");
        for entry in dir {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&path).expect("fixture");
                out.extend(text.lines().map(|l| l.as_bytes().to_vec()));
            }
        }
    }
    let symbols: Vec<String> = (0..4).map(|i| format!("S{i:03}USDT")).collect();
    for seed in [1, 2, 3] {
        let mix = crate::simulator::generator::mixed_corpus(&symbols, seed, 700);
        out.extend(mix.into_iter().map(String::into_bytes));
    }
    out
}

/// xorshift64*: seeded, reproducible mutations without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ALPHABET: &[u8] = b"\"\\,:[]{} \t\n0123456789.-+eEtruefalsn\x00\x1f\x7f\xc3\xa9abpqsTmuUB";

fn mutate(rng: &mut Rng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if at < m.len() => m[at] = ALPHABET[rng.below(ALPHABET.len())],
            1 if at < m.len() => {
                m.remove(at);
            }
            2 => m.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            3 => m.truncate(at),
            4 => {
                // Repeat a whole member or array element: `,"k":v` or `,["p","q"]`.
                let Some(s) = m[at..].iter().position(|&c| c == b',').map(|p| at + p) else {
                    continue;
                };
                let Some(e) = m[s + 1..].iter().position(|&c| matches!(c, b',' | b'}')) else {
                    continue;
                };
                let piece = m[s..s + 1 + e].to_vec();
                m.splice(s..s, piece);
            }
            _ => {
                let end = (at + 1 + rng.below(12)).min(m.len());
                let piece = m[at.min(end)..end].to_vec();
                m.splice(at.min(end)..at.min(end), piece);
            }
        }
    }
    m
}

#[test]
fn fast_and_general_paths_agree_on_fixtures_the_mix_and_mutations() {
    let inputs = corpus();
    let (mut fast_dec, mut general) = (
        BinanceDecoder::new("spot"),
        BinanceDecoder::general_only("spot"),
    );
    let mut accepted = 0;
    for msg in &inputs {
        accepted += usize::from(fast_accepts(msg));
        assert_eq!(
            run(&mut fast_dec, msg),
            run(&mut general, msg),
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
    // The four fast shapes are most of the fixtures and all of the mix.
    assert!(
        accepted * 10 > inputs.len() * 9,
        "{accepted} of {}",
        inputs.len()
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut mutants, mut mutants_accepted) = (0, 0);
    for round in 0..6 {
        for msg in &inputs {
            let m = mutate(&mut rng, msg);
            mutants += 1;
            let took = fast_accepts(&m);
            mutants_accepted += usize::from(took);
            let (f, g) = (run(&mut fast_dec, &m), run(&mut general, &m));
            assert_eq!(
                f,
                g,
                "round {round}, fast path took it: {took}: {}",
                String::from_utf8_lossy(&m)
            );
        }
    }
    eprintln!(
        "fixtures+mix {accepted}/{} fast; mutants {mutants_accepted}/{mutants} fast",
        inputs.len()
    );
    // Mutations the fast path still takes (digit swaps, whitespace, unknown keys) are compared too.
    assert!(
        mutants_accepted * 20 > mutants,
        "{mutants_accepted} of {mutants}"
    );
}
