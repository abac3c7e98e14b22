//! Criterion micro-benchmarks of the per-message hot path: decode (simd-json, in place) + normalize +
//! encode into a recycled ring slot, per message type, and the SPSC ring itself.
//!
//! Run: `cargo bench --bench pipeline_micro` (results and machine in `perf/`).
//! Inputs: real recorded Binance messages (`tests/fixtures/binance_spot/`) and a 20-level depth diff.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdc::encode::Formats;
use mdc::encode::record::Record;
use mdc::exchange::Decoder;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::pipeline::frame::Frame;
use mdc::pipeline::parser::fill;
use mdc::pipeline::ring;
use std::hint::black_box;

const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
const BOOK_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;

fn depth20() -> String {
    let mut bids = Vec::new();
    let mut asks = Vec::new();
    for i in 0..10 {
        bids.push(format!(
            "[\"{}.{:02}000000\",\"{}.{:08}\"]",
            61837 - i,
            63 - i,
            i,
            2_000_000 + i * 7
        ));
        asks.push(format!(
            "[\"{}.{:02}000000\",\"{}.{:08}\"]",
            61838 + i,
            11 + i,
            i,
            1_500_000 + i * 3
        ));
    }
    format!(
        r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1723161255343,"s":"BTCUSDT","U":50093239212,"u":50093239231,"b":[{}],"a":[{}]}}}}"#,
        bids.join(","),
        asks.join(",")
    )
}

fn bench_decode_encode(c: &mut Criterion) {
    let depth = depth20();
    let cases: [(&str, &str); 3] = [
        ("trade", TRADE),
        ("book_ticker", BOOK_TICKER),
        ("depth20", &depth),
    ];
    let mut g = c.benchmark_group("parse_normalize_encode");
    for (name, msg) in cases {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        for (fname, formats) in [("protobuf", Formats::PROTOBUF), ("jsonl", Formats::JSON)] {
            let mut dec = BinanceDecoder::new("spot");
            let mut frame = Frame::with_capacity(4096);
            let mut rec = Record::with_capacity(4096);
            g.bench_function(format!("{name}/{fname}"), |b| {
                b.iter(|| {
                    frame.fill(msg.as_bytes());
                    let len = frame.len;
                    let r = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                        fill(&mut rec, ev, formats)
                    });
                    black_box(&rec);
                    black_box(r)
                })
            });
        }
    }
    g.finish();
}

/// The realistic mix (depth diffs of 1-20 levels ~60 %, trades and aggTrades ~30 %, book tickers
/// ~10 %; 10 symbols, seeded), one message per iteration, cycling through 10,000 messages.
fn bench_mix(c: &mut Criterion) {
    let symbols: Vec<String> = (0..10).map(|i| format!("S{i:03}USDT")).collect();
    let corpus = mdc::simulator::generator::mixed_corpus(&symbols, 11, 10_000);
    let bytes: usize = corpus.iter().map(String::len).sum();
    let mut g = c.benchmark_group("parse_normalize_encode_mix");
    g.throughput(Throughput::Bytes((bytes / corpus.len()) as u64));
    // `protobuf_general_only`: the same frames through the general simd-json path alone (no fast
    // path), in the same run.
    for (name, general, formats) in [
        ("protobuf", false, Formats::PROTOBUF),
        ("jsonl", false, Formats::JSON),
        ("protobuf_general_only", true, Formats::PROTOBUF),
    ] {
        let mut dec = if general {
            BinanceDecoder::general_only("spot")
        } else {
            BinanceDecoder::new("spot")
        };
        let mut frame = Frame::with_capacity(4096);
        let mut rec = Record::with_capacity(4096);
        let mut i = 0usize;
        g.bench_function(format!("mix/{name}"), |b| {
            b.iter(|| {
                let msg = &corpus[i % corpus.len()];
                i += 1;
                frame.fill(msg.as_bytes());
                let len = frame.len;
                let r = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut rec, ev, formats)
                });
                black_box(&rec);
                black_box(r)
            })
        });
    }
    // The same frames through simd-json alone (copy into the frame + tape, nothing else): the part
    // of `mix/*` that is the JSON parser's, measured in the same run.
    let mut buffers = simd_json::Buffers::new(64 * 1024);
    let mut frame = Frame::with_capacity(4096);
    let mut tape = simd_json::tape::Tape(Vec::with_capacity(1024));
    let mut i = 0usize;
    g.bench_function("mix/simd_json_tape_only", |b| {
        b.iter(|| {
            let msg = &corpus[i % corpus.len()];
            i += 1;
            frame.fill(msg.as_bytes());
            let len = frame.len;
            let mut t = std::mem::replace(&mut tape, simd_json::tape::Tape(Vec::new())).reset();
            let ok = simd_json::fill_tape_padded(&mut frame.buf, len, &mut buffers, &mut t).is_ok();
            black_box(t.0.len());
            tape = t.reset();
            black_box(ok)
        })
    });
    g.finish();
}

fn bench_ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    let (mut p, mut cons) = ring::ring(1024, || Frame::with_capacity(512));
    g.bench_function("push_pop_trade_frame", |b| {
        b.iter(|| {
            p.write_with(|f| f.fill(TRADE.as_bytes()));
            black_box(cons.read_with(|f| f.len))
        })
    });
    g.finish();
}

/// The cost of instrumentation on the hot path: a trade through the parser stage as it runs in
/// production (event counter, receive->parsed histogram, stream freshness, session check) against
/// the same decode + encode + ring write without any of it, and the metric operations alone
/// (parser counter + histogram, publisher clock read + histogram).
fn bench_metrics(c: &mut Criterion) {
    use mdc::encode::record::Record;
    use mdc::metrics::Metrics;
    use mdc::pipeline::idle::Idle;
    use mdc::pipeline::parser::Stage;
    let mut g = c.benchmark_group("metrics_cost");
    g.throughput(Throughput::Elements(1));
    let metrics = Metrics::new(&["null"]);
    let (mut out, mut drain) = ring::ring(1024, || Record::with_capacity(4096));
    let mut idle = Idle::new(mdc::config::IdlePolicy::Spin, 0);

    let mut stage = Stage::new(
        vec![Box::new(BinanceDecoder::new("spot"))],
        Formats::PROTOBUF,
        &metrics,
    );
    let mut watch = mdc::pipeline::watch::StreamWatch::new(
        std::sync::Arc::new(Default::default()),
        std::sync::Arc::new(Default::default()),
    );
    let streams = vec![mdc::exchange::StreamSpec {
        name: "btcusdt@trade".into(),
        channel: "trade".into(),
        symbol: "BTCUSDT".into(),
        market: "",
        book: false,
        watched: true,
    }];
    watch.add(
        0,
        "c0".into(),
        &streams,
        std::time::Duration::from_secs(60),
        None,
    );
    stage.watch = Some(watch);
    let mut frame = Frame::with_capacity(4096);
    g.bench_function("trade_through_stage_instrumented", |b| {
        b.iter(|| {
            frame.fill(TRADE.as_bytes());
            stage.process(&mut frame, &mut out, &mut idle);
            black_box(drain.read_with(|r| r.proto.len()))
        })
    });

    let mut dec = BinanceDecoder::new("spot");
    g.bench_function("trade_bare_decode_encode_ring", |b| {
        b.iter(|| {
            frame.fill(TRADE.as_bytes());
            let len = frame.len;
            let r = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                out.write_with(|rec| fill(rec, ev, Formats::PROTOBUF));
            });
            let _ = black_box(r);
            black_box(drain.read_with(|r| r.proto.len()))
        })
    });

    let mut events = metrics.events.handle();
    let mut parsed = metrics.latency.recorder(&[("stage", "receive_to_parsed")]);
    let mut handed = metrics.latency.recorder(&[("stage", "parsed_to_sink")]);
    let mut ts = 1_700_000_000_000_000_000i64;
    g.bench_function("metric_operations_per_event", |b| {
        b.iter(|| {
            ts += 731;
            events.add(0, 1);
            parsed.record_ns(black_box(ts) % 5_000 + 300);
            handed.record_ns(mdc::clock::realtime_ns() - black_box(ts));
        })
    });
    g.finish();
}

/// OKX: a recorded trade push; the 400-level `books` snapshot push (decode, encode, load into the
/// book, checksum); `books` updates of 1 to 20 levels (decode, encode, apply to a 400-level
/// book, verify the CRC32 checksum of its top 25 levels), cycling through 20,000 generated
/// updates (the book reloads its snapshot when the cycle restarts, 1 in 20,000 iterations).
fn bench_okx(c: &mut Criterion) {
    use mdc::book::sync::{DiffRef, Outcome, Snapshot, SymbolBook};
    use mdc::exchange::okx::decode::OkxDecoder;
    use mdc::simulator::okx::{OkxSimConfig, generate};
    const OKX_TRADE: &str = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"305483932","px":"30243.5","sz":"0.00183587","side":"buy","ts":"1652450398473"}]}"#;
    let corpus = generate(
        OkxSimConfig {
            levels: 400,
            max_changes: 20,
            ..OkxSimConfig::default()
        },
        &[("books", "BTC-USDT")],
        20_001,
    );
    let (snapshot, updates) = corpus.split_first().expect("corpus");
    let mut g = c.benchmark_group("okx");
    g.throughput(Throughput::Elements(1));
    for (fname, formats) in [("protobuf", Formats::PROTOBUF), ("jsonl", Formats::JSON)] {
        let mut dec = OkxDecoder::new();
        let mut frame = Frame::with_capacity(4096);
        let mut rec = Record::with_capacity(4096);
        g.bench_function(format!("trade/{fname}"), |b| {
            b.iter(|| {
                frame.fill(OKX_TRADE.as_bytes());
                let len = frame.len;
                let r = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut rec, ev, formats)
                });
                black_box(&rec);
                black_box(r)
            })
        });
    }
    // Loads a snapshot push into `book` (decode, encode, copy the levels, checksum).
    fn load(
        dec: &mut OkxDecoder,
        frame: &mut Frame,
        rec: &mut Record,
        book: &mut SymbolBook,
        msg: &str,
    ) -> Outcome {
        frame.fill(msg.as_bytes());
        let len = frame.len;
        let mut out = Outcome::Stale;
        let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
            fill(rec, ev, Formats::PROTOBUF);
            let d = &ev.depth;
            book.take_request();
            out = book.on_snapshot(&Snapshot::pushed(d, 0));
        });
        out
    }
    let mut dec = OkxDecoder::new();
    let mut frame = Frame::with_capacity(64 * 1024);
    let mut rec = Record::with_capacity(64 * 1024);
    let mut book = SymbolBook::new(&mdc::exchange::okx::sequence::RULES, 1000);
    g.bench_function("books_snapshot_400/protobuf", |b| {
        b.iter(|| black_box(load(&mut dec, &mut frame, &mut rec, &mut book, snapshot)))
    });
    // The same updates with and without the checksum verification, to split its cost.
    for (name, verify) in [
        ("books_update_1_20_checksum/protobuf", true),
        ("books_update_1_20_no_checksum/protobuf", false),
    ] {
        assert_eq!(
            load(&mut dec, &mut frame, &mut rec, &mut book, snapshot),
            Outcome::Applied
        );
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                if i == updates.len() {
                    i = 0;
                    load(&mut dec, &mut frame, &mut rec, &mut book, snapshot);
                }
                frame.fill(updates[i].as_bytes());
                i += 1;
                let len = frame.len;
                let mut out = Outcome::Stale;
                let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut rec, ev, Formats::PROTOBUF);
                    let d = &ev.depth;
                    out = book.on_diff(DiffRef {
                        first: d.first_update_id,
                        last: d.last_update_id,
                        prev: d.prev_last_update_id,
                        ts_ns: 0,
                        txn_ts_ns: 0,
                        bids: &d.bids,
                        asks: &d.asks,
                        checksum: if verify { d.checksum } else { None },
                    });
                });
                black_box(out)
            })
        });
        assert!(book.is_live(), "{name}: every update applied");
    }
    g.finish();
}

/// Deribit: a recorded trade and option ticker (JSON numbers read as text by `exchange/scan.rs`),
/// and 100 ms book changes of a 200-level book applied to the local book.
fn bench_deribit(c: &mut Criterion) {
    use mdc::book::sync::{DiffRef, Outcome, Snapshot, SymbolBook};
    use mdc::exchange::deribit::decode::DeribitDecoder;
    use mdc::simulator::deribit::{DeribitSimConfig, generate};
    const TRADE: &str = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.raw","data":[{"trade_seq":92836831,"trade_id":"137487241","timestamp":1616321478553,"tick_direction":1,"price":56168.0,"mark_price":56172.08,"instrument_name":"BTC-PERPETUAL","index_price":56173.74,"direction":"buy","amount":5580.0}]}}"#;
    const TICKER: &str = r#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.ETH-30APR21-2240-P.raw","data":{"underlying_price":2189.02,"underlying_index":"ETH-30APR21","timestamp":1617644856684,"stats":{"volume":195.0,"price_change":-1.5,"low":0.0965,"high":0.1},"state":"open","settlement_price":0.13,"open_interest":484.0,"min_price":0.054,"max_price":0.1565,"mark_price":0.097179,"mark_iv":81.34,"last_price":0.0985,"interest_rate":0.0,"instrument_name":"ETH-30APR21-2240-P","index_price":2103.4,"greeks":{"vega":2.26676,"theta":-3.74858,"rho":-0.88282,"gamma":0.00086,"delta":-0.50139},"estimated_delivery_price":2103.4,"bid_iv":77.28,"best_bid_price":0.093,"best_bid_amount":12.0,"best_ask_price":0.098,"best_ask_amount":329.0,"ask_iv":82.11}}}"#;
    let mut g = c.benchmark_group("deribit");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in [("trade", TRADE), ("ticker_option_3_events", TICKER)] {
        for (fname, formats) in [("protobuf", Formats::PROTOBUF), ("jsonl", Formats::JSON)] {
            let mut dec = DeribitDecoder::new();
            let mut frame = Frame::with_capacity(4096);
            let mut rec = Record::with_capacity(4096);
            g.bench_function(format!("{name}/{fname}"), |b| {
                b.iter(|| {
                    frame.fill(msg.as_bytes());
                    let len = frame.len;
                    let r = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                        fill(&mut rec, ev, formats)
                    });
                    black_box(&rec);
                    black_box(r)
                })
            });
        }
    }
    let corpus = generate(
        DeribitSimConfig {
            levels: 200,
            ..DeribitSimConfig::default()
        },
        &["book.BTC-PERPETUAL.100ms"],
        20_001,
    );
    let (snapshot, changes) = corpus.split_first().expect("corpus");
    fn load(
        dec: &mut DeribitDecoder,
        frame: &mut Frame,
        rec: &mut Record,
        book: &mut SymbolBook,
        msg: &str,
    ) -> Outcome {
        frame.fill(msg.as_bytes());
        let len = frame.len;
        let mut out = Outcome::Stale;
        let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
            fill(rec, ev, Formats::PROTOBUF);
            book.take_request();
            out = book.on_snapshot(&Snapshot::pushed(&ev.depth, 0));
        });
        out
    }
    let mut dec = DeribitDecoder::new();
    let mut frame = Frame::with_capacity(64 * 1024);
    let mut rec = Record::with_capacity(64 * 1024);
    let mut book = SymbolBook::new(&mdc::exchange::deribit::sequence::RULES, 1000);
    g.bench_function("book_snapshot_200/protobuf", |b| {
        b.iter(|| black_box(load(&mut dec, &mut frame, &mut rec, &mut book, snapshot)))
    });
    assert_eq!(
        load(&mut dec, &mut frame, &mut rec, &mut book, snapshot),
        Outcome::Applied
    );
    let mut i = 0usize;
    g.bench_function("book_change_1_4/protobuf", |b| {
        b.iter(|| {
            if i == changes.len() {
                i = 0;
                load(&mut dec, &mut frame, &mut rec, &mut book, snapshot);
            }
            frame.fill(changes[i].as_bytes());
            i += 1;
            let len = frame.len;
            let mut out = Outcome::Stale;
            let _ = dec.decode(&mut frame.buf, len, 1, &mut |ev| {
                fill(&mut rec, ev, Formats::PROTOBUF);
                out = book.on_diff(DiffRef::of(&ev.depth, 0, 0));
            });
            black_box(out)
        })
    });
    assert!(book.is_live(), "every change applied");
    g.finish();
}

criterion_group!(
    benches,
    bench_deribit,
    bench_okx,
    bench_decode_encode,
    bench_mix,
    bench_ring,
    bench_metrics
);
criterion_main!(benches);
