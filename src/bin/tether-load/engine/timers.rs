//! Deadlines: handshake and close timeouts, heartbeats and the liveness
//! check. The timeouts are FIFOs of `(due, token)`: every entry of one queue
//! is pushed with the same delay, so it is already in due order. Heartbeats
//! are a heap (first heartbeats are spread over the interval). Stale entries
//! are skipped by their token's generation; a heartbeat entry is re-armed
//! lazily from `last_tx`.

use super::*;

impl Engine {
    pub(super) fn fire_deadlines(&mut self) {
        while let Some(&(due, token)) = self.handshake_deadlines.front() {
            if due > self.now_ns {
                break;
            }
            self.handshake_deadlines.pop_front();
            if let Some(key) = self.live(token) {
                if self.conns[key].is_connecting() {
                    self.fail(key, ErrorKind::Timeout);
                }
            }
        }
        while let Some(&(due, token)) = self.close_deadlines.front() {
            if due > self.now_ns {
                break;
            }
            self.close_deadlines.pop_front();
            if let Some(key) = self.live(token) {
                if self.conns[key].phase == Phase::Closing {
                    self.fail(key, ErrorKind::Timeout);
                }
            }
        }
    }

    pub(super) fn fire_heartbeats(&mut self) {
        while let Some(&Reverse((due, token))) = self.heartbeats.peek() {
            if due > self.now_ns {
                break;
            }
            self.heartbeats.pop();
            let token = Token(token);
            let Some(key) = self.live(token) else {
                continue;
            };
            let c = &self.conns[key];
            if c.phase != Phase::Open {
                continue;
            }
            let hb = c.heartbeat_ns;
            let miss_ns = if self.args.mode == Mode::Storm {
                (MISS * hb).max(STORM_MISS_NS)
            } else {
                MISS * hb
            };
            if self.now_ns.saturating_sub(c.last_rx_ns) > miss_ns {
                log::debug!("{key}: nothing received for {miss_ns} ns");
                self.fail(key, ErrorKind::Timeout);
                continue;
            }
            // An idle connection's first PING goes at its spread-out time,
            // even though the HELLO went out less than an interval ago.
            let timed = self.args.mode == Mode::Idle
                || (self.args.mode == Mode::Storm && c.role == Role::Worker);
            let first_idle_ping = timed && c.sent == 0;
            // Storm's established clients PING at a fixed rate on their own
            // phase: re-arming from the (late) send time after a stall would
            // bunch them into bursts that skew the round trips after the storm.
            let fixed_rate = self.args.mode == Mode::Storm && c.role == Role::Worker;
            if fixed_rate
                || first_idle_ping
                || self.now_ns.saturating_sub(c.last_tx_ns) + hb / 100 >= hb
            {
                self.work_heartbeat(key);
                self.flush(key);
            }
            if let Some(c) = self.conns.get(key).filter(|c| c.phase == Phase::Open) {
                let next = if fixed_rate {
                    next_on_phase(due, hb, self.now_ns)
                } else {
                    (c.last_tx_ns + hb).max(self.now_ns + hb / 100)
                };
                self.heartbeats.push(Reverse((next, token.0)));
            }
        }
    }
}

/// The first beat after `now_ns` of a fixed-rate heartbeat that was due at
/// `due_ns` every `interval_ns`: missed beats are skipped, the phase is kept.
fn next_on_phase(due_ns: u64, interval_ns: u64, now_ns: u64) -> u64 {
    let interval = interval_ns.max(1);
    let missed = now_ns.saturating_sub(due_ns) / interval;
    due_ns + (missed + 1) * interval
}

#[cfg(test)]
mod tests {
    use super::next_on_phase;

    #[test]
    fn a_fixed_rate_heartbeat_keeps_its_phase_after_a_stall() {
        // On time: the next beat one interval on.
        assert_eq!(next_on_phase(1_000, 100, 1_000), 1_100);
        // 30 late: still due + interval (not now + interval).
        assert_eq!(next_on_phase(1_000, 100, 1_030), 1_100);
        // A 250 stall: two beats skipped, the phase kept.
        assert_eq!(next_on_phase(1_000, 100, 1_250), 1_300);
        // Exactly on a later beat: the one after it.
        assert_eq!(next_on_phase(1_000, 100, 1_200), 1_300);
        assert_eq!(next_on_phase(5, 0, 5), 6, "a zero interval still moves on");
    }
}
