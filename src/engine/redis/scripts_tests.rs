use super::*;
use crate::app::pubsub::ops_v2::encode_publication;

fn streams(pubsub: PubsubKind) -> RedisStreams {
    RedisStreams {
        keys: KeySpace::default(),
        pubsub,
        history_size: 256,
        ttl_ms: 300_000,
        max_replay: 1000,
        max_replay_bytes: 1 << 20,
    }
}

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

#[test]
fn publish_calls_carry_keys_limits_and_the_candidate_epoch() {
    let cmd = streams(PubsubKind::Sharded).publish(b"news", b(b"hi"), 0x0123_4567_89ab_cdef);
    assert_eq!(cmd.called_script(), Some(&*PUBLISH));
    assert_eq!(
        cmd.args(),
        [
            b(b"2"),
            b(b"{tether:6e657773}:meta"),
            b(b"{tether:6e657773}:stream"),
            b(b"\x01\x23\x45\x67\x89\xab\xcd\xef"),
            b(b"256"),
            b(b"300000"),
            b(b"SPUBLISH"),
            b(b"{tether:6e657773}:pub"),
            b(b"news"),
            b(b"hi"),
        ]
    );
    let global = streams(PubsubKind::Global).publish(b"news", b(b"hi"), 1);
    assert_eq!(global.args()[6], b(b"PUBLISH"));
}

#[test]
fn read_calls_carry_the_position_or_nothing() {
    let s = streams(PubsubKind::Global);
    let with = s.read(
        b"news",
        Some(Position {
            epoch: 2,
            offset: 41,
        }),
        9,
    );
    assert_eq!(with.called_script(), Some(&*READ));
    assert_eq!(
        &with.args()[3..],
        [
            b(b"\0\0\0\0\0\0\0\x09"),
            b(b"300000"),
            b(b"\0\0\0\0\0\0\0\x02"),
            b(b"41"),
            b(b"1000"),
            b(b"1048576"),
        ]
    );
    let without = s.read(b"news", None, 9);
    assert_eq!(&without.args()[5..7], [Bytes::new(), b(b"0")]);
    let touch = s.touch(b"news");
    assert_eq!(touch.called_script(), Some(&*TOUCH));
    assert_eq!(&touch.args()[3..], [b(b"300000")]);
}

#[test]
fn subscriptions_use_the_pubsub_names() {
    let s = streams(PubsubKind::Sharded);
    let sub = s.subscribe([&b"a"[..], b"b"]);
    assert_eq!(
        sub.args(),
        [
            b(b"SSUBSCRIBE"),
            b(b"{tether:61}:pub"),
            b(b"{tether:62}:pub")
        ]
    );
    let unsub = streams(PubsubKind::Global).unsubscribe([&b"a"[..]]);
    assert_eq!(unsub.args(), [b(b"UNSUBSCRIBE"), b(b"{tether:61}:pub")]);
}

#[test]
fn scripts_differ_and_load_by_their_source() {
    let loads = RedisStreams::load_commands();
    let shas = [PUBLISH.sha(), READ.sha(), TOUCH.sha()];
    assert!(shas[0] != shas[1] && shas[1] != shas[2] && shas[0] != shas[2]);
    for (load, script) in loads.iter().zip([&*PUBLISH, &*READ, &*TOUCH]) {
        assert_eq!(load.args()[..2], [b(b"SCRIPT"), b(b"LOAD")]);
        assert_eq!(&load.args()[2][..], script.source().as_bytes());
    }
}

fn bulk(s: &[u8]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(s))
}

#[test]
fn publish_replies_parse_or_say_what_is_wrong() {
    let e = 0x0123_4567_89ab_cdef_u64.to_be_bytes();
    let ok = Value::Array(vec![bulk(&e), Value::Int(44)]);
    assert_eq!(
        RedisStreams::published(&ok),
        Ok(Published {
            epoch: 0x0123_4567_89ab_cdef,
            offset: 44
        })
    );
    for bad in [
        Value::Nil,
        Value::Array(vec![bulk(&e)]),
        Value::Array(vec![bulk(&[0; 8]), Value::Int(1)]),
        Value::Array(vec![bulk(b"short"), Value::Int(1)]),
        Value::Array(vec![bulk(&e), Value::Int(0)]),
        Value::Array(vec![bulk(&e), Value::Int(-3)]),
    ] {
        let err = RedisStreams::published(&bad).unwrap_err();
        assert!(err.0.starts_with("publish script: expected"), "{err}");
    }
}

#[test]
fn read_replies_parse_or_say_what_is_wrong() {
    let e = 7u64.to_be_bytes();
    let p = encode_publication(7, 3, b"c", b"x");
    let ok = Value::Array(vec![
        bulk(&e),
        Value::Int(3),
        Value::Int(2),
        Value::Array(vec![Value::Bytes(p.clone())]),
    ]);
    assert_eq!(
        RedisStreams::stream_read(&ok),
        Ok(StreamRead {
            epoch: 7,
            top: 3,
            oldest: 2,
            replay: vec![p]
        })
    );
    let empty = Value::Array(vec![
        bulk(&e),
        Value::Int(0),
        Value::Int(1),
        Value::Array(vec![]),
    ]);
    assert_eq!(RedisStreams::stream_read(&empty).unwrap().top, 0);
    for (bad, what) in [
        (Value::Int(1), "no array"),
        (
            Value::Array(vec![bulk(&e), Value::Int(0), Value::Int(1)]),
            "not {epoch",
        ),
        (
            Value::Array(vec![
                bulk(b""),
                Value::Int(0),
                Value::Int(1),
                Value::Array(vec![]),
            ]),
            "bad epoch",
        ),
        (
            Value::Array(vec![
                bulk(&e),
                Value::Int(-1),
                Value::Int(1),
                Value::Array(vec![]),
            ]),
            "negative top",
        ),
        (
            Value::Array(vec![
                bulk(&e),
                Value::Int(0),
                Value::Int(0),
                Value::Array(vec![]),
            ]),
            "bad oldest",
        ),
        (
            Value::Array(vec![bulk(&e), Value::Int(0), Value::Int(1), Value::Nil]),
            "bad replay",
        ),
        (
            Value::Array(vec![
                bulk(&e),
                Value::Int(0),
                Value::Int(1),
                Value::Array(vec![Value::Int(1)]),
            ]),
            "not a string",
        ),
    ] {
        let err = RedisStreams::stream_read(&bad).unwrap_err();
        assert!(err.0.contains(what), "{err} (wanted {what})");
    }
}

#[test]
fn pushed_publications_are_checked_against_their_channel() {
    let s = streams(PubsubKind::Sharded);
    let name = s.keys.keys(b"news").pubsub;
    let p = encode_publication(5, 9, b"news", b"body");
    let got = s.publication(&name, &p).unwrap();
    assert_eq!(
        (got.epoch, got.offset, &got.channel[..], &got.body[..]),
        (5, 9, &b"news"[..], &b"body"[..])
    );
    let other = s.keys.keys(b"sport").pubsub;
    assert!(s
        .publication(&other, &p)
        .unwrap_err()
        .0
        .contains("pushed on"));
    assert!(s
        .publication(b"random", &p)
        .unwrap_err()
        .0
        .contains("not one of key space"));
    for bad in [
        encode_publication(0, 9, b"news", b""),
        encode_publication(5, 0, b"news", b""),
        b(b"\x07\x00"),
        b(b""),
        b(b"\x06\x00\x00\x00\x04\x00\x01\x23\x45\x67\x89\xab\xcd\xef\x00\x00\x00\x00\x00\x00\x00\x2c"),
    ] {
        assert!(s.publication(&name, &bad).is_err(), "{bad:?}");
    }
}
