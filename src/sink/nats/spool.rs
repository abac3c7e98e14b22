//! The on-disk overflow of `backpressure: spool`: messages the queue to NATS could not take are
//! appended to one file (each as three length-prefixed parts: subject, message id, payload) and
//! read back in order once NATS takes messages again; while anything is spooled, new messages
//! go behind it, so order holds. Bounded by `max_bytes`; emptied, the file is truncated.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

pub struct Spool {
    path: PathBuf,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Bytes written and read so far (the file's end and the read position).
    written: u64,
    read: u64,
    max_bytes: u64,
}

impl Spool {
    /// A fresh spool file `nats.spool` in `dir` (a leftover of an earlier run is replayed first:
    /// its messages carry their ids, so the server drops what it already has).
    pub fn open(dir: &str, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let path = PathBuf::from(dir).join("nats.spool");
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
        })
    }

    /// Bytes waiting.
    pub fn len(&self) -> u64 {
        self.written - self.read
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one message; `false` (nothing written) when it would pass `max_bytes`.
    pub fn push(&mut self, subject: &str, id: &str, payload: &[u8]) -> std::io::Result<bool> {
        let size = 12 + subject.len() + id.len() + payload.len();
        if self.len() + size as u64 > self.max_bytes {
            return Ok(false);
        }
        for part in [subject.as_bytes(), id.as_bytes(), payload] {
            self.writer.write_all(&(part.len() as u32).to_le_bytes())?;
            self.writer.write_all(part)?;
        }
        self.written += size as u64;
        Ok(true)
    }

    /// Reads the oldest message into the three buffers; `false` when none is waiting.
    pub fn pop(
        &mut self,
        subject: &mut String,
        id: &mut String,
        payload: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        self.writer.flush()?;
        let mut part = |out: &mut Vec<u8>| -> std::io::Result<usize> {
            let mut n = [0u8; 4];
            self.reader.read_exact(&mut n)?;
            let n = u32::from_le_bytes(n) as usize;
            out.clear();
            out.resize(n, 0);
            self.reader.read_exact(out)?;
            Ok(4 + n)
        };
        let mut bytes = std::mem::take(subject).into_bytes();
        let a = part(&mut bytes)?;
        *subject = String::from_utf8(bytes).map_err(std::io::Error::other)?;
        let mut bytes = std::mem::take(id).into_bytes();
        let b = part(&mut bytes)?;
        *id = String::from_utf8(bytes).map_err(std::io::Error::other)?;
        let c = part(payload)?;
        self.read += (a + b + c) as u64;
        if self.is_empty() {
            // Everything replayed: start the file over.
            self.writer.flush()?;
            self.writer.get_ref().set_len(0)?;
            self.reader.seek(SeekFrom::Start(0))?;
            self.written = 0;
            self.read = 0;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_is_bounded_and_starts_over_when_empty() {
        let dir = std::env::temp_dir().join(format!("mdc-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Spool::open(dir.to_str().unwrap(), 200).unwrap();
        assert!(s.push("a.b", "1", b"x").unwrap());
        assert!(s.push("a.c", "2", b"yy").unwrap());
        assert!(!s.push("a.d", "3", &[0u8; 300]).unwrap(), "over max_bytes");
        let (mut sub, mut id, mut p) = (String::new(), String::new(), Vec::new());
        assert!(s.pop(&mut sub, &mut id, &mut p).unwrap());
        assert_eq!(
            (sub.as_str(), id.as_str(), p.as_slice()),
            ("a.b", "1", &b"x"[..])
        );
        assert!(s.push("a.e", "4", b"z").unwrap());
        assert!(s.pop(&mut sub, &mut id, &mut p).unwrap());
        assert_eq!(id, "2");
        assert!(s.pop(&mut sub, &mut id, &mut p).unwrap());
        assert_eq!(id, "4");
        assert!(s.is_empty());
        assert!(!s.pop(&mut sub, &mut id, &mut p).unwrap());
        assert_eq!(std::fs::metadata(s.path()).unwrap().len(), 0);
        assert!(s.push("a.f", "5", b"w").unwrap());
        assert!(s.pop(&mut sub, &mut id, &mut p).unwrap());
        assert_eq!(id, "5");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
