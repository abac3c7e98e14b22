//! The normalized event model every exchange decodes into and every encoder reads from.
//!
//! One [`Event`] is owned per parser thread and reused for every message: its strings and level vectors
//! keep their capacity, so decoding a message allocates nothing once the buffers have grown to the
//! largest message seen (see `tests/alloc.rs`).

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
}

impl EventKind {
    /// Every kind, in declaration order (index = `kind as usize`).
    pub const ALL: [EventKind; 11] = [
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
}

/// A reusable normalized event: a header plus one payload slot per kind; `kind` says which is valid.
#[derive(Debug, Default)]
pub struct Event {
    pub kind: Option<EventKind>,
    pub header: Header,
    pub trade: wire::Trade,
    pub agg_trade: wire::AggTrade,
    pub depth: wire::DepthDiff,
    pub book_ticker: wire::BookTicker,
    pub book: wire::BookSnapshot,
    pub mark_price: wire::MarkPrice,
    pub liquidation: wire::Liquidation,
    pub open_interest: wire::OpenInterest,
    pub long_short_ratio: wire::LongShortRatio,
    pub funding_rate: wire::FundingRate,
    pub gap: wire::Gap,
    /// Levels parked between messages so their strings keep their capacity.
    level_pool: Vec<wire::Level>,
    /// Depth levels written by the message being decoded; the rest of `depth.bids`/`asks` are
    /// last message's, overwritten in place (no moves) and parked by [`Event::finish_depth`].
    bids_used: usize,
    asks_used: usize,
}

impl Event {
    /// A new event for one exchange/market; its buffers grow on first use and are then reused.
    pub fn new(exchange: &'static str, market: &'static str) -> Self {
        let mut e = Event::default();
        e.header.exchange = exchange;
        e.header.market = market;
        e.header.symbol.reserve(32);
        e.level_pool.reserve(64);
        e
    }

    /// Position of the event in its stream, increasing from one event to the next: the
    /// exchange's id where it gives one (trade id, aggregate id, last update id), else its event
    /// time. Lets two overlapping sessions of a rollover be merged without loss or copies.
    pub fn position(&self) -> Option<u64> {
        match self.kind? {
            EventKind::Trade => Some(self.trade.trade_id),
            EventKind::AggTrade => Some(self.agg_trade.agg_id),
            EventKind::DepthDiff => Some(self.depth.last_update_id),
            EventKind::BookTicker if self.book_ticker.update_id > 0 => {
                Some(self.book_ticker.update_id)
            }
            _ => u64::try_from(self.header.exchange_ts_ns).ok(),
        }
    }

    /// Starts a new depth payload: its levels overwrite the previous message's in place.
    /// Call [`Event::finish_depth`] once every level is pushed.
    pub fn clear_depth(&mut self) {
        self.bids_used = 0;
        self.asks_used = 0;
        self.depth.prev_last_update_id = None;
        self.depth.resyncing = false;
    }

    /// Ends a depth payload: levels left over from a longer previous message are parked.
    pub fn finish_depth(&mut self) {
        let (b, a) = (self.bids_used, self.asks_used);
        if self.depth.bids.len() > b {
            self.level_pool.extend(self.depth.bids.drain(b..));
        }
        if self.depth.asks.len() > a {
            self.level_pool.extend(self.depth.asks.drain(a..));
        }
    }

    /// Empties the book snapshot payload, parking its levels for reuse.
    pub fn clear_book(&mut self) {
        self.level_pool.append(&mut self.book.bids);
        self.level_pool.append(&mut self.book.asks);
    }

    /// Appends a level to the book snapshot (`bid` side or ask side), reusing parked strings.
    pub fn push_book_level(&mut self, bid: bool, price: &str, qty: &str) {
        let l = level(&mut self.level_pool, price, qty);
        if bid {
            self.book.bids.push(l);
        } else {
            self.book.asks.push(l);
        }
    }

    /// Appends a bid level (overwriting last message's level in place where there is one).
    #[inline]
    pub fn push_bid(&mut self, price: &str, qty: &str) {
        put_level(
            &mut self.depth.bids,
            &mut self.bids_used,
            &mut self.level_pool,
            price,
            qty,
        );
    }

    /// Appends an ask level (overwriting last message's level in place where there is one).
    #[inline]
    pub fn push_ask(&mut self, price: &str, qty: &str) {
        put_level(
            &mut self.depth.asks,
            &mut self.asks_used,
            &mut self.level_pool,
            price,
            qty,
        );
    }
}

#[inline]
fn put_level(
    v: &mut Vec<wire::Level>,
    used: &mut usize,
    pool: &mut Vec<wire::Level>,
    price: &str,
    qty: &str,
) {
    match v.get_mut(*used) {
        Some(l) => {
            set(&mut l.price, price);
            set(&mut l.qty, qty);
        }
        None => v.push(level(pool, price, qty)),
    }
    *used += 1;
}

fn level(pool: &mut Vec<wire::Level>, price: &str, qty: &str) -> wire::Level {
    let mut l = pool.pop().unwrap_or_default();
    set(&mut l.price, price);
    set(&mut l.qty, qty);
    l
}

/// Overwrites `dst` with `src`, keeping `dst`'s allocation.
#[inline]
pub fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}
