//! A REST-polled series as an exchange adapter describes it (`Exchange::poll_jobs`); the poller
//! thread (`pipeline::poller`) runs the jobs of every exchange.

use crate::book::rest::Limiter;
use crate::event::Event;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Parses a response body into events newer than `since_ns` (exchange time); returns the newest
/// point's time it emitted.
pub type ParseFn = Box<
    dyn FnMut(&str, i64, &mut Event, &mut dyn FnMut(&Event)) -> Result<Option<i64>, String> + Send,
>;

/// One polled series of one symbol.
pub struct PollJob {
    pub name: String,
    pub url: String,
    /// Request weight on the host's budget.
    pub weight: u32,
    /// The host's weight budget (shared with book snapshots; set by the topology).
    pub host: Option<Arc<Mutex<Limiter>>>,
    /// The response header in which the exchange reports the weight used on the host (Binance:
    /// `x-mbx-used-weight-1m`); when it is higher than our own count, it wins.
    pub used_weight_header: Option<&'static str>,
    /// The endpoint's own request limit (one request per call), if it has one.
    pub endpoint: Option<Arc<Mutex<Limiter>>>,
    pub interval: Duration,
    /// First run after this delay (spreads jobs evenly over the interval).
    pub offset: Duration,
    pub parse: ParseFn,
    /// Newest point published so far (exchange time, ns).
    pub newest_ns: i64,
    /// The reusable event the parser fills.
    pub event: Event,
}
