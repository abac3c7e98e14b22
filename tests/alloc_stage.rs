//! Zero allocations through the whole parser stage, as the parser thread runs it: `Stage::process`
//! with rollover sessions, gap tracking, the silent-stream watch and local books (REST-synced,
//! emitting 20-level `book_snapshot` events), over Binance trades, aggTrades, diffs, book tickers
//! and partial books, on both decoder paths (the fast scan, and simd-json's tape alone), encoded
//! to JSON, Protobuf and raw; then messages of a size never seen during warm-up (but within the
//! configured frame and record capacity). Counted per thread with the binary's own allocator
//! (`metrics::alloc::CountingAlloc`), so other tests' threads cannot disturb the count.

use mdc::book::Books;
use mdc::book::rest::{SnapshotResponse, SnapshotSource};
use mdc::config::Config;
use mdc::encode::Formats;
use mdc::encode::record::Record;
use mdc::event::EventKind;
use mdc::exchange::Decoder;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::exchange::binance::snapshot::BinanceSnapshots;
use mdc::metrics::Metrics;
use mdc::metrics::alloc::{CountingAlloc, thread_allocations};
use mdc::pipeline::frame::{Frame, FrameKind};
use mdc::pipeline::idle::FullWait;
use mdc::pipeline::parser::Stage;
use mdc::pipeline::ring::{self, Consumer, Producer};
use mdc::pipeline::watch::StreamWatch;
use mdc::simulator::generator::StreamGen;
use std::time::Duration;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// The output ring is drained after every frame; a full ring never happens here.
struct NoWait;
impl FullWait for NoWait {
    fn wait(&mut self) {
        panic!("output ring full");
    }
    fn reset(&mut self) {}
}

const STREAMS: [&str; 7] = [
    "btcusdt@trade",
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@depth@100ms",
    "btcusdt@bookTicker",
    "ethusdt@trade",
    "btcusdt@depth20@100ms",
];

/// Takes every record out of the stage's output ring, counting them and the book snapshots.
fn drain(input: &mut Consumer<Record>, records: &mut u64, snapshots: &mut u64) {
    while let Some(book) = input.read_with(|r| r.kind == EventKind::BookSnapshot) {
        *records += 1;
        *snapshots += book as u64;
    }
}

fn frame(f: &mut Frame, kind: FrameKind, ts: i64) {
    f.buf.clear();
    f.len = 0;
    f.conn = 0;
    f.session = 0;
    f.source = 0;
    f.kind = kind;
    f.recv_ts_ns = ts;
}

#[test]
fn the_whole_parser_stage_allocates_nothing_after_warmup() {
    let cfg = Config::from_yaml(
        r#"
exchanges:
  binance_spot:
    ws_url: "ws://127.0.0.1:1"
    rest_url: "http://127.0.0.1:1"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker", "depth20@100ms"]
sinks:
  null: { enabled: true }
book:
  snapshot_interval_ms: 0
  snapshot_every_updates: 10
  depth: 20
"#,
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    let plan = &cfg.exchanges[0];
    let spec = plan.books().expect("books");
    let streams = plan.connections().remove(0).streams;
    // A long stream in the simulator's mix, generated up front; the depth generators' books as
    // REST bodies at message 200 (what the exchange would serve then).
    let mut gens: Vec<StreamGen> = STREAMS
        .iter()
        .map(|s| StreamGen::new(s, 7).unwrap())
        .collect();
    let weights = [15usize, 15, 25, 20, 10, 10, 5];
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut bodies: Vec<(String, String)> = Vec::new();
    for i in 0..130_000usize {
        let mut pick = i * 7919 % 100;
        let mut g = 0;
        while pick >= weights[g] {
            pick -= weights[g];
            g += 1;
        }
        let mut m = String::new();
        gens[g].next_message(1_723_161_255_343 + i as u64 / 10, &mut m);
        corpus.push(m.into_bytes());
        if i == 200 {
            for g in gens.iter().filter(|g| g.name.contains("@depth@")) {
                bodies.push((g.symbol().to_string(), g.snapshot_json(1000)));
            }
        }
    }
    // Messages of a size never seen in warm-up (3.5 KiB, within the 4 KiB frame capacity): trades
    // carrying a long field the decoder ignores.
    let big: Vec<Vec<u8>> = (0..2_000u64)
        .map(|i| {
            format!(
                r#"{{"stream":"ethusdt@trade","data":{{"e":"trade","E":1,"s":"ETHUSDT","t":{},"p":"1.5","q":"2","T":4,"m":true,"M":true,"note":"{}"}}}}"#,
                9_000_000_000u64 + i,
                "x".repeat(3_300)
            )
            .into_bytes()
        })
        .collect();
    let source = BinanceSnapshots {
        rest_url: "http://127.0.0.1:1".into(),
        path: "/api/v3/depth",
        futures: false,
    };

    for general in [false, true] {
        let metrics = Metrics::new(&["null"]);
        let decoder: Box<dyn Decoder> = if general {
            Box::new(BinanceDecoder::general_only("spot"))
        } else {
            plan.decoder()
        };
        let formats = Formats {
            json: true,
            protobuf: true,
            raw: true,
        };
        let mut stage = Stage::new(vec![decoder], formats, &metrics);
        let specs = vec![Some(spec.clone())];
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let (rep_tx, rep_rx) = crossbeam_channel::unbounded();
        stage.books = Some(Books::new(
            cfg.book.clone(),
            0,
            &specs,
            &mdc::book::counters(&specs, &metrics),
            req_tx,
            rep_rx,
        ));
        stage.sessions.add(0, Duration::from_secs(10));
        stage.gaps.add(0, "binance", "spot", &streams);
        let mut watch = StreamWatch::new(
            metrics.gauge("streams_silent", "", &[]),
            metrics.counter("stream_silence_detected_total", "", &[]),
        );
        watch.add(
            0,
            "binance_spot#0".into(),
            &streams,
            Duration::from_secs(60),
            None,
        );
        stage.watch = Some(watch);

        let (mut out, mut input): (Producer<Record>, Consumer<Record>) =
            ring::ring(1024, || Record::for_formats(4096, 4096, formats));
        let mut f = Frame::with_capacity(4096);
        let mut records = 0u64;
        let mut snapshots = 0u64;
        let mut ts = 1_800_000_000_000_000_000i64;
        let step = |stage: &mut Stage,
                    f: &mut Frame,
                    out: &mut Producer<Record>,
                    input: &mut Consumer<Record>,
                    records: &mut u64,
                    snapshots: &mut u64| {
            stage.process(f, out, &mut NoWait);
            drain(input, records, snapshots);
        };
        frame(&mut f, FrameKind::Connected, ts);
        step(
            &mut stage,
            &mut f,
            &mut out,
            &mut input,
            &mut records,
            &mut snapshots,
        );
        frame(&mut f, FrameKind::Subscribed, ts);
        step(
            &mut stage,
            &mut f,
            &mut out,
            &mut input,
            &mut records,
            &mut snapshots,
        );
        let mut answered = false;
        let mut run = |range: std::ops::Range<usize>,
                       msgs: &[Vec<u8>],
                       stage: &mut Stage,
                       records: &mut u64,
                       snapshots: &mut u64| {
            for i in range {
                ts += 1_000;
                f.fill(&msgs[i % msgs.len()]);
                f.conn = 0;
                f.session = 0;
                f.source = 0;
                f.recv_ts_ns = ts;
                step(stage, &mut f, &mut out, &mut input, records, snapshots);
                // The REST answers, once, after message 200 (bodies taken there).
                if i == 250 && !answered {
                    answered = true;
                    for r in req_rx.try_iter() {
                        let body = &bodies
                            .iter()
                            .find(|(s, _)| *s == r.symbol)
                            .expect("a body")
                            .1;
                        let _ = rep_tx.send(SnapshotResponse {
                            source: r.source,
                            symbol: r.symbol,
                            result: source.parse(body),
                            receive_ts_ns: ts,
                        });
                    }
                }
                if i % 64 == 0 {
                    stage.poll_books_at(ts, &mut out, &mut NoWait);
                    drain(&mut input, records, snapshots);
                }
            }
        };
        // Warm-up: books sync, every buffer grows to its working size.
        run(0..30_000, &corpus, &mut stage, &mut records, &mut snapshots);
        assert!(snapshots > 100, "books synced and emitting: {snapshots}");
        let before = thread_allocations();
        let snaps_before = snapshots;
        run(
            30_000..130_000,
            &corpus,
            &mut stage,
            &mut records,
            &mut snapshots,
        );
        let steady = thread_allocations() - before;
        let before = thread_allocations();
        run(0..2_000, &big, &mut stage, &mut records, &mut snapshots);
        let bigger = thread_allocations() - before;
        println!(
            "general path only: {general}: {records} records, {} book snapshots in the measured 100k; allocations: {steady} (100k messages), {bigger} (2,000 messages of an unseen size)",
            snapshots - snaps_before
        );
        assert!(snapshots - snaps_before > 1_000, "books kept emitting");
        assert_eq!(
            steady, 0,
            "allocations in 100k messages after warm-up (general path only: {general})"
        );
        assert_eq!(
            bigger, 0,
            "allocations for messages of an unseen size within capacity (general path only: {general})"
        );
    }
}
