//! HELLO and WELCOME: the handshake payloads (docs/protocol.md §2.1, §2.2).

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::frame::{encode_frame, FrameType};
use super::ProtocolError;

/// Protocol version 1 (docs/protocol.md §1–§6): what every v1 client speaks.
pub const PROTOCOL_V1: u8 = 1;
/// Protocol version 2 (docs/protocol.md §7): channel streams and acknowledged requests.
pub const PROTOCOL_V2: u8 = 2;

/// Whether this crate speaks `version` (§7.1: 1 and 2).
pub fn is_supported_version(version: u8) -> bool {
    version == PROTOCOL_V1 || version == PROTOCOL_V2
}
/// HELLO flag: a session id to resume follows the token.
pub const HELLO_RESUME: u8 = 0x01;
/// WELCOME flag: the earlier session was found and re-attached.
pub const WELCOME_RESUMED: u8 = 0x01;
/// WELCOME flag: messages were dropped while the session was detached.
pub const WELCOME_LOST: u8 = 0x02;
/// Fixed part of a HELLO: version, flags, heartbeat_ms, token_len.
const HELLO_FIXED_LEN: usize = 7;
/// A WELCOME payload is always this long.
pub const WELCOME_LEN: usize = 32;

/// A session id: 16 random bytes chosen by the server.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol version asked for: [`PROTOCOL_V1`] or [`PROTOCOL_V2`]; it
    /// is the connection's for its whole life (§7.1).
    pub version: u8,
    /// The longest silence the client promises; 0 lets the server choose.
    pub heartbeat_ms: u32,
    /// Shared-secret auth token (0..=255 bytes; empty when none).
    pub token: Bytes,
    /// The session to resume, when the RESUME flag is set.
    pub resume: Option<SessionId>,
}

impl Hello {
    /// Parses a HELLO payload. The version is checked first so that a future
    /// version with another layout gets UNSUPPORTED_VERSION, not PROTOCOL_ERROR.
    pub fn decode(payload: &Bytes) -> Result<Hello, ProtocolError> {
        let bad = ProtocolError::BadLayout(FrameType::Hello);
        let version = *payload.first().ok_or(bad.clone())?;
        if !is_supported_version(version) {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        if payload.len() < HELLO_FIXED_LEN {
            return Err(bad);
        }
        let flags = payload[1];
        if flags & !HELLO_RESUME != 0 {
            return Err(bad);
        }
        let heartbeat_ms = u32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]]);
        let token_len = payload[6] as usize;
        let token_end = HELLO_FIXED_LEN + token_len;
        let expected = token_end + if flags & HELLO_RESUME != 0 { 16 } else { 0 };
        if payload.len() != expected {
            return Err(bad);
        }
        let resume = if flags & HELLO_RESUME != 0 {
            let mut id = [0u8; 16];
            id.copy_from_slice(&payload[token_end..expected]);
            Some(SessionId(id))
        } else {
            None
        };
        Ok(Hello {
            version,
            heartbeat_ms,
            token: payload.slice(HELLO_FIXED_LEN..token_end),
            resume,
        })
    }

    /// Encodes this HELLO as a whole frame. Tokens over 255 bytes are cut (the length is a u8).
    pub fn encode_frame(&self) -> Bytes {
        let token = &self.token[..self.token.len().min(255)];
        let mut p = BytesMut::with_capacity(HELLO_FIXED_LEN + token.len() + 16);
        p.put_u8(self.version);
        p.put_u8(if self.resume.is_some() {
            HELLO_RESUME
        } else {
            0
        });
        p.put_u32(self.heartbeat_ms);
        p.put_u8(token.len() as u8);
        p.put_slice(token);
        if let Some(id) = self.resume {
            p.put_slice(&id.0);
        }
        encode_frame(FrameType::Hello, false, &p)
    }
}

/// The server's answer to HELLO: the negotiated limits and the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// The connection's protocol version, the HELLO's (§7.1).
    pub version: u8,
    /// The earlier session was found and re-attached.
    pub resumed: bool,
    /// Messages for the session were dropped while it was detached.
    pub lost: bool,
    /// Negotiated heartbeat interval.
    pub heartbeat_ms: u32,
    /// The server evicts after this long without a frame (`heartbeat_ms × miss`).
    pub idle_timeout_ms: u32,
    /// The largest frame payload the server accepts.
    pub max_frame: u16,
    /// The largest reassembled message the server accepts.
    pub max_message: u32,
    /// The session id.
    pub session: SessionId,
}

impl Welcome {
    /// Parses a WELCOME payload (exactly [`WELCOME_LEN`] bytes).
    pub fn decode(payload: &[u8]) -> Result<Welcome, ProtocolError> {
        let bad = ProtocolError::BadLayout(FrameType::Welcome);
        let version = *payload.first().ok_or(bad.clone())?;
        if !is_supported_version(version) {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        if payload.len() != WELCOME_LEN {
            return Err(bad);
        }
        let u32_at = |i: usize| {
            u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        let flags = payload[1];
        let mut session = [0u8; 16];
        session.copy_from_slice(&payload[16..32]);
        Ok(Welcome {
            version,
            resumed: flags & WELCOME_RESUMED != 0,
            lost: flags & WELCOME_LOST != 0,
            heartbeat_ms: u32_at(2),
            idle_timeout_ms: u32_at(6),
            max_frame: u16::from_be_bytes([payload[10], payload[11]]),
            max_message: u32_at(12),
            session: SessionId(session),
        })
    }

    /// Encodes this WELCOME as a whole frame.
    pub fn encode_frame(&self) -> Bytes {
        let mut p = BytesMut::with_capacity(WELCOME_LEN);
        p.put_u8(self.version);
        let mut flags = 0;
        if self.resumed {
            flags |= WELCOME_RESUMED;
        }
        if self.lost {
            flags |= WELCOME_LOST;
        }
        p.put_u8(flags);
        p.put_u32(self.heartbeat_ms);
        p.put_u32(self.idle_timeout_ms);
        p.put_u16(self.max_frame);
        p.put_u32(self.max_message);
        p.put_slice(&self.session.0);
        encode_frame(FrameType::Welcome, false, &p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{decode_frame, Status};

    fn payload_of(frame: &[u8]) -> Bytes {
        match decode_frame(frame, 65535) {
            Ok(Status::Complete((f, _))) => f.payload,
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn hello_matches_the_test_vector() {
        let hello = Hello {
            version: crate::protocol::PROTOCOL_V1,
            heartbeat_ms: 10_000,
            token: Bytes::new(),
            resume: None,
        };
        let wire = hello.encode_frame();
        assert_eq!(
            &wire[..],
            &[
                0xa5, 0x01, 0x00, 0x07, 0xdf, 0x1d, 0x8c, 0x41, 0x01, 0x00, 0x00, 0x00, 0x27, 0x10,
                0x00
            ]
        );
        assert_eq!(Hello::decode(&payload_of(&wire)), Ok(hello));
    }

    #[test]
    fn hello_with_token_and_resume_round_trips() {
        let hello = Hello {
            version: crate::protocol::PROTOCOL_V1,
            heartbeat_ms: 5,
            token: Bytes::from_static(b"secret"),
            resume: Some(SessionId([7; 16])),
        };
        assert_eq!(Hello::decode(&payload_of(&hello.encode_frame())), Ok(hello));
    }

    #[test]
    fn hello_layout_errors() {
        let bad = Err(ProtocolError::BadLayout(FrameType::Hello));
        assert_eq!(Hello::decode(&Bytes::new()), bad);
        assert_eq!(Hello::decode(&Bytes::from_static(&[1, 0, 0, 0, 0])), bad);
        // token_len says 2 but only 1 byte follows
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[1, 0, 0, 0, 0, 0, 2, 9])),
            bad
        );
        // trailing byte
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 9])),
            bad
        );
        // RESUME without a session id
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[1, 1, 0, 0, 0, 0, 0])),
            bad
        );
        // unknown flag bits
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[1, 4, 0, 0, 0, 0, 0])),
            bad
        );
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[3, 0, 0])),
            Err(ProtocolError::UnsupportedVersion(3))
        );
        assert_eq!(
            Hello::decode(&Bytes::from_static(&[0])),
            Err(ProtocolError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn welcome_round_trips() {
        let w = Welcome {
            version: crate::protocol::PROTOCOL_V1,
            resumed: true,
            lost: true,
            heartbeat_ms: 30_000,
            idle_timeout_ms: 90_000,
            max_frame: 65535,
            max_message: 1 << 20,
            session: SessionId([0xab; 16]),
        };
        assert_eq!(Welcome::decode(&payload_of(&w.encode_frame())), Ok(w));
        assert!(Welcome::decode(&[1; 31]).is_err());
    }
}
