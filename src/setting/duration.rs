//! Durations in config are strings such as "250ms", "30s", "5m", "23h30m".

use std::time::Duration;

/// Parses `<n><unit>` groups (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`), e.g. `"1h30m"`.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a duration like \"250ms\", \"30s\" or \"23h30m\""
            ));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => return Err(format!("`{s}`: missing unit (ns, us, ms, s, m, h, d)")),
            u => {
                return Err(format!(
                    "`{s}`: unknown unit `{u}` (ns, us, ms, s, m, h, d)"
                ));
            }
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(
                n.checked_mul(unit_ns)
                    .ok_or_else(|| format!("`{s}`: too large"))?,
            )
            .ok_or_else(|| format!("`{s}`: too large"))?;
    }
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| format!("`{s}`: too large"))
}

/// Writes a duration the way [`parse`] reads it, largest units first (`"23h30m"`, `"250ms"`).
pub fn format(d: Duration) -> String {
    let mut ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if ns >= size {
            out.push_str(&format!("{}{unit}", ns / size));
            ns %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_it_parses() {
        for s in ["23h30m", "250ms", "30s", "1h1s", "5m"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }

    #[test]
    fn parses() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse("23h30m").unwrap(),
            Duration::from_secs(23 * 3600 + 1800)
        );
        assert_eq!(parse("1s500ms").unwrap(), Duration::from_millis(1500));
        for bad in ["", "5", "ms", "5x", "1.5s", "-1s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
