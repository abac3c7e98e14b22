//! The capture's writer thread (`capture`): takes queued frames every few milliseconds (never a
//! wake-up per frame), writes one JSON line each into the current file, closes it at each new
//! UTC hour of receive time or past `rotate_bytes`, and hands closed files to the compressor
//! thread (`capture-zstd`), which writes `<file>.zst` and removes the plain file. Files left
//! plain by an earlier run (stopped while compressing, or killed) are compressed at start.

use super::{CaptureConfig, Item};
use crate::metrics::Metrics;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer sleeps when its queue is empty.
const POLL: Duration = Duration::from_millis(5);
/// Written data reaches the OS at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait at close for the compressor to finish the files already closed.
const COMPRESS_WAIT: Duration = Duration::from_secs(10);
const HOUR_NS: i64 = 3_600_000_000_000;

/// The JSON line of `it` (with its `\n`) appended to `out`.
pub fn line_of(it: &Item, out: &mut Vec<u8>) {
    use crate::encode::json::string;
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"receive_ts_ns\":");
    out.extend_from_slice(num.format(it.receive_ts_ns).as_bytes());
    out.extend_from_slice(b",\"exchange\":");
    string(out, it.exchange);
    out.extend_from_slice(b",\"market\":");
    string(out, it.market);
    match it.event {
        "" => {}
        "conn" => {
            out.extend_from_slice(b",\"conn\":");
            out.extend_from_slice(num.format(it.conn).as_bytes());
            out.extend_from_slice(b",\"event\":\"conn\",\"rollover_timeout_ms\":");
            out.extend_from_slice(num.format(it.aux).as_bytes());
            out.extend_from_slice(b",\"streams\":");
            out.extend_from_slice(&it.bytes);
            out.extend_from_slice(b"}\n");
            return;
        }
        "book_loaded" => {
            out.extend_from_slice(b",\"event\":\"book_loaded\",\"symbol\":");
            string(out, &it.symbol);
            out.extend_from_slice(b",\"rest_ts\":");
            out.extend_from_slice(num.format(it.aux).as_bytes());
            out.extend_from_slice(b"}\n");
            return;
        }
        marker => {
            out.extend_from_slice(b",\"conn\":");
            out.extend_from_slice(num.format(it.conn).as_bytes());
            out.extend_from_slice(b",\"session\":");
            out.extend_from_slice(num.format(it.session).as_bytes());
            out.extend_from_slice(b",\"event\":");
            string(out, marker);
            out.extend_from_slice(b"}\n");
            return;
        }
    }
    if it.rest.is_empty() {
        out.extend_from_slice(b",\"conn\":");
        out.extend_from_slice(num.format(it.conn).as_bytes());
        out.extend_from_slice(b",\"session\":");
        out.extend_from_slice(num.format(it.session).as_bytes());
    } else {
        out.extend_from_slice(b",\"rest\":");
        string(out, &it.rest);
        out.extend_from_slice(b",\"symbol\":");
        string(out, &it.symbol);
    }
    match std::str::from_utf8(&it.bytes) {
        Ok(text) => {
            out.extend_from_slice(b",\"raw\":");
            string(out, text);
        }
        Err(_) => {
            // A binary frame: kept exactly, as hex.
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b",\"raw_hex\":\"");
            for b in &it.bytes {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

/// `capture-YYYYMMDDTHH-` of the UTC hour `hour` (hours since the epoch).
fn hour_prefix(hour: i64) -> String {
    let (y, m, d, h) = crate::clock::utc_ymdh(hour * 3600);
    format!("capture-{y:04}{m:02}{d:02}T{h:02}-")
}

struct Open {
    out: BufWriter<File>,
    path: PathBuf,
    hour: i64,
    bytes: u64,
}

struct Counters {
    frames: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    compressed: Arc<AtomicU64>,
    depth: Arc<AtomicI64>,
}

/// The writer's side, held by the topology: [`CaptureWriter::close`] after the parsers stopped.
pub struct CaptureWriter {
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    compressed: Option<crossbeam_channel::Receiver<()>>,
}

impl CaptureWriter {
    pub fn start(
        cfg: &CaptureConfig,
        rx: crossbeam_channel::Receiver<Item>,
        free: crossbeam_channel::Sender<Item>,
        stop: Arc<AtomicBool>,
        metrics: &Metrics,
    ) -> Result<CaptureWriter, String> {
        let dir = PathBuf::from(&cfg.path);
        std::fs::create_dir_all(&dir).map_err(|e| format!("capture.path {}: {e}", cfg.path))?;
        let files = |state: &str| {
            metrics.counter(
                "capture_files_total",
                "Capture files closed, and compressed, by state.",
                &[("state", state)],
            )
        };
        let c = Counters {
            frames: metrics.counter(
                "capture_frames_total",
                "Frames and REST bodies written to the raw capture.",
                &[],
            ),
            bytes: metrics.counter(
                "capture_bytes_total",
                "Bytes of capture lines written (before compression).",
                &[],
            ),
            closed: files("closed"),
            compressed: files("compressed"),
            depth: metrics.gauge(
                "capture_queue_depth",
                "Frames queued for the capture writer.",
                &[],
            ),
        };
        // Left plain by an earlier run: compress first; half-written outputs are removed.
        let mut leftovers = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| format!("capture.path: {e}"))? {
            let p = e.map_err(|e| format!("capture.path: {e}"))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("capture-") && name.ends_with(".zst.tmp") {
                let _ = std::fs::remove_file(&p);
            } else if name.starts_with("capture-") && name.ends_with(".jsonl") {
                leftovers.push(p);
            }
        }
        let (to_zstd, jobs) = crossbeam_channel::unbounded::<PathBuf>();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let compress = cfg.compression == "zstd";
        if compress {
            for p in leftovers {
                let _ = to_zstd.send(p);
            }
            let (level, n) = (cfg.zstd_level, c.compressed.clone());
            std::thread::Builder::new()
                .name("capture-zstd".into())
                .spawn(move || {
                    for p in jobs {
                        match compress_file(&p, level) {
                            Ok(()) => {
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => log::error!(
                                "event=capture_compress_failed file={} error=\"{e}\" note=\"left plain\"",
                                p.display()
                            ),
                        }
                    }
                    let _ = done_tx.send(());
                })
                .map_err(|e| format!("capture-zstd thread: {e}"))?;
        }
        let st = stop.clone();
        let rotate = cfg.rotate_bytes;
        let writer = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let to_zstd = compress.then_some(to_zstd);
                run(&dir, rotate, &rx, &free, &st, &c, to_zstd.as_ref());
            })
            .map_err(|e| format!("capture thread: {e}"))?;
        log::info!(
            "event=capture_started path={} rotate_bytes={} compression={}",
            cfg.path,
            cfg.rotate_bytes,
            cfg.compression
        );
        Ok(CaptureWriter {
            stop,
            writer: Some(writer),
            compressed: compress.then_some(done),
        })
    }

    /// Writes what is queued, closes the current file and waits (a while) for its compression.
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(done) = self.compressed.take()
            && done.recv_timeout(COMPRESS_WAIT).is_err()
        {
            log::warn!(
                "event=capture_compress_pending note=\"files still plain are compressed at the next start\""
            );
        }
    }
}

fn compress_file(p: &Path, level: i32) -> std::io::Result<()> {
    let mut out_path = p.as_os_str().to_owned();
    out_path.push(".zst");
    let out_path = PathBuf::from(out_path);
    let mut tmp = out_path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut input = std::io::BufReader::new(File::open(p)?);
    let mut enc = zstd::stream::Encoder::new(BufWriter::new(File::create(&tmp)?), level)?;
    std::io::copy(&mut input, &mut enc)?;
    let mut w = enc.finish()?;
    w.flush()?;
    w.get_ref().sync_all()?;
    std::fs::rename(&tmp, &out_path)?;
    std::fs::remove_file(p)
}

fn run(
    dir: &Path,
    rotate_bytes: u64,
    rx: &crossbeam_channel::Receiver<Item>,
    free: &crossbeam_channel::Sender<Item>,
    stop: &AtomicBool,
    c: &Counters,
    to_zstd: Option<&crossbeam_channel::Sender<PathBuf>>,
) {
    let mut open: Option<Open> = None;
    let mut line = Vec::with_capacity(1 << 16);
    // The `conn` lines by connection, repeated at the top of every file.
    let mut headers: Vec<Vec<u8>> = Vec::new();
    let mut last_flush = Instant::now();
    let mut failures = crate::metrics::LogThrottle::default();
    let close = |o: Open| {
        let Open { mut out, path, .. } = o;
        if let Err(e) = out.flush().and_then(|_| out.get_ref().sync_all()) {
            log::error!(
                "event=capture_write_failed file={} error=\"{e}\"",
                path.display()
            );
        }
        drop(out);
        c.closed.fetch_add(1, Ordering::Relaxed);
        if let Some(z) = to_zstd {
            let _ = z.send(path);
        }
    };
    loop {
        let mut took = 0usize;
        let mut ended = false;
        loop {
            match rx.try_recv() {
                Ok(it) => {
                    line.clear();
                    line_of(&it, &mut line);
                    let hour = it.receive_ts_ns.div_euclid(HOUR_NS);
                    let header = it.event == "conn";
                    let frame = it.event.is_empty();
                    if header {
                        let i = it.conn as usize;
                        if headers.len() <= i {
                            headers.resize_with(i + 1, Vec::new);
                        }
                        headers[i].clear();
                        headers[i].extend_from_slice(&line);
                    }
                    let _ = free.try_send(it);
                    took += 1;
                    if header {
                        // Written into the open file (a later one starts with it anyway).
                        if let Some(o) = open.as_mut() {
                            write_line(o, &line, false, c, &mut failures);
                        }
                        continue;
                    }
                    if open
                        .as_ref()
                        .is_some_and(|o| o.hour != hour || o.bytes >= rotate_bytes)
                        && let Some(o) = open.take()
                    {
                        close(o);
                    }
                    if open.is_none() {
                        match new_file(dir, hour) {
                            Ok(mut o) => {
                                for h in headers.iter().filter(|h| !h.is_empty()) {
                                    write_line(&mut o, h, false, c, &mut failures);
                                }
                                open = Some(o);
                            }
                            Err(e) => {
                                if failures.hit() {
                                    log::error!(
                                        "event=capture_open_failed dir={} error=\"{e}\" count={}",
                                        dir.display(),
                                        failures.count()
                                    );
                                }
                                continue;
                            }
                        }
                    }
                    if let Some(o) = open.as_mut() {
                        write_line(o, &line, frame, c, &mut failures);
                    }
                    if took >= 4096 {
                        break;
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    ended = true;
                    break;
                }
            }
        }
        c.depth.store(rx.len() as i64, Ordering::Relaxed);
        if last_flush.elapsed() >= FLUSH_EVERY {
            last_flush = Instant::now();
            if let Some(o) = open.as_mut() {
                let _ = o.out.flush();
            }
        }
        if ended || (took == 0 && stop.load(Ordering::Relaxed)) {
            break;
        }
        if took == 0 {
            std::thread::sleep(POLL);
        }
    }
    if let Some(o) = open.take() {
        close(o);
    }
    log::info!(
        "event=capture_closed frames={} bytes={}",
        c.frames.load(Ordering::Relaxed),
        c.bytes.load(Ordering::Relaxed)
    );
}

/// Appends `line` to `o`; `frame`: it counts in `capture_frames_total` (a frame or REST body,
/// not a marker).
fn write_line(
    o: &mut Open,
    line: &[u8],
    frame: bool,
    c: &Counters,
    failures: &mut crate::metrics::LogThrottle,
) {
    match o.out.write_all(line) {
        Ok(()) => {
            o.bytes += line.len() as u64;
            if frame {
                c.frames.fetch_add(1, Ordering::Relaxed);
            }
            c.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            if failures.hit() {
                log::error!(
                    "event=capture_write_failed file={} error=\"{e}\" count={}",
                    o.path.display(),
                    failures.count()
                );
            }
        }
    }
}

/// A new file for `hour`: the next sequence number not taken (plain or compressed).
fn new_file(dir: &Path, hour: i64) -> std::io::Result<Open> {
    let prefix = hour_prefix(hour);
    for seq in 0..100_000u32 {
        let name = format!("{prefix}{seq:04}.jsonl");
        let path = dir.join(&name);
        let zst = dir.join(format!("{name}.zst"));
        if path.exists() || zst.exists() {
            continue;
        }
        let f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        return Ok(Open {
            out: BufWriter::with_capacity(1 << 20, f),
            path,
            hour,
            bytes: 0,
        });
    }
    Err(std::io::Error::other("no free file name for this hour"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_frame_exactly() {
        let mut it = Item::new();
        it.receive_ts_ns = 1_765_000_000_123_456_789;
        it.exchange = "binance";
        it.market = "spot";
        it.conn = 3;
        it.bytes.extend_from_slice(
            "{\"e\":\"trade\",\"s\":\"BTC\\\"USDT\",\"x\":\"\u{e9}\"}".as_bytes(),
        );
        let mut out = Vec::new();
        line_of(&it, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["receive_ts_ns"], 1_765_000_000_123_456_789i64);
        assert_eq!(v["conn"], 3);
        assert_eq!(v["raw"].as_str().unwrap().as_bytes(), &it.bytes[..]);
        it.rest
            .push_str("http://x/api/v3/depth?symbol=BTCUSDT&limit=1000");
        it.symbol.push_str("BTCUSDT");
        it.bytes.clear();
        it.bytes.extend_from_slice(&[0xff, 0x00]);
        out.clear();
        line_of(&it, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["symbol"], "BTCUSDT");
        assert_eq!(v["raw_hex"], "ff00");
        assert!(v.get("conn").is_none());
        assert_eq!(hour_prefix(0), "capture-19700101T00-");
        assert_eq!(hour_prefix(490_319), "capture-20251207T23-");
    }
}
