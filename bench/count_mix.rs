//! The mix corpus through copy + decode + encode, `rounds` times: a deterministic cost measure
//! (instructions under valgrind) for comparing two builds on a machine whose speed drifts. The
//! corpus is the one of `pipeline_micro`'s `mix/*`; setup is subtracted by running twice:
//!
//! ```sh
//! cargo build --release --example count_mix
//! for r in 1 3; do valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
//!     target/release/examples/count_mix $r; done   # (I refs at 3 - at 1) / 20,000 = per message
//! ```
//!
//! `count_mix <rounds> copy` does only the frame copy, to take it out.
use mdc::encode::Formats;
use mdc::encode::record::Record;
use mdc::exchange::Decoder;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::pipeline::frame::Frame;
use mdc::pipeline::parser::fill;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Arguments come from the command line of a developer tool: fall back to defaults.
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let what = args.get(2).map(String::as_str).unwrap_or("mix");
    let symbols: Vec<String> = (0..10).map(|i| format!("S{i:03}USDT")).collect();
    let corpus = mdc::simulator::generator::mixed_corpus(&symbols, 11, 10_000);
    let mut dec = BinanceDecoder::new("spot");
    let mut frame = Frame::with_capacity(4096);
    let mut rec = Record::with_capacity(4096);
    let mut n = 0u64;
    for _ in 0..rounds {
        for msg in &corpus {
            frame.fill(msg.as_bytes());
            if what == "mix" {
                let len = frame.len;
                let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut rec, ev, Formats::PROTOBUF)
                });
            }
            n += std::hint::black_box(rec.proto.len()) as u64;
        }
    }
    println!("{n}");
}
