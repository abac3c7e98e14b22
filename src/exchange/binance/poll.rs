//! USD-M REST series as poll jobs: `openInterest`, the three long/short ratios and `fundingRate`
//! (EXCHANGES.md 4.2; REST only). Settings: `exchanges.binance_usdm.rest`.

use crate::clock::realtime_ns;
use crate::event::{Event, EventKind, set};
use crate::exchange::is_decimal;
use crate::exchange::poll_job::{ParseFn, PollJob};
use crate::setting::{ConfigError, duration, section};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// `exchanges.binance_usdm.rest`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestSeries {
    /// How often each symbol's open interest is polled (symbols are spread over the interval).
    pub open_interest_interval: String,
    /// `period` of the long/short ratio endpoints: 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d.
    pub ratio_period: String,
    /// How often each ratio is polled.
    pub ratio_interval: String,
    /// How often funding history is polled.
    pub funding_rate_interval: String,
}

impl Default for RestSeries {
    fn default() -> Self {
        RestSeries {
            open_interest_interval: "1s".into(),
            ratio_period: "5m".into(),
            ratio_interval: "60s".into(),
            funding_rate_interval: "60s".into(),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct RestPlan {
    pub raw: RestSeries,
    pub open_interest: Duration,
    pub ratio: Duration,
    pub funding: Duration,
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
        let d = |k: &str, s: &str| {
            let d = duration::parse(s)
                .map_err(|r| ConfigError::new(format!("{prefix}.rest.{k}"), r))?;
            if d < Duration::from_millis(100) {
                return Err(ConfigError::new(
                    format!("{prefix}.rest.{k}"),
                    "at least 100ms",
                ));
            }
            Ok(d)
        };
        if !["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"]
            .contains(&raw.ratio_period.as_str())
        {
            return Err(ConfigError::new(
                format!("{prefix}.rest.ratio_period"),
                format!(
                    "`{}` is not one of 5m 15m 30m 1h 2h 4h 6h 12h 1d",
                    raw.ratio_period
                ),
            ));
        }
        Ok(RestPlan {
            open_interest: d("open_interest_interval", &raw.open_interest_interval)?,
            ratio: d("ratio_interval", &raw.ratio_interval)?,
            funding: d("funding_rate_interval", &raw.funding_rate_interval)?,
            raw,
        })
    }
}

fn dec<'a>(v: &'a Value, k: &str) -> Result<&'a str, String> {
    let s = v
        .get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing `{k}`"))?;
    if is_decimal(s) {
        Ok(s)
    } else {
        Err(format!("`{k}` is not a decimal: {s}"))
    }
}

/// Milliseconds as a JSON number or string -> ns.
fn ms(v: &Value, k: &str) -> Result<i64, String> {
    let x = v.get(k).ok_or_else(|| format!("missing `{k}`"))?;
    let ms = x
        .as_i64()
        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| format!("`{k}` is not a time"))?;
    ms.checked_mul(1_000_000)
        .ok_or_else(|| format!("`{k}` out of range"))
}

fn header(ev: &mut Event, symbol: &str, ts: i64, kind: EventKind) {
    ev.kind = Some(kind);
    set(&mut ev.header.symbol, symbol);
    ev.header.exchange_ts_ns = ts;
    ev.header.receive_ts_ns = realtime_ns();
}

/// The jobs of one USD-M plan.
pub fn jobs(
    rest_url: &str,
    symbols: &[String],
    series: &[String],
    plan: &RestPlan,
) -> Vec<PollJob> {
    let base = rest_url.trim_end_matches('/');
    let mut out = Vec::new();
    // Endpoint limits of their own, per IP, on top of the host's weight budget (USD-M docs):
    // `fundingRate` shares 500 requests per 5 minutes with `fundingInfo`; the `/futures/data`
    // ratio endpoints (request weight 0) allow 1000 requests per 5 minutes.
    let five_min = Duration::from_secs(300);
    let funding_limit = std::sync::Arc::new(std::sync::Mutex::new(
        crate::book::rest::Limiter::per_window(500, five_min),
    ));
    let data_limit = std::sync::Arc::new(std::sync::Mutex::new(
        crate::book::rest::Limiter::per_window(1000, five_min),
    ));
    let n = symbols.len().max(1) as u32;
    for (i, symbol) in symbols.iter().enumerate() {
        let sym = crate::exchange::url_escape(symbol);
        for s in series {
            let (weight, endpoint) = match s.as_str() {
                "fundingRate" => (0, Some(funding_limit.clone())),
                "openInterest" => (1, None),
                _ => (0, Some(data_limit.clone())),
            };
            let (url, interval, parse): (String, Duration, ParseFn) = match s.as_str() {
                "openInterest" => (
                    format!("{base}/fapi/v1/openInterest?symbol={sym}"),
                    plan.open_interest,
                    Box::new(|body, since, ev, emit| {
                        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
                        let ts = ms(&v, "time")?;
                        if ts <= since {
                            return Ok(None);
                        }
                        let sym = v
                            .get("symbol")
                            .and_then(Value::as_str)
                            .ok_or("missing `symbol`")?;
                        header(ev, sym, ts, EventKind::OpenInterest);
                        set(
                            &mut ev.open_interest.open_interest,
                            dec(&v, "openInterest")?,
                        );
                        ev.open_interest.open_interest_value.clear();
                        emit(ev);
                        Ok(Some(ts))
                    }),
                ),
                "topLongShortPositionRatio"
                | "topLongShortAccountRatio"
                | "globalLongShortAccountRatio" => {
                    let kind = match s.as_str() {
                        "topLongShortPositionRatio" => "top_position",
                        "topLongShortAccountRatio" => "top_account",
                        _ => "global_account",
                    };
                    let period = plan.raw.ratio_period.clone();
                    (
                        format!("{base}/futures/data/{s}?symbol={sym}&period={period}&limit=30"),
                        plan.ratio,
                        Box::new(move |body, since, ev, emit| {
                            let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
                            let arr = v.as_array().ok_or("not an array")?;
                            let mut newest = None;
                            // Oldest first, so a consumer sees points in time order.
                            let mut pts: Vec<(i64, &Value)> = arr
                                .iter()
                                .map(|p| Ok((ms(p, "timestamp")?, p)))
                                .collect::<Result<_, String>>()?;
                            pts.sort_by_key(|(t, _)| *t);
                            for (ts, p) in pts.into_iter().filter(|(t, _)| *t > since) {
                                let sym = p
                                    .get("symbol")
                                    .and_then(Value::as_str)
                                    .ok_or("missing `symbol`")?;
                                header(ev, sym, ts, EventKind::LongShortRatio);
                                let r = &mut ev.long_short_ratio;
                                set(&mut r.kind, kind);
                                set(&mut r.period, &period);
                                set(&mut r.long_short_ratio, dec(p, "longShortRatio")?);
                                set(&mut r.long_account, dec(p, "longAccount")?);
                                set(&mut r.short_account, dec(p, "shortAccount")?);
                                emit(ev);
                                newest = Some(ts);
                            }
                            Ok(newest)
                        }),
                    )
                }
                "fundingRate" => (
                    format!("{base}/fapi/v1/fundingRate?symbol={sym}&limit=100"),
                    plan.funding,
                    Box::new(|body, since, ev, emit| {
                        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
                        let arr = v.as_array().ok_or("not an array")?;
                        let mut pts: Vec<(i64, &Value)> = arr
                            .iter()
                            .map(|p| Ok((ms(p, "fundingTime")?, p)))
                            .collect::<Result<_, String>>()?;
                        pts.sort_by_key(|(t, _)| *t);
                        let mut newest = None;
                        for (ts, p) in pts.into_iter().filter(|(t, _)| *t > since) {
                            let sym = p
                                .get("symbol")
                                .and_then(Value::as_str)
                                .ok_or("missing `symbol`")?;
                            header(ev, sym, ts, EventKind::FundingRate);
                            let f = &mut ev.funding_rate;
                            set(&mut f.funding_rate, dec(p, "fundingRate")?);
                            f.funding_time_ns = ts;
                            match p.get("markPrice").and_then(Value::as_str) {
                                Some("") | None => f.mark_price.clear(),
                                Some(_) => set(&mut f.mark_price, dec(p, "markPrice")?),
                            }
                            emit(ev);
                            newest = Some(ts);
                        }
                        Ok(newest)
                    }),
                ),
                _ => continue,
            };
            out.push(PollJob {
                name: format!("{s}:{sym}"),
                url,
                weight,
                host: None,
                used_weight_header: Some("x-mbx-used-weight-1m"),
                endpoint,
                offset: interval * i as u32 / n,
                interval,
                parse,
                newest_ns: 0,
                event: Event::new("binance", "usdm"),
            });
        }
    }
    out
}
