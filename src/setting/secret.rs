//! Credentials in the configuration: a [`Secret`] prints as `***` in every `Debug`, `Display` and
//! serialized form (logs, `check-config`, `/status`, error messages), so only the code that hands
//! it to a client library ever reads it ([`Secret::expose`]). Also: which keys hold secrets (their
//! environment overrides are taken as raw strings, never as YAML), and URLs shown without their
//! user info.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// What a secret prints as.
pub const REDACTED: &str = "***";

/// A password, token, key or credential-bearing string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value itself: only for handing it to the client that authenticates with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Any scalar is taken as its text (`password: 123456` is the string "123456"); a sequence or
/// mapping is refused without quoting the value.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (a secret)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Does the key (its last segment, any case) name a secret? Passwords, tokens, keys,
/// credentials, and the PostgreSQL DSN (which carries its password).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "private_key",
        "credentials",
        "nkey_seed",
        "dsn",
        // librdkafka: `ssl.key.pem`, `ssl_key`, `sasl.oauthbearer.config` (may hold a client
        // secret), `ssl.keystore.password` (above).
        "ssl.key.pem",
        "ssl_key",
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `url` without user info (`wss://user:pass@host/x` -> `wss://***@host/x`), for logs and
/// endpoints that show URLs.
pub fn url_shown(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}{REDACTED}{}",
            &url[..scheme_end + 3],
            &rest[at..]
        )),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s: Secret = serde_yaml::from_str("s3cret").unwrap();
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_yaml::to_string(&s).unwrap().trim(), "'***'");
        // A number is its text, not a type error that quotes it.
        let n: Secret = serde_yaml::from_str("123456").unwrap();
        assert_eq!(n.expose(), "123456");
        let e = serde_yaml::from_str::<Secret>("[a, b]").unwrap_err();
        assert!(!e.to_string().contains("a, b"), "{e}");
    }

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(
            url_shown("wss://u:p@h:9443/ws?x=1"),
            "wss://***@h:9443/ws?x=1"
        );
        assert_eq!(url_shown("wss://h/ws?u=a@b"), "wss://h/ws?u=a@b");
        assert_eq!(url_shown("http://h"), "http://h");
        assert_eq!(url_shown("no scheme"), "no scheme");
        assert_eq!(url_shown("nats://tok@h:4222"), "nats://***@h:4222");
    }

    #[test]
    fn secret_keys() {
        for k in [
            "sasl_password",
            "SASL.PASSWORD",
            "token",
            "nkey_seed",
            "dsn",
            "ssl.key.password",
            "sasl.oauthbearer.config",
            "ssl.key.pem",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["brokers", "topic", "sasl_username", "ws_url"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
