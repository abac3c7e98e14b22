//! The sink's side (its own thread, behind [`crate::sink::threaded`]): records become rows of
//! the batch being filled; a full batch (`batch_rows`, or `batch_interval` after its first row)
//! goes to the writer thread and the other batch, written and emptied, comes back. Two batches
//! in all: while the writer is in COPY and commit, the next one fills; when both are busy the
//! sink waits (its queue then fills and its `backpressure` applies).

use super::rows::{Batch, RowBuilder};
use super::schema::{self, Table};
use super::writer::{Counters, Writer};
use crate::clock::realtime_ns;
use crate::encode::record::Record;
use crate::metrics::Metrics;
use crate::sink::{Sink, SinkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest the last batches are retried at shutdown.
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

/// A failure that configuration, not the network, must fix.
fn is_config(e: &str) -> bool {
    e.starts_with("config error:")
}

pub struct PgSink {
    tables: Vec<Table>,
    rows: RowBuilder,
    batch: Batch,
    batch_rows: usize,
    batch_interval_ns: i64,
    to_writer: Option<crossbeam_channel::Sender<Batch>>,
    spare: crossbeam_channel::Receiver<Batch>,
    writers: Vec<JoinHandle<Result<(), String>>>,
    counters: Counters,
    /// Shared with the writer: when it gives up a failing batch (set at close).
    deadline: Arc<AtomicI64>,
    skipped: Arc<AtomicU64>,
}

/// What the sink starts with (checked configuration).
pub struct Settings {
    pub pg: postgres::Config,
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The DSN with its password redacted, for logs.
    pub dsn_shown: String,
    pub schema: String,
    pub batch_rows: usize,
    pub batch_interval: Duration,
    pub required: bool,
    pub writers: usize,
}

impl PgSink {
    /// Connects and migrates when the database answers; when it does not, the sink starts anyway
    /// (not ready) and keeps trying, unless `required`. A schema the tables do not match is an
    /// error at once.
    pub fn start(set: Settings, metrics: &Arc<Metrics>) -> Result<PgSink, SinkError> {
        let Settings {
            pg,
            tls,
            dsn_shown,
            schema: schema_name,
            batch_rows,
            batch_interval,
            required,
            writers,
        } = set;
        let deadline = Arc::new(AtomicI64::new(0));
        let health = metrics.sink_health("postgres");
        let counters = Counters::new(metrics);
        let writer = || {
            Writer::new(
                pg.clone(),
                tls.clone(),
                schema_name.clone(),
                health.clone(),
                counters.clone(),
                deadline.clone(),
            )
        };
        let mut first = writer();
        match first.connect() {
            Ok(()) => log::info!(
                "event=postgres_ready dsn={dsn_shown} schema={schema_name} writers={writers}"
            ),
            Err(e) if is_config(&e) => return Err(SinkError(e)),
            Err(e) if required => {
                return Err(SinkError(format!(
                    "database {dsn_shown} unreachable (sinks.postgres.required is true): {e}"
                )));
            }
            Err(e) => {
                health.down(&e);
                log::warn!(
                    "event=postgres_unreachable dsn={dsn_shown} error=\"{e}\" note=\"starting anyway; rows queue until it answers\""
                );
            }
        }
        let tables = schema::tables();
        // One batch filling here, one in each writer at most: the rest wait as spares.
        let (to_writer, batches) = crossbeam_channel::bounded(writers);
        let (give_back, spare) = crossbeam_channel::bounded(writers);
        for _ in 0..writers {
            give_back
                .send(Batch::new(tables.len()))
                .map_err(|_| SinkError("postgres: spare batch".into()))?;
        }
        let mut handles = Vec::with_capacity(writers);
        let mut w = Some(first);
        for n in 0..writers {
            let w = w.take().unwrap_or_else(writer);
            let (b, g) = (batches.clone(), give_back.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("pg-writer-{n}"))
                    .spawn(move || w.run(b, g))
                    .map_err(|e| SinkError(format!("postgres: writer thread: {e}")))?,
            );
        }
        Ok(PgSink {
            batch: Batch::new(tables.len()),
            tables,
            rows: RowBuilder::default(),
            batch_rows,
            batch_interval_ns: batch_interval.as_nanos() as i64,
            to_writer: Some(to_writer),
            spare,
            writers: handles,
            counters,
            deadline,
            skipped: metrics.counter(
                "postgres_rows_skipped_total",
                "Records that could not be made into a row (logged).",
                &[("sink", "postgres")],
            ),
        })
    }

    /// Hands the filled batch to the writer, taking the empty one back (waiting while the
    /// writer still has it).
    fn hand_off(&mut self) -> Result<(), SinkError> {
        if self.batch.rows == 0 {
            return Ok(());
        }
        let gone = || SinkError("postgres: the writer thread has stopped".into());
        let next = self.spare.recv().map_err(|_| gone())?;
        let full = std::mem::replace(&mut self.batch, next);
        self.to_writer
            .as_ref()
            .ok_or_else(gone)?
            .send(full)
            .map_err(|_| gone())
    }
}

impl Sink for PgSink {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        let i = rec.kind as usize;
        let added = match (self.tables.get(i), self.batch.bufs.get_mut(i)) {
            (Some(t), Some(buf)) => self.rows.add(t, buf, rec),
            _ => false,
        };
        if !added {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "event=postgres_row_skipped type={} symbol={} note=\"a value does not fit its column\"",
                rec.kind.as_str(),
                rec.symbol
            );
            return Ok(());
        }
        if self.batch.rows == 0 {
            self.batch.oldest_ns = realtime_ns();
        }
        self.batch.rows += 1;
        if self.batch.rows >= self.batch_rows {
            self.hand_off()?;
        }
        Ok(())
    }

    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError> {
        if self.batch.rows > 0 && now_ns - self.batch.oldest_ns >= self.batch_interval_ns {
            self.hand_off()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.deadline.store(
            realtime_ns() + CLOSE_DEADLINE.as_nanos() as i64,
            Ordering::Relaxed,
        );
        let handed = self.hand_off();
        self.to_writer = None;
        let mut failed = Vec::new();
        for w in self.writers.drain(..) {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(e),
                Err(_) => failed.push("postgres: a writer thread panicked".into()),
            }
        }
        let c = &self.counters;
        log::info!(
            "event=postgres_closed written={} duplicates={} refused={} batches={} writers_failed={}",
            c.written.load(Ordering::Relaxed),
            c.duplicates.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.batches.load(Ordering::Relaxed),
            failed.len()
        );
        let written = match failed.is_empty() {
            true => Ok(()),
            false => Err(SinkError(failed.join("; "))),
        };
        handed.and(written)
    }
}
