//! End to end over loopback: the project's simulator -> the real `mdc` binary -> the file sink.

mod common;

use common::*;
use mdc::simulator::{Fault, SimConfig, Simulator};
use prost::Message;
use serde_json::Value;
use std::time::Duration;

fn config(ws_url: &str, format: &str, listen: &str) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws_url}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data", format: "{format}" }}
http:
  listen: "{listen}"
book:
  enabled: false
runtime:
  readers: 1
  parsers: 1
  pipeline: threads  # the default `auto` runs inline on small machines: keep the threads covered
"#
    )
}

/// Every message the simulator sent is in the files exactly once, in order per stream, with the
/// exchange's exact price/qty strings and ids; pings were answered with their payload; SIGTERM exits
/// 0 within 5 s.
#[test]
fn jsonl_exactly_once_in_order() {
    let total = 20_000;
    let sim = Simulator::start(SimConfig {
        rate: 8_000,
        total: Some(total),
        record: true,
        ping_interval: Some(Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("jsonl");
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), "jsonl", ""), &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || count_lines(&data) as u64
            >= total),
        "only {} of {total} events written; log:\n{}",
        count_lines(&data),
        mdc.log_text()
    );
    let (status, took) = mdc.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        mdc.log_text()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(sim.sent(), total);
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
    let (pings, pongs) = sim.pings();
    assert!(pings > 0, "simulator sent pings");
    assert!(
        pongs + 2 >= pings,
        "pings answered with their payload: {pongs}/{pings}"
    );
    assert_eq!(sim.subscribe_messages(), 0, "12 streams ride in the URL");
}

/// The Protobuf file form holds the same events (length-delimited `Envelope`s).
#[test]
fn protobuf_files_decode_to_the_same_events() {
    let total = 5_000;
    let sim = Simulator::start(SimConfig {
        rate: 10_000,
        total: Some(total),
        record: true,
        seed: 9,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("pb");
    let mut mdc = Collector::start(&dir, &config(&sim.ws_url(), "protobuf", ""), &[]);
    let data = dir.join("data");
    let read = || -> Vec<Value> {
        let mut out = Vec::new();
        for t in TYPES {
            for f in files(&data, t) {
                let bytes = std::fs::read(&f).unwrap();
                let mut buf = bytes.as_slice();
                while !buf.is_empty() {
                    let env = mdc::wire::Envelope::decode_length_delimited(&mut buf)
                        .expect("length-delimited envelope");
                    out.push(envelope_json(&env));
                }
            }
        }
        out
    };
    // Files are flushed at least every second; wait for everything, then stop.
    assert!(wait_until(Duration::from_secs(60), || sim.sent() == total));
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert_exactly_once(&sim.sent_messages(), &read());
}

/// 2,000 streams over two connections (Binance spot's 1,024-stream limit), two reader and two
/// parser threads, and a server that pings every 2 s (Binance: every 20 s): every stream is subscribed exactly once,
/// the messages we send (`SUBSCRIBE`, pongs, pings) never exceed 5 per second per connection, and
/// every event arrives exactly once and in order per stream. With the default `idle: park`, four
/// reader->parser rings and two parser->publisher rings wake their parked consumers.
#[test]
fn many_streams_over_several_connections_and_threads() {
    let total = 20_000;
    let sim = Simulator::start(SimConfig {
        rate: 5_000,
        total: Some(total),
        record: true,
        seed: 11,
        ping_interval: Some(Duration::from_secs(2)),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = four_channel_config(
        &sim.ws_url(),
        500,
        "",
        "runtime:\n  readers: 2\n  parsers: 2\n",
    );
    let dir = temp_dir("many");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    // Pongs share the 5 messages/s with SUBSCRIBE, so subscribing takes a few seconds.
    wait_subscribed(&sim, 2000, &mdc);
    assert!(
        wait_until(Duration::from_secs(90), || count_lines(&data) as u64
            >= total),
        "only {} of {total}; log:\n{}",
        count_lines(&data),
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());

    let subs = sim.subscriptions();
    assert_eq!(subs.len(), 2, "two connections");
    let mut all: Vec<String> = subs.values().flatten().cloned().collect();
    assert_eq!(all.len(), 2000);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2000, "each stream subscribed once");
    let log = sim.subscribe_log();
    assert!(
        log.len() >= 2 * 5,
        "most streams were subscribed by message: {}",
        log.len()
    );
    let (pings, pongs) = sim.pings();
    assert!(pings >= 2 && pongs >= 2, "pings {pings}, pongs {pongs}");
    let inbound = sim.inbound_log();
    assert!(inbound.len() > log.len(), "pongs are counted too");
    for conn in 0..2 {
        assert_at_most_5_per_second(&inbound, conn);
    }
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
}

/// Binance spot with `symbols` symbols on trade, aggTrade, depth@100ms and bookTicker into files;
/// `exchange_extra` adds lines to the exchange section, `tail` whole sections.
fn four_channel_config(ws_url: &str, symbols: usize, exchange_extra: &str, tail: &str) -> String {
    let symbols: Vec<String> = (0..symbols).map(|i| format!("\"S{i:03}USDT\"")).collect();
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws_url}"
    symbols: [{}]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
    max_streams_per_connection: 1024
{exchange_extra}sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
{tail}"#,
        symbols.join(", ")
    )
}

/// Waits (up to 90 s) until the simulator has seen `streams` subscriptions in all.
fn wait_subscribed(sim: &Simulator, streams: usize, mdc: &Collector) {
    assert!(
        wait_until(Duration::from_secs(90), || sim
            .subscriptions()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= streams),
        "every stream subscribed; log:\n{}",
        mdc.log_text()
    );
}

/// Asserts that no 6 messages we sent on connection `conn` fall within one second at the server.
fn assert_at_most_5_per_second(inbound: &[(usize, std::time::Instant)], conn: usize) {
    let mut t: Vec<_> = inbound
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, t)| *t)
        .collect();
    t.sort();
    for w in t.windows(6) {
        assert!(
            w[5].duration_since(w[0]) >= Duration::from_millis(950),
            "more than 5 messages within a second on connection {conn}: gaps {:?}",
            w.windows(2)
                .map(|p| p[1].duration_since(p[0]))
                .collect::<Vec<_>>()
        );
    }
}

/// A server that pings every 400 ms (Binance spot: every 20 s) costs a pong each time; with
/// `server_ping_interval` configured, the subscriptions leave room for those pongs from the first
/// second (before any ping has been observed), so the connection never exceeds 5 messages/s.
#[test]
fn a_fast_pinging_server_never_sees_more_than_the_message_limit() {
    let sim = Simulator::start(SimConfig {
        rate: 200,
        record: true,
        seed: 5,
        ping_interval: Some(Duration::from_millis(400)),
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = four_channel_config(
        &sim.ws_url(),
        200,
        "    server_ping_interval: \"400ms\"\n",
        "",
    );
    let dir = temp_dir("fastping");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    wait_subscribed(&sim, 800, &mdc);
    std::thread::sleep(Duration::from_secs(2));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert!(
        sim.subscribe_log().len() >= 5,
        "subscribed by several messages"
    );
    let (pings, pongs) = sim.pings();
    assert!(pings >= 5 && pongs >= 5, "pings {pings}, pongs {pongs}");
    assert_at_most_5_per_second(&sim.inbound_log(), 0);
}

fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("metric {name_and_labels} missing in:\n{text}"))
}

/// Malformed JSON, an unknown event type, a wrong field type, a 16 MiB text frame, a binary frame
/// and a connection cut in the middle of a frame: each is counted and logged, the process keeps
/// running, reconnects, and no other message is lost or duplicated.
#[test]
fn bad_input_is_counted_and_nothing_else_is_lost() {
    let total = 6_000;
    let faults = vec![
        (0, 300, Fault::Malformed),
        (0, 600, Fault::UnknownEvent),
        (0, 900, Fault::WrongType),
        (0, 1200, Fault::Huge(16 << 20)),
        (0, 1500, Fault::Binary),
        (0, 2000, Fault::CutMidFrame),
    ];
    let sim = Simulator::start(SimConfig {
        rate: 5_000,
        total: Some(total),
        record: true,
        faults,
        seed: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let dir = temp_dir("bad");
    let mut mdc = Collector::start(
        &dir,
        &config(&sim.ws_url(), "jsonl", &format!("127.0.0.1:{port}")),
        &[],
    );
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || count_lines(&data) as u64
            >= total),
        "only {} of {total} events; log:\n{}",
        count_lines(&data),
        mdc.log_text()
    );
    assert!(mdc.alive(), "still running");
    assert!(sim.connections() >= 2, "reconnected after the cut");
    let m = wait_for_metrics(port);
    assert!(metric(&m, r#"processor_parse_errors_total{reason="invalid_json"}"#) >= 1);
    assert!(
        metric(
            &m,
            r#"processor_parse_errors_total{reason="unknown_event"}"#
        ) >= 1
    );
    assert!(
        metric(
            &m,
            r#"processor_parse_errors_total{reason="unexpected_shape"}"#
        ) >= 1
    );
    assert_eq!(metric(&m, r#"frames_skipped_total{reason="oversize"}"#), 1);
    assert_eq!(metric(&m, r#"frames_skipped_total{reason="binary"}"#), 1);
    let disconnects: u64 = ["eof", "io_error", "protocol_error", "server_close"]
        .iter()
        .map(|r| {
            metric(
                &m,
                &format!(r#"websocket_disconnects_total{{reason="{r}"}}"#),
            )
        })
        .sum();
    assert!(disconnects >= 1, "the cut was counted");
    let (code, _) = http_get(port, "/healthz");
    assert_eq!(code, 200);
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
    let log = mdc.log_text();
    for needle in [
        "reason=invalid_json",
        "reason=unknown_event",
        "reason=unexpected_shape",
        "reason=oversize",
        "reason=binary",
        "event=disconnected",
    ] {
        assert!(log.contains(needle), "log mentions {needle}:\n{log}");
    }
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
}

/// Counters are handed over every ~10 ms; wait until the scrape shows the skips.
fn wait_for_metrics(port: u16) -> String {
    let mut last = String::new();
    wait_until(Duration::from_secs(5), || {
        last = http_get(port, "/metrics").1;
        last.contains(r#"frames_skipped_total{reason="binary"} 1"#)
    });
    last
}

/// `/readyz` is 503 while the exchange does not answer and 200 once the connection is open and
/// subscribed.
#[test]
fn readyz_follows_the_connection() {
    let port = free_port();
    let dir = temp_dir("ready");
    // The exchange's port is bound but nobody accepts yet.
    let sim = Simulator::start(SimConfig {
        rate: 100,
        paused: true,
        ..SimConfig::default()
    })
    .unwrap();
    let mut mdc = Collector::start(
        &dir,
        &config(&sim.ws_url(), "jsonl", &format!("127.0.0.1:{port}")),
        &[],
    );
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http_get(port, "/readyz").0, 503);
    assert_eq!(http_get(port, "/healthz").0, 200);
    sim.resume();
    assert!(
        wait_until(Duration::from_secs(40), || http_get(port, "/readyz").0
            == 200),
        "log:\n{}",
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
}

/// `runtime.pipeline: inline` (one thread reads, parses, encodes and publishes): every message
/// exactly once across a cut connection and a planned rollover, gap events as in the threaded
/// pipeline, a clean drain at SIGTERM.
#[test]
fn inline_pipeline_delivers_everything_exactly_once() {
    let total = 20_000;
    let sim = Simulator::start(SimConfig {
        rate: 4_000,
        total: Some(total),
        record: true,
        faults: vec![(0, 3_000, Fault::CutMidFrame)],
        seed: 61,
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
    max_connection_age: "2s"
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
runtime:
  pipeline: inline
  reconnect: {{ initial: "50ms", max: "200ms" }}
"#,
        sim.ws_url()
    );
    let dir = temp_dir("inline");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || sim.sent() >= total),
        "log:\n{}",
        mdc.log_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    assert!(log.contains("event=rollover_done"), "{log}");
    let got: Vec<Value> = read_jsonl(&data)
        .into_iter()
        .filter(|v| v["type"] != "gap")
        .collect();
    assert_exactly_once(&sim.sent_messages(), &got);
    assert!(
        !read_types(&data, &["gap"]).is_empty(),
        "the cut is announced"
    );
}

/// A symbol in UTF-8 (Binance lists such symbols since December 2025): subscribed with its name
/// percent-encoded in the URL, every message arrives exactly once with the symbol as sent.
#[test]
fn non_ascii_symbol_end_to_end() {
    let total = 2_000;
    let sim = Simulator::start(SimConfig {
        rate: 4_000,
        total: Some(total),
        record: true,
        ..SimConfig::default()
    })
    .unwrap();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    symbols: ["币安人生USDT", "BTCUSDT"]
    channels: ["trade", "aggTrade", "bookTicker"]
sinks:
  file: {{ path: "./data", format: "jsonl" }}
http:
  listen: ""
book:
  enabled: false
"#,
        sim.ws_url()
    );
    let dir = temp_dir("utf8-symbol");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || count_lines(&data) as u64
            >= total),
        "only {} of {total}; log:\n{}",
        count_lines(&data),
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let got = read_jsonl(&data);
    assert!(got.iter().any(|e| e["symbol"] == "币安人生USDT"));
    assert_exactly_once(&sim.sent_messages(), &got);
}

/// `pipeline: inline` with a record ring smaller than what one frame yields (a `gap` per stream of
/// a 48-stream connection when it comes back): the reader thread drains its own ring instead of
/// waiting for it forever; every message arrives and SIGTERM exits 0.
#[test]
fn inline_pipeline_never_waits_on_its_own_full_ring() {
    let total = 6_000;
    let sim = Simulator::start(SimConfig {
        rate: 3_000,
        total: Some(total),
        record: true,
        faults: vec![(0, 1_000, Fault::Close)],
        seed: 62,
        ..SimConfig::default()
    })
    .unwrap();
    let symbols: Vec<String> = (0..24).map(|i| format!("\"SYM{i}USDT\"")).collect();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    symbols: [{}]
    channels: ["trade", "bookTicker"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
runtime:
  pipeline: inline
  ring_capacity: 16
  reconnect: {{ initial: "50ms", max: "200ms" }}
"#,
        sim.ws_url(),
        symbols.join(", ")
    );
    let dir = temp_dir("inline-small-ring");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || sim.sent() >= total),
        "log:\n{}",
        mdc.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(20), || read_jsonl(&data)
            .iter()
            .filter(|v| v["type"] != "gap")
            .count()
            >= total as usize),
        "log:\n{}",
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let gaps = read_types(&data, &["gap"]).len();
    assert!(
        gaps >= 48,
        "a gap per stream after the reconnect: {gaps}; log:\n{}",
        mdc.log_text()
    );
    assert_exactly_once(&sim.sent_messages(), &read_jsonl(&data));
}
