//! Counters the reactor keeps, summarised in the log at stop (and, later, metrics).

use crate::conn::CloseReason;
use crate::protocol::GoawayCode;

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
    /// Peer EOFs that cut a frame or message short (dropped, per PROTOCOL.md §3.4).
    pub truncated_at_eof: u64,
    /// Times accepting paused for lack of file descriptors.
    pub accept_pauses: u64,
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
    /// Readiness events handled.
    pub events: u64,
}

impl Stats {
    /// Counts one closed connection.
    pub fn record_close(&mut self, reason: Option<CloseReason>) {
        self.closed += 1;
        match reason {
            Some(CloseReason::Goaway(code)) => {
                let i = (code.as_u16() as usize).min(self.goaway_sent.len() - 1);
                self.goaway_sent[i] += 1;
            }
            Some(CloseReason::PeerGoaway(_)) => self.peer_goaway += 1,
            Some(CloseReason::PeerEof) => self.peer_eof += 1,
            Some(CloseReason::Reset) | None => self.resets += 1,
        }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let sent: Vec<String> = GoawayCode::ALL
            .iter()
            .filter(|c| self.goaway_sent[c.as_u16() as usize] > 0)
            .map(|c| format!("{c}={}", self.goaway_sent[c.as_u16() as usize]))
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
