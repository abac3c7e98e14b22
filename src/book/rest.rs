//! REST snapshots off the hot path: a small pool of threads with blocking HTTP (ureq + rustls),
//! sharing one request-weight budget per minute with every other REST user of the exchange.
//!
//! Discipline (EXCHANGES.md 4.1, user item 5): at most `max_concurrent_snapshots` requests at once;
//! each request's weight is reserved against `rest_weight_budget` per minute before it is sent; the
//! exchange's own count (`X-MBX-USED-WEIGHT-1M`) wins when it is higher; HTTP 429 pauses all requests
//! (Retry-After, else exponential from 1 s); HTTP 418 (IP ban) stops all requests until Retry-After.

use super::sync::Snapshot;
use crossbeam_channel::{Receiver, Sender};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one exchange serves book snapshots.
pub trait SnapshotSource: Send + Sync + fmt::Debug {
    /// URL of a snapshot of `symbol` with `limit` levels per side.
    fn url(&self, symbol: &str, limit: u32) -> String;
    /// Request weight of that call.
    fn weight(&self, limit: u32) -> u32;
    /// Parses the response body.
    fn parse(&self, body: &str) -> Result<Snapshot, String>;
    /// Header carrying the exchange's count of weight used in the current minute.
    fn used_weight_header(&self) -> Option<&'static str>;
}

/// A request from a parser thread.
#[derive(Debug)]
pub struct SnapshotRequest {
    pub parser: usize,
    pub source: u16,
    pub symbol: String,
}

/// The answer, sent back to the requesting parser.
#[derive(Debug)]
pub struct SnapshotResponse {
    pub source: u16,
    pub symbol: String,
    pub result: Result<Snapshot, String>,
}

/// The shared weight budget and pause state.
#[derive(Debug)]
pub struct Limiter {
    budget: u32,
    used: u32,
    window_start: Instant,
    paused_until: Option<Instant>,
    backoff: Duration,
}

impl Limiter {
    pub fn new(budget_per_minute: u32) -> Limiter {
        Limiter {
            budget: budget_per_minute.max(1),
            used: 0,
            window_start: Instant::now(),
            paused_until: None,
            backoff: Duration::from_secs(1),
        }
    }

    /// Reserves `weight` now (`None`), or says how long to wait first.
    pub fn acquire(&mut self, weight: u32, now: Instant) -> Option<Duration> {
        if let Some(p) = self.paused_until {
            if p > now {
                return Some(p - now);
            }
            self.paused_until = None;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(60) {
            self.window_start = now;
            self.used = 0;
        }
        if self.used > 0 && self.used + weight > self.budget {
            return Some(self.window_start + Duration::from_secs(60) - now);
        }
        self.used += weight;
        None
    }

    /// Takes the response into account: the exchange's weight count, 429 and 418.
    pub fn on_response(
        &mut self,
        status: u16,
        used: Option<u32>,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        if let Some(u) = used {
            self.used = self.used.max(u);
        }
        match status {
            429 => {
                let wait = retry_after.unwrap_or(self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
                self.paused_until = Some(now + wait);
            }
            418 => {
                self.paused_until = Some(now + retry_after.unwrap_or(Duration::from_secs(120)));
            }
            200..=299 => self.backoff = Duration::from_secs(1),
            _ => {}
        }
    }

    /// Weight counted in the current minute.
    pub fn used(&self) -> u32 {
        self.used
    }
}

/// Counters of the pool (exported by `/metrics`).
#[derive(Clone)]
pub struct RestStats {
    pub requests: Arc<AtomicU64>,
    pub throttled: Arc<AtomicU64>,
    pub banned: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    pub weight_used: Arc<AtomicI64>,
}

/// Everything a worker needs.
pub struct Pool {
    pub sources: Vec<Option<Arc<dyn SnapshotSource>>>,
    pub limit: u32,
    pub requests: Receiver<SnapshotRequest>,
    pub replies: Vec<Sender<SnapshotResponse>>,
    pub limiter: Arc<Mutex<Limiter>>,
    pub stats: RestStats,
    pub shutdown: Arc<AtomicBool>,
}

/// Starts `workers` threads serving snapshot requests.
pub fn start(pool: Pool, workers: usize) {
    let pool = Arc::new(pool);
    for i in 0..workers.max(1) {
        let p = pool.clone();
        let _ = std::thread::Builder::new()
            .name(format!("rest-{i}"))
            .spawn(move || worker(&p));
    }
}

fn sleep_checked(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
}

fn worker(p: &Pool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into();
    while !p.shutdown.load(Ordering::Relaxed) {
        let req = match p.requests.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let Some(Some(src)) = p.sources.get(req.source as usize) else {
            continue;
        };
        let url = src.url(&req.symbol, p.limit);
        let weight = src.weight(p.limit);
        let result = loop {
            if p.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let wait = p
                .limiter
                .lock()
                .ok()
                .and_then(|mut l| l.acquire(weight, Instant::now()));
            if let Some(w) = wait {
                sleep_checked(w, &p.shutdown);
                continue;
            }
            p.stats.requests.fetch_add(1, Ordering::Relaxed);
            match agent.get(&url).call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let header = |name: &str| {
                        resp.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    };
                    let used = src.used_weight_header().and_then(header).map(|u| u as u32);
                    let retry_after = header("retry-after").map(Duration::from_secs);
                    if let Ok(mut l) = p.limiter.lock() {
                        l.on_response(status, used, retry_after, Instant::now());
                        p.stats
                            .weight_used
                            .store(l.used() as i64, Ordering::Relaxed);
                    }
                    match status {
                        200 => match resp.body_mut().read_to_string() {
                            Ok(body) => break src.parse(&body),
                            Err(e) => break Err(format!("read body: {e}")),
                        },
                        429 => {
                            p.stats.throttled.fetch_add(1, Ordering::Relaxed);
                            log::warn!(
                                "event=rest_throttled status=429 symbol={} retry_after_s={:?} note=\"pausing snapshot requests\"",
                                req.symbol,
                                retry_after.map(|d| d.as_secs())
                            );
                        }
                        418 => {
                            p.stats.banned.fetch_add(1, Ordering::Relaxed);
                            log::error!(
                                "event=rest_banned status=418 symbol={} retry_after_s={:?} note=\"no REST request until then\"",
                                req.symbol,
                                retry_after.map(|d| d.as_secs())
                            );
                        }
                        s => {
                            p.stats.errors.fetch_add(1, Ordering::Relaxed);
                            log::warn!("event=rest_error status={s} url={url}");
                            sleep_checked(Duration::from_secs(1), &p.shutdown);
                        }
                    }
                }
                Err(e) => {
                    p.stats.errors.fetch_add(1, Ordering::Relaxed);
                    log::warn!("event=rest_error url={url} error=\"{e}\"");
                    sleep_checked(Duration::from_secs(1), &p.shutdown);
                }
            }
        };
        if let Some(tx) = p.replies.get(req.parser) {
            let _ = tx.send(SnapshotResponse {
                source: req.source,
                symbol: req.symbol,
                result,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_429_and_418() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100);
        assert_eq!(l.acquire(50, t0), None);
        assert_eq!(l.acquire(50, t0), None);
        assert!(l.acquire(50, t0).is_some(), "budget spent for this minute");
        assert_eq!(
            l.acquire(50, t0 + Duration::from_secs(61)),
            None,
            "new minute"
        );
        let t1 = t0 + Duration::from_secs(61);
        l.on_response(429, Some(60), None, t1);
        assert_eq!(
            l.acquire(1, t1 + Duration::from_millis(500)),
            Some(Duration::from_millis(500))
        );
        l.on_response(418, None, Some(Duration::from_secs(30)), t1);
        assert!(l.acquire(1, t1 + Duration::from_secs(29)).is_some());
        assert_eq!(l.acquire(1, t1 + Duration::from_secs(31)), None);
    }
}
