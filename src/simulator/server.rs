//! Accept loop and one thread per simulated connection.

use super::generator::StreamGen;
use super::{Fault, Shared};
use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{Request, Response};
use tungstenite::{Error as WsError, Message, WebSocket};

pub(crate) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let _ = listener.set_nonblocking(true);
    let mut threads = Vec::new();
    let mut index = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                let i = index;
                index += 1;
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(t) = std::thread::Builder::new()
                    .name(format!("sim-conn-{i}"))
                    .spawn(move || {
                        let _ = serve(stream, i, s);
                    })
                {
                    threads.push(t);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

#[allow(clippy::result_large_err)] // tungstenite's handshake callback fixes the error type
fn serve(stream: TcpStream, index: usize, shared: Arc<Shared>) -> Result<(), WsError> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_nonblocking(false);
    let mut path = String::new();
    let lose = if index > 0 {
        shared.cfg.lose_on_reconnect
    } else {
        0
    };
    let mut ws = tungstenite::accept_hdr(stream, |req: &Request, resp: Response| {
        path = req.uri().to_string();
        if lose > 0 {
            // Before our handshake answer: the collector cannot have received these.
            lose_messages(&shared, &path, lose);
        }
        Ok(resp)
    })
    .map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => WsError::ConnectionClosed,
    })?;
    ws.get_ref().set_nonblocking(true)?;

    // USD-M routed paths: a stream is only served on its own path.
    let route: Option<&'static str> = if path.starts_with("/public/") {
        Some("public")
    } else if path.starts_with("/market/") {
        Some("market")
    } else {
        None
    };
    let mut subscribed: Vec<String> = Vec::new();
    if let Some((_, q)) = path.split_once("streams=") {
        let q = q.split('&').next().unwrap_or("");
        subscribed.extend(
            q.split('/')
                .filter(|s| !s.is_empty())
                .map(crate::exchange::url_unescape),
        );
    } else if let Some(s) = path.strip_prefix("/ws/") {
        subscribed.push(s.to_string());
    }
    let (mirror_tx, mirror_rx) = crossbeam_channel::unbounded::<String>();
    // Leaves every stream's subscriber list when this connection ends, however it ends.
    let _member = Membership {
        shared: shared.clone(),
        index,
    };
    ensure_streams(&shared, &subscribed);
    note_subscribed(&shared, index, &subscribed, &mirror_tx);

    let mut faults: Vec<(u64, Fault)> = shared
        .cfg
        .faults
        .iter()
        .filter(|(c, _, _)| *c == index)
        .map(|(_, after, f)| (*after, f.clone()))
        .collect();
    faults.sort_by_key(|(a, _)| *a);
    let mut sent_here = 0u64;
    let started = Instant::now();
    let mut last_ping = Instant::now();
    let mut ping_seq = 0u64;
    let mut pending_pings: Vec<String> = Vec::new();
    let mut pick = super::generator::Rng(shared.cfg.seed ^ index as u64);
    let mut msg = String::with_capacity(2048);
    let mut no_pong = false;
    let mut close_at: Option<Instant> = None;
    let mut replay: Option<Replay> = None;

    loop {
        if close_at.is_some_and(|t| Instant::now() >= t) {
            let _ = ws.close(None);
            let _ = flush_all(&mut ws);
            return Ok(());
        }
        if shared.stop.load(Ordering::Relaxed) {
            let _ = ws.close(None);
            let _ = flush_all(&mut ws);
            return Ok(());
        }
        // Incoming: subscriptions, pongs, close (not read at all after `NoPong`).
        loop {
            if no_pong {
                break;
            }
            let msg = ws.read();
            if matches!(
                msg,
                Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))
            ) && let Ok(mut l) = shared.inbound_log.lock()
            {
                l.push((index, Instant::now()));
            }
            match msg {
                Ok(Message::Text(t)) => {
                    if let Some((id, streams)) = parse_unsubscribe(t.as_str()) {
                        // Binance stops the streams on this connection and answers.
                        subscribed.retain(|s| !streams.contains(s));
                        if let Ok(mut m) = shared.subscribed.lock()
                            && let Some(list) = m.get_mut(&index)
                        {
                            list.retain(|s| !streams.contains(s));
                        }
                        if let Ok(mut subs) = shared.subscribers.lock() {
                            for s in &streams {
                                if let Some(list) = subs.get_mut(s) {
                                    list.retain(|(i, _)| *i != index);
                                }
                            }
                        }
                        queue(
                            &mut ws,
                            Message::text(format!("{{\"result\":null,\"id\":{id}}}")),
                        )?;
                    } else if let Some((id, streams)) = parse_subscribe(t.as_str()) {
                        shared.subscribe_messages.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = shared.subscribe_log.lock() {
                            l.push((index, Instant::now()));
                        }
                        ensure_streams(&shared, &streams);
                        note_subscribed(&shared, index, &streams, &mirror_tx);
                        for s in streams {
                            if !subscribed.contains(&s) {
                                subscribed.push(s);
                            }
                        }
                        queue(
                            &mut ws,
                            Message::text(format!("{{\"result\":null,\"id\":{id}}}")),
                        )?;
                    }
                }
                Ok(Message::Pong(p)) => {
                    let p = String::from_utf8_lossy(&p).to_string();
                    if let Some(i) = pending_pings.iter().position(|x| *x == p) {
                        pending_pings.remove(i);
                        shared.pongs_matched.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Message::Close(_)) => {
                    let _ = flush_all(&mut ws);
                    return Ok(());
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(iv) = shared.cfg.ping_interval
            && last_ping.elapsed() >= iv
        {
            last_ping = Instant::now();
            ping_seq += 1;
            let payload = format!("sim-ping-{index}-{ping_seq}");
            pending_pings.push(payload.clone());
            shared.pings_sent.fetch_add(1, Ordering::Relaxed);
            queue(&mut ws, Message::Ping(payload.into_bytes().into()))?;
        }

        // Outgoing data, paced.
        let due = if shared.cfg.rate == 0 {
            256
        } else {
            let target = (started.elapsed().as_secs_f64() * shared.cfg.rate as f64) as u64;
            target.saturating_sub(sent_here).min(1024)
        };
        let mut wrote = 0;
        if shared.cfg.replay > 0 && !subscribed.is_empty() {
            let r = replay.get_or_insert_with(|| {
                Replay::new(
                    &subscribed,
                    shared.cfg.seed ^ index as u64,
                    shared.cfg.replay,
                )
            });
            for _ in 0..due {
                let reserved = shared.sent.fetch_add(1, Ordering::Relaxed);
                if shared.cfg.total.is_some_and(|t| reserved >= t) {
                    shared.sent.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                queue(&mut ws, Message::Text(r.next(shared.cfg.stamp_trade_ids)))?;
                sent_here += 1;
                wrote += 1;
            }
        } else if !subscribed.is_empty() {
            let weights: Vec<u64> = {
                let map = shared
                    .streams
                    .lock()
                    .map_err(|_| WsError::ConnectionClosed)?;
                let subs = shared
                    .subscribers
                    .lock()
                    .map_err(|_| WsError::ConnectionClosed)?;
                let muted = shared.muted.lock().map_err(|_| WsError::ConnectionClosed)?;
                subscribed
                    .iter()
                    .map(|s| {
                        // Only the stream's first live subscriber generates it.
                        let owner = subs.get(s).and_then(|v| v.first()).map(|(i, _)| *i);
                        map.get(s)
                            .filter(|g| route.is_none_or(|r| g.channel.route() == r))
                            .filter(|_| owner == Some(index) && !muted.contains(s))
                            .map(|g| g.channel.weight())
                            .unwrap_or(0)
                    })
                    .collect()
            };
            // Copies of streams another connection generates, sent before anything generated
            // here (after an ownership change, this keeps each stream in order).
            while let Ok(m) = mirror_rx.try_recv() {
                queue(&mut ws, Message::text(m))?;
                wrote += 1;
            }
            let total_weight: u64 = weights.iter().sum();
            for _ in 0..due {
                if total_weight == 0 {
                    break;
                }
                if let Some((after, _)) = faults.first()
                    && *after <= sent_here
                {
                    let (_, fault) = faults.remove(0);
                    match fault {
                        Fault::Stall => {
                            // Silent but open: no data, no reads (so no pongs) until stopped.
                            while !shared.stop.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            return Ok(());
                        }
                        Fault::NoPong => no_pong = true,
                        Fault::ServerShutdown(grace) => {
                            let now_ms = crate::clock::realtime_ns() / 1_000_000;
                            queue(
                                &mut ws,
                                Message::text(format!(
                                    "{{\"stream\":\"!serverShutdown\",\"data\":{{\"e\":\"serverShutdown\",\"E\":{now_ms}}}}}"
                                )),
                            )?;
                            close_at = Some(Instant::now() + grace);
                        }
                        f => {
                            if inject(&mut ws, f)? {
                                return Ok(());
                            }
                        }
                    }
                }
                let reserved = shared.sent.fetch_add(1, Ordering::Relaxed);
                if shared.cfg.total.is_some_and(|t| reserved >= t) {
                    shared.sent.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                let mut r = pick.next_u64() % total_weight;
                let mut idx = 0;
                for (i, w) in weights.iter().enumerate() {
                    if r < *w {
                        idx = i;
                        break;
                    }
                    r -= w;
                }
                msg.clear();
                let mut drop_it = false;
                {
                    let mut map = shared
                        .streams
                        .lock()
                        .map_err(|_| WsError::ConnectionClosed)?;
                    if let Some(g) = map.get_mut(&subscribed[idx]) {
                        let now_ms = (crate::clock::realtime_ns() / 1_000_000) as u64;
                        g.next_message(now_ms, &mut msg);
                        if g.channel == super::generator::Channel::Depth {
                            drop_it = depth_generated(&shared, g.symbol(), &msg);
                        }
                    }
                    // Recording under the same lock keeps the log in generation order per stream.
                    if shared.cfg.record
                        && !drop_it
                        && let Ok(mut log) = shared.sent_log.lock()
                    {
                        log.push(msg.clone());
                    }
                    if !drop_it
                        && let Ok(subs) = shared.subscribers.lock()
                        && let Some(list) = subs.get(&subscribed[idx])
                    {
                        for (i, tx) in list {
                            if *i != index {
                                let _ = tx.send(msg.clone());
                            }
                        }
                    }
                }
                if drop_it {
                    continue;
                }
                queue(&mut ws, Message::text(msg.clone()))?;
                sent_here += 1;
                wrote += 1;
            }
        }
        flush_all(&mut ws)?;
        if wrote == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// A pre-generated loop of messages for benchmarks (see `SimConfig::replay`).
struct Replay {
    msgs: Vec<tungstenite::Utf8Bytes>,
    /// Byte offset of a trade's 19-digit id, re-stamped with the send time.
    stamp_at: Vec<Option<usize>>,
    next: usize,
}

impl Replay {
    fn new(streams: &[String], seed: u64, n: usize) -> Replay {
        let corpus = super::generator::stream_corpus(streams, seed, n, true);
        let stamp_at = corpus
            .iter()
            .map(|m| {
                let i = m.find("\"t\":")? + 4;
                let digits = m[i..].bytes().take_while(u8::is_ascii_digit).count();
                (digits == 19).then_some(i)
            })
            .collect();
        Replay {
            msgs: corpus.into_iter().map(Into::into).collect(),
            stamp_at,
            next: 0,
        }
    }

    fn next(&mut self, stamp: bool) -> tungstenite::Utf8Bytes {
        let i = self.next % self.msgs.len().max(1);
        self.next += 1;
        match (stamp, self.stamp_at[i]) {
            (true, Some(at)) => {
                let mut m = self.msgs[i].as_bytes().to_vec();
                let ns = crate::clock::realtime_ns().max(0) as u64;
                let mut digits = [b'0'; 19];
                let mut v = ns;
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                m[at..at + 19].copy_from_slice(&digits);
                // 19 ASCII digits replaced by 19 ASCII digits: still UTF-8.
                tungstenite::Utf8Bytes::try_from(m).unwrap_or_else(|_| self.msgs[i].clone())
            }
            _ => self.msgs[i].clone(),
        }
    }
}

/// Generates `n` messages over the streams named in `path` and records them as lost.
fn lose_messages(shared: &Shared, path: &str, n: u64) {
    let Some((_, q)) = path.split_once("streams=") else {
        return;
    };
    let streams: Vec<String> = q
        .split('&')
        .next()
        .unwrap_or("")
        .split('/')
        .map(crate::exchange::url_unescape)
        .collect();
    ensure_streams(shared, &streams);
    let Ok(mut map) = shared.streams.lock() else {
        return;
    };
    let Ok(mut lost) = shared.lost_log.lock() else {
        return;
    };
    for i in 0..n {
        let name = &streams[i as usize % streams.len()];
        if let Some(g) = map.get_mut(name) {
            let mut m = String::new();
            g.next_message((crate::clock::realtime_ns() / 1_000_000) as u64, &mut m);
            lost.push(m);
        }
    }
}

fn ensure_streams(shared: &Shared, streams: &[String]) {
    if let Ok(mut map) = shared.streams.lock() {
        for s in streams {
            if !map.contains_key(s)
                && let Some(mut g) = StreamGen::with_market(s, shared.cfg.seed, shared.cfg.futures)
            {
                g.stamp_trade_ids = shared.cfg.stamp_trade_ids;
                if shared.cfg.record_depth
                    && g.channel == super::generator::Channel::Depth
                    && let Ok(mut log) = shared.depth_log.lock()
                {
                    log.entry(g.symbol().to_string()).or_default().initial =
                        g.snapshot_json(usize::MAX);
                }
                map.insert(s.clone(), g);
            }
        }
    }
}

/// Records a generated depth diff; true when it must be dropped (an injected sequence gap).
fn depth_generated(shared: &Shared, symbol: &str, msg: &str) -> bool {
    if shared.cfg.record_depth
        && let Ok(mut log) = shared.depth_log.lock()
    {
        log.entry(symbol.to_string())
            .or_default()
            .diffs
            .push(msg.to_string());
    }
    let Some((_, every)) = shared.cfg.depth_gaps.iter().find(|(s, _)| s == symbol) else {
        return false;
    };
    let Ok(mut counts) = shared.depth_counts.lock() else {
        return false;
    };
    let n = counts.entry(symbol.to_string()).or_insert(0);
    *n += 1;
    if (*every).max(1) > 0 && (*n).is_multiple_of((*every).max(1)) {
        shared.gaps_injected.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// USD-M REST series: deterministic points on fixed time buckets, so polling faster than the
/// bucket returns the same point again (the collector must not publish it twice).
fn series(shared: &Shared, path: &str, symbol: &str) -> Option<String> {
    if symbol.is_empty() {
        return None;
    }
    let now = crate::clock::realtime_ns() / 1_000_000;
    let mut served = shared.served_points.lock().ok()?;
    let mut note = |t: &str, ts: i64| {
        served.insert((t.to_string(), symbol.to_string(), ts));
    };
    let frac = |ts: i64, m: i64| format!("{}.{:04}", 1 + (ts / m) % 3, (ts / m) % 10_000);
    match path {
        "/fapi/v1/openInterest" => {
            let ts = now - now % 200;
            note("open_interest", ts);
            Some(format!(
                "{{\"openInterest\":\"{}.{:03}\",\"symbol\":\"{symbol}\",\"time\":{ts}}}",
                80_000 + (ts / 200) % 5_000,
                (ts / 200) % 1000
            ))
        }
        "/futures/data/topLongShortPositionRatio"
        | "/futures/data/topLongShortAccountRatio"
        | "/futures/data/globalLongShortAccountRatio" => {
            let last = now - now % 500;
            let pts: Vec<String> = [last - 1000, last - 500, last]
                .iter()
                .map(|&ts| {
                    note("long_short_ratio", ts);
                    format!(
                        "{{\"symbol\":\"{symbol}\",\"longShortRatio\":\"{}\",\"longAccount\":\"0.{:04}\",\"shortAccount\":\"0.{:04}\",\"timestamp\":{ts}}}",
                        frac(ts, 500),
                        5000 + (ts / 500) % 1000,
                        5000 - (ts / 500) % 1000
                    )
                })
                .collect();
            Some(format!("[{}]", pts.join(",")))
        }
        "/fapi/v1/fundingRate" => {
            let last = now - now % 1000;
            let pts: Vec<String> = [last - 2000, last - 1000, last]
                .iter()
                .map(|&ts| {
                    note("funding_rate", ts);
                    format!(
                        "{{\"symbol\":\"{symbol}\",\"fundingTime\":{ts},\"fundingRate\":\"0.000{:05}\",\"markPrice\":\"{}.{:08}\"}}",
                        (ts / 1000) % 100_000,
                        60_000 + (ts / 1000) % 1000,
                        (ts / 1000) % 100_000_000
                    )
                })
                .collect();
            Some(format!("[{}]", pts.join(",")))
        }
        _ => None,
    }
}

/// Request weight of a call as Binance documents it (the `X-MBX-USED-WEIGHT-1M` we report).
fn request_weight(path: &str, limit: usize) -> u64 {
    match path {
        "/api/v3/depth" => match limit {
            0..=100 => 5,
            101..=500 => 25,
            501..=1000 => 50,
            _ => 250,
        },
        "/fapi/v1/depth" => match limit {
            0..=50 => 2,
            51..=100 => 5,
            101..=500 => 10,
            _ => 20,
        },
        "/fapi/v1/openInterest" => 1,
        // `/futures/data/*` ratios and `fundingRate`: weight 0, limits of their own.
        _ => 0,
    }
}

/// Serves REST depth snapshots from the true books, with scripted faults first.
pub(crate) fn start_rest(addr: &str, shared: Arc<Shared>) -> std::io::Result<std::net::SocketAddr> {
    let server = tiny_http::Server::http(addr).map_err(|e| std::io::Error::other(e.to_string()))?;
    let local = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| std::io::Error::other("no ip address"))?;
    std::thread::Builder::new()
        .name("sim-rest".into())
        .spawn(move || {
            let mut minute = Instant::now();
            let mut weight = 0u64;
            while !shared.stop.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                shared.rest_requests.fetch_add(1, Ordering::Relaxed);
                let url = req.url().to_string();
                let (path, query) = url.split_once('?').unwrap_or((&url, ""));
                let param = |k: &str| {
                    query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                        .map(crate::exchange::url_unescape)
                };
                let header = |k: &str, v: String| {
                    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok()
                };
                let fault = shared
                    .rest_faults
                    .lock()
                    .ok()
                    .and_then(|mut f| f.pop_front());
                let (status, body, retry_after) = match fault {
                    Some(super::RestFault::TooManyRequests(ra)) => (
                        429,
                        r#"{"code":-1003,"msg":"Too many requests."}"#.to_string(),
                        ra,
                    ),
                    Some(super::RestFault::Banned(ra)) => (
                        418,
                        r#"{"code":-1003,"msg":"Way too many requests; IP banned."}"#.to_string(),
                        ra,
                    ),
                    Some(super::RestFault::Status(code)) => (
                        code,
                        r#"{"code":-1000,"msg":"An unknown error occurred while processing the request."}"#
                            .to_string(),
                        None,
                    ),
                    None if path == "/api/v3/depth" || path == "/fapi/v1/depth" => {
                        let symbol = param("symbol").unwrap_or_default();
                        let limit: usize =
                            param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                        let prefix = format!("{}@depth", symbol.to_ascii_lowercase());
                        let mid = shared.cfg.snapshot_mid_diff;
                        let body = shared.streams.lock().ok().and_then(|map| {
                            map.iter()
                                .find(|(k, _)| k.starts_with(&prefix))
                                .map(|(_, g)| {
                                    if mid {
                                        g.snapshot_mid_diff_json(limit)
                                    } else {
                                        g.snapshot_json(limit)
                                    }
                                })
                        });
                        if let Some(b) = &body
                            && shared.cfg.record_depth
                            && let Ok(mut log) = shared.depth_log.lock()
                        {
                            log.entry(symbol.to_ascii_uppercase())
                                .or_default()
                                .snapshots
                                .push(b.clone());
                        }
                        match body {
                            Some(b) => (200, b, None),
                            None => (
                                400,
                                r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_string(),
                                None,
                            ),
                        }
                    }
                    None => match series(&shared, path, &param("symbol").unwrap_or_default()) {
                        Some(body) => (200, body, None),
                        None => (404, "{}".to_string(), None),
                    },
                };
                if minute.elapsed() >= Duration::from_secs(60) {
                    minute = Instant::now();
                    weight = 0;
                }
                let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                weight += request_weight(path, limit);
                if let Ok(mut t) = shared.rest_times.lock() {
                    t.push((Instant::now(), status));
                }
                let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
                if let Some(h) = header("X-MBX-USED-WEIGHT-1M", weight.to_string()) {
                    resp = resp.with_header(h);
                }
                if let Some(ra) = retry_after
                    && let Some(h) = header("Retry-After", ra.to_string())
                {
                    resp = resp.with_header(h);
                }
                if let Some(h) = header("Content-Type", "application/json".to_string()) {
                    resp = resp.with_header(h);
                }
                let _ = req.respond(resp);
            }
        })?;
    Ok(local)
}

fn note_subscribed(
    shared: &Shared,
    index: usize,
    streams: &[String],
    mirror: &crossbeam_channel::Sender<String>,
) {
    if let Ok(mut m) = shared.subscribed.lock() {
        m.entry(index).or_default().extend(streams.iter().cloned());
    }
    if let Ok(mut subs) = shared.subscribers.lock() {
        for s in streams {
            let list = subs.entry(s.clone()).or_default();
            if !list.iter().any(|(i, _)| *i == index) {
                list.push((index, mirror.clone()));
            }
        }
    }
}

/// A connection's place in the subscriber lists; dropping it hands each stream it generated to
/// the next subscriber.
struct Membership {
    shared: Arc<Shared>,
    index: usize,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Taken after `streams` everywhere else; here alone, so no lock-order inversion.
        if let Ok(mut subs) = self.shared.subscribers.lock() {
            for list in subs.values_mut() {
                list.retain(|(i, _)| *i != self.index);
            }
        }
    }
}

fn parse_subscribe(text: &str) -> Option<(u64, Vec<String>)> {
    parse_method(text, "SUBSCRIBE")
}

fn parse_unsubscribe(text: &str) -> Option<(u64, Vec<String>)> {
    parse_method(text, "UNSUBSCRIBE")
}

/// `{"method":<method>,"params":[streams],"id":N}` -> (id, streams).
fn parse_method(text: &str, method: &str) -> Option<(u64, Vec<String>)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v.get("method")?.as_str()? != method {
        return None;
    }
    let id = v.get("id").and_then(|i| i.as_u64()).unwrap_or(0);
    let streams = v
        .get("params")?
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    Some((id, streams))
}

/// Queues a message. `WouldBlock` means tungstenite queued it but could not write its buffer out
/// yet (the peer is slow): not an error; `flush_all` finishes the job.
fn queue(ws: &mut WebSocket<TcpStream>, msg: Message) -> Result<(), WsError> {
    match ws.write(msg) {
        Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

/// Flushes, waiting while the socket is full. Errors end the connection.
fn flush_all(ws: &mut WebSocket<TcpStream>) -> Result<(), WsError> {
    loop {
        match ws.flush() {
            Ok(()) => return Ok(()),
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends a fault; true when the connection is finished afterwards.
fn inject(ws: &mut WebSocket<TcpStream>, fault: Fault) -> Result<bool, WsError> {
    match fault {
        Fault::Malformed => queue(
            ws,
            Message::text(r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":17231612"#),
        )?,
        Fault::UnknownEvent => queue(
            ws,
            Message::text(
                r#"{"stream":"btcusdt@weird","data":{"e":"weirdEvent","E":1723161255343,"s":"BTCUSDT"}}"#,
            ),
        )?,
        Fault::WrongType => queue(
            ws,
            Message::text(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"12","p":"1.0","q":"1.0","T":1,"m":true,"M":true}}"#,
            ),
        )?,
        Fault::Huge(n) => {
            let mut s = String::with_capacity(n);
            s.push_str("{\"pad\":\"");
            while s.len() < n.saturating_sub(2) {
                s.push('x');
            }
            s.push_str("\"}");
            queue(ws, Message::text(s))?
        }
        Fault::Binary => queue(ws, Message::binary(vec![0u8, 1, 2, 3, 255]))?,
        Fault::Close => {
            ws.close(None)?;
            flush_all(ws)?;
            return Ok(true);
        }
        Fault::Stall | Fault::NoPong | Fault::ServerShutdown(_) => {
            unreachable!("handled by the connection loop")
        }
        Fault::CutMidFrame => {
            flush_all(ws)?;
            let payload = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT"}}"#;
            let mut frame = vec![0x81u8, payload.len() as u8];
            frame.extend_from_slice(payload);
            let sock = ws.get_mut();
            let _ = sock.set_nonblocking(false);
            let _ = sock.write_all(&frame[..frame.len() / 2]);
            let _ = sock.flush();
            let _ = sock.shutdown(Shutdown::Write);
            // Drain what the peer still sends until it closes, so our close sends FIN, not a RST
            // that could discard data the peer has not read yet.
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(100)));
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match std::io::Read::read(sock, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    }
                    Err(_) => break,
                }
            }
            return Ok(true);
        }
    }
    flush_all(ws)?;
    Ok(false)
}
