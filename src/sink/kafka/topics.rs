//! Topic and key of a record from the templates, cached per (exchange, market, symbol) so the
//! steady state does no formatting and no allocation (a lookup by `&str`).
//!
//! Symbols come from network data: only the configured ones (any symbol of a market with an
//! all-market stream, up to [`MAX_SYMBOLS`]) get topics of their own and a cache entry; a record
//! naming another symbol goes to the topic of [`UNLISTED`] (counted and logged), so a misbehaving
//! feed can neither create topics nor grow the cache without bound.

use super::config::KafkaConfig;
use crate::event::EventKind;
use crate::fnv::FnvBuild;
use std::collections::HashMap;

/// Symbols one market may create topics for when it carries an all-market stream (Binance lists
/// a few hundred per market).
pub const MAX_SYMBOLS: usize = 4096;

/// What `{symbol}` becomes for a record of a symbol that was not subscribed.
pub const UNLISTED: &str = "_unlisted";

/// Resolved names of one (exchange, market, symbol): a topic per event kind and the key.
#[derive(Debug)]
struct Names {
    topics: [String; EventKind::COUNT],
    key: Option<String>,
}

/// Template expansion with a cache.
#[derive(Debug)]
pub struct Topics {
    default: String,
    per_type: [Option<String>; EventKind::COUNT],
    key: KeyMode,
    /// (exchange, market) -> symbol -> names.
    cache: HashMap<(&'static str, &'static str), HashMap<String, Names, FnvBuild>, FnvBuild>,
    /// Which symbols may have their own names (empty: any).
    subscribed: crate::sink::Subscribed,
    unlisted: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    unlisted_log: crate::metrics::LogThrottle,
}

#[derive(Debug)]
enum KeyMode {
    Symbol,
    None,
    Template(String),
}

fn expand(t: &str, exchange: &str, market: &str, kind: &str, symbol: &str) -> String {
    t.replace("{exchange}", exchange)
        .replace("{market}", market)
        .replace("{type}", kind)
        .replace("{symbol}", &topic_safe(symbol))
}

/// A symbol as Kafka allows it in a topic name (`[A-Za-z0-9._-]`): every other byte (a UTF-8
/// symbol, say) and `-` itself become `-` and two upper-case hex digits, so distinct symbols keep
/// distinct topics. The record key keeps the symbol as sent.
pub fn topic_safe(symbol: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::bytes(
        symbol,
        |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_',
        '-',
    )
}

impl Topics {
    pub fn new(c: &KafkaConfig) -> Topics {
        Topics {
            default: c.topic.clone(),
            per_type: EventKind::ALL.map(|k| c.topics.get(k.as_str()).cloned()),
            key: match c.key.as_str() {
                "symbol" => KeyMode::Symbol,
                "none" => KeyMode::None,
                t => KeyMode::Template(t.to_string()),
            },
            cache: HashMap::default(),
            subscribed: crate::sink::Subscribed::default(),
            unlisted: None,
            unlisted_log: crate::metrics::LogThrottle::default(),
        }
    }

    /// Only `subscribed` symbols get names of their own from now on.
    pub fn restrict(
        &mut self,
        subscribed: crate::sink::Subscribed,
        metrics: &crate::metrics::Metrics,
    ) {
        self.subscribed = subscribed;
        self.unlisted = Some(metrics.counter(
            "kafka_unlisted_symbol_records_total",
            "Records naming a symbol that was not subscribed (sent to the _unlisted topic).",
            &[("sink", "kafka")],
        ));
    }

    /// `(topic, key)` for a record; allocates only the first time a symbol is seen.
    pub fn resolve(
        &mut self,
        exchange: &'static str,
        market: &'static str,
        symbol: &str,
        kind: EventKind,
    ) -> (&str, Option<&str>) {
        let by_symbol = self.cache.entry((exchange, market)).or_default();
        let symbol = if by_symbol.contains_key(symbol) {
            symbol
        } else if self.subscribed.allows(exchange, market, symbol) == Some(false)
            || by_symbol.len() >= MAX_SYMBOLS
        {
            if let Some(c) = &self.unlisted {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if self.unlisted_log.hit() {
                log::warn!(
                    "event=kafka_unlisted_symbol exchange={exchange} market={market} symbol={:?} count={} note=\"not subscribed: published under {UNLISTED}\"",
                    symbol.chars().take(64).collect::<String>(),
                    self.unlisted_log.count()
                );
            }
            UNLISTED
        } else {
            symbol
        };
        if !by_symbol.contains_key(symbol) {
            let topics = EventKind::ALL.map(|k| {
                let t = self.per_type[k as usize]
                    .as_deref()
                    .unwrap_or(&self.default);
                expand(t, exchange, market, k.as_str(), symbol)
            });
            let key = match &self.key {
                KeyMode::Symbol => Some(symbol.to_string()),
                KeyMode::None => None,
                KeyMode::Template(t) => Some(expand(t, exchange, market, "", symbol)),
            };
            by_symbol.insert(symbol.to_string(), Names { topics, key });
        }
        match by_symbol.get(symbol) {
            Some(n) => (&n.topics[kind as usize], n.key.as_deref()),
            None => ("", None),
        }
    }

    /// The topic for a kind and symbol, for tests and topic creation.
    pub fn topic_for(
        &mut self,
        exchange: &'static str,
        market: &'static str,
        symbol: &str,
        kind: EventKind,
    ) -> String {
        self.resolve(exchange, market, symbol, kind).0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_overrides() {
        let mut c: KafkaConfig = serde_yaml::from_str("{}").unwrap();
        c.topic = "md.{exchange}.{market}.{type}.{symbol}".into();
        c.topics.insert("trade".into(), "marketdata.raw".into());
        let mut t = Topics::new(&c);
        assert_eq!(
            t.resolve("binance", "spot", "BTCUSDT", EventKind::Trade),
            ("marketdata.raw", Some("BTCUSDT"))
        );
        assert_eq!(
            t.resolve("binance", "spot", "BTCUSDT", EventKind::DepthDiff)
                .0,
            "md.binance.spot.depth_diff.BTCUSDT"
        );
        assert_eq!(
            t.resolve("binance", "spot", "币USDT", EventKind::DepthDiff),
            ("md.binance.spot.depth_diff.-E5-B8-81USDT", Some("币USDT"))
        );
    }

    #[test]
    fn only_subscribed_symbols_get_topics() {
        let mut c: KafkaConfig = serde_yaml::from_str("{}").unwrap();
        c.topic = "md.{market}.{symbol}".into();
        let mut t = Topics::new(&c);
        let metrics = crate::metrics::Metrics::new(&["kafka"]);
        t.restrict(
            crate::sink::Subscribed {
                markets: vec![
                    crate::sink::SubscribedMarket {
                        exchange: "binance",
                        market: "spot",
                        symbols: vec!["BTCUSDT".into()],
                        all_market: false,
                    },
                    crate::sink::SubscribedMarket {
                        exchange: "binance",
                        market: "usdm",
                        symbols: vec![],
                        all_market: true,
                    },
                ],
            },
            &metrics,
        );
        assert_eq!(
            t.resolve("binance", "spot", "BTCUSDT", EventKind::Trade).0,
            "md.spot.BTCUSDT"
        );
        for i in 0..10_000 {
            let (topic, _) = t.resolve("binance", "spot", &format!("X{i}"), EventKind::Trade);
            assert_eq!(topic, "md.spot._unlisted");
        }
        assert_eq!(
            t.cache[&("binance", "spot")].len(),
            2,
            "BTCUSDT and _unlisted only"
        );
        // An all-market market takes any symbol, up to the bound.
        for i in 0..(MAX_SYMBOLS + 10) {
            t.resolve("binance", "usdm", &format!("S{i}"), EventKind::MarkPrice);
        }
        assert_eq!(t.cache[&("binance", "usdm")].len(), MAX_SYMBOLS + 1);
        assert_eq!(
            metrics.counter_values("kafka_unlisted_symbol_records_total"),
            vec![("kafka".to_string(), 10_010)]
        );
    }
}
