//! Seeded pseudo-random inputs for the replay tests of the fuzz targets
//! (`crates/*/tests/fuzz_replay.rs`): each runs its libFuzzer harness on
//! these under `cargo test`, on stable and without libFuzzer.
//! `XENKVM_FUZZ_RUNS` and `XENKVM_FUZZ_SEED` lengthen or vary a run.

/// splitmix64: tiny, seeded, good enough to spread bytes.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Up to `max_len` uniformly random bytes.
    pub fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.next_u64() % max_len;
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// 1 to `max_len` bytes, mostly small values (harness selectors take
    /// low values and moduli), sometimes a run of raw words.
    pub fn skewed(&mut self, max_len: u64) -> Vec<u8> {
        let len = (self.next_u64() % max_len) as usize + 1;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let r = self.next_u64();
            if r & 15 == 0 {
                v.extend(r.to_le_bytes());
            } else {
                v.push((r >> 8) as u8 % [8, 32, 64, 255][(r >> 16) as usize % 4]);
            }
        }
        v
    }
}

/// A numeric environment setting (`XENKVM_FUZZ_RUNS`, `XENKVM_FUZZ_SEED`).
pub fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_stay_in_bounds() {
        let (mut a, mut b) = (SplitMix(7), SplitMix(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let v = a.skewed(10);
        assert!((1..=10 + 7).contains(&v.len()), "{}", v.len());
        assert!(SplitMix(1).bytes(5).len() < 5);
    }
}
