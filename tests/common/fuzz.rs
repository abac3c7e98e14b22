//! A stable-toolchain fuzzer shared by the fuzz tests: seeded mutations (byte flips from a
//! JSON-heavy alphabet, deletions, insertions, truncations, repeated slices, huge digit runs) of
//! a corpus read from the recorded fixtures, run for a time budget (`MDC_FUZZ_SECS` per target,
//! default 10 s in the test command; longer runs: `MDC_FUZZ_SECS=600 cargo test --release --test
//! fuzz`). The seed of a run is printed, and `MDC_FUZZ_SEED` repeats it.

use std::time::{Duration, Instant};

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub const ALPHABET: &[u8] = b"{}[]\":,-.0123456789eE+ \\nulltruefalse\x00\xff\xc3\xa9abcXYZ\r\n";

/// One to four random edits of `msg`.
pub fn mutate(rng: &mut Rng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if i < m.len() => m[i] = ALPHABET[rng.below(ALPHABET.len())],
            1 if i < m.len() => {
                let n = 1 + rng.below(8).min(m.len() - i - 1);
                m.drain(i..i + n);
            }
            2 => m.insert(i, ALPHABET[rng.below(ALPHABET.len())]),
            3 => m.truncate(i),
            4 if i < m.len() => {
                let end = (i + 1 + rng.below(40)).min(m.len());
                let slice = m[i..end].to_vec();
                m.splice(i..i, slice);
            }
            _ => {
                // A digit run made huge (ids, sequence numbers, checksums beyond their types).
                if i < m.len() && m[i].is_ascii_digit() {
                    m.splice(i..i, b"99999999999999999999".iter().copied());
                }
            }
        }
    }
    m
}

/// The first `take` lines of every `.jsonl` file under `tests/fixtures/<dir>` (recursively).
pub fn fixture_lines(dir: &str, take: usize) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.extend(text.lines().take(take).map(|l| l.as_bytes().to_vec()));
            }
        }
    }
    out
}

/// Time per target.
pub fn budget() -> Duration {
    let secs = std::env::var("MDC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs.max(0.1))
}

/// Runs `round(rng, i)` until the budget is spent (at least `min_rounds` times); returns the
/// number of rounds. The seed is printed so a failure can be repeated.
pub fn run(name: &str, min_rounds: usize, mut round: impl FnMut(&mut Rng, usize)) -> usize {
    let seed = std::env::var("MDC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("fuzz {name}: MDC_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let (t0, limit) = (Instant::now(), budget());
    let mut i = 0;
    while i < min_rounds || t0.elapsed() < limit {
        round(&mut rng, i);
        i += 1;
    }
    println!("fuzz {name}: {i} rounds in {:?}", t0.elapsed());
    i
}
