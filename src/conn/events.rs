//! What a connection reports: its state, the events the application acts
//! on, how it ended, and the frames it counted.

use bytes::Bytes;
use std::fmt;

use crate::protocol::{Goaway, GoawayCode, Hello};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Accepted; waiting for HELLO.
    Handshake,
    /// WELCOME sent; frames flow both ways.
    Open,
    /// We are closing (GOAWAY queued or the peer's GOAWAY received): flush,
    /// SHUT_WR, discard input until the peer's EOF or linger runs out.
    Closing,
    /// The peer sent EOF: flush the replies already caused, SHUT_WR, close.
    Draining,
    /// Done; the reactor reclaims the slot at the end of the turn.
    Closed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Handshake => "handshake",
            State::Open => "open",
            State::Closing => "closing",
            State::Draining => "draining",
            State::Closed => "closed",
        })
    }
}

/// Something the application must act on, returned by [`Conn::handle_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// A valid, authorized HELLO: answer with [`Conn::accept`].
    Hello(Hello),
    /// A whole reassembled DATA message.
    Message(Bytes),
    /// The peer said GOAWAY; the connection is now closing.
    PeerGoaway(Goaway),
}

/// How a connection ended, for the application and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// We sent GOAWAY with this code.
    Goaway(GoawayCode),
    /// The peer sent GOAWAY with this code.
    PeerGoaway(GoawayCode),
    /// The peer closed its side (EOF) without a GOAWAY.
    PeerEof,
    /// The connection was reset or failed at the socket.
    Reset,
    /// The TLS layer failed (not TLS, a refused handshake, a corrupt
    /// record); the connection closed without a GOAWAY, which could not be
    /// sent securely.
    TlsFailed,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Goaway(c) => write!(f, "sent GOAWAY {c}"),
            CloseReason::PeerGoaway(c) => write!(f, "peer GOAWAY {c}"),
            CloseReason::PeerEof => f.write_str("peer EOF"),
            CloseReason::Reset => f.write_str("reset"),
            CloseReason::TlsFailed => f.write_str("TLS failed"),
        }
    }
}

/// Frames a connection received and sent, collected by the reactor for its counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    /// Complete frames received.
    pub frames_in: u32,
    /// Buffers queued to send (a frame, or a whole encoded message).
    pub frames_out: u32,
    /// PINGs received (and so PONGs sent).
    pub pings_in: u32,
}
