//! Weakened security is never silent: settings that send market data or credentials in clear, or
//! turn certificate checks off, are listed with the reason, and `mdc` warns about each at start
//! and in `check-config` (`event=insecure_setting key=… why=…`).

use serde_yaml::Value;

/// `(key, why)` of every insecure setting in the merged configuration tree.
pub fn findings(root: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(root, "", &mut out);
    if let Some(k) = root.get("sinks").and_then(|s| s.get("kafka")) {
        kafka(k, &mut out);
    }
    if let Some(n) = root.get("sinks").and_then(|s| s.get("nats")) {
        nats(n, &mut out);
    }
    if let Some(dsn) = root
        .get("sinks")
        .and_then(|s| s.get("postgres"))
        .and_then(|p| p.get("dsn"))
        .and_then(Value::as_str)
    {
        let d = dsn.to_ascii_lowercase();
        if d.contains("sslmode=disable") && (d.contains("password") || has_user_password(dsn)) {
            out.push((
                "sinks.postgres.dsn".into(),
                "sslmode=disable: the password and the rows cross the network without TLS".into(),
            ));
        }
    }
    out
}

fn has_user_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, r)| r.split(['/', '?']).next().unwrap_or(""))
        .and_then(|auth| auth.rsplit_once('@'))
        .is_some_and(|(ui, _)| ui.contains(':'))
}

/// URLs (`*url`, `*endpoint`) without TLS.
fn walk(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let Value::Mapping(m) = v else { return };
    for (k, val) in m {
        let Some(k) = k.as_str() else { continue };
        let p = if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        };
        let lower = k.to_ascii_lowercase();
        if lower.ends_with("url") || lower.ends_with("endpoint") {
            let urls: Vec<&str> = match val {
                Value::String(s) => vec![s.as_str()],
                Value::Sequence(s) => s.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for u in urls {
                let why = if u.starts_with("ws://") {
                    Some(
                        "ws:// is unencrypted: the stream can be read and altered on the way (use wss://)",
                    )
                } else if u.starts_with("http://") {
                    Some(
                        "http:// is unencrypted: requests and answers can be read and altered on the way (use https://)",
                    )
                } else {
                    None
                };
                if let Some(why) = why {
                    out.push((p.clone(), why.into()));
                }
            }
        }
        walk(val, &p, out);
    }
}

fn kafka(k: &Value, out: &mut Vec<(String, String)>) {
    let s = |key: &str| {
        k.get(key)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let props = k.get("properties");
    let prop = |key: &str| {
        props.and_then(|p| p.get(key)).and_then(|v| match v {
            Value::String(s) => Some(s.to_ascii_lowercase()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    };
    let protocol = prop("security.protocol")
        .or_else(|| s("security_protocol"))
        .unwrap_or_else(|| "plaintext".into());
    let sasl = k.get("sasl_username").is_some_and(|v| !v.is_null())
        || k.get("sasl_password").is_some_and(|v| !v.is_null())
        || prop("sasl.password").is_some();
    if sasl && (protocol == "sasl_plaintext" || protocol == "plaintext") {
        out.push((
            "sinks.kafka.security_protocol".into(),
            format!("SASL over {protocol}: the credentials (PLAIN: the password itself) and the data cross the network without TLS (use sasl_ssl)"),
        ));
    }
    if prop("enable.ssl.certificate.verification").as_deref() == Some("false") {
        out.push((
            "sinks.kafka.properties.enable.ssl.certificate.verification".into(),
            "broker certificates are not verified: anyone on the path can pose as the broker"
                .into(),
        ));
    }
    if prop("ssl.endpoint.identification.algorithm").as_deref() == Some("none") {
        out.push((
            "sinks.kafka.properties.ssl.endpoint.identification.algorithm".into(),
            "the broker's host name is not checked against its certificate".into(),
        ));
    }
}

fn nats(n: &Value, out: &mut Vec<(String, String)>) {
    let creds = ["password", "token", "nkey_seed"]
        .iter()
        .any(|k| n.get(*k).is_some_and(|v| !v.is_null()));
    let tls = n.get("tls_required").and_then(Value::as_bool) == Some(true)
        || n.get("tls_ca_file").is_some_and(|v| !v.is_null());
    let urls: Vec<&str> = match n.get("url") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let tls_url = !urls.is_empty() && urls.iter().all(|u| u.starts_with("tls://"));
    if creds && !tls && !tls_url {
        out.push((
            "sinks.nats.tls_required".into(),
            "credentials are sent to the NATS server without TLS (set tls_required: true or a tls:// url)".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::findings;

    fn keys(yaml: &str) -> Vec<String> {
        findings(&serde_yaml::from_str(yaml).unwrap())
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn insecure_settings_are_named() {
        let k = keys(
            r#"
exchanges:
  binance_spot: { ws_url: "ws://127.0.0.1:9000", rest_url: "http://h" }
  okx: { ws_url: "wss://ws.okx.com:8443/ws/v5/public" }
sinks:
  kafka:
    sasl_username: u
    sasl_password: p
    security_protocol: sasl_plaintext
    properties: { enable.ssl.certificate.verification: "false", ssl.endpoint.identification.algorithm: none }
  nats: { url: "nats://h:4222", token: t }
  postgres: { dsn: "postgresql://md:pw@db/m?sslmode=disable" }
tracing: { otlp_endpoint: "http://collector:4318" }
"#,
        );
        for want in [
            "exchanges.binance_spot.ws_url",
            "exchanges.binance_spot.rest_url",
            "sinks.kafka.security_protocol",
            "sinks.kafka.properties.enable.ssl.certificate.verification",
            "sinks.kafka.properties.ssl.endpoint.identification.algorithm",
            "sinks.nats.tls_required",
            "sinks.postgres.dsn",
            "tracing.otlp_endpoint",
        ] {
            assert!(k.contains(&want.to_string()), "{want} in {k:?}");
        }
        assert!(!k.iter().any(|k| k.contains("okx")), "{k:?}");
    }

    #[test]
    fn secure_settings_are_quiet() {
        let k = keys(
            r#"
exchanges:
  binance_spot: { symbols: [BTCUSDT] }
sinks:
  kafka: { sasl_username: u, sasl_password: p, security_protocol: sasl_ssl }
  nats: { url: "tls://h:4222", token: t }
  postgres: { dsn: "postgresql://md:pw@db/m?sslmode=require" }
"#,
        );
        assert!(k.is_empty(), "{k:?}");
    }
}
