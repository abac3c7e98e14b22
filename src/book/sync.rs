//! One symbol's local book and its synchronisation: diffs are buffered from the first one on,
//! a snapshot is loaded, the buffered diffs that follow it are applied, then live diffs; how
//! update ids chain is the exchange's [`SequenceRules`] (Binance's: `exchange/binance/sequence.rs`).
//!
//! A snapshot older than the first buffered diff is fetched again. A gap or a crossed book re-syncs
//! this symbol only; its diffs keep being buffered meanwhile (bounded: the oldest are dropped, which
//! only asks for a newer snapshot).

use super::price::{Dec, price_key};
use super::side::Side;
use crate::event::Levels;

/// How an exchange chains a symbol's book updates, supplied by its adapter (`BookSpec::rules`):
/// the book itself (levels, buffering, snapshot loading) is the same for every exchange.
pub trait SequenceRules: Send + Sync + std::fmt::Debug {
    /// Continuity of a diff `[first, last]` (`prev`: its predecessor's last id, when the exchange
    /// sends it) against a book whose last applied id is `l`; `fresh`: the first diff since the
    /// snapshot. `Applied` means apply it; `Stale` already in the book; `Gap` a break.
    fn check(&self, l: u64, first: u64, last: u64, prev: Option<u64>, fresh: bool) -> Outcome;

    /// Whether a diff reaches back to a snapshot at `l` (no update between the two is missing).
    /// A snapshot that no buffered diff reaches, while all of them are newer, is too old.
    fn reaches(&self, l: u64, first: u64, prev: Option<u64>) -> bool;

    /// The exchange's checksum of a book (OKX: CRC32 of the top 25 levels), compared with the one
    /// a push carries; `None` where the exchange defines none.
    fn checksum(&self, _bids: &Side, _asks: &Side) -> Option<i32> {
        None
    }
}

/// The rules a book follows.
pub type Rules = &'static dyn SequenceRules;

/// A diff's ids and levels, borrowed from the decoded event (no copy on the live path).
#[derive(Debug, Clone, Copy)]
pub struct DiffRef<'a> {
    pub first: u64,
    pub last: u64,
    pub prev: Option<u64>,
    /// The diff's exchange event time (ns; 0 when unknown).
    pub ts_ns: i64,
    /// The diff's matching-engine time (USD-M `T`, ns; 0 when not sent).
    pub txn_ts_ns: i64,
    pub bids: &'a Levels,
    pub asks: &'a Levels,
    /// The exchange's checksum of the book after this diff, when it sent one.
    pub checksum: Option<i32>,
}

impl<'a> DiffRef<'a> {
    /// A decoded depth diff as the book takes it.
    #[inline]
    pub fn of(d: &'a crate::event::DepthDiff, ts_ns: i64, txn_ts_ns: i64) -> DiffRef<'a> {
        DiffRef {
            first: d.first_update_id,
            last: d.last_update_id,
            prev: d.prev_last_update_id,
            ts_ns,
            txn_ts_ns,
            bids: &d.bids,
            asks: &d.asks,
            checksum: d.checksum,
        }
    }
}

/// A parsed level of a buffered diff or a snapshot.
pub type OwnedLevel = (u128, Dec, Dec);

/// A buffered diff (copied only while syncing).
#[derive(Debug, Clone)]
pub struct OwnedDiff {
    pub first: u64,
    pub last: u64,
    pub prev: Option<u64>,
    pub ts_ns: i64,
    pub txn_ts_ns: i64,
    pub bids: Vec<OwnedLevel>,
    pub asks: Vec<OwnedLevel>,
    pub checksum: Option<i32>,
}

/// A REST snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub last_update_id: u64,
    /// The exchange's message time of the snapshot (USD-M `E`; 0 where none is sent, as on spot).
    pub exchange_ts_ns: i64,
    /// The matching engine's time of the snapshot (USD-M `T`; 0 where none is sent).
    pub transaction_ts_ns: i64,
    pub bids: Vec<(String, String)>,
    pub asks: Vec<(String, String)>,
    /// The exchange's checksum of this book, when it sent one (OKX `books` snapshot push).
    pub checksum: Option<i32>,
}

impl Snapshot {
    /// A full book the exchange pushed as a depth event (OKX `books` `snapshot`), its levels
    /// copied (once per subscription, not per update).
    pub fn pushed(d: &crate::event::DepthDiff, exchange_ts_ns: i64) -> Snapshot {
        let own = |l: &Levels| -> Vec<(String, String)> {
            l.iter()
                .map(|(p, q)| (p.to_string(), q.to_string()))
                .collect()
        };
        Snapshot {
            last_update_id: d.last_update_id,
            exchange_ts_ns,
            transaction_ts_ns: 0,
            bids: own(&d.bids),
            asks: own(&d.asks),
            checksum: d.checksum,
        }
    }
}

/// What a diff or snapshot did to the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to a synced book.
    Applied,
    /// Older than the book: ignored.
    Stale,
    /// Kept for when the snapshot arrives.
    Buffered,
    /// A sequence break: the book was discarded and a new snapshot is needed.
    Gap,
    /// The book crossed (best bid >= best ask): discarded, new snapshot needed.
    Crossed,
    /// A level could not be parsed: discarded, new snapshot needed.
    BadLevel,
    /// The snapshot is older than the buffered stream: fetch again.
    SnapshotTooOld,
    /// The book differs from the exchange's checksum of it: discarded, new snapshot needed.
    ChecksumMismatch,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a snapshot; `requested` once a request is out.
    Syncing { requested: bool },
    /// Synced; `fresh` until the first diff after the snapshot (futures bracket rule).
    Live { fresh: bool },
}

/// A symbol's book and sync state.
#[derive(Debug)]
pub struct SymbolBook {
    pub rules: Rules,
    pub bids: Side,
    pub asks: Side,
    pub last_update_id: u64,
    /// Exchange time of the newest change the book holds: the last applied diff's event time, or
    /// the snapshot's own time (USD-M `T`/`E`), or (spot, whose snapshot has no time) the newest
    /// diff the snapshot already contained. 0 until known.
    pub exchange_ts_ns: i64,
    /// Matching-engine time of the same change where the exchange sends one (USD-M `T`).
    pub transaction_ts_ns: i64,
    phase: Phase,
    buffer: std::collections::VecDeque<OwnedDiff>,
    max_buffer: usize,
    /// Connection its diffs arrive on (a disconnect re-syncs it).
    pub conn: u32,
    pub updates_since_emit: u64,
    pub last_emit_ns: i64,
    /// Diffs applied to a synced book, and diffs dropped as not after the book (lifetime counts).
    pub applied: u64,
    pub dropped: u64,
}

fn parse_levels(levels: &Levels) -> Option<Vec<OwnedLevel>> {
    levels.iter().map(|(p, q)| level(p, q)).collect()
}

/// One level as the book keeps it: the price's ordering key, the exchange's exact price, and a
/// quantity that must be a plain non-negative decimal; `None` for anything else.
#[inline]
fn level(price: &str, qty: &str) -> Option<OwnedLevel> {
    Some((price_key(price)?, Dec::new(price)?, Dec::quantity(qty)?))
}

impl SymbolBook {
    pub fn new(rules: Rules, max_buffer: usize) -> SymbolBook {
        SymbolBook {
            rules,
            bids: Side::new(true),
            asks: Side::new(false),
            last_update_id: 0,
            exchange_ts_ns: 0,
            transaction_ts_ns: 0,
            phase: Phase::Syncing { requested: false },
            buffer: std::collections::VecDeque::new(),
            max_buffer: max_buffer.max(1),
            conn: 0,
            updates_since_emit: 0,
            last_emit_ns: 0,
            applied: 0,
            dropped: 0,
        }
    }

    /// True while the book is synced (snapshots may be published).
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live { .. })
    }

    /// True when a snapshot request should be sent (syncing, none outstanding); marks it sent.
    pub fn take_request(&mut self) -> bool {
        match &mut self.phase {
            Phase::Syncing { requested } if !*requested => {
                *requested = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets the book and starts over (gap, crossed, disconnect).
    pub fn resync(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.buffer.clear();
        self.phase = Phase::Syncing { requested: false };
    }

    /// Forgets the buffered diffs: they all precede a snapshot the exchange pushed on the same
    /// connection (OKX sends a subscription's snapshot before its updates), so none can follow it,
    /// whatever their ids (a `seqId` reset makes older ids larger).
    pub fn discard_buffer(&mut self) {
        self.dropped += self.buffer.len() as u64;
        self.buffer.clear();
    }

    /// A diff from the stream.
    pub fn on_diff(&mut self, d: DiffRef<'_>) -> Outcome {
        match self.phase {
            Phase::Syncing { .. } => self.buffer_diff(d),
            Phase::Live { fresh } => {
                let out = self.check_live(d.first, d.last, d.prev, fresh);
                if out == Outcome::Gap {
                    // The diff that revealed the break is the first of the new buffer: the
                    // snapshot about to be fetched is usually taken inside its `[U, u]` (a 100 ms
                    // diff spans many update ids), and without it that snapshot would be one
                    // diff short and re-synced again at once.
                    self.resync();
                    if self.buffer_diff(d) == Outcome::BadLevel {
                        return Outcome::BadLevel;
                    }
                    return Outcome::Gap;
                }
                if out != Outcome::Applied {
                    return self.fail(out);
                }
                let ok = [(&mut self.bids, d.bids), (&mut self.asks, d.asks)]
                    .into_iter()
                    .all(|(side, levels)| {
                        levels.iter().all(|(price, qty)| {
                            level(price, qty)
                                .map(|(k, p, q)| side.set(k, p, q))
                                .is_some()
                        })
                    });
                if !ok {
                    return self.fail(Outcome::BadLevel);
                }
                let out = self.finish(d.last, d.ts_ns, d.txn_ts_ns);
                self.verify(out, d.checksum)
            }
        }
    }

    /// Keeps a diff for when the snapshot arrives (the oldest goes when the buffer is full).
    fn buffer_diff(&mut self, d: DiffRef<'_>) -> Outcome {
        let (Some(bids), Some(asks)) = (parse_levels(d.bids), parse_levels(d.asks)) else {
            return Outcome::BadLevel;
        };
        if self.buffer.len() >= self.max_buffer {
            self.buffer.pop_front();
        }
        self.buffer.push_back(OwnedDiff {
            first: d.first,
            last: d.last,
            prev: d.prev,
            ts_ns: d.ts_ns,
            txn_ts_ns: d.txn_ts_ns,
            bids,
            asks,
            checksum: d.checksum,
        });
        Outcome::Buffered
    }

    /// Continuity of a diff against a synced book; `Applied` means "apply it".
    #[inline]
    fn check_live(&self, first: u64, last: u64, prev: Option<u64>, fresh: bool) -> Outcome {
        self.rules
            .check(self.last_update_id, first, last, prev, fresh)
    }

    fn finish(&mut self, last: u64, ts_ns: i64, txn_ts_ns: i64) -> Outcome {
        self.applied += 1;
        self.last_update_id = last;
        if ts_ns > 0 {
            self.exchange_ts_ns = ts_ns;
        }
        self.transaction_ts_ns = txn_ts_ns;
        self.phase = Phase::Live { fresh: false };
        if let (Some(b), Some(a)) = (self.bids.best(), self.asks.best())
            && b.key >= a.key
        {
            return self.fail(Outcome::Crossed);
        }
        self.updates_since_emit += 1;
        Outcome::Applied
    }

    /// Compares an applied book with the exchange's checksum of it, where one was sent.
    #[inline]
    fn verify(&mut self, out: Outcome, sent: Option<i32>) -> Outcome {
        if out == Outcome::Applied
            && let Some(sent) = sent
            && let Some(ours) = self.rules.checksum(&self.bids, &self.asks)
            && ours != sent
        {
            return self.fail(Outcome::ChecksumMismatch);
        }
        out
    }

    fn fail(&mut self, out: Outcome) -> Outcome {
        if matches!(out, Outcome::Stale) {
            self.dropped += 1;
            return out;
        }
        self.resync();
        out
    }

    /// A REST snapshot arrived: load it and apply the buffered diffs by the rules.
    pub fn on_snapshot(&mut self, s: &Snapshot) -> Outcome {
        let l = s.last_update_id;
        // Too old for what we already buffered: fetch again, keep the buffer.
        if let Some(first) = self.buffer.front()
            && self.buffer.iter().all(|d| d.last > l)
            && !self.rules.reaches(l, first.first, first.prev)
        {
            self.phase = Phase::Syncing { requested: false };
            return Outcome::SnapshotTooOld;
        }
        self.bids.clear();
        self.asks.clear();
        let ok = [(&mut self.bids, &s.bids), (&mut self.asks, &s.asks)]
            .into_iter()
            .all(|(side, levels)| {
                levels
                    .iter()
                    .all(|(p, q)| level(p, q).map(|(k, pd, qd)| side.set(k, pd, qd)).is_some())
            });
        if !ok {
            return self.fail(Outcome::BadLevel);
        }
        self.last_update_id = l;
        self.exchange_ts_ns = if s.exchange_ts_ns > 0 {
            s.exchange_ts_ns
        } else {
            s.transaction_ts_ns
        };
        self.transaction_ts_ns = s.transaction_ts_ns;
        self.phase = Phase::Live { fresh: true };
        if self.verify(Outcome::Applied, s.checksum) != Outcome::Applied {
            return Outcome::ChecksumMismatch;
        }
        let buffered: Vec<OwnedDiff> = self.buffer.drain(..).collect();
        let mut out = Outcome::Applied;
        for (i, d) in buffered.iter().enumerate() {
            let Phase::Live { fresh } = self.phase else {
                break;
            };
            match self.check_live(d.first, d.last, d.prev, fresh) {
                Outcome::Stale => {
                    self.dropped += 1;
                    if s.exchange_ts_ns == 0 && s.transaction_ts_ns == 0 {
                        // Already in the snapshot: the newest such diff dates the book.
                        self.exchange_ts_ns = self.exchange_ts_ns.max(d.ts_ns);
                    }
                    continue;
                }
                Outcome::Applied => {
                    for (k, p, q) in &d.bids {
                        self.bids.set(*k, *p, *q);
                    }
                    for (k, p, q) in &d.asks {
                        self.asks.set(*k, *p, *q);
                    }
                    out = self.finish(d.last, d.ts_ns, d.txn_ts_ns);
                    out = self.verify(out, d.checksum);
                    if out != Outcome::Applied {
                        return out;
                    }
                }
                other => {
                    // A break inside the buffer: keep what follows, fetch a newer snapshot.
                    self.resync();
                    self.buffer.extend(buffered[i..].iter().cloned());
                    return other;
                }
            }
        }
        if let (Some(b), Some(a)) = (self.bids.best(), self.asks.best())
            && b.key >= a.key
        {
            return self.fail(Outcome::Crossed);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::binance::sequence::Sequence;

    fn lv(p: &str, q: &str) -> Levels {
        let mut l = Levels::default();
        l.push(p, q);
        l
    }

    fn snap(l: u64) -> Snapshot {
        Snapshot {
            last_update_id: l,
            bids: vec![("10".into(), "1".into())],
            asks: vec![("11".into(), "1".into())],
            ..Snapshot::default()
        }
    }

    #[test]
    fn spot_buffer_snapshot_gap() {
        let mut b = SymbolBook::new(&Sequence::Spot, 100);
        let bids = lv("10", "2");
        let none = Levels::default();
        let d = |f, l| DiffRef {
            first: f,
            last: l,
            prev: None,
            ts_ns: 0,
            txn_ts_ns: 0,
            bids: &bids,
            asks: &none,
            checksum: None,
        };
        assert_eq!(b.on_diff(d(100, 105)), Outcome::Buffered);
        assert!(b.take_request());
        assert!(!b.take_request());
        assert_eq!(b.on_diff(d(106, 107)), Outcome::Buffered);
        // Snapshot older than the first buffered diff: fetch again.
        assert_eq!(b.on_snapshot(&snap(90)), Outcome::SnapshotTooOld);
        assert!(b.take_request());
        assert_eq!(b.on_snapshot(&snap(103)), Outcome::Applied);
        assert!(b.is_live());
        assert_eq!(b.last_update_id, 107);
        assert_eq!(b.bids.best().unwrap().qty.as_str(), "2");
        assert_eq!(b.on_diff(d(108, 108)), Outcome::Applied);
        assert_eq!(b.on_diff(d(100, 108)), Outcome::Stale);
        assert_eq!(b.on_diff(d(110, 111)), Outcome::Gap);
        assert!(!b.is_live());
    }

    #[test]
    fn futures_bracket_and_pu_chain() {
        let mut b = SymbolBook::new(&Sequence::Futures, 100);
        let none = Levels::default();
        let d = |f, l, p| DiffRef {
            first: f,
            last: l,
            prev: Some(p),
            ts_ns: 0,
            txn_ts_ns: 0,
            bids: &none,
            asks: &none,
            checksum: None,
        };
        assert_eq!(b.on_diff(d(90, 95, 80)), Outcome::Buffered);
        assert_eq!(b.on_diff(d(97, 120, 95)), Outcome::Buffered);
        // L = 100: drop u < 100, first applied brackets 100.
        assert_eq!(b.on_snapshot(&snap(100)), Outcome::Applied);
        assert_eq!(b.last_update_id, 120);
        assert_eq!(b.on_diff(d(125, 130, 120)), Outcome::Applied);
        assert_eq!(b.on_diff(d(131, 140, 129)), Outcome::Gap);
    }

    #[test]
    fn crossed_book_resyncs() {
        let mut b = SymbolBook::new(&Sequence::Spot, 100);
        b.take_request();
        assert_eq!(b.on_snapshot(&snap(5)), Outcome::Applied);
        let bad = lv("11.5", "1");
        let none = Levels::default();
        let d = DiffRef {
            first: 6,
            last: 6,
            prev: None,
            ts_ns: 0,
            txn_ts_ns: 0,
            bids: &bad,
            asks: &none,
            checksum: None,
        };
        assert_eq!(b.on_diff(d), Outcome::Crossed);
        assert!(!b.is_live());
        assert!(b.bids.is_empty());
    }

    /// A gap revealed by a diff whose range holds the next snapshot's id (the usual case on the
    /// real exchange): that diff is kept, so one snapshot re-syncs the book.
    #[test]
    fn gap_diff_is_buffered_for_a_snapshot_taken_inside_it() {
        for rules in [&Sequence::Spot as Rules, &Sequence::Futures] {
            let mut b = SymbolBook::new(rules, 100);
            let bids = lv("10", "3");
            let none = Levels::default();
            let d = |f, l, p, ts| DiffRef {
                first: f,
                last: l,
                prev: Some(p),
                ts_ns: ts,
                txn_ts_ns: 0,
                bids: &bids,
                asks: &none,
                checksum: None,
            };
            b.take_request();
            assert_eq!(b.on_snapshot(&snap(100)), Outcome::Applied);
            assert_eq!(b.on_diff(d(101, 105, 100, 1)), Outcome::Applied);
            // 106..=109 never arrived: the next diff reveals the break.
            assert_eq!(b.on_diff(d(110, 120, 109, 2)), Outcome::Gap);
            assert!(b.take_request(), "one snapshot asked for");
            // Taken at 115, inside the diff that revealed the gap, before the next one arrived.
            assert_eq!(b.on_snapshot(&snap(115)), Outcome::Applied, "{rules:?}");
            assert_eq!(b.last_update_id, 120);
            assert_eq!(b.exchange_ts_ns, 2);
            assert_eq!(b.bids.best().unwrap().qty.as_str(), "3");
            assert!(!b.take_request(), "no second snapshot");
            assert_eq!(b.on_diff(d(121, 125, 120, 3)), Outcome::Applied);
        }
    }

    #[test]
    fn negative_and_malformed_quantities_never_enter_the_book() {
        let mut b = SymbolBook::new(&Sequence::Spot, 100);
        let mut s = snap(5);
        s.bids.push(("9".into(), "-0".into()));
        assert_eq!(b.on_snapshot(&s), Outcome::BadLevel);
        let mut s = snap(5);
        s.asks.push(("12".into(), "1e3".into()));
        assert_eq!(b.on_snapshot(&s), Outcome::BadLevel);
        assert_eq!(b.on_snapshot(&snap(5)), Outcome::Applied);
        let neg = lv("10", "-1");
        let none = Levels::default();
        let d = DiffRef {
            first: 6,
            last: 6,
            prev: None,
            ts_ns: 0,
            txn_ts_ns: 0,
            bids: &neg,
            asks: &none,
            checksum: None,
        };
        assert_eq!(b.on_diff(d), Outcome::BadLevel);
        assert!(b.bids.is_empty());
    }

    #[test]
    fn update_ids_at_the_top_of_the_range_do_not_overflow() {
        let mut b = SymbolBook::new(&Sequence::Spot, 100);
        b.take_request();
        assert_eq!(b.on_snapshot(&snap(u64::MAX - 1)), Outcome::Applied);
        let none = Levels::default();
        let d = |f, l| DiffRef {
            first: f,
            last: l,
            prev: None,
            ts_ns: 0,
            txn_ts_ns: 0,
            bids: &none,
            asks: &none,
            checksum: None,
        };
        assert_eq!(b.on_diff(d(u64::MAX, u64::MAX)), Outcome::Applied);
        assert_eq!(b.on_diff(d(u64::MAX, u64::MAX)), Outcome::Stale);
        let mut b = SymbolBook::new(&Sequence::Spot, 100);
        b.on_diff(d(u64::MAX, u64::MAX));
        assert_eq!(b.on_snapshot(&snap(u64::MAX)), Outcome::Applied);
    }
}
