//! `exchanges.binance_spot`: Binance spot market data (`market: "spot"`).

use super::{BinancePlan, Profile};
use crate::config::ConfigError;
use crate::exchange::{ExchangeFactory, ExchangePlan};

/// Spot endpoints and limits (EXCHANGES.md 4.1).
pub static PROFILE: Profile = Profile {
    name: "binance_spot",
    market: "spot",
    default_ws_url: "wss://stream.binance.com:9443",
    default_rest_url: "https://api.binance.com",
    channels: &["trade", "aggTrade", "depth", "depth@100ms", "bookTicker"],
    default_channels: &["trade", "aggTrade", "depth@100ms", "bookTicker"],
    max_streams: 1024,
    default_streams: 1024,
    max_messages_per_sec: 5,
    routes: &[],
    rest_channels: &[],
    rules: crate::book::sync::Rules::Spot,
    depth_path: "/api/v3/depth",
    max_snapshot_limit: 5000,
};

/// Registry entry.
pub struct Factory;
/// The instance listed in [`crate::exchange::REGISTRY`].
pub static FACTORY: Factory = Factory;

impl ExchangeFactory for Factory {
    fn name(&self) -> &'static str {
        PROFILE.name
    }

    fn plan(
        &self,
        section: serde_yaml::Value,
    ) -> Result<Option<Box<dyn ExchangePlan>>, ConfigError> {
        Ok(BinancePlan::from_section(&PROFILE, section)?
            .map(|p| Box::new(p) as Box<dyn ExchangePlan>))
    }
}
