//! The periodic status line (`log.status_interval`, default 10 s): what an operator watching a
//! terminal needs without opening `/metrics`: events per type with their rate over the interval,
//! connections up of expected, each sink's handed / queued / dropped / delivered counts, gaps and
//! parse errors. One `event=status` line, built from the same counters `/metrics` exports.

use super::Metrics;
use std::fmt::Write;
use std::time::Instant;

/// Counts at the previous line, for rates.
pub struct StatusLine {
    events: Vec<u64>,
    at: Instant,
}

impl StatusLine {
    pub fn new(m: &Metrics) -> StatusLine {
        StatusLine {
            events: m.events.totals(),
            at: Instant::now(),
        }
    }

    /// The line for now; rates are over the time since the previous one.
    pub fn line(&mut self, m: &Metrics) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64().max(1e-3);
        let events = m.events.totals();
        let total: u64 = events.iter().sum();
        let before: u64 = self.events.iter().sum();
        let mut by_type = String::new();
        for (i, (&n, name)) in events.iter().zip(&m.events.values).enumerate() {
            if n == 0 {
                continue;
            }
            let was = self.events.get(i).copied().unwrap_or(0);
            if !by_type.is_empty() {
                by_type.push_str(", ");
            }
            let _ = write!(
                by_type,
                "{name} {n} {:.0}/s",
                n.saturating_sub(was) as f64 / secs
            );
        }
        let mut sinks = String::new();
        let handed = m.sink_records.totals();
        if let Ok(hs) = m.sinks.lock() {
            for (name, &h) in m.sink_records.values.iter().zip(&handed) {
                let health = hs.iter().find(|s| s.name == *name);
                let queued = health.map_or(0, |s| {
                    s.queue_depth
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .max(0) as u64
                });
                let dropped =
                    health.map_or(0, |s| s.dropped.load(std::sync::atomic::Ordering::Relaxed));
                let spooled = health.map_or(0, |s| {
                    s.spool_bytes.load(std::sync::atomic::Ordering::Relaxed)
                });
                let up =
                    health.is_none_or(|s| s.reachable.load(std::sync::atomic::Ordering::Relaxed));
                if !sinks.is_empty() {
                    sinks.push_str("; ");
                }
                let _ = write!(
                    sinks,
                    "{name} handed={h} queued={queued} dropped={dropped} delivered={}",
                    h.saturating_sub(queued + dropped)
                );
                if spooled > 0 {
                    let _ = write!(sinks, " spool_bytes={spooled}");
                }
                if !up {
                    sinks.push_str(" down");
                }
            }
        }
        let sum = |name: &str| -> u64 { m.counter_values(name).iter().map(|(_, v)| v).sum() };
        let parse_errors: u64 = m.parse_errors.totals().iter().sum();
        let line = format!(
            "event=status events={total} events_per_s={:.0} types=\"{by_type}\" connections={}/{} sinks=\"{sinks}\" gaps={} parse_errors={parse_errors}",
            total.saturating_sub(before) as f64 / secs,
            m.connections_subscribed
                .load(std::sync::atomic::Ordering::Relaxed),
            m.connections_expected
                .load(std::sync::atomic::Ordering::Relaxed),
            sum("gap_events_total"),
        );
        self.events = events;
        self.at = now;
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_with_events_sinks_and_connections() {
        let m = Metrics::new(&["file"]);
        let mut s = StatusLine::new(&m);
        let mut ev = m.events.handle();
        ev.add(0, 500);
        ev.publish();
        let mut handed = m.sink_records.handle();
        handed.add(0, 500);
        handed.publish();
        m.connections_expected
            .store(2, std::sync::atomic::Ordering::Relaxed);
        m.connections_subscribed
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let l = s.line(&m);
        assert!(
            l.starts_with("event=status events=500 events_per_s="),
            "{l}"
        );
        assert!(l.contains("types=\"trade 500 "), "{l}");
        assert!(l.contains("connections=1/2"), "{l}");
        assert!(
            l.contains("sinks=\"file handed=500 queued=0 dropped=0 delivered=500\""),
            "{l}"
        );
        // The next line's rates count only what came since.
        let l = s.line(&m);
        assert!(l.contains("events_per_s=0 "), "{l}");
    }
}
