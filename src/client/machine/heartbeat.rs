//! Heartbeats: when the next PING is due, when the peer counts as dead,
//! sending a PING (scheduled or asked for) and what its PONG measured
//! (docs/protocol.md §4.2).

use std::time::{Duration, Instant};

use super::{later, ClientMachine, State};
use crate::protocol::{encode_frame, FrameType};

impl ClientMachine {
    /// Sends a PING now, outside the heartbeat schedule, to measure the round
    /// trip: [`ClientMachine::rtt`] is updated when its PONG arrives (see
    /// [`ClientMachine::pongs`]). Returns its sequence number, or `None`
    /// when no connection is open.
    pub fn ping(&mut self, now: Instant) -> Option<u64> {
        if self.state != State::Open {
            return None;
        }
        self.send_ping(now);
        Some(self.ping_seq)
    }

    /// The round-trip time of the last answered PING.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The sequence number of the latest PONG that answered one of our PINGs
    /// (0 before any): a PING of sequence `n` has been answered, or
    /// overtaken by a later answered one, once this is at least `n`.
    pub fn pongs(&self) -> u64 {
        self.pong_seq
    }

    /// A PING is due after an interval of not sending (the server's liveness),
    /// and also after `miss − 1` intervals of not receiving even while we send:
    /// a server that only consumes would otherwise look dead to us, so we ask
    /// for a PONG before declaring it so.
    pub(super) fn ping_due(&self) -> Instant {
        let interval = self.heartbeat_interval();
        let after_tx = later(self.link.last_tx, interval);
        let last_ping = self.link.last_ping.map_or(self.link.last_rx, |(_, t)| t);
        let quiet_rx = self.link.last_rx.max(last_ping);
        let rx_wait = interval
            .checked_mul(self.config.miss.saturating_sub(1).max(1))
            .unwrap_or(Duration::MAX);
        after_tx.min(later(quiet_rx, rx_wait))
    }

    pub(super) fn dead_deadline(&self) -> Instant {
        let silence = self
            .heartbeat_interval()
            .checked_mul(self.config.miss.max(1))
            .unwrap_or(Duration::MAX);
        later(self.link.last_rx, silence)
    }

    pub(super) fn send_ping(&mut self, now: Instant) {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let seq = self.ping_seq;
        let idle = now.saturating_duration_since(self.link.last_tx) >= self.heartbeat_interval();
        if idle && self.link.probe.is_none() {
            self.link.probe = Some(seq);
        }
        self.transmit
            .push_back(encode_frame(FrameType::Ping, false, &seq.to_be_bytes()));
        self.link.last_ping = Some((seq, now));
        self.link.last_tx = now;
    }
}
