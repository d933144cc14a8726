//! Accept pacing and admission, free of sockets and clocks: the token bucket
//! behind `--max-accept-rate` and the per-address count behind
//! `--max-connections-per-ip`. The reactor passes the time in and asks
//! before each accept; the kernel's backlog holds whoever waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The burst a `--max-accept-rate` of `rate` allows: a tenth of a second's
/// worth (at least one), so a quiet server takes a small wave at once and a
/// storm is spread at the rate.
pub fn default_accept_burst(rate: u32) -> u32 {
    (rate / 10).max(1)
}

/// A token bucket of accepts: `rate` tokens a second, at most `burst` held;
/// one accept takes one token. Fractions of a token are kept between
/// refills, so the long-run rate is exact.
#[derive(Debug, Clone)]
pub struct AcceptBucket {
    rate: u32,
    burst: u32,
    tokens: u32,
    /// The time `tokens` was counted at (whole tokens only: the fraction
    /// since is still to come).
    counted_at: Instant,
}

impl AcceptBucket {
    /// A full bucket at `now`; `rate` and `burst` are at least 1.
    pub fn new(rate: u32, burst: u32, now: Instant) -> AcceptBucket {
        let burst = burst.max(1);
        AcceptBucket {
            rate: rate.max(1),
            burst,
            tokens: burst,
            counted_at: now,
        }
    }

    /// Tokens earned between `counted_at` and `now`, and the time they cost.
    fn earned(&self, now: Instant) -> (u32, Duration) {
        let elapsed = now.saturating_duration_since(self.counted_at).as_nanos();
        let room = u128::from(self.burst - self.tokens);
        let earned = (elapsed * u128::from(self.rate) / NANOS_PER_SEC).min(room);
        let cost = earned * NANOS_PER_SEC / u128::from(self.rate);
        (
            earned as u32,
            Duration::from_nanos(u64::try_from(cost).unwrap_or(u64::MAX)),
        )
    }

    /// Tokens earned per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Tokens available at `now` (without taking any).
    pub fn available(&self, now: Instant) -> u32 {
        self.tokens + self.earned(now).0
    }

    /// Takes one token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let (earned, cost) = self.earned(now);
        self.tokens += earned;
        if self.tokens == self.burst {
            // Full: time spent full earns nothing.
            self.counted_at = now;
        } else {
            self.counted_at += cost;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// How long after `now` until `wanted` tokens (capped at the burst) are
    /// available: zero if they are already.
    pub fn wait_for(&self, wanted: u32, now: Instant) -> Duration {
        let wanted = wanted.clamp(1, self.burst);
        if self.available(now) >= wanted {
            return Duration::ZERO;
        }
        let missing = u128::from(wanted - self.tokens);
        // Ceiling: at that instant the last token is whole.
        let at = (missing * NANOS_PER_SEC).div_ceil(u128::from(self.rate));
        let at = self.counted_at + Duration::from_nanos(u64::try_from(at).unwrap_or(u64::MAX));
        at.saturating_duration_since(now)
    }
}

/// Connections held per peer address, for `--max-connections-per-ip`;
/// also remembers each connection's address (by slab key) so the count
/// goes down when it closes. The limit is the caller's (the live
/// configuration, so a reload changes it); nothing is held while it is 0,
/// so connections accepted while the limit was off are not counted.
#[derive(Debug, Default)]
pub struct PerIpCounts {
    counts: HashMap<IpAddr, u32>,
    by_key: HashMap<u32, IpAddr>,
}

impl PerIpCounts {
    /// Whether a new connection from `ip` would go past `limit` (0: off).
    pub fn is_full(&self, ip: IpAddr, limit: u32) -> bool {
        limit > 0 && self.counts.get(&ip).copied().unwrap_or(0) >= limit
    }

    /// Counts the connection in slot `key` against `ip` (no-op when `limit` is 0).
    pub fn add(&mut self, key: u32, ip: IpAddr, limit: u32) {
        if limit == 0 {
            return;
        }
        *self.counts.entry(ip).or_insert(0) += 1;
        if let Some(old) = self.by_key.insert(key, ip) {
            self.forget(old); // cannot happen: a slot is removed before reuse
        }
    }

    /// The connection in slot `key` is gone.
    pub fn remove(&mut self, key: u32) {
        if let Some(ip) = self.by_key.remove(&key) {
            self.forget(ip);
        }
    }

    fn forget(&mut self, ip: IpAddr) {
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }

    /// Distinct addresses with connections counted.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn take_all(bucket: &mut AcceptBucket, now: Instant) -> u32 {
        let mut n = 0;
        while bucket.try_take(now) {
            n += 1;
        }
        n
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = AcceptBucket::new(1000, default_accept_burst(1000), t0);
        assert_eq!(take_all(&mut b, t0), 100);
        assert_eq!(b.available(t0), 0);
        // 1000/s: one token a millisecond.
        assert_eq!(b.available(t0 + ms(10)), 10);
        assert_eq!(take_all(&mut b, t0 + ms(10)), 10);
        assert_eq!(take_all(&mut b, t0 + ms(10)), 0);
        // Never more than the burst, however long it was quiet.
        assert_eq!(take_all(&mut b, t0 + ms(60_000)), 100);
    }

    #[test]
    fn fractions_are_kept_so_the_long_run_rate_is_exact() {
        let t0 = Instant::now();
        let mut b = AcceptBucket::new(3, 10, t0);
        assert_eq!(take_all(&mut b, t0), 10);
        let mut taken = 0;
        // Asking every 100 ms for 10 s: 3 a second, 30 in all (not 0, as
        // rounding each 0.3 token down would give).
        for i in 1..=100 {
            taken += take_all(&mut b, t0 + ms(100 * i));
        }
        assert_eq!(taken, 30);
    }

    #[test]
    fn wait_for_says_when_the_tokens_are_there() {
        let t0 = Instant::now();
        let mut b = AcceptBucket::new(2000, 200, t0);
        assert_eq!(b.wait_for(20, t0), Duration::ZERO);
        assert_eq!(take_all(&mut b, t0), 200);
        // 2000/s: 20 tokens in 10 ms.
        assert_eq!(b.wait_for(20, t0), ms(10));
        assert_eq!(b.wait_for(20, t0 + ms(4)), ms(6));
        assert_eq!(b.wait_for(20, t0 + ms(10)), Duration::ZERO);
        // More than the burst is never waited for.
        assert_eq!(b.wait_for(10_000, t0), ms(100));
        assert_eq!(take_all(&mut b, t0 + ms(10)), 20);
    }

    #[test]
    fn per_ip_counts_refuse_past_the_limit_and_forget_closed_ones() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut c = PerIpCounts::default();
        c.add(1, a, 2);
        assert!(!c.is_full(a, 2));
        c.add(2, a, 2);
        assert!(c.is_full(a, 2));
        assert!(!c.is_full(b, 2));
        c.add(3, b, 2);
        assert_eq!(c.addresses(), 2);
        c.remove(1);
        assert!(!c.is_full(a, 2));
        c.remove(2);
        c.remove(2); // twice: no underflow
        c.remove(3);
        assert_eq!(c.addresses(), 0);
    }

    #[test]
    fn per_ip_counts_hold_nothing_when_off() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let mut c = PerIpCounts::default();
        for key in 0..10 {
            c.add(key, a, 0);
        }
        assert!(!c.is_full(a, 0));
        assert_eq!(c.addresses(), 0);
    }
}
