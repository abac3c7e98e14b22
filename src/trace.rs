//! OpenTelemetry spans over OTLP/HTTP (JSON encoding, `POST <endpoint>/v1/traces`) around the
//! operations that take time: `connect` (TCP + TLS + WebSocket handshake), `subscribe` (first
//! subscription sent to the last), `rollover`, `book_resync` (REST snapshot request to applied) and
//! `publish_batch` (one publisher pass over its rings; at most ten per second). Never per message.
//!
//! Behind the cargo feature `otlp` (default on; `--no-default-features` compiles it out) and the
//! config key `tracing.otlp_endpoint` (empty: off). Spans go through a bounded channel to one
//! exporter thread that batches them (every second or 512 spans); when the channel is full a span
//! is dropped and counted, so tracing can never slow the collector down.

/// An attribute value.
#[derive(Debug, Clone)]
pub enum AttrValue {
    Str(String),
    Int(i64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(v as i64)
    }
}
impl From<usize> for AttrValue {
    fn from(v: usize) -> Self {
        AttrValue::Int(v as i64)
    }
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: &'static str,
    pub start_ns: i64,
    pub end_ns: i64,
    pub attrs: Vec<(&'static str, AttrValue)>,
    /// `None`: ok; `Some(message)`: the operation failed.
    pub error: Option<String>,
}

/// True when spans are being exported (cheap check before building attributes).
#[inline]
pub fn enabled() -> bool {
    imp::enabled()
}

/// Records a finished span (no-op when tracing is off).
pub fn record(span: Span) {
    imp::record(span)
}

/// Starts the exporter (`endpoint` like `http://127.0.0.1:4318`). Errors when the binary was built
/// without the `otlp` feature.
pub fn start(endpoint: &str, service: &str) -> Result<(), String> {
    imp::start(endpoint, service)
}

/// Flushes what is queued (at shutdown).
pub fn flush() {
    imp::flush()
}

#[cfg(feature = "otlp")]
mod imp {
    use super::{AttrValue, Span};
    use crossbeam_channel::{Receiver, Sender, TrySendError};
    use serde_json::{Value, json};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    struct Exporter {
        tx: Sender<Msg>,
        dropped: AtomicU64,
    }

    enum Msg {
        Span(Span),
        Flush(Sender<()>),
    }

    static EXPORTER: OnceLock<Exporter> = OnceLock::new();

    pub fn enabled() -> bool {
        EXPORTER.get().is_some()
    }

    pub fn record(span: Span) {
        if let Some(e) = EXPORTER.get() {
            match e.tx.try_send(Msg::Span(span)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    e.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    pub fn flush() {
        if let Some(e) = EXPORTER.get() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if e.tx
                .send_timeout(Msg::Flush(tx), Duration::from_secs(1))
                .is_ok()
            {
                let _ = rx.recv_timeout(Duration::from_secs(3));
            }
        }
    }

    pub fn start(endpoint: &str, service: &str) -> Result<(), String> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let (tx, rx) = crossbeam_channel::bounded(8192);
        EXPORTER
            .set(Exporter {
                tx,
                dropped: AtomicU64::new(0),
            })
            .map_err(|_| "tracing already started".to_string())?;
        let service = service.to_string();
        std::thread::Builder::new()
            .name("otlp".into())
            .spawn(move || export_loop(&url, &service, rx))
            .map_err(|e| format!("spawn otlp thread: {e}"))?;
        log::info!(
            "event=tracing_started endpoint={}",
            crate::setting::secret::url_shown(endpoint)
        );
        Ok(())
    }

    fn export_loop(url: &str, service: &str, rx: Receiver<Msg>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut batch: Vec<Span> = Vec::new();
        let mut last = Instant::now();
        let mut failures = 0u64;
        loop {
            let msg = rx.recv_timeout(Duration::from_millis(200));
            let mut flush_ack = None;
            match msg {
                Ok(Msg::Span(s)) => batch.push(s),
                Ok(Msg::Flush(ack)) => flush_ack = Some(ack),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
            let due = batch.len() >= 512 || last.elapsed() >= Duration::from_secs(1);
            if !batch.is_empty() && (due || flush_ack.is_some()) {
                last = Instant::now();
                let body = encode(service, &batch);
                let n = batch.len();
                batch.clear();
                match agent
                    .post(url)
                    .header("Content-Type", "application/json")
                    .send(body.to_string().as_bytes())
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        failures += 1;
                        if failures <= 5 || failures.is_multiple_of(100) {
                            log::warn!(
                                "event=tracing_export_failed status={} spans={n} count={failures}",
                                r.status()
                            );
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures <= 5 || failures.is_multiple_of(100) {
                            log::warn!(
                                "event=tracing_export_failed error=\"{e}\" spans={n} count={failures}"
                            );
                        }
                    }
                }
            }
            if let Some(ack) = flush_ack {
                let _ = ack.send(());
            }
        }
    }

    /// 16 random-enough bytes as hex (trace ids need uniqueness, not secrecy).
    fn id_hex(bytes: usize, seed: &mut u64) -> String {
        let mut s = String::with_capacity(bytes * 2);
        for _ in 0..bytes.div_ceil(8) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            s.push_str(&format!("{:016x}", *seed));
        }
        s.truncate(bytes * 2);
        s
    }

    fn encode(service: &str, spans: &[Span]) -> Value {
        let mut seed = (crate::clock::realtime_ns() as u64) | 1;
        let spans: Vec<Value> = spans
            .iter()
            .map(|s| {
                let attrs: Vec<Value> = s
                    .attrs
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            AttrValue::Str(x) => json!({ "stringValue": x }),
                            AttrValue::Int(x) => json!({ "intValue": x.to_string() }),
                        };
                        json!({ "key": k, "value": v })
                    })
                    .collect();
                let status = match &s.error {
                    None => json!({ "code": 1 }),
                    Some(m) => json!({ "code": 2, "message": m }),
                };
                json!({
                    "traceId": id_hex(16, &mut seed),
                    "spanId": id_hex(8, &mut seed),
                    "name": s.name,
                    "kind": 1,
                    "startTimeUnixNano": s.start_ns.max(0).to_string(),
                    "endTimeUnixNano": s.end_ns.max(0).to_string(),
                    "attributes": attrs,
                    "status": status,
                })
            })
            .collect();
        json!({
            "resourceSpans": [{
                "resource": { "attributes": [
                    { "key": "service.name", "value": { "stringValue": service } },
                    { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
                ]},
                "scopeSpans": [{
                    "scope": { "name": "mdc" },
                    "spans": spans,
                }],
            }]
        })
    }
}

#[cfg(not(feature = "otlp"))]
mod imp {
    use super::Span;

    pub fn enabled() -> bool {
        false
    }
    pub fn record(_span: Span) {}
    pub fn flush() {}
    pub fn start(_endpoint: &str, _service: &str) -> Result<(), String> {
        Err("this binary was built without the `otlp` feature (cargo build --features otlp)".into())
    }
}
