//! The on-disk overflow of `backpressure: spool`, shared by the sinks: what a sink's queue could
//! not take is appended to one file (each message as length-prefixed parts) and read back in
//! order once the sink takes messages again; while anything is spooled, new messages go behind
//! it, so order holds. Bounded by `max_bytes`; emptied, the file is truncated. A file left by an
//! earlier run is replayed first.
//!
//! [`RecordSpool`] keeps whole [`Record`]s (the sink still routes, keys and accounts for them when
//! they come back); a sink may also spool its own message parts (NATS: subject, id, payload).

use crate::encode::record::Record;
use crate::event::EventKind;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// `sinks.<name>.spool`: where and how much `backpressure: spool` keeps.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool file (created if absent).
    #[serde(default)]
    pub path: String,
    /// Bytes kept at most (default 1 GiB); past it records are dropped as with `drop_newest`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_bytes() -> u64 {
    1 << 30
}

impl SpoolConfig {
    /// The default for sink `name`: `./spool/<name>`, 1 GiB.
    pub fn for_sink(name: &str) -> SpoolConfig {
        SpoolConfig {
            path: format!("./spool/{name}"),
            max_bytes: default_max_bytes(),
        }
    }

    /// A section that names only `max_bytes` keeps the default directory `./spool/<sink>`.
    pub fn fill_path(&mut self, sink: &str) {
        if self.path.is_empty() {
            self.path = format!("./spool/{sink}");
        }
    }

    /// Checked when `backpressure: spool` is chosen: a path and a bound.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.path.is_empty() || self.max_bytes == 0 {
            return Err("needs a path and max_bytes above 0");
        }
        Ok(())
    }
}

pub struct Spool {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Bytes written and read so far (the file's end and the read position).
    written: u64,
    read: u64,
    max_bytes: u64,
    /// Size of the message the last `pop` returned, for `unpop` (0: nothing to put back).
    last_pop: u64,
}

impl Spool {
    /// The spool file `<sink>.spool` in `dir` (a leftover of an earlier run is kept and replayed
    /// first).
    pub fn open(dir: &str, sink: &str, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = PathBuf::from(dir).join(format!("{sink}.spool"));
        let w = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let written = w.metadata()?.len();
        let r = File::open(&path)?;
        Ok(Spool {
            path,
            writer: BufWriter::with_capacity(1 << 16, w),
            reader: BufReader::with_capacity(1 << 16, r),
            written,
            read: 0,
            max_bytes,
            last_pop: 0,
        })
    }

    /// Bytes waiting.
    pub fn len(&self) -> u64 {
        self.written - self.read
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one message of `parts`; `false` (nothing written) when it would pass `max_bytes`.
    pub fn push(&mut self, parts: &[&[u8]]) -> std::io::Result<bool> {
        let size: usize = parts.iter().map(|p| 4 + p.len()).sum();
        if self.len() + size as u64 > self.max_bytes {
            return Ok(false);
        }
        for part in parts {
            self.writer.write_all(&(part.len() as u32).to_le_bytes())?;
            self.writer.write_all(part)?;
        }
        self.written += size as u64;
        Ok(true)
    }

    /// Reads the oldest message into `parts` (as many as were pushed); `false` when none waits.
    pub fn pop(&mut self, parts: &mut [&mut Vec<u8>]) -> std::io::Result<bool> {
        self.last_pop = 0;
        if self.is_empty() {
            return Ok(false);
        }
        self.writer.flush()?;
        let mut size = 0u64;
        for out in parts.iter_mut() {
            let mut n = [0u8; 4];
            self.reader.read_exact(&mut n)?;
            let n = u32::from_le_bytes(n) as usize;
            out.clear();
            out.resize(n, 0);
            self.reader.read_exact(out)?;
            size += 4 + n as u64;
        }
        self.read += size;
        self.last_pop = size;
        if self.is_empty() {
            // Everything replayed: start the file over.
            self.writer.flush()?;
            self.writer.get_ref().set_len(0)?;
            self.reader.seek(SeekFrom::Start(0))?;
            self.written = 0;
            self.read = 0;
            self.last_pop = 0;
        }
        Ok(true)
    }

    /// Puts the message just popped back at the front (the sink could not take it after all);
    /// `false` when that pop emptied the file (push it again instead: it is then the front).
    pub fn unpop(&mut self) -> std::io::Result<bool> {
        if self.last_pop == 0 {
            return Ok(false);
        }
        // The reader's offset is `read` (reads are sequential from 0 and reset together).
        self.read -= self.last_pop;
        self.last_pop = 0;
        self.reader.seek(SeekFrom::Start(self.read))?;
        Ok(true)
    }

    /// Hands what is buffered to the OS (at shutdown: the next run replays it).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// A spool of whole records: each as a fixed head (kind, times, position), its names, symbol and
/// both encodings. Buffers are reused: no allocation per record once warm.
pub struct RecordSpool {
    spool: Spool,
    head: Vec<u8>,
    names: [Vec<u8>; 3],
    symbol: Vec<u8>,
}

const HEAD: usize = 1 + 8 + 8 + 8 + 1;

impl RecordSpool {
    pub fn open(cfg: &SpoolConfig, sink: &str) -> std::io::Result<RecordSpool> {
        Ok(RecordSpool {
            spool: Spool::open(&cfg.path, sink, cfg.max_bytes)?,
            head: Vec::with_capacity(HEAD),
            names: Default::default(),
            symbol: Vec::with_capacity(32),
        })
    }

    pub fn len(&self) -> u64 {
        self.spool.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spool.is_empty()
    }

    pub fn path(&self) -> &std::path::Path {
        self.spool.path()
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.spool.flush()
    }

    /// Appends `rec`; `false` when the spool is at `max_bytes`.
    pub fn push(&mut self, rec: &Record) -> std::io::Result<bool> {
        self.head.clear();
        self.head.push(rec.kind as u8);
        self.head.extend_from_slice(&rec.recv_ts_ns.to_le_bytes());
        self.head.extend_from_slice(&rec.parsed_ts_ns.to_le_bytes());
        self.head.extend_from_slice(&rec.position.to_le_bytes());
        // Bit 0: position_unique; bit 1: raw_first (older spools have 0 there).
        self.head
            .push(rec.position_unique as u8 | (rec.raw_first as u8) << 1);
        self.spool.push(&[
            &self.head,
            rec.exchange.as_bytes(),
            rec.market.as_bytes(),
            rec.variant.as_bytes(),
            rec.symbol.as_bytes(),
            &rec.json,
            &rec.proto,
            &rec.raw,
        ])
    }

    /// Puts `rec`, just popped, back at the front; `false` if it no longer fits.
    pub fn unpop(&mut self, rec: &Record) -> std::io::Result<bool> {
        if self.spool.unpop()? {
            return Ok(true);
        }
        // That pop emptied the spool: pushed again, it is the front.
        self.push(rec)
    }

    /// The oldest record into `rec`; `false` when none waits. A damaged entry is an error.
    pub fn pop(&mut self, rec: &mut Record) -> std::io::Result<bool> {
        let [e, m, v] = &mut self.names;
        let got = self.spool.pop(&mut [
            &mut self.head,
            e,
            m,
            v,
            &mut self.symbol,
            &mut rec.json,
            &mut rec.proto,
            &mut rec.raw,
        ])?;
        if !got {
            return Ok(false);
        }
        let bad = || std::io::Error::other("damaged spool entry");
        let h = &self.head;
        if h.len() != HEAD {
            return Err(bad());
        }
        let i64_at = |i: usize| i64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
        rec.kind = *EventKind::ALL.get(h[0] as usize).ok_or_else(bad)?;
        rec.recv_ts_ns = i64_at(1);
        rec.parsed_ts_ns = i64_at(9);
        rec.position = i64_at(17) as u64;
        rec.position_unique = h[25] & 1 != 0;
        rec.raw_first = h[25] & 2 != 0;
        let name = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(super::intern::intern)
                .map_err(|_| bad())
        };
        rec.exchange = name(&self.names[0])?;
        rec.market = name(&self.names[1])?;
        rec.variant = name(&self.names[2])?;
        rec.symbol.clear();
        rec.symbol
            .push_str(std::str::from_utf8(&self.symbol).map_err(|_| bad())?);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("mdc-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.to_str().unwrap().to_string()
    }

    #[test]
    fn replays_in_order_is_bounded_and_starts_over_when_empty() {
        let dir = temp("parts");
        let mut s = Spool::open(&dir, "t", 200).unwrap();
        assert!(s.push(&[b"a.b", b"1", b"x"]).unwrap());
        assert!(s.push(&[b"a.c", b"2", b"yy"]).unwrap());
        assert!(
            !s.push(&[b"a.d", b"3", &[0u8; 300]]).unwrap(),
            "over max_bytes"
        );
        let (mut sub, mut id, mut p) = (Vec::new(), Vec::new(), Vec::new());
        assert!(s.pop(&mut [&mut sub, &mut id, &mut p]).unwrap());
        assert_eq!(
            (sub.as_slice(), id.as_slice(), p.as_slice()),
            (&b"a.b"[..], &b"1"[..], &b"x"[..])
        );
        assert!(s.push(&[b"a.e", b"4", b"z"]).unwrap());
        assert!(s.pop(&mut [&mut sub, &mut id, &mut p]).unwrap());
        assert_eq!(id, b"2");
        assert!(s.pop(&mut [&mut sub, &mut id, &mut p]).unwrap());
        assert_eq!(id, b"4");
        assert!(s.is_empty());
        assert!(!s.pop(&mut [&mut sub, &mut id, &mut p]).unwrap());
        assert_eq!(std::fs::metadata(s.path()).unwrap().len(), 0);
        assert!(s.push(&[b"a.f", b"5", b"w"]).unwrap());
        assert!(s.pop(&mut [&mut sub, &mut id, &mut p]).unwrap());
        assert_eq!(id, b"5");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_come_back_whole_and_survive_a_restart() {
        let dir = temp("records");
        let cfg = SpoolConfig {
            path: dir.clone(),
            max_bytes: 1 << 20,
        };
        let mut r = Record::with_capacity(64);
        r.kind = EventKind::DepthDiff;
        r.exchange = "binance";
        r.market = "spot";
        r.variant = "";
        r.symbol.push_str("BTCUSDT");
        r.recv_ts_ns = 1_700_000_000_123_456_789;
        r.parsed_ts_ns = 1_700_000_000_123_459_000;
        r.position = 42;
        r.position_unique = true;
        r.json.extend_from_slice(b"{\"a\":1}\n");
        r.proto.extend_from_slice(&[8, 1]);
        r.raw.extend_from_slice(br#"{"e":"trade"}"#);
        {
            let mut s = RecordSpool::open(&cfg, "k").unwrap();
            assert!(s.push(&r).unwrap());
            s.flush().unwrap();
        }
        let mut s = RecordSpool::open(&cfg, "k").unwrap();
        assert!(!s.is_empty(), "a leftover is replayed");
        let mut back = Record::with_capacity(8);
        assert!(s.pop(&mut back).unwrap());
        assert_eq!(format!("{back:?}"), format!("{r:?}"));
        assert!(!s.pop(&mut back).unwrap());
        // Put back at the front, whether or not the pop emptied the file.
        for _ in 0..2 {
            s.push(&r).unwrap();
        }
        r.position = 43;
        s.push(&r).unwrap();
        assert!(s.pop(&mut back).unwrap());
        assert!(s.unpop(&back).unwrap(), "rewound");
        for want in [42, 42, 43] {
            assert!(s.pop(&mut back).unwrap());
            assert_eq!(back.position, want);
        }
        assert!(s.is_empty());
        assert!(s.unpop(&back).unwrap(), "emptied: pushed again");
        assert!(s.pop(&mut back).unwrap());
        assert_eq!(back.position, 43);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
