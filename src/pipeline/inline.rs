//! `runtime.pipeline: inline`: the reader thread itself parses, encodes and publishes each message
//! before it reads the next, so no message waits for another thread to be scheduled. The parser's
//! [`Stage`] and the publisher's [`Running`] state are the same code the threaded pipeline runs;
//! the record ring between them stays as the (always drained) buffer.
//!
//! For machines with fewer cores than hot threads (a 2-vCPU VM with the exchange simulator on it,
//! a shared host): there a hand-off between threads costs a scheduler wake-up, tens of
//! microseconds, while the whole per-message work is about one.

use super::frame::Frame;
use super::parser::Stage;
use super::publisher::Running;
use super::ring::Producer;
use crate::encode::record::Record;
use crate::pipeline::idle::FullWait;
use crossbeam_channel::Sender;
use std::time::{Duration, Instant};

/// Parser and publisher state driven by the reader thread.
pub struct Inline {
    stage: Stage,
    output: Option<Producer<Record>>,
    publisher: Running,
    frame: Frame,
    last_publish: Instant,
    done: Sender<usize>,
}

impl Inline {
    /// `done` receives the number of sinks that failed to close (as from a publisher thread).
    pub fn new(
        stage: Stage,
        output: Producer<Record>,
        publisher: Running,
        frame_bytes: usize,
        done: Sender<usize>,
    ) -> Inline {
        Inline {
            stage,
            output: Some(output),
            publisher,
            frame: Frame::with_capacity(frame_bytes),
            last_publish: Instant::now(),
            done,
        }
    }

    /// One message (or connection marker, as `fill` writes it) through parse -> encode -> sinks.
    #[inline]
    pub fn process(&mut self, fill: &mut impl FnMut(&mut Frame)) {
        let Some(out) = self.output.as_mut() else {
            return;
        };
        fill(&mut self.frame);
        // A frame can yield more records than the ring holds (an all-market array, a gap per
        // stream of a 1024-stream connection): a full ring is drained right here.
        let mut drain = Drain(&mut self.publisher);
        self.stage.process(&mut self.frame, out, &mut drain);
        self.publisher.step();
    }

    /// Periodic work of the parser and publisher: REST snapshots, silent streams, rollovers,
    /// counters, sink ticks.
    pub fn tick(&mut self) {
        self.tick_at(crate::clock::realtime_ns())
    }

    /// [`Inline::tick`] at the time `now_ns` (`mdc replay`: the captured one).
    pub fn tick_at(&mut self, now_ns: i64) {
        if let Some(out) = self.output.as_mut() {
            self.stage
                .poll_books_at(now_ns, out, &mut Drain(&mut self.publisher));
        }
        if self.last_publish.elapsed() >= Duration::from_millis(10) {
            self.last_publish = Instant::now();
            self.stage.publish();
        }
        self.publisher.step();
    }

    /// The parser stage (`mdc replay` registers connections and books on it).
    pub fn stage_mut(&mut self) -> &mut Stage {
        &mut self.stage
    }

    /// Drains what is left, closes (flushes) the sinks and reports to the topology.
    pub fn finish(mut self) {
        self.stage.publish();
        self.output = None;
        while !self.publisher.finished() {
            self.publisher.step();
        }
        let failed = self.publisher.finish();
        let _ = self.done.send(failed);
    }
}

/// The inline thread is its ring's only consumer: while the ring is full, publish.
struct Drain<'a>(&'a mut Running);

impl FullWait for Drain<'_> {
    #[inline]
    fn wait(&mut self) {
        self.0.step();
    }

    #[inline]
    fn reset(&mut self) {}
}
