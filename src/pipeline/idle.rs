//! What a hot-path thread does when it has nothing to do (`runtime.idle`).
//!
//! `park` lets a consumer thread sleep until work arrives: it announces itself on its [`Bell`],
//! checks its rings once more, and parks; the producers of its rings ring the bell after each
//! write (one fence and one load while it is awake) and wake it. On a machine with fewer cores than
//! busy threads (a broker beside the collector) the CPU that spinning and yielding burn goes to
//! the threads that have work.

use super::sync::{AtomicBool, Once, Ordering, Thread, fence};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How hot-path threads wait when they have nothing to do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// Busy-poll: lowest latency, burns the core (dedicated, isolated CPUs).
    Spin,
    /// Spin briefly, then yield to the scheduler.
    Yield,
    /// Spin, yield, then sleep `idle_sleep_us` (shared machines).
    Sleep,
    /// Spin, yield, then park until a producer writes to one of the thread's rings (shared
    /// machines where the cores are oversubscribed, e.g. a broker beside the collector).
    Park,
}

/// Escalating wait: spin, then yield, then (policy `sleep`) sleep or (policy `park`, in
/// [`Idle::wait_or_park`]) park; reset as soon as work arrives.
pub struct Idle {
    policy: IdlePolicy,
    sleep: Duration,
    rounds: u32,
    bell: Option<Arc<Bell>>,
    park_timeout: Duration,
}

const SPIN_ROUNDS: u32 = 100;
const YIELD_ROUNDS: u32 = 200;

/// Longest park without a ring: the parked threads' own timers (metrics every 10 ms, sink ticks,
/// stream watches, snapshot replies) run at least this often.
pub const PARK_TIMEOUT: Duration = Duration::from_millis(5);

impl Idle {
    pub fn new(policy: IdlePolicy, sleep_us: u64) -> Self {
        Idle {
            policy,
            sleep: Duration::from_micros(sleep_us),
            rounds: 0,
            bell: (policy == IdlePolicy::Park).then(|| Arc::new(Bell::default())),
            park_timeout: PARK_TIMEOUT,
        }
    }

    /// The bell the producers of this thread's rings ring (policy `park` only).
    pub fn bell(&self) -> Option<Arc<Bell>> {
        self.bell.clone()
    }

    /// Called after a round that found no work. Never parks (`park` behaves as `yield` here): for
    /// waits no ring write ends, such as a full output ring.
    #[inline]
    pub fn wait(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        match self.policy {
            IdlePolicy::Spin => std::hint::spin_loop(),
            _ if self.rounds < SPIN_ROUNDS => std::hint::spin_loop(),
            IdlePolicy::Yield | IdlePolicy::Park => std::thread::yield_now(),
            IdlePolicy::Sleep if self.rounds < YIELD_ROUNDS => std::thread::yield_now(),
            IdlePolicy::Sleep => std::thread::sleep(self.sleep),
        }
    }

    /// Called after a round that found its input rings empty; `has_work` looks at them again. With
    /// policy `park`, past the spinning and yielding rounds the thread parks until a producer rings
    /// (or [`PARK_TIMEOUT`]); other policies wait as [`Idle::wait`].
    #[inline]
    pub fn wait_or_park(&mut self, has_work: impl FnOnce() -> bool) {
        match &self.bell {
            // Past the spinning rounds, park at once: yielding on a machine whose other threads
            // are runnable is a context switch per round (39 per message at 5k msgs/s measured),
            // far dearer than one park and one wake-up.
            Some(bell) if self.rounds >= SPIN_ROUNDS => bell.park(has_work, self.park_timeout),
            _ => self.wait(),
        }
    }

    /// Called after a round that did work.
    #[inline]
    pub fn reset(&mut self) {
        self.rounds = 0;
    }
}

/// What a producer does while its output ring is full: wait for the consumer thread
/// ([`Idle`]), or, when the same thread is the consumer (`pipeline: inline`), drain the ring
/// itself, which is the only way it ever empties.
pub trait FullWait {
    /// The ring was full: make progress towards a free slot.
    fn wait(&mut self);
    /// A write succeeded.
    fn reset(&mut self);
}

impl FullWait for Idle {
    #[inline]
    fn wait(&mut self) {
        Idle::wait(self)
    }

    #[inline]
    fn reset(&mut self) {
        Idle::reset(self)
    }
}

/// Wakes a parked consumer thread. Producers call [`Bell::ring`] after publishing a slot.
#[derive(Default)]
pub struct Bell {
    /// The consumer announced it is about to park (or is parked).
    sleeping: AtomicBool,
    /// The consumer thread, registered by its first park.
    thread: Once<Thread>,
}

impl Bell {
    /// After a write: wakes the consumer if it announced a park. Costs one fence and one load
    /// while the consumer is awake.
    #[inline]
    pub fn ring(&self) {
        // Pairs with the fence in `park`: either the consumer's re-check sees our write, or we see
        // its announcement (the store-load order a plain Release/Acquire pair does not give).
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed)
            && self.sleeping.swap(false, Ordering::AcqRel)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    /// Parks the calling (consumer) thread unless `has_work` sees work after the announcement;
    /// a [`Bell::ring`] wakes it.
    pub fn park(&self, has_work: impl FnOnce() -> bool, timeout: Duration) {
        self.thread.get_or_init(super::sync::current);
        // Release: a producer that sees the announcement also sees the registered thread.
        self.sleeping.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if !has_work() {
            // A ring between the announcement and here leaves the park token set: no lost wake-up.
            super::sync::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ring;
    use std::time::Instant;

    /// Every item is written only once the consumer has announced its park, so each one needs a
    /// wake-up; with the park timeout at 3 s, lost wake-ups would take the run to 36 s, while the
    /// wake-ups take it a few milliseconds.
    #[test]
    fn parked_consumer_wakes_on_each_ring_write() {
        let mut idle = Idle::new(IdlePolicy::Park, 0);
        idle.park_timeout = Duration::from_secs(3);
        let bell = idle.bell().expect("park has a bell");
        let (mut p, mut c) = ring::ring(8, || 0u64);
        p.set_bell(Some(bell.clone()));
        const N: u64 = 12;
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                while !bell.sleeping.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                assert!(p.write_with(|s| *s = i).is_some());
            }
        });
        let start = Instant::now();
        let mut next = 0u64;
        while next < N {
            match c.read_with(|s| *s) {
                Some(v) => {
                    assert_eq!(v, next);
                    next += 1;
                    idle.reset();
                }
                None => idle.wait_or_park(|| !c.is_empty()),
            }
        }
        producer.join().expect("producer");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }
}
