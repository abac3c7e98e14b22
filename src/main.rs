//! `mdc`: config -> topology -> pinned threads -> wait for shutdown.

use clap::{Parser, Subcommand};
use mdc::config::{Config, LogFormat};
use mdc::runtime::{shutdown, topology};
use mdc::simulator::{SimConfig, Simulator};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Low-latency crypto market-data collector.
#[derive(Parser)]
#[command(name = "mdc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (for the default `run` command).
    #[arg(long, global = true, default_value = "config.yaml")]
    config: PathBuf,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Collect market data (the default command).
    Run,
    /// Validate the config and print the effective configuration (secrets redacted).
    CheckConfig,
    /// Serve Binance-format (or OKX v5) streams on 127.0.0.1 (exchange simulator for tests and
    /// benchmarks).
    Simulate {
        /// Which exchange to simulate: `binance` (spot), `okx` (v5 public, `/ws/v5/public`) or
        /// `deribit` (JSON-RPC, `/ws/api/v2`).
        #[arg(long, default_value = "binance")]
        exchange: String,
        /// OKX / Deribit: every n-th book update is withheld (a seqId / change_id gap; 0 = never).
        #[arg(long, default_value_t = 0)]
        gap_every: u64,
        /// OKX: every n-th `books` update carries a wrong checksum (0 = never).
        #[arg(long, default_value_t = 0)]
        bad_checksum_every: u64,
        /// OKX: every n-th `books` update is a keep-alive (seqId == prevSeqId; 0 = never).
        #[arg(long, default_value_t = 0)]
        keep_alive_every: u64,
        /// OKX: reset each instrument's seqId once after this many updates.
        #[arg(long)]
        reset_after: Option<u64>,
        /// OKX: close a connection nothing was pushed to for this many seconds.
        #[arg(long, default_value_t = 30)]
        idle_close_s: u64,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: String,
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Data messages per second per connection (0 = as fast as possible).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Stop generating after this many messages in total.
        #[arg(long)]
        total: Option<u64>,
        /// Send a ping every this many milliseconds.
        #[arg(long)]
        ping_ms: Option<u64>,
    },
    /// Benchmark: simulator + collector in one process over loopback; writes a report to
    /// perf/runs/<date>-<host>/.
    Bench(mdc::harness::BenchOptions),
    /// Kubernetes Job mode (seed D): one symbol and stream from the environment (QUEUE_ID,
    /// SYMBOL, TYPE, KAFKA_TOPIC, ...) to Kafka as the exchange sent it; stopped by a command on
    /// QUEUE_CONTROL_TOPIC, reporting on QUEUE_EVENTS_TOPIC.
    Job,
    /// Feeds raw captures (`capture:`) through the decoders and encoders again into the sinks
    /// of --config, keeping each frame's captured receive time.
    Replay {
        /// A capture directory (its capture-*.jsonl[.zst] files in order) or one file.
        #[arg(long)]
        from: PathBuf,
        /// 0: as fast as possible; 1: the recorded pace; 2: twice as fast.
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
    },
}

/// Counts allocations per thread (`thread_allocations_total`), proving the hot path allocates
/// nothing in steady state.
#[global_allocator]
static ALLOC: mdc::metrics::alloc::CountingAlloc = mdc::metrics::alloc::CountingAlloc;

fn main() -> ExitCode {
    mdc::metrics::alloc::CountingAlloc::mark_installed();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Job => job(),
        Command::Replay { from, speed } => replay(&cli.config, &from, speed),
        Command::Bench(mut opts) => {
            init_stderr_logging("warn");
            opts.command = std::env::args().collect::<Vec<_>>().join(" ");
            match mdc::harness::run(&opts) {
                Ok(md) => {
                    println!("{md}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Simulate {
            exchange,
            gap_every,
            listen,
            seed,
            rate,
            total,
            ..
        } if exchange == "deribit" => simulate_deribit(mdc::simulator::deribit::DeribitSimConfig {
            listen,
            seed,
            rate,
            total,
            gap_every,
            ..Default::default()
        }),
        Command::Simulate {
            exchange,
            gap_every,
            bad_checksum_every,
            keep_alive_every,
            reset_after,
            idle_close_s,
            listen,
            seed,
            rate,
            total,
            ..
        } if exchange == "okx" => simulate_okx(mdc::simulator::okx::OkxSimConfig {
            listen,
            seed,
            rate,
            total,
            gap_every,
            bad_checksum_every,
            keep_alive_every,
            reset_after,
            idle_close: Duration::from_secs(idle_close_s),
            ..Default::default()
        }),
        Command::Simulate { exchange, .. } if exchange != "binance" => {
            eprintln!("simulate: unknown --exchange `{exchange}` (binance, okx or deribit)");
            ExitCode::from(2)
        }
        Command::Simulate {
            listen,
            seed,
            rate,
            total,
            ping_ms,
            ..
        } => simulate(SimConfig {
            listen,
            seed,
            rate,
            total,
            ping_interval: ping_ms.map(Duration::from_millis),
            ..SimConfig::default()
        }),
    }
}

/// The config at `path`, with logging set up as it says (exit 2 on either failing).
fn load_with_logging(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = load(path)?;
    if let Err(e) = init_logging(&config.log) {
        eprintln!("config error: {e}");
        return Err(ExitCode::from(2));
    }
    for (key, why) in config.insecure_settings() {
        log::warn!("event=insecure_setting key={key} why=\"{why}\"");
    }
    Ok(config)
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// stderr and, when set, a file (`log.file`), each line to both.
struct Tee(Option<std::fs::File>);

impl std::io::Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(b);
        if let Some(f) = &mut self.0 {
            f.write_all(b)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn append(path: &str) -> Result<Option<std::fs::File>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Some)
        .map_err(|e| format!("{path}: {e}"))
}

/// Logging at `level` to stderr only (commands other than `run`).
fn init_stderr_logging(level: &str) {
    let _ = init_logging(&mdc::config::LogConfig {
        level: level.into(),
        ..Default::default()
    });
}

fn init_logging(log: &mdc::config::LogConfig) -> Result<(), String> {
    let mut b = env_logger::Builder::new();
    b.parse_filters(&log.level);
    if let Ok(f) = std::env::var("RUST_LOG") {
        b.parse_filters(&f);
    }
    let file = append(&log.file).map_err(|e| format!("log.file: {e}"))?;
    let errors = append(&log.error_file)
        .map_err(|e| format!("log.error_file: {e}"))?
        .map(std::sync::Mutex::new);
    let json = log.format == LogFormat::Json;
    b.format(move |buf, rec| {
        let line = if json {
            let mut msg = Vec::new();
            mdc::encode::json::string(&mut msg, &rec.args().to_string());
            format!(
                "{{\"ts_ns\":{},\"level\":\"{}\",\"target\":\"{}\",\"thread\":\"{}\",\"msg\":{}}}",
                mdc::clock::realtime_ns(),
                rec.level(),
                rec.target(),
                std::thread::current().name().unwrap_or("?"),
                String::from_utf8_lossy(&msg)
            )
        } else {
            format!(
                "{} {:<5} [{}] {}",
                buf.timestamp_micros(),
                rec.level(),
                std::thread::current().name().unwrap_or("?"),
                rec.args()
            )
        };
        if rec.level() == log::Level::Error
            && let Some(f) = &errors
            && let Ok(mut f) = f.lock()
        {
            let _ = writeln!(f, "{line}");
        }
        writeln!(buf, "{line}")
    });
    b.target(env_logger::Target::Pipe(Box::new(Tee(file))));
    let _ = b.try_init();
    Ok(())
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load_with_logging(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !config.tracing.otlp_endpoint.is_empty()
        && let Err(e) =
            mdc::trace::start(&config.tracing.otlp_endpoint, &config.tracing.service_name)
    {
        eprintln!("tracing: {e}");
        return ExitCode::from(2);
    }
    log::info!(
        "event=config_loaded path={} version={}",
        path.display(),
        env!("CARGO_PKG_VERSION")
    );
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let outcome = topology::run(config, flag);
    mdc::trace::flush();
    match outcome {
        Ok(topology::Outcome::Clean) => ExitCode::SUCCESS,
        Ok(topology::Outcome::Incomplete(why)) => {
            log::error!("event=shutdown_incomplete reason=\"{why}\"");
            ExitCode::from(1)
        }
        // A configuration the running system refuses (e.g. an existing NATS stream that does
        // not capture the subjects) is a config error like any other: exit 2.
        Err(e) if e.contains("config error: ") => {
            log::error!("event=start_failed error=\"{e}\"");
            eprintln!("{}", &e[e.find("config error: ").unwrap_or(0)..]);
            ExitCode::from(2)
        }
        Err(e) => {
            log::error!("event=start_failed error=\"{e}\"");
            ExitCode::from(1)
        }
    }
}

/// The SIGINT/SIGTERM flag (exit 1 when the handlers cannot be installed).
fn signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, ExitCode> {
    shutdown::install().map_err(|e| {
        log::error!("event=signal_setup_failed error=\"{e}\"");
        ExitCode::from(1)
    })
}

fn replay(path: &std::path::Path, from: &std::path::Path, speed: f64) -> ExitCode {
    let config = match load_with_logging(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !(speed >= 0.0 && speed.is_finite()) {
        eprintln!("config error: --speed must be 0 or more");
        return ExitCode::from(2);
    }
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match mdc::replay::run(config, from, speed, flag) {
        Ok(s) => {
            log::info!(
                "event=replay_finished files={} frames={} rest_bodies={} markers={} events={} duplicates={} unmatched={} bad={} missing_bodies={}",
                s.files,
                s.frames,
                s.rest_bodies,
                s.markers,
                s.events,
                s.duplicates,
                s.unmatched,
                s.bad,
                s.missing_bodies
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("event=replay_failed error=\"{e}\"");
            eprintln!("replay: {e}");
            ExitCode::from(1)
        }
    }
}

fn job() -> ExitCode {
    let env = match mdc::job::env::JobEnv::from_vars(|k| std::env::var(k).ok()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("config error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_yaml(&env.collector_yaml(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config.log) {
        eprintln!("config error: {e}");
        return ExitCode::from(2);
    }
    for (key, why) in config.insecure_settings() {
        log::warn!("event=insecure_setting key={key} why=\"{why}\"");
    }
    log::info!(
        "event=job_config queue_id={} symbol={} type={} topic={} version={}",
        env.queue_id,
        env.symbol,
        env.kind,
        env.kafka_topic,
        env!("CARGO_PKG_VERSION")
    );
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    match mdc::job::run(&env, config, flag) {
        mdc::job::End::Finished | mdc::job::End::Interrupted => ExitCode::SUCCESS,
        mdc::job::End::Error => ExitCode::from(1),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!(
        "# effective configuration of {} (secrets redacted)",
        path.display()
    );
    print!("{}", config.effective_yaml());
    for (key, why) in config.insecure_settings() {
        eprintln!("warning: {key}: {why}");
    }
    for plan in &config.exchanges {
        let conns = plan.connections();
        let streams: usize = conns.iter().map(|c| c.streams.len()).sum();
        println!(
            "# {}: {} symbols, {} streams over {} connection(s)",
            plan.name(),
            plan.symbols().len(),
            streams,
            conns.len()
        );
    }
    if let Some(sh) = config.shard {
        println!("# shard {sh} owns:");
        for plan in &config.exchanges {
            println!("#   {}: [{}]", plan.name(), plan.symbols().join(", "));
        }
    }
    ExitCode::SUCCESS
}

fn simulate_okx(cfg: mdc::simulator::okx::OkxSimConfig) -> ExitCode {
    init_stderr_logging("info");
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let sim = match mdc::simulator::okx::OkxSimulator::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(1);
        }
    };
    println!("okx simulator listening on {}", sim.ws_url());
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{:?}", sim.stats());
    ExitCode::SUCCESS
}

fn simulate_deribit(mut cfg: mdc::simulator::deribit::DeribitSimConfig) -> ExitCode {
    init_stderr_logging("info");
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    // `public/get_instruments` on the next port.
    cfg.rest_listen = cfg.listen.rsplit_once(':').and_then(|(h, p)| {
        let p: u16 = p.parse().ok()?;
        Some(format!("{h}:{}", p.checked_add(1)?))
    });
    let sim = match mdc::simulator::deribit::DeribitSimulator::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "deribit simulator listening on {} (REST {})",
        sim.ws_url(),
        sim.rest_url().unwrap_or_default()
    );
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{:?}", sim.stats());
    ExitCode::SUCCESS
}

fn simulate(cfg: SimConfig) -> ExitCode {
    init_stderr_logging("info");
    let flag = match signals() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let sim = match Simulator::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("simulate: {e}");
            return ExitCode::from(1);
        }
    };
    println!("simulator listening on {}", sim.ws_url());
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("sent {} messages", sim.sent());
    ExitCode::SUCCESS
}
