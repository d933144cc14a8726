//! Time as the pure layers see it: whole ticks since a fixed origin.
//!
//! Only the reactor reads the real clock. It converts each `Instant` to a
//! [`Tick`] with a [`TickClock`] and passes the number down, so the wheel, the
//! connection state machine and the client can be driven by a fake clock in
//! tests. Deadlines round *up* to the next tick, so a timer never fires early.

use std::time::{Duration, Instant};

/// A count of ticks since a clock's origin; the unit of time below the reactor.
pub type Tick = u64;

/// Converts between wall-clock `Instant`s and [`Tick`]s of a fixed length.
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    origin: Instant,
    tick: Duration,
}

impl TickClock {
    /// A clock whose tick 0 is `origin` and whose ticks last `tick` (at least 1 ms).
    pub fn new(origin: Instant, tick: Duration) -> Self {
        let tick = tick.max(Duration::from_millis(1));
        TickClock { origin, tick }
    }

    /// The length of one tick.
    pub fn tick_duration(&self) -> Duration {
        self.tick
    }

    /// The tick that `now` falls in (rounded down): the wheel's current time.
    pub fn tick_at(&self, now: Instant) -> Tick {
        let elapsed = now.saturating_duration_since(self.origin);
        (elapsed.as_nanos() / self.tick.as_nanos()) as Tick
    }

    /// The instant at which tick `t` begins.
    pub fn instant_of(&self, t: Tick) -> Instant {
        let nanos = (t as u128).saturating_mul(self.tick.as_nanos());
        self.origin + Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }
}

/// Converts a millisecond duration to a whole number of ticks, rounding up so a
/// deadline expressed in ticks is never earlier than the one asked for.
pub fn ms_to_ticks_ceil(ms: u64, tick_ms: u64) -> Tick {
    let tick_ms = tick_ms.max(1);
    ms.div_ceil(tick_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_at_rounds_down_and_instant_of_inverts() {
        let origin = Instant::now();
        let clock = TickClock::new(origin, Duration::from_millis(100));
        assert_eq!(clock.tick_at(origin), 0);
        assert_eq!(clock.tick_at(origin + Duration::from_millis(99)), 0);
        assert_eq!(clock.tick_at(origin + Duration::from_millis(100)), 1);
        assert_eq!(clock.instant_of(3), origin + Duration::from_millis(300));
    }

    #[test]
    fn ms_to_ticks_rounds_up() {
        assert_eq!(ms_to_ticks_ceil(0, 100), 0);
        assert_eq!(ms_to_ticks_ceil(1, 100), 1);
        assert_eq!(ms_to_ticks_ceil(100, 100), 1);
        assert_eq!(ms_to_ticks_ceil(101, 100), 2);
    }
}
