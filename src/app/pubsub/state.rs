//! Pub/sub state without sockets: sessions, channels, detached queues.
//!
//! Sessions are lazy: a connection that never subscribes costs nothing here
//! (its session id lives on the connection). A session entry is made at its
//! first subscription and dropped when it detaches with nothing to keep, so a
//! resume of such a session finds nothing and gets a fresh one, which is all
//! it could have had.
//!
//! Every input is a `handle_*` call; every effect is an
//! [`Action`](crate::app::Action) queued in the app's [`Outbox`] (send, close,
//! set a timer), which the reactor carries out. So fan-out,
//! resume, takeover and expiry are tested with plain values, and the test
//! can check that every subscriber got the very same delivery buffer.

use bytes::Bytes;
use slab::Slab;
use std::collections::{HashMap, HashSet, VecDeque};

use super::ops::{encode_delivery, parse_op, Op};
use crate::app::{ConnId, Outbox, SessionGrant};
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, SessionId};

/// Channels one session may subscribe to: bounds the index a peer can grow.
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 1024;

/// The limits the state obeys.
#[derive(Debug, Clone, Copy)]
pub struct PubsubLimits {
    /// How long a detached session is kept.
    pub session_ttl_ms: u64,
    /// Bytes of deliveries kept for a detached session.
    pub session_queue: usize,
    /// Frame size deliveries are split at.
    pub max_frame: usize,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct PubsubStats {
    /// Publish ops handled.
    pub publishes: u64,
    /// Deliveries sent or queued (one per subscriber per publish).
    pub deliveries: u64,
    /// Sessions re-attached by HELLO RESUME.
    pub resumed: u64,
    /// Detached sessions dropped after the TTL.
    pub expired: u64,
    /// Queued deliveries dropped because a detached queue was full.
    pub dropped: u64,
}

#[derive(Debug)]
struct Session {
    id: SessionId,
    conn: Option<ConnId>,
    channels: HashSet<Bytes>,
    /// Deliveries kept while detached, oldest first.
    queue: VecDeque<Bytes>,
    queue_bytes: usize,
    /// Deliveries were dropped since the session was last attached.
    lost: bool,
    /// The detach this session is in, so a TTL timer from an earlier detach
    /// (of this session, or of an earlier one in the same slab slot) is ignored.
    epoch: u32,
}

/// Sessions and channels.
#[derive(Debug)]
pub struct PubsubState {
    limits: PubsubLimits,
    sessions: Slab<Session>,
    by_id: HashMap<SessionId, usize>,
    by_conn: HashMap<ConnId, usize>,
    channels: HashMap<Bytes, HashSet<usize>>,
    /// Detaches so far: the source of session epochs.
    detaches: u32,
    stats: PubsubStats,
}

impl PubsubState {
    /// Empty state with these limits.
    pub fn new(limits: PubsubLimits) -> Self {
        PubsubState {
            limits,
            sessions: Slab::new(),
            by_id: HashMap::new(),
            by_conn: HashMap::new(),
            channels: HashMap::new(),
            detaches: 0,
            stats: PubsubStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> PubsubStats {
        self.stats
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
        self.channels.values().map(HashSet::len).sum()
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

    /// A HELLO: resume the named session if it is still held (taking it over
    /// from a live connection if need be), else start a fresh one.
    pub fn handle_hello(
        &mut self,
        conn: ConnId,
        resume: Option<SessionId>,
        fresh: SessionId,
        out: &mut Outbox,
    ) -> SessionGrant {
        if let Some(&key) = resume.as_ref().and_then(|id| self.by_id.get(id)) {
            let session = &mut self.sessions[key];
            if let Some(old) = session.conn.replace(conn) {
                self.by_conn.remove(&old);
                out.close(
                    old,
                    GoawayCode::SessionTakenOver,
                    "session resumed by a newer connection",
                );
            }
            let lost = std::mem::take(&mut session.lost);
            let grant = SessionGrant {
                session: session.id,
                resumed: true,
                lost,
            };
            self.by_conn.insert(conn, key);
            self.stats.resumed += 1;
            return grant;
        }
        SessionGrant {
            session: fresh,
            resumed: false,
            lost: false,
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
    fn session_key(&mut self, conn: ConnId, session: SessionId) -> usize {
        if let Some(&key) = self.by_conn.get(&conn) {
            return key;
        }
        let key = self.sessions.insert(Session {
            id: session,
            conn: Some(conn),
            channels: HashSet::new(),
            queue: VecDeque::new(),
            queue_bytes: 0,
            lost: false,
            epoch: 0,
        });
        self.by_id.insert(session, key);
        self.by_conn.insert(conn, key);
        key
    }

    /// A message from `conn` (whose WELCOME gave it `session`): a pub/sub op,
    /// or PROTOCOL_ERROR.
    pub fn handle_message(
        &mut self,
        conn: ConnId,
        session: SessionId,
        message: &Bytes,
        out: &mut Outbox,
    ) {
        match parse_op(message) {
            Ok(Op::Subscribe(channel)) => {
                let key = self.session_key(conn, session);
                let session = &mut self.sessions[key];
                if session.channels.contains(&channel) {
                    return;
                }
                if session.channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
                    out.close(conn, GoawayCode::ProtocolError, "too many subscriptions");
                    return;
                }
                session.channels.insert(channel.clone());
                self.channels.entry(channel).or_default().insert(key);
            }
            Ok(Op::Unsubscribe(channel)) => {
                let Some(&key) = self.by_conn.get(&conn) else {
                    return;
                };
                if self.sessions[key].channels.remove(&channel) {
                    self.leave_channel(&channel, key);
                }
            }
            Ok(Op::Publish { channel, body }) => self.publish(&channel, &body, out),
            Err(e) => {
                log::debug!("{conn}: {e}");
                out.close(conn, GoawayCode::ProtocolError, "malformed pub/sub message");
            }
        }
    }

    fn publish(&mut self, channel: &Bytes, body: &[u8], out: &mut Outbox) {
        self.stats.publishes += 1;
        let Some(subscribers) = self.channels.get(channel) else {
            return;
        };
        // Encoded once; every subscriber gets a clone of the same buffer.
        let frames = encode_delivery(channel, body, self.limits.max_frame);
        for &key in subscribers {
            let session = &mut self.sessions[key];
            self.stats.deliveries += 1;
            match session.conn {
                Some(conn) => out.send_frames(conn, frames.clone()),
                None => {
                    session.queue_bytes += frames.len();
                    session.queue.push_back(frames.clone());
                    while session.queue_bytes > self.limits.session_queue {
                        let Some(oldest) = session.queue.pop_front() else {
                            break;
                        };
                        session.queue_bytes -= oldest.len();
                        session.lost = true;
                        self.stats.dropped += 1;
                    }
                }
            }
        }
    }

    /// The connection is gone. GOAWAY NORMAL from the client ends its session;
    /// any other end detaches it for `session_ttl` so it can be resumed.
    pub fn handle_close(&mut self, conn: ConnId, reason: CloseReason, out: &mut Outbox) {
        let Some(key) = self.by_conn.remove(&conn) else {
            return;
        };
        let session = &mut self.sessions[key];
        let nothing_to_keep = session.channels.is_empty() && session.queue.is_empty();
        if reason == CloseReason::PeerGoaway(GoawayCode::Normal) || nothing_to_keep {
            self.end_session(key);
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

    /// A TTL timer fired: drop the session if it is still detached since then.
    pub fn handle_timer(&mut self, value: u64) {
        let key = (value >> 32) as usize;
        let epoch = value as u32;
        let expired = self
            .sessions
            .get(key)
            .is_some_and(|s| s.conn.is_none() && s.epoch == epoch);
        if expired {
            self.stats.expired += 1;
            self.end_session(key);
        }
    }

    fn end_session(&mut self, key: usize) {
        let Some(session) = self.sessions.try_remove(key) else {
            return;
        };
        self.by_id.remove(&session.id);
        for channel in &session.channels {
            self.leave_channel(channel, key);
        }
    }

    fn leave_channel(&mut self, channel: &Bytes, key: usize) {
        if let Some(set) = self.channels.get_mut(channel) {
            set.remove(&key);
            if set.is_empty() {
                self.channels.remove(channel);
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
