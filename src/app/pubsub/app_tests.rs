//! The pub/sub app at its boundary: events in, actions out, with a fake
//! connection table standing in for the reactor's.

use bytes::Bytes;

use super::ops::{publish, subscribe};
use super::Pubsub;
use crate::app::fake_conns::FakeConns;
use crate::app::SessionGrant;
use crate::app::{Action, App, CloseEvent, ConnId, Ctx, HelloEvent, MessageEvent, Outbox};
use crate::config::Config;
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, Hello, SessionId};

struct Rig {
    app: Pubsub,
    conns: FakeConns,
    out: Outbox,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            app: Pubsub::new(&Config::default(), Box::new(|| 42)),
            conns: FakeConns::default(),
            out: Outbox::new(65535),
        }
    }

    /// A HELLO from `conn` (resuming `resume`); returns the actions.
    fn hello(&mut self, conn: ConnId, resume: Option<SessionId>, fresh: u8) -> Vec<Action> {
        let hello = Hello {
            version: crate::protocol::PROTOCOL_V1,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume,
        };
        let event = HelloEvent {
            conn,
            hello: &hello,
            fresh: SessionId([fresh; 16]),
            peer_identity: None,
        };
        self.app
            .on_hello(&event, &mut Ctx::new(&mut self.out, &self.conns, 0));
        self.conns.open.insert(conn);
        self.out.drain().collect()
    }

    fn message(&mut self, conn: ConnId, session: SessionId, message: Bytes) -> Vec<Action> {
        let event = MessageEvent {
            conn,
            session,
            version: crate::protocol::PROTOCOL_V1,
            message,
        };
        let ctx = &mut Ctx::new(&mut self.out, &self.conns, 0);
        self.app.on_message(event, ctx);
        // The end of the turn, when the batched deliveries are queued.
        self.app.on_flush(ctx);
        // The streams' expiry timer is not what these tests look at.
        self.out
            .drain()
            .filter(|a| !matches!(a, Action::SetTimer { key: u64::MAX, .. }))
            .collect()
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason, session: SessionId) -> Vec<Action> {
        self.conns.open.remove(&conn);
        let event = CloseEvent {
            conn,
            reason,
            session: Some(session),
            data_since_rx: self.conns.data_since_rx.contains(&conn),
        };
        self.app
            .on_close(&event, &mut Ctx::new(&mut self.out, &self.conns, 0));
        self.out.drain().collect()
    }
}

fn conn(n: u64) -> ConnId {
    ConnId::from_u64(n)
}

#[test]
fn a_hello_is_accepted_with_a_fresh_session() {
    let mut rig = Rig::new();
    let actions = rig.hello(conn(1), None, 7);
    assert_eq!(
        actions,
        [Action::Accept(
            conn(1),
            SessionGrant::fresh(SessionId([7; 16]))
        )]
    );
}

#[test]
fn a_takeover_of_a_connection_with_unacknowledged_data_is_lost() {
    let mut rig = Rig::new();
    let session = SessionId([1; 16]);
    rig.hello(conn(1), None, 1);
    rig.message(conn(1), session, subscribe(b"news"));
    // A delivery went to conn 1 after its peer last spoke, then it went silent.
    rig.conns.data_since_rx.insert(conn(1));
    let actions = rig.hello(conn(2), Some(session), 2);
    assert_eq!(
        actions,
        [
            Action::Close(
                conn(1),
                GoawayCode::SessionTakenOver,
                "session resumed by a newer connection".into()
            ),
            Action::Accept(
                conn(2),
                SessionGrant {
                    session,
                    resumed: true,
                    lost: true
                }
            ),
        ]
    );
}

#[test]
fn a_resume_after_a_quiet_death_gets_what_was_queued_after_the_accept() {
    let mut rig = Rig::new();
    let session = SessionId([1; 16]);
    rig.hello(conn(1), None, 1);
    rig.message(conn(1), session, subscribe(b"news"));
    let detach = rig.close(conn(1), CloseReason::Reset, session);
    assert!(
        matches!(detach[..], [Action::SetTimer { .. }]),
        "{detach:?}"
    );
    rig.hello(conn(3), None, 3);
    let sent = rig.message(conn(3), SessionId([3; 16]), publish(b"news", b"flash"));
    assert!(sent.is_empty(), "queued for the detached session: {sent:?}");
    let actions = rig.hello(conn(2), Some(session), 2);
    let [Action::Accept(c, grant), Action::Send(to, _)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!((*c, *to), (conn(2), conn(2)), "WELCOME before the delivery");
    assert!(grant.resumed && !grant.lost);
}

#[test]
fn a_close_after_unacknowledged_data_marks_the_session_lost() {
    let mut rig = Rig::new();
    let session = SessionId([1; 16]);
    rig.hello(conn(1), None, 1);
    rig.message(conn(1), session, subscribe(b"news"));
    rig.conns.data_since_rx.insert(conn(1));
    rig.close(
        conn(1),
        CloseReason::Goaway(GoawayCode::IdleTimeout),
        session,
    );
    let actions = rig.hello(conn(2), Some(session), 2);
    assert!(
        matches!(
            actions[..],
            [Action::Accept(
                _,
                SessionGrant {
                    resumed: true,
                    lost: true,
                    ..
                }
            )]
        ),
        "{actions:?}"
    );
}
