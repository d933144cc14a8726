//! Protocol v2 in the pub/sub state, with plain values and a fake clock:
//! replies, recovery in and out of the window, the order of replay and live
//! publications when they race within a turn, batching, v1 and v2 on one
//! channel, sessions.

use bytes::Bytes;

use super::ops::{parse_delivery, publish as v1_publish, subscribe as v1_subscribe};
use super::ops_v2::{
    encode_publish, encode_subscribe, encode_unsubscribe, parse_server_msg, Position, PublishAck,
    RecoveryReason, ServerMsg, Status, SubscribeReply,
};
use super::state::STREAMS_TIMER;
use super::streams::{EpochSource, HistoryLimits};
use super::{PubsubLimits, PubsubState};
use crate::app::{Action, ConnId, MessageEvent, Outbox};
use crate::conn::CloseReason;
use crate::protocol::{FrameDecoder, GoawayCode, Hello, SessionId, PROTOCOL_V1, PROTOCOL_V2};
use crate::time::{Span, Tick};

fn limits(size: usize) -> PubsubLimits {
    PubsubLimits {
        session_ttl_ms: 60_000,
        session_queue: 1 << 20,
        max_frame: 65535,
        history: HistoryLimits {
            size,
            ttl: Span::from_ticks(1_000),
            memory: 1 << 20,
        },
        tick_ms: 10,
    }
}

fn epochs() -> Box<dyn EpochSource> {
    let mut drawn = 100;
    Box::new(move || {
        drawn += 1;
        drawn
    })
}

/// Connection `key` (generation 1); shared with `engine_tests.rs`.
pub(super) fn conn(key: u32) -> ConnId {
    ConnId { key, generation: 1 }
}

fn sid(key: u32) -> SessionId {
    SessionId([key as u8; 16])
}

/// The state, an outbox and the fake clock, with one connection per key.
struct Rig {
    s: PubsubState,
    out: Outbox,
    now: Tick,
}

impl Rig {
    fn new(size: usize) -> Rig {
        Rig {
            s: PubsubState::new(limits(size), epochs()),
            out: Outbox::new(65535),
            now: 0,
        }
    }

    fn hello(&mut self, key: u32, version: u8, resume: Option<SessionId>) -> Vec<Action> {
        let hello = Hello {
            version,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume,
        };
        let grant = self
            .s
            .handle_hello(conn(key), &hello, sid(key), self.now, &mut self.out);
        self.out.accept(conn(key), grant);
        self.s.handle_open(conn(key), &mut self.out);
        self.out.drain().collect()
    }

    /// A message handled within the current turn (no flush).
    fn send(&mut self, key: u32, version: u8, message: Bytes) {
        let event = MessageEvent {
            conn: conn(key),
            session: sid(key),
            version,
            message,
        };
        self.s.handle_message(&event, self.now, 0, &mut self.out);
    }

    /// The end of the turn: what was queued, without the streams' timer.
    fn flush(&mut self) -> Vec<Action> {
        self.s.flush(self.now, &mut self.out);
        self.out
            .drain()
            .filter(|a| {
                !matches!(
                    a,
                    Action::SetTimer {
                        key: STREAMS_TIMER,
                        ..
                    }
                )
            })
            .collect()
    }

    /// One message as a turn of its own.
    fn turn(&mut self, key: u32, message: Bytes) -> Vec<Action> {
        self.send(key, PROTOCOL_V2, message);
        self.flush()
    }
}

/// The v2 messages sent to `to`, in order, decoded from every Send's frames;
/// shared with `engine_tests.rs`.
pub(super) fn received(actions: &[Action], to: u32) -> Vec<ServerMsg> {
    let mut msgs = Vec::new();
    for action in actions {
        let Action::Send(c, frames) = action else {
            continue;
        };
        if *c != conn(to) {
            continue;
        }
        let mut decoder = FrameDecoder::new(65535);
        let mut input: &[u8] = frames;
        while let Some(f) = decoder.next_frame(&mut input).expect("valid frames") {
            msgs.push(parse_server_msg(&f.payload).expect("a v2 message"));
        }
    }
    msgs
}

/// The (epoch, offset, body) of the PUBLICATIONs among `msgs`.
fn publications(msgs: &[ServerMsg]) -> Vec<(u64, u64, Vec<u8>)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Publication(p) => Some((p.epoch, p.offset, p.body.to_vec())),
            _ => None,
        })
        .collect()
}

fn subscribed(msgs: &[ServerMsg]) -> SubscribeReply {
    msgs.iter()
        .find_map(|m| match m {
            ServerMsg::SubscribeReply(r) => Some(*r),
            _ => None,
        })
        .expect("a SUBSCRIBE_REPLY")
}

fn sub(request_id: u32, channel: &[u8], position: Option<(u64, u64)>) -> Bytes {
    let position = position.map(|(epoch, offset)| Position { epoch, offset });
    encode_subscribe(request_id, channel, position)
}

fn body(i: u64) -> Vec<u8> {
    format!("m{i}").into_bytes()
}

/// Publishes `n` numbered bodies from `key`, each in a turn of its own.
fn publish_n(rig: &mut Rig, key: u32, from: u64, n: u64) {
    for i in from..from + n {
        rig.turn(key, encode_publish(0, b"c", &body(i)));
    }
}

#[test]
fn subscribe_publish_ack_and_delivery() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.hello(2, PROTOCOL_V2, None);
    let reply = subscribed(&received(&rig.turn(1, sub(7, b"c", None)), 1));
    assert_eq!(reply.request_id, 7);
    assert_eq!(reply.status, Status::Ok);
    assert!(!reply.recovery_asked && !reply.recovered);
    assert_eq!((reply.epoch, reply.top, reply.replay), (101, 0, 0));

    let actions = rig.turn(2, encode_publish(9, b"c", b"hi"));
    let acks = received(&actions, 2);
    assert_eq!(
        acks,
        [ServerMsg::PublishAck(PublishAck {
            request_id: 9,
            status: Status::Ok,
            epoch: 101,
            offset: 1
        })]
    );
    assert_eq!(
        publications(&received(&actions, 1)),
        [(101, 1, b"hi".to_vec())]
    );
    // Request id 0: published, not acknowledged.
    let actions = rig.turn(2, encode_publish(0, b"c", b"quiet"));
    assert!(received(&actions, 2).is_empty());
    assert_eq!(publications(&received(&actions, 1))[0].1, 2);
    assert_eq!(rig.s.stats().publishes_acked, 1);
}

#[test]
fn recovery_inside_the_window_replays_behind_a_raised_output_limit() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"c", None));
    publish_n(&mut rig, 1, 1, 10);
    rig.s
        .handle_close(conn(1), CloseReason::Reset, rig.now, &mut rig.out);
    publish_n(&mut rig, 9, 11, 5);

    rig.hello(2, PROTOCOL_V2, None);
    let actions = rig.turn(2, sub(2, b"c", Some((101, 7))));
    let msgs = received(&actions, 2);
    let reply = subscribed(&msgs);
    assert!(reply.recovery_asked && reply.recovered);
    assert_eq!(reply.reason, RecoveryReason::None);
    assert_eq!((reply.top, reply.replay), (15, 8));
    let replayed: Vec<u64> = publications(&msgs).iter().map(|p| p.1).collect();
    assert_eq!(replayed, (8..=15).collect::<Vec<_>>());
    // The raise comes after the reply and before the first replayed send.
    let raise = actions
        .iter()
        .position(|a| matches!(a, Action::RaiseOutputLimits(c, _) if *c == conn(2)))
        .expect("the output limits are raised for the replay");
    let Action::RaiseOutputLimits(_, bytes) = actions[raise] else {
        unreachable!()
    };
    let replay_bytes: usize = actions[raise + 1..]
        .iter()
        .map(|a| match a {
            Action::Send(_, frames) => frames.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(bytes, replay_bytes);
    // Live ones follow from top + 1.
    let actions = rig.turn(9, encode_publish(0, b"c", b"live"));
    assert_eq!(publications(&received(&actions, 2))[0].1, 16);
}

#[test]
fn outside_the_window_or_another_epoch_is_not_recovered() {
    let mut rig = Rig::new(4);
    rig.hello(9, PROTOCOL_V2, None);
    publish_n(&mut rig, 9, 1, 10); // holds 7..=10
    rig.hello(1, PROTOCOL_V2, None);
    let cases = [
        ((101, 6), true, RecoveryReason::None, 4),
        ((101, 5), false, RecoveryReason::TooFarBehind, 0),
        ((101, 11), false, RecoveryReason::EpochChanged, 0),
        ((555, 10), false, RecoveryReason::EpochChanged, 0),
    ];
    for (i, (position, recovered, reason, replay)) in cases.into_iter().enumerate() {
        let msgs = received(&rig.turn(1, sub(i as u32, b"c", Some(position))), 1);
        let reply = subscribed(&msgs);
        assert_eq!(
            (reply.recovered, reply.reason, reply.replay),
            (recovered, reason, replay),
            "position {position:?}"
        );
        assert_eq!((reply.epoch, reply.top), (101, 10));
        assert_eq!(publications(&msgs).len(), replay as usize);
    }
    assert_eq!(rig.s.subscription_count(), 1, "replacing SUBSCRIBEs");
}

#[test]
fn a_subscribe_racing_publications_in_one_turn_gets_each_once_in_order() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.hello(2, PROTOCOL_V2, None);
    rig.hello(9, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"c", None));
    publish_n(&mut rig, 9, 1, 3);
    // One turn: two publications, conn 2 subscribes from offset 3, two more.
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", &body(4)));
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", &body(5)));
    rig.send(2, PROTOCOL_V2, sub(2, b"c", Some((101, 3))));
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", &body(6)));
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", &body(7)));
    let actions = rig.flush();
    let offsets = |key| -> Vec<u64> {
        publications(&received(&actions, key))
            .iter()
            .map(|p| p.1)
            .collect()
    };
    assert_eq!(offsets(1), [4, 5, 6, 7], "the old member: each once");
    let msgs = received(&actions, 2);
    assert!(matches!(msgs[0], ServerMsg::SubscribeReply(r) if r.recovered && r.top == 5));
    assert_eq!(offsets(2), [4, 5, 6, 7], "replay 4..=5, then live 6..=7");
    // Batching: the old member got 4..=5 as one buffer, 6..=7 as another.
    let sends_to_1 = actions
        .iter()
        .filter(|a| matches!(a, Action::Send(c, _) if *c == conn(1)))
        .count();
    assert_eq!(sends_to_1, 2);
}

#[test]
fn a_turn_of_publications_is_one_shared_buffer_per_member() {
    let mut rig = Rig::new(256);
    for key in 1..=50 {
        rig.hello(key, PROTOCOL_V2, None);
        rig.turn(key, sub(key, b"c", None));
    }
    rig.hello(99, PROTOCOL_V2, None);
    for i in 1..=20 {
        rig.send(99, PROTOCOL_V2, encode_publish(0, b"c", &body(i)));
    }
    let actions = rig.flush();
    assert_eq!(actions.len(), 50, "one send per member per turn");
    let Action::Send(_, first) = &actions[0] else {
        panic!("{:?}", actions[0])
    };
    for action in &actions {
        let Action::Send(_, frames) = action else {
            panic!("{action:?}")
        };
        assert_eq!(frames.as_ptr(), first.as_ptr(), "no per-subscriber copy");
    }
    let offsets: Vec<u64> = publications(&received(&actions, 7))
        .iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(offsets, (1..=20).collect::<Vec<_>>());
    assert_eq!(rig.s.stats().deliveries, 50 * 20);
}

#[test]
fn v1_and_v2_subscribers_share_a_channel_and_v1_publishes_are_numbered() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V1, None);
    rig.hello(2, PROTOCOL_V2, None);
    rig.send(1, PROTOCOL_V1, v1_subscribe(b"c"));
    rig.turn(2, sub(1, b"c", None));
    rig.send(1, PROTOCOL_V1, v1_publish(b"c", b"from v1"));
    rig.send(2, PROTOCOL_V2, encode_publish(0, b"c", b"from v2"));
    let actions = rig.flush();
    assert_eq!(
        publications(&received(&actions, 2)),
        [(101, 1, b"from v1".to_vec()), (101, 2, b"from v2".to_vec())]
    );
    let v1: Vec<Vec<u8>> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(c, frames) if *c == conn(1) => Some(frames.clone()),
            _ => None,
        })
        .flat_map(|frames| {
            let mut decoder = FrameDecoder::new(65535);
            let mut input: &[u8] = &frames;
            let mut bodies = Vec::new();
            while let Some(f) = decoder.next_frame(&mut input).expect("frames") {
                bodies.push(parse_delivery(&f.payload).expect("M").1.to_vec());
            }
            bodies
        })
        .collect();
    assert_eq!(v1, [b"from v1".to_vec(), b"from v2".to_vec()]);
}

#[test]
fn unsubscribe_is_answered_and_nothing_follows_it() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.hello(9, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"c", None));
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", b"before"));
    rig.send(1, PROTOCOL_V2, encode_unsubscribe(2, b"c"));
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", b"after"));
    let msgs = received(&rig.flush(), 1);
    assert_eq!(publications(&msgs), [(101, 1, b"before".to_vec())]);
    assert!(matches!(msgs.last(), Some(ServerMsg::UnsubscribeReply(r)) if r.status == Status::Ok));
    // Not subscribed, or an empty channel: OK and BAD_CHANNEL.
    let msgs = received(&rig.turn(1, encode_unsubscribe(3, b"c")), 1);
    assert!(matches!(msgs[..], [ServerMsg::UnsubscribeReply(r)] if r.status == Status::Ok));
    let msgs = received(&rig.turn(1, encode_unsubscribe(4, b"")), 1);
    assert!(matches!(msgs[..], [ServerMsg::UnsubscribeReply(r)] if r.status == Status::BadChannel));
}

#[test]
fn refusals_and_protocol_errors() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    let reply = subscribed(&received(&rig.turn(1, sub(1, b"", None)), 1));
    assert_eq!(reply, SubscribeReply::refused(1, Status::BadChannel));
    let msgs = received(&rig.turn(1, encode_publish(2, b"", b"x")), 1);
    assert_eq!(
        msgs,
        [ServerMsg::PublishAck(PublishAck::refused(
            2,
            Status::BadChannel
        ))]
    );
    for channel in 0..1024u32 {
        rig.turn(1, sub(3, &channel.to_be_bytes(), None));
    }
    let reply = subscribed(&received(&rig.turn(1, sub(4, b"one more", None)), 1));
    assert_eq!(reply.status, Status::TooManySubscriptions);
    // Replacing one it holds is still fine.
    let reply = subscribed(&received(
        &rig.turn(1, sub(5, &7u32.to_be_bytes(), None)),
        1,
    ));
    assert_eq!(reply.status, Status::Ok);
    // A v1 op on a v2 connection, and the reverse.
    let closed = |actions: &[Action], key| {
        actions
            .iter()
            .any(|a| matches!(a, Action::Close(c, GoawayCode::ProtocolError, _) if *c == conn(key)))
    };
    assert!(closed(&rig.turn(1, v1_subscribe(b"c")), 1));
    rig.hello(2, PROTOCOL_V1, None);
    rig.send(2, PROTOCOL_V1, sub(1, b"c", None));
    assert!(closed(&rig.flush(), 2));
}

#[test]
fn a_v2_session_ends_with_its_connection_and_a_takeover_starts_empty() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"c", None));
    assert_eq!(rig.s.session_count(), 1);
    // Takeover: RESUME of the live v2 session.
    let actions = rig.hello(2, PROTOCOL_V2, Some(sid(1)));
    assert!(matches!(
        &actions[..],
        [Action::Close(c, GoawayCode::SessionTakenOver, _), Action::Accept(n, g)]
            if *c == conn(1) && *n == conn(2) && g.resumed && g.session == sid(1) && !g.lost
    ));
    assert_eq!(
        rig.s.subscription_count(),
        0,
        "starts with no subscriptions"
    );
    rig.hello(9, PROTOCOL_V2, None);
    assert!(received(&rig.turn(9, encode_publish(0, b"c", b"x")), 2).is_empty());
    // Subscribed again under the same id, then closed: nothing is kept.
    let event = MessageEvent {
        conn: conn(2),
        session: sid(1),
        version: PROTOCOL_V2,
        message: sub(2, b"c", None),
    };
    rig.s.handle_message(&event, rig.now, 0, &mut rig.out);
    rig.flush();
    assert_eq!(rig.s.session_of(conn(2)), Some(sid(1)));
    rig.s
        .handle_close(conn(2), CloseReason::Reset, rig.now, &mut rig.out);
    assert!(rig.flush().is_empty(), "no detach, no TTL timer");
    assert_eq!((rig.s.session_count(), rig.s.subscription_count()), (0, 0));
    // A v1 HELLO resuming a v2 id, or the reverse, gets a fresh session.
    rig.hello(3, PROTOCOL_V1, None);
    rig.send(3, PROTOCOL_V1, v1_subscribe(b"c"));
    rig.s
        .handle_close(conn(3), CloseReason::Reset, rig.now, &mut rig.out);
    rig.flush();
    let actions = rig.hello(4, PROTOCOL_V2, Some(sid(3)));
    assert!(matches!(&actions[..], [Action::Accept(_, g)] if !g.resumed && g.session == sid(4)));
}

#[test]
fn idle_streams_expire_on_their_timer_and_a_new_epoch_follows() {
    let mut rig = Rig::new(256);
    rig.hello(9, PROTOCOL_V2, None);
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"c", b"x"));
    rig.s.flush(rig.now, &mut rig.out);
    let timer = rig
        .out
        .drain()
        .find_map(|a| match a {
            Action::SetTimer { key, after_ms } => Some((key, after_ms)),
            _ => None,
        })
        .expect("the streams' expiry timer");
    // ttl 1000 ticks of 10 ms, plus the tick that makes it never early.
    assert_eq!(timer, (STREAMS_TIMER, 10_010));
    rig.now = 1_001;
    rig.s.handle_timer(STREAMS_TIMER, rig.now, &mut rig.out);
    assert_eq!(rig.s.stream_stats().streams, 0, "idle stream forgotten");
    rig.hello(1, PROTOCOL_V2, None);
    let reply = subscribed(&received(&rig.turn(1, sub(1, b"c", Some((101, 1)))), 1));
    assert_eq!(
        (reply.recovered, reply.reason, reply.epoch, reply.top),
        (false, RecoveryReason::EpochChanged, 102, 0)
    );
}

#[test]
fn a_subscriber_of_several_channels_gets_one_turn_in_publish_order() {
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"a", None));
    rig.turn(1, sub(2, b"b", None));
    rig.hello(9, PROTOCOL_V2, None);
    for (channel, i) in [(&b"b"[..], 1), (b"a", 2), (b"b", 3), (b"b", 4)] {
        rig.send(9, PROTOCOL_V2, encode_publish(0, channel, &body(i)));
    }
    let bodies: Vec<Vec<u8>> = publications(&received(&rig.flush(), 1))
        .into_iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(bodies, [body(1), body(2), body(3), body(4)]);
}

#[test]
fn a_session_ending_with_a_batch_pending_gives_the_batch_to_the_others() {
    // Found by the pubsub_state fuzz target: the session left the slab
    // before its channels were flushed.
    let mut rig = Rig::new(256);
    rig.hello(1, PROTOCOL_V2, None);
    rig.hello(2, PROTOCOL_V2, None);
    rig.turn(1, sub(1, b"a", None));
    rig.turn(2, sub(1, b"a", None));
    rig.hello(9, PROTOCOL_V2, None);
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"a", b"x"));
    // A takeover of conn 1's session in the same turn ends it (and queues
    // the channel's batch to its members first).
    let mut actions = rig.hello(3, PROTOCOL_V2, Some(sid(1)));
    actions.extend(rig.flush());
    assert_eq!(publications(&received(&actions, 2)).len(), 1);
    assert!(
        received(&actions, 3).is_empty(),
        "the new connection starts empty"
    );
    // And a v1 session expiring while a publication to its channel waits.
    rig.hello(4, PROTOCOL_V1, None);
    rig.send(4, PROTOCOL_V1, v1_subscribe(b"a"));
    rig.s
        .handle_close(conn(4), CloseReason::Reset, rig.now, &mut rig.out);
    let timer = rig
        .out
        .drain()
        .find_map(|a| match a {
            Action::SetTimer { key, .. } if key != STREAMS_TIMER => Some(key),
            _ => None,
        })
        .expect("the detached session's TTL timer");
    rig.send(9, PROTOCOL_V2, encode_publish(0, b"a", b"y"));
    rig.s.handle_timer(timer, rig.now, &mut rig.out);
    let actions = rig.flush();
    assert_eq!(publications(&received(&actions, 2)).len(), 1);
    assert_eq!(rig.s.session_count(), 1, "only conn 2's");
}
