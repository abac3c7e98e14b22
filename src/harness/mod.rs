//! `mdc bench`: the latency benchmarking harness. One command starts the exchange simulator and
//! the collector in this process (their own threads; the collector's pinned as asked), offers a
//! chosen rate (or the maximum) of the realistic Binance mix over loopback WebSockets, and after a
//! warm-up measures for a chosen time:
//!
//! - messages/s and MB/s received, parsed and handed to the sink, and loss;
//! - HDR latency per stage: simulator send -> receive (trade ids carry the send time), receive ->
//!   parsed, parsed -> handed to the sink, and for Kafka handed -> acknowledged;
//! - CPU time per thread and per message, RSS, allocations of the pipeline threads after warm-up;
//! - the same messages through a conventional pipeline (serde_json, owned strings, f64) and ours,
//!   single-threaded, side by side: the ratio.
//!
//! It writes a Markdown and a CSV report under `perf/runs/<date>-<host>/` with the exact command,
//! git revision, CPU model and pinning.

pub mod baseline;
pub mod system;

use crate::config::Config;
use crate::encode::Formats;
use crate::metrics::Metrics;
use crate::metrics::latency::QUANTILES;
use crate::runtime::topology::{self, RunOptions};
use crate::simulator::{SimConfig, Simulator};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to run (also the `mdc bench` command line).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Offered messages per second in total (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Measured time, e.g. 30s.
    #[arg(long, default_value = "30s", value_parser = crate::setting::duration::parse)]
    pub duration: Duration,
    /// Warm-up before measuring.
    #[arg(long, default_value = "5s", value_parser = crate::setting::duration::parse)]
    pub warmup: Duration,
    /// null | file | kafka | nats (JetStream) | nats-core | postgres.
    #[arg(long, default_value = "null")]
    pub sink: String,
    /// NATS server URL (with --sink nats / nats-core).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PostgreSQL DSN (with --sink postgres; tables go to schema `bench`).
    #[arg(long, default_value = "postgresql://postgres@127.0.0.1:15432/postgres")]
    pub pg_dsn: String,
    /// With --sink postgres: keep each row's exchange message in `raw` (the sink's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pg_raw: bool,
    /// With --sink postgres: writer connections (the sink's `writers`).
    #[arg(long, default_value_t = 2)]
    pub pg_writers: usize,
    /// Kafka bootstrap servers (with --sink kafka).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Kafka `compression` (with --sink kafka): lz4 (the sink's default) | none | zstd | snappy |
    /// gzip. On a broker over loopback, compression only costs CPU the broker could use.
    #[arg(long, default_value = "lz4")]
    pub compression: String,
    /// protobuf | json.
    #[arg(long, default_value = "protobuf")]
    pub format: String,
    /// Symbols (one stream per channel each).
    #[arg(long, default_value_t = 10)]
    pub symbols: usize,
    /// Channels per symbol; the default is the realistic mix. `trade` alone measures a sink on
    /// trade rows (the only stream whose ids stay unique while the simulator loops its corpus).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "depth@100ms,trade,aggTrade,bookTicker"
    )]
    pub channels: Vec<String>,
    /// WebSocket connections the streams are spread over.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    #[arg(long, default_value_t = 1)]
    pub readers: usize,
    #[arg(long, default_value_t = 1)]
    pub parsers: usize,
    /// spin | yield | sleep | park (the default of `run`).
    #[arg(long, default_value = "park")]
    pub idle: String,
    /// auto (the default of `run`) | threads (reader, parser, publisher threads) | inline (one
    /// thread does all).
    #[arg(long, default_value = "auto")]
    pub pipeline: String,
    /// A rate sweep: one run per offered rate (0 = the maximum), then a summary table and CSV
    /// (`sweep[-<tag>].md`/`.csv`) next to the reports. Overrides `--rate`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<u64>,
    /// CPUs of the reader threads, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub reader_cpus: Vec<usize>,
    /// CPUs of the parser threads, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub parser_cpus: Vec<usize>,
    #[arg(long)]
    pub publisher_cpu: Option<usize>,
    /// Messages of the baseline comparison corpus.
    #[arg(long, default_value_t = 100_000)]
    pub baseline_messages: usize,
    /// Report root; the run goes to <out>/<date>-<host>/.
    #[arg(long, default_value = "perf/runs")]
    pub out: std::path::PathBuf,
    /// Suffix of the report's file name (`bench-<sink>-<rate>[-<tag>]`).
    #[arg(long)]
    pub tag: Option<String>,
    /// The run fails (after writing its report) when the pipeline threads allocate more than
    /// this after warm-up: the hot path's zero-allocation claim, checked on every bench.
    #[arg(long, default_value_t = 0)]
    pub max_allocations: u64,
    /// The command line, for the report (filled in by the caller).
    #[arg(skip)]
    pub command: String,
}

/// Counters at one instant.
struct Snapshot {
    at: Instant,
    sent: u64,
    frames: u64,
    bytes: u64,
    events: u64,
    handed: u64,
    /// Kafka acknowledgements (sink `kafka`).
    acked: u64,
    cpu: BTreeMap<String, system::ThreadStats>,
    allocations: BTreeMap<String, u64>,
    latency: BTreeMap<String, (f64, Histogram<u64>)>,
}

fn snapshot(m: &Metrics, sim: &Simulator) -> Snapshot {
    use crate::metrics::frame;
    let allocations = m
        .counter_values("thread_allocations_total")
        .into_iter()
        .collect();
    let latency = m
        .latency
        .snapshot()
        .into_iter()
        .map(|(labels, unit, h)| {
            let name = labels
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join("/");
            (name, (unit, h))
        })
        .collect();
    // Acknowledged by the server: Kafka's or JetStream's (whichever sink runs).
    let acked = [
        "kafka_acked_total",
        "nats_acked_total",
        "postgres_rows_written_total",
    ]
    .iter()
    .flat_map(|c| m.counter_values(c))
    .map(|(_, v)| v)
    .sum();
    Snapshot {
        acked,
        at: Instant::now(),
        sent: sim.sent(),
        frames: m.frames.totals()[frame::TEXT],
        bytes: m.bytes.totals()[frame::TEXT],
        events: m.events.totals().iter().sum(),
        handed: m.sink_records.totals().first().copied().unwrap_or(0),
        cpu: system::thread_stats(),
        allocations,
        latency,
    }
}

/// The figures a rate sweep tabulates, from one run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub offered: u64,
    pub received_rate: f64,
    /// CPU of the collector's threads (not the simulator's, not the harness's) per message.
    pub collector_ns_per_msg: f64,
    /// Context switches (voluntary + involuntary) of the collector's threads per message.
    pub switches_per_msg: f64,
    pub p99_receive_to_sink_us: f64,
    pub loss: u64,
    pub allocations: u64,
}

/// Threads that are not the collector's: the simulator's and the harness's own.
fn is_collector_thread(name: &str) -> bool {
    !(name.starts_with("sim-") || name == "bench-collector" || name == "mdc" || name.is_empty())
}

/// `mdc bench --rates a,b,c`: one run per rate, then the summary table (Markdown + CSV).
pub fn sweep(o: &BenchOptions) -> Result<String, String> {
    let mut rows = Vec::new();
    for &rate in &o.rates {
        let mut one = o.clone();
        one.rate = rate;
        one.rates.clear();
        eprintln!("bench: sweep, offered {rate} msgs/s");
        let (_, s) = run_one(&one)?;
        rows.push(s);
    }
    let over: Vec<String> = rows
        .iter()
        .filter(|r| r.allocations > o.max_allocations)
        .map(|r| format!("{} at {} msgs/s", r.allocations, r.offered))
        .collect();
    let mut md = format!(
        "# mdc bench: rate sweep, {} sink\n\nCommand: `{}`\n\n| | |\n|---|---|\n| date (UTC) | {} |\n| git revision | {} |\n| CPU | {} x {} |\n| pipeline / idle | `{}` / `{}` |\n| load | {} symbols x 4 channels, one connection |\n\n\
         | offered msgs/s | received msgs/s | collector CPU per message | context switches per message | receive -> sink p99 | loss | allocations |\n|---|---|---|---|---|---|---|\n",
        o.sink,
        o.command,
        system::utc_date(),
        system::git_revision(),
        system::cpus(),
        system::cpu_model(),
        o.pipeline,
        o.idle,
        o.symbols
    );
    let mut csv = String::from(
        "offered,received_rate,collector_ns_per_msg,switches_per_msg,p99_receive_to_sink_us,loss,allocations\n",
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} µs | {:.2} | {:.1} µs | {} | {} |",
            if r.offered == 0 {
                "max".to_string()
            } else {
                r.offered.to_string()
            },
            r.received_rate,
            r.collector_ns_per_msg / 1e3,
            r.switches_per_msg,
            r.p99_receive_to_sink_us,
            r.loss,
            r.allocations
        );
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            r.offered,
            r.received_rate,
            r.collector_ns_per_msg,
            r.switches_per_msg,
            r.p99_receive_to_sink_us,
            r.loss,
            r.allocations
        );
    }
    let _ = writeln!(
        md,
        "\nCollector CPU: user + system time of the reader, parser, publisher and helper threads \
         (not the simulator's) over the measured window, per WebSocket message received. Context \
         switches: voluntary + involuntary, same threads. Each rate's full report is beside this \
         file (`bench-{}-<rate>*.md`).",
        o.sink
    );
    let dir = o
        .out
        .join(format!("{}-{}", system::utc_date(), system::host()));
    let stem = format!(
        "sweep-{}{}",
        o.sink,
        o.tag.as_ref().map(|t| format!("-{t}")).unwrap_or_default()
    );
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{stem}.md")), &md);
        let _ = std::fs::write(dir.join(format!("{stem}.csv")), &csv);
        let _ = writeln!(md, "\nWritten to `{}/{stem}.md` and `.csv`.", dir.display());
    }
    if !over.is_empty() {
        return Err(allocation_error(&over.join(", "), o.max_allocations, &md));
    }
    Ok(md)
}

fn allocation_error(what: &str, limit: u64, md: &str) -> String {
    format!(
        "the pipeline threads allocated after warm-up ({what}; limit --max-allocations {limit}); the report:\n{md}"
    )
}

/// Runs the benchmark (or the sweep, with `--rates`) and writes the report; returns the Markdown.
pub fn run(o: &BenchOptions) -> Result<String, String> {
    if !o.rates.is_empty() {
        return sweep(o);
    }
    let (md, s) = run_one(o)?;
    if s.allocations > o.max_allocations {
        return Err(allocation_error(
            &s.allocations.to_string(),
            o.max_allocations,
            &md,
        ));
    }
    Ok(md)
}

/// One run at `o.rate`: the report's Markdown and its summary.
fn run_one(o: &BenchOptions) -> Result<(String, Summary), String> {
    if !crate::metrics::alloc::installed() {
        log::warn!("event=bench_note note=\"allocation counting needs the mdc binary\"");
    }
    let symbols: Vec<String> = (0..o.symbols.max(1))
        .map(|i| format!("S{i:03}USDT"))
        .collect();
    let streams = symbols.len() * o.channels.len().max(1);
    let conns = o.connections.clamp(1, streams);
    let per_conn = streams.div_ceil(conns);
    let sim = Simulator::start(SimConfig {
        rate: if o.rate == 0 {
            0
        } else {
            (o.rate / conns as u64).max(1)
        },
        seed: 7,
        stamp_trade_ids: true,
        // Pre-generated: the simulator shares the machine, so it must cost as little as possible.
        replay: 50_000,
        ..SimConfig::default()
    })
    .map_err(|e| format!("simulator: {e}"))?;

    let dir = std::env::temp_dir().join(format!("mdc-bench-{}", std::process::id()));
    let sink = match o.sink.as_str() {
        "null" => format!(
            "  null: {{ enabled: true, format: \"{}\" }}",
            if o.format == "json" {
                "jsonl"
            } else {
                "protobuf"
            }
        ),
        "file" => format!(
            "  file: {{ path: \"{}\", format: \"{}\" }}",
            dir.display(),
            if o.format == "json" {
                "jsonl"
            } else {
                "protobuf"
            }
        ),
        "kafka" => format!(
            "  kafka: {{ enabled: true, brokers: \"{}\", compression: \"{}\", format: \"{}\", topic: \"bench.{{type}}\", required: true }}",
            o.brokers,
            o.compression,
            if o.format == "json" {
                "json"
            } else {
                "protobuf"
            }
        ),
        "nats" | "nats-core" => format!(
            "  nats: {{ enabled: true, url: \"{}\", format: \"{}\", mode: \"{}\", stream: \"BENCH\", stream_limits: {{ max_age: \"10m\" }} }}",
            o.nats_url,
            if o.format == "json" {
                "json"
            } else {
                "protobuf"
            },
            if o.sink == "nats" {
                "jetstream"
            } else {
                "core"
            }
        ),
        "postgres" => format!(
            "  postgres: {{ enabled: true, dsn: \"{}\", schema: \"bench\", batch_rows: 20000, required: true, connect_timeout: \"5s\", raw: {}, writers: {} }}",
            o.pg_dsn, o.pg_raw, o.pg_writers
        ),
        s => {
            return Err(format!(
                "unknown sink `{s}` (null, file, kafka, nats, nats-core, postgres)"
            ));
        }
    };
    let list = |v: &[usize]| {
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let yaml = format!(
        r#"
exchanges:
  binance_spot:
    ws_url: "{ws}"
    symbols: [{syms}]
    channels: [{channels}]
    max_streams_per_connection: {per_conn}
    max_connection_age: "off"
    silent_stream_timeout: "1h"
sinks:
{sink}
http:
  listen: ""
book:
  enabled: false
runtime:
  readers: {readers}
  parsers: {parsers}
  idle: "{idle}"
  pipeline: "{pipeline}"
  cpus: {{ readers: [{rc}], parsers: [{pc}]{pub_cpu} }}
log:
  level: "warn"
"#,
        ws = sim.ws_url(),
        syms = symbols.join(", "),
        channels = o
            .channels
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", "),
        readers = o.readers,
        parsers = o.parsers,
        idle = o.idle,
        pipeline = o.pipeline,
        rc = list(&o.reader_cpus),
        pc = list(&o.parser_cpus),
        pub_cpu = o
            .publisher_cpu
            .map(|c| format!(", publisher: {c}"))
            .unwrap_or_default(),
    );
    let config = Config::from_yaml(&yaml, std::iter::empty()).map_err(|e| e.to_string())?;
    let sink_names: Vec<&'static str> = config.sinks.iter().map(|s| s.name()).collect();
    let metrics = Metrics::new(&sink_names);
    let shutdown = Arc::new(AtomicBool::new(false));
    let (m2, s2) = (metrics.clone(), shutdown.clone());
    let collector = std::thread::Builder::new()
        .name("bench-collector".into())
        .spawn(move || {
            topology::run_with(
                config,
                s2,
                m2,
                RunOptions {
                    probe_sim_send: true,
                },
            )
        })
        .map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    while metrics.connections_subscribed.load(Ordering::Relaxed)
        < metrics.connections_expected.load(Ordering::Relaxed)
        || metrics.connections_expected.load(Ordering::Relaxed) == 0
    {
        if collector.is_finished() {
            // It failed at start (a sink that cannot start, say): say why now, not in 30 s.
            return match collector.join() {
                Ok(Err(e)) => Err(format!("the collector stopped at start: {e}")),
                Ok(Ok(_)) => Err("the collector stopped before it connected".into()),
                Err(_) => Err("collector thread panicked".into()),
            };
        }
        if t0.elapsed() > Duration::from_secs(30) {
            shutdown.store(true, Ordering::Relaxed);
            return Err("the collector did not connect within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "bench: {} streams over {conns} connection(s); warming up {:?}",
        streams, o.warmup
    );
    std::thread::sleep(o.warmup);
    let a = snapshot(&metrics, &sim);
    let mut rss_max = system::rss_bytes();
    let rss_start = rss_max;
    eprintln!("bench: measuring {:?}", o.duration);
    while a.at.elapsed() < o.duration {
        std::thread::sleep(Duration::from_millis(250));
        rss_max = rss_max.max(system::rss_bytes());
    }
    // Let the last 100 ms of histogram merges land.
    std::thread::sleep(Duration::from_millis(150));
    let b = snapshot(&metrics, &sim);
    let rss_end = system::rss_bytes();
    shutdown.store(true, Ordering::Relaxed);
    let outcome = collector
        .join()
        .map_err(|_| "collector thread panicked".to_string())??;
    let sent_total = sim.sent();
    let frames_total = metrics.frames.totals()[crate::metrics::frame::TEXT];
    let handed_total = metrics.sink_records.totals().first().copied().unwrap_or(0);
    let events_total: u64 = metrics.events.totals().iter().sum();
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);

    eprintln!(
        "bench: baseline comparison on {} messages",
        o.baseline_messages
    );
    let corpus =
        crate::simulator::generator::mixed_corpus(&symbols, 11, o.baseline_messages.max(1000));
    let formats = if o.format == "json" {
        Formats::JSON
    } else {
        Formats::PROTOBUF
    };
    let cmp = baseline::compare(&corpus, 7, formats);

    let (md, summary) = report(
        o,
        &a,
        &b,
        &Totals {
            sent: sent_total,
            frames: frames_total,
            events: events_total,
            handed: handed_total,
            rss_start,
            rss_max,
            rss_end,
            outcome: format!("{outcome:?}"),
            streams,
            conns,
        },
        &cmp,
    );
    Ok((md, summary))
}

struct Totals {
    sent: u64,
    frames: u64,
    events: u64,
    handed: u64,
    rss_start: u64,
    rss_max: u64,
    rss_end: u64,
    outcome: String,
    streams: usize,
    conns: usize,
}

fn pct(h: &Histogram<u64>, q: f64, unit: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 * unit
    }
}

fn report(
    o: &BenchOptions,
    a: &Snapshot,
    b: &Snapshot,
    t: &Totals,
    cmp: &baseline::Comparison,
) -> (String, Summary) {
    let mut summary = Summary {
        offered: o.rate,
        ..Summary::default()
    };
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let frames = b.frames - a.frames;
    let events = b.events - a.events;
    let handed = b.handed - a.handed;
    let sent = b.sent - a.sent;
    let mb = (b.bytes - a.bytes) as f64 / 1e6;
    let mut csv = String::from("metric,value,unit\n");
    let mut row = |k: &str, v: f64, u: &str| {
        let _ = writeln!(csv, "{k},{v},{u}");
    };
    row("offered_rate", o.rate as f64, "msgs/s (0 = max)");
    row("sent_rate", sent as f64 / secs, "msgs/s");
    row("received_rate", frames as f64 / secs, "msgs/s");
    row("received_mb_rate", mb / secs, "MB/s");
    row("parsed_rate", events as f64 / secs, "events/s");
    row("handed_rate", handed as f64 / secs, "records/s");
    summary.received_rate = frames as f64 / secs;
    row("acked_rate", (b.acked - a.acked) as f64 / secs, "records/s");
    let loss = t.frames.saturating_sub(t.handed);
    row("loss_received_not_handed", loss as f64, "messages");
    summary.loss = loss;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# mdc bench: {} sink, {} offered\n",
        o.sink,
        if o.rate == 0 {
            "maximum rate".to_string()
        } else {
            format!("{} msgs/s", o.rate)
        }
    );
    let _ = writeln!(md, "Command: `{}`\n", o.command);
    let _ = writeln!(
        md,
        "| | |\n|---|---|\n| date (UTC) | {} |\n| git revision | {} |\n| host | {} |\n| CPU | {} x {} |\n| kernel | {} |\n| collector threads | {} reader(s), {} parser(s), 1 publisher, pipeline `{}`, idle `{}` |\n| pinning | readers {:?}, parsers {:?}, publisher {:?}; simulator threads unpinned, same machine |\n| load | {} symbols x {} = {} streams over {} connection(s){} |\n| sink | {} ({}) |\n| warm-up / measured | {:.1} s / {:.1} s |\n| run outcome | {} |\n",
        system::utc_date(),
        system::git_revision(),
        system::host(),
        system::cpus(),
        system::cpu_model(),
        system::kernel(),
        o.readers,
        o.parsers,
        o.pipeline,
        o.idle,
        o.reader_cpus,
        o.parser_cpus,
        o.publisher_cpu,
        o.symbols,
        o.channels.join(", "),
        t.streams,
        t.conns,
        if o.channels.len() == 4 {
            "; mix: depth diffs 1-20 levels ~60 %, trades + aggTrades ~30 %, bookTicker ~10 %"
        } else {
            ""
        },
        o.sink,
        if o.sink == "kafka" {
            format!("{}, compression {}", o.format, o.compression)
        } else {
            o.format.clone()
        },
        o.warmup.as_secs_f64(),
        secs,
        t.outcome
    );
    let _ = writeln!(
        md,
        "## Throughput (measured window)\n\n| | per second | total |\n|---|---|---|\n| sent by the simulator | {:.0} msgs | {} |\n| received (WebSocket text messages) | {:.0} msgs, {:.1} MB | {} |\n| parsed (events) | {:.0} | {} |\n| handed to the sink | {:.0} | {} |\n{}\nLoss over the whole run (received but not handed to the sink after the drain): {} of {} \
         ({} events written in all; {} sent, the difference to received being in flight at the stop).\n",
        sent as f64 / secs,
        sent,
        frames as f64 / secs,
        mb / secs,
        frames,
        events as f64 / secs,
        events,
        handed as f64 / secs,
        handed,
        if o.sink == "kafka" || o.sink == "nats" || o.sink == "postgres" {
            format!(
                "| acknowledged by the broker (PostgreSQL: rows committed) | {:.0} | {} |\n",
                (b.acked - a.acked) as f64 / secs,
                b.acked - a.acked
            )
        } else {
            String::new()
        },
        loss,
        t.frames,
        t.events,
        t.sent,
    );

    let _ = writeln!(
        md,
        "## Latency per stage (HDR, measured window)\n\n| stage | samples | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|"
    );
    let order = [
        "sim_send_to_receive",
        "receive_to_parsed",
        "parsed_to_sink",
        "receive_to_sink",
        "sink_to_ack/kafka",
    ];
    for name in order {
        let (Some((unit, hb)), ha) = (b.latency.get(name), a.latency.get(name)) else {
            continue;
        };
        let mut h = hb.clone();
        if let Some((_, ha)) = ha {
            let _ = h.subtract(ha);
        }
        let us = unit * 1e6;
        let q: Vec<f64> = QUANTILES.iter().map(|q| pct(&h, *q, us)).collect();
        let max = h.max() as f64 * us;
        let _ = writeln!(
            md,
            "| {name} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            h.len(),
            q[0],
            q[1],
            q[2],
            q[3],
            max
        );
        if name == "receive_to_sink" {
            summary.p99_receive_to_sink_us = q[2];
        }
        for (qn, v) in ["p50", "p90", "p99", "p99_9"].iter().zip(&q) {
            let _ = writeln!(csv, "latency_{name}_{qn},{v},us");
        }
        let _ = writeln!(csv, "latency_{name}_max,{max},us");
    }
    let _ = writeln!(
        md,
        "\n`sim_send_to_receive`: the simulator stamps each trade id with its generation time, so it \
         includes the simulator's own batching before the write, loopback and the reader's wake-up; \
         sampled on trades only.\n"
    );

    let _ = writeln!(
        md,
        "## CPU, wake-ups and memory\n\n| thread | CPU s | % of one core | ns per message | context switches per message (voluntary + involuntary) |\n|---|---|---|---|---|"
    );
    let (mut total_cpu, mut coll_cpu, mut coll_sw) = (0.0, 0.0, 0u64);
    let per_msg = |x: f64| x / frames.max(1) as f64;
    for (name, cb) in &b.cpu {
        let ca = a.cpu.get(name).copied().unwrap_or_default();
        let d = cb.cpu_s - ca.cpu_s;
        let sw = (cb.voluntary + cb.involuntary).saturating_sub(ca.voluntary + ca.involuntary);
        total_cpu += d;
        if is_collector_thread(name) {
            coll_cpu += d;
            coll_sw += sw;
        }
        if d < 0.005 && sw < 100 {
            continue;
        }
        let _ = writeln!(
            md,
            "| {name} | {d:.2} | {:.0} % | {:.0} | {:.3} |",
            d / secs * 100.0,
            per_msg(d * 1e9),
            per_msg(sw as f64)
        );
        let _ = writeln!(csv, "cpu_{name},{d},s");
        let _ = writeln!(csv, "switches_{name},{sw},count");
    }
    summary.collector_ns_per_msg = per_msg(coll_cpu * 1e9);
    summary.switches_per_msg = per_msg(coll_sw as f64);
    let _ = writeln!(
        md,
        "| **collector threads** | {coll_cpu:.3} | {:.0} % | {:.0} | {:.3} |",
        coll_cpu / secs * 100.0,
        summary.collector_ns_per_msg,
        summary.switches_per_msg
    );
    let _ = writeln!(
        md,
        "| whole process (simulator included) | {total_cpu:.2} | {:.0} % | {:.0} | |\n",
        total_cpu / secs * 100.0,
        per_msg(total_cpu * 1e9)
    );
    row_push(
        &mut csv,
        "collector_ns_per_msg",
        summary.collector_ns_per_msg,
        "ns",
    );
    row_push(
        &mut csv,
        "collector_switches_per_msg",
        summary.switches_per_msg,
        "count",
    );
    let _ = writeln!(
        md,
        "CPU from /proc (`schedstat`: nanoseconds on the CPU), context switches from each thread's `status`; the collector's \
         threads are all but the simulator's (`sim-*`) and the harness's.\n"
    );
    let _ = writeln!(
        md,
        "RSS (whole process, simulator included): {:.1} MB at the start of the window, {:.1} MB max, {:.1} MB at the end.\n",
        t.rss_start as f64 / 1e6,
        t.rss_max as f64 / 1e6,
        t.rss_end as f64 / 1e6
    );
    let mut allocs = String::new();
    let mut alloc_total = 0;
    for (thread, n) in &b.allocations {
        let d = n - a.allocations.get(thread).copied().unwrap_or(0);
        alloc_total += d;
        summary.allocations += d;
        let _ = write!(allocs, "{thread}: {d}; ");
        let _ = writeln!(csv, "allocations_{thread},{d},count");
    }
    let _ = writeln!(
        md,
        "Allocations by the pipeline threads during the measured window: {} ({}).\n",
        alloc_total,
        if b.allocations.is_empty() {
            "not counted: run through the mdc binary".to_string()
        } else {
            allocs.trim_end_matches("; ").to_string()
        }
    );
    row_push(&mut csv, "rss_max", t.rss_max as f64, "bytes");

    let _ = writeln!(
        md,
        "## Against a conventional pipeline (same messages, one thread)\n\n| | ns per message | messages/s per core |\n|---|---|---|\n| mdc (simd-json in place, fixed buffers, {}) | {:.0} | {:.0} |\n| baseline (serde_json Value, owned strings, f64, JSON out) | {:.0} | {:.0} |\n\n**Ratio: {:.1}x** the baseline's throughput per core (median of 7 alternating passes over {} messages of the mix each, {} symbols).\n",
        o.format,
        cmp.ours_ns,
        1e9 / cmp.ours_ns,
        cmp.baseline_ns,
        1e9 / cmp.baseline_ns,
        cmp.ratio(),
        cmp.messages,
        o.symbols
    );
    row_push(&mut csv, "ours_ns_per_msg", cmp.ours_ns, "ns");
    row_push(&mut csv, "baseline_ns_per_msg", cmp.baseline_ns, "ns");
    row_push(&mut csv, "ratio", cmp.ratio(), "x");

    let dir = o
        .out
        .join(format!("{}-{}", system::utc_date(), system::host()));
    let stem = format!(
        "bench-{}-{}{}",
        o.sink,
        if o.rate == 0 {
            "max".to_string()
        } else {
            o.rate.to_string()
        },
        o.tag.as_ref().map(|t| format!("-{t}")).unwrap_or_default()
    );
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{stem}.md")), &md);
        let _ = std::fs::write(dir.join(format!("{stem}.csv")), &csv);
        let _ = writeln!(md, "Written to `{}/{stem}.md` and `.csv`.", dir.display());
    }
    (md, summary)
}

fn row_push(csv: &mut String, k: &str, v: f64, u: &str) {
    let _ = writeln!(csv, "{k},{v},{u}");
}
