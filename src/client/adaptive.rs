//! Adaptive heartbeat (docs/protocol.md §4): find the longest heartbeat interval
//! the path tolerates, so a client behind a NAT with a short idle timeout
//! stays connected while one behind a patient path pings rarely.
//!
//! The interval lives on a grid `floor, floor + step, floor + 2·step, …`,
//! capped by the negotiated `heartbeat_ms` (the promise made to the server is
//! never broken). The algorithm:
//!
//! - start at `floor`, assumed safe;
//! - **probe**: after `probe_after` consecutive successful heartbeats at the
//!   current interval (a PING sent after a full interval of silence came
//!   back), that interval is *known good*; step up by `step`;
//! - **settle**: a connection that dies by heartbeat loss at interval `I` makes
//!   `I` the *ceiling*; the interval never goes above `ceiling − step`. If `I`
//!   was above the last known-good interval, go back to that one (it worked
//!   moments ago): one failure per discovery;
//! - **fall back**: a failure at or below the known-good interval means the
//!   path changed: forget what was known, restart at `floor` and probe up to
//!   under the new ceiling. Restarting low costs a few extra PINGs; stepping
//!   down one step per failure could cost a dead connection per step;
//! - **re-probe**: settled with no failure for `reprobe_after`, try one step
//!   above the ceiling. If it holds, the ceiling was stale (the path's timeout
//!   grew, or the failure was a blip): drop it and probe on. If it fails, the
//!   quiet period doubles (up to 16×), so a stable path is not poked often.
//!
//! It is pure: time comes in as arguments and nothing here touches a socket.

use std::time::{Duration, Instant};

/// The re-probe quiet period grows at most to this multiple of `reprobe_after`.
const MAX_REPROBE_BACKOFF: u32 = 16;

/// The knobs of [`AdaptiveHeartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// The starting interval, assumed safe on any path (clamped to the negotiated interval).
    pub floor: Duration,
    /// How much one probe raises the interval; also the precision of the result.
    pub step: Duration,
    /// Successful heartbeats in a row at one interval before it counts as good and the next is probed.
    pub probe_after: u32,
    /// Quiet time (no failure) while settled before trying one step above the ceiling.
    pub reprobe_after: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            floor: Duration::from_secs(15),
            step: Duration::from_secs(15),
            probe_after: 3,
            reprobe_after: Duration::from_secs(30 * 60),
        }
    }
}

/// The adaptive heartbeat state: it outlives connections, since what it learns
/// is about the path, not about one socket.
#[derive(Debug, Clone)]
pub struct AdaptiveHeartbeat {
    config: AdaptiveConfig,
    /// The negotiated `heartbeat_ms`: never exceeded.
    max: Duration,
    interval: Duration,
    /// The smallest interval that failed and has not been re-probed since.
    ceiling: Option<Duration>,
    /// The longest interval that recently got `probe_after` successes in a row.
    last_good: Option<Duration>,
    /// Successful heartbeats in a row at `interval`.
    successes: u32,
    /// Since when there has been no failure and no re-probe.
    quiet_since: Option<Instant>,
    /// The current quiet period before a re-probe (doubles after a failed one).
    reprobe_wait: Duration,
    /// The current interval is a re-probe above the old ceiling.
    reprobing: bool,
}

impl AdaptiveHeartbeat {
    /// A fresh state starting at `floor`; `max` is the best guess of the
    /// negotiated interval until [`AdaptiveHeartbeat::set_max`] is called.
    pub fn new(config: AdaptiveConfig, max: Duration) -> Self {
        let mut config = config;
        config.step = config.step.max(Duration::from_millis(1));
        config.probe_after = config.probe_after.max(1);
        let mut a = AdaptiveHeartbeat {
            interval: config.floor,
            reprobe_wait: config.reprobe_after,
            config,
            max,
            ceiling: None,
            last_good: None,
            successes: 0,
            quiet_since: None,
            reprobing: false,
        };
        a.interval = a.interval.clamp(a.floor(), a.limit());
        a
    }

    /// The interval to use now: send a PING after this long without sending.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The smallest interval known to fail, if any.
    pub fn ceiling(&self) -> Option<Duration> {
        self.ceiling
    }

    /// The configuration in use.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The negotiated interval from a new WELCOME: the upper bound from now on.
    pub fn set_max(&mut self, max: Duration) {
        self.max = max;
        self.interval = self.interval.clamp(self.floor(), self.limit());
    }

    /// The floor, never above the negotiated interval.
    fn floor(&self) -> Duration {
        self.config.floor.min(self.max)
    }

    /// The highest interval allowed now: the negotiated one, and one step under the ceiling.
    fn limit(&self) -> Duration {
        let under_ceiling = self
            .ceiling
            .map_or(self.max, |c| c.saturating_sub(self.config.step));
        under_ceiling.min(self.max).max(self.floor())
    }

    /// A heartbeat at the current interval succeeded: a PING sent after a full
    /// interval of silence was answered. Returns the new interval when it changed.
    pub fn on_success(&mut self, now: Instant) -> Option<Duration> {
        let quiet_since = *self.quiet_since.get_or_insert(now);
        self.successes = self.successes.saturating_add(1);
        if self.successes < self.config.probe_after {
            return None;
        }
        self.last_good = Some(self.interval);
        if self.reprobing {
            // One step above the old ceiling held: the ceiling was stale.
            self.reprobing = false;
            self.ceiling = None;
            self.reprobe_wait = self.config.reprobe_after;
        }
        if self.interval >= self.limit() {
            // Settled. After a quiet spell, dare one step above the ceiling.
            let ceiling = self.ceiling?;
            if self.interval >= self.max
                || now.saturating_duration_since(quiet_since) < self.reprobe_wait
            {
                return None;
            }
            self.quiet_since = Some(now);
            self.reprobing = true;
            self.ceiling = Some(ceiling + self.config.step);
        }
        let next = (self.interval + self.config.step).min(self.limit());
        if next <= self.interval {
            return None;
        }
        self.interval = next;
        self.successes = 0;
        Some(next)
    }

    /// The connection died by heartbeat loss while using `interval`: that
    /// interval becomes the ceiling; go back to the last good interval, or to
    /// the floor when the good one itself failed. Returns the new interval when it changed.
    pub fn on_failure(&mut self, interval: Duration, now: Instant) -> Option<Duration> {
        let before = self.interval;
        self.successes = 0;
        self.quiet_since = Some(now);
        if self.reprobing {
            self.reprobing = false;
            let longest = self
                .config
                .reprobe_after
                .saturating_mul(MAX_REPROBE_BACKOFF);
            self.reprobe_wait = self.reprobe_wait.saturating_mul(2).min(longest);
        }
        // A failure at the floor says the path is broken, not that the floor is
        // too long: learn nothing from it.
        if interval > self.floor() {
            self.ceiling = Some(self.ceiling.map_or(interval, |c| c.min(interval)));
        }
        match self.last_good {
            Some(good) if good < interval => self.interval = good,
            Some(_) | None => {
                // The path changed under us: start over from the floor.
                self.last_good = None;
                self.reprobe_wait = self.config.reprobe_after;
                self.interval = self.floor();
            }
        }
        self.interval = self.interval.clamp(self.floor(), self.limit());
        (self.interval != before).then_some(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn config() -> AdaptiveConfig {
        AdaptiveConfig {
            floor: secs(10),
            step: secs(5),
            probe_after: 3,
            reprobe_after: secs(600),
        }
    }

    #[test]
    fn starts_at_the_floor_and_climbs_after_k_successes() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(30));
        assert_eq!(a.interval(), secs(10));
        assert_eq!(a.on_success(t0), None);
        assert_eq!(a.on_success(t0), None);
        assert_eq!(a.on_success(t0), Some(secs(15)));
        for _ in 0..20 {
            let _ = a.on_success(t0);
        }
        assert_eq!(a.interval(), secs(30), "capped at the negotiated interval");
    }

    #[test]
    fn floor_above_max_is_clamped() {
        let a = AdaptiveHeartbeat::new(config(), secs(4));
        assert_eq!(a.interval(), secs(4));
    }

    #[test]
    fn failure_sets_ceiling_and_settles_one_step_below() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(60));
        assert_eq!(a.on_failure(secs(25), t0), None, "already at the floor");
        assert_eq!(a.ceiling(), Some(secs(25)));
        for _ in 0..30 {
            let _ = a.on_success(t0);
        }
        assert_eq!(a.interval(), secs(20));
    }

    #[test]
    fn failure_above_the_last_good_interval_goes_back_to_it() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(60));
        for _ in 0..6 {
            let _ = a.on_success(t0);
        }
        assert_eq!(a.interval(), secs(20));
        assert_eq!(a.on_failure(secs(20), t0), Some(secs(15)));
        assert_eq!(a.ceiling(), Some(secs(20)));
        // The good interval itself failing means the path changed: back to the floor.
        assert_eq!(a.on_failure(secs(15), t0), Some(secs(10)));
        assert_eq!(a.ceiling(), Some(secs(15)));
    }

    #[test]
    fn successful_reprobe_drops_the_stale_ceiling() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(60));
        let _ = a.on_failure(secs(25), t0);
        for _ in 0..10 {
            let _ = a.on_success(t0);
        }
        assert_eq!(a.interval(), secs(20));
        let later = t0 + secs(601);
        for _ in 0..3 {
            let _ = a.on_success(later);
        }
        assert_eq!(
            a.ceiling(),
            Some(secs(30)),
            "one step above the old ceiling"
        );
        assert_eq!(a.interval(), secs(25));
        for _ in 0..3 {
            let _ = a.on_success(later);
        }
        assert_eq!(a.ceiling(), None, "it held: the ceiling was stale");
        assert_eq!(a.interval(), secs(30));
    }

    #[test]
    fn failed_reprobe_doubles_the_quiet_period() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(60));
        let _ = a.on_failure(secs(25), t0);
        for _ in 0..10 {
            let _ = a.on_success(t0);
        }
        let t1 = t0 + secs(600);
        for _ in 0..3 {
            let _ = a.on_success(t1);
        }
        assert_eq!(a.interval(), secs(25));
        assert_eq!(a.on_failure(secs(25), t1), Some(secs(20)));
        assert_eq!(a.ceiling(), Some(secs(25)));
        // 600 s of quiet is no longer enough; 1200 s is.
        for _ in 0..3 {
            let _ = a.on_success(t1 + secs(600));
        }
        assert_eq!(a.interval(), secs(20));
        for _ in 0..3 {
            let _ = a.on_success(t1 + secs(1200));
        }
        assert_eq!(a.interval(), secs(25));
    }

    #[test]
    fn reprobe_never_passes_the_max() {
        let t0 = Instant::now();
        let mut a = AdaptiveHeartbeat::new(config(), secs(20));
        let _ = a.on_failure(secs(20), t0);
        for _ in 0..10 {
            let _ = a.on_success(t0);
        }
        assert_eq!(a.interval(), secs(15));
        for _ in 0..6 {
            let _ = a.on_success(t0 + secs(700));
        }
        assert_eq!(a.ceiling(), None);
        assert_eq!(a.interval(), secs(20));
        for _ in 0..6 {
            let _ = a.on_success(t0 + secs(7000));
        }
        assert_eq!(a.interval(), secs(20));
    }

    #[test]
    fn failure_at_the_floor_does_not_set_a_ceiling() {
        let mut a = AdaptiveHeartbeat::new(config(), secs(60));
        let _ = a.on_failure(secs(10), Instant::now());
        assert_eq!(a.ceiling(), None);
    }
}
