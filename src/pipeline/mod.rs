//! The hot path, in flow order:
//!
//! ```text
//!  exchange ──ws──▶ reader ──ring<Frame>──▶ parser ──ring<Record>──▶ publisher ──▶ sinks
//!  (connector     (mio poll,   SPSC,         (simd-json in place,     SPSC,      (batch, flush)
//!   opens them)    recv_ts)    recycled)      reusable Event+encode)  recycled
//! ```
//!
//! Every arrow is a bounded lock-free SPSC [`ring`] of pre-allocated slots that are reused in place,
//! so nothing on this path allocates in steady state (`tests/alloc.rs`) and nothing takes a lock.

pub mod connector;
pub mod frame;
pub mod gaps;
pub mod idle;
pub mod inline;
pub mod parser;
pub mod poller;
pub mod publisher;
pub mod reader;
pub mod sync;

pub mod ring;
pub mod sessions;
pub mod watch;

/// Copies a pipeline thread's input ring occupancy and its allocation count into their gauges
/// (called every few milliseconds, never per message).
pub(crate) fn export_thread_gauges<T>(
    occupancy: &[std::sync::Arc<std::sync::atomic::AtomicI64>],
    inputs: &[ring::Consumer<T>],
    allocations: Option<&std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    for (g, input) in occupancy.iter().zip(inputs) {
        g.store(input.len() as i64, Ordering::Relaxed);
    }
    if let Some(a) = allocations {
        a.store(
            crate::metrics::alloc::thread_allocations(),
            Ordering::Relaxed,
        );
    }
}
