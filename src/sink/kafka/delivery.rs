//! Delivery accounting: every record is acknowledged, retried by us, or counted as failed with its
//! error, topic and key. Callbacks run inside `poll` on the publisher thread.
//!
//! librdkafka retries on its own (idempotently) until `message.timeout.ms`. A message it gives up on
//! with a retriable error is copied into [`Retry`] (allocation only on this failure path) and
//! re-enqueued by the sink with exponential backoff until `retry_deadline` from its first failure.
//! Non-retriable errors (too large, not authorized, invalid) are counted and logged at once.
//!
//! The copies are bounded by bytes (`retry_max_kbytes`): past the bound, `drop_newest` gives the
//! new failure up at once, `block` keeps it and makes the sink refuse new records until the queue
//! is back under the bound (the publisher waits, the rings fill, TCP pushes back). Every record
//! given up is handed to the sink ([`Delivery::take_given_up`]) to be announced as a `gap`.

use crate::clock::realtime_ns;
use crate::metrics::LogThrottle;
use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Opaque of a first attempt: its enqueue time (ns, < 2^63). Re-enqueued messages set this bit and
/// carry their retry id in the low bits.
pub const RETRY_FLAG: usize = 1 << 63;

/// A message librdkafka gave up on, waiting to be re-enqueued.
#[derive(Debug, Clone)]
pub struct Retry {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Record headers (`format: raw`), kept for the re-enqueue.
    pub headers: Vec<(String, Vec<u8>)>,
    pub first_failure_ns: i64,
    pub attempts: u32,
    pub next_at_ns: i64,
    pub last_error: String,
}

/// A record the sink will not deliver: announced as a `gap` with `reason`.
#[derive(Debug)]
pub struct GivenUp {
    pub reason: &'static str,
    pub payload: Vec<u8>,
}

/// Counters and state shared between the producer's callbacks and the sink.
pub struct Delivery {
    /// Delivery reports served (one per record, whatever the outcome): the sink polls until
    /// this stops moving.
    pub reports: AtomicU64,
    pub acked: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    pub retried: Arc<AtomicU64>,
    pub queue_messages: Arc<AtomicI64>,
    pub queue_bytes: Arc<AtomicI64>,
    pub batch_avg_bytes: Arc<AtomicI64>,
    /// Messages transmitted to brokers, retransmissions included (librdkafka statistics); minus
    /// `acked` once everything is acknowledged, this is librdkafka's own retry count.
    pub transmitted: Arc<AtomicU64>,
    /// Produce -> acknowledgement latency, microseconds.
    pub latency_us: Arc<Mutex<Option<Histogram<u64>>>>,
    /// Waiting for their backoff to pass.
    pub retries: Mutex<VecDeque<Retry>>,
    /// Re-enqueued and in flight, by retry id.
    pub in_flight_retries: Mutex<HashMap<usize, Retry>>,
    pub retry_deadline_ns: i64,
    pub backoff_ns: i64,
    pub backoff_max_ns: i64,
    /// Payload bytes held in `retries` and `in_flight_retries`.
    pub retry_bytes: AtomicU64,
    /// Bound on `retry_bytes`.
    pub retry_max_bytes: u64,
    /// `backpressure: drop_newest`: failures past the bound are given up at once.
    pub drop_newest: bool,
    /// Records given up since the sink last looked, for its `gap` events.
    pub given_up: Mutex<Vec<GivenUp>>,
    /// Set by the error callback when librdkafka raises a fatal error (the producer is unusable).
    pub fatal: std::sync::atomic::AtomicBool,
    /// Incremented whenever librdkafka reports all brokers down (readiness reacts at once).
    pub all_down_events: Arc<AtomicU64>,
    /// Generation of the current producer (incremented by each reset).
    pub generation: AtomicU64,
    /// Why the next failure is given up (set while a producer reset purges its queues).
    pub reset_in_progress: std::sync::atomic::AtomicBool,
    failed_log: Mutex<LogThrottle>,
    error_log: Mutex<LogThrottle>,
}

impl Delivery {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        acked: Arc<AtomicU64>,
        failed: Arc<AtomicU64>,
        retried: Arc<AtomicU64>,
        queue_messages: Arc<AtomicI64>,
        queue_bytes: Arc<AtomicI64>,
        batch_avg_bytes: Arc<AtomicI64>,
        transmitted: Arc<AtomicU64>,
        retry_deadline_ns: i64,
        backoff_ns: i64,
        backoff_max_ns: i64,
        retry_max_bytes: u64,
        drop_newest: bool,
    ) -> Delivery {
        Delivery {
            reports: AtomicU64::new(0),
            acked,
            failed,
            retried,
            queue_messages,
            queue_bytes,
            batch_avg_bytes,
            transmitted,
            latency_us: Arc::new(Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).ok(),
            )),
            retries: Mutex::new(VecDeque::new()),
            in_flight_retries: Mutex::new(HashMap::new()),
            retry_deadline_ns,
            backoff_ns,
            backoff_max_ns,
            retry_bytes: AtomicU64::new(0),
            retry_max_bytes: retry_max_bytes.max(1),
            drop_newest,
            given_up: Mutex::new(Vec::new()),
            fatal: std::sync::atomic::AtomicBool::new(false),
            all_down_events: Arc::new(AtomicU64::new(0)),
            generation: AtomicU64::new(0),
            reset_in_progress: std::sync::atomic::AtomicBool::new(false),
            failed_log: Mutex::new(LogThrottle::default()),
            error_log: Mutex::new(LogThrottle::default()),
        }
    }

    /// Messages waiting in our retry queue or re-enqueued and not yet acknowledged.
    pub fn pending_retries(&self) -> usize {
        self.retries.lock().map(|r| r.len()).unwrap_or(0)
            + self.in_flight_retries.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// True while the retry copies are at or over their byte bound (`block`: take no new record).
    pub fn retries_full(&self) -> bool {
        self.retry_bytes.load(Ordering::Relaxed) >= self.retry_max_bytes
    }

    /// Records given up since the last call.
    pub fn take_given_up(&self) -> Vec<GivenUp> {
        match self.given_up.lock() {
            Ok(mut g) if !g.is_empty() => std::mem::take(&mut *g),
            _ => Vec::new(),
        }
    }

    fn reason(&self, default: &'static str) -> &'static str {
        if self.reset_in_progress.load(Ordering::Relaxed) {
            "sink_reset"
        } else {
            default
        }
    }

    fn give_up(&self, r: Retry, why: &str, reason: &'static str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if self.failed_log.lock().map(|mut l| l.hit()).unwrap_or(true) {
            log::error!(
                "event=kafka_delivery_failed topic={} key={} attempts={} reason=\"{why}\" error=\"{}\"",
                r.topic,
                r.key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default(),
                r.attempts,
                r.last_error
            );
        }
        if let Ok(mut g) = self.given_up.lock() {
            g.push(GivenUp {
                reason,
                payload: r.payload,
            });
        }
    }

    fn schedule(&self, mut r: Retry, now: i64) {
        if now - r.first_failure_ns >= self.retry_deadline_ns {
            let reason = self.reason("sink_failed");
            self.give_up(r, "retry deadline passed", reason);
            return;
        }
        let size = r.payload.len() as u64;
        if self.drop_newest
            && self.retry_bytes.load(Ordering::Relaxed) + size > self.retry_max_bytes
        {
            let reason = self.reason("sink_dropped");
            self.give_up(r, "retry queue full (retry_max_kbytes)", reason);
            return;
        }
        let exp = self
            .backoff_ns
            .saturating_mul(1i64 << r.attempts.min(30))
            .min(self.backoff_max_ns);
        r.next_at_ns = now + exp;
        if let Ok(mut q) = self.retries.lock() {
            self.retry_bytes.fetch_add(size, Ordering::Relaxed);
            q.push_back(r);
        }
    }

    /// Puts retries back at the head of the queue, keeping their order.
    pub fn requeue_front(&self, rs: impl DoubleEndedIterator<Item = Retry>) {
        if let Ok(mut q) = self.retries.lock() {
            for r in rs.rev() {
                q.push_front(r);
            }
        }
    }

    /// A retry copy left the retry bookkeeping (acknowledged, or given up).
    pub fn release(&self, r: &Retry) {
        self.retry_bytes
            .fetch_sub(r.payload.len() as u64, Ordering::Relaxed);
    }
}

/// Errors that retrying cannot fix.
pub fn is_retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    !matches!(
        e.rdkafka_error_code(),
        Some(
            MessageSizeTooLarge
                | InvalidMessage
                | InvalidMessageSize
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidTopic
                | MessageBatchTooLarge
                | InvalidRecord
                | UnsupportedVersion
                | Authentication,
        )
    )
}

/// The producer context: delivery reports, statistics, errors. `.1` is the producer's
/// generation: a replaced producer being destroyed may still report a fatal error, which must
/// not condemn its successor.
pub struct Ctx(pub Arc<Delivery>, pub u64);

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        let d = &self.0;
        d.queue_messages.store(s.msg_cnt as i64, Ordering::Relaxed);
        d.queue_bytes.store(s.msg_size as i64, Ordering::Relaxed);
        let (mut sum, mut n) = (0i64, 0i64);
        for t in s.topics.values() {
            if t.batchsize.avg > 0 {
                sum += t.batchsize.avg;
                n += 1;
            }
        }
        if n > 0 {
            d.batch_avg_bytes.store(sum / n, Ordering::Relaxed);
        }
        let tx: u64 = s
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .filter(|(p, _)| **p >= 0)
            .map(|(_, tp)| tp.txmsgs)
            .sum();
        d.transmitted.store(tx, Ordering::Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal)
                if self.1 == self.0.generation.load(Ordering::Relaxed) =>
            {
                self.0.fatal.store(true, Ordering::Relaxed);
                log::error!("event=kafka_fatal_error reason=\"{reason}\"");
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.0.all_down_events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if self.0.error_log.lock().map(|mut l| l.hit()).unwrap_or(true) {
            log::warn!("event=kafka_client_error error=\"{error}\" reason=\"{reason}\"");
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        use rdkafka::config::RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => {
                log::error!("event=librdkafka fac={fac} msg=\"{msg}\"")
            }
            Warning => log::warn!("event=librdkafka fac={fac} msg=\"{msg}\""),
            Notice | Info => log::info!("event=librdkafka fac={fac} msg=\"{msg}\""),
            Debug => log::debug!("event=librdkafka fac={fac} msg=\"{msg}\""),
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let d = &self.0;
        d.reports.fetch_add(1, Ordering::Relaxed);
        let now = realtime_ns();
        let retry = if opaque & RETRY_FLAG != 0 {
            d.in_flight_retries
                .lock()
                .ok()
                .and_then(|mut m| m.remove(&(opaque & !RETRY_FLAG)))
        } else {
            None
        };
        if let Some(r) = &retry {
            d.release(r);
        }
        match result {
            Ok(_) => {
                d.acked.fetch_add(1, Ordering::Relaxed);
                if retry.is_none() {
                    let us = ((now - opaque as i64) / 1_000).max(1) as u64;
                    // Never wait for the exporter: skip the sample if it is reading.
                    if let Ok(mut h) = d.latency_us.try_lock()
                        && let Some(h) = h.as_mut()
                    {
                        let _ = h.record(us.min(600_000_000));
                    }
                }
            }
            Err((e, msg)) => {
                let mut r = retry.unwrap_or_else(|| Retry {
                    topic: msg.topic().to_string(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: msg
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| (x.key.to_string(), x.value.unwrap_or(&[]).to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    first_failure_ns: now,
                    attempts: 0,
                    next_at_ns: now,
                    last_error: String::new(),
                });
                r.attempts += 1;
                r.last_error = e.to_string();
                if is_retriable(e) {
                    d.schedule(r, now);
                } else {
                    d.give_up(r, "not retriable", "sink_failed");
                }
            }
        }
    }
}
