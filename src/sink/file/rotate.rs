//! One data type's current output file: opened lazily, rotated on size and on the UTC hour.
//!
//! The hour only moves forward: a file is named after the newest hour seen (a record's receive
//! time, or the wall clock at the sink's tick), so records of several parsers interleaved around
//! an hour boundary never flip back and forth between two files. A closed file is flushed here and
//! handed to the sink's sync thread for its fsync, off the publisher thread.

use crate::clock::utc_ymdh;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::Sender;

const NS_PER_HOUR: i64 = 3_600_000_000_000;

/// The current file of one type plus what is needed to name the next.
pub struct TypeFile {
    dir: PathBuf,
    stem: &'static str,
    ext: &'static str,
    open: Option<Open>,
    /// Where closed files go for their fsync (`None`: synced here).
    syncer: Option<Sender<File>>,
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
            syncer: None,
        }
    }

    /// Hands closed files to `tx` for their fsync instead of syncing on this thread.
    pub fn sync_with(mut self, tx: Sender<File>) -> Self {
        self.syncer = Some(tx);
        self
    }

    /// Appends `parts` (one record) to the current file, rotating first when the record's hour
    /// is newer than the file's or the size limit would be passed.
    pub fn write(&mut self, ts_ns: i64, rotate_bytes: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let seen = ts_ns.div_euclid(NS_PER_HOUR);
        let (rotate, hour) = match &self.open {
            None => (true, seen),
            Some(o) => (
                seen > o.hour || (o.bytes > 0 && o.bytes + len > rotate_bytes),
                seen.max(o.hour),
            ),
        };
        if rotate {
            self.retire()?;
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

    /// The wall clock says `now_ns`: an open file of an older hour is closed (the next record
    /// opens the new hour's file), so files end on the hour even when records are sparse.
    pub fn tick(&mut self, now_ns: i64) -> io::Result<()> {
        match &self.open {
            Some(o) if now_ns.div_euclid(NS_PER_HOUR) > o.hour => self.retire(),
            _ => Ok(()),
        }
    }

    /// Flushes the current file and hands it to the sync thread (or syncs it here without one).
    fn retire(&mut self) -> io::Result<()> {
        let Some(tx) = &self.syncer else {
            return self.close();
        };
        match self.open.take() {
            Some(o) => {
                let f = o.w.into_inner().map_err(|e| e.into_error())?;
                // A sync thread that is gone: sync here rather than lose the guarantee.
                if let Err(std::sync::mpsc::SendError(f)) = tx.send(f) {
                    f.sync_data()?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Flushes and closes the current file, syncing it on this thread (shutdown).
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

    /// Records of two parsers interleaved around an hour boundary: one file per hour, never a
    /// flip back to the older hour (each flip used to be a new file and an fsync).
    #[test]
    fn interleaved_hours_never_flip_back() {
        let d = dir("interleave");
        let (tx, rx) = std::sync::mpsc::channel::<File>();
        let syncer = std::thread::spawn(move || {
            let mut n = 0;
            for f in rx {
                f.sync_data().unwrap();
                n += 1;
            }
            n
        });
        let mut f = TypeFile::new(d.clone(), "trade", "jsonl").sync_with(tx);
        let late = T0 + 6 * 60 * 1_000_000_000; // 2024-08-09T00:00:15Z
        for i in 0..100 {
            let ts = if i % 2 == 0 { T0 } else { late };
            f.write(ts, 1 << 20, &[b"x\n"]).unwrap();
        }
        f.tick(late + NS_PER_HOUR).unwrap();
        drop(f);
        let n = names(&d);
        assert_eq!(
            n,
            ["trade.2024-08-08T23.0.jsonl", "trade.2024-08-09T00.0.jsonl"],
            "{n:?}"
        );
        let newer = std::fs::read(d.join("trade.2024-08-09T00.0.jsonl")).unwrap();
        assert_eq!(
            newer.len(),
            99 * 2,
            "everything after the switch stays in the new hour"
        );
        assert_eq!(
            syncer.join().unwrap(),
            2,
            "both files synced by the sync thread"
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
