//! Operations, end to end with the real `mdc` binary and the simulator over loopback: every
//! metric present and moving, stage latency counts equal to message counts, `/health` naming a
//! stale stream, `/status` and `/connections`, SIGTERM at a high rate losing nothing received,
//! a second signal, and three shards covering every symbol exactly once.

mod common;

use common::*;
use mdc::simulator::{Fault, SimConfig, Simulator};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Sum of every sample of `name` whose labels contain all of `labels` (`name{...} value` lines).
fn sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = false;
    let mut total = 0.0;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if !labels.iter().all(|x| rest.contains(x)) {
            continue;
        }
        if let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            total += v;
            found = true;
        }
    }
    found.then_some(total)
}

fn config(ws: &str, rest: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws}"
    rest_url: "{rest}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: "127.0.0.1:{port}"
runtime:
  reconnect: {{ initial: "50ms", max: "500ms" }}
{extra}
"#
    )
}

/// Every metric the seeds and the issue name is exported and moves during a loopback run (with a
/// malformed frame, a cut connection and book re-syncs on the way); the stage latency histograms
/// count exactly one sample per message.
#[test]
fn every_metric_is_present_and_moves_and_latency_counts_match() {
    let total = 12_000u64;
    let sim = Simulator::start(SimConfig {
        rate: 3_000,
        total: Some(total),
        faults: vec![(0, 2_000, Fault::Malformed), (0, 4_000, Fault::CutMidFrame)],
        depth_gaps: vec![("BTCUSDT".into(), 300)],
        rest_listen: Some("127.0.0.1:0".into()),
        seed: 41,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let dir = temp_dir("ops-metrics");
    let mut mdc = Collector::start(
        &dir,
        &config(&sim.ws_url(), &sim.rest_url().unwrap(), port, ""),
        &[],
    );
    assert!(wait_until(Duration::from_secs(30), || sim.sent() >= 1_500));
    let first = http_get(port, "/metrics").1;
    assert!(
        wait_until(Duration::from_secs(60), || sim.sent() >= total),
        "log:\n{}",
        mdc.log_text()
    );
    // Everything is published (10 ms) and merged (100 ms) well within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let last = http_get(port, "/metrics").1;

    for name in [
        "processor_events_total",
        "processor_parse_errors_total",
        "processor_serialize_errors_total",
        "processor_publish_errors_total",
        "messages_processed_total",
        "sink_records_total",
        "websocket_connections",
        "websocket_disconnects_total",
        "process_resident_memory_bytes",
        "frames_received_total",
        "bytes_received_total",
        "ring_occupancy",
        "ring_capacity_slots",
        "ring_full_waits_total",
        "gap_events_total",
        "book_gaps_total",
        "book_resyncs_total",
        "rest_weight_used",
        "rest_requests_total",
        "pipeline_stage_latency_seconds_bucket",
        "pipeline_stage_latency_seconds_count",
        "pipeline_stage_latency_seconds_sum",
        "pipeline_stage_latency_seconds_max",
        "processor_publish_latency_seconds_bucket",
        "processor_publish_latency_seconds_count",
        "frames_skipped_total",
    ] {
        assert!(sum(&last, name, &[]).is_some(), "{name} missing:\n{last}");
    }
    // Histograms (aggregatable across shards): cumulative buckets, +Inf = count, and p99 (the
    // first bucket holding 99 % of the samples) below a second.
    for (family, label) in [
        (
            "pipeline_stage_latency_seconds",
            "stage=\"receive_to_parsed\"",
        ),
        ("pipeline_stage_latency_seconds", "stage=\"parsed_to_sink\""),
        ("processor_publish_latency_seconds", "sink=\"file\""),
    ] {
        assert!(
            last.contains(&format!("# TYPE {family} histogram")),
            "{family} is a histogram"
        );
        let bucket = format!("{family}_bucket");
        let count = sum(&last, &format!("{family}_count"), &[label]).unwrap();
        assert!(count > 0.0, "{family}{{{label}}} has samples");
        let inf = sum(&last, &bucket, &[label, "le=\"+Inf\""]).unwrap();
        assert_eq!(inf, count, "{family}{{{label}}}: +Inf bucket = count");
        let mut prev = 0.0;
        let mut p99 = None;
        for le in mdc::metrics::latency::BUCKETS {
            let le_label = format!("le=\"{le}\"");
            let n = sum(&last, &bucket, &[label, &le_label]).unwrap();
            assert!(n >= prev, "{family}{{{label}}} buckets are cumulative");
            prev = n;
            if p99.is_none() && n >= 0.99 * count {
                p99 = Some(le);
            }
        }
        assert!(
            p99.is_some_and(|le| le <= 1.0),
            "{family}{{{label}}} p99 {p99:?}"
        );
    }
    // Every metric the Grafana dashboard queries exists (Kafka's only with a Kafka sink).
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/mdc-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices('{') {
                let name: String = expr[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if name.is_empty() || name.starts_with("kafka_") {
                    continue;
                }
                assert!(
                    sum(&last, &name, &[]).is_some(),
                    "dashboard panel {} queries {name}, not exported",
                    panel["title"]
                );
            }
        }
    }
    // Moving counters.
    for name in [
        "processor_events_total",
        "messages_processed_total",
        "sink_records_total",
        "frames_received_total",
        "bytes_received_total",
        "pipeline_stage_latency_seconds_count",
    ] {
        let (a, b) = (
            sum(&first, name, &[]).unwrap_or(0.0),
            sum(&last, name, &[]).unwrap(),
        );
        assert!(b > a, "{name} moved: {a} -> {b}");
    }
    assert!(sum(&last, "processor_parse_errors_total", &[]).unwrap() >= 1.0);
    assert!(sum(&last, "websocket_disconnects_total", &[]).unwrap() >= 1.0);
    assert!(sum(&last, "gap_events_total", &["reason=\"disconnect\""]).unwrap() >= 1.0);
    assert!(sum(&last, "book_resyncs_total", &["symbol=\"BTCUSDT\""]).unwrap() >= 1.0);
    assert!(sum(&last, "rest_requests_total", &[]).unwrap() >= 1.0);
    assert_eq!(sum(&last, "websocket_connections", &[]).unwrap(), 1.0);

    // One latency sample per message: events parsed, and records handed to the (only) sink.
    let events = sum(&last, "processor_events_total", &[]).unwrap();
    let parsed = sum(
        &last,
        "pipeline_stage_latency_seconds_count",
        &["stage=\"receive_to_parsed\""],
    )
    .unwrap();
    assert_eq!(parsed, events);
    let handed = sum(&last, "sink_records_total", &["sink=\"file\""]).unwrap();
    let to_sink = sum(
        &last,
        "pipeline_stage_latency_seconds_count",
        &["stage=\"parsed_to_sink\""],
    )
    .unwrap();
    assert_eq!(to_sink, handed);
    // The file sink's publish latency: one sample per record it took.
    let published = sum(
        &last,
        "processor_publish_latency_seconds_count",
        &["sink=\"file\""],
    )
    .unwrap();
    assert_eq!(published, handed);
    assert!(events >= total as f64);

    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
}

/// `/health` is 200 while every stream is fresh and 503 naming the stream the simulator stopped;
/// `/status` and `/connections` describe the process and its connection.
#[test]
fn health_names_the_stale_stream_status_and_connections_describe_the_run() {
    let sim = Simulator::start(SimConfig {
        rate: 400,
        seed: 42,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let dir = temp_dir("ops-health");
    let extra = "book: { enabled: false }";
    let cfg = config(&sim.ws_url(), "http://127.0.0.1:1", port, extra).replace(
        "  listen: ",
        "  stale_after: { default: \"2s\", trade: \"2s\", aggTrade: \"2s\" }\n  listen: ",
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || http_get(port, "/health").0
            == 200),
        "healthy; {}\nlog:\n{}",
        http_get(port, "/health").1,
        mdc.log_text()
    );
    let (_, body) = http_get(port, "/health");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["streams"].as_array().unwrap().len(), 8);
    assert_eq!(h["sinks"][0]["name"], "file");

    sim.mute("ethusdt@trade");
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (code, body) = http_get(port, "/health");
            last = body;
            code == 503
        }),
        "unhealthy once ethusdt@trade is stale: {last}"
    );
    let h: Value = serde_json::from_str(&last).unwrap();
    let reasons: Vec<&str> = h["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("ethusdt@trade"), "{reasons:?}");
    let stale: Vec<&Value> = h["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["fresh"] == false)
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0]["stream"], "ethusdt@trade");
    // Liveness and readiness are about the process and its connections, not one stream.
    assert_eq!(http_get(port, "/healthz").0, 200);
    assert_eq!(http_get(port, "/readyz").0, 200);

    let (code, body) = http_get(port, "/connections");
    assert_eq!(code, 200);
    let c: Value = serde_json::from_str(&body).unwrap();
    let c = &c["connections"][0];
    assert_eq!(c["state"], "subscribed");
    assert!(c["url"].as_str().unwrap().starts_with(&sim.ws_url()));
    assert_eq!(c["stream_count"], 8);
    assert!(c["messages"].as_u64().unwrap() > 100);
    assert!(c["age_s"].as_f64().unwrap() > 0.5);

    let (code, body) = http_get(port, "/status");
    assert_eq!(code, 200);
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["connections"]["subscribed"], 1);
    assert_eq!(s["info"]["exchanges"][0]["name"], "binance_spot");
    assert!(s["events_total"].as_u64().unwrap() > 100);

    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
}

/// SIGTERM while the simulator streams as fast as it can: exit 0 within the deadline, and every
/// message the collector read before it stopped reading is in the sink, once, in order.
#[test]
fn sigterm_at_full_rate_keeps_everything_received() {
    let sim = Simulator::start(SimConfig {
        rate: 0,
        record: true,
        seed: 43,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let dir = temp_dir("ops-sigterm");
    let extra = "book: { enabled: false }\nlog: { level: info }";
    let mut mdc = Collector::start(
        &dir,
        &config(&sim.ws_url(), "http://127.0.0.1:1", port, extra),
        &[],
    );
    assert!(wait_until(Duration::from_secs(20), || sim.sent() >= 200_000));
    let (status, took) = mdc.terminate(Duration::from_secs(15));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    assert!(
        took < Duration::from_secs(10),
        "within the deadline: {took:?}"
    );
    let log = mdc.log_text();
    let read: u64 = log
        .lines()
        .filter(|l| l.contains("event=thread_stopped") && l.contains("text_frames="))
        .filter_map(|l| {
            l.split("text_frames=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(read > 100_000, "read {read}; log:\n{log}");
    let got = read_jsonl(&dir.join("data"));
    assert_eq!(got.len() as u64, read, "every message read is in the sink");
    assert_prefix_once(&sim.sent_messages(), &got);
}

/// A second SIGTERM while the first is draining exits at once with status 1. The drain is held
/// open by a Kafka sink whose broker never answers (records wait for `flush_timeout`).
#[test]
fn a_second_signal_exits_at_once_non_zero() {
    let sim = Simulator::start(SimConfig {
        rate: 1_000,
        seed: 45,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let dead = free_port();
    let dir = temp_dir("ops-second");
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    symbols: ["BTCUSDT"]
    channels: ["trade"]
sinks:
  kafka:
    enabled: true
    brokers: "127.0.0.1:{dead}"
    message_timeout: "60s"
    flush_timeout: "60s"
http:
  listen: "127.0.0.1:{port}"
book:
  enabled: false
runtime:
  shutdown_timeout: "60s"
"#,
        sim.ws_url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    assert!(wait_until(Duration::from_secs(20), || sim.sent() >= 1_000));
    let pid = mdc.pid() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(700));
    assert!(mdc.alive(), "still draining (waiting for the broker)");
    let t0 = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = mdc.try_wait() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "exited at once");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// Three instances started with shards 0/3, 1/3 and 2/3 on the same configuration together
/// collect every symbol exactly once, and `check-config` prints what each owns.
#[test]
fn three_shards_cover_every_symbol_exactly_once() {
    let symbols: Vec<String> = (0..12).map(|i| format!("S{i:02}USDT")).collect();
    let sim = Simulator::start(SimConfig {
        rate: 600,
        seed: 44,
        ..SimConfig::default()
    })
    .unwrap();
    let list: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    symbols: [{}]
    channels: ["trade"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
book:
  enabled: false
"#,
        sim.ws_url(),
        list.join(", ")
    );
    let mut owned: Vec<BTreeSet<String>> = Vec::new();
    let mut printed: Vec<BTreeSet<String>> = Vec::new();
    let mut runs = Vec::new();
    for i in 0..3 {
        let dir = temp_dir(&format!("shard{i}"));
        let shard = format!("{i}/3");
        let check = dir.join("check.yaml");
        std::fs::write(&check, &cfg).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
            .arg("--config")
            .arg(&check)
            .arg("check-config")
            .env("MDC_RUNTIME__SHARD", &shard)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.starts_with("#   binance_spot: ["))
            .map(str::to_string)
            .unwrap_or_default();
        printed.push(
            line.trim_start_matches("#   binance_spot: [")
                .trim_end_matches(']')
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        );
        runs.push((
            dir.clone(),
            Collector::start(&dir, &cfg, &[("MDC_RUNTIME__SHARD", shard)]),
        ));
    }
    std::thread::sleep(Duration::from_secs(4));
    for (dir, mut mdc) in runs {
        let (status, _) = mdc.terminate(Duration::from_secs(10));
        assert!(status.success(), "log:\n{}", mdc.log_text());
        let got: BTreeSet<String> = read_jsonl(&dir.join("data"))
            .iter()
            .map(|v| v["symbol"].as_str().unwrap().to_string())
            .collect();
        owned.push(got);
    }
    let mut all = BTreeSet::new();
    for (i, set) in owned.iter().enumerate() {
        assert!(!set.is_empty(), "shard {i} collected something");
        assert_eq!(
            set, &printed[i],
            "shard {i} collected what check-config printed"
        );
        for s in set {
            assert!(all.insert(s.clone()), "{s} collected by two shards");
        }
    }
    let want: BTreeSet<String> = symbols.into_iter().collect();
    assert_eq!(all, want, "every symbol collected");
}

/// `log.file` gets every log line (as stderr does), `log.error_file` only the errors (seed E's
/// `system.log` / `error.log`); a failed connection attempt is logged as an error there.
#[test]
fn log_files_as_seed_e_and_the_status_line() {
    let sim = Simulator::start(SimConfig {
        rate: 200,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("log-files");
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT"]
    channels: ["trade", "depth@100ms"]
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
log:
  file: system.log
  error_file: error.log
  status_interval: "1s"
"#,
        sim.ws_url()
    );
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let sys = dir.join("system.log");
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(&sys)
            .unwrap_or_default()
            .contains("event=started")),
        "{}",
        mdc.log_text()
    );
    // The periodic status line: events by type with rates, connections, the sink's counts.
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::read_to_string(&sys)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("event=status")
                && l.contains("types=\"trade ")
                && l.contains("connections=1/1")
                && l.contains("sinks=\"file handed="))),
        "{}",
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", mdc.log_text());
    let system = std::fs::read_to_string(&sys).unwrap();
    assert!(system.contains("event=config_loaded"), "{system}");
    assert!(mdc.log_text().contains("event=config_loaded"), "stderr too");
    // The REST snapshot host refuses connections: errors, and only errors, in error.log.
    let errors = std::fs::read_to_string(dir.join("error.log")).unwrap();
    assert!(
        errors.lines().all(|l| l.contains(" ERROR ")),
        "only errors: {errors}"
    );
}
