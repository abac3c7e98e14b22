//! Binance USD-M end to end: the simulator in USD-M mode (futures payloads, routed paths
//! `/public` and `/market`) -> the real `mdc` binary -> files. Every event of every streamed type
//! exactly once; depth diffs feed local books with the futures rules (`pu` chain).

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use std::time::Duration;

#[test]
fn every_streamed_type_exactly_once_over_routed_paths() {
    let total = 20_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 5_000,
        total: Some(total),
        record: true,
        seed: 77,
        futures: true,
        rest_listen: Some("127.0.0.1:0".into()),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = format!(
        r#"
exchanges:
  binance_usdm:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker", "markPrice@1s", "forceOrder", "!markPrice@arr", "!forceOrder@arr"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  snapshot_every_updates: 100
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let dir = temp_dir("usdm");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    let written = || read_types(&data, &USDM_TYPES).len();
    // Arrays carry 3 events per message: wait for the simulator, then for the files.
    assert!(
        wait_until(Duration::from_secs(60), || sim.sent() >= total),
        "log:\n{}",
        mdc.log_text()
    );
    let expected: usize = sim
        .sent_messages()
        .iter()
        .map(|m| expected_events(m, "usdm").len())
        .sum();
    assert!(
        wait_until(Duration::from_secs(30), || written() >= expected),
        "{} of {expected}; log:\n{}",
        written(),
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let got = read_types(&data, &USDM_TYPES);
    assert_exactly_once_market(&sim.sent_messages(), &got, "usdm");
    for t in USDM_TYPES {
        assert!(got.iter().any(|e| e["type"] == t), "{t} present");
    }
    // The stream's non-trade records (`X` = NA) were skipped and counted, typed trades kept.
    let na = sim
        .sent_messages()
        .iter()
        .filter(|m| m.contains("\"X\":\"NA\""))
        .count();
    assert!(na > 0, "the simulator sends NA records");
    assert!(
        mdc.log_text()
            .contains("event=frame_skipped reason=non_trade"),
        "skips are logged"
    );
    for t in ["market", "insurance_fund", "adl"] {
        assert!(
            got.iter().any(|e| e["trade_type"] == t),
            "trade_type {t} present"
        );
    }
    assert!(got.iter().all(|e| e["trade_type"] != "na"));
    assert!(
        got.iter()
            .any(|e| e["type"] == "depth_diff" && e["prev_last_update_id"].is_u64())
    );
    // Two routed paths, each with its own connection.
    let subs = sim.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    // The books synced under the futures rules and were published.
    let log = mdc.log_text();
    assert!(log.matches("event=book_synced").count() >= 2, "{log}");
    assert!(
        !log.contains("reason=gap"),
        "no false gap under the pu rule: {log}"
    );
    assert!(!files(&data, "book_snapshot").is_empty());
}

/// The REST-only series (open interest, the three long/short ratios, funding history), polled on
/// their schedules: every data point the exchange served is published exactly once (the exchange
/// returns the same point again on faster polls), with the point's own time as `exchange_ts_ns`.
#[test]
fn rest_series_publish_each_point_once() {
    let sim = Simulator::start(SimConfig {
        rate: 200,
        futures: true,
        rest_listen: Some("127.0.0.1:0".into()),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = format!(
        r#"
exchanges:
  binance_usdm:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "openInterest", "topLongShortPositionRatio", "topLongShortAccountRatio", "globalLongShortAccountRatio", "fundingRate"]
    rest: {{ open_interest_interval: "100ms", ratio_interval: "150ms", funding_rate_interval: "250ms", ratio_period: "5m" }}
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  rest_weight_budget: 100000
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let dir = temp_dir("usdm-rest");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    std::thread::sleep(Duration::from_secs(4));
    // Points served in the last second may have been fetched by one ratio endpoint and not yet
    // by the other two when the collector stops: only older ones must be there three times.
    let stop_ms = mdc::clock::realtime_ns() / 1_000_000;
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let data = dir.join("data");
    let got = read_types(
        &data,
        &["open_interest", "long_short_ratio", "funding_rate"],
    );
    let mut seen = std::collections::BTreeMap::new();
    for e in &got {
        let ts = e["exchange_ts_ns"].as_i64().unwrap();
        assert_eq!(ts % 1_000_000, 0);
        assert_eq!(e["market"], "usdm");
        let key = (
            e["type"].as_str().unwrap().to_string(),
            e["symbol"].as_str().unwrap().to_string(),
            ts / 1_000_000,
            e["kind"].as_str().unwrap_or("").to_string(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "duplicates: {:?}",
        seen.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let served = sim.served_points();
    let kinds = ["top_position", "top_account", "global_account"];
    let mut want = std::collections::BTreeSet::new();
    for (t, s, ts) in &served {
        if t == "long_short_ratio" {
            if *ts >= stop_ms - 1_000 {
                continue;
            }
            for k in kinds {
                want.insert((t.clone(), s.clone(), *ts, k.to_string()));
            }
        } else {
            want.insert((t.clone(), s.clone(), *ts, String::new()));
        }
    }
    let have: std::collections::BTreeSet<_> = seen.keys().cloned().collect();
    // Every point the collector published was served, and each served point of each series was
    // published (the three ratio endpoints serve the same time buckets).
    let recent =
        |k: &&(String, String, i64, String)| k.0 == "long_short_ratio" && k.2 >= stop_ms - 1_000;
    assert!(
        have.iter().filter(|k| !recent(k)).all(|k| want.contains(k)),
        "published points nobody served: {:?}",
        have.difference(&want).take(5).collect::<Vec<_>>()
    );
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "served but not published: {:?}",
        missing.iter().take(5).collect::<Vec<_>>()
    );
    for t in ["open_interest", "long_short_ratio", "funding_rate"] {
        assert!(
            got.iter().filter(|e| e["type"] == t).count() >= 4,
            "{t} polled repeatedly"
        );
    }
    let fr = got.iter().find(|e| e["type"] == "funding_rate").unwrap();
    assert_eq!(fr["funding_time_ns"], fr["exchange_ts_ns"]);
}

/// A stream configured on the wrong routed path (here `markPrice` sent to `/public`) receives
/// nothing and Binance reports no error: the collector notices within the deadline while the
/// connection is healthy, and says so in the log and in `/metrics`; correctly routed streams are
/// not reported.
#[test]
fn stream_on_the_wrong_routed_path_is_reported() {
    let sim = Simulator::start(SimConfig {
        rate: 2_000,
        futures: true,
        seed: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_usdm:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "bookTicker", "markPrice@1s", "aggTrade"]
    routes: {{ markPrice: public }}
    silent_stream_timeout: "2s"
sinks:
  file: {{ path: "./data" }}
http:
  listen: "127.0.0.1:{port}"
"#,
        sim.ws_url()
    );
    let dir = temp_dir("usdm-route");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(
        wait_until(Duration::from_secs(15), || mdc
            .log_text()
            .contains("event=stream_silent")),
        "log:\n{}",
        mdc.log_text()
    );
    let log = mdc.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("event=stream_silent"))
        .unwrap();
    assert!(
        line.contains("btcusdt@markPrice@1s") && line.contains("ethusdt@markPrice@1s"),
        "{line}"
    );
    assert!(
        line.contains("silent=2 "),
        "only the misrouted streams: {line}"
    );
    assert!(
        !line.contains("@trade") && !line.contains("@bookTicker"),
        "{line}"
    );
    let metrics = http_get(port, "/metrics").1;
    assert!(
        metrics.lines().any(|l| l == "streams_silent 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "stream_silence_detected_total 2")
    );
    // The connection itself was healthy: correctly routed streams kept flowing.
    assert!(
        read_types(&dir.join("data"), &["trade"]).len() > 10 || count_lines(&dir.join("data")) > 10
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
}
