//! Harness 5: the pub/sub state against a model of it.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};

use super::*;

/// What the model expects of one session.
#[derive(Debug, Default)]
struct ModelSession {
    conn: Option<ConnId>,
    channels: BTreeSet<Vec<u8>>,
    queue: VecDeque<Bytes>,
    queue_bytes: usize,
    lost: bool,
    /// The value of the TTL timer set at its latest detach.
    timer: Option<u64>,
}

/// Epochs 1, 2, 3, ...: distinct and never 0, as the OS source's are.
fn counting_epochs() -> impl FnMut() -> u64 {
    let mut drawn = 0;
    move || {
        drawn += 1;
        drawn
    }
}

/// Channel names [`pubsub_state`] draws from (a small set so they collide).
const CHANNELS: [&[u8]; 4] = [b"a", b"b", b"news", &[b'z'; 255]];

/// A model of [`PubsubState`] and the state itself, driven side by side.
struct PubsubRig {
    state: PubsubState,
    limits: PubsubLimits,
    sessions: HashMap<SessionId, ModelSession>,
    /// Live connections and the session their WELCOME gave them.
    live: Vec<(ConnId, SessionId)>,
    /// Pending TTL timers, oldest first, with the session each was set for.
    timers: VecDeque<(u64, SessionId)>,
    next_id: u64,
    granted: Vec<SessionId>,
}

impl PubsubRig {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pick(&self, b: u8) -> Option<(ConnId, SessionId)> {
        (!self.live.is_empty()).then(|| self.live[usize::from(b) % self.live.len()])
    }

    fn hello(&mut self, r: u8) {
        let conn = ConnId::from_u64(self.fresh_id());
        let fresh = SessionId(u128::from(self.fresh_id()).to_be_bytes());
        let resume = match r & 3 {
            1 if !self.granted.is_empty() => {
                Some(self.granted[usize::from(r >> 2) % self.granted.len()])
            }
            2 => Some(SessionId([r; 16])),
            _ => None,
        };
        let mut out = Outbox::new(65535);
        let hello = Hello {
            version: PROTOCOL_V1,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume,
        };
        let grant = self.state.handle_hello(conn, &hello, fresh, 0, &mut out);
        let mut expect_out = Vec::new();
        let mut taken_over = None;
        let expect = match resume.and_then(|id| self.sessions.get_mut(&id).map(|s| (id, s))) {
            Some((id, s)) => {
                if let Some(old) = s.conn.replace(conn) {
                    expect_out.push(Action::Close(
                        old,
                        GoawayCode::SessionTakenOver,
                        "session resumed by a newer connection".into(),
                    ));
                    taken_over = Some(old);
                }
                s.timer = None;
                SessionGrant {
                    session: id,
                    resumed: true,
                    lost: std::mem::take(&mut s.lost),
                }
            }
            None => SessionGrant {
                session: fresh,
                resumed: false,
                lost: false,
            },
        };
        assert_eq!(grant, expect, "HELLO resume {resume:?}");
        assert_eq!(out[..], expect_out[..]);
        if let Some(old) = taken_over {
            self.live.retain(|(c, _)| *c != old);
            self.close_conn(old, CloseReason::Goaway(GoawayCode::SessionTakenOver));
        }
        self.granted.push(grant.session);
        self.live.push((conn, grant.session));
        out.clear();
        self.state.handle_open(conn, &mut out);
        let queued = self.sessions.get_mut(&grant.session).map(|s| {
            s.queue_bytes = 0;
            std::mem::take(&mut s.queue)
        });
        let expect: Vec<Action> = queued
            .unwrap_or_default()
            .into_iter()
            .map(|f| Action::Send(conn, f))
            .collect();
        assert_eq!(out[..], expect[..], "queued deliveries on open, in order");
    }

    /// The session entry attached to `conn`, if the model has one.
    fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.sessions
            .iter()
            .find(|(_, s)| s.conn == Some(conn))
            .map(|(id, _)| *id)
    }

    fn message(&mut self, conn: ConnId, session: SessionId, message: &Bytes) {
        let mut out = Outbox::new(65535);
        let event = MessageEvent {
            conn,
            session,
            version: PROTOCOL_V1,
            message: message.clone(),
        };
        self.state.handle_message(&event, 0, 0, &mut out);
        // One message per turn: its deliveries go out at the turn's end.
        self.state.flush_deliveries(&mut out);
        match parse_op(message) {
            Ok(Op::Subscribe(channel)) => {
                let id = self.session_of(conn).unwrap_or(session);
                let s = self.sessions.entry(id).or_default();
                s.conn = Some(conn);
                let full = s.channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION;
                if full && !s.channels.contains(&channel[..]) {
                    let close = Action::Close(
                        conn,
                        GoawayCode::ProtocolError,
                        "too many subscriptions".into(),
                    );
                    assert_eq!(out[..], [close]);
                    self.live.retain(|(c, _)| *c != conn);
                    self.close_conn(conn, CloseReason::Goaway(GoawayCode::ProtocolError));
                    return;
                }
                s.channels.insert(channel.to_vec());
                assert!(out.is_empty(), "{out:?}");
            }
            Ok(Op::Unsubscribe(channel)) => {
                if let Some(id) = self.session_of(conn) {
                    self.sessions
                        .get_mut(&id)
                        .map(|s| s.channels.remove(&channel[..]));
                }
                assert!(out.is_empty(), "{out:?}");
            }
            Ok(Op::Publish { channel, body }) => self.check_publish(&channel, &body, out),
            Err(_) => {
                let close = Action::Close(
                    conn,
                    GoawayCode::ProtocolError,
                    "malformed pub/sub message".into(),
                );
                assert_eq!(out[..], [close]);
                self.live.retain(|(c, _)| *c != conn);
                self.close_conn(conn, CloseReason::Goaway(GoawayCode::ProtocolError));
            }
        }
    }

    fn check_publish(&mut self, channel: &[u8], body: &[u8], mut out: Outbox) {
        let frames = encode_delivery(channel, body, self.limits.max_frame);
        let mut expect = Vec::new();
        for s in self
            .sessions
            .values_mut()
            .filter(|s| s.channels.contains(channel))
        {
            match s.conn {
                Some(conn) => expect.push(conn),
                None => {
                    s.queue_bytes += frames.len();
                    s.queue.push_back(frames.clone());
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
        let mut sent = Vec::new();
        let mut first: Option<Bytes> = None;
        for action in out.drain() {
            let Action::Send(conn, bytes) = action else {
                panic!("publish answered {action:?}");
            };
            assert!(
                self.live.iter().any(|(c, _)| *c == conn),
                "delivery to a closed {conn}"
            );
            assert_eq!(bytes, frames);
            let shared = first.get_or_insert_with(|| bytes.clone());
            assert_eq!(
                shared.as_ptr(),
                bytes.as_ptr(),
                "one buffer for every subscriber"
            );
            sent.push(conn);
        }
        sent.sort();
        expect.sort();
        assert_eq!(
            sent, expect,
            "deliveries to exactly the attached subscribers"
        );
    }

    fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        let mut out = Outbox::new(65535);
        self.state.handle_close(conn, reason, 0, &mut out);
        let Some(id) = self.session_of(conn) else {
            assert!(out.is_empty(), "{out:?}");
            return;
        };
        let s = self.sessions.get_mut(&id).expect("model session");
        let nothing = s.channels.is_empty() && s.queue.is_empty();
        if reason == CloseReason::PeerGoaway(GoawayCode::Normal) || nothing {
            self.sessions.remove(&id);
            assert!(out.is_empty(), "{out:?}");
            return;
        }
        s.conn = None;
        let [Action::SetTimer {
            key: value,
            after_ms,
        }] = out[..]
        else {
            panic!("detach answered {out:?}");
        };
        assert_eq!(after_ms, self.limits.session_ttl_ms);
        s.timer = Some(value);
        self.timers.push_back((value, id));
    }

    /// The oldest pending TTL timer fires (timers share one TTL, so they fire in order).
    fn timer(&mut self) {
        let Some((value, id)) = self.timers.pop_front() else {
            return;
        };
        self.state.handle_timer(value, 0, &mut Outbox::new(65535));
        // Only the timer of the session's latest detach may end it.
        let expired = self
            .sessions
            .get(&id)
            .is_some_and(|s| s.conn.is_none() && s.timer == Some(value));
        if expired {
            self.sessions.remove(&id);
        }
    }

    fn check(&self) {
        let st = &self.state;
        assert_eq!(st.session_count(), self.sessions.len(), "sessions");
        let detached = self.sessions.values().filter(|s| s.conn.is_none()).count();
        assert_eq!(st.detached_count(), detached, "detached sessions");
        let subs: usize = self.sessions.values().map(|s| s.channels.len()).sum();
        assert_eq!(
            st.subscription_count(),
            subs,
            "subscriptions = sum over sessions"
        );
        let channels: BTreeSet<&Vec<u8>> = self
            .sessions
            .values()
            .flat_map(|s| s.channels.iter())
            .collect();
        assert_eq!(
            st.channel_count(),
            channels.len(),
            "channels with a subscriber"
        );
        for (conn, _) in &self.live {
            assert_eq!(
                st.session_of(*conn),
                self.session_of(*conn),
                "session of {conn}"
            );
        }
    }
}

/// [`PubsubState`] against a model, driven by a command language: the first
/// byte picks `max_frame` and the session queue size, then each command byte
/// (mod 7) is hello/resume, subscribe, unsubscribe, publish, a raw message,
/// close (with a reason) or the next TTL timer. Checks every action against
/// the model (grants, takeovers, deliveries to exactly the attached
/// subscribers and never to a closed connection, one shared buffer, queued
/// deliveries in order with LOST) and the counts after every step.
pub fn pubsub_state(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.byte();
    let limits = PubsubLimits {
        session_ttl_ms: 1_000,
        session_queue: [0, 40, 200, 5000][usize::from(sel & 3)],
        max_frame: [16, 64, 256, 65535][usize::from(sel >> 2 & 3)],
        history: HistoryLimits {
            size: 0,
            ttl: Span::from_ticks(1_000),
            memory: 1 << 20,
        },
        tick_ms: 1,
    };
    let mut rig = PubsubRig {
        state: PubsubState::new(limits, Box::new(counting_epochs())),
        limits,
        sessions: HashMap::new(),
        live: Vec::new(),
        timers: VecDeque::new(),
        next_id: 0,
        granted: Vec::new(),
    };
    while !input.is_empty() {
        let op = input.byte() % 7;
        let arg = input.byte();
        match (op, rig.pick(arg)) {
            (0, _) => rig.hello(input.byte()),
            (1..=3, Some((conn, session))) => {
                let channel = CHANNELS[usize::from(input.byte() & 3)];
                let message = match op {
                    1 => subscribe(channel),
                    2 => unsubscribe(channel),
                    _ => publish(channel, input.take(input_len(arg))),
                };
                rig.message(conn, session, &message);
            }
            (4, Some((conn, session))) => {
                let n = input.byte();
                let message = Bytes::copy_from_slice(input.take(n.into()));
                rig.message(conn, session, &message);
            }
            (5, Some((conn, _))) => {
                let reason = match input.byte() & 3 {
                    0 => CloseReason::PeerGoaway(GoawayCode::Normal),
                    1 => CloseReason::PeerEof,
                    2 => CloseReason::Reset,
                    _ => CloseReason::Goaway(GoawayCode::IdleTimeout),
                };
                rig.live.retain(|(c, _)| *c != conn);
                rig.close_conn(conn, reason);
            }
            (6, _) => rig.timer(),
            (_, None) | (7.., _) => {}
        }
        rig.check();
    }
}

fn input_len(arg: u8) -> usize {
    usize::from(arg >> 3) * 3
}
