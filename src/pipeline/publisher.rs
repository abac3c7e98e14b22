//! Stage 4: the publisher thread drains every parser's ring into the enabled sinks, in ring order,
//! and gives sinks a periodic `tick` for time-based flushing. It stops once every parser has gone and
//! its ring is empty, then closes (flushes) the sinks.

use super::parser::SHRINK_ABOVE;
use super::record::Record;
use super::ring::Consumer;
use crate::clock::realtime_ns;
use crate::metrics::{Counters, LogThrottle, Metrics};
use crate::runtime::idle::Idle;
use crate::sink::Sink;
use std::sync::Arc;

const BATCH: usize = 1024;
const TICK_NS: i64 = 1_000_000;

/// The publisher thread's state.
pub struct Publisher {
    pub inputs: Vec<Consumer<Record>>,
    pub sinks: Vec<Box<dyn Sink>>,
    pub metrics: Arc<Metrics>,
    pub idle: Idle,
    /// `ring_occupancy` gauge per input ring (set every millisecond).
    pub occupancy: Vec<Arc<std::sync::atomic::AtomicI64>>,
    /// `thread_allocations_total` of this thread (when the binary counts allocations).
    pub allocations: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Publisher {
    /// Runs until the parsers are done; returns the number of sink errors at close.
    pub fn run(mut self) -> usize {
        let mut records: Counters = self.metrics.sink_records.handle();
        let mut errors: Counters = self.metrics.publish_errors.handle();
        let mut latency = self
            .metrics
            .latency
            .recorder(&[("stage", "parsed_to_sink")]);
        let mut end_to_end = self
            .metrics
            .latency
            .recorder(&[("stage", "receive_to_sink")]);
        let mut last_merge = 0i64;
        let mut err_log = LogThrottle::default();
        let mut last_tick = 0i64;
        // One `publish_batch` span per 100 ms at most (tracing never costs per message).
        let tracing = crate::trace::enabled();
        let mut last_span_ns = 0i64;
        loop {
            let pass_start_ns = if tracing { realtime_ns() } else { 0 };
            let mut did = 0usize;
            for input in &mut self.inputs {
                for _ in 0..BATCH {
                    let sinks = &mut self.sinks;
                    let latency = &mut latency;
                    let end_to_end = &mut end_to_end;
                    let r = input.read_with(|rec: &mut Record| {
                        for (i, sink) in sinks.iter_mut().enumerate() {
                            match sink.write(rec) {
                                Ok(()) => records.add(i, 1),
                                Err(e) => {
                                    errors.add(i, 1);
                                    if err_log.hit() {
                                        log::error!(
                                            "event=publish_failed sink={} error=\"{e}\" count={}",
                                            sink.name(),
                                            err_log.count()
                                        );
                                    }
                                }
                            }
                        }
                        let now = realtime_ns();
                        latency.record_ns(now - rec.parsed_ts_ns);
                        end_to_end.record_ns(now - rec.recv_ts_ns);
                        rec.shrink_if_above(SHRINK_ABOVE, 1024);
                    });
                    if r.is_none() {
                        break;
                    }
                    did += 1;
                }
            }
            let now = realtime_ns();
            if tracing && did > 0 && now - last_span_ns >= 100_000_000 {
                last_span_ns = now;
                crate::trace::record(crate::trace::Span {
                    name: "publish_batch",
                    start_ns: pass_start_ns,
                    end_ns: now,
                    attrs: vec![("records", did.into()), ("sinks", self.sinks.len().into())],
                    error: None,
                });
            }
            if now - last_tick >= TICK_NS {
                last_tick = now;
                for (i, sink) in self.sinks.iter_mut().enumerate() {
                    if let Err(e) = sink.tick(now) {
                        errors.add(i, 1);
                        if err_log.hit() {
                            log::error!(
                                "event=sink_tick_failed sink={} error=\"{e}\"",
                                sink.name()
                            );
                        }
                    }
                }
                records.publish();
                errors.publish();
                super::export_thread_gauges(
                    &self.occupancy,
                    &self.inputs,
                    self.allocations.as_deref(),
                );
                if now - last_merge >= 100_000_000 {
                    last_merge = now;
                    latency.merge();
                    end_to_end.merge();
                }
            }
            if did == 0 {
                if self.inputs.iter_mut().all(|i| i.is_finished()) {
                    break;
                }
                self.idle.wait();
            } else {
                self.idle.reset();
            }
        }
        let mut failed = 0;
        for sink in &mut self.sinks {
            match sink.close() {
                Ok(()) => log::info!("event=sink_closed sink={}", sink.name()),
                Err(e) => {
                    failed += 1;
                    log::error!("event=sink_close_failed sink={} error=\"{e}\"", sink.name());
                }
            }
        }
        records.publish();
        errors.publish();
        failed
    }
}
