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
