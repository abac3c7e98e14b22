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
pub mod parser;
pub mod poller;
pub mod publisher;
pub mod reader;
pub mod record;
pub mod ring;
pub mod sessions;
pub mod watch;
