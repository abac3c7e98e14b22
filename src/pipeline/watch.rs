//! Per-stream bookkeeping in the parser that decodes a connection:
//!
//! - freshness: the receive time of each stream's last message, handed to `/health` about every
//!   500 ms (off the per-message path);
//! - silent streams: a watched stream that has delivered nothing `silence_timeout` after its
//!   connection opened, while the connection is up, is reported once (log `event=stream_silent`,
//!   gauge `streams_silent`, counter `stream_silence_detected_total`). The typical cause is a USD-M
//!   stream on the wrong routed path, which Binance accepts and then never feeds.
//!
//! Per frame: one hash lookup of the stream name and a store into a local vector.

use crate::exchange::StreamSpec;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

struct ConnWatch {
    label: String,
    timeout_ns: i64,
    /// Stream name -> slot in the vectors below.
    index: HashMap<String, usize, crate::fnv::FnvBuild>,
    names: Vec<String>,
    watched: Vec<bool>,
    /// Last message per stream (ns, local), published to `shared`.
    last_ns: Vec<i64>,
    shared: Option<Arc<[AtomicI64]>>,
    connected_at_ns: Option<i64>,
    reported: usize,
}

impl ConnWatch {
    fn silent(&self, at: i64) -> impl Iterator<Item = &str> {
        (0..self.names.len())
            .filter(move |&i| self.watched[i] && self.last_ns[i] < at)
            .map(|i| self.names[i].as_str())
    }
}

/// The watches of one parser's connections.
pub struct StreamWatch {
    /// By connection id (ids are small and dense).
    conns: Vec<Option<ConnWatch>>,
    silent: Arc<AtomicI64>,
    detected: Arc<AtomicU64>,
}

impl StreamWatch {
    pub fn new(silent: Arc<AtomicI64>, detected: Arc<AtomicU64>) -> StreamWatch {
        StreamWatch {
            conns: Vec::new(),
            silent,
            detected,
        }
    }

    /// Tracks every stream of connection `conn` (`label` names it in logs); `watched` ones must
    /// deliver within `timeout`; `shared` receives each stream's last message time (parallel to
    /// `streams`).
    pub fn add(
        &mut self,
        conn: u32,
        label: String,
        streams: &[StreamSpec],
        timeout: std::time::Duration,
        shared: Option<Arc<[AtomicI64]>>,
    ) {
        let i = conn as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(ConnWatch {
            label,
            timeout_ns: timeout.as_nanos().min(i64::MAX as u128) as i64,
            index: streams
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
            names: streams.iter().map(|s| s.name.clone()).collect(),
            watched: streams.iter().map(|s| s.watched).collect(),
            last_ns: vec![0; streams.len()],
            shared,
            connected_at_ns: None,
            reported: 0,
        });
    }

    /// Streams `names` of `conn` were stopped on purpose (expired instruments): their silence is
    /// expected from now on.
    pub fn unwatch(&mut self, conn: u32, names: &[String]) {
        if let Some(Some(w)) = self.conns.get_mut(conn as usize) {
            for n in names {
                if let Some(&i) = w.index.get(n.as_str()) {
                    w.watched[i] = false;
                }
            }
        }
    }

    /// The connection (re)opened: every stream must prove itself again.
    pub fn on_connected(&mut self, conn: u32, now_ns: i64) {
        if let Some(Some(w)) = self.conns.get_mut(conn as usize) {
            self.silent.fetch_sub(w.reported as i64, Ordering::Relaxed);
            w.reported = 0;
            w.connected_at_ns = Some(now_ns);
        }
    }

    /// The connection closed: its silence is no longer a routing symptom.
    pub fn on_disconnected(&mut self, conn: u32) {
        if let Some(Some(w)) = self.conns.get_mut(conn as usize) {
            self.silent.fetch_sub(w.reported as i64, Ordering::Relaxed);
            w.reported = 0;
            w.connected_at_ns = None;
        }
    }

    /// A frame of `stream` arrived on `conn` at `ts`.
    #[inline]
    pub fn on_frame(&mut self, conn: u32, stream: &str, ts: i64) {
        let Some(Some(w)) = self.conns.get_mut(conn as usize) else {
            return;
        };
        if let Some(&i) = w.index.get(stream) {
            w.last_ns[i] = ts;
        }
    }

    /// Publishes freshness and reports streams silent past their deadline (about twice a second).
    pub fn check(&mut self, now_ns: i64) {
        for w in self.conns.iter_mut().flatten() {
            if let Some(shared) = &w.shared {
                for (a, v) in shared.iter().zip(&w.last_ns) {
                    a.store(*v, Ordering::Relaxed);
                }
            }
            let Some(at) = w.connected_at_ns else {
                continue;
            };
            if w.reported > 0 {
                // Recovered streams leave the silent count.
                let still = w.silent(at).count();
                if still < w.reported {
                    self.silent
                        .fetch_sub((w.reported - still) as i64, Ordering::Relaxed);
                    log::info!(
                        "event=stream_recovered conn={} recovered={} still_silent={still}",
                        w.label,
                        w.reported - still
                    );
                    w.reported = still;
                }
                continue;
            }
            if now_ns - at < w.timeout_ns {
                continue;
            }
            let mut silent: Vec<&str> = w.silent(at).collect();
            if silent.is_empty() {
                continue;
            }
            silent.sort_unstable();
            let n = silent.len();
            self.silent.fetch_add(n as i64, Ordering::Relaxed);
            self.detected.fetch_add(n as u64, Ordering::Relaxed);
            let shown: Vec<&str> = silent.iter().take(20).copied().collect();
            log::warn!(
                "event=stream_silent conn={} silent={} of={} after_ms={} streams=[{}] hint=\"no data on an open connection: wrong routed path, delisted symbol or unknown stream\"",
                w.label,
                silent.len(),
                w.watched.iter().filter(|w| **w).count(),
                (now_ns - at) / 1_000_000,
                shown.join(",")
            );
            w.reported = n;
        }
    }
}
