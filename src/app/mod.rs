//! Applications: what DATA messages mean.
//!
//! The reactor hands an [`App`] whole messages and connection events; the app
//! answers through a [`Ctx`](crate::reactor::Ctx) handle (send to one
//! connection, send the same bytes to many, close with a GOAWAY code). Apps
//! never see sockets or clocks.

pub mod echo;
pub mod pubsub;

use bytes::Bytes;
use std::fmt;

use crate::conn::CloseReason;
use crate::protocol::{Hello, SessionId};
use crate::reactor::Ctx;

pub use echo::Echo;
pub use pubsub::Pubsub;

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
    /// Messages for the session were dropped while it was detached.
    pub lost: bool,
}

/// What a service built on the reactor implements. Every method runs on the
/// reactor thread between socket operations, so it must not block.
pub trait App {
    /// A valid HELLO arrived: choose the session. `fresh` is a new random id,
    /// the right answer for apps without sessions (the default).
    fn on_hello(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _conn: ConnId,
        _hello: &Hello,
        fresh: SessionId,
    ) -> SessionGrant {
        SessionGrant {
            session: fresh,
            resumed: false,
            lost: false,
        }
    }

    /// The connection is open (WELCOME queued); it may be sent to now.
    fn on_open(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId) {}

    /// A whole message arrived from `conn`.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Bytes);

    /// A timer set with [`Ctx::set_timer`] fired, with the value it was set with.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _value: u64) {}

    /// The session a connection is attached to, for embedders and logs (None: no sessions).
    fn session_of(&self, _conn: ConnId) -> Option<SessionId> {
        None
    }

    /// Appends the app's own lines to the Prometheus text exposition.
    fn write_metrics(&self, _out: &mut String) {}

    /// The connection is gone (its slot is being reclaimed); `reason` says how.
    /// Called for every accepted connection, including those that never
    /// finished their handshake (and so never saw `on_open`).
    fn on_close(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _reason: CloseReason) {}
}
