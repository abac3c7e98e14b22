//! Wires the pipeline from a validated [`Config`]: rings between stages, one thread per stage
//! instance (pinned as configured), the connector and the HTTP endpoint; then waits for shutdown and
//! drains in flow order (readers stop -> parsers drain -> publisher drains and flushes).

use crate::book::{self, BookSpec, Books, rest};
use crate::config::{Config, IdlePolicy};
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::exchange::ExchangePlan;
use crate::metrics::{self, Metrics};
use crate::pipeline::connector::{ConnTarget, Connector};
use crate::pipeline::frame::Frame;
use crate::pipeline::idle::Idle;
use crate::pipeline::inline::Inline;
use crate::pipeline::parser::{Parser, Stage};
use crate::pipeline::poller::Poller;
use crate::pipeline::publisher::Publisher;
use crate::pipeline::reader::Reader;
use crate::pipeline::ring::{self, Consumer, Producer};
use crate::pipeline::sessions::{RolloverMetrics, Sessions};
use crate::pipeline::watch::StreamWatch;
use crate::runtime::placement::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Initial capacity of a record's encode buffers: a 20-level depth diff encodes to about 1 KiB of
/// JSON, so slots rarely grow (each slot grows once to the largest event it carries otherwise).
const RECORD_BYTES: usize = 4096;

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Drained and flushed within the deadline.
    Clean,
    /// The deadline passed before the publisher finished, or a sink failed to close.
    Incomplete(String),
}

/// Extra instrumentation for benchmarks (`mdc bench`); all off in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Trade ids carry the simulator's send time: record `sim_send_to_receive`.
    pub probe_sim_send: bool,
}

/// Weight budget per minute of a plan that names no REST host budget of its own.
const DEFAULT_REST_WEIGHT_PER_MINUTE: u32 = 1200;

/// Runs the collector until `shutdown` is set, then drains within `config.shutdown_timeout`.
pub fn run(config: Config, shutdown: Arc<AtomicBool>) -> Result<Outcome, String> {
    let sink_names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();
    let metrics = Metrics::new(&sink_names);
    run_with(config, shutdown, metrics, RunOptions::default())
}

/// [`run`] with the caller's metrics (read while it runs) and options.
pub fn run_with(
    mut config: Config,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    opts: RunOptions,
) -> Result<Outcome, String> {
    // Names the configuration selects indirectly (Deribit instruments by currency and kind),
    // resolved before anything connects; a shard keeps only its own share of them.
    let shard = config.shard;
    for plan in config.exchanges.iter_mut() {
        plan.resolve()
            .map_err(|e| format!("exchanges.{}: {e}", plan.name()))?;
        if let Some(sh) = shard {
            let name = plan.name();
            plan.retain(&|key| sh.owns(name, key));
        }
    }
    config.exchanges.retain(|p| !p.connections().is_empty());
    let rt = &config.runtime;
    let (mode, why) = rt.pipeline.resolve(rt);
    let inline = mode == crate::config::PipelineMode::Inline;
    log::info!(
        "event=pipeline_chosen configured={:?} mode={mode:?} reason=\"{why}\"",
        rt.pipeline
    );
    let mut inline_parser = None;
    let sink_names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();

    // Each plan's connections, planned once: the sinks learn the subscribed symbols from them,
    // the readers get them below.
    let plan_conns: Vec<Vec<crate::exchange::ConnectionSpec>> =
        config.exchanges.iter().map(|p| p.connections()).collect();
    let subscribed = crate::sink::Subscribed {
        markets: config
            .exchanges
            .iter()
            .zip(&plan_conns)
            .flat_map(|(p, conns)| {
                // An all-market stream, or a selection followed while running (new listings
                // appear): any symbol of the market may come.
                let all_market = p.refresh_interval().is_some()
                    || conns
                        .iter()
                        .any(|c| c.streams.iter().any(|s| s.symbol.is_empty()));
                p.markets().into_iter().map(move |(market, symbols)| {
                    crate::sink::SubscribedMarket {
                        exchange: p.exchange(),
                        market,
                        symbols,
                        all_market,
                    }
                })
            })
            .collect(),
    };
    let mut sinks = Vec::new();
    let mut formats = Formats::NONE;
    for plan in &config.sinks {
        formats = formats.union(plan.formats());
        let sink = plan
            .start_for(&metrics, &subscribed)
            .map_err(|e| format!("sink {}: {e}", plan.name()))?;
        // A sink that blocks on its own I/O gets its own thread and queue when it has company:
        // then it can only stall itself.
        let (sink, own_thread) = match plan.queue_policy() {
            Some(q) if q.always || config.sinks.len() > 1 => (
                Box::new(
                    crate::sink::threaded::Threaded::start(plan.name(), sink, q, &metrics)
                        .map_err(|e| format!("sink {}: {e}", plan.name()))?,
                ) as Box<dyn crate::sink::Sink>,
                true,
            ),
            _ => (sink, false),
        };
        sinks.push(sink);
        log::info!(
            "event=sink_started sink={} own_thread={own_thread}",
            plan.name()
        );
        // Sinks without a reachability check of their own (file, null) are listed as reachable;
        // their write failures show in processor_publish_errors_total.
        let listed = metrics
            .sinks
            .lock()
            .map(|l| l.iter().any(|h| h.name == plan.name()))
            .unwrap_or(true);
        if !listed {
            metrics.sink_health(plan.name());
        }
    }

    // Connections, spread round-robin over readers and parsers.
    let mut targets = Vec::new();
    for (source, plan) in config.exchanges.iter().enumerate() {
        for spec in plan_conns[source].iter().cloned() {
            let conn = targets.len() as u32;
            let stale: Vec<i64> = spec
                .streams
                .iter()
                .map(|s| config.http.stale_after_ns(&s.channel))
                .collect();
            let status =
                metrics
                    .board
                    .add(conn, plan.name(), &spec.url, &spec.stream_names(), stale);
            targets.push(ConnTarget {
                status,
                conn,
                source: source as u16,
                reader: conn as usize % rt.readers,
                parser: conn as usize % rt.parsers,
                spec,
            });
        }
        log::info!(
            "event=exchange_planned exchange={} symbols={}",
            plan.name(),
            plan.symbols().len()
        );
    }
    if targets.is_empty() {
        log::warn!("event=no_exchanges reason=\"no exchange section has symbols\"");
    }
    metrics
        .connections_expected
        .store(targets.len() as i64, Ordering::Relaxed);

    // Idle state of the consumer threads first: with policy `park` their rings' producers ring
    // their bells.
    let idle = || Idle::new(rt.idle, rt.idle_sleep_us);
    let parser_idles: Vec<Idle> = (0..rt.parsers).map(|_| idle()).collect();
    let publisher_idle = idle();

    // reader r -> parser p rings, and parser p -> publisher rings.
    let mut to_parsers: Vec<Vec<Producer<Frame>>> = (0..rt.readers).map(|_| Vec::new()).collect();
    let mut parser_inputs: Vec<Vec<Consumer<Frame>>> =
        (0..rt.parsers).map(|_| Vec::new()).collect();
    for out in to_parsers.iter_mut() {
        for (input, parser_idle) in parser_inputs.iter_mut().zip(&parser_idles) {
            // Inline: the reader parses itself; its rings to parsers stay unused.
            let slots = if inline { 2 } else { rt.ring_capacity };
            let (mut p, c) = ring::ring(slots, || Frame::with_capacity(rt.frame_bytes));
            p.set_bell(parser_idle.bell());
            out.push(p);
            input.push(c);
        }
    }
    let mut publisher_inputs = Vec::new();
    let mut parser_outputs = Vec::new();
    for _ in 0..rt.parsers {
        let (mut p, c) = ring::ring(rt.ring_capacity, || {
            Record::for_formats(RECORD_BYTES, rt.frame_bytes, formats)
        });
        p.set_bell(publisher_idle.bell());
        parser_outputs.push(p);
        publisher_inputs.push(c);
    }
    // One request-weight budget per REST host, shared by its book snapshots and polled series
    // (capped by `book.rest_weight_budget` when set); a 429 on one host leaves the others alone.
    let mut hosts: std::collections::HashMap<String, Arc<Mutex<rest::Limiter>>> =
        std::collections::HashMap::new();
    let plan_limiters: Vec<Arc<Mutex<rest::Limiter>>> = config
        .exchanges
        .iter()
        .map(|p| {
            let b = p.rest_budget().unwrap_or(crate::exchange::RestBudget {
                host: p.name().to_string(),
                weight_per_minute: DEFAULT_REST_WEIGHT_PER_MINUTE,
            });
            let cap = config.book.rest_weight_budget;
            let w = if cap > 0 {
                b.weight_per_minute.min(cap)
            } else {
                b.weight_per_minute
            };
            hosts
                .entry(b.host)
                .or_insert_with(|| Arc::new(Mutex::new(rest::Limiter::new(w))))
                .clone()
        })
        .collect();
    // REST-polled series get their own ring to the publisher.
    let poll_jobs: Vec<_> = config
        .exchanges
        .iter()
        .zip(&plan_limiters)
        .flat_map(|(p, l)| {
            let mut jobs = p.poll_jobs();
            for j in &mut jobs {
                j.host = Some(l.clone());
            }
            jobs
        })
        .collect();
    let poll_output = if poll_jobs.is_empty() {
        None
    } else {
        let (mut p, c) = ring::ring(1024, || Record::with_capacity(RECORD_BYTES));
        p.set_bell(publisher_idle.bell());
        publisher_inputs.push(c);
        Some(p)
    };

    // Raw capture: started before the parsers and REST workers that feed it.
    let (capture_tap, mut capture_writer) = if config.capture.enabled {
        let (t, w) = crate::capture::start(&config.capture, &metrics)?;
        (Some(t), Some(w))
    } else {
        (None, None)
    };

    // Local books: specs per exchange plan, one REST pool shared by all parsers.
    let specs: Vec<Option<BookSpec>> = config
        .exchanges
        .iter()
        .map(|p| if config.book.enabled { p.books() } else { None })
        .collect();
    let book_counters = book::counters(&specs, &metrics);
    let (snap_req_tx, snap_req_rx) = crossbeam_channel::unbounded();
    let mut snap_reply_tx = Vec::new();
    let mut snap_reply_rx = Vec::new();
    for _ in 0..rt.parsers {
        let (tx, rx) = crossbeam_channel::unbounded();
        snap_reply_tx.push(tx);
        snap_reply_rx.push(rx);
    }
    let with_books = specs.iter().any(Option::is_some);
    if with_books {
        let l = [("api", "rest")];
        rest::start(
            rest::Pool {
                sources: specs
                    .iter()
                    .zip(&plan_limiters)
                    .zip(&config.exchanges)
                    .map(|((s, l), plan)| {
                        let s = s.as_ref()?;
                        Some(rest::PoolSource {
                            exchange: plan.exchange(),
                            market: plan.market(),
                            source: s.source.clone()?,
                            limit: s.snapshot_limit.unwrap_or(config.book.rest_snapshot_limit),
                            limiter: l.clone(),
                        })
                    })
                    .collect(),
                requests: snap_req_rx,
                replies: snap_reply_tx,
                capture: capture_tap.clone(),
                stats: rest::RestStats {
                    requests: metrics.counter(
                        "rest_requests_total",
                        "REST requests sent (book snapshots).",
                        &l,
                    ),
                    throttled: metrics.counter(
                        "rest_throttled_total",
                        "HTTP 429 answers (we pause).",
                        &l,
                    ),
                    banned: metrics.counter(
                        "rest_banned_total",
                        "HTTP 418 answers (we stop until Retry-After).",
                        &l,
                    ),
                    errors: metrics.counter("rest_errors_total", "Other REST failures.", &l),
                    weight_used: metrics.gauge(
                        "rest_weight_used",
                        "Request weight used in the current minute.",
                        &l,
                    ),
                },
                shutdown: shutdown.clone(),
            },
            config.book.max_concurrent_snapshots,
        );
    }
    let mut snap_reply_rx = snap_reply_rx.into_iter();
    if let Some(output) = poll_output {
        let l = [("api", "rest")];
        let poller = Poller {
            jobs: poll_jobs,
            output,
            formats,
            points: metrics.counter(
                "rest_points_total",
                "New data points published from REST-polled series.",
                &l,
            ),
            errors: metrics.counter("rest_poll_errors_total", "Failed polls of REST series.", &l),
            shutdown: shutdown.clone(),
        };
        spawn("rest-poll", move || poller.run())?;
    }

    let silent = metrics.gauge(
        "streams_silent",
        "Watched streams without data on an open connection past their deadline (wrong routed path?).",
        &[],
    );
    let silence_detected = metrics.counter(
        "stream_silence_detected_total",
        "Streams reported silent on an open connection.",
        &[],
    );

    let stop_aux = Arc::new(AtomicBool::new(false));
    let admin = config
        .http
        .admin
        .then(|| config.path.clone())
        .flatten()
        .map(|config_path| metrics::server::Admin {
            config: config_path,
            remote: config.http.admin_remote,
        });
    let http = metrics::server::start(
        &config.http.listen,
        metrics.clone(),
        stop_aux.clone(),
        admin,
    )?;

    let occupancy = |ring: &str| {
        metrics.gauge(
            "ring_occupancy",
            "Filled slots of a ring between two stages (a full ring means the next stage is behind and backpressure is on).",
            &[("ring", ring)],
        )
    };
    metrics
        .gauge(
            "ring_capacity_slots",
            "Slots per ring (runtime.ring_capacity rounded up to a power of two).",
            &[],
        )
        .store(
            rt.ring_capacity.max(2).next_power_of_two() as i64,
            Ordering::Relaxed,
        );
    let allocations = |thread: &str| {
        crate::metrics::alloc::installed().then(|| {
            metrics.counter(
                "thread_allocations_total",
                "Heap allocations made by a pipeline thread since start (0 growth in steady state).",
                &[("thread", thread)],
            )
        })
    };
    let publisher_cpu = rt.cpus.publisher;
    let mut publisher_occupancy: Vec<_> = (0..rt.parsers)
        .map(|p| occupancy(&format!("parser-{p}>publisher")))
        .collect();
    if publisher_inputs.len() > rt.parsers {
        publisher_occupancy.push(occupancy("rest-poll>publisher"));
    }
    let publisher = Publisher {
        inputs: publisher_inputs,
        sinks,
        metrics: metrics.clone(),
        idle: publisher_idle,
        occupancy: publisher_occupancy,
        // Inline: the reader thread's own count covers the publisher's work.
        allocations: if inline {
            None
        } else {
            allocations("publisher")
        },
    };
    let (done_tx, done_rx) = crossbeam_channel::bounded::<usize>(1);
    let mut inline_publisher = None;
    if inline {
        inline_publisher = Some(publisher);
    } else {
        let done_tx = done_tx.clone();
        spawn("publisher", move || {
            pin("publisher", publisher_cpu);
            let failed = publisher.run();
            let _ = done_tx.send(failed);
        })?;
    }

    let rollover_metrics = RolloverMetrics::register(&metrics);
    let gap_counters: Vec<_> = crate::pipeline::gaps::REASONS
        .iter()
        .map(|r| {
            (
                *r,
                metrics.counter(
                    "gap_events_total",
                    "Gap events emitted (data of a stream may be missing), by reason.",
                    &[("reason", r)],
                ),
            )
        })
        .collect();
    metrics.counter(
        "processor_serialize_errors_total",
        "Events that could not be encoded. The encoders write into growable buffers and cannot fail, so this stays 0; exported for dashboards built on the seed collectors.",
        &[],
    );
    // Readers (ended sessions) and parsers (rollover progress) report to the connector.
    let (ended_tx, ended_rx) = crossbeam_channel::unbounded();
    // The refresher tells parsers about connections and books added while running.
    let (to_parsers_ctl, mut parser_ctl): (Vec<_>, Vec<_>) = (0..rt.parsers)
        .map(|_| crossbeam_channel::unbounded::<crate::pipeline::parser::ToParser>())
        .unzip();
    let mut parser_ctl = parser_ctl.drain(..);
    for (i, ((inputs, output), parser_idle)) in parser_inputs
        .into_iter()
        .zip(parser_outputs)
        .zip(parser_idles)
        .enumerate()
    {
        let name = format!("parser-{i}");
        let cpu = rt.cpus.parsers.get(i).copied();
        let decoders = config.exchanges.iter().map(|p| p.decoder()).collect();
        let mut stage = Stage::new(decoders, formats, &metrics);
        stage.capture = capture_tap.clone();
        stage.set_frame_bytes(rt.frame_bytes);
        stage.shrink_above = crate::pipeline::parser::SHRINK_ABOVE.max(rt.frame_bytes * 4);
        let mut watch = StreamWatch::new(silent.clone(), silence_detected.clone());
        stage.sessions = Sessions::new(Some(ended_tx.clone()));
        stage.gaps.counters = gap_counters.clone();
        stage.sessions.metrics = Some(rollover_metrics.clone());
        for t in targets.iter().filter(|t| t.parser == i) {
            stage.sessions.add(t.conn, t.spec.rollover_timeout);
            let plan = &config.exchanges[t.source as usize];
            let label = format!("{}#{}", plan.name(), t.conn);
            watch.add(
                t.conn,
                label,
                &t.spec.streams,
                t.spec.silence_timeout,
                Some(t.status.last_message_ns.clone()),
            );
            stage
                .gaps
                .add(t.conn, plan.exchange(), plan.market(), &t.spec.streams);
            if let Some(c) = stage.capture.as_mut() {
                c.add_conn(
                    t.conn,
                    plan.exchange(),
                    plan.market(),
                    &t.spec.streams,
                    t.spec.rollover_timeout,
                );
            }
        }
        stage.watch = Some(watch);
        stage.control = parser_ctl.next();
        if opts.probe_sim_send {
            stage.probe = Some(
                metrics
                    .latency
                    .recorder(&[("stage", "sim_send_to_receive")]),
            );
        }
        let replies = snap_reply_rx.next();
        if with_books && let Some(replies) = replies {
            let mut books = Books::new(
                config.book.clone(),
                i,
                &specs,
                &book_counters,
                snap_req_tx.clone(),
                replies,
            );
            books.capture = capture_tap.clone();
            stage.books = Some(books);
        }
        let parser = Parser {
            name: name.clone(),
            inputs,
            output,
            stage,
            idle: parser_idle,
            occupancy: (0..rt.readers)
                .map(|r| occupancy(&format!("reader-{r}>parser-{i}")))
                .collect(),
            allocations: if inline { None } else { allocations(&name) },
        };
        if inline {
            inline_parser = Some(parser);
            continue;
        }
        spawn(&name.clone(), move || {
            pin(&name, cpu);
            parser.run();
        })?;
    }

    let ring_full = metrics.counter(
        "ring_full_waits_total",
        "Times a reader found its ring to a parser full and waited (backpressure; nothing is dropped).",
        &[("stage", "reader")],
    );
    let mut to_readers = Vec::new();
    for (i, outputs) in to_parsers.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        to_readers.push(tx);
        let name = format!("reader-{i}");
        let cpu = rt.cpus.readers.get(i).copied();
        let reader = Reader {
            name: name.clone(),
            outputs,
            incoming: rx,
            ended: ended_tx.clone(),
            metrics: metrics.clone(),
            max_message_bytes: rt.max_message_bytes,
            spin: rt.idle == IdlePolicy::Spin,
            idle: idle(),
            shutdown: shutdown.clone(),
            ring_full_waits: ring_full.clone(),
            allocations: allocations(&name),
            inline: match (inline_parser.take(), inline_publisher.take()) {
                (Some(parser), Some(publisher)) => Some(Inline::new(
                    parser.stage,
                    parser.output,
                    publisher.start(),
                    rt.frame_bytes,
                    done_tx.clone(),
                )),
                _ => None,
            },
        };
        spawn(&name.clone(), move || {
            pin(&name, cpu);
            reader.run();
        })?;
    }
    // Plans that follow the exchange's listings while running (Deribit selections).
    // Every plan is followed by the refresher: resolved again on its interval (Deribit
    // selections) and replaced by a configuration re-read while running (reload).
    let refreshed: Vec<(usize, Option<std::time::Duration>)> = config
        .exchanges
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.refresh_interval()))
        .collect();
    let refresher_reports = Some(ended_tx.clone());
    drop(ended_tx);
    let (reload_tx, reload_rx) = crossbeam_channel::bounded::<Vec<Box<dyn ExchangePlan>>>(4);
    // Only the publisher (or the inline reader) holds it now: a panic there ends the wait at once.
    drop(done_tx);
    let planned: Vec<(u16, crate::runtime::refresh::Planned)> = targets
        .iter()
        .filter(|t| refreshed.iter().any(|(i, _)| *i == t.source as usize))
        .map(|t| {
            (
                t.source,
                crate::runtime::refresh::Planned {
                    conn: t.conn,
                    parser: t.parser,
                    spec: t.spec.clone(),
                },
            )
        })
        .collect();
    let next_conn = targets.len() as u32;

    let connector = Connector {
        targets,
        to_readers,
        reports: ended_rx,
        backoff: config.reconnect,
        max_message_bytes: rt.max_message_bytes,
        connect_timeout: Duration::from_secs(10),
        rate: crate::pipeline::connector::ConnRate::new(
            rt.reconnect.max_per_5m,
            Duration::from_secs(300),
        ),
        shutdown: shutdown.clone(),
    };
    spawn("connector", move || connector.run())?;

    if let Ok(mut info) = metrics.info.lock() {
        *info = serde_json::json!({
            "exchanges": config.exchanges.iter().map(|p| serde_json::json!({
                "name": p.name(),
                "symbols": p.symbols().len(),
            })).collect::<Vec<_>>(),
            "sinks": sink_names,
            "readers": rt.readers,
            "parsers": rt.parsers,
            "books": config.book.enabled,
            "shard": config.shard.map(|s| s.to_string()),
        });
    }
    if let Some(reports) = refresher_reports {
        let mut plans: Vec<Option<Box<dyn crate::exchange::ExchangePlan>>> =
            std::mem::take(&mut config.exchanges)
                .into_iter()
                .map(Some)
                .collect();
        let mut planned = planned;
        let http_cfg = config.http.clone();
        let refresher = crate::runtime::refresh::Refresher {
            plans: refreshed
                .iter()
                .filter_map(|&(source, interval)| {
                    let plan = plans.get_mut(source)?.take()?;
                    let conns = planned
                        .iter()
                        .filter(|(s, _)| *s as usize == source)
                        .map(|(_, p)| crate::runtime::refresh::Planned {
                            conn: p.conn,
                            parser: p.parser,
                            spec: p.spec.clone(),
                        })
                        .collect();
                    Some(crate::runtime::refresh::Refreshed {
                        source,
                        plan,
                        conns,
                        interval,
                        next: interval.map(|d| Instant::now() + d),
                    })
                })
                .collect(),
            next_conn,
            readers: rt.readers,
            parsers: rt.parsers,
            reports,
            to_parsers: to_parsers_ctl,
            metrics: metrics.clone(),
            shard: config.shard,
            books: with_books,
            stale_after_ns: Box::new(move |ch: &str| http_cfg.stale_after_ns(ch)),
            shutdown: shutdown.clone(),
            reloads: Some(reload_rx),
        };
        planned.clear();
        spawn("refresher", move || refresher.run())?;
    }
    log::info!(
        "event=started readers={} parsers={} sinks={}",
        rt.readers,
        rt.parsers,
        sink_names.join(",")
    );
    // SIGHUP re-reads the configuration file (as `POST /admin/reload` does).
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        log::warn!("event=reload_signal_unavailable error=\"{e}\"");
    }
    let mut status = crate::metrics::status::StatusLine::new(&metrics);
    let mut next_status = config.status_interval.map(|d| Instant::now() + d);
    while !shutdown.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
        if let (Some(at), Some(every)) = (next_status, config.status_interval)
            && Instant::now() >= at
        {
            log::info!("{}", status.line(&metrics));
            next_status = Some(at + every);
        }
        if hup.swap(false, Ordering::Relaxed)
            || metrics.reload_requested.swap(false, Ordering::Relaxed)
        {
            reload(config.path.as_deref(), shard, &reload_tx);
        }
    }
    let started = Instant::now();
    log::info!(
        "event=shutdown_started deadline_ms={}",
        config.shutdown_timeout.as_millis()
    );
    let outcome = match done_rx.recv_timeout(config.shutdown_timeout) {
        Ok(0) => Outcome::Clean,
        Ok(n) => Outcome::Incomplete(format!("{n} sink(s) failed to flush")),
        Err(_) => Outcome::Incomplete(format!(
            "publisher did not drain within {:?}",
            config.shutdown_timeout
        )),
    };
    if let Some(w) = capture_writer.as_mut() {
        w.close();
    }
    stop_aux.store(true, Ordering::Relaxed);
    if let Some(h) = http {
        let _ = h.join();
    }
    log::info!(
        "event=shutdown_finished elapsed_ms={} outcome={:?}",
        started.elapsed().as_millis(),
        outcome
    );
    Ok(outcome)
}

/// Re-reads the configuration file and hands its exchange plans to the refresher; a file that
/// does not load or validate is rejected with the reason, and the running configuration stays.
fn reload(
    path: Option<&std::path::Path>,
    shard: Option<crate::setting::shard::Shard>,
    to_refresher: &crossbeam_channel::Sender<Vec<Box<dyn ExchangePlan>>>,
) {
    let Some(path) = path else {
        log::warn!("event=reload_rejected error=\"no configuration file to re-read\"");
        return;
    };
    let mut new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            log::error!(
                "event=reload_rejected error=\"{e}\" note=\"the running configuration stays\""
            );
            return;
        }
    };
    if new.shard != shard {
        log::warn!(
            "event=reload_note note=\"runtime.shard changes need a restart; the running shard stays\""
        );
    }
    for plan in new.exchanges.iter_mut() {
        if let Err(e) = plan.resolve() {
            log::error!(
                "event=reload_rejected error=\"exchanges.{}: {e}\" note=\"the running configuration stays\"",
                plan.name()
            );
            return;
        }
    }
    log::info!(
        "event=reload_requested path={} note=\"exchanges' symbols and channels are applied; other changes need a restart\"",
        path.display()
    );
    if to_refresher
        .try_send(std::mem::take(&mut new.exchanges))
        .is_err()
    {
        log::warn!("event=reload_rejected error=\"a reload is already pending\"");
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("spawn {name}: {e}"))
}
