//! Counters the reactor keeps, summarised in the log at stop and served as metrics.

use crate::conn::CloseReason;
use crate::exposition::{DurationHistogram, Exposition};
use crate::protocol::GoawayCode;
use crate::tls::FailureKind;

/// Point-in-time values the reactor measures when metrics are scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Connections held.
    pub connections: usize,
    /// Bytes queued for sending over all connections.
    pub output_bytes: usize,
    /// Timers pending.
    pub wheel_entries: usize,
    /// Connections on TLS listeners.
    pub tls_connections: usize,
    /// Connections in their handshake (accepted, no WELCOME yet).
    pub handshakes: usize,
}

/// Running totals since start.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Connections accepted (including those refused with SERVER_FULL).
    pub accepted: u64,
    /// Connections closed, all reasons.
    pub closed: u64,
    /// Closes where we sent GOAWAY, by code (index = wire code).
    pub goaway_sent: [u64; 16],
    /// Closes where the peer sent GOAWAY first.
    pub peer_goaway: u64,
    /// Closes that began with the peer's EOF.
    pub peer_eof: u64,
    /// Connections reset or failed at the socket.
    pub resets: u64,
    /// Peer EOFs that cut a frame or message short (dropped, per docs/protocol.md §3.4).
    pub truncated_at_eof: u64,
    /// Times accepting paused for lack of file descriptors.
    pub accept_pauses: u64,
    /// Times accepting waited for `max_accept_rate` (the bucket ran dry).
    pub accept_rate_waits: u64,
    /// Times accepting waited for a handshake to finish (`max_handshakes`).
    pub accept_handshake_waits: u64,
    /// TLS handshakes put off to the next turn (`TLS_HANDSHAKE_TIME_PER_TURN`).
    pub tls_handshakes_deferred: u64,
    /// Newcomers refused because the server was at `max_connections`.
    pub refused_full: u64,
    /// Newcomers refused because their address was at `max_connections_per_ip`.
    pub refused_per_ip: u64,
    /// Complete frames received.
    pub frames_in: u64,
    /// Buffers queued to send (frames, or whole encoded messages).
    pub frames_out: u64,
    /// PINGs received and answered.
    pub pings: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Loop turns.
    pub turns: u64,
    /// How long each turn's work took (from the clock read after `poll` to
    /// the end of the turn): a loop that is late shows here first.
    pub turn_time: DurationHistogram,
    /// Turns that took longer than [`SLOW_TURN`].
    pub slow_turns: u64,
    /// For each connection read because `poll` reported it ready, the time
    /// from `poll` returning to its input having been handled (read, framed,
    /// given to the app) in that turn: how long a ready socket waits behind
    /// the others of its turn. Measured per batch of
    /// [`READY_DELAY_BATCH`] connections (one clock read per batch, the
    /// batch's end time counted for each of them: an upper bound).
    pub ready_delay: DurationHistogram,
    /// Readiness events handled.
    pub events: u64,
    /// TLS handshakes and failures.
    pub tls: TlsStats,
}

/// A turn that works longer than this is counted and logged: every
/// connection waited that long for its next read.
pub const SLOW_TURN: std::time::Duration = std::time::Duration::from_millis(100);

/// Connections per clock read in [`Stats::ready_delay`]: a turn with few
/// ready sockets pays one clock read, a storm turn one per this many.
pub const READY_DELAY_BATCH: u32 = 32;

/// The hint in a refusal's GOAWAY reason (`retry-after-ms=`, docs/protocol.md
/// §3.1 and §7.8): long enough that a refused wave does not come straight
/// back, short enough that a client gets in soon after room frees up.
pub const REFUSAL_RETRY_AFTER_MS: u32 = 2_000;

/// The process's CPU time (user + system) in ms, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 10 ms: USER_HZ is 100 on Linux).
pub fn process_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10)
}

/// What TLS listeners saw.
#[derive(Debug, Default, Clone)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Sessions that failed, by [`FailureKind`] (in [`TLS_FAILURE_KINDS`] order).
    pub failures: [u64; TLS_FAILURE_KINDS.len()],
    /// Connections closed because TLS failed.
    pub failed_closes: u64,
    /// Plaintext tether clients told, in plaintext, that the port wants TLS.
    pub plaintext_refused: u64,
    /// Time from accept to the end of the TLS handshake.
    pub handshake_time: DurationHistogram,
}

/// Every TLS failure kind, in the order of [`TlsStats::failures`].
pub const TLS_FAILURE_KINDS: [FailureKind; 5] = [
    FailureKind::NotTls,
    FailureKind::Handshake,
    FailureKind::TruncatedHandshake,
    FailureKind::CorruptRecord,
    FailureKind::Internal,
];

impl TlsStats {
    /// Counts one failed session.
    pub fn record_failure(&mut self, kind: FailureKind) {
        if let Some(i) = TLS_FAILURE_KINDS.iter().position(|k| *k == kind) {
            self.failures[i] += 1;
        }
    }

    fn write_metrics(&self, tls_connections: usize, out: &mut Exposition) {
        out.gauge(
            "tether_tls_connections",
            "TLS connections held (handshaking, open or closing).",
            tls_connections as u64,
        );
        out.counter(
            "tether_tls_handshakes_total",
            "TLS handshakes completed.",
            self.handshakes,
        );
        out.labelled_counter(
            "tether_tls_failures_total",
            "TLS sessions that failed, by reason.",
            "reason",
            TLS_FAILURE_KINDS
                .iter()
                .zip(self.failures)
                .map(|(kind, n)| (kind.label(), n)),
        );
        out.counter(
            "tether_tls_plaintext_refused_total",
            "Plaintext tether clients on a TLS port, told so with GOAWAY PROTOCOL_ERROR.",
            self.plaintext_refused,
        );
        out.histogram(
            "tether_tls_handshake_seconds",
            "Time from accept to the end of the TLS handshake.",
            &self.handshake_time,
        );
    }
}

impl Stats {
    /// Counts one closed connection.
    pub fn record_close(&mut self, reason: Option<CloseReason>) {
        self.closed += 1;
        match reason {
            Some(CloseReason::Goaway(code)) => {
                // Every code has its slot (a test checks it); none is mislabelled.
                if let Some(n) = self.goaway_sent.get_mut(usize::from(code.as_u16())) {
                    *n += 1;
                }
            }
            Some(CloseReason::PeerGoaway(_)) => self.peer_goaway += 1,
            Some(CloseReason::PeerEof) => self.peer_eof += 1,
            Some(CloseReason::Reset) | None => self.resets += 1,
            Some(CloseReason::TlsFailed) => self.tls.failed_closes += 1,
        }
    }

    /// Appends these counters and the given gauges to a Prometheus exposition.
    pub fn write_metrics(&self, gauges: &Gauges, out: &mut Exposition) {
        out.gauge(
            "tether_connections_open",
            "Connections held (open or closing).",
            gauges.connections as u64,
        );
        out.counter(
            "tether_connections_accepted_total",
            "Connections accepted.",
            self.accepted,
        );
        out.gauge(
            "tether_output_queued_bytes",
            "Bytes queued for sending over all connections.",
            gauges.output_bytes as u64,
        );
        out.gauge(
            "tether_wheel_entries",
            "Timers pending in the timing wheel.",
            gauges.wheel_entries as u64,
        );
        let counters = [
            (
                "tether_frames_in_total",
                "Complete frames received.",
                self.frames_in,
            ),
            (
                "tether_frames_out_total",
                "Frames (or whole encoded messages) queued to send.",
                self.frames_out,
            ),
            (
                "tether_bytes_in_total",
                "Bytes read from sockets.",
                self.bytes_in,
            ),
            (
                "tether_bytes_out_total",
                "Bytes written to sockets.",
                self.bytes_out,
            ),
            (
                "tether_pings_total",
                "PINGs received and answered.",
                self.pings,
            ),
            (
                "tether_accept_pauses_total",
                "Times accepting paused for lack of descriptors.",
                self.accept_pauses,
            ),
            (
                "tether_truncated_at_eof_total",
                "Peer EOFs that cut a frame short.",
                self.truncated_at_eof,
            ),
            (
                "tether_loop_turns_total",
                "Event loop turns (events per turn = events / turns).",
                self.turns,
            ),
            (
                "tether_loop_events_total",
                "Readiness events handled.",
                self.events,
            ),
            (
                "tether_loop_slow_turns_total",
                "Turns whose work took longer than 100 ms (each logged, at most once a second).",
                self.slow_turns,
            ),
        ];
        for (name, help, value) in counters {
            out.counter(name, help, value);
        }
        out.histogram(
            "tether_loop_turn_seconds",
            "Time each loop turn spent working (after poll returned): how late the loop runs.",
            &self.turn_time,
        );
        if let Some(ms) = process_cpu_ms() {
            out.counter(
                "tether_process_cpu_milliseconds_total",
                "CPU time of the process, user and system, from /proc/self/stat.",
                ms,
            );
        }
        out.labelled_counter(
            "tether_connections_closed_total",
            "Connections closed, by how they ended.",
            "reason",
            [
                ("goaway_sent", self.goaway_sent.iter().sum()),
                ("peer_goaway", self.peer_goaway),
                ("peer_eof", self.peer_eof),
                ("reset", self.resets),
                ("tls_failed", self.tls.failed_closes),
            ],
        );
        out.labelled_counter(
            "tether_goaway_sent_total",
            "Connections closed by our GOAWAY, by code (evictions are IDLE_TIMEOUT, HANDSHAKE_TIMEOUT, SLOW_CONSUMER, RATE_LIMITED).",
            "code",
            GoawayCode::ALL
                .iter()
                .map(|code| (code.name(), self.goaway_sent_with(*code))),
        );
        self.write_admission_metrics(gauges, out);
        self.tls.write_metrics(gauges.tls_connections, out);
    }

    /// Refusals, accept waits, handshakes in progress and the ready delay.
    fn write_admission_metrics(&self, gauges: &Gauges, out: &mut Exposition) {
        out.labelled_counter(
            "tether_connections_refused_total",
            "Newcomers refused with SERVER_FULL (or dropped when too many refusals were closing), by limit: full = max-connections, per_ip = max-connections-per-ip.",
            "reason",
            [("full", self.refused_full), ("per_ip", self.refused_per_ip)],
        );
        out.labelled_counter(
            "tether_accept_waits_total",
            "Times accepting stopped with connections waiting in the kernel backlog, by limit: rate = max-accept-rate, handshakes = max-handshakes.",
            "reason",
            [
                ("rate", self.accept_rate_waits),
                ("handshakes", self.accept_handshake_waits),
            ],
        );
        out.counter(
            "tether_tls_handshakes_deferred_total",
            "TLS handshake reads put off to the next turn: the turn had spent its 2 ms on handshakes.",
            self.tls_handshakes_deferred,
        );
        out.gauge(
            "tether_handshakes_in_progress",
            "Connections accepted and not yet welcomed (TLS handshake or HELLO pending).",
            gauges.handshakes as u64,
        );
        out.histogram(
            "tether_loop_ready_delay_seconds",
            "From poll returning a connection's readiness to its input being handled in that turn (per batch of 32 connections, an upper bound).",
            &self.ready_delay,
        );
    }

    /// Closes where we sent GOAWAY `code` (0 for a code past the table, which
    /// the test below keeps from happening).
    pub fn goaway_sent_with(&self, code: GoawayCode) -> u64 {
        self.goaway_sent
            .get(usize::from(code.as_u16()))
            .copied()
            .unwrap_or(0)
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let sent: Vec<String> = GoawayCode::ALL
            .iter()
            .filter(|c| self.goaway_sent_with(**c) > 0)
            .map(|c| format!("{c}={}", self.goaway_sent_with(*c)))
            .collect();
        format!(
            "accepted={} closed={} peer_eof={} peer_goaway={} resets={} truncated={} goaway_sent=[{}] accept_pauses={} frames_in={} frames_out={} pings={} bytes_in={} bytes_out={} turns={} events={}",
            self.accepted,
            self.closed,
            self.peer_eof,
            self.peer_goaway,
            self.resets,
            self.truncated_at_eof,
            sent.join(" "),
            self.accept_pauses,
            self.frames_in,
            self.frames_out,
            self.pings,
            self.bytes_in,
            self.bytes_out,
            self.turns,
            self.events
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_cpu_time_is_read_from_proc() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(process_cpu_ms().is_some_and(|ms| ms > 0));
    }

    #[test]
    fn every_goaway_code_has_its_own_counter() {
        let mut stats = Stats::default();
        for code in GoawayCode::ALL {
            assert!(
                usize::from(code.as_u16()) < stats.goaway_sent.len(),
                "{code}"
            );
            stats.record_close(Some(CloseReason::Goaway(code)));
        }
        for code in GoawayCode::ALL {
            assert_eq!(stats.goaway_sent_with(code), 1, "{code}");
        }
    }
}
