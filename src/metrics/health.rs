//! What `/health`, `/status` and `/connections` report: per connection its state, and per stream
//! the age of its last message against a freshness limit.
//!
//! Written off the per-message path: the connector and readers update a connection's state on
//! transitions, readers publish message counts every 10 ms, parsers publish each stream's last
//! message time about every 500 ms. The HTTP thread only reads.

use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Life stage of a configured connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    Connecting = 0,
    Open = 1,
    Subscribed = 2,
    Down = 3,
    /// Subscribed, with a replacement session overlapping (planned rollover).
    RollingOver = 4,
}

impl ConnState {
    fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::Open,
            2 => ConnState::Subscribed,
            3 => ConnState::Down,
            4 => ConnState::RollingOver,
            _ => ConnState::Connecting,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Open => "open",
            ConnState::Subscribed => "subscribed",
            ConnState::Down => "down",
            ConnState::RollingOver => "rolling_over",
        }
    }
}

/// One configured connection, as operators see it.
pub struct ConnStatus {
    pub conn: u32,
    pub exchange: &'static str,
    pub url: String,
    pub streams: Vec<String>,
    state: AtomicU8,
    pub session: AtomicU32,
    /// When the live session opened (ns, realtime; 0 = never).
    pub opened_ns: AtomicI64,
    /// Text messages read on this connection, all sessions.
    pub messages: AtomicU64,
    pub reconnects: AtomicU64,
    pub rollovers: AtomicU64,
    last_error: Mutex<String>,
    /// Last message time per stream (ns, realtime; 0 = none yet), parallel to `streams`.
    pub last_message_ns: Arc<[AtomicI64]>,
    /// Freshness limit per stream (ns; 0 = none, e.g. sparse liquidations), parallel to `streams`.
    pub stale_after_ns: Vec<i64>,
}

impl std::fmt::Debug for ConnStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnStatus")
            .field("conn", &self.conn)
            .field("url", &self.url)
            .field("state", &self.state())
            .finish()
    }
}

impl ConnStatus {
    pub fn set_state(&self, s: ConnState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_error(&self, e: &str) {
        if let Ok(mut g) = self.last_error.lock() {
            g.clear();
            g.push_str(e);
        }
    }

    fn error(&self) -> String {
        self.last_error
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }
}

/// Every connection's status, registered at startup.
#[derive(Default)]
pub struct StatusBoard {
    conns: Mutex<Vec<Arc<ConnStatus>>>,
}

impl StatusBoard {
    /// Registers a connection with its streams and their freshness limits.
    pub fn add(
        &self,
        conn: u32,
        exchange: &'static str,
        url: &str,
        streams: &[String],
        stale_after_ns: Vec<i64>,
    ) -> Arc<ConnStatus> {
        let s = Arc::new(ConnStatus {
            conn,
            exchange,
            // Shown by `/connections`: without user info.
            url: crate::setting::secret::url_shown(url).into_owned(),
            streams: streams.to_vec(),
            state: AtomicU8::new(ConnState::Connecting as u8),
            session: AtomicU32::new(0),
            opened_ns: AtomicI64::new(0),
            messages: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            rollovers: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            last_message_ns: streams.iter().map(|_| AtomicI64::new(0)).collect(),
            stale_after_ns,
        });
        if let Ok(mut c) = self.conns.lock() {
            c.push(s.clone());
        }
        s
    }

    pub fn all(&self) -> Vec<Arc<ConnStatus>> {
        self.conns.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Streams past their freshness limit on a connection that is up: (connection, stream, age
    /// ns or -1 when nothing arrived yet, limit ns).
    pub fn stale_streams(&self, now: i64) -> Vec<(u32, String, i64, i64)> {
        let mut out = Vec::new();
        for c in self.all() {
            if !matches!(c.state(), ConnState::Subscribed | ConnState::RollingOver) {
                continue;
            }
            let opened = c.opened_ns.load(Ordering::Relaxed);
            for (i, name) in c.streams.iter().enumerate() {
                let limit = c.stale_after_ns[i];
                if limit <= 0 {
                    continue;
                }
                let last = c.last_message_ns[i].load(Ordering::Relaxed);
                // Measured from the later of the last message and the session's start.
                let since = last.max(opened);
                if since > 0 && now - since > limit {
                    let age = if last > 0 { now - last } else { -1 };
                    out.push((c.conn, name.clone(), age, limit));
                }
            }
        }
        out
    }

    /// The `/connections` document.
    pub fn connections_json(&self, now: i64) -> Value {
        let conns: Vec<Value> = self
            .all()
            .iter()
            .map(|c| {
                let opened = c.opened_ns.load(Ordering::Relaxed);
                json!({
                    "id": c.conn,
                    "exchange": c.exchange,
                    "url": c.url,
                    "state": c.state().as_str(),
                    "session": c.session.load(Ordering::Relaxed),
                    "age_s": if opened > 0 { (now - opened) as f64 / 1e9 } else { 0.0 },
                    "messages": c.messages.load(Ordering::Relaxed),
                    "reconnects": c.reconnects.load(Ordering::Relaxed),
                    "rollovers": c.rollovers.load(Ordering::Relaxed),
                    "last_error": c.error(),
                    "stream_count": c.streams.len(),
                    "streams": c.streams,
                })
            })
            .collect();
        json!({ "connections": conns })
    }

    /// Per stream freshness, for `/health`.
    pub fn streams_json(&self, now: i64) -> Vec<Value> {
        let mut out = Vec::new();
        for c in self.all() {
            let opened = c.opened_ns.load(Ordering::Relaxed);
            let up = matches!(c.state(), ConnState::Subscribed | ConnState::RollingOver);
            for (i, name) in c.streams.iter().enumerate() {
                let last = c.last_message_ns[i].load(Ordering::Relaxed);
                let limit = c.stale_after_ns[i];
                let since = last.max(opened);
                let stale = up && limit > 0 && since > 0 && now - since > limit;
                out.push(json!({
                    "stream": name,
                    "exchange": c.exchange,
                    "connection": c.conn,
                    "last_message_age_s": if last > 0 { Some((now - last) as f64 / 1e9) } else { None },
                    "stale_after_s": if limit > 0 { Some(limit as f64 / 1e9) } else { None },
                    "fresh": !stale,
                }));
            }
        }
        out
    }
}
