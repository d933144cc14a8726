//! What can be wrong with a v2 pub/sub message; all of it is PROTOCOL_ERROR.

use std::fmt;

use super::{
    OP_PUBLICATION, OP_PUBLISH, OP_PUBLISH_ACK, OP_SUBSCRIBE, OP_SUBSCRIBE_REPLY, OP_UNSUBSCRIBE,
    OP_UNSUBSCRIBE_REPLY,
};
use crate::protocol::GoawayCode;

/// Why a message is not a valid v2 op. Every variant is PROTOCOL_ERROR
/// ([`OpError::goaway_code`]); a well-formed request the server declines gets
/// a reply with a [`Status`](super::Status) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// An empty message.
    Empty,
    /// A first byte that is no op of either version.
    UnknownOp(u8),
    /// A v2 op that only the other side sends (a reply from a client, a
    /// request from the server).
    WrongDirection(u8),
    /// A v1 letter (`S`, `U`, `P`, `M`) on a v2 connection.
    V1Op(u8),
    /// The message ends before its layout does: a missing field or a
    /// channel past the end.
    Truncated {
        /// The op byte.
        op: u8,
        /// The message's length.
        len: usize,
        /// The length its layout needs, as far as it could be read.
        need: usize,
    },
    /// Bytes after a fixed layout or after a SUBSCRIBE's channel or position.
    TrailingBytes {
        /// The op byte.
        op: u8,
        /// The message's length.
        len: usize,
        /// The length its layout says.
        expected: usize,
    },
    /// A SUBSCRIBE with a flag bit other than POSITION set (the flags byte).
    ReservedFlags(u8),
    /// A SUBSCRIBE position with epoch 0 (epochs are never 0).
    ZeroEpoch,
}

impl OpError {
    /// The GOAWAY code the receiver answers with: always PROTOCOL_ERROR.
    pub fn goaway_code(&self) -> GoawayCode {
        GoawayCode::ProtocolError
    }
}

/// The op's name as docs/protocol.md spells it, for error messages.
fn op_name(op: u8) -> &'static str {
    match op {
        OP_SUBSCRIBE => "SUBSCRIBE",
        OP_SUBSCRIBE_REPLY => "SUBSCRIBE_REPLY",
        OP_UNSUBSCRIBE => "UNSUBSCRIBE",
        OP_UNSUBSCRIBE_REPLY => "UNSUBSCRIBE_REPLY",
        OP_PUBLISH => "PUBLISH",
        OP_PUBLISH_ACK => "PUBLISH_ACK",
        OP_PUBLICATION => "PUBLICATION",
        _ => "unknown op",
    }
}

/// Who sends `op`, for error messages.
fn sender(op: u8) -> &'static str {
    if matches!(op, OP_SUBSCRIBE | OP_UNSUBSCRIBE | OP_PUBLISH) {
        "client"
    } else {
        "server"
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OpError::Empty => f.write_str("empty pub/sub message"),
            OpError::UnknownOp(op) => write!(f, "unknown pub/sub v2 op 0x{op:02x}"),
            OpError::WrongDirection(op) => write!(
                f,
                "{} (0x{op:02x}) is only sent by the {}",
                op_name(op),
                sender(op)
            ),
            OpError::V1Op(op) => write!(f, "v1 pub/sub op '{}' on a v2 connection", char::from(op)),
            OpError::Truncated { op, len, need } => write!(
                f,
                "{} of {len} bytes is truncated: its layout needs {need}",
                op_name(op)
            ),
            OpError::TrailingBytes { op, len, expected } => write!(
                f,
                "{} of {len} bytes has trailing bytes: its layout is {expected}",
                op_name(op)
            ),
            OpError::ReservedFlags(flags) => write!(
                f,
                "SUBSCRIBE flags 0x{flags:02x} set reserved bits (only bit 0 POSITION is defined)"
            ),
            OpError::ZeroEpoch => f.write_str("SUBSCRIBE position with epoch 0"),
        }
    }
}

impl std::error::Error for OpError {}
