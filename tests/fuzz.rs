//! Fuzz targets on the stable toolchain (see `common::fuzz`): every entry point that takes bytes
//! from outside, fed seeded mutations of the recorded fixtures for a time budget each.
//!
//! - Binance decoders: the fast path and simd-json's general path never panic, never lose their
//!   footing (a good frame decodes right after any bad one), and where both decode a frame they
//!   give the same events, byte for byte.
//! - REST bodies: depth snapshots, the polled series of Binance and OKX, Deribit's instrument list.
//! - Book sync: arbitrary sequences of snapshots and diffs (ids anywhere, levels valid or not):
//!   no panic, each side stays sorted, a live book is never crossed.
//! - The config loader with environment overrides: any text, any `MDC_*` values.
//! - The HTTP endpoint's request handling: any bytes on a connection get an answer or a close.
//!
//! The OKX and Deribit decoders have their own targets (`fuzz_okx.rs`, `fuzz_deribit.rs`).

mod common;

use common::fuzz::{self, Rng, fixture_lines, mutate};
use mdc::book::rest::SnapshotSource;
use mdc::book::sync::{DiffRef, Snapshot, SymbolBook};
use mdc::encode::json;
use mdc::event::levels::Levels;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::exchange::binance::sequence::Sequence;
use mdc::exchange::{DecodeError, Decoded, Decoder};
use mdc::pipeline::frame::Frame;
use mdc::simulator::generator::StreamGen;
use std::io::{Read, Write};
use std::time::Duration;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn decode(
    dec: &mut BinanceDecoder,
    frame: &mut Frame,
    input: &[u8],
) -> (Result<Decoded, DecodeError>, Vec<u8>) {
    frame.fill(input);
    let len = frame.len;
    let mut out = Vec::new();
    let r = dec.decode(&mut frame.buf, len, 7, &mut |ev| {
        json::write_event(ev, &mut out)
    });
    (r, out)
}

fn binance_corpus() -> Vec<Vec<u8>> {
    let mut out = fixture_lines("binance_spot", 60);
    out.extend(fixture_lines("binance_usdm", 60));
    for (futures, streams) in [
        (
            false,
            &[
                "btcusdt@trade",
                "btcusdt@aggTrade",
                "btcusdt@depth@100ms",
                "btcusdt@bookTicker",
                "bnbbtc@depth5@100ms",
            ][..],
        ),
        (
            true,
            &[
                "btcusdt@trade",
                "btcusdt@depth@100ms",
                "btcusdt@depth20",
                "btcusdt@markPrice@1s",
                "btcusdt@forceOrder",
                "!markPrice@arr",
                "!forceOrder@arr",
            ][..],
        ),
    ] {
        for s in streams {
            let Some(mut g) = StreamGen::with_market(s, 5, futures) else {
                continue;
            };
            for i in 0..20 {
                let mut m = String::new();
                g.next_message(1_723_161_255_343 + i, &mut m);
                out.push(m.into_bytes());
            }
        }
    }
    out
}

#[test]
fn binance_decoders_agree_and_never_panic() {
    let corpus = binance_corpus();
    let good = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":3,"p":"1.5","q":"2","T":4,"m":true,"M":true}}"#;
    let mut fast = BinanceDecoder::new("usdm");
    let mut general = BinanceDecoder::general_only("usdm");
    let mut frame = Frame::with_capacity(4096);
    let (mut both, mut errors) = (0u64, 0u64);
    fuzz::run("binance", 30_000, |rng, i| {
        let base = &corpus[i % corpus.len()];
        let input = if i % 10 == 0 {
            base.clone()
        } else {
            mutate(rng, base)
        };
        let (a, ja) = decode(&mut fast, &mut frame, &input);
        let (b, jb) = decode(&mut general, &mut frame, &input);
        match (&a, &b) {
            (Ok(Decoded::Events(_)), Ok(Decoded::Events(_))) => {
                both += 1;
                assert_eq!(
                    lossy(&ja),
                    lossy(&jb),
                    "fast and general paths differ on {:?}",
                    lossy(&input)
                );
            }
            (Err(_), _) | (_, Err(_)) => errors += 1,
            _ => {}
        }
        for dec in [&mut fast, &mut general] {
            let (r, _) = decode(dec, &mut frame, good);
            assert_eq!(r, Ok(Decoded::Events(1)), "after {:?}", lossy(&input));
        }
    });
    println!("binance: both decoded {both}, errors {errors}");
    assert!(
        both > 1_000 && errors > 1_000,
        "both {both}, errors {errors}"
    );
}

#[test]
fn rest_bodies_never_panic() {
    let mut corpus = Vec::new();
    for dir in ["binance_spot", "binance_usdm"] {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(dir)
            .join("depth_snapshot.jsonl");
        let text = std::fs::read_to_string(p).unwrap();
        // Cut to 40 levels a side: the shape is what matters.
        for l in text.lines().take(2) {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for side in ["bids", "asks"] {
                if let Some(a) = v[side].as_array_mut() {
                    a.truncate(40);
                }
            }
            corpus.push(v.to_string().into_bytes());
        }
    }
    corpus.extend(fixture_lines("binance_usdm", 5));
    for body in [
        r#"{"symbol":"BTCUSDT","openInterest":"10659.509","time":1589437530011}"#,
        r#"[{"symbol":"BTCUSDT","sumOpenInterest":"20403.63700000","sumOpenInterestValue":"150570784.07809979","timestamp":"1583127900000"}]"#,
        r#"[{"symbol":"BTCUSDT","longShortRatio":"1.8105","longAccount":"0.6442","shortAccount":"0.3558","timestamp":"1583139600000"}]"#,
        r#"[{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":"34287.54619963"}]"#,
        r#"{"code":"0","msg":"","data":[["1701417600000","1.35"],["1701417300000","1.36"]]}"#,
        r#"{"jsonrpc":"2.0","result":[{"instrument_name":"BTC-PERPETUAL","kind":"future","is_active":true,"expiration_timestamp":32503708800000}]}"#,
    ] {
        corpus.push(body.as_bytes().to_vec());
    }
    let spot = mdc::exchange::binance::snapshot::BinanceSnapshots {
        rest_url: "http://x".into(),
        path: "/api/v3/depth",
        futures: false,
    };
    let usdm = mdc::exchange::binance::snapshot::BinanceSnapshots {
        rest_url: "http://x".into(),
        path: "/fapi/v1/depth",
        futures: true,
    };
    let binance_plan = mdc::exchange::binance::poll::RestPlan::from_section("x", None).unwrap();
    let mut jobs = mdc::exchange::binance::poll::jobs(
        "http://x",
        &["BTCUSDT".to_string()],
        &[
            "openInterest".to_string(),
            "topLongShortPositionRatio".to_string(),
            "topLongShortAccountRatio".to_string(),
            "globalLongShortAccountRatio".to_string(),
            "fundingRate".to_string(),
        ],
        &binance_plan,
    );
    let okx_plan = mdc::exchange::okx::poll::RestPlan::from_section("x", None).unwrap();
    jobs.extend(mdc::exchange::okx::poll::jobs(
        "http://x",
        &["BTC-USDT-SWAP".to_string()],
        &mdc::exchange::okx::poll::SERIES
            .iter()
            .map(|(s, _)| s.to_string())
            .collect::<Vec<_>>(),
        &okx_plan,
    ));
    assert!(jobs.len() >= 8, "{} jobs", jobs.len());
    fuzz::run("rest", 5_000, |rng, i| {
        let input = lossy(&mutate(rng, &corpus[i % corpus.len()]));
        let _ = spot.parse(&input);
        let _ = usdm.parse(&input);
        let _ = mdc::exchange::deribit::instruments::parse(&input);
        for job in jobs.iter_mut() {
            let mut ev = std::mem::replace(&mut job.event, mdc::event::Event::new("", ""));
            let _ = (job.parse)(&input, 0, &mut ev, &mut |_| {});
            job.event = ev;
        }
    });
}

/// A level as a book diff or snapshot may carry it: mostly valid decimals, sometimes not.
fn level(rng: &mut Rng) -> (String, String) {
    let price = match rng.below(20) {
        0 => "abc".to_string(),
        1 => "-1".to_string(),
        2 => "1e5".to_string(),
        3 => "99999999999999999999999999999999999999.1".to_string(),
        _ => format!("{}.{:02}", 90 + rng.below(20), rng.below(100)),
    };
    let qty = match rng.below(12) {
        0 | 1 => "0".to_string(),
        2 => "".to_string(),
        _ => format!("{}.{}", rng.below(5), rng.below(1000)),
    };
    (price, qty)
}

#[test]
fn book_sync_takes_any_sequence() {
    for rules in [Sequence::Spot.rules(), Sequence::Futures.rules()] {
        let (mut bids, mut asks) = (Levels::default(), Levels::default());
        fuzz::run("book", 3_000, |rng, _| {
            let mut book = SymbolBook::new(rules, 32);
            let mut id = 1_000 + rng.below(50) as u64;
            for _ in 0..rng.below(80) {
                if rng.below(8) == 0 {
                    let n = rng.below(30);
                    let snap = Snapshot {
                        last_update_id: id + rng.below(20) as u64 - 10,
                        bids: (0..n).map(|_| level(rng)).collect(),
                        asks: (0..n).map(|_| level(rng)).collect(),
                        ..Snapshot::default()
                    };
                    book.take_request();
                    book.on_snapshot(&snap);
                    continue;
                }
                bids.clear();
                asks.clear();
                for _ in 0..rng.below(6) {
                    let (p, q) = level(rng);
                    bids.push(&p, &q);
                    let (p, q) = level(rng);
                    asks.push(&p, &q);
                }
                let first = match rng.below(10) {
                    0 => rng.next(),
                    1 => id.saturating_sub(rng.below(5) as u64),
                    _ => id + 1 + (rng.below(3) == 0) as u64,
                };
                let last = first.saturating_add(rng.below(4) as u64);
                let prev =
                    (rng.below(2) == 0).then(|| if rng.below(4) == 0 { rng.next() } else { id });
                book.on_diff(DiffRef {
                    first,
                    last,
                    prev,
                    ts_ns: 1,
                    txn_ts_ns: 0,
                    bids: &bids,
                    asks: &asks,
                    checksum: None,
                });
                id = id.max(last);
                let b: Vec<u128> = book.bids.best_first().map(|l| l.key).collect();
                let a: Vec<u128> = book.asks.best_first().map(|l| l.key).collect();
                assert!(b.windows(2).all(|w| w[0] > w[1]), "bids sorted best first");
                assert!(a.windows(2).all(|w| w[0] < w[1]), "asks sorted best first");
                if book.is_live()
                    && let (Some(bb), Some(ba)) = (b.first(), a.first())
                {
                    assert!(bb < ba, "a live book is never crossed");
                }
            }
        });
    }
}

#[test]
fn config_loader_takes_any_text_and_any_override() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    let corpus: Vec<Vec<u8>> = vec![
        shipped.into_bytes(),
        br#"
exchanges:
  binance_usdm: { symbols: [BTCUSDT], channels: [trade, depth20, markPrice@1s], rest: { open_interest: 1m } }
  okx: { symbols: [BTC-USDT-SWAP], channels: [trades, books] }
  deribit: { currencies: [BTC], kinds: [future] }
sinks:
  kafka: { enabled: true, brokers: "127.0.0.1:1", sasl_username: u, sasl_password: p, security_protocol: sasl_ssl }
  nats: { enabled: true, url: "nats://127.0.0.1:1" }
  postgres: { enabled: true, dsn: "host=127.0.0.1 port=1 password='a b' dbname=m" }
capture: { enabled: false, rotate_bytes: 1000000 }
book: { depth: 20 }
http: { listen: "127.0.0.1:0", admin: true }
"#
        .to_vec(),
    ];
    let keys = [
        "MDC_SINKS__KAFKA__SASL_PASSWORD",
        "MDC_SINKS__KAFKA__BROKERS",
        "MDC_EXCHANGES__BINANCE_SPOT__SYMBOLS",
        "MDC_EXCHANGES__BINANCE_SPOT__WS_URL",
        "MDC_SINKS__POSTGRES__DSN",
        "MDC_RUNTIME__PARSERS",
        "MDC_BOOK__DEPTH",
        "MDC_HTTP__LISTEN",
        "MDC__",
        "MDC_X____Y",
        "DB_DSN",
        "SPOT_SYMBOLS",
    ];
    let values: [&[u8]; 8] = [
        b"[BTCUSDT, ETHUSDT]",
        b"123456",
        b"'quoted",
        b"#hash",
        b"{a: 1}",
        b"wss://u:p@h/ws",
        b"4",
        b"",
    ];
    fuzz::run("config", 300, |rng, i| {
        let text = lossy(&mutate(rng, &corpus[i % corpus.len()]));
        let vars: Vec<(String, String)> = (0..rng.below(3))
            .map(|_| {
                let k = keys[rng.below(keys.len())].to_string();
                let base = values[rng.below(values.len())];
                let v = lossy(&mutate(rng, base));
                (k, v)
            })
            .collect();
        if let Err(e) = mdc::config::Config::from_yaml(&text, vars) {
            assert!(!e.to_string().is_empty());
        }
    });
}

#[test]
fn http_requests_get_an_answer_or_a_close() {
    use mdc::metrics::http::{Request, Response, serve};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        serve(
            listener,
            s2,
            std::sync::Arc::new(|r: &Request| {
                Response::text(200, format!("{} {}\n", r.method, r.path))
            }),
        )
    });
    let corpus: [&[u8]; 4] = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics?x=1 HTTP/1.0\r\nHost: x\r\nAccept: */*\r\n\r\n",
        b"POST /admin/reload HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /status HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    fuzz::run("http", 500, |rng, i| {
        let input = mutate(rng, corpus[i % corpus.len()]);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&input);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 "),
            "{:?} -> {:?}",
            lossy(&input),
            lossy(&out)
        );
    });
    // Still serving.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(corpus[0]).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
