//! Deribit JSON-RPC 2.0 WebSocket adapter (EXCHANGES.md 4.4).
//!
//! One section `exchanges.deribit` collects perpetuals, dated futures, options and spot pairs
//! together; each event's `market` comes from the instrument name (`BTC-PERPETUAL` swap,
//! `BTC-26DEC25` futures, `BTC-26DEC25-100000-C` option, `BTC_USDC` spot). Instruments are listed,
//! or selected by currency and kind through `public/get_instruments` when the collector starts
//! ([`instruments`]). Each connection first asks for heartbeats (`public/set_heartbeat`); the
//! reader answers every `test_request` with `public/test` at once (an unanswered one closes the
//! connection). Channels are subscribed with `public/subscribe` in batches, paced under
//! Deribit's request credits. `book` is maintained from the exchange's snapshot notification,
//! chained by `change_id`/`prev_change_id` ([`sequence`]); a broken book is re-synced alone by
//! unsubscribing and subscribing its instrument again.

pub mod decode;
pub mod instruments;
pub mod sequence;

use crate::exchange::{ConnectionSpec, Decoder, ExchangePlan, KeepAlive, StreamSpec};
use crate::setting::{ConfigError, section};
use serde::Deserialize;
use std::time::Duration;

/// Channels served per instrument, and the volatility index (per index name).
pub const CHANNELS: &[&str] = &["trades", "book", "ticker", "deribit_volatility_index"];
const DEFAULT_CHANNELS: &[&str] = &["trades", "book"];
/// Notification intervals Deribit offers (`raw` needs an authenticated connection).
pub const INTERVALS: &[&str] = &["100ms", "raw", "agg2"];
/// Channels per `public/subscribe` request.
const CHANNELS_PER_REQUEST: usize = 100;
/// The JSON-RPC id of our `public/test` answers to `test_request` (its reply is a control frame).
const TEST_ID: u64 = 8;
/// Our answer to the server's `test_request` heartbeat.
pub const TEST_ANSWER: &str = r#"{"jsonrpc":"2.0","id":8,"method":"public/test","params":{}}"#;
/// The marker of the server's `test_request` (a short text frame containing it).
pub const TEST_REQUEST: &str = "\"test_request\"";

/// Registry entry.
pub struct Factory;
pub static FACTORY: Factory = Factory;

impl crate::exchange::ExchangeFactory for Factory {
    fn name(&self) -> &'static str {
        "deribit"
    }

    fn plan(
        &self,
        section: serde_yaml::Value,
    ) -> Result<Option<Box<dyn ExchangePlan>>, ConfigError> {
        Ok(DeribitPlan::from_section(section)?.map(|p| Box::new(p) as Box<dyn ExchangePlan>))
    }
}

/// `exchanges.deribit` as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    /// WebSocket URL (default `wss://www.deribit.com/ws/api/v2`).
    ws_url: Option<String>,
    /// REST base URL for `public/get_instruments` (default `https://www.deribit.com`).
    rest_url: Option<String>,
    /// Instrument names as Deribit spells them.
    #[serde(default)]
    symbols: Vec<String>,
    /// Instrument selections resolved at start (one map or a list of maps).
    instruments: Option<serde_yaml::Value>,
    /// `trades`, `book`, `ticker`, `deribit_volatility_index`; an interval may follow a dot
    /// (`book.raw`, `ticker.100ms`).
    channels: Option<Vec<String>>,
    /// How often the `instruments` selections are resolved again while running (default 24h).
    instruments_refresh: Option<String>,
    /// Interval of channels named without one (default `100ms`).
    interval: Option<String>,
    /// Index names for `deribit_volatility_index` (default: `<currency>_usd` of every symbol).
    volatility_indexes: Option<Vec<String>>,
    /// Seconds between the server's heartbeats (default 30; Deribit's minimum is 10).
    heartbeat_interval: Option<String>,
    max_streams_per_connection: Option<usize>,
    /// Requests we send per second per connection (default 3: Deribit charges `public/subscribe`
    /// 3,000 of a 30,000-credit pool refilled for about 3.3 requests per second; an empty pool
    /// ends the session with `too_many_requests`).
    max_messages_per_sec: Option<u32>,
    silent_stream_timeout: Option<String>,
    /// WebSocket ping interval (default 15s).
    ping_interval: Option<String>,
    /// Nothing received for this long -> the connection is replaced (default 75s).
    liveness_timeout: Option<String>,
    max_connection_age: Option<String>,
    rollover_timeout: Option<String>,
}

/// The `market` of a Deribit instrument name, `None` for a name of no known shape (combos).
pub fn inst_market(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    let mut parts = [""; 4];
    let mut n = 0;
    for (i, s) in name.split('-').enumerate() {
        if i == parts.len() || s.is_empty() {
            return None;
        }
        parts[i] = s;
        n = i + 1;
    }
    let currency = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    // `26DEC25`, `3JAN26`.
    let date = |p: &str| {
        let b = p.as_bytes();
        (6..=7).contains(&b.len())
            && b[..b.len() - 5].iter().all(u8::is_ascii_digit)
            && b[b.len() - 5..b.len() - 2]
                .iter()
                .all(u8::is_ascii_uppercase)
            && b[b.len() - 2..].iter().all(u8::is_ascii_digit)
    };
    // `100000`, `0d625` (a decimal strike).
    let strike = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'd') && !p.starts_with('d')
    };
    if !currency(parts[0]) {
        return None;
    }
    match &parts[..n] {
        [c] if c.contains('_') => Some("spot"),
        [_, "PERPETUAL"] => Some("swap"),
        [_, d] if date(d) => Some("futures"),
        [_, d, k, "C" | "P"] if date(d) && strike(k) => Some("option"),
        _ => None,
    }
}

/// The market of an instrument the decoder sees (`futures` for shapes we do not know).
pub fn market_of(name: &str) -> &'static str {
    inst_market(name).unwrap_or("futures")
}

/// One configured channel: its kind and interval.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Channel {
    kind: String,
    interval: String,
}

/// A validated `exchanges.deribit`.
#[derive(Debug)]
pub struct DeribitPlan {
    ws_url: String,
    rest_url: String,
    symbols: Vec<String>,
    /// The symbols the configuration lists (the rest come from `selections`).
    listed: Vec<String>,
    selections: Vec<instruments::Selection>,
    refresh: Duration,
    channels: Vec<Channel>,
    volatility_indexes: Vec<String>,
    /// `volatility_indexes` was written by the user (else it follows the symbols).
    indexes_given: bool,
    heartbeat_secs: u64,
    max_streams: usize,
    max_messages_per_sec: u32,
    silence_timeout: Duration,
    ping_interval: Duration,
    liveness_timeout: Duration,
    max_age: Option<Duration>,
    rollover_timeout: Duration,
    /// Keep the volatility indexes (sharding keeps them on the shard of all-market streams).
    all_market: bool,
}

fn dur(key: &str, v: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    crate::setting::duration::parse(v.unwrap_or(default)).map_err(|r| ConfigError::new(key, r))
}

/// Default volatility index names: `<currency>_usd` of each symbol's currency, once each.
fn default_indexes(symbols: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in symbols {
        let cur = s
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = format!("{cur}_usd");
        if !cur.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

impl DeribitPlan {
    pub fn from_section(value: serde_yaml::Value) -> Result<Option<DeribitPlan>, ConfigError> {
        let prefix = "exchanges.deribit";
        let s: Section = section(prefix, value)?;
        let key = |k: &str| format!("{prefix}.{k}");
        let ws_url = s
            .ws_url
            .unwrap_or_else(|| "wss://www.deribit.com/ws/api/v2".into());
        super::check_url(&key("ws_url"), &ws_url, &["ws://", "wss://"])?;
        let rest_url = s
            .rest_url
            .unwrap_or_else(|| "https://www.deribit.com".into());
        super::check_url(&key("rest_url"), &rest_url, &["http://", "https://"])?;
        let mut symbols: Vec<String> = Vec::with_capacity(s.symbols.len());
        for (i, sym) in s.symbols.iter().enumerate() {
            let k = format!("{prefix}.symbols[{i}]");
            if inst_market(sym).is_none() {
                return Err(ConfigError::new(
                    k,
                    format!(
                        "`{sym}` is not a Deribit instrument name (e.g. BTC-PERPETUAL, BTC-26DEC25, BTC-26DEC25-100000-C, BTC_USDC; names are case-sensitive)"
                    ),
                ));
            }
            if symbols.contains(sym) {
                return Err(ConfigError::new(k, format!("`{sym}` is listed twice")));
            }
            symbols.push(sym.clone());
        }
        let selections = instruments::Selection::parse_all(&key("instruments"), s.instruments)?;
        let refresh = dur(
            &key("instruments_refresh"),
            s.instruments_refresh.as_deref(),
            "24h",
        )?;
        if refresh < Duration::from_secs(1) {
            return Err(ConfigError::new(
                key("instruments_refresh"),
                "must be at least 1s",
            ));
        }
        let default_interval = s.interval.unwrap_or_else(|| "100ms".into());
        if !INTERVALS.contains(&default_interval.as_str()) {
            return Err(ConfigError::new(
                key("interval"),
                format!(
                    "`{default_interval}` is not a Deribit interval (known: {})",
                    INTERVALS.join(", ")
                ),
            ));
        }
        let names: Vec<String> = s
            .channels
            .unwrap_or_else(|| DEFAULT_CHANNELS.iter().map(|c| c.to_string()).collect());
        if names.is_empty() {
            return Err(ConfigError::new(
                key("channels"),
                "must name at least one channel",
            ));
        }
        let mut channels: Vec<Channel> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let k = format!("{prefix}.channels[{i}]");
            let (kind, interval) = match name.split_once('.') {
                Some((c, iv)) => (c, iv),
                None => (name.as_str(), default_interval.as_str()),
            };
            if !CHANNELS.contains(&kind) {
                return Err(ConfigError::new(
                    k,
                    format!("unknown channel `{kind}` (known: {})", CHANNELS.join(", ")),
                ));
            }
            if kind == "deribit_volatility_index" && name.contains('.') {
                return Err(ConfigError::new(
                    k,
                    "deribit_volatility_index takes no interval (index names go in `volatility_indexes`)",
                ));
            }
            if !INTERVALS.contains(&interval) {
                return Err(ConfigError::new(
                    k,
                    format!(
                        "unknown interval `{interval}` (known: {})",
                        INTERVALS.join(", ")
                    ),
                ));
            }
            if channels.iter().any(|c| c.kind == kind) {
                return Err(ConfigError::new(k, format!("`{kind}` is listed twice")));
            }
            channels.push(Channel {
                kind: kind.into(),
                interval: interval.into(),
            });
        }
        let indexes_given = s.volatility_indexes.is_some();
        let volatility_indexes = s
            .volatility_indexes
            .unwrap_or_else(|| default_indexes(&symbols));
        for (i, ix) in volatility_indexes.iter().enumerate() {
            if ix.is_empty()
                || ix.len() > 32
                || !ix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ConfigError::new(
                    format!("{prefix}.volatility_indexes[{i}]"),
                    format!("`{ix}` is not an index name (e.g. btc_usd, eth_usd)"),
                ));
            }
        }
        let heartbeat = dur(
            &key("heartbeat_interval"),
            s.heartbeat_interval.as_deref(),
            "30s",
        )?;
        if heartbeat < Duration::from_secs(10) || heartbeat > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                key("heartbeat_interval"),
                "must be between 10s (Deribit's minimum) and 1h",
            ));
        }
        let max_streams = s.max_streams_per_connection.unwrap_or(500);
        if max_streams == 0 || max_streams > 10_000 {
            return Err(ConfigError::new(
                key("max_streams_per_connection"),
                "must be between 1 and 10000",
            ));
        }
        let max_messages_per_sec = s.max_messages_per_sec.unwrap_or(3);
        if max_messages_per_sec == 0 || max_messages_per_sec > 100 {
            return Err(ConfigError::new(
                key("max_messages_per_sec"),
                "must be between 1 and 100",
            ));
        }
        let silence_timeout = dur(
            &key("silent_stream_timeout"),
            s.silent_stream_timeout.as_deref(),
            "5m",
        )?;
        let ping_interval = dur(&key("ping_interval"), s.ping_interval.as_deref(), "15s")?;
        if ping_interval < Duration::from_millis(100) {
            return Err(ConfigError::new(
                key("ping_interval"),
                "must be at least 100ms",
            ));
        }
        let liveness_timeout = dur(
            &key("liveness_timeout"),
            s.liveness_timeout.as_deref(),
            "75s",
        )?;
        if liveness_timeout <= ping_interval || liveness_timeout <= heartbeat {
            return Err(ConfigError::new(
                key("liveness_timeout"),
                "must exceed ping_interval and heartbeat_interval",
            ));
        }
        let max_age = match s.max_connection_age.as_deref().unwrap_or("off") {
            "off" => None,
            v => {
                let d = dur(&key("max_connection_age"), Some(v), "")?;
                if d < Duration::from_secs(1) {
                    return Err(ConfigError::new(
                        key("max_connection_age"),
                        "must be at least 1s, or \"off\"",
                    ));
                }
                Some(d)
            }
        };
        let rollover_timeout = dur(
            &key("rollover_timeout"),
            s.rollover_timeout.as_deref(),
            "10s",
        )?;
        let vol = channels
            .iter()
            .any(|c| c.kind == "deribit_volatility_index");
        if symbols.is_empty() && selections.is_empty() && !(vol && indexes_given) {
            return Ok(None);
        }
        Ok(Some(DeribitPlan {
            ws_url,
            rest_url,
            listed: symbols.clone(),
            symbols,
            selections,
            refresh,
            channels,
            volatility_indexes,
            indexes_given,
            heartbeat_secs: heartbeat.as_secs(),
            max_streams,
            max_messages_per_sec,
            silence_timeout,
            ping_interval,
            liveness_timeout,
            max_age,
            rollover_timeout,
            all_market: true,
        }))
    }

    /// Every stream: per instrument its channels (instrument-major, so one instrument's channels
    /// share a connection), then one volatility index stream per index name.
    pub fn streams(&self) -> Vec<StreamSpec> {
        let mut out = Vec::new();
        for sym in &self.symbols {
            let market = market_of(sym);
            for ch in &self.channels {
                if ch.kind == "deribit_volatility_index" {
                    continue;
                }
                out.push(StreamSpec {
                    name: format!("{}.{sym}.{}", ch.kind, ch.interval),
                    channel: ch.kind.clone(),
                    symbol: sym.clone(),
                    market,
                    book: ch.kind == "book",
                    // Trades of an illiquid option can be silent for hours.
                    watched: ch.kind != "trades",
                });
            }
        }
        if self.all_market
            && self
                .channels
                .iter()
                .any(|c| c.kind == "deribit_volatility_index")
        {
            for ix in &self.volatility_indexes {
                out.push(StreamSpec {
                    name: format!("deribit_volatility_index.{ix}"),
                    channel: "deribit_volatility_index".into(),
                    symbol: String::new(),
                    market: "index",
                    book: false,
                    watched: true,
                });
            }
        }
        out
    }

    /// Instrument selections to resolve at start.
    pub fn selections(&self) -> &[instruments::Selection] {
        &self.selections
    }

    /// The listed symbols plus resolved instrument names (each once, listed first), and the
    /// default volatility indexes of their currencies.
    pub fn set_resolved(&mut self, names: Vec<String>) {
        let mut symbols = self.listed.clone();
        for n in names {
            if inst_market(&n).is_some() && !symbols.contains(&n) {
                symbols.push(n);
            }
        }
        self.symbols = symbols;
        if !self.indexes_given {
            self.volatility_indexes = default_indexes(&self.symbols);
        }
    }

    /// `public/subscribe` requests for `streams`, after `public/set_heartbeat`.
    fn subscribe_messages(&self, streams: &[StreamSpec]) -> Vec<String> {
        let mut out = vec![format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"public/set_heartbeat\",\"params\":{{\"interval\":{}}}}}",
            self.heartbeat_secs
        )];
        for (i, c) in streams.chunks(CHANNELS_PER_REQUEST).enumerate() {
            let names: Vec<String> = c.iter().map(|s| s.name.clone()).collect();
            out.push(request(100 + i as u64, "public/subscribe", &names));
        }
        out
    }
}

/// A JSON-RPC request. `channels` are written as JSON strings (they are validated names).
pub fn request(id: u64, method: &str, channels: &[String]) -> String {
    let list: Vec<String> = channels.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":{{\"channels\":[{}]}}}}",
        list.join(",")
    )
}

/// Re-sync of one instrument's `book`: unsubscribe, then subscribe (Deribit sends a new snapshot).
#[derive(Debug)]
pub struct BooksResubscribe {
    interval: String,
}

/// JSON-RPC ids of re-subscription requests (a reply or error names what it answers).
const RESUBSCRIBE_ID: u64 = 7;

impl crate::book::Resubscribe for BooksResubscribe {
    fn messages(&self, symbol: &str) -> Vec<String> {
        let ch = vec![format!("book.{symbol}.{}", self.interval)];
        vec![
            request(RESUBSCRIBE_ID, "public/unsubscribe", &ch),
            request(RESUBSCRIBE_ID, "public/subscribe", &ch),
        ]
    }
}

/// What a JSON-RPC id of ours was (for logs of error replies).
pub fn request_kind(id: u64) -> &'static str {
    match id {
        1 => "public/set_heartbeat",
        RESUBSCRIBE_ID => "book re-subscription or unsubscription",
        TEST_ID => "public/test",
        100.. => "public/subscribe",
        _ => "unknown",
    }
}

impl ExchangePlan for DeribitPlan {
    fn name(&self) -> &'static str {
        "deribit"
    }

    fn exchange(&self) -> &'static str {
        "deribit"
    }

    fn market(&self) -> &'static str {
        self.symbols.first().map_or("swap", |s| market_of(s))
    }

    fn markets(&self) -> Vec<(&'static str, Vec<String>)> {
        let mut out = crate::exchange::group_by_market(&self.symbols, market_of);
        if self.all_market
            && self
                .channels
                .iter()
                .any(|c| c.kind == "deribit_volatility_index")
            && !self.volatility_indexes.is_empty()
        {
            out.push(("index", self.volatility_indexes.clone()));
        }
        out
    }

    fn symbols(&self) -> &[String] {
        &self.symbols
    }

    fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.symbols.retain(|s| keep(s));
        self.listed.retain(|s| keep(s));
        self.all_market = keep(crate::setting::shard::ALL_MARKET);
    }

    fn resolve(&mut self) -> Result<(), String> {
        if self.selections.is_empty() {
            return Ok(());
        }
        let names = instruments::resolve(&self.rest_url, &self.selections)?;
        log::info!(
            "event=instruments_resolved exchange=deribit selections={} instruments={}",
            self.selections.len(),
            names.len()
        );
        self.set_resolved(names);
        Ok(())
    }

    fn refresh_interval(&self) -> Option<Duration> {
        (!self.selections.is_empty()).then_some(self.refresh)
    }

    fn unsubscribe(&self, streams: &[StreamSpec]) -> Vec<String> {
        streams
            .chunks(CHANNELS_PER_REQUEST)
            .map(|c| {
                let names: Vec<String> = c.iter().map(|s| s.name.clone()).collect();
                request(RESUBSCRIBE_ID, "public/unsubscribe", &names)
            })
            .collect()
    }

    fn connections(&self) -> Vec<ConnectionSpec> {
        self.connections_for(self.streams())
    }

    fn connections_for(&self, streams: Vec<StreamSpec>) -> Vec<ConnectionSpec> {
        streams
            .chunks(self.max_streams)
            .map(|streams| {
                ConnectionSpec {
                    url: self.ws_url.clone(),
                    streams: streams.to_vec(),
                    subscribe: self.subscribe_messages(streams),
                    max_messages_per_sec: self.max_messages_per_sec,
                    silence_timeout: self.silence_timeout,
                    keep_alive: KeepAlive::WsPingAnswering {
                        request: TEST_REQUEST,
                        answer: TEST_ANSWER,
                    },
                    ping_interval: self.ping_interval,
                    // Each heartbeat's `test_request` costs an answer from the request budget.
                    server_ping_interval: Duration::from_secs(self.heartbeat_secs),
                    liveness_timeout: self.liveness_timeout,
                    max_age: self.max_age,
                    rollover_timeout: self.rollover_timeout,
                    max_requests_per_hour: None,
                    connects_per_second: None,
                }
            })
            .collect()
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(decode::DeribitDecoder::new())
    }

    fn effective(&self) -> serde_yaml::Value {
        use crate::setting::duration::format as fmt;
        #[derive(serde::Serialize)]
        struct Effective<'a> {
            ws_url: &'a str,
            rest_url: &'a str,
            symbols: &'a [String],
            #[serde(skip_serializing_if = "<[instruments::Selection]>::is_empty")]
            instruments: &'a [instruments::Selection],
            instruments_refresh: String,
            channels: Vec<String>,
            volatility_indexes: &'a [String],
            heartbeat_interval: String,
            max_streams_per_connection: usize,
            max_messages_per_sec: u32,
            ping_interval: String,
            liveness_timeout: String,
            silent_stream_timeout: String,
            max_connection_age: String,
            rollover_timeout: String,
        }
        serde_yaml::to_value(Effective {
            ws_url: &self.ws_url,
            rest_url: &self.rest_url,
            symbols: &self.symbols,
            instruments: &self.selections,
            instruments_refresh: fmt(self.refresh),
            channels: self
                .channels
                .iter()
                .map(|c| {
                    if c.kind == "deribit_volatility_index" {
                        c.kind.clone()
                    } else {
                        format!("{}.{}", c.kind, c.interval)
                    }
                })
                .collect(),
            volatility_indexes: &self.volatility_indexes,
            heartbeat_interval: fmt(Duration::from_secs(self.heartbeat_secs)),
            max_streams_per_connection: self.max_streams,
            max_messages_per_sec: self.max_messages_per_sec,
            ping_interval: fmt(self.ping_interval),
            liveness_timeout: fmt(self.liveness_timeout),
            silent_stream_timeout: fmt(self.silence_timeout),
            max_connection_age: self.max_age.map(fmt).unwrap_or_else(|| "off".into()),
            rollover_timeout: fmt(self.rollover_timeout),
        })
        .unwrap_or(serde_yaml::Value::Null)
    }

    fn books(&self) -> Option<crate::book::BookSpec> {
        let ch = self.channels.iter().find(|c| c.kind == "book")?;
        if self.symbols.is_empty() {
            return None;
        }
        Some(crate::book::BookSpec {
            rules: &sequence::RULES,
            exchange: "deribit",
            market: self.market(),
            market_of: Some(market_of),
            symbols: self.symbols.clone(),
            source: None,
            max_snapshot_limit: 0,
            accepted_limits: &[],
            snapshot_limit: None,
            resubscribe: Some(std::sync::Arc::new(BooksResubscribe {
                interval: ch.interval.clone(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrument_names_and_their_markets() {
        for (id, m) in [
            ("BTC-PERPETUAL", Some("swap")),
            ("BTC_USDC-PERPETUAL", Some("swap")),
            ("BTC-26DEC25", Some("futures")),
            ("BTC-3JAN26", Some("futures")),
            ("BTC-26DEC25-100000-C", Some("option")),
            ("XRP_USDC-30JUN23-0d625-C", Some("option")),
            ("ETH-9APR21-1950-P", Some("option")),
            ("BTC_USDC", Some("spot")),
            ("BTC", None),
            ("btc-perpetual", None),
            ("BTC-FS-27DEC24_PERP", None),
            ("BTC-26DEC25-100000-X", None),
            ("BTC--C", None),
            ("", None),
        ] {
            assert_eq!(inst_market(id), m, "{id}");
        }
    }

    #[test]
    fn plan_subscribes_in_batches_after_the_heartbeat() {
        let y: serde_yaml::Value = serde_yaml::from_str(
            "symbols: [BTC-PERPETUAL, ETH-26DEC25-4000-C]\nchannels: [trades, book.raw, ticker, deribit_volatility_index]\nmax_streams_per_connection: 4",
        )
        .unwrap();
        let p = DeribitPlan::from_section(y).unwrap().unwrap();
        let conns = p.connections();
        let names: Vec<Vec<String>> = conns.iter().map(|c| c.stream_names()).collect();
        assert_eq!(
            names,
            vec![
                vec![
                    "trades.BTC-PERPETUAL.100ms",
                    "book.BTC-PERPETUAL.raw",
                    "ticker.BTC-PERPETUAL.100ms",
                    "trades.ETH-26DEC25-4000-C.100ms"
                ],
                vec![
                    "book.ETH-26DEC25-4000-C.raw",
                    "ticker.ETH-26DEC25-4000-C.100ms",
                    "deribit_volatility_index.btc_usd",
                    "deribit_volatility_index.eth_usd"
                ],
            ]
        );
        assert_eq!(
            conns[0].subscribe[0],
            r#"{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":30}}"#
        );
        assert!(conns[0].subscribe[1].starts_with(
            r#"{"jsonrpc":"2.0","id":100,"method":"public/subscribe","params":{"channels":["trades.BTC-PERPETUAL.100ms","#
        ));
        assert_eq!(conns[1].streams[0].market, "option");
        assert!(conns[1].streams[0].book);
        assert_eq!(
            p.markets(),
            vec![
                ("swap", vec!["BTC-PERPETUAL".to_string()]),
                ("option", vec!["ETH-26DEC25-4000-C".to_string()]),
                ("index", vec!["btc_usd".to_string(), "eth_usd".to_string()]),
            ]
        );
        let b = p.books().unwrap();
        let r = b.resubscribe.unwrap();
        assert_eq!(
            r.messages("BTC-PERPETUAL")[1],
            r#"{"jsonrpc":"2.0","id":7,"method":"public/subscribe","params":{"channels":["book.BTC-PERPETUAL.raw"]}}"#
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        for (yaml, key) in [
            ("symbols: [BTCUSD]", "exchanges.deribit.symbols[0]"),
            (
                "symbols: [BTC-PERPETUAL]\nchannels: [depth]",
                "exchanges.deribit.channels[0]",
            ),
            (
                "symbols: [BTC-PERPETUAL]\nchannels: [book.1s]",
                "exchanges.deribit.channels[0]",
            ),
            (
                "symbols: [BTC-PERPETUAL]\nheartbeat_interval: 5s",
                "exchanges.deribit.heartbeat_interval",
            ),
            (
                "symbols: [BTC-PERPETUAL]\nvolatility_indexes: [BTC]",
                "exchanges.deribit.volatility_indexes[0]",
            ),
            (
                "instruments: {currency: BTC, kind: opt}",
                "exchanges.deribit.instruments",
            ),
            ("symbols: [BTC-PERPETUAL]\nbogus: 1", "exchanges.deribit"),
        ] {
            let y: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
            let e = DeribitPlan::from_section(y).unwrap_err();
            assert!(e.to_string().contains(key), "{yaml}: {e}");
        }
    }
}
