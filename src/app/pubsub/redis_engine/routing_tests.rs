//! The cluster engine with plain values: two masters, the slot map read
//! with `CLUSTER SLOTS`, commands routed by slot, MOVED followed (the map
//! updated, the command sent again to the owner), ASK followed after
//! `ASKING`, a pushed `sunsubscribe` subscribed again with a catch-up, a
//! master down refusing only its own channels.

use std::net::SocketAddr;

use bytes::Bytes;

use super::tests::{base, epochs, flush, sent, streams, HELLO_REPLY};
use super::{RedisEngine, REDIS_LINK};
use crate::app::pubsub::engine::{Answer, Engine};
use crate::app::pubsub::ops_v2::Status;
use crate::app::{Action, LinkEvent, Outbox};
use crate::engine::redis::{KeySpace, PubsubKind, RedisConfig, Value};

const A: u64 = REDIS_LINK;
const B: u64 = REDIS_LINK + 1;
/// Three SCRIPT LOAD replies.
const LOADED: &[u8] = b"$1\r\nx\r\n$1\r\nx\r\n$1\r\nx\r\n";

fn keys() -> KeySpace {
    KeySpace::new("t").expect("a key space")
}

fn engine() -> RedisEngine {
    let seeds = [addr(7001), addr(7002)];
    RedisEngine::cluster(
        &seeds,
        RedisConfig::default(),
        streams(PubsubKind::Sharded),
        epochs(),
        base(),
        10,
        65535,
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A channel whose slot is below 8192 (`low`, on A) or not (on B).
fn channel(low: bool) -> Bytes {
    (0..)
        .map(|i| Bytes::from(format!("c{i}")))
        .find(|c| (keys().slot(c) < 8192) == low)
        .expect("a channel")
}

/// `CLUSTER SLOTS`: 0..=8191 on `first`, the rest on `second`.
fn slots(first: u16, second: u16) -> Vec<u8> {
    let range = |s: u16, e: u16, port: u16| {
        format!("*3\r\n:{s}\r\n:{e}\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n")
    };
    format!(
        "*2\r\n{}{}",
        range(0, 8191, first),
        range(8192, 16383, second)
    )
    .into_bytes()
}

fn data(e: &mut RedisEngine, link: u64, bytes: &[u8], now: u64, out: &mut Outbox) {
    e.on_link(LinkEvent::Data { link, bytes }, now, out);
}

/// What went out on `link`, as text.
fn on(link: u64, actions: &[Action]) -> String {
    let only: Vec<Action> = actions
        .iter()
        .filter(|a| matches!(a, Action::Transmit { link: l, .. } if *l == link))
        .cloned()
        .collect();
    sent(&only)
}

/// Both masters ready, the map read from A: A owns 0..=8191, B the rest.
fn mapped(out: &mut Outbox) -> RedisEngine {
    let mut e = engine();
    let first = flush(&mut e, 0, out);
    let dialled: Vec<u64> = first
        .iter()
        .filter_map(|a| match a {
            Action::Dial { link, .. } => Some(*link),
            _ => None,
        })
        .collect();
    assert_eq!(dialled, [A, B], "every seed dialled");
    data(&mut e, A, HELLO_REPLY, 1, out);
    let wire = on(A, &flush(&mut e, 1, out));
    assert!(wire.contains("CLUSTER") && wire.contains("SLOTS"), "{wire}");
    data(&mut e, A, &[LOADED, &slots(7001, 7002)].concat(), 2, out);
    data(&mut e, B, HELLO_REPLY, 2, out);
    data(&mut e, B, LOADED, 2, out);
    flush(&mut e, 2, out);
    assert!(e.is_ready());
    assert_eq!(e.stats().slot_map_refreshes, 1);
    e
}

#[test]
fn commands_go_to_the_master_of_their_slot() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let (low, high) = (channel(true), channel(false));
    assert_eq!(e.publish(1, &low, b"x", 3), Answer::Later);
    assert_eq!(e.publish(2, &high, b"y", 3), Answer::Later);
    assert_eq!(e.subscribe(3, &low, None, 1 << 20, 3), Answer::Later);
    assert_eq!(e.subscribe(4, &high, None, 1 << 20, 3), Answer::Later);
    let actions = flush(&mut e, 3, &mut out);
    let (at_a, at_b) = (on(A, &actions), on(B, &actions));
    let low_pub = String::from_utf8_lossy(&keys().keys(&low).pubsub).into_owned();
    let high_pub = String::from_utf8_lossy(&keys().keys(&high).pubsub).into_owned();
    assert!(
        at_a.contains(&low_pub) && !at_a.contains(&high_pub),
        "{at_a}"
    );
    assert!(
        at_b.contains(&high_pub) && !at_b.contains(&low_pub),
        "{at_b}"
    );
    for wire in [&at_a, &at_b] {
        let subscribe = wire.find("SSUBSCRIBE").expect("SSUBSCRIBE");
        assert!(
            wire.rfind("EVALSHA").expect("the read") > subscribe,
            "the read after the SSUBSCRIBE on the same connection: {wire}"
        );
    }
}

#[test]
fn a_moved_publish_is_sent_again_to_the_new_owner_and_the_map_follows() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let low = channel(true);
    let slot = keys().slot(&low);
    assert_eq!(e.publish(7, &low, b"x", 3), Answer::Later);
    assert!(on(A, &flush(&mut e, 3, &mut out)).contains("EVALSHA"));
    let moved = format!("-MOVED {slot} 127.0.0.1:7002\r\n");
    data(&mut e, A, moved.as_bytes(), 4, &mut out);
    let again = on(B, &out.drain().collect::<Vec<_>>());
    assert!(again.contains("EVALSHA"), "resent to B: {again}");
    assert_eq!(e.stats().redirects, 1);
    // The publish's reply comes from B.
    data(
        &mut e,
        B,
        b"*2\r\n$8\r\n\0\0\0\0\0\0\0\x09\r\n:1\r\n",
        5,
        &mut out,
    );
    match e.poll_event() {
        Some(crate::app::pubsub::engine::EngineEvent::Published { token: 7, result }) => {
            assert_eq!(result.map(|p| p.offset), Ok(1))
        }
        other => panic!("{other:?}"),
    }
    // The next publish to that slot goes to B straight away.
    assert_eq!(e.publish(8, &low, b"y", 6), Answer::Later);
    let actions = flush(&mut e, 6, &mut out);
    assert!(on(B, &actions).contains("EVALSHA"));
    assert!(!on(A, &actions).contains("EVALSHA"));
}

#[test]
fn an_ask_is_followed_after_asking_without_changing_the_map() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let low = channel(true);
    let slot = keys().slot(&low);
    assert_eq!(e.publish(7, &low, b"x", 3), Answer::Later);
    flush(&mut e, 3, &mut out);
    let ask = format!("-ASK {slot} 127.0.0.1:7002\r\n");
    data(&mut e, A, ask.as_bytes(), 4, &mut out);
    let again = on(B, &out.drain().collect::<Vec<_>>());
    let asking = again.find("ASKING").expect("ASKING first");
    assert!(again.find("EVALSHA").expect("the publish") > asking);
    assert_eq!(e.publish(8, &low, b"y", 5), Answer::Later);
    assert!(on(A, &flush(&mut e, 5, &mut out)).contains("EVALSHA"));
}

#[test]
fn redirects_are_bounded() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let low = channel(true);
    let slot = keys().slot(&low);
    assert_eq!(e.publish(7, &low, b"x", 3), Answer::Later);
    flush(&mut e, 3, &mut out);
    // A and B send it to each other: after MAX_REDIRECTS, UNAVAILABLE.
    for (i, (link, to)) in [(A, 7002), (B, 7001), (A, 7002), (B, 7001)]
        .into_iter()
        .enumerate()
    {
        let moved = format!("-MOVED {slot} 127.0.0.1:{to}\r\n");
        data(&mut e, link, moved.as_bytes(), 4 + i as u64, &mut out);
        out.drain().for_each(drop);
    }
    assert_eq!(
        e.poll_event(),
        Some(crate::app::pubsub::engine::EngineEvent::Published {
            token: 7,
            result: Err(Status::Unavailable)
        })
    );
}

#[test]
fn a_master_down_refuses_its_channels_only_and_they_come_back() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let (low, high) = (channel(true), channel(false));
    assert_eq!(e.subscribe(0, &high, None, 1 << 20, 3), Answer::Later);
    flush(&mut e, 3, &mut out);
    let closed = LinkEvent::Closed {
        link: B,
        why: "reset",
    };
    e.on_link(closed, 4, &mut out);
    assert_eq!(
        e.publish(1, &high, b"x", 4),
        Answer::Now(Err(Status::Unavailable))
    );
    assert_eq!(
        e.subscribe(2, &high, None, 1 << 20, 4),
        Answer::Now(Err(Status::Unavailable))
    );
    assert_eq!(e.publish(3, &low, b"x", 4), Answer::Later);
    assert!(!on(A, &flush(&mut e, 4, &mut out)).contains("SLOTS"));
    // B is dialled again after the backoff; the map is read again from A
    // within REFRESH_MS (a replica may have taken B's slots).
    let later = flush(&mut e, 110, &mut out);
    assert!(later
        .iter()
        .any(|a| matches!(a, Action::Dial { link: B, .. })));
    assert!(on(A, &later).contains("SLOTS"), "{}", on(A, &later));
    // B is back: its channel is subscribed there again.
    data(&mut e, B, HELLO_REPLY, 111, &mut out);
    let wire = on(B, &flush(&mut e, 111, &mut out));
    assert!(wire.contains("SSUBSCRIBE"), "{wire}");
    assert_eq!(e.publish(4, &high, b"x", 111), Answer::Later);
}

#[test]
fn a_pushed_sunsubscribe_subscribes_again_and_catches_up() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    let low = channel(true);
    let name = keys().keys(&low).pubsub;
    assert_eq!(e.subscribe(0, &low, None, 1 << 20, 3), Answer::Later);
    flush(&mut e, 3, &mut out);
    let n = name.len();
    let name = String::from_utf8_lossy(&name).into_owned();
    // Confirmed, then a read reply seeds the feed's position (epoch 9, top 4).
    data(
        &mut e,
        A,
        format!(">3\r\n$10\r\nssubscribe\r\n${n}\r\n{name}\r\n:1\r\n").as_bytes(),
        4,
        &mut out,
    );
    e.feeds.seen(&low, 9, 4);
    // The slot moved to B: A ends the subscription on its own.
    data(
        &mut e,
        A,
        format!(">3\r\n$12\r\nsunsubscribe\r\n${n}\r\n{name}\r\n:0\r\n").as_bytes(),
        5,
        &mut out,
    );
    // The map says B now.
    let actions = flush(&mut e, 200, &mut out);
    // Asked of B this time (the asks go round); A gets the SSUBSCRIBE
    // again meanwhile (it would answer MOVED).
    assert!(on(B, &actions).contains("SLOTS"));
    data(&mut e, B, &slots(7002, 7002), 201, &mut out);
    let wire = on(B, &flush(&mut e, 201, &mut out));
    let subscribe = wire.find("SSUBSCRIBE").expect("subscribed at B");
    let catch_up = wire.find("EVALSHA").expect("a catch-up read at B");
    assert!(catch_up > subscribe, "{wire}");
}

/// The `CLUSTER SLOTS` value of [`slots`].
fn slots_value(first: u16, second: u16) -> Value {
    let range = |s: i64, e: i64, port: u16| {
        let master = vec![
            Value::Bytes(Bytes::from_static(b"127.0.0.1")),
            Value::Int(i64::from(port)),
        ];
        Value::Array(vec![Value::Int(s), Value::Int(e), Value::Array(master)])
    };
    Value::Array(vec![range(0, 8191, first), range(8192, 16383, second)])
}

#[test]
fn a_master_no_map_names_any_more_is_not_dialled_again() {
    let mut out = Outbox::new(65535);
    let mut e = mapped(&mut out);
    // B's slots went to C (a promoted replica): C is found and dialled.
    e.on_slots(Some(&slots_value(7001, 7003)), 0);
    let c = REDIS_LINK + 2;
    let actions = flush(&mut e, 3, &mut out);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Dial { link, addr } if *link == c && addr.port() == 7003)));
    data(&mut e, c, HELLO_REPLY, 4, &mut out);
    assert!(e.is_ready(), "A and C, the map's masters, are ready");
    // Then back to B: C is dropped, and not dialled again once closed.
    e.on_slots(Some(&slots_value(7001, 7002)), 0);
    e.on_link(
        LinkEvent::Closed {
            link: c,
            why: "reset",
        },
        6,
        &mut out,
    );
    let later = flush(&mut e, 1_000, &mut out);
    assert!(!later
        .iter()
        .any(|a| matches!(a, Action::Dial { link, .. } if *link == c)));
    assert!(e.is_ready());
}
