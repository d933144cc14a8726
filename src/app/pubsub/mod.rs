//! The pub/sub application (docs/protocol.md §5): channels, fan-out encoded
//! once and shared by every subscriber, and sessions that survive a dropped
//! connection for `session_ttl` with a bounded queue of what they missed.
//!
//! [`PubsubState`] decides and queues its actions in the app's outbox; this
//! module's [`Pubsub`] only adds what needs the connection view (whether a
//! connection taken over or closed may have lost data).

pub mod ops;
pub mod ops_v2;
mod state;
pub mod streams;

pub use state::{PubsubLimits, PubsubState, PubsubStats, MAX_SUBSCRIPTIONS_PER_SESSION};

use super::{App, CloseEvent, ConnId, Ctx, HelloEvent, MessageEvent};
use crate::config::Config;
use crate::exposition::Exposition;
use crate::protocol::SessionId;

/// The pub/sub app: [`PubsubState`] behind the [`App`] boundary.
#[derive(Debug)]
pub struct Pubsub {
    state: PubsubState,
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
        }
    }

    /// The sessions and channels.
    pub fn state(&self) -> &PubsubState {
        &self.state
    }
}

impl App for Pubsub {
    fn on_hello(&mut self, hello: &HelloEvent<'_>, ctx: &mut Ctx<'_>) {
        // A resume that takes a session over from a connection the server
        // still thinks alive: deliveries written to it after its peer last
        // spoke may be gone unseen (v1 has no acknowledgements), so say LOST.
        let old_may_have_lost = hello
            .hello
            .resume
            .and_then(|id| self.state.attached_conn(id))
            .is_some_and(|old| ctx.data_since_rx(old));
        let mut grant = self
            .state
            .handle_hello(hello.conn, hello.hello.resume, hello.fresh, ctx);
        grant.lost |= grant.resumed && old_may_have_lost;
        ctx.accept(hello.conn, grant);
        self.state.handle_open(hello.conn, ctx);
    }

    fn on_message(&mut self, message: MessageEvent, ctx: &mut Ctx<'_>) {
        self.state
            .handle_message(message.conn, message.session, &message.message, ctx);
    }

    fn on_timer(&mut self, key: u64, _ctx: &mut Ctx<'_>) {
        self.state.handle_timer(key);
    }

    fn on_close(&mut self, close: &CloseEvent, ctx: &mut Ctx<'_>) {
        // Same rule when the server itself noticed the death (idle timeout,
        // reset, EOF): what it wrote after the peer last spoke may be lost.
        if close.data_since_rx {
            self.state.mark_lost(close.conn);
        }
        self.state.handle_close(close.conn, close.reason, ctx);
    }

    fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.state.session_of(conn)
    }

    fn write_metrics(&self, out: &mut Exposition) {
        let s = &self.state;
        let stats = s.stats();
        let gauges = [
            (
                "tether_sessions",
                "Sessions held (attached or detached).",
                s.session_count(),
            ),
            (
                "tether_sessions_detached",
                "Sessions waiting for a resume.",
                s.detached_count(),
            ),
            (
                "tether_channels",
                "Channels with at least one subscriber.",
                s.channel_count(),
            ),
            (
                "tether_subscriptions",
                "Subscriptions over all sessions.",
                s.subscription_count(),
            ),
        ];
        for (name, help, value) in gauges {
            out.gauge(name, help, value as u64);
        }
        let counters = [
            (
                "tether_sessions_resumed_total",
                "Sessions re-attached by HELLO RESUME.",
                stats.resumed,
            ),
            (
                "tether_sessions_expired_total",
                "Detached sessions dropped after the TTL.",
                stats.expired,
            ),
            (
                "tether_publishes_total",
                "Publish ops handled.",
                stats.publishes,
            ),
            (
                "tether_deliveries_total",
                "Deliveries sent or queued, one per subscriber.",
                stats.deliveries,
            ),
            (
                "tether_deliveries_dropped_total",
                "Queued deliveries dropped from full session queues.",
                stats.dropped,
            ),
        ];
        for (name, help, value) in counters {
            out.counter(name, help, value);
        }
    }
}

#[cfg(test)]
mod app_tests;
