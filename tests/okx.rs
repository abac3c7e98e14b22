//! OKX end to end through the real binary against the project's OKX simulator over loopback:
//! every trade once and in order per instrument; every `book_snapshot` equal to the simulator's
//! true book at that `seqId` (all levels, exact strings) while the simulator withholds updates
//! (seqId gaps) and sends wrong checksums, with only the affected instrument re-subscribed;
//! keep-alive and reset updates never taken for gaps; a dropped connection re-syncs; the text
//! `ping` holds a quiet connection open past the exchange's idle close.

mod common;

use common::*;
use mdc::simulator::okx::{OkxSimConfig, OkxSimulator};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

const INSTS: [&str; 2] = ["BTC-USDT", "ETH-USDT-SWAP"];

fn config(ws_url: &str, extra: &str) -> String {
    format!(
        r#"
exchanges:
  okx:
    ws_url: "{ws_url}"
    symbols: ["BTC-USDT", "ETH-USDT-SWAP"]
    channels: ["trades", "books"]
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

fn okx_events(dir: &std::path::Path, t: &str) -> Vec<Value> {
    read_types(dir, &[t])
        .into_iter()
        .filter(|e| e["exchange"] == "okx")
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
fn books_and_trades_with_gaps_bad_checksums_keep_alives_resets_and_a_drop() {
    let total = 5_000u64;
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 500,
        total: Some(total),
        record: true,
        seed: 7,
        gap_every: 170,
        bad_checksum_every: 230,
        keep_alive_every: 37,
        reset_after: Some(400),
        drop_after: Some((0, 2_000)),
        ..OkxSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("okx-e2e");
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), ""), &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || sim.stats().sent >= total),
        "sim stats {:?}; log:\n{}",
        sim.stats(),
        mdc.log_text()
    );
    // What the simulator sent, per instrument, in order.
    let mut sent_trades: HashMap<String, Vec<u64>> = HashMap::new();
    for m in sim.sent_messages() {
        let v: Value = serde_json::from_str(&m).unwrap();
        if v["arg"]["channel"] == "trades" {
            let d = &v["data"][0];
            sent_trades
                .entry(d["instId"].as_str().unwrap().to_string())
                .or_default()
                .push(d["tradeId"].as_str().unwrap().parse().unwrap());
        }
    }
    let want: usize = sent_trades.values().map(Vec::len).sum();
    assert!(
        wait_until(Duration::from_secs(30), || okx_events(&data, "trade").len()
            >= want),
        "{} of {want} trades; log:\n{}",
        okx_events(&data, "trade").len(),
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    let stats = sim.stats();

    // Every trade once, in order per instrument, with the market from the instId.
    let mut got_trades: HashMap<String, Vec<u64>> = HashMap::new();
    for e in okx_events(&data, "trade") {
        let sym = e["symbol"].as_str().unwrap().to_string();
        let m = if sym.ends_with("-SWAP") {
            "swap"
        } else {
            "spot"
        };
        assert_eq!(e["market"], m);
        got_trades
            .entry(sym)
            .or_default()
            .push(e["trade_id"].as_u64().unwrap());
    }
    assert_eq!(got_trades, sent_trades);

    // The faults happened.
    assert!(stats.gaps >= 4, "{stats:?}");
    assert!(stats.bad_checksums >= 3, "{stats:?}");
    assert!(stats.keep_alives >= 10, "{stats:?}");
    assert!(stats.resets >= 1, "{stats:?}");
    assert!(stats.connections >= 2, "the drop reconnected: {stats:?}");

    // Every book snapshot is the true book at its seqId, all levels, exact strings.
    let snaps = okx_events(&data, "book_snapshot");
    assert!(snaps.len() > 1_000, "{} snapshots", snaps.len());
    let mut after_reset = 0;
    for s in &snaps {
        let sym = s["symbol"].as_str().unwrap();
        let id = s["update_id"].as_u64().unwrap();
        let (bids, asks) = sim
            .book_at(sym, id)
            .unwrap_or_else(|| panic!("no true book of {sym} at {id}"));
        assert_eq!(pairs(&s["bids"]), bids, "{sym} bids at {id}");
        assert_eq!(pairs(&s["asks"]), asks, "{sym} asks at {id}");
        if id < 1_000_000 {
            after_reset += 1;
        }
    }
    assert!(after_reset > 0, "books kept going across the seqId reset");

    // Each break re-subscribed only its own instrument's books: a re-subscription is an
    // unsubscribe and a subscribe of that instId, and the other instrument's subscription count
    // grows only by the reconnect.
    assert!(!stats.unsubscribes.is_empty(), "{stats:?}");
    for inst in INSTS {
        let unsubs = stats.unsubscribes.iter().filter(|(_, i)| i == inst).count();
        let subs = stats.subscribes.iter().filter(|(_, i)| i == inst).count();
        assert_eq!(
            subs as u64,
            stats.connections + unsubs as u64,
            "{inst}: one subscribe per connection plus one per re-sync: {stats:?}"
        );
    }
    // Keep-alives and the reset were never taken for gaps: every detected break is an injected
    // one (a break while already re-syncing is not seen again).
    let gaps_seen = log.matches("event=book_resync reason=gap").count() as u64;
    let checksums_seen = log.matches("event=book_resync reason=checksum").count() as u64;
    assert!(
        gaps_seen >= 1 && gaps_seen <= stats.gaps,
        "{gaps_seen} of {stats:?}\n{log}"
    );
    assert!(
        checksums_seen >= 1 && checksums_seen <= stats.bad_checksums,
        "{checksums_seen} of {stats:?}"
    );
    // One re-subscription per break; those still queued when the connection dropped (at most
    // one per instrument) were never sent: the reconnect subscribed afresh.
    let unsubs = stats.unsubscribes.len() as u64;
    assert!(
        unsubs <= gaps_seen + checksums_seen && unsubs + 2 >= gaps_seen + checksums_seen,
        "one re-subscription per break: {stats:?}"
    );
    // Each break is a `gap` event on that instrument's book stream.
    let gaps = okx_events(&data, "gap");
    let book_gaps: Vec<&Value> = gaps
        .iter()
        .filter(|g| g["reason"] == "book_resync")
        .collect();
    assert_eq!(book_gaps.len() as u64, gaps_seen + checksums_seen);
    for g in &book_gaps {
        assert_eq!(
            g["stream"],
            format!("books:{}", g["symbol"].as_str().unwrap())
        );
    }
    // Depth diffs carry the exchange's ids, checksums and the snapshot flag.
    let diffs = okx_events(&data, "depth_diff");
    assert!(diffs.iter().any(|d| d["snapshot"] == true));
    assert!(diffs.iter().any(|d| d["checksum"].is_i64()));
    assert!(
        diffs
            .iter()
            .any(|d| d["prev_last_update_id"] == d["last_update_id"]),
        "keep-alives are published"
    );
}

/// OKX closes a connection it pushed nothing to for 30 s (2 s here, with a 500 ms ping): the text
/// `ping` after `ping_interval` of silence gets a `pong`, and the one connection stays open.
#[test]
fn text_ping_holds_a_quiet_connection_open() {
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 0,
        idle_close: Duration::from_secs(2),
        ..OkxSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("okx-ping");
    let extra = "    ping_interval: 500ms\n    liveness_timeout: 1500ms\n";
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), extra), &[]);
    std::thread::sleep(Duration::from_secs(7));
    let stats = sim.stats();
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert_eq!(stats.connections, 1, "{stats:?}\n{}", mdc.log_text());
    assert_eq!(stats.idle_closes, 0, "{stats:?}");
    assert!(stats.pings >= 5, "{stats:?}");
    assert!(!mdc.log_text().contains("event=disconnected"));
}

/// Without pings (an interval longer than the idle close) the simulator closes the connection,
/// as OKX does: the test above proves something.
#[test]
fn without_pings_the_idle_connection_is_closed() {
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 0,
        idle_close: Duration::from_millis(700),
        ..OkxSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("okx-noping");
    let extra = "    ping_interval: 5s\n    liveness_timeout: 10s\n";
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), extra), &[]);
    assert!(wait_until(Duration::from_secs(10), || sim
        .stats()
        .idle_closes
        >= 1));
    assert!(wait_until(Duration::from_secs(10), || sim
        .stats()
        .connections
        >= 2));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
}

/// The `rubik` long/short ratios of each contract, polled faster than new points appear: every
/// point the exchange served is published exactly once per series, with its own time; spot
/// instruments are not polled (the endpoints take contracts).
#[test]
fn rubik_ratios_publish_each_point_once() {
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 50,
        rest_listen: Some("127.0.0.1:0".into()),
        ..OkxSimConfig::default()
    })
    .unwrap();
    let cfg = format!(
        r#"
exchanges:
  okx:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTC-USDT", "BTC-USDT-SWAP", "ETH-USD-261225"]
    channels: ["trades", "long-short-account-ratio-contract", "long-short-account-ratio-contract-top-trader", "long-short-position-ratio-contract-top-trader"]
    rest: {{ ratio_period: "5m", ratio_interval: "200ms" }}
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let dir = temp_dir("okx-rest");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    std::thread::sleep(Duration::from_secs(4));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let got = okx_events(&dir.join("data"), "long_short_ratio");
    let kind_of = |k: &str| match k {
        "global_account" => "long-short-account-ratio-contract",
        "top_account" => "long-short-account-ratio-contract-top-trader",
        _ => "long-short-position-ratio-contract-top-trader",
    };
    let mut seen = std::collections::BTreeMap::new();
    for e in &got {
        assert_eq!(e["period"], "5m");
        assert!(e["long_short_ratio"].as_str().unwrap().contains('.'));
        let m = if e["symbol"] == "BTC-USDT-SWAP" {
            "swap"
        } else {
            "futures"
        };
        assert_eq!(e["market"], m);
        let key = (
            kind_of(e["kind"].as_str().unwrap()).to_string(),
            e["symbol"].as_str().unwrap().to_string(),
            e["exchange_ts_ns"].as_i64().unwrap() / 1_000_000,
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    let (served, requests) = sim.served_points();
    let have: std::collections::BTreeSet<_> = seen.keys().cloned().collect();
    assert_eq!(have, served, "every served point published, nothing else");
    assert!(requests >= 20, "{requests} requests");
    assert!(
        served.iter().all(|(_, i, _)| i != "BTC-USDT"),
        "spot not polled"
    );
    assert_eq!(
        served
            .iter()
            .map(|(e, i, _)| (e, i))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        6,
        "3 series x 2 contracts"
    );
}

/// Bad input over the wire: malformed JSON, a push of a channel nobody subscribed, a `books`
/// update whose checksum is a string, and a `60018` error for an instrument the exchange does not
/// list. Each is counted and logged (throttled), nothing else is lost, the process keeps running
/// and the books stay in sync.
#[test]
fn bad_frames_and_error_replies_are_counted_and_nothing_else_is_lost() {
    let total = 3_000u64;
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 500,
        total: Some(total),
        record: true,
        bad_every: 100,
        unknown: vec!["DOGE-USDT".into()],
        ..OkxSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("okx-bad");
    let cfg = config(&sim.ws_url(), "").replace(
        r#"symbols: ["BTC-USDT", "ETH-USDT-SWAP"]"#,
        r#"symbols: ["BTC-USDT", "ETH-USDT-SWAP", "DOGE-USDT"]"#,
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || sim.stats().sent >= total),
        "{:?}\n{}",
        sim.stats(),
        mdc.log_text()
    );
    let want = sim
        .sent_messages()
        .iter()
        .filter(|m| m.contains("\"channel\":\"trades\""))
        .count();
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || okx_events(
        &data, "trade"
    )
    .len()
        >= want));
    assert!(mdc.alive(), "no crash");
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let stats = sim.stats();
    assert!(stats.bad_frames >= 60, "{stats:?}");
    assert_eq!(okx_events(&data, "trade").len(), want, "every trade once");
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
    // Throttled: far fewer log lines than bad frames.
    let lines = log.matches("event=frame_skipped").count() as u64;
    assert!(lines < stats.bad_frames / 2, "{lines} lines for {stats:?}");
    // The string checksum never touched the books: no re-sync, every snapshot true.
    assert!(!log.contains("event=book_resync"), "{log}");
    for s in okx_events(&data, "book_snapshot") {
        let sym = s["symbol"].as_str().unwrap();
        let id = s["update_id"].as_u64().unwrap();
        let (bids, asks) = sim.book_at(sym, id).expect("true book");
        assert_eq!((pairs(&s["bids"]), pairs(&s["asks"])), (bids, asks));
    }
}

/// The real numbers: the simulator closes a connection it pushed nothing to for 30 s, as OKX does;
/// with the default `ping_interval` (20 s) the collector's text `ping` keeps its one connection
/// open past that.
#[test]
fn default_ping_holds_a_quiet_connection_open_past_30_s() {
    let sim = OkxSimulator::start(OkxSimConfig {
        rate: 0,
        idle_close: Duration::from_secs(30),
        ..OkxSimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("okx-ping-30s");
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), ""), &[]);
    std::thread::sleep(Duration::from_secs(36));
    let stats = sim.stats();
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert_eq!(stats.connections, 1, "{stats:?}\n{}", mdc.log_text());
    assert_eq!(stats.idle_closes, 0, "{stats:?}");
    assert!(stats.pings >= 1, "{stats:?}");
}
