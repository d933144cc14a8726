//! What can go wrong talking to Redis, as values: error replies sorted by
//! the kind the engine acts on (redirects, a missing script, a loading
//! server, authentication), and the ways a connection ends.

use std::fmt;

/// The kind of an error reply, named by its first word (`-MOVED 3999
/// 127.0.0.1:6381`), so callers match on what they act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The key's slot lives on another cluster node for good: update the
    /// slot map and resend there.
    Moved {
        /// The key's hash slot.
        slot: u16,
        /// `HOST:PORT` of the node that serves it.
        addr: String,
    },
    /// The slot is being migrated: resend this one command to `addr` after
    /// an ASKING, without updating the slot map.
    Ask {
        /// The key's hash slot.
        slot: u16,
        /// `HOST:PORT` of the node importing the slot.
        addr: String,
    },
    /// EVALSHA named a script the server's cache does not hold (after a
    /// restart or SCRIPT FLUSH): send the script itself with EVAL.
    NoScript,
    /// The server is loading its dataset and answers nothing yet: retry later.
    Loading,
    /// Authentication failed or is required (WRONGPASS, NOAUTH, NOPERM).
    Auth,
    /// A multi-key command met a slot in migration (TRYAGAIN): retry later.
    TryAgain,
    /// The cluster cannot serve the slot now (CLUSTERDOWN).
    ClusterDown,
    /// Keys (or shard channels) of one command hash to different slots.
    CrossSlot,
    /// A script or function is running too long and blocks the server (BUSY).
    Busy,
    /// A write reached a read-only replica (READONLY): the topology changed.
    ReadOnly,
    /// `-ERR ...` and any prefix not listed above, e.g. a Lua error.
    Other,
}

/// An error reply from Redis: its kind and whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// What the engine does about it.
    pub kind: ErrorKind,
    /// The reply's text as Redis sent it (lossy UTF-8), e.g. `WRONGPASS invalid ...`.
    pub message: String,
}

impl ServerError {
    /// Sorts an error reply's text into its kind. Malformed redirects (a slot
    /// that is no number, a missing address) become [`ErrorKind::Other`].
    pub fn parse(text: &[u8]) -> ServerError {
        let message = String::from_utf8_lossy(text).into_owned();
        let mut words = message.split_ascii_whitespace();
        let code = words.next().unwrap_or("");
        let kind = match code {
            "MOVED" | "ASK" => match redirect(words.next(), words.next()) {
                Some((slot, addr)) if code == "MOVED" => ErrorKind::Moved { slot, addr },
                Some((slot, addr)) => ErrorKind::Ask { slot, addr },
                None => ErrorKind::Other,
            },
            "NOSCRIPT" => ErrorKind::NoScript,
            "LOADING" => ErrorKind::Loading,
            "WRONGPASS" | "NOAUTH" | "NOPERM" => ErrorKind::Auth,
            "TRYAGAIN" => ErrorKind::TryAgain,
            "CLUSTERDOWN" => ErrorKind::ClusterDown,
            "CROSSSLOT" => ErrorKind::CrossSlot,
            "BUSY" => ErrorKind::Busy,
            "READONLY" => ErrorKind::ReadOnly,
            _ => ErrorKind::Other,
        };
        ServerError { kind, message }
    }
}

/// The slot and address of a MOVED or ASK reply.
fn redirect(slot: Option<&str>, addr: Option<&str>) -> Option<(u16, String)> {
    let slot = slot?
        .parse::<u16>()
        .ok()
        .filter(|s| *s < super::slot::SLOTS)?;
    let addr = addr.filter(|a| !a.is_empty())?;
    Some((slot, addr.to_owned()))
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis replied -{}", self.message)
    }
}

/// Why a [`RedisConn`](super::RedisConn) ended. Every command still pending
/// then fails with [`RedisError::Closed`] carrying this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Redis closed the connection (end of stream).
    Eof,
    /// The socket failed; the driver's description.
    Io(String),
    /// Nothing came from Redis for the liveness timeout while a command or
    /// the liveness PING waited for its reply.
    Timeout,
    /// Redis sent bytes that are not RESP, nested deeper than the limit, a
    /// reply above the size limit, or a reply no command was waiting for.
    Protocol(String),
    /// The HELLO that opens the connection failed: a wrong password
    /// ([`ErrorKind::Auth`]), or a server without RESP3 (Redis before 6).
    Handshake(ServerError),
    /// The owner closed it with [`RedisConn::close`](super::RedisConn::close).
    Closed,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Eof => f.write_str("redis closed the connection"),
            CloseReason::Io(e) => write!(f, "redis connection failed: {e}"),
            CloseReason::Timeout => f.write_str("redis did not answer within the liveness timeout"),
            CloseReason::Protocol(e) => write!(f, "redis protocol error: {e}"),
            CloseReason::Handshake(e) => write!(f, "redis handshake (HELLO 3) failed: {e}"),
            CloseReason::Closed => f.write_str("redis connection closed by its owner"),
        }
    }
}

/// Why a command got no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisError {
    /// Redis answered with an error reply.
    Server(ServerError),
    /// The connection ended first. `sent`: the command had been handed to
    /// the socket, so Redis may have run it (a publish's outcome is
    /// unknown); otherwise it never left this process.
    Closed {
        /// Why the connection ended.
        reason: CloseReason,
        /// Whether the command had been handed out by `poll_transmit`.
        sent: bool,
    },
}

impl RedisError {
    /// The error reply's kind, if Redis answered.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            RedisError::Server(e) => Some(&e.kind),
            RedisError::Closed { .. } => None,
        }
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Server(e) => e.fmt(f),
            RedisError::Closed { reason, sent } => {
                let when = if *sent {
                    "after it was sent"
                } else {
                    "before it was sent"
                };
                write!(f, "{reason} ({when})")
            }
        }
    }
}

impl std::error::Error for RedisError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ErrorKind {
        ServerError::parse(text.as_bytes()).kind
    }

    #[test]
    fn redirects_carry_slot_and_address() {
        assert_eq!(
            kind("MOVED 3999 127.0.0.1:6381"),
            ErrorKind::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            }
        );
        assert_eq!(
            kind("ASK 16383 [::1]:7000"),
            ErrorKind::Ask {
                slot: 16383,
                addr: "[::1]:7000".into()
            }
        );
    }

    #[test]
    fn malformed_redirects_are_other() {
        for text in [
            "MOVED",
            "MOVED x 1.2.3.4:5",
            "MOVED 16384 1.2.3.4:5",
            "ASK 12",
            "",
        ] {
            assert_eq!(kind(text), ErrorKind::Other, "{text:?}");
        }
    }

    #[test]
    fn known_prefixes_are_typed() {
        assert_eq!(kind("NOSCRIPT No matching script."), ErrorKind::NoScript);
        assert_eq!(kind("LOADING Redis is loading"), ErrorKind::Loading);
        assert_eq!(
            kind("WRONGPASS invalid username-password pair"),
            ErrorKind::Auth
        );
        assert_eq!(kind("NOAUTH HELLO must be called"), ErrorKind::Auth);
        assert_eq!(kind("CROSSSLOT Keys in request"), ErrorKind::CrossSlot);
        assert_eq!(kind("ERR unknown command 'HELLO'"), ErrorKind::Other);
        let e = ServerError::parse(b"BUSY \xff script");
        assert_eq!(e.kind, ErrorKind::Busy);
        assert!(e.message.starts_with("BUSY "));
    }
}
