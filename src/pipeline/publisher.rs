//! Stage 4: the publisher drains every parser's ring into the enabled sinks, in ring order, and
//! gives sinks a periodic `tick` for time-based flushing. It stops once every parser has gone and
//! its ring is empty, then closes (flushes) the sinks.
//!
//! [`Publisher::step`] does one pass, so the same code runs on its own thread ([`Publisher::run`])
//! or inline behind the reader (`runtime.pipeline: inline`).

use super::parser::SHRINK_ABOVE;
use super::ring::Consumer;
use crate::clock::realtime_ns;
use crate::encode::record::Record;
use crate::metrics::latency::Recorder;
use crate::metrics::{Counters, LogThrottle, Metrics};
use crate::pipeline::idle::Idle;
use crate::sink::Sink;
use std::sync::Arc;

const BATCH: usize = 1024;
const TICK_NS: i64 = 1_000_000;

/// The publisher's state.
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

/// Per-run state of a publisher (counters, histograms, timers).
pub struct Running {
    p: Publisher,
    records: Counters,
    errors: Counters,
    latency: Recorder,
    end_to_end: Recorder,
    /// `processor_publish_latency_seconds{sink}` of the sinks that do not report it themselves.
    publish: Vec<Option<Recorder>>,
    last_merge: i64,
    err_log: LogThrottle,
    last_tick: i64,
    /// One `publish_batch` span per 100 ms at most (tracing never costs per message).
    tracing: bool,
    last_span_ns: i64,
}

impl Publisher {
    /// Runs on its own thread until the parsers are done; returns the number of sink errors at
    /// close.
    pub fn run(self) -> usize {
        let mut r = self.start();
        loop {
            let did = r.step();
            if did == 0 {
                if r.p.inputs.iter_mut().all(|i| i.is_finished()) {
                    break;
                }
                let inputs = &r.p.inputs;
                r.p.idle
                    .wait_or_park(|| inputs.iter().any(|i| !i.is_empty()));
            } else {
                r.p.idle.reset();
            }
        }
        r.finish()
    }

    /// Takes the thread's metric handles (call on the thread that will step it).
    pub fn start(self) -> Running {
        let latency = self
            .metrics
            .latency
            .recorder(&[("stage", "parsed_to_sink")]);
        let end_to_end = self
            .metrics
            .latency
            .recorder(&[("stage", "receive_to_sink")]);
        let publish = self
            .sinks
            .iter()
            .map(|s| {
                (!s.reports_publish_latency())
                    .then(|| self.metrics.publish_latency.recorder(&[("sink", s.name())]))
            })
            .collect();
        Running {
            publish,
            records: self.metrics.sink_records.handle(),
            errors: self.metrics.publish_errors.handle(),
            latency,
            end_to_end,
            last_merge: 0,
            err_log: LogThrottle::default(),
            last_tick: 0,
            tracing: crate::trace::enabled(),
            last_span_ns: 0,
            p: self,
        }
    }
}

impl Running {
    /// One pass over the input rings (and the sinks' tick when due); returns records handed.
    pub fn step(&mut self) -> usize {
        let pass_start_ns = if self.tracing { realtime_ns() } else { 0 };
        let mut did = 0usize;
        for input in &mut self.p.inputs {
            for _ in 0..BATCH {
                let sinks = &mut self.p.sinks;
                let (records, errors, err_log) =
                    (&mut self.records, &mut self.errors, &mut self.err_log);
                let (latency, end_to_end) = (&mut self.latency, &mut self.end_to_end);
                let publish = &mut self.publish;
                let r = input.read_with(|rec: &mut Record| {
                    // One clock read per sink: it times that sink and, the last one, the record.
                    let mut now = 0;
                    for (i, sink) in sinks.iter_mut().enumerate() {
                        let res = sink.write(rec);
                        now = realtime_ns();
                        if let Some(Some(p)) = publish.get_mut(i) {
                            p.record_ns(now - rec.parsed_ts_ns);
                        }
                        match res {
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
                    if now == 0 {
                        now = realtime_ns();
                    }
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
        if self.tracing && did > 0 && now - self.last_span_ns >= 100_000_000 {
            self.last_span_ns = now;
            crate::trace::record(crate::trace::Span {
                name: "publish_batch",
                start_ns: pass_start_ns,
                end_ns: now,
                attrs: vec![
                    ("records", did.into()),
                    ("sinks", self.p.sinks.len().into()),
                ],
                error: None,
            });
        }
        if now - self.last_tick >= TICK_NS {
            self.last_tick = now;
            for (i, sink) in self.p.sinks.iter_mut().enumerate() {
                if let Err(e) = sink.tick(now) {
                    self.errors.add(i, 1);
                    if self.err_log.hit() {
                        log::error!("event=sink_tick_failed sink={} error=\"{e}\"", sink.name());
                    }
                }
            }
            self.records.publish();
            self.errors.publish();
            super::export_thread_gauges(
                &self.p.occupancy,
                &self.p.inputs,
                self.p.allocations.as_deref(),
            );
            if now - self.last_merge >= 100_000_000 {
                self.last_merge = now;
                self.latency.merge();
                self.end_to_end.merge();
                for p in self.publish.iter_mut().flatten() {
                    p.merge();
                }
            }
        }
        did
    }

    /// True once every input's producer is gone and its ring drained.
    pub fn finished(&mut self) -> bool {
        self.p.inputs.iter_mut().all(|i| i.is_finished())
    }

    /// Closes (flushes) the sinks; returns how many failed.
    pub fn finish(mut self) -> usize {
        let mut failed = 0;
        for sink in &mut self.p.sinks {
            match sink.close() {
                Ok(()) => log::info!("event=sink_closed sink={}", sink.name()),
                Err(e) => {
                    failed += 1;
                    log::error!("event=sink_close_failed sink={} error=\"{e}\"", sink.name());
                }
            }
        }
        self.records.publish();
        self.errors.publish();
        failed
    }
}
