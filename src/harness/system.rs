//! Facts about the machine and the process for benchmark reports: CPU model, kernel, host, git
//! revision, per-thread CPU time and RSS (all from /proc; Linux only).

use std::collections::BTreeMap;

/// `model name` of the first CPU in /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// `git rev-parse --short HEAD` (+ `-dirty`), or `unknown` outside a checkout.
pub fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{rev}-dirty") } else { rev }
        }
        None => "unknown".into(),
    }
}

/// Today's UTC date as `YYYY-MM-DD` (civil-from-days, no time zone database needed).
pub fn utc_date() -> String {
    let (y, m, d, _) =
        crate::clock::utc_ymdh(crate::clock::realtime_ns().div_euclid(1_000_000_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    crate::metrics::server::rss_bytes().max(0) as u64
}

/// Per thread name of this process: CPU seconds (from `schedstat`, else user + system ticks) and context switches
/// (voluntary: the thread waited; involuntary: it was preempted), summed over threads of a name.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadStats {
    pub cpu_s: f64,
    pub voluntary: u64,
    pub involuntary: u64,
}

/// [`ThreadStats`] of every thread, by name: one pass over `/proc/self/task` (`schedstat` for CPU,
/// `status` for context switches).
pub fn thread_stats() -> BTreeMap<String, ThreadStats> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out: BTreeMap<String, ThreadStats> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in dir.flatten() {
        let p = t.path();
        let name = std::fs::read_to_string(p.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let e = out.entry(name).or_default();
        // `schedstat` counts nanoseconds on the CPU exactly; `stat`'s utime + stime are sampled
        // at the 10 ms tick, which misjudges threads that run in short bursts (a reader waking
        // for 10 us a thousand times a second).
        if let Some(ns) = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            e.cpu_s += ns as f64 / 1e9;
        } else if let Ok(stat) = std::fs::read_to_string(p.join("stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            // Fields after the `(comm)` of `stat`: state is field 3, utime 14, stime 15.
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            e.cpu_s += (ticks(11) + ticks(12)) / tick;
        }
        if let Ok(status) = std::fs::read_to_string(p.join("status")) {
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            e.voluntary += field("voluntary_ctxt_switches:");
            e.involuntary += field("nonvoluntary_ctxt_switches:");
        }
    }
    out
}
