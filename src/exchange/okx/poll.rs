//! OKX REST series as poll jobs: the long/short ratios of the `rubik` statistics endpoints, per
//! contract (swap or futures instId). Settings: `exchanges.okx.rest`.
//!
//! - `long-short-account-ratio-contract`: all accounts (`kind` `global_account`);
//! - `long-short-account-ratio-contract-top-trader`: top traders' accounts (`top_account`);
//! - `long-short-position-ratio-contract-top-trader`: top traders' positions (`top_position`).
//!
//! Each answers `{"code":"0","msg":"","data":[["<ts ms>","<ratio>"],..]}`, newest first; OKX
//! allows 5 requests per 2 seconds per IP and instrument on each endpoint.

use crate::clock::realtime_ns;
use crate::event::{Event, EventKind, set};
use crate::exchange::is_decimal;
use crate::exchange::poll_job::{ParseFn, PollJob};
use crate::setting::{ConfigError, duration, section};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The REST series channels, with their endpoint and `kind`.
pub const SERIES: &[(&str, &str)] = &[
    ("long-short-account-ratio-contract", "global_account"),
    (
        "long-short-account-ratio-contract-top-trader",
        "top_account",
    ),
    (
        "long-short-position-ratio-contract-top-trader",
        "top_position",
    ),
];

/// Periods the endpoints accept.
const PERIODS: &[&str] = &[
    "5m", "15m", "30m", "1H", "2H", "4H", "6H", "12H", "1D", "2D", "3D", "5D", "1W", "1M", "3M",
];

/// `exchanges.okx.rest`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestSeries {
    /// `period` of the ratio endpoints (OKX spelling: 5m, 15m, 30m, 1H, 2H, 4H, ... 1D, 1W).
    pub ratio_period: String,
    /// How often each ratio of each instrument is polled.
    pub ratio_interval: String,
}

impl Default for RestSeries {
    fn default() -> Self {
        RestSeries {
            ratio_period: "5m".into(),
            ratio_interval: "60s".into(),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct RestPlan {
    pub raw: RestSeries,
    pub ratio: Duration,
}

impl RestPlan {
    pub fn from_section(
        prefix: &str,
        v: Option<serde_yaml::Value>,
    ) -> Result<RestPlan, ConfigError> {
        let raw: RestSeries = section(
            &format!("{prefix}.rest"),
            v.unwrap_or(serde_yaml::Value::Null),
        )?;
        if !PERIODS.contains(&raw.ratio_period.as_str()) {
            return Err(ConfigError::new(
                format!("{prefix}.rest.ratio_period"),
                format!("`{}` is not one of {}", raw.ratio_period, PERIODS.join(" ")),
            ));
        }
        let ratio = duration::parse(&raw.ratio_interval)
            .map_err(|r| ConfigError::new(format!("{prefix}.rest.ratio_interval"), r))?;
        if ratio < Duration::from_millis(100) {
            return Err(ConfigError::new(
                format!("{prefix}.rest.ratio_interval"),
                "at least 100ms",
            ));
        }
        Ok(RestPlan { raw, ratio })
    }
}

/// Parses one ratio answer: points newer than `since`, oldest first.
fn parse_ratio(
    body: &str,
    since: i64,
    inst: &str,
    kind: &'static str,
    period: &str,
    ev: &mut Event,
    emit: &mut dyn FnMut(&Event),
) -> Result<Option<i64>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let code = v.get("code").and_then(Value::as_str).unwrap_or("");
    if code != "0" {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
        return Err(format!("OKX error {code}: {msg}"));
    }
    let arr = v
        .get("data")
        .and_then(Value::as_array)
        .ok_or("missing `data`")?;
    let mut pts: Vec<(i64, &str)> = arr
        .iter()
        .map(|p| {
            let ts = p
                .get(0)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|ms| ms.checked_mul(1_000_000))
                .ok_or("bad time")?;
            let r = p.get(1).and_then(Value::as_str).ok_or("bad ratio")?;
            if !is_decimal(r) {
                return Err(format!("ratio is not a decimal: {r}"));
            }
            Ok((ts, r))
        })
        .collect::<Result<_, String>>()?;
    pts.sort_by_key(|(t, _)| *t);
    let mut newest = None;
    for (ts, r) in pts.into_iter().filter(|(t, _)| *t > since) {
        ev.kind = Some(EventKind::LongShortRatio);
        set(&mut ev.header.symbol, inst);
        ev.header.market = super::market_of(inst);
        ev.header.exchange_ts_ns = ts;
        ev.header.receive_ts_ns = realtime_ns();
        let l = &mut ev.long_short_ratio;
        set(&mut l.kind, kind);
        set(&mut l.period, period);
        set(&mut l.long_short_ratio, r);
        l.long_account.clear();
        l.short_account.clear();
        emit(ev);
        newest = Some(ts);
    }
    Ok(newest)
}

/// The jobs of the OKX plan: each series of each contract (spot instruments have none).
pub fn jobs(
    rest_url: &str,
    symbols: &[String],
    series: &[String],
    plan: &RestPlan,
) -> Vec<PollJob> {
    let base = rest_url.trim_end_matches('/');
    let contracts: Vec<&String> = symbols
        .iter()
        .filter(|s| matches!(super::market_of(s), "swap" | "futures"))
        .collect();
    let n = contracts.len().max(1) as u32;
    let mut out = Vec::new();
    for (i, inst) in contracts.into_iter().enumerate() {
        for s in series {
            let Some(&(path, kind)) = SERIES.iter().find(|(p, _)| p == s) else {
                continue;
            };
            let period = plan.raw.ratio_period.clone();
            let id = inst.clone();
            let parse: ParseFn = Box::new(move |body, since, ev, emit| {
                parse_ratio(body, since, &id, kind, &period, ev, emit)
            });
            out.push(PollJob {
                name: format!("{path}:{inst}"),
                url: format!(
                    "{base}/api/v5/rubik/stat/contracts/{path}?instId={inst}&period={}",
                    plan.raw.ratio_period
                ),
                weight: 1,
                host: None,
                used_weight_header: None,
                // 5 requests per 2 s per IP and instrument, on each endpoint.
                endpoint: Some(Arc::new(Mutex::new(
                    crate::book::rest::Limiter::per_window(5, Duration::from_secs(2)),
                ))),
                offset: plan.ratio * i as u32 / n,
                interval: plan.ratio,
                parse,
                newest_ns: 0,
                event: Event::new("okx", "swap"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_points_oldest_first_and_only_new_ones() {
        let mut ev = Event::new("okx", "swap");
        let body =
            r#"{"code":"0","msg":"","data":[["1701417900000","1.25"],["1701417600000","1.2"]]}"#;
        let mut got = Vec::new();
        let newest = parse_ratio(
            body,
            0,
            "BTC-USDT-SWAP",
            "top_account",
            "5m",
            &mut ev,
            &mut |e| {
                got.push((
                    e.header.exchange_ts_ns,
                    e.long_short_ratio.long_short_ratio.clone(),
                ))
            },
        )
        .unwrap();
        assert_eq!(newest, Some(1_701_417_900_000_000_000));
        assert_eq!(
            got,
            vec![
                (1_701_417_600_000_000_000, "1.2".to_string()),
                (1_701_417_900_000_000_000, "1.25".to_string())
            ]
        );
        got.clear();
        parse_ratio(
            body,
            1_701_417_600_000_000_000,
            "BTC-USDT-SWAP",
            "top_account",
            "5m",
            &mut ev,
            &mut |e| got.push((e.header.exchange_ts_ns, String::new())),
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let err = parse_ratio(
            r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#,
            0,
            "X-Y-SWAP",
            "top_account",
            "5m",
            &mut ev,
            &mut |_| {},
        );
        assert!(err.unwrap_err().contains("51001"));
        assert!(
            parse_ratio(
                r#"{"code":"0","data":[["1","1e3"]]}"#,
                0,
                "X-Y-SWAP",
                "top_account",
                "5m",
                &mut ev,
                &mut |_| {}
            )
            .is_err()
        );
    }
}
