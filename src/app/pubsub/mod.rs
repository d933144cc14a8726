//! The pub/sub application: channels, fan-out encoded once and shared by
//! every subscriber, v1 sessions that survive a dropped connection for
//! `session_ttl` with a bounded queue of what they missed (docs/protocol.md
//! §5), and v2 channel streams with offsets, epochs and a bounded history,
//! from which a resubscribing client recovers what it missed (§7).
//!
//! [`PubsubState`] decides and queues its actions in the app's outbox; this
//! module's [`Pubsub`] only adds what needs the connection view (whether a
//! connection taken over or closed may have lost data, how far its output
//! limits are raised) and the clock.

pub mod engine;
mod fanout;
mod metrics;
pub mod ops;
pub mod ops_v2;
mod pending;
pub mod recovery;
pub mod redis_engine;
mod state;
pub mod streams;
mod v2;

pub use state::{PubsubLimits, PubsubState, PubsubStats, MAX_SUBSCRIPTIONS_PER_SESSION};

use super::{App, CloseEvent, ConnId, Ctx, HelloEvent, LinkEvent, MessageEvent};
use crate::config::Config;
use crate::exposition::Exposition;
use crate::protocol::{SessionId, PROTOCOL_V1};
use crate::time::Span;
use engine::Engine;
use streams::{EpochSource, HistoryLimits};

/// The pub/sub app: [`PubsubState`] behind the [`App`] boundary.
#[derive(Debug)]
pub struct Pubsub {
    state: PubsubState,
}

impl Pubsub {
    /// A pub/sub app with the server's limits and the in-memory engine;
    /// stream epochs come from `epochs` (the OS random source in the
    /// server, a counter in tests).
    pub fn new(config: &Config, epochs: Box<dyn EpochSource>) -> Self {
        Pubsub {
            state: PubsubState::new(limits(config), epochs),
        }
    }

    /// A pub/sub app with the server's limits over `engine`.
    pub fn with_engine(config: &Config, engine: Box<dyn Engine>) -> Self {
        Pubsub {
            state: PubsubState::with_engine(limits(config), engine),
        }
    }

    /// The sessions and channels.
    pub fn state(&self) -> &PubsubState {
        &self.state
    }
}

/// The state's limits from the server's configuration.
fn limits(config: &Config) -> PubsubLimits {
    let tick_ms = config.tick_ms.max(1);
    PubsubLimits {
        session_ttl_ms: config.session_ttl_ms.into(),
        session_queue: config.session_queue,
        max_frame: config.max_frame.into(),
        history: HistoryLimits {
            size: config.history_size,
            ttl: Span::from_ms(config.history_ttl_ms.into(), tick_ms),
            memory: config.history_memory,
        },
        tick_ms: tick_ms.into(),
    }
}

impl App for Pubsub {
    /// The session queue bound applies to what is queued from now on.
    fn reconfigure(&mut self, config: &Config) {
        self.state.limits.session_queue = config.session_queue;
    }

    fn on_hello(&mut self, hello: &HelloEvent<'_>, ctx: &mut Ctx<'_>) {
        // A v1 resume that takes a session over from a connection the server
        // still thinks alive: deliveries written to it after its peer last
        // spoke may be gone unseen (v1 has no acknowledgements), so say LOST.
        // v2 never says LOST (§7.7): the client's positions say what it missed.
        let old_may_have_lost = hello.hello.version == PROTOCOL_V1
            && hello
                .hello
                .resume
                .and_then(|id| self.state.attached_conn(id))
                .is_some_and(|old| ctx.data_since_rx(old));
        let now = ctx.now();
        let mut grant = self
            .state
            .handle_hello(hello.conn, hello.hello, hello.fresh, now, ctx);
        grant.lost |= grant.resumed && old_may_have_lost;
        ctx.accept(hello.conn, grant);
        self.state.handle_open(hello.conn, ctx);
    }

    fn on_message(&mut self, message: MessageEvent, ctx: &mut Ctx<'_>) {
        let (now, raise) = (ctx.now(), ctx.output_raise(message.conn));
        self.state.handle_message(&message, now, raise, ctx);
    }

    fn on_timer(&mut self, key: u64, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        self.state.handle_timer(key, now, ctx);
    }

    fn on_link(&mut self, event: LinkEvent<'_>, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        self.state.handle_link(event, now, ctx);
    }

    fn on_flush(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        self.state.flush(now, ctx);
    }

    fn on_close(&mut self, close: &CloseEvent, ctx: &mut Ctx<'_>) {
        // Same rule when the server itself noticed the death (idle timeout,
        // reset, EOF): what it wrote after the peer last spoke may be lost.
        if close.data_since_rx {
            self.state.mark_lost(close.conn);
        }
        let now = ctx.now();
        self.state.handle_close(close.conn, close.reason, now, ctx);
    }

    fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.state.session_of(conn)
    }

    fn write_metrics(&self, out: &mut Exposition) {
        metrics::write(&self.state, out);
    }
}

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod v2_tests;
