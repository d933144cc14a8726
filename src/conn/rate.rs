//! A per-connection token bucket for `--rate-limit`: `rate` frames a second
//! on average with bursts of up to `burst`. Kept in thousandths of a frame so
//! that a tick refills a fraction of a frame exactly.

use crate::time::Tick;

/// Thousandths of a frame per frame.
const MILLI: u64 = 1000;

/// Tokens left and when they were last refilled.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    milli_tokens: u64,
    refilled_at: Tick,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(now: Tick, burst: u32) -> TokenBucket {
        TokenBucket {
            milli_tokens: u64::from(burst) * MILLI,
            refilled_at: now,
        }
    }

    /// Takes one frame's token; false when the peer is over its allowance.
    pub fn take(&mut self, now: Tick, rate_per_s: u32, burst: u32, tick_ms: u32) -> bool {
        let elapsed_ticks = now.saturating_sub(self.refilled_at);
        // rate frames/s × tick_ms ms/tick = rate × tick_ms thousandths of a frame per tick.
        let refill = elapsed_ticks
            .saturating_mul(u64::from(rate_per_s))
            .saturating_mul(u64::from(tick_ms));
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(u64::from(burst) * MILLI);
        self.refilled_at = now;
        if self.milli_tokens < MILLI {
            return false;
        }
        self.milli_tokens -= MILLI;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_steady_rate() {
        // 10 frames/s, burst 5, 100 ms ticks: one frame per tick on average.
        let mut b = TokenBucket::new(0, 5);
        assert!((0..5).all(|_| b.take(0, 10, 5, 100)));
        assert!(!b.take(0, 10, 5, 100));
        assert!(b.take(1, 10, 5, 100));
        assert!(!b.take(1, 10, 5, 100));
        // A long quiet spell refills only up to the burst.
        assert_eq!((0..10).filter(|_| b.take(1000, 10, 5, 100)).count(), 5);
    }

    #[test]
    fn fractional_rates_accumulate() {
        // 1 frame/s at 100 ms ticks: a tenth of a frame per tick.
        let mut b = TokenBucket::new(0, 1);
        assert!(b.take(0, 1, 1, 100));
        for t in 1..10 {
            assert!(!b.take(t, 1, 1, 100), "tick {t}");
        }
        assert!(b.take(19, 1, 1, 100));
    }
}
