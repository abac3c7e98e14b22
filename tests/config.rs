//! Configuration: YAML + `MDC_*` environment precedence, and every invalid key rejected by the real
//! binary with a one-line error naming it and exit status 2.

use mdc::config::Config;
use std::process::Command;

const BASE: &str = r#"
exchanges:
  binance_spot:
    ws_url: "wss://stream.binance.com:9443"
    rest_url: "https://api.binance.com"
    symbols: ["BTCUSDT", "ETHUSDT"]
    channels: ["trade", "aggTrade", "depth@100ms", "bookTicker"]
sinks:
  file: { enabled: true, path: "./data", format: "jsonl" }
http:
  listen: "127.0.0.1:8086"
runtime:
  readers: 1
  parsers: 1
  cpus: {}
"#;

fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "mdc-cfg-{}-{}",
        std::process::id(),
        mdc::clock::realtime_ns()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdc"));
    cmd.arg("check-config").arg("--config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn valid_config_prints_effective_config() {
    let (code, out, err) = check(BASE, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ws_url: wss://stream.binance.com:9443"));
    assert!(out.contains("binance_spot: 2 symbols, 8 streams over 1 connection(s)"));
    // The shipped config.yaml is valid too.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    let (code, _, err) = check(&shipped, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn each_invalid_key_is_named_with_exit_2() {
    let replace = |from: &str, to: &str| BASE.replace(from, to);
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            replace("  cpus: {}", "  cpus: {}\n  bogus: 1"),
            vec![],
            "runtime.bogus",
        ),
        (
            replace("    symbols:", "    symbol_list: []\n    symbols:"),
            vec![],
            "exchanges.binance_spot.symbol_list",
        ),
        (
            replace("wss://stream", "https://stream"),
            vec![],
            "exchanges.binance_spot.ws_url",
        ),
        (
            replace("https://api", "ftp://api"),
            vec![],
            "exchanges.binance_spot.rest_url",
        ),
        (
            replace("\"bookTicker\"]", "\"bookTickr\"]"),
            vec![],
            "exchanges.binance_spot.channels[3]",
        ),
        (
            replace("\"ETHUSDT\"]", "\"ETH/USDT\"]"),
            vec![],
            "exchanges.binance_spot.symbols[1]",
        ),
        (
            replace("format: \"jsonl\"", "format: \"csv\""),
            vec![],
            "sinks.file.format",
        ),
        (
            replace("readers: 1", "readers: 0"),
            vec![],
            "runtime.readers",
        ),
        (
            replace("parsers: 1", "parsers: many"),
            vec![],
            "runtime.parsers",
        ),
        (
            replace("127.0.0.1:8086", "localhost"),
            vec![],
            "http.listen",
        ),
        (
            replace("binance_spot:", "binance_moon:"),
            vec![],
            "exchanges.binance_moon",
        ),
        (
            replace("  file:", "  kafkaa: {}\n  file:"),
            vec![],
            "sinks.kafkaa",
        ),
        (replace("enabled: true", "enabled: false"), vec![], "sinks"),
        (
            BASE.to_string(),
            vec![("MDC_RUNTIME__SHUTDOWN_TIMEOUT", "5 parsecs")],
            "runtime.shutdown_timeout",
        ),
        (
            BASE.to_string(),
            vec![(
                "MDC_EXCHANGES__BINANCE_SPOT__MAX_STREAMS_PER_CONNECTION",
                "5000",
            )],
            "exchanges.binance_spot.max_streams_per_connection",
        ),
        (
            BASE.to_string(),
            vec![("MDC_SINKS__FILE__NOPE", "1")],
            "sinks.file.nope",
        ),
        (
            BASE.to_string(),
            vec![("MDC_HTTP__LISTEN__PORT", "1")],
            "MDC_HTTP__LISTEN__PORT",
        ),
        ("exchanges: [1, 2".to_string(), vec![], "line"),
        // Two diff-depth streams of one symbol would be mixed into one book.
        (
            replace("\"bookTicker\"]", "\"bookTicker\", \"depth\"]"),
            vec![],
            "exchanges.binance_spot.channels[4]",
        ),
        // Above the exchange's outgoing message limit (spot 5/s): the connection would be closed.
        (
            BASE.to_string(),
            vec![("MDC_EXCHANGES__BINANCE_SPOT__MAX_MESSAGES_PER_SEC", "6")],
            "exchanges.binance_spot.max_messages_per_sec",
        ),
    ];
    for (yaml, env, key) in cases {
        let (code, _, err) = check(&yaml, &env);
        assert_eq!(code, 2, "{key}: exit status; stderr: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{key}: one line, got: {err}");
        assert!(
            lines[0].starts_with(&format!("config error: {key}")),
            "{key}: got {err}"
        );
    }
}

/// Binance lists UTF-8 symbols (since December 2025): accepted, and streamed percent-encoded.
#[test]
fn non_ascii_symbols_are_accepted() {
    let yaml = BASE.replace("\"ETHUSDT\"]", "\"币安人生USDT\"]");
    let (code, out, err) = check(&yaml, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("币安人生USDT"), "{out}");
    let (code, _, _) = check(&BASE.replace("\"ETHUSDT\"]", "\"ETH USDT\"]"), &[]);
    assert_eq!(code, 2, "spaces are still refused");
}

#[test]
fn environment_overrides_file() {
    let env = vec![
        ("MDC_SINKS__FILE__PATH".to_string(), "./out".to_string()),
        (
            "MDC_EXCHANGES__BINANCE_SPOT__SYMBOLS".to_string(),
            "[solusdt]".to_string(),
        ),
        ("MDC_RUNTIME__PARSERS".to_string(), "3".to_string()),
        ("UNRELATED".to_string(), "1".to_string()),
    ];
    let c = Config::from_yaml(BASE, env).unwrap();
    assert_eq!(c.runtime.parsers, 3);
    assert_eq!(c.exchanges[0].symbols(), ["SOLUSDT".to_string()]);
    assert!(c.effective_yaml().contains("path: ./out"));
}

#[test]
fn absent_or_empty_exchange_is_not_started() {
    let c = Config::from_yaml(
        &BASE.replace("[\"BTCUSDT\", \"ETHUSDT\"]", "[]"),
        Vec::new(),
    )
    .unwrap();
    assert!(c.exchanges.is_empty());
    let c = Config::from_yaml("sinks: { file: { path: ./x } }", Vec::new()).unwrap();
    assert!(c.exchanges.is_empty());
    assert_eq!(c.sinks.len(), 1);
}

#[test]
fn secrets_are_redacted() {
    let mut v: serde_yaml::Value =
        serde_yaml::from_str("a: { sasl_password: hunter2, user: bob, api_key: k }").unwrap();
    mdc::config::redact(&mut v);
    let s = serde_yaml::to_string(&v).unwrap();
    assert!(
        !s.contains("hunter2") && !s.contains(": k") && s.contains("bob"),
        "{s}"
    );
}

/// REST limits as Binance counts them: a budget per host with the documented defaults (spot 6000,
/// USD-M 2400 weight per minute), and USD-M snapshot depths limited to the values it accepts.
#[test]
fn rest_budgets_per_host_and_usdm_snapshot_depths() {
    let (code, out, err) = check(BASE, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rest_weight_per_minute: 6000"), "{out}");
    let usdm = r#"
exchanges:
  binance_usdm:
    symbols: ["BTCUSDT"]
    channels: ["depth@100ms"]
sinks:
  file: { path: "./data" }
book:
  rest_snapshot_limit: 200
"#;
    let (code, _, err) = check(usdm, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("config error: book.rest_snapshot_limit") && err.contains("500, 1000"),
        "{err}"
    );
    let (code, out, err) = check(
        usdm,
        &[("MDC_EXCHANGES__BINANCE_USDM__REST_SNAPSHOT_LIMIT", "500")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rest_weight_per_minute: 2400"), "{out}");
    assert!(out.contains("rest_snapshot_limit: 500"), "{out}");
}
