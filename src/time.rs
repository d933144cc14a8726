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

/// A length of time in whole ticks, rounded *up* from milliseconds, so a
/// deadline made from it with [`Span::deadline_from`] is never early. Every
/// configured duration is turned into a `Span` once, when the limits are
/// built; the hot paths only add ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Tick);

impl Span {
    /// `ms` milliseconds in ticks of `tick_ms` (rounded up; a zero tick counts as 1 ms).
    pub fn from_ms(ms: u64, tick_ms: u32) -> Span {
        Span(ms.div_ceil(u64::from(tick_ms.max(1))))
    }

    /// A span of exactly `ticks` ticks.
    pub const fn from_ticks(ticks: Tick) -> Span {
        Span(ticks)
    }

    /// The number of ticks.
    pub const fn ticks(self) -> Tick {
        self.0
    }

    /// The first tick at which this span has surely passed since `now`, the
    /// one way every deadline in tether is made. `now` is the tick the clock
    /// is in (rounded down), so up to one tick may already have gone by: the
    /// `+ 1` makes the deadline never early, at most one tick late.
    pub fn deadline_from(self, now: Tick) -> Tick {
        now.saturating_add(self.0).saturating_add(1)
    }
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
    fn spans_round_up_and_deadlines_are_never_early() {
        assert_eq!(Span::from_ms(0, 100).ticks(), 0);
        assert_eq!(Span::from_ms(1, 100).ticks(), 1);
        assert_eq!(Span::from_ms(100, 100).ticks(), 1);
        assert_eq!(Span::from_ms(101, 100).ticks(), 2);
        assert_eq!(Span::from_ms(5, 0).ticks(), 5);
        // Asked at any moment within tick 7 (700..800 ms), a 100 ms deadline
        // fires at tick 9 (900 ms): at least 100 ms later, at most one tick more.
        let clock = TickClock::new(Instant::now(), Duration::from_millis(100));
        let span = Span::from_ms(100, 100);
        for ms in [700, 750, 799] {
            let asked = clock.instant_of(0) + Duration::from_millis(ms);
            let fires = clock.instant_of(span.deadline_from(clock.tick_at(asked)));
            assert!(
                fires >= asked + Duration::from_millis(100),
                "asked at {ms} ms"
            );
            assert!(
                fires <= asked + Duration::from_millis(300),
                "asked at {ms} ms"
            );
        }
        assert_eq!(Span::from_ticks(3).deadline_from(Tick::MAX), Tick::MAX);
    }
}
