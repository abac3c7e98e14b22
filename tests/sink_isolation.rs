//! The threaded adapter that gives a blocking sink (file, PostgreSQL) its own thread and queue
//! when it shares the publisher: a sink that stalls for a while fills only its own queue; what
//! its full queue does is its `backpressure`. The stalled sink here is a real sink type written
//! for the test (it records what it got and can be made to stall), driven through the same
//! `Sink` trait the publisher uses.

use mdc::encode::record::Record;
use mdc::event::EventKind;
use mdc::metrics::Metrics;
use mdc::sink::spool::SpoolConfig;
use mdc::sink::threaded::{QueuePolicy, Threaded};
use mdc::sink::{Sink, SinkError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keeps (kind, position) of every record written; stalls each write while `stalled` is set.
struct Recording {
    got: Arc<Mutex<Vec<(EventKind, u64)>>>,
    stalled: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl Sink for Recording {
    fn name(&self) -> &'static str {
        "file"
    }
    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        while self.stalled.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.got.lock().unwrap().push((rec.kind, rec.position));
        Ok(())
    }
    fn tick(&mut self, _now_ns: i64) -> Result<(), SinkError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), SinkError> {
        self.closed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

fn record(i: u64) -> Record {
    let mut r = Record::with_capacity(64);
    r.kind = EventKind::Trade;
    r.exchange = "binance";
    r.market = "spot";
    r.symbol.push_str("BTCUSDT");
    r.recv_ts_ns = 1_000 + i as i64;
    r.position = i;
    r.json
        .extend_from_slice(format!("{{\"i\":{i}}}\n").as_bytes());
    r
}

struct Rig {
    sink: Threaded,
    got: Arc<Mutex<Vec<(EventKind, u64)>>>,
    stalled: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

fn rig(backpressure: &str, spool_dir: &str) -> Rig {
    let got = Arc::new(Mutex::new(Vec::new()));
    let stalled = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    let metrics = Metrics::new(&["file"]);
    let inner = Recording {
        got: got.clone(),
        stalled: stalled.clone(),
        closed: closed.clone(),
    };
    let policy = QueuePolicy {
        queue_capacity: 64,
        backpressure: backpressure.into(),
        spool: SpoolConfig {
            path: spool_dir.into(),
            max_bytes: 1 << 24,
        },
        always: false,
    };
    let sink = Threaded::start("file", Box::new(inner), policy, &metrics).unwrap();
    Rig {
        sink,
        got,
        stalled,
        closed,
        metrics,
    }
}

fn temp(tag: &str) -> String {
    let d = std::env::temp_dir().join(format!("mdc-iso-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d.to_string_lossy().into_owned()
}

/// Writes 0..n with the sink stalled for the first half; returns the longest single `write`.
fn feed(r: &mut Rig, n: u64) -> Duration {
    let mut worst = Duration::ZERO;
    r.stalled.store(true, Ordering::Relaxed);
    for i in 0..n {
        if i == n / 2 {
            r.stalled.store(false, Ordering::Relaxed);
        }
        let rec = record(i);
        let t = Instant::now();
        r.sink.write(&rec).unwrap();
        worst = worst.max(t.elapsed());
        if i % 16 == 0 {
            r.sink.tick(0).unwrap();
        }
    }
    worst
}

fn finish(r: &mut Rig) {
    let t = Instant::now();
    while r.got.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(5) {
        r.sink.tick(0).unwrap();
    }
    for _ in 0..50 {
        r.sink.tick(0).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    r.sink.close().unwrap();
    assert!(
        r.closed.load(Ordering::Relaxed),
        "the inner sink was closed"
    );
}

#[test]
fn drop_newest_never_waits_and_announces_the_loss_in_that_sink() {
    let mut r = rig("drop_newest", &temp("drop"));
    let worst = feed(&mut r, 2_000);
    finish(&mut r);
    let got = r.got.lock().unwrap().clone();
    let trades: Vec<u64> = got
        .iter()
        .filter(|(k, _)| *k == EventKind::Trade)
        .map(|(_, p)| *p)
        .collect();
    assert!(trades.len() < 2_000, "some were dropped while it stalled");
    assert!(trades.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        got.iter().any(|(k, _)| *k == EventKind::Gap),
        "the loss is announced as a gap"
    );
    let dropped = r
        .metrics
        .counter_values("sink_dropped_total")
        .iter()
        .map(|(_, v)| *v)
        .sum::<u64>();
    assert_eq!(dropped as usize, 2_000 - trades.len());
    // The stalled sink never held up the caller (the publisher).
    assert!(worst < Duration::from_millis(50), "a write took {worst:?}");
}

#[test]
fn spool_keeps_the_overflow_and_delivers_everything_in_order() {
    let dir = temp("spool");
    let mut r = rig("spool", &dir);
    let worst = feed(&mut r, 3_000);
    finish(&mut r);
    let got = r.got.lock().unwrap().clone();
    let positions: Vec<u64> = got.iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (0..3_000).collect::<Vec<_>>(), "all, in order");
    assert!(worst < Duration::from_millis(50), "a write took {worst:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn block_waits_and_loses_nothing() {
    let mut r = rig("block", &temp("block"));
    let stalled = r.stalled.clone();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stalled.store(false, Ordering::Relaxed);
    });
    r.stalled.store(true, Ordering::Relaxed);
    let t = Instant::now();
    for i in 0..500 {
        r.sink.write(&record(i)).unwrap();
    }
    let waited = t.elapsed();
    release.join().unwrap();
    finish(&mut r);
    let positions: Vec<u64> = r.got.lock().unwrap().iter().map(|(_, p)| *p).collect();
    assert_eq!(positions, (0..500).collect::<Vec<_>>());
    assert!(
        waited >= Duration::from_millis(250),
        "block waited for the sink ({waited:?})"
    );
}
