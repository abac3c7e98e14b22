//! Live reconfiguration through the real binary: the config file rewritten while the simulator
//! streams, then SIGHUP: the added symbol's trades appear, the removed one's stop (unsubscribed
//! on its connection), and every trade of the symbol kept arrives exactly once across the
//! reload. An invalid file sent through `POST /admin/reload` is refused with its reason and
//! the running configuration stays.

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::time::Duration;

fn config(ws: &str, http: u16, symbols: &str, channels: &str) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws}"
    rest_url: "http://127.0.0.1:1"
    symbols: [{symbols}]
    channels: [{channels}]
sinks:
  file: {{ path: "./data" }}
http:
  listen: "127.0.0.1:{http}"
  admin: true
book:
  enabled: false
"#
    )
}

fn trades(data: &std::path::Path, symbol: &str) -> Vec<u64> {
    read_types(data, &["trade"])
        .iter()
        .filter(|v| v["symbol"] == symbol)
        .map(|v| v["trade_id"].as_u64().unwrap())
        .collect()
}

#[test]
fn symbols_added_and_removed_without_a_restart_or_a_lost_trade() {
    let sim = Simulator::start(SimConfig {
        rate: 600,
        record: true,
        seed: 41,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("reload");
    let http = free_port();
    let ws = sim.ws_url();
    let mut mdc = Collector::start(
        &dir,
        &config(&ws, http, "\"BTCUSDT\", \"ETHUSDT\"", "\"trade\""),
        &[],
    );
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(30), || trades(&data, "ETHUSDT").len()
            > 50
            && trades(&data, "BTCUSDT").len() > 50),
        "{}",
        mdc.log_text()
    );
    // ETHUSDT out, SOLUSDT in; BTCUSDT stays.
    std::fs::write(
        dir.join("config.yaml"),
        config(&ws, http, "\"BTCUSDT\", \"SOLUSDT\"", "\"trade\""),
    )
    .unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(mdc.pid() as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(30), || trades(&data, "SOLUSDT").len()
            > 50),
        "the added symbol flows; log:\n{}",
        mdc.log_text()
    );
    let eth = trades(&data, "ETHUSDT").len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        trades(&data, "ETHUSDT").len(),
        eth,
        "the removed symbol stopped; log:\n{}",
        mdc.log_text()
    );
    let log = mdc.log_text();
    assert!(
        log.contains(
            "event=reload_applied exchange=binance_spot added_streams=1 removed_streams=1"
        ),
        "{log}"
    );

    // An invalid file is refused with the reason; nothing changes.
    std::fs::write(
        dir.join("config.yaml"),
        config(&ws, http, "\"BTCUSDT\"", "\"nope\""),
    )
    .unwrap();
    let (code, body) = http_request(http, "POST", "/admin/reload");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("channels"), "{body}");
    assert_eq!(http_request(http, "GET", "/admin/reload").0, 405);
    let sol = trades(&data, "SOLUSDT").len();
    assert!(wait_until(Duration::from_secs(10), || trades(
        &data, "SOLUSDT"
    )
    .len()
        > sol + 20));

    let (status, _) = mdc.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", mdc.log_text());
    // Every BTCUSDT trade the simulator sent, exactly once and in order, across the reload.
    let sent: Vec<u64> = sim
        .sent_messages()
        .iter()
        .filter(|m| m.starts_with("{\"stream\":\"btcusdt@trade\""))
        .map(|m| {
            let v: Value = serde_json::from_str(m).unwrap();
            v["data"]["t"].as_u64().unwrap()
        })
        .collect();
    let got = trades(&data, "BTCUSDT");
    // The simulator goes on after the collector stopped: what was written is a prefix of it.
    assert!(got.len() > 200 && got.len() <= sent.len());
    assert_eq!(
        got,
        sent[..got.len()],
        "BTCUSDT: every trade once, in order"
    );
}
