//! `sinks.kafka`: records to Kafka through librdkafka's `BaseProducer`, driven from the publisher
//! thread (no async runtime): `send` never blocks, `poll(0)` runs the delivery callbacks on every
//! tick. When librdkafka's bounded queue is full the publisher waits, polling, instead of dropping:
//! the pressure reaches the rings and then the readers' sockets.
//!
//! Guarantees: idempotent producer with `acks=all` by default (librdkafka's retries cannot
//! duplicate); messages librdkafka gives up on are re-enqueued by us until `retry_deadline`
//! ([`delivery`]); everything still undelivered at shutdown after `flush_timeout` is reported and
//! makes the process exit non-zero. A separate thread checks reachability with a metadata request
//! every `health_interval` (`/readyz`).

pub mod config;
pub mod delivery;
pub mod drops;
pub mod topics;

use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::clock::realtime_ns;
use crate::config::ConfigError;
use crate::encode::Formats;
use crate::event::EventKind;
use crate::metrics::{Metrics, SinkHealth};
use crate::pipeline::record::Record;
use config::{KafkaFormat, KafkaSettings};
use delivery::{Ctx, Delivery, RETRY_FLAG};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
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
        }
    }

    fn effective(&self) -> serde_yaml::Value {
        serde_yaml::to_value(&self.0.raw).unwrap_or(serde_yaml::Value::Null)
    }

    fn start(&self, metrics: &Arc<Metrics>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(KafkaSink::start(&self.0, metrics)?))
    }
}

/// Labels of this sink's metrics.
const L: &[(&str, &str)] = &[("sink", "kafka")];

/// The running sink.
pub struct KafkaSink {
    producer: Arc<BaseProducer<Ctx>>,
    delivery: Arc<Delivery>,
    topics: Topics,
    format: KafkaFormat,
    flush_timeout: Duration,
    health: SinkHealth,
    stop_health: Arc<AtomicBool>,
    enqueued: Arc<AtomicU64>,
    queue_full_waits: Arc<AtomicU64>,
    next_retry_id: usize,
    latency_gauges: [(f64, Arc<AtomicU64>); 4],
    last_latency_export_ns: i64,
    /// `backpressure: drop_newest`.
    drop_newest: bool,
    dropped: Arc<AtomicU64>,
    drop_log: crate::metrics::LogThrottle,
    /// Dropped ranges still to be announced as `gap` events.
    drops: drops::Drops,
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
        ));
        let producer: BaseProducer<Ctx> = s
            .client_config()
            .create_with_context(Ctx(delivery.clone()))
            .map_err(|e| SinkError(format!("cannot create producer: {e}")))?;
        let producer = Arc::new(producer);
        let health = metrics.sink_health("kafka");
        let reachable = check(&producer, s.metadata_timeout);
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
            producer.clone(),
            health.clone(),
            delivery.clone(),
            s.metadata_timeout,
            s.health_interval,
            stop_health.clone(),
        );
        metrics.latency.add(
            &[("stage", "sink_to_ack"), ("sink", "kafka")],
            1e-6,
            delivery.latency_us.clone(),
        );
        let q = |p: &'static str| {
            metrics.gauge_f64(
                "processor_publish_latency_seconds",
                "Produce -> broker acknowledgement latency (quantiles since start).",
                &[("sink", "kafka"), ("quantile", p)],
            )
        };
        log::info!(
            "event=kafka_started brokers={} topic={} format={:?} acks={} idempotence={} compression={}",
            s.raw.brokers,
            s.raw.topic,
            s.format,
            s.raw.acks,
            s.raw.idempotence,
            s.raw.compression
        );
        Ok(KafkaSink {
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
            latency_gauges: [
                (0.5, q("0.5")),
                (0.99, q("0.99")),
                (0.999, q("0.999")),
                (1.0, q("1")),
            ],
            last_latency_export_ns: 0,
            drop_newest: s.raw.backpressure == "drop_newest",
            dropped: metrics.counter(
                "kafka_dropped_total",
                "Records dropped because librdkafka's queue was full (backpressure: drop_newest).",
                L,
            ),
            drop_log: crate::metrics::LogThrottle::default(),
            drops: drops::Drops::counted(metrics.counter(
                "gap_events_total",
                "Gap events emitted (data of a stream may be missing), by reason.",
                &[("reason", "sink_dropped")],
            )),
        })
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
        for r in due {
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
                id | RETRY_FLAG,
                true,
            );
            match sent {
                Ok(_) => {
                    if let Ok(mut m) = self.delivery.in_flight_retries.lock() {
                        m.insert(id, r);
                    }
                }
                Err(e) => {
                    self.delivery.failed.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "event=kafka_delivery_failed topic={} error=\"{e}\"",
                        r.topic
                    );
                }
            }
        }
    }

    fn export_latency(&mut self, now: i64) {
        if now - self.last_latency_export_ns < 1_000_000_000 {
            return;
        }
        self.last_latency_export_ns = now;
        if let Ok(h) = self.delivery.latency_us.try_lock()
            && let Some(h) = h.as_ref()
            && !h.is_empty()
        {
            for (q, g) in &self.latency_gauges {
                let v = h.value_at_quantile(*q) as f64 / 1e6;
                g.store(v.to_bits(), Ordering::Relaxed);
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
    opaque: usize,
    block: bool,
) -> Result<bool, KafkaError> {
    loop {
        let mut rec = BaseRecord::with_opaque_to(topic, opaque).payload(payload);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        match producer.send(rec) {
            Ok(()) => {
                enqueued.fetch_add(1, Ordering::Relaxed);
                return Ok(true);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) if !block => {
                return Ok(false);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                waits.fetch_add(1, Ordering::Relaxed);
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// One metadata request: reachable or why not.
fn check(p: &BaseProducer<Ctx>, timeout: Duration) -> Result<(), String> {
    p.client()
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn spawn_health(
    producer: Arc<BaseProducer<Ctx>>,
    health: SinkHealth,
    delivery: Arc<Delivery>,
    timeout: Duration,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let _ = std::thread::Builder::new()
        .name("kafka-health".into())
        .spawn(move || {
            let mut last = health.reachable.load(Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = check(&producer, timeout);
                let ok = r.is_ok();
                health.reachable.store(ok, Ordering::Relaxed);
                health.queue_depth.store(
                    producer.in_flight_count() as i64 + delivery.pending_retries() as i64,
                    Ordering::Relaxed,
                );
                if ok != last {
                    match r {
                        Ok(()) => log::info!("event=kafka_reachable"),
                        Err(e) => log::warn!("event=kafka_unreachable error=\"{e}\""),
                    }
                    last = ok;
                }
                let wait = interval.saturating_sub(t0.elapsed());
                let until = Instant::now() + wait;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
}

impl KafkaSink {
    /// Publishes a `gap` per stream with dropped records, as far as the queue has room.
    fn report_drops(&mut self) {
        if self.drops.is_empty() {
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
                        producer, enqueued, waits, topic, key, payload, opaque, false
                    ),
                    Ok(true)
                )
            });
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        let payload: &[u8] = match self.format {
            KafkaFormat::Protobuf => &rec.proto,
            // The JSON Lines object without its newline.
            KafkaFormat::Json => rec.json.strip_suffix(b"\n").unwrap_or(&rec.json),
        };
        let (topic, key) = self
            .topics
            .resolve(rec.exchange, rec.market, &rec.symbol, rec.kind);
        let opaque = realtime_ns().max(0) as usize & !RETRY_FLAG;
        let sent = produce(
            &self.producer,
            &self.enqueued,
            &self.queue_full_waits,
            topic,
            key.map(str::as_bytes),
            payload,
            opaque,
            !self.drop_newest,
        );
        if let Ok(false) = sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.drops.note(rec);
            if self.drop_log.hit() {
                log::warn!(
                    "event=kafka_dropped policy=drop_newest topic={topic} count={}",
                    self.drop_log.count()
                );
            }
        }
        sent.map(|_| ()).map_err(|e| {
            self.delivery.failed.fetch_add(1, Ordering::Relaxed);
            SinkError(format!("produce to {topic}: {e}"))
        })
    }

    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.producer.poll(Duration::ZERO);
        self.report_drops();
        self.run_retries(now_ns);
        self.export_latency(now_ns);
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.flush_timeout;
        self.report_drops();
        // Flush in slices so due retries are re-enqueued while we wait.
        loop {
            let _ = self.producer.flush(Duration::from_millis(100));
            self.run_retries(realtime_ns());
            let left = self.producer.in_flight_count() as usize + self.delivery.pending_retries();
            if left == 0 || Instant::now() >= deadline {
                break;
            }
        }
        self.producer.poll(Duration::ZERO);
        self.stop_health.store(true, Ordering::Relaxed);
        self.export_latency(i64::MAX);
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
