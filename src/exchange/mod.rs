//! Exchange adapters: what to connect to, and how to decode what arrives.
//!
//! An adapter is one folder plus one line in [`REGISTRY`]. Its factory turns the adapter's config
//! section (`exchanges.<name>`) into an [`ExchangePlan`]: the connections to open (URL, subscribe
//! messages, outgoing rate limit) and a [`Decoder`] per parser thread. Nothing else in the crate names a
//! concrete exchange.

pub mod binance;
pub mod deribit;
pub mod number;
pub mod okx;
pub mod poll_job;
pub mod scan;
pub mod tape;

pub use crate::book::price::is_decimal;

use crate::event::Event;
use crate::setting::ConfigError;
use std::fmt;

/// Every known adapter; the config section name is the factory's `name()`.
pub static REGISTRY: &[&dyn ExchangeFactory] = &[
    &binance::spot::FACTORY,
    &binance::usdm::FACTORY,
    &okx::FACTORY,
    &deribit::FACTORY,
];

/// Builds a plan from an adapter's config section.
pub trait ExchangeFactory: Sync {
    /// The config section name, e.g. `binance_spot`.
    fn name(&self) -> &'static str;
    /// Validates the section (already merged with environment overrides). `Ok(None)` means the
    /// section is present but has nothing to do (no symbols), so it is not started.
    fn plan(
        &self,
        section: serde_yaml::Value,
    ) -> Result<Option<Box<dyn ExchangePlan>>, ConfigError>;
}

/// A validated, ready-to-run adapter configuration.
pub trait ExchangePlan: Send + Sync + fmt::Debug {
    /// The config section name it came from.
    fn name(&self) -> &'static str;
    /// `exchange` and `market` of its events (e.g. "binance", "usdm").
    fn exchange(&self) -> &'static str;
    fn market(&self) -> &'static str;
    /// The symbols it collects (exchange spelling, upper case).
    fn symbols(&self) -> &[String];
    /// Resolves what the configuration names indirectly (Deribit: instruments selected by
    /// currency and kind) with the exchange's REST API; called once when the collector starts,
    /// before [`ExchangePlan::connections`]. `mdc check-config` never calls it.
    fn resolve(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// How often [`ExchangePlan::resolve`] runs again while collecting (Deribit: daily, so new
    /// expiries are collected and expired ones dropped); `None`: never.
    fn refresh_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Connections carrying `streams` (some of this plan's streams), laid out as
    /// [`ExchangePlan::connections`] lays out all of them: for streams added or removed by a
    /// refresh. Plans without a refresh need not implement it.
    fn connections_for(&self, _streams: Vec<StreamSpec>) -> Vec<ConnectionSpec> {
        Vec::new()
    }
    /// Messages that stop `streams` on an open connection (Deribit `public/unsubscribe`).
    fn unsubscribe(&self, _streams: &[StreamSpec]) -> Vec<String> {
        Vec::new()
    }
    /// Keeps only the symbols for which `keep` is true; all-market streams stay when
    /// `keep(config::shard::ALL_MARKET)` (sharding, `runtime.shard`).
    fn retain(&mut self, keep: &dyn Fn(&str) -> bool);
    /// Connections to open, with their streams split under the per-connection limit.
    fn connections(&self) -> Vec<ConnectionSpec>;
    /// A fresh decoder for one parser thread.
    fn decoder(&self) -> Box<dyn Decoder>;
    /// The section with defaults filled in, for `mdc check-config`.
    fn effective(&self) -> serde_yaml::Value;
    /// Its symbols by `market` (one market for Binance; OKX has spot, swap, futures and option
    /// instruments in one section): sinks learn the subscribed symbols from it.
    fn markets(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![(self.market(), self.symbols().to_vec())]
    }
    /// Local order books this plan needs (symbols with a depth channel), if any.
    fn books(&self) -> Option<crate::book::BookSpec> {
        None
    }
    /// REST-polled series (open interest, ratios, funding), if any.
    fn poll_jobs(&self) -> Vec<poll_job::PollJob> {
        Vec::new()
    }
    /// The REST host this plan calls and its request-weight budget per minute (plans on the
    /// same host share one budget; a 429 from one host pauses only that host).
    fn rest_budget(&self) -> Option<RestBudget> {
        None
    }
}

/// `symbols` grouped by their market (`market_of`), in first-seen order: [`ExchangePlan::markets`]
/// of a plan whose one section spans several markets (OKX, Deribit).
pub fn group_by_market(
    symbols: &[String],
    market_of: fn(&str) -> &'static str,
) -> Vec<(&'static str, Vec<String>)> {
    let mut out: Vec<(&'static str, Vec<String>)> = Vec::new();
    for s in symbols {
        let m = market_of(s);
        match out.iter_mut().find(|(k, _)| *k == m) {
            Some((_, v)) => v.push(s.clone()),
            None => out.push((m, vec![s.clone()])),
        }
    }
    out
}

/// A REST host and the weight per minute the exchange allows one IP on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestBudget {
    pub host: String,
    pub weight_per_minute: u32,
}

/// The host part of `http(s)://host[:port]/path` (for budgets per host).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // Without user info: the host keys limits and appears in logs.
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// One stream of a connection, named and classified by its adapter, so that nothing outside the
/// adapter's folder parses an exchange's stream names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The stream's name as the decoder reports it (logs, status, stream watch, `gap.stream`).
    pub name: String,
    /// The channel that keys per-channel settings such as `http.stale_after` (e.g. `depth`).
    pub channel: String,
    /// The symbol as events carry it; empty for an all-market stream.
    pub symbol: String,
    /// The `market` of its events (an OKX connection carries spot, swap, futures and option
    /// instruments together); `""`: the plan's market.
    pub market: &'static str,
    /// Carries the symbol's order-book updates: a book sequence break is a gap of this stream.
    pub book: bool,
    /// Expected to deliver within `silence_timeout` of connecting (sparse streams such as
    /// liquidations are not: their silence proves nothing).
    pub watched: bool,
}

/// How a connection proves itself alive, both ways (the exchange closes a silent connection; we
/// replace one whose answers stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// A WebSocket ping frame every `ping_interval`; any pong answers it (Binance).
    WsPing,
    /// The text message `ping` once nothing was received for `ping_interval`; the text `pong` answers
    /// it and never reaches the decoder (OKX: `ping` / `pong`, a connection silent for 30 s is
    /// closed).
    Text {
        ping: &'static str,
        pong: &'static str,
    },
    /// WebSocket pings as [`KeepAlive::WsPing`], and the server's own heartbeat requests answered
    /// at once: a short text frame containing `request` is answered with the text `answer` by the
    /// reader itself and never reaches the decoder (Deribit: `test_request` -> `public/test`; an
    /// unanswered one closes the connection).
    WsPingAnswering {
        request: &'static str,
        answer: &'static str,
    },
}

impl KeepAlive {
    /// Whether a keep-alive is due `now`: `since_ping` since our last one, `since_rx` since we last
    /// received anything.
    pub fn due(
        self,
        interval: std::time::Duration,
        since_ping: std::time::Duration,
        since_rx: std::time::Duration,
    ) -> bool {
        match self {
            KeepAlive::WsPing | KeepAlive::WsPingAnswering { .. } => since_ping >= interval,
            KeepAlive::Text { .. } => since_ping >= interval && since_rx >= interval,
        }
    }

    /// The answer to a server heartbeat request in `text`, if `text` is one.
    #[inline]
    pub fn answer(self, text: &[u8]) -> Option<&'static str> {
        match self {
            // Heartbeat requests are small (~75 bytes); data frames are longer and not searched.
            KeepAlive::WsPingAnswering { request, answer } if text.len() <= 160 => {
                let (first, rest) = request.as_bytes().split_first()?;
                text.windows(request.len())
                    .any(|w| w[0] == *first && &w[1..] == rest)
                    .then_some(answer)
            }
            _ => None,
        }
    }

    /// Whether a text frame is this keep-alive's answer (not data).
    #[inline]
    pub fn is_pong(self, text: &[u8]) -> bool {
        match self {
            KeepAlive::WsPing | KeepAlive::WsPingAnswering { .. } => false,
            KeepAlive::Text { pong, .. } => text == pong.as_bytes(),
        }
    }
}

/// One WebSocket connection an adapter wants.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// Full ws:// or wss:// URL.
    pub url: String,
    /// Streams carried.
    pub streams: Vec<StreamSpec>,
    /// Text messages to send after the handshake (subscriptions), paced by `max_messages_per_sec`.
    pub subscribe: Vec<String>,
    /// The exchange's limit on messages we send per second on one connection (pongs included).
    pub max_messages_per_sec: u32,
    /// A watched stream ([`StreamSpec::watched`]) that stays silent this long on a healthy
    /// connection is reported (e.g. a USD-M stream on the wrong routed path, which fails silently).
    pub silence_timeout: std::time::Duration,
    /// How we ping, and how the answer looks.
    pub keep_alive: KeepAlive,
    /// We ping the server this often (its pong proves the connection alive); a
    /// [`KeepAlive::Text`] ping only after this long without receiving anything.
    pub ping_interval: std::time::Duration,
    /// How often the server is expected to ping us: each ping costs a pong from the message
    /// budget, so the outgoing pacing leaves room for this many pongs per window from the start
    /// (later, for at least as many as the observed ping rate needs).
    pub server_ping_interval: std::time::Duration,
    /// Nothing at all received for this long (no data, no pong, no ping): the connection is dead
    /// (half-open TCP, a stalled server) and is replaced.
    pub liveness_timeout: std::time::Duration,
    /// Roll the connection over (make-before-break) before it reaches this age; `None`: never.
    pub max_age: Option<std::time::Duration>,
    /// Longest overlap of a rollover: past it the old session is closed anyway, and a `gap`
    /// names every stream the two sessions did not prove continuous.
    pub rollover_timeout: std::time::Duration,
    /// The exchange's limit of requests (subscribe/unsubscribe messages) per connection per hour
    /// (OKX: 480); queued ones wait for room. `None`: no hourly limit.
    pub max_requests_per_hour: Option<u32>,
    /// The exchange's limit of new connections per second per IP to this URL's host (OKX: 3),
    /// shared by every connection to that host; `None`: only the global `reconnect` budget.
    pub connects_per_second: Option<u32>,
}

impl ConnectionSpec {
    /// The streams' names, in order.
    pub fn stream_names(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.name.clone()).collect()
    }
}

/// Decodes one exchange's frames into normalized events. One instance per parser thread; it owns
/// its reusable parse buffers and [`Event`], so decoding allocates nothing in steady state.
pub trait Decoder: Send {
    /// Parses `buf[..len]` in place (`buf` carries simd-json padding after `len`) and calls `emit`
    /// once per normalized event. Returns what the frame was.
    fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        recv_ts_ns: i64,
        emit: &mut dyn FnMut(&mut Event),
    ) -> Result<Decoded, DecodeError>;

    /// The stream name of the last decoded frame, where the protocol names it (`""` otherwise).
    fn last_stream(&self) -> &str {
        ""
    }
}

/// What a successfully decoded frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// `n` market-data events were emitted.
    Events(usize),
    /// A control reply (subscription acknowledgement and the like); nothing emitted.
    Control,
    /// The exchange announced it will close this connection soon (Binance `serverShutdown`).
    ServerShutdown,
    /// A record that is not market data, skipped on purpose; counted in
    /// `frames_skipped_total{reason}` (e.g. Binance USD-M `NA` trade records: `non_trade`).
    Skipped(&'static str),
}

/// Why a frame was skipped. Each variant is counted separately (`reason` label in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Not valid JSON (or not UTF-8).
    Json,
    /// Valid JSON of an unexpected shape (not an object, wrong field type, missing field).
    Shape(&'static str),
    /// A price or quantity that is not a plain decimal string.
    BadDecimal(&'static str),
    /// An event type this adapter does not know.
    UnknownEvent,
    /// The exchange replied with an error (e.g. a rejected subscription).
    ExchangeError,
}

impl DecodeError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json => "invalid_json",
            DecodeError::Shape(_) => "unexpected_shape",
            DecodeError::BadDecimal(_) => "bad_decimal",
            DecodeError::UnknownEvent => "unknown_event",
            DecodeError::ExchangeError => "exchange_error",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Shape(field) => write!(f, "unexpected shape at field `{field}`"),
            DecodeError::BadDecimal(field) => write!(f, "field `{field}` is not a decimal string"),
            other => f.write_str(other.reason()),
        }
    }
}

/// `s` for a URL path or query: ASCII letters, digits and `-._~@!` as they are, every other byte
/// (a symbol in Chinese, say: Binance lists UTF-8 symbols) percent-encoded.
pub fn url_escape(s: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::bytes(
        s,
        |b| b.is_ascii_alphanumeric() || b"-._~@!".contains(&b),
        '%',
    )
}

/// The inverse of [`url_escape`] (invalid escapes are kept as they are).
pub fn url_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL with one of `schemes` and a host, valid as a request URI; else an error naming `key`.
pub fn check_url(key: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let Some(scheme) = schemes.iter().find(|s| url.starts_with(**s)) else {
        return Err(ConfigError::new(
            key,
            format!(
                "`{}` must start with {}",
                crate::setting::secret::url_shown(url),
                schemes.join(" or ")
            ),
        ));
    };
    let rest = &url[scheme.len()..];
    let host = rest.split(['/', '?']).next().unwrap_or("");
    if host.is_empty() || tungstenite::http::Uri::try_from(url).is_err() {
        return Err(ConfigError::new(
            key,
            format!(
                "`{}` is not a valid URL",
                crate::setting::secret::url_shown(url)
            ),
        ));
    }
    Ok(())
}

/// Looks up an adapter by its config section name.
pub fn factory(name: &str) -> Option<&'static dyn ExchangeFactory> {
    REGISTRY.iter().copied().find(|f| f.name() == name)
}

#[cfg(test)]
mod tests {
    use super::is_decimal;

    #[test]
    fn keep_alive_text_waits_for_silence_and_recognizes_its_pong() {
        use super::KeepAlive;
        use std::time::Duration;
        let s = Duration::from_secs;
        let text = KeepAlive::Text {
            ping: "ping",
            pong: "pong",
        };
        assert!(KeepAlive::WsPing.due(s(20), s(20), s(0)));
        assert!(!KeepAlive::WsPing.due(s(20), s(19), s(30)));
        // Data keeps an OKX connection alive: no ping while messages arrive.
        assert!(!text.due(s(20), s(60), s(5)));
        assert!(text.due(s(20), s(60), s(20)));
        assert!(!text.due(s(20), s(10), s(25)));
        assert!(text.is_pong(b"pong"));
        assert!(!text.is_pong(b"pong "));
        assert!(!text.is_pong(b"{\"event\":\"pong\"}"));
        assert!(!KeepAlive::WsPing.is_pong(b"pong"));
        let hb = KeepAlive::WsPingAnswering {
            request: "\"test_request\"",
            answer: "A",
        };
        assert_eq!(
            hb.answer(
                br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#
            ),
            Some("A")
        );
        assert_eq!(
            hb.answer(br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}"#),
            None
        );
        assert_eq!(KeepAlive::WsPing.answer(b"\"test_request\""), None);
        assert!(hb.due(s(15), s(15), s(0)));
    }

    #[test]
    fn url_escapes_round_trip() {
        use super::{url_escape, url_unescape};
        assert_eq!(url_escape("btcusdt@depth@100ms"), "btcusdt@depth@100ms");
        let s = "币安人生usdt@trade";
        let e = url_escape(s);
        assert!(e.is_ascii() && e.ends_with("usdt@trade"), "{e}");
        assert_eq!(url_unescape(&e), s);
        assert_eq!(url_unescape("a%2"), "a%2");
        assert_eq!(url_unescape("%E5%"), "\u{FFFD}%");
        assert_eq!(url_unescape("%币"), "%币");
    }

    #[test]
    fn decimals() {
        for ok in ["0", "1.5", "61837.63000000", "-0.1", "0.00000000"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in [
            "", ".", "1.", ".5", "1e5", "1.2.3", "NaN", "--1", " 1", "1,5",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
