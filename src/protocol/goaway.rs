//! GOAWAY: the close frame's payload and its codes (docs/protocol.md §2.4).

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::frame::{self, FrameType, Status};
use super::ProtocolError;

/// The longest GOAWAY reason, in bytes: a bound so a close cannot carry an essay.
pub const MAX_REASON_LEN: usize = 256;

/// Why a connection is being closed; the first two bytes of a GOAWAY payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoawayCode {
    /// Orderly close.
    Normal,
    /// Bad magic, unknown type, bad layout, frame before HELLO, second HELLO, bad application message.
    ProtocolError,
    /// CRC mismatch.
    BadChecksum,
    /// A frame's length is above the receiver's `max_frame`.
    FrameTooLarge,
    /// A reassembled message is above `max_message`.
    MessageTooLarge,
    /// The HELLO version is not 1.
    UnsupportedVersion,
    /// The auth token is missing or wrong.
    Unauthorized,
    /// No valid HELLO within the handshake timeout.
    HandshakeTimeout,
    /// No frame received within the idle timeout.
    IdleTimeout,
    /// The connection's unsent output passed its limit.
    SlowConsumer,
    /// The server is at its connection limit.
    ServerFull,
    /// The server is stopping.
    ShuttingDown,
    /// The peer sent frames faster than its allowance.
    RateLimited,
    /// A newer connection resumed this connection's session.
    SessionTakenOver,
    /// v2: the server cannot take this work now; the reason carries a
    /// `retry-after-ms=` hint the client waits for (docs/protocol.md §7.8).
    ServerBusy,
    /// A code this implementation does not know (kept so it can be reported).
    Unknown(u16),
}

impl GoawayCode {
    /// Every code this implementation knows, in wire order.
    pub const ALL: [GoawayCode; 15] = [
        GoawayCode::Normal,
        GoawayCode::ProtocolError,
        GoawayCode::BadChecksum,
        GoawayCode::FrameTooLarge,
        GoawayCode::MessageTooLarge,
        GoawayCode::UnsupportedVersion,
        GoawayCode::Unauthorized,
        GoawayCode::HandshakeTimeout,
        GoawayCode::IdleTimeout,
        GoawayCode::SlowConsumer,
        GoawayCode::ServerFull,
        GoawayCode::ShuttingDown,
        GoawayCode::RateLimited,
        GoawayCode::SessionTakenOver,
        GoawayCode::ServerBusy,
    ];

    /// The code's number on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            GoawayCode::Unknown(n) => n,
            known => GoawayCode::ALL
                .iter()
                .position(|c| *c == known)
                .unwrap_or(0) as u16,
        }
    }

    /// The code for a wire number; numbers past the table become [`GoawayCode::Unknown`].
    pub fn from_u16(n: u16) -> GoawayCode {
        GoawayCode::ALL
            .get(n as usize)
            .copied()
            .unwrap_or(GoawayCode::Unknown(n))
    }

    /// The code's name as docs/protocol.md spells it (also used as a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            GoawayCode::Normal => "NORMAL",
            GoawayCode::ProtocolError => "PROTOCOL_ERROR",
            GoawayCode::BadChecksum => "BAD_CHECKSUM",
            GoawayCode::FrameTooLarge => "FRAME_TOO_LARGE",
            GoawayCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            GoawayCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            GoawayCode::Unauthorized => "UNAUTHORIZED",
            GoawayCode::HandshakeTimeout => "HANDSHAKE_TIMEOUT",
            GoawayCode::IdleTimeout => "IDLE_TIMEOUT",
            GoawayCode::SlowConsumer => "SLOW_CONSUMER",
            GoawayCode::ServerFull => "SERVER_FULL",
            GoawayCode::ShuttingDown => "SHUTTING_DOWN",
            GoawayCode::RateLimited => "RATE_LIMITED",
            GoawayCode::SessionTakenOver => "SESSION_TAKEN_OVER",
            GoawayCode::ServerBusy => "SERVER_BUSY",
            GoawayCode::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for GoawayCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GoawayCode::Unknown(n) => write!(f, "UNKNOWN({n})"),
            known => f.write_str(known.name()),
        }
    }
}

/// A decoded GOAWAY payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goaway {
    /// Why the peer is closing.
    pub code: GoawayCode,
    /// Free text for humans; invalid UTF-8 is replaced, never rejected, since the peer is leaving anyway.
    pub reason: String,
}

impl Goaway {
    /// Parses a GOAWAY payload: a u16 code then 0..=256 bytes of reason.
    pub fn decode(payload: &[u8]) -> Result<Goaway, ProtocolError> {
        if payload.len() < 2 || payload.len() - 2 > MAX_REASON_LEN {
            return Err(ProtocolError::BadLayout(FrameType::Goaway));
        }
        let code = GoawayCode::from_u16(u16::from_be_bytes([payload[0], payload[1]]));
        let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
        Ok(Goaway { code, reason })
    }
}

/// Encodes a whole GOAWAY frame; the reason is cut at [`MAX_REASON_LEN`] on a char boundary.
pub fn encode_goaway(code: GoawayCode, reason: &str) -> Bytes {
    let mut cut = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = BytesMut::with_capacity(2 + cut);
    payload.put_u16(code.as_u16());
    payload.put_slice(&reason.as_bytes()[..cut]);
    frame::encode_frame(FrameType::Goaway, false, &payload)
}

/// Decodes one GOAWAY frame from the start of `buf` (a convenience for tests and clients).
pub fn decode_goaway_frame(buf: &[u8]) -> Option<Goaway> {
    match frame::decode_frame(buf, u16::MAX as usize) {
        Ok(Status::Complete((f, _))) if f.kind == FrameType::Goaway => {
            Goaway::decode(&f.payload).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_in_wire_order() {
        for (n, code) in GoawayCode::ALL.iter().enumerate() {
            assert_eq!(code.as_u16(), n as u16);
            assert_eq!(GoawayCode::from_u16(n as u16), *code);
        }
        assert_eq!(GoawayCode::from_u16(99), GoawayCode::Unknown(99));
        assert_eq!(GoawayCode::Unknown(99).as_u16(), 99);
        assert_eq!(GoawayCode::SessionTakenOver.as_u16(), 13);
        assert_eq!(GoawayCode::IdleTimeout.to_string(), "IDLE_TIMEOUT");
    }

    #[test]
    fn goaway_normal_bye_matches_the_test_vector() {
        let wire = encode_goaway(GoawayCode::Normal, "bye");
        assert_eq!(
            &wire[..],
            &[0xa5, 0x06, 0x00, 0x05, 0x56, 0xee, 0x03, 0x1f, 0x00, 0x00, 0x62, 0x79, 0x65]
        );
        let g = decode_goaway_frame(&wire).expect("decodes");
        assert_eq!(g.code, GoawayCode::Normal);
        assert_eq!(g.reason, "bye");
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(200); // 400 bytes
        let g = decode_goaway_frame(&encode_goaway(GoawayCode::Normal, &reason)).expect("decodes");
        assert!(g.reason.len() <= MAX_REASON_LEN);
        assert_eq!(g.reason.len() % 2, 0);
    }

    #[test]
    fn bad_layouts_are_rejected() {
        assert!(Goaway::decode(&[0]).is_err());
        assert!(Goaway::decode(&[0u8; 2 + MAX_REASON_LEN + 1]).is_err());
        assert!(Goaway::decode(&[0u8; 2 + MAX_REASON_LEN]).is_ok());
    }
}
