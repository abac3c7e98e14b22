//! FNV-1a: a stable 64-bit hash (the same on every machine and release) for sharding keys and
//! telling events apart; not for anything an adversary chooses to collide.

/// FNV-1a of `bytes`.
pub fn fnv1a<I: IntoIterator<Item = u8>>(bytes: I) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a as a [`std::hash::Hasher`], for small maps on the hot path keyed by short strings the
/// configuration bounds (symbols, exchange and market names): several times cheaper per lookup
/// than the default SipHash, whose flooding resistance such keys do not need.
#[derive(Clone, Copy)]
pub struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FnvHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap` builder with [`FnvHasher`].
pub type FnvBuild = std::hash::BuildHasherDefault<FnvHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    #[test]
    fn hasher_is_fnv1a() {
        let mut h = FnvHasher::default();
        h.write(b"BTCUSDT");
        assert_eq!(h.finish(), fnv1a(*b"BTCUSDT"));
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
    }
}
