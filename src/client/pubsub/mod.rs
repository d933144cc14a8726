//! The client side of v2 pub/sub (docs/protocol.md §7): channel streams that
//! survive reconnects.
//!
//! - [`PubsubMachine`]: sans-io, in the style of the connection's
//!   [`ClientMachine`](super::ClientMachine), and layered above it: it takes
//!   the connection's events (connected, a whole DATA message, disconnected)
//!   and the time, and gives DATA payloads to send and [`PubsubEvent`]s. It
//!   does the client duties of §7.6: it keeps each wanted channel's position,
//!   resubscribes with it after every WELCOME, delivers every publication
//!   once and in offset order, and repairs gaps by resubscribing.
//! - [`PubsubClient`]: a blocking driver of both machines over the
//!   [`blocking`](super::blocking) client, for programs (and `tether-cli`).

use bytes::Bytes;
use std::fmt;

pub use crate::app::pubsub::ops_v2::{OpError, Position, RecoveryReason, Status};

mod blocking;
mod machine;

pub use blocking::{PubsubClient, PubsubClientError};
pub use machine::{PubsubConfig, PubsubMachine};

#[cfg(test)]
mod tests;

use super::DisconnectReason;

/// Names one acknowledged publish for its outcome event. Counted by the
/// machine for its whole life, unlike request ids, which restart with every
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishId(pub u64);

impl fmt::Display for PublishId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happened, in order, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubsubEvent {
    /// A connection opened (WELCOME); every wanted channel is being resubscribed.
    Connected {
        /// The server re-attached our session (v2 keeps nothing in it, §7.7).
        resumed: bool,
    },
    /// The connection ended; acknowledged publishes still waiting follow as
    /// [`PubsubEvent::PublishUnknown`], and a reconnect may follow.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// A SUBSCRIBE succeeded: publications of the channel follow from the
    /// position kept (recovered) or from `top + 1` (not recovered).
    Subscribed {
        /// The channel.
        channel: Bytes,
        /// The stream's epoch.
        epoch: u64,
        /// The stream's top offset when the server answered.
        top: u64,
        /// Every publication after our position is being replayed.
        recovered: bool,
        /// How many replayed publications follow (0 unless recovered).
        replayed: u32,
    },
    /// A publication, delivered exactly once and in offset order.
    Message {
        /// The channel.
        channel: Bytes,
        /// The stream's epoch.
        epoch: u64,
        /// The publication's offset in the epoch.
        offset: u64,
        /// The published body.
        payload: Bytes,
    },
    /// A resubscribe could not recover what was missed: publications after
    /// `old` and up to `new` may be lost. Delivery goes on after `new`.
    RecoveryFailed {
        /// The channel.
        channel: Bytes,
        /// Why, as the server said.
        reason: RecoveryReason,
        /// Our position before.
        old: Position,
        /// The stream's position now (its epoch and top).
        new: Position,
    },
    /// The server refused a subscription for good (any status but
    /// UNAVAILABLE, which is retried); the channel is no longer wanted.
    SubscribeFailed {
        /// The channel.
        channel: Bytes,
        /// The refusal.
        status: Status,
    },
    /// An acknowledged publish was published.
    PublishAcked {
        /// The publish.
        id: PublishId,
        /// Its channel.
        channel: Bytes,
        /// The stream's epoch.
        epoch: u64,
        /// The publication's offset.
        offset: u64,
    },
    /// An acknowledged publish was refused: nothing was published.
    PublishFailed {
        /// The publish.
        id: PublishId,
        /// Its channel.
        channel: Bytes,
        /// The refusal.
        status: Status,
    },
    /// The connection ended before an acknowledged publish's answer, or the
    /// answer was OUTCOME_UNKNOWN: it may or may not have been published, and it is not resent (§7.6.5: v2 has
    /// no idempotency key, a resend could publish twice).
    PublishUnknown {
        /// The publish.
        id: PublishId,
        /// Its channel.
        channel: Bytes,
    },
}

/// Why a pub/sub call was refused locally; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubsubError {
    /// A channel must be 1..=255 bytes.
    BadChannel {
        /// The length given.
        len: usize,
    },
    /// A position's epoch is never 0.
    ZeroEpoch,
    /// No connection is open: publishes are not held across reconnects.
    NotConnected,
    /// The PUBLISH would be above the server's `max_message`.
    TooLarge {
        /// The PUBLISH's length.
        len: usize,
        /// The server's limit.
        max: usize,
    },
    /// Too many requests await their replies on this connection.
    TooManyRequests {
        /// The limit ([`PubsubConfig::max_requests`]).
        max: usize,
    },
}

impl fmt::Display for PubsubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PubsubError::BadChannel { len } => {
                write!(f, "a channel is 1..=255 bytes, this one is {len}")
            }
            PubsubError::ZeroEpoch => f.write_str("a position's epoch is never 0"),
            PubsubError::NotConnected => f.write_str("not connected"),
            PubsubError::TooLarge { len, max } => {
                write!(
                    f,
                    "publish of {len} bytes is above the server's max_message {max}"
                )
            }
            PubsubError::TooManyRequests { max } => {
                write!(f, "{max} requests already await their replies")
            }
        }
    }
}

impl std::error::Error for PubsubError {}

/// A server message the client cannot accept: it closes the connection with
/// GOAWAY PROTOCOL_ERROR (§7.2, common rules) and reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubsubProtocolError {
    /// Not a v2 server message: empty, an unknown op, a bad length.
    Malformed(OpError),
    /// A reply whose request id matches no request of its kind pending on
    /// this connection.
    Unmatched {
        /// The reply's op name, as docs/protocol.md spells it.
        reply: &'static str,
        /// Its request id.
        request_id: u32,
    },
    /// A SUBSCRIBED no correct server sends (§7.2, common rules): epoch 0,
    /// RECOVERED for a SUBSCRIBE without a position, or a replay without RECOVERED.
    BadSubscribed {
        /// Its request id.
        request_id: u32,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A PUBLISH_ACK OK with epoch 0 or offset 0.
    BadAck {
        /// Its request id.
        request_id: u32,
    },
    /// A PUBLICATION with epoch 0 or offset 0.
    BadPublication {
        /// Its epoch.
        epoch: u64,
        /// Its offset.
        offset: u64,
    },
}

impl fmt::Display for PubsubProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PubsubProtocolError::Malformed(e) => write!(f, "{e}"),
            PubsubProtocolError::Unmatched { reply, request_id } => {
                write!(f, "{reply} for request {request_id}, which is not pending")
            }
            PubsubProtocolError::BadSubscribed { request_id, why } => {
                write!(f, "SUBSCRIBE_REPLY for request {request_id}: {why}")
            }
            PubsubProtocolError::BadAck { request_id } => {
                write!(
                    f,
                    "PUBLISH_ACK OK for request {request_id} with epoch or offset 0"
                )
            }
            PubsubProtocolError::BadPublication { epoch, offset } => {
                write!(
                    f,
                    "PUBLICATION with epoch {epoch:#x} and offset {offset}: neither is ever 0"
                )
            }
        }
    }
}

impl std::error::Error for PubsubProtocolError {}

/// Checks a channel name's length (§7.2: 1..=255 bytes).
fn check_channel(channel: &[u8]) -> Result<(), PubsubError> {
    if channel.is_empty() || channel.len() > usize::from(u8::MAX) {
        return Err(PubsubError::BadChannel { len: channel.len() });
    }
    Ok(())
}
