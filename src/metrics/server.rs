//! The operations endpoint on `http.listen` (tiny_http, its own thread, off the hot path):
//! `/metrics` (Prometheus text), `/healthz` (200 while the process lives), `/readyz` (200 when every
//! configured connection is open and subscribed and every sink reachable, else 503), `/health` (the
//! deep JSON report: connections, sinks, per-stream freshness; 503 with reasons), `/status`
//! (process summary) and `/connections` (per connection: url, streams, state, age, messages, last
//! error).

use super::Metrics;
use crate::clock::realtime_ns;
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Prometheus mirrors of our counters, brought up to date at every scrape.
struct Exporter {
    registry: Registry,
    families: Vec<IntCounterVec>,
    connections: IntGauge,
    rss: IntGauge,
}

impl Exporter {
    fn new(m: &Metrics) -> Result<Exporter, prometheus::Error> {
        let registry = Registry::new();
        let mut families = Vec::new();
        for f in m.families() {
            let v = IntCounterVec::new(Opts::new(f.name, f.help), &[f.label])?;
            registry.register(Box::new(v.clone()))?;
            families.push(v);
        }
        // Seed E's name for events by stream type.
        let processed = IntCounterVec::new(
            Opts::new(
                "messages_processed_total",
                "Normalized events produced, by stream type.",
            ),
            &["stream_type"],
        )?;
        registry.register(Box::new(processed.clone()))?;
        families.push(processed);
        let connections = IntGauge::new(
            "websocket_connections",
            "Open exchange WebSocket connections.",
        )?;
        registry.register(Box::new(connections.clone()))?;
        let rss = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident set size of the process.",
        )?;
        registry.register(Box::new(rss.clone()))?;
        Ok(Exporter {
            registry,
            families,
            connections,
            rss,
        })
    }

    fn render(&self, m: &Metrics) -> Vec<u8> {
        let fams = m.families();
        let mut sources: Vec<&super::CounterFamily> = fams.iter().map(|a| a.as_ref()).collect();
        sources.push(&m.events);
        for (vec, fam) in self.families.iter().zip(sources) {
            for (value, total) in fam.values.iter().zip(fam.totals()) {
                let c = vec.with_label_values(&[*value]);
                c.inc_by(total.saturating_sub(c.get()));
            }
        }
        self.connections.set(m.connections.load(Ordering::Relaxed));
        self.rss.set(rss_bytes());
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        render_extras(m, &mut out);
        let mut text = String::new();
        m.latency.render(&mut text);
        m.publish_latency.render(&mut text);
        out.extend_from_slice(text.as_bytes());
        out
    }
}

/// Appends the components' own values (registered at startup) in Prometheus text format.
fn render_extras(m: &Metrics, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let extras = m.extra.lock().map(|e| e.clone()).unwrap_or_default();
    let mut text = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for e in &extras {
        if !seen.contains(&e.name) {
            seen.push(e.name);
            let t = match e.kind {
                super::ExtraKind::Counter(_) => "counter",
                _ => "gauge",
            };
            let _ = writeln!(text, "# HELP {} {}\n# TYPE {} {t}", e.name, e.help, e.name);
            // Every series of this name, together.
            for f in extras.iter().filter(|x| x.name == e.name) {
                let labels: Vec<String> = f
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                let value = match &f.kind {
                    super::ExtraKind::Counter(a) => a.load(Ordering::Relaxed).to_string(),
                    super::ExtraKind::Gauge(a) => a.load(Ordering::Relaxed).to_string(),
                    super::ExtraKind::GaugeF64(a) => {
                        f64::from_bits(a.load(Ordering::Relaxed)).to_string()
                    }
                };
                if labels.is_empty() {
                    let _ = writeln!(text, "{} {value}", f.name);
                } else {
                    let _ = writeln!(text, "{}{{{}}} {value}", f.name, labels.join(","));
                }
            }
        }
    }
    out.extend_from_slice(text.as_bytes());
}

/// Resident set size from `/proc/self/statm` (0 where unavailable).
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The deep health report: 200 when every connection is up and subscribed, every sink reachable
/// and every stream fresh; 503 with the reasons otherwise.
pub fn health(m: &Metrics) -> (u16, serde_json::Value) {
    let now = realtime_ns();
    let mut reasons: Vec<String> = Vec::new();
    if let Some(why) = m.not_ready() {
        reasons.push(why);
    }
    for (conn, stream, age, limit) in m.board.stale_streams(now) {
        let age = if age < 0 {
            "no message since the connection opened".to_string()
        } else {
            format!("last message {:.1} s ago", age as f64 / 1e9)
        };
        reasons.push(format!(
            "stream {stream} (connection {conn}) stale: {age}, limit {:.1} s",
            limit as f64 / 1e9
        ));
    }
    let sinks: Vec<serde_json::Value> = m
        .sinks
        .lock()
        .map(|s| {
            s.iter()
                .map(|h| {
                    serde_json::json!({
                        "name": h.name,
                        "reachable": h.reachable.load(Ordering::Relaxed),
                        "queue_depth": h.queue_depth.load(Ordering::Relaxed),
                        "spool_bytes": h.spool_bytes.load(Ordering::Relaxed),
                        "dropped": h.dropped.load(Ordering::Relaxed),
                        "last_error": h.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let healthy = reasons.is_empty();
    let doc = serde_json::json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "reasons": reasons,
        "connections": {
            "expected": m.connections_expected.load(Ordering::Relaxed),
            "open": m.connections.load(Ordering::Relaxed),
            "subscribed": m.connections_subscribed.load(Ordering::Relaxed),
        },
        "sinks": sinks,
        "streams": m.board.streams_json(now),
    });
    (if healthy { 200 } else { 503 }, doc)
}

/// Process summary for `/status`.
pub fn status(m: &Metrics) -> serde_json::Value {
    let now = realtime_ns();
    let events: u64 = m.events.totals().iter().sum();
    let conns = m.board.all();
    let count = |s: super::health::ConnState| conns.iter().filter(|c| c.state() == s).count();
    use super::health::ConnState as S;
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": (now - m.started_ns) as f64 / 1e9,
        "info": m.info.lock().map(|i| i.clone()).unwrap_or_default(),
        "ready": m.not_ready().is_none(),
        "events_total": events,
        "rss_bytes": rss_bytes(),
        "connections": {
            "expected": m.connections_expected.load(Ordering::Relaxed),
            "subscribed": count(S::Subscribed),
            "rolling_over": count(S::RollingOver),
            "open": count(S::Open),
            "connecting": count(S::Connecting),
            "down": count(S::Down),
        },
    })
}

pub fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1)
}

/// Starts the endpoint; returns `None` when `listen` is empty.
/// `admin`: the configuration file `POST /admin/reload` re-reads (`http.admin: true`).
pub fn start(
    listen: &str,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    admin: Option<std::path::PathBuf>,
) -> Result<Option<JoinHandle<()>>, String> {
    if listen.is_empty() {
        return Ok(None);
    }
    let server =
        tiny_http::Server::http(listen).map_err(|e| format!("http.listen {listen}: {e}"))?;
    let exporter = Exporter::new(&metrics).map_err(|e| format!("metrics: {e}"))?;
    log::info!("event=http_listening addr={listen}");
    let handle = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let req = match server.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        log::warn!("event=http_error error={e}");
                        continue;
                    }
                };
                let path = req.url().split('?').next().unwrap_or("").to_string();
                let (code, body, ctype) = match path.as_str() {
                    "/metrics" => (200, exporter.render(&metrics), "text/plain; version=0.0.4"),
                    "/healthz" => (200, b"ok\n".to_vec(), "text/plain"),
                    "/readyz" => match metrics.not_ready() {
                        None => (200, b"ready\n".to_vec(), "text/plain"),
                        Some(why) => (
                            503,
                            format!("not ready: {why}\n").into_bytes(),
                            "text/plain",
                        ),
                    },
                    "/health" => {
                        let (code, doc) = health(&metrics);
                        (code, json_bytes(&doc), "application/json")
                    }
                    "/status" => (200, json_bytes(&status(&metrics)), "application/json"),
                    "/connections" => (
                        200,
                        json_bytes(&metrics.board.connections_json(realtime_ns())),
                        "application/json",
                    ),
                    "/admin/reload" => match (&admin, req.method()) {
                        (None, _) => (404, b"not found (http.admin is off)\n".to_vec(), "text/plain"),
                        (Some(_), m) if *m != tiny_http::Method::Post => {
                            (405, b"POST only\n".to_vec(), "text/plain")
                        }
                        // Checked here so the caller gets the reason; applied by the main thread.
                        (Some(path), _) => match crate::config::Config::load(path) {
                            Err(e) => (
                                400,
                                format!("rejected: {e}\nthe running configuration stays\n")
                                    .into_bytes(),
                                "text/plain",
                            ),
                            Ok(_) => {
                                metrics.reload_requested.store(true, Ordering::Relaxed);
                                (
                                    202,
                                    b"reload requested: exchanges' symbols and channels are applied (log: event=reload_applied)\n"
                                        .to_vec(),
                                    "text/plain",
                                )
                            }
                        },
                    },
                    _ => (404, b"not found\n".to_vec(), "text/plain"),
                };
                let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes());
                let mut resp = tiny_http::Response::from_data(body).with_status_code(code);
                if let Ok(h) = header {
                    resp = resp.with_header(h);
                }
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| format!("spawn http thread: {e}"))?;
    Ok(Some(handle))
}
