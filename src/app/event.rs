//! What an app is told: the connection ids, the events the reactor hands it,
//! and the read-only questions it may ask about connections meanwhile.
//!
//! Plain values: an app is tested by building these by hand.

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;

use crate::conn::CloseReason;
use crate::protocol::{Hello, SessionId};
use crate::tls::PeerIdentity;

/// Names one connection for its whole life: a slab key plus a generation, so
/// an id kept after the connection closed never reaches the slot's next owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The id as one number (generation in the high half), for C callers and logs.
    pub fn to_u64(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.key)
    }

    /// The inverse of [`ConnId::to_u64`]; any number is accepted (a wrong one is just stale).
    pub fn from_u64(n: u64) -> ConnId {
        ConnId {
            key: n as u32,
            generation: (n >> 32) as u32,
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key, self.generation)
    }
}

/// The app's answer to a HELLO: which session the connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionGrant {
    /// The session id sent in WELCOME.
    pub session: SessionId,
    /// The HELLO's session was found and re-attached.
    pub resumed: bool,
    /// Messages for the session were (or may have been) lost while it was detached.
    pub lost: bool,
}

impl SessionGrant {
    /// A new session, nothing resumed: the answer of apps without sessions.
    pub fn fresh(session: SessionId) -> SessionGrant {
        SessionGrant {
            session,
            resumed: false,
            lost: false,
        }
    }
}

/// A valid, authorized HELLO arrived; the app answers with
/// [`Outbox::accept`](super::Outbox::accept) (or a close).
#[derive(Debug, Clone, Copy)]
pub struct HelloEvent<'a> {
    /// The connection in its handshake.
    pub conn: ConnId,
    /// What the client sent.
    pub hello: &'a Hello,
    /// A new random session id, the right one for a connection not resuming.
    pub fresh: SessionId,
    /// With mutual TLS, who the verified client certificate says the peer is.
    pub peer_identity: Option<&'a PeerIdentity>,
}

/// A whole message arrived on an open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// Who sent it.
    pub conn: ConnId,
    /// The session its WELCOME gave it.
    pub session: SessionId,
    /// The connection's protocol version (its HELLO's: 1 or 2, §7.1).
    pub version: u8,
    /// The reassembled message.
    pub message: Bytes,
}

/// A connection is gone (its slot is being reclaimed). Comes for every
/// accepted connection, including those never accepted by the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseEvent {
    /// The connection.
    pub conn: ConnId,
    /// How it ended.
    pub reason: CloseReason,
    /// The session its WELCOME gave it (None if it never opened).
    pub session: Option<SessionId>,
    /// Application data went out after the peer last sent a frame: with no
    /// acknowledgements in protocol v1, data a silently dead peer may never
    /// have seen.
    pub data_since_rx: bool,
}

/// What an app may ask about any connection while it handles an event.
/// The reactor answers from its table; a test answers from a map.
pub trait Conns {
    /// Whether `conn` is open (WELCOME sent, not closing): sends to it are delivered.
    fn is_open(&self, conn: ConnId) -> bool;
    /// The peer's address, while the connection is there and not closed.
    fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr>;
    /// Whether application data went to `conn` after the last frame it sent
    /// (see [`CloseEvent::data_since_rx`]).
    fn data_since_rx(&self, conn: ConnId) -> bool;
    /// With mutual TLS, the names in the peer's verified certificate.
    fn peer_identity(&self, conn: ConnId) -> Option<PeerIdentity>;
    /// The protocol version `conn`'s handshake settled on (docs/protocol.md
    /// §7.1), once it has one.
    fn version(&self, conn: ConnId) -> Option<u8>;
    /// How far `conn`'s output limits are raised now by replays it was sent
    /// ([`Action::RaiseOutputLimits`](super::Action::RaiseOutputLimits)).
    fn output_raise(&self, _conn: ConnId) -> usize {
        0
    }
}

/// No connections at all: for code that runs an app outside the reactor.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoConns;

impl Conns for NoConns {
    fn is_open(&self, _conn: ConnId) -> bool {
        false
    }
    fn peer_addr(&self, _conn: ConnId) -> Option<SocketAddr> {
        None
    }
    fn data_since_rx(&self, _conn: ConnId) -> bool {
        false
    }
    fn peer_identity(&self, _conn: ConnId) -> Option<PeerIdentity> {
        None
    }
    fn version(&self, _conn: ConnId) -> Option<u8> {
        None
    }
}

/// What happened to an outbound link the app opened with
/// [`Outbox::dial`](super::Outbox::dial): the engine side of the app (a Redis
/// connection, say) is driven by these, as plain values, like connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// The TCP connection is up; queued bytes are going out.
    Connected {
        /// The app's key for the link.
        link: u64,
    },
    /// Bytes arrived, in order (a slice of the reactor's read buffer).
    Data {
        /// The link.
        link: u64,
        /// What was read.
        bytes: &'a [u8],
    },
    /// The link is gone: refused, reset, closed by the peer, or over the
    /// reactor's output bound. The key is free again.
    Closed {
        /// The link.
        link: u64,
        /// Why, for logs and metrics.
        why: &'a str,
    },
}
