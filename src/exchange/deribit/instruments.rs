//! Instrument selection: `instruments: { currency: BTC, kind: option, expired: false }` names
//! every instrument Deribit lists for that currency and kind, resolved through
//! `public/get_instruments` when the collector starts, so a user can collect every BTC option
//! without writing thousands of names.

use crate::setting::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Kinds `public/get_instruments` takes.
pub const KINDS: &[&str] = &["future", "option", "spot", "future_combo", "option_combo"];

/// One selection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// `BTC`, `ETH`, `USDC`, `USDT`, `EURR` or `any`.
    pub currency: String,
    /// One of [`KINDS`]; absent: every kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Include recently expired instruments (default false).
    #[serde(default)]
    pub expired: bool,
}

impl Selection {
    /// `instruments` as one map or a list of maps.
    pub fn parse_all(
        key: &str,
        v: Option<serde_yaml::Value>,
    ) -> Result<Vec<Selection>, ConfigError> {
        let list = match v {
            None | Some(serde_yaml::Value::Null) => return Ok(Vec::new()),
            Some(serde_yaml::Value::Sequence(s)) => s,
            Some(m) => vec![m],
        };
        let mut out = Vec::with_capacity(list.len());
        for (i, v) in list.into_iter().enumerate() {
            let k = format!("{key}[{i}]");
            let s: Selection = crate::setting::section(&k, v)?;
            if s.currency.is_empty()
                || s.currency.len() > 16
                || !(s.currency == "any" || s.currency.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return Err(ConfigError::new(
                    format!("{k}.currency"),
                    format!(
                        "`{}` is not a currency (e.g. BTC, ETH, USDC, any)",
                        s.currency
                    ),
                ));
            }
            if let Some(kind) = &s.kind
                && !KINDS.contains(&kind.as_str())
            {
                return Err(ConfigError::new(
                    format!("{k}.kind"),
                    format!("unknown kind `{kind}` (known: {})", KINDS.join(", ")),
                ));
            }
            out.push(s);
        }
        Ok(out)
    }

    /// The request URL under `rest_url`.
    pub fn url(&self, rest_url: &str) -> String {
        let mut u = format!(
            "{}/api/v2/public/get_instruments?currency={}",
            rest_url.trim_end_matches('/'),
            self.currency
        );
        if let Some(k) = &self.kind {
            u.push_str("&kind=");
            u.push_str(k);
        }
        u.push_str(if self.expired {
            "&expired=true"
        } else {
            "&expired=false"
        });
        u
    }
}

/// The instrument names of a `public/get_instruments` response body.
pub fn parse(body: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("get_instruments: invalid JSON: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("get_instruments: error reply {err}"));
    }
    let list = v
        .get("result")
        .and_then(|r| r.as_array())
        .ok_or("get_instruments: no `result` array")?;
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        if let Some(name) = item.get("instrument_name").and_then(|n| n.as_str())
            && super::inst_market(name).is_some()
        {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Every instrument the selections name, in the exchange's order, each once. Retries a failing
/// request 3 times (1 s, 2 s, 4 s apart) before giving up.
pub fn resolve(rest_url: &str, selections: &[Selection]) -> Result<Vec<String>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into();
    let mut out: Vec<String> = Vec::new();
    for s in selections {
        let url = s.url(rest_url);
        let mut attempt = 0;
        let names = loop {
            let got = agent
                .get(&url)
                .call()
                .map_err(|e| e.to_string())
                .and_then(|mut r| {
                    let status = r.status().as_u16();
                    let body = r
                        .body_mut()
                        .with_config()
                        .limit(64 << 20)
                        .read_to_string()
                        .map_err(|e| e.to_string())?;
                    if status != 200 {
                        return Err(format!(
                            "HTTP {status}: {}",
                            body.chars().take(200).collect::<String>()
                        ));
                    }
                    parse(&body)
                });
            match got {
                Ok(n) => break n,
                Err(e) if attempt < 3 => {
                    log::warn!(
                        "event=rest_error url={} error=\"{e}\" attempt={}",
                        crate::setting::secret::url_shown(&url),
                        attempt + 1
                    );
                    std::thread::sleep(Duration::from_secs(1 << attempt));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(format!("{}: {e}", crate::setting::secret::url_shown(&url)));
                }
            }
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies() {
        let s = Selection {
            currency: "BTC".into(),
            kind: Some("option".into()),
            expired: false,
        };
        assert_eq!(
            s.url("http://h:1/"),
            "http://h:1/api/v2/public/get_instruments?currency=BTC&kind=option&expired=false"
        );
        let body = r#"{"jsonrpc":"2.0","result":[{"instrument_name":"BTC-26DEC25-100000-C","kind":"option"},{"instrument_name":"BTC-FS-27DEC24_PERP"},{"x":1}]}"#;
        assert_eq!(parse(body).unwrap(), vec!["BTC-26DEC25-100000-C"]);
        assert!(parse(r#"{"error":{"code":1}}"#).is_err());
        assert!(parse("nope").is_err());
    }
}
