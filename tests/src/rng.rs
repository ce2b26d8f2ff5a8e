//! A small deterministic random generator for tests that pick delays and ports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A small deterministic generator (xorshift64*) for kill delays; print the seed to replay.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `$SFC_TEST_SEED` when set, else from the clock.
    pub fn from_env_or_clock() -> (Rng, u64) {
        let seed = std::env::var("SFC_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs() ^ u64::from(d.subsec_nanos()) << 20)
            });
        (Rng(seed | 1), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, max)`.
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.next_u64() % micros)
    }
}
