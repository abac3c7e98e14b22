//! `exchanges.binance_spot`: Binance spot market data (`market: "spot"`).

use super::{Factory, Profile};

/// Spot endpoints and limits (EXCHANGES.md 4.1).
pub static PROFILE: Profile = Profile {
    name: "binance_spot",
    market: "spot",
    default_ws_url: "wss://stream.binance.com:9443",
    default_rest_url: "https://api.binance.com",
    // `depthN[@100ms]`: the partial book (top 5/10/20 levels) pushed whole every 1 s / 100 ms,
    // published as `book_snapshot` events.
    channels: &[
        "trade",
        "aggTrade",
        "depth",
        "depth@100ms",
        "bookTicker",
        "depth5",
        "depth10",
        "depth20",
        "depth5@100ms",
        "depth10@100ms",
        "depth20@100ms",
    ],
    default_channels: &["trade", "aggTrade", "depth@100ms", "bookTicker"],
    max_streams: 1024,
    default_streams: 1024,
    max_messages_per_sec: 5,
    server_ping_interval: std::time::Duration::from_secs(20),
    routes: &[],
    rest_channels: &[],
    sequence: super::sequence::Sequence::Spot,
    depth_path: "/api/v3/depth",
    max_snapshot_limit: 5000,
    accepted_snapshot_limits: &[],
    rest_weight_per_minute: 6000,
};

/// The instance listed in [`crate::exchange::REGISTRY`].
pub static FACTORY: Factory = Factory(&PROFILE);
