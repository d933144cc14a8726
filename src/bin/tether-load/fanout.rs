//! Fan-out's messages in protocol 1 or 2, built and read with the library's
//! pub/sub codecs (`tether::app::pubsub::ops` and `ops_v2`): what a
//! subscriber sends to join, the head of every publish, and what a
//! subscriber makes of a message that arrives. Bytes in, bytes or a verdict
//! out; the engine (`modes.rs`) does the sending and timing.
//!
//! - v1: `S` channel to subscribe (no reply); the publisher sends `P`; a
//!   delivery is `M`. With `verbatim`, a `P` is a delivery too: a floor
//!   server (`examples/floor_fanout.rs`) forwards the publisher's bytes unchanged.
//! - v2: SUBSCRIBE with request id [`SUBSCRIBE_ID`], answered by one
//!   SUBSCRIBE_REPLY; the publisher sends PUBLISH with request id 0 (no
//!   PUBLISH_ACK: the run measures fan-out, not acks); a delivery is a
//!   PUBLICATION.
//!
//! Every publish body starts with the send time and the sequence number (8
//! bytes each, big-endian); a delivery is timed against the former.
//!
//! Reading a delivery is the generator's hot path (millions a second), so it
//! costs the same in both protocols: the v1 `M` and a well-formed v2
//! PUBLICATION are read in place; only what is not one of those (a
//! SUBSCRIBE_REPLY, anything malformed) is copied for `ops_v2::parse_server_msg`.

use bytes::Bytes;
use tether::app::pubsub::{ops, ops_v2};
use tether::protocol::{PROTOCOL_V1, PROTOCOL_V2};

/// The request id of a v2 subscriber's one SUBSCRIBE.
pub const SUBSCRIBE_ID: u32 = 1;
/// A PUBLICATION up to its chan_len: op, epoch, offset (docs/protocol.md §7.2).
const PUBLICATION_HEAD: usize = 17;

/// What a message a subscriber received turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// A publication, sent at `sent_ns` (the publisher's clock, ns since its run started).
    Delivery {
        /// The send time from the body.
        sent_ns: u64,
    },
    /// v2: the SUBSCRIBE was answered OK.
    Subscribed,
}

/// Why a received message is not one a subscriber expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unexpected {
    /// The server sent our own request back: it runs the echo app.
    Echoed,
    /// v2: the SUBSCRIBE was answered with this status name.
    Refused(&'static str),
    /// Anything else, described.
    Malformed(String),
}

/// The fan-out wire for one run: protocol version, channel and the publish head.
#[derive(Debug)]
pub struct FanoutWire {
    version: u8,
    verbatim: bool,
    channel: Vec<u8>,
    /// Every publish up to its body: v1 `P` chan_len channel; v2 PUBLISH with request id 0.
    publish_head: Vec<u8>,
}

impl FanoutWire {
    /// The wire for protocol `version` (1 or 2) on `channel` (1..=255 bytes).
    /// `verbatim` (v1 only) also takes a `P` as a delivery.
    pub fn new(version: u8, verbatim: bool, channel: &[u8]) -> FanoutWire {
        let publish_head = if version == PROTOCOL_V2 {
            ops_v2::encode_publish(0, channel, &[])
        } else {
            ops::publish(channel, &[])
        };
        FanoutWire {
            version,
            verbatim: verbatim && version == PROTOCOL_V1,
            channel: channel.to_vec(),
            publish_head: publish_head.to_vec(),
        }
    }

    /// The protocol version the run speaks.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Whether the server answers a subscribe (v2), so publishing can wait for it.
    pub fn acknowledges_subscribe(&self) -> bool {
        self.version == PROTOCOL_V2
    }

    /// A subscriber's one message: v1 `S`, v2 SUBSCRIBE.
    pub fn subscribe(&self) -> Bytes {
        if self.version == PROTOCOL_V2 {
            ops_v2::encode_subscribe(SUBSCRIBE_ID, &self.channel, None)
        } else {
            ops::subscribe(&self.channel)
        }
    }

    /// Length of a publish whose body is `body` bytes.
    pub fn publish_len(&self, body: usize) -> usize {
        self.publish_head.len() + body
    }

    /// Replaces `out` with a publish's first bytes: the head, then the send
    /// time and sequence number that start the body (the rest is zeros).
    pub fn publish_prefix(&self, out: &mut Vec<u8>, sent_ns: u64, seq: u64) {
        out.clear();
        out.extend_from_slice(&self.publish_head);
        out.extend_from_slice(&sent_ns.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
    }

    /// Reads the first fragment of a message a subscriber received.
    pub fn incoming(&self, first: &[u8]) -> Result<Incoming, Unexpected> {
        if self.version == PROTOCOL_V2 {
            self.incoming_v2(first)
        } else {
            self.incoming_v1(first)
        }
    }

    fn incoming_v1(&self, m: &[u8]) -> Result<Incoming, Unexpected> {
        let parsed = match m.first() {
            Some(&ops::OP_PUBLISH) if self.verbatim => split_channel(&m[1..]),
            Some(&(ops::OP_SUBSCRIBE | ops::OP_PUBLISH)) => return Err(Unexpected::Echoed),
            _ => ops::parse_delivery(m),
        };
        let Some((channel, body)) = parsed else {
            return Err(malformed("not a delivery (M chan_len channel body)"));
        };
        self.delivery(channel, body)
    }

    fn incoming_v2(&self, m: &[u8]) -> Result<Incoming, Unexpected> {
        if let Some((channel, body)) = publication_in_place(m) {
            return self.delivery(channel, body);
        }
        if matches!(
            m.first(),
            Some(&(ops_v2::OP_SUBSCRIBE | ops_v2::OP_PUBLISH))
        ) {
            return Err(Unexpected::Echoed);
        }
        match ops_v2::parse_server_msg(&Bytes::copy_from_slice(m)) {
            Ok(ops_v2::ServerMsg::Publication(p)) => self.delivery(&p.channel, &p.body),
            Ok(ops_v2::ServerMsg::SubscribeReply(r)) if r.request_id != SUBSCRIBE_ID => Err(
                malformed(&format!("SUBSCRIBE_REPLY to request {}", r.request_id)),
            ),
            Ok(ops_v2::ServerMsg::SubscribeReply(r)) if r.status.is_ok() => {
                Ok(Incoming::Subscribed)
            }
            Ok(ops_v2::ServerMsg::SubscribeReply(r)) => Err(Unexpected::Refused(r.status.name())),
            Ok(ops_v2::ServerMsg::PublishAck(_)) => Err(malformed("a PUBLISH_ACK to a subscriber")),
            Ok(ops_v2::ServerMsg::UnsubscribeReply(_)) => {
                Err(malformed("an UNSUBSCRIBE_REPLY with no UNSUBSCRIBE"))
            }
            Err(e) => Err(malformed(&e.to_string())),
        }
    }

    fn delivery(&self, channel: &[u8], body: &[u8]) -> Result<Incoming, Unexpected> {
        if channel != self.channel.as_slice() {
            return Err(malformed("a delivery on another channel"));
        }
        match body.get(..8) {
            Some(t) => Ok(Incoming::Delivery {
                sent_ns: u64::from_be_bytes(t.try_into().expect("8 bytes")),
            }),
            None => Err(malformed(
                "a delivery body shorter than its 8-byte timestamp",
            )),
        }
    }
}

/// A well-formed PUBLICATION's channel and body, read in place (no copy, no
/// reference count); `None` for anything else, which `parse_server_msg`
/// then reads and names. The tests check that the two agree on every input.
fn publication_in_place(m: &[u8]) -> Option<(&[u8], &[u8])> {
    if m.first() != Some(&ops_v2::OP_PUBLICATION) {
        return None;
    }
    split_channel(m.get(PUBLICATION_HEAD..)?)
}

/// chan_len, channel, body: the layout after the op byte of a v1 `P` or `M`,
/// and after a PUBLICATION's offset.
fn split_channel(m: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = m.split_first()?;
    let len = usize::from(len);
    Some((rest.get(..len)?, &rest[len..]))
}

fn malformed(what: &str) -> Unexpected {
    Unexpected::Malformed(what.to_string())
}

#[cfg(test)]
mod tests;
