//! Environment overrides: `MDC_` + the key path upper-cased, `__` between levels, e.g.
//! `MDC_SINKS__FILE__PATH=./out` or `MDC_EXCHANGES__BINANCE_SPOT__SYMBOLS='[BTCUSDT, ETHUSDT]'`.
//! Values are read as YAML scalars or flow collections, so numbers, booleans and lists work;
//! except the values of secret keys (passwords, tokens, the PostgreSQL DSN) and of URLs, which are
//! taken as raw strings: `123456` stays the string "123456" (no type error that would print it),
//! a quoted or `#`-prefixed password stays exactly as given.

use super::ConfigError;
use serde_yaml::{Mapping, Value};

/// Prefix of every override variable.
pub const PREFIX: &str = "MDC_";

/// Seed E's environment (`DB_DSN`, comma-separated `SPOT_SYMBOLS` / `FUTURES_SYMBOLS`) and the
/// `mdc` key each stands for; (alias, key, comma-separated list).
pub const ALIASES: &[(&str, &str, bool)] = &[
    ("DB_DSN", "MDC_SINKS__POSTGRES__DSN", false),
    ("SPOT_SYMBOLS", "MDC_EXCHANGES__BINANCE_SPOT__SYMBOLS", true),
    (
        "FUTURES_SYMBOLS",
        "MDC_EXCHANGES__BINANCE_USDM__SYMBOLS",
        true,
    ),
];

/// Applies every `MDC_*` variable of `vars` to `root` (creating sections as needed).
pub fn apply(
    root: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let all: Vec<(String, String)> = vars.into_iter().collect();
    let mut vars: Vec<(String, String)> = all
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .cloned()
        .collect();
    // Seed E's variables, as aliases of `mdc` keys; an explicit `MDC_*` of the same key wins.
    for (alias, key, list) in ALIASES {
        let Some((_, v)) = all.iter().find(|(k, _)| k == alias) else {
            continue;
        };
        if vars.iter().any(|(k, _)| k == key) {
            continue;
        }
        let value = if *list {
            let items: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            format!("[{}]", items.join(", "))
        } else {
            v.clone()
        };
        vars.push((key.to_string(), value));
    }
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::new(
                name,
                "empty key segment (use `__` only between levels)",
            ));
        }
        let last = path.last().map(String::as_str).unwrap_or("");
        let value: Value = if raw_string_key(last) {
            Value::String(raw)
        } else {
            serde_yaml::from_str(&raw).unwrap_or(Value::String(raw))
        };
        set(root, &path, value).map_err(|reason| ConfigError::new(name.clone(), reason))?;
    }
    Ok(())
}

/// Keys whose override is the variable's text as it is, never YAML: secrets and URLs.
fn raw_string_key(key: &str) -> bool {
    crate::setting::secret::is_secret_key(key) || key.ends_with("url") || key.ends_with("endpoint")
}

fn set(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut node = root;
    for (i, seg) in path.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!("`{}` is not a section", path[..i].join(".")));
        };
        let key = Value::String(seg.clone());
        if i == path.len() - 1 {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert(Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets and URLs are the variable's text: never a number, a list, a YAML string with its
    /// quotes taken off, or a comment.
    #[test]
    fn secret_and_url_overrides_are_raw_text() {
        for raw in [
            "123456", "'quoted'", "\"dq\"", "#hash", "a #b", "[x, y]", "{k: v}", "0x1F",
        ] {
            let mut v = Value::Null;
            apply(
                &mut v,
                [
                    (
                        "MDC_SINKS__KAFKA__SASL_PASSWORD".to_string(),
                        raw.to_string(),
                    ),
                    ("MDC_SINKS__POSTGRES__DSN".to_string(), raw.to_string()),
                    (
                        "MDC_EXCHANGES__BINANCE_SPOT__WS_URL".to_string(),
                        raw.to_string(),
                    ),
                ],
            )
            .unwrap();
            assert_eq!(
                v["sinks"]["kafka"]["sasl_password"],
                Value::String(raw.into())
            );
            assert_eq!(v["sinks"]["postgres"]["dsn"], Value::String(raw.into()));
            assert_eq!(
                v["exchanges"]["binance_spot"]["ws_url"],
                Value::String(raw.into())
            );
        }
        // Other keys are still YAML.
        let mut v = Value::Null;
        apply(
            &mut v,
            [("MDC_RUNTIME__READERS".to_string(), "2".to_string())],
        )
        .unwrap();
        assert_eq!(v["runtime"]["readers"], Value::Number(2.into()));
    }

    #[test]
    fn nested_override() {
        let mut v: Value = serde_yaml::from_str("sinks: {file: {path: a}}").unwrap();
        apply(
            &mut v,
            [
                ("MDC_SINKS__FILE__PATH".to_string(), "./out".to_string()),
                ("MDC_RUNTIME__READERS".to_string(), "2".to_string()),
                ("OTHER".to_string(), "x".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(v["sinks"]["file"]["path"], Value::String("./out".into()));
        assert_eq!(v["runtime"]["readers"], Value::Number(2.into()));
    }

    #[test]
    fn seed_e_aliases() {
        let mut v: Value = serde_yaml::from_str("exchanges: {binance_spot: {}}").unwrap();
        apply(
            &mut v,
            [
                ("DB_DSN".to_string(), "postgresql://a@b/c".to_string()),
                ("SPOT_SYMBOLS".to_string(), "BTCUSDT, ETHUSDT".to_string()),
                ("FUTURES_SYMBOLS".to_string(), "BTCUSDT".to_string()),
                (
                    "MDC_EXCHANGES__BINANCE_USDM__SYMBOLS".to_string(),
                    "[SOLUSDT]".to_string(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(v["sinks"]["postgres"]["dsn"], "postgresql://a@b/c");
        assert_eq!(
            v["exchanges"]["binance_spot"]["symbols"],
            serde_yaml::from_str::<Value>("[BTCUSDT, ETHUSDT]").unwrap()
        );
        // The explicit MDC_ key wins over its alias.
        assert_eq!(
            v["exchanges"]["binance_usdm"]["symbols"],
            serde_yaml::from_str::<Value>("[SOLUSDT]").unwrap()
        );
    }
}
