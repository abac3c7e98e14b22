//! Real recorded Binance spot messages (tests/fixtures/binance_spot, see its README) decode to the
//! expected normalized events, field by field. The expectation is derived independently from the raw
//! message with serde_json, following the documented mapping; the event is checked in its JSON Lines
//! form and its Protobuf form.

use mdc::encode::{json, protobuf};
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::exchange::{Decoded, Decoder};
use mdc::pipeline::frame::Frame;
use mdc::wire::{self, envelope::Payload};
use prost::Message;
use serde_json::{Value, json};

const RECV_TS: i64 = 1_800_000_000_123_456_789;

/// Decodes one line; returns (JSON Lines object, Protobuf envelope) of the single event.
fn decode(dec: &mut BinanceDecoder, line: &str) -> (Value, wire::Envelope) {
    let mut frame = Frame::with_capacity(64);
    frame.fill(line.as_bytes());
    let len = frame.len;
    let mut out = Vec::new();
    let mut pb = Vec::new();
    let mut n = 0;
    let res = dec.decode(&mut frame.buf, len, RECV_TS, &mut |ev| {
        n += 1;
        json::write_event(ev, &mut out);
        protobuf::write_event(ev, &mut pb);
    });
    assert_eq!(res, Ok(Decoded::Events(1)), "{line}");
    assert_eq!(n, 1);
    assert_eq!(out.last(), Some(&b'\n'));
    let v: Value = serde_json::from_slice(&out).expect("valid JSON line");
    let env = wire::Envelope::decode(pb.as_slice()).expect("valid protobuf");
    (v, env)
}

fn side(m: &Value) -> &'static str {
    if m.as_bool().expect("m is a bool") {
        "sell"
    } else {
        "buy"
    }
}

fn ms_to_ns(v: &Value) -> i64 {
    v.as_i64().expect("integer ms") * 1_000_000
}

fn levels(v: &Value) -> Value {
    // Same arrays of [price, qty] strings, exactly as sent.
    v.clone()
}

fn expected(raw: &Value) -> Value {
    let d = &raw["data"];
    let mut e = json!({
        "exchange": "binance",
        "market": "spot",
        "symbol": d["s"],
        "receive_ts_ns": RECV_TS,
    });
    let o = e.as_object_mut().unwrap();
    match d.get("e").and_then(Value::as_str) {
        Some("trade") => {
            o.insert("type".into(), json!("trade"));
            o.insert("exchange_ts_ns".into(), json!(ms_to_ns(&d["T"])));
            o.insert("trade_id".into(), d["t"].clone());
            o.insert("price".into(), d["p"].clone());
            o.insert("qty".into(), d["q"].clone());
            o.insert("side".into(), json!(side(&d["m"])));
        }
        Some("aggTrade") => {
            o.insert("type".into(), json!("agg_trade"));
            o.insert("exchange_ts_ns".into(), json!(ms_to_ns(&d["T"])));
            o.insert("agg_id".into(), d["a"].clone());
            o.insert("first_trade_id".into(), d["f"].clone());
            o.insert("last_trade_id".into(), d["l"].clone());
            o.insert("price".into(), d["p"].clone());
            o.insert("qty".into(), d["q"].clone());
            o.insert("side".into(), json!(side(&d["m"])));
        }
        Some("depthUpdate") => {
            o.insert("type".into(), json!("depth_diff"));
            o.insert("exchange_ts_ns".into(), json!(ms_to_ns(&d["E"])));
            o.insert("first_update_id".into(), d["U"].clone());
            o.insert("last_update_id".into(), d["u"].clone());
            o.insert("bids".into(), levels(&d["b"]));
            o.insert("asks".into(), levels(&d["a"]));
        }
        None => {
            o.insert("type".into(), json!("book_ticker"));
            o.insert("exchange_ts_ns".into(), json!(0));
            o.insert("update_id".into(), d["u"].clone());
            o.insert("bid_price".into(), d["b"].clone());
            o.insert("bid_qty".into(), d["B"].clone());
            o.insert("ask_price".into(), d["a"].clone());
            o.insert("ask_qty".into(), d["A"].clone());
        }
        Some(other) => panic!("unexpected event type {other}"),
    }
    e
}

/// The Protobuf envelope carries the same fields as the JSON object.
fn check_proto(v: &Value, env: &wire::Envelope) {
    assert_eq!(env.exchange, v["exchange"]);
    assert_eq!(env.market, v["market"]);
    assert_eq!(env.symbol, v["symbol"]);
    assert_eq!(env.r#type, v["type"]);
    assert_eq!(env.exchange_ts_ns, v["exchange_ts_ns"].as_i64().unwrap());
    assert_eq!(env.receive_ts_ns, v["receive_ts_ns"].as_i64().unwrap());
    let lv = |ls: &[wire::Level]| -> Value {
        Value::Array(ls.iter().map(|l| json!([l.price, l.qty])).collect())
    };
    let sd = |s: i32| {
        if s == wire::Side::Buy as i32 {
            "buy"
        } else {
            "sell"
        }
    };
    match env.payload.as_ref().expect("payload") {
        Payload::Trade(t) => {
            assert_eq!(t.trade_id, v["trade_id"].as_u64().unwrap());
            assert_eq!(t.price, v["price"]);
            assert_eq!(t.qty, v["qty"]);
            assert_eq!(sd(t.side), v["side"]);
        }
        Payload::AggTrade(t) => {
            assert_eq!(t.agg_id, v["agg_id"].as_u64().unwrap());
            assert_eq!(t.first_trade_id, v["first_trade_id"].as_u64().unwrap());
            assert_eq!(t.last_trade_id, v["last_trade_id"].as_u64().unwrap());
            assert_eq!(t.price, v["price"]);
            assert_eq!(t.qty, v["qty"]);
            assert_eq!(sd(t.side), v["side"]);
        }
        Payload::DepthDiff(d) => {
            assert_eq!(d.first_update_id, v["first_update_id"].as_u64().unwrap());
            assert_eq!(d.last_update_id, v["last_update_id"].as_u64().unwrap());
            assert_eq!(lv(&d.bids), v["bids"]);
            assert_eq!(lv(&d.asks), v["asks"]);
            assert_eq!(d.prev_last_update_id, None);
        }
        Payload::BookTicker(b) => {
            assert_eq!(b.update_id, v["update_id"].as_u64().unwrap());
            assert_eq!(b.bid_price, v["bid_price"]);
            assert_eq!(b.bid_qty, v["bid_qty"]);
            assert_eq!(b.ask_price, v["ask_price"]);
            assert_eq!(b.ask_qty, v["ask_qty"]);
        }
        other => panic!("unexpected payload {other:?}"),
    }
}

fn check_file(name: &str) -> usize {
    let path = format!(
        "{}/tests/fixtures/binance_spot/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    // One decoder for the whole file: reuse across messages must not leak state between them.
    let mut dec = BinanceDecoder::new("spot");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let raw: Value = serde_json::from_str(line).unwrap();
        let (v, env) = decode(&mut dec, line);
        assert_eq!(v, expected(&raw), "line {}: {line}", n + 1);
        check_proto(&v, &env);
        n += 1;
    }
    n
}

#[test]
fn trades() {
    assert_eq!(check_file("trade.jsonl"), 6000);
}

#[test]
fn agg_trades() {
    assert_eq!(check_file("aggTrade.jsonl"), 3204);
}

#[test]
fn book_tickers() {
    assert_eq!(check_file("bookTicker.jsonl"), 9474);
}

#[test]
fn depth_diffs() {
    assert_eq!(check_file("depthUpdate.jsonl"), 8734);
}

/// One message spelled out by hand, so the mapping itself is pinned, not only its consistency.
#[test]
fn first_trade_by_hand() {
    let line = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
    let (v, _) = decode(&mut BinanceDecoder::new("spot"), line);
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"exchange":"binance","exchange_ts_ns":1723161255342000000,"market":"spot","price":"61837.63000000","qty":"0.02000000","receive_ts_ns":1800000000123456789,"side":"sell","symbol":"BTCUSDT","trade_id":3735683259,"type":"trade"}"#
    );
}

/// The raw `/ws/<stream>` payload (no combined wrapper) decodes the same.
#[test]
fn raw_payload_without_wrapper() {
    let line = r#"{"e":"aggTrade","E":1617566591349,"s":"BTCUSDT","a":665076761,"p":"58001.04000000","q":"0.02627600","f":745522878,"l":745522878,"T":1617566591348,"m":false,"M":true}"#;
    let (v, _) = decode(&mut BinanceDecoder::new("spot"), line);
    assert_eq!(v["side"], "buy");
    assert_eq!(v["agg_id"], 665076761u64);
}

/// Bad input is an error value, never a panic, and the decoder keeps working afterwards.
#[test]
fn bad_input_is_reported() {
    let mut dec = BinanceDecoder::new("spot");
    let cases: &[(&str, &str)] = &[
        ("{", "invalid_json"),
        ("[1,2]", "unexpected_shape"),
        (
            r#"{"e":"trade","s":"X","t":"1","p":"1","q":"1","T":1,"m":true}"#,
            "unexpected_shape",
        ),
        (
            r#"{"e":"trade","s":"X","t":1,"p":"1e5","q":"1","T":1,"m":true}"#,
            "bad_decimal",
        ),
        (
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":1}"#,
            "unexpected_shape",
        ),
        (r#"{"e":"weird","E":1}"#, "unknown_event"),
        (
            r#"{"error":{"code":2,"msg":"Invalid request"},"id":1}"#,
            "exchange_error",
        ),
        (
            r#"{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1"]],"a":[]}"#,
            "unexpected_shape",
        ),
        (
            r#"{"e":"trade","s":"X","t":1,"p":"1","q":"1","T":99999999999999999,"m":true}"#,
            "unexpected_shape",
        ),
        ("\u{0}\u{1}garbage", "invalid_json"),
    ];
    for (msg, reason) in cases {
        let mut frame = Frame::with_capacity(64);
        frame.fill(msg.as_bytes());
        let len = frame.len;
        let r = dec.decode(&mut frame.buf, len, 1, &mut |_| {
            panic!("no event expected for {msg}")
        });
        assert_eq!(r.map_err(|e| e.reason()), Err(*reason), "{msg}");
    }
    let mut frame = Frame::with_capacity(64);
    frame.fill(br#"{"result":null,"id":7}"#);
    let len = frame.len;
    assert_eq!(
        dec.decode(&mut frame.buf, len, 1, &mut |_| {}),
        Ok(Decoded::Control)
    );
    let (v, _) = decode(
        &mut dec,
        r#"{"u":1,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"3.0","A":"4.0"}"#,
    );
    assert_eq!(v["ask_qty"], "4.0");
}

/// Partial-book streams (`<symbol>@depth5|10|20[@speed]`): spot's `{"lastUpdateId","bids","asks"}`
/// (the documented example; the symbol comes from the stream name) and USD-M's depthUpdate-shaped
/// top of book both become `book_snapshot` events with the stream's depth, on the fast path and
/// on the general one alike.
#[test]
fn partial_book_streams_are_book_snapshots() {
    let spot = r#"{"stream":"bnbbtc@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}}"#;
    let usdm = r#"{"stream":"btcusdt@depth10","data":{"e":"depthUpdate","E":1571889248277,"T":1571889248276,"s":"BTCUSDT","U":390497796,"u":390497878,"pu":390497794,"b":[["7403.89","0.002"],["7403.90","3.906"]],"a":[["7405.96","3.340"],["7406.63","4.525"]]}}"#;
    for general in [false, true] {
        let mk = |m: &'static str| {
            if general {
                BinanceDecoder::general_only(m)
            } else {
                BinanceDecoder::new(m)
            }
        };
        let (v, env) = decode(&mut mk("spot"), spot);
        assert_eq!(
            v,
            json!({"exchange":"binance","market":"spot","symbol":"BNBBTC","type":"book_snapshot",
                "exchange_ts_ns":0,"receive_ts_ns":RECV_TS,"update_id":160,"depth":5,
                "bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}),
            "general path: {general}"
        );
        match env.payload {
            Some(Payload::BookSnapshot(b)) => {
                assert_eq!(
                    (b.update_id, b.depth, b.bids.len(), b.asks.len()),
                    (160, 5, 1, 1)
                )
            }
            other => panic!("{other:?}"),
        }
        let (v, _) = decode(&mut mk("usdm"), usdm);
        assert_eq!(
            v,
            json!({"exchange":"binance","market":"usdm","symbol":"BTCUSDT","type":"book_snapshot",
                "exchange_ts_ns":1571889248277000000i64,"transaction_ts_ns":1571889248276000000i64,
                "receive_ts_ns":RECV_TS,"update_id":390497878,"depth":10,
                "bids":[["7403.89","0.002"],["7403.90","3.906"]],
                "asks":[["7405.96","3.340"],["7406.63","4.525"]]}),
            "general path: {general}"
        );
    }
    // A diff-depth stream right after stays a diff (nothing carries over from the last stream).
    let mut dec = BinanceDecoder::new("usdm");
    decode(&mut dec, usdm);
    let diff = usdm.replace("btcusdt@depth10", "btcusdt@depth@100ms");
    assert_eq!(decode(&mut dec, &diff).0["type"], "depth_diff");
    // Bad partial books are errors, not panics.
    for bad in [
        r#"{"stream":"bnbbtc@depth5","data":{"lastUpdateId":"x","bids":[],"asks":[]}}"#,
        r#"{"stream":"bnbbtc@depth5","data":{"lastUpdateId":1,"bids":[["1"]],"asks":[]}}"#,
        r#"{"stream":"bnbbtc@depth5","data":{"lastUpdateId":1,"bids":[["1e3","1"]],"asks":[]}}"#,
        r#"{"stream":"@depth5","data":{"lastUpdateId":1,"bids":[],"asks":[]}}"#,
        r#"{"stream":"btcusdt@depth20","data":{"e":"trade","E":1,"s":"X","t":1,"p":"1","q":"1","T":1,"m":true}}"#,
    ] {
        let mut frame = Frame::with_capacity(64);
        frame.fill(bad.as_bytes());
        let len = frame.len;
        let r = BinanceDecoder::new("spot").decode(&mut frame.buf, len, 1, &mut |_| {
            panic!("no event expected for {bad}")
        });
        assert!(r.is_err(), "{bad}: {r:?}");
    }
}
