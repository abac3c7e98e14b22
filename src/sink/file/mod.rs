//! `sinks.file`: the embedded default. One file per data type under `path`, rotated by size and by
//! UTC hour, flushed at least every `flush_interval` and on shutdown.
//!
//! Layout: `<path>/<type>.<YYYY-MM-DD>T<HH>.<n>.<ext>` (e.g. `data/trade.2026-11-22T02.0.jsonl`);
//! `n` counts the files of one hour (size rotation, restarts). Files are opened with `create_new`, so
//! a restart never overwrites data. `jsonl` = JSON Lines; `protobuf` = `Envelope`s, each preceded by
//! its varint length (Java's `writeDelimitedTo`, Python's `_VarintBytes` framing).

mod rotate;

use super::{Sink, SinkError, SinkFactory, SinkPlan};
use crate::encode::Formats;
use crate::encode::record::Record;
use crate::event::EventKind;
use crate::setting::{ConfigError, duration, section};
use rotate::TypeFile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// Turn the sink on.
    #[serde(default = "yes")]
    enabled: bool,
    /// Output directory (created if missing).
    #[serde(default = "default_path")]
    path: String,
    /// `jsonl` or `protobuf` (length-delimited `Envelope`s).
    #[serde(default = "default_format")]
    format: String,
    /// Start a new file when the current one would exceed this many bytes.
    #[serde(default = "default_rotate_bytes")]
    rotate_bytes: u64,
    /// Flush buffered bytes to the OS at least this often.
    #[serde(default = "default_flush")]
    flush_interval: String,
    /// Beside other sinks the file sink writes on its own thread: records queued for it at most.
    #[serde(default = "default_queue")]
    queue_capacity: usize,
    /// What its full queue does (a disk that stalls): `block` (default: the publisher waits, every
    /// sink with it), `drop_newest` (the file sink alone loses the record, a `gap` line says
    /// so) or `spool`.
    #[serde(default = "default_backpressure")]
    backpressure: String,
    /// Where and how much `backpressure: spool` keeps (`./spool/file`, 1 GiB).
    #[serde(default = "default_spool")]
    spool: crate::sink::spool::SpoolConfig,
}

fn default_queue() -> usize {
    65_536
}
fn default_backpressure() -> String {
    "block".into()
}
fn default_spool() -> crate::sink::spool::SpoolConfig {
    crate::sink::spool::SpoolConfig::for_sink("file")
}

fn yes() -> bool {
    true
}
fn default_path() -> String {
    "./data".into()
}
fn default_format() -> String {
    "jsonl".into()
}
fn default_rotate_bytes() -> u64 {
    256 << 20
}
fn default_flush() -> String {
    "1s".into()
}

/// Output encoding of the file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Jsonl,
    Protobuf,
}

impl FileFormat {
    fn ext(self) -> &'static str {
        match self {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Protobuf => "pb",
        }
    }
}

fn queue_policy(cfg: &FileConfig) -> crate::sink::threaded::QueuePolicy {
    crate::sink::threaded::QueuePolicy {
        queue_capacity: cfg.queue_capacity,
        backpressure: cfg.backpressure.clone(),
        spool: cfg.spool.clone(),
        always: false,
    }
}

#[derive(Debug)]
struct FilePlan {
    cfg: FileConfig,
    format: FileFormat,
    flush_interval_ns: i64,
}

pub struct Factory;
pub static FACTORY: Factory = Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "file"
    }

    fn plan(&self, value: serde_yaml::Value) -> Result<Option<Box<dyn SinkPlan>>, ConfigError> {
        let mut cfg: FileConfig = section("sinks.file", value)?;
        cfg.spool.fill_path("file");
        queue_policy(&cfg)
            .check("file")
            .map_err(|(k, r)| ConfigError::new(k, r))?;
        let format = match cfg.format.as_str() {
            "jsonl" => FileFormat::Jsonl,
            "protobuf" => FileFormat::Protobuf,
            other => {
                return Err(ConfigError::new(
                    "sinks.file.format",
                    format!("`{other}` is not one of jsonl, protobuf"),
                ));
            }
        };
        if cfg.path.is_empty() {
            return Err(ConfigError::new("sinks.file.path", "must not be empty"));
        }
        if cfg.rotate_bytes < 4096 {
            return Err(ConfigError::new("sinks.file.rotate_bytes", "at least 4096"));
        }
        let flush = duration::parse(&cfg.flush_interval)
            .map_err(|r| ConfigError::new("sinks.file.flush_interval", r))?;
        if flush.is_zero() || flush > std::time::Duration::from_secs(60) {
            return Err(ConfigError::new(
                "sinks.file.flush_interval",
                "must be between 1ns and 60s",
            ));
        }
        if !cfg.enabled {
            return Ok(None);
        }
        Ok(Some(Box::new(FilePlan {
            flush_interval_ns: flush.as_nanos() as i64,
            format,
            cfg,
        })))
    }
}

impl SinkPlan for FilePlan {
    fn name(&self) -> &'static str {
        "file"
    }

    fn formats(&self) -> Formats {
        match self.format {
            FileFormat::Jsonl => Formats::JSON,
            FileFormat::Protobuf => Formats::PROTOBUF,
        }
    }

    fn effective(&self) -> serde_yaml::Value {
        serde_yaml::to_value(&self.cfg).unwrap_or(serde_yaml::Value::Null)
    }

    fn queue_policy(&self) -> Option<crate::sink::threaded::QueuePolicy> {
        Some(queue_policy(&self.cfg))
    }

    fn start(
        &self,
        _metrics: &std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Box<dyn Sink>, SinkError> {
        let dir = PathBuf::from(&self.cfg.path);
        std::fs::create_dir_all(&dir)
            .map_err(|e| SinkError(format!("cannot create {}: {e}", dir.display())))?;
        // Closed files are fsynced here, off the publisher thread; the thread ends when the sink
        // (every sender) is gone, after the last sync.
        let (tx, rx) = std::sync::mpsc::channel::<std::fs::File>();
        let syncer = std::thread::Builder::new()
            .name("file-sync".into())
            .spawn(move || {
                for f in rx {
                    if let Err(e) = f.sync_data() {
                        log::error!("event=file_sync_failed error=\"{e}\"");
                    }
                }
            })
            .map_err(|e| SinkError(format!("cannot start the file sync thread: {e}")))?;
        Ok(Box::new(FileSink {
            files: EventKind::ALL.map(|k| {
                TypeFile::new(dir.clone(), k.as_str(), self.format.ext()).sync_with(tx.clone())
            }),
            syncer: Some(syncer),
            format: self.format,
            rotate_bytes: self.cfg.rotate_bytes,
            flush_interval_ns: self.flush_interval_ns,
            last_flush_ns: 0,
            len_prefix: Vec::with_capacity(10),
        }))
    }
}

struct FileSink {
    files: [TypeFile; EventKind::COUNT],
    /// Syncs files closed by rotation; joined at close.
    syncer: Option<std::thread::JoinHandle<()>>,
    format: FileFormat,
    rotate_bytes: u64,
    flush_interval_ns: i64,
    last_flush_ns: i64,
    len_prefix: Vec<u8>,
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, rec: &Record) -> Result<(), SinkError> {
        let file = &mut self.files[rec.kind as usize];
        match self.format {
            FileFormat::Jsonl => file.write(rec.recv_ts_ns, self.rotate_bytes, &[&rec.json])?,
            FileFormat::Protobuf => {
                self.len_prefix.clear();
                prost::encoding::encode_varint(rec.proto.len() as u64, &mut self.len_prefix);
                file.write(
                    rec.recv_ts_ns,
                    self.rotate_bytes,
                    &[&self.len_prefix, &rec.proto],
                )?
            }
        }
        Ok(())
    }

    fn tick(&mut self, now_ns: i64) -> Result<(), SinkError> {
        if now_ns - self.last_flush_ns < self.flush_interval_ns {
            return Ok(());
        }
        self.last_flush_ns = now_ns;
        for f in &mut self.files {
            f.tick(now_ns)?;
            f.flush()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let mut first_err = None;
        for f in &mut self.files {
            if let Err(e) = f.close() {
                first_err.get_or_insert(e);
            }
        }
        // Every sender goes with the files; then the sync thread finishes what it was handed.
        let files = std::mem::replace(
            &mut self.files,
            EventKind::ALL.map(|k| TypeFile::new(PathBuf::new(), k.as_str(), "")),
        );
        drop(files);
        if let Some(t) = self.syncer.take() {
            let _ = t.join();
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
