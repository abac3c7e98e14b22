//! OpenTelemetry spans over OTLP/HTTP: the real `mdc` binary exports `connect`, `subscribe`,
//! `rollover`, `book_resync` and `publish_batch` spans to a loopback OTLP receiver (a tiny HTTP
//! server standing in for the OpenTelemetry Collector), batched, never per message.
#![cfg(feature = "otlp")]

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn spans_reach_an_otlp_receiver() {
    let sim = Simulator::start(SimConfig {
        rate: 1_000,
        rest_listen: Some("127.0.0.1:0".into()),
        seed: 51,
        ..SimConfig::default()
    })
    .unwrap();
    let receiver = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let otlp_port = receiver.server_addr().to_ip().unwrap().port();
    let bodies: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let store = bodies.clone();
    std::thread::spawn(move || {
        while let Ok(mut req) = receiver.recv() {
            let mut body = String::new();
            let _ = req.as_reader().read_to_string(&mut body);
            store.lock().unwrap().push((req.url().to_string(), body));
            let _ = req.respond(tiny_http::Response::from_string("{}"));
        }
    });
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "depth@100ms"]
    max_connection_age: "3s"
sinks:
  file: {{ path: "./data" }}
http:
  listen: ""
tracing:
  otlp_endpoint: "http://127.0.0.1:{otlp_port}"
  service_name: "mdc-test"
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let dir = temp_dir("otlp");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let names = || -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for (_, body) in bodies.lock().unwrap().iter() {
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        *n.entry(s["name"].as_str().unwrap_or("").to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        n
    };
    let want = [
        "connect",
        "subscribe",
        "rollover",
        "book_resync",
        "publish_batch",
    ];
    assert!(
        wait_until(Duration::from_secs(30), || {
            let n = names();
            want.iter().all(|w| n.contains_key(*w))
        }),
        "spans seen: {:?}; log:\n{}",
        names(),
        mdc.log_text()
    );
    let (status, _) = mdc.terminate(Duration::from_secs(10));
    assert!(status.success());
    let got = bodies.lock().unwrap().clone();
    assert!(got.iter().all(|(url, _)| url == "/v1/traces"));
    let first: Value = serde_json::from_str(&got[0].1).unwrap();
    let res = &first["resourceSpans"][0]["resource"]["attributes"][0];
    assert_eq!(res["key"], "service.name");
    assert_eq!(res["value"]["stringValue"], "mdc-test");
    let span = &first["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
    assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
    let (start, end): (u64, u64) = (
        span["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
        span["endTimeUnixNano"].as_str().unwrap().parse().unwrap(),
    );
    assert!(start <= end && start > 1_600_000_000_000_000_000);
    // Batched and bounded: publish_batch at most ~10 per second, never one per message.
    let n = names();
    assert!(n["publish_batch"] < 200, "{n:?}");
}
