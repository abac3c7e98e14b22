//! NATS end to end: the simulator -> the real `mdc` binary -> a real `nats-server` (JetStream,
//! file storage in a temporary directory, 127.0.0.1 and a free port, stopped at the end). The
//! stream is read back message by message with `async-nats`: every event of the file sink is
//! there once, on seed C's subject, with the same fields, and a `Nats-Msg-Id`.

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A nats-server with JetStream on 127.0.0.1; killed when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl NatsServer {
    fn start() -> NatsServer {
        NatsServer::start_at(free_port(), temp_dir("nats-store"))
    }

    /// A server on `port` with its JetStream store in `dir` (a restart keeps both).
    fn start_at(port: u16, dir: std::path::PathBuf) -> NatsServer {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (installed by scripts/test.sh)"));
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "nats-server did not listen"
        );
        NatsServer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash: nothing flushed, nothing said to clients.
    fn kill(mut self) -> (u16, std::path::PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, std::mem::take(&mut self._dir))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message of the stream: (subject, Nats-Msg-Id, JSON payload), in stream order.
fn read_stream(url: &str, stream: &str) -> Vec<(String, String, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.unwrap();
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((
                m.subject.to_string(),
                id,
                serde_json::from_slice(&m.payload).unwrap(),
            ));
        }
        out
    })
}

#[test]
fn every_event_once_on_its_subject_with_the_file_sinks_fields() {
    let nats = NatsServer::start();
    let total = 6_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 4_000,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("nats-e2e");
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data" }}
  nats: {{ enabled: true, url: "{}", stream_limits: {{ storage: file, max_age: 1h }} }}
http:
  listen: ""
book:
  enabled: false
"#,
        sim.ws_url(),
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(60), || count_lines(&data) as u64
            >= total),
        "{} of {total}; log:\n{}",
        count_lines(&data),
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(15));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    assert!(log.contains("event=nats_ready"), "{log}");

    let files = read_jsonl(&data);
    let got = read_stream(&nats.url(), "MARKET_DATA");
    assert_eq!(got.len(), files.len(), "every event once");
    // Per type and symbol, the stream holds the file sink's events in the same order (the file
    // sink writes one file per type, so only that order is comparable).
    let key = |v: &Value| (v["type"].to_string(), v["symbol"].to_string());
    let mut by_key_files: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for f in &files {
        by_key_files.entry(key(f)).or_default().push(f);
    }
    let mut by_key_nats: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for (_, _, v) in &got {
        by_key_nats.entry(key(v)).or_default().push(v);
    }
    assert_eq!(by_key_nats, by_key_files);
    let mut ids = std::collections::HashSet::new();
    let mut per_subject: HashMap<String, usize> = HashMap::new();
    for (subject, id, v) in &got {
        let want = match v["type"].as_str().unwrap() {
            "trade" | "agg_trade" => "trade-data",
            "depth_diff" | "book_snapshot" | "book_ticker" => "orderbook-data",
            other => panic!("unexpected type {other}"),
        };
        assert_eq!(
            subject,
            &format!("{want}.binance.spot.{}", v["symbol"].as_str().unwrap())
        );
        assert!(ids.insert(id.clone()), "duplicate Nats-Msg-Id {id}");
        *per_subject.entry(subject.clone()).or_default() += 1;
    }
    assert_eq!(per_subject.len(), 4, "{per_subject:?}");
}

/// A stream that exists and does not capture the subjects stops the start with one line naming
/// the key.
#[test]
fn an_existing_stream_that_misses_the_subjects_is_a_config_error() {
    let nats = NatsServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "MARKET_DATA".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let dir = temp_dir("nats-bad-stream");
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "ws://127.0.0.1:1/ws"
    symbols: ["BTCUSDT"]
sinks:
  nats: {{ enabled: true, url: "{}" }}
http:
  listen: ""
"#,
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(wait_until(Duration::from_secs(15), || !mdc.alive()));
    let status = mdc.try_wait().expect("exited");
    assert_eq!(status.code(), Some(2), "a config error exits 2");
    let log = mdc.log_text();
    assert!(log.contains("config error: sinks.nats.stream"), "{log}");
}

/// Bad `sinks.nats` settings: `mdc check-config` prints one line naming the key and exits 2.
#[test]
fn bad_nats_config_names_the_key_and_exits_2() {
    for (section, key) in [
        ("{ enabled: true, bogus: 1 }", "sinks.nats.bogus"),
        (
            "{ enabled: true, subjects: { trade: \"md.*.{symbol}\" } }",
            "sinks.nats.subjects.trade",
        ),
        (
            "{ enabled: true, backpressure: maybe }",
            "sinks.nats.backpressure",
        ),
    ] {
        let dir = temp_dir("nats-bad-config");
        let cfg = dir.join("config.yaml");
        std::fs::write(
            &cfg,
            format!(
                "exchanges:\n  binance_spot:\n    symbols: [BTCUSDT]\nsinks:\n  nats: {section}\n"
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mdc"))
            .arg("--config")
            .arg(&cfg)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{section}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{section}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// nats-server killed (SIGKILL) mid-run and restarted 3 s later on the same port and storage:
/// nothing lost, nothing duplicated in the stream (retries carry the same `Nats-Msg-Id`), and
/// `/readyz` answers 503 while the server is down.
#[test]
fn a_killed_and_restarted_server_loses_and_duplicates_nothing() {
    let nats = NatsServer::start();
    let total = 12_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 1_500,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("nats-kill");
    let http = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data" }}
  nats: {{ enabled: true, url: "{}" }}
http:
  listen: "127.0.0.1:{http}"
book:
  enabled: false
"#,
        sim.ws_url(),
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(30), || count_lines(&data) >= 2_000),
        "{}",
        mdc.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || http_get(
        http, "/readyz"
    )
    .0 == 200));
    let (port, store) = nats.kill();
    assert!(
        wait_until(Duration::from_secs(10), || http_get(http, "/readyz").0
            == 503),
        "/readyz while NATS is down: {:?}",
        http_get(http, "/readyz")
    );
    std::thread::sleep(Duration::from_secs(3));
    let nats = NatsServer::start_at(port, store);
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    assert!(wait_until(Duration::from_secs(30), || http_get(
        http, "/readyz"
    )
    .0 == 200));
    // The outage was real for the sink: publishes failed and were sent again.
    let metrics = http_get(http, "/metrics").1;
    let retried = metric_in(&metrics, "nats_retried_total").unwrap_or(0.0);
    assert!(retried > 0.0, "{metrics}");
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let files = read_jsonl(&data);
    let got = read_stream(&nats.url(), "MARKET_DATA");
    let mut ids = std::collections::HashSet::new();
    for (_, id, _) in &got {
        assert!(ids.insert(id.clone()), "duplicate {id}");
    }
    let canon = |v: &Value| v.to_string();
    let mut want: Vec<String> = files.iter().map(canon).collect();
    let mut have: Vec<String> = got.iter().map(|(_, _, v)| canon(v)).collect();
    want.sort();
    have.sort();
    assert_eq!(have.len(), want.len(), "log:\n{}", mdc.log_text());
    assert!(
        have == want,
        "the stream holds exactly the file sink's events"
    );
}

/// nats-server killed (SIGKILL) and a new one started on the same port with an empty store (the
/// server came back without its state: a new node, a lost volume): the sink notices the stream is
/// gone (publishes answered "no responders"), creates it again and goes on; nothing is lost
/// between the old store and the new one, and neither store holds a message twice.
#[test]
fn a_server_back_without_its_state_gets_the_stream_again() {
    let nats = NatsServer::start();
    let total = 9_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 1_500,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("nats-stateless");
    let http = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data" }}
  nats: {{ enabled: true, url: "{}" }}
http:
  listen: "127.0.0.1:{http}"
book:
  enabled: false
"#,
        sim.ws_url(),
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(
        wait_until(Duration::from_secs(30), || count_lines(&data) >= 2_000),
        "{}",
        mdc.log_text()
    );
    let (port, old_store) = nats.kill();
    std::thread::sleep(Duration::from_secs(2));
    let nats = NatsServer::start_at(port, temp_dir("nats-store-new"));
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    await_readyz(&mdc, http, 200, Duration::from_secs(30));
    let metrics = http_get(http, "/metrics").1;
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    assert!(log.contains("event=nats_stream_missing"), "{log}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("nats_dropped_total") && l.ends_with(" 0")),
        "{metrics}"
    );
    let new = read_stream(&nats.url(), "MARKET_DATA");
    drop(nats);
    let old_server = NatsServer::start_at(free_port(), old_store);
    let old = read_stream(&old_server.url(), "MARKET_DATA");
    assert!(
        !new.is_empty() && !old.is_empty(),
        "{} old, {} new",
        old.len(),
        new.len()
    );
    let mut have = std::collections::HashSet::new();
    for store in [&old, &new] {
        let mut ids = std::collections::HashSet::new();
        for (_, id, v) in store.iter() {
            assert!(ids.insert(id.clone()), "duplicate {id} in one store");
            have.insert(v.to_string());
        }
    }
    let files = read_jsonl(&data);
    let missing: Vec<String> = files
        .iter()
        .map(|v| v.to_string())
        .filter(|v| !have.contains(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} events in neither store, e.g. {:?}",
        missing.len(),
        files.len(),
        missing.first()
    );
}

/// Sink isolation with `backpressure: drop_newest`: NATS down for 5 s while the file sink is
/// enabled too; the file sink keeps every event and keeps writing through the outage (the
/// publisher never waits for NATS), NATS alone loses records, counts them and announces the loss
/// as `gap` events (reason `sink_dropped`) on its gap subjects once it is back; nothing it did
/// deliver is duplicated.
#[test]
fn drop_newest_isolates_the_other_sinks_from_a_dead_server() {
    let nats = NatsServer::start();
    let total = 15_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 1_500,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("nats-isolation");
    let http = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data", flush_interval: "100ms" }}
  nats: {{ enabled: true, url: "{}", backpressure: drop_newest, queue_capacity: 256, publish_timeout: "2s" }}
http:
  listen: "127.0.0.1:{http}"
book:
  enabled: false
"#,
        sim.ws_url(),
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || count_lines(&data) >= 2_000));
    let (port, store) = nats.kill();
    // The file sink keeps going while NATS is down.
    let mut counts = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        counts.push(count_lines(&data));
    }
    for w in counts.windows(2) {
        assert!(
            w[1] > w[0],
            "the file sink stalled during the outage: {counts:?}"
        );
    }
    let nats = NatsServer::start_at(port, store);
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let metrics = http_get(http, "/metrics").1;
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let dropped: u64 = metrics
        .lines()
        .find(|l| l.starts_with("nats_dropped_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{metrics}");
    let files = read_jsonl(&data);
    assert_eq!(files.len() as u64, total, "the file sink lost nothing");
    let got = read_stream(&nats.url(), "MARKET_DATA");
    let mut ids = std::collections::HashSet::new();
    for (_, id, _) in &got {
        assert!(ids.insert(id.clone()), "duplicate {id}");
    }
    let gaps: Vec<&(String, String, Value)> = got
        .iter()
        .filter(|(s, _, _)| s.starts_with("gap-data."))
        .collect();
    assert!(
        gaps.iter().any(|(_, _, v)| v["reason"] == "sink_dropped"),
        "the queue's losses are announced in NATS"
    );
    assert!(
        gaps.iter().any(|(_, _, v)| v["reason"] == "sink_failed"),
        "what was not acknowledged within publish_timeout is announced too"
    );
    let data_events = got.len() - gaps.len();
    assert!(
        data_events as u64 + dropped >= total,
        "{data_events} + {dropped} of {total}"
    );
    assert!((data_events as u64) < total);
    assert!(
        mdc.log_text()
            .contains("event=sink_gap sink=nats reason=sink_dropped")
    );
}

/// A float metric line of /metrics (`name` with its labels), -1 when absent.
/// `backpressure: spool`: NATS down for 30 s beside the file sink; the overflow goes to the spool
/// and is replayed once NATS is back: the stream ends with every event exactly once, no loss
/// announced, and the spool empty again.
#[test]
fn spool_keeps_the_overflow_and_replays_it() {
    let nats = NatsServer::start();
    let total = 66_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 2_000,
        total: Some(total),
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("nats-spool");
    let http = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "bookTicker"]
sinks:
  file: {{ enabled: true, path: "./data", flush_interval: "100ms" }}
  nats: {{ enabled: true, url: "{}", backpressure: spool, queue_capacity: 256, spool: {{ path: "./spool", max_bytes: 100000000 }} }}
http:
  listen: "127.0.0.1:{http}"
book:
  enabled: false
"#,
        sim.ws_url(),
        nats.url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let data = dir.join("data");
    assert!(wait_until(Duration::from_secs(30), || count_lines(&data) >= 2_000));
    let (port, store) = nats.kill();
    let gauge = |name: &str| metric_value(http, name) as i64;
    assert!(
        wait_until(Duration::from_secs(10), || gauge("nats_spool_bytes") > 0),
        "the overflow is spooled"
    );
    // NATS stays down for 30 s; the file sink keeps writing all along.
    let mut counts = Vec::new();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(2));
        counts.push(count_lines(&data));
    }
    for w in counts.windows(2) {
        assert!(
            w[1] > w[0],
            "the file sink stalled during the outage: {counts:?}"
        );
    }
    let nats = NatsServer::start_at(port, store);
    await_lines(&mdc, &data, total, Duration::from_secs(60));
    assert!(
        wait_until(Duration::from_secs(60), || gauge("nats_spool_bytes") == 0),
        "the spool drains"
    );
    std::thread::sleep(Duration::from_secs(2));
    // No record waited long for any sink: the outage never reached the publisher. (Measured
    // 54 ms at most over a whole run, start included, on the 2-vCPU VM while another test suite
    // ran; the bound leaves room for a loaded CI machine, a stall on NATS would be seconds.)
    let worst = metric_value(
        http,
        "pipeline_stage_latency_seconds_max{stage=\"receive_to_sink\"}",
    );
    eprintln!("receive_to_sink max over the run: {worst} s");
    assert!((0.0..0.25).contains(&worst), "a stall of {worst} s");
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let files = read_jsonl(&data);
    let got = read_stream(&nats.url(), "MARKET_DATA");
    let mut ids = std::collections::HashSet::new();
    for (_, id, _) in &got {
        assert!(ids.insert(id.clone()), "duplicate {id}");
    }
    assert!(
        !got.iter().any(|(s, _, _)| s.starts_with("gap-data.")),
        "nothing was lost"
    );
    let mut want: Vec<String> = files.iter().map(|v| v.to_string()).collect();
    let mut have: Vec<String> = got.iter().map(|(_, _, v)| v.to_string()).collect();
    want.sort();
    have.sort();
    assert_eq!(have.len(), want.len());
    assert!(
        have == want,
        "the stream holds exactly the file sink's events"
    );
}
