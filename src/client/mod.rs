//! The client side of the protocol (docs/protocol.md §4).
//!
//! Three pure parts and one driver:
//!
//! - [`machine`]: the sans-io state machine, in the quinn-proto style. Bytes
//!   and time go in through `handle_*` methods; frames to send, events and the
//!   next wake-up come out through `poll_*` methods. It performs the
//!   handshake, heartbeats, dead-peer detection, GOAWAY handling, message
//!   reassembly and splitting, and decides when to reconnect. It never reads
//!   the clock or touches a socket, so tests drive hours of virtual time in
//!   microseconds.
//! - [`backoff`]: exponential backoff with jitter and an injectable random source.
//! - [`adaptive`]: the heartbeat interval that learns how long the path
//!   (a NAT, a middlebox) tolerates silence.
//! - [`blocking`]: a small driver over `std::net::TcpStream` for programs
//!   that just want `connect`, `send`, `recv_timeout` and `close`, in
//!   plaintext or over TLS ([`ClientTls`], rustls).
//! - [`tls`] and [`tls_flags`]: the TLS settings and errors, and the
//!   command-line flags that build them.
//! - [`pubsub`]: v2 pub/sub (docs/protocol.md §7) above the connection: the
//!   sans-io [`PubsubMachine`] keeps channel positions and recovers them
//!   across reconnects, and [`PubsubClient`] drives it over [`Client`].
//!
//! Delivery is at-most-once: a message written into a connection that then
//! dies may be lost. Session resume (HELLO RESUME) lets the server keep what it
//! queued for us while we were away, and WELCOME's LOST flag says when it could not.

pub mod adaptive;
pub mod backoff;
pub mod blocking;
pub mod machine;
pub mod pubsub;
pub mod tls;
pub mod tls_flags;

pub use adaptive::{AdaptiveConfig, AdaptiveHeartbeat};
pub use backoff::{retry_after_hint, Backoff, BackoffConfig, Jitter, RandomSource, SplitMix64};
pub use blocking::Client;
pub use machine::{ClientMachine, SendError};
pub use pubsub::{PubsubClient, PubsubEvent, PubsubMachine};
pub use tls::{ClientTls, TlsError};
pub use tls_flags::{TlsFlags, TLS_FLAGS_USAGE};

use bytes::Bytes;
use std::fmt;
use std::time::Duration;

#[cfg(doc)]
use crate::protocol::PROTOCOL_V2;
use crate::protocol::{Goaway, GoawayCode, ProtocolError, SessionId, PROTOCOL_V1};

/// Everything the client can be told. Build it with `ClientConfig::default()`
/// and change the fields that matter.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The protocol version asked for in HELLO: [`PROTOCOL_V1`] (the default)
    /// or [`PROTOCOL_V2`] (channel streams, docs/protocol.md §7). WELCOME must
    /// carry the same version, else the client closes with UNSUPPORTED_VERSION
    /// and does not reconnect (§7.1; there is no fallback to v1).
    pub version: u8,
    /// The heartbeat interval asked for in HELLO, in ms; 0 lets the server choose.
    pub heartbeat_ms: u32,
    /// The shared-secret auth token (at most 255 bytes; empty when the server needs none).
    pub token: Bytes,
    /// Give up on a connection that has not got a WELCOME this long after the
    /// TCP connect (the blocking driver also bounds the connect itself by it).
    pub handshake_timeout: Duration,
    /// The peer is dead after this many heartbeat intervals with no frame received.
    pub miss: u32,
    /// The largest reassembled message accepted from the server; a bigger one
    /// is MESSAGE_TOO_LARGE. Also the bound on a message sent while the server's limit is unknown.
    /// On a v2 connection 16 more bytes are accepted: a PUBLICATION is that
    /// much longer than the v1 publish it carries (§7.2).
    pub max_message: usize,
    /// Bytes of messages held while not connected (sent after the next WELCOME);
    /// beyond it `send` fails with [`SendError::QueueFull`] rather than growing without bound.
    pub max_pending: usize,
    /// How long a closing connection waits for the peer's EOF after our GOAWAY.
    pub linger: Duration,
    /// Reconnect after a connection is lost (otherwise the first loss is final).
    pub reconnect: bool,
    /// The reconnect schedule.
    pub backoff: BackoffConfig,
    /// Tune the heartbeat to the path; `None` always uses the negotiated interval.
    pub adaptive: Option<AdaptiveConfig>,
    /// Speak TLS to the server (`None`: plaintext). The handshake timeout
    /// then also bounds the TLS handshake, and every reconnect makes a new
    /// TLS handshake (resuming the TLS session when the server allows it).
    /// The state machine itself never looks at this: it is the driver's.
    pub tls: Option<ClientTls>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            version: PROTOCOL_V1,
            heartbeat_ms: 0,
            token: Bytes::new(),
            handshake_timeout: Duration::from_secs(5),
            miss: 3,
            max_message: 1 << 20,
            max_pending: 1 << 20,
            linger: Duration::from_secs(2),
            reconnect: true,
            backoff: BackoffConfig::default(),
            adaptive: None,
            tls: None,
        }
    }
}

/// What happened, in order. `Closed` is always the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A connection attempt starts (`attempt` is 0 for the first, then the retry number).
    Connecting {
        /// Failed attempts in a row before this one.
        attempt: u32,
    },
    /// The handshake finished: the connection is open.
    Connected {
        /// The server re-attached our earlier session.
        resumed: bool,
        /// Messages for the session were dropped while we were away.
        lost: bool,
        /// The session id (resumed on the next reconnect).
        session: SessionId,
        /// The heartbeat interval in use.
        heartbeat: Duration,
    },
    /// A whole application message from the server.
    Message(Bytes),
    /// The server sent GOAWAY; the connection is closing (a `Disconnected` follows).
    Goaway(Goaway),
    /// The adaptive heartbeat moved to a new interval.
    HeartbeatChanged {
        /// The new interval.
        interval: Duration,
    },
    /// A message queued while disconnected turned out bigger than the
    /// server's `max_message` and was not sent.
    Undeliverable(Bytes),
    /// A connection (or connection attempt) ended.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The next attempt is scheduled after `delay`.
    Reconnecting {
        /// Which retry this will be (1 for the first).
        attempt: u32,
        /// How long until it starts.
        delay: Duration,
    },
    /// `max_attempts` retries in a row failed: no more attempts (`Closed` follows).
    GaveUp {
        /// How many retries were made.
        attempts: u32,
    },
    /// The client is finished: closed by us, refused for good, or gave up.
    Closed,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The TCP connect failed (the driver's error text).
    ConnectFailed(String),
    /// No WELCOME within the handshake timeout.
    HandshakeTimeout,
    /// No frame received for `miss` heartbeat intervals.
    DeadPeer {
        /// The heartbeat interval in use when it died.
        interval: Duration,
    },
    /// The server closed the stream without a GOAWAY.
    Eof,
    /// A socket error (the driver's error text).
    Io(String),
    /// The server sent GOAWAY.
    Goaway(Goaway),
    /// The server broke the protocol; we sent GOAWAY with the matching code.
    Protocol(ProtocolError),
    /// The application layer above the machine could not accept what the
    /// server sent (the v2 pub/sub layer: a reply matching no request, an
    /// unknown op; docs/protocol.md §7.2) and closed with this GOAWAY.
    Aborted {
        /// The GOAWAY code we sent (PROTOCOL_ERROR for the pub/sub layer).
        code: GoawayCode,
        /// Why, as sent in the GOAWAY's reason.
        reason: String,
    },
    /// TLS failed: a rejected certificate, a server that does not speak TLS,
    /// a corrupt or truncated stream.
    Tls(TlsError),
    /// We closed it (`close()`).
    Closed,
}

impl DisconnectReason {
    /// Whether reconnecting cannot help: the server refused us for good, gave
    /// our session to someone else, or we asked to close.
    ///
    /// A TLS certificate problem is final too, either way round (we rejected
    /// the server's certificate, or it rejected ours): like GOAWAY
    /// UNAUTHORIZED it is a mismatch of configuration that the same
    /// configuration retried cannot fix, and one that may be an attacker in
    /// the middle, which should reach the application at once rather than
    /// hide behind retries that each cost the server a handshake. An
    /// application that wants to wait out a certificate rotation can build a
    /// new `Client` with a new configuration. Other TLS failures (a corrupt or
    /// truncated stream) reconnect like socket errors.
    pub fn is_final(&self) -> bool {
        match self {
            DisconnectReason::Goaway(g) => is_final_code(g.code),
            DisconnectReason::Closed => true,
            DisconnectReason::Tls(e) => e.is_certificate(),
            // A server that answers another version than we asked for will
            // answer it again (§7.1: UNSUPPORTED_VERSION is final).
            DisconnectReason::Protocol(e) => matches!(e, ProtocolError::UnsupportedVersion(_)),
            DisconnectReason::ConnectFailed(_)
            | DisconnectReason::Aborted { .. }
            | DisconnectReason::HandshakeTimeout
            | DisconnectReason::DeadPeer { .. }
            | DisconnectReason::Eof
            | DisconnectReason::Io(_) => false,
        }
    }
}

/// GOAWAY codes after which a reconnect would only be refused again (or, for
/// SESSION_TAKEN_OVER, would steal the session back from its new owner).
/// NORMAL counts too: the server only sends it when it means "we are done".
fn is_final_code(code: GoawayCode) -> bool {
    matches!(
        code,
        GoawayCode::Normal
            | GoawayCode::Unauthorized
            | GoawayCode::UnsupportedVersion
            | GoawayCode::SessionTakenOver
    )
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            DisconnectReason::HandshakeTimeout => {
                f.write_str("no WELCOME within the handshake timeout")
            }
            DisconnectReason::DeadPeer { interval } => {
                write!(f, "peer silent for too many heartbeats of {interval:?}")
            }
            DisconnectReason::Eof => f.write_str("server closed the connection"),
            DisconnectReason::Io(e) => write!(f, "socket error: {e}"),
            DisconnectReason::Goaway(g) => write!(f, "server sent GOAWAY {}: {}", g.code, g.reason),
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::Aborted { code, reason } => {
                write!(f, "closed with GOAWAY {code}: {reason}")
            }
            DisconnectReason::Tls(e) => write!(f, "{e}"),
            DisconnectReason::Closed => f.write_str("closed by the client"),
        }
    }
}
