use super::*;
use crate::app::pubsub::ops::{parse_delivery, publish, subscribe, unsubscribe};
use crate::app::pubsub::streams::{EpochSource, HistoryLimits};
use crate::app::Action;
use crate::protocol::{FrameDecoder, PROTOCOL_V1};
use crate::time::Span;

fn limits() -> PubsubLimits {
    PubsubLimits {
        session_ttl_ms: 60_000,
        session_queue: 100,
        max_frame: 65535,
        history: HistoryLimits {
            size: 256,
            ttl: Span::from_ticks(3_000),
            memory: 1 << 20,
        },
        tick_ms: 100,
    }
}

/// Epochs 1, 2, 3, ... so tests can name them.
fn counting_epochs() -> Box<dyn EpochSource> {
    let mut drawn = 0;
    Box::new(move || {
        drawn += 1;
        drawn
    })
}

fn new_state() -> PubsubState {
    PubsubState::new(limits(), counting_epochs())
}

/// A v1 message from `conn` handled as a turn of its own: its deliveries
/// are queued at the end of the turn.
fn msg(s: &mut PubsubState, conn: ConnId, session: SessionId, message: &Bytes, out: &mut Outbox) {
    let event = MessageEvent {
        conn,
        session,
        version: PROTOCOL_V1,
        message: message.clone(),
    };
    s.handle_message(&event, 0, 0, out);
    s.flush_deliveries(out);
}

/// A v1 HELLO from `conn`.
fn hello(
    s: &mut PubsubState,
    conn: ConnId,
    resume: Option<SessionId>,
    fresh: SessionId,
    out: &mut Outbox,
) -> SessionGrant {
    let hello = Hello {
        version: PROTOCOL_V1,
        heartbeat_ms: 0,
        token: Bytes::new(),
        resume,
    };
    s.handle_hello(conn, &hello, fresh, 0, out)
}

fn conn(key: u32) -> ConnId {
    ConnId { key, generation: 1 }
}

fn sid(n: u8) -> SessionId {
    SessionId([n; 16])
}

/// The session id the tests give connection `key` at its HELLO (see `open`).
fn sid_of<K: TryInto<u8>>(key: K) -> SessionId {
    sid(key.try_into().unwrap_or(0))
}

/// The delivered (channel, body) pairs in a Send action's frames.
fn delivered(frames: &Bytes) -> (Vec<u8>, Vec<u8>) {
    let mut d = FrameDecoder::new(65535);
    let mut input: &[u8] = frames;
    let f = d.next_frame(&mut input).expect("valid").expect("frame");
    let (c, b) = parse_delivery(&f.payload).expect("delivery");
    (c.to_vec(), b.to_vec())
}

fn open(state: &mut PubsubState, c: ConnId, n: u8) -> SessionGrant {
    let mut out = Outbox::new(65535);
    let grant = hello(state, c, None, sid(n), &mut out);
    state.handle_open(c, &mut out);
    assert!(out.is_empty());
    grant
}

#[test]
fn one_delivery_buffer_is_shared_by_every_subscriber() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    for k in 0..100 {
        open(&mut s, conn(k), k as u8);
        msg(&mut s, conn(k), sid_of(k), &subscribe(b"news"), &mut out);
    }
    open(&mut s, conn(500), 200);
    msg(
        &mut s,
        conn(500),
        sid_of(500),
        &publish(b"news", b"flash"),
        &mut out,
    );
    assert_eq!(out.len(), 100);
    let first = match &out[0] {
        Action::Send(_, frames) => frames.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(delivered(&first), (b"news".to_vec(), b"flash".to_vec()));
    let mut receivers = HashSet::new();
    for action in out.iter() {
        let Action::Send(c, frames) = action else {
            panic!("{action:?}")
        };
        assert_eq!(frames.as_ptr(), first.as_ptr(), "no per-subscriber copy");
        receivers.insert(*c);
    }
    assert_eq!(receivers.len(), 100);
    assert_eq!(s.stats().deliveries, 100);
}

#[test]
fn publisher_subscribed_gets_its_own_message_and_unsubscribe_stops_it() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out); // idempotent
    msg(&mut s, conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(s.subscription_count(), 1);
    out.clear();
    msg(&mut s, conn(1), sid_of(1), &unsubscribe(b"c"), &mut out);
    msg(&mut s, conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert!(out.is_empty());
    assert_eq!(s.channel_count(), 0);
}

#[test]
fn malformed_op_is_a_protocol_error() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    msg(
        &mut s,
        conn(1),
        sid_of(1),
        &Bytes::from_static(b"Zzz"),
        &mut out,
    );
    assert!(matches!(
        out[..],
        [Action::Close(c, GoawayCode::ProtocolError, _)] if c == conn(1)
    ));
}

#[test]
fn detached_session_keeps_subscriptions_and_queue_then_resumes_in_order() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    open(&mut s, conn(2), 2);
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    assert!(matches!(
        out[..],
        [Action::SetTimer {
            after_ms: 60_000,
            ..
        }]
    ));
    out.clear();
    for body in [&b"one"[..], b"two"] {
        msg(&mut s, conn(2), sid_of(2), &publish(b"c", body), &mut out);
    }
    assert!(out.is_empty(), "queued, not sent");
    assert_eq!(s.detached_count(), 1);
    let again = hello(&mut s, conn(3), Some(grant.session), sid(9), &mut out);
    assert_eq!(
        (again.session, again.resumed, again.lost),
        (grant.session, true, false)
    );
    s.handle_open(conn(3), &mut out);
    let bodies: Vec<Vec<u8>> = out
        .iter()
        .map(|a| match a {
            Action::Send(c, f) if *c == conn(3) => delivered(f).1,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
    out.clear();
    msg(
        &mut s,
        conn(2),
        sid_of(2),
        &publish(b"c", b"live"),
        &mut out,
    );
    assert!(matches!(&out[..], [Action::Send(c, _)] if *c == conn(3)));
    assert_eq!(s.stats().resumed, 1);
}

#[test]
fn queue_overflow_drops_the_oldest_and_reports_lost() {
    let mut s = new_state(); // queue limit 100 bytes
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    open(&mut s, conn(2), 2);
    s.handle_close(conn(1), CloseReason::PeerEof, 0, &mut out);
    out.clear();
    for i in 0..10u8 {
        msg(
            &mut s,
            conn(2),
            sid_of(2),
            &publish(b"c", &[i; 20]),
            &mut out,
        );
    }
    let again = hello(&mut s, conn(3), Some(grant.session), sid(9), &mut out);
    assert!(again.resumed && again.lost);
    s.handle_open(conn(3), &mut out);
    let bodies: Vec<u8> = out
        .iter()
        .filter_map(|a| match a {
            Action::Send(_, f) => Some(delivered(f).1[0]),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, vec![7, 8, 9], "the newest that fit, in order");
    assert!(s.stats().dropped > 0);
    // LOST is reported once.
    s.handle_close(conn(3), CloseReason::Reset, 0, &mut out);
    let third = hello(&mut s, conn(4), Some(grant.session), sid(9), &mut out);
    assert!(third.resumed && !third.lost);
}

#[test]
fn expired_session_is_gone_and_resume_gets_a_fresh_one() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    let Action::SetTimer { key: value, .. } = out[0] else {
        panic!()
    };
    s.handle_timer(value, 0, &mut Outbox::new(65535));
    assert_eq!((s.session_count(), s.channel_count()), (0, 0));
    assert_eq!(s.stats().expired, 1);
    let fresh = hello(&mut s, conn(2), Some(grant.session), sid(7), &mut out);
    assert_eq!((fresh.session, fresh.resumed), (sid(7), false));
}

#[test]
fn a_stale_ttl_timer_does_not_expire_a_resumed_session() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    let Action::SetTimer { key: first, .. } = out[0] else {
        panic!()
    };
    hello(&mut s, conn(2), Some(grant.session), sid(9), &mut out);
    s.handle_timer(first, 0, &mut Outbox::new(65535)); // attached: ignored
    assert_eq!(s.session_count(), 1);
    out.clear();
    s.handle_close(conn(2), CloseReason::Reset, 0, &mut out);
    s.handle_timer(first, 0, &mut Outbox::new(65535)); // detached again, but from an earlier detach: ignored
    assert_eq!(s.session_count(), 1);
    let Action::SetTimer { key: second, .. } = out[0] else {
        panic!()
    };
    s.handle_timer(second, 0, &mut Outbox::new(65535));
    assert_eq!(s.session_count(), 0);
}

#[test]
fn resuming_a_live_session_takes_it_over() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    let again = hello(&mut s, conn(2), Some(grant.session), sid(9), &mut out);
    assert!(again.resumed);
    assert!(matches!(
        out[..],
        [Action::Close(c, GoawayCode::SessionTakenOver, _)] if c == conn(1)
    ));
    out.clear();
    // The old connection's close must not detach the session now owned by the new one.
    s.handle_close(
        conn(1),
        CloseReason::Goaway(GoawayCode::SessionTakenOver),
        0,
        &mut out,
    );
    assert!(out.is_empty());
    msg(&mut s, conn(2), sid_of(2), &publish(b"c", b"x"), &mut out);
    assert!(matches!(&out[..], [Action::Send(c, _)] if *c == conn(2)));
}

#[test]
fn goaway_normal_ends_the_session_at_once() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(
        conn(1),
        CloseReason::PeerGoaway(GoawayCode::Normal),
        0,
        &mut out,
    );
    assert!(out.is_empty(), "no TTL timer");
    assert_eq!((s.session_count(), s.channel_count()), (0, 0));
    let fresh = hello(&mut s, conn(2), Some(grant.session), sid(5), &mut out);
    assert!(!fresh.resumed);
}

#[test]
fn subscriptions_per_session_are_bounded() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    for i in 0..MAX_SUBSCRIPTIONS_PER_SESSION {
        msg(
            &mut s,
            conn(1),
            sid_of(1),
            &subscribe(format!("c{i}").as_bytes()),
            &mut out,
        );
    }
    assert!(out.is_empty());
    msg(
        &mut s,
        conn(1),
        sid_of(1),
        &subscribe(b"one-too-many"),
        &mut out,
    );
    assert!(matches!(
        out[..],
        [Action::Close(_, GoawayCode::ProtocolError, _)]
    ));
}

#[test]
fn connections_that_never_subscribe_cost_no_session_state() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert_eq!(s.session_count(), 0);
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    assert!(out.is_empty(), "nothing to keep, no TTL timer");
    // A resume of it finds nothing and starts afresh, which is all it had.
    let again = hello(&mut s, conn(2), Some(grant.session), sid(2), &mut out);
    assert_eq!((again.session, again.resumed), (sid(2), false));
    // Unsubscribing from everything leaves nothing to keep either.
    msg(&mut s, conn(2), sid_of(2), &subscribe(b"c"), &mut out);
    msg(&mut s, conn(2), sid_of(2), &unsubscribe(b"c"), &mut out);
    s.handle_close(conn(2), CloseReason::Reset, 0, &mut out);
    assert_eq!((s.session_count(), out.len()), (0, 0));
}

#[test]
fn a_timer_from_an_ended_session_does_not_expire_the_next_one_in_its_slot() {
    // Found by the pubsub_state fuzz target: slab keys are reused.
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let a = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    let Action::SetTimer { key: stale, .. } = out[0] else {
        panic!("{out:?}")
    };
    out.clear();
    // Resumed, emptied and ended: its slab key is free again.
    hello(&mut s, conn(2), Some(a.session), sid(2), &mut out);
    msg(&mut s, conn(2), sid_of(2), &unsubscribe(b"c"), &mut out);
    s.handle_close(conn(2), CloseReason::Reset, 0, &mut out);
    assert_eq!(s.session_count(), 0);
    // A new session takes the slot and detaches.
    open(&mut s, conn(3), 3);
    msg(&mut s, conn(3), sid_of(3), &subscribe(b"d"), &mut out);
    s.handle_close(conn(3), CloseReason::Reset, 0, &mut out);
    s.handle_timer(stale, 0, &mut Outbox::new(65535));
    assert_eq!(
        s.session_count(),
        1,
        "the stale timer must not expire the new session"
    );
}

#[test]
fn mark_lost_is_reported_at_the_next_resume() {
    let mut s = new_state();
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    msg(&mut s, conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    assert_eq!(s.attached_conn(grant.session), Some(conn(1)));
    s.mark_lost(conn(1));
    s.handle_close(conn(1), CloseReason::Reset, 0, &mut out);
    assert_eq!(s.attached_conn(grant.session), None);
    let again = hello(&mut s, conn(2), Some(grant.session), sid(2), &mut out);
    assert!(again.resumed && again.lost);
}
