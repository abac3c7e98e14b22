//! Raw capture end to end: the simulator -> the real `mdc` binary with `capture` on beside the
//! file sink: every data message the simulator sent is a capture line, byte for byte, once,
//! in order per connection; the REST snapshot bodies the books were synced from are captured
//! too; files rotate by size and the closed ones are zstd-compressed (the plain file removed).

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Every capture line under `dir`, files in name order (rotation order), decompressed.
fn capture_lines(dir: &std::path::Path) -> (Vec<Value>, usize, usize) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let (mut plain, mut zst) = (0, 0);
    let mut out = Vec::new();
    for p in names {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let mut text = String::new();
        if name.ends_with(".jsonl.zst") {
            zst += 1;
            zstd::stream::Decoder::new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
        } else if name.ends_with(".jsonl") {
            plain += 1;
            text = std::fs::read_to_string(&p).unwrap();
        } else {
            panic!("unexpected file {name}");
        }
        for l in text.lines() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")));
        }
    }
    (out, plain, zst)
}

#[test]
fn every_frame_and_snapshot_body_captured_exactly_rotated_and_compressed() {
    let total = 8_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 4_000,
        total: Some(total),
        record: true,
        rest_listen: Some("127.0.0.1:0".into()),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("capture");
    let cfg = format!(
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
  rest_snapshot_limit: 100
capture:
  enabled: true
  path: "./capture"
  rotate_bytes: 65536
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || sim.sent() >= total
            && count_lines(&data) as u64 >= total),
        "{}",
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());

    let (lines, plain, zst) = capture_lines(&dir.join("capture"));
    assert_eq!(
        plain, 0,
        "every closed file compressed, the plain one removed"
    );
    assert!(zst >= 10, "rotated by size: {zst} files");
    let frames: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("conn").is_some() && l.get("event").is_none())
        .collect();
    // What the parser saw besides frames: the connection's streams at the top of every file,
    // its markers, and when each snapshot body was applied.
    let conn_lines = lines.iter().filter(|l| l["event"] == "conn").count();
    assert!(conn_lines >= zst, "{conn_lines} conn lines in {zst} files");
    assert!(lines.iter().any(|l| l["event"] == "connected"));
    assert!(lines.iter().any(|l| l["event"] == "subscribed"));
    let sent = sim.sent_messages();
    // Every data message once, byte for byte, in the order sent (one connection). Control
    // replies (the subscription's answer) are captured too: they are frames the exchange sent.
    let data_frames: Vec<&str> = frames
        .iter()
        .map(|l| l["raw"].as_str().unwrap())
        .filter(|r| !r.starts_with("{\"result\""))
        .collect();
    assert_eq!(data_frames.len(), sent.len());
    assert!(data_frames.iter().zip(&sent).all(|(a, b)| *a == b.as_str()));
    for l in &frames {
        assert_eq!(l["exchange"], "binance");
        assert_eq!(l["market"], "spot");
        assert!(l["receive_ts_ns"].as_i64().unwrap() > 1_700_000_000_000_000_000);
    }
    let ts: Vec<i64> = frames
        .iter()
        .map(|l| l["receive_ts_ns"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in receive order");
    // The REST snapshot bodies the books were synced from: one per symbol at least, each the
    // exchange's JSON with its lastUpdateId.
    let rest: Vec<&Value> = lines.iter().filter(|l| l.get("rest").is_some()).collect();
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let body = rest
            .iter()
            .find(|l| l["symbol"] == sym)
            .unwrap_or_else(|| panic!("no snapshot body of {sym}"));
        assert!(body["rest"].as_str().unwrap().contains("/api/v3/depth"));
        let snap: Value = serde_json::from_str(body["raw"].as_str().unwrap()).unwrap();
        assert!(snap["lastUpdateId"].as_u64().is_some(), "{snap}");
        // Applied after it arrived, naming it.
        let at = body["receive_ts_ns"].as_i64().unwrap();
        assert!(
            lines.iter().any(|l| l["event"] == "book_loaded"
                && l["symbol"] == sym
                && l["rest_ts"].as_i64() == Some(at)
                && l["receive_ts_ns"].as_i64().unwrap() >= at),
            "a book_loaded line for the body of {sym}"
        );
    }
}

#[test]
fn a_bad_capture_section_is_a_config_error() {
    let dir = temp_dir("capture-bad");
    let cfg = r#"
exchanges:
  binance_spot:
    symbols: ["BTCUSDT"]
sinks:
  file: { path: "./data" }
capture:
  enabled: true
  compression: lz4
"#;
    std::fs::write(dir.join("config.yaml"), cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
        .args(["check-config", "--config"])
        .arg(dir.join("config.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capture.compression"), "{err}");
}
