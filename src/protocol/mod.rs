//! The wire protocol (docs/protocol.md): frames with a CRC, the HELLO/WELCOME
//! handshake payloads and GOAWAY codes.
//!
//! This layer is pure: it turns bytes into frames and frames into bytes. It
//! never touches a socket or a clock and allocates nothing beyond the frame it
//! is decoding, whose size it checks from the header alone before buffering.

pub mod frame;
pub mod goaway;
pub mod hello;

pub use frame::{
    decode_frame, decode_frame_ref, encode_frame, encode_message, put_frame, put_message, Frame,
    FrameDecoder, FrameRef, FrameType, Status, HEADER_LEN, MAGIC, MAX_PING_PAYLOAD,
};
pub use goaway::{encode_goaway, Goaway, GoawayCode, MAX_REASON_LEN};
pub use hello::{is_supported_version, Hello, SessionId, Welcome, PROTOCOL_V1, PROTOCOL_V2};

use std::fmt;

/// Everything that can be wrong with received bytes. Each maps to the GOAWAY
/// code the receiver answers with ([`ProtocolError::goaway_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The first header byte was not [`MAGIC`].
    BadMagic(u8),
    /// The header announced a payload above the receiver's `max_frame`.
    FrameTooLarge {
        /// The length in the header.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The CRC in the header does not match header bytes 0..4 and the payload.
    BadChecksum,
    /// A frame type this protocol version does not define.
    UnknownType(u8),
    /// The MORE bit on a frame that is not DATA.
    MoreOnControl(FrameType),
    /// A PING or PONG payload over [`MAX_PING_PAYLOAD`] bytes.
    PingTooLong(usize),
    /// A fixed-layout payload (HELLO, WELCOME, GOAWAY) with missing or trailing bytes.
    BadLayout(FrameType),
    /// A HELLO or WELCOME with a version this crate does not speak (§7.1).
    UnsupportedVersion(u8),
    /// A frame that is legal on the wire but not in this state (e.g. DATA before HELLO).
    Unexpected(FrameType),
    /// A reassembled DATA message above `max_message`.
    MessageTooLarge {
        /// The size the message reached.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The GOAWAY code that answers this error (docs/protocol.md §2.4).
    pub fn goaway_code(&self) -> GoawayCode {
        match self {
            ProtocolError::BadMagic(_)
            | ProtocolError::UnknownType(_)
            | ProtocolError::MoreOnControl(_)
            | ProtocolError::PingTooLong(_)
            | ProtocolError::BadLayout(_)
            | ProtocolError::Unexpected(_) => GoawayCode::ProtocolError,
            ProtocolError::FrameTooLarge { .. } => GoawayCode::FrameTooLarge,
            ProtocolError::BadChecksum => GoawayCode::BadChecksum,
            ProtocolError::UnsupportedVersion(_) => GoawayCode::UnsupportedVersion,
            ProtocolError::MessageTooLarge { .. } => GoawayCode::MessageTooLarge,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::BadMagic(b) => write!(f, "bad magic byte 0x{b:02x}"),
            ProtocolError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is above max_frame {max}")
            }
            ProtocolError::BadChecksum => f.write_str("frame checksum mismatch"),
            ProtocolError::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            ProtocolError::MoreOnControl(t) => write!(f, "MORE flag on a {t} frame"),
            ProtocolError::PingTooLong(n) => {
                write!(f, "ping payload of {n} bytes is above {MAX_PING_PAYLOAD}")
            }
            ProtocolError::BadLayout(t) => write!(f, "malformed {t} payload"),
            ProtocolError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            ProtocolError::Unexpected(t) => write!(f, "unexpected {t} frame"),
            ProtocolError::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes is above max_message {max}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
