//! `mdc replay --from <capture> [--config] [--speed S]`: feeds raw captures (`capture:`) through
//! the same parser stage as a live run (decoders, sessions, gaps, books) and the same publisher
//! into the configured sinks, so history can be normalized again with a newer `mdc`.
//!
//! A capture holds what the live parser saw, in its order: frames with their receive time and
//! session, the connection markers (connects, disconnects, subscriptions), each connection's
//! streams, and the moment each REST snapshot was applied to a book. Replayed in that order with
//! the captured times, the stage makes the live run's decisions again: a rollover's overlapping
//! sessions are deduplicated as live, a reconnection gives its `gap` events, and each book loads
//! the same REST body at the same point of its diff stream, so `book_snapshot` events are the
//! live ones, `receive_ts_ns` included.
//!
//! What replay cannot redo exactly: decisions the live run took on wall-clock timeouts alone (a
//! rollover forced by `rollover_timeout` is re-decided on the captured clock, checked every 10 ms
//! of it), and silent-stream detection (a live-only alarm; it emits no events).

use crate::book::rest::SnapshotResponse;
use crate::book::{BookSpec, Books};
use crate::config::Config;
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::exchange::StreamSpec;
use crate::metrics::Metrics;
use crate::pipeline::frame::{Frame, FrameKind};
use crate::pipeline::idle::{Idle, IdlePolicy};
use crate::pipeline::inline::Inline;
use crate::pipeline::parser::Stage;
use crate::pipeline::publisher::Publisher;
use crate::pipeline::ring::ring;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub files: usize,
    pub frames: u64,
    pub rest_bodies: u64,
    /// Connection markers and book loads replayed.
    pub markers: u64,
    pub events: u64,
    /// Events left out as copies delivered by both sessions of a rollover (as live).
    pub duplicates: u64,
    /// Frames of an exchange and market no configured section decodes.
    pub unmatched: u64,
    /// Lines that are not capture lines, and frames the decoder refused.
    pub bad: u64,
    /// Book loads whose REST body is not in the capture (dropped by a `drop_newest` capture, or
    /// the replay started after it): the book re-syncs at the next body instead.
    pub missing_bodies: u64,
}

/// Capture files under `from` (a file or a directory), in name order: rotation order.
pub fn files(from: &Path) -> Result<Vec<PathBuf>, String> {
    if from.is_file() {
        return Ok(vec![from.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|e| format!("--from {}: {e}", from.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("capture-") && (n.ends_with(".jsonl") || n.ends_with(".jsonl.zst"))
            })
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(format!(
            "--from {}: no capture-*.jsonl[.zst] files",
            from.display()
        ));
    }
    Ok(out)
}

fn open(p: &Path) -> Result<Box<dyn BufRead>, String> {
    let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let r: Box<dyn Read> = if p.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::Decoder::new(f).map_err(|e| format!("{}: {e}", p.display()))?)
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

/// One capture line.
#[derive(serde::Deserialize)]
struct Line {
    receive_ts_ns: i64,
    exchange: String,
    market: String,
    #[serde(default)]
    conn: u32,
    #[serde(default)]
    session: u32,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    rest: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    rest_ts: i64,
    #[serde(default)]
    rollover_timeout_ms: u64,
    #[serde(default)]
    streams: Vec<CapturedStream>,
}

/// A stream of a `conn` line.
#[derive(serde::Deserialize)]
struct CapturedStream {
    name: String,
    channel: String,
    symbol: String,
    #[serde(default)]
    market: String,
    #[serde(default)]
    book: bool,
    #[serde(default)]
    watched: bool,
}

/// Names read from a capture, kept for the process (the stage's types hold `&'static str`);
/// bounded by the distinct exchange, market and stream-market names, a handful.
#[derive(Default)]
struct Names(HashSet<&'static str>);

impl Names {
    fn get(&mut self, s: &str) -> &'static str {
        if let Some(n) = self.0.get(s) {
            return n;
        }
        let n: &'static str = Box::leak(s.to_string().into_boxed_str());
        self.0.insert(n);
        n
    }
}

/// The configured sections and the capture's connections.
struct Routes {
    /// (exchange, market) of each configured section, in config order (= decoder index).
    plans: Vec<(&'static str, &'static str)>,
    /// Connection -> section, from the capture's `conn` lines.
    conns: HashMap<u32, u16>,
    /// Connections that connected in this replay.
    connected: HashSet<u32>,
}

impl Routes {
    /// The section that decodes `exchange`/`market`: exact, else by exchange alone (one OKX
    /// section spans spot, swap, futures and options).
    fn plan(&self, exchange: &str, market: &str) -> Option<u16> {
        self.plans
            .iter()
            .position(|(e, m)| *e == exchange && *m == market)
            .or_else(|| self.plans.iter().position(|(e, _)| *e == exchange))
            .map(|i| i as u16)
    }
}

/// Replays every file under `from` into the sinks of `config`; `speed` 0 is as fast as
/// possible, 1 the recorded pace (2 twice as fast). Stops early when `stop` is set.
pub fn run(
    config: Config,
    from: &Path,
    speed: f64,
    stop: Arc<AtomicBool>,
) -> Result<Stats, String> {
    let files = files(from)?;
    let names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();
    let metrics = Metrics::new(&names);
    let mut formats = Formats::NONE;
    let mut sinks = Vec::new();
    for plan in &config.sinks {
        formats = formats.union(plan.formats());
        sinks.push(
            plan.start(&metrics)
                .map_err(|e| format!("sink {}: {e}", plan.name()))?,
        );
    }
    let decoders = config.exchanges.iter().map(|p| p.decoder()).collect();
    let mut stage = Stage::new(decoders, formats, &metrics);
    // Books as the live run kept them: the configured symbols, and those a `conn` line shows
    // (instruments the live run resolved or listed while running). Their snapshot requests go
    // nowhere: each one's answer is the captured body, applied at its `book_loaded` line.
    let specs: Vec<Option<BookSpec>> = config
        .exchanges
        .iter()
        .map(|p| if config.book.enabled { p.books() } else { None })
        .collect();
    let (replies, replies_rx) = crossbeam_channel::unbounded::<SnapshotResponse>();
    if specs.iter().any(Option::is_some) {
        let (requests, _) = crossbeam_channel::unbounded();
        stage.books = Some(Books::new(
            config.book.clone(),
            0,
            &specs,
            &crate::book::counters(&specs, &metrics),
            requests,
            replies_rx,
        ));
    }
    let (output, input) = ring(4096, || Record::with_capacity(4096));
    let publisher = Publisher {
        inputs: vec![input],
        sinks,
        metrics: metrics.clone(),
        idle: Idle::new(IdlePolicy::Park, 0),
        occupancy: Vec::new(),
        allocations: None,
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let mut inline = Inline::new(stage, output, publisher.start(), 1 << 16, done_tx);

    let mut routes = Routes {
        plans: config
            .exchanges
            .iter()
            .map(|p| (p.exchange(), p.market()))
            .collect(),
        conns: HashMap::new(),
        connected: HashSet::new(),
    };
    let mut interned = Names::default();
    // REST bodies by (exchange, market, symbol): the latest, with its receive time.
    let mut bodies: HashMap<(String, String, String), (i64, String)> = HashMap::new();
    let mut stats = Stats {
        files: files.len(),
        ..Stats::default()
    };
    let mut first_ts: Option<(i64, Instant)> = None;
    let mut last_tick_ns = i64::MIN;
    let mut bad_log = crate::metrics::LogThrottle::default();
    'files: for path in &files {
        let mut r = open(path)?;
        let mut text = String::new();
        loop {
            text.clear();
            match r.read_line(&mut text) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            if stop.load(Ordering::Relaxed) {
                break 'files;
            }
            let line: Line = match serde_json::from_str(text.trim_end()) {
                Ok(l) => l,
                Err(e) => {
                    stats.bad += 1;
                    if bad_log.hit() {
                        log::warn!(
                            "event=replay_bad_line file={} error=\"{e}\" count={}",
                            path.display(),
                            bad_log.count()
                        );
                    }
                    continue;
                }
            };
            let ts = line.receive_ts_ns;
            if speed > 0.0 && line.event.as_deref() != Some("conn") {
                let (t0, at) = *first_ts.get_or_insert((ts, Instant::now()));
                let due = Duration::from_nanos(((ts - t0).max(0) as f64 / speed) as u64);
                if let Some(wait) = due.checked_sub(at.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            // The stage's periodic work (rollover checks) on the captured clock.
            if ts.saturating_sub(last_tick_ns) >= 10_000_000
                && line.event.as_deref() != Some("conn")
            {
                last_tick_ns = ts;
                inline.tick_at(ts);
            }
            match line.event.as_deref() {
                Some("conn") => {
                    register(
                        &mut inline,
                        &mut routes,
                        &mut interned,
                        &specs,
                        &metrics,
                        line,
                    );
                    continue;
                }
                Some("book_loaded") => {
                    stats.markers += 1;
                    let Some(source) = routes.plan(&line.exchange, &line.market) else {
                        stats.unmatched += 1;
                        continue;
                    };
                    let symbol = line.symbol.unwrap_or_default();
                    let result = if line.rest_ts == 0 {
                        Err("the live request failed".to_string())
                    } else {
                        let key = (line.exchange, line.market, symbol.clone());
                        match (bodies.remove(&key), &specs[source as usize]) {
                            (Some((at, body)), Some(spec)) if at == line.rest_ts => {
                                match spec.source.as_ref() {
                                    Some(src) => src.parse(&body),
                                    None => Err("no REST source".to_string()),
                                }
                            }
                            _ => {
                                stats.missing_bodies += 1;
                                Err("REST body not in the capture".to_string())
                            }
                        }
                    };
                    let _ = replies.send(SnapshotResponse {
                        source,
                        symbol,
                        result,
                        receive_ts_ns: line.rest_ts,
                    });
                    inline.tick_at(ts);
                    continue;
                }
                _ => {}
            }
            if line.rest.is_some() {
                stats.rest_bodies += 1;
                if let (Some(symbol), Some(raw)) = (line.symbol, line.raw) {
                    bodies.insert((line.exchange, line.market, symbol), (ts, raw));
                }
                continue;
            }
            let kind = match line.event.as_deref() {
                None => FrameKind::Data,
                Some("connected") => FrameKind::Connected,
                Some("disconnected") => FrameKind::Disconnected,
                Some("subscribed") => FrameKind::Subscribed,
                Some("dropped") => FrameKind::Dropped,
                Some(_) => {
                    stats.bad += 1;
                    continue;
                }
            };
            let source = match routes.conns.get(&line.conn) {
                Some(s) => *s,
                None => match routes.plan(&line.exchange, &line.market) {
                    Some(s) => s,
                    None => {
                        stats.unmatched += 1;
                        continue;
                    }
                },
            };
            let (conn, session) = (line.conn, line.session);
            if kind == FrameKind::Data {
                let Some(raw) = line.raw else {
                    stats.bad += 1;
                    continue;
                };
                stats.frames += 1;
                // A capture that starts mid-connection (a later file of a rotation): the
                // connection is live from its first frame, as it was.
                if routes.connected.insert(conn) {
                    inline.process(&mut |f: &mut Frame| {
                        marker(f, conn, session, source, FrameKind::Connected, ts)
                    });
                }
                inline.process(&mut |f: &mut Frame| {
                    f.fill(raw.as_bytes());
                    f.conn = conn;
                    f.session = session;
                    f.source = source;
                    f.recv_ts_ns = ts;
                });
            } else {
                stats.markers += 1;
                if kind == FrameKind::Connected {
                    routes.connected.insert(conn);
                }
                inline.process(&mut |f: &mut Frame| marker(f, conn, session, source, kind, ts));
            }
        }
    }
    inline.stage_mut().publish();
    stats.duplicates = inline.stage_mut().sessions.duplicates;
    inline.finish();
    let failed_close = done_rx.recv().unwrap_or(0);
    stats.events = metrics.events.totals().iter().sum();
    stats.bad += metrics.parse_errors.totals().iter().sum::<u64>();
    let failed_writes: u64 = metrics.publish_errors.totals().iter().sum();
    if failed_writes > 0 || failed_close > 0 {
        return Err(format!(
            "{failed_writes} records could not be written and {failed_close} sinks failed to close (see the log)"
        ));
    }
    Ok(stats)
}

/// A connection marker in `f`.
fn marker(f: &mut Frame, conn: u32, session: u32, source: u16, kind: FrameKind, ts: i64) {
    f.buf.clear();
    f.len = 0;
    f.conn = conn;
    f.session = session;
    f.source = source;
    f.kind = kind;
    f.recv_ts_ns = ts;
}

/// A `conn` line: the connection's streams for its sessions and gaps, and books for the
/// symbols it carried.
fn register(
    inline: &mut Inline,
    routes: &mut Routes,
    interned: &mut Names,
    specs: &[Option<BookSpec>],
    metrics: &Metrics,
    line: Line,
) {
    let Some(source) = routes.plan(&line.exchange, &line.market) else {
        return;
    };
    routes.conns.insert(line.conn, source);
    let (exchange, market) = routes.plans[source as usize];
    let streams: Vec<StreamSpec> = line
        .streams
        .into_iter()
        .map(|s| StreamSpec {
            market: if s.market.is_empty() {
                ""
            } else {
                interned.get(&s.market)
            },
            name: s.name,
            channel: s.channel,
            symbol: s.symbol,
            book: s.book,
            watched: s.watched,
        })
        .collect();
    let stage = inline.stage_mut();
    stage.sessions.add(
        line.conn,
        Duration::from_millis(line.rollover_timeout_ms.max(1)),
    );
    stage.gaps.add(line.conn, exchange, market, &streams);
    if let (Some(books), Some(Some(spec))) = (stage.books.as_mut(), specs.get(source as usize)) {
        let mut spec = spec.clone();
        spec.symbols = streams
            .iter()
            .filter(|s| s.book && !s.symbol.is_empty())
            .map(|s| s.symbol.clone())
            .collect();
        if !spec.symbols.is_empty()
            && let Some(Some(counters)) = crate::book::counters(&[Some(spec.clone())], metrics)
                .into_iter()
                .next()
        {
            books.add_symbols(source as usize, &spec, &counters);
        }
    }
}
