//! Building blocks of every configuration section: the error that names a key, strict section
//! parsing and durations. A leaf module: `config` assembles the file, and the exchange and sink
//! factories validate their own sections with these, without depending on `config` (which depends
//! on their registries).

pub mod duration;
pub mod secret;
pub mod shard;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::fmt;

/// A configuration problem: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (or the environment variable / file it came from).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Deserializes one section with unknown keys rejected, reporting errors at `prefix.<path>`.
pub fn section<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, ConfigError> {
    let value = if value.is_null() {
        Value::Mapping(Mapping::new())
    } else {
        value
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let mut key = join(prefix, if path == "." { "" } else { &path });
        let msg = e.into_inner().to_string();
        // serde says "unknown field `x`, expected one of ..."; name the full key instead.
        let reason = if let Some(rest) = msg.strip_prefix("unknown field `") {
            let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
            if !key.ends_with(field) {
                key = join(&key, field);
            }
            let expected = expected.trim_start_matches(',').trim();
            if expected.is_empty() {
                "unknown key".to_string()
            } else {
                format!("unknown key ({expected})")
            }
        } else {
            msg
        };
        ConfigError::new(key, reason)
    })
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}.{b}"),
    }
}
