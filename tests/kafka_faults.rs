//! Fault injection with librdkafka's mock cluster (in-process, loopback): the Kafka sink driven the
//! way the publisher drives it (`write` + `tick`), with errors and outages injected per request.

mod common;

use mdc::clock::realtime_ns;
use mdc::encode::record::Record;
use mdc::event::EventKind;
use mdc::metrics::Metrics;
use mdc::sink::Sink;
use mdc::sink::kafka::KafkaSink;
use mdc::sink::kafka::config::KafkaSettings;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::time::{Duration, Instant};

fn settings(bootstrap: &str, extra: &str) -> KafkaSettings {
    let yaml = format!(
        r#"
enabled: true
brokers: "{bootstrap}"
topic: "md.{{type}}"
metadata_timeout: "500ms"
health_interval: "100ms"
flush_timeout: "3s"
retry_backoff: "50ms"
retry_backoff_max: "200ms"
properties:
  reconnect.backoff.ms: "50"
  reconnect.backoff.max.ms: "200"
  retry.backoff.ms: "20"
{extra}
"#
    );
    KafkaSettings::from_section(serde_yaml::from_str(&yaml).unwrap())
        .expect("valid section")
        .expect("enabled")
}

fn record(i: u64) -> Record {
    let mut r = Record::with_capacity(64);
    r.kind = EventKind::Trade;
    r.exchange = "binance";
    r.market = "spot";
    r.symbol.push_str("BTCUSDT");
    r.recv_ts_ns = realtime_ns();
    r.proto.extend_from_slice(format!("payload-{i}").as_bytes());
    r
}

fn metric(m: &Metrics, name: &str) -> u64 {
    m.extra
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.name == name)
        .map(|e| match &e.kind {
            mdc::metrics::ExtraKind::Counter(a) => a.load(std::sync::atomic::Ordering::Relaxed),
            mdc::metrics::ExtraKind::Gauge(a) => {
                a.load(std::sync::atomic::Ordering::Relaxed) as u64
            }
            mdc::metrics::ExtraKind::GaugeF64(_) => 0,
        })
        .unwrap_or_else(|| panic!("{name} registered"))
}

/// A record whose payload is a real `Envelope` (a trade), as the encoder writes it.
fn envelope_record(i: u64) -> Record {
    let mut r = record(i);
    let env = mdc::wire::Envelope {
        exchange: "binance".into(),
        market: "spot".into(),
        symbol: "BTCUSDT".into(),
        r#type: "trade".into(),
        exchange_ts_ns: 1,
        receive_ts_ns: r.recv_ts_ns,
        transaction_ts_ns: 0,
        payload: Some(mdc::wire::envelope::Payload::Trade(mdc::wire::Trade {
            trade_id: i,
            price: "1.00".into(),
            qty: "2.00".into(),
            side: 1,
            ..Default::default()
        })),
    };
    r.proto.clear();
    prost::Message::encode(&env, &mut r.proto).unwrap();
    r
}

/// Ticks the sink until `done` or `limit`.
fn drive(sink: &mut KafkaSink, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        sink.tick(realtime_ns()).unwrap();
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// librdkafka gives up on messages while the broker is down (short `message_timeout`); we re-enqueue
/// them with backoff and every one is delivered once the broker is back. The retry count is exact.
#[test]
fn retriable_failures_are_retried_until_delivered() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(
        &mock.bootstrap_servers(),
        "message_timeout: \"300ms\"\nretry_deadline: \"30s\"",
    );
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    mock.broker_down(1).unwrap();
    for i in 0..20 {
        sink.write(&record(i)).unwrap();
    }
    // Wait until librdkafka has given up on all 20 and we have re-enqueued them at least once.
    assert!(drive(&mut sink, Duration::from_secs(10), || metric(
        &metrics,
        "kafka_retries_total"
    ) >= 20));
    mock.broker_up(1).unwrap();
    assert!(
        drive(&mut sink, Duration::from_secs(20), || metric(
            &metrics,
            "kafka_acked_total"
        ) == 20),
        "acked {}",
        metric(&metrics, "kafka_acked_total")
    );
    assert_eq!(metric(&metrics, "kafka_failed_total"), 0);
    let retries = metric(&metrics, "kafka_retries_total");
    assert!(
        retries >= 20,
        "each message was re-enqueued at least once: {retries}"
    );
    sink.close().expect("nothing left undelivered");
}

/// Retriable broker errors on produce requests are retried by librdkafka itself: three injected
/// errors, exactly three retransmissions (from its statistics), the message delivered once.
#[test]
fn broker_error_responses_are_retried_by_librdkafka() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(&mock.bootstrap_servers(), "");
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    sink.write(&record(1)).unwrap();
    assert!(drive(&mut sink, Duration::from_secs(20), || metric(
        &metrics,
        "kafka_acked_total"
    ) == 1));
    // Statistics arrive every second: 1 transmission + 3 retransmissions.
    assert!(
        drive(&mut sink, Duration::from_secs(5), || metric(
            &metrics,
            "kafka_transmitted_messages_total"
        ) >= 4),
        "transmitted {}",
        metric(&metrics, "kafka_transmitted_messages_total")
    );
    assert_eq!(metric(&metrics, "kafka_transmitted_messages_total"), 4);
    assert_eq!(metric(&metrics, "kafka_failed_total"), 0);
    assert_eq!(
        metric(&metrics, "kafka_retries_total"),
        0,
        "librdkafka handled them"
    );
    sink.close().unwrap();
}

/// A non-retriable error is reported at once (counted as failed), never retried.
#[test]
fn non_retriable_errors_are_reported() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(&mock.bootstrap_servers(), "idempotence: false");
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    sink.write(&record(1)).unwrap();
    assert!(drive(&mut sink, Duration::from_secs(10), || metric(
        &metrics,
        "kafka_failed_total"
    ) == 1));
    assert_eq!(metric(&metrics, "kafka_retries_total"), 0);
    let err = sink
        .close()
        .expect_err("a failure during the run is reported at close");
    assert!(err.to_string().contains("1 failed"), "{err}");
}

/// A broker down for longer than `retry_deadline`: every message is counted as failed and close()
/// reports it; nothing is silently dropped.
#[test]
fn broker_down_longer_than_deadline_is_reported() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(
        &mock.bootstrap_servers(),
        "message_timeout: \"200ms\"\nretry_deadline: \"1s\"",
    );
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    mock.broker_down(1).unwrap();
    for i in 0..10 {
        sink.write(&record(i)).unwrap();
    }
    assert!(
        drive(&mut sink, Duration::from_secs(15), || metric(
            &metrics,
            "kafka_failed_total"
        ) == 10),
        "failed {}",
        metric(&metrics, "kafka_failed_total")
    );
    assert_eq!(metric(&metrics, "kafka_acked_total"), 0);
    assert!(
        drive(&mut sink, Duration::from_secs(5), || metrics
            .unreachable_sinks()
            == vec!["kafka"]),
        "health reports the outage"
    );
    let err = sink.close().expect_err("reported");
    assert!(err.to_string().contains("10 failed"), "{err}");
}

/// `backpressure: drop_newest`: with the broker down and a tiny queue, writes never wait; what does
/// not fit is dropped and counted. (`block`, the default, waits instead: see tests/kafka.rs.)
#[test]
fn drop_newest_never_waits_and_counts_drops() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    mock.create_topic("md.gap", 1, 1).unwrap();
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(
        &mock.bootstrap_servers(),
        "backpressure: drop_newest\nqueue_max_messages: 10\nmessage_timeout: \"1s\"\nretry_deadline: \"60s\"",
    );
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    mock.broker_down(1).unwrap();
    let t0 = Instant::now();
    for i in 0..1000 {
        sink.write(&record(i)).unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "never blocked: {:?}",
        t0.elapsed()
    );
    let dropped = metric(&metrics, "kafka_dropped_total");
    let enqueued = metric(&metrics, "kafka_enqueued_total");
    assert_eq!(dropped + enqueued, 1000);
    assert!(dropped >= 990, "dropped {dropped}");

    // Back up: the queue drains and the loss is announced in the sink itself as a `gap`.
    mock.broker_up(1).unwrap();
    assert!(
        drive(&mut sink, Duration::from_secs(30), || metric(
            &metrics,
            "kafka_acked_total"
        ) == enqueued + 1),
        "the enqueued records and the gap acknowledged: {}",
        metric(&metrics, "kafka_acked_total")
    );
    sink.close().unwrap();
    let gaps = common::kafka::consume_all(
        &mock.bootstrap_servers(),
        "md.gap",
        1,
        1,
        Duration::from_secs(5),
    );
    assert_eq!(
        gaps.len(),
        1,
        "one gap for the one stream that lost records"
    );
    let env = <mdc::wire::Envelope as prost::Message>::decode(gaps[0].1.as_slice()).unwrap();
    let v = common::envelope_json(&env);
    assert_eq!(v["type"], "gap");
    assert_eq!(v["reason"], "sink_dropped");
    assert_eq!(v["stream"], "trade");
    assert_eq!(v["symbol"], "BTCUSDT");
    assert!(v["from_ts_ns"].as_i64() < v["to_ts_ns"].as_i64(), "{v}");
}

/// The idempotent producer hits a fatal error (the broker answers the head-of-line produce request
/// with OUT_OF_ORDER_SEQUENCE_NUMBER, as after a broker lost its producer state): the sink replaces
/// the producer, re-sends what was not acknowledged and keeps going. Nothing is lost, nothing
/// counted as failed, the reset is counted.
#[test]
fn fatal_idempotence_error_recreates_the_producer() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(&mock.bootstrap_servers(), "");
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    for i in 0..50 {
        sink.write(&record(i)).unwrap();
    }
    assert!(
        drive(&mut sink, Duration::from_secs(20), || metric(
            &metrics,
            "kafka_producer_resets_total"
        ) >= 1),
        "the fatal error replaced the producer"
    );
    for i in 50..100 {
        sink.write(&record(i)).unwrap();
    }
    assert!(
        drive(&mut sink, Duration::from_secs(20), || metric(
            &metrics,
            "kafka_acked_total"
        ) >= 100),
        "acked {}",
        metric(&metrics, "kafka_acked_total")
    );
    assert_eq!(metric(&metrics, "kafka_failed_total"), 0);
    assert_eq!(metric(&metrics, "kafka_producer_resets_total"), 1);
    sink.close().expect("everything delivered");
    let got = common::kafka::consume_all(
        &mock.bootstrap_servers(),
        "md.trade",
        1,
        200,
        Duration::from_secs(3),
    );
    let mut payloads: Vec<String> = got
        .iter()
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 100, "every record reached the broker");
}

/// `drop_newest` with a tiny retry bound: copies past `retry_max_kbytes` are given up at once and
/// announced as a `gap` (reason `sink_dropped`); the retry queue never holds more than the bound.
#[test]
fn retry_queue_is_bounded_by_bytes() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("md.trade", 1, 1).unwrap();
    mock.create_topic("md.gap", 1, 1).unwrap();
    let metrics = Metrics::new(&["kafka"]);
    let s = settings(
        &mock.bootstrap_servers(),
        "backpressure: drop_newest\nretry_max_kbytes: 1\nmessage_timeout: \"200ms\"\nretry_deadline: \"60s\"",
    );
    let mut sink = KafkaSink::start(&s, &metrics).unwrap();
    mock.broker_down(1).unwrap();
    for i in 0..400 {
        sink.write(&envelope_record(i)).unwrap();
    }
    // Each payload is ~60 bytes: 1 KiB holds ~17 copies; the rest is given up.
    assert!(drive(&mut sink, Duration::from_secs(10), || metric(
        &metrics,
        "kafka_failed_total"
    ) >= 350));
    drive(&mut sink, Duration::from_secs(1), || false);
    let failed = metric(&metrics, "kafka_failed_total");
    assert!(failed < 400, "some copies were kept: {failed}");
    assert!(
        failed >= 400 - 1024 / 50,
        "no more than the bound kept: {failed}"
    );
    mock.broker_up(1).unwrap();
    assert!(
        drive(&mut sink, Duration::from_secs(30), || metric(
            &metrics,
            "kafka_acked_total"
        ) > 400 - failed),
        "kept copies and the gap delivered: acked {}",
        metric(&metrics, "kafka_acked_total")
    );
    let _ = sink.close();
    let gaps = common::kafka::consume_all(
        &mock.bootstrap_servers(),
        "md.gap",
        1,
        1,
        Duration::from_secs(5),
    );
    assert_eq!(gaps.len(), 1);
    let env = <mdc::wire::Envelope as prost::Message>::decode(gaps[0].1.as_slice()).unwrap();
    let v = common::envelope_json(&env);
    assert_eq!(v["reason"], "sink_dropped");
    assert_eq!(v["stream"], "trade");
}
