//! REST snapshots off the hot path: a small pool of threads with blocking HTTP (ureq + rustls),
//! sharing each REST host's request-weight budget with every other user of that host (polled
//! series), with priority: polls may use only part of a host's budget, the rest is kept for book
//! re-syncs ([`POLL_SHARE`]). Budgets are per host, so a 429 from one host pauses only it.
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
    /// When the body arrived (ns, realtime; 0 when none did): names the capture's body line.
    pub receive_ts_ns: i64,
}

/// Longest pause an exchange's `Retry-After` can impose (Binance IP bans last 2 minutes to 3
/// days); a larger or absurd value is capped, never trusted into an overflow.
pub const MAX_PAUSE: Duration = Duration::from_secs(3 * 86_400);

/// Attempts of one snapshot request answered with an error status other than 429/418 (400, 403,
/// 451, 5xx) or failing on the network, with exponential backoff from 1 s, before the failure is
/// reported to the book (which asks again later).
pub const MAX_ATTEMPTS: u32 = 5;

/// Runs `f` on the limiter even when another thread panicked while holding it: a poisoned lock
/// must not turn the budget off (fail closed: the state inside is still a valid budget).
pub fn with_limiter<R>(l: &Mutex<Limiter>, f: impl FnOnce(&mut Limiter) -> R) -> R {
    let mut g = l.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut g)
}

/// Share of a host's budget polled series may use; the rest is kept for book snapshots, so
/// polling many symbols never starves a re-sync.
pub const POLL_SHARE: f64 = 0.8;

/// A budget of request weight (or request count) per window, and the pause state of its host.
#[derive(Debug)]
pub struct Limiter {
    budget: u32,
    used: u32,
    window: Duration,
    window_start: Instant,
    paused_until: Option<Instant>,
    backoff: Duration,
}

impl Limiter {
    /// `budget_per_minute` of weight per minute (Binance: spot 6000, USD-M 2400 per IP).
    pub fn new(budget_per_minute: u32) -> Limiter {
        Limiter::per_window(budget_per_minute, Duration::from_secs(60))
    }

    /// `budget` per `window` (e.g. `fundingRate`: 500 requests per 5 minutes).
    pub fn per_window(budget: u32, window: Duration) -> Limiter {
        Limiter {
            budget: budget.max(1),
            used: 0,
            window: window.max(Duration::from_millis(1)),
            window_start: Instant::now(),
            paused_until: None,
            backoff: Duration::from_secs(1),
        }
    }

    /// Reserves `weight` now (`None`), or says how long to wait first.
    pub fn acquire(&mut self, weight: u32, now: Instant) -> Option<Duration> {
        self.acquire_within(weight, self.budget, now)
    }

    /// As [`Limiter::acquire`] for a lower-priority user that may only use `POLL_SHARE` of the
    /// budget.
    pub fn acquire_low(&mut self, weight: u32, now: Instant) -> Option<Duration> {
        let cap = ((self.budget as f64 * POLL_SHARE) as u32).max(1);
        self.acquire_within(weight, cap, now)
    }

    /// What [`Limiter::acquire`] would answer, without reserving anything.
    pub fn would_wait(&mut self, weight: u32, now: Instant) -> Option<Duration> {
        self.wait_for(weight, self.budget, now)
    }

    /// How long until `weight` fits under `cap` (paused host, spent window), or `None`.
    fn wait_for(&mut self, weight: u32, cap: u32, now: Instant) -> Option<Duration> {
        if let Some(p) = self.paused_until {
            if p > now {
                return Some(p - now);
            }
            self.paused_until = None;
        }
        // A new window once the current one has passed.
        if now.saturating_duration_since(self.window_start) >= self.window {
            self.window_start = now;
            self.used = 0;
        }
        if self.used > 0 && self.used.saturating_add(weight) > cap {
            let elapsed = now.saturating_duration_since(self.window_start);
            return Some(
                self.window
                    .saturating_sub(elapsed)
                    .max(Duration::from_millis(1)),
            );
        }
        None
    }

    fn acquire_within(&mut self, weight: u32, cap: u32, now: Instant) -> Option<Duration> {
        let wait = self.wait_for(weight, cap, now);
        if wait.is_none() {
            self.used = self.used.saturating_add(weight);
        }
        wait
    }

    fn pause(&mut self, now: Instant, wait: Duration) {
        let wait = wait.min(MAX_PAUSE);
        let until = now.checked_add(wait).unwrap_or(now);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
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
                self.backoff = self.backoff.saturating_mul(2).min(Duration::from_secs(60));
                self.pause(now, wait);
            }
            418 => self.pause(now, retry_after.unwrap_or(Duration::from_secs(120))),
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

/// One exchange plan's snapshot endpoint: where, how many levels, and its host's budget.
pub struct PoolSource {
    /// The plan's exchange and market names (capture lines).
    pub exchange: &'static str,
    pub market: &'static str,
    pub source: Arc<dyn SnapshotSource>,
    pub limit: u32,
    pub limiter: Arc<Mutex<Limiter>>,
}

/// Everything a worker needs.
pub struct Pool {
    /// Indexed by `SnapshotRequest::source`.
    pub sources: Vec<Option<PoolSource>>,
    pub requests: Receiver<SnapshotRequest>,
    pub replies: Vec<Sender<SnapshotResponse>>,
    /// Raw capture: each snapshot body as received.
    pub capture: Option<crate::capture::Tap>,
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
        let Some(Some(ps)) = p.sources.get(req.source as usize) else {
            continue;
        };
        let (src, limiter) = (&ps.source, &ps.limiter);
        let url = src.url(&req.symbol, ps.limit);
        let weight = src.weight(ps.limit);
        let mut attempts = 0u32;
        let mut receive_ts_ns = 0;
        let result = loop {
            if p.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let wait = with_limiter(limiter, |l| l.acquire(weight, Instant::now()));
            if let Some(w) = wait {
                sleep_checked(w, &p.shutdown);
                continue;
            }
            p.stats.requests.fetch_add(1, Ordering::Relaxed);
            // An error other than 429/418: back off exponentially, give up after MAX_ATTEMPTS
            // (the worker must not be held by one symbol forever).
            let mut failed = |why: String| -> Option<Result<Snapshot, String>> {
                p.stats.errors.fetch_add(1, Ordering::Relaxed);
                attempts += 1;
                log::warn!(
                    "event=rest_error url={} error=\"{why}\" attempt={attempts}/{MAX_ATTEMPTS}",
                    crate::setting::secret::url_shown(&url)
                );
                if attempts >= MAX_ATTEMPTS {
                    return Some(Err(format!("{why} ({attempts} attempts)")));
                }
                sleep_checked(Duration::from_secs(1 << (attempts - 1).min(6)), &p.shutdown);
                None
            };
            match agent.get(&url).call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let header = |name: &str| {
                        resp.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    };
                    let used = src
                        .used_weight_header()
                        .and_then(header)
                        .map(|u| u.min(u32::MAX as u64) as u32);
                    let retry_after = header("retry-after").map(Duration::from_secs);
                    with_limiter(limiter, |l| {
                        l.on_response(status, used, retry_after, Instant::now());
                        p.stats
                            .weight_used
                            .store(l.used() as i64, Ordering::Relaxed);
                    });
                    match status {
                        200 => match resp.body_mut().read_to_string() {
                            Ok(body) => {
                                receive_ts_ns = crate::clock::realtime_ns();
                                if let Some(c) = &p.capture {
                                    c.rest(
                                        ps.exchange,
                                        ps.market,
                                        &url,
                                        &req.symbol,
                                        receive_ts_ns,
                                        body.as_bytes(),
                                    );
                                }
                                break src.parse(&body);
                            }
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
                            if let Some(r) = failed(format!("HTTP {s}")) {
                                break r;
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Some(r) = failed(e.to_string()) {
                        break r;
                    }
                }
            }
        };
        if let Some(tx) = p.replies.get(req.parser) {
            let _ = tx.send(SnapshotResponse {
                source: req.source,
                symbol: req.symbol,
                result,
                receive_ts_ns,
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

    /// Polls stop at POLL_SHARE of the budget; snapshots may still use the rest.
    #[test]
    fn snapshots_keep_a_share_polls_cannot_take() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100);
        for _ in 0..80 {
            assert_eq!(l.acquire_low(1, t0), None);
        }
        assert!(l.acquire_low(1, t0).is_some(), "polls stop at 80 %");
        assert_eq!(l.acquire(20, t0), None, "a snapshot still fits");
        let mut f = Limiter::per_window(500, Duration::from_secs(300));
        let t0 = Instant::now();
        for _ in 0..500 {
            assert_eq!(f.acquire(1, t0), None);
        }
        let w = f.acquire(1, t0 + Duration::from_secs(60)).unwrap();
        assert!(
            w <= Duration::from_secs(240) && w > Duration::from_secs(239),
            "500 per 5 minutes: {w:?}"
        );
        assert_eq!(f.would_wait(1, t0 + Duration::from_secs(300)), None);
        assert_eq!(
            f.would_wait(1, t0 + Duration::from_secs(300)),
            None,
            "nothing reserved"
        );
    }

    /// A `Retry-After` of u64::MAX seconds neither panics nor lifts the budget: the pause is capped
    /// at MAX_PAUSE; a poisoned lock still answers with the budget (fail closed).
    #[test]
    fn huge_retry_after_is_capped_and_a_poisoned_lock_fails_closed() {
        let t0 = Instant::now();
        let l = Arc::new(Mutex::new(Limiter::new(100)));
        with_limiter(&l, |l| {
            l.on_response(418, None, Some(Duration::from_secs(u64::MAX)), t0)
        });
        let wait = with_limiter(&l, |l| l.acquire(1, t0)).expect("paused");
        assert_eq!(wait, MAX_PAUSE);
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.lock().unwrap();
            panic!("poison the limiter");
        })
        .join();
        assert!(l.is_poisoned());
        assert!(
            with_limiter(&l, |l| l.acquire(1, t0 + Duration::from_secs(1))).is_some(),
            "still paused after the poison"
        );
        with_limiter(&l, |l| l.on_response(200, Some(u64::MAX as u32), None, t0));
        assert!(with_limiter(&l, |l| l.acquire(u32::MAX, t0 + MAX_PAUSE)).is_none());
    }
}
