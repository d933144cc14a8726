//! v1 and v2 side by side (docs/protocol.md §7.1, §7.4, §7.7): one numbering
//! for both versions' publishes, a version mix-up closes the connection,
//! a well-formed request declined gets a reply and keeps it, and v2
//! sessions: takeover, no LOST, no crossing between versions.

use tether::app::pubsub::ops_v2::{
    encode_publish, encode_subscribe, encode_unsubscribe, Position, PublishAck, ServerMsg, Status,
};
use tether::protocol::{encode_message, GoawayCode};

use crate::common::{assert_refused, delivery, numbered_body, Server, SPLIT};
use crate::{at, publish_numbered, recovered, subscribed, CH};

#[test]
fn v1_and_v2_clients_share_a_channel_and_its_numbering() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut v1_sub = server.open(0);
    v1_sub.subscribe(CH);
    v1_sub.sync();
    let mut v2_sub = server.open_v2(0);
    let epoch = v2_sub.subscribe_v2(1, CH, None).epoch;
    let mut v1_pub = server.open(0);
    let mut v2_pub = server.open_v2(0);

    // Alternating publishers, each publish handled before the next is sent.
    v1_pub.publish(CH, b"one from v1");
    v1_pub.sync();
    v2_pub.publish_v2(7, CH, b"two from v2");
    let ack = v2_pub.expect_publish_ack(7);
    assert_eq!(
        ack,
        PublishAck {
            request_id: 7,
            status: Status::Ok,
            epoch,
            offset: 2
        },
        "a v1 `P` took offset 1"
    );
    v1_pub.publish(CH, b"three from v1");
    v1_pub.sync();
    v2_pub.publish_v2(0, CH, b"four from v2");
    v2_pub.sync();

    let bodies: [&[u8]; 4] = [
        b"one from v1",
        b"two from v2",
        b"three from v1",
        b"four from v2",
    ];
    for body in bodies {
        assert_eq!(v1_sub.recv_message(), delivery(CH, body), "v1 `M`");
    }
    v1_sub.sync();
    let check = |c: &mut crate::common::Client| {
        for (i, body) in bodies.iter().enumerate() {
            let p = c.expect_publication();
            assert_eq!(
                (p.epoch, p.offset, &p.channel[..], &p.body[..]),
                (epoch, i as u64 + 1, CH, *body),
                "PUBLICATION {}",
                i + 1
            );
        }
        c.sync();
    };
    check(&mut v2_sub);
    // The history holds the v1 publishes too.
    let mut late = server.open_v2(0);
    assert_eq!(
        late.subscribe_v2(1, CH, at(epoch, 0)),
        recovered(1, epoch, 4, 4)
    );
    check(&mut late);
}

#[test]
fn version_mix_ups_and_malformed_v2_requests_are_protocol_errors() {
    let server = Server::start(&["--app", "pubsub"]);
    let v1_ops: [(&str, &[u8]); 4] = [
        ("v1 S", b"Snews"),
        ("v1 U", b"Unews"),
        ("v1 P", b"P\x04newshi"),
        ("v1 M", b"M\x04newshi"),
    ];
    for (what, msg) in v1_ops {
        let mut c = server.open_v2(0);
        c.send_message(msg, SPLIT);
        let g = c.expect_goaway(GoawayCode::ProtocolError);
        eprintln!("{what} on a v2 connection: {:?}", g.reason);
    }
    let v2_ops = [
        ("v2 SUBSCRIBE", encode_subscribe(1, CH, None)),
        ("v2 UNSUBSCRIBE", encode_unsubscribe(1, CH)),
        ("v2 PUBLISH", encode_publish(1, CH, b"hi")),
    ];
    for (what, msg) in v2_ops {
        let mut c = server.open(0);
        c.send_message(&msg, SPLIT);
        let g = c.expect_goaway(GoawayCode::ProtocolError);
        eprintln!("{what} on a v1 connection: {:?}", g.reason);
    }
    let zero_epoch = encode_subscribe(
        1,
        CH,
        Some(Position {
            epoch: 0,
            offset: 5,
        }),
    );
    let mut reserved_flag = encode_subscribe(1, CH, None).to_vec();
    reserved_flag[5] = 0x02;
    let trailing = [&encode_subscribe(1, CH, None)[..], b"x"].concat();
    let malformed: [(&str, &[u8]); 4] = [
        ("SUBSCRIBE with position epoch 0", &zero_epoch),
        ("SUBSCRIBE with a reserved flag", &reserved_flag),
        ("SUBSCRIBE with a trailing byte", &trailing),
        ("empty message", b""),
    ];
    for (what, msg) in malformed {
        let mut c = server.open_v2(0);
        c.send_message(msg, SPLIT);
        let g = c.expect_goaway(GoawayCode::ProtocolError);
        eprintln!("{what}: {:?}", g.reason);
    }
}

#[test]
fn declined_requests_get_error_replies_and_the_connection_stays() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut c = server.open_v2(0);

    // Leaving a channel never joined is no error.
    assert_eq!(c.unsubscribe_v2(1, b"never").status, Status::Ok);
    // Empty channel: BAD_CHANNEL for every request, nothing done.
    assert_refused(&c.subscribe_v2(1, b"", None), Status::BadChannel);
    assert_eq!(c.unsubscribe_v2(2, b"").status, Status::BadChannel);
    c.publish_v2(3, b"", b"to nowhere");
    assert_eq!(
        c.expect_publish_ack(3),
        PublishAck::refused(3, Status::BadChannel)
    );
    c.sync();

    // 1024 subscriptions, sent at once: all OK, answered in request order.
    let channel = |i: u32| format!("channel {i:04}").into_bytes();
    let burst: Vec<u8> = (0..1024)
        .flat_map(|i| encode_message(&encode_subscribe(100 + i, &channel(i), None), SPLIT))
        .collect();
    c.send_raw(&burst);
    for i in 0..1024 {
        let reply = c.expect_subscribe_reply(100 + i);
        assert_eq!(reply.status, Status::Ok, "subscription {i}: {reply:?}");
    }
    // The 1025th is refused; the connection and its subscriptions stay.
    assert_refused(&c.subscribe_v2(4, CH, None), Status::TooManySubscriptions);
    // Replacing one it holds is no new subscription.
    let again = c.subscribe_v2(5, &channel(7), None);
    assert_eq!(again, subscribed(5, again.epoch, 0));
    // With one left, there is room again.
    assert_eq!(c.unsubscribe_v2(6, &channel(0)).status, Status::Ok);
    let news = c.subscribe_v2(7, CH, None);
    assert_eq!(news, subscribed(7, news.epoch, 0));
    let mut publisher = server.open_v2(0);
    publish_numbered(&mut publisher, CH, 1..=1);
    publisher.publish_v2(8, &channel(1023), &numbered_body(1));
    assert_eq!(publisher.expect_publish_ack(8).offset, 1);
    c.expect_numbered(CH, news.epoch, 1);
    let p = c.expect_publication();
    assert_eq!(&p.channel[..], &channel(1023)[..], "{p:?}");
    c.sync();
}

#[test]
fn a_v2_resume_takes_the_session_over_without_its_subscriptions() {
    let server = Server::start(&["--app", "pubsub", "--metrics", "127.0.0.1:0"]);
    let mut old = server.open_v2(0);
    let epoch = old.subscribe_v2(1, CH, None).epoch;
    let session = old.session();
    // Data queued to the old connection after its peer last spoke: v1 would
    // say LOST at the takeover; v2 never does.
    let mut publisher = server.open_v2(0);
    publish_numbered(&mut publisher, CH, 1..=1);
    assert_eq!(server.metric("tether_sessions"), 1);

    let mut new = server.connect();
    let w = new.resume_v2(session);
    assert!(w.resumed, "{w:?}");
    assert_eq!(w.session, session, "the same session id");
    let (data, g) = old.expect_goaway_after_data(GoawayCode::SessionTakenOver);
    assert!(data <= 1, "{data} DATA frames before the GOAWAY");
    eprintln!("old connection: SESSION_TAKEN_OVER {:?}", g.reason);

    // No subscription came with it: nothing is delivered until it subscribes.
    publish_numbered(&mut publisher, CH, 2..=2);
    new.sync();
    assert_eq!(
        new.subscribe_v2(1, CH, at(epoch, 1)),
        recovered(1, epoch, 2, 1)
    );
    new.expect_numbered(CH, epoch, 2);
    publish_numbered(&mut publisher, CH, 3..=3);
    new.expect_numbered(CH, epoch, 3);
    new.sync();
    assert_eq!(server.metric("tether_sessions"), 1);

    // However a v2 connection ends, its session ends: a RESUME gets a fresh one.
    new.abort();
    server.wait_metric("tether_sessions", 0);
    let mut after = server.connect();
    let w = after.resume_v2(session);
    assert!(!w.resumed, "{w:?}");
    assert_ne!(w.session, session);
}

#[test]
fn sessions_do_not_cross_versions() {
    let server = Server::start(&["--app", "pubsub", "--metrics", "127.0.0.1:0"]);
    // A detached v1 session...
    let mut v1 = server.open(0);
    v1.subscribe(CH);
    v1.sync();
    let session = v1.session();
    v1.abort();
    server.wait_metric("tether_sessions_detached", 1);
    // ...is not resumed by a v2 HELLO, and stays for a v1 one.
    let mut v2 = server.connect();
    let w = v2.resume_v2(session);
    assert!(!w.resumed, "{w:?}");
    assert_ne!(w.session, session);
    assert_eq!(server.metric("tether_sessions_detached"), 1);
    let mut v1 = server.connect();
    let w = v1.resume(session);
    assert!(w.resumed && w.session == session, "{w:?}");

    // A live v2 session is not taken over by a v1 HELLO.
    let mut v2 = server.open_v2(0);
    v2.subscribe_v2(1, b"v2 only", None);
    let v2_session = v2.session();
    let mut v1_other = server.connect();
    let w = v1_other.resume(v2_session);
    assert!(!w.resumed, "{w:?}");
    assert_ne!(w.session, v2_session);
    v2.sync();
}

/// §7.4: a publisher subscribed to the channel gets its own publication and
/// its PUBLISH_ACK, in an order a client must not rely on.
#[test]
fn a_subscribed_publisher_gets_its_own_publication_and_the_ack() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut c = server.open_v2(0);
    let epoch = c.subscribe_v2(1, CH, None).epoch;
    c.publish_v2(2, CH, &numbered_body(1));
    let (mut ack, mut publication, mut order) = (None, None, Vec::new());
    for _ in 0..2 {
        match c.recv_v2() {
            ServerMsg::PublishAck(a) if ack.is_none() => {
                order.push("PUBLISH_ACK");
                ack = Some(a);
            }
            ServerMsg::Publication(p) if publication.is_none() => {
                order.push("PUBLICATION");
                publication = Some(p);
            }
            other => panic!("expected one PUBLISH_ACK and one PUBLICATION, got {other:?}"),
        }
    }
    eprintln!("the publisher got {order:?}");
    assert_eq!(
        ack,
        Some(PublishAck {
            request_id: 2,
            status: Status::Ok,
            epoch,
            offset: 1
        })
    );
    let p = publication.expect("a PUBLICATION");
    assert_eq!(
        (p.epoch, p.offset, &p.body[..]),
        (epoch, 1, &numbered_body(1)[..])
    );
    c.sync();
}
