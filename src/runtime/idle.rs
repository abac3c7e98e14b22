//! What a hot-path thread does when it has nothing to do (`runtime.idle`).

use crate::config::IdlePolicy;
use std::time::Duration;

/// Escalating wait: spin, then yield, then (policy `sleep`) sleep; reset as soon as work arrives.
pub struct Idle {
    policy: IdlePolicy,
    sleep: Duration,
    rounds: u32,
}

const SPIN_ROUNDS: u32 = 100;
const YIELD_ROUNDS: u32 = 200;

impl Idle {
    pub fn new(policy: IdlePolicy, sleep_us: u64) -> Self {
        Idle {
            policy,
            sleep: Duration::from_micros(sleep_us),
            rounds: 0,
        }
    }

    /// Called after a round that found no work.
    #[inline]
    pub fn wait(&mut self) {
        self.rounds = self.rounds.saturating_add(1);
        match self.policy {
            IdlePolicy::Spin => std::hint::spin_loop(),
            _ if self.rounds < SPIN_ROUNDS => std::hint::spin_loop(),
            IdlePolicy::Yield => std::thread::yield_now(),
            IdlePolicy::Sleep if self.rounds < YIELD_ROUNDS => std::thread::yield_now(),
            IdlePolicy::Sleep => std::thread::sleep(self.sleep),
        }
    }

    /// Called after a round that did work.
    #[inline]
    pub fn reset(&mut self) {
        self.rounds = 0;
    }
}
