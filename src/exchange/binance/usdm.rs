//! `exchanges.binance_usdm`: Binance USD-M futures market data (`market: "usdm"`).
//!
//! Streams are routed by path (EXCHANGES.md 4.2): `/public` for high-frequency data (depth,
//! bookTicker, trade), `/market` for the rest; a connection on the wrong path receives nothing and
//! reports no error, so the table is configurable (`routes`) and silent streams are detected.

use super::{Factory, Profile};

/// USD-M endpoints and limits.
pub static PROFILE: Profile = Profile {
    name: "binance_usdm",
    market: "usdm",
    default_ws_url: "wss://fstream.binance.com",
    default_rest_url: "https://fapi.binance.com",
    channels: &[
        "trade",
        "aggTrade",
        "depth",
        "depth@100ms",
        "depth@250ms",
        "depth@500ms",
        "depth@0ms",
        "bookTicker",
        "markPrice",
        "markPrice@1s",
        "forceOrder",
        "!markPrice@arr",
        "!markPrice@arr@1s",
        "!forceOrder@arr",
        // The partial book (top 5/10/20 levels) every 250 ms (or 500/100 ms), published as
        // `book_snapshot` events.
        "depth5",
        "depth10",
        "depth20",
        "depth5@100ms",
        "depth10@100ms",
        "depth20@100ms",
        "depth5@500ms",
        "depth10@500ms",
        "depth20@500ms",
    ],
    default_channels: &[
        "trade",
        "aggTrade",
        "depth@100ms",
        "bookTicker",
        "markPrice@1s",
        "forceOrder",
    ],
    // 1024 per the current docs; 200 was the limit for years and is the safe default.
    max_streams: 1024,
    default_streams: 200,
    max_messages_per_sec: 10,
    server_ping_interval: std::time::Duration::from_secs(180),
    routes: &[
        ("depth", "public"),
        ("depth5", "public"),
        ("depth10", "public"),
        ("depth20", "public"),
        ("bookTicker", "public"),
        ("trade", "public"),
        ("aggTrade", "market"),
        ("markPrice", "market"),
        ("forceOrder", "market"),
        ("!markPrice", "market"),
        ("!forceOrder", "market"),
    ],
    rest_channels: &[
        "openInterest",
        "topLongShortPositionRatio",
        "topLongShortAccountRatio",
        "globalLongShortAccountRatio",
        "fundingRate",
    ],
    sequence: super::sequence::Sequence::Futures,
    depth_path: "/fapi/v1/depth",
    max_snapshot_limit: 1000,
    accepted_snapshot_limits: &[5, 10, 20, 50, 100, 500, 1000],
    rest_weight_per_minute: 2400,
};

/// The instance listed in [`crate::exchange::REGISTRY`].
pub static FACTORY: Factory = Factory(&PROFILE);
