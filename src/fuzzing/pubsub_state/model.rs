//! The model of [`PubsubState`](crate::app::pubsub::PubsubState): sessions
//! (v1 detach, queue, LOST and resume; v2 sessions that end with their
//! connection), channel membership and the per-turn fan-out batches, and
//! what every event must make the state do, as [`Exp`]ectations per
//! connection in a [`Ledger`].
//!
//! Fan-out follows the documented batching (`fanout.rs`): a publication is
//! numbered at once and queued to the channel's members when the channel is
//! flushed, which is at the end of the turn and before anything changes the
//! channel's membership. Sends to a connection that is not open (not yet
//! accepted, or closing) are dropped by the connection, so none is expected.

use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::model_v2::MStreams;
use crate::app::pubsub::ops::{encode_delivery, Op};
use crate::app::pubsub::{PubsubLimits, MAX_SUBSCRIPTIONS_PER_SESSION};
use crate::app::{ConnId, SessionGrant};
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, SessionId};
use crate::time::Tick;

/// The app timer key of the streams' expiry (`state.rs`: `u64::MAX`, which
/// session TTL timers never reach).
pub(super) const STREAMS_TIMER: u64 = u64::MAX;

/// Where an expected action belongs on its connection. Within a lane the
/// order is promised (§7.5: per channel; v1 queues in order); lanes may
/// interleave in any order (e.g. two channels flushed at the end of a turn,
/// or a PUBLISH_ACK and the publisher's own PUBLICATION).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Lane {
    /// A channel's replies, replay and deliveries.
    Channel(Bytes),
    /// PUBLISH_ACKs.
    Acks,
    /// The rest: a resumed session's queue, closes.
    Conn,
}

/// An action the state must take for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Exp {
    /// These bytes (compared by content).
    Send(Bytes),
    /// Output limits raised by this much.
    Raise(usize),
    /// GOAWAY with this code and reason.
    Close(GoawayCode, String),
}

/// The expected actions of one event, per connection and lane, in order.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    conns: BTreeMap<ConnId, BTreeMap<Lane, VecDeque<Exp>>>,
    /// Expected `SetTimer`s: (key, after_ms); a key of `None` is a session
    /// TTL timer, whose key the state chooses.
    pub timers: Vec<(Option<u64>, u64)>,
}

impl Ledger {
    pub fn push(&mut self, conn: ConnId, lane: Lane, exp: Exp) {
        let lanes = self.conns.entry(conn).or_default();
        lanes.entry(lane).or_default().push_back(exp);
    }

    /// Takes `got` off the front of one of `conn`'s lanes; false if no lane
    /// expects it next.
    pub fn take(&mut self, conn: ConnId, got: &Exp) -> bool {
        let Some(lanes) = self.conns.get_mut(&conn) else {
            return false;
        };
        let Some(queue) = lanes.values_mut().find(|q| q.front() == Some(got)) else {
            return false;
        };
        queue.pop_front();
        lanes.retain(|_, q| !q.is_empty());
        if lanes.is_empty() {
            self.conns.remove(&conn);
        }
        true
    }

    /// What `conn` is still expected to get, for failure messages.
    pub fn fronts(&self, conn: ConnId) -> Vec<(&Lane, &Exp)> {
        self.conns
            .get(&conn)
            .map(|lanes| {
                lanes
                    .iter()
                    .filter_map(|(l, q)| Some((l, q.front()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Panics unless every expectation was met.
    pub fn assert_empty(&self, what: &str) {
        assert!(
            self.conns.is_empty() && self.timers.is_empty(),
            "{what}: expected actions missing: {:?}, timers {:?}",
            self.conns,
            self.timers
        );
    }
}

/// A session as the model sees it.
#[derive(Debug)]
pub(super) struct MSession {
    pub conn: Option<ConnId>,
    pub v2: bool,
    pub channels: BTreeSet<Bytes>,
    /// v1, detached: deliveries kept, oldest first.
    pub queue: VecDeque<Bytes>,
    pub queue_bytes: usize,
    pub lost: bool,
    /// The value of the TTL timer set at its latest detach.
    pub timer: Option<u64>,
}

/// A publication of this turn not yet queued to the channel's members.
#[derive(Debug)]
struct Pending {
    /// Its PUBLICATION frames (v2 members).
    v2: Bytes,
    /// Its `M` frames (v1 members).
    v1: Bytes,
}

/// A channel with members.
#[derive(Debug, Default)]
struct MChannel {
    members: HashSet<SessionId>,
    batch: Vec<Pending>,
}

/// Sessions, channels, streams, and what the state must do next.
#[derive(Debug)]
pub(super) struct Model {
    pub limits: PubsubLimits,
    pub sessions: HashMap<SessionId, MSession>,
    channels: BTreeMap<Bytes, MChannel>,
    /// Channels in the order of their first publication of the turn: the
    /// order the turn's end flushes them in, which decides the order of a
    /// detached v1 session's queue (and so what a full one drops).
    pending: Vec<Bytes>,
    pub streams: MStreams,
    /// Connections accepted and not closing: the only ones Sends reach.
    pub open: BTreeSet<ConnId>,
    /// The tick the streams' expiry timer is set for.
    armed: Option<Tick>,
    pub ledger: Ledger,
}

fn joined(parts: impl Iterator<Item = Bytes>) -> Bytes {
    let mut all = BytesMut::new();
    for part in parts {
        all.extend_from_slice(&part);
    }
    all.freeze()
}

impl Model {
    pub fn new(limits: PubsubLimits) -> Self {
        Model {
            limits,
            sessions: HashMap::new(),
            channels: BTreeMap::new(),
            pending: Vec::new(),
            streams: MStreams::new(limits.history, limits.max_frame),
            open: BTreeSet::new(),
            armed: None,
            ledger: Ledger::default(),
        }
    }

    /// The session attached to `conn`.
    pub fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.sessions
            .iter()
            .find(|(_, s)| s.conn == Some(conn))
            .map(|(id, _)| *id)
    }

    /// `conn`'s session, made now (as `id`, its WELCOME's) if it has none.
    pub fn session_for(&mut self, conn: ConnId, id: SessionId, v2: bool) -> SessionId {
        if let Some(held) = self.session_of(conn) {
            return held;
        }
        let made = MSession {
            conn: Some(conn),
            v2,
            channels: BTreeSet::new(),
            queue: VecDeque::new(),
            queue_bytes: 0,
            lost: false,
            timer: None,
        };
        assert!(
            self.sessions.insert(id, made).is_none(),
            "session {id} twice"
        );
        id
    }

    /// The state closes `conn` with GOAWAY: expected, and the connection is
    /// no longer open (later sends to it are dropped).
    pub fn expect_close(&mut self, conn: ConnId, code: GoawayCode, reason: &str) {
        self.ledger
            .push(conn, Lane::Conn, Exp::Close(code, reason.into()));
        self.open.remove(&conn);
    }

    /// A HELLO of protocol v1 or v2: the grant, and a takeover's close.
    pub fn hello(
        &mut self,
        conn: ConnId,
        v2: bool,
        resume: Option<SessionId>,
        fresh: SessionId,
        now: Tick,
    ) -> SessionGrant {
        let held = resume.filter(|id| self.sessions.get(id).is_some_and(|s| s.v2 == v2));
        let Some(id) = held else {
            return SessionGrant::fresh(fresh);
        };
        let s = self.sessions.get_mut(&id).expect("held");
        let old = s.conn.replace(conn);
        s.timer = None;
        let lost = std::mem::take(&mut s.lost);
        if let Some(old) = old {
            self.expect_close(old, GoawayCode::SessionTakenOver, TAKEN_OVER);
        }
        if v2 {
            // Its subscriptions were the old connection's (§7.7).
            self.end_session(id, now);
        }
        SessionGrant {
            session: id,
            resumed: true,
            lost: lost && !v2,
        }
    }

    /// The connection is open: a resumed v1 session's queue goes out, in order.
    pub fn open(&mut self, conn: ConnId) {
        let Some(id) = self.session_of(conn) else {
            return;
        };
        let s = self.sessions.get_mut(&id).expect("attached");
        s.queue_bytes = 0;
        for frames in std::mem::take(&mut s.queue) {
            self.ledger.push(conn, Lane::Conn, Exp::Send(frames));
        }
    }

    /// A parsed v1 op from `conn`.
    pub fn v1_op(&mut self, conn: ConnId, session: SessionId, op: Op, now: Tick) {
        match op {
            Op::Subscribe(channel) => {
                let id = self.session_for(conn, session, false);
                let channels = &self.sessions[&id].channels;
                if channels.contains(&channel) {
                    return;
                }
                if channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
                    return self.expect_close(
                        conn,
                        GoawayCode::ProtocolError,
                        "too many subscriptions",
                    );
                }
                self.streams.subscribe(&channel, None, 0, now, 0);
                self.join(id, &channel);
            }
            Op::Unsubscribe(channel) => {
                if let Some(id) = self.session_of(conn) {
                    self.leave(id, &channel, now);
                }
            }
            Op::Publish { channel, body } => {
                self.publish(&channel, &body, now);
            }
        }
    }

    /// Numbers and stores a publication, and adds it to the channel's batch
    /// if it has members. Returns (epoch, offset).
    pub fn publish(&mut self, channel: &Bytes, body: &[u8], now: Tick) -> (u64, u64) {
        // A publication to another channel first queues the pending batch:
        // publish order holds across channels (§5.2).
        if self
            .pending
            .first()
            .is_some_and(|pending| pending != channel)
        {
            for pending in std::mem::take(&mut self.pending) {
                self.flush_channel(&pending);
            }
        }
        let (epoch, offset, v2) = self.streams.publish(channel, body, now);
        if let Some(ch) = self.channels.get_mut(channel) {
            let v1 = encode_delivery(channel, body, self.limits.max_frame);
            if ch.batch.is_empty() {
                self.pending.push(channel.clone());
            }
            ch.batch.push(Pending { v2, v1 });
        }
        (epoch, offset)
    }

    /// Session `id` joins `channel` (after the channel's batch is flushed).
    pub fn join(&mut self, id: SessionId, channel: &Bytes) {
        self.flush_channel(channel);
        let s = self.sessions.get_mut(&id).expect("joining session");
        s.channels.insert(channel.clone());
        let ch = self.channels.entry(channel.clone()).or_default();
        ch.members.insert(id);
    }

    /// Session `id` leaves `channel` if subscribed (after the channel's
    /// batch is flushed: the leaver still gets it).
    pub fn leave(&mut self, id: SessionId, channel: &Bytes, now: Tick) {
        let s = self.sessions.get_mut(&id).expect("leaving session");
        if !s.channels.remove(channel) {
            return;
        }
        self.leave_channel(id, channel);
        self.streams.unsubscribe(channel, now);
    }

    fn leave_channel(&mut self, id: SessionId, channel: &Bytes) {
        self.flush_channel(channel);
        if let Some(ch) = self.channels.get_mut(channel) {
            ch.members.remove(&id);
            if ch.members.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Queues `channel`'s batch: to each attached member (one buffer per
    /// version), or into a detached v1 session's queue within
    /// `session_queue`, the oldest dropped first (and LOST).
    pub fn flush_channel(&mut self, channel: &Bytes) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if ch.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut ch.batch);
        let v2 = joined(batch.iter().map(|p| p.v2.clone()));
        let v1 = joined(batch.iter().map(|p| p.v1.clone()));
        let lane = Lane::Channel(channel.clone());
        for id in &ch.members {
            // A session ended in this event (its flush is nobody's).
            let Some(s) = self.sessions.get_mut(id) else {
                continue;
            };
            match s.conn {
                Some(conn) if self.open.contains(&conn) => {
                    let frames = if s.v2 { v2.clone() } else { v1.clone() };
                    self.ledger.push(conn, lane.clone(), Exp::Send(frames));
                }
                // Published while its connection is closing: neither sent
                // nor queued (§5.4).
                Some(_) => {}
                None => {
                    assert!(!s.v2, "a v2 session is never detached");
                    for p in &batch {
                        s.queue_bytes += p.v1.len();
                        s.queue.push_back(p.v1.clone());
                        while s.queue_bytes > self.limits.session_queue {
                            let Some(oldest) = s.queue.pop_front() else {
                                break;
                            };
                            s.queue_bytes -= oldest.len();
                            s.lost = true;
                        }
                    }
                }
            }
        }
    }

    /// End of the turn's input: every batch queued, the expiry timer set.
    pub fn flush(&mut self, now: Tick) {
        for channel in std::mem::take(&mut self.pending) {
            self.flush_channel(&channel);
        }
        self.arm_expiry(now);
    }

    /// Sets the streams' expiry timer when their next deadline is earlier
    /// than the one it is set for.
    fn arm_expiry(&mut self, now: Tick) {
        let Some(next) = self.streams.next_expiry() else {
            return;
        };
        if self.armed.is_some_and(|armed| armed <= next) {
            return;
        }
        self.armed = Some(next);
        let after_ms = next.saturating_sub(now).saturating_mul(self.limits.tick_ms);
        self.ledger.timers.push((Some(STREAMS_TIMER), after_ms));
    }

    /// The streams' expiry timer is due at or before `now`.
    pub fn expiry_due(&self, now: Tick) -> bool {
        self.armed.is_some_and(|armed| armed <= now)
    }

    /// The streams' expiry timer fired.
    pub fn expiry_timer(&mut self, now: Tick) {
        self.armed = None;
        self.streams.expire(now);
        self.arm_expiry(now);
    }

    /// The connection was reclaimed: a v2 session, a session with nothing to
    /// keep or one ended by GOAWAY NORMAL ends; another v1 session detaches
    /// and gets a TTL timer. Returns the detached session.
    pub fn close(&mut self, conn: ConnId, reason: CloseReason, now: Tick) -> Option<SessionId> {
        self.open.remove(&conn);
        let id = self.session_of(conn)?;
        let s = &self.sessions[&id];
        let nothing = s.channels.is_empty() && s.queue.is_empty();
        if s.v2 || reason == CloseReason::PeerGoaway(GoawayCode::Normal) || nothing {
            self.end_session(id, now);
            return None;
        }
        self.sessions.get_mut(&id).expect("held").conn = None;
        self.ledger.timers.push((None, self.limits.session_ttl_ms));
        Some(id)
    }

    /// A session TTL timer `value`, set for session `id`, fired: the session
    /// ends if it is still detached since then.
    pub fn ttl_timer(&mut self, id: SessionId, value: u64, now: Tick) {
        let expired = self
            .sessions
            .get(&id)
            .is_some_and(|s| s.conn.is_none() && s.timer == Some(value));
        if expired {
            self.end_session(id, now);
            self.arm_expiry(now);
        }
    }

    /// Drops a session and its subscriptions.
    pub fn end_session(&mut self, id: SessionId, now: Tick) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        for channel in &s.channels {
            self.leave_channel(id, channel);
            self.streams.unsubscribe(channel, now);
        }
    }

    /// `conn`'s session may have lost deliveries (reported at its next v1 resume).
    pub fn mark_lost(&mut self, conn: ConnId) {
        if let Some(id) = self.session_of(conn) {
            self.sessions.get_mut(&id).expect("attached").lost = true;
        }
    }

    /// Subscriptions over all sessions, and the channels with any.
    pub fn counts(&self) -> (usize, usize) {
        let subs = self.sessions.values().map(|s| s.channels.len()).sum();
        (subs, self.channels.len())
    }
}

/// The takeover GOAWAY's reason (`state.rs`).
pub(super) const TAKEN_OVER: &str = "session resumed by a newer connection";
