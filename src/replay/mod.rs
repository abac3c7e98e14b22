//! `mdc replay --from <capture> [--config] [--speed S]`: feeds raw captures (`capture:`) through
//! the same decoders and encoders as a live run into the configured sinks, so history can be
//! normalized again with a newer `mdc`. Each frame keeps its captured receive time, so the
//! events are the live run's, `receive_ts_ns` included. Frames of a planned rollover's two
//! sessions overlap in a capture; as live, an event whose stream position was already written
//! is left out.
//!
//! Not yet replayed: local books (`book_snapshot` events from the captured REST bodies), and the
//! `gap` events of live connection losses (a capture holds frames, not disconnects).

use crate::config::Config;
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::event::{Event, EventKind};
use crate::exchange::Decoder;
use crate::metrics::Metrics;
use crate::pipeline::frame::PADDING;
use crate::pipeline::parser::fill;
use crate::sink::Sink;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub files: usize,
    pub frames: u64,
    pub rest_bodies: u64,
    pub events: u64,
    /// Events left out because their stream position was already written (rollover overlap).
    pub duplicates: u64,
    /// Frames of an exchange and market no configured section decodes.
    pub unmatched: u64,
    /// Lines that are not capture lines, and frames the decoder refused.
    pub bad: u64,
}

/// Capture files under `from` (a file or a directory), in name order: rotation order.
pub fn files(from: &Path) -> Result<Vec<PathBuf>, String> {
    if from.is_file() {
        return Ok(vec![from.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(from)
        .map_err(|e| format!("--from {}: {e}", from.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("capture-") && (n.ends_with(".jsonl") || n.ends_with(".jsonl.zst"))
            })
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(format!(
            "--from {}: no capture-*.jsonl[.zst] files",
            from.display()
        ));
    }
    Ok(out)
}

fn open(p: &Path) -> Result<Box<dyn BufRead>, String> {
    let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let r: Box<dyn Read> = if p.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::Decoder::new(f).map_err(|e| format!("{}: {e}", p.display()))?)
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

/// One capture line.
#[derive(serde::Deserialize)]
struct Line {
    receive_ts_ns: i64,
    exchange: String,
    market: String,
    #[serde(default)]
    conn: u32,
    #[serde(default)]
    rest: Option<String>,
    #[serde(default)]
    raw: Option<String>,
}

/// Replays every file under `from` into the sinks of `config`; `speed` 0 is as fast as
/// possible, 1 the recorded pace (2 twice as fast). Stops early when `stop` is set.
pub fn run(
    config: Config,
    from: &Path,
    speed: f64,
    stop: Arc<AtomicBool>,
) -> Result<Stats, String> {
    let files = files(from)?;
    let names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();
    let metrics = Metrics::new(&names);
    let mut formats = Formats::NONE;
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for plan in &config.sinks {
        formats = formats.union(plan.formats());
        sinks.push(
            plan.start(&metrics)
                .map_err(|e| format!("sink {}: {e}", plan.name()))?,
        );
    }
    // Decoders by (exchange, market) of the configured sections; a section spanning several
    // markets (OKX) is found by its exchange alone.
    let mut decoders: Vec<(&'static str, &'static str, Box<dyn Decoder>)> = config
        .exchanges
        .iter()
        .map(|p| (p.exchange(), p.market(), p.decoder()))
        .collect();
    let mut stats = Stats {
        files: files.len(),
        ..Stats::default()
    };
    let mut rec = Record::with_capacity(4096);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut last: HashMap<(u32, EventKind, String), u64> = HashMap::new();
    let mut first_ts: Option<(i64, Instant)> = None;
    let mut last_tick = Instant::now();
    let mut bad_log = crate::metrics::LogThrottle::default();
    'files: for path in &files {
        let mut r = open(path)?;
        let mut text = String::new();
        loop {
            text.clear();
            match r.read_line(&mut text) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            if stop.load(Ordering::Relaxed) {
                break 'files;
            }
            let line: Line = match serde_json::from_str(text.trim_end()) {
                Ok(l) => l,
                Err(e) => {
                    stats.bad += 1;
                    if bad_log.hit() {
                        log::warn!(
                            "event=replay_bad_line file={} error=\"{e}\" count={}",
                            path.display(),
                            bad_log.count()
                        );
                    }
                    continue;
                }
            };
            if line.rest.is_some() {
                stats.rest_bodies += 1;
                continue;
            }
            let Some(raw) = line.raw else {
                stats.bad += 1;
                continue;
            };
            stats.frames += 1;
            if speed > 0.0 {
                let (t0, at) = *first_ts.get_or_insert((line.receive_ts_ns, Instant::now()));
                let due =
                    Duration::from_nanos(((line.receive_ts_ns - t0).max(0) as f64 / speed) as u64);
                if let Some(wait) = due.checked_sub(at.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let at = decoders
                .iter()
                .position(|(e, m, _)| *e == line.exchange && *m == line.market)
                .or_else(|| decoders.iter().position(|(e, _, _)| *e == line.exchange));
            let Some(dec) = at.and_then(|i| decoders.get_mut(i)).map(|(_, _, d)| d) else {
                stats.unmatched += 1;
                continue;
            };
            buf.clear();
            buf.extend_from_slice(raw.as_bytes());
            let len = buf.len();
            buf.resize(len + PADDING, 0);
            let mut first = true;
            let mut failed: Option<String> = None;
            let res = dec.decode(&mut buf, len, line.receive_ts_ns, &mut |ev: &mut Event| {
                let Some(kind) = ev.kind else { return };
                if ev.position_is_unique()
                    && let Some(pos) = ev.position()
                {
                    let key = (line.conn, kind, ev.header.symbol.to_string());
                    match last.get_mut(&key) {
                        Some(p) if pos <= *p => {
                            stats.duplicates += 1;
                            return;
                        }
                        Some(p) => *p = pos,
                        None => {
                            last.insert(key, pos);
                        }
                    }
                }
                fill(&mut rec, ev, formats);
                if formats.raw {
                    rec.raw.extend_from_slice(raw.as_bytes());
                    rec.raw_first = first;
                }
                first = false;
                rec.recv_ts_ns = line.receive_ts_ns;
                stats.events += 1;
                for s in sinks.iter_mut() {
                    if let Err(e) = s.write(&rec) {
                        failed = Some(format!("sink {}: {e}", s.name()));
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if res.is_err() {
                stats.bad += 1;
            }
            if last_tick.elapsed() >= Duration::from_millis(1) {
                last_tick = Instant::now();
                let now = crate::clock::realtime_ns();
                for s in sinks.iter_mut() {
                    s.tick(now).map_err(|e| format!("sink {}: {e}", s.name()))?;
                }
            }
        }
    }
    for s in sinks.iter_mut() {
        s.close().map_err(|e| format!("sink {}: {e}", s.name()))?;
    }
    Ok(stats)
}
