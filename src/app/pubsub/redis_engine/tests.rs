//! The Redis engine with plain values: RESP bytes in through link events,
//! actions out, ticks for time. Dialling, refusal while down, the
//! reconnect backoff, scripts loaded before any call, a publish
//! acknowledged from its reply or refused when the connection ends.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Instant;

use bytes::Bytes;

use super::{RedisEngine, REDIS_LINK, REDIS_TIMER};
use crate::app::pubsub::engine::{Answer, Engine, EngineEvent};
use crate::app::pubsub::ops_v2::Status;
use crate::app::{Action, LinkEvent, Outbox};
use crate::engine::redis::{KeySpace, PubsubKind, RedisConfig, RedisStreams};

pub(super) const HELLO_REPLY: &[u8] =
    b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n";

pub(super) fn base() -> Instant {
    // Any fixed instant: the engine only converts ticks with it.
    static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);
    *BASE
}

/// The streams of every engine test: 10 entries, a minute, key prefix `t`.
pub(super) fn streams(pubsub: PubsubKind) -> RedisStreams {
    RedisStreams {
        keys: KeySpace::new("t").expect("a key space"),
        pubsub,
        history_size: 10,
        ttl_ms: 60_000,
        max_replay: 10,
        max_replay_bytes: 1 << 20,
    }
}

/// Epochs 1, 2, 3, ...
pub(super) fn epochs() -> Box<dyn crate::app::pubsub::streams::EpochSource> {
    let mut n = 0;
    Box::new(move || {
        n += 1;
        n
    })
}

fn engine() -> RedisEngine {
    let addr = SocketAddr::from(([127, 0, 0, 1], 6379));
    RedisEngine::new(
        addr,
        RedisConfig::default(),
        streams(PubsubKind::Global),
        epochs(),
        base(),
        10,
        65535,
    )
}

fn dials(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Dial {
                    link: REDIS_LINK,
                    ..
                }
            )
        })
        .count()
}

/// Everything transmitted, as text (RESP is mostly ASCII).
pub(super) fn sent(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

pub(super) fn flush(e: &mut RedisEngine, now: u64, out: &mut Outbox) -> Vec<Action> {
    e.flush(now, out);
    out.drain().collect()
}

#[test]
fn dials_at_the_first_flush_and_refuses_until_ready() {
    let (mut e, mut out) = (engine(), Outbox::new(65535));
    let first = flush(&mut e, 0, &mut out);
    assert_eq!(dials(&first), 1);
    assert!(sent(&first).contains("HELLO"), "the handshake goes first");
    let channel = Bytes::from_static(b"c");
    assert_eq!(
        e.publish(1, &channel, b"x", 0),
        Answer::Now(Err(Status::Unavailable))
    );
    assert_eq!(
        e.subscribe(2, &channel, None, 1 << 20, 0),
        Answer::Now(Err(Status::Unavailable))
    );
    e.unsubscribe(&channel, 0);
    assert_eq!(e.stats().publishes_refused, 1);
    assert_eq!(dials(&flush(&mut e, 1, &mut out)), 0, "one dial at a time");
}

#[test]
fn a_closed_link_is_dialled_again_after_the_backoff() {
    let (mut e, mut out) = (engine(), Outbox::new(65535));
    flush(&mut e, 0, &mut out);
    let closed = LinkEvent::Closed {
        link: REDIS_LINK,
        why: "connection refused",
    };
    e.on_link(closed, 0, &mut out);
    out.drain().for_each(drop);
    // The first retry comes after 50..=100 ms (half the 100 ms backoff plus
    // jitter up to the other half): 5 to 10 ticks.
    let early = flush(&mut e, 4, &mut out);
    assert_eq!(dials(&early), 0, "not before the backoff");
    let timer = early
        .iter()
        .find_map(|a| match a {
            Action::SetTimer {
                key: REDIS_TIMER,
                after_ms,
            } => Some(*after_ms),
            _ => None,
        })
        .expect("a timer for the retry");
    assert!((10..=60).contains(&timer), "{timer} ms");
    assert!(e.on_timer(REDIS_TIMER, 10, &mut out));
    let retry: Vec<Action> = out.drain().collect();
    assert_eq!(dials(&retry), 1);
    assert_eq!(e.stats().reconnects, 1);
    assert!(
        !e.on_timer(u64::MAX, 10, &mut out),
        "the streams' key is not the engine's"
    );
}

#[test]
fn scripts_load_first_and_a_publish_is_acknowledged_from_its_reply() {
    let (mut e, mut out) = (engine(), Outbox::new(65535));
    flush(&mut e, 0, &mut out);
    e.on_link(LinkEvent::Connected { link: REDIS_LINK }, 0, &mut out);
    let data = LinkEvent::Data {
        link: REDIS_LINK,
        bytes: HELLO_REPLY,
    };
    e.on_link(data, 1, &mut out);
    let channel = Bytes::from_static(b"c");
    assert_eq!(e.publish(7, &channel, b"x", 1), Answer::Later);
    assert!(e.is_ready());
    let wire = sent(&flush(&mut e, 1, &mut out));
    let load = wire.find("SCRIPT").expect("SCRIPT LOAD sent");
    let call = wire.find("EVALSHA").expect("the publish script called");
    assert!(load < call, "scripts load before the first call");
    // Three SCRIPT LOAD replies, then the publish's {epoch, offset}.
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.extend_from_slice(b"$40\r\n0000000000000000000000000000000000000000\r\n");
    }
    replies.extend_from_slice(b"*2\r\n$8\r\n\0\0\0\0\0\0\0\x09\r\n:5\r\n");
    let data = LinkEvent::Data {
        link: REDIS_LINK,
        bytes: &replies,
    };
    e.on_link(data, 2, &mut out);
    match e.poll_event() {
        Some(EngineEvent::Published { token: 7, result }) => {
            let p = result.expect("published");
            assert_eq!((p.epoch, p.offset), (9, 5));
        }
        other => panic!("expected the publish's outcome, got {other:?}"),
    }
    // Another publish sent, a third not yet, then the connection ends:
    // the sent one's outcome is unknown (Redis may have run it), the other
    // never left (UNAVAILABLE); neither is retried.
    assert_eq!(e.publish(8, &channel, b"y", 2), Answer::Later);
    flush(&mut e, 2, &mut out);
    assert_eq!(e.publish(9, &channel, b"z", 2), Answer::Later);
    let closed = LinkEvent::Closed {
        link: REDIS_LINK,
        why: "reset",
    };
    e.on_link(closed, 3, &mut out);
    let mut outcomes = vec![e.poll_event(), e.poll_event()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [
            Some(EngineEvent::Published {
                token: 8,
                result: Err(Status::OutcomeUnknown)
            }),
            Some(EngineEvent::Published {
                token: 9,
                result: Err(Status::Unavailable)
            }),
        ]
    );
    assert!(!e.is_ready());
}

/// A ready engine: dialled, HELLO answered, the scripts' loads sent.
fn ready(out: &mut Outbox) -> RedisEngine {
    let mut e = engine();
    flush(&mut e, 0, out);
    let data = LinkEvent::Data {
        link: REDIS_LINK,
        bytes: HELLO_REPLY,
    };
    e.on_link(data, 1, out);
    assert!(e.is_ready());
    flush(&mut e, 1, out);
    e
}

#[test]
fn a_burst_of_subscribes_is_one_subscribe_then_the_reads() {
    let mut out = Outbox::new(65535);
    let mut e = ready(&mut out);
    for (token, name) in [(1, "a"), (2, "b"), (3, "c")] {
        let channel = Bytes::from(name);
        assert_eq!(
            e.subscribe(token, &channel, None, 1 << 20, 2),
            Answer::Later
        );
    }
    // A second subscription to a channel: no second node SUBSCRIBE.
    let again = Bytes::from_static(b"a");
    assert_eq!(e.subscribe(4, &again, None, 1 << 20, 2), Answer::Later);
    let wire = sent(&flush(&mut e, 2, &mut out));
    assert_eq!(wire.matches("SUBSCRIBE").count(), 1, "{wire}");
    assert!(
        wire.contains("*4\r\n$9\r\nSUBSCRIBE\r\n"),
        "three channels in one: {wire}"
    );
    let subscribe = wire.find("SUBSCRIBE").expect("subscribed");
    assert_eq!(
        wire.matches("EVALSHA").count(),
        4,
        "one read per SUBSCRIBE request"
    );
    assert!(
        subscribe < wire.find("EVALSHA").expect("reads"),
        "reads after the SUBSCRIBE"
    );
    // The last local subscriptions end: one UNSUBSCRIBE for both channels.
    for name in ["b", "c"] {
        e.unsubscribe(name.as_bytes(), 3);
    }
    let wire = sent(&flush(&mut e, 3, &mut out));
    assert_eq!(wire.matches("UNSUBSCRIBE").count(), 1, "{wire}");
    // Still subscribed to "a" (two subscriptions, one ended): nothing sent.
    e.unsubscribe(b"a", 4);
    assert!(!sent(&flush(&mut e, 4, &mut out)).contains("SUBSCRIBE"));
}

#[test]
fn reads_that_cannot_be_sent_are_answered_unavailable() {
    let mut out = Outbox::new(65535);
    let mut e = ready(&mut out);
    let channel = Bytes::from_static(b"c");
    assert_eq!(e.subscribe(5, &channel, None, 1 << 20, 2), Answer::Later);
    // The link drops within the same turn, before the flush sends the read.
    let closed = LinkEvent::Closed {
        link: REDIS_LINK,
        why: "reset",
    };
    e.on_link(closed, 2, &mut out);
    flush(&mut e, 2, &mut out);
    assert_eq!(
        e.poll_event(),
        Some(EngineEvent::Subscribed {
            token: 5,
            result: Err(Status::Unavailable)
        })
    );
}
