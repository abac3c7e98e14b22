//! Stage latency histograms (hdrhistogram), exported as Prometheus histograms.
//!
//! A hot-path thread records into its own [`Recorder`] (an array increment, no atomics, no lock)
//! and merges it into the stage's shared histogram about every 100 ms with `try_lock`: if the
//! exporter happens to hold it, the thread keeps its counts and tries again next time, so it never
//! waits. The exporter renders cumulative `_bucket` series on fixed bounds ([`BUCKETS`], 1 µs to
//! 60 s), `_sum`, `_count`, and the maximum as a `_max` gauge: buckets, unlike quantiles, can be
//! summed across threads, shards and instances (`histogram_quantile(0.99, sum by (le) (...))`).

use hdrhistogram::Histogram;
use std::sync::{Arc, Mutex};

/// Highest value kept: 60 s in ns (larger values are clamped to it).
const HIGHEST_NS: u64 = 60_000_000_000;
/// Quantiles the benchmark report prints.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Upper bounds (seconds) of the exported buckets; `+Inf` follows.
pub const BUCKETS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

fn histogram() -> Option<Histogram<u64>> {
    let mut h = Histogram::new_with_bounds(1, HIGHEST_NS, 3).ok()?;
    h.auto(false);
    Some(h)
}

/// One exported series: a label set and the shared histogram behind it.
#[derive(Clone)]
pub struct Series {
    pub labels: Vec<(&'static str, String)>,
    /// Values are in `unit_seconds` (1e-9 for ns, 1e-6 for µs).
    pub unit_seconds: f64,
    pub shared: Arc<Mutex<Option<Histogram<u64>>>>,
}

/// Labels, unit (seconds per recorded value) and the merged histogram of one label set.
pub type Merged = (Vec<(&'static str, String)>, f64, Histogram<u64>);

/// A named summary with its series.
pub struct LatencyFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub series: Mutex<Vec<Series>>,
}

impl LatencyFamily {
    pub fn new(name: &'static str, help: &'static str) -> Self {
        LatencyFamily {
            name,
            help,
            series: Mutex::new(Vec::new()),
        }
    }

    /// A recorder (values in ns) for a new series with `labels` (startup, one per thread).
    pub fn recorder(&self, labels: &[(&'static str, &str)]) -> Recorder {
        let shared = Arc::new(Mutex::new(histogram()));
        self.add(labels, 1e-9, shared.clone());
        Recorder {
            local: histogram(),
            shared,
            pending: 0,
        }
    }

    /// Adds a series fed elsewhere (e.g. a sink's delivery callback).
    pub fn add(
        &self,
        labels: &[(&'static str, &str)],
        unit_seconds: f64,
        shared: Arc<Mutex<Option<Histogram<u64>>>>,
    ) {
        if let Ok(mut s) = self.series.lock() {
            s.push(Series {
                labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
                unit_seconds,
                shared,
            });
        }
    }

    /// Snapshot per distinct label set (series of several threads with equal labels are merged).
    pub fn snapshot(&self) -> Vec<Merged> {
        let series = self.series.lock().map(|s| s.clone()).unwrap_or_default();
        let mut out: Vec<Merged> = Vec::new();
        for s in series {
            let Ok(h) = s.shared.lock() else { continue };
            let Some(h) = h.as_ref() else { continue };
            match out
                .iter_mut()
                .find(|(l, u, _)| *l == s.labels && *u == s.unit_seconds)
            {
                Some((_, _, acc)) => {
                    let _ = acc.add(h);
                }
                None => out.push((s.labels.clone(), s.unit_seconds, h.clone())),
            }
        }
        out
    }

    /// Prometheus text format: a histogram per label set, then the `_max` gauges.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP {n} {h}\n# TYPE {n} histogram",
            n = self.name,
            h = self.help
        );
        let snap = self.snapshot();
        for (labels, unit, h) in &snap {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let l = l.join(",");
            let sep = if l.is_empty() { "" } else { "," };
            for le in BUCKETS {
                // Values are integers in `unit`: `<= le` is `<= floor(le / unit)`.
                let top = (le / unit + 1e-9).floor() as u64;
                let n = if h.is_empty() {
                    0
                } else {
                    h.count_between(0, top)
                };
                let _ = writeln!(out, "{}_bucket{{{l}{sep}le=\"{le}\"}} {n}", self.name);
            }
            let _ = writeln!(
                out,
                "{}_bucket{{{l}{sep}le=\"+Inf\"}} {}",
                self.name,
                h.len()
            );
            let sum = h.mean() * h.len() as f64 * unit;
            let _ = writeln!(out, "{}_sum{{{l}}} {sum:e}", self.name);
            let _ = writeln!(out, "{}_count{{{l}}} {}", self.name, h.len());
        }
        let _ = writeln!(
            out,
            "# HELP {n}_max Largest value recorded since start.\n# TYPE {n}_max gauge",
            n = self.name
        );
        for (labels, unit, h) in &snap {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let _ = writeln!(
                out,
                "{}_max{{{}}} {:e}",
                self.name,
                l.join(","),
                h.max() as f64 * unit
            );
        }
    }
}

/// One thread's histogram of one stage.
pub struct Recorder {
    local: Option<Histogram<u64>>,
    shared: Arc<Mutex<Option<Histogram<u64>>>>,
    pending: u64,
}

impl Recorder {
    /// Records one latency in ns (negative clock steps count as 1 ns, huge values as 60 s).
    #[inline]
    pub fn record_ns(&mut self, ns: i64) {
        if let Some(h) = self.local.as_mut() {
            h.saturating_record((ns.max(1) as u64).min(HIGHEST_NS));
            self.pending += 1;
        }
    }

    /// Hands the local counts to the exporter if its lock is free (never waits).
    pub fn merge(&mut self) {
        if self.pending == 0 {
            return;
        }
        let Some(local) = self.local.as_mut() else {
            return;
        };
        if let Ok(mut guard) = self.shared.try_lock()
            && let Some(shared) = guard.as_mut()
            && shared.add(&*local).is_ok()
        {
            local.reset();
            self.pending = 0;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(local) = self.local.as_ref()
            && let Ok(mut guard) = self.shared.lock()
            && let Some(shared) = guard.as_mut()
        {
            let _ = shared.add(local);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_merge_into_one_series_and_render_a_histogram() {
        let f = LatencyFamily::new("stage_latency_seconds", "test");
        let mut a = f.recorder(&[("stage", "x")]);
        let mut b = f.recorder(&[("stage", "x")]);
        for i in 1..=1000 {
            a.record_ns(i * 1000);
        }
        b.record_ns(-5);
        a.merge();
        b.merge();
        let mut out = String::new();
        f.render(&mut out);
        assert!(
            out.contains("stage_latency_seconds_count{stage=\"x\"} 1001"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE stage_latency_seconds histogram"),
            "{out}"
        );
        // 1 µs .. 1 ms in 1 µs steps, plus one at 1 ns: 2 values <= 1 µs, 11 <= 10 µs, 1001 <= 1 ms.
        for (le, n) in [
            ("0.000001", 2),
            ("0.00001", 11),
            ("0.001", 1001),
            ("+Inf", 1001),
        ] {
            assert!(
                out.contains(&format!(
                    "stage_latency_seconds_bucket{{stage=\"x\",le=\"{le}\"}} {n}"
                )),
                "{le}: {out}"
            );
        }
        let p50 = f.snapshot()[0].2.value_at_quantile(0.5);
        assert!((499_000..=501_000).contains(&p50), "{p50}");
    }
}
