//! REST-polled series (open interest, long/short ratios, funding history): one thread runs every
//! exchange's poll jobs on their schedules, inside their host's request-weight budget (at low
//! priority: book snapshots keep a share polls cannot take) and their endpoint's own limit, and
//! writes each *new* data point as a record into its own ring to the publisher.
//!
//! A job remembers the time of the newest point it published, so a point the exchange returns
//! again is never published twice; its events carry the point's own time as `exchange_ts_ns`.

use super::parser::fill;
use super::ring::Producer;
use crate::book::rest::with_limiter;
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::event::Event;
use crate::exchange::poll_job::PollJob;
use crate::metrics::LogThrottle;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The poller thread.
pub struct Poller {
    pub jobs: Vec<PollJob>,
    pub output: Producer<Record>,
    pub formats: Formats,
    pub points: Arc<AtomicU64>,
    pub errors: Arc<AtomicU64>,
    pub shutdown: Arc<AtomicBool>,
}

impl Poller {
    pub fn run(mut self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let start = Instant::now();
        let mut due: Vec<Instant> = self.jobs.iter().map(|j| start + j.offset).collect();
        let mut log = LogThrottle::default();
        let mut wait_log = LogThrottle::default();
        while !self.shutdown.load(Ordering::Relaxed) {
            let Some((i, at)) = due
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| **d)
                .map(|(i, d)| (i, *d))
            else {
                return;
            };
            let now = Instant::now();
            if at > now {
                std::thread::sleep((at - now).min(Duration::from_millis(50)));
                continue;
            }
            let job = &mut self.jobs[i];
            // The endpoint's limit first (nothing reserved), then the host's budget, then the
            // endpoint's request: no weight is spent on a call that must wait anyway.
            let wait = job
                .endpoint
                .as_ref()
                .and_then(|e| with_limiter(e, |l| l.would_wait(1, now)))
                .or_else(|| {
                    job.host
                        .as_ref()
                        .and_then(|h| with_limiter(h, |l| l.acquire_low(job.weight, now)))
                });
            if let Some(w) = wait {
                // Not before the limit allows (the job keeps its place; others may run).
                due[i] = now + w.min(Duration::from_secs(60));
                if wait_log.hit() {
                    log::warn!(
                        "event=rest_poll_waiting job={} wait_ms={} count={} note=\"request limit reached (host budget share or the endpoint's own limit)\"",
                        job.name,
                        w.as_millis(),
                        wait_log.count()
                    );
                }
                continue;
            }
            if let Some(e) = &job.endpoint {
                with_limiter(e, |l| l.acquire(1, now));
            }
            due[i] = at.max(now - job.interval) + job.interval;
            let result = match agent.get(&job.url).call() {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok())
                        .map(Duration::from_secs);
                    let used = job
                        .used_weight_header
                        .and_then(|h| resp.headers().get(h))
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse().ok());
                    // 429/418 concern the IP: they pause the host's budget.
                    if let Some(h) = &job.host {
                        with_limiter(h, |l| {
                            l.on_response(status, used, retry_after, Instant::now())
                        });
                    }
                    match (status, resp.body_mut().read_to_string()) {
                        (200, Ok(body)) => Ok(body),
                        (s, _) => Err(format!("HTTP {s}")),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let out = &mut self.output;
            let formats = self.formats;
            let points = &self.points;
            let parsed = result.and_then(|body| {
                (job.parse)(&body, job.newest_ns, &mut job.event, &mut |ev: &Event| {
                    points.fetch_add(1, Ordering::Relaxed);
                    while out.write_with(|r| fill(r, ev, formats)).is_none() {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                })
            });
            match parsed {
                Ok(Some(newest)) => job.newest_ns = job.newest_ns.max(newest),
                Ok(None) => {}
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    if log.hit() {
                        log::warn!(
                            "event=poll_failed job={} url={} error=\"{e}\" count={}",
                            job.name,
                            crate::setting::secret::url_shown(&job.url),
                            log.count()
                        );
                    }
                }
            }
        }
    }
}
