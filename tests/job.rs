//! `mdc job` (seed D's Kubernetes Job) against the simulator and a real broker (tansu): the
//! exchange's payloads on `KAFKA_TOPIC` byte for byte; `started`, then `loading` events with a
//! growing `records_written`; a stop command for another queue id and a malformed one ignored;
//! its own stop -> `finished` with the final count equal to the records on the topic, exit 0
//! within 5 s; SIGTERM -> `interrupted`; each missing variable -> exit 2 naming it.

mod common;

use common::kafka::{Broker, consume_all, consume_with_headers, produce_one};
use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::time::{Duration, Instant};

fn job_env(broker: &Broker, sim: &Simulator, queue_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("QUEUE_ID", queue_id.into()),
        ("SYMBOL", "btcusdt".into()),
        ("TYPE", "ws_trade".into()),
        ("KAFKA_TOPIC", format!("md.job.{queue_id}")),
        ("TELEMETRY_PRODUCER_ID", "loader-test".into()),
        ("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap()),
        ("QUEUE_CONTROL_TOPIC", "queue-control".into()),
        ("QUEUE_EVENTS_TOPIC", "queue-events".into()),
        ("BINANCE_WS_URL", sim.ws_url()),
        ("LOADING_INTERVAL_S", "1".into()),
    ]
}

/// The events of `queue_id` so far, in order.
fn events(broker: &Broker, queue_id: &str) -> Vec<Value> {
    // Loading events keep coming: read for a while, not until the topic goes quiet.
    consume_with_headers(
        &broker.bootstrap(),
        "queue-events",
        1,
        usize::MAX,
        Duration::from_millis(1500),
        Some(Duration::from_secs(3)),
    )
    .into_iter()
    .map(|c| serde_json::from_slice::<Value>(&c.payload).unwrap())
    .filter(|v| v["queue_id"] == queue_id)
    .collect()
}

fn setup() -> (Broker, Simulator) {
    let broker = Broker::start();
    for t in ["queue-control", "queue-events", "md.job.q-7", "md.job.q-8"] {
        broker.create_topic(t, 1);
    }
    let sim = Simulator::start(SimConfig {
        rate: 300,
        record: true,
        seed: 31,
        ..SimConfig::default()
    })
    .unwrap();
    (broker, sim)
}

#[test]
fn a_job_streams_raw_reports_its_life_and_stops_on_its_own_command() {
    let (broker, sim) = setup();
    let dir = temp_dir("job");
    let mut job = Collector::start_job(&dir, &job_env(&broker, &sim, "q-7"));
    // started, then loading events with a growing count.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let ev = events(&broker, "q-7");
            let loading: Vec<u64> = ev
                .iter()
                .filter(|e| e["status"] == "loading")
                .map(|e| e["records_written"].as_u64().unwrap())
                .collect();
            loading.len() >= 2 && loading.last() > loading.first()
        }),
        "{}",
        job.log_text()
    );
    let ev = events(&broker, "q-7");
    assert_eq!(ev[0]["status"], "started");
    for k in [
        "symbol",
        "type",
        "message",
        "finished",
        "producer",
        "timestamp",
    ] {
        assert!(ev[0].get(k).is_some(), "{k} in {}", ev[0]);
    }
    assert_eq!(ev[0]["type"], "ws_trade");
    assert_eq!(ev[0]["producer"], "loader-test");
    // Someone else's stop and a malformed command change nothing.
    produce_one(
        &broker.bootstrap(),
        "queue-control",
        br#"{"command":"stop","queue_id":"q-other"}"#,
    );
    produce_one(&broker.bootstrap(), "queue-control", b"not json");
    std::thread::sleep(Duration::from_secs(2));
    assert!(job.alive(), "ignored; log:\n{}", job.log_text());
    // Its own stop: drained, flushed, `finished`, exit 0 within 5 s.
    let t0 = Instant::now();
    produce_one(
        &broker.bootstrap(),
        "queue-control",
        br#"{"command":"stop","queue_id":"q-7"}"#,
    );
    let status = loop {
        if let Some(st) = job.try_wait() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "stop took over 5 s; log:\n{}",
            job.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{}", job.log_text());
    let ev = events(&broker, "q-7");
    let last = ev.last().unwrap();
    assert_eq!(last["status"], "finished", "{ev:?}");
    assert_eq!(last["finished"], true);
    let data = consume_all(
        &broker.bootstrap(),
        "md.job.q-7",
        1,
        usize::MAX,
        Duration::from_secs(3),
    );
    assert_eq!(
        last["records_written"].as_u64().unwrap(),
        data.len() as u64,
        "final count = records on the topic"
    );
    // Byte for byte: each record is the `data` of a frame the simulator sent, in order, from
    // the first trade the job received on.
    let sent: Vec<String> = sim
        .sent_messages()
        .iter()
        .filter(|m| m.starts_with("{\"stream\":\"btcusdt@trade\""))
        .map(|m| m[m.find(",\"data\":").unwrap() + 8..m.len() - 1].to_string())
        .collect();
    assert!(data.len() > 100, "{} records", data.len());
    let first = sent
        .iter()
        .position(|s| s.as_bytes() == data[0].1.as_slice())
        .expect("first record is a sent payload");
    for (i, (key, payload)) in data.iter().enumerate() {
        assert_eq!(key.as_deref(), Some(&b"BTCUSDT"[..]));
        assert_eq!(payload.as_slice(), sent[first + i].as_bytes(), "record {i}");
    }
}

/// Also `TYPE ws_depth`: the partial book (`depth20@100ms`), byte for byte.
#[test]
fn sigterm_is_interrupted_and_missing_variables_exit_2() {
    let (broker, sim) = setup();
    let dir = temp_dir("job-term");
    let mut env = job_env(&broker, &sim, "q-8");
    for (k, v) in env.iter_mut() {
        if *k == "TYPE" {
            *v = "ws_depth".into();
        }
    }
    let mut job = Collector::start_job(&dir, &env);
    assert!(
        wait_until(Duration::from_secs(30), || events(&broker, "q-8")
            .iter()
            .any(|e| e["status"] == "loading")),
        "{}",
        job.log_text()
    );
    let (status, took) = job.terminate(Duration::from_secs(10));
    assert!(status.success(), "{}", job.log_text());
    assert!(took < Duration::from_secs(5));
    let ev = events(&broker, "q-8");
    assert_eq!(ev.last().unwrap()["status"], "interrupted", "{ev:?}");
    assert_eq!(ev[0]["type"], "ws_depth");
    let data = consume_all(
        &broker.bootstrap(),
        "md.job.q-8",
        1,
        usize::MAX,
        Duration::from_secs(3),
    );
    let sent: Vec<String> = sim
        .sent_messages()
        .iter()
        .filter(|m| m.starts_with("{\"stream\":\"btcusdt@depth20@100ms\""))
        .map(|m| m[m.find(",\"data\":").unwrap() + 8..m.len() - 1].to_string())
        .collect();
    assert!(data.len() > 10, "{} records", data.len());
    assert_eq!(
        ev.last().unwrap()["records_written"].as_u64(),
        Some(data.len() as u64)
    );
    let first = sent
        .iter()
        .position(|s| s.as_bytes() == data[0].1.as_slice())
        .expect("first record is a sent partial book");
    for (i, (key, payload)) in data.iter().enumerate() {
        assert_eq!(key.as_deref(), Some(&b"BTCUSDT"[..]));
        assert_eq!(payload.as_slice(), sent[first + i].as_bytes(), "record {i}");
    }
    // Each missing variable: exit 2, one line naming it.
    let full = job_env(&broker, &sim, "q-9");
    for (name, _) in &full {
        if ["BINANCE_WS_URL", "LOADING_INTERVAL_S"].contains(name) {
            continue; // optional
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
            .arg("job")
            .env_clear()
            .envs(full.iter().filter(|(k, _)| k != name).map(|(k, v)| (*k, v)))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(name) && err.lines().count() == 1,
            "{name}: {err}"
        );
    }
}
