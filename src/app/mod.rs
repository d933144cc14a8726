//! Applications: what DATA messages mean, behind a sans-io boundary.
//!
//! The reactor hands an [`App`] events (a HELLO, a message, a timer, a
//! close) as plain values, with a [`Ctx`]: an [`Outbox`] the app queues its
//! [`Action`]s in (accept, send, send one shared buffer to many, close, set
//! and cancel timers) and a read-only view of the connections ([`Conns`]).
//! The reactor carries the actions out after the app returns. Apps never see
//! sockets, clocks or the reactor, so they are tested with plain values.
//!
//! This module and its submodules import nothing from the reactor.

pub mod echo;
mod event;
#[cfg(test)]
pub(crate) mod fake_conns;
mod outbox;
pub mod pubsub;

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

pub use echo::Echo;
pub use event::{
    CloseEvent, ConnId, Conns, HelloEvent, LinkEvent, MessageEvent, NoConns, SessionGrant,
};
pub use outbox::{Action, Outbox};
pub use pubsub::Pubsub;

use crate::exposition::Exposition;
use crate::protocol::SessionId;
use crate::time::Tick;
use crate::tls::PeerIdentity;

/// What an app gets with each event: the outbox to queue actions in
/// (reached through `Deref`, so `ctx.send(..)` queues a send) and answers
/// about connections that take this batch's accepts and closes into account.
pub struct Ctx<'a> {
    out: &'a mut Outbox,
    conns: &'a dyn Conns,
    now: Tick,
}

impl<'a> Ctx<'a> {
    /// A context over an outbox and a view of the connections, at `now`.
    pub fn new(out: &'a mut Outbox, conns: &'a dyn Conns, now: Tick) -> Ctx<'a> {
        Ctx { out, conns, now }
    }

    /// The reactor's clock for this turn (one reading per turn): apps get
    /// time from here, never from the system clock.
    pub fn now(&self) -> Tick {
        self.now
    }

    /// How far `conn`'s output limits are raised now by replays.
    pub fn output_raise(&self, conn: ConnId) -> usize {
        self.conns.output_raise(conn)
    }

    /// Whether a message sent to `conn` now will be delivered: it is open, or
    /// this batch accepts it, and this batch does not close it.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.out
            .pending_open(conn)
            .unwrap_or_else(|| self.conns.is_open(conn))
    }

    /// The peer's address, while the connection is there and not closed.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns.peer_addr(conn)
    }

    /// Whether application data went to `conn` after the last frame it sent us.
    pub fn data_since_rx(&self, conn: ConnId) -> bool {
        self.conns.data_since_rx(conn)
    }

    /// With mutual TLS, the names in `conn`'s verified client certificate.
    pub fn peer_identity(&self, conn: ConnId) -> Option<PeerIdentity> {
        self.conns.peer_identity(conn)
    }

    /// The protocol version `conn`'s handshake settled on (1 or 2), once
    /// its HELLO was accepted.
    pub fn version(&self, conn: ConnId) -> Option<u8> {
        self.conns.version(conn)
    }
}

impl Deref for Ctx<'_> {
    type Target = Outbox;
    fn deref(&self) -> &Outbox {
        self.out
    }
}

impl DerefMut for Ctx<'_> {
    fn deref_mut(&mut self) -> &mut Outbox {
        self.out
    }
}

/// What a service built on the reactor implements. Every method runs on the
/// reactor thread between socket operations, so it must not block; its
/// effects are the actions it queues in the [`Ctx`].
pub trait App {
    /// A valid HELLO arrived: accept it with a session (or close it). The
    /// default gives a fresh session and calls [`App::on_open`]; an app that
    /// does not accept leaves the connection to its handshake timeout.
    fn on_hello(&mut self, hello: &HelloEvent<'_>, ctx: &mut Ctx<'_>) {
        ctx.accept(hello.conn, SessionGrant::fresh(hello.fresh));
        self.on_open(hello.conn, ctx);
    }

    /// The default [`App::on_hello`] accepted `conn`; sends queued now follow its WELCOME.
    fn on_open(&mut self, _conn: ConnId, _ctx: &mut Ctx<'_>) {}

    /// A whole message arrived.
    fn on_message(&mut self, message: MessageEvent, ctx: &mut Ctx<'_>);

    /// The timer set with this key fired.
    fn on_timer(&mut self, _key: u64, _ctx: &mut Ctx<'_>) {}

    /// The reactor is about to write this turn's output. An app that held
    /// output back to batch it (a turn's publications to a channel as one
    /// buffer per subscriber) queues it now. Called at least once per turn.
    fn on_flush(&mut self, _ctx: &mut Ctx<'_>) {}

    /// Something happened on an outbound link the app dialed.
    fn on_link(&mut self, _event: LinkEvent<'_>, _ctx: &mut Ctx<'_>) {}

    /// The connection is gone; sends to it are ignored. Comes for every
    /// accepted connection, including those that never finished their handshake.
    fn on_close(&mut self, _close: &CloseEvent, _ctx: &mut Ctx<'_>) {}

    /// The session a connection is attached to, for embedders and logs (None: no sessions).
    fn session_of(&self, _conn: ConnId) -> Option<SessionId> {
        None
    }

    /// Adds the app's own metrics to the Prometheus text exposition.
    fn write_metrics(&self, _out: &mut Exposition) {}

    /// The configuration was reloaded (SIGHUP): take the limits that can
    /// change while running from it. Fields that need a restart are the
    /// running ones (`Config::keep_restart_only`).
    fn reconfigure(&mut self, _config: &crate::config::Config) {}
}
