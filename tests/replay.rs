//! Raw capture, then `mdc replay` into the file sink: the same normalized events as the live
//! run, compared field by field (`receive_ts_ns` included: it is the captured one).

mod common;

use common::*;
use mdc::simulator::{Fault, SimConfig, Simulator};
use serde_json::Value;
use std::time::Duration;

/// Every event type these tests produce.
const ALL: [&str; 6] = [
    "trade",
    "agg_trade",
    "depth_diff",
    "book_ticker",
    "book_snapshot",
    "gap",
];

#[test]
fn a_replayed_capture_gives_the_live_runs_events() {
    let total = 6_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 3_000,
        total: Some(total),
        seed: 51,
        ..SimConfig::default()
    })
    .unwrap();
    let live = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
capture:
  enabled: true
  path: "./capture"
  rotate_bytes: 65536
"#,
        sim.ws_url()
    );
    let (a, b, log) = live_then_replay("replay", &live, &|| sim.sent() >= total);
    assert!(a.len() as u64 >= total);
    assert_eq!(a.len(), b.len(), "as many events; log:\n{log}");
    assert!(
        a == b,
        "the replay's events are the live run's, field by field"
    );
}

/// Books re-synced from the captured REST snapshots (taken mid-diff, as Binance serves them),
/// sequence gaps, and a lost connection: the replay gives the same `book_snapshot` and `gap`
/// events as the live run, at the same points, with the same times.
#[test]
fn a_replayed_capture_gives_the_live_books_and_gaps() {
    let total = 9_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 3_000,
        total: Some(total),
        seed: 52,
        depth_gaps: vec![("BTCUSDT".into(), 150)],
        faults: vec![(0, 4_000, Fault::Close)],
        rest_listen: Some("127.0.0.1:0".into()),
        ..SimConfig::default()
    })
    .unwrap();
    let live = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "depth@100ms", "bookTicker"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  snapshot_interval_ms: 0
  snapshot_every_updates: 20
  depth: 20
capture:
  enabled: true
  path: "./capture"
  rotate_bytes: 65536
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let (a, b, log) = live_then_replay("replay-books", &live, &|| sim.sent() >= total);
    let count = |v: &[String], t: &str| {
        v.iter()
            .filter(|l| l.contains(&format!("\"type\":\"{t}\"")))
            .count()
    };
    let (snaps, gaps) = (count(&a, "book_snapshot"), count(&a, "gap"));
    println!(
        "live: {} events, {snaps} book_snapshot, {gaps} gap; replay: {} events",
        a.len(),
        b.len()
    );
    assert!(snaps >= 50, "books synced and emitted: {snaps}");
    assert!(gaps >= 2, "sequence gaps and the lost connection: {gaps}");
    assert_eq!(count(&b, "book_snapshot"), snaps, "log:\n{log}");
    assert_eq!(count(&b, "gap"), gaps, "log:\n{log}");
    assert_eq!(a.len(), b.len(), "as many events; log:\n{log}");
    let differ: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(3).collect();
    assert!(
        differ.is_empty(),
        "the replay's events are the live run's, field by field: {differ:#?}"
    );
}

/// Runs `mdc` with `live` (a config with a file sink in ./data and a capture in ./capture) until
/// `done` and its output is still, then replays the capture into ./replayed with the same
/// sections; returns both outputs as sorted JSON lines, and the replay's log.
fn live_then_replay(
    name: &str,
    live: &str,
    done: &dyn Fn() -> bool,
) -> (Vec<String>, Vec<String>, String) {
    let dir = temp_dir(name);
    let mut mdc = Collector::start(&dir, live, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(90), done),
        "{}",
        mdc.log_text()
    );
    // Everything received is written: the output stops growing.
    let mut last = usize::MAX;
    assert!(wait_until(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(700));
        let n = read_types(&data, &ALL).len();
        std::mem::replace(&mut last, n) == n
    }));
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());

    // The same sections, a file sink elsewhere, no capture.
    let replay_cfg = dir.join("replay.yaml");
    std::fs::write(
        &replay_cfg,
        live.replace("./data", "./replayed").replace(
            "enabled: true\n  path: \"./capture\"",
            "enabled: false\n  path: \"./capture\"",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
        .current_dir(&dir)
        .args(["replay", "--from", "capture", "--config"])
        .arg(&replay_cfg)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("event=replay_finished"), "{log}");

    let key = |v: &Value| serde_json::to_string(v).unwrap();
    let mut a: Vec<String> = read_types(&data, &ALL).iter().map(key).collect();
    let mut b: Vec<String> = read_types(&dir.join("replayed"), &ALL)
        .iter()
        .map(key)
        .collect();
    a.sort();
    b.sort();
    (a, b, log)
}
