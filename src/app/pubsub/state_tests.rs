use super::*;
use crate::app::pubsub::ops::{parse_delivery, publish, subscribe, unsubscribe};
use crate::app::Action;
use crate::protocol::FrameDecoder;

fn limits() -> PubsubLimits {
    PubsubLimits {
        session_ttl_ms: 60_000,
        session_queue: 100,
        max_frame: 65535,
    }
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
    let grant = state.handle_hello(c, None, sid(n), &mut out);
    state.handle_open(c, &mut out);
    assert!(out.is_empty());
    grant
}

#[test]
fn one_delivery_buffer_is_shared_by_every_subscriber() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    for k in 0..100 {
        open(&mut s, conn(k), k as u8);
        s.handle_message(conn(k), sid_of(k), &subscribe(b"news"), &mut out);
    }
    open(&mut s, conn(500), 200);
    s.handle_message(
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
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out); // idempotent
    s.handle_message(conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(s.subscription_count(), 1);
    out.clear();
    s.handle_message(conn(1), sid_of(1), &unsubscribe(b"c"), &mut out);
    s.handle_message(conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert!(out.is_empty());
    assert_eq!(s.channel_count(), 0);
}

#[test]
fn malformed_op_is_a_protocol_error() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &Bytes::from_static(b"Zzz"), &mut out);
    assert!(matches!(
        out[..],
        [Action::Close(c, GoawayCode::ProtocolError, _)] if c == conn(1)
    ));
}

#[test]
fn detached_session_keeps_subscriptions_and_queue_then_resumes_in_order() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    open(&mut s, conn(2), 2);
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    assert!(matches!(
        out[..],
        [Action::SetTimer {
            after_ms: 60_000,
            ..
        }]
    ));
    out.clear();
    for body in [&b"one"[..], b"two"] {
        s.handle_message(conn(2), sid_of(2), &publish(b"c", body), &mut out);
    }
    assert!(out.is_empty(), "queued, not sent");
    assert_eq!(s.detached_count(), 1);
    let again = s.handle_hello(conn(3), Some(grant.session), sid(9), &mut out);
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
    s.handle_message(conn(2), sid_of(2), &publish(b"c", b"live"), &mut out);
    assert!(matches!(&out[..], [Action::Send(c, _)] if *c == conn(3)));
    assert_eq!(s.stats().resumed, 1);
}

#[test]
fn queue_overflow_drops_the_oldest_and_reports_lost() {
    let mut s = PubsubState::new(limits()); // queue limit 100 bytes
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    open(&mut s, conn(2), 2);
    s.handle_close(conn(1), CloseReason::PeerEof, &mut out);
    out.clear();
    for i in 0..10u8 {
        s.handle_message(conn(2), sid_of(2), &publish(b"c", &[i; 20]), &mut out);
    }
    let again = s.handle_hello(conn(3), Some(grant.session), sid(9), &mut out);
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
    s.handle_close(conn(3), CloseReason::Reset, &mut out);
    let third = s.handle_hello(conn(4), Some(grant.session), sid(9), &mut out);
    assert!(third.resumed && !third.lost);
}

#[test]
fn expired_session_is_gone_and_resume_gets_a_fresh_one() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    let Action::SetTimer { key: value, .. } = out[0] else {
        panic!()
    };
    s.handle_timer(value);
    assert_eq!((s.session_count(), s.channel_count()), (0, 0));
    assert_eq!(s.stats().expired, 1);
    let fresh = s.handle_hello(conn(2), Some(grant.session), sid(7), &mut out);
    assert_eq!((fresh.session, fresh.resumed), (sid(7), false));
}

#[test]
fn a_stale_ttl_timer_does_not_expire_a_resumed_session() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    let Action::SetTimer { key: first, .. } = out[0] else {
        panic!()
    };
    s.handle_hello(conn(2), Some(grant.session), sid(9), &mut out);
    s.handle_timer(first); // attached: ignored
    assert_eq!(s.session_count(), 1);
    out.clear();
    s.handle_close(conn(2), CloseReason::Reset, &mut out);
    s.handle_timer(first); // detached again, but from an earlier detach: ignored
    assert_eq!(s.session_count(), 1);
    let Action::SetTimer { key: second, .. } = out[0] else {
        panic!()
    };
    s.handle_timer(second);
    assert_eq!(s.session_count(), 0);
}

#[test]
fn resuming_a_live_session_takes_it_over() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    let again = s.handle_hello(conn(2), Some(grant.session), sid(9), &mut out);
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
        &mut out,
    );
    assert!(out.is_empty());
    s.handle_message(conn(2), sid_of(2), &publish(b"c", b"x"), &mut out);
    assert!(matches!(&out[..], [Action::Send(c, _)] if *c == conn(2)));
}

#[test]
fn goaway_normal_ends_the_session_at_once() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(
        conn(1),
        CloseReason::PeerGoaway(GoawayCode::Normal),
        &mut out,
    );
    assert!(out.is_empty(), "no TTL timer");
    assert_eq!((s.session_count(), s.channel_count()), (0, 0));
    let fresh = s.handle_hello(conn(2), Some(grant.session), sid(5), &mut out);
    assert!(!fresh.resumed);
}

#[test]
fn subscriptions_per_session_are_bounded() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    open(&mut s, conn(1), 1);
    for i in 0..MAX_SUBSCRIPTIONS_PER_SESSION {
        s.handle_message(
            conn(1),
            sid_of(1),
            &subscribe(format!("c{i}").as_bytes()),
            &mut out,
        );
    }
    assert!(out.is_empty());
    s.handle_message(conn(1), sid_of(1), &subscribe(b"one-too-many"), &mut out);
    assert!(matches!(
        out[..],
        [Action::Close(_, GoawayCode::ProtocolError, _)]
    ));
}

#[test]
fn connections_that_never_subscribe_cost_no_session_state() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &publish(b"c", b"x"), &mut out);
    assert_eq!(s.session_count(), 0);
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    assert!(out.is_empty(), "nothing to keep, no TTL timer");
    // A resume of it finds nothing and starts afresh, which is all it had.
    let again = s.handle_hello(conn(2), Some(grant.session), sid(2), &mut out);
    assert_eq!((again.session, again.resumed), (sid(2), false));
    // Unsubscribing from everything leaves nothing to keep either.
    s.handle_message(conn(2), sid_of(2), &subscribe(b"c"), &mut out);
    s.handle_message(conn(2), sid_of(2), &unsubscribe(b"c"), &mut out);
    s.handle_close(conn(2), CloseReason::Reset, &mut out);
    assert_eq!((s.session_count(), out.len()), (0, 0));
}

#[test]
fn a_timer_from_an_ended_session_does_not_expire_the_next_one_in_its_slot() {
    // Found by the pubsub_state fuzz target: slab keys are reused.
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let a = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    let Action::SetTimer { key: stale, .. } = out[0] else {
        panic!("{out:?}")
    };
    out.clear();
    // Resumed, emptied and ended: its slab key is free again.
    s.handle_hello(conn(2), Some(a.session), sid(2), &mut out);
    s.handle_message(conn(2), sid_of(2), &unsubscribe(b"c"), &mut out);
    s.handle_close(conn(2), CloseReason::Reset, &mut out);
    assert_eq!(s.session_count(), 0);
    // A new session takes the slot and detaches.
    open(&mut s, conn(3), 3);
    s.handle_message(conn(3), sid_of(3), &subscribe(b"d"), &mut out);
    s.handle_close(conn(3), CloseReason::Reset, &mut out);
    s.handle_timer(stale);
    assert_eq!(
        s.session_count(),
        1,
        "the stale timer must not expire the new session"
    );
}

#[test]
fn mark_lost_is_reported_at_the_next_resume() {
    let mut s = PubsubState::new(limits());
    let mut out = Outbox::new(65535);
    let grant = open(&mut s, conn(1), 1);
    s.handle_message(conn(1), sid_of(1), &subscribe(b"c"), &mut out);
    assert_eq!(s.attached_conn(grant.session), Some(conn(1)));
    s.mark_lost(conn(1));
    s.handle_close(conn(1), CloseReason::Reset, &mut out);
    assert_eq!(s.attached_conn(grant.session), None);
    let again = s.handle_hello(conn(2), Some(grant.session), sid(2), &mut out);
    assert!(again.resumed && again.lost);
}
