//! OKX v5 public WebSocket adapter (EXCHANGES.md 4.3).
//!
//! One section `exchanges.okx` collects spot, margin, perpetual swap, futures and option
//! instruments together; each event's `market` comes from its instId (`BTC-USDT` spot,
//! `BTC-USDT-SWAP` swap, `BTC-USD-261225` futures, `BTC-USD-261225-100000-C` option).
//! Connections subscribe with JSON `op` messages, at most `max_streams_per_connection`
//! (channel, instrument) pairs each, an instrument's channels kept together; new connections are
//! limited to 3 per second per IP; a connection silent for `ping_interval` sends the text `ping`
//! (OKX closes one silent for 30 s). `books` are maintained from the exchange's snapshot push,
//! chained by `seqId`/`prevSeqId` and checked by checksum ([`sequence`]); a broken book is
//! re-synced alone by unsubscribing and subscribing its instrument again.

pub mod decode;
pub mod poll;
pub mod sequence;

use crate::exchange::{ConnectionSpec, Decoder, ExchangePlan, KeepAlive, StreamSpec};
use crate::setting::{ConfigError, section};
use serde::Deserialize;
use std::time::Duration;

/// WebSocket channels served per instrument (`liquidation-orders` per instrument type).
pub const CHANNELS: &[&str] = &[
    "trades",
    "books",
    "books5",
    "bbo-tbt",
    "mark-price",
    "funding-rate",
    "open-interest",
    "liquidation-orders",
];
const DEFAULT_CHANNELS: &[&str] = &["trades", "books"];

/// OKX's documented per-IP limit of new connections per second.
pub const CONNECTS_PER_SECOND: u32 = 3;
/// OKX's limit of `subscribe`/`unsubscribe`/`login` requests per connection per hour.
pub const REQUESTS_PER_HOUR: u32 = 480;
/// Arguments per `subscribe` message (OKX caps a message's args at 64 KB).
const ARGS_PER_MESSAGE: usize = 50;

/// Registry entry.
pub struct Factory;
pub static FACTORY: Factory = Factory;

impl crate::exchange::ExchangeFactory for Factory {
    fn name(&self) -> &'static str {
        "okx"
    }

    fn plan(
        &self,
        section: serde_yaml::Value,
    ) -> Result<Option<Box<dyn ExchangePlan>>, ConfigError> {
        Ok(OkxPlan::from_section(section)?.map(|p| Box::new(p) as Box<dyn ExchangePlan>))
    }
}

/// `exchanges.okx` as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    /// WebSocket URL (default `wss://ws.okx.com:8443/ws/v5/public`).
    ws_url: Option<String>,
    /// REST base URL (default `https://www.okx.com`).
    rest_url: Option<String>,
    /// instIds as OKX spells them (`BTC-USDT`, `BTC-USDT-SWAP`, `BTC-USD-261225`).
    #[serde(default)]
    symbols: Vec<String>,
    /// Channels per instrument (default `trades`, `books`).
    channels: Option<Vec<String>>,
    /// (channel, instrument) pairs per connection (default 30; OKX advises fewer than 30
    /// channels per connection for 400-level books).
    max_streams_per_connection: Option<usize>,
    /// Messages we send per second per connection, pings included (default 10; OKX documents
    /// no per-second limit for public connections, only 480 subscribe/unsubscribe per hour).
    max_messages_per_sec: Option<u32>,
    /// New connections per second to the WebSocket host (OKX: 3 per IP).
    connects_per_second: Option<u32>,
    silent_stream_timeout: Option<String>,
    /// Send the text `ping` after this long without receiving anything (default 20s; must stay
    /// under OKX's 30 s).
    ping_interval: Option<String>,
    /// Nothing received for this long -> the connection is replaced (default 40s).
    liveness_timeout: Option<String>,
    /// Planned make-before-break rollover before this age (default "off": OKX sets no limit).
    max_connection_age: Option<String>,
    rollover_timeout: Option<String>,
    /// REST series (the `rubik` long/short ratios): poll settings.
    #[serde(default)]
    rest: Option<serde_yaml::Value>,
    /// REST weight per minute on the REST host (default 600: OKX's public endpoints allow 20
    /// requests per 2 s, the ratio endpoints 5 per 2 s per instrument, enforced per job).
    rest_weight_per_minute: Option<u32>,
}

/// OKX instrument type of an instId, from its shape.
pub fn market_of(inst_id: &str) -> &'static str {
    inst_market(inst_id).unwrap_or("spot")
}

/// `spot` | `swap` | `futures` | `option` for a well-formed instId, else `None`. Allocates
/// nothing (the decoder calls it for every push without `instType`).
pub fn inst_market(inst_id: &str) -> Option<&'static str> {
    if inst_id.len() > 64 {
        return None;
    }
    let mut parts = [""; 5];
    let mut n = 0;
    for p in inst_id.split('-') {
        if n == parts.len() {
            return None;
        }
        parts[n] = p;
        n += 1;
    }
    let word = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    if n < 2 || !word(parts[0]) || !word(parts[1]) {
        return None;
    }
    let date = |p: &str| p.len() == 6 && p.bytes().all(|b| b.is_ascii_digit());
    match &parts[..n] {
        [_, _] => Some("spot"),
        [_, _, "SWAP"] => Some("swap"),
        [_, _, d] if date(d) => Some("futures"),
        [_, _, d, strike, "C" | "P"]
            if date(d)
                && !strike.is_empty()
                && strike.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            Some("option")
        }
        _ => None,
    }
}

/// The OKX `instType` of a market (for `liquidation-orders`, subscribed per type).
fn inst_type(market: &str) -> &'static str {
    match market {
        "swap" => "SWAP",
        "futures" => "FUTURES",
        "option" => "OPTION",
        _ => "MARGIN",
    }
}

/// Whether OKX serves `channel` for instruments of `market`.
fn serves(channel: &str, market: &str) -> bool {
    match channel {
        "funding-rate" => market == "swap",
        "open-interest" | "mark-price" => market != "spot",
        "liquidation-orders" => market != "spot",
        _ => true,
    }
}

/// A validated `exchanges.okx`.
#[derive(Debug)]
pub struct OkxPlan {
    ws_url: String,
    rest_url: String,
    symbols: Vec<String>,
    channels: Vec<String>,
    max_streams: usize,
    max_messages_per_sec: u32,
    connects_per_second: u32,
    silence_timeout: Duration,
    ping_interval: Duration,
    liveness_timeout: Duration,
    max_age: Option<Duration>,
    rollover_timeout: Duration,
    /// REST-polled series among the channels, and their settings.
    rest_series: Vec<String>,
    rest_plan: poll::RestPlan,
    rest_weight_per_minute: u32,
    /// Keep the instrument types of `liquidation-orders` even when no symbol of that type is
    /// configured (sharding keeps them on the shard of all-market streams).
    all_market: bool,
}

fn dur(key: &str, v: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    crate::setting::duration::parse(v.unwrap_or(default)).map_err(|r| ConfigError::new(key, r))
}

impl OkxPlan {
    pub fn from_section(value: serde_yaml::Value) -> Result<Option<OkxPlan>, ConfigError> {
        let prefix = "exchanges.okx";
        let s: Section = section(prefix, value)?;
        let key = |k: &str| format!("{prefix}.{k}");
        let ws_url = s
            .ws_url
            .unwrap_or_else(|| "wss://ws.okx.com:8443/ws/v5/public".into());
        super::check_url(&key("ws_url"), &ws_url, &["ws://", "wss://"])?;
        let rest_url = s.rest_url.unwrap_or_else(|| "https://www.okx.com".into());
        super::check_url(&key("rest_url"), &rest_url, &["http://", "https://"])?;
        let mut symbols: Vec<String> = Vec::with_capacity(s.symbols.len());
        for (i, sym) in s.symbols.iter().enumerate() {
            let k = format!("{prefix}.symbols[{i}]");
            let up = sym.to_ascii_uppercase();
            if inst_market(&up).is_none() {
                return Err(ConfigError::new(
                    k,
                    format!(
                        "`{sym}` is not an OKX instId (e.g. BTC-USDT, BTC-USDT-SWAP, BTC-USD-261225, BTC-USD-261225-100000-C)"
                    ),
                ));
            }
            if symbols.contains(&up) {
                return Err(ConfigError::new(k, format!("`{sym}` is listed twice")));
            }
            symbols.push(up);
        }
        let channels: Vec<String> = s
            .channels
            .unwrap_or_else(|| DEFAULT_CHANNELS.iter().map(|c| c.to_string()).collect());
        if channels.is_empty() {
            return Err(ConfigError::new(
                key("channels"),
                "must name at least one channel",
            ));
        }
        for (i, ch) in channels.iter().enumerate() {
            let k = format!("{prefix}.channels[{i}]");
            let rest = poll::SERIES.iter().any(|(p, _)| p == ch);
            if !CHANNELS.contains(&ch.as_str()) && !rest {
                let mut known = CHANNELS.to_vec();
                known.extend(poll::SERIES.iter().map(|(p, _)| *p));
                return Err(ConfigError::new(
                    k,
                    format!("unknown channel `{ch}` (known: {})", known.join(", ")),
                ));
            }
            if channels[..i].contains(ch) {
                return Err(ConfigError::new(k, format!("`{ch}` is listed twice")));
            }
        }
        let max_streams = s.max_streams_per_connection.unwrap_or(30);
        if max_streams == 0 || max_streams > 1000 {
            return Err(ConfigError::new(
                key("max_streams_per_connection"),
                "must be between 1 and 1000",
            ));
        }
        let max_messages_per_sec = s.max_messages_per_sec.unwrap_or(10);
        if max_messages_per_sec == 0 || max_messages_per_sec > 100 {
            return Err(ConfigError::new(
                key("max_messages_per_sec"),
                "must be between 1 and 100",
            ));
        }
        let connects_per_second = s.connects_per_second.unwrap_or(CONNECTS_PER_SECOND);
        if connects_per_second == 0 || connects_per_second > CONNECTS_PER_SECOND {
            return Err(ConfigError::new(
                key("connects_per_second"),
                format!("must be between 1 and {CONNECTS_PER_SECOND} (OKX's limit per IP)"),
            ));
        }
        let silence_timeout = dur(
            &key("silent_stream_timeout"),
            s.silent_stream_timeout.as_deref(),
            "5m",
        )?;
        let ping_interval = dur(&key("ping_interval"), s.ping_interval.as_deref(), "20s")?;
        let liveness_timeout = dur(
            &key("liveness_timeout"),
            s.liveness_timeout.as_deref(),
            "40s",
        )?;
        if ping_interval < Duration::from_millis(100) || ping_interval >= Duration::from_secs(30) {
            return Err(ConfigError::new(
                key("ping_interval"),
                "must be between 100ms and 30s (OKX closes a connection silent for 30 s)",
            ));
        }
        if liveness_timeout <= ping_interval {
            return Err(ConfigError::new(
                key("liveness_timeout"),
                "must exceed ping_interval",
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
        let rest_plan = poll::RestPlan::from_section(prefix, s.rest)?;
        let rest_weight_per_minute = s.rest_weight_per_minute.unwrap_or(600);
        if rest_weight_per_minute == 0 {
            return Err(ConfigError::new(
                key("rest_weight_per_minute"),
                "must be positive",
            ));
        }
        let (rest_series, channels): (Vec<String>, Vec<String>) = channels
            .into_iter()
            .partition(|c| poll::SERIES.iter().any(|(p, _)| p == c));
        if symbols.is_empty() {
            return Ok(None);
        }
        Ok(Some(OkxPlan {
            rest_series,
            rest_plan,
            rest_weight_per_minute,
            ws_url,
            rest_url,
            symbols,
            channels,
            max_streams,
            max_messages_per_sec,
            connects_per_second,
            silence_timeout,
            ping_interval,
            liveness_timeout,
            max_age,
            rollover_timeout,
            all_market: true,
        }))
    }

    /// Every stream: per instrument its channels (instrument-major, so one instrument's
    /// channels share a connection), then `liquidation-orders` once per instrument type.
    pub fn streams(&self) -> Vec<StreamSpec> {
        let mut out = Vec::new();
        for sym in &self.symbols {
            let market = market_of(sym);
            for ch in &self.channels {
                if ch == "liquidation-orders" || !serves(ch, market) {
                    continue;
                }
                out.push(StreamSpec {
                    name: stream_name(ch, sym),
                    channel: ch.clone(),
                    symbol: sym.clone(),
                    market,
                    book: ch == "books",
                    watched: true,
                });
            }
        }
        if self.all_market && self.channels.iter().any(|c| c == "liquidation-orders") {
            let mut types: Vec<&'static str> = Vec::new();
            for sym in &self.symbols {
                let m = market_of(sym);
                if serves("liquidation-orders", m) && !types.contains(&inst_type(m)) {
                    types.push(inst_type(m));
                }
            }
            for t in types {
                out.push(StreamSpec {
                    name: stream_name("liquidation-orders", t),
                    channel: "liquidation-orders".into(),
                    symbol: String::new(),
                    market: "",
                    book: false,
                    // Liquidations are sparse: silence proves nothing.
                    watched: false,
                });
            }
        }
        out
    }
}

/// A stream's name as logs, `gap.stream` and the decoder report it: `<channel>:<instId>`
/// (`liquidation-orders:<instType>`).
pub fn stream_name(channel: &str, target: &str) -> String {
    format!("{channel}:{target}")
}

/// The subscription argument of a stream.
fn arg(s: &StreamSpec) -> String {
    if s.symbol.is_empty() {
        let t = s.name.rsplit(':').next().unwrap_or("");
        format!("{{\"channel\":\"{}\",\"instType\":\"{t}\"}}", s.channel)
    } else {
        format!(
            "{{\"channel\":\"{}\",\"instId\":\"{}\"}}",
            s.channel, s.symbol
        )
    }
}

/// `{"op":"<op>","args":[...]}`.
pub fn op_message(op: &str, args: &[String]) -> String {
    format!("{{\"op\":\"{op}\",\"args\":[{}]}}", args.join(","))
}

/// Re-sync of one instrument's `books`: unsubscribe, then subscribe (OKX pushes a new snapshot).
#[derive(Debug)]
pub struct BooksResubscribe;

impl crate::book::Resubscribe for BooksResubscribe {
    fn messages(&self, symbol: &str) -> Vec<String> {
        let a = format!("{{\"channel\":\"books\",\"instId\":\"{symbol}\"}}");
        vec![
            op_message("unsubscribe", std::slice::from_ref(&a)),
            op_message("subscribe", &[a]),
        ]
    }
}

impl ExchangePlan for OkxPlan {
    fn name(&self) -> &'static str {
        "okx"
    }

    fn exchange(&self) -> &'static str {
        "okx"
    }

    /// The market of the first instrument (events carry each instrument's own, see
    /// [`ExchangePlan::markets`]).
    fn market(&self) -> &'static str {
        self.symbols.first().map_or("spot", |s| market_of(s))
    }

    fn markets(&self) -> Vec<(&'static str, Vec<String>)> {
        crate::exchange::group_by_market(&self.symbols, market_of)
    }

    fn symbols(&self) -> &[String] {
        &self.symbols
    }

    fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.symbols.retain(|s| keep(s));
        self.all_market = keep(crate::setting::shard::ALL_MARKET);
    }

    fn connections(&self) -> Vec<ConnectionSpec> {
        self.streams()
            .chunks(self.max_streams)
            .map(|streams| ConnectionSpec {
                url: self.ws_url.clone(),
                streams: streams.to_vec(),
                subscribe: streams
                    .chunks(ARGS_PER_MESSAGE)
                    .map(|c| op_message("subscribe", &c.iter().map(arg).collect::<Vec<_>>()))
                    .collect(),
                max_messages_per_sec: self.max_messages_per_sec,
                silence_timeout: self.silence_timeout,
                keep_alive: KeepAlive::Text {
                    ping: "ping",
                    pong: "pong",
                },
                ping_interval: self.ping_interval,
                // OKX never pings us: no pong budget needed.
                server_ping_interval: Duration::from_secs(3600),
                liveness_timeout: self.liveness_timeout,
                max_age: self.max_age,
                rollover_timeout: self.rollover_timeout,
                connects_per_second: Some(self.connects_per_second),
                max_requests_per_hour: Some(REQUESTS_PER_HOUR),
            })
            .collect()
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(decode::OkxDecoder::new())
    }

    fn effective(&self) -> serde_yaml::Value {
        use crate::setting::duration::format as fmt;
        #[derive(serde::Serialize)]
        struct Effective<'a> {
            ws_url: &'a str,
            rest_url: &'a str,
            symbols: &'a [String],
            channels: &'a [String],
            max_streams_per_connection: usize,
            max_messages_per_sec: u32,
            connects_per_second: u32,
            ping_interval: String,
            liveness_timeout: String,
            silent_stream_timeout: String,
            max_connection_age: String,
            rollover_timeout: String,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            rest_series: &'a [String],
            rest: &'a poll::RestSeries,
            rest_weight_per_minute: u32,
        }
        serde_yaml::to_value(Effective {
            ws_url: &self.ws_url,
            rest_url: &self.rest_url,
            symbols: &self.symbols,
            channels: &self.channels,
            max_streams_per_connection: self.max_streams,
            max_messages_per_sec: self.max_messages_per_sec,
            connects_per_second: self.connects_per_second,
            ping_interval: fmt(self.ping_interval),
            liveness_timeout: fmt(self.liveness_timeout),
            silent_stream_timeout: fmt(self.silence_timeout),
            max_connection_age: self.max_age.map(fmt).unwrap_or_else(|| "off".into()),
            rollover_timeout: fmt(self.rollover_timeout),
            rest_series: &self.rest_series,
            rest: &self.rest_plan.raw,
            rest_weight_per_minute: self.rest_weight_per_minute,
        })
        .unwrap_or(serde_yaml::Value::Null)
    }

    fn poll_jobs(&self) -> Vec<crate::exchange::poll_job::PollJob> {
        poll::jobs(
            &self.rest_url,
            &self.symbols,
            &self.rest_series,
            &self.rest_plan,
        )
    }

    fn rest_budget(&self) -> Option<crate::exchange::RestBudget> {
        Some(crate::exchange::RestBudget {
            host: crate::exchange::url_host(&self.rest_url).to_string(),
            weight_per_minute: self.rest_weight_per_minute,
        })
    }

    fn books(&self) -> Option<crate::book::BookSpec> {
        if !self.channels.iter().any(|c| c == "books") || self.symbols.is_empty() {
            return None;
        }
        Some(crate::book::BookSpec {
            rules: &sequence::RULES,
            exchange: "okx",
            market: self.market(),
            market_of: Some(market_of),
            symbols: self.symbols.clone(),
            source: None,
            max_snapshot_limit: 400,
            accepted_limits: &[],
            snapshot_limit: None,
            resubscribe: Some(std::sync::Arc::new(BooksResubscribe)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inst_ids_and_their_markets() {
        for (id, m) in [
            ("BTC-USDT", Some("spot")),
            ("BTC-USDT-SWAP", Some("swap")),
            ("BTC-USD-261225", Some("futures")),
            ("BTC-USD-261225-100000-C", Some("option")),
            ("DOGE-USD-261225-0.25-P", Some("option")),
            ("BTCUSDT", None),
            ("btc-usdt", None),
            ("BTC-USDT-PERP", None),
            ("BTC--USDT", None),
            ("BTC-USD-2612-1-C", None),
            ("BTC-USD-261225-1-X", None),
            ("", None),
        ] {
            assert_eq!(inst_market(id), m, "{id}");
        }
    }

    #[test]
    fn plan_groups_streams_and_subscribes_by_op() {
        let y: serde_yaml::Value = serde_yaml::from_str(
            "symbols: [BTC-USDT, BTC-USDT-SWAP]\nchannels: [trades, books, funding-rate, liquidation-orders]\nmax_streams_per_connection: 3",
        )
        .unwrap();
        let p = OkxPlan::from_section(y).unwrap().unwrap();
        let conns = p.connections();
        let names: Vec<Vec<String>> = conns.iter().map(|c| c.stream_names()).collect();
        assert_eq!(
            names,
            vec![
                vec!["trades:BTC-USDT", "books:BTC-USDT", "trades:BTC-USDT-SWAP"],
                vec![
                    "books:BTC-USDT-SWAP",
                    "funding-rate:BTC-USDT-SWAP",
                    "liquidation-orders:SWAP"
                ],
            ]
        );
        assert_eq!(
            conns[1].subscribe,
            vec![
                "{\"op\":\"subscribe\",\"args\":[{\"channel\":\"books\",\"instId\":\"BTC-USDT-SWAP\"},{\"channel\":\"funding-rate\",\"instId\":\"BTC-USDT-SWAP\"},{\"channel\":\"liquidation-orders\",\"instType\":\"SWAP\"}]}"
            ]
        );
        assert_eq!(conns[0].streams[1].market, "spot");
        assert!(conns[0].streams[1].book);
        assert_eq!(conns[1].streams[0].market, "swap");
        assert_eq!(conns[0].connects_per_second, Some(3));
        assert!(matches!(conns[0].keep_alive, KeepAlive::Text { .. }));
        assert_eq!(
            p.markets(),
            vec![
                ("spot", vec!["BTC-USDT".to_string()]),
                ("swap", vec!["BTC-USDT-SWAP".to_string()])
            ]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        for (yaml, key) in [
            ("symbols: [BTCUSDT]", "exchanges.okx.symbols[0]"),
            (
                "symbols: [BTC-USDT]\nchannels: [depth]",
                "exchanges.okx.channels[0]",
            ),
            (
                "symbols: [BTC-USDT]\nping_interval: 30s",
                "exchanges.okx.ping_interval",
            ),
            (
                "symbols: [BTC-USDT]\nconnects_per_second: 5",
                "exchanges.okx.connects_per_second",
            ),
            ("symbols: [BTC-USDT]\nbogus: 1", "exchanges.okx"),
        ] {
            let y: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
            let e = OkxPlan::from_section(y).unwrap_err();
            assert!(e.to_string().contains(key), "{yaml}: {e}");
        }
    }
}
