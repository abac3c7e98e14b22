//! `mdc job`: seed D's Kubernetes Job, unchanged for its orchestration. One (symbol, stream) from
//! the environment ([`env`]), the exchange's payloads to `KAFKA_TOPIC` through the Kafka sink in
//! `raw` format (delivery accounting, idempotence, backpressure as `mdc run`), its life reported
//! on `QUEUE_EVENTS_TOPIC` (`started`, `loading` every few seconds with the running count, then
//! `finished`, `interrupted` or `error`), and a stop command read from `QUEUE_CONTROL_TOPIC`
//! (from its end: commands sent before the job started are not its own).

pub mod env;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::runtime::topology::{self, Outcome, RunOptions};
use env::JobEnv;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its stop command: drained, flushed, exit 0.
    Finished,
    /// SIGTERM/SIGINT: drained, flushed, exit 0.
    Interrupted,
    /// The collector failed: exit 1.
    Error,
}

fn client(e: &JobEnv) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &e.bootstrap)
        .set("security.protocol", e.security_protocol());
    if let Some(ca) = &e.ca_path {
        c.set("ssl.ca.location", ca);
    }
    if let Some((u, p)) = &e.sasl {
        c.set("sasl.mechanism", &e.sasl_mechanism)
            .set("sasl.username", u)
            .set("sasl.password", p.expose());
    }
    c
}

/// UTC time as RFC 3339 with milliseconds (`2026-12-06T05:11:46.123Z`).
fn rfc3339(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let (y, mo, d, h) = crate::clock::utc_ymdh(secs);
    let s = secs.rem_euclid(3600);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{:02}:{:02}.{:03}Z",
        s / 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// The events topic's producer.
struct Telemetry {
    producer: BaseProducer,
    env: JobEnv,
}

impl Telemetry {
    fn new(env: &JobEnv) -> Result<Telemetry, String> {
        let producer: BaseProducer = client(env)
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| format!("events producer: {e}"))?;
        Ok(Telemetry {
            producer,
            env: env.clone(),
        })
    }

    /// One event `{queue_id, symbol, type, status, message, records_written, finished,
    /// producer, timestamp}`, keyed by queue id.
    fn send(&self, status: &str, message: &str, records: u64, finished: bool) {
        let e = &self.env;
        let v = serde_json::json!({
            "queue_id": e.queue_id,
            "symbol": e.symbol,
            "type": e.kind,
            "status": status,
            "message": message,
            "records_written": records,
            "finished": finished,
            "producer": e.producer_id,
            "timestamp": rfc3339(crate::clock::realtime_ns()),
        });
        let body = v.to_string();
        let rec = BaseRecord::<str, str>::to(&e.events_topic)
            .key(&e.queue_id)
            .payload(&body);
        if let Err((err, _)) = self.producer.send(rec) {
            log::warn!("event=job_event_not_sent status={status} error=\"{err}\"");
        }
        self.producer.poll(Duration::ZERO);
        log::info!(
            "event=job_{status} queue_id={} records_written={records} message=\"{message}\"",
            e.queue_id
        );
    }

    fn flush(&self) {
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            log::warn!("event=job_events_flush_failed error=\"{e}\"");
        }
    }
}

/// The control topic's reader, positioned at its end when the job starts.
struct Control {
    consumer: BaseConsumer,
    queue_id: String,
    bad: crate::metrics::LogThrottle,
}

impl Control {
    fn new(env: &JobEnv) -> Result<Control, String> {
        let consumer: BaseConsumer = client(env)
            .set(
                "group.id",
                format!("mdc-job-{}-{}", env.queue_id, std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("control consumer: {e}"))?;
        let md = consumer
            .fetch_metadata(Some(&env.control_topic), Duration::from_secs(10))
            .map_err(|e| format!("QUEUE_CONTROL_TOPIC {}: {e}", env.control_topic))?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == env.control_topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if partitions == 0 {
            return Err(format!(
                "QUEUE_CONTROL_TOPIC {} has no partitions (does it exist?)",
                env.control_topic
            ));
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(&env.control_topic, p, Offset::End)
                .map_err(|e| format!("control assign: {e}"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("control assign: {e}"))?;
        Ok(Control {
            consumer,
            queue_id: env.queue_id.clone(),
            bad: crate::metrics::LogThrottle::default(),
        })
    }

    /// `true` when this job's stop command arrived (others' are ignored, malformed ones logged).
    fn stop_requested(&mut self) -> bool {
        while let Some(m) = self.consumer.poll(Duration::ZERO) {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("event=job_control_error error=\"{e}\"");
                    return false;
                }
            };
            let body = m.payload().unwrap_or_default();
            let v: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    if self.bad.hit() {
                        log::warn!(
                            "event=job_control_malformed error=\"{e}\" bytes={} count={}",
                            body.len(),
                            self.bad.count()
                        );
                    }
                    continue;
                }
            };
            let id = match &v["queue_id"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            match v["command"].as_str() {
                Some("stop") if id == self.queue_id => return true,
                Some(cmd) => {
                    log::debug!("event=job_control_ignored command={cmd} queue_id={id}");
                }
                None => {
                    if self.bad.hit() {
                        log::warn!(
                            "event=job_control_malformed error=\"no command\" count={}",
                            self.bad.count()
                        );
                    }
                }
            }
        }
        false
    }
}

/// Runs the job until its stop command, a signal, or a failure. `signal` is the process's
/// SIGINT/SIGTERM flag.
pub fn run(env: &JobEnv, config: Config, signal: Arc<AtomicBool>) -> End {
    let sink_names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();
    let metrics = Metrics::new(&sink_names);
    let records = {
        let m = metrics.clone();
        move || -> u64 {
            m.counter_values("kafka_acked_total")
                .iter()
                .map(|(_, v)| v)
                .sum()
        }
    };
    let telemetry = match Telemetry::new(env) {
        Ok(t) => t,
        Err(e) => {
            log::error!("event=job_failed error=\"{e}\"");
            return End::Error;
        }
    };
    let mut control = match Control::new(env) {
        Ok(c) => c,
        Err(e) => {
            telemetry.send("error", &e, 0, true);
            telemetry.flush();
            log::error!("event=job_failed error=\"{e}\"");
            return End::Error;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, m2) = (stop.clone(), metrics.clone());
    let collector = match std::thread::Builder::new()
        .name("job-collector".into())
        .spawn(move || topology::run_with(config, s2, m2, RunOptions::default()))
    {
        Ok(h) => h,
        Err(e) => {
            telemetry.send("error", &format!("collector thread: {e}"), 0, true);
            telemetry.flush();
            return End::Error;
        }
    };
    telemetry.send(
        "started",
        &format!("{} {} -> {}", env.symbol, env.channel, env.kafka_topic),
        0,
        false,
    );
    let every = Duration::from_secs(env.loading_every_s);
    let mut next_loading = Instant::now() + every;
    let end = loop {
        std::thread::sleep(Duration::from_millis(100));
        if collector.is_finished() {
            break End::Error;
        }
        if signal.load(Ordering::Relaxed) {
            break End::Interrupted;
        }
        if control.stop_requested() {
            break End::Finished;
        }
        if Instant::now() >= next_loading {
            next_loading += every;
            telemetry.send("loading", "", records(), false);
        }
    };
    stop.store(true, Ordering::Relaxed);
    let outcome = collector
        .join()
        .map_err(|_| "collector panicked".to_string())
        .and_then(|r| r);
    let n = records();
    let end = match (end, outcome) {
        (End::Error, Ok(_)) => {
            telemetry.send("error", "the collector stopped", n, true);
            End::Error
        }
        (_, Err(e)) => {
            telemetry.send("error", &e, n, true);
            End::Error
        }
        (_, Ok(Outcome::Incomplete(why))) => {
            telemetry.send("error", &why, n, true);
            End::Error
        }
        (End::Finished, Ok(Outcome::Clean)) => {
            telemetry.send("finished", "stop command", n, true);
            End::Finished
        }
        (End::Interrupted, Ok(Outcome::Clean)) => {
            telemetry.send("interrupted", "signal", n, true);
            End::Interrupted
        }
    };
    telemetry.flush();
    end
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_796_533_906_123_456_789),
            "2026-12-06T05:11:46.123Z"
        );
    }
}
