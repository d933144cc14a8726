//! Pub/sub state without sockets: sessions, channels, detached queues and the
//! channel streams of protocol v2.
//!
//! Sessions are lazy: a connection that never subscribes costs nothing here
//! (its session id lives on the connection). A session entry is made at its
//! first subscription and dropped when it detaches with nothing to keep, so a
//! resume of such a session finds nothing and gets a fresh one, which is all
//! it could have had. A v1 session may be detached and resumed
//! (docs/protocol.md §5.3); a v2 session lives exactly as long as its
//! connection (§7.7), since a v2 client restores its subscriptions itself.
//!
//! Every publication, v1 or v2, is numbered in its channel's stream
//! ([`Streams`]) and queued to the members in the turn's batch (`fanout.rs`).
//! The v2 requests are answered in `v2.rs`.
//!
//! Every input is a `handle_*` call; every effect is an
//! [`Action`](crate::app::Action) queued in the app's [`Outbox`] (send, close,
//! set a timer), which the reactor carries out. So fan-out, resume, takeover,
//! recovery and expiry are tested with plain values.

use bytes::Bytes;
use slab::Slab;
use std::collections::{HashMap, HashSet, VecDeque};

use super::engine::{Engine, MemoryEngine};
use super::fanout::Channel;
use super::ops::{parse_op, Op};
use super::pending::PendingOps;
use super::streams::{EpochSource, HistoryLimits, StreamStats, Streams};
use crate::app::{ConnId, LinkEvent, MessageEvent, Outbox, SessionGrant};
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, Hello, SessionId, PROTOCOL_V2};
use crate::time::Tick;

/// Channels one session may subscribe to: bounds the index a peer can grow.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 1024;

/// The app timer key of the streams' expiry. Session TTL timers are
/// `slab key << 32 | detach epoch`, which never reach it (slab keys stay far
/// below 2^32 - 1).
pub(super) const STREAMS_TIMER: u64 = u64::MAX;

/// The limits the state obeys.
#[derive(Debug, Clone, Copy)]
pub struct PubsubLimits {
    /// How long a detached session is kept.
    pub session_ttl_ms: u64,
    /// Bytes of deliveries kept for a detached session.
    pub session_queue: usize,
    /// Frame size deliveries are split at.
    pub max_frame: usize,
    /// The channel streams' history (docs/protocol.md §7.3).
    pub history: HistoryLimits,
    /// The length of a tick in ms, to turn the streams' deadlines into timers.
    pub tick_ms: u64,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct PubsubStats {
    /// Publish ops handled (v1 `P` and v2 PUBLISH published).
    pub publishes: u64,
    /// Deliveries sent or queued (one per subscriber per publish).
    pub deliveries: u64,
    /// Sessions re-attached by HELLO RESUME.
    pub resumed: u64,
    /// Detached sessions dropped after the TTL.
    pub expired: u64,
    /// Queued deliveries dropped because a detached queue was full.
    pub dropped: u64,
    /// v2 PUBLISHes answered with a PUBLISH_ACK OK.
    pub publishes_acked: u64,
    /// v2 PUBLISHes refused (acknowledged or not).
    pub publishes_refused: u64,
    /// v2 SUBSCRIBEs refused.
    pub subscribes_refused: u64,
}

#[derive(Debug)]
pub(super) struct Session {
    pub id: SessionId,
    pub conn: Option<ConnId>,
    /// Protocol v2: no detach, no queue; deliveries are PUBLICATIONs.
    pub v2: bool,
    pub channels: HashSet<Bytes>,
    /// Deliveries kept while detached (v1), oldest first.
    pub queue: VecDeque<Bytes>,
    pub queue_bytes: usize,
    /// v2 subscriptions waiting for the engine's answer (`pending.rs`).
    pub pending: usize,
    /// Deliveries were dropped since the session was last attached.
    pub lost: bool,
    /// The detach this session is in, so a TTL timer from an earlier detach
    /// (of this session, or of an earlier one in the same slab slot) is ignored.
    pub epoch: u32,
}

/// Sessions, channels and streams.
#[derive(Debug)]
pub struct PubsubState {
    pub(super) limits: PubsubLimits,
    pub(super) sessions: Slab<Session>,
    pub(super) by_id: HashMap<SessionId, usize>,
    pub(super) by_conn: HashMap<ConnId, usize>,
    pub(super) channels: HashMap<Bytes, Channel>,
    /// Channels with publications of this turn not yet queued to members.
    pub(super) pending: Vec<Bytes>,
    /// Where publications and history live.
    pub(super) engine: Box<dyn Engine>,
    /// Requests the engine answers later.
    pub(super) pending_ops: PendingOps,
    /// Detaches so far: the source of session epochs.
    detaches: u32,
    pub(super) stats: PubsubStats,
}

impl PubsubState {
    /// Empty state with these limits and the in-memory engine; stream epochs
    /// come from `epochs`.
    pub fn new(limits: PubsubLimits, epochs: Box<dyn EpochSource>) -> Self {
        let engine = MemoryEngine::new(limits.history, epochs, limits.max_frame, limits.tick_ms);
        Self::with_engine(limits, Box::new(engine))
    }

    /// Empty state with these limits, over `engine`.
    pub fn with_engine(limits: PubsubLimits, engine: Box<dyn Engine>) -> Self {
        PubsubState {
            limits,
            sessions: Slab::new(),
            by_id: HashMap::new(),
            by_conn: HashMap::new(),
            channels: HashMap::new(),
            pending: Vec::new(),
            engine,
            pending_ops: PendingOps::default(),
            detaches: 0,
            stats: PubsubStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> PubsubStats {
        self.stats
    }

    /// The streams' counters and gauges.
    pub fn stream_stats(&self) -> StreamStats {
        self.engine.stream_stats()
    }

    /// The channel streams (epochs, tops, history), with the in-memory engine.
    pub fn streams(&self) -> Option<&Streams> {
        self.engine.streams()
    }

    /// The engine, for its metrics.
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Subscriptions and publishes waiting for the engine's answer.
    pub fn pending_counts(&self) -> (usize, usize) {
        (self.pending_ops.subscribes(), self.pending_ops.publishes())
    }

    /// Sessions held, attached or not.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions with no connection, waiting for a resume.
    pub fn detached_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|(_, s)| s.conn.is_none())
            .count()
    }

    /// Channels with at least one subscriber.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Subscriptions over all sessions.
    pub fn subscription_count(&self) -> usize {
        self.channels.values().map(|c| c.members.len()).sum()
    }

    /// The connection a session is attached to, if it is held and attached.
    pub fn attached_conn(&self, session: SessionId) -> Option<ConnId> {
        let key = *self.by_id.get(&session)?;
        self.sessions.get(key).and_then(|s| s.conn)
    }

    /// Marks `conn`'s session as having lost deliveries (reported as LOST at
    /// its next resume): the connection died with deliveries it may not have
    /// received.
    pub fn mark_lost(&mut self, conn: ConnId) {
        if let Some(&key) = self.by_conn.get(&conn) {
            self.sessions[key].lost = true;
        }
    }

    /// The session attached to `conn`, if any.
    pub fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        let key = *self.by_conn.get(&conn)?;
        self.sessions.get(key).map(|s| s.id)
    }

    /// A HELLO of protocol `version`: resume the named session if it is held
    /// and of the same version (taking it over from a live connection if need
    /// be), else start a fresh one. A v2 session taken over starts with no
    /// subscriptions (§7.7): its client subscribes again.
    pub fn handle_hello(
        &mut self,
        conn: ConnId,
        hello: &Hello,
        fresh: SessionId,
        now: Tick,
        out: &mut Outbox,
    ) -> SessionGrant {
        let v2 = hello.version == PROTOCOL_V2;
        let held = hello
            .resume
            .as_ref()
            .and_then(|id| self.by_id.get(id))
            .copied()
            .filter(|&key| self.sessions[key].v2 == v2);
        let Some(key) = held else {
            return SessionGrant::fresh(fresh);
        };
        let session = &mut self.sessions[key];
        let id = session.id;
        let old = session.conn;
        if let Some(old) = old {
            out.close(
                old,
                GoawayCode::SessionTakenOver,
                "session resumed by a newer connection",
            );
        }
        self.stats.resumed += 1;
        if v2 {
            // Its subscriptions were the old connection's (which the new one
            // never sees): they end with it, and the new connection makes
            // them again with its SUBSCRIBEs, under the same id.
            self.end_session(key, now, out);
            return SessionGrant {
                session: id,
                resumed: true,
                lost: false,
            };
        }
        if let Some(old) = old {
            self.by_conn.remove(&old);
        }
        let session = &mut self.sessions[key];
        session.conn = Some(conn);
        let lost = std::mem::take(&mut session.lost);
        self.by_conn.insert(conn, key);
        SessionGrant {
            session: id,
            resumed: true,
            lost,
        }
    }

    /// The connection is open (WELCOME queued): deliver what its session kept, in order.
    pub fn handle_open(&mut self, conn: ConnId, out: &mut Outbox) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let session = &mut self.sessions[key];
        session.queue_bytes = 0;
        for frames in std::mem::take(&mut session.queue) {
            out.send_frames(conn, frames);
        }
    }

    /// The session entry of `conn`, made now if it has none yet.
    pub(super) fn session_key(&mut self, conn: ConnId, session: SessionId, v2: bool) -> usize {
        if let Some(&key) = self.by_conn.get(&conn) {
            return key;
        }
        let key = self.sessions.insert(Session {
            id: session,
            conn: Some(conn),
            v2,
            channels: HashSet::new(),
            queue: VecDeque::new(),
            queue_bytes: 0,
            pending: 0,
            lost: false,
            epoch: 0,
        });
        self.by_id.insert(session, key);
        self.by_conn.insert(conn, key);
        key
    }

    /// A message from an open connection at `now`: a pub/sub op of its
    /// version, or PROTOCOL_ERROR. `output_raise` is how far the connection's
    /// output limits are raised already (it bounds a replay, §7.4).
    pub fn handle_message(
        &mut self,
        event: &MessageEvent,
        now: Tick,
        output_raise: usize,
        out: &mut Outbox,
    ) {
        if event.version == PROTOCOL_V2 {
            return self.handle_v2(event, now, output_raise, out);
        }
        let conn = event.conn;
        match parse_op(&event.message) {
            Ok(Op::Subscribe(channel)) => {
                let key = self.session_key(conn, event.session, false);
                let session = &self.sessions[key];
                if session.channels.contains(&channel) {
                    return;
                }
                if session.channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
                    out.close(conn, GoawayCode::ProtocolError, "too many subscriptions");
                    return;
                }
                // Nobody waits for the answer: v1 has no SUBSCRIBE reply.
                let _ = self.engine.subscribe(0, &channel, None, 0, now);
                self.join(key, channel, out);
            }
            Ok(Op::Unsubscribe(channel)) => {
                let Some(&key) = self.by_conn.get(&conn) else {
                    return;
                };
                self.leave(key, &channel, now, out);
            }
            Ok(Op::Publish { channel, body }) => {
                // Token 0: v1 has no acknowledgement.
                let _ = self.publish(0, &channel, &body, now, out);
            }
            Err(e) => {
                log::debug!("{conn}: {e}");
                out.close(conn, GoawayCode::ProtocolError, "malformed pub/sub message");
            }
        }
    }

    /// The connection is gone. A v2 session ends with it; GOAWAY NORMAL from
    /// a v1 client ends its session; any other end detaches a v1 session for
    /// `session_ttl` so it can be resumed.
    pub fn handle_close(&mut self, conn: ConnId, reason: CloseReason, now: Tick, out: &mut Outbox) {
        let Some(key) = self.by_conn.remove(&conn) else {
            return;
        };
        let session = &mut self.sessions[key];
        let nothing_to_keep = session.channels.is_empty() && session.queue.is_empty();
        if session.v2 || reason == CloseReason::PeerGoaway(GoawayCode::Normal) || nothing_to_keep {
            self.end_session(key, now, out);
            return;
        }
        session.conn = None;
        // From a counter of the whole state, never the session's own: a slab
        // key is reused once a session ends, and a new session restarting at
        // the old one's epoch would be expired by the old one's timer.
        self.detaches = self.detaches.wrapping_add(1);
        session.epoch = self.detaches;
        out.set_timer(
            (key as u64) << 32 | u64::from(session.epoch),
            self.limits.session_ttl_ms,
        );
    }

    /// A timer fired at `now`: the streams' expiry, or a session's TTL (drop
    /// the session if it is still detached since then).
    pub fn handle_timer(&mut self, value: u64, now: Tick, out: &mut Outbox) {
        if self.engine.on_timer(value, now, out) {
            self.drain_engine(now, out);
            return;
        }
        let key = (value >> 32) as usize;
        let epoch = value as u32;
        let expired = self
            .sessions
            .get(key)
            .is_some_and(|s| s.conn.is_none() && s.epoch == epoch);
        if expired {
            self.stats.expired += 1;
            self.end_session(key, now, out);
            self.engine.flush(now, out);
            self.drain_engine(now, out);
        }
    }

    /// Something happened on one of the engine's links.
    pub fn handle_link(&mut self, event: LinkEvent<'_>, now: Tick, out: &mut Outbox) {
        self.engine.on_link(event, now, out);
        self.drain_engine(now, out);
    }

    /// End of the turn's input: queues the turn's publications (one buffer
    /// per channel and member) and sets the streams' expiry timer.
    pub fn flush(&mut self, now: Tick, out: &mut Outbox) {
        self.drain_engine(now, out);
        self.flush_deliveries(out);
        self.engine.flush(now, out);
        // What the engine's flush answered at once (a read it could not
        // send): replies only, queued directly.
        self.drain_engine(now, out);
    }

    /// Queues the turn's publications to their channels' members, one
    /// buffer per channel, version and member (see `fanout.rs`).
    pub fn flush_deliveries(&mut self, out: &mut Outbox) {
        self.flush_pending(out);
    }

    /// Drops a session and its subscriptions. Its channels are left first,
    /// while it is still a session: leaving queues a channel's pending
    /// batch to every member, this one included.
    pub(super) fn end_session(&mut self, key: usize, now: Tick, out: &mut Outbox) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        let channels = std::mem::take(&mut session.channels);
        let v2 = session.v2;
        for channel in &channels {
            self.leave_channel(channel, key, v2, out);
            self.engine.unsubscribe(channel, now);
        }
        let session = self.sessions.remove(key);
        self.by_id.remove(&session.id);
        if let Some(conn) = session.conn {
            if self.by_conn.get(&conn) == Some(&key) {
                self.by_conn.remove(&conn);
            }
        }
        if session.pending > 0 {
            self.drop_pending_of(key, now);
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
