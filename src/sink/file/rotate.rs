//! One data type's current output file: opened lazily, rotated on size and on the UTC hour.

use crate::clock::utc_ymdh;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// The current file of one type plus what is needed to name the next.
pub struct TypeFile {
    dir: PathBuf,
    stem: &'static str,
    ext: &'static str,
    open: Option<Open>,
}

struct Open {
    w: BufWriter<File>,
    hour: i64,
    bytes: u64,
}

impl TypeFile {
    pub fn new(dir: PathBuf, stem: &'static str, ext: &'static str) -> Self {
        TypeFile {
            dir,
            stem,
            ext,
            open: None,
        }
    }

    /// Appends `parts` (one record) to the file for the hour of `ts_ns`, rotating first if needed.
    pub fn write(&mut self, ts_ns: i64, rotate_bytes: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let hour = ts_ns.div_euclid(NS_PER_HOUR);
        let rotate = match &self.open {
            None => true,
            Some(o) => o.hour != hour || (o.bytes > 0 && o.bytes + len > rotate_bytes),
        };
        if rotate {
            self.close()?;
            self.open = Some(self.create(hour)?);
        }
        let Some(o) = self.open.as_mut() else {
            return Err(io::Error::other("file not open"));
        };
        for p in parts {
            o.w.write_all(p)?;
        }
        o.bytes += len;
        Ok(())
    }

    /// Pushes buffered bytes to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.open {
            Some(o) => o.w.flush(),
            None => Ok(()),
        }
    }

    /// Flushes and closes the current file (the next write opens a new one).
    pub fn close(&mut self) -> io::Result<()> {
        match self.open.take() {
            Some(mut o) => {
                o.w.flush()?;
                o.w.get_ref().sync_data()
            }
            None => Ok(()),
        }
    }

    fn create(&self, hour: i64) -> io::Result<Open> {
        let (y, m, d, h) = utc_ymdh(hour * 3600);
        for n in 0u32.. {
            let name = format!("{}.{y:04}-{m:02}-{d:02}T{h:02}.{n}.{}", self.stem, self.ext);
            let path = self.dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => {
                    log::info!("event=file_opened path={}", path.display());
                    return Ok(Open {
                        w: BufWriter::with_capacity(1 << 20, f),
                        hour,
                        bytes: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free file name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mdc-rotate-{tag}-{}-{}",
            std::process::id(),
            crate::clock::realtime_ns()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &PathBuf) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    const T0: i64 = 1_723_161_255_343_000_000; // 2024-08-08T23:54:15Z

    #[test]
    fn rotates_by_size_and_hour_and_never_overwrites() {
        let d = dir("size");
        let mut f = TypeFile::new(d.clone(), "trade", "jsonl");
        for _ in 0..10 {
            f.write(T0, 100, &[b"0123456789012345678901234567890123456789\n"])
                .unwrap();
        }
        // 41 bytes per record, at most 100 per file: 2 per file.
        f.write(T0 + NS_PER_HOUR, 100, &[b"next hour\n"]).unwrap();
        f.close().unwrap();
        let n = names(&d);
        assert_eq!(n.len(), 6, "{n:?}");
        assert!(n.contains(&"trade.2024-08-08T23.0.jsonl".to_string()));
        assert!(n.contains(&"trade.2024-08-08T23.4.jsonl".to_string()));
        assert!(n.contains(&"trade.2024-08-09T00.0.jsonl".to_string()));
        let first = std::fs::read(d.join("trade.2024-08-08T23.0.jsonl")).unwrap();
        assert_eq!(first.len(), 82);

        // A restart in the same hour continues with the next free number.
        let mut g = TypeFile::new(d.clone(), "trade", "jsonl");
        g.write(T0, 1 << 20, &[b"after restart\n"]).unwrap();
        g.close().unwrap();
        assert!(names(&d).contains(&"trade.2024-08-08T23.5.jsonl".to_string()));
        assert_eq!(
            first,
            std::fs::read(d.join("trade.2024-08-08T23.0.jsonl")).unwrap()
        );
    }

    #[test]
    fn a_record_larger_than_the_limit_still_gets_written() {
        let d = dir("big");
        let mut f = TypeFile::new(d.clone(), "depth_diff", "pb");
        f.write(T0, 10, &[&[7u8; 64]]).unwrap();
        f.write(T0, 10, &[&[8u8; 64]]).unwrap();
        f.close().unwrap();
        assert_eq!(names(&d).len(), 2);
    }
}
