//! The pub/sub messages carried in DATA (docs/protocol.md §5): `S`ubscribe,
//! `U`nsubscribe and `P`ublish from clients, `M` deliveries from the server.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::protocol::encode_message;

/// Subscribe op byte.
pub const OP_SUBSCRIBE: u8 = b'S';
/// Unsubscribe op byte.
pub const OP_UNSUBSCRIBE: u8 = b'U';
/// Publish op byte.
pub const OP_PUBLISH: u8 = b'P';
/// Delivery op byte.
pub const OP_DELIVERY: u8 = b'M';
/// The longest channel name (its length is a u8 on the wire).
pub const MAX_CHANNEL_LEN: usize = 255;

/// A client's pub/sub request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Start receiving deliveries for a channel.
    Subscribe(Bytes),
    /// Stop receiving deliveries for a channel.
    Unsubscribe(Bytes),
    /// Send `body` to every subscriber of `channel`.
    Publish {
        /// The channel.
        channel: Bytes,
        /// The message body, delivered unchanged.
        body: Bytes,
    },
}

/// Why a message is not a valid op (the connection gets PROTOCOL_ERROR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// An empty message.
    Empty,
    /// A first byte that is not S, U or P.
    UnknownOp(u8),
    /// A channel name of 0 bytes or more than 255.
    BadChannel,
    /// A publish whose channel length runs past the message.
    Truncated,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Empty => f.write_str("empty pub/sub message"),
            OpError::UnknownOp(op) => write!(f, "unknown pub/sub op 0x{op:02x}"),
            OpError::BadChannel => f.write_str("channel must be 1..=255 bytes"),
            OpError::Truncated => f.write_str("publish shorter than its channel length"),
        }
    }
}

impl std::error::Error for OpError {}

fn channel(bytes: Bytes) -> Result<Bytes, OpError> {
    if bytes.is_empty() || bytes.len() > MAX_CHANNEL_LEN {
        return Err(OpError::BadChannel);
    }
    Ok(bytes)
}

/// Parses one client message. Channel and body share the message's buffer.
pub fn parse_op(message: &Bytes) -> Result<Op, OpError> {
    let op = *message.first().ok_or(OpError::Empty)?;
    match op {
        OP_SUBSCRIBE => Ok(Op::Subscribe(channel(message.slice(1..))?)),
        OP_UNSUBSCRIBE => Ok(Op::Unsubscribe(channel(message.slice(1..))?)),
        OP_PUBLISH => {
            let len = *message.get(1).ok_or(OpError::Truncated)? as usize;
            if len == 0 {
                return Err(OpError::BadChannel);
            }
            if message.len() < 2 + len {
                return Err(OpError::Truncated);
            }
            Ok(Op::Publish {
                channel: message.slice(2..2 + len),
                body: message.slice(2 + len..),
            })
        }
        other => Err(OpError::UnknownOp(other)),
    }
}

fn with_channel(op: u8, channel: &[u8], body: &[u8], length_prefixed: bool) -> BytesMut {
    let mut m = BytesMut::with_capacity(2 + channel.len() + body.len());
    m.put_u8(op);
    if length_prefixed {
        m.put_u8(channel.len().min(MAX_CHANNEL_LEN) as u8);
    }
    m.put_slice(channel);
    m.put_slice(body);
    m
}

/// A subscribe message (client side).
pub fn subscribe(channel: &[u8]) -> Bytes {
    with_channel(OP_SUBSCRIBE, channel, &[], false).freeze()
}

/// An unsubscribe message (client side).
pub fn unsubscribe(channel: &[u8]) -> Bytes {
    with_channel(OP_UNSUBSCRIBE, channel, &[], false).freeze()
}

/// A publish message (client side).
pub fn publish(channel: &[u8], body: &[u8]) -> Bytes {
    with_channel(OP_PUBLISH, channel, body, true).freeze()
}

/// A delivery encoded once as ready-to-send DATA frames (split at
/// `max_frame`), to be queued as the same `Bytes` to every subscriber.
pub fn encode_delivery(channel: &[u8], body: &[u8], max_frame: usize) -> Bytes {
    encode_message(&with_channel(OP_DELIVERY, channel, body, true), max_frame)
}

/// Splits a received delivery message into channel and body.
pub fn parse_delivery(message: &[u8]) -> Option<(&[u8], &[u8])> {
    if message.first() != Some(&OP_DELIVERY) {
        return None;
    }
    let len = *message.get(1)? as usize;
    let channel = message.get(2..2 + len)?;
    Some((channel, &message[2 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_parse() {
        assert_eq!(
            parse_op(&subscribe(b"news")),
            Ok(Op::Subscribe(Bytes::from_static(b"news")))
        );
        assert_eq!(
            parse_op(&unsubscribe(b"n")),
            Ok(Op::Unsubscribe(Bytes::from_static(b"n")))
        );
        assert_eq!(
            parse_op(&publish(b"news", b"hi")),
            Ok(Op::Publish {
                channel: Bytes::from_static(b"news"),
                body: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(
            parse_op(&publish(b"news", b"")),
            Ok(Op::Publish {
                channel: Bytes::from_static(b"news"),
                body: Bytes::new()
            })
        );
    }

    #[test]
    fn malformed_ops_are_errors() {
        let cases: &[(&[u8], OpError)] = &[
            (b"", OpError::Empty),
            (b"X", OpError::UnknownOp(b'X')),
            (b"M\x01ab", OpError::UnknownOp(b'M')),
            (b"S", OpError::BadChannel),
            (b"U", OpError::BadChannel),
            (b"P", OpError::Truncated),
            (b"P\x00", OpError::BadChannel),
            (b"P\x05abc", OpError::Truncated),
        ];
        for (msg, err) in cases {
            assert_eq!(
                parse_op(&Bytes::copy_from_slice(msg)).as_ref(),
                Err(err),
                "{msg:?}"
            );
        }
        let long = [&b"S"[..], &[b'c'; 256]].concat();
        assert_eq!(parse_op(&Bytes::from(long)), Err(OpError::BadChannel));
    }

    #[test]
    fn delivery_round_trips() {
        let wire = encode_delivery(b"ch", b"body", 65535);
        let mut d = crate::protocol::FrameDecoder::new(65535);
        let mut input: &[u8] = &wire;
        let frame = d.next_frame(&mut input).expect("valid").expect("frame");
        assert_eq!(
            parse_delivery(&frame.payload),
            Some((&b"ch"[..], &b"body"[..]))
        );
        assert_eq!(parse_delivery(b"M\x09ab"), None);
    }
}
