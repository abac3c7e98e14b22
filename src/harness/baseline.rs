//! The conventional pipeline a benchmark compares against, on the same messages: generic JSON
//! values (serde_json), owned strings, `f64` prices and quantities, a fresh allocation per message,
//! re-encoded as JSON, one thread. Our own path on the same corpus, single-threaded, runs beside it
//! so the report can state a ratio that holds across machines.

use crate::encode::Formats;
use crate::encode::record::Record;
use crate::exchange::Decoder;
use crate::exchange::binance::decode::BinanceDecoder;
use crate::pipeline::frame::Frame;
use crate::pipeline::parser::fill;
use serde::Serialize;
use serde_json::Value;
use std::hint::black_box;
use std::time::Instant;

/// What a conventional collector builds per message.
#[derive(Serialize)]
struct Normalized {
    exchange: String,
    symbol: String,
    kind: String,
    event_time: i64,
    id: u64,
    price: f64,
    qty: f64,
    bids: Vec<(f64, f64)>,
    asks: Vec<(f64, f64)>,
}

fn f(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

fn levels(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .map(|a| a.iter().map(|l| (f(&l[0]), f(&l[1]))).collect())
        .unwrap_or_default()
}

/// One message through the conventional path; returns the encoded length.
fn conventional(msg: &str) -> usize {
    let Ok(v) = serde_json::from_str::<Value>(msg) else {
        return 0;
    };
    let d = &v["data"];
    let kind = d["e"].as_str().unwrap_or("bookTicker").to_string();
    let n = Normalized {
        exchange: "binance".to_string(),
        symbol: d["s"].as_str().unwrap_or("").to_string(),
        event_time: d["E"].as_i64().unwrap_or(0),
        id: d["t"]
            .as_u64()
            .or(d["a"].as_u64())
            .or(d["u"].as_u64())
            .unwrap_or(0),
        price: f(&d["p"]).max(f(&d["b"])),
        qty: f(&d["q"]).max(f(&d["B"])),
        bids: if kind == "depthUpdate" {
            levels(&d["b"])
        } else {
            Vec::new()
        },
        asks: if kind == "depthUpdate" {
            levels(&d["a"])
        } else {
            Vec::new()
        },
        kind,
    };
    serde_json::to_string(&n).map(|s| s.len()).unwrap_or(0)
}

/// Nanoseconds per message and messages per second of both paths over `corpus`, `rounds` times.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    pub ours_ns: f64,
    pub baseline_ns: f64,
    pub messages: usize,
}

impl Comparison {
    pub fn ratio(&self) -> f64 {
        self.baseline_ns / self.ours_ns.max(1e-9)
    }
}

/// Runs both over `corpus`, alternating passes (`rounds` each) so machine noise hits both alike,
/// and keeps each one's median pass. Ours runs once first to warm its buffers (not timed).
pub fn compare(corpus: &[String], rounds: usize, formats: Formats) -> Comparison {
    let mut dec = BinanceDecoder::new("spot");
    let mut frame = Frame::with_capacity(4096);
    let mut rec = Record::with_capacity(4096);
    let mut ours = |msg: &str| {
        frame.fill(msg.as_bytes());
        let len = frame.len;
        let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
            fill(&mut rec, ev, formats)
        });
        black_box(rec.proto.len() + rec.json.len())
    };
    for m in corpus {
        ours(m);
    }
    let n = corpus.len().max(1) as f64;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let t0 = Instant::now();
        for m in corpus {
            black_box(ours(m));
        }
        a.push(t0.elapsed().as_nanos() as f64 / n);
        let t0 = Instant::now();
        for m in corpus {
            black_box(conventional(m));
        }
        b.push(t0.elapsed().as_nanos() as f64 / n);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Comparison {
        ours_ns: median(&mut a),
        baseline_ns: median(&mut b),
        messages: corpus.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_handle_every_message_of_the_mix() {
        let corpus = crate::simulator::generator::mixed_corpus(&["BTCUSDT".to_string()], 3, 200);
        for m in &corpus {
            assert!(conventional(m) > 0, "{m}");
        }
        let c = compare(&corpus, 1, Formats::PROTOBUF);
        assert!(c.ours_ns > 0.0 && c.baseline_ns > 0.0);
    }
}
