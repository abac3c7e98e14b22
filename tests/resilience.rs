//! Connections that never silently stall, and every loss covered by a `gap` event: loopback tests
//! with the project's simulator and the real `mdc` binary.

mod common;

use common::*;
use mdc::simulator::{Fault, SimConfig, Simulator};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn config(ws_url: &str, extra: &str) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws_url}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms"]
{extra}
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
runtime:
  reconnect: {{ initial: "50ms", max: "500ms", reset_after: "1s" }}
"#
    )
}

/// (a) Connections dropped abruptly (cut mid-frame) every 2 s for a minute, with data streamed
/// while we are away lost for real: the process keeps collecting, every message sent arrives
/// exactly once, and every lost message lies inside a `gap` event of its stream.
#[test]
fn abrupt_drops_every_2s_for_a_minute_every_loss_covered() {
    let rate = 500u64;
    let faults: Vec<(usize, u64, Fault)> =
        (0..30).map(|i| (i, 2 * rate, Fault::CutMidFrame)).collect();
    let sim = Simulator::start(SimConfig {
        rate,
        record: true,
        faults,
        lose_on_reconnect: 25,
        seed: 12,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("drops");
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), ""), &[]);
    let t0 = Instant::now();
    while sim.connections() < 31 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
        assert!(mdc.alive(), "still running; log:\n{}", mdc.log_text());
    }
    assert!(sim.connections() >= 31, "30 drops happened");
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
    let data = dir.join("data");
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));

    let gaps = read_types(&data, &["gap"]);
    assert!(
        gaps.len() >= 30 * 6,
        "a gap per stream per drop: {}",
        gaps.len()
    );
    let mut by_stream: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for g in &gaps {
        assert_eq!(g["reason"], "disconnect");
        let (from, to) = (
            g["from_ts_ns"].as_i64().unwrap(),
            g["to_ts_ns"].as_i64().unwrap(),
        );
        assert!(from <= to);
        by_stream
            .entry(g["stream"].as_str().unwrap().to_string())
            .or_default()
            .push((from, to));
    }
    let lost = sim.lost_messages();
    assert!(lost.len() >= 30 * 25);
    for raw in &lost {
        let v: Value = serde_json::from_str(raw).unwrap();
        let stream = v["stream"].as_str().unwrap();
        let e_ms = v["data"]["E"].as_i64().unwrap();
        let covered = by_stream.get(stream).is_some_and(|w| {
            w.iter()
                .any(|(f, t)| f / 1_000_000 <= e_ms && e_ms <= t / 1_000_000 + 1)
        });
        assert!(
            covered,
            "lost {stream} at {e_ms} ms not covered by a gap event"
        );
    }
}

/// (c) A server that stops sending without closing, and stops answering pings: detected within
/// the configured deadline and replaced; (d) a server that keeps sending but never answers our
/// pings: likewise. Both counted as `liveness` disconnects.
#[test]
fn stalled_and_pong_less_servers_are_replaced_within_the_deadline() {
    for (fault, what) in [(Fault::Stall, "stall"), (Fault::NoPong, "no pong")] {
        let sim = Simulator::start(SimConfig {
            rate: 200,
            faults: vec![(0, 300, fault)],
            seed: 4,
            ..SimConfig::default()
        })
        .unwrap();
        let dir = temp_dir("stall");
        let extra = "    ping_interval: \"300ms\"\n    liveness_timeout: \"2s\"";
        let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), extra), &[]);
        let t0 = Instant::now();
        assert!(
            wait_until(Duration::from_secs(20), || sim.connections() >= 2),
            "{what}: replaced; log:\n{}",
            mdc.log_text()
        );
        // 300 messages at 200/s = 1.5 s, then the 2 s deadline (+ ping period, backoff, slack).
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{what}: replaced after {:?}",
            t0.elapsed()
        );
        let log = mdc.log_text();
        assert!(log.contains("reason=\"liveness:"), "{what}: {log}");
        let (status, _) = mdc.terminate(Duration::from_secs(10));
        assert!(status.success());
    }
}

/// Every gap event written to `data`.
fn unexpected_gaps(data: &std::path::Path) -> Vec<Value> {
    read_types(data, &["gap"])
}

/// (b) Planned make-before-break rollovers every 5 s for a minute (`max_connection_age: "5s"`):
/// every message the exchange sent arrives exactly once, and no gap is reported.
#[test]
fn planned_rollovers_every_5s_for_a_minute_lose_and_duplicate_nothing() {
    let sim = Simulator::start(SimConfig {
        rate: 500,
        record: true,
        seed: 21,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("rollover");
    let extra = "    max_connection_age: \"5s\"";
    let port = free_port();
    let cfg = config(&sim.ws_url(), extra)
        .replace("listen: \"\"", &format!("listen: \"127.0.0.1:{port}\""));
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(61) {
        std::thread::sleep(Duration::from_millis(500));
        assert!(mdc.alive(), "still running; log:\n{}", mdc.log_text());
    }
    let (_, metrics) = http_get(port, "/metrics");
    let dups: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rollover_duplicates_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        dups > 0.0,
        "the overlaps delivered copies, dropped: {metrics}"
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
    let log = mdc.log_text();
    let done = log.matches("event=rollover_done").count();
    assert!(
        done >= 10,
        "about 11 rollovers in a minute, got {done}; log:\n{log}"
    );
    assert!(!log.contains("event=rollover_forced"), "{log}");
    assert!(!log.contains("event=disconnected"), "{log}");
    assert!(sim.connections() as usize > done);
    let data = dir.join("data");
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
    assert_eq!(unexpected_gaps(&data), Vec::<Value>::new());
}

/// (e) The exchange announces `serverShutdown` and closes 3 s later: the collector rolls over at
/// once, without loss, copies or gaps, twice in a row.
#[test]
fn server_shutdown_rolls_over_without_loss() {
    let grace = Duration::from_secs(3);
    let sim = Simulator::start(SimConfig {
        rate: 500,
        record: true,
        seed: 22,
        faults: vec![
            (0, 1000, Fault::ServerShutdown(grace)),
            (1, 1000, Fault::ServerShutdown(grace)),
        ],
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("shutdown");
    let extra = "    max_connection_age: \"off\"";
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), extra), &[]);
    assert!(
        wait_until(Duration::from_secs(30), || mdc
            .log_text()
            .matches("event=rollover_done")
            .count()
            >= 2),
        "two rollovers; log:\n{}",
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_secs(4));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
    let log = mdc.log_text();
    assert!(log.contains("event=server_shutdown"), "{log}");
    assert!(
        !log.contains("event=disconnected"),
        "closed by us first: {log}"
    );
    assert_eq!(sim.connections(), 3);
    let data = dir.join("data");
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
    assert_eq!(unexpected_gaps(&data), Vec::<Value>::new());
}
