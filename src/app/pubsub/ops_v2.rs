//! The protocol-v2 pub/sub messages carried in DATA (docs/protocol.md §7.2):
//! SUBSCRIBE, UNSUBSCRIBE and PUBLISH from clients; SUBSCRIBE_REPLY,
//! UNSUBSCRIBE_REPLY, PUBLISH_ACK and PUBLICATION from the server.
//!
//! Sans-io and both directions: the server parses [`ClientOp`]s and encodes
//! [`ServerMsg`]s, the client library the reverse. Parsers check the layout
//! only (length, reserved flags, a position's epoch); what a well-formed
//! request asks for (an empty channel, say) is the server's to answer with a
//! [`Status`]. A channel of 0 bytes therefore parses: v2 answers it
//! BAD_CHANNEL instead of closing the connection as v1 does.

use bytes::{BufMut, Bytes, BytesMut};

use super::ops::MAX_CHANNEL_LEN;
use crate::protocol::encode_message;

mod codes;
mod error;

pub use codes::{RecoveryReason, Status};
pub use error::OpError;

/// SUBSCRIBE op byte (client → server).
pub const OP_SUBSCRIBE: u8 = 0x01;
/// SUBSCRIBE_REPLY op byte (server → client).
pub const OP_SUBSCRIBE_REPLY: u8 = 0x02;
/// UNSUBSCRIBE op byte (client → server).
pub const OP_UNSUBSCRIBE: u8 = 0x03;
/// UNSUBSCRIBE_REPLY op byte (server → client).
pub const OP_UNSUBSCRIBE_REPLY: u8 = 0x04;
/// PUBLISH op byte (client → server).
pub const OP_PUBLISH: u8 = 0x05;
/// PUBLISH_ACK op byte (server → client).
pub const OP_PUBLISH_ACK: u8 = 0x06;
/// PUBLICATION op byte (server → client).
pub const OP_PUBLICATION: u8 = 0x07;

/// SUBSCRIBE flag bit 0: an epoch and offset follow the channel.
pub const FLAG_POSITION: u8 = 0x01;
/// SUBSCRIBE_REPLY flag bit 0: the SUBSCRIBE carried a position.
pub const FLAG_RECOVERY_ASKED: u8 = 0x01;
/// SUBSCRIBE_REPLY flag bit 1: the replay covers everything after the position.
pub const FLAG_RECOVERED: u8 = 0x02;

/// SUBSCRIBE without the channel and position: op, request_id, flags, chan_len.
const SUBSCRIBE_HEAD: usize = 7;
/// The position that follows a SUBSCRIBE's channel: epoch and offset.
const POSITION_LEN: usize = 16;
/// UNSUBSCRIBE and PUBLISH without channel and body: op, request_id, chan_len.
const REQUEST_HEAD: usize = 6;
/// PUBLICATION without channel and body: op, epoch, offset, chan_len.
const PUBLICATION_HEAD: usize = 18;
/// The fixed length of a SUBSCRIBE_REPLY.
pub const SUBSCRIBE_REPLY_LEN: usize = 28;
/// The fixed length of an UNSUBSCRIBE_REPLY.
pub const UNSUBSCRIBE_REPLY_LEN: usize = 6;
/// The fixed length of a PUBLISH_ACK.
pub const PUBLISH_ACK_LEN: usize = 22;
/// How much longer a PUBLICATION is than the v1 `P` with the same channel
/// and body, so a v2 client accepts messages of up to `max_message` + this
/// (docs/protocol.md §7.2, common rules).
pub const PUBLICATION_GROWTH_OVER_V1: usize = 16;

/// A place in a channel's stream: the client has seen every publication of
/// `epoch` up to and including `offset` (0: none of this epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The stream numbering the offset belongs to; never 0 on the wire.
    pub epoch: u64,
    /// The last publication seen.
    pub offset: u64,
}

/// A request from a v2 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// Join a channel's live set, with recovery from `position` if given.
    Subscribe {
        /// Echoed in the SUBSCRIBE_REPLY.
        request_id: u32,
        /// The channel (may be empty: answered BAD_CHANNEL).
        channel: Bytes,
        /// Where the client left off, if it has a position.
        position: Option<Position>,
    },
    /// Leave a channel's live set.
    Unsubscribe {
        /// Echoed in the UNSUBSCRIBE_REPLY.
        request_id: u32,
        /// The channel (may be empty: answered BAD_CHANNEL).
        channel: Bytes,
    },
    /// Publish `body` on `channel`.
    Publish {
        /// Echoed in the PUBLISH_ACK; 0 asks for no acknowledgement.
        request_id: u32,
        /// The channel (may be empty: answered BAD_CHANNEL).
        channel: Bytes,
        /// Delivered unchanged; may be empty.
        body: Bytes,
    },
}

/// The answer to a SUBSCRIBE; with [`Status::Ok`] it is called SUBSCRIBED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeReply {
    /// The SUBSCRIBE's.
    pub request_id: u32,
    /// The outcome; on failure nothing changed and every later field is 0.
    pub status: Status,
    /// The SUBSCRIBE carried a position.
    pub recovery_asked: bool,
    /// The replay covers everything after the position.
    pub recovered: bool,
    /// Why not recovered; [`RecoveryReason::None`] when recovered or not asked.
    pub reason: RecoveryReason,
    /// The stream's epoch.
    pub epoch: u64,
    /// The stream's top offset (0: nothing published yet in this epoch).
    pub top: u64,
    /// How many replayed PUBLICATIONs follow (0 unless recovered).
    pub replay: u32,
}

impl SubscribeReply {
    /// A refusal: `status` with every later field 0, as the spec requires.
    pub fn refused(request_id: u32, status: Status) -> SubscribeReply {
        SubscribeReply {
            request_id,
            status,
            recovery_asked: false,
            recovered: false,
            reason: RecoveryReason::None,
            epoch: 0,
            top: 0,
            replay: 0,
        }
    }
}

/// The answer to an UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeReply {
    /// The UNSUBSCRIBE's.
    pub request_id: u32,
    /// The outcome.
    pub status: Status,
}

/// The answer to a PUBLISH with a non-zero request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishAck {
    /// The PUBLISH's.
    pub request_id: u32,
    /// The outcome; epoch and offset are 0 unless OK.
    pub status: Status,
    /// The stream's epoch.
    pub epoch: u64,
    /// The publication's offset.
    pub offset: u64,
}

impl PublishAck {
    /// A refusal: `status` with epoch and offset 0, as the spec requires.
    pub fn refused(request_id: u32, status: Status) -> PublishAck {
        PublishAck {
            request_id,
            status,
            epoch: 0,
            offset: 0,
        }
    }
}

/// A delivery; nothing in it depends on the subscriber, so one encoding
/// ([`encode_publication_frames`]) serves every subscriber and the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The stream's epoch.
    pub epoch: u64,
    /// The publication's offset (at least 1 from a correct server).
    pub offset: u64,
    /// The channel.
    pub channel: Bytes,
    /// The published body.
    pub body: Bytes,
}

/// A message from a v2 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// SUBSCRIBE_REPLY.
    SubscribeReply(SubscribeReply),
    /// UNSUBSCRIBE_REPLY.
    UnsubscribeReply(UnsubscribeReply),
    /// PUBLISH_ACK.
    PublishAck(PublishAck),
    /// PUBLICATION.
    Publication(Publication),
}

/// The error for a first byte that is not an op of the receiving direction.
fn not_for_receiver(op: u8, other_direction: &[u8]) -> OpError {
    if other_direction.contains(&op) {
        OpError::WrongDirection(op)
    } else if b"SUPM".contains(&op) {
        OpError::V1Op(op)
    } else {
        OpError::UnknownOp(op)
    }
}

/// Big-endian reads at fixed offsets; callers check the length first.
fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])
}

fn u64_at(m: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&m[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Checks that `m` (op `op`) is at least `need` bytes.
fn need(m: &[u8], op: u8, need: usize) -> Result<(), OpError> {
    if m.len() < need {
        return Err(OpError::Truncated {
            op,
            len: m.len(),
            need,
        });
    }
    Ok(())
}

/// Checks that `m` (op `op`) is exactly `len` bytes.
fn exact(m: &[u8], op: u8, len: usize) -> Result<(), OpError> {
    need(m, op, len)?;
    if m.len() > len {
        return Err(OpError::TrailingBytes {
            op,
            len: m.len(),
            expected: len,
        });
    }
    Ok(())
}

/// Parses one message from a v2 client. Channel and body share the message's buffer.
pub fn parse_client_op(message: &Bytes) -> Result<ClientOp, OpError> {
    let m = &message[..];
    let op = *m.first().ok_or(OpError::Empty)?;
    match op {
        OP_SUBSCRIBE => {
            need(m, op, SUBSCRIBE_HEAD)?;
            let flags = m[5];
            if flags & !FLAG_POSITION != 0 {
                return Err(OpError::ReservedFlags(flags));
            }
            let chan_end = SUBSCRIBE_HEAD + usize::from(m[6]);
            let has_position = flags & FLAG_POSITION != 0;
            exact(
                m,
                op,
                chan_end + if has_position { POSITION_LEN } else { 0 },
            )?;
            let position = if has_position {
                let epoch = u64_at(m, chan_end);
                if epoch == 0 {
                    return Err(OpError::ZeroEpoch);
                }
                let offset = u64_at(m, chan_end + 8);
                Some(Position { epoch, offset })
            } else {
                None
            };
            Ok(ClientOp::Subscribe {
                request_id: u32_at(m, 1),
                channel: message.slice(SUBSCRIBE_HEAD..chan_end),
                position,
            })
        }
        OP_UNSUBSCRIBE => {
            need(m, op, REQUEST_HEAD)?;
            let chan_end = REQUEST_HEAD + usize::from(m[5]);
            exact(m, op, chan_end)?;
            Ok(ClientOp::Unsubscribe {
                request_id: u32_at(m, 1),
                channel: message.slice(REQUEST_HEAD..chan_end),
            })
        }
        OP_PUBLISH => {
            need(m, op, REQUEST_HEAD)?;
            let chan_end = REQUEST_HEAD + usize::from(m[5]);
            need(m, op, chan_end)?;
            Ok(ClientOp::Publish {
                request_id: u32_at(m, 1),
                channel: message.slice(REQUEST_HEAD..chan_end),
                body: message.slice(chan_end..),
            })
        }
        other => Err(not_for_receiver(
            other,
            &[
                OP_SUBSCRIBE_REPLY,
                OP_UNSUBSCRIBE_REPLY,
                OP_PUBLISH_ACK,
                OP_PUBLICATION,
            ],
        )),
    }
}

/// Parses one message from a v2 server. Unknown status and reason numbers
/// and unknown SUBSCRIBE_REPLY flag bits are accepted (the spec makes them a
/// failed request, "not recovered" and ignored bits); whether a reply
/// matches a pending request is for the caller to check. A PUBLICATION's
/// channel and body share the message's buffer.
pub fn parse_server_msg(message: &Bytes) -> Result<ServerMsg, OpError> {
    let m = &message[..];
    let op = *m.first().ok_or(OpError::Empty)?;
    match op {
        OP_SUBSCRIBE_REPLY => {
            exact(m, op, SUBSCRIBE_REPLY_LEN)?;
            Ok(ServerMsg::SubscribeReply(SubscribeReply {
                request_id: u32_at(m, 1),
                status: Status::from_u8(m[5]),
                recovery_asked: m[6] & FLAG_RECOVERY_ASKED != 0,
                recovered: m[6] & FLAG_RECOVERED != 0,
                reason: RecoveryReason::from_u8(m[7]),
                epoch: u64_at(m, 8),
                top: u64_at(m, 16),
                replay: u32_at(m, 24),
            }))
        }
        OP_UNSUBSCRIBE_REPLY => {
            exact(m, op, UNSUBSCRIBE_REPLY_LEN)?;
            Ok(ServerMsg::UnsubscribeReply(UnsubscribeReply {
                request_id: u32_at(m, 1),
                status: Status::from_u8(m[5]),
            }))
        }
        OP_PUBLISH_ACK => {
            exact(m, op, PUBLISH_ACK_LEN)?;
            Ok(ServerMsg::PublishAck(PublishAck {
                request_id: u32_at(m, 1),
                status: Status::from_u8(m[5]),
                epoch: u64_at(m, 6),
                offset: u64_at(m, 14),
            }))
        }
        OP_PUBLICATION => {
            need(m, op, PUBLICATION_HEAD)?;
            let chan_end = PUBLICATION_HEAD + usize::from(m[17]);
            need(m, op, chan_end)?;
            Ok(ServerMsg::Publication(Publication {
                epoch: u64_at(m, 1),
                offset: u64_at(m, 9),
                channel: message.slice(PUBLICATION_HEAD..chan_end),
                body: message.slice(chan_end..),
            }))
        }
        other => Err(not_for_receiver(
            other,
            &[OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_PUBLISH],
        )),
    }
}

/// Appends chan_len and the channel. A channel must be at most 255 bytes
/// (a library checks names at its API); a longer one is cut there, so the
/// output always parses.
fn put_channel(m: &mut BytesMut, channel: &[u8]) {
    debug_assert!(channel.len() <= MAX_CHANNEL_LEN, "channel over 255 bytes");
    let channel = &channel[..channel.len().min(MAX_CHANNEL_LEN)];
    m.put_u8(channel.len() as u8);
    m.put_slice(channel);
}

/// A SUBSCRIBE (client side). A position's epoch must not be 0 (the server
/// answers one with PROTOCOL_ERROR).
pub fn encode_subscribe(request_id: u32, channel: &[u8], position: Option<Position>) -> Bytes {
    let mut m = BytesMut::with_capacity(SUBSCRIBE_HEAD + channel.len() + POSITION_LEN);
    m.put_u8(OP_SUBSCRIBE);
    m.put_u32(request_id);
    m.put_u8(if position.is_some() { FLAG_POSITION } else { 0 });
    put_channel(&mut m, channel);
    if let Some(p) = position {
        m.put_u64(p.epoch);
        m.put_u64(p.offset);
    }
    m.freeze()
}

/// An UNSUBSCRIBE (client side).
pub fn encode_unsubscribe(request_id: u32, channel: &[u8]) -> Bytes {
    let mut m = BytesMut::with_capacity(REQUEST_HEAD + channel.len());
    m.put_u8(OP_UNSUBSCRIBE);
    m.put_u32(request_id);
    put_channel(&mut m, channel);
    m.freeze()
}

/// A PUBLISH (client side); `request_id` 0 asks for no acknowledgement.
pub fn encode_publish(request_id: u32, channel: &[u8], body: &[u8]) -> Bytes {
    let mut m = BytesMut::with_capacity(REQUEST_HEAD + channel.len() + body.len());
    m.put_u8(OP_PUBLISH);
    m.put_u32(request_id);
    put_channel(&mut m, channel);
    m.put_slice(body);
    m.freeze()
}

impl ClientOp {
    /// The op's DATA payload.
    pub fn encode(&self) -> Bytes {
        match self {
            ClientOp::Subscribe {
                request_id,
                channel,
                position,
            } => encode_subscribe(*request_id, channel, *position),
            ClientOp::Unsubscribe {
                request_id,
                channel,
            } => encode_unsubscribe(*request_id, channel),
            ClientOp::Publish {
                request_id,
                channel,
                body,
            } => encode_publish(*request_id, channel, body),
        }
    }
}

/// A SUBSCRIBE_REPLY (server side).
pub fn encode_subscribe_reply(reply: &SubscribeReply) -> Bytes {
    let mut m = BytesMut::with_capacity(SUBSCRIBE_REPLY_LEN);
    m.put_u8(OP_SUBSCRIBE_REPLY);
    m.put_u32(reply.request_id);
    m.put_u8(reply.status.as_u8());
    let asked = if reply.recovery_asked {
        FLAG_RECOVERY_ASKED
    } else {
        0
    };
    let recovered = if reply.recovered { FLAG_RECOVERED } else { 0 };
    m.put_u8(asked | recovered);
    m.put_u8(reply.reason.as_u8());
    m.put_u64(reply.epoch);
    m.put_u64(reply.top);
    m.put_u32(reply.replay);
    m.freeze()
}

/// An UNSUBSCRIBE_REPLY (server side).
pub fn encode_unsubscribe_reply(reply: &UnsubscribeReply) -> Bytes {
    let mut m = BytesMut::with_capacity(UNSUBSCRIBE_REPLY_LEN);
    m.put_u8(OP_UNSUBSCRIBE_REPLY);
    m.put_u32(reply.request_id);
    m.put_u8(reply.status.as_u8());
    m.freeze()
}

/// A PUBLISH_ACK (server side).
pub fn encode_publish_ack(ack: &PublishAck) -> Bytes {
    let mut m = BytesMut::with_capacity(PUBLISH_ACK_LEN);
    m.put_u8(OP_PUBLISH_ACK);
    m.put_u32(ack.request_id);
    m.put_u8(ack.status.as_u8());
    m.put_u64(ack.epoch);
    m.put_u64(ack.offset);
    m.freeze()
}

/// A PUBLICATION's DATA payload.
pub fn encode_publication(epoch: u64, offset: u64, channel: &[u8], body: &[u8]) -> Bytes {
    let mut m = BytesMut::with_capacity(PUBLICATION_HEAD + channel.len() + body.len());
    m.put_u8(OP_PUBLICATION);
    m.put_u64(epoch);
    m.put_u64(offset);
    put_channel(&mut m, channel);
    m.put_slice(body);
    m.freeze()
}

/// A PUBLICATION encoded once as ready-to-send DATA frames (split at
/// `max_frame`), to be queued as the same `Bytes` to every subscriber and
/// kept as is in the history.
pub fn encode_publication_frames(
    epoch: u64,
    offset: u64,
    channel: &[u8],
    body: &[u8],
    max_frame: usize,
) -> Bytes {
    encode_message(&encode_publication(epoch, offset, channel, body), max_frame)
}

impl ServerMsg {
    /// The message's DATA payload.
    pub fn encode(&self) -> Bytes {
        match self {
            ServerMsg::SubscribeReply(r) => encode_subscribe_reply(r),
            ServerMsg::UnsubscribeReply(r) => encode_unsubscribe_reply(r),
            ServerMsg::PublishAck(a) => encode_publish_ack(a),
            ServerMsg::Publication(p) => encode_publication(p.epoch, p.offset, &p.channel, &p.body),
        }
    }
}

#[cfg(test)]
mod tests;
