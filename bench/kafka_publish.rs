//! Kafka publisher benchmark against a real broker on loopback (tansu, started here on 127.0.0.1):
//! - enqueue cost: ns per `KafkaSink::write` (protobuf record, key = symbol), librdkafka lingering;
//! - throughput: N records of the realistic mix written as fast as the sink takes them, until the
//!   last is acknowledged (acks=all, idempotent, lz4: the defaults), in messages/s and MB/s.
//!
//! Run: `cargo bench --bench kafka_publish` (needs `scripts/install-tansu.sh`, which it calls).
//! Env: `N` records (default 500000).

use mdc::clock::realtime_ns;
use mdc::encode::Formats;
use mdc::encode::record::Record;
use mdc::exchange::Decoder;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::metrics::{ExtraKind, Metrics};
use mdc::pipeline::frame::Frame;
use mdc::pipeline::parser::fill;
use mdc::simulator::generator::StreamGen;
use mdc::sink::Sink;
use mdc::sink::kafka::KafkaSink;
use mdc::sink::kafka::config::KafkaSettings;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn counter(m: &Metrics, name: &str) -> u64 {
    m.extra
        .lock()
        .map(|e| {
            e.iter()
                .find(|x| x.name == name)
                .map(|x| match &x.kind {
                    ExtraKind::Counter(a) => a.load(Ordering::Relaxed),
                    _ => 0,
                })
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Records of the benchmark mix (60% depth, 30% trades, 10% book tickers), encoded as protobuf.
fn corpus(n: usize) -> Vec<Record> {
    let streams = [
        "btcusdt@depth@100ms",
        "ethusdt@depth@100ms",
        "solusdt@depth@100ms",
        "btcusdt@trade",
        "ethusdt@aggTrade",
        "btcusdt@bookTicker",
    ];
    let weights = [20usize, 20, 20, 15, 15, 10];
    let mut gens: Vec<StreamGen> = streams
        .iter()
        .map(|s| StreamGen::new(s, 7).unwrap())
        .collect();
    let mut dec = BinanceDecoder::new("spot");
    let mut out = Vec::with_capacity(n);
    let mut frame = Frame::with_capacity(4096);
    for i in 0..n {
        let mut pick = i * 7919 % 100;
        let mut g = 0;
        while pick >= weights[g] {
            pick -= weights[g];
            g += 1;
        }
        let mut m = String::new();
        gens[g].next_message(1_723_161_255_343, &mut m);
        frame.fill(m.as_bytes());
        let len = frame.len;
        let mut rec = Record::with_capacity(512);
        let _ = dec.decode(&mut frame.buf, len, realtime_ns(), &mut |ev| {
            fill(&mut rec, ev, Formats::PROTOBUF)
        });
        out.push(rec);
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("kafka_publish: bench");
        return;
    }
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let root = env!("CARGO_MANIFEST_DIR");
    let tansu = Command::new(format!("{root}/scripts/install-tansu.sh"))
        .output()
        .expect("install tansu");
    let tansu = String::from_utf8_lossy(&tansu.stdout).trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("mdc-bench-tansu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut broker = Command::new(&tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in ["trade", "agg_trade", "depth_diff", "book_ticker"] {
        Command::new(&tansu)
            .args([
                "topic",
                "create",
                "--broker",
                &url,
                "--partitions",
                "3",
                &format!("md.{t}"),
            ])
            .output()
            .expect("create topic");
    }
    let records = corpus(n);
    let bytes: usize = records.iter().map(|r| r.proto.len()).sum();
    let settings = KafkaSettings::from_section(
        serde_yaml::from_str(&format!(
            "{{enabled: true, brokers: \"127.0.0.1:{port}\", topic: \"md.{{type}}\"}}"
        ))
        .unwrap(),
    )
    .unwrap()
    .unwrap();

    // Throughput to acknowledgement.
    let metrics = Metrics::new(&["kafka"]);
    let mut sink = KafkaSink::start(&settings, &metrics).expect("sink");
    let t0 = Instant::now();
    let mut enqueue_ns = 0u128;
    for (i, r) in records.iter().enumerate() {
        let e0 = Instant::now();
        sink.write(r).expect("write");
        enqueue_ns += e0.elapsed().as_nanos();
        if i % 1024 == 0 {
            sink.tick(realtime_ns()).unwrap();
        }
    }
    while counter(&metrics, "kafka_acked_total") < n as u64 {
        sink.tick(realtime_ns()).unwrap();
        std::thread::sleep(Duration::from_micros(200));
        assert!(t0.elapsed() < Duration::from_secs(600), "not acknowledged");
    }
    let secs = t0.elapsed().as_secs_f64();
    sink.close().expect("close");

    println!(
        "kafka_publish: {n} records, {:.1} MB protobuf, acks=all, idempotent, lz4, linger 5 ms, 3 partitions x 4 topics",
        bytes as f64 / 1e6
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| throughput to acknowledgement | {:.0} msgs/s |",
        n as f64 / secs
    );
    println!(
        "| payload throughput | {:.1} MB/s |",
        bytes as f64 / 1e6 / secs
    );
    println!(
        "| mean enqueue cost (KafkaSink::write, includes QueueFull waits) | {:.0} ns/msg |",
        enqueue_ns as f64 / n as f64
    );
    println!(
        "| mean record size | {:.0} bytes |",
        bytes as f64 / n as f64
    );
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
