//! The synchronization primitives of the ring and the idle bell, from `std`, or from `loom` when
//! the `loom` feature is on, so `tests/loom.rs` can check every interleaving of the real code
//! (`cargo test --release --features loom --test loom`). The feature is for that test only: loom's
//! types work only inside `loom::model`.

#[cfg(feature = "loom")]
pub use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
#[cfg(not(feature = "loom"))]
pub use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

#[cfg(feature = "loom")]
pub use loom::thread::{Thread, current};
#[cfg(not(feature = "loom"))]
pub use std::thread::{Thread, current};

/// Parks the calling thread (`std`: for at most `timeout`; loom has no timeouts, so a wake-up
/// that never comes is a deadlock it reports).
#[inline]
pub fn park_timeout(timeout: std::time::Duration) {
    #[cfg(feature = "loom")]
    {
        let _ = timeout;
        loom::thread::park();
    }
    #[cfg(not(feature = "loom"))]
    std::thread::park_timeout(timeout);
}

/// An `UnsafeCell` with loom's access API on both.
#[derive(Debug)]
pub struct SlotCell<T>(
    #[cfg(feature = "loom")] loom::cell::UnsafeCell<T>,
    #[cfg(not(feature = "loom"))] std::cell::UnsafeCell<T>,
);

impl<T> SlotCell<T> {
    pub fn new(v: T) -> Self {
        #[cfg(feature = "loom")]
        {
            SlotCell(loom::cell::UnsafeCell::new(v))
        }
        #[cfg(not(feature = "loom"))]
        {
            SlotCell(std::cell::UnsafeCell::new(v))
        }
    }

    /// Runs `f` on a pointer to the value. The caller guarantees exclusive access (loom checks
    /// it).
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(feature = "loom")]
        {
            self.0.with_mut(f)
        }
        #[cfg(not(feature = "loom"))]
        {
            f(self.0.get())
        }
    }
}

/// A value set once (the parked thread's handle): `OnceLock` on std; a loom mutex under loom
/// (which has no `OnceLock`).
pub struct Once<T> {
    #[cfg(feature = "loom")]
    v: loom::sync::Mutex<Option<T>>,
    #[cfg(not(feature = "loom"))]
    v: std::sync::OnceLock<T>,
}

impl<T: Clone> Default for Once<T> {
    fn default() -> Self {
        Once {
            v: Default::default(),
        }
    }
}

impl<T: Clone> Once<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) {
        #[cfg(feature = "loom")]
        {
            let mut g = self.v.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                *g = Some(f());
            }
        }
        #[cfg(not(feature = "loom"))]
        {
            self.v.get_or_init(f);
        }
    }

    pub fn get(&self) -> Option<T> {
        #[cfg(feature = "loom")]
        {
            self.v.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
        #[cfg(not(feature = "loom"))]
        {
            self.v.get().cloned()
        }
    }
}
