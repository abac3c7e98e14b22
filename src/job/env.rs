//! `mdc job`'s configuration: seed D's environment variables only, checked all at once; the
//! first missing or invalid one is reported by name (exit 2). Secrets are never shown.

/// The job's settings.
#[derive(Clone)]
pub struct JobEnv {
    pub queue_id: String,
    /// As given (e.g. `btcusdt`); the collector upper-cases it.
    pub symbol: String,
    /// `TYPE` as given (`ws_diff_depth`, ...).
    pub kind: String,
    /// The Binance stream channel `TYPE` names.
    pub channel: &'static str,
    pub kafka_topic: String,
    pub producer_id: String,
    pub bootstrap: String,
    /// SASL user and password (`KAFKA_USER_PRODUCER` / `KAFKA_PASSWORD_PRODUCER`).
    pub sasl: Option<(String, crate::setting::secret::Secret)>,
    /// SASL mechanism (`KAFKA_SASL_MECHANISM`, default SCRAM-SHA-512).
    pub sasl_mechanism: String,
    /// PEM CA of the brokers' certificates (`CA_PATH`): TLS on.
    pub ca_path: Option<String>,
    pub control_topic: String,
    pub events_topic: String,
    pub ws_url: String,
    /// Seconds between `loading` events (`LOADING_INTERVAL_S`, default 5).
    pub loading_every_s: u64,
}

/// `TYPE` -> Binance stream channel.
pub const TYPES: &[(&str, &str)] = &[
    // The partial book: the top 20 levels every 100 ms (Binance's most complete partial stream).
    ("ws_depth", "depth20@100ms"),
    ("ws_diff_depth", "depth@100ms"),
    ("ws_trade", "trade"),
    ("ws_agg_trade", "aggTrade"),
    ("ws_book_ticker", "bookTicker"),
];

const DEFAULT_WS: &str = "wss://stream.binance.com:9443";

impl JobEnv {
    /// Reads the variables through `get` (the process environment in `mdc job`); `Err` names
    /// the variable and says what is wrong.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<JobEnv, String> {
        let need = |name: &str| -> Result<String, String> {
            match get(name).map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!(
                    "{name} is not set (mdc job is configured by the environment)"
                )),
            }
        };
        let opt = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let queue_id = need("QUEUE_ID")?;
        let symbol = need("SYMBOL")?;
        if !symbol
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("SYMBOL `{symbol}` is not a symbol"));
        }
        let kind = need("TYPE")?;
        let channel = match TYPES.iter().find(|(t, _)| *t == kind) {
            Some((_, ch)) => *ch,
            None => {
                let known: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
                return Err(format!("TYPE `{kind}` is not one of {}", known.join(", ")));
            }
        };
        let kafka_topic = need("KAFKA_TOPIC")?;
        let producer_id = need("TELEMETRY_PRODUCER_ID")?;
        let bootstrap = need("KAFKA_BOOTSTRAP_SERVERS")?;
        let sasl = match (opt("KAFKA_USER_PRODUCER"), opt("KAFKA_PASSWORD_PRODUCER")) {
            (Some(u), Some(p)) => Some((u, crate::setting::secret::Secret::new(p))),
            (None, None) => None,
            (Some(_), None) => {
                return Err("KAFKA_PASSWORD_PRODUCER is not set (KAFKA_USER_PRODUCER is)".into());
            }
            (None, Some(_)) => {
                return Err("KAFKA_USER_PRODUCER is not set (KAFKA_PASSWORD_PRODUCER is)".into());
            }
        };
        let sasl_mechanism = opt("KAFKA_SASL_MECHANISM").unwrap_or_else(|| "SCRAM-SHA-512".into());
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&sasl_mechanism.as_str()) {
            return Err(format!(
                "KAFKA_SASL_MECHANISM `{sasl_mechanism}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            ));
        }
        let ca_path = opt("CA_PATH");
        if let Some(ca) = &ca_path
            && std::fs::metadata(ca).is_err()
        {
            return Err(format!("CA_PATH `{ca}` is not a readable file"));
        }
        let control_topic = need("QUEUE_CONTROL_TOPIC")?;
        let events_topic = need("QUEUE_EVENTS_TOPIC")?;
        let ws_url = opt("BINANCE_WS_URL").unwrap_or_else(|| DEFAULT_WS.into());
        if !(ws_url.starts_with("ws://") || ws_url.starts_with("wss://")) {
            return Err(format!(
                "BINANCE_WS_URL `{ws_url}` is not a ws:// or wss:// URL"
            ));
        }
        let loading_every_s = match opt("LOADING_INTERVAL_S") {
            None => 5,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=3600).contains(&n) => n,
                _ => return Err(format!("LOADING_INTERVAL_S `{v}` is not 1..3600 seconds")),
            },
        };
        Ok(JobEnv {
            queue_id,
            symbol,
            kind,
            channel,
            kafka_topic,
            producer_id,
            bootstrap,
            sasl,
            sasl_mechanism,
            ca_path,
            control_topic,
            events_topic,
            ws_url,
            loading_every_s,
        })
    }

    /// `security.protocol` for librdkafka: TLS when a CA is given, SASL when a user is.
    pub fn security_protocol(&self) -> &'static str {
        match (self.sasl.is_some(), self.ca_path.is_some()) {
            (true, true) => "sasl_ssl",
            (true, false) => "sasl_plaintext",
            (false, true) => "ssl",
            (false, false) => "plaintext",
        }
    }

    /// The collector's configuration: one Binance stream into the Kafka sink in `raw` format
    /// (seed D's payloads), keyed by symbol; USD-M when the URL is a futures host. `MDC_*`
    /// variables still override any key (e.g. `MDC_HTTP__LISTEN`).
    pub fn collector_yaml(&self) -> String {
        let section = if self.ws_url.contains("fstream") {
            "binance_usdm"
        } else {
            "binance_spot"
        };
        let mut kafka = serde_json::json!({
            "enabled": true,
            "brokers": self.bootstrap,
            "topic": self.kafka_topic,
            "format": "raw",
            "key": "symbol",
            "required": true,
            "security_protocol": self.security_protocol(),
        });
        if let Some(ca) = &self.ca_path {
            kafka["ssl_ca_location"] = ca.clone().into();
        }
        if let Some((u, p)) = &self.sasl {
            kafka["sasl_mechanism"] = self.sasl_mechanism.clone().into();
            kafka["sasl_username"] = u.clone().into();
            kafka["sasl_password"] = p.expose().into();
        }
        let mut exchanges = serde_json::Map::new();
        exchanges.insert(
            section.into(),
            serde_json::json!({
                "ws_url": self.ws_url,
                "symbols": [self.symbol],
                "channels": [self.channel],
            }),
        );
        let root = serde_json::json!({
            "exchanges": exchanges,
            "sinks": { "kafka": kafka },
            "http": { "listen": "" },
            "book": { "enabled": false },
        });
        serde_yaml::to_string(&root).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("QUEUE_ID", "q-1"),
            ("SYMBOL", "btcusdt"),
            ("TYPE", "ws_diff_depth"),
            ("KAFKA_TOPIC", "depth.btcusdt"),
            ("TELEMETRY_PRODUCER_ID", "loader-1"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            ("QUEUE_CONTROL_TOPIC", "queue-control"),
            ("QUEUE_EVENTS_TOPIC", "queue-events"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    fn parse(m: &HashMap<String, String>) -> Result<JobEnv, String> {
        JobEnv::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn each_missing_or_bad_variable_is_named() {
        let ok = parse(&vars(&[])).unwrap();
        assert_eq!(ok.channel, "depth@100ms");
        assert_eq!(ok.security_protocol(), "plaintext");
        let yaml = ok.collector_yaml();
        assert!(yaml.contains("format: raw"), "{yaml}");
        assert!(yaml.contains("binance_spot"), "{yaml}");
        for name in [
            "QUEUE_ID",
            "SYMBOL",
            "TYPE",
            "KAFKA_TOPIC",
            "TELEMETRY_PRODUCER_ID",
            "KAFKA_BOOTSTRAP_SERVERS",
            "QUEUE_CONTROL_TOPIC",
            "QUEUE_EVENTS_TOPIC",
        ] {
            let mut m = vars(&[]);
            m.remove(name);
            let e = parse(&m).err().unwrap();
            assert!(e.starts_with(name), "{name}: {e}");
        }
        for (k, v) in [
            ("TYPE", "ws_nope"),
            ("SYMBOL", "btc usdt"),
            ("BINANCE_WS_URL", "http://x"),
            ("CA_PATH", "/nonexistent/ca.pem"),
            ("KAFKA_USER_PRODUCER", "u"),
            ("LOADING_INTERVAL_S", "0"),
        ] {
            let e = parse(&vars(&[(k, v)])).err().unwrap();
            assert!(
                e.contains(k) || e.contains("KAFKA_PASSWORD_PRODUCER"),
                "{k}: {e}"
            );
        }
        let sasl = parse(&vars(&[
            ("KAFKA_USER_PRODUCER", "u"),
            ("KAFKA_PASSWORD_PRODUCER", "s3cret"),
            ("BINANCE_WS_URL", "wss://fstream.binance.com"),
        ]))
        .unwrap();
        assert_eq!(sasl.security_protocol(), "sasl_plaintext");
        assert!(sasl.collector_yaml().contains("binance_usdm"));
    }
}
