//! Sink isolation for sinks whose writes block on their own I/O (the file sink on a slow or full
//! disk; PostgreSQL): when such a sink shares the publisher with other sinks, it runs behind this
//! adapter. The publisher copies each record into a recycled slot of the sink's own bounded queue
//! and goes on; the sink's own thread writes. So a slow sink fills only its own queue, and what a
//! full queue does is that sink's `backpressure`: `block` (the publisher waits, as if the sink
//! were inline), `drop_newest` (this sink alone loses the record, counts it and gets a `gap`
//! event for it once it has room) or `spool` (the overflow goes to the sink's on-disk spool and is
//! queued from it in order).
//!
//! Wake-ups are batched: the sink's thread sleeps when its queue is empty and the publisher wakes
//! it from `tick` (every millisecond) or once a quarter of the queue is used, never per record.
//! Network sinks with a queue and thread of their own (Kafka: librdkafka's; NATS) do not use it.

use super::spool::{RecordSpool, SpoolConfig};
use super::{Sink, SinkError};
use crate::clock::realtime_ns;
use crate::encode::record::Record;
use crate::metrics::{LogThrottle, Metrics, SinkHealth};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// `queue_capacity`, `backpressure` and `spool` of a sink that can run behind [`Threaded`].
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QueuePolicy {
    pub queue_capacity: usize,
    pub backpressure: String,
    pub spool: SpoolConfig,
    /// On its own thread even when it is the only sink (its client waits on the network).
    #[serde(skip)]
    pub always: bool,
}

impl QueuePolicy {
    /// Checks the values under `sinks.<sink>`; `Err((key, reason))`.
    pub fn check(&self, sink: &str) -> Result<(), (String, String)> {
        let key = |k: &str| format!("sinks.{sink}.{k}");
        if !(16..=1 << 22).contains(&self.queue_capacity) {
            return Err((
                key("queue_capacity"),
                "must be between 16 and 4194304".into(),
            ));
        }
        if !["block", "drop_newest", "spool"].contains(&self.backpressure.as_str()) {
            return Err((
                key("backpressure"),
                format!(
                    "`{}` is not one of block, drop_newest, spool",
                    self.backpressure
                ),
            ));
        }
        if self.backpressure == "spool" {
            self.spool.check().map_err(|r| (key("spool"), r.into()))?;
        }
        Ok(())
    }
}

/// Longest wait at shutdown for the sink's thread to write what is queued and close.
const CLOSE_WAIT: Duration = Duration::from_secs(60);
/// The sink's thread wakes at least this often (its `tick`: time-based flushes).
const IDLE_WAKE: Duration = Duration::from_millis(10);

/// What the sink's thread reports back.
struct Shared {
    sleeping: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<String>,
}

/// The publisher's side of a sink running on its own thread.
pub struct Threaded {
    name: &'static str,
    tx: Option<crossbeam_channel::Sender<Record>>,
    free: crossbeam_channel::Receiver<Record>,
    allocated: usize,
    capacity: usize,
    policy: QueuePolicy,
    thread: Option<JoinHandle<()>>,
    done: crossbeam_channel::Receiver<Result<(), SinkError>>,
    shared: Arc<Shared>,
    errors_seen: u64,
    health: SinkHealth,
    drops: super::drops::Drops,
    drop_log: LogThrottle,
    spool: Option<RecordSpool>,
    /// A record read back from the spool that did not fit the queue yet (goes first).
    held: Option<Record>,
    /// Where `gap` records are built.
    gap: Option<Record>,
}

impl Threaded {
    /// Moves `sink` to a thread of its own named `sink-<name>`.
    pub fn start(
        name: &'static str,
        mut sink: Box<dyn Sink>,
        policy: QueuePolicy,
        metrics: &Arc<Metrics>,
    ) -> Result<Threaded, SinkError> {
        let capacity = policy.queue_capacity;
        let (tx, rx) = crossbeam_channel::bounded::<Record>(capacity);
        let (free_tx, free) = crossbeam_channel::bounded::<Record>(capacity);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            sleeping: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        });
        let health = metrics.sink_health(name);
        let spool = if policy.backpressure == "spool" {
            let s = RecordSpool::open(&policy.spool, name)
                .map_err(|e| SinkError(format!("sinks.{name}.spool.path: {e}")))?;
            if !s.is_empty() {
                log::warn!(
                    "event=sink_spool_replay sink={name} path={} bytes={} note=\"left by an earlier run\"",
                    s.path().display(),
                    s.len()
                );
            }
            Some(s)
        } else {
            None
        };
        let sh = shared.clone();
        let depth = health.queue_depth.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                let r = run(&mut *sink, &rx, &free_tx, &sh, &depth);
                let _ = done_tx.send(r);
            })
            .map_err(|e| SinkError(format!("sink-{name} thread: {e}")))?;
        let gaps = |reason: &'static str| {
            (
                reason,
                metrics.counter(
                    "gap_events_total",
                    "Gap events emitted (data of a stream may be missing), by reason.",
                    &[("reason", reason)],
                ),
            )
        };
        Ok(Threaded {
            name,
            tx: Some(tx),
            free,
            allocated: 0,
            capacity,
            policy,
            thread: Some(thread),
            done,
            shared,
            errors_seen: 0,
            drops: super::drops::Drops::counted(name, vec![gaps("sink_dropped")]),
            drop_log: LogThrottle::default(),
            health,
            spool,
            held: None,
            gap: None,
        })
    }

    /// A free slot: recycled, or new while fewer than the queue's capacity exist.
    fn try_slot(&mut self) -> Option<Record> {
        if let Ok(r) = self.free.try_recv() {
            return Some(r);
        }
        if self.allocated < self.capacity {
            self.allocated += 1;
            return Some(Record::with_capacity(512));
        }
        None
    }

    /// Queues `slot` (a slot in hand always has room: slots never outnumber the queue).
    fn queue(&mut self, slot: Record) -> Result<(), SinkError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| SinkError(format!("sink {} closed", self.name)))?;
        tx.try_send(slot)
            .map_err(|_| SinkError(format!("sink-{} thread ended", self.name)))?;
        if tx.len() * 4 >= self.capacity {
            self.wake();
        }
        Ok(())
    }

    fn wake(&self) {
        if self.shared.sleeping.load(Ordering::Acquire)
            && let Some(t) = &self.thread
        {
            t.thread().unpark();
        }
    }

    /// A write error of the sink's thread since the last look, to be counted by the publisher.
    fn take_error(&mut self) -> Result<(), SinkError> {
        let n = self.shared.errors.load(Ordering::Relaxed);
        if n == self.errors_seen {
            return Ok(());
        }
        self.errors_seen = n;
        let e = self
            .shared
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        Err(SinkError(e))
    }

    fn note_dropped(&mut self, rec: &Record, why: &str) {
        self.health.dropped.fetch_add(1, Ordering::Relaxed);
        self.drops.note(rec);
        if self.drop_log.hit() {
            log::warn!(
                "event=sink_dropped sink={} policy={why} type={} symbol={} count={}",
                self.name,
                rec.kind.as_str(),
                rec.symbol,
                self.drop_log.count()
            );
        }
    }

    /// Queues spooled records, oldest first, while there are free slots.
    fn drain_spool(&mut self) -> Result<(), SinkError> {
        loop {
            let slot = match self.held.take() {
                Some(r) => r,
                None => {
                    if self.spool.as_ref().is_none_or(|s| s.is_empty()) {
                        break;
                    }
                    let Some(mut slot) = self.try_slot() else {
                        break;
                    };
                    let got = match self.spool.as_mut() {
                        Some(s) => s
                            .pop(&mut slot)
                            .map_err(|e| SinkError(format!("{} spool: {e}", self.name)))?,
                        None => false,
                    };
                    if !got {
                        self.free_slot(slot);
                        break;
                    }
                    slot
                }
            };
            if self.tx.as_ref().is_some_and(|t| t.is_full()) {
                self.held = Some(slot);
                break;
            }
            self.queue(slot)?;
        }
        if let Some(s) = &self.spool {
            self.health
                .spool_bytes
                .store(s.len() as i64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Forgets an unused slot (a new one is made when needed).
    fn free_slot(&mut self, slot: Record) {
        drop(slot);
        self.allocated -= 1;
    }

    /// Queues `gap` records for what this sink dropped, while there are free slots.
    fn report_drops(&mut self) -> Result<(), SinkError> {
        let mut drops = std::mem::take(&mut self.drops);
        let mut gap = self
            .gap
            .take()
            .unwrap_or_else(|| Record::with_capacity(512));
        let mut failed = None;
        drops.report_records(&mut gap, |r| {
            let Some(mut slot) = self.try_slot() else {
                return false;
            };
            slot.copy_from(r);
            match self.queue(slot) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        self.drops = drops;
        self.gap = Some(gap);
        failed.map_or(Ok(()), Err)
    }
}

/// The sink's thread: writes what is queued, ticks the sink, sleeps when there is nothing.
fn run(
    sink: &mut dyn Sink,
    rx: &crossbeam_channel::Receiver<Record>,
    free: &crossbeam_channel::Sender<Record>,
    shared: &Shared,
    depth: &std::sync::atomic::AtomicI64,
) -> Result<(), SinkError> {
    let mut last_tick = 0i64;
    let fail = |e: SinkError| {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = shared.last_error.lock() {
            *l = e.0;
        }
    };
    loop {
        let mut did = 0usize;
        loop {
            match rx.try_recv() {
                Ok(rec) => {
                    if let Err(e) = sink.write(&rec) {
                        fail(e);
                    }
                    let _ = free.try_send(rec);
                    did += 1;
                    if did.is_multiple_of(1024) {
                        break;
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    depth.store(0, Ordering::Relaxed);
                    return sink.close();
                }
            }
        }
        depth.store(rx.len() as i64, Ordering::Relaxed);
        let now = realtime_ns();
        if now - last_tick >= 1_000_000 {
            last_tick = now;
            if let Err(e) = sink.tick(now) {
                fail(e);
            }
        }
        if did == 0 {
            shared.sleeping.store(true, Ordering::Release);
            // Re-checked after announcing the sleep: a record queued before the flag was seen
            // is not left waiting for the next wake-up.
            if rx.is_empty() {
                std::thread::park_timeout(IDLE_WAKE);
            }
            shared.sleeping.store(false, Ordering::Release);
        }
    }
}

impl Sink for Threaded {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        if self.spool.is_some() {
            self.drain_spool()?;
            let behind = self.held.is_some() || self.spool.as_ref().is_some_and(|s| !s.is_empty());
            // No free slot is as full as a full queue: the sink's thread may hold one (it is
            // writing it), so the queue can be one short of full with every slot in use.
            if !behind && !self.drops.is_empty() {
                self.report_drops()?;
            }
            let slot = if behind { None } else { self.try_slot() };
            if let Some(mut s) = slot {
                s.copy_from(rec);
                self.queue(s)?;
            } else {
                let kept = match self.spool.as_mut() {
                    Some(s) => s
                        .push(rec)
                        .map_err(|e| SinkError(format!("{} spool: {e}", self.name)))?,
                    None => false,
                };
                if !kept {
                    self.note_dropped(rec, "spool_full");
                }
            }
            return self.take_error();
        }
        if !self.drops.is_empty() {
            self.report_drops()?;
        }
        let slot = match self.try_slot() {
            Some(s) => Some(s),
            None if self.policy.backpressure == "block" => {
                self.wake();
                loop {
                    match self.free.recv_timeout(Duration::from_millis(1)) {
                        Ok(s) => break Some(s),
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => self.wake(),
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                            return Err(SinkError(format!("sink-{} thread ended", self.name)));
                        }
                    }
                }
            }
            None => None,
        };
        match slot {
            Some(mut s) => {
                s.copy_from(rec);
                self.queue(s)?;
            }
            None => self.note_dropped(rec, "drop_newest"),
        }
        self.take_error()
    }

    fn tick(&mut self, _now_ns: i64) -> Result<(), SinkError> {
        if self.spool.is_some() {
            self.drain_spool()?;
        }
        if !self.drops.is_empty() {
            self.report_drops()?;
        }
        if self.tx.as_ref().is_some_and(|t| !t.is_empty()) {
            self.wake();
        }
        self.take_error()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        // What did not fit stays spooled for the next run.
        if let Some(s) = self.spool.as_mut() {
            if let Some(r) = self.held.take() {
                s.unpop(&r)
                    .map_err(|e| SinkError(format!("{} spool: {e}", self.name)))?;
            }
            if !s.is_empty() {
                s.flush()
                    .map_err(|e| SinkError(format!("{} spool: {e}", self.name)))?;
                log::warn!(
                    "event=sink_spool_kept sink={} path={} bytes={} note=\"written first by the next run\"",
                    self.name,
                    s.path().display(),
                    s.len()
                );
            }
        }
        let _ = self.report_drops();
        // Closing the queue tells the thread to write the rest and close the sink.
        self.tx = None;
        self.wake();
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        let r = match self.done.recv_timeout(CLOSE_WAIT) {
            Ok(r) => r,
            Err(_) => {
                return Err(SinkError(format!(
                    "sink {} did not finish within {CLOSE_WAIT:?}",
                    self.name
                )));
            }
        };
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| SinkError(format!("sink-{} thread panicked", self.name)))?;
        }
        r
    }
}
