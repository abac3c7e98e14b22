//! Binance REST depth snapshots (`/api/v3/depth` spot, `/fapi/v1/depth` USD-M) for the book module.

use crate::book::rest::SnapshotSource;
use crate::book::sync::Snapshot;
use serde::Deserialize;

/// One market's snapshot endpoint.
#[derive(Debug)]
pub struct BinanceSnapshots {
    pub rest_url: String,
    /// `/api/v3/depth` or `/fapi/v1/depth`.
    pub path: &'static str,
    pub futures: bool,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    bids: Vec<(String, String)>,
    asks: Vec<(String, String)>,
    /// USD-M only: message time and matching-engine time (ms).
    #[serde(rename = "E", default)]
    event_time: i64,
    #[serde(rename = "T", default)]
    transaction_time: i64,
}

impl SnapshotSource for BinanceSnapshots {
    fn url(&self, symbol: &str, limit: u32) -> String {
        format!(
            "{}{}?symbol={}&limit={limit}",
            self.rest_url.trim_end_matches('/'),
            self.path,
            crate::exchange::url_escape(symbol)
        )
    }

    /// Spot: 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250.
    /// USD-M: 5-50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20.
    fn weight(&self, limit: u32) -> u32 {
        if self.futures {
            match limit {
                0..=50 => 2,
                51..=100 => 5,
                101..=500 => 10,
                _ => 20,
            }
        } else {
            match limit {
                0..=100 => 5,
                101..=500 => 25,
                501..=1000 => 50,
                _ => 250,
            }
        }
    }

    fn parse(&self, body: &str) -> Result<Snapshot, String> {
        let b: Body = serde_json::from_str(body).map_err(|e| format!("bad snapshot body: {e}"))?;
        Ok(Snapshot {
            last_update_id: b.last_update_id,
            exchange_ts_ns: b.event_time.saturating_mul(1_000_000),
            transaction_ts_ns: b.transaction_time.saturating_mul(1_000_000),
            bids: b.bids,
            asks: b.asks,
            checksum: None,
        })
    }

    fn used_weight_header(&self) -> Option<&'static str> {
        Some("x-mbx-used-weight-1m")
    }
}
