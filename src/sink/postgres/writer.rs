//! The PostgreSQL sink on its own thread: rows built from each record's JSON Lines object into
//! one binary COPY buffer per table; a batch (every table with rows) is written in one
//! transaction, COPY straight into the tables. When the batch may be in already (a unique
//! violation, or any earlier failure of it) it goes through temporary staging tables and
//! `INSERT ... ON CONFLICT DO NOTHING` instead. A failed batch is kept as it is and written again
//! after a reconnect (backoff 100 ms doubling to 5 s): never half-written, never duplicated.

use super::pgbinary::{CopyBuf, TRAILER};
use super::schema::{self, Col, Layout, Table, qualified};
use crate::clock::realtime_ns;
use crate::encode::record::Record;
use crate::metrics::{LogThrottle, Metrics, SinkHealth};
use crate::sink::{Sink, SinkError};
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest the last batch is retried at shutdown.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

pub struct PgSink {
    pg: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    dsn_shown: String,
    schema: String,
    client: Option<postgres::Client>,
    tables: Vec<Table>,
    bufs: Vec<CopyBuf>,
    pending: usize,
    oldest_ns: i64,
    batch_rows: usize,
    batch_interval_ns: i64,
    health: SinkHealth,
    /// Found at connect: TimescaleDB or native partitions.
    layout: Option<Layout>,
    /// The UTC day whose partitions were last ensured.
    partitions_day: i64,
    /// The pending batch may already be in the tables (a failed attempt, a replay): written
    /// through staging with `ON CONFLICT DO NOTHING`, not straight.
    maybe_written: bool,
    written: Arc<AtomicU64>,
    duplicates: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
    error_log: LogThrottle,
}

/// A failure that configuration, not the network, must fix.
fn is_config(e: &str) -> bool {
    e.starts_with("config error:")
}

impl PgSink {
    /// Connects and migrates when the database answers; when it does not, the sink starts anyway
    /// (not ready) and keeps trying. A schema the tables do not match is an error at once.
    pub fn start(
        pg: postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        dsn_shown: String,
        schema: String,
        batch_rows: usize,
        batch_interval: Duration,
        metrics: &Arc<Metrics>,
    ) -> Result<PgSink, SinkError> {
        let l = [("sink", "postgres")];
        let tables = schema::tables();
        let mut s = PgSink {
            bufs: tables.iter().map(|_| CopyBuf::default()).collect(),
            tables,
            pg,
            tls,
            dsn_shown,
            schema,
            client: None,
            pending: 0,
            oldest_ns: 0,
            batch_rows,
            batch_interval_ns: batch_interval.as_nanos() as i64,
            health: metrics.sink_health("postgres"),
            layout: None,
            partitions_day: i64::MIN,
            maybe_written: false,
            written: metrics.counter(
                "postgres_rows_written_total",
                "Rows inserted into PostgreSQL.",
                &l,
            ),
            duplicates: metrics.counter(
                "postgres_rows_duplicate_total",
                "Rows not inserted because the table already had them (a batch written again).",
                &l,
            ),
            batches: metrics.counter(
                "postgres_batches_total",
                "Batches committed (one transaction each).",
                &l,
            ),
            retries: metrics.counter(
                "postgres_batch_retries_total",
                "Batches written again after a failure (reconnected first).",
                &l,
            ),
            skipped: metrics.counter(
                "postgres_rows_skipped_total",
                "Records that could not be made into a row (logged).",
                &l,
            ),
            error_log: LogThrottle::default(),
        };
        match s.connect() {
            Ok(()) => log::info!(
                "event=postgres_ready dsn={} schema={}",
                s.dsn_shown,
                s.schema
            ),
            Err(e) if is_config(&e) => return Err(SinkError(e)),
            Err(e) => {
                s.health.down(&e);
                log::warn!(
                    "event=postgres_unreachable dsn={} error=\"{e}\" note=\"starting anyway; rows queue until it answers\"",
                    s.dsn_shown
                );
            }
        }
        Ok(s)
    }

    /// A new connection with the schema migrated and checked.
    fn connect(&mut self) -> Result<(), String> {
        let mut c =
            self.pg
                .connect(self.tls.clone())
                .map_err(|e| match std::error::Error::source(&e) {
                    Some(why) => format!("connect: {e}: {why}"),
                    None => format!("connect: {e}"),
                })?;
        let timescale = c
            .query_opt(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'",
                &[],
            )
            .map_err(|e| format!("extensions: {e}"))?
            .is_some();
        let layout = if timescale {
            Layout::Timescale
        } else {
            Layout::Partitions
        };
        migrate(&mut c, &self.schema, layout)?;
        check_tables(&mut c, &self.schema, &self.tables)?;
        if self.layout != Some(layout) {
            log::info!(
                "event=postgres_layout schema={} layout={layout:?}",
                self.schema
            );
        }
        self.layout = Some(layout);
        self.partitions_day = i64::MIN;
        self.client = Some(c);
        self.ensure_partitions();
        self.health.reachable.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Day partitions from yesterday to two days ahead (plain PostgreSQL), once per UTC day and
    /// after each connect. A day that cannot be created (its rows already sit in the default
    /// partition) is logged and left there: the rows are kept either way.
    fn ensure_partitions(&mut self) {
        if self.layout != Some(Layout::Partitions) {
            return;
        }
        let today = realtime_ns().div_euclid(86_400_000_000_000);
        if today == self.partitions_day {
            return;
        }
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let mut ok = true;
        for stmt in schema::day_partitions(&self.schema, today - 1, 4).lines() {
            if let Err(e) = c.batch_execute(stmt) {
                ok = false;
                log::warn!("event=postgres_partition_failed sql=\"{stmt}\" error=\"{e}\"");
            }
        }
        if ok {
            self.partitions_day = today;
        }
    }

    /// Appends `rec` as a row of its table; `false` when a value cannot be written.
    fn add_row(&mut self, rec: &Record) -> bool {
        let json = rec.json.strip_suffix(b"\n").unwrap_or(&rec.json);
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(json) else {
            return false;
        };
        let i = rec.kind as usize;
        let (Some(table), Some(buf)) = (self.tables.get(i), self.bufs.get_mut(i)) else {
            return false;
        };
        buf.begin_row();
        for (col, ty) in &table.columns {
            if *ty == Col::Raw {
                // JSONB refuses \u0000 in strings: such a message is kept as NULL rather than
                // failing its batch.
                if rec.raw.is_empty() || rec.raw.windows(6).any(|w| w == b"\\u0000") {
                    buf.null();
                } else {
                    buf.jsonb(&rec.raw);
                }
                continue;
            }
            let v = match ty {
                Col::Time(src) => obj.get(*src),
                _ => obj.get(*col),
            };
            let ok = match (ty, v) {
                (_, None | Some(Value::Null)) => {
                    buf.null();
                    true
                }
                (Col::Time(_), Some(v)) => match v.as_i64() {
                    Some(ns) => {
                        buf.timestamptz_ns(ns);
                        true
                    }
                    None => false,
                },
                (Col::Int8, Some(v)) => match v.as_i64() {
                    Some(n) => {
                        buf.int8(n);
                        true
                    }
                    None => false,
                },
                (Col::Numeric, Some(Value::String(s))) if s.is_empty() => {
                    buf.null();
                    true
                }
                (Col::Numeric, Some(Value::String(s))) => buf.numeric(s),
                (Col::Numeric, Some(Value::Number(n))) => buf.numeric(&n.to_string()),
                (Col::Numeric, Some(_)) => false,
                (Col::Bool, Some(v)) => match v.as_bool() {
                    Some(b) => {
                        buf.bool(b);
                        true
                    }
                    None => false,
                },
                (Col::Text, Some(Value::String(s))) => {
                    buf.text(s);
                    true
                }
                (Col::Text, Some(v)) => {
                    buf.text(&v.to_string());
                    true
                }
                (Col::Jsonb, Some(v)) => {
                    buf.jsonb(v.to_string().as_bytes());
                    true
                }
                (Col::Raw, Some(_)) => false,
            };
            if !ok {
                buf.abandon_row();
                return false;
            }
        }
        buf.end_row();
        true
    }

    /// Writes the batch in one transaction: `direct`, COPY straight into each table (a row the
    /// table already has fails the whole transaction with a unique violation, nothing written:
    /// `Err(true, ..)`); else through the staging tables with `ON CONFLICT DO NOTHING`.
    fn write_batch(&mut self, direct: bool) -> Result<(), (bool, String)> {
        let other = |e: String| (false, e);
        let db = |what: &str, name: &str, e: postgres::Error| {
            let dup = e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION);
            (dup, format!("{what} {name}: {e}"))
        };
        if self.client.is_none() {
            self.connect().map_err(other)?;
        }
        let Some(c) = self.client.as_mut() else {
            return Err(other("not connected".into()));
        };
        let mut tx = c.transaction().map_err(|e| other(format!("begin: {e}")))?;
        let (mut sent, mut inserted) = (0u64, 0u64);
        for (t, buf) in self.tables.iter().zip(self.bufs.iter_mut()) {
            if buf.rows() == 0 {
                continue;
            }
            let stage = format!("mdc_stage_{}", t.name);
            let target = qualified(&self.schema, t.name);
            let into = if direct { &target } else { &stage };
            if !direct {
                tx.batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DELETE ROWS"
                ))
                .map_err(|e| db("stage", t.name, e))?;
            }
            let mut w = tx
                .copy_in(&format!("COPY {into} FROM STDIN (FORMAT binary)"))
                .map_err(|e| db("copy", t.name, e))?;
            w.write_all(buf.body())
                .and_then(|_| w.write_all(TRAILER))
                .map_err(|e| other(format!("copy {}: {e}", t.name)))?;
            let copied = w.finish().map_err(|e| db("copy", t.name, e))?;
            let n = if direct {
                copied
            } else {
                tx.execute(
                    &format!("INSERT INTO {target} SELECT * FROM {stage} ON CONFLICT DO NOTHING"),
                    &[],
                )
                .map_err(|e| db("insert", t.name, e))?
            };
            sent += buf.rows() as u64;
            inserted += n;
        }
        tx.commit().map_err(|e| db("commit", "", e))?;
        self.written.fetch_add(inserted, Ordering::Relaxed);
        self.duplicates
            .fetch_add(sent - inserted.min(sent), Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the batch, reconnecting and writing it again until it is in (or `deadline`).
    fn flush(&mut self, deadline: Option<Instant>) -> Result<(), SinkError> {
        if self.pending == 0 {
            return Ok(());
        }
        let mut backoff = MIN_BACKOFF;
        loop {
            // COPY straight into the tables unless this batch may be (partly) in already: after a
            // failure, or when the direct attempt met a row the table has.
            let direct = !self.maybe_written;
            match self.write_batch(direct) {
                Err((true, _)) if direct => {
                    // Nothing of it was written (the transaction failed whole): the same batch
                    // again through staging, at once, on the same connection.
                    self.maybe_written = true;
                    continue;
                }
                Ok(()) => {
                    self.maybe_written = false;
                    self.health.reachable.store(true, Ordering::Relaxed);
                    for b in &mut self.bufs {
                        b.clear();
                    }
                    self.pending = 0;
                    return Ok(());
                }
                Err((_, e)) => {
                    // The transaction did not commit: nothing of the batch is in the tables. It
                    // may have committed unseen if the connection broke at the commit.
                    self.maybe_written = true;
                    self.client = None;
                    self.health.down(&e);
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    if self.error_log.hit() {
                        log::warn!(
                            "event=postgres_batch_failed rows={} error=\"{e}\" retry_in_ms={} count={}",
                            self.pending,
                            backoff.as_millis(),
                            self.error_log.count()
                        );
                    }
                    if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                        return Err(SinkError(format!(
                            "{} row(s) not written to PostgreSQL: {e}",
                            self.pending
                        )));
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// A migration step's error: what the server refused (SQL) needs a person, so it is a config
/// error; a lost connection is retried.
fn migration_error(v: i32, e: postgres::Error) -> String {
    if e.as_db_error().is_some() {
        format!("config error: sinks.postgres: migration {v}: {e}")
    } else {
        format!("migration {v}: {e}")
    }
}

/// Applies the migrations not yet recorded in `<schema>.schema_version`, one transaction each,
/// under an advisory lock (several collectors may start at once).
fn migrate(c: &mut postgres::Client, schema: &str, layout: Layout) -> Result<(), String> {
    let versions = qualified(schema, "schema_version");
    c.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS {versions} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ))
    .map_err(|e| format!("schema: {e}"))?;
    for (v, sql) in schema::migrations(schema, layout) {
        let mut tx = c.transaction().map_err(|e| migration_error(v, e))?;
        tx.execute("SELECT pg_advisory_xact_lock(7271996)", &[])
            .map_err(|e| migration_error(v, e))?;
        let done = tx
            .query_opt(
                &format!("SELECT 1 FROM {versions} WHERE version = $1"),
                &[&v],
            )
            .map_err(|e| migration_error(v, e))?
            .is_some();
        if !done {
            tx.batch_execute(&sql).map_err(|e| migration_error(v, e))?;
            tx.execute(
                &format!("INSERT INTO {versions} (version) VALUES ($1)"),
                &[&v],
            )
            .map_err(|e| migration_error(v, e))?;
            log::info!("event=postgres_migrated schema={schema} version={v}");
        }
        tx.commit().map_err(|e| migration_error(v, e))?;
    }
    Ok(())
}

/// Every table has the columns and types the rows carry (someone may have altered one by hand).
fn check_tables(c: &mut postgres::Client, schema: &str, tables: &[Table]) -> Result<(), String> {
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = $1",
            &[&schema],
        )
        .map_err(|e| format!("columns: {e}"))?;
    let have: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for t in tables {
        for (col, ty) in &t.columns {
            let want = match ty {
                Col::Text => "text",
                Col::Numeric => "numeric",
                Col::Int8 => "bigint",
                Col::Bool => "boolean",
                Col::Jsonb | Col::Raw => "jsonb",
                Col::Time(_) => "timestamp with time zone",
            };
            match have.iter().find(|(tn, cn, _)| tn == t.name && cn == col) {
                Some((_, _, dt)) if dt == want => {}
                Some((_, _, dt)) => {
                    return Err(format!(
                        "config error: sinks.postgres: column {schema}.{}.{col} is {dt}, expected {want} (altered by hand? restore it or use another schema)",
                        t.name
                    ));
                }
                None => {
                    return Err(format!(
                        "config error: sinks.postgres: column {schema}.{}.{col} is missing (altered by hand? restore it or use another schema)",
                        t.name
                    ));
                }
            }
        }
        let extra: Vec<&str> = have
            .iter()
            .filter(|(tn, cn, _)| tn == t.name && !t.columns.iter().any(|(c, _)| c == cn))
            .map(|(_, cn, _)| cn.as_str())
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "config error: sinks.postgres: table {schema}.{} has columns the sink does not write: {extra:?} (the staging copy would not line up)",
                t.name
            ));
        }
    }
    Ok(())
}

impl Sink for PgSink {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        if !self.add_row(rec) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "event=postgres_row_skipped type={} symbol={} note=\"a value does not fit its column\"",
                rec.kind.as_str(),
                rec.symbol
            );
            return Ok(());
        }
        if self.pending == 0 {
            self.oldest_ns = realtime_ns();
        }
        self.pending += 1;
        if self.pending >= self.batch_rows {
            self.flush(None)?;
        }
        Ok(())
    }

    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.ensure_partitions();
        if self.pending > 0 && now_ns - self.oldest_ns >= self.batch_interval_ns {
            self.flush(None)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let r = self.flush(Some(Instant::now() + CLOSE_DEADLINE));
        self.client = None;
        log::info!(
            "event=postgres_closed written={} duplicates={} batches={}",
            self.written.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed)
        );
        r
    }
}
