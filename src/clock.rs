//! Wall-clock timestamps in nanoseconds since the Unix epoch.
//!
//! Receive times use `CLOCK_REALTIME` (not a monotonic clock) so users can compare them with the
//! exchange's own event times and measure feed latency; both sides are then only as good as NTP/PTP.

/// Nanoseconds since the Unix epoch from `CLOCK_REALTIME` (vDSO: no syscall, no allocation).
#[inline]
pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; CLOCK_REALTIME is
    // always supported on Linux, so the call cannot fail with valid arguments.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Civil UTC date and hour `(year, month, day, hour)` of a Unix time in seconds.
/// Used to name hourly-rotated files without pulling in a date library.
pub fn utc_ymdh(unix_secs: i64) -> (i64, u32, u32, u32) {
    let days = unix_secs.div_euclid(86_400);
    let hour = (unix_secs.rem_euclid(86_400) / 3600) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d, hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(utc_ymdh(0), (1970, 1, 1, 0));
        assert_eq!(utc_ymdh(1_723_161_255), (2024, 8, 8, 23));
        assert_eq!(utc_ymdh(951_782_400), (2000, 2, 29, 0));
        // Day numbers as the PostgreSQL partitions and capture files use them.
        let day = |d: i64| utc_ymdh(d * 86_400);
        assert_eq!(day(20_793), (2026, 12, 6, 0));
        assert_eq!(day(20_818), (2026, 12, 31, 0));
        assert_eq!(day(20_819), (2027, 1, 1, 0));
        assert_eq!(day(11_016), (2000, 2, 29, 0));
        assert!(realtime_ns() > 1_700_000_000_000_000_000);
    }
}
