//! Allocation counting per thread, to prove in production (and in `mdc bench`) that the pipeline
//! threads allocate nothing in steady state.
//!
//! [`CountingAlloc`] wraps the system allocator and bumps a thread-local counter per allocation (no
//! atomics, no sharing); the `mdc` binary installs it. Pipeline threads copy their own count into
//! `thread_allocations_total{thread}` every 10 ms, off the per-message path. Without the wrapper
//! (the library used elsewhere) [`installed`] is false and the metric is not exported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting allocations and reallocations per thread.
pub struct CountingAlloc;

#[inline]
fn count() {
    // `try_with`: never panics, even while the thread's locals are being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`; the wrapper only increments a
// const-initialized thread-local `Cell` (no allocation, no destructor, no reentrancy).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

impl CountingAlloc {
    /// Marks the wrapper as the global allocator (call once at startup of the binary).
    pub fn mark_installed() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// True when the running binary counts allocations.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Allocations (and reallocations) made by the calling thread so far.
#[inline]
pub fn thread_allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}
