//! `sinks.kafka`: records to Kafka through librdkafka's `BaseProducer`, driven from the publisher
//! thread (no async runtime): `send` never blocks, `poll(0)` runs the delivery callbacks on every
//! tick. When librdkafka's bounded queue is full the publisher waits, polling, instead of dropping:
//! the pressure reaches the rings and then the readers' sockets.
//!
//! Guarantees: idempotent producer with `acks=all` by default (librdkafka's retries cannot
//! duplicate); messages librdkafka gives up on are re-enqueued by us until `retry_deadline`
//! ([`delivery`]); everything still undelivered at shutdown after `flush_timeout` is reported and
//! makes the process exit non-zero. A separate thread checks reachability with its own client
//! (a metadata request every `health_interval`, and at once when librdkafka reports every broker
//! down), for `/readyz`.
//!
//! Recovery: a producer that hits a fatal error (idempotence: `UNKNOWN_PRODUCER_ID`,
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`, a fenced epoch), or that gets no acknowledgement for
//! `stall_timeout` while records are in flight and the brokers answer (a cluster replaced without
//! its state, a re-created topic), is replaced: its queues are purged into our retry queue, a new
//! producer is created and everything not acknowledged is re-sent. Records that cannot be re-sent
//! are announced as `gap` events (reason `sink_reset`). A re-send after a purge may duplicate a
//! record the old broker had in fact written (at-least-once across a reset).

pub mod config;
pub mod delivery;
pub mod topics;

use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::clock::realtime_ns;
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::event::EventKind;
use crate::metrics::{Metrics, SinkHealth};
use crate::setting::ConfigError;
use config::{KafkaFormat, KafkaSettings};
use delivery::{Ctx, Delivery, RETRY_FLAG};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use topics::Topics;

/// Registry entry.
pub struct Factory;
/// The instance listed in [`crate::sink::REGISTRY`].
pub static FACTORY: Factory = Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn plan(&self, value: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError> {
        Ok(
            KafkaSettings::from_section(value)?
                .map(|s| Box::new(KafkaPlan(s)) as Box<dyn SinkPlan>),
        )
    }
}

#[derive(Debug)]
struct KafkaPlan(KafkaSettings);

impl SinkPlan for KafkaPlan {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn formats(&self) -> Formats {
        match self.0.format {
            KafkaFormat::Protobuf => Formats::PROTOBUF,
            KafkaFormat::Json => Formats::JSON,
            // The exchange's frame only; keys and topics come from the record's names.
            KafkaFormat::Raw => Formats {
                json: false,
                protobuf: false,
                raw: true,
            },
        }
    }

    fn effective(&self) -> serde_yaml::Value {
        serde_yaml::to_value(&self.0.raw).unwrap_or(serde_yaml::Value::Null)
    }

    fn start(&self, metrics: &Arc<Metrics>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(KafkaSink::start(&self.0, metrics)?))
    }

    fn start_for(
        &self,
        metrics: &Arc<Metrics>,
        subscribed: &super::Subscribed,
    ) -> Result<Box<dyn Sink>, SinkError> {
        let mut sink = KafkaSink::start(&self.0, metrics)?;
        sink.topics.restrict(subscribed.clone(), metrics);
        Ok(Box::new(sink))
    }
}

/// Labels of this sink's metrics.
const L: &[(&str, &str)] = &[("sink", "kafka")];

/// The running sink.
pub struct KafkaSink {
    settings: KafkaSettings,
    producer: BaseProducer<Ctx>,
    delivery: Arc<Delivery>,
    topics: Topics,
    format: KafkaFormat,
    flush_timeout: Duration,
    health: SinkHealth,
    stop_health: Arc<AtomicBool>,
    enqueued: Arc<AtomicU64>,
    queue_full_waits: Arc<AtomicU64>,
    next_retry_id: usize,
    dropped: Arc<AtomicU64>,
    drop_log: crate::metrics::LogThrottle,
    /// Lost ranges still to be announced as `gap` events.
    drops: crate::sink::drops::Drops,
    /// Acknowledged count at the last progress check, and since when nothing moved while records
    /// were in flight and the brokers answered (0: not stalled).
    last_acked: u64,
    stalled_since_ns: i64,
    last_watch_ns: i64,
    last_reset_try_ns: i64,
    resets: Arc<AtomicU64>,
    /// Stall resets since acknowledgements last moved: each waits twice as long as the one
    /// before (a topic that cannot be created would otherwise reset every `stall_timeout`).
    stall_resets_in_a_row: u32,
    /// `backpressure: spool`: what librdkafka's queue could not take, in order, and the record
    /// being moved from it to the producer (its buffers reused).
    spool: Option<crate::sink::spool::RecordSpool>,
    unspooled: Option<Record>,
    /// `unspooled` holds a record popped from the spool that librdkafka did not take yet.
    held: bool,
}

impl KafkaSink {
    /// Creates the producer, checks the brokers (fatal when `required`), starts the health thread.
    pub fn start(s: &KafkaSettings, metrics: &Arc<Metrics>) -> Result<KafkaSink, SinkError> {
        let delivery = Arc::new(Delivery::new(
            metrics.counter(
                "kafka_acked_total",
                "Records acknowledged by the brokers.",
                L,
            ),
            metrics.counter(
                "kafka_failed_total",
                "Records given up on (not retriable, or retry deadline passed).",
                L,
            ),
            metrics.counter(
                "kafka_retries_total",
                "Records re-enqueued by us after librdkafka gave up on them.",
                L,
            ),
            metrics.gauge(
                "kafka_queue_messages",
                "Messages in librdkafka's queues.",
                L,
            ),
            metrics.gauge("kafka_queue_bytes", "Bytes in librdkafka's queues.", L),
            metrics.gauge(
                "kafka_batch_size_avg_bytes",
                "Average produce batch size.",
                L,
            ),
            metrics.counter(
                "kafka_transmitted_messages_total",
                "Messages sent to brokers including librdkafka's own retransmissions (statistics).",
                L,
            ),
            s.retry_deadline.as_nanos() as i64,
            s.retry_backoff.as_nanos() as i64,
            s.retry_backoff_max.as_nanos() as i64,
            u64::from(s.raw.retry_max_kbytes) * 1024,
            s.raw.backpressure == "drop_newest",
        ));
        let producer = new_producer(s, &delivery, 0)?;
        let health = metrics.sink_health("kafka");
        let checker: BaseProducer<HealthCtx> = s
            .health_client_config()
            .create_with_context(HealthCtx(delivery.all_down_events.clone()))
            .map_err(|e| SinkError(format!("cannot create health client: {e}")))?;
        let reachable = check(&checker, s.metadata_timeout);
        if let Err(e) = &reachable {
            if s.raw.required {
                return Err(SinkError(format!(
                    "brokers {} unreachable within {:?} (sinks.kafka.required is true): {e}",
                    s.raw.brokers, s.metadata_timeout
                )));
            }
            log::warn!(
                "event=kafka_unreachable brokers={} error=\"{e}\" note=\"starting anyway; records queue until it is back\"",
                s.raw.brokers
            );
        }
        health.reachable.store(reachable.is_ok(), Ordering::Relaxed);
        let stop_health = Arc::new(AtomicBool::new(false));
        spawn_health(
            checker,
            health.clone(),
            delivery.all_down_events.clone(),
            s.metadata_timeout,
            s.health_interval,
            stop_health.clone(),
        );
        metrics.latency.add(
            &[("stage", "sink_to_ack"), ("sink", "kafka")],
            1e-6,
            delivery.latency_us.clone(),
        );
        metrics
            .publish_latency
            .add(&[("sink", "kafka")], 1e-6, delivery.latency_us.clone());
        log::info!(
            "event=kafka_started brokers={} topic={} format={:?} acks={} idempotence={} compression={}",
            s.raw.brokers,
            s.raw.topic,
            s.format,
            s.raw.acks,
            s.raw.idempotence,
            s.raw.compression
        );
        let gap_counter = |reason: &'static str| {
            (
                reason,
                metrics.counter(
                    "gap_events_total",
                    "Gap events emitted (data of a stream may be missing), by reason.",
                    &[("reason", reason)],
                ),
            )
        };
        let dropped = health.dropped.clone();
        let spool = if s.raw.backpressure == "spool" {
            let sp = crate::sink::spool::RecordSpool::open(&s.raw.spool, "kafka")
                .map_err(|e| SinkError(format!("sinks.kafka.spool.path: {e}")))?;
            if !sp.is_empty() {
                log::warn!(
                    "event=kafka_spool_replay path={} bytes={} note=\"left by an earlier run\"",
                    sp.path().display(),
                    sp.len()
                );
            }
            health.spool_bytes.store(sp.len() as i64, Ordering::Relaxed);
            Some(sp)
        } else {
            None
        };
        Ok(KafkaSink {
            spool,
            unspooled: Some(Record::with_capacity(512)),
            held: false,
            settings: s.clone(),
            producer,
            delivery,
            topics: Topics::new(&s.raw),
            format: s.format,
            flush_timeout: s.flush_timeout,
            health,
            stop_health,
            enqueued: metrics.counter("kafka_enqueued_total", "Records handed to librdkafka.", L),
            queue_full_waits: metrics.counter(
                "kafka_queue_full_waits_total",
                "Times the publisher waited because librdkafka's queue was full.",
                L,
            ),
            next_retry_id: 0,
            dropped: metrics.counter_alias(
                "kafka_dropped_total",
                "Records dropped because librdkafka's queue was full (backpressure: drop_newest, or spool past spool.max_bytes).",
                L,
                &dropped,
            ),
            drop_log: crate::metrics::LogThrottle::default(),
            drops: crate::sink::drops::Drops::counted(
                "kafka",
                vec![
                    gap_counter("sink_dropped"),
                    gap_counter("sink_reset"),
                    gap_counter("sink_failed"),
                ],
            ),
            last_acked: 0,
            stalled_since_ns: 0,
            last_watch_ns: 0,
            last_reset_try_ns: 0,
            stall_resets_in_a_row: 0,
            resets: metrics.counter(
                "kafka_producer_resets_total",
                "Producers replaced after a fatal error or a stall with the brokers reachable.",
                L,
            ),
        })
    }

    /// Replaces a producer that hit a fatal error or stalls while the brokers answer: purges its
    /// queues into the retry queue (their delivery reports copy each record), creates a new one
    /// and lets `run_retries` re-send everything.
    fn reset_producer(&mut self, why: &str) {
        let in_flight = self.producer.in_flight_count();
        log::warn!(
            "event=kafka_producer_reset reason=\"{why}\" in_flight={in_flight} pending_retries={} note=\"re-sending what was not acknowledged\"",
            self.delivery.pending_retries()
        );
        self.resets.fetch_add(1, Ordering::Relaxed);
        let generation = self.delivery.generation.load(Ordering::Relaxed) + 1;
        let fresh = match new_producer(&self.settings, &self.delivery, generation) {
            Ok(p) => p,
            Err(e) => {
                // Tried again at the next progress check (fatal resets at most every 100 ms).
                log::error!("event=kafka_producer_reset_failed error=\"{e}\"");
                return;
            }
        };
        self.delivery
            .generation
            .store(generation, Ordering::Relaxed);
        let old = std::mem::replace(&mut self.producer, fresh);
        self.delivery
            .reset_in_progress
            .store(true, Ordering::Relaxed);
        old.purge(PurgeConfig::default().queue().inflight());
        // The purge's delivery reports are ready at once; serve them (bounded) so every record
        // is copied into the retry queue before the old producer goes.
        let t0 = Instant::now();
        while old.in_flight_count() > 0 && t0.elapsed() < Duration::from_secs(2) {
            old.poll(Duration::from_millis(10));
        }
        self.delivery
            .reset_in_progress
            .store(false, Ordering::Relaxed);
        // Re-enqueued copies that were in flight on the old producer are re-sent at once: their
        // reports can no longer arrive.
        let orphans: Vec<delivery::Retry> = match self.delivery.in_flight_retries.lock() {
            Ok(mut m) => m.drain().map(|(_, r)| r).collect(),
            Err(_) => Vec::new(),
        };
        self.delivery
            .requeue_front(orphans.into_iter().map(|mut r| {
                r.next_at_ns = 0;
                r
            }));
        self.delivery.fatal.store(false, Ordering::Relaxed);
        self.last_acked = self.delivery.acked.load(Ordering::Relaxed);
        self.stalled_since_ns = 0;
        // Destroying a wedged librdkafka handle can block: not on the publisher thread.
        let _ = std::thread::Builder::new()
            .name("kafka-retire".into())
            .spawn(move || drop(old));
    }

    /// Fatal error or no progress with the brokers reachable: reset (checked every 100 ms).
    fn watch_progress(&mut self, now: i64) {
        let fatal = self.delivery.fatal.load(Ordering::Relaxed);
        // A fatal error is acted on at once, unless a reset was just tried (and failed).
        let gate = if fatal {
            self.last_reset_try_ns
        } else {
            self.last_watch_ns
        };
        if now - gate < 100_000_000 {
            return;
        }
        self.last_watch_ns = now;
        let in_flight = self.producer.in_flight_count().max(0) as i64;
        self.health.queue_depth.store(
            in_flight + self.delivery.pending_retries() as i64,
            Ordering::Relaxed,
        );
        if fatal {
            self.last_reset_try_ns = now;
            let why = self
                .producer
                .client()
                .fatal_error()
                .map(|(code, msg)| format!("fatal error {code:?}: {msg}"))
                .unwrap_or_else(|| "fatal error".into());
            self.reset_producer(&why);
            return;
        }
        let acked = self.delivery.acked.load(Ordering::Relaxed);
        let reachable = self.health.reachable.load(Ordering::Relaxed);
        if acked != self.last_acked {
            self.stall_resets_in_a_row = 0;
        }
        if acked != self.last_acked || in_flight == 0 || !reachable {
            self.last_acked = acked;
            self.stalled_since_ns = 0;
            return;
        }
        let wait = (self.settings.stall_timeout.as_nanos() as i64)
            .saturating_mul(1 << self.stall_resets_in_a_row.min(6));
        if self.stalled_since_ns == 0 {
            self.stalled_since_ns = now;
        } else if now - self.stalled_since_ns >= wait {
            let why = format!(
                "no acknowledgement for {:?} with {in_flight} record(s) in flight and the brokers reachable",
                Duration::from_nanos(wait as u64)
            );
            self.reset_producer(&why);
            self.stall_resets_in_a_row += 1;
        }
    }

    /// Everything the sink does besides taking records: replace a wedged producer, turn given-up
    /// records into `gap` notes and announce them, re-enqueue due retries.
    fn housekeep(&mut self, now: i64) {
        self.watch_progress(now);
        self.collect_given_up();
        self.report_drops();
        self.run_retries(now);
    }

    /// Records given up by the delivery reports become `gap` notes.
    fn collect_given_up(&mut self) {
        let json = matches!(self.format, KafkaFormat::Json);
        for g in self.delivery.take_given_up() {
            self.drops.note_payload(g.reason, json, &g.payload);
        }
    }

    /// Re-enqueues retries whose backoff has passed.
    fn run_retries(&mut self, now: i64) {
        let due: Vec<delivery::Retry> = match self.delivery.retries.lock() {
            Ok(mut q) if q.front().is_some_and(|r| r.next_at_ns <= now) => {
                let n = q.iter().take_while(|r| r.next_at_ns <= now).count();
                q.drain(..n).collect()
            }
            _ => return,
        };
        let mut due = due.into_iter();
        while let Some(r) = due.next() {
            if self.delivery.fatal.load(Ordering::Relaxed) {
                // The producer is unusable: keep these, in order, for its replacement.
                self.delivery.requeue_front(std::iter::once(r).chain(due));
                return;
            }
            self.next_retry_id = (self.next_retry_id + 1) & !RETRY_FLAG;
            let id = self.next_retry_id;
            self.delivery.retried.fetch_add(1, Ordering::Relaxed);
            let sent = produce(
                &self.producer,
                &self.enqueued,
                &self.queue_full_waits,
                &r.topic,
                r.key.as_deref(),
                &r.payload,
                headers_of(&r.headers),
                id | RETRY_FLAG,
                true,
            );
            match sent {
                Ok(_) => {
                    if let Ok(mut m) = self.delivery.in_flight_retries.lock() {
                        m.insert(id, r);
                    }
                }
                Err(e) if is_fatal(&e) => {
                    self.delivery.fatal.store(true, Ordering::Relaxed);
                    self.delivery.requeue_front(std::iter::once(r).chain(due));
                    return;
                }
                Err(e) => {
                    self.delivery.failed.fetch_add(1, Ordering::Relaxed);
                    self.delivery.release(&r);
                    log::error!(
                        "event=kafka_delivery_failed topic={} error=\"{e}\"",
                        r.topic
                    );
                    self.drops.note_payload(
                        "sink_failed",
                        matches!(self.format, KafkaFormat::Json),
                        &r.payload,
                    );
                }
            }
        }
    }
}

/// Enqueues one message. While librdkafka's queue is full it waits, polling so delivery reports
/// keep flowing (`block`: backpressure instead of loss), or gives up at once (`Ok(false)`, the
/// `drop_newest` policy). `Ok(true)` when enqueued.
#[allow(clippy::too_many_arguments)]
fn produce(
    producer: &BaseProducer<Ctx>,
    enqueued: &AtomicU64,
    waits: &AtomicU64,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
    opaque: usize,
    block: bool,
) -> Result<bool, KafkaError> {
    let mut rec = BaseRecord::with_opaque_to(topic, opaque).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(h) = headers {
        rec = rec.headers(h);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => {
                enqueued.fetch_add(1, Ordering::Relaxed);
                return Ok(true);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if !block => {
                return Ok(false);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                waits.fetch_add(1, Ordering::Relaxed);
                producer.poll(Duration::from_millis(1));
                rec = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// `format: raw`: the exchange's payload in a frame, byte for byte. A Binance combined-stream
/// frame (`{"stream":"<name>","data":<payload>}`) gives its `data` (Binance's own event shape)
/// and its stream name; any other frame is the payload whole.
pub fn raw_payload(frame: &[u8]) -> (&[u8], &[u8]) {
    const HEAD: &[u8] = b"{\"stream\":\"";
    const DATA: &[u8] = b"\",\"data\":";
    if let Some(rest) = frame.strip_prefix(HEAD)
        && let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\')
        && rest[end..].starts_with(DATA)
        && let Some(body) = rest[end + DATA.len()..].strip_suffix(b"}")
    {
        return (body, &rest[..end]);
    }
    (frame, b"")
}

/// Headers of a retry copy, as the first attempt had them.
fn headers_of(kept: &[(String, Vec<u8>)]) -> Option<OwnedHeaders> {
    if kept.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new_with_capacity(kept.len());
    for (k, v) in kept {
        h = h.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    Some(h)
}

/// A new producer on the shared delivery state.
fn new_producer(
    s: &KafkaSettings,
    d: &Arc<Delivery>,
    generation: u64,
) -> Result<BaseProducer<Ctx>, SinkError> {
    s.client_config()
        .create_with_context(Ctx(d.clone(), generation))
        .map_err(|e| SinkError(format!("cannot create producer: {e}")))
}

/// The reachability checker's context: counts "all brokers down" reports.
struct HealthCtx(Arc<AtomicU64>);

impl ClientContext for HealthCtx {
    fn error(&self, error: KafkaError, _reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _msg: &str) {
        // The producer logs the same broker events; one copy is enough.
    }
}

impl rdkafka::producer::ProducerContext for HealthCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// One metadata request: reachable or why not.
fn check<C: rdkafka::producer::ProducerContext>(
    p: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), String> {
    p.client()
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Readiness that follows the brokers: a metadata check every `health_interval`, and one at once
/// when librdkafka (producer or checker) reports every broker down; the check decides, so a
/// broker being reconnected to does not make `/readyz` flap. A check takes at most one interval,
/// hence a change shows within two.
fn spawn_health(
    checker: BaseProducer<HealthCtx>,
    health: SinkHealth,
    down_events: Arc<AtomicU64>,
    timeout: Duration,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let _ = std::thread::Builder::new()
        .name("kafka-health".into())
        .spawn(move || {
            let timeout = timeout.min(interval);
            let mut last = health.reachable.load(Ordering::Relaxed);
            let mut seen_down = down_events.load(Ordering::Relaxed);
            let mut next_check = Instant::now();
            let set = |ok: bool, last: &mut bool, why: &str| {
                if ok {
                    health.reachable.store(true, Ordering::Relaxed);
                } else {
                    health.down(why);
                }
                if ok != *last {
                    if ok {
                        log::info!("event=kafka_reachable");
                    } else {
                        log::warn!("event=kafka_unreachable error=\"{why}\"");
                    }
                    *last = ok;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                checker.poll(Duration::ZERO);
                let downs = down_events.load(Ordering::Relaxed);
                if downs != seen_down {
                    // Confirm with a check of our own: librdkafka also says "all down" while a
                    // broker that just came back is still being reconnected to.
                    seen_down = downs;
                    next_check = Instant::now();
                }
                if Instant::now() >= next_check {
                    let t0 = Instant::now();
                    let r = check(&checker, timeout);
                    checker.poll(Duration::ZERO);
                    match r {
                        Ok(()) => set(true, &mut last, ""),
                        Err(e) => set(false, &mut last, &e),
                    }
                    next_check = t0 + interval;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
}

impl KafkaSink {
    /// The bytes produced for `rec` in this sink's format.
    fn payload<'r>(&self, rec: &'r Record) -> &'r [u8] {
        match self.format {
            KafkaFormat::Protobuf => &rec.proto,
            KafkaFormat::Raw => raw_payload(&rec.raw).0,
            // The JSON Lines object without its newline.
            KafkaFormat::Json => rec.json.strip_suffix(b"\n").unwrap_or(&rec.json),
        }
    }

    /// Counts, remembers (for its `gap`) and logs a record this sink loses.
    fn note_dropped(&mut self, rec: &Record, policy: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.drops.note(rec);
        if self.drop_log.hit() {
            log::warn!(
                "event=kafka_dropped policy={policy} type={} symbol={} count={}",
                rec.kind.as_str(),
                rec.symbol,
                self.drop_log.count()
            );
        }
    }

    /// `backpressure: spool`: produce without waiting; behind a non-empty spool, or when
    /// librdkafka's queue (or our retry copies) is full, the record goes to the spool.
    fn write_spooling(&mut self, rec: &Record) -> Result<(), SinkError> {
        self.drain_spool()?;
        let behind = self.spooling() || self.delivery.retries_full();
        if !behind {
            let mut sent = self.send_record(rec, self.payload(rec), false);
            if let Ok(false) = sent
                && self.serve_reports() > 0
            {
                sent = self.send_record(rec, self.payload(rec), false);
            }
            match sent {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if is_fatal(&e) => {
                    self.delivery.fatal.store(true, Ordering::Relaxed);
                    self.watch_progress(realtime_ns());
                }
                Err(e) => {
                    self.delivery.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(SinkError(format!(
                        "produce {} of {}: {e}",
                        rec.kind.as_str(),
                        rec.symbol
                    )));
                }
            }
        }
        let kept = match self.spool.as_mut() {
            Some(sp) => sp
                .push(rec)
                .map_err(|e| SinkError(format!("kafka spool: {e}")))?,
            None => false,
        };
        if !kept {
            self.note_dropped(rec, "spool_full");
        }
        Ok(())
    }

    /// Moves spooled records, oldest first, to the producer while librdkafka takes them. The
    /// one librdkafka refused stays in hand (`held`) and goes first next time.
    fn drain_spool(&mut self) -> Result<(), SinkError> {
        let (Some(mut sp), Some(mut rec)) = (self.spool.take(), self.unspooled.take()) else {
            return Ok(());
        };
        let mut result = Ok(());
        while (self.held || !sp.is_empty()) && !self.delivery.retries_full() {
            if !self.held {
                match sp.pop(&mut rec) {
                    Ok(true) => self.held = true,
                    Ok(false) => break,
                    Err(e) => {
                        result = Err(SinkError(format!("kafka spool: {e}")));
                        break;
                    }
                }
            }
            match self.send_record(&rec, self.payload(&rec), false) {
                Ok(true) => self.held = false,
                // Full: room may be waiting in unserved delivery reports.
                Ok(false) if self.serve_reports() > 0 => {}
                Ok(false) => break,
                Err(e) if is_fatal(&e) => {
                    self.delivery.fatal.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    // Not retriable (e.g. too large): counted as failed, the rest goes on.
                    self.held = false;
                    self.delivery.failed.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "event=kafka_produce_failed type={} symbol={} error=\"{e}\" note=\"from the spool\"",
                        rec.kind.as_str(),
                        rec.symbol
                    );
                }
            }
        }
        self.health
            .spool_bytes
            .store(sp.len() as i64, Ordering::Relaxed);
        self.spool = Some(sp);
        self.unspooled = Some(rec);
        result
    }

    /// Serves every delivery report librdkafka has ready (one `poll` serves one event, a batch
    /// of reports); returns how many records they covered. Reports hold their records in
    /// librdkafka's queue count until served, so a sink that does not wait in `poll` must drain
    /// them or the queue looks full.
    fn serve_reports(&self) -> u64 {
        let start = self.delivery.reports.load(Ordering::Relaxed);
        let mut seen = start;
        for _ in 0..1024 {
            self.producer.poll(Duration::ZERO);
            let now = self.delivery.reports.load(Ordering::Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        seen - start
    }

    /// Records waiting in the spool, the one in hand included.
    fn spooling(&self) -> bool {
        self.held || self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Publishes a `gap` per stream with dropped records, as far as the queue has room.
    fn report_drops(&mut self) {
        // Only towards brokers that answer, and with room for a copy should it fail: a gap
        // announcement must not itself be lost to the outage it reports.
        if self.drops.is_empty()
            || self.format == KafkaFormat::Raw
            || !self.health.reachable.load(Ordering::Relaxed)
            || self.delivery.retries_full()
        {
            return;
        }
        let json = matches!(self.format, KafkaFormat::Json);
        let (producer, topics) = (&self.producer, &mut self.topics);
        let (enqueued, waits) = (&self.enqueued, &self.queue_full_waits);
        self.drops
            .report(json, |exchange, market, symbol, payload| {
                let (topic, key) = topics.resolve(exchange, market, symbol, EventKind::Gap);
                let opaque = realtime_ns().max(0) as usize & !RETRY_FLAG;
                let key = key.map(str::as_bytes);
                matches!(
                    produce(
                        producer, enqueued, waits, topic, key, payload, None, opaque, false
                    ),
                    Ok(true)
                )
            });
    }

    /// Hands one record to the producer under its topic and key (see [`produce`]).
    fn send_record(
        &mut self,
        rec: &Record,
        payload: &[u8],
        block: bool,
    ) -> Result<bool, KafkaError> {
        let (topic, key) = self
            .topics
            .resolve(rec.exchange, rec.market, &rec.symbol, rec.kind);
        let opaque = realtime_ns().max(0) as usize & !RETRY_FLAG;
        let headers = (self.format == KafkaFormat::Raw).then(|| {
            let mut ts = itoa::Buffer::new();
            let stream = raw_payload(&rec.raw).1;
            let h = OwnedHeaders::new_with_capacity(4)
                .insert(Header {
                    key: "receive_ts_ns",
                    value: Some(ts.format(rec.recv_ts_ns).as_bytes()),
                })
                .insert(Header {
                    key: "exchange",
                    value: Some(rec.exchange.as_bytes()),
                })
                .insert(Header {
                    key: "market",
                    value: Some(rec.market.as_bytes()),
                });
            if stream.is_empty() {
                h
            } else {
                h.insert(Header {
                    key: "stream",
                    value: Some(stream),
                })
            }
        });
        produce(
            &self.producer,
            &self.enqueued,
            &self.queue_full_waits,
            topic,
            key.map(str::as_bytes),
            payload,
            headers,
            opaque,
            block,
        )
    }
}

/// librdkafka's "the producer is unusable" error.
fn is_fatal(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn reports_publish_latency(&self) -> bool {
        true
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        if self.format == KafkaFormat::Raw && !rec.raw_first {
            // One message per exchange frame: the frame's other events, and events of our own
            // (gaps, book snapshots), have no payload of their own.
            return Ok(());
        }
        if self.spool.is_some() {
            return self.write_spooling(rec);
        }
        if self.delivery.retries_full() && !self.delivery.drop_newest {
            // `block`: the retry copies are at their bound; take nothing new until they drain.
            while self.delivery.retries_full() {
                self.queue_full_waits.fetch_add(1, Ordering::Relaxed);
                self.producer.poll(Duration::from_millis(1));
                self.housekeep(realtime_ns());
            }
        }
        let payload = self.payload(rec);
        let mut sent = self.send_record(rec, payload, !self.delivery.drop_newest);
        if let Err(e) = &sent
            && is_fatal(e)
        {
            // The producer is unusable: replace it and hand the record to the new one.
            self.delivery.fatal.store(true, Ordering::Relaxed);
            self.watch_progress(realtime_ns());
            sent = self.send_record(rec, payload, true);
        }
        if let Ok(false) = sent {
            self.note_dropped(rec, "drop_newest");
        }
        sent.map(|_| ()).map_err(|e| {
            self.delivery.failed.fetch_add(1, Ordering::Relaxed);
            SinkError(format!(
                "produce {} of {}: {e}",
                rec.kind.as_str(),
                rec.symbol
            ))
        })
    }

    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.serve_reports();
        self.housekeep(now_ns);
        self.drain_spool()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.flush_timeout;
        // The spool goes first, as far as the brokers take it before the deadline; what stays
        // is kept in the file and produced first by the next run.
        while self.spooling() && Instant::now() < deadline {
            self.drain_spool()?;
            self.producer.poll(Duration::from_millis(10));
            self.housekeep(realtime_ns());
        }
        if self.held
            && let (Some(sp), Some(rec)) = (self.spool.as_mut(), self.unspooled.as_ref())
        {
            // The record in hand goes back to the front (behind the rest only if its pop had
            // emptied the file and more came after it: then one record is out of order).
            sp.unpop(rec)
                .map_err(|e| SinkError(format!("kafka spool: {e}")))?;
            self.held = false;
        }
        if let Some(sp) = self.spool.as_mut()
            && !sp.is_empty()
        {
            sp.flush()
                .map_err(|e| SinkError(format!("kafka spool: {e}")))?;
            log::warn!(
                "event=kafka_spool_kept path={} bytes={} note=\"produced first by the next run\"",
                sp.path().display(),
                sp.len()
            );
        }
        self.collect_given_up();
        self.report_drops();
        // Flush in slices so due retries are re-enqueued (and a wedged producer replaced) while
        // we wait.
        loop {
            let _ = self.producer.flush(Duration::from_millis(100));
            self.housekeep(realtime_ns());
            let left = self.producer.in_flight_count() as usize + self.delivery.pending_retries();
            if left == 0 || Instant::now() >= deadline {
                break;
            }
        }
        self.producer.poll(Duration::ZERO);
        self.stop_health.store(true, Ordering::Relaxed);
        let in_flight = self.producer.in_flight_count().max(0) as usize;
        let retries = self.delivery.pending_retries();
        let acked = self.delivery.acked.load(Ordering::Relaxed);
        let failed = self.delivery.failed.load(Ordering::Relaxed);
        self.health
            .queue_depth
            .store((in_flight + retries) as i64, Ordering::Relaxed);
        log::info!(
            "event=kafka_closed acked={acked} failed={failed} undelivered={} enqueued={}",
            in_flight + retries,
            self.enqueued.load(Ordering::Relaxed)
        );
        if in_flight + retries > 0 || failed > 0 {
            return Err(SinkError(format!(
                "{} record(s) not delivered within flush_timeout {:?} ({in_flight} in librdkafka, {retries} awaiting retry), {failed} failed during the run",
                in_flight + retries,
                self.flush_timeout
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::raw_payload;

    #[test]
    fn raw_payload_is_the_data_of_a_combined_frame_byte_for_byte() {
        let f = br#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","b":[["1.0","2"]]}}"#;
        let (p, s) = raw_payload(f);
        assert_eq!(
            p,
            br#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","b":[["1.0","2"]]}"#
        );
        assert_eq!(s, b"btcusdt@depth");
        // Anything else is the payload whole (a single-stream frame, OKX, Deribit).
        for f in [
            &br#"{"e":"trade","s":"BTCUSDT"}"#[..],
            br#"{"arg":{"channel":"trades"},"data":[]}"#,
            br#"{"stream":"x","result":null}"#,
            br#"{"stream":"a\"b","data":{}}"#,
        ] {
            assert_eq!(raw_payload(f), (f, &b""[..]));
        }
    }
}
