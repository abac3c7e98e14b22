//! Binance adapters. Spot and USD-M futures share payload shapes and the combined-stream protocol;
//! each market is a [`Profile`] (URLs, channels, limits) registered as its own config section.
//!
//! Protocol (see `../shared/EXCHANGES.md` 4.1): one combined-stream connection
//! `<ws_url>/stream?streams=a/b/..` per at most `max_streams_per_connection` streams (Binance allows
//! 1024). The first [`URL_STREAMS_BYTES`] of stream names ride in the URL; any others are added with
//! `SUBSCRIBE` messages of at most [`STREAMS_PER_SUBSCRIBE`] names, sent no faster than
//! `max_messages_per_sec` (Binance spot: 5 per second, pings and pongs included). Server pings are answered with their payload
//! by the reader.

pub mod decode;
pub mod poll;
pub mod sequence;
pub mod snapshot;
pub mod spot;
pub mod usdm;

use crate::exchange::{ConnectionSpec, Decoder, ExchangePlan, StreamSpec, check_url};
use crate::setting::{ConfigError, section};
use serde::Deserialize;

/// Stream names per `SUBSCRIBE` message; keeps each control message small.
pub const STREAMS_PER_SUBSCRIBE: usize = 100;

/// Bytes of stream names carried in the connection URL (`/stream?streams=a/b/..`); those need no
/// outgoing message at all. The rest is subscribed with paced `SUBSCRIBE` messages. Kept well under
/// common 8 KiB request-line limits.
pub const URL_STREAMS_BYTES: usize = 2000;

/// What differs between Binance markets.
#[derive(Debug)]
pub struct Profile {
    /// Config section name.
    pub name: &'static str,
    /// `market` field of the events.
    pub market: &'static str,
    pub default_ws_url: &'static str,
    pub default_rest_url: &'static str,
    /// Channels this market serves (the part after `<symbol>@`).
    pub channels: &'static [&'static str],
    pub default_channels: &'static [&'static str],
    /// Upper bound of streams per connection, and the default.
    pub max_streams: usize,
    pub default_streams: usize,
    /// Book sync procedure of this market.
    pub sequence: sequence::Sequence,
    /// REST path of depth snapshots and the largest `limit` it serves.
    pub depth_path: &'static str,
    pub max_snapshot_limit: u32,
    /// The only snapshot `limit` values the endpoint accepts (empty: any up to the maximum).
    pub accepted_snapshot_limits: &'static [u32],
    /// Request weight per minute per IP on the REST host (the default of
    /// `rest_weight_per_minute`).
    pub rest_weight_per_minute: u32,
    /// Exchange limit of messages we may send per second per connection.
    pub max_messages_per_sec: u32,
    /// How often the server pings (the default of `server_ping_interval`).
    pub server_ping_interval: std::time::Duration,
    /// Routed WebSocket paths by channel name (the part before the first `@`): USD-M serves
    /// `/public` and `/market` and a stream on the wrong path silently delivers nothing. Empty for
    /// markets without routing (spot: `/stream`).
    pub routes: &'static [(&'static str, &'static str)],
    /// Channels polled over REST instead of streamed (USD-M open interest, ratios, funding).
    pub rest_channels: &'static [&'static str],
}

/// Registry entry of one Binance market (its profile names the config section).
pub struct Factory(pub &'static Profile);

impl crate::exchange::ExchangeFactory for Factory {
    fn name(&self) -> &'static str {
        self.0.name
    }

    fn plan(
        &self,
        section: serde_yaml::Value,
    ) -> Result<Option<Box<dyn ExchangePlan>>, ConfigError> {
        Ok(BinancePlan::from_section(self.0, section)?
            .map(|p| Box::new(p) as Box<dyn ExchangePlan>))
    }
}

/// The config section `exchanges.<binance market>`, as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    /// WebSocket base URL (ws:// or wss://), e.g. a testnet or the simulator.
    ws_url: Option<String>,
    /// REST base URL (http:// or https://), used for book snapshots.
    rest_url: Option<String>,
    /// Symbols in the exchange's spelling; lower case is accepted and upper-cased.
    #[serde(default)]
    symbols: Vec<String>,
    /// Channels per symbol, e.g. `trade`, `depth@100ms`.
    channels: Option<Vec<String>>,
    /// Streams per connection (Binance's limit is 1024).
    max_streams_per_connection: Option<usize>,
    /// Messages we send per second per connection, pongs included (Binance spot: 5).
    max_messages_per_sec: Option<u32>,
    /// USD-M: routed path per channel (`public` | `market`), overriding the built-in table.
    routes: Option<std::collections::BTreeMap<String, String>>,
    /// USD-M REST series: poll settings.
    #[serde(default)]
    rest: Option<serde_yaml::Value>,
    /// A watched stream without data this long after connecting, on a healthy connection, is
    /// reported (log `event=stream_silent`, metric `streams_silent`).
    silent_stream_timeout: Option<String>,
    /// How often we ping the server (default 30s).
    ping_interval: Option<String>,
    /// How often the server pings us (default: the market's documented interval, spot 20s,
    /// USD-M 3m); the message pacing leaves room for the pongs from the first second.
    server_ping_interval: Option<String>,
    /// Nothing received for this long -> the connection is dead and replaced (default 60s).
    liveness_timeout: Option<String>,
    /// Planned make-before-break rollover before this age (default "23h30m"; Binance closes at
    /// 24 h), staggered across connections; "off" disables it.
    max_connection_age: Option<String>,
    /// Longest overlap of old and new session during a rollover (default "10s").
    rollover_timeout: Option<String>,
    /// Request weight per minute this market's REST host allows one IP (default: spot 6000,
    /// USD-M 2400, from Binance's documentation); book snapshots and polled series share it.
    rest_weight_per_minute: Option<u32>,
    /// Levels per side of this market's REST book snapshots (default `book.rest_snapshot_limit`).
    rest_snapshot_limit: Option<u32>,
    /// USD-M: publish `@trade` records with `X` = `NA` (price and quantity 0; not trades) as
    /// `trade_type: "na"` instead of skipping them (`frames_skipped_total{reason="non_trade"}`).
    #[serde(default)]
    keep_non_trade: bool,
}

/// A validated Binance market configuration.
#[derive(Debug)]
pub struct BinancePlan {
    profile: &'static Profile,
    /// Routed path per channel name (empty when the market has no routing).
    routes: std::collections::BTreeMap<String, String>,
    /// See `silent_stream_timeout`.
    silence_timeout: std::time::Duration,
    ping_interval: std::time::Duration,
    server_ping_interval: std::time::Duration,
    liveness_timeout: std::time::Duration,
    max_age: Option<std::time::Duration>,
    rollover_timeout: std::time::Duration,
    /// REST-polled series among the channels, and their settings.
    pub rest_series: Vec<String>,
    pub rest_plan: poll::RestPlan,
    ws_url: String,
    rest_url: String,
    symbols: Vec<String>,
    channels: Vec<String>,
    max_streams: usize,
    max_messages_per_sec: u32,
    keep_non_trade: bool,
    rest_weight_per_minute: u32,
    rest_snapshot_limit: Option<u32>,
}

impl BinancePlan {
    /// Validates a section against `profile`. `Ok(None)`: no symbols, nothing to start.
    pub fn from_section(
        profile: &'static Profile,
        value: serde_yaml::Value,
    ) -> Result<Option<BinancePlan>, ConfigError> {
        let prefix = format!("exchanges.{}", profile.name);
        let s: Section = section(&prefix, value)?;
        let key = |k: &str| format!("{prefix}.{k}");
        let ws_url = s.ws_url.unwrap_or_else(|| profile.default_ws_url.into());
        check_url(&key("ws_url"), &ws_url, &["ws://", "wss://"])?;
        let rest_url = s
            .rest_url
            .unwrap_or_else(|| profile.default_rest_url.into());
        check_url(&key("rest_url"), &rest_url, &["http://", "https://"])?;
        let mut symbols = Vec::with_capacity(s.symbols.len());
        for (i, sym) in s.symbols.iter().enumerate() {
            let k = format!("{prefix}.symbols[{i}]");
            // Binance lists UTF-8 symbols (since December 2025): letters and digits of any
            // script; they travel percent-encoded in URLs.
            if sym.is_empty()
                || sym.len() > 64
                || !sym.chars().all(|c| c.is_alphanumeric() || c == '_')
            {
                return Err(ConfigError::new(
                    k,
                    format!("`{sym}` is not a Binance symbol (letters and digits, e.g. BTCUSDT)"),
                ));
            }
            let up = sym.to_ascii_uppercase();
            if symbols.contains(&up) {
                return Err(ConfigError::new(k, format!("`{sym}` is listed twice")));
            }
            symbols.push(up);
        }
        let channels: Vec<String> = match s.channels {
            Some(c) => c,
            None => profile
                .default_channels
                .iter()
                .map(|c| c.to_string())
                .collect(),
        };
        if channels.is_empty() {
            return Err(ConfigError::new(
                key("channels"),
                "must name at least one channel",
            ));
        }
        for (i, ch) in channels.iter().enumerate() {
            let k = format!("{prefix}.channels[{i}]");
            if !profile.channels.contains(&ch.as_str())
                && !profile.rest_channels.contains(&ch.as_str())
            {
                let mut known = profile.channels.to_vec();
                known.extend_from_slice(profile.rest_channels);
                return Err(ConfigError::new(
                    k,
                    format!("unknown channel `{ch}` (known: {})", known.join(", ")),
                ));
            }
            if channels[..i].contains(ch) {
                return Err(ConfigError::new(k, format!("`{ch}` is listed twice")));
            }
            // Two diff-depth streams of one symbol carry the same update ids at different
            // cadences: mixed into one book they look like endless gaps.
            if let Some(other) = channels[..i]
                .iter()
                .find(|o| channel_base(o) == "depth" && channel_base(ch) == "depth")
            {
                return Err(ConfigError::new(
                    k,
                    format!(
                        "`{ch}` and `{other}` are both diff-depth streams of each symbol; choose one (a symbol's book follows one stream)"
                    ),
                ));
            }
        }
        let max_streams = s
            .max_streams_per_connection
            .unwrap_or(profile.default_streams);
        if max_streams == 0 || max_streams > profile.max_streams {
            return Err(ConfigError::new(
                key("max_streams_per_connection"),
                format!(
                    "must be between 1 and {} (the exchange's limit)",
                    profile.max_streams
                ),
            ));
        }
        let max_messages_per_sec = s
            .max_messages_per_sec
            .unwrap_or(profile.max_messages_per_sec);
        if max_messages_per_sec == 0 || max_messages_per_sec > profile.max_messages_per_sec {
            return Err(ConfigError::new(
                key("max_messages_per_sec"),
                format!(
                    "must be between 1 and {} (the exchange's limit per connection; more gets the connection closed)",
                    profile.max_messages_per_sec
                ),
            ));
        }
        let mut routes: std::collections::BTreeMap<String, String> = profile
            .routes
            .iter()
            .map(|(c, r)| (c.to_string(), r.to_string()))
            .collect();
        if let Some(user) = s.routes {
            if profile.routes.is_empty() {
                return Err(ConfigError::new(
                    key("routes"),
                    "this market has no routed paths",
                ));
            }
            for (c, r) in user {
                if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(ConfigError::new(
                        format!("{prefix}.routes.{c}"),
                        format!("`{r}` is not a path segment like public or market"),
                    ));
                }
                routes.insert(c, r);
            }
        }
        if let Some(ch) = channels.iter().find(|c| {
            !profile.routes.is_empty()
                && !profile.rest_channels.contains(&c.as_str())
                && !routes.contains_key(channel_base(c))
        }) {
            return Err(ConfigError::new(
                key("routes"),
                format!(
                    "no routed path for channel `{ch}` (add routes.{}: public|market)",
                    channel_base(ch)
                ),
            ));
        }
        let rest_plan = poll::RestPlan::from_section(&prefix, s.rest)?;
        let rest_weight_per_minute = s
            .rest_weight_per_minute
            .unwrap_or(profile.rest_weight_per_minute);
        if rest_weight_per_minute == 0 {
            return Err(ConfigError::new(
                key("rest_weight_per_minute"),
                "must be positive",
            ));
        }
        let silence_timeout =
            crate::setting::duration::parse(s.silent_stream_timeout.as_deref().unwrap_or("5m"))
                .map_err(|r| ConfigError::new(key("silent_stream_timeout"), r))?;
        let ping_interval =
            crate::setting::duration::parse(s.ping_interval.as_deref().unwrap_or("30s"))
                .map_err(|r| ConfigError::new(key("ping_interval"), r))?;
        let liveness_timeout =
            crate::setting::duration::parse(s.liveness_timeout.as_deref().unwrap_or("60s"))
                .map_err(|r| ConfigError::new(key("liveness_timeout"), r))?;
        if ping_interval < std::time::Duration::from_millis(100)
            || liveness_timeout <= ping_interval
        {
            return Err(ConfigError::new(
                key("liveness_timeout"),
                "must exceed ping_interval (and ping_interval be at least 100ms)",
            ));
        }
        let server_ping_interval = match s.server_ping_interval.as_deref() {
            None => profile.server_ping_interval,
            Some(v) => crate::setting::duration::parse(v)
                .map_err(|r| ConfigError::new(key("server_ping_interval"), r))?,
        };
        if server_ping_interval < std::time::Duration::from_millis(10) {
            return Err(ConfigError::new(
                key("server_ping_interval"),
                "must be at least 10ms",
            ));
        }
        let max_age = match s.max_connection_age.as_deref().unwrap_or("23h30m") {
            "off" => None,
            v => {
                let d = crate::setting::duration::parse(v)
                    .map_err(|r| ConfigError::new(key("max_connection_age"), r))?;
                if d < std::time::Duration::from_secs(1)
                    || d > std::time::Duration::from_secs(86_400)
                {
                    return Err(ConfigError::new(
                        key("max_connection_age"),
                        "must be between 1s and 24h (Binance closes connections at 24h), or \"off\"",
                    ));
                }
                Some(d)
            }
        };
        let rollover_timeout =
            crate::setting::duration::parse(s.rollover_timeout.as_deref().unwrap_or("10s"))
                .map_err(|r| ConfigError::new(key("rollover_timeout"), r))?;
        let rest_series: Vec<String> = channels
            .iter()
            .filter(|c| profile.rest_channels.contains(&c.as_str()))
            .cloned()
            .collect();
        let channels: Vec<String> = channels
            .into_iter()
            .filter(|c| !profile.rest_channels.contains(&c.as_str()))
            .collect();
        if symbols.is_empty() && !channels.iter().any(|c| c.starts_with('!')) {
            return Ok(None);
        }
        Ok(Some(BinancePlan {
            profile,
            routes,
            rest_series,
            rest_plan,
            silence_timeout,
            ping_interval,
            server_ping_interval,
            liveness_timeout,
            max_age,
            rollover_timeout,
            ws_url,
            rest_url,
            symbols,
            channels,
            max_streams,
            max_messages_per_sec,
            keep_non_trade: s.keep_non_trade,
            rest_weight_per_minute,
            rest_snapshot_limit: s.rest_snapshot_limit,
        }))
    }

    /// Every stream name, `<symbol lower>@<channel>` (symbol-major), then the all-market
    /// channels (`!markPrice@arr`, ...) once each.
    pub fn streams(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.symbols.len() * self.channels.len());
        for sym in &self.symbols {
            let lower = sym.to_ascii_lowercase();
            for ch in self.channels.iter().filter(|c| !c.starts_with('!')) {
                out.push(format!("{lower}@{ch}"));
            }
        }
        out.extend(self.channels.iter().filter(|c| c.starts_with('!')).cloned());
        out
    }

    /// The routed path of a stream (`""` without routing).
    fn route_of(&self, stream: &str) -> &str {
        let ch = if stream.starts_with('!') {
            stream
        } else {
            stream.split_once('@').map(|(_, c)| c).unwrap_or("")
        };
        self.routes
            .get(channel_base(ch))
            .map(String::as_str)
            .unwrap_or("")
    }
}

impl BinancePlan {
    /// Connections carrying `streams`: one group per routed path, each split under
    /// `max_streams_per_connection`; as many names as fit go into the URL, the rest are
    /// subscribed by paced messages.
    fn layout(&self, streams: Vec<String>) -> Vec<ConnectionSpec> {
        let mut id = 0u64;
        // One group of connections per routed path (a single group without routing).
        let mut groups: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for s in streams {
            groups
                .entry(self.route_of(&s).to_string())
                .or_default()
                .push(s);
        }
        let mut out = Vec::new();
        for (route, streams) in groups {
            let root = self.ws_url.trim_end_matches('/');
            let base = if route.is_empty() {
                format!("{root}/stream")
            } else {
                format!("{root}/{route}/stream")
            };
            out.extend(streams.chunks(self.max_streams).map(|streams| {
                // As many streams as fit go into the URL; the rest are subscribed by message.
                let escaped: Vec<_> = streams
                    .iter()
                    .map(|s| crate::exchange::url_escape(s))
                    .collect();
                let mut in_url = 0;
                let mut bytes = 0;
                for s in &escaped {
                    if bytes + s.len() + 1 > URL_STREAMS_BYTES {
                        break;
                    }
                    bytes += s.len() + 1;
                    in_url += 1;
                }
                let url = format!("{base}?streams={}", escaped[..in_url].join("/"));
                ConnectionSpec {
                    url,
                    streams: streams.iter().map(|s| stream_spec(s)).collect(),
                    subscribe: streams[in_url..]
                        .chunks(STREAMS_PER_SUBSCRIBE)
                        .map(|chunk| {
                            id += 1;
                            subscribe_message(chunk, id)
                        })
                        .collect(),
                    max_messages_per_sec: self.max_messages_per_sec,
                    silence_timeout: self.silence_timeout,
                    keep_alive: crate::exchange::KeepAlive::WsPing,
                    ping_interval: self.ping_interval,
                    server_ping_interval: self.server_ping_interval,
                    liveness_timeout: self.liveness_timeout,
                    max_age: self.max_age,
                    rollover_timeout: self.rollover_timeout,
                    connects_per_second: None,
                    max_requests_per_hour: None,
                }
            }));
        }
        out
    }
}

impl ExchangePlan for BinancePlan {
    fn name(&self) -> &'static str {
        self.profile.name
    }

    fn exchange(&self) -> &'static str {
        "binance"
    }

    fn market(&self) -> &'static str {
        self.profile.market
    }

    fn symbols(&self) -> &[String] {
        &self.symbols
    }

    fn connections(&self) -> Vec<ConnectionSpec> {
        self.layout(self.streams())
    }

    fn connections_for(&self, streams: Vec<StreamSpec>) -> Vec<ConnectionSpec> {
        self.layout(streams.into_iter().map(|s| s.name).collect())
    }

    /// `UNSUBSCRIBE` messages of at most [`STREAMS_PER_SUBSCRIBE`] names.
    fn unsubscribe(&self, streams: &[StreamSpec]) -> Vec<String> {
        let names: Vec<String> = streams.iter().map(|s| s.name.clone()).collect();
        names
            .chunks(STREAMS_PER_SUBSCRIBE)
            .enumerate()
            .map(|(i, chunk)| method_message("UNSUBSCRIBE", chunk, 1_000_000 + i as u64))
            .collect()
    }

    fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.symbols.retain(|s| keep(s));
        if !keep(crate::setting::shard::ALL_MARKET) {
            self.channels.retain(|c| !c.starts_with('!'));
        }
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        let mut d = decode::BinanceDecoder::new(self.profile.market);
        d.keep_non_trade = self.keep_non_trade;
        Box::new(d)
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
            #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
            routes: &'a std::collections::BTreeMap<String, String>,
            ping_interval: String,
            server_ping_interval: String,
            liveness_timeout: String,
            silent_stream_timeout: String,
            max_connection_age: String,
            rollover_timeout: String,
            keep_non_trade: bool,
            rest_weight_per_minute: u32,
            #[serde(skip_serializing_if = "Option::is_none")]
            rest_snapshot_limit: Option<u32>,
        }
        serde_yaml::to_value(Effective {
            ws_url: &self.ws_url,
            rest_url: &self.rest_url,
            symbols: &self.symbols,
            channels: &self.channels,
            max_streams_per_connection: self.max_streams,
            max_messages_per_sec: self.max_messages_per_sec,
            routes: &self.routes,
            ping_interval: fmt(self.ping_interval),
            server_ping_interval: fmt(self.server_ping_interval),
            liveness_timeout: fmt(self.liveness_timeout),
            silent_stream_timeout: fmt(self.silence_timeout),
            max_connection_age: self.max_age.map(fmt).unwrap_or_else(|| "off".into()),
            rollover_timeout: fmt(self.rollover_timeout),
            keep_non_trade: self.keep_non_trade,
            rest_weight_per_minute: self.rest_weight_per_minute,
            rest_snapshot_limit: self.rest_snapshot_limit,
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

    fn books(&self) -> Option<crate::book::BookSpec> {
        if self.symbols.is_empty() {
            return None;
        }
        if !self
            .channels
            .iter()
            .any(|c| c == "depth" || c.starts_with("depth@"))
        {
            return None;
        }
        Some(crate::book::BookSpec {
            rules: self.profile.sequence.rules(),
            exchange: "binance",
            market: self.profile.market,
            market_of: None,
            symbols: self.symbols.clone(),
            source: Some(std::sync::Arc::new(snapshot::BinanceSnapshots {
                rest_url: self.rest_url.clone(),
                path: self.profile.depth_path,
                futures: self.profile.sequence == sequence::Sequence::Futures,
            })),
            max_snapshot_limit: self.profile.max_snapshot_limit,
            accepted_limits: self.profile.accepted_snapshot_limits,
            snapshot_limit: self.rest_snapshot_limit,
            resubscribe: None,
        })
    }

    fn rest_budget(&self) -> Option<crate::exchange::RestBudget> {
        Some(crate::exchange::RestBudget {
            host: crate::exchange::url_host(&self.rest_url).to_string(),
            weight_per_minute: self.rest_weight_per_minute,
        })
    }
}

/// `{"method":"SUBSCRIBE","params":[...],"id":N}`.
pub fn subscribe_message(streams: &[String], id: u64) -> String {
    method_message("SUBSCRIBE", streams, id)
}

/// `{"method":<method>,"params":[...],"id":N}`.
fn method_message(method: &str, streams: &[String], id: u64) -> String {
    let params: Vec<String> = streams.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{\"method\":\"{method}\",\"params\":[{}],\"id\":{id}}}",
        params.join(",")
    )
}

/// A stream name in Binance's `<symbol>@<channel>[@<option>]` form (all-market streams:
/// `!<channel>@arr`), classified: channel `depth` for `btcusdt@depth@100ms`, symbol `BTCUSDT`.
fn stream_spec(name: &str) -> StreamSpec {
    let (symbol, channel) = match name.strip_prefix('!') {
        Some(rest) => (String::new(), rest.split('@').next().unwrap_or(rest)),
        None => {
            let mut parts = name.split('@');
            let sym = parts.next().unwrap_or("");
            (sym.to_ascii_uppercase(), parts.next().unwrap_or(name))
        }
    };
    StreamSpec {
        name: name.to_string(),
        channel: channel.to_string(),
        symbol,
        market: "",
        // The diff-depth stream (any speed) feeds the symbol's book; partial depth does not.
        book: channel == "depth",
        // Liquidations are sparse by nature: silence proves nothing.
        watched: !channel.starts_with("forceOrder"),
    }
}

/// `depth@100ms` -> `depth`, `!markPrice@arr` -> `!markPrice`.
pub fn channel_base(ch: &str) -> &str {
    ch.split('@').next().unwrap_or(ch)
}

#[cfg(test)]
mod tests {
    use super::stream_spec;

    #[test]
    fn stream_specs_classify_binance_names() {
        let cases = [
            ("btcusdt@depth@100ms", "depth", "BTCUSDT", true, true),
            ("btcusdt@depth", "depth", "BTCUSDT", true, true),
            ("btcusdt@depth20@100ms", "depth20", "BTCUSDT", false, true),
            ("btcusdt@aggTrade", "aggTrade", "BTCUSDT", false, true),
            ("btcusdt@forceOrder", "forceOrder", "BTCUSDT", false, false),
            ("!forceOrder@arr", "forceOrder", "", false, false),
            ("!markPrice@arr@1s", "markPrice", "", false, true),
            ("币安人生usdt@trade", "trade", "币安人生USDT", false, true),
        ];
        for (name, channel, symbol, book, watched) in cases {
            let s = stream_spec(name);
            assert_eq!(
                (
                    s.name.as_str(),
                    s.channel.as_str(),
                    s.symbol.as_str(),
                    s.book,
                    s.watched
                ),
                (name, channel, symbol, book, watched)
            );
        }
    }
}
