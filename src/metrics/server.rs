//! The operations endpoint on `http.listen` ([`super::http`], its own threads, off the hot path):
//! `/metrics` (Prometheus text), `/healthz` (200 while the process lives), `/readyz` (200 when every
//! configured connection is open and subscribed and every sink reachable, else 503), `/health` (the
//! deep JSON report: connections, sinks, per-stream freshness; 503 with reasons), `/status`
//! (process summary) and `/connections` (per connection: url, streams, state, age, messages, last
//! error).

use super::Metrics;
use super::http::{Request, Response};
use crate::clock::realtime_ns;
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

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

/// `POST /admin/reload` access: off (`None`), or the config file it re-reads and whether
/// clients other than loopback may ask (`http.admin_remote`).
pub struct Admin {
    pub config: std::path::PathBuf,
    pub remote: bool,
}

/// Starts the endpoint; returns `None` when `listen` is empty.
pub fn start(
    listen: &str,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    admin: Option<Admin>,
) -> Result<Option<JoinHandle<()>>, String> {
    if listen.is_empty() {
        return Ok(None);
    }
    let listener =
        std::net::TcpListener::bind(listen).map_err(|e| format!("http.listen {listen}: {e}"))?;
    let exporter =
        std::sync::Mutex::new(Exporter::new(&metrics).map_err(|e| format!("metrics: {e}"))?);
    log::info!("event=http_listening addr={listen}");
    let handler = move |req: &Request| -> Response {
        let json = |code, v: &serde_json::Value| Response {
            code,
            content_type: "application/json",
            body: json_bytes(v),
        };
        match req.path.as_str() {
            "/metrics" => Response {
                code: 200,
                content_type: "text/plain; version=0.0.4",
                body: exporter
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .render(&metrics),
            },
            "/healthz" => Response::text(200, "ok\n"),
            "/readyz" => match metrics.not_ready() {
                None => Response::text(200, "ready\n"),
                Some(why) => Response::text(503, format!("not ready: {why}\n")),
            },
            "/health" => {
                let (code, doc) = health(&metrics);
                json(code, &doc)
            }
            "/status" => json(200, &status(&metrics)),
            "/connections" => json(200, &metrics.board.connections_json(realtime_ns())),
            "/admin/reload" => match &admin {
                None => Response::text(404, "not found (http.admin is off)\n"),
                Some(a) if !a.remote && !req.peer.ip().is_loopback() => Response::text(
                    403,
                    "admin endpoints answer loopback clients only (http.admin_remote)\n",
                ),
                Some(_) if req.method != "POST" => Response::text(405, "POST only\n"),
                // Checked here so the caller gets the reason; applied by the main thread.
                Some(a) => match crate::config::Config::load(&a.config) {
                    Err(e) => Response::text(
                        400,
                        format!("rejected: {e}\nthe running configuration stays\n"),
                    ),
                    Ok(_) => {
                        metrics.reload_requested.store(true, Ordering::Relaxed);
                        Response::text(
                            202,
                            "reload requested: exchanges' symbols and channels are applied (log: event=reload_applied)\n",
                        )
                    }
                },
            },
            _ => Response::text(404, "not found\n"),
        }
    };
    let handle = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || super::http::serve(listener, stop, Arc::new(handler)))
        .map_err(|e| format!("spawn http thread: {e}"))?;
    Ok(Some(handle))
}
