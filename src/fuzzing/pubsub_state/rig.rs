//! The state and its model driven side by side: each command goes to both,
//! then every action the state took is matched against the model's
//! expectations and read by the receiving connection's [`View`].

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::model::{Exp, Model, STREAMS_TIMER};
use super::unknown_session;
use super::view::{messages, View};
use crate::app::pubsub::ops::parse_op;
use crate::app::pubsub::ops_v2::{parse_client_op, parse_server_msg, Position, ServerMsg};
use crate::app::pubsub::{PubsubLimits, PubsubState};
use crate::app::{Action, ConnId, MessageEvent, Outbox};
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, Hello, SessionId, PROTOCOL_V1, PROTOCOL_V2};
use crate::time::Tick;

/// Positions kept per channel for later SUBSCRIBEs (the newest).
const SEEN_PER_CHANNEL: usize = 32;

/// Epochs 1, 2, 3, ...: distinct and never 0, as the OS source's are; the
/// model counts the same way.
fn counting_epochs() -> impl FnMut() -> u64 {
    let mut drawn = 0;
    move || {
        drawn += 1;
        drawn
    }
}

/// A connection the harness opened.
#[derive(Debug)]
struct ConnInfo {
    session: SessionId,
    view: View,
}

/// A peer close or a GOAWAY, handed to the state when the turn ends.
#[derive(Debug, Clone, Copy)]
struct Closing {
    conn: ConnId,
    reason: CloseReason,
    /// Data queued since the peer last spoke (the reactor's `mark_lost`).
    lost: bool,
}

/// [`PubsubState`] and its model.
pub(super) struct Rig {
    state: PubsubState,
    model: Model,
    now: Tick,
    conns: BTreeMap<ConnId, ConnInfo>,
    /// Closes the reactor would reap after this turn's flush, in order
    /// (the first reason of a connection stands).
    closing: Vec<Closing>,
    /// Connections whose close the state has handled: never sent to again.
    reaped: BTreeSet<ConnId>,
    /// Session TTL timers set, oldest first (all have the same TTL).
    timers: VecDeque<(u64, SessionId)>,
    granted: Vec<SessionId>,
    /// Positions clients held, per channel.
    seen: BTreeMap<Bytes, VecDeque<Position>>,
    /// Every single-PUBLICATION send by (channel, epoch, offset): a
    /// publication is one buffer (the history's), never a copy.
    buffers: HashMap<(Bytes, u64, u64), Bytes>,
    /// The key of the session TTL timer the last walk saw.
    ttl_key: Option<u64>,
    next_id: u64,
}

impl Rig {
    pub fn new(limits: PubsubLimits) -> Self {
        Rig {
            state: PubsubState::new(limits, Box::new(counting_epochs())),
            model: Model::new(limits),
            now: 0,
            conns: BTreeMap::new(),
            closing: Vec::new(),
            reaped: BTreeSet::new(),
            timers: VecDeque::new(),
            granted: Vec::new(),
            seen: BTreeMap::new(),
            buffers: HashMap::new(),
            ttl_key: None,
            next_id: 0,
        }
    }

    fn max_frame(&self) -> usize {
        self.model.limits.max_frame
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// An open connection, picked by `b` modulo their count.
    pub fn pick(&self, b: u8) -> Option<ConnId> {
        let open = &self.model.open;
        (!open.is_empty()).then(|| {
            *open
                .iter()
                .nth(usize::from(b) % open.len())
                .expect("in range")
        })
    }

    pub fn is_v2(&self, conn: ConnId) -> bool {
        self.conns[&conn].view.v2
    }

    /// A position for a SUBSCRIBE to `channel` from `conn`, chosen by `sel`:
    /// none, the stream's (epoch, top), an older offset, one past the top, a
    /// wrong or forgotten epoch, one a client held, or a small epoch that
    /// may be another stream's.
    pub fn position(&self, conn: ConnId, channel: &Bytes, sel: u8, arg: u8) -> Option<Position> {
        let streams = &self.model.streams;
        let (epoch, top) = streams
            .streams
            .get(channel)
            .map_or((streams.next_epoch(), 0), |s| (s.epoch, s.top));
        let at = |epoch, offset| Some(Position { epoch, offset });
        let nth =
            |list: &[Position]| (!list.is_empty()).then(|| list[usize::from(arg) % list.len()]);
        match sel % 8 {
            0 | 1 => None,
            2 => at(epoch, top),
            3 => at(epoch, top.saturating_sub(u64::from(arg % 20))),
            4 => at(epoch, top + 1 + u64::from(arg % 4)),
            5 => streams
                .forgotten
                .get(channel)
                .and_then(|f| nth(f))
                .or(at(epoch + 1 + u64::from(arg % 3), u64::from(arg % 8))),
            6 => self.conns[&conn].view.position(channel).or_else(|| {
                let seen: Vec<Position> = self.seen.get(channel)?.iter().copied().collect();
                nth(&seen)
            }),
            _ => at(1 + u64::from(arg % 6), u64::from(arg >> 3)),
        }
    }

    /// Keeps `conn`'s positions for later SUBSCRIBEs (a client reconnecting
    /// resubscribes with them).
    pub fn note_positions(&mut self, conn: ConnId) {
        let Some(info) = self.conns.get(&conn) else {
            return;
        };
        for (channel, position) in info.view.positions() {
            let seen = self.seen.entry(channel.clone()).or_default();
            if !seen.contains(&position) {
                seen.push_back(position);
                if seen.len() > SEEN_PER_CHANNEL {
                    seen.pop_front();
                }
            }
        }
    }

    /// A HELLO (v2 if bit 7 of `r`), then the open.
    pub fn hello(&mut self, r: u8) {
        let conn = ConnId::from_u64(self.fresh_id());
        let fresh = SessionId(u128::from(self.fresh_id()).to_be_bytes());
        let v2 = r & 0x80 != 0;
        let resume = match r & 3 {
            1 if !self.granted.is_empty() => {
                Some(self.granted[usize::from(r >> 2 & 0x1f) % self.granted.len()])
            }
            2 => Some(unknown_session(r)),
            _ => None,
        };
        let hello = Hello {
            version: if v2 { PROTOCOL_V2 } else { PROTOCOL_V1 },
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume,
        };
        let view = View::new(v2);
        self.conns.insert(
            conn,
            ConnInfo {
                session: fresh,
                view,
            },
        );
        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        let grant = self
            .state
            .handle_hello(conn, &hello, fresh, self.now, &mut out);
        let expect = self.model.hello(conn, v2, resume, fresh, self.now);
        assert_eq!(
            grant, expect,
            "grant for a v{} HELLO resuming {resume:?}",
            hello.version
        );
        // Not open before its WELCOME: sends to it are dropped.
        self.walk(out, before, "HELLO");
        self.conns.get_mut(&conn).expect("added").session = grant.session;
        self.granted.push(grant.session);
        self.model.open.insert(conn);

        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        self.state.handle_open(conn, &mut out);
        self.model.open(conn);
        self.walk(out, before, "open");
    }

    /// A message from `conn` whose output limits are raised by `raise`.
    pub fn message(&mut self, conn: ConnId, message: Bytes, raise: usize) {
        let info = self.conns.get_mut(&conn).expect("open connection");
        let v2 = info.view.v2;
        let session = info.session;
        let parsed = v2.then(|| parse_client_op(&message));
        info.view.request = match &parsed {
            Some(Ok(op)) => Some(op.clone()),
            _ => None,
        };
        let event = MessageEvent {
            conn,
            session,
            version: if v2 { PROTOCOL_V2 } else { PROTOCOL_V1 },
            message: message.clone(),
        };
        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        self.state.handle_message(&event, self.now, raise, &mut out);
        let now = self.now;
        match parsed {
            Some(Ok(op)) => self.model.v2_request(conn, session, op, raise, now),
            Some(Err(_)) => self.model.expect_close(
                conn,
                GoawayCode::ProtocolError,
                "malformed pub/sub v2 message",
            ),
            None => match parse_op(&message) {
                Ok(op) => self.model.v1_op(conn, session, op, now),
                Err(_) => self.model.expect_close(
                    conn,
                    GoawayCode::ProtocolError,
                    "malformed pub/sub message",
                ),
            },
        }
        self.walk(out, before, "message");
    }

    /// The peer closes `conn`: nothing more is sent or handled on it; the
    /// state hears of it when the reactor reaps it, after the turn's flush.
    pub fn peer_close(&mut self, conn: ConnId, reason: CloseReason, lost: bool) {
        self.note_positions(conn);
        self.model.open.remove(&conn);
        self.closing.push(Closing { conn, reason, lost });
    }

    /// The oldest session TTL timer fires.
    pub fn ttl_timer(&mut self) {
        let Some((value, id)) = self.timers.pop_front() else {
            return;
        };
        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        self.state.handle_timer(value, self.now, &mut out);
        self.model.ttl_timer(id, value, self.now);
        self.walk(out, before, "session TTL timer");
    }

    /// The clock advances; the streams' expiry timer fires if it is due.
    pub fn advance(&mut self, ticks: u8) {
        self.now += Tick::from(ticks);
        if !self.model.expiry_due(self.now) {
            return;
        }
        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        self.state.handle_timer(STREAMS_TIMER, self.now, &mut out);
        self.model.expiry_timer(self.now);
        self.walk(out, before, "streams expiry timer");
    }

    /// The end of a turn, as the reactor's settle does it: flush, reap the
    /// connections that closed, flush again. Every subscriber is then
    /// caught up with its streams.
    pub fn end_turn(&mut self) {
        self.flush();
        for Closing { conn, reason, lost } in std::mem::take(&mut self.closing) {
            if lost {
                self.state.mark_lost(conn);
                self.model.mark_lost(conn);
            }
            self.note_positions(conn);
            let before = self.model.open.clone();
            let mut out = Outbox::new(self.max_frame());
            self.state.handle_close(conn, reason, self.now, &mut out);
            let detached = self.model.close(conn, reason, self.now);
            self.walk(out, before, "close");
            self.reaped.insert(conn);
            if let Some(id) = detached {
                let key = self.ttl_key.take().expect("a detach sets a TTL timer");
                self.model.sessions.get_mut(&id).expect("detached").timer = Some(key);
                self.timers.push_back((key, id));
            }
        }
        self.flush();
        let streams = &self.model.streams.streams;
        for conn in &self.model.open {
            let at = |channel: &[u8]| {
                streams.get(channel).map(|s| Position {
                    epoch: s.epoch,
                    offset: s.top,
                })
            };
            self.conns[conn].view.assert_caught_up(at);
        }
        let open: Vec<ConnId> = self.model.open.iter().copied().collect();
        for conn in open {
            self.note_positions(conn);
        }
    }

    fn flush(&mut self) {
        let before = self.model.open.clone();
        let mut out = Outbox::new(self.max_frame());
        self.state.flush(self.now, &mut out);
        self.model.flush(self.now);
        self.walk(out, before, "flush");
    }

    /// Matches the state's actions, in order, against the model's
    /// expectations; `open` is which connections were open before the event.
    fn walk(&mut self, mut out: Outbox, mut open: BTreeSet<ConnId>, what: &str) {
        // Equal deliveries to different connections in one event: (first
        // receiver, buffer address).
        let mut shared: HashMap<Bytes, (ConnId, *const u8)> = HashMap::new();
        let actions: Vec<Action> = out.drain().collect();
        for action in actions {
            match action {
                Action::Send(conn, bytes) => {
                    assert!(
                        !self.reaped.contains(&conn),
                        "{what}: send to {conn} after its close was handled"
                    );
                    if !open.contains(&conn) {
                        continue; // dropped by a connection not open
                    }
                    self.take(conn, Exp::Send(bytes.clone()), what);
                    let max_frame = self.max_frame();
                    let info = self.conns.get_mut(&conn).expect("a known connection");
                    info.view.receive(&bytes, max_frame);
                    self.check_buffer(conn, &bytes, &mut shared);
                }
                Action::Close(conn, code, reason) => {
                    assert!(
                        !self.reaped.contains(&conn),
                        "{what}: close of a reaped {conn}"
                    );
                    self.take(conn, Exp::Close(code, reason.into_owned()), what);
                    open.remove(&conn);
                    if !self.closing.iter().any(|c| c.conn == conn) {
                        self.closing.push(Closing {
                            conn,
                            reason: CloseReason::Goaway(code),
                            lost: false,
                        });
                    }
                }
                Action::RaiseOutputLimits(conn, bytes) => {
                    if !open.contains(&conn) {
                        continue;
                    }
                    self.take(conn, Exp::Raise(bytes), what);
                    self.conns.get_mut(&conn).expect("known").view.raised(bytes);
                }
                Action::SetTimer { key, after_ms } => {
                    let timers = &mut self.model.ledger.timers;
                    let Some(i) = timers.iter().position(|&(k, ms)| {
                        ms == after_ms && k.map_or(key != STREAMS_TIMER, |k| k == key)
                    }) else {
                        panic!("{what}: unexpected timer {key:#x} after {after_ms} ms; expected {timers:?}");
                    };
                    if timers.remove(i).0.is_none() {
                        self.ttl_key = Some(key);
                    }
                }
                other => panic!("{what}: unexpected {other:?}"),
            }
        }
        self.model.ledger.assert_empty(what);
        assert_eq!(open, self.model.open, "{what}: connections left open");
        for info in self.conns.values_mut() {
            info.view.end_event();
        }
    }

    fn take(&mut self, conn: ConnId, got: Exp, what: &str) {
        if !self.model.ledger.take(conn, &got) {
            let shown = match &got {
                Exp::Send(b) => format!("{:?}", messages(b, self.max_frame())),
                other => format!("{other:?}"),
            };
            panic!(
                "{what}: unexpected action for {conn}: {shown}\nexpected next: {:?}",
                self.model.ledger.fronts(conn)
            );
        }
    }

    /// One buffer per delivery: equal deliveries to several connections in
    /// one event are one `Bytes`, and a single publication is always the
    /// same buffer (the one the history holds and replays).
    fn check_buffer(
        &mut self,
        conn: ConnId,
        bytes: &Bytes,
        shared: &mut HashMap<Bytes, (ConnId, *const u8)>,
    ) {
        let msgs = messages(bytes, self.max_frame());
        if !matches!(msgs[0].first(), Some(&0x07 | &b'M')) {
            return;
        }
        let (first, ptr) = *shared
            .entry(bytes.clone())
            .or_insert((conn, bytes.as_ptr()));
        if first != conn {
            assert_eq!(
                ptr,
                bytes.as_ptr(),
                "one buffer for every member of a flush"
            );
        }
        if let [only] = &msgs[..] {
            if let Ok(ServerMsg::Publication(p)) = parse_server_msg(only) {
                let key = (p.channel, p.epoch, p.offset);
                let held = self.buffers.entry(key).or_insert_with(|| bytes.clone());
                assert_eq!(
                    held.as_ptr(),
                    bytes.as_ptr(),
                    "a publication is never copied"
                );
            }
        }
    }

    /// The state's counts and streams against the model's.
    pub fn check(&self) {
        let st = &self.state;
        let model = &self.model;
        assert_eq!(st.session_count(), model.sessions.len(), "sessions");
        let detached = model.sessions.values().filter(|s| s.conn.is_none()).count();
        assert_eq!(st.detached_count(), detached, "detached sessions");
        let (subs, channels) = model.counts();
        assert_eq!(st.subscription_count(), subs, "subscriptions");
        assert_eq!(st.channel_count(), channels, "channels with a subscriber");
        for conn in self.conns.keys().filter(|c| !self.reaped.contains(c)) {
            assert_eq!(
                st.session_of(*conn),
                model.session_of(*conn),
                "session of {conn}"
            );
        }
        let streams = &model.streams;
        let stats = st.stream_stats();
        assert_eq!(stats.streams, streams.streams.len(), "streams");
        assert_eq!(stats.held, streams.held(), "publications held");
        for (channel, s) in &streams.streams {
            let position = Position {
                epoch: s.epoch,
                offset: s.top,
            };
            assert_eq!(
                st.streams().and_then(|s| s.position(channel)),
                Some(position),
                "stream {channel:?}"
            );
        }
    }
}
