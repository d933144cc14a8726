//! The pub/sub application (PROTOCOL.md §5): channels, fan-out encoded once
//! and shared by every subscriber, and sessions that survive a dropped
//! connection for `session_ttl` with a bounded queue of what they missed.
//!
//! [`PubsubState`] decides; this module's [`Pubsub`] only carries its
//! actions out through the reactor's [`Ctx`].

pub mod ops;
mod state;

use bytes::Bytes;
use std::fmt::Write;

pub use state::{Action, PubsubLimits, PubsubState, PubsubStats, MAX_SUBSCRIPTIONS_PER_SESSION};

use super::{App, ConnId, SessionGrant};
use crate::config::Config;
use crate::conn::CloseReason;
use crate::protocol::{Hello, SessionId};
use crate::reactor::Ctx;

/// The pub/sub app: [`PubsubState`] wired to the reactor.
#[derive(Debug)]
pub struct Pubsub {
    state: PubsubState,
    /// Reused between callbacks so a fan-out does not allocate its action list.
    outbox: Vec<Action>,
}

impl Pubsub {
    /// A pub/sub app with the server's limits.
    pub fn new(config: &Config) -> Self {
        Pubsub {
            state: PubsubState::new(PubsubLimits {
                session_ttl_ms: config.session_ttl_ms.into(),
                session_queue: config.session_queue,
                max_frame: config.max_frame.into(),
            }),
            outbox: Vec::new(),
        }
    }

    /// The sessions and channels.
    pub fn state(&self) -> &PubsubState {
        &self.state
    }

    fn carry_out(&mut self, ctx: &mut Ctx<'_>) {
        for action in self.outbox.drain(..) {
            match action {
                Action::Send(conn, frames) => {
                    ctx.send_frames(conn, &frames);
                }
                Action::Close(conn, code, reason) => ctx.close(conn, code, reason),
                Action::Timer { after_ms, value } => {
                    ctx.set_timer(after_ms, value);
                }
            }
        }
    }
}

impl App for Pubsub {
    fn on_hello(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        hello: &Hello,
        fresh: SessionId,
    ) -> SessionGrant {
        // A resume that takes a session over from a connection the server
        // still thinks alive: deliveries written to it after its peer last
        // spoke may be gone unseen (v1 has no acknowledgements), so say LOST.
        let old_may_have_lost = hello
            .resume
            .and_then(|id| self.state.attached_conn(id))
            .is_some_and(|old| ctx.has_data_since_rx(old));
        let mut grant = self
            .state
            .handle_hello(conn, hello.resume, fresh, &mut self.outbox);
        grant.lost |= grant.resumed && old_may_have_lost;
        self.carry_out(ctx);
        grant
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        self.state.handle_open(conn, &mut self.outbox);
        self.carry_out(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Bytes) {
        let Some(session) = ctx.session(conn) else {
            return;
        };
        self.state
            .handle_message(conn, session, &message, &mut self.outbox);
        self.carry_out(ctx);
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, value: u64) {
        self.state.handle_timer(value);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, reason: CloseReason) {
        // Same rule when the server itself noticed the death (idle timeout,
        // reset, EOF): what it wrote after the peer last spoke may be lost.
        if ctx.has_data_since_rx(conn) {
            self.state.mark_lost(conn);
        }
        self.state.handle_close(conn, reason, &mut self.outbox);
        self.carry_out(ctx);
    }

    fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.state.session_of(conn)
    }

    fn write_metrics(&self, out: &mut String) {
        let s = &self.state;
        let stats = s.stats();
        let live = s.session_count();
        let detached = s.detached_count();
        let rows: [(&str, &str, &str, u64); 9] = [
            (
                "tether_sessions",
                "gauge",
                "Sessions held (attached or detached).",
                live as u64,
            ),
            (
                "tether_sessions_detached",
                "gauge",
                "Sessions waiting for a resume.",
                detached as u64,
            ),
            (
                "tether_sessions_resumed_total",
                "counter",
                "Sessions re-attached by HELLO RESUME.",
                stats.resumed,
            ),
            (
                "tether_sessions_expired_total",
                "counter",
                "Detached sessions dropped after the TTL.",
                stats.expired,
            ),
            (
                "tether_channels",
                "gauge",
                "Channels with at least one subscriber.",
                s.channel_count() as u64,
            ),
            (
                "tether_subscriptions",
                "gauge",
                "Subscriptions over all sessions.",
                s.subscription_count() as u64,
            ),
            (
                "tether_publishes_total",
                "counter",
                "Publish ops handled.",
                stats.publishes,
            ),
            (
                "tether_deliveries_total",
                "counter",
                "Deliveries sent or queued, one per subscriber.",
                stats.deliveries,
            ),
            (
                "tether_deliveries_dropped_total",
                "counter",
                "Queued deliveries dropped from full session queues.",
                stats.dropped,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}
