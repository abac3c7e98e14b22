//! Raw capture, then `mdc replay` into the file sink: the same normalized events as the live
//! run, compared field by field (`receive_ts_ns` included: it is the captured one).

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::time::Duration;

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
    let dir = temp_dir("replay");
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
    let mut mdc = Collector::start(&dir, &live, &[]);
    let data = dir.join("data");
    await_lines(&mdc, &data, total, Duration::from_secs(60));
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
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("event=replay_finished"), "{log}");

    let key = |v: &Value| serde_json::to_string(v).unwrap();
    let mut a: Vec<String> = read_jsonl(&data).iter().map(key).collect();
    let mut b: Vec<String> = read_jsonl(&dir.join("replayed")).iter().map(key).collect();
    assert!(a.len() as u64 >= total);
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len(), "as many events; log:\n{log}");
    assert!(
        a == b,
        "the replay's events are the live run's, field by field"
    );
}
