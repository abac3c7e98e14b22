//! Stage 5: where records end up. A sink is one folder (or file) plus one line in [`REGISTRY`].
//!
//! Contract: `write` is called on the publisher thread for every record, in the order the parsers
//! produced them per connection; it must not block on anything but its own I/O, and buffer as it
//! likes. `tick` is called at least every millisecond when the publisher is idle, for time-based
//! flushing. `close` flushes everything and is called once at shutdown.

pub mod drops;
pub mod file;
pub mod intern;
pub mod kafka;
pub mod nats;
pub mod null;
pub mod postgres;
pub mod spool;
pub mod threaded;

use crate::encode::Formats;
use crate::encode::record::Record;
use crate::metrics::Metrics;
use crate::setting::ConfigError;
use std::fmt;
use std::sync::Arc;

/// Every known sink; the config section name is the factory's `name()`.
pub static REGISTRY: &[&dyn SinkFactory] = &[
    &file::FACTORY,
    &kafka::FACTORY,
    &nats::FACTORY,
    &null::FACTORY,
    &postgres::FACTORY,
];

/// Builds a plan from a sink's config section (`sinks.<name>`).
pub trait SinkFactory: Sync {
    fn name(&self) -> &'static str;
    /// Validates the section; `Ok(None)` when it is disabled.
    fn plan(&self, section: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError>;
}

/// A validated sink configuration; `start` opens it (off the hot path, before data flows).
pub trait SinkPlan: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;
    /// Encodings this sink reads from a [`Record`].
    fn formats(&self) -> Formats;
    /// The section with defaults filled in, for `mdc check-config`.
    fn effective(&self) -> serde_yaml::Value;
    /// Opens the sink (before data flows); it registers its own metrics and health in `metrics`.
    fn start(&self, metrics: &Arc<Metrics>) -> Result<Box<dyn Sink>, SinkError>;
    /// For a sink whose writes block on its own I/O (file, PostgreSQL): its queue and
    /// backpressure when it runs behind [`threaded::Threaded`], which it does whenever it shares
    /// the publisher with another sink. `None`: the sink queues on its own (Kafka, NATS) or never
    /// waits (null).
    fn queue_policy(&self) -> Option<threaded::QueuePolicy> {
        None
    }
    /// Opens the sink knowing which symbols the configuration subscribes: a sink that creates
    /// resources per symbol (Kafka topics) creates them for those only, never for whatever
    /// symbol network data names.
    fn start_for(
        &self,
        metrics: &Arc<Metrics>,
        _subscribed: &Subscribed,
    ) -> Result<Box<dyn Sink>, SinkError> {
        self.start(metrics)
    }
}

/// The symbols each configured market subscribes.
#[derive(Debug, Clone, Default)]
pub struct Subscribed {
    pub markets: Vec<SubscribedMarket>,
}

/// One market's subscribed symbols (upper case, as the exchange spells them).
#[derive(Debug, Clone)]
pub struct SubscribedMarket {
    pub exchange: &'static str,
    pub market: &'static str,
    pub symbols: Vec<String>,
    /// An all-market stream (`!markPrice@arr`) is subscribed: any listed symbol may appear.
    pub all_market: bool,
}

impl Subscribed {
    /// `None`: anything goes (no list known, e.g. tests driving a sink directly).
    pub fn allows(&self, exchange: &str, market: &str, symbol: &str) -> Option<bool> {
        if self.markets.is_empty() {
            return None;
        }
        Some(self.markets.iter().any(|m| {
            m.exchange == exchange
                && m.market == market
                && (m.all_market || m.symbols.iter().any(|s| s == symbol))
        }))
    }
}

/// A running sink, owned by the publisher thread.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    /// Takes one record (buffering allowed).
    fn write(&mut self, rec: &Record) -> Result<(), SinkError>;
    /// Periodic housekeeping (time-based flush, rotation); `now_ns` is CLOCK_REALTIME.
    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError>;
    /// Flushes everything buffered and releases resources.
    fn close(&mut self) -> Result<(), SinkError>;
    /// True when the sink feeds `processor_publish_latency_seconds` itself (acknowledgements);
    /// otherwise the publisher records the time until `write` returned.
    fn reports_publish_latency(&self) -> bool {
        false
    }
}

/// A sink failure, with the sink's own wording.
#[derive(Debug)]
pub struct SinkError(pub String);

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SinkError {}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(e.to_string())
    }
}

/// Looks up a sink by its config section name.
pub fn factory(name: &str) -> Option<&'static dyn SinkFactory> {
    REGISTRY.iter().copied().find(|f| f.name() == name)
}
