//! Stage 2: a bounded, lock-free single-producer single-consumer ring of pre-allocated, recycled slots.
//!
//! Slots are written and read *in place* (`write_with` / `read_with` hand out `&mut T`), so a slot's
//! buffers (a frame's bytes, an encoded record) are reused forever and the ring never allocates after
//! construction. The producer owns `tail`, the consumer owns `head`; each side caches the other's index
//! (as rtrb and crossbeam do) and both indices sit on their own 128-byte line to avoid false sharing.
//!
//! A full ring is reported to the caller (`write_with` returns `None`); the caller applies the
//! backpressure policy (the reader stops reading its socket, so TCP pushes back on the exchange).

use crate::pipeline::idle::Bell;
use crate::pipeline::sync::{AtomicBool, AtomicUsize, Ordering, SlotCell};
use crossbeam_utils::CachePadded;
use std::sync::Arc;

struct Shared<T> {
    slots: Box<[SlotCell<T>]>,
    mask: usize,
    /// Next slot the consumer reads (monotonic, wraps with `mask`).
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes (monotonic, wraps with `mask`).
    tail: CachePadded<AtomicUsize>,
    /// Set when the producer is dropped: the consumer drains and then stops.
    closed: AtomicBool,
}

// SAFETY: a slot is accessed by exactly one side at a time: the producer only touches slots in
// [tail, head + cap), the consumer only slots in [head, tail); ownership moves with the Release store
// of an index and the Acquire load on the other side. T: Send is enough because values move between
// threads, never shared.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: see the Sync impl; the shared state itself is only atomics and the slot array.
unsafe impl<T: Send> Send for Shared<T> {}

/// Creates a ring of `capacity` slots (rounded up to a power of two), each built by `init`.
pub fn ring<T: Send>(capacity: usize, mut init: impl FnMut() -> T) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let slots: Box<[SlotCell<T>]> = (0..cap).map(|_| SlotCell::new(init())).collect();
    let shared = Arc::new(Shared {
        slots,
        mask: cap - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        closed: AtomicBool::new(false),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            cached_head: 0,
            bell: None,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    )
}

/// The writing end. Not `Clone`: there is exactly one producer.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
    /// The consumer thread's bell (idle policy `park`), rung after every write.
    bell: Option<Arc<Bell>>,
}

impl<T> Producer<T> {
    /// Fills the next free slot in place with `f` and publishes it; `None` (and `f` not called) when
    /// the ring is full.
    #[inline]
    pub fn write_with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let cap = self.shared.mask + 1;
        if self.tail.wrapping_sub(self.cached_head) >= cap {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.cached_head) >= cap {
                return None;
            }
        }
        let cell = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: tail - head < cap, so this slot is not in [head, tail) and the consumer will not
        // touch it until we publish tail + 1 below; we are the only producer.
        let r = cell.with_mut(|p| f(unsafe { &mut *p }));
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
        if let Some(b) = &self.bell {
            b.ring();
        }
        Some(r)
    }

    /// Wakes the consumer thread through `bell` after every write (`Some` when its idle policy
    /// parks).
    pub fn set_bell(&mut self, bell: Option<Arc<Bell>>) {
        self.bell = bell;
    }

    /// Slots currently filled (an instantaneous, approximate view for metrics).
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Relaxed))
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(b) = &self.bell {
            b.ring();
        }
    }
}

/// The reading end. Not `Clone`: there is exactly one consumer.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
}

impl<T> Consumer<T> {
    /// Hands the oldest filled slot to `f` in place, then returns it to the producer; `None` (and `f`
    /// not called) when the ring is empty.
    #[inline]
    pub fn read_with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.head == self.cached_tail {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return None;
            }
        }
        let cell = &self.shared.slots[self.head & self.shared.mask];
        // SAFETY: head < tail (observed with Acquire), so the producer has finished writing this slot
        // and will not touch it again until we publish head + 1 below; we are the only consumer.
        let r = cell.with_mut(|p| f(unsafe { &mut *p }));
        self.head = self.head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(r)
    }

    /// True once the producer is gone *and* every slot it filled has been read.
    pub fn is_finished(&mut self) -> bool {
        if !self.shared.closed.load(Ordering::Acquire) {
            return false;
        }
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.head == self.cached_tail
    }

    /// Slots currently filled (approximate).
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .load(Ordering::Relaxed)
            .wrapping_sub(self.head)
    }

    /// True when no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = ring(4, || 0u64);
        for i in 0..4 {
            assert!(p.write_with(|s| *s = i).is_some());
        }
        assert!(p.write_with(|s| *s = 99).is_none());
        for i in 0..4 {
            assert_eq!(c.read_with(|s| *s), Some(i));
        }
        assert_eq!(c.read_with(|s| *s), None);
        assert!(!c.is_finished());
        drop(p);
        assert!(c.is_finished());
    }

    #[test]
    fn threads_keep_order() {
        let (mut p, mut c) = ring(64, Vec::<u8>::new);
        // Miri interprets every step: a shorter run there.
        const N: u64 = if cfg!(miri) { 2_000 } else { 200_000 };
        let t = std::thread::spawn(move || {
            let mut i = 0u64;
            while i < N {
                if p.write_with(|s| {
                    s.clear();
                    s.extend_from_slice(&i.to_le_bytes());
                })
                .is_some()
                {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        let mut next = 0u64;
        while next < N {
            if let Some(v) = c.read_with(|s| u64::from_le_bytes(s[..8].try_into().unwrap())) {
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
        assert!(c.is_finished());
    }
}
