//! The normalized event model every exchange decodes into and every encoder reads from.
//!
//! One [`Event`] is owned per parser thread and reused for every message: its strings and packed
//! levels keep their capacity, so decoding a message allocates nothing once the buffers have grown
//! to the largest message seen (see `tests/alloc.rs`).

pub mod levels;

pub use levels::{Iter as LevelIter, Levels};

use crate::wire;

/// The data type of a normalized event; its name is the JSON `type` field and the file name stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    Trade = 0,
    AggTrade = 1,
    DepthDiff = 2,
    BookTicker = 3,
    BookSnapshot = 4,
    MarkPrice = 5,
    Liquidation = 6,
    OpenInterest = 7,
    LongShortRatio = 8,
    FundingRate = 9,
    Gap = 10,
    VolatilityIndex = 11,
}

impl EventKind {
    /// Every kind, in declaration order (index = `kind as usize`).
    pub const ALL: [EventKind; 12] = [
        EventKind::Trade,
        EventKind::AggTrade,
        EventKind::DepthDiff,
        EventKind::BookTicker,
        EventKind::BookSnapshot,
        EventKind::MarkPrice,
        EventKind::Liquidation,
        EventKind::OpenInterest,
        EventKind::LongShortRatio,
        EventKind::FundingRate,
        EventKind::Gap,
        EventKind::VolatilityIndex,
    ];
    /// Number of kinds; sinks size per-kind tables with it.
    pub const COUNT: usize = Self::ALL.len();

    /// The public name (JSON `type`, Protobuf `Envelope.type`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Trade => "trade",
            EventKind::AggTrade => "agg_trade",
            EventKind::DepthDiff => "depth_diff",
            EventKind::BookTicker => "book_ticker",
            EventKind::BookSnapshot => "book_snapshot",
            EventKind::MarkPrice => "mark_price",
            EventKind::Liquidation => "liquidation",
            EventKind::OpenInterest => "open_interest",
            EventKind::LongShortRatio => "long_short_ratio",
            EventKind::FundingRate => "funding_rate",
            EventKind::Gap => "gap",
            EventKind::VolatilityIndex => "volatility_index",
        }
    }

    /// Field number of this kind's payload in the `Envelope.payload` oneof.
    pub const fn proto_field(self) -> u32 {
        match self {
            EventKind::Trade => 10,
            EventKind::AggTrade => 11,
            EventKind::DepthDiff => 12,
            EventKind::BookTicker => 13,
            EventKind::BookSnapshot => 14,
            EventKind::MarkPrice => 15,
            EventKind::Liquidation => 16,
            EventKind::OpenInterest => 17,
            EventKind::LongShortRatio => 18,
            EventKind::FundingRate => 19,
            EventKind::Gap => 20,
            EventKind::VolatilityIndex => 21,
        }
    }
}

/// Fields every event carries.
#[derive(Debug, Default, Clone)]
pub struct Header {
    /// Exchange name, e.g. "binance".
    pub exchange: &'static str,
    /// Market, e.g. "spot" or "usdm".
    pub market: &'static str,
    /// The exchange's symbol, upper case as sent.
    pub symbol: String,
    /// Exchange event time in ns (trade time for trades); 0 when the exchange sends none.
    pub exchange_ts_ns: i64,
    /// Our receive time in ns, taken right after the socket read.
    pub receive_ts_ns: i64,
    /// The matching engine's time in ns where the exchange sends one next to the event time
    /// (Binance USD-M `T` of depth diffs, book tickers and REST snapshots); 0 otherwise.
    pub transaction_ts_ns: i64,
}

/// A depth diff: the exchange's update ids and the changed levels (quantity 0 removes a level).
/// Mirrors `wire::DepthDiff`, with the levels packed (see [`Levels`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DepthDiff {
    /// Binance `U`.
    pub first_update_id: u64,
    /// Binance `u`.
    pub last_update_id: u64,
    pub bids: Levels,
    pub asks: Levels,
    /// Binance USD-M `pu`: the previous diff's last update id (absent on spot).
    pub prev_last_update_id: Option<u64>,
    /// The collector's local book of this symbol is re-syncing.
    pub resyncing: bool,
    /// The exchange's full-book push (OKX `books` `snapshot`): replaces the book.
    pub snapshot: bool,
    /// The exchange's checksum of its book after this push (OKX CRC32), when sent (non-zero).
    pub checksum: Option<i32>,
}

impl DepthDiff {
    /// The Protobuf message (owned; for tests and tools, not the hot path).
    pub fn to_wire(&self) -> wire::DepthDiff {
        wire::DepthDiff {
            first_update_id: self.first_update_id,
            last_update_id: self.last_update_id,
            bids: self.bids.to_wire(),
            asks: self.asks.to_wire(),
            prev_last_update_id: self.prev_last_update_id,
            resyncing: self.resyncing,
            snapshot: self.snapshot,
            checksum: self.checksum,
        }
    }
}

/// The collector's local book of one symbol after applying diff `update_id`, best first.
/// Mirrors `wire::BookSnapshot`, with the levels packed (see [`Levels`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BookSnapshot {
    pub update_id: u64,
    pub bids: Levels,
    pub asks: Levels,
    /// Levels per side requested (`book.depth`); 0 = the full book.
    pub depth: u32,
}

impl BookSnapshot {
    /// The Protobuf message (owned; for tests and tools, not the hot path).
    pub fn to_wire(&self) -> wire::BookSnapshot {
        wire::BookSnapshot {
            update_id: self.update_id,
            bids: self.bids.to_wire(),
            asks: self.asks.to_wire(),
            depth: self.depth,
        }
    }
}

/// A reusable normalized event: a header plus one payload slot per kind; `kind` says which is valid.
#[derive(Debug, Default)]
pub struct Event {
    pub kind: Option<EventKind>,
    pub header: Header,
    pub trade: wire::Trade,
    pub agg_trade: wire::AggTrade,
    pub depth: DepthDiff,
    pub book_ticker: wire::BookTicker,
    pub book: BookSnapshot,
    pub mark_price: wire::MarkPrice,
    pub liquidation: wire::Liquidation,
    pub open_interest: wire::OpenInterest,
    pub long_short_ratio: wire::LongShortRatio,
    pub funding_rate: wire::FundingRate,
    pub gap: wire::Gap,
    pub volatility_index: wire::VolatilityIndex,
}

impl Event {
    /// A new event for one exchange/market; its buffers grow on first use and are then reused.
    pub fn new(exchange: &'static str, market: &'static str) -> Self {
        let mut e = Event::default();
        e.header.exchange = exchange;
        e.header.market = market;
        e.header.symbol.reserve(32);
        e.depth.bids = Levels::with_capacity(32, 1024);
        e.depth.asks = Levels::with_capacity(32, 1024);
        e
    }

    /// Position of the event in its stream, increasing from one event to the next: the
    /// exchange's id where it gives one (trade id, aggregate id, last update id), else its event
    /// time. Lets two overlapping sessions of a rollover be merged without loss or copies.
    pub fn position(&self) -> Option<u64> {
        match self.kind? {
            // Deribit trade ids may carry a prefix: their digits, else the per-instrument
            // `trade_seq`.
            EventKind::Trade if self.trade.trade_id == 0 && self.trade.trade_seq > 0 => {
                Some(self.trade.trade_seq)
            }
            EventKind::Trade => Some(self.trade.trade_id),
            EventKind::AggTrade => Some(self.agg_trade.agg_id),
            EventKind::DepthDiff => Some(self.depth.last_update_id),
            EventKind::BookTicker if self.book_ticker.update_id > 0 => {
                Some(self.book_ticker.update_id)
            }
            _ => u64::try_from(self.header.exchange_ts_ns).ok(),
        }
    }

    /// True when [`Event::position`] is unique within the stream (an exchange id); false where it
    /// is the event time, which two events of a stream can share.
    pub fn position_is_unique(&self) -> bool {
        match self.kind {
            Some(EventKind::Trade | EventKind::AggTrade | EventKind::DepthDiff) => true,
            Some(EventKind::BookTicker) => self.book_ticker.update_id > 0,
            _ => false,
        }
    }

    /// A hash of the event's exchange time and payload (not of our receive time): tells apart two
    /// events of one stream at the same position. Used during rollover overlaps only; `scratch`
    /// is reused for the payload's Protobuf bytes.
    pub fn fingerprint(&self, scratch: &mut Vec<u8>) -> u64 {
        use prost::Message;
        scratch.clear();
        scratch.extend_from_slice(&self.header.exchange_ts_ns.to_le_bytes());
        let _ = match self.kind {
            None => Ok(()),
            Some(EventKind::Trade) => self.trade.encode(scratch),
            Some(EventKind::AggTrade) => self.agg_trade.encode(scratch),
            Some(EventKind::DepthDiff) => self.depth.to_wire().encode(scratch),
            Some(EventKind::BookTicker) => self.book_ticker.encode(scratch),
            Some(EventKind::BookSnapshot) => self.book.to_wire().encode(scratch),
            Some(EventKind::MarkPrice) => self.mark_price.encode(scratch),
            Some(EventKind::Liquidation) => self.liquidation.encode(scratch),
            Some(EventKind::OpenInterest) => self.open_interest.encode(scratch),
            Some(EventKind::LongShortRatio) => self.long_short_ratio.encode(scratch),
            Some(EventKind::FundingRate) => self.funding_rate.encode(scratch),
            Some(EventKind::Gap) => self.gap.encode(scratch),
            Some(EventKind::VolatilityIndex) => self.volatility_index.encode(scratch),
        };
        crate::fnv::fnv1a(scratch.iter().copied())
    }

    /// Starts a new depth payload: no levels, no `pu`, not re-syncing.
    #[inline]
    pub fn clear_depth(&mut self) {
        self.depth.bids.clear();
        self.depth.asks.clear();
        self.depth.prev_last_update_id = None;
        self.depth.resyncing = false;
        self.depth.snapshot = false;
        self.depth.checksum = None;
    }

    /// Empties the book snapshot payload's levels.
    #[inline]
    pub fn clear_book(&mut self) {
        self.book.bids.clear();
        self.book.asks.clear();
    }
}

/// Overwrites `dst` with `src`, keeping `dst`'s allocation.
#[inline]
pub fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}
