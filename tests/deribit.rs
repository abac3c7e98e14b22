//! Deribit end to end through the real binary against the project's Deribit simulator over
//! loopback: every trade once and in order per instrument; every `book_snapshot` equal to the
//! simulator's true book at that `change_id` (all levels, exact strings, exponent prices in plain
//! decimal) while the simulator withholds changes of one instrument (change_id gaps), with only
//! that instrument re-subscribed; a dropped connection re-syncs; every heartbeat `test_request`
//! answered (an unanswered one closes the connection); ticker and volatility index values exact;
//! instruments selected by currency and kind through `public/get_instruments`; bad frames and
//! error replies counted, nothing else lost.

mod common;

use common::*;
use mdc::simulator::deribit::{DeribitSimConfig, DeribitSimulator};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const PERP: &str = "BTC-PERPETUAL";
const OPTION: &str = "ETH-26DEC25-4000-C";

fn config(ws_url: &str, symbols: &str, channels: &str, extra: &str) -> String {
    format!(
        r#"
exchanges:
  deribit:
    ws_url: "{ws_url}"
    symbols: {symbols}
    channels: {channels}
    heartbeat_interval: 10s
    # Heartbeats run 10-20x faster than real ones here: room for their answers.
    max_messages_per_sec: 20
{extra}
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  snapshot_every_updates: 1
  snapshot_interval_ms: 0
  depth: 0
"#
    )
}

fn events(dir: &std::path::Path, t: &str) -> Vec<Value> {
    read_types(dir, &[t])
        .into_iter()
        .filter(|e| e["exchange"] == "deribit")
        .collect()
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap().to_string(),
                l[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn books_trades_tickers_and_volatility_with_gaps_heartbeats_and_a_drop() {
    let total = 4_000u64;
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 400,
        total: Some(total),
        record: true,
        seed: 11,
        gap_every: 40,
        gap_only: PERP.into(),
        // A heartbeat "second" lasts 50 ms: `heartbeat_interval: 10s` -> a test_request every
        // 500 ms.
        heartbeat_unit: Duration::from_millis(50),
        drop_after: Some((0, 1_500)),
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-e2e");
    let cfg = config(
        &sim.ws_url(),
        &format!("[\"{PERP}\", \"{OPTION}\"]"),
        "[trades, book, ticker, deribit_volatility_index]",
        "    volatility_indexes: [btc_usd]\n",
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || sim.stats().sent >= total),
        "sim stats {:?}; log:\n{}",
        sim.stats(),
        mdc.log_text()
    );
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for (inst, id) in sim.trades_sent() {
        sent.entry(inst).or_default().push(id);
    }
    let want: usize = sent.values().map(Vec::len).sum();
    assert!(
        wait_until(Duration::from_secs(30), || events(&data, "trade").len()
            >= want),
        "{} of {want} trades; log:\n{}",
        events(&data, "trade").len(),
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    let stats = sim.stats();

    // Every trade once, in order per instrument; ids kept as text (prefixed for ETH).
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for e in events(&data, "trade") {
        let sym = e["symbol"].as_str().unwrap().to_string();
        assert_eq!(e["market"], if sym == PERP { "swap" } else { "option" });
        got.entry(sym)
            .or_default()
            .push(e["trade_id_text"].as_str().unwrap().to_string());
    }
    assert_eq!(got, sent);
    assert!(got[OPTION][0].starts_with("ETH-"));

    // The faults happened, and every heartbeat request was answered.
    assert!(stats.gaps >= 4, "{stats:?}");
    assert!(stats.connections >= 2, "the drop reconnected: {stats:?}");
    assert!(stats.test_requests >= 8, "{stats:?}");
    assert_eq!(stats.heartbeat_closes, 0, "{stats:?}\n{log}");
    assert!(
        stats.tests_answered + stats.connections >= stats.test_requests,
        "{stats:?}"
    );

    // Every book snapshot is the true book at its change_id, all levels, exact strings
    // (the option's prices below 0.0001 were sent as `5e-05` and are output as `0.00005`).
    let snaps = events(&data, "book_snapshot");
    assert!(snaps.len() > 500, "{} snapshots", snaps.len());
    let mut exponent_levels = 0;
    for s in &snaps {
        let sym = s["symbol"].as_str().unwrap();
        let id = s["update_id"].as_u64().unwrap();
        let (bids, asks) = sim
            .book_at(sym, id)
            .unwrap_or_else(|| panic!("no true book of {sym} at {id}"));
        assert_eq!(pairs(&s["bids"]), bids, "{sym} bids at {id}");
        assert_eq!(pairs(&s["asks"]), asks, "{sym} asks at {id}");
        exponent_levels += bids.iter().filter(|(p, _)| p.starts_with("0.0000")).count();
    }
    assert!(exponent_levels > 0, "exponent-form prices were exercised");

    // Only the instrument with gaps was re-subscribed: one unsubscribe + subscribe per break.
    let gaps_seen = log.matches("event=book_resync reason=gap").count() as u64;
    assert!(
        gaps_seen >= 1 && gaps_seen <= stats.gaps,
        "{gaps_seen} of {stats:?}"
    );
    assert!(!stats.unsubscribes.is_empty(), "{stats:?}");
    for (_, ch) in &stats.unsubscribes {
        assert_eq!(ch, &format!("book.{PERP}.100ms"), "{stats:?}");
    }
    let option_subs = stats
        .subscribes
        .iter()
        .filter(|(_, c)| c.contains(OPTION))
        .count() as u64;
    assert_eq!(option_subs, stats.connections, "{stats:?}");
    let book_gaps: Vec<Value> = events(&data, "gap")
        .into_iter()
        .filter(|g| g["reason"] == "book_resync")
        .collect();
    assert_eq!(book_gaps.len() as u64, gaps_seen);
    for g in &book_gaps {
        assert_eq!(g["stream"], format!("book.{PERP}.100ms"));
    }

    // Tickers: exact values, exponent forms normalized.
    let marks = events(&data, "mark_price");
    let perp = marks
        .iter()
        .find(|m| m["symbol"] == PERP)
        .expect("perp ticker");
    assert_eq!(perp["funding_rate"], "-0.000012");
    assert_eq!(perp["funding_8h"], "0.00010412");
    assert_eq!(perp["estimated_settle_price"], "56127.59");
    let opt = marks
        .iter()
        .find(|m| m["symbol"] == OPTION)
        .expect("option ticker");
    assert_eq!(opt["gamma"], "0.00001");
    assert_eq!(opt["delta"], "0.8609");
    assert_eq!(opt["mark_iv"], "78.74");
    assert_eq!(opt["underlying_index"], "SYN.ETH-9APR21");
    assert!(opt.get("funding_rate").is_none_or(|f| f == ""));
    assert!(!events(&data, "open_interest").is_empty());
    let bt = events(&data, "book_ticker");
    assert!(bt.iter().any(|b| b["symbol"] == OPTION && b["bid_price"].as_str().unwrap().starts_with("0.000")));

    // The volatility index: every value sent, exactly.
    let vol: Vec<(String, String)> = events(&data, "volatility_index")
        .iter()
        .map(|v| {
            assert_eq!(v["market"], "index");
            (
                v["index_name"].as_str().unwrap().to_string(),
                v["volatility"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let vol_sent = sim.volatility_sent();
    assert!(!vol_sent.is_empty());
    assert_eq!(vol, vol_sent);
}

/// A quiet market: no data at all, only heartbeats (`heartbeat_interval: 10s`, a heartbeat
/// second of 100 ms here, so 12 s of test are 120 heartbeat seconds): every `test_request` is
/// answered and the one connection survives.
#[test]
fn heartbeats_hold_a_quiet_connection_open() {
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 0,
        heartbeat_unit: Duration::from_millis(100),
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-heartbeat");
    let cfg = config(&sim.ws_url(), &format!("[\"{PERP}\"]"), "[trades]", "");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    std::thread::sleep(Duration::from_secs(12));
    let stats = sim.stats();
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert_eq!(stats.connections, 1, "{stats:?}\n{}", mdc.log_text());
    assert_eq!(stats.heartbeat_closes, 0, "{stats:?}");
    assert!(stats.test_requests >= 10, "{stats:?}");
    assert!(stats.tests_answered + 1 >= stats.test_requests, "{stats:?}");
    assert!(!mdc.log_text().contains("event=disconnected"));
}

/// The simulator closes a connection that leaves a `test_request` unanswered, as Deribit does:
/// the test above proves something.
#[test]
fn an_unanswered_test_request_closes_the_connection() {
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 0,
        heartbeat_unit: Duration::from_millis(20),
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let (mut ws, _) = tungstenite::connect(sim.ws_url()).unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":10}}"#,
    ))
    .unwrap();
    let mut saw_request = false;
    let closed = loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => saw_request |= t.contains("test_request"),
            Ok(tungstenite::Message::Close(_)) => break true,
            Ok(_) => {}
            Err(_) => break true,
        }
    };
    assert!(saw_request && closed);
    assert_eq!(sim.stats().heartbeat_closes, 1);
}

/// `instruments: {currency: BTC, kind: option}` subscribes every BTC option the exchange lists
/// (and nothing else) besides the listed symbols.
#[test]
fn instruments_selected_by_currency_and_kind() {
    let listed = [
        "BTC-PERPETUAL",
        "BTC-26DEC25",
        "BTC-26DEC25-100000-C",
        "BTC-26DEC25-90000-P",
        "ETH-26DEC25-4000-C",
        "ETH-PERPETUAL",
    ];
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 50,
        instruments: listed.iter().map(|s| s.to_string()).collect(),
        rest_listen: Some("127.0.0.1:0".into()),
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-select");
    let extra = format!(
        "    rest_url: \"{}\"\n    instruments: {{ currency: BTC, kind: option, expired: false }}\n",
        sim.rest_url().unwrap()
    );
    let cfg = config(&sim.ws_url(), "[\"ETH-PERPETUAL\"]", "[book]", &extra);
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || sim.stats().subscribes.len()
            >= 3),
        "{:?}\n{}",
        sim.stats(),
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let mut subs: Vec<String> = sim.stats().subscribes.into_iter().map(|(_, c)| c).collect();
    subs.sort();
    assert_eq!(
        subs,
        vec![
            "book.BTC-26DEC25-100000-C.100ms",
            "book.BTC-26DEC25-90000-P.100ms",
            "book.ETH-PERPETUAL.100ms"
        ]
    );
    assert!(sim.stats().rest_requests >= 1);
    assert!(mdc.log_text().contains("event=instruments_resolved"));
}

#[test]
fn bad_frames_and_error_replies_are_counted_and_nothing_else_is_lost() {
    let total = 2_000u64;
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 400,
        total: Some(total),
        record: true,
        bad_every: 50,
        instruments: vec![PERP.into(), OPTION.into()],
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-bad");
    // BTC-1JAN27 is not listed: its subscription gets an error reply.
    let cfg = config(
        &sim.ws_url(),
        &format!("[\"{PERP}\", \"{OPTION}\", \"BTC-1JAN27\"]"),
        "[trades, book]",
        "",
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sim.stats().sent >= total),
        "{:?}\n{}",
        sim.stats(),
        mdc.log_text()
    );
    let want = sim.trades_sent().len();
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || events(
        &data, "trade"
    )
    .len()
        >= want));
    assert!(mdc.alive(), "no crash");
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let stats = sim.stats();
    assert!(stats.bad_frames >= 60, "{stats:?}");
    assert_eq!(events(&data, "trade").len(), want, "every trade once");
    let log = mdc.log_text();
    for reason in [
        "invalid_json",
        "unknown_event",
        "unexpected_shape",
        "exchange_error",
    ] {
        assert!(
            log.contains(&format!("event=frame_skipped reason={reason}")),
            "{reason} logged:\n{log}"
        );
    }
    // The error reply is logged with the request it answers (matched by JSON-RPC id).
    assert!(
        log.contains(
            "event=exchange_error_reply exchange=deribit id=100 request=\"public/subscribe\""
        ) && log.contains("BTC-1JAN27"),
        "{log}"
    );
    let lines = log.matches("event=frame_skipped").count() as u64;
    assert!(lines < stats.bad_frames / 2, "{lines} lines for {stats:?}");
    // The bad book change never touched a book: no re-sync, every snapshot true.
    assert!(!log.contains("event=book_resync"), "{log}");
    for s in events(&data, "book_snapshot") {
        let sym = s["symbol"].as_str().unwrap();
        let id = s["update_id"].as_u64().unwrap();
        let (bids, asks) = sim.book_at(sym, id).expect("true book");
        assert_eq!((pairs(&s["bids"]), pairs(&s["asks"])), (bids, asks));
    }
}

/// The real numbers: Deribit's minimum heartbeat interval (10 s) at its real length, a quiet
/// market for 35 s: every `test_request` answered, the one connection kept.
#[test]
fn real_length_heartbeats_keep_a_quiet_connection() {
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 0,
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-heartbeat-10s");
    let cfg = config(&sim.ws_url(), &format!("[\"{PERP}\"]"), "[trades]", "");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    std::thread::sleep(Duration::from_secs(35));
    let stats = sim.stats();
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert_eq!(stats.connections, 1, "{stats:?}\n{}", mdc.log_text());
    assert_eq!(stats.heartbeat_closes, 0, "{stats:?}");
    assert!(stats.test_requests >= 3, "{stats:?}");
    assert!(stats.tests_answered >= 3, "{stats:?}");
}

/// Listings change while collecting: with `instruments_refresh` (24h by default, 1 s here) the
/// selection is resolved again; the expired option's channels are unsubscribed (and its silence
/// never reported), the new option's trades and book arrive on a new connection, every
/// `book_snapshot` of it equal to the simulator's true book, nothing else interrupted.
#[test]
fn refreshed_selection_follows_new_listings_and_expiries() {
    let (old, stays, new) = (
        "BTC-26DEC25-100000-C",
        "BTC-26DEC25-90000-P",
        "BTC-2JAN26-95000-C",
    );
    let sim = DeribitSimulator::start(DeribitSimConfig {
        rate: 200,
        record: true,
        instruments: vec![PERP.into(), old.into(), stays.into()],
        rest_listen: Some("127.0.0.1:0".into()),
        ..DeribitSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("deribit-refresh");
    let extra = format!(
        "    rest_url: \"{}\"\n    instruments: {{ currency: BTC, kind: option }}\n    instruments_refresh: 1s\n    silent_stream_timeout: 3s\n",
        sim.rest_url().unwrap()
    );
    let cfg = config(
        &sim.ws_url(),
        &format!("[\"{PERP}\"]"),
        "[trades, book]",
        &extra,
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    let trades_of = |sym: &str| {
        events(&data, "trade")
            .into_iter()
            .filter(|e| e["symbol"] == sym)
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(20), || trades_of(old) > 0
            && trades_of(stays) > 0),
        "{:?}\n{}",
        sim.stats(),
        mdc.log_text()
    );
    sim.set_instruments(vec![PERP.into(), stays.into(), new.into()]);
    assert!(
        wait_until(Duration::from_secs(20), || trades_of(new) > 5
            && events(&data, "book_snapshot")
                .iter()
                .any(|s| s["symbol"] == new)),
        "{:?}\n{}",
        sim.stats(),
        mdc.log_text()
    );
    // Long enough for a silence report, if the expired streams were still watched.
    std::thread::sleep(Duration::from_secs(4));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    let stats = sim.stats();
    assert!(
        stats
            .unsubscribes
            .iter()
            .any(|(_, c)| c == &format!("book.{old}.100ms")),
        "{stats:?}"
    );
    assert!(
        stats
            .subscribes
            .iter()
            .any(|(_, c)| c == &format!("book.{new}.100ms")),
        "{stats:?}"
    );
    assert!(log.contains("event=instruments_refreshed exchange=deribit added_streams=2 removed_streams=2 new_connections=1"), "{log}");
    assert!(!log.contains("event=stream_silent"), "{log}");
    assert!(
        !log.contains("event=disconnected"),
        "nothing interrupted:\n{log}"
    );
    assert!(!log.contains("exchange_error"), "{log}");
    // The new instrument's books are true; the others' too.
    let mut checked = 0;
    for s in events(&data, "book_snapshot") {
        let sym = s["symbol"].as_str().unwrap();
        let id = s["update_id"].as_u64().unwrap();
        let (bids, asks) = sim.book_at(sym, id).expect("true book");
        assert_eq!(
            (pairs(&s["bids"]), pairs(&s["asks"])),
            (bids, asks),
            "{sym} at {id}"
        );
        checked += usize::from(sym == new);
    }
    assert!(checked > 0);
    // Trades of the stable instruments kept flowing across the refresh.
    assert!(trades_of(stays) > 10 && trades_of(PERP) > 10);
}
