//! Zero allocation on the hot path: after warm-up, 100k messages of the realistic mix pushed through
//! ring -> parse (simd-json in place) -> normalize -> encode (JSON Lines and Protobuf) -> ring
//! allocate nothing. Counted with a global allocator wrapper; this file is its own test binary, and
//! it runs one test so no other thread allocates while counting.

use mdc::book::sync::{DiffRef, Snapshot, SymbolBook};
use mdc::encode::Formats;
use mdc::encode::record::Record;
use mdc::event::Event;
use mdc::exchange::Decoder;
use mdc::exchange::binance::decode::BinanceDecoder;
use mdc::exchange::binance::sequence::Sequence;
use mdc::pipeline::frame::Frame;
use mdc::pipeline::parser::fill;
use mdc::pipeline::ring;
use mdc::simulator::generator::StreamGen;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn hot_path_allocates_nothing_after_warmup() {
    // A realistic mix from the simulator's generator: depth diffs of 1-20 levels, trades, aggTrades,
    // book tickers, for several symbols. Pre-generated so generation does not count.
    let streams = [
        "btcusdt@depth@100ms",
        "ethusdt@depth@100ms",
        "btcusdt@trade",
        "ethusdt@aggTrade",
        "solusdt@bookTicker",
        "solusdt@depth@100ms",
        // The partial book (no `e`: simd-json's general path).
        "bnbbtc@depth20@100ms",
    ];
    let mut gens: Vec<StreamGen> = streams
        .iter()
        .map(|s| StreamGen::new(s, 42).unwrap())
        .collect();
    let weights = [25usize, 20, 15, 15, 10, 10, 5];
    let mut corpus = Vec::new();
    for i in 0..2_000usize {
        let mut pick = i * 7919 % 100;
        let mut g = 0;
        while pick >= weights[g] {
            pick -= weights[g];
            g += 1;
        }
        let mut m = String::new();
        gens[g].next_message(1_723_161_255_343 + i as u64, &mut m);
        corpus.push(m.into_bytes());
    }

    let (mut to_parser, mut from_reader) = ring::ring(1024, || Frame::with_capacity(4096));
    let (mut to_publisher, mut from_parser) = ring::ring(1024, || Record::with_capacity(4096));
    let mut decoder = BinanceDecoder::new("spot");
    let formats = Formats {
        json: true,
        protobuf: true,
        raw: false,
    };
    let mut events = 0u64;
    let mut bytes_out = 0usize;

    let mut run = |n: usize, events: &mut u64, bytes_out: &mut usize| {
        for i in 0..n {
            let msg = &corpus[i % corpus.len()];
            to_parser
                .write_with(|f| {
                    f.fill(msg);
                    f.recv_ts_ns = 1;
                })
                .expect("ring has room");
            from_reader
                .read_with(|f| {
                    let len = f.len;
                    decoder
                        .decode(&mut f.buf, len, f.recv_ts_ns, &mut |ev| {
                            to_publisher
                                .write_with(|r| fill(r, ev, formats))
                                .expect("ring has room");
                        })
                        .expect("valid message");
                })
                .expect("frame");
            while let Some(n) = from_parser.read_with(|r| r.json.len() + r.proto.len()) {
                *events += 1;
                *bytes_out += n;
            }
        }
    };

    // Warm-up: every slot of both rings and every buffer grows to its working size. Counted too, to
    // show the counter sees the hot path's allocations when there are some.
    COUNTING.store(true, Ordering::SeqCst);
    run(20_000, &mut events, &mut bytes_out);
    COUNTING.store(false, Ordering::SeqCst);
    assert!(ALLOCS.load(Ordering::SeqCst) > 0, "warm-up grows buffers");
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    run(100_000, &mut events, &mut bytes_out);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(events, 120_000);
    assert!(bytes_out > 0);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 100k messages after warm-up"
    );

    // Local books: applying live diffs and building 20-level book snapshots allocates nothing either.
    let mut depth_gen = StreamGen::new("btcusdt@depth@100ms", 9).unwrap();
    let initial: serde_json::Value =
        serde_json::from_str(&depth_gen.snapshot_json(usize::MAX)).unwrap();
    let pairs = |v: &serde_json::Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l[0].as_str().unwrap().to_string(),
                    l[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let diffs: Vec<Vec<u8>> = (0..2_000)
        .map(|i| {
            let mut m = String::new();
            depth_gen.next_message(1 + i, &mut m);
            m.into_bytes()
        })
        .collect();
    let last_initial = initial["lastUpdateId"].as_u64().unwrap();
    let synced = || {
        let mut b = SymbolBook::new(Sequence::Spot.rules(), 1000);
        b.on_snapshot(&Snapshot {
            last_update_id: last_initial,
            bids: pairs(&initial["bids"]),
            asks: pairs(&initial["asks"]),
            ..Snapshot::default()
        });
        b
    };
    let mut snapshot = Event::new("binance", "spot");
    let mut frame = Frame::with_capacity(4096);
    let mut book_run = |book: &mut SymbolBook, decoder: &mut BinanceDecoder| {
        for (i, msg) in diffs.iter().enumerate() {
            frame.fill(msg);
            let len = frame.len;
            decoder
                .decode(&mut frame.buf, len, 1, &mut |ev| {
                    let d = &ev.depth;
                    book.on_diff(DiffRef {
                        ts_ns: 0,
                        txn_ts_ns: 0,
                        first: d.first_update_id,
                        last: d.last_update_id,
                        prev: None,
                        bids: &d.bids,
                        asks: &d.asks,
                        checksum: None,
                    });
                })
                .expect("valid diff");
            if i % 10 == 0 && book.is_live() {
                snapshot.clear_book();
                for l in book.bids.best_first().take(20) {
                    snapshot.book.bids.push(l.price.as_str(), l.qty.as_str());
                }
                for l in book.asks.best_first().take(20) {
                    snapshot.book.asks.push(l.price.as_str(), l.qty.as_str());
                }
            }
        }
    };
    // Warm-up on one book; then 50 fresh synced books replay the 2,000-diff stream: 100k diffs.
    let mut warm = synced();
    book_run(&mut warm, &mut decoder);
    assert!(warm.is_live() && warm.applied == diffs.len() as u64);
    let mut books: Vec<SymbolBook> = (0..100_000 / diffs.len()).map(|_| synced()).collect();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for b in books.iter_mut() {
        book_run(b, &mut decoder);
    }
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert!(
        books
            .iter()
            .all(|b| b.is_live() && b.applied == diffs.len() as u64)
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations applying 100k diffs to synced books"
    );

    // OKX: trades and 400-level books (snapshot push, then 1-6 level updates with checksums)
    // decoded, encoded, and applied to the instruments' books with every checksum verified.
    let okx = mdc::simulator::okx::generate(
        mdc::simulator::okx::OkxSimConfig {
            levels: 400,
            keep_alive_every: 50,
            ..Default::default()
        },
        &[
            ("books", "BTC-USDT"),
            ("trades", "BTC-USDT"),
            ("books", "ETH-USDT-SWAP"),
            ("trades", "ETH-USDT-SWAP"),
        ],
        20_000,
    );
    let mut okx_decoder = mdc::exchange::okx::decode::OkxDecoder::new();
    let rules = &mdc::exchange::okx::sequence::RULES;
    let mut okx_books: std::collections::HashMap<String, SymbolBook> =
        ["BTC-USDT", "ETH-USDT-SWAP"]
            .iter()
            .map(|s| (s.to_string(), SymbolBook::new(rules, 1000)))
            .collect();
    let mut record = Record::with_capacity(4096);
    // The snapshots (2 pushes) load outside the count: they copy 400 levels, once per
    // subscription.
    let mut okx_run = |msgs: &[String], applied: &mut u64| {
        for msg in msgs {
            frame.fill(msg.as_bytes());
            let len = frame.len;
            okx_decoder
                .decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut record, ev, formats);
                    if ev.kind == Some(mdc::event::EventKind::DepthDiff) {
                        let d = &ev.depth;
                        let book = okx_books.get_mut(ev.header.symbol.as_str()).expect("book");
                        let out = if d.snapshot {
                            book.take_request();
                            book.on_snapshot(&Snapshot::pushed(d, 0))
                        } else {
                            book.on_diff(DiffRef::of(d, 0, 0))
                        };
                        assert_eq!(out, mdc::book::sync::Outcome::Applied);
                        *applied += 1;
                    }
                })
                .expect("valid push");
        }
    };
    let mut applied = 0u64;
    okx_run(&okx[..2_000], &mut applied);
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    okx_run(&okx[2_000..], &mut applied);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let books_pushes = okx.iter().filter(|m| m.contains("\"books\"")).count() as u64;
    assert_eq!(
        applied, books_pushes,
        "every books push applied and checksum-verified"
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 18k OKX pushes (decode, encode, book, checksum) after warm-up"
    );

    // Deribit: trades, books (snapshot, then changes with exponent-form option prices), tickers
    // and the volatility index decoded, encoded, and applied to the instruments' books.
    let deribit = mdc::simulator::deribit::generate(
        mdc::simulator::deribit::DeribitSimConfig {
            levels: 200,
            ..Default::default()
        },
        &[
            "book.BTC-PERPETUAL.100ms",
            "trades.BTC-PERPETUAL.100ms",
            "book.ETH-26DEC25-4000-C.100ms",
            "ticker.ETH-26DEC25-4000-C.100ms",
            "ticker.BTC-PERPETUAL.100ms",
            "trades.ETH-26DEC25-4000-C.100ms",
            "deribit_volatility_index.btc_usd",
        ],
        20_000,
    );
    let mut deribit_decoder = mdc::exchange::deribit::decode::DeribitDecoder::new();
    let drules = &mdc::exchange::deribit::sequence::RULES;
    let mut deribit_books: std::collections::HashMap<String, SymbolBook> =
        ["BTC-PERPETUAL", "ETH-26DEC25-4000-C"]
            .iter()
            .map(|s| (s.to_string(), SymbolBook::new(drules, 1000)))
            .collect();
    let mut deribit_run = |msgs: &[String], applied: &mut u64| {
        for msg in msgs {
            frame.fill(msg.as_bytes());
            let len = frame.len;
            deribit_decoder
                .decode(&mut frame.buf, len, 1, &mut |ev| {
                    fill(&mut record, ev, formats);
                    if ev.kind == Some(mdc::event::EventKind::DepthDiff) {
                        let d = &ev.depth;
                        let book = deribit_books
                            .get_mut(ev.header.symbol.as_str())
                            .expect("book");
                        let out = if d.snapshot {
                            book.take_request();
                            book.on_snapshot(&Snapshot::pushed(d, 0))
                        } else {
                            book.on_diff(DiffRef::of(d, 0, 0))
                        };
                        assert_eq!(out, mdc::book::sync::Outcome::Applied);
                        *applied += 1;
                    }
                })
                .expect("valid notification");
        }
    };
    let mut applied = 0u64;
    deribit_run(&deribit[..2_000], &mut applied);
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    deribit_run(&deribit[2_000..], &mut applied);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let book_notes = deribit.iter().filter(|m| m.contains("\"book.")).count() as u64;
    assert_eq!(applied, book_notes, "every book notification applied");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 18k Deribit notifications (decode, encode, book) after warm-up"
    );

    // The hand-off to a blocking sink's own thread (`sink::threaded`, the file sink beside
    // others): copy into a recycled slot, queue, wake; the sink's thread writes and gives the
    // slot back. Nothing allocates once every slot exists.
    /// Takes records once `open` (closed during warm-up so every slot of the pool gets made).
    struct Discard(std::sync::Arc<AtomicBool>);
    impl mdc::sink::Sink for Discard {
        fn name(&self) -> &'static str {
            "file"
        }
        fn write(&mut self, rec: &Record) -> Result<(), mdc::sink::SinkError> {
            while !self.0.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::hint::black_box(rec.json.len());
            Ok(())
        }
        fn tick(&mut self, _: i64) -> Result<(), mdc::sink::SinkError> {
            Ok(())
        }
        fn close(&mut self) -> Result<(), mdc::sink::SinkError> {
            Ok(())
        }
    }
    use mdc::sink::Sink as _;
    let metrics = mdc::metrics::Metrics::new(&["file"]);
    let policy = mdc::sink::threaded::QueuePolicy {
        queue_capacity: 1024,
        backpressure: "block".into(),
        spool: mdc::sink::spool::SpoolConfig::for_sink("file"),
        always: false,
    };
    let open = std::sync::Arc::new(AtomicBool::new(false));
    let mut threaded = mdc::sink::threaded::Threaded::start(
        "file",
        Box::new(Discard(open.clone())),
        policy,
        &metrics,
    )
    .unwrap();
    // The sink holds back until the publisher side has made every slot (1024) and waits.
    let opener = {
        let open = open.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            open.store(true, Ordering::Relaxed);
        })
    };
    let mut handoff = |n: usize| {
        for i in 0..n {
            threaded.write(&record).unwrap();
            if i % 64 == 0 {
                threaded.tick(0).unwrap();
            }
        }
    };
    handoff(20_000);
    opener.join().unwrap();
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    handoff(100_000);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    threaded.close().unwrap();
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 100k records handed to a sink's own thread after warm-up"
    );

    // Raw capture: the parser's tap copies each frame into a recycled slot; the capture thread
    // writes it as a JSON line into the open file. Nothing allocates once every slot exists
    // (no rotation in the window: one receive hour, a large rotate_bytes).
    let dir = std::env::temp_dir().join(format!("mdc-alloc-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = mdc::capture::CaptureConfig {
        enabled: true,
        path: dir.to_string_lossy().into_owned(),
        rotate_bytes: 1 << 40,
        compression: "none".into(),
        queue_capacity: 1024,
        ..Default::default()
    };
    let (mut tap, mut writer) = mdc::capture::start(&cfg, &metrics).unwrap();
    tap.add_conn(0, "binance", "spot", &[], std::time::Duration::from_secs(5));
    let capture = |n: usize| {
        for i in 0..n {
            tap.frame(0, 0, 1, &corpus[i % corpus.len()]);
        }
    };
    capture(20_000);
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    capture(100_000);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    writer.close();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in 100k frames captured after warm-up"
    );
}
