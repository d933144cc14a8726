//! Reconnect delays: exponential backoff with jitter (docs/protocol.md §4).
//!
//! After the `n`-th failed attempt in a row the ceiling is
//! `min(cap, base × factor^n)`; jitter then spreads the actual delay below it
//! so that a thousand clients cut off by the same server restart do not all
//! come back in the same millisecond. The random source is injected, so tests
//! can replay an exact sequence from a fixed seed.
//!
//! A server may also ask for a minimum wait in its GOAWAY reason, the
//! retry-after hint of docs/protocol.md §7.8 ([`retry_after_hint`],
//! [`Backoff::next_delay_with_hint`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the delay is spread below the exponential ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the ceiling: deterministic, but clients that failed together retry together.
    None,
    /// Uniform in `[0, ceiling]`: the best spread, occasionally a near-immediate retry.
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`: keeps at least half the wait.
    Equal,
}

/// The knobs of [`Backoff`].
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// The ceiling for the first retry.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
    /// The ceiling grows by this factor per failed attempt (values below 1 are treated as 1).
    pub factor: f64,
    /// How the delay is spread below the ceiling.
    pub jitter: Jitter,
    /// Give up after this many failed attempts in a row; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// A connection that stayed healthy this long resets the attempt count,
    /// so one good hour is not followed by a 30-second wait after a blip.
    pub healthy_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(30),
            factor: 2.0,
            jitter: Jitter::Full,
            max_attempts: None,
            healthy_after: Duration::from_secs(10),
        }
    }
}

/// A source of random 64-bit numbers for jitter; injectable so tests are deterministic.
pub trait RandomSource {
    /// The next random number.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// SplitMix64: a tiny, fast, well-mixed PRNG. Jitter needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that replays the same sequence for the same seed (for tests).
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator seeded from the wall clock and the process's hash keys, so
    /// clients started in the same instant on different hosts still diverge.
    pub fn from_entropy() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(nanos);
        hasher.write_u32(std::process::id());
        SplitMix64::new(hasher.finish() ^ nanos)
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The longest retry-after hint honoured (§7.8): a server cannot park a
/// client for more than 10 minutes with one GOAWAY.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The GOAWAY reason prefix that carries a retry-after hint (§7.8).
const RETRY_AFTER_PREFIX: &str = "retry-after-ms=";

/// The retry-after hint of a GOAWAY reason (docs/protocol.md §7.8):
/// `retry-after-ms=` then 1 to 10 ASCII digits (at most 4294967295), then
/// nothing or a space and free text. A reason of any other form has no hint
/// (and is no error). Not capped here: [`Backoff::next_delay_with_hint`] caps it.
pub fn retry_after_hint(reason: &str) -> Option<Duration> {
    let rest = reason.strip_prefix(RETRY_AFTER_PREFIX)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=10).contains(&digits) {
        return None;
    }
    let (number, tail) = rest.split_at(digits);
    if !(tail.is_empty() || tail.starts_with(' ')) {
        return None;
    }
    let ms: u32 = number.parse().ok()?;
    Some(Duration::from_millis(u64::from(ms)))
}

/// The retry schedule: counts failed attempts in a row and turns the count
/// into the next delay, or into "give up".
pub struct Backoff {
    config: BackoffConfig,
    rng: Box<dyn RandomSource + Send>,
    attempt: u32,
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff")
            .field("config", &self.config)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Backoff {
    /// A schedule with no failures yet, drawing jitter from `rng`.
    pub fn new(config: BackoffConfig, rng: Box<dyn RandomSource + Send>) -> Self {
        Backoff {
            config,
            rng,
            attempt: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Failed attempts in a row so far (the number of delays handed out since the last reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets the failures: the next delay starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The un-jittered ceiling for retry number `attempt` (0-based):
    /// `min(cap, base × factor^attempt)`, saturating instead of overflowing.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let cap = self.config.cap;
        let factor = if self.config.factor.is_finite() {
            self.config.factor.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.config.base.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(secs.max(0.0)).min(cap)
        }
    }

    /// The delay before the next attempt, counting one more failure; `None`
    /// once `max_attempts` failures in a row have been handed out (give up).
    pub fn next_delay(&mut self) -> Option<Duration> {
        if let Some(max) = self.config.max_attempts {
            if self.attempt >= max {
                return None;
            }
        }
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Some(match self.config.jitter {
            Jitter::None => ceiling,
            Jitter::Full => self.uniform(ceiling),
            Jitter::Equal => {
                let half = ceiling / 2;
                half + self.uniform(ceiling - half)
            }
        })
    }

    /// The delay before the next attempt when the server gave a retry-after
    /// hint `h` (§7.8): `h` (capped at [`MAX_RETRY_AFTER`]) plus a uniform
    /// jitter in `[0, h / 2]`, or the usual delay if that is longer. The
    /// attempt count rises as with [`Backoff::next_delay`], and `None` still
    /// means "give up".
    pub fn next_delay_with_hint(&mut self, hint: Option<Duration>) -> Option<Duration> {
        let delay = self.next_delay()?;
        let Some(hint) = hint else {
            return Some(delay);
        };
        let hint = hint.min(MAX_RETRY_AFTER);
        Some(delay.max(hint + self.uniform(hint / 2)))
    }

    /// Uniform in `[0, max]` at nanosecond resolution (the modulo bias is far
    /// below anything a reconnect delay could notice).
    fn uniform(&mut self, max: Duration) -> Duration {
        let span = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let r = self.rng.next_u64();
        let nanos = match span.checked_add(1) {
            Some(modulus) => r % modulus,
            None => r,
        };
        Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jitter: Jitter) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            factor: 2.0,
            jitter,
            max_attempts: None,
            healthy_after: Duration::from_secs(5),
        }
    }

    fn seeded(jitter: Jitter, seed: u64) -> Backoff {
        Backoff::new(config(jitter), Box::new(SplitMix64::new(seed)))
    }

    #[test]
    fn no_jitter_doubles_up_to_the_cap() {
        let mut b = seeded(Jitter::None, 1);
        let ms: Vec<u128> = (0..10)
            .map(|_| b.next_delay().expect("retries forever").as_millis())
            .collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.attempt(), 10);
    }

    #[test]
    fn seeded_sequence_is_deterministic() {
        let mut a = seeded(Jitter::Full, 42);
        let mut b = seeded(Jitter::Full, 42);
        let xs: Vec<Duration> = (0..20).filter_map(|_| a.next_delay()).collect();
        let ys: Vec<Duration> = (0..20).filter_map(|_| b.next_delay()).collect();
        assert_eq!(xs, ys);
        let mut c = seeded(Jitter::Full, 43);
        let zs: Vec<Duration> = (0..20).filter_map(|_| c.next_delay()).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn splitmix_known_first_output() {
        // Reference value for SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn full_jitter_stays_in_zero_to_ceiling_and_spreads() {
        let mut b = seeded(Jitter::Full, 7);
        let mut below_half = 0;
        for round in 0..2000 {
            if round % 20 == 0 {
                b.reset();
            }
            let ceiling = b.ceiling(b.attempt());
            let d = b.next_delay().expect("retries forever");
            assert!(d <= ceiling, "{d:?} above {ceiling:?}");
            assert!(d <= Duration::from_secs(10), "above cap");
            if d < ceiling / 2 {
                below_half += 1;
            }
        }
        // Full jitter puts about half the draws below half the ceiling.
        assert!((700..1300).contains(&below_half), "{below_half}");
    }

    #[test]
    fn equal_jitter_keeps_at_least_half() {
        let mut b = seeded(Jitter::Equal, 9);
        for _ in 0..200 {
            let ceiling = b.ceiling(b.attempt());
            let d = b.next_delay().expect("retries forever");
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
        }
    }

    #[test]
    fn injected_closure_source_is_used() {
        let mut b = Backoff::new(config(Jitter::Full), Box::new(|| u64::MAX));
        // u64::MAX % (100ms in ns + 1)
        let expected = Duration::from_nanos(u64::MAX % 100_000_001);
        assert_eq!(b.next_delay(), Some(expected));
        let mut zero = Backoff::new(config(Jitter::Full), Box::new(|| 0));
        assert_eq!(zero.next_delay(), Some(Duration::ZERO));
    }

    #[test]
    fn reset_starts_from_base_again() {
        let mut b = seeded(Jitter::None, 1);
        for _ in 0..5 {
            let _ = b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut cfg = config(Jitter::Full);
        cfg.max_attempts = Some(3);
        let mut b = Backoff::new(cfg, Box::new(SplitMix64::new(1)));
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.next_delay(), None);
        b.reset();
        assert!(b.next_delay().is_some());
    }

    #[test]
    fn retry_after_hints_parse_only_in_the_spec_form() {
        let ms = |n| Some(Duration::from_millis(n));
        let table = [
            ("retry-after-ms=1500", ms(1500)),
            ("retry-after-ms=1500 engine unavailable", ms(1500)),
            ("retry-after-ms=0", ms(0)),
            ("retry-after-ms=4294967295", ms(4_294_967_295)),
            ("retry-after-ms=0004294967", ms(4_294_967)),
            ("retry-after-ms=4294967296", None),
            ("retry-after-ms=12345678901", None),
            ("retry-after-ms=", None),
            ("retry-after-ms= 5", None),
            ("retry-after-ms=15x", None),
            ("retry-after-ms=15\tx", None),
            ("retry-after-ms=-1", None),
            (" retry-after-ms=5", None),
            ("Retry-After-Ms=5", None),
            ("server full", None),
            ("", None),
        ];
        for (reason, hint) in table {
            assert_eq!(retry_after_hint(reason), hint, "{reason:?}");
        }
    }

    #[test]
    fn a_hint_sets_a_floor_with_up_to_half_of_it_as_jitter() {
        // Jitter::None: the usual delays are 100, 200, 400 ms, and the hint's
        // jitter comes from the injected source: 0 and then the most.
        let mut b = Backoff::new(config(Jitter::None), Box::new(|| 0));
        let hint = Some(Duration::from_millis(1000));
        assert_eq!(
            b.next_delay_with_hint(hint),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(b.attempt(), 1, "the count keeps rising");
        let mut b = Backoff::new(config(Jitter::None), Box::new(|| u64::MAX));
        let d = b.next_delay_with_hint(hint).expect("retries forever");
        assert!(
            d > Duration::from_millis(1000) && d <= Duration::from_millis(1500),
            "{d:?}"
        );
        // A hint shorter than the usual delay changes nothing.
        let mut b = seeded(Jitter::None, 1);
        for _ in 0..4 {
            let _ = b.next_delay();
        }
        assert_eq!(
            b.next_delay_with_hint(Some(Duration::from_millis(10))),
            Some(Duration::from_millis(1600))
        );
        assert_eq!(
            b.next_delay_with_hint(None),
            Some(Duration::from_millis(3200))
        );
    }

    #[test]
    fn a_hint_is_capped_and_does_not_override_giving_up() {
        let mut b = Backoff::new(config(Jitter::None), Box::new(|| 0));
        assert_eq!(
            b.next_delay_with_hint(Some(Duration::from_millis(4_294_967_295))),
            Some(MAX_RETRY_AFTER)
        );
        let mut cfg = config(Jitter::None);
        cfg.max_attempts = Some(0);
        let mut b = Backoff::new(cfg, Box::new(|| 0));
        assert_eq!(b.next_delay_with_hint(Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn huge_attempt_counts_and_odd_factors_saturate_at_the_cap() {
        let mut cfg = config(Jitter::None);
        cfg.factor = f64::INFINITY;
        let b = Backoff::new(cfg.clone(), Box::new(SplitMix64::new(1)));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(100));
        cfg.factor = 10.0;
        let b = Backoff::new(cfg.clone(), Box::new(SplitMix64::new(1)));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
        cfg.factor = 0.5;
        let b = Backoff::new(cfg, Box::new(SplitMix64::new(1)));
        assert_eq!(b.ceiling(5), Duration::from_millis(100));
    }
}
