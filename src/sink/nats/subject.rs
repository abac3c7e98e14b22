//! NATS subjects of events: seed C's templates per type (`trade-data.{exchange}.{market}.{symbol}`
//! and so on), overridable per type; symbols made subject-safe; the wildcard subjects a JetStream
//! stream must cover.

use crate::event::EventKind;
use std::borrow::Cow;

/// Seed C's subject template of each type.
pub fn default_template(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Trade | EventKind::AggTrade => "trade-data.{exchange}.{market}.{symbol}",
        EventKind::DepthDiff | EventKind::BookSnapshot | EventKind::BookTicker => {
            "orderbook-data.{exchange}.{market}.{symbol}"
        }
        EventKind::FundingRate => "funding-rate-data.{exchange}.{market}.{symbol}",
        EventKind::OpenInterest => "open-interest-data.{exchange}.{market}.{symbol}",
        EventKind::Liquidation => "liquidation-data.{exchange}.{market}.{symbol}",
        EventKind::LongShortRatio => "lsr-data.{exchange}.{market}.{variant}.{symbol}",
        EventKind::VolatilityIndex => "volatility-index-data.{exchange}.{market}.{symbol}",
        EventKind::MarkPrice => "mark-price-data.{exchange}.{market}.{symbol}",
        EventKind::Gap => "gap-data.{exchange}.{market}.{symbol}",
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["{exchange}", "{market}", "{symbol}", "{type}", "{variant}"];

/// Checks a template: dot-separated tokens, each either literal (letters, digits, `-`, `_`) or
/// exactly one placeholder; never `*`, `>`, spaces, or an empty token.
pub fn check_template(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    for tok in t.split('.') {
        if PLACEHOLDERS.contains(&tok) {
            continue;
        }
        if tok.is_empty() {
            return Err(format!("`{t}` has an empty token"));
        }
        if !tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "token `{tok}` of `{t}` must be letters, digits, `-`, `_`, or one of {}",
                PLACEHOLDERS.join(" ")
            ));
        }
    }
    Ok(())
}

/// A symbol as one subject token: letters, digits, `-` and `_` kept; every other byte (`.`,
/// `*`, `>`, spaces, UTF-8 of a symbol in Chinese) and `%` itself become `%` and two upper-case
/// hex digits, so distinct symbols keep distinct subjects (`币安人生USDT` ->
/// `%E5%B8%81...USDT`).
pub fn subject_safe(symbol: &str) -> Cow<'_, str> {
    crate::escape::bytes(
        symbol,
        |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        '%',
    )
}

/// `template` with the record's values put in (`out` reused).
pub fn expand(
    template: &str,
    exchange: &str,
    market: &str,
    kind: &str,
    variant: &str,
    symbol: &str,
    out: &mut String,
) {
    out.clear();
    for (i, tok) in template.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        match tok {
            "{exchange}" => out.push_str(exchange),
            "{market}" => out.push_str(market),
            "{type}" => out.push_str(kind),
            "{variant}" => out.push_str(if variant.is_empty() { "none" } else { variant }),
            "{symbol}" => {
                if symbol.is_empty() {
                    out.push_str("all");
                } else {
                    out.push_str(&subject_safe(symbol));
                }
            }
            lit => out.push_str(lit),
        }
    }
}

/// The template with every placeholder as `*`: what a stream must capture.
pub fn wildcard(template: &str) -> String {
    template
        .split('.')
        .map(|t| if PLACEHOLDERS.contains(&t) { "*" } else { t })
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether the stream subject `filter` (with `*` and `>`) captures every subject `subject` (with
/// `*` as "any token") stands for.
pub fn covers(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_wildcards_are_covered() {
        let mut out = String::new();
        expand(
            default_template(EventKind::Trade),
            "binance",
            "spot",
            "trade",
            "",
            "BTCUSDT",
            &mut out,
        );
        assert_eq!(out, "trade-data.binance.spot.BTCUSDT");
        expand(
            default_template(EventKind::LongShortRatio),
            "binance",
            "usdm",
            "long_short_ratio",
            "top-position",
            "BTC.X",
            &mut out,
        );
        assert_eq!(out, "lsr-data.binance.usdm.top-position.BTC%2EX");
        assert_eq!(subject_safe("a b*>%"), "a%20b%2A%3E%25");
        assert_eq!(subject_safe("BTC-PERPETUAL"), "BTC-PERPETUAL");
        assert_eq!(
            wildcard("trade-data.{exchange}.{market}.{symbol}"),
            "trade-data.*.*.*"
        );
        assert!(covers("trade-data.>", "trade-data.*.*.*"));
        assert!(covers("trade-data.*.*.*", "trade-data.*.*.*"));
        assert!(!covers("trade-data.binance.*.*", "trade-data.*.*.*"));
        assert!(!covers("trade-data.*.*", "trade-data.*.*.*"));
        assert!(covers(">", "x.y"));
    }

    #[test]
    fn unsafe_templates_are_rejected() {
        for bad in ["a..b", "a.*.b", "a.>", "a b.{symbol}", "", "x.{symbol}x"] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
        for t in crate::event::EventKind::ALL.map(default_template) {
            assert!(check_template(t).is_ok(), "{t}");
        }
    }
}
