//! The Redis engine's core against a real `redis-server` started by the
//! test (tests/common/redis.rs): the scripts' numbering, storing and
//! publishing, recovery reads and decisions, binary channels, errors, and
//! pipelining, through `RedisConn` over blocking sockets. Redis Cluster:
//! tests/redis_cluster.rs.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::redis::{
    at, entries, epoch, int, open, publish, read, streams, BlockingRedis, RedisOptions,
    RedisServer, REPLY_TIMEOUT,
};
use tether::app::pubsub::ops_v2::RecoveryReason;
use tether::engine::redis::{
    decide, CloseReason, Command, ErrorKind, PubsubKind, RedisConfig, RedisError, RedisEvent,
    RedisStreams, Value,
};

#[test]
fn publishes_are_numbered_1_2_3_in_one_epoch() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(256, 300_000);
    let (e1, o1) = publish(&mut redis, &s, b"news", b"a");
    let (e2, o2) = publish(&mut redis, &s, b"news", b"b");
    let (e3, o3) = publish(&mut redis, &s, b"news", b"c");
    assert_eq!((o1, o2, o3), (1, 2, 3));
    assert!(e1 == e2 && e2 == e3 && e1 != 0);
    // Another channel has its own numbering and epoch.
    let (e, o) = publish(&mut redis, &s, b"sport", b"x");
    assert_eq!(o, 1);
    assert_ne!(e, e1);
    // The keys carry the TTL, and the history holds the three.
    let keys = s.keys.keys(b"news");
    let pttl = int(&mut redis, Command::new("PTTL").arg(keys.meta.clone()));
    assert!((1..=300_000).contains(&pttl), "meta PTTL {pttl}");
    let pttl = int(&mut redis, Command::new("PTTL").arg(keys.stream.clone()));
    assert!((1..=300_000).contains(&pttl), "stream PTTL {pttl}");
    assert_eq!(int(&mut redis, Command::new("XLEN").arg(keys.stream)), 3);
}

#[test]
fn the_scripts_sha_is_what_script_load_returns() {
    let server = RedisServer::start();
    let mut redis = BlockingRedis::open(server.addr(), RedisConfig::default());
    let scripts = tether::engine::redis::scripts::PUBLISH.sha().to_owned();
    let reply = redis
        .request(RedisStreams::load_commands()[0].clone())
        .expect("SCRIPT LOAD");
    assert_eq!(
        reply.as_bytes().map(|b| b.to_vec()),
        Some(scripts.into_bytes())
    );
}

#[test]
fn a_subscriber_gets_every_publication_with_its_offset_in_order() {
    let server = RedisServer::start();
    let s = streams(256, 300_000);
    let mut sub = open(&server);
    sub.request(s.subscribe([&b"news"[..]]))
        .expect("subscribed");
    let mut publisher = open(&server);
    let tokens: Vec<_> = (1..=200)
        .map(|i| publisher.send(s.publish(b"news", Bytes::from(format!("m{i}")), epoch())))
        .collect();
    let mut epochs = Vec::new();
    for token in tokens {
        let p = RedisStreams::published(&publisher.result_of(token).expect("published")).unwrap();
        epochs.push(p.epoch);
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        let Some(RedisEvent::Message {
            kind,
            channel,
            payload,
        }) = sub.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Message { .. }))
        else {
            panic!("only {} of 200 publications arrived", got.len());
        };
        assert_eq!(kind, PubsubKind::Global);
        let p = s
            .publication(&channel, &payload)
            .expect("a publication of news");
        assert_eq!(&p.channel[..], b"news");
        assert_eq!(p.epoch, epochs[0]);
        got.push((p.offset, p.body));
    }
    for (i, (offset, body)) in got.into_iter().enumerate() {
        assert_eq!(offset, i as u64 + 1);
        assert_eq!(body, format!("m{}", i + 1));
    }
}

#[test]
fn on_one_connection_the_feed_splits_at_the_reads_top() {
    // §7.5 through one RESP3 connection: SUBSCRIBE, then the read; every
    // publication pushed before the read's reply is at or below its top,
    // every one after is above it, contiguous: nothing lost, nothing twice.
    let server = RedisServer::start();
    let s = streams(10_000, 300_000);
    let mut warm = open(&server);
    publish(&mut warm, &s, b"race", b"first");
    let addr = server.addr();
    let publisher = thread::spawn(move || {
        let s = streams(10_000, 300_000);
        let mut redis = BlockingRedis::open(addr, RedisConfig::default());
        let tokens: Vec<_> = (0..2000)
            .map(|i| redis.send(s.publish(b"race", Bytes::from(format!("{i}")), epoch())))
            .collect();
        for token in tokens {
            redis.result_of(token).expect("published");
        }
    });
    // Subscribe while the publisher is busy.
    let meta = s.keys.keys(b"race").meta;
    let busy = common::wait_until(REPLY_TIMEOUT, || {
        let top = warm.request(Command::new("HGET").arg(meta.clone()).arg("top"));
        top.ok().and_then(|t| t.as_int()).is_some_and(|t| t >= 300)
    });
    assert!(busy, "the publisher did not start");
    let mut sub = open(&server);
    // Confirmed before the read is sent, so publications land in between.
    sub.request(s.subscribe([&b"race"[..]]))
        .expect("subscribed");
    let read_token = sub.send(s.read(b"race", None, epoch()));
    let mut before = Vec::new();
    let top = loop {
        match sub.wait_event(REPLY_TIMEOUT, |_| true) {
            Some(RedisEvent::Reply { token, value }) if token == read_token => {
                break RedisStreams::stream_read(&value).unwrap().top;
            }
            Some(RedisEvent::Message {
                channel, payload, ..
            }) => {
                before.push(s.publication(&channel, &payload).unwrap().offset);
            }
            Some(_) => {}
            None => panic!("no read reply"),
        }
    };
    // Pushed between the SUBSCRIBE and the read: a run ending at the top.
    if let (Some(first), Some(last)) = (before.first(), before.last()) {
        assert_eq!(*last, top, "pushed before the read's reply: {before:?}");
        assert_eq!(before, (*first..=top).collect::<Vec<_>>());
    }
    publisher.join().expect("publisher");
    let mut next = top + 1;
    while next <= 2001 {
        let Some(RedisEvent::Message {
            channel, payload, ..
        }) = sub.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Message { .. }))
        else {
            panic!("live feed stopped at {next} of 2001 (top was {top})");
        };
        assert_eq!(s.publication(&channel, &payload).unwrap().offset, next);
        next += 1;
    }
}

#[test]
fn a_read_returns_exactly_the_missed_entries_inside_the_window() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(5, 300_000);
    for i in 1..=10 {
        publish(&mut redis, &s, b"news", format!("m{i}").as_bytes());
    }
    let e = read(&mut redis, &s, b"news", None).epoch;
    // MAXLEN 5 keeps 6..=10.
    let r = read(&mut redis, &s, b"news", at(e, 7));
    assert_eq!((r.top, r.oldest), (10, 6));
    assert_eq!(
        entries(&r.replay),
        [
            (8, b"m8".to_vec()),
            (9, b"m9".to_vec()),
            (10, b"m10".to_vec())
        ]
    );
    let d = decide(at(e, 7), r);
    assert!(d.recovered && d.reason == RecoveryReason::None && d.replay.len() == 3);
    // The edge of the window: oldest - 1 recovers all five, one less does not.
    let d = decide(at(e, 5), read(&mut redis, &s, b"news", at(e, 5)));
    assert_eq!((d.recovered, entries(&d.replay).len()), (true, 5));
    let d = decide(at(e, 4), read(&mut redis, &s, b"news", at(e, 4)));
    assert_eq!(
        (d.recovered, d.reason, d.replay.len()),
        (false, RecoveryReason::TooFarBehind, 0)
    );
    // At the top: recovered, nothing to replay.
    let d = decide(at(e, 10), read(&mut redis, &s, b"news", at(e, 10)));
    assert_eq!((d.recovered, d.replay.len()), (true, 0));
    // Past the top, or another epoch: EPOCH_CHANGED.
    let d = decide(at(e, 11), read(&mut redis, &s, b"news", at(e, 11)));
    assert_eq!(
        (d.recovered, d.reason),
        (false, RecoveryReason::EpochChanged)
    );
    let d = decide(at(e ^ 1, 8), read(&mut redis, &s, b"news", at(e ^ 1, 8)));
    assert_eq!(
        (d.recovered, d.reason),
        (false, RecoveryReason::EpochChanged)
    );
    // No position: not asked.
    let d = decide(None, read(&mut redis, &s, b"news", None));
    assert_eq!((d.recovery_asked, d.recovered, d.top), (false, false, 10));
    // Over the replay limits: not recovered, TOO_FAR_BEHIND.
    let tight = RedisStreams {
        max_replay: 2,
        ..s.clone()
    };
    let d = decide(at(e, 7), read(&mut redis, &tight, b"news", at(e, 7)));
    assert_eq!(
        (d.recovered, d.reason),
        (false, RecoveryReason::TooFarBehind)
    );
    let tight = RedisStreams {
        max_replay_bytes: 5,
        ..s.clone()
    };
    let d = decide(at(e, 7), read(&mut redis, &tight, b"news", at(e, 7)));
    assert_eq!(
        (d.recovered, d.reason),
        (false, RecoveryReason::TooFarBehind)
    );
}

#[test]
fn a_read_makes_the_stream_and_flushall_changes_the_epoch() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(256, 300_000);
    // SUBSCRIBE to a channel without a stream makes it: top 0, an epoch to keep.
    let made = read(&mut redis, &s, b"news", None);
    assert_eq!((made.top, made.oldest), (0, 1));
    let (e, o) = publish(&mut redis, &s, b"news", b"a");
    assert_eq!((e, o), (made.epoch, 1));
    redis.request(Command::new("FLUSHALL")).expect("FLUSHALL");
    let (e2, o2) = publish(&mut redis, &s, b"news", b"b");
    assert_ne!(e2, e);
    assert_eq!(o2, 1);
    let d = decide(at(e, 1), read(&mut redis, &s, b"news", at(e, 1)));
    assert_eq!(
        (d.recovered, d.reason, d.epoch, d.top),
        (false, RecoveryReason::EpochChanged, e2, 1)
    );
}

#[test]
fn history_off_still_numbers_and_recovers_only_the_top() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(0, 300_000);
    for i in 1..=3 {
        assert_eq!(publish(&mut redis, &s, b"news", b"x").1, i);
    }
    let r = read(&mut redis, &s, b"news", None);
    assert_eq!((r.top, r.oldest), (3, 4));
    let e = r.epoch;
    assert!(decide(at(e, 3), read(&mut redis, &s, b"news", at(e, 3))).recovered);
    let d = decide(at(e, 2), read(&mut redis, &s, b"news", at(e, 2)));
    assert_eq!(d.reason, RecoveryReason::TooFarBehind);
    assert_eq!(
        int(
            &mut redis,
            Command::new("EXISTS").arg(s.keys.keys(b"news").stream)
        ),
        0
    );
}

#[test]
fn publications_older_than_the_ttl_are_not_replayed() {
    // Redis's clock decides; margins of 400 ms and more either side.
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(256, 2000);
    let (e, _) = publish(&mut redis, &s, b"news", b"old");
    thread::sleep(Duration::from_millis(1200));
    publish(&mut redis, &s, b"news", b"young");
    thread::sleep(Duration::from_millis(1200));
    let r = read(&mut redis, &s, b"news", at(e, 0));
    assert_eq!(
        (r.top, r.oldest),
        (2, 2),
        "the old one trimmed, the stream alive"
    );
    let d = decide(at(e, 0), r);
    assert_eq!(d.reason, RecoveryReason::TooFarBehind);
    let d = decide(at(e, 1), read(&mut redis, &s, b"news", at(e, 1)));
    assert_eq!(entries(&d.replay), [(2, b"young".to_vec())]);
    // Touch renews an existing stream's TTL and says when it is gone.
    assert_eq!(int(&mut redis, s.touch(b"news")), 1);
    assert_eq!(int(&mut redis, s.touch(b"never")), 0);
}

#[test]
fn a_top_at_2_pow_53_starts_a_new_epoch() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(256, 300_000);
    let (e, _) = publish(&mut redis, &s, b"news", b"a");
    let meta = s.keys.keys(b"news").meta;
    redis
        .request(
            Command::new("HSET")
                .arg(meta)
                .arg("top")
                .arg("9007199254740990"),
        )
        .expect("HSET");
    assert_eq!(
        publish(&mut redis, &s, b"news", b"b"),
        (e, 9_007_199_254_740_991)
    );
    let (e2, o) = publish(&mut redis, &s, b"news", b"c");
    assert_ne!(e2, e);
    assert_eq!(o, 1);
}

#[test]
fn binary_channel_names_work_end_to_end() {
    let server = RedisServer::start();
    let s = streams(256, 300_000);
    let every: Vec<u8> = (0..=254).collect();
    let channels: Vec<&[u8]> = vec![b"{", b"}", b"{x}", b"\r\n", b"\x00", b"\xff", &every];
    let mut sub = open(&server);
    sub.request(s.subscribe(channels.iter().copied()))
        .expect("subscribed");
    let mut redis = open(&server);
    for (i, channel) in channels.iter().enumerate() {
        let (e, o) = publish(&mut redis, &s, channel, &[i as u8]);
        assert_eq!(o, 1);
        let r = read(&mut redis, &s, channel, at(e, 0));
        assert_eq!(entries(&decide(at(e, 0), r).replay), [(1, vec![i as u8])]);
    }
    for (i, channel) in channels.iter().enumerate() {
        let Some(RedisEvent::Message {
            channel: name,
            payload,
            ..
        }) = sub.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Message { .. }))
        else {
            panic!("publication {i} did not arrive");
        };
        let p = s.publication(&name, &payload).expect("a publication");
        assert_eq!((&p.channel[..], &p.body[..]), (*channel, &[i as u8][..]));
    }
}

#[test]
fn a_wrong_or_missing_password_is_a_typed_auth_error() {
    let server = RedisServer::start_with(RedisOptions {
        password: Some("s3cret".into()),
        ..Default::default()
    });
    for password in [Some("wrong"), None] {
        let config = RedisConfig {
            password: password.map(str::to_owned),
            ..RedisConfig::default()
        };
        let mut redis = BlockingRedis::connect(server.addr(), config);
        let token = redis.send(Command::new("PING"));
        let failed = redis.result_of(token).unwrap_err();
        let RedisError::Closed {
            reason: CloseReason::Handshake(e),
            ..
        } = failed
        else {
            panic!("{password:?}: {failed:?}");
        };
        assert_eq!(e.kind, ErrorKind::Auth, "{password:?}: {e}");
        assert!(redis.conn.is_closed());
    }
    let url = format!("redis://127.0.0.1:{}?password=s3cret", server.port);
    let config = tether::engine::redis::EngineUrl::parse(&url)
        .unwrap()
        .config(RedisConfig::default());
    let mut redis = BlockingRedis::open(server.addr(), config);
    assert_eq!(
        redis.request(Command::new("PING")),
        Ok(Value::Bytes(Bytes::from_static(b"PONG")))
    );
}

#[test]
fn a_dead_server_closes_the_connection_and_fails_what_is_pending() {
    let mut server = RedisServer::start();
    let mut redis = open(&server);
    // Blocks on the server for 10 s: in flight when the server dies.
    let token = redis.send(Command::new("BLPOP").arg("nothing").arg("10"));
    redis.pump(Duration::from_millis(50));
    server.kill();
    let failed = redis.result_of(token).unwrap_err();
    assert!(
        matches!(
            failed,
            RedisError::Closed {
                sent: true,
                reason: CloseReason::Eof | CloseReason::Io(_)
            }
        ),
        "{failed:?}"
    );
    let closed = redis.wait_event(REPLY_TIMEOUT, |e| matches!(e, RedisEvent::Closed(_)));
    assert!(closed.is_some());
    let refused = redis.conn.send(99, Command::new("PING"), Instant::now());
    assert!(refused.is_err());
}

#[test]
fn a_hung_server_is_found_by_the_liveness_ping() {
    let mut server = RedisServer::start();
    let config = RedisConfig {
        ping_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        ..RedisConfig::default()
    };
    let mut redis = BlockingRedis::open(server.addr(), config);
    server.pause();
    let closed = redis.wait_event(Duration::from_secs(10), |e| {
        matches!(e, RedisEvent::Closed(_))
    });
    server.resume();
    assert_eq!(closed, Some(RedisEvent::Closed(CloseReason::Timeout)));
    assert!(redis.conn.stats().pings >= 1);
}

#[test]
fn many_pipelined_publishes_are_numbered_in_order_within_the_bounds() {
    let server = RedisServer::start();
    let config = RedisConfig {
        max_in_flight: 64,
        max_pending: 5000,
        ..RedisConfig::default()
    };
    let mut redis = BlockingRedis::open(server.addr(), config);
    for load in RedisStreams::load_commands() {
        redis.send(load);
    }
    let s = streams(100, 300_000);
    let tokens: Vec<_> = (0..5000 - 3)
        .map(|i| redis.send(s.publish(b"news", Bytes::from(format!("{i}")), epoch())))
        .collect();
    assert!(redis.conn.in_flight() <= 64);
    let refused = redis
        .conn
        .send(0, s.publish(b"news", Bytes::new(), 1), Instant::now());
    assert!(matches!(
        refused,
        Err((
            tether::engine::redis::SendError::Full { pending: 5000, .. },
            _
        ))
    ));
    for (i, token) in tokens.into_iter().enumerate() {
        let p = RedisStreams::published(&redis.result_of(token).expect("published")).unwrap();
        assert_eq!(p.offset, i as u64 + 1);
    }
    assert_eq!(redis.conn.pending(), 0);
    assert_eq!(
        int(
            &mut redis,
            Command::new("XLEN").arg(s.keys.keys(b"news").stream)
        ),
        100
    );
}

#[test]
fn after_script_flush_calls_fall_back_to_eval() {
    let server = RedisServer::start();
    let mut redis = open(&server);
    let s = streams(256, 300_000);
    publish(&mut redis, &s, b"news", b"a");
    redis
        .request(Command::new("SCRIPT").arg("FLUSH"))
        .expect("SCRIPT FLUSH");
    let (_, o) = publish(&mut redis, &s, b"news", b"b");
    assert_eq!(o, 2);
    assert_eq!(redis.conn.stats().script_fallbacks, 1);
    // The EVAL loaded it again: the next call goes by SHA.
    publish(&mut redis, &s, b"news", b"c");
    assert_eq!(redis.conn.stats().script_fallbacks, 1);
}
