//! The values a [`RedisConn`](super::RedisConn) takes and gives: its settings, its events,
//! its refusals and its counters.

use std::time::Duration;

use bytes::Bytes;

use super::command::{Command, PubsubKind};
use super::error::{CloseReason, RedisError};
use super::frame::Value;

/// The owner's name for a command, echoed in its reply or failure.
pub type Token = u64;

/// Settings of one connection.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// ACL user for `HELLO 3 AUTH`; `default` when only a password is given.
    pub username: Option<String>,
    /// Password for `HELLO 3 AUTH`; none: no AUTH.
    pub password: Option<String>,
    /// Shown by `CLIENT LIST` (HELLO's SETNAME); no spaces.
    pub client_name: Option<String>,
    /// Commands sent and waiting for their replies at most (the pipeline).
    pub max_in_flight: usize,
    /// Commands queued or in flight at most: more are refused.
    pub max_pending: usize,
    /// Argument bytes of pending commands at most: more are refused.
    pub max_pending_bytes: usize,
    /// The largest reply accepted; a larger one closes the connection.
    pub max_reply_bytes: usize,
    /// Silence (nothing in flight) after which a PING checks the server.
    pub ping_interval: Duration,
    /// Silence while a reply is awaited after which the server is dead.
    pub timeout: Duration,
}

/// Everything but the password, which logs must not show.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("client_name", &self.client_name)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_pending", &self.max_pending)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .field("ping_interval", &self.ping_interval)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            username: None,
            password: None,
            client_name: Some("tether".to_owned()),
            max_in_flight: 1024,
            max_pending: 16 * 1024,
            max_pending_bytes: 64 << 20,
            max_reply_bytes: 64 << 20,
            ping_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What the owner learns from a connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisEvent {
    /// HELLO 3 succeeded: the server speaks RESP3 (and accepted the password).
    Ready {
        /// The server's version, e.g. `7.0.15`.
        version: String,
        /// `standalone`, `cluster` or `sentinel`.
        mode: String,
    },
    /// A command's reply.
    Reply {
        /// The command's token.
        token: Token,
        /// The reply; for a (S)(UN)SUBSCRIBE, the last confirmation's count.
        value: Value,
    },
    /// A command got an error reply or the connection ended first; the
    /// command comes back to be sent again (after a MOVED, to another node).
    Failed {
        /// The command's token.
        token: Token,
        /// Why.
        error: RedisError,
        /// The command itself.
        command: Command,
    },
    /// A publication pushed by pub/sub.
    Message {
        /// `message` (Global) or `smessage` (Sharded).
        kind: PubsubKind,
        /// The Redis channel.
        channel: Bytes,
        /// The published bytes.
        payload: Bytes,
    },
    /// Redis ended a subscription on its own (a shard channel's slot moved
    /// to another node): subscribe again where the slot now lives.
    Unsubscribed {
        /// Which pub/sub.
        kind: PubsubKind,
        /// The Redis channel.
        channel: Bytes,
    },
    /// Any other push (e.g. `pmessage`, `invalidate`), as it came.
    Push(Vec<Value>),
    /// The connection ended; it takes no more commands. Follows the
    /// `Failed` of every pending command.
    Closed(CloseReason),
}

/// Why [`RedisConn::send`](super::RedisConn::send) refused a command (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The pending bound is reached: try later or elsewhere.
    Full {
        /// Commands pending now.
        pending: usize,
        /// Their argument bytes.
        pending_bytes: usize,
    },
    /// The connection is closed.
    Closed,
    /// A command this connection cannot match replies for (MONITOR,
    /// PSUBSCRIBE, an UNSUBSCRIBE without channels, ...), or one larger
    /// than the byte bound.
    Unsupported(String),
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// Replies and error replies matched to commands (internal ones included).
    pub replies: u64,
    /// Pushes received.
    pub pushes: u64,
    /// Script calls sent again as EVAL after a NOSCRIPT.
    pub script_fallbacks: u64,
    /// Commands refused by [`RedisConn::send`](super::RedisConn::send).
    pub refused: u64,
    /// Liveness PINGs sent.
    pub pings: u64,
    /// The last PING's round trip.
    pub rtt: Option<Duration>,
}
