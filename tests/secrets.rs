//! Secrets never leave the process in clear: a password, token or credential put in each place
//! the configuration takes one (Kafka SASL and librdkafka `properties`, NATS, the PostgreSQL DSN,
//! an exchange URL with user info) never appears in `check-config`'s output, in the log, in
//! `/status`, `/connections`, `/health`, `/metrics`, or in error messages; an environment override
//! of a secret is taken as its raw text; `check-config` contacts no broker; insecure settings
//! produce the warning.

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use std::time::Duration;

const SECRETS: [&str; 6] = [
    "KafkaSasl-9f1e",
    "KafkaKeyPw-77aa",
    "NatsPw-4c2d",
    "PgPw-31b8",
    "WsPw-e5f0",
    "123456",
];

fn config(ws_url: &str, kafka_port: u16, http: &str) -> String {
    format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws_url}"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT"]
    channels: ["trade"]
sinks:
  file: {{ path: "./data" }}
  kafka:
    enabled: true
    brokers: "127.0.0.1:{kafka_port}"
    security_protocol: sasl_plaintext
    sasl_mechanism: PLAIN
    sasl_username: md
    sasl_password: "KafkaSasl-9f1e"
    properties: {{ ssl.key.password: "KafkaKeyPw-77aa" }}
  nats: {{ enabled: true, url: "nats://127.0.0.1:1", user: md, password: "NatsPw-4c2d" }}
  postgres: {{ enabled: true, dsn: "postgresql://md:PgPw-31b8@127.0.0.1:1/market?sslmode=disable" }}
http:
  listen: "{http}"
book:
  enabled: false
"#
    )
}

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

#[test]
fn check_config_shows_no_secret_contacts_no_broker_and_warns() {
    let dir = temp_dir("secrets-check");
    // A "broker" that records whether anyone connects.
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    broker.set_nonblocking(true).unwrap();
    let port = broker.local_addr().unwrap().port();
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, config("ws://md:WsPw-e5f0@127.0.0.1:1", port, "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        // A secret that YAML would read as a number: taken as its text, never quoted back.
        .env("MDC_SINKS__NATS__PASSWORD", "123456")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_clean("check-config", &stdout);
    assert_clean("check-config's stderr", &stderr);
    assert!(stdout.contains("sasl_password: '***'"), "{stdout}");
    assert!(stdout.contains("md:***@127.0.0.1:1/market"), "{stdout}");
    assert!(stdout.contains("ws://***@127.0.0.1:1"), "{stdout}");
    for key in [
        "exchanges.binance_spot.ws_url",
        "exchanges.binance_spot.rest_url",
        "sinks.kafka.security_protocol",
        "sinks.nats.tls_required",
        "sinks.postgres.dsn",
    ] {
        assert!(
            stderr.contains(&format!("warning: {key}: ")),
            "{key}: {stderr}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        broker.accept().is_err(),
        "check-config connected to the broker"
    );

    // A wrong-typed secret from the environment is its text; an invalid one is an error that
    // names the key, not the value.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mdc"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .env("MDC_SINKS__KAFKA__SASL_PASSWORD", "[KafkaSasl-9f1e]")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "raw text, not a YAML list: {all}");
    assert_clean("check-config", &all);
}

#[test]
fn a_running_collector_shows_no_secret_anywhere() {
    let sim = Simulator::start(SimConfig {
        rate: 200,
        seed: 71,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("secrets-run");
    let http = free_port();
    let ws = sim.ws_url().replace("ws://", "ws://md:WsPw-e5f0@");
    let mut mdc = Collector::start(
        &dir,
        &config(&ws, 1, &format!("127.0.0.1:{http}")),
        &[("MDC_SINKS__NATS__PASSWORD", "123456".into())],
    );
    let data = dir.join("data");
    await_lines(&mdc, &data, 50, Duration::from_secs(30));
    // Let every sink fail at least once (connection refused) and log it.
    std::thread::sleep(Duration::from_secs(3));
    for path in ["/status", "/connections", "/health", "/metrics", "/readyz"] {
        let (code, body) = http_request(http, "GET", path);
        assert!(code > 0, "{path}");
        assert_clean(path, &body);
    }
    let (_, conns) = http_request(http, "GET", "/connections");
    assert!(conns.contains("ws://***@127.0.0.1"), "{conns}");
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    let log = mdc.log_text();
    assert!(status.code().is_some(), "{log}");
    assert_clean("the log", &log);
    assert!(log.contains("event=insecure_setting"), "{log}");
    // The sinks did fail and say so (with what they connect to, never the credentials).
    assert!(
        log.contains("event=postgres_unreachable dsn=postgresql://md:***@127.0.0.1:1/market"),
        "{log}"
    );
    assert!(log.contains("event=kafka_unreachable"), "{log}");
    assert!(log.contains("event=nats_not_ready"), "{log}");
}
