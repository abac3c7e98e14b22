//! Deterministic Binance-format market data: the same seed gives the same messages.
//!
//! Messages are byte-for-byte in Binance's shape (key order, 8-decimal price/qty strings, combined
//! stream wrapper), compare `tests/fixtures/binance_spot/`. Ids advance per stream exactly as Binance's
//! do: trade ids and aggregate ids by one, depth `U` = previous `u` + 1.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Ticks (cents) a resting level may be away from the mid before it is pruned.
const BOOK_RANGE: u64 = 300;

/// splitmix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A stream's channel, as in `<symbol>@<channel>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Trade,
    AggTrade,
    Depth,
    BookTicker,
    /// USD-M `markPrice` / `markPrice@1s`.
    MarkPrice,
    /// USD-M `forceOrder`.
    ForceOrder,
    /// USD-M `!markPrice@arr`: one message with every symbol's mark price.
    MarkPriceArr,
    /// USD-M `!forceOrder@arr`.
    ForceOrderArr,
    /// `depth5`, `depth10`, `depth20` (any speed): the top levels of the book, pushed whole.
    PartialDepth(u8),
}

/// Symbols of the simulated all-market USD-M streams.
pub const ALL_MARKET_SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "XRPUSDT"];

impl Channel {
    /// Parses the part after `@` (`depth`, `depth@100ms` are both depth).
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "trade" => Some(Channel::Trade),
            "aggTrade" => Some(Channel::AggTrade),
            "bookTicker" => Some(Channel::BookTicker),
            "markPrice" | "markPrice@1s" => Some(Channel::MarkPrice),
            "forceOrder" => Some(Channel::ForceOrder),
            "!markPrice@arr" | "!markPrice@arr@1s" => Some(Channel::MarkPriceArr),
            "!forceOrder@arr" => Some(Channel::ForceOrderArr),
            s if s == "depth" || s.starts_with("depth@") => Some(Channel::Depth),
            s => match s.split('@').next() {
                Some("depth5") => Some(Channel::PartialDepth(5)),
                Some("depth10") => Some(Channel::PartialDepth(10)),
                Some("depth20") => Some(Channel::PartialDepth(20)),
                _ => None,
            },
        }
    }

    /// USD-M routed path serving this channel (Binance: `/public` for depth, bookTicker, trade).
    pub fn route(self) -> &'static str {
        match self {
            Channel::Depth | Channel::PartialDepth(_) | Channel::BookTicker | Channel::Trade => {
                "public"
            }
            _ => "market",
        }
    }

    /// Relative frequency in the generated mix (about 60% depth, 30% trades, 10% other).
    pub fn weight(self) -> u64 {
        match self {
            Channel::Depth | Channel::PartialDepth(_) => 60,
            Channel::Trade | Channel::AggTrade => 15,
            Channel::BookTicker => 10,
            Channel::MarkPrice | Channel::MarkPriceArr => 4,
            Channel::ForceOrder | Channel::ForceOrderArr => 2,
        }
    }
}

/// The state of one stream (`btcusdt@trade`, ...), shared by every connection subscribed to it so a
/// reconnect continues the sequence like a live exchange does.
#[derive(Debug, Clone)]
pub struct StreamGen {
    pub name: String,
    pub channel: Channel,
    symbol: String,
    rng: Rng,
    /// Mid price in cents.
    price: u64,
    next_id: u64,
    next_agg_trade: u64,
    /// The true book of a depth stream: price in cents -> quantity in 1e-8 units.
    bids: BTreeMap<u64, u64>,
    asks: BTreeMap<u64, u64>,
    /// Last update id generated (depth streams): the book above is the state after it.
    pub last_update_id: u64,
    /// `U` of the last generated diff (depth streams).
    last_first_id: u64,
    /// The last diff's level changes with the quantity each level had before it, in order
    /// (`asks`, price, previous quantity): lets a REST snapshot be served from inside that diff.
    undo: Vec<(bool, u64, Option<u64>)>,
    /// USD-M payload shapes (extra `e`/`E`/`T`, `pu`, 2-decimal prices, 3-decimal quantities).
    futures: bool,
    /// Trade ids are the generation time (ns, realtime; still increasing), so a benchmark can
    /// measure simulator -> collector latency from the events alone.
    pub stamp_trade_ids: bool,
}

impl StreamGen {
    /// `name` is `<symbol lower>@<channel>`; `None` for unknown channels.
    pub fn new(name: &str, seed: u64) -> Option<StreamGen> {
        Self::with_market(name, seed, false)
    }

    /// A stream in Binance spot (`futures: false`) or USD-M (`true`) payload shapes.
    pub fn with_market(name: &str, seed: u64, futures: bool) -> Option<StreamGen> {
        let (sym, channel) = if name.starts_with('!') {
            ("", Channel::parse(name)?)
        } else {
            let (sym, ch) = name.split_once('@')?;
            if sym.is_empty() || !sym.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return None;
            }
            (sym, Channel::parse(ch)?)
        };
        let h = name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = Rng(h);
        let price = rng.range(1_000, 7_000_000);
        let next_id = rng.range(1_000_000, 4_000_000_000);
        let mut g = StreamGen {
            name: name.to_string(),
            channel,
            symbol: sym.to_ascii_uppercase(),
            rng,
            price,
            next_id,
            next_agg_trade: next_id * 2,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            last_update_id: next_id - 1,
            last_first_id: next_id - 1,
            undo: Vec::new(),
            futures,
            stamp_trade_ids: false,
        };
        if matches!(channel, Channel::Depth | Channel::PartialDepth(_)) {
            // A resting book to start from; its state is update id `next_id - 1`.
            for i in 0..50 {
                let q = g.rng.range(1, 2_000_000_000);
                g.bids.insert(price - i * 2, q);
                let q = g.rng.range(1, 2_000_000_000);
                g.asks.insert(price + 1 + i * 2, q);
            }
        }
        Some(g)
    }

    /// The symbol, upper case.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// The true book as Binance's REST depth body (`limit` levels per side, best first).
    pub fn snapshot_json(&self, limit: usize) -> String {
        snapshot_body(
            self.last_update_id,
            &self.bids,
            &self.asks,
            limit,
            self.futures,
        )
    }

    /// The book as the exchange's matching engine had it in the middle of the last diff: its
    /// `lastUpdateId` lies strictly inside that diff's `[U, u]` when `u > U`, and only the first
    /// half of its level changes are in. This is what Binance really serves: a 100 ms diff spans
    /// many update ids and a REST snapshot is taken at any one of them, so the collector must
    /// apply the diff whose range holds the snapshot's id (EXCHANGES.md 4.1).
    pub fn snapshot_mid_diff_json(&self, limit: usize) -> String {
        let (first, last) = (self.last_first_id, self.last_update_id);
        if last <= first || self.undo.is_empty() {
            return self.snapshot_json(limit);
        }
        // Undo the diff's changes from the newest back to the middle; a matching engine's book is
        // never crossed at any update id, so if that state is, keep undoing towards the state
        // before the diff (the generator's random changes are not a matching engine's).
        let (mut bids, mut asks) = (self.bids.clone(), self.asks.clone());
        let half = self.undo.len() / 2;
        for (i, (is_ask, p, old)) in self.undo.iter().enumerate().rev() {
            let side = if *is_ask { &mut asks } else { &mut bids };
            match old {
                Some(q) => side.insert(*p, *q),
                None => side.remove(p),
            };
            let crossed = matches!(
                (bids.last_key_value(), asks.first_key_value()),
                (Some((b, _)), Some((a, _))) if b >= a
            );
            if i <= half && !crossed {
                let mid = first + (last - first) / 2;
                return snapshot_body(mid, &bids, &asks, limit, self.futures);
            }
        }
        self.snapshot_json(limit)
    }

    /// Appends the next combined-stream message to `out`.
    pub fn next_message(&mut self, now_ms: u64, out: &mut String) {
        let step = self.rng.range(0, 20) as i64 - 10;
        self.price = (self.price as i64 + step).max(100) as u64;
        let f = self.futures;
        let px = |c: u64| {
            if f {
                format!("{}.{:02}", c / 100, c % 100)
            } else {
                price(c)
            }
        };
        let qt = |u: u64| {
            if f {
                format!("{}.{:03}", u / 100_000_000, (u / 100_000) % 1000 + 1)
            } else {
                qty(u)
            }
        };
        let _ = write!(out, "{{\"stream\":\"{}\",\"data\":", self.name);
        let t = now_ms.saturating_sub(1);
        match self.channel {
            Channel::Trade => {
                if self.stamp_trade_ids {
                    self.next_id = self.next_id.max(crate::clock::realtime_ns().max(0) as u64);
                }
                let id = self.next_id;
                self.next_id += 1;
                let (p, q, m) = (
                    px(self.price),
                    qt(self.rng.range(1, 500_000_000)),
                    self.rng.chance(50),
                );
                let s = &self.symbol;
                if f {
                    // As on the real stream (USD-M Trade-Streams `X`): mostly market trades, some
                    // insurance-fund and ADL fills, and `NA` records with price and quantity 0
                    // that are not trades at all.
                    let (x, p, q) = match id {
                        i if i.is_multiple_of(97) => ("NA", "0".to_string(), "0".to_string()),
                        i if i.is_multiple_of(211) => ("INSURANCE_FUND", p, q),
                        i if i.is_multiple_of(307) => ("ADL", p, q),
                        _ => ("MARKET", p, q),
                    };
                    let _ = write!(
                        out,
                        "{{\"e\":\"trade\",\"E\":{now_ms},\"T\":{t},\"s\":\"{s}\",\"t\":{id},\"p\":\"{p}\",\"q\":\"{q}\",\"X\":\"{x}\",\"m\":{m}}}"
                    );
                } else {
                    let _ = write!(
                        out,
                        "{{\"e\":\"trade\",\"E\":{now_ms},\"s\":\"{s}\",\"t\":{id},\"p\":\"{p}\",\"q\":\"{q}\",\"T\":{t},\"m\":{m},\"M\":true}}"
                    );
                }
            }
            Channel::AggTrade => {
                let id = self.next_id;
                self.next_id += 1;
                let first = self.next_agg_trade;
                let n = self.rng.range(1, 4);
                self.next_agg_trade += n;
                let (p, q, m) = (
                    px(self.price),
                    qt(self.rng.range(1, 500_000_000)),
                    self.rng.chance(50),
                );
                let (s, l) = (&self.symbol, first + n - 1);
                if f {
                    let _ = write!(
                        out,
                        "{{\"e\":\"aggTrade\",\"E\":{now_ms},\"a\":{id},\"s\":\"{s}\",\"p\":\"{p}\",\"q\":\"{q}\",\"f\":{first},\"l\":{l},\"T\":{t},\"m\":{m}"
                    );
                    // `nq` (quantity without RPI orders) on part of the stream, as it is rolled out.
                    if id.is_multiple_of(2) {
                        let _ = write!(out, ",\"nq\":\"{q}\"");
                    }
                    out.push('}');
                } else {
                    let _ = write!(
                        out,
                        "{{\"e\":\"aggTrade\",\"E\":{now_ms},\"s\":\"{s}\",\"a\":{id},\"p\":\"{p}\",\"q\":\"{q}\",\"f\":{first},\"l\":{l},\"T\":{t},\"m\":{m},\"M\":true}}"
                    );
                }
            }
            Channel::Depth => {
                // USD-M update ids are shared across symbols: U jumps past pu + 1.
                let prev = self.last_update_id;
                let first = if f {
                    self.next_id + self.rng.range(0, 3)
                } else {
                    self.next_id
                };
                let last = first + self.rng.range(0, 5);
                self.next_id = last + 1;
                self.last_update_id = last;
                self.last_first_id = first;
                self.undo.clear();
                let s = &self.symbol;
                if f {
                    let _ = write!(
                        out,
                        "{{\"e\":\"depthUpdate\",\"E\":{now_ms},\"T\":{t},\"s\":\"{s}\",\"U\":{first},\"u\":{last},\"pu\":{prev},\"b\":["
                    );
                } else {
                    let _ = write!(
                        out,
                        "{{\"e\":\"depthUpdate\",\"E\":{now_ms},\"s\":\"{s}\",\"U\":{first},\"u\":{last},\"b\":["
                    );
                }
                let bids = self.side_changes(false);
                write_levels(out, &bids, f);
                out.push_str("],\"a\":[");
                let asks = self.side_changes(true);
                write_levels(out, &asks, f);
                out.push_str("]}");
            }
            Channel::PartialDepth(n) => {
                // The book moves as for the diff stream; the message is its top `n` levels:
                // spot `{"lastUpdateId","bids","asks"}` (no symbol, no time), USD-M a
                // depthUpdate-shaped message carrying the top levels.
                let prev = self.last_update_id;
                let first = self.next_id;
                let last = first + self.rng.range(0, 5);
                self.next_id = last + 1;
                self.last_update_id = last;
                self.last_first_id = first;
                self.undo.clear();
                self.side_changes(false);
                self.side_changes(true);
                let n = usize::from(n);
                let b: Vec<(u64, u64)> = self
                    .bids
                    .iter()
                    .rev()
                    .take(n)
                    .map(|(p, q)| (*p, *q))
                    .collect();
                let a: Vec<(u64, u64)> = self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect();
                let s = &self.symbol;
                if f {
                    let _ = write!(
                        out,
                        "{{\"e\":\"depthUpdate\",\"E\":{now_ms},\"T\":{t},\"s\":\"{s}\",\"U\":{first},\"u\":{last},\"pu\":{prev},\"b\":["
                    );
                    write_levels(out, &b, f);
                    out.push_str("],\"a\":[");
                } else {
                    let _ = write!(out, "{{\"lastUpdateId\":{last},\"bids\":[");
                    write_levels(out, &b, f);
                    out.push_str("],\"asks\":[");
                }
                write_levels(out, &a, f);
                out.push_str("]}");
            }
            Channel::BookTicker => {
                let id = self.next_id;
                self.next_id += 1;
                let (b, bq, a, aq) = (
                    px(self.price),
                    qt(self.rng.range(1, 900_000_000)),
                    px(self.price + 1),
                    qt(self.rng.range(1, 900_000_000)),
                );
                let s = &self.symbol;
                if f {
                    let _ = write!(
                        out,
                        "{{\"e\":\"bookTicker\",\"u\":{id},\"s\":\"{s}\",\"b\":\"{b}\",\"B\":\"{bq}\",\"a\":\"{a}\",\"A\":\"{aq}\",\"T\":{t},\"E\":{now_ms}}}"
                    );
                } else {
                    let _ = write!(
                        out,
                        "{{\"u\":{id},\"s\":\"{s}\",\"b\":\"{b}\",\"B\":\"{bq}\",\"a\":\"{a}\",\"A\":\"{aq}\"}}"
                    );
                }
            }
            Channel::MarkPrice => {
                let sym = self.symbol.clone();
                self.mark_price(out, &sym, now_ms);
            }
            Channel::MarkPriceArr => {
                out.push('[');
                for (i, sym) in ALL_MARKET_SYMBOLS.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.mark_price(out, sym, now_ms);
                }
                out.push(']');
            }
            Channel::ForceOrder => {
                let sym = self.symbol.clone();
                self.force_order(out, &sym, now_ms);
            }
            Channel::ForceOrderArr => {
                let sym = ALL_MARKET_SYMBOLS[self.rng.range(0, 2) as usize];
                self.force_order(out, sym, now_ms);
            }
        }
        out.push('}');
    }

    fn mark_price(&mut self, out: &mut String, sym: &str, now_ms: u64) {
        let mark = self.price * 1_000_000 + self.rng.range(0, 999_999);
        let fmt = |v: u64| format!("{}.{:08}", v / 100_000_000, v % 100_000_000);
        let (p, i, pp) = (
            fmt(mark),
            fmt(mark - self.rng.range(0, 50_000)),
            fmt(mark + self.rng.range(0, 50_000)),
        );
        let r = format!("0.{:08}", self.rng.range(0, 100_000));
        let next = (now_ms / 28_800_000 + 1) * 28_800_000;
        let _ = write!(
            out,
            "{{\"e\":\"markPriceUpdate\",\"E\":{now_ms},\"s\":\"{sym}\",\"p\":\"{p}\",\"P\":\"{pp}\",\"i\":\"{i}\",\"r\":\"{r}\",\"T\":{next}}}"
        );
    }

    fn force_order(&mut self, out: &mut String, sym: &str, now_ms: u64) {
        let side = if self.rng.chance(50) { "BUY" } else { "SELL" };
        let q = format!("0.{:03}", self.rng.range(1, 999));
        let p = format!("{}.{:02}", self.price / 100, self.price % 100);
        let ap = format!("{}.{:02}", (self.price + 3) / 100, (self.price + 3) % 100);
        let _ = write!(
            out,
            "{{\"e\":\"forceOrder\",\"E\":{now_ms},\"o\":{{\"s\":\"{sym}\",\"S\":\"{side}\",\"o\":\"LIMIT\",\"f\":\"IOC\",\"q\":\"{q}\",\"p\":\"{p}\",\"ap\":\"{ap}\",\"X\":\"FILLED\",\"l\":\"{q}\",\"z\":\"{q}\",\"T\":{}}}}}",
            now_ms.saturating_sub(2)
        );
    }

    /// The changes of one side for the next diff, applied to the true book: levels that would
    /// cross the new mid or drifted out of range are removed, then 0-10 random levels set or removed.
    fn side_changes(&mut self, asks: bool) -> Vec<(u64, u64)> {
        let mid = self.price;
        let mut changes: Vec<(u64, u64)> = Vec::new();
        let book = if asks { &mut self.asks } else { &mut self.bids };
        let stale: Vec<u64> = book
            .keys()
            .copied()
            .filter(|&p| {
                if asks {
                    p <= mid || p > mid + 1 + BOOK_RANGE
                } else {
                    p > mid || p + BOOK_RANGE < mid
                }
            })
            .collect();
        for p in stale {
            let old = book.remove(&p);
            self.undo.push((asks, p, old));
            changes.push((p, 0));
        }
        let n = self.rng.range(0, 10);
        for _ in 0..n {
            let off = self.rng.range(0, 200);
            let p = if asks {
                mid + 1 + off
            } else {
                mid.saturating_sub(off).max(1)
            };
            let q = if self.rng.chance(20) {
                0
            } else {
                self.rng.range(1, 2_000_000_000)
            };
            if changes.iter().any(|(cp, _)| *cp == p) {
                continue; // one change per price per message, as Binance sends
            }
            let book = if asks { &mut self.asks } else { &mut self.bids };
            let old = if q == 0 {
                book.remove(&p)
            } else {
                book.insert(p, q)
            };
            self.undo.push((asks, p, old));
            changes.push((p, q));
        }
        changes
    }
}

fn snapshot_body(
    id: u64,
    bids: &BTreeMap<u64, u64>,
    asks: &BTreeMap<u64, u64>,
    limit: usize,
    futures: bool,
) -> String {
    let mut out = format!("{{\"lastUpdateId\":{id},");
    if futures {
        // USD-M snapshots carry the message and matching-engine times.
        let ms = crate::clock::realtime_ns() / 1_000_000;
        let _ = write!(out, "\"E\":{ms},\"T\":{},", ms - 1);
    }
    out.push_str("\"bids\":[");
    let b: Vec<(u64, u64)> = bids
        .iter()
        .rev()
        .take(limit)
        .map(|(p, q)| (*p, *q))
        .collect();
    write_levels(&mut out, &b, futures);
    out.push_str("],\"asks\":[");
    let a: Vec<(u64, u64)> = asks.iter().take(limit).map(|(p, q)| (*p, *q)).collect();
    write_levels(&mut out, &a, futures);
    out.push_str("]}");
    out
}

fn write_levels(out: &mut String, levels: &[(u64, u64)], futures: bool) {
    for (i, (p, q)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if futures {
            // Quantities to 3 decimals; 0 stays "0.000" (a removal).
            let q3 = if *q == 0 {
                "0.000".to_string()
            } else {
                format!("{}.{:03}", q / 100_000_000, (q / 100_000) % 1000 + 1)
            };
            let _ = write!(out, "[\"{}.{:02}\",\"{q3}\"]", p / 100, p % 100);
        } else {
            let _ = write!(out, "[\"{}\",\"{}\"]", price(*p), qty(*q));
        }
    }
}

/// Cents -> Binance's 8-decimal string.
fn price(cents: u64) -> String {
    format!("{}.{:02}000000", cents / 100, cents % 100)
}

/// 1e-8 units -> Binance's 8-decimal string.
fn qty(units: u64) -> String {
    format!("{}.{:08}", units / 100_000_000, units % 100_000_000)
}

/// `n` messages of the realistic Binance spot mix (depth diffs of 1-20 levels about 60%, trades and
/// aggregate trades 30%, book tickers 10%) over `symbols`, as the server would send them: the
/// corpus of the benchmark baseline and of micro-benchmarks.
pub fn mixed_corpus(symbols: &[String], seed: u64, n: usize) -> Vec<String> {
    let streams: Vec<String> = symbols
        .iter()
        .flat_map(|s| {
            let lower = s.to_ascii_lowercase();
            ["depth@100ms", "trade", "aggTrade", "bookTicker"]
                .into_iter()
                .map(move |c| format!("{lower}@{c}"))
        })
        .collect();
    stream_corpus(&streams, seed, n, false)
}

/// `n` messages over `streams`, each picked by its channel's weight (the realistic mix).
/// `stamp_trade_ids`: trade ids are the generation time in ns.
pub fn stream_corpus(
    streams: &[String],
    seed: u64,
    n: usize,
    stamp_trade_ids: bool,
) -> Vec<String> {
    let mut gens: Vec<StreamGen> = streams
        .iter()
        .filter_map(|s| StreamGen::new(s, seed))
        .map(|mut g| {
            g.stamp_trade_ids = stamp_trade_ids;
            g
        })
        .collect();
    let weights: Vec<u64> = gens.iter().map(|g| g.channel.weight()).collect();
    let total: u64 = weights.iter().sum();
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    if total == 0 {
        return out;
    }
    for i in 0..n {
        let mut pick = rng.next_u64() % total;
        let mut g = 0;
        while pick >= weights[g] {
            pick -= weights[g];
            g += 1;
        }
        let mut m = String::new();
        gens[g].next_message(1_723_161_255_343 + i as u64, &mut m);
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sequential() {
        let mut a = StreamGen::new("btcusdt@trade", 7).unwrap();
        let mut b = StreamGen::new("btcusdt@trade", 7).unwrap();
        let (mut x, mut y) = (String::new(), String::new());
        a.next_message(1, &mut x);
        b.next_message(1, &mut y);
        assert_eq!(x, y);
        let v: serde_json::Value = serde_json::from_str(&x).unwrap();
        assert_eq!(v["data"]["s"], "BTCUSDT");
        let mut d = StreamGen::new("ethusdt@depth@100ms", 7).unwrap();
        let mut prev_u = None;
        for _ in 0..100 {
            let mut m = String::new();
            d.next_message(5, &mut m);
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            let (u0, u1) = (
                v["data"]["U"].as_u64().unwrap(),
                v["data"]["u"].as_u64().unwrap(),
            );
            if let Some(p) = prev_u {
                assert_eq!(u0, p + 1);
            }
            prev_u = Some(u1);
        }
    }
}
