//! Soak: the real `mdc` binary against the simulator for `SOAK_SECS` (default 600) under
//! abrupt drops, planned rollovers and depth sequence gaps (book re-syncs), sampling the process's
//! RSS, open file descriptors and threads from /proc. Memory must stay flat and nothing may leak.
//!
//! Not part of the CI run (it takes ten minutes):
//! `SOAK_OUT=perf/runs/<date>-<host> cargo test --release --test soak -- --ignored --nocapture`
//! writes `soak.csv` and `soak.md` there.

mod common;

use common::*;
use mdc::simulator::{Fault, SimConfig, Simulator};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// (rss KiB, open fds, threads) of `pid`.
fn sample(pid: u32) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:") as usize)
}

#[test]
#[ignore = "ten minutes; run by hand, results go to perf/"]
fn soak_under_drops_rollovers_and_gaps_keeps_memory_flat() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let rate = 2_000u64;
    // Every third connection is cut mid-frame after about 3 s of data; the others roll over
    // (planned) at 10 s.
    let faults: Vec<(usize, u64, Fault)> = (0..2_000)
        .filter(|i| i % 3 == 0)
        .map(|i| (i, 3 * rate, Fault::CutMidFrame))
        .collect();
    let sim = Simulator::start(SimConfig {
        rate,
        faults,
        lose_on_reconnect: 20,
        depth_gaps: vec![("BTCUSDT".into(), 400)],
        rest_listen: Some("127.0.0.1:0".into()),
        seed: 99,
        ..SimConfig::default()
    })
    .unwrap();
    let port = free_port();
    let cfg = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{}"
    rest_url: "{}"
    symbols: ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
    max_connection_age: "10s"
sinks:
  file: {{ path: "./data", rotate_bytes: 16777216 }}
http:
  listen: "127.0.0.1:{port}"
runtime:
  reconnect: {{ initial: "50ms", max: "500ms", reset_after: "1s" }}
"#,
        sim.ws_url(),
        sim.rest_url().unwrap()
    );
    let dir = temp_dir("soak");
    let mut mdc = Collector::start(&dir, &cfg, &[]);
    let pid = mdc.pid();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(5));
        assert!(mdc.alive(), "still running; log:\n{}", mdc.log_text());
        let (rss, fds, threads) = sample(pid);
        rows.push((t0.elapsed().as_secs(), rss, fds, threads, sim.connections()));
    }
    let (_, metrics) = http_get(port, "/metrics");
    let (status, _) = mdc.terminate(Duration::from_secs(15));
    assert!(status.success(), "log:\n{}", mdc.log_text());
    let log = mdc.log_text();
    let drops = log.matches("event=disconnected").count();
    let rollovers = log.matches("event=rollover_done").count();
    let resyncs = metrics
        .lines()
        .filter(|l| l.starts_with("book_resyncs_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    let events = count_lines(&dir.join("data"));

    // Warm-up: the first two minutes (buffers grow to the largest messages seen).
    let warm: Vec<_> = rows.iter().filter(|r| r.0 >= 120.min(secs / 2)).collect();
    let first = warm.first().copied().unwrap_or(&rows[0]);
    let last = rows.last().unwrap();
    let max_rss = warm.iter().map(|r| r.1).max().unwrap_or(0);
    let max_fds = rows.iter().map(|r| r.2).max().unwrap_or(0);
    let max_threads = rows.iter().map(|r| r.3).max().unwrap_or(0);

    let mut csv = String::from("elapsed_s,rss_kib,fds,threads,sim_connections\n");
    for r in &rows {
        let _ = writeln!(csv, "{},{},{},{},{}", r.0, r.1, r.2, r.3, r.4);
    }
    let md = format!(
        "# Soak: {secs} s under drops, rollovers and depth gaps\n\n\
         Command: `SOAK_SECS={secs} SOAK_OUT=<dir> cargo test --release --test soak -- --ignored --nocapture`\n\n\
         Load: simulator at {rate} msgs/s, 3 symbols x 4 channels; every third connection cut mid-frame after ~3 s of data \
         (20 messages lost per reconnect), `max_connection_age: 10s` (planned rollovers of the others), every 400th BTCUSDT depth diff \
         dropped (book re-sync). File sink, books on, one reader and one parser thread.\n\n\
         | | value |\n|---|---|\n\
         | unplanned disconnects | {drops} |\n| planned rollovers | {rollovers} |\n| book re-syncs | {resyncs} |\n\
         | events written | {events} |\n| simulator connections | {} |\n\
         | RSS after warm-up (t={} s) | {} KiB |\n| RSS max after warm-up | {max_rss} KiB |\n| RSS at end | {} KiB |\n\
         | open fds: after warm-up / max / end | {} / {max_fds} / {} |\n\
         | threads: after warm-up / max / end | {} / {max_threads} / {} |\n\n\
         Samples every 5 s: `soak.csv`.\n",
        sim.connections(),
        first.0,
        first.1,
        last.1,
        first.2,
        last.2,
        first.3,
        last.3,
    );
    println!("{md}");
    if let Ok(out) = std::env::var("SOAK_OUT") {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("soak.csv"), &csv).unwrap();
        std::fs::write(out.join("soak.md"), &md).unwrap();
    }

    assert!(drops >= (secs / 60) as usize, "drops happened: {drops}");
    assert!(rollovers >= (secs / 60) as usize, "rollovers happened");
    // Flat: no growth beyond 10 % (+4 MiB of allocator slack) after warm-up.
    assert!(
        max_rss <= first.1 + first.1 / 10 + 4096,
        "RSS grew from {} to {max_rss} KiB",
        first.1
    );
    // One connection (+1 during a rollover or a reconnect): no leaked socket or thread.
    assert!(last.2 <= first.2 + 1, "fds {} -> {}", first.2, last.2);
    assert!(max_fds <= first.2 + 2, "fds peaked at {max_fds}");
    assert!(last.3 <= first.3, "threads {} -> {}", first.3, last.3);
}
