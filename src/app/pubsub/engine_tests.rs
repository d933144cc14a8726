//! The pending-request path with plain values: a fake engine that answers
//! later, when the test says, and reports publications as a remote engine
//! does. Checks §7.5's last paragraph (the kept publications past the top,
//! of the same epoch only), deferred UNSUBSCRIBE, refusals and bounds.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::engine::{Answer, Engine, EngineEvent};
use super::ops_v2::{
    encode_publication_frames, encode_publish, encode_subscribe, encode_unsubscribe, Position,
    PublishAck, RecoveryReason, ServerMsg, Status,
};
use super::streams::{HistoryLimits, Published, Recovery, StreamStats};
use super::v2_tests::{conn, received};
use super::{PubsubLimits, PubsubState};
use crate::app::{Action, LinkEvent, MessageEvent, Outbox};
use crate::conn::CloseReason;
use crate::protocol::{GoawayCode, Hello, SessionId, PROTOCOL_V2};
use crate::time::{Span, Tick};

/// What the fake engine was asked, and what it will report.
#[derive(Debug, Default)]
struct Script {
    /// (token, channel, position) of each subscribe.
    subscribes: Vec<(u64, Bytes, Option<Position>)>,
    /// (token, channel, body) of each publish.
    publishes: Vec<(u64, Bytes, Bytes)>,
    /// Subscribes minus unsubscribes, per the interface's counting rule.
    interest: i64,
    /// Events to report at the next poll.
    events: VecDeque<EngineEvent>,
}

/// An engine that answers everything later.
#[derive(Debug, Clone, Default)]
struct LaterEngine(Rc<RefCell<Script>>);

impl Engine for LaterEngine {
    fn publish(
        &mut self,
        token: u64,
        channel: &Bytes,
        body: &[u8],
        _now: Tick,
    ) -> Answer<Result<Published, Status>> {
        let entry = (token, channel.clone(), Bytes::copy_from_slice(body));
        self.0.borrow_mut().publishes.push(entry);
        Answer::Later
    }

    fn subscribe(
        &mut self,
        token: u64,
        channel: &Bytes,
        position: Option<Position>,
        _replay_budget: usize,
        _now: Tick,
    ) -> Answer<Result<Recovery, Status>> {
        let mut script = self.0.borrow_mut();
        script.interest += 1;
        script.subscribes.push((token, channel.clone(), position));
        Answer::Later
    }

    fn unsubscribe(&mut self, _channel: &[u8], _now: Tick) {
        self.0.borrow_mut().interest -= 1;
    }

    fn poll_event(&mut self) -> Option<EngineEvent> {
        self.0.borrow_mut().events.pop_front()
    }

    fn on_timer(&mut self, _key: u64, _now: Tick, _out: &mut Outbox) -> bool {
        false
    }

    fn on_link(&mut self, _event: LinkEvent<'_>, _now: Tick, _out: &mut Outbox) {}

    fn flush(&mut self, _now: Tick, _out: &mut Outbox) {}

    fn stream_stats(&self) -> StreamStats {
        StreamStats::default()
    }
}

const EPOCH: u64 = 7;

fn limits(memory: usize) -> PubsubLimits {
    PubsubLimits {
        session_ttl_ms: 60_000,
        session_queue: 1 << 20,
        max_frame: 65535,
        history: HistoryLimits {
            size: 100,
            ttl: Span::from_ticks(1_000),
            memory,
        },
        tick_ms: 10,
    }
}

struct Rig {
    s: PubsubState,
    engine: LaterEngine,
    out: Outbox,
}

impl Rig {
    fn new(memory: usize) -> Rig {
        let engine = LaterEngine::default();
        Rig {
            s: PubsubState::with_engine(limits(memory), Box::new(engine.clone())),
            engine,
            out: Outbox::new(65535),
        }
    }

    fn hello(&mut self, key: u32) {
        let hello = Hello {
            version: PROTOCOL_V2,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume: None,
        };
        let id = SessionId([key as u8; 16]);
        let grant = self.s.handle_hello(conn(key), &hello, id, 0, &mut self.out);
        self.out.accept(conn(key), grant);
        self.out.drain().for_each(drop);
    }

    /// One message as a turn of its own; what the turn queued.
    fn turn(&mut self, key: u32, message: Bytes) -> Vec<Action> {
        let event = MessageEvent {
            conn: conn(key),
            session: SessionId([key as u8; 16]),
            version: PROTOCOL_V2,
            message,
        };
        self.s.handle_message(&event, 0, 0, &mut self.out);
        self.flush()
    }

    /// The engine reports `events`; the turn ends.
    fn report(&mut self, events: Vec<EngineEvent>) -> Vec<Action> {
        self.engine.0.borrow_mut().events.extend(events);
        self.flush()
    }

    fn flush(&mut self) -> Vec<Action> {
        self.s.flush(0, &mut self.out);
        self.out.drain().collect()
    }

    fn last_subscribe_token(&self) -> u64 {
        self.engine
            .0
            .borrow()
            .subscribes
            .last()
            .expect("subscribed")
            .0
    }
}

fn publication(offset: u64, epoch: u64) -> EngineEvent {
    let body = Bytes::from(format!("m{offset}"));
    EngineEvent::Publication {
        channel: Bytes::from_static(b"c"),
        epoch,
        offset,
        publication: encode_publication_frames(epoch, offset, b"c", &body, 65535),
        body,
    }
}

fn answer(token: u64, top: u64, replay: &[u64]) -> EngineEvent {
    let replay: Vec<Bytes> = replay
        .iter()
        .map(|&o| encode_publication_frames(EPOCH, o, b"c", format!("m{o}").as_bytes(), 65535))
        .collect();
    EngineEvent::Subscribed {
        token,
        result: Ok(Recovery {
            epoch: EPOCH,
            top,
            recovery_asked: true,
            recovered: true,
            reason: RecoveryReason::None,
            replay_bytes: replay.iter().map(Bytes::len).sum(),
            replay,
        }),
    }
}

/// Each message as a short label: `S<id>:<status>`, `U<id>`, `P<offset>`, `A<id>`.
fn labels(msgs: &[ServerMsg]) -> Vec<String> {
    msgs.iter()
        .map(|m| match m {
            ServerMsg::SubscribeReply(r) => format!("S{}:{}", r.request_id, r.status),
            ServerMsg::UnsubscribeReply(r) => format!("U{}", r.request_id),
            ServerMsg::Publication(p) => format!("P{}", p.offset),
            ServerMsg::PublishAck(a) => format!("A{}", a.request_id),
        })
        .collect()
}

fn sub_from(request_id: u32, offset: u64) -> Bytes {
    let position = Position {
        epoch: EPOCH,
        offset,
    };
    encode_subscribe(request_id, b"c", Some(position))
}

#[test]
fn a_pending_subscription_gets_reply_replay_then_only_what_is_past_the_top() {
    let mut rig = Rig::new(1 << 20);
    rig.hello(1);
    rig.hello(2);
    rig.turn(2, encode_subscribe(1, b"c", None));
    let token2 = rig.last_subscribe_token();
    rig.report(vec![answer(token2, 3, &[])]);

    assert!(
        received(&rig.turn(1, sub_from(5, 2)), 1).is_empty(),
        "pending"
    );
    let token = rig.last_subscribe_token();
    assert_eq!(
        rig.engine.0.borrow().subscribes.last().map(|s| s.2),
        Some(Some(Position {
            epoch: EPOCH,
            offset: 2
        }))
    );
    // Live publications reach the node before the answer: 4 and 5 are in
    // the read (top 5), 6 is not; one of another epoch is never delivered.
    let live = rig.report(vec![
        publication(4, EPOCH),
        publication(5, EPOCH),
        publication(6, EPOCH),
        publication(9, EPOCH + 1),
    ]);
    assert!(received(&live, 1).is_empty(), "not in the live set yet");
    assert_eq!(labels(&received(&live, 2)), ["P4", "P5", "P6", "P9"]);

    let done = rig.report(vec![answer(token, 5, &[3, 4, 5]), publication(7, EPOCH)]);
    assert_eq!(
        labels(&received(&done, 1)),
        ["S5:OK", "P3", "P4", "P5", "P6", "P7"]
    );
    assert_eq!(labels(&received(&done, 2)), ["P7"]);
    assert_eq!(rig.s.subscription_count(), 2);
    assert_eq!(rig.s.pending_counts(), (0, 0));
}

#[test]
fn a_publish_is_acknowledged_when_the_engine_answers() {
    let mut rig = Rig::new(1 << 20);
    rig.hello(1);
    assert!(rig.turn(1, encode_publish(3, b"c", b"x")).is_empty());
    assert!(rig.turn(1, encode_publish(4, b"c", b"y")).is_empty());
    let tokens: Vec<u64> = rig
        .engine
        .0
        .borrow()
        .publishes
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(rig.s.pending_counts(), (0, 2));
    let acks = rig.report(vec![
        EngineEvent::Published {
            token: tokens[0],
            result: Ok(Published {
                epoch: EPOCH,
                offset: 12,
                publication: Bytes::new(),
            }),
        },
        EngineEvent::Published {
            token: tokens[1],
            result: Err(Status::Unavailable),
        },
    ]);
    assert_eq!(
        received(&acks, 1),
        [
            ServerMsg::PublishAck(PublishAck {
                request_id: 3,
                status: Status::Ok,
                epoch: EPOCH,
                offset: 12
            }),
            ServerMsg::PublishAck(PublishAck::refused(4, Status::Unavailable)),
        ]
    );
    assert_eq!(rig.s.stats().publishes_acked, 1);
    assert_eq!(rig.s.stats().publishes_refused, 1);
    assert_eq!(rig.s.pending_counts(), (0, 0));
    // Unacknowledged: no token kept, nothing answered.
    rig.turn(1, encode_publish(0, b"c", b"z"));
    assert_eq!(rig.engine.0.borrow().publishes.last().map(|p| p.0), Some(0));
    assert_eq!(rig.s.pending_counts(), (0, 0));
}

#[test]
fn an_unsubscribe_while_pending_is_answered_after_the_subscribe() {
    let mut rig = Rig::new(1 << 20);
    rig.hello(1);
    rig.turn(1, encode_subscribe(1, b"c", None));
    let token = rig.last_subscribe_token();
    assert!(received(&rig.turn(1, encode_unsubscribe(2, b"c")), 1).is_empty());
    // A second SUBSCRIBE while one is pending: UNAVAILABLE, retried by the client.
    let again = rig.turn(1, encode_subscribe(3, b"c", None));
    assert_eq!(labels(&received(&again, 1)), ["S3:UNAVAILABLE"]);

    let done = rig.report(vec![answer(token, 0, &[]), publication(1, EPOCH)]);
    assert_eq!(labels(&received(&done, 1)), ["S1:OK", "U2"]);
    assert_eq!(rig.s.subscription_count(), 0);
    assert_eq!(rig.engine.0.borrow().interest, 0, "interest released");
}

#[test]
fn a_connection_closed_while_pending_releases_its_interest() {
    let mut rig = Rig::new(1 << 20);
    rig.hello(1);
    rig.turn(1, encode_subscribe(1, b"c", None));
    let token = rig.last_subscribe_token();
    rig.s.handle_close(
        conn(1),
        CloseReason::PeerGoaway(GoawayCode::Normal),
        0,
        &mut rig.out,
    );
    assert_eq!(rig.engine.0.borrow().interest, 0);
    assert_eq!(rig.s.pending_counts(), (0, 0));
    let late = rig.report(vec![answer(token, 0, &[])]);
    assert!(received(&late, 1).is_empty(), "answer dropped");
    assert_eq!(rig.engine.0.borrow().interest, 0);
}

#[test]
fn too_much_kept_while_pending_is_refused_unavailable() {
    // A budget smaller than three publications.
    let mut rig = Rig::new(60);
    rig.hello(1);
    rig.turn(1, encode_subscribe(1, b"c", None));
    let token = rig.last_subscribe_token();
    let events = (1..=3).map(|o| publication(o, EPOCH)).collect();
    rig.report(events);
    let done = rig.report(vec![answer(token, 0, &[])]);
    assert_eq!(labels(&received(&done, 1)), ["S1:UNAVAILABLE"]);
    assert_eq!(rig.s.subscription_count(), 0);
    assert_eq!(rig.engine.0.borrow().interest, 0);
}

#[test]
fn a_refused_subscribe_changes_nothing() {
    let mut rig = Rig::new(1 << 20);
    rig.hello(1);
    rig.turn(1, encode_subscribe(1, b"c", None));
    let token = rig.last_subscribe_token();
    let done = rig.report(vec![EngineEvent::Subscribed {
        token,
        result: Err(Status::Unavailable),
    }]);
    assert_eq!(labels(&received(&done, 1)), ["S1:UNAVAILABLE"]);
    assert_eq!(rig.s.subscription_count(), 0);
    assert_eq!(rig.engine.0.borrow().interest, 0);
}
