//! Local order books, maintained in the parser thread that decodes the symbol's depth diffs.
//!
//! For every symbol subscribed with a depth channel: buffer diffs from the moment they arrive, ask
//! the REST pool ([`rest`]) for a snapshot after the first one, apply the exchange's procedure
//! ([`sync`]), and publish `book_snapshot` events (best first, `book.depth` levels) every
//! `snapshot_interval_ms` and/or every `snapshot_every_updates` applied diffs. A gap, a crossed book
//! or a disconnect re-syncs that symbol only; meanwhile its diffs are published with
//! `resyncing: true` and no snapshot is. Every gap, re-sync and crossed book is counted per symbol
//! (`book_gaps_total`, `book_resyncs_total`, `book_crossed_total`) and logged.

pub mod price;
pub mod rest;
pub mod side;
pub mod sync;

use crate::event::{Event, EventKind, set};
use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, Sender};
use rest::{SnapshotRequest, SnapshotResponse, SnapshotSource};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use sync::{DiffRef, Outcome, Rules, Snapshot, SymbolBook};

/// The top-level `book:` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookConfig {
    /// Maintain local books for symbols subscribed with a depth channel.
    pub enabled: bool,
    /// Publish a snapshot of each synced book at least this often (0 = off).
    pub snapshot_interval_ms: u64,
    /// Publish a snapshot after every N applied diffs (0 = off; 1 = after every diff).
    pub snapshot_every_updates: u64,
    /// Levels per side in a published snapshot (0 = the full book).
    pub depth: u32,
    /// Levels per side of the REST snapshot (spot up to 5000, USD-M one of 5, 10, 20, 50, 100,
    /// 500, 1000); an exchange section's `rest_snapshot_limit` overrides it for that market.
    pub rest_snapshot_limit: u32,
    /// REST snapshot requests in flight at once, all exchanges together.
    pub max_concurrent_snapshots: usize,
    /// A cap on every REST host's request weight per minute (0: each host's own budget,
    /// `exchanges.<market>.rest_weight_per_minute`, Binance spot 6000, USD-M 2400 per IP).
    pub rest_weight_budget: u32,
    /// Diffs kept per symbol while waiting for a snapshot (the oldest are dropped beyond).
    pub max_buffered_diffs: usize,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig {
            enabled: true,
            snapshot_interval_ms: 1000,
            snapshot_every_updates: 0,
            depth: 20,
            rest_snapshot_limit: 1000,
            max_concurrent_snapshots: 2,
            rest_weight_budget: 0,
            max_buffered_diffs: 10_000,
        }
    }
}

/// What an exchange plan says about its books.
#[derive(Debug, Clone)]
pub struct BookSpec {
    pub rules: Rules,
    pub exchange: &'static str,
    pub market: &'static str,
    /// A symbol's own market where one plan spans several (OKX instIds); `None`: `market`.
    pub market_of: Option<fn(&str) -> &'static str>,
    /// Symbols with a depth channel.
    pub symbols: Vec<String>,
    /// Where snapshots come from: a REST source (Binance), or `None` when the exchange pushes
    /// them in the stream (OKX `books`, Deribit): the parser hands them to
    /// [`Books::on_stream_snapshot`] and no REST request is ever made for this market.
    pub source: Option<Arc<dyn SnapshotSource>>,
    /// Largest REST snapshot the exchange serves.
    pub max_snapshot_limit: u32,
    /// The only `limit` values the endpoint accepts (empty: any up to the maximum).
    pub accepted_limits: &'static [u32],
    /// This market's own snapshot size (`exchanges.<market>.rest_snapshot_limit`).
    pub snapshot_limit: Option<u32>,
    /// Stream markets: how to make the exchange push a fresh snapshot of one symbol (OKX:
    /// unsubscribe + subscribe its `books` channel), sent on the symbol's connection when its book
    /// must re-sync. `None`: the market has no such request (the book waits for the next push).
    pub resubscribe: Option<Arc<dyn Resubscribe>>,
}

/// The messages that make an exchange push a symbol's book snapshot again, over the connection
/// that carries it (the parser hands them to the connection's reader, paced like subscriptions).
pub trait Resubscribe: Send + Sync + std::fmt::Debug {
    fn messages(&self, symbol: &str) -> Vec<String>;
}

/// Messages a book asks to send on one of its parser's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub conn: u32,
    pub messages: Vec<String>,
}

/// Per-symbol counters, registered once and shared by every parser.
#[derive(Clone)]
pub struct BookCounters {
    gaps: Arc<AtomicU64>,
    resyncs: Arc<AtomicU64>,
    crossed: Arc<AtomicU64>,
    checksum_failures: Arc<AtomicU64>,
}

/// Registers the per-symbol book counters of every spec (indexed like `specs`).
pub fn counters(
    specs: &[Option<BookSpec>],
    metrics: &Metrics,
) -> Vec<Option<HashMap<String, BookCounters>>> {
    specs
        .iter()
        .map(|s| {
            s.as_ref().map(|spec| {
                spec.symbols
                    .iter()
                    .map(|sym| {
                        let l = [
                            ("exchange", spec.exchange),
                            ("market", spec.market_of.map_or(spec.market, |f| f(sym))),
                            ("symbol", sym.as_str()),
                        ];
                        (
                            sym.clone(),
                            BookCounters {
                                gaps: metrics.counter(
                                    "book_gaps_total",
                                    "Sequence gaps seen in depth diffs.",
                                    &l,
                                ),
                                resyncs: metrics.counter(
                                    "book_resyncs_total",
                                    "Local book re-syncs (gap, crossed, disconnect).",
                                    &l,
                                ),
                                crossed: metrics.counter(
                                    "book_crossed_total",
                                    "Crossed local books caught (never published).",
                                    &l,
                                ),
                                checksum_failures: metrics.counter(
                                    "book_checksum_failures_total",
                                    "Local books that differed from the exchange's checksum (OKX).",
                                    &l,
                                ),
                            },
                        )
                    })
                    .collect()
            })
        })
        .collect()
}

struct SymbolState {
    book: SymbolBook,
    market: &'static str,
    c: BookCounters,
    /// Receive time of the last diff applied (start of a `book_resync` gap).
    last_applied_ns: i64,
    /// When the current re-sync asked for its first snapshot (0: synced); a `book_resync` span.
    resync_started_ns: i64,
    /// Stream markets: when the last re-subscription went out (0: none outstanding), and how many
    /// went out since the book was last synced (a lost one is retried with a growing delay).
    resubscribed_ns: i64,
    resubscribes: u32,
}

/// First delay before a re-subscription that brought no snapshot is sent again; it doubles per
/// attempt up to [`RESUBSCRIBE_RETRY_MAX_NS`] (OKX allows 480 requests per connection per hour).
const RESUBSCRIBE_RETRY_NS: i64 = 10_000_000_000;
const RESUBSCRIBE_RETRY_MAX_NS: i64 = 600_000_000_000;

struct SourceBooks {
    /// Snapshots are fetched over REST (else they arrive in the stream).
    rest: bool,
    resubscribe: Option<Arc<dyn Resubscribe>>,
    exchange: &'static str,
    market: &'static str,
    symbols: HashMap<String, SymbolState>,
}

/// One parser thread's books.
pub struct Books {
    cfg: BookConfig,
    parser: usize,
    sources: Vec<Option<SourceBooks>>,
    requests: Sender<SnapshotRequest>,
    responses: Receiver<SnapshotResponse>,
    event: Event,
    /// Re-syncs logged by this parser (the `count` of the log line).
    resyncs_logged: u64,
    /// Set by `on_diff` when the diff revealed a sequence break: start of the hole.
    gap_from_ns: Option<i64>,
    /// Re-subscriptions for stream-snapshot books, to send on their connections.
    outbox: std::collections::VecDeque<Outgoing>,
    /// Last look for re-subscriptions that brought no snapshot.
    last_retry_check_ns: i64,
    /// Raw capture: records when each REST snapshot is applied (`mdc replay` applies it there).
    pub capture: Option<crate::capture::Tap>,
}

impl Books {
    /// Books for the symbols of `specs` (indexed by source), counting into `counters`.
    pub fn new(
        cfg: BookConfig,
        parser: usize,
        specs: &[Option<BookSpec>],
        counters: &[Option<HashMap<String, BookCounters>>],
        requests: Sender<SnapshotRequest>,
        responses: Receiver<SnapshotResponse>,
    ) -> Books {
        let mut books = Books {
            cfg,
            parser,
            sources: Vec::new(),
            requests,
            responses,
            event: Event::new("", ""),
            resyncs_logged: 0,
            gap_from_ns: None,
            outbox: std::collections::VecDeque::new(),
            last_retry_check_ns: 0,
            capture: None,
        };
        for (i, (spec, c)) in specs.iter().zip(counters).enumerate() {
            if let (Some(spec), Some(c)) = (spec, c) {
                books.add_symbols(i, spec, c);
            }
        }
        books
    }

    /// Adds books for `counters`' symbols of `spec` (instruments listed while running), under
    /// `source`; a symbol already kept is left as it is.
    pub fn add_symbols(
        &mut self,
        source: usize,
        spec: &BookSpec,
        counters: &HashMap<String, BookCounters>,
    ) {
        if self.sources.len() <= source {
            self.sources.resize_with(source + 1, || None);
        }
        let sb = self.sources[source].get_or_insert_with(|| SourceBooks {
            rest: spec.source.is_some(),
            resubscribe: spec.resubscribe.clone(),
            exchange: spec.exchange,
            market: spec.market,
            symbols: HashMap::new(),
        });
        for (sym, c) in counters {
            sb.symbols
                .entry(sym.clone())
                .or_insert_with(|| SymbolState {
                    book: SymbolBook::new(spec.rules, self.cfg.max_buffered_diffs),
                    market: spec.market_of.map_or(spec.market, |f| f(sym)),
                    c: c.clone(),
                    last_applied_ns: 0,
                    resync_started_ns: 0,
                    resubscribed_ns: 0,
                    resubscribes: 0,
                });
        }
    }

    /// Drops the books of `symbols` under `source` (expired instruments).
    pub fn remove_symbols(&mut self, source: usize, symbols: &[String]) {
        if let Some(Some(sb)) = self.sources.get_mut(source) {
            for s in symbols {
                sb.symbols.remove(s);
            }
        }
    }

    /// Messages books want sent on their connections (stream-snapshot re-syncs), oldest first.
    pub fn take_outbox(&mut self) -> Option<Outgoing> {
        self.outbox.pop_front()
    }

    /// Asks for a new snapshot of `symbol` if its book wants one: from the REST pool, or by
    /// re-subscribing on its connection.
    fn request(
        requests: &Sender<SnapshotRequest>,
        outbox: &mut std::collections::VecDeque<Outgoing>,
        (parser, source): (usize, u16),
        (exchange, rest, resubscribe): (&str, bool, Option<&dyn Resubscribe>),
        st: &mut SymbolState,
        symbol: &str,
        now_ns: i64,
    ) {
        if !st.book.take_request() {
            return;
        }
        if st.resync_started_ns == 0 {
            st.resync_started_ns = crate::clock::realtime_ns();
        }
        if rest {
            let _ = requests.send(SnapshotRequest {
                parser,
                source,
                symbol: symbol.to_string(),
            });
        } else if let Some(r) = resubscribe {
            log::info!(
                "event=book_resubscribe exchange={exchange} symbol={symbol} conn={}",
                st.book.conn
            );
            outbox.push_back(Outgoing {
                conn: st.book.conn,
                messages: r.messages(symbol),
            });
            st.resubscribed_ns = now_ns;
            st.resubscribes += 1;
        }
    }

    /// Re-subscribes, once more, every stream-snapshot book whose last re-subscription brought no
    /// snapshot within its delay (10 s, doubling per attempt, at most 10 min): a request lost with
    /// its connection's write, or refused, must not leave a book re-syncing forever. Looks once
    /// per second.
    fn retry_resubscribes(&mut self, now_ns: i64) {
        if now_ns - self.last_retry_check_ns < 1_000_000_000 {
            return;
        }
        self.last_retry_check_ns = now_ns;
        for (source, sb) in self.sources.iter_mut().enumerate() {
            let Some(sb) = sb.as_mut() else { continue };
            if sb.rest || sb.resubscribe.is_none() {
                continue;
            }
            let how = (sb.exchange, sb.rest, sb.resubscribe.as_deref());
            for (symbol, st) in sb.symbols.iter_mut() {
                if st.book.is_live() || st.resubscribed_ns == 0 {
                    continue;
                }
                let shift = st.resubscribes.saturating_sub(1).min(6);
                let delay = (RESUBSCRIBE_RETRY_NS << shift).min(RESUBSCRIBE_RETRY_MAX_NS);
                if now_ns - st.resubscribed_ns < delay {
                    continue;
                }
                log::warn!(
                    "event=book_resubscribe_retry exchange={} symbol={symbol} attempt={} waited_ms={}",
                    sb.exchange,
                    st.resubscribes + 1,
                    (now_ns - st.resubscribed_ns) / 1_000_000
                );
                st.book.resync();
                Self::request(
                    &self.requests,
                    &mut self.outbox,
                    (self.parser, source as u16),
                    how,
                    st,
                    symbol,
                    now_ns,
                );
            }
        }
    }

    /// Applies a decoded depth diff (marks it `resyncing` when the book is not synced); true when a
    /// book snapshot is due right after this diff (call [`Books::snapshot`]).
    pub fn on_diff(&mut self, source: u16, conn: u32, ev: &mut Event, now_ns: i64) -> bool {
        if ev.depth.snapshot {
            return self.on_pushed_snapshot(source, conn, ev, now_ns);
        }
        let Some(Some(sb)) = self.sources.get_mut(source as usize) else {
            return false;
        };
        let how = (sb.exchange, sb.rest, sb.resubscribe.as_deref());
        let Some(st) = sb.symbols.get_mut(ev.header.symbol.as_str()) else {
            return false;
        };
        st.book.conn = conn;
        let d = &ev.depth;
        let out = st.book.on_diff(DiffRef::of(
            d,
            ev.header.exchange_ts_ns,
            ev.header.transaction_ts_ns,
        ));
        let exchange = sb.exchange;
        note(
            &mut self.resyncs_logged,
            exchange,
            &ev.header.symbol,
            st,
            out,
            d.first_update_id,
            d.last_update_id,
        );
        ev.depth.resyncing = !st.book.is_live();
        match out {
            Outcome::Applied => st.last_applied_ns = now_ns,
            Outcome::Gap | Outcome::ChecksumMismatch => {
                self.gap_from_ns = Some(if st.last_applied_ns > 0 {
                    st.last_applied_ns
                } else {
                    now_ns
                });
            }
            _ => {}
        }
        Self::request(
            &self.requests,
            &mut self.outbox,
            (self.parser, source),
            how,
            st,
            &ev.header.symbol,
            now_ns,
        );
        if out != Outcome::Applied {
            return false;
        }
        let b = &st.book;
        (self.cfg.snapshot_every_updates > 0
            && b.updates_since_emit >= self.cfg.snapshot_every_updates)
            || (self.cfg.snapshot_interval_ms > 0
                && now_ns - b.last_emit_ns >= self.cfg.snapshot_interval_ms as i64 * 1_000_000)
    }

    /// A depth event that is the exchange's full book (OKX `books` `snapshot`): loads it; true
    /// when the book became synced (its `book_snapshot` is due right after this event). Copies the
    /// levels: pushed snapshots come once per (re)subscription, not per update.
    fn on_pushed_snapshot(&mut self, source: u16, conn: u32, ev: &mut Event, now_ns: i64) -> bool {
        let snap = Snapshot::pushed(&ev.depth, ev.header.exchange_ts_ns);
        let symbol = ev.header.symbol.as_str();
        let out = self.on_stream_snapshot(source, conn, symbol, &snap, now_ns, &mut |_| {});
        let live = self
            .sources
            .get(source as usize)
            .and_then(Option::as_ref)
            .and_then(|sb| sb.symbols.get(symbol))
            .is_some_and(|st| st.book.is_live());
        ev.depth.resyncing = !live;
        if out == Outcome::ChecksumMismatch {
            self.gap_from_ns = Some(now_ns);
        }
        // `load` already marked the snapshot as emitted; the caller emits it after this event.
        live && out == Outcome::Applied
    }

    /// The start of the hole revealed by the last `on_diff`, if it found a sequence break.
    pub fn take_gap(&mut self) -> Option<i64> {
        self.gap_from_ns.take()
    }

    /// Builds the `book_snapshot` event of a synced symbol (`None` when not synced).
    pub fn snapshot(
        &mut self,
        source: u16,
        symbol: &str,
        exchange_ts_ns: i64,
        now_ns: i64,
    ) -> Option<&Event> {
        let sb = self.sources.get_mut(source as usize)?.as_mut()?;
        let st = sb.symbols.get_mut(symbol)?;
        if !st.book.is_live() {
            return None;
        }
        st.book.updates_since_emit = 0;
        st.book.last_emit_ns = now_ns;
        let e = &mut self.event;
        e.kind = Some(EventKind::BookSnapshot);
        e.header.exchange = sb.exchange;
        e.header.market = st.market;
        set(&mut e.header.symbol, symbol);
        e.header.exchange_ts_ns = exchange_ts_ns;
        e.header.transaction_ts_ns = st.book.transaction_ts_ns;
        e.header.receive_ts_ns = now_ns;
        e.clear_book();
        e.book.update_id = st.book.last_update_id;
        e.book.depth = self.cfg.depth;
        let n = if self.cfg.depth == 0 {
            usize::MAX
        } else {
            self.cfg.depth as usize
        };
        for l in st.book.bids.best_first().take(n) {
            e.book.bids.push(l.price.as_str(), l.qty.as_str());
        }
        for l in st.book.asks.best_first().take(n) {
            e.book.asks.push(l.price.as_str(), l.qty.as_str());
        }
        Some(&self.event)
    }

    /// Applies snapshots that arrived from the REST pool; calls `emit` with a `book_snapshot` for
    /// every book that became synced.
    pub fn poll(&mut self, now_ns: i64, emit: &mut dyn FnMut(&Event)) {
        self.retry_resubscribes(now_ns);
        while let Ok(resp) = self.responses.try_recv() {
            // A body that arrived after `now_ns` was taken is applied at its own arrival: the
            // book's snapshot never claims a receive time before its data came.
            let at = now_ns.max(resp.receive_ts_ns);
            if let Some(c) = &self.capture
                && let Some(Some(sb)) = self.sources.get(resp.source as usize)
            {
                c.book_loaded(sb.exchange, sb.market, &resp.symbol, at, resp.receive_ts_ns);
            }
            self.load(resp.source, &resp.symbol, resp.result.as_ref(), at, emit);
        }
    }

    /// A full book the exchange pushed in the stream (OKX `books`, Deribit): replaces the book;
    /// diffs buffered before it are older (same connection, in order) and dropped; `emit` gets the
    /// `book_snapshot` when synced.
    /// Returns what the load did.
    pub fn on_stream_snapshot(
        &mut self,
        source: u16,
        conn: u32,
        symbol: &str,
        snap: &Snapshot,
        now_ns: i64,
        emit: &mut dyn FnMut(&Event),
    ) -> Outcome {
        if let Some(st) = self
            .sources
            .get_mut(source as usize)
            .and_then(Option::as_mut)
            .and_then(|sb| sb.symbols.get_mut(symbol))
        {
            st.book.conn = conn;
            st.book.discard_buffer();
        }
        self.load(source, symbol, Ok(snap), now_ns, emit)
    }

    /// Loads one snapshot (or its failure) into `symbol`'s book.
    fn load(
        &mut self,
        source: u16,
        symbol: &str,
        result: Result<&Snapshot, &String>,
        now_ns: i64,
        emit: &mut dyn FnMut(&Event),
    ) -> Outcome {
        let Some(Some(sb)) = self.sources.get_mut(source as usize) else {
            return Outcome::Stale;
        };
        let exchange = sb.exchange;
        let how = (sb.exchange, sb.rest, sb.resubscribe.as_deref());
        let Some(st) = sb.symbols.get_mut(symbol) else {
            return Outcome::Stale;
        };
        let out = match result {
            Ok(snap) => st.book.on_snapshot(snap),
            Err(e) => {
                log::warn!(
                    "event=book_snapshot_failed exchange={exchange} symbol={symbol} error=\"{e}\""
                );
                st.book.resync();
                Outcome::SnapshotTooOld
            }
        };
        note(&mut self.resyncs_logged, exchange, symbol, st, out, 0, 0);
        Self::request(
            &self.requests,
            &mut self.outbox,
            (self.parser, source),
            how,
            st,
            symbol,
            now_ns,
        );
        if out == Outcome::Applied {
            st.resubscribed_ns = 0;
            st.resubscribes = 0;
            if st.resync_started_ns > 0 && crate::trace::enabled() {
                crate::trace::record(crate::trace::Span {
                    name: "book_resync",
                    start_ns: st.resync_started_ns,
                    end_ns: crate::clock::realtime_ns(),
                    attrs: vec![
                        ("exchange", exchange.into()),
                        ("symbol", symbol.to_string().into()),
                        ("update_id", (st.book.last_update_id as i64).into()),
                    ],
                    error: None,
                });
            }
            st.resync_started_ns = 0;
            log::info!(
                "event=book_synced exchange={exchange} symbol={symbol} update_id={} bids={} asks={}",
                st.book.last_update_id,
                st.book.bids.len(),
                st.book.asks.len()
            );
            let ts = st.book.exchange_ts_ns;
            if let Some(ev) = self.snapshot(source, symbol, ts, now_ns) {
                emit(ev);
            }
        }
        out
    }

    /// A connection ended: every book fed by it re-syncs (its stream had a hole).
    pub fn on_disconnect(&mut self, conn: u32) {
        for sb in self.sources.iter_mut().flatten() {
            for (sym, st) in sb.symbols.iter_mut() {
                if st.book.conn != conn {
                    continue;
                }
                if st.book.is_live() {
                    st.c.resyncs.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "event=book_resync reason=disconnect exchange={} symbol={sym} conn={conn}",
                        sb.exchange
                    );
                }
                st.book.resync();
                // The reconnect subscribes afresh (stream markets push a new snapshot).
                st.resubscribed_ns = 0;
                st.resubscribes = 0;
            }
        }
    }
}

/// Counts and logs what a diff or snapshot did.
fn note(
    logged: &mut u64,
    exchange: &str,
    symbol: &str,
    st: &SymbolState,
    out: Outcome,
    first: u64,
    last: u64,
) {
    let (what, counter) = match out {
        Outcome::Gap => ("gap", Some(&st.c.gaps)),
        Outcome::Crossed => ("crossed", Some(&st.c.crossed)),
        Outcome::ChecksumMismatch => ("checksum", Some(&st.c.checksum_failures)),
        Outcome::BadLevel => ("bad_level", None),
        _ => return,
    };
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
    st.c.resyncs.fetch_add(1, Ordering::Relaxed);
    // Every re-sync is logged: they are bounded by the snapshot rate (one per re-sync).
    *logged += 1;
    log::warn!(
        "event=book_resync reason={what} exchange={exchange} symbol={symbol} first_update_id={first} last_update_id={last} book_update_id={} count={logged}",
        st.book.last_update_id
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Levels;
    use crate::exchange::binance::sequence::Sequence;

    fn diff(ev: &mut Event, first: u64, last: u64, bid: (&str, &str)) {
        ev.kind = Some(EventKind::DepthDiff);
        set(&mut ev.header.symbol, "BTC-USDT");
        ev.depth.first_update_id = first;
        ev.depth.last_update_id = last;
        ev.depth.bids = Levels::default();
        ev.depth.bids.push(bid.0, bid.1);
        ev.depth.asks = Levels::default();
    }

    /// A market whose snapshots arrive in the stream: diffs before the snapshot are buffered and
    /// never trigger a REST request; the pushed snapshot replaces the book (what was buffered
    /// came before it on the same connection), the diffs after it apply, and a `book_snapshot` is
    /// emitted.
    #[test]
    fn stream_snapshots_sync_without_rest() {
        let metrics = Metrics::new(&[]);
        let specs = vec![Some(BookSpec {
            rules: Sequence::Spot.rules(),
            exchange: "okx",
            market: "spot",
            market_of: None,
            symbols: vec!["BTC-USDT".into()],
            source: None,
            max_snapshot_limit: 400,
            accepted_limits: &[],
            snapshot_limit: None,
            resubscribe: None,
        })];
        let counters = counters(&specs, &metrics);
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let (_resp_tx, resp_rx) = crossbeam_channel::unbounded();
        let mut books = Books::new(BookConfig::default(), 0, &specs, &counters, req_tx, resp_rx);
        let mut ev = Event::new("okx", "spot");
        diff(&mut ev, 10, 10, ("100", "1"));
        assert!(!books.on_diff(0, 7, &mut ev, 1));
        assert!(ev.depth.resyncing);
        diff(&mut ev, 11, 11, ("99", "2"));
        books.on_diff(0, 7, &mut ev, 2);
        assert!(
            req_rx.try_recv().is_err(),
            "no REST request for a stream market"
        );

        let snap = Snapshot {
            last_update_id: 11,
            bids: vec![("100".into(), "1".into())],
            asks: vec![("101".into(), "3".into())],
            ..Snapshot::default()
        };
        let mut emitted = Vec::new();
        let out = books.on_stream_snapshot(0, 7, "BTC-USDT", &snap, 3, &mut |e| {
            emitted.push((e.book.update_id, e.book.bids.iter().count()));
        });
        assert_eq!(out, Outcome::Applied);
        assert_eq!(emitted, vec![(11, 1)], "the snapshot alone");
        diff(&mut ev, 12, 12, ("98", "1"));
        books.on_diff(0, 7, &mut ev, 4);
        assert!(!ev.depth.resyncing);
        // A disconnect re-syncs the book; still nothing asked of REST.
        books.on_disconnect(7);
        diff(&mut ev, 20, 20, ("97", "1"));
        books.on_diff(0, 7, &mut ev, 5);
        assert!(ev.depth.resyncing);
        assert!(req_rx.try_recv().is_err());
    }

    #[derive(Debug)]
    struct Resub;
    impl Resubscribe for Resub {
        fn messages(&self, symbol: &str) -> Vec<String> {
            vec![
                format!("unsubscribe {symbol}"),
                format!("subscribe {symbol}"),
            ]
        }
    }

    /// A break re-subscribes the one symbol on its connection; a re-subscription that brings no
    /// snapshot is sent again after 10 s, then 20 s, ...; a snapshot ends it.
    #[test]
    fn lost_resubscriptions_are_retried_with_a_growing_delay() {
        let metrics = Metrics::new(&[]);
        let specs = vec![Some(BookSpec {
            rules: &crate::exchange::okx::sequence::RULES,
            exchange: "okx",
            market: "spot",
            market_of: None,
            symbols: vec!["BTC-USDT".into(), "ETH-USDT".into()],
            source: None,
            max_snapshot_limit: 400,
            accepted_limits: &[],
            snapshot_limit: None,
            resubscribe: Some(Arc::new(Resub)),
        })];
        let counters = counters(&specs, &metrics);
        let (req_tx, _req_rx) = crossbeam_channel::unbounded();
        let (_resp_tx, resp_rx) = crossbeam_channel::unbounded();
        let mut books = Books::new(BookConfig::default(), 0, &specs, &counters, req_tx, resp_rx);
        let s = 1_000_000_000i64;
        let snap = |id| Snapshot {
            last_update_id: id,
            bids: vec![("100".into(), "1".into())],
            asks: vec![("101".into(), "3".into())],
            ..Snapshot::default()
        };
        for sym in ["BTC-USDT", "ETH-USDT"] {
            books.on_stream_snapshot(0, 3, sym, &snap(10), s, &mut |_| {});
        }
        let mut ev = Event::new("okx", "spot");
        diff(&mut ev, 12, 12, ("99", "1"));
        ev.depth.prev_last_update_id = Some(11);
        books.on_diff(0, 3, &mut ev, 2 * s);
        assert!(books.take_gap().is_some());
        let out = books.take_outbox().expect("re-subscription");
        assert_eq!(
            out,
            Outgoing {
                conn: 3,
                messages: vec!["unsubscribe BTC-USDT".into(), "subscribe BTC-USDT".into()]
            }
        );
        assert!(books.take_outbox().is_none(), "only the broken symbol");
        let mut sent_at = Vec::new();
        for t in 3..60 {
            books.poll(t * s, &mut |_| {});
            if books.take_outbox().is_some() {
                sent_at.push(t);
            }
        }
        assert_eq!(
            sent_at,
            vec![12, 32],
            "10 s, then 20 s after the previous one"
        );
        books.on_stream_snapshot(0, 3, "BTC-USDT", &snap(40), 61 * s, &mut |_| {});
        for t in 62..200 {
            books.poll(t * s, &mut |_| {});
            assert!(books.take_outbox().is_none(), "synced: no more retries");
        }
    }
}
