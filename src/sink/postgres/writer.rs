//! A PostgreSQL writer: a thread of its own holding one connection, so the sink's thread builds
//! the next batch while this one is in COPY and commit. Several writers (`writers`, default 2)
//! take batches from the same hand-off: while one waits for its commit to reach the disk, the
//! other's COPY keeps the server busy. Batches may commit out of order (each row has its times;
//! none depends on another).
//!
//! A batch (every table with rows) is written in one transaction, COPY straight into the tables.
//! When the batch may be in already (a unique violation, or any earlier failure of it) it goes
//! through temporary staging tables and `INSERT ... ON CONFLICT DO NOTHING` instead. A failed
//! batch is kept as it is and written again after a reconnect (backoff 100 ms doubling to 5 s):
//! never half-written, never duplicated. A row the server refuses for its data (a value it
//! cannot store, a constraint added by hand) would fail its batch forever: the batch is split
//! until that row stands alone, which is left out, counted and logged; the rest goes in.

use super::migrate::{check_tables, migrate};
use super::pgbinary::{HEADER, TRAILER};
use super::rows::Batch;
use super::schema::{self, Layout, Table, qualified};
use crate::clock::realtime_ns;
use crate::metrics::{LogThrottle, Metrics, SinkHealth};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle writer checks the day's partitions.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Why a write failed.
enum Fail {
    /// A row the table already has (the transaction failed whole, nothing written).
    Duplicate(String),
    /// A row the server refuses for its data: writing the same rows again fails again.
    Refused(String),
    /// The connection, the server's state: worth a retry.
    Other(String),
}

/// SQLSTATE classes of errors that a row's own data causes: 22 data exception, 23 integrity
/// constraint (but 23505, handled as a duplicate), 54 program limit (a value too large for an
/// index), 42804 datatype mismatch.
fn refused_by_data(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23") || code.starts_with("54") || code == "42804"
}

fn fail(what: &str, name: &str, e: postgres::Error) -> Fail {
    let msg = format!("{what} {name}: {e}");
    match e.code().map(|c| c.code()) {
        Some("23505") => Fail::Duplicate(msg),
        Some(c) if refused_by_data(c) => Fail::Refused(msg),
        _ => Fail::Other(msg),
    }
}

/// Counters the writers keep (`/metrics`), shared by all of them.
#[derive(Clone)]
pub struct Counters {
    pub written: Arc<AtomicU64>,
    pub duplicates: Arc<AtomicU64>,
    pub batches: Arc<AtomicU64>,
    pub retries: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
}

impl Counters {
    pub fn new(metrics: &Metrics) -> Counters {
        let l = [("sink", "postgres")];
        Counters {
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
            refused: metrics.counter(
                "postgres_rows_refused_total",
                "Rows the server refused for their data (a value it cannot store, a constraint added by hand): left out and logged, the rest of their batch written.",
                &l,
            ),
        }
    }
}

pub struct Writer {
    pg: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    schema: String,
    client: Option<postgres::Client>,
    tables: Vec<Table>,
    /// Found at connect: TimescaleDB or native partitions.
    layout: Option<Layout>,
    /// The UTC day whose partitions were last ensured.
    partitions_day: i64,
    pub health: SinkHealth,
    counters: Counters,
    /// Realtime ns after which a failing batch is given up (set at shutdown); 0: never.
    deadline: Arc<AtomicI64>,
    error_log: LogThrottle,
    /// Batches split, rows left out.
    split_log: LogThrottle,
    refused_log: LogThrottle,
}

impl Writer {
    pub fn new(
        pg: postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        schema: String,
        health: SinkHealth,
        counters: Counters,
        deadline: Arc<AtomicI64>,
    ) -> Writer {
        Writer {
            pg,
            tls,
            schema,
            client: None,
            tables: schema::tables(),
            layout: None,
            partitions_day: i64::MIN,
            health,
            counters,
            deadline,
            error_log: LogThrottle::default(),
            split_log: LogThrottle::default(),
            refused_log: LogThrottle::default(),
        }
    }

    /// A new connection with the schema migrated and checked. Run after every reconnect too: a
    /// server that came back as a fresh cluster gets its tables again.
    pub fn connect(&mut self) -> Result<(), String> {
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

    /// The thread's body: writes each batch it is handed and hands it back empty. Ends when the
    /// sink hangs up; `Err` tells how many rows were given up (at shutdown, past the deadline).
    pub fn run(
        mut self,
        batches: crossbeam_channel::Receiver<Batch>,
        spare: crossbeam_channel::Sender<Batch>,
    ) -> Result<(), String> {
        let mut lost = 0usize;
        let mut last_error = String::new();
        loop {
            match batches.recv_timeout(IDLE_WAKE) {
                Ok(mut b) => {
                    self.ensure_partitions();
                    if let Err(e) = self.flush(&b) {
                        lost += b.rows;
                        last_error = e;
                    }
                    b.clear();
                    if spare.send(b).is_err() {
                        break;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => self.ensure_partitions(),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.client = None;
        if lost > 0 {
            return Err(format!(
                "{lost} row(s) not written to PostgreSQL: {last_error}"
            ));
        }
        Ok(())
    }

    /// Writes the batch, reconnecting and writing it again until it is in (or the deadline).
    fn flush(&mut self, b: &Batch) -> Result<(), String> {
        let mut backoff = MIN_BACKOFF;
        // COPY straight into the tables unless this batch may be (partly) in already.
        let mut direct = true;
        loop {
            let r = match self.write(b, None, direct) {
                Err(Fail::Duplicate(_)) if direct => {
                    // Nothing of it was written (the transaction failed whole): the same batch
                    // again through staging, at once, on the same connection.
                    direct = false;
                    continue;
                }
                Err(Fail::Refused(e)) => {
                    if self.split_log.hit() {
                        log::warn!(
                            "event=postgres_batch_refused rows={} error=\"{e}\" note=\"splitting it to leave out the rows the server refuses\" count={}",
                            b.rows,
                            self.split_log.count()
                        );
                    }
                    self.isolate(b)
                }
                Err(Fail::Duplicate(e) | Fail::Other(e)) => Err(e),
                Ok(()) => Ok(()),
            };
            let e = match r {
                Ok(()) => {
                    self.health.reachable.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => e,
            };
            // The transaction did not commit: nothing of the batch is in the tables. It may
            // have committed unseen if the connection broke at the commit.
            direct = false;
            self.client = None;
            self.health.down(&e);
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if self.error_log.hit() {
                log::warn!(
                    "event=postgres_batch_failed rows={} error=\"{e}\" retry_in_ms={} count={}",
                    b.rows,
                    backoff.as_millis(),
                    self.error_log.count()
                );
            }
            let deadline = self.deadline.load(Ordering::Relaxed);
            if deadline != 0 && realtime_ns() + backoff.as_nanos() as i64 > deadline {
                return Err(e);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Writes the batch through staging, each table's rows apart and split in halves while the
    /// server refuses them, until each refused row stands alone and is left out. Committed part
    /// by part: a part written twice (a failure on the way, then the whole batch again) adds
    /// nothing. `Err` on a failure other than the data's.
    fn isolate(&mut self, b: &Batch) -> Result<(), String> {
        for t in 0..b.bufs.len() {
            let n = b.bufs[t].rows();
            if n > 0 {
                self.isolate_rows(b, t, 0, n)?;
            }
        }
        Ok(())
    }

    fn isolate_rows(&mut self, b: &Batch, t: usize, from: usize, to: usize) -> Result<(), String> {
        match self.write(b, Some((t, from, to)), false) {
            Ok(()) => Ok(()),
            Err(Fail::Refused(e)) if to - from == 1 => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                if self.refused_log.hit() {
                    log::warn!(
                        "event=postgres_row_refused table={} error=\"{e}\" note=\"row left out, the rest of its batch written\" count={}",
                        self.tables.get(t).map_or("?", |t| t.name),
                        self.refused_log.count()
                    );
                }
                Ok(())
            }
            Err(Fail::Refused(_)) => {
                let mid = from + (to - from) / 2;
                self.isolate_rows(b, t, from, mid)?;
                self.isolate_rows(b, t, mid, to)
            }
            Err(Fail::Duplicate(e) | Fail::Other(e)) => Err(e),
        }
    }

    /// One transaction: the whole batch, or rows `from..to` of one table (`only`). `direct`:
    /// COPY straight into each table (a row the table already has fails the whole transaction
    /// with a unique violation, nothing written); else through the staging tables with
    /// `ON CONFLICT DO NOTHING`.
    fn write(
        &mut self,
        b: &Batch,
        only: Option<(usize, usize, usize)>,
        direct: bool,
    ) -> Result<(), Fail> {
        if self.client.is_none() {
            self.connect().map_err(Fail::Other)?;
        }
        let Some(c) = self.client.as_mut() else {
            return Err(Fail::Other("not connected".into()));
        };
        let mut tx = c
            .transaction()
            .map_err(|e| Fail::Other(format!("begin: {e}")))?;
        let (mut sent, mut inserted) = (0u64, 0u64);
        for (i, (t, buf)) in self.tables.iter().zip(b.bufs.iter()).enumerate() {
            let (from, to) = match only {
                Some((ti, from, to)) if ti == i => (from, to),
                Some(_) => continue,
                None => (0, buf.rows()),
            };
            if to <= from {
                continue;
            }
            let stage = format!("mdc_stage_{}", t.name);
            let target = qualified(&self.schema, t.name);
            let into = if direct { &target } else { &stage };
            if !direct {
                tx.batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DELETE ROWS"
                ))
                .map_err(|e| fail("stage", t.name, e))?;
            }
            let mut w = tx
                .copy_in(&format!("COPY {into} FROM STDIN (FORMAT binary)"))
                .map_err(|e| fail("copy", t.name, e))?;
            w.write_all(HEADER)
                .and_then(|_| w.write_all(buf.row_range(from, to)))
                .and_then(|_| w.write_all(TRAILER))
                .map_err(|e| Fail::Other(format!("copy {}: {e}", t.name)))?;
            let copied = w.finish().map_err(|e| fail("copy", t.name, e))?;
            let n = if direct {
                copied
            } else {
                tx.execute(
                    &format!("INSERT INTO {target} SELECT * FROM {stage} ON CONFLICT DO NOTHING"),
                    &[],
                )
                .map_err(|e| fail("insert", t.name, e))?
            };
            sent += (to - from) as u64;
            inserted += n;
        }
        tx.commit().map_err(|e| fail("commit", "", e))?;
        let c = &self.counters;
        c.written.fetch_add(inserted, Ordering::Relaxed);
        c.duplicates
            .fetch_add(sent - inserted.min(sent), Ordering::Relaxed);
        c.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
