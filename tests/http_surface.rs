//! The operations endpoint cannot be held by a client: one that sends half a request and waits,
//! or asks for `/metrics` and never reads the answer, does not delay `/healthz` for anyone else
//! (each answer within 100 ms); oversized requests are refused.

mod common;

use common::*;
use mdc::simulator::{SimConfig, Simulator};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn healthz_ms(port: u16) -> u128 {
    let t0 = Instant::now();
    let (code, body) = http_request(port, "GET", "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    t0.elapsed().as_millis()
}

#[test]
fn stalled_clients_do_not_delay_healthz() {
    let sim = Simulator::start(SimConfig {
        rate: 200,
        seed: 81,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = temp_dir("http-surface");
    let port = free_port();
    let mut mdc = Collector::start(
        &dir,
        &format!(
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
  listen: "127.0.0.1:{port}"
book:
  enabled: false
"#,
            sim.ws_url()
        ),
        &[],
    );
    assert!(
        wait_until(Duration::from_secs(20), || http_request(
            port, "GET", "/healthz"
        )
        .0 == 200),
        "{}",
        mdc.log_text()
    );
    // Half a request, never finished (slowloris), several times over.
    let mut half: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // `/metrics` asked for, many times on one connection each, answers never read.
    let unread: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut worst = 0;
    for _ in 0..30 {
        worst = worst.max(healthz_ms(port));
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("/healthz worst {worst} ms beside 16 stalled clients");
    assert!(worst <= 100, "/healthz took {worst} ms");
    // The half requests are timed out by the server (408 or closed), not kept forever.
    let t0 = Instant::now();
    let mut s = half.pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "closed by the deadline"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // Oversized heads are refused.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let big = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let _ = s.write_all(big.as_bytes());
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    drop(unread);
    assert_eq!(
        http_request(port, "POST", "/admin/reload").0,
        404,
        "admin is off by default"
    );
    let (status, _) = mdc.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", mdc.log_text());
}
