//! The NATS sink's two halves: [`NatsSink`] on the publisher thread copies each record into a
//! recycled slot (no allocation once the pool is warm) and queues it; the `nats` thread runs the
//! `async-nats` client on a current-thread runtime and publishes, keeping at most
//! `max_in_flight` JetStream publishes unacknowledged, re-publishing a failed one with the same
//! `Nats-Msg-Id` until `publish_timeout`.

use super::{NatsPlan, msg_id, subject};
use crate::encode::record::Record;
use crate::metrics::{Metrics, SinkHealth};
use crate::sink::{Sink, SinkError};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One queued message; slots go back to the publisher for reuse.
struct Msg {
    subject: String,
    id: String,
    payload: Vec<u8>,
}

/// Counters of the NATS thread, and where it hands back what it gave up.
#[derive(Clone)]
struct Stats {
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    retried: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    /// Payloads not acknowledged within `publish_timeout`: the publisher side announces them as
    /// `sink_failed` gaps in this sink.
    given_up: crossbeam_channel::Sender<Bytes>,
}

/// The publisher thread's side.
pub struct NatsSink {
    tx: Option<tokio::sync::mpsc::Sender<Msg>>,
    free: crossbeam_channel::Receiver<Msg>,
    allocated: usize,
    capacity: usize,
    templates: Vec<String>,
    json: bool,
    health: SinkHealth,
    thread: Option<JoinHandle<()>>,
    /// Told when the thread has published and settled everything (bounded wait at shutdown).
    done: crossbeam_channel::Receiver<()>,
    /// Unacknowledged when the thread ended.
    unsettled: Arc<AtomicU64>,
    /// `backpressure: drop_newest`: a full queue drops the record (this sink only).
    drop_newest: bool,
    dropped: Arc<AtomicU64>,
    /// Dropped ranges, announced as `gap` events in this sink once the queue has room.
    drops: crate::sink::drops::Drops,
    /// Slots a refused send gave back.
    spare: Vec<Msg>,
    /// Message ids of gap events: `mdc-gap.<pid>.<n>`.
    gaps_sent: u64,
    /// What the NATS thread gave up after `publish_timeout`.
    given_up: crossbeam_channel::Receiver<Bytes>,
    /// `backpressure: spool`: the overflow on disk, and its size as a gauge.
    spool: Option<crate::sink::spool::Spool>,
    spool_bytes: Arc<std::sync::atomic::AtomicI64>,
    /// A message being spooled (its buffers reused).
    scratch: Msg,
}

/// Longest wait at shutdown for the last acknowledgements.
const CLOSE_WAIT: Duration = Duration::from_secs(20);

impl NatsSink {
    /// Starts the `nats` thread; waits up to 5 s for the server: a stream that exists and does
    /// not capture the subjects is an error; an unreachable server is not (the sink is then not
    /// ready and keeps trying).
    pub fn start(plan: NatsPlan, metrics: &Arc<Metrics>) -> Result<NatsSink, SinkError> {
        let capacity = plan.cfg.queue_capacity;
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(capacity);
        let (free_tx, free) = crossbeam_channel::bounded::<Msg>(capacity);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(1);
        let health = metrics.sink_health("nats");
        health.reachable.store(false, Ordering::Relaxed);
        let l = [("sink", "nats")];
        let (given_up_tx, given_up) = crossbeam_channel::bounded::<Bytes>(65_536);
        let stats = Stats {
            given_up: given_up_tx,
            published: metrics.counter("nats_published_total", "Messages published to NATS.", &l),
            acked: metrics.counter(
                "nats_acked_total",
                "JetStream publishes acknowledged by the server.",
                &l,
            ),
            retried: metrics.counter(
                "nats_retried_total",
                "Publishes sent again after a failure (same Nats-Msg-Id).",
                &l,
            ),
            dropped: metrics.counter_alias(
                "nats_dropped_total",
                "Messages not delivered: the queue was full (backpressure: drop_newest), or no acknowledgement within publish_timeout.",
                &l,
                &health.dropped,
            ),
        };
        let dropped = stats.dropped.clone();
        // A spool past its bound drops like `drop_newest`.
        let drop_newest = plan.cfg.backpressure != "block";
        let spool = if plan.cfg.backpressure == "spool" {
            let s = crate::sink::spool::Spool::open(
                &plan.cfg.spool.path,
                "nats",
                plan.cfg.spool.max_bytes,
            )
            .map_err(|e| SinkError(format!("sinks.nats.spool.path: {e}")))?;
            if !s.is_empty() {
                log::warn!(
                    "event=nats_spool_replay path={} bytes={} note=\"left by an earlier run\"",
                    s.path().display(),
                    s.len()
                );
            }
            Some(s)
        } else {
            None
        };
        let spool_bytes = metrics.gauge_alias(
            "nats_spool_bytes",
            "Bytes waiting in the NATS sink's spool (backpressure: spool).",
            &l,
            &health.spool_bytes,
        );
        let gap_counter = |reason: &'static str| {
            (
                reason,
                metrics.counter(
                    "gap_events_total",
                    "Gap events emitted (data of a stream may be missing), by reason.",
                    &[("reason", reason)],
                ),
            )
        };
        let templates = plan.templates.clone();
        let json = plan.cfg.format != "protobuf";
        let h = health.clone();
        let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
        let unsettled = Arc::new(AtomicU64::new(0));
        let u = unsettled.clone();
        let thread = std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || {
                run(plan, rx, free_tx, stats, h, ready_tx, u);
                let _ = done_tx.send(());
            })
            .map_err(|e| SinkError(format!("nats thread: {e}")))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Err(e)) => return Err(SinkError(e)),
            Ok(Ok(())) => log::info!("event=nats_ready"),
            Err(_) => log::warn!(
                "event=nats_not_ready note=\"server unreachable at start; publishing will wait for it\""
            ),
        }
        Ok(NatsSink {
            tx: Some(tx),
            free,
            allocated: 0,
            capacity,
            templates,
            json,
            health,
            thread: Some(thread),
            done,
            unsettled,
            drop_newest,
            dropped,
            drops: crate::sink::drops::Drops::counted(
                "nats",
                vec![gap_counter("sink_dropped"), gap_counter("sink_failed")],
            ),
            given_up,
            spare: Vec::new(),
            gaps_sent: 0,
            spool,
            spool_bytes,
            scratch: Msg {
                subject: String::new(),
                id: String::new(),
                payload: Vec::new(),
            },
        })
    }

    /// The record as a message: subject, id, payload.
    fn fill(&self, rec: &Record, m: &mut Msg) {
        subject::expand(
            &self.templates[rec.kind as usize],
            rec.exchange,
            rec.market,
            rec.kind.as_str(),
            rec.variant,
            &rec.symbol,
            &mut m.subject,
        );
        msg_id(rec, &mut m.id);
        m.payload.clear();
        if self.json {
            // JSON Lines without the line end.
            let j = rec.json.strip_suffix(b"\n").unwrap_or(&rec.json);
            m.payload.extend_from_slice(j);
        } else {
            m.payload.extend_from_slice(&rec.proto);
        }
    }

    /// A free slot: a recycled one, a new one while the pool is below capacity, else wait for
    /// the NATS thread to free one (backpressure).
    fn slot(&mut self) -> Result<Msg, SinkError> {
        self.try_slot().map_or_else(
            || {
                self.free
                    .recv()
                    .map_err(|_| SinkError("nats thread ended".into()))
            },
            Ok,
        )
    }

    /// A free slot if one is at hand (never waits).
    fn try_slot(&mut self) -> Option<Msg> {
        if let Some(m) = self.spare.pop() {
            return Some(m);
        }
        if let Ok(m) = self.free.try_recv() {
            return Some(m);
        }
        if self.allocated < self.capacity {
            self.allocated += 1;
            return Some(Msg {
                subject: String::with_capacity(64),
                id: String::with_capacity(64),
                payload: Vec::with_capacity(512),
            });
        }
        None
    }

    /// Moves spooled messages, oldest first, to the queue while it has room.
    fn drain_spool(&mut self) -> Result<(), SinkError> {
        let Some(tx) = self.tx.clone() else {
            return Ok(());
        };
        loop {
            let empty = self.spool.as_ref().is_none_or(|s| s.is_empty());
            // One producer (this thread): room seen here stays.
            if empty || tx.capacity() == 0 {
                break;
            }
            let Some(mut m) = self.try_slot() else { break };
            let Some(spool) = self.spool.as_mut() else {
                break;
            };
            let mut subject = std::mem::take(&mut m.subject).into_bytes();
            let mut id = std::mem::take(&mut m.id).into_bytes();
            let got = spool
                .pop(&mut [&mut subject, &mut id, &mut m.payload])
                .map_err(|e| SinkError(format!("nats spool: {e}")))?;
            let utf8 = |b: Vec<u8>| {
                String::from_utf8(b).map_err(|_| SinkError("nats spool: damaged entry".into()))
            };
            m.subject = utf8(subject)?;
            m.id = utf8(id)?;
            if !got {
                self.spare.push(m);
                break;
            }
            if let Err(e) = tx.try_send(m) {
                // Not expected (room was checked); keep the slot, count the loss.
                self.spare.push(e.into_inner());
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(s) = &self.spool {
            self.spool_bytes.store(s.len() as i64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Notes what the NATS thread gave up (`sink_failed`), to be announced as gaps.
    fn collect_given_up(&mut self) {
        while let Ok(p) = self.given_up.try_recv() {
            self.drops.note_payload("sink_failed", self.json, &p);
        }
    }

    /// Announces dropped ranges as `gap` events on their gap subject, while the queue takes them.
    fn report_drops(&mut self) {
        let Some(tx) = self.tx.clone() else { return };
        let json = self.json;
        let template = self.templates[crate::event::EventKind::Gap as usize].clone();
        let mut drops = std::mem::take(&mut self.drops);
        drops.report(json, |exchange, market, symbol, payload| {
            let Some(mut m) = self.try_slot() else {
                return false;
            };
            subject::expand(
                &template,
                exchange,
                market,
                "gap",
                "",
                symbol,
                &mut m.subject,
            );
            self.gaps_sent += 1;
            m.id.clear();
            use std::fmt::Write;
            let _ = write!(m.id, "mdc-gap.{}.{}", std::process::id(), self.gaps_sent);
            m.payload.clear();
            m.payload.extend_from_slice(payload);
            match tx.try_send(m) {
                Ok(()) => true,
                Err(e) => {
                    self.spare.push(e.into_inner());
                    false
                }
            }
        });
        self.drops = drops;
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        if self.spool.is_some() {
            self.drain_spool()?;
            let spooling = self.spool.as_ref().is_some_and(|s| !s.is_empty());
            let room = self.tx.as_ref().is_some_and(|t| t.capacity() > 0);
            if spooling || !room {
                // Behind what is spooled already (order holds), or the queue is full.
                let mut m = std::mem::replace(
                    &mut self.scratch,
                    Msg {
                        subject: String::new(),
                        id: String::new(),
                        payload: Vec::new(),
                    },
                );
                self.fill(rec, &mut m);
                let kept = match self.spool.as_mut() {
                    Some(s) => s
                        .push(&[m.subject.as_bytes(), m.id.as_bytes(), &m.payload])
                        .map_err(|e| SinkError(format!("nats spool: {e}")))?,
                    None => false,
                };
                self.scratch = m;
                if !kept {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.drops.note(rec);
                }
                return Ok(());
            }
        }
        self.collect_given_up();
        if !self.drops.is_empty() {
            self.report_drops();
        }
        let mut m = if self.drop_newest {
            match self.try_slot() {
                Some(m) => m,
                None => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.drops.note(rec);
                    return Ok(());
                }
            }
        } else {
            self.slot()?
        };
        self.fill(rec, &mut m);
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| SinkError("nats sink closed".into()))?;
        if self.drop_newest {
            match tx.try_send(m) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(m)) => {
                    self.spare.push(m);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.drops.note(rec);
                }
                Err(_) => return Err(SinkError("nats thread ended".into())),
            }
        } else {
            tx.blocking_send(m)
                .map_err(|_| SinkError("nats thread ended".into()))?;
        }
        self.health.queue_depth.store(
            (tx.max_capacity() - tx.capacity()) as i64,
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn tick(&mut self, _now_ns: i64) -> Result<(), SinkError> {
        if self.spool.is_some() {
            self.drain_spool()?;
        }
        self.collect_given_up();
        if !self.drops.is_empty() {
            self.report_drops();
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        // What is still spooled stays in the file: the next run replays it first.
        if let Some(s) = self.spool.as_mut()
            && !s.is_empty()
        {
            s.flush()
                .map_err(|e| SinkError(format!("nats spool: {e}")))?;
            log::warn!(
                "event=nats_spool_kept path={} bytes={} note=\"replayed by the next run\"",
                s.path().display(),
                s.len()
            );
        }
        // Closing the queue tells the thread to publish what is left and wait for its acks.
        self.tx = None;
        match self.done.recv_timeout(CLOSE_WAIT) {
            Ok(()) => {
                if let Some(t) = self.thread.take() {
                    t.join()
                        .map_err(|_| SinkError("nats thread panicked".into()))?;
                }
                match self.unsettled.load(Ordering::Relaxed) {
                    0 => Ok(()),
                    n => Err(SinkError(format!(
                        "{n} message(s) not acknowledged by NATS"
                    ))),
                }
            }
            Err(_) => Err(SinkError(format!(
                "NATS did not acknowledge the last messages within {CLOSE_WAIT:?}"
            ))),
        }
    }
}

/// The server's acknowledgement of one JetStream publish, awaited by its own task from the moment
/// of the publish: its timeout runs from then, not from when the window reaches it (awaited in
/// order, the futures' timeouts would add up behind an outage).
type Ack = tokio::task::JoinHandle<Result<(), Failure>>;

/// Why a publish was not acknowledged.
struct Failure {
    /// No stream captures the subject (JetStream answered "no responders"): the server came back
    /// without its state, or someone deleted the stream. The stream is ensured again.
    stream_missing: bool,
    text: String,
}

impl Failure {
    fn other(text: impl Into<String>) -> Failure {
        Failure {
            stream_missing: false,
            text: text.into(),
        }
    }
}

/// First wait before re-publishing after a failure; doubles per failed wave up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A publish not yet acknowledged.
struct Pending {
    ack: Option<Ack>,
    subject: String,
    id: String,
    payload: Bytes,
    first_sent: Instant,
    last_sent: Instant,
}

fn headers(id: &str) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", id);
    h
}

async fn connect(plan: &NatsPlan) -> Result<async_nats::Client, String> {
    let c = &plan.cfg;
    let mut o = async_nats::ConnectOptions::new()
        .name("mdc")
        .retry_on_initial_connect()
        .max_reconnects(None);
    if let (Some(u), Some(p)) = (&c.user, &c.password) {
        o = o.user_and_password(u.clone(), p.expose().to_string());
    }
    if let Some(t) = &c.token {
        o = o.token(t.expose().to_string());
    }
    if let Some(s) = &c.nkey_seed {
        o = o.nkey(s.expose().to_string());
    }
    if let Some(f) = &c.creds_file {
        o = o
            .credentials_file(f)
            .await
            .map_err(|e| format!("sinks.nats.creds_file: {e}"))?;
    }
    if let Some(ca) = &c.tls_ca_file {
        o = o.add_root_certificates(ca.into());
    }
    if c.tls_required {
        o = o.require_tls(true);
    }
    o.connect(c.url.list())
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// The stream `plan.cfg.stream`: created with the plan's limits when absent; an existing one must
/// capture every subject template (it is used as it is, never altered).
async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    plan: &NatsPlan,
) -> Result<(), (bool, String)> {
    use async_nats::jetstream::stream;
    let l = &plan.cfg.stream_limits;
    let want = stream::Config {
        name: plan.cfg.stream.clone(),
        subjects: plan.stream_subjects(),
        max_age: plan.max_age,
        max_bytes: l.max_bytes,
        storage: if l.storage == "memory" {
            stream::StorageType::Memory
        } else {
            stream::StorageType::File
        },
        num_replicas: l.replicas,
        duplicate_window: plan.duplicate_window,
        ..Default::default()
    };
    let s = js
        .get_or_create_stream(want)
        .await
        .map_err(|e| (false, format!("stream {}: {e}", plan.cfg.stream)))?;
    let have = &s.cached_info().config.subjects;
    for w in plan.stream_subjects() {
        if !have.iter().any(|f| subject::covers(f, &w)) {
            return Err((
                true,
                format!(
                    "config error: sinks.nats.stream: the existing stream {} captures {:?}, not `{w}` (widen its subjects or change sinks.nats.subjects)",
                    plan.cfg.stream, have
                ),
            ));
        }
    }
    Ok(())
}

fn run(
    plan: NatsPlan,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    free: crossbeam_channel::Sender<Msg>,
    stats: Stats,
    health: SinkHealth,
    ready: crossbeam_channel::Sender<Result<(), String>>,
    unsettled: Arc<AtomicU64>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("nats runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let client = match connect(&plan).await {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let jetstream = plan.cfg.mode == "jetstream";
        let js = async_nats::jetstream::new(client.clone());
        // The stream is ensured once the server answers (it may be down at start).
        let mut stream_ok = !jetstream;
        let mut ready = Some(ready);
        let mut next_try = Instant::now();
        let mut inflight: VecDeque<Pending> = VecDeque::new();
        let mut closing = false;
        let max = plan.cfg.max_in_flight;
        let mut give_up_log = crate::metrics::LogThrottle::default();
        // Retries back off per wave of failures, not per message: a publish sent before the last
        // wait ended failed in that wave and goes again at once.
        let mut backoff = MIN_BACKOFF;
        let mut wave_end = Instant::now();
        loop {
            let connected = client.connection_state() == async_nats::connection::State::Connected;
            if !stream_ok && connected && Instant::now() >= next_try {
                match ensure_stream(&js, &plan).await {
                    Ok(()) => {
                        stream_ok = true;
                        // Whatever failed while the stream was missing goes again now.
                        wave_end = Instant::now();
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Err((fatal, e)) => {
                        log::warn!("event=nats_stream_error error=\"{e}\"");
                        if fatal && let Some(r) = ready.take() {
                            let _ = r.send(Err(e));
                            return;
                        }
                        next_try = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            if stream_ok && let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            health
                .reachable
                .store(connected && stream_ok, Ordering::Relaxed);
            if !stream_ok {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            // Take new messages while the window has room.
            while !closing && inflight.len() < max {
                let m = if inflight.is_empty() {
                    match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                        Ok(Some(m)) => m,
                        Ok(None) => {
                            closing = true;
                            break;
                        }
                        Err(_) => break,
                    }
                } else {
                    match rx.try_recv() {
                        Ok(m) => m,
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                        Err(_) => {
                            closing = true;
                            break;
                        }
                    }
                };
                let payload = Bytes::copy_from_slice(&m.payload);
                let p = Pending {
                    ack: None,
                    subject: m.subject.clone(),
                    id: m.id.clone(),
                    payload,
                    first_sent: Instant::now(),
                    last_sent: Instant::now(),
                };
                let _ = free.try_send(m);
                inflight.push_back(send(&client, &js, jetstream, p, &stats).await);
            }
            // Then wait for the oldest acknowledgement.
            let Some(mut p) = inflight.pop_front() else {
                if closing {
                    break;
                }
                continue;
            };
            let result = match p.ack.take() {
                Some(ack) => ack
                    .await
                    .unwrap_or_else(|e| Err(Failure::other(e.to_string()))),
                None if jetstream => Err(Failure::other("not sent")),
                None => Ok(()),
            };
            match result {
                Ok(()) => {
                    backoff = MIN_BACKOFF;
                    if jetstream {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(f) if p.first_sent.elapsed() < plan.publish_timeout => {
                    if f.stream_missing && stream_ok {
                        stream_ok = false;
                        next_try = Instant::now();
                        log::warn!(
                            "event=nats_stream_missing stream={} note=\"the server lost the stream (restarted without its state?); creating it again\"",
                            plan.cfg.stream
                        );
                    }
                    if !stream_ok {
                        // Sent again once the stream is back (top of the loop).
                        inflight.push_front(p);
                        continue;
                    }
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    if stats.retried.load(Ordering::Relaxed) % 1000 == 1 {
                        log::warn!(
                            "event=nats_publish_retry subject={} id={} error=\"{}\" backoff_ms={}",
                            p.subject,
                            p.id,
                            f.text,
                            backoff.as_millis()
                        );
                    }
                    if p.last_sent >= wave_end {
                        tokio::time::sleep(backoff).await;
                        wave_end = Instant::now();
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    let p = send(&client, &js, jetstream, p, &stats).await;
                    inflight.push_front(p);
                }
                Err(f) => {
                    let e = f.text;
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    let _ = stats.given_up.try_send(p.payload.clone());
                    if give_up_log.hit() {
                        log::error!(
                            "event=nats_dropped subject={} id={} error=\"{e}\" count={} note=\"not acknowledged within publish_timeout; announced as a sink_failed gap\"",
                            p.subject,
                            p.id,
                            give_up_log.count()
                        );
                    }
                }
            }
        }
        unsettled.store(inflight.len() as u64, Ordering::Relaxed);
        let _ = client.flush().await;
    });
}

/// Publishes `p` (again); on JetStream its ack future rides along.
async fn send(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    jetstream: bool,
    mut p: Pending,
    stats: &Stats,
) -> Pending {
    stats.published.fetch_add(1, Ordering::Relaxed);
    p.last_sent = Instant::now();
    if jetstream {
        p.ack = js
            .publish_with_headers(p.subject.clone(), headers(&p.id), p.payload.clone())
            .await
            .ok()
            .map(|ack| {
                tokio::spawn(async move {
                    ack.await.map(|_| ()).map_err(|e| Failure {
                        stream_missing: e.kind()
                            == async_nats::jetstream::context::PublishErrorKind::StreamNotFound,
                        text: e.to_string(),
                    })
                })
            });
    } else {
        let _ = client
            .publish_with_headers(p.subject.clone(), headers(&p.id), p.payload.clone())
            .await;
    }
    p
}
