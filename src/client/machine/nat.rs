//! The adaptive heartbeat against a simulated NAT, on a virtual clock.
//!
//! The NAT model: a mapping is created by a connection's first packet; if the
//! gap between two consecutive packets through it (either direction) exceeds
//! `timeout`, the mapping is gone and every later packet is blackholed. The
//! server is played by hand: HELLO gets a WELCOME, PING gets its PONG, with
//! no network delay (so a PING at interval `I` makes a gap of exactly `I`).

use super::tests::{config, secs, welcome, Harness};
use super::*;
use crate::client::AdaptiveConfig;

/// The negotiated heartbeat (the adaptive interval's upper bound), in seconds.
const NEGOTIATED_S: u64 = 120;
const STEP: Duration = Duration::from_secs(5);

struct Nat {
    timeout: Duration,
    last_packet: Option<Instant>,
    blackholed: bool,
}

impl Nat {
    /// Lets a packet through at `now` or drops it (and everything after it).
    fn pass(&mut self, now: Instant) -> bool {
        if self.blackholed {
            return false;
        }
        if let Some(last) = self.last_packet {
            if now.saturating_duration_since(last) > self.timeout {
                self.blackholed = true;
                return false;
            }
        }
        self.last_packet = Some(now);
        true
    }
}

struct Sim {
    h: Harness,
    nat: Nat,
    /// (virtual time, interval) at every PING the client sent.
    pings: Vec<(Duration, Duration)>,
    /// Virtual times of deaths by heartbeat loss.
    failures: Vec<Duration>,
}

impl Sim {
    fn new(nat_timeout: Duration) -> Sim {
        let mut cfg = config();
        cfg.heartbeat_ms = (NEGOTIATED_S * 1000) as u32;
        cfg.adaptive = Some(AdaptiveConfig {
            floor: secs(10),
            step: STEP,
            probe_after: 3,
            reprobe_after: secs(600),
        });
        Sim {
            h: Harness::new(cfg),
            nat: Nat {
                timeout: nat_timeout,
                last_packet: None,
                blackholed: false,
            },
            pings: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Runs the client and the fake server for `duration` of virtual time.
    fn run_for(&mut self, duration: Duration) {
        let end = self.h.now + duration;
        while self.h.now < end {
            if self.h.m.wants_connect() {
                // A new TCP connection: a new mapping.
                self.nat.last_packet = None;
                self.nat.blackholed = false;
                self.h.m.handle_connected(self.h.now);
            }
            self.exchange();
            for event in self.h.events() {
                if let ClientEvent::Disconnected {
                    reason: DisconnectReason::DeadPeer { .. },
                } = event
                {
                    self.failures.push(self.h.at());
                }
            }
            self.h.jump();
        }
    }

    /// Carries what the client sent through the NAT and the server's answers back.
    fn exchange(&mut self) {
        let now = self.h.now;
        for frame in self.h.sent() {
            if frame.kind == FrameType::Ping {
                self.pings
                    .push((self.h.at(), self.h.m.heartbeat_interval()));
            }
            if !self.nat.pass(now) {
                continue;
            }
            let reply = match frame.kind {
                FrameType::Hello => {
                    let resumed = Hello::decode(&frame.payload).is_ok_and(|h| h.resume.is_some());
                    welcome((NEGOTIATED_S * 1000) as u32, 1024, 1 << 16, resumed)
                }
                FrameType::Ping => encode_frame(FrameType::Pong, false, &frame.payload),
                FrameType::Welcome | FrameType::Pong | FrameType::Data | FrameType::Goaway => {
                    continue
                }
            };
            if self.nat.pass(now) {
                self.h.deliver(&reply);
            }
        }
    }

    /// The interval that held the longest in virtual time during the last `window`.
    fn dominant_interval(&self, window: Duration) -> Duration {
        let from = self.h.at().saturating_sub(window);
        let mut time_at: Vec<(Duration, Duration)> = Vec::new();
        for pair in self.pings.windows(2) {
            let (t, interval) = pair[0];
            if t < from {
                continue;
            }
            let held = pair[1].0 - t;
            match time_at.iter_mut().find(|(i, _)| *i == interval) {
                Some((_, total)) => *total += held,
                None => time_at.push((interval, held)),
            }
        }
        time_at
            .into_iter()
            .max_by_key(|&(_, total)| total)
            .map(|(interval, _)| interval)
            .unwrap_or_default()
    }

    fn failures_since(&self, window: Duration) -> usize {
        let from = self.h.at().saturating_sub(window);
        self.failures.iter().filter(|&&t| t >= from).count()
    }

    fn max_interval_since(&self, window: Duration) -> Duration {
        let from = self.h.at().saturating_sub(window);
        self.pings
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|&(_, i)| i)
            .max()
            .unwrap_or_default()
    }
}

/// Converged: the interval used most is within one step below `nat_timeout`,
/// nothing above `nat_timeout + step` was tried, and failures are rare.
fn assert_converged(sim: &Sim, nat_timeout: Duration) {
    let hour = secs(3600);
    let settled = sim.dominant_interval(hour);
    assert!(
        settled <= nat_timeout && settled + STEP > nat_timeout,
        "settled at {settled:?} for a NAT timeout of {nat_timeout:?}"
    );
    assert!(sim.max_interval_since(hour) <= nat_timeout + STEP);
    assert!(
        sim.failures_since(hour) <= 2,
        "{} failures in the last hour",
        sim.failures_since(hour)
    );
}

#[test]
fn converges_just_under_the_nat_timeout() {
    let mut sim = Sim::new(secs(47));
    sim.run_for(secs(3 * 3600));
    assert_converged(&sim, secs(47));
    assert!(sim.failures.len() < 20, "{} failures", sim.failures.len());
}

#[test]
fn exact_grid_timeout_is_usable() {
    // A gap of exactly the timeout still passes, so 45 s itself is fine.
    let mut sim = Sim::new(secs(45));
    sim.run_for(secs(3 * 3600));
    assert_eq!(sim.dominant_interval(secs(3600)), secs(45));
}

#[test]
fn reconverges_when_the_nat_timeout_shrinks_then_grows() {
    let mut sim = Sim::new(secs(47));
    sim.run_for(secs(3 * 3600));
    assert_converged(&sim, secs(47));

    sim.nat.timeout = secs(28);
    sim.run_for(secs(3 * 3600));
    assert_converged(&sim, secs(28));

    sim.nat.timeout = secs(63);
    sim.run_for(secs(4 * 3600));
    assert_converged(&sim, secs(63));
}

#[test]
fn without_a_nat_problem_the_interval_reaches_the_negotiated_one() {
    let mut sim = Sim::new(secs(3600));
    sim.run_for(secs(2 * 3600));
    assert_eq!(sim.dominant_interval(secs(3600)), secs(NEGOTIATED_S));
    assert!(sim.failures.is_empty());
    assert!(sim.h.m.is_open());
}
