//! Follows an exchange's listings while collecting: plans whose names are resolved through the
//! exchange's API (Deribit `instruments` selections) resolve them again every
//! `refresh_interval`. Streams of instruments that disappeared (expired options and futures) are
//! unsubscribed on their connection and dropped from its next sessions, their books and silence
//! watch; streams of new instruments go on new connections, announced to their parser (sessions,
//! gaps, silence watch, books) before the connector opens them. Nothing already flowing is
//! interrupted.

use crate::book::BookSpec;
use crate::exchange::{ConnectionSpec, ExchangePlan, StreamSpec};
use crate::metrics::Metrics;
use crate::pipeline::connector::{ConnTarget, Report};
use crate::pipeline::parser::ToParser;
use crate::setting::shard::Shard;
use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One connection as currently planned.
pub struct Planned {
    pub conn: u32,
    pub parser: usize,
    pub spec: ConnectionSpec,
}

/// One plan and its connections.
pub struct Refreshed {
    pub source: usize,
    pub plan: Box<dyn ExchangePlan>,
    pub conns: Vec<Planned>,
    /// How often the plan is resolved again (Deribit selections); `None`: only on a reload.
    pub interval: Option<Duration>,
    pub next: Option<Instant>,
}

/// The refresher thread's state.
pub struct Refresher {
    pub plans: Vec<Refreshed>,
    /// Next free connection id (ids are dense: every structure indexes by them).
    pub next_conn: u32,
    pub readers: usize,
    pub parsers: usize,
    pub reports: Sender<Report>,
    pub to_parsers: Vec<Sender<ToParser>>,
    pub metrics: Arc<Metrics>,
    pub shard: Option<Shard>,
    pub books: bool,
    pub stale_after_ns: Box<dyn Fn(&str) -> i64 + Send>,
    pub shutdown: Arc<AtomicBool>,
    /// Plans of a configuration re-read while running (SIGHUP, `POST /admin/reload`).
    pub reloads: Option<crossbeam_channel::Receiver<Vec<Box<dyn ExchangePlan>>>>,
}

/// What one refresh changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: usize,
    pub removed: usize,
    pub new_connections: usize,
}

impl Refresher {
    pub fn run(mut self) {
        while !self.shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if let Some(plans) = self.reloads.as_ref().and_then(|r| r.try_recv().ok()) {
                match self.reload(plans) {
                    Ok(changes) => {
                        for (name, c) in changes {
                            log::info!(
                                "event=reload_applied exchange={name} added_streams={} removed_streams={} new_connections={}",
                                c.added,
                                c.removed,
                                c.new_connections
                            );
                        }
                    }
                    Err(e) => log::error!(
                        "event=reload_rejected error=\"{e}\" note=\"the running configuration stays\""
                    ),
                }
            }
            let now = Instant::now();
            for i in 0..self.plans.len() {
                let (Some(next), Some(interval)) = (self.plans[i].next, self.plans[i].interval)
                else {
                    continue;
                };
                if next > now {
                    continue;
                }
                let started = Instant::now();
                match self.refresh(i) {
                    Ok(c) => {
                        let p = &mut self.plans[i];
                        p.next = Some(Instant::now() + interval);
                        log::info!(
                            "event=instruments_refreshed exchange={} added_streams={} removed_streams={} new_connections={} elapsed_ms={}",
                            p.plan.name(),
                            c.added,
                            c.removed,
                            c.new_connections,
                            started.elapsed().as_millis()
                        );
                    }
                    Err(e) => {
                        // The current set keeps being collected; try again soon.
                        let p = &mut self.plans[i];
                        let retry = interval.min(Duration::from_secs(60));
                        p.next = Some(Instant::now() + retry);
                        log::warn!(
                            "event=instruments_refresh_failed exchange={} error=\"{e}\" retry_in_s={}",
                            p.plan.name(),
                            retry.as_secs()
                        );
                    }
                }
            }
        }
    }

    /// Takes the plans of a configuration re-read while running: each replaces the running plan
    /// of its section, and the difference in streams is applied as a refresh applies it
    /// (removed streams unsubscribed on their connection, added ones on new connections;
    /// nothing else restarts). Sections added or removed need a restart: rejected whole.
    pub fn reload(
        &mut self,
        mut plans: Vec<Box<dyn ExchangePlan>>,
    ) -> Result<Vec<(&'static str, Change)>, String> {
        if let Some(sh) = self.shard {
            for plan in plans.iter_mut() {
                let name = plan.name();
                plan.retain(&|key| sh.owns(name, key));
            }
        }
        let mut running: Vec<&str> = self.plans.iter().map(|p| p.plan.name()).collect();
        let mut wanted: Vec<&str> = plans
            .iter()
            .filter(|p| !p.connections().is_empty() || p.refresh_interval().is_some())
            .map(|p| p.name())
            .collect();
        running.sort_unstable();
        wanted.sort_unstable();
        if running != wanted {
            return Err(format!(
                "exchange sections {wanted:?} differ from the running {running:?}: adding or removing an exchange (or all of its symbols) needs a restart"
            ));
        }
        // An exchange whose plan cannot lay out a subset of its streams (nor stop them on an
        // open connection) cannot change them while running: rejected before anything changes.
        for plan in &plans {
            let Some(p) = self.plans.iter().find(|p| p.plan.name() == plan.name()) else {
                continue;
            };
            let names = |conns: Vec<ConnectionSpec>| -> HashSet<String> {
                conns
                    .into_iter()
                    .flat_map(|c| c.streams.into_iter().map(|s| s.name))
                    .collect()
            };
            let running: HashSet<String> = p
                .conns
                .iter()
                .flat_map(|c| c.spec.streams.iter().map(|s| s.name.clone()))
                .collect();
            let conns = plan.connections();
            let sample: Vec<StreamSpec> =
                conns.first().map(|c| c.streams.clone()).unwrap_or_default();
            if names(conns) != running && plan.connections_for(sample).is_empty() {
                return Err(format!(
                    "exchanges.{}: its streams cannot change while running; restart to apply",
                    plan.name()
                ));
            }
        }
        let mut changes = Vec::new();
        for plan in plans {
            let Some(i) = self.plans.iter().position(|p| p.plan.name() == plan.name()) else {
                continue;
            };
            let name = plan.name();
            let p = &mut self.plans[i];
            p.interval = plan.refresh_interval();
            p.next = p.interval.map(|d| Instant::now() + d);
            p.plan = plan;
            changes.push((name, self.refresh(i)?));
        }
        Ok(changes)
    }

    /// Resolves plan `i` again and applies the difference.
    pub fn refresh(&mut self, i: usize) -> Result<Change, String> {
        let shard = self.shard;
        let p = &mut self.plans[i];
        p.plan.resolve()?;
        if let Some(sh) = shard {
            let name = p.plan.name();
            p.plan.retain(&|key| sh.owns(name, key));
        }
        let wanted: Vec<StreamSpec> = p
            .plan
            .connections()
            .into_iter()
            .flat_map(|c| c.streams)
            .collect();
        let wanted_names: HashSet<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
        let have: HashSet<String> = p
            .conns
            .iter()
            .flat_map(|c| c.spec.streams.iter().map(|s| s.name.clone()))
            .collect();
        let mut change = Change::default();
        let source = p.source;

        // Streams that are gone: unsubscribe them where they run, and drop them from what each
        // connection subscribes from its next session on.
        let mut gone_books: Vec<String> = Vec::new();
        for c in p.conns.iter_mut() {
            let (keep, gone): (Vec<StreamSpec>, Vec<StreamSpec>) = c
                .spec
                .streams
                .iter()
                .cloned()
                .partition(|s| wanted_names.contains(s.name.as_str()));
            if gone.is_empty() {
                continue;
            }
            change.removed += gone.len();
            gone_books.extend(gone.iter().filter(|s| s.book).map(|s| s.symbol.clone()));
            let _ = self.reports.send(Report::Send {
                conn: c.conn,
                messages: p.plan.unsubscribe(&gone),
            });
            let mut spec = match p.plan.connections_for(keep).into_iter().next() {
                Some(s) => s,
                None => ConnectionSpec {
                    streams: Vec::new(),
                    subscribe: Vec::new(),
                    ..c.spec.clone()
                },
            };
            spec.max_age = c.spec.max_age;
            let _ = self.to_parsers[c.parser].send(ToParser::RemoveStreams {
                conn: c.conn,
                names: gone.iter().map(|s| s.name.clone()).collect(),
            });
            let _ = self.reports.send(Report::Respec {
                conn: c.conn,
                spec: Box::new(spec.clone()),
            });
            c.spec = spec;
        }
        if self.books && !gone_books.is_empty() {
            for tx in &self.to_parsers {
                let _ = tx.send(ToParser::RemoveBooks {
                    source,
                    symbols: gone_books.clone(),
                });
            }
        }

        // New streams: their books first (every parser keeps every book), then new connections,
        // each announced to its parser before the connector opens it.
        let added: Vec<StreamSpec> = wanted
            .into_iter()
            .filter(|s| !have.contains(&s.name))
            .collect();
        change.added = added.len();
        if added.is_empty() {
            return Ok(change);
        }
        let new_books: Vec<String> = added
            .iter()
            .filter(|s| s.book)
            .map(|s| s.symbol.clone())
            .collect();
        if self.books
            && !new_books.is_empty()
            && let Some(spec) = p.plan.books()
        {
            let spec = BookSpec {
                symbols: new_books,
                ..spec
            };
            let counters =
                crate::book::counters(std::slice::from_ref(&Some(spec.clone())), &self.metrics)
                    .into_iter()
                    .next()
                    .flatten()
                    .unwrap_or_default();
            for tx in &self.to_parsers {
                let _ = tx.send(ToParser::AddBooks {
                    source,
                    spec: spec.clone(),
                    counters: counters.clone(),
                });
            }
        }
        for spec in p.plan.connections_for(added) {
            let conn = self.next_conn;
            self.next_conn += 1;
            let parser = conn as usize % self.parsers.max(1);
            let stale: Vec<i64> = spec
                .streams
                .iter()
                .map(|s| (self.stale_after_ns)(&s.channel))
                .collect();
            let status =
                self.metrics
                    .board
                    .add(conn, p.plan.name(), &spec.url, &spec.stream_names(), stale);
            let _ = self.to_parsers[parser].send(ToParser::AddConn {
                conn,
                label: format!("{}#{conn}", p.plan.name()),
                exchange: p.plan.exchange(),
                market: p.plan.market(),
                streams: spec.streams.clone(),
                silence_timeout: spec.silence_timeout,
                rollover_timeout: spec.rollover_timeout,
                freshness: Some(status.last_message_ns.clone()),
            });
            self.metrics
                .connections_expected
                .fetch_add(1, Ordering::Relaxed);
            let _ = self.reports.send(Report::Add(Box::new(ConnTarget {
                conn,
                source: source as u16,
                reader: conn as usize % self.readers.max(1),
                parser,
                spec: spec.clone(),
                status,
            })));
            p.conns.push(Planned { conn, parser, spec });
            change.new_connections += 1;
        }
        Ok(change)
    }
}
