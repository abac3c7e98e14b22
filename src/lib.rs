//! # mdc: a low-latency, thread-per-core crypto market-data collector
//!
//! ## Layout (in data-flow order)
//! - [`config`]: YAML + `MDC_*` environment -> validated [`config::Config`].
//! - [`exchange`]: adapters (one folder each, one `REGISTRY` line): connections to open, decoders.
//! - [`pipeline`]: the hot path: reader -> ring -> parser -> ring -> publisher.
//! - [`event`]: the normalized, reusable event every decoder fills.
//! - [`encode`]: event -> JSON Lines / Protobuf bytes.
//! - [`book`]: local order books kept in the parser threads; REST snapshots off the hot path.
//! - [`capture`]: the exchanges' frames and REST bodies exactly as received, beside the sinks.
//! - [`sink`]: where records go (file, null; one folder each, one `REGISTRY` line).
//! - [`metrics`]: per-thread counters handed over off the hot path; `/metrics`, `/healthz`, `/readyz`.
//! - [`job`]: `mdc job`, seed D's Kubernetes Job (environment, control and events topics).
//! - [`replay`]: `mdc replay`, raw captures through the decoders again into the sinks.
//! - [`runtime`]: topology wiring, CPU pinning, idle strategy, shutdown.
//! - [`simulator`]: a Binance-format exchange simulator for tests and benchmarks.
//! - [`wire`]: Protobuf types generated from `proto/marketdata.proto`.

pub mod book;
pub mod capture;
pub mod clock;
pub mod config;
pub mod encode;
pub mod escape;
pub mod event;
pub mod exchange;
pub mod fnv;
pub mod harness;
pub mod job;
pub mod metrics;
pub mod pipeline;
pub mod replay;
pub mod runtime;
pub mod setting;
pub mod simulator;
pub mod sink;
pub mod trace;
pub mod wire;
