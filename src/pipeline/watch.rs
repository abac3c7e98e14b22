//! Silent-stream detection, in the parser that decodes a connection: a watched stream that has
//! delivered nothing `silence_timeout` after its connection opened, while the connection is up, is
//! reported once (log `event=stream_silent`, gauge `streams_silent`, counter
//! `stream_silence_detected_total`). The typical cause is a USD-M stream on the wrong routed path,
//! which Binance accepts and then never feeds.
//!
//! Cheap on the hot path: once every watched stream of a connection has been seen, a frame costs
//! one integer comparison.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

struct ConnWatch {
    label: String,
    timeout_ns: i64,
    seen: HashMap<String, bool>,
    unseen: usize,
    connected_at_ns: Option<i64>,
    reported: usize,
}

/// The watches of one parser's connections.
pub struct StreamWatch {
    conns: HashMap<u32, ConnWatch>,
    silent: Arc<AtomicI64>,
    detected: Arc<AtomicU64>,
}

impl StreamWatch {
    pub fn new(silent: Arc<AtomicI64>, detected: Arc<AtomicU64>) -> StreamWatch {
        StreamWatch {
            conns: HashMap::new(),
            silent,
            detected,
        }
    }

    /// Watches `streams` of connection `conn` (`label` names it in logs).
    pub fn add(
        &mut self,
        conn: u32,
        label: String,
        streams: &[String],
        timeout: std::time::Duration,
    ) {
        self.conns.insert(
            conn,
            ConnWatch {
                label,
                timeout_ns: timeout.as_nanos().min(i64::MAX as u128) as i64,
                seen: streams.iter().map(|s| (s.clone(), false)).collect(),
                unseen: streams.len(),
                connected_at_ns: None,
                reported: 0,
            },
        );
    }

    /// The connection (re)opened: every stream must prove itself again.
    pub fn on_connected(&mut self, conn: u32, now_ns: i64) {
        if let Some(w) = self.conns.get_mut(&conn) {
            self.silent.fetch_sub(w.reported as i64, Ordering::Relaxed);
            w.seen.values_mut().for_each(|s| *s = false);
            w.unseen = w.seen.len();
            w.reported = 0;
            w.connected_at_ns = Some(now_ns);
        }
    }

    /// The connection closed: its silence is no longer a routing symptom.
    pub fn on_disconnected(&mut self, conn: u32) {
        if let Some(w) = self.conns.get_mut(&conn) {
            self.silent.fetch_sub(w.reported as i64, Ordering::Relaxed);
            w.reported = 0;
            w.connected_at_ns = None;
        }
    }

    /// A frame of `stream` arrived on `conn`.
    #[inline]
    pub fn on_frame(&mut self, conn: u32, stream: &str) {
        let Some(w) = self.conns.get_mut(&conn) else {
            return;
        };
        if w.unseen == 0 {
            return;
        }
        if let Some(seen) = w.seen.get_mut(stream)
            && !*seen
        {
            *seen = true;
            w.unseen -= 1;
            if w.reported > 0 {
                w.reported -= 1;
                self.silent.fetch_sub(1, Ordering::Relaxed);
                log::info!("event=stream_recovered conn={} stream={stream}", w.label);
            }
        }
    }

    /// Reports streams silent past their deadline (call about once a second).
    pub fn check(&mut self, now_ns: i64) {
        for w in self.conns.values_mut() {
            let Some(at) = w.connected_at_ns else {
                continue;
            };
            if w.unseen == 0 || w.reported > 0 || now_ns - at < w.timeout_ns {
                continue;
            }
            let mut silent: Vec<&str> = w
                .seen
                .iter()
                .filter(|(_, s)| !**s)
                .map(|(n, _)| n.as_str())
                .collect();
            silent.sort_unstable();
            w.reported = silent.len();
            self.silent
                .fetch_add(silent.len() as i64, Ordering::Relaxed);
            self.detected
                .fetch_add(silent.len() as u64, Ordering::Relaxed);
            let shown: Vec<&str> = silent.iter().take(20).copied().collect();
            log::warn!(
                "event=stream_silent conn={} silent={} of={} after_ms={} streams=[{}] hint=\"no data on an open connection: wrong routed path, delisted symbol or unknown stream\"",
                w.label,
                silent.len(),
                w.seen.len(),
                (now_ns - at) / 1_000_000,
                shown.join(",")
            );
        }
    }
}
