//! `sinks.postgres`: PostgreSQL (plain or TimescaleDB) for SQL users. The flow, one module each:
//! `sink` (the sink's own thread, behind [`crate::sink::threaded`], so a slow database fills
//! only its own queue) turns records into rows (`rows`, reading each JSON Lines object in place
//! with `fields`; values in PostgreSQL's binary format by `pgbinary`) and hands full batches to
//! `writer` (a thread holding the connection: one transaction per batch, binary `COPY`, staging
//! and `INSERT ... ON CONFLICT DO NOTHING` when the batch may be in already), which runs
//! `migrate` at every connect against the tables of `schema`. A batch is written whole or not at
//! all, and one written twice adds no row.

mod fields;
mod migrate;
mod pgbinary;
mod rows;
pub mod schema;
mod sink;
mod writer;

use super::threaded::QueuePolicy;
use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::encode::Formats;
use crate::metrics::Metrics;
use crate::setting::{ConfigError, duration, section};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PgConfig {
    #[serde(default)]
    enabled: bool,
    /// `postgresql://user:password@host:port/db` or `host=... user=...`; also from the
    /// environment: `MDC_SINKS__POSTGRES__DSN`, or seed E's `DB_DSN` when that is unset.
    #[serde(default)]
    dsn: String,
    /// Schema of the tables (created at start).
    #[serde(default = "d_schema")]
    schema: String,
    /// Keep the exchange's message each row came from in the `raw` JSONB column (seed E).
    #[serde(default = "d_raw")]
    raw: bool,
    /// Rows per batch at most (one transaction).
    #[serde(default = "d_batch_rows")]
    batch_rows: usize,
    /// A batch is written at least this often.
    #[serde(default = "d_batch_interval")]
    batch_interval: String,
    /// PEM file of the CA that signed the server's certificate (a private CA); empty: the public
    /// web PKI roots. TLS itself follows the DSN's `sslmode` (`disable`, `prefer` (default),
    /// `require`); the server's certificate is always verified when TLS is used.
    #[serde(default)]
    tls_ca_file: String,
    /// Connect (and each retry's connect) gives up after this long.
    #[serde(default = "d_connect_timeout")]
    connect_timeout: String,
    /// Records queued for the sink's thread at most.
    #[serde(default = "d_queue")]
    queue_capacity: usize,
    /// What a full queue does: `block` (default), `drop_newest` or `spool`.
    #[serde(default = "d_backpressure")]
    backpressure: String,
    #[serde(default = "d_spool")]
    spool: super::spool::SpoolConfig,
    /// Connections writing batches at once (1 to 8): while one waits for its commit, another
    /// copies. Batches may then commit out of order.
    #[serde(default = "d_writers")]
    writers: usize,
    /// Fail at start when the database cannot be reached (default: start anyway, not ready, and
    /// keep trying while rows queue).
    #[serde(default)]
    required: bool,
}

fn d_writers() -> usize {
    2
}
fn d_schema() -> String {
    "marketdata".into()
}
fn d_raw() -> bool {
    true
}
fn d_batch_rows() -> usize {
    5_000
}
fn d_batch_interval() -> String {
    "200ms".into()
}
fn d_connect_timeout() -> String {
    "5s".into()
}
fn d_queue() -> usize {
    65_536
}
fn d_backpressure() -> String {
    "block".into()
}
fn d_spool() -> super::spool::SpoolConfig {
    super::spool::SpoolConfig::for_sink("postgres")
}

/// The DSN with its password replaced by `***` (logs, `check-config`).
pub fn redact(dsn: &str) -> String {
    if let Some((scheme, rest)) = dsn.split_once("://") {
        // postgresql://user:password@host/db?password=...: the user info's password and any
        // `password` query parameter.
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let authority = match authority.rsplit_once('@') {
            Some((auth, host)) => match auth.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => authority.to_string(),
            },
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let q: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                            format!("{k}=***")
                        }
                        _ => kv.to_string(),
                    })
                    .collect();
                format!("{path}?{}", q.join("&"))
            }
            None => tail.to_string(),
        };
        return format!("{scheme}://{authority}{tail}");
    }
    // key=value form: `password=***` whatever its quoting (`password='a b\' c'`).
    let mut out = String::with_capacity(dsn.len());
    let mut rest = dsn;
    while let Some(i) = rest.find("password") {
        let after = &rest[i + "password".len()..];
        let value = after.trim_start();
        let at_key = rest[..i]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        if !(at_key && value.starts_with('=')) {
            out.push_str(&rest[..i + "password".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        out.push_str("password=***");
        let v = value[1..].trim_start();
        let consumed = if let Some(q) = v.strip_prefix('\'') {
            // Up to the closing quote; `\'` and `\\` are escapes.
            let mut n = 1;
            let mut esc = false;
            for c in q.chars() {
                n += c.len_utf8();
                match c {
                    _ if esc => esc = false,
                    '\\' => esc = true,
                    '\'' => break,
                    _ => {}
                }
            }
            n
        } else {
            v.find(char::is_whitespace).unwrap_or(v.len())
        };
        rest = &v[consumed.min(v.len())..];
    }
    out.push_str(rest);
    out
}

/// The rustls client for `sslmode` prefer/require: roots from `ca_file`, else the web PKI.
fn tls_config(ca_file: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| format!("`{ca_file}`: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{ca_file}`: {e}"))?;
        if certs.is_empty() {
            return Err(format!("`{ca_file}` holds no PEM certificate"));
        }
        for c in certs {
            roots.add(c).map_err(|e| format!("`{ca_file}`: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

struct PgPlan {
    cfg: PgConfig,
    pg: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    batch_interval: Duration,
    connect_timeout: Duration,
}

pub struct Factory;
pub static FACTORY: Factory = Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn plan(&self, value: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError> {
        let mut cfg: PgConfig = section("sinks.postgres", value)?;
        if !cfg.enabled {
            return Ok(None);
        }
        let key = |k: &str| format!("sinks.postgres.{k}");
        if cfg.dsn.is_empty() {
            return Err(ConfigError::new(
                key("dsn"),
                "required (or MDC_SINKS__POSTGRES__DSN / DB_DSN in the environment)",
            ));
        }
        let pg: postgres::Config = cfg
            .dsn
            .parse()
            .map_err(|e| ConfigError::new(key("dsn"), format!("`{}`: {e}", redact(&cfg.dsn))))?;
        if cfg.schema.is_empty()
            || cfg.schema.len() > 63
            || !cfg
                .schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ConfigError::new(
                key("schema"),
                "lower-case letters, digits and `_`, at most 63",
            ));
        }
        if !(1..=1_000_000).contains(&cfg.batch_rows) {
            return Err(ConfigError::new(
                key("batch_rows"),
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=8).contains(&cfg.writers) {
            return Err(ConfigError::new(key("writers"), "must be between 1 and 8"));
        }
        let batch_interval = duration::parse(&cfg.batch_interval)
            .map_err(|r| ConfigError::new(key("batch_interval"), r))?;
        let connect_timeout = duration::parse(&cfg.connect_timeout)
            .map_err(|r| ConfigError::new(key("connect_timeout"), r))?;
        cfg.spool.fill_path("postgres");
        policy(&cfg)
            .check("postgres")
            .map_err(|(k, r)| ConfigError::new(k, r))?;
        let tls =
            tls_config(&cfg.tls_ca_file).map_err(|r| ConfigError::new(key("tls_ca_file"), r))?;
        Ok(Some(Box::new(PgPlan {
            cfg,
            pg,
            tls,
            batch_interval,
            connect_timeout,
        })))
    }
}

fn policy(cfg: &PgConfig) -> QueuePolicy {
    QueuePolicy {
        queue_capacity: cfg.queue_capacity,
        backpressure: cfg.backpressure.clone(),
        spool: cfg.spool.clone(),
        always: true,
    }
}

impl std::fmt::Debug for PgPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPlan")
            .field("dsn", &redact(&self.cfg.dsn))
            .field("schema", &self.cfg.schema)
            .finish()
    }
}

impl SinkPlan for PgPlan {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn formats(&self) -> Formats {
        // Rows are built from the JSON Lines object: its field names are the column names.
        Formats {
            raw: self.cfg.raw,
            ..Formats::JSON
        }
    }

    fn effective(&self) -> serde_yaml::Value {
        let mut c = self.cfg.clone();
        c.dsn = redact(&c.dsn);
        serde_yaml::to_value(&c).unwrap_or(serde_yaml::Value::Null)
    }

    fn queue_policy(&self) -> Option<QueuePolicy> {
        Some(policy(&self.cfg))
    }

    fn start(&self, metrics: &Arc<Metrics>) -> Result<Box<dyn Sink>, SinkError> {
        let mut pg = self.pg.clone();
        pg.connect_timeout(self.connect_timeout);
        Ok(Box::new(sink::PgSink::start(
            sink::Settings {
                pg,
                tls: self.tls.clone(),
                dsn_shown: redact(&self.cfg.dsn),
                schema: self.cfg.schema.clone(),
                batch_rows: self.cfg.batch_rows,
                batch_interval: self.batch_interval,
                required: self.cfg.required,
                writers: self.cfg.writers,
            },
            metrics,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgresql://md:s3cret@127.0.0.1:5432/market"),
            "postgresql://md:***@127.0.0.1:5432/market"
        );
        assert_eq!(
            redact("host=db user=md password=s3cret dbname=m"),
            "host=db user=md password=*** dbname=m"
        );
        assert_eq!(redact("postgresql://db/m"), "postgresql://db/m");
        assert_eq!(
            redact("postgresql://md:p@ss@db/m?sslmode=require&password=x2"),
            "postgresql://md:***@db/m?sslmode=require&password=***"
        );
        assert_eq!(
            redact("host=db password='my \\' secret' user=md"),
            "host=db password=*** user=md"
        );
        assert_eq!(
            redact("host=db password = s3cret dbname=m"),
            "host=db password=*** dbname=m"
        );
        assert_eq!(
            redact("host=db user=passwordless"),
            "host=db user=passwordless"
        );
    }
}
