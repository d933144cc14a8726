//! Request ids, acknowledged publishes, SUBSCRIBE errors (§7.6.4, §7.6.5),
//! the PROTOCOL_ERROR cases of §7.2 and the local checks.

use super::*;
use crate::app::pubsub::ops_v2::encode_publication;

fn publish(request_id: u32, channel: &[u8], body: &[u8]) -> ClientOp {
    ClientOp::Publish {
        request_id,
        channel: Bytes::copy_from_slice(channel),
        body: Bytes::copy_from_slice(body),
    }
}

#[test]
fn an_acked_publish_reports_its_position_or_its_refusal() {
    let mut h = Harness::new();
    h.connect();
    let first = h.m.publish_acked(NEWS, b"hi").expect("connected");
    let second = h.m.publish_acked(NEWS, b"too big").expect("connected");
    assert_eq!(
        h.sent(),
        [publish(1, NEWS, b"hi"), publish(2, NEWS, b"too big")]
    );
    assert_eq!(h.m.publishes_pending(), 2);
    // Answers may come in any order; they are matched by request id.
    h.ack(2, Status::TooLarge, 0, 0);
    h.ack(1, Status::Ok, E, 44);
    assert_eq!(
        h.events(),
        [
            PubsubEvent::PublishFailed {
                id: second,
                channel: Bytes::from_static(NEWS),
                status: Status::TooLarge,
            },
            PubsubEvent::PublishAcked {
                id: first,
                channel: Bytes::from_static(NEWS),
                epoch: E,
                offset: 44,
            },
        ]
    );
    assert_eq!(h.m.publishes_pending(), 0);
}

/// §7.6.5: OUTCOME_UNKNOWN (the engine lost its store mid-publish) is
/// reported like a connection ending first: unknown, not failed.
#[test]
fn an_outcome_unknown_ack_is_reported_unknown() {
    let mut h = Harness::new();
    h.connect();
    let id = h.m.publish_acked(NEWS, b"x").expect("connected");
    let _ = h.sent();
    h.ack(1, Status::OutcomeUnknown, 0, 0);
    assert_eq!(
        h.events(),
        [PubsubEvent::PublishUnknown {
            id,
            channel: Bytes::from_static(NEWS)
        }]
    );
    assert_eq!(h.m.publishes_pending(), 0);
}

#[test]
fn an_unacked_publish_uses_request_id_0_and_expects_nothing() {
    let mut h = Harness::new();
    h.connect();
    h.m.publish(NEWS, b"x").expect("connected");
    assert_eq!(h.sent(), [publish(0, NEWS, b"x")]);
    assert_eq!(h.m.publishes_pending(), 0);
    assert_eq!(
        h.deliver(ServerMsg::PublishAck(PublishAck::refused(0, Status::Ok))),
        Err(PubsubProtocolError::Unmatched {
            reply: "PUBLISH_ACK",
            request_id: 0
        })
    );
}

/// §7.6.5: the connection ends before the answers: each is reported unknown
/// (in publish order, after the disconnect) and none is resent.
#[test]
fn outcomes_are_unknown_at_a_disconnect_and_never_resent() {
    let mut h = Harness::new();
    h.m.subscribe(NEWS, None).expect("valid");
    h.connect();
    let a = h.m.publish_acked(NEWS, b"a").expect("connected");
    let b = h.m.publish_acked(b"other", b"b").expect("connected");
    let _ = h.sent();
    assert_eq!(
        h.disconnect(),
        [
            PubsubEvent::Disconnected {
                reason: DisconnectReason::Eof
            },
            PubsubEvent::PublishUnknown {
                id: a,
                channel: Bytes::from_static(NEWS)
            },
            PubsubEvent::PublishUnknown {
                id: b,
                channel: Bytes::from_static(b"other")
            },
        ]
    );
    assert_eq!(
        h.m.publish_acked(NEWS, b"c"),
        Err(PubsubError::NotConnected)
    );
    assert_eq!(h.m.publish(NEWS, b"c"), Err(PubsubError::NotConnected));
    h.connect();
    assert_eq!(h.sent(), [subscribe(1, NEWS, None)], "only the resubscribe");
    // A late answer on the new connection matches nothing of it.
    assert!(h
        .deliver(ServerMsg::PublishAck(PublishAck::refused(2, Status::Ok)))
        .is_err());
}

#[test]
fn request_ids_count_per_connection_from_1_and_skip_0_and_pending_ones() {
    let mut h = Harness::new();
    h.connect();
    h.m.set_next_request_id(u32::MAX - 1);
    h.m.publish_acked(NEWS, b"a").expect("connected");
    h.m.publish_acked(NEWS, b"b").expect("connected");
    h.m.publish_acked(NEWS, b"c").expect("connected");
    let ids: Vec<u32> = h
        .sent()
        .into_iter()
        .map(|op| match op {
            ClientOp::Publish { request_id, .. } => request_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, [u32::MAX - 1, u32::MAX, 1]);
    // Wrapped again onto an id still pending: skipped.
    h.m.set_next_request_id(u32::MAX);
    h.ack(u32::MAX - 1, Status::Ok, E, 1);
    h.m.publish_acked(NEWS, b"d").expect("connected");
    assert_eq!(h.sent(), [publish(2, NEWS, b"d")]);
}

/// §7.6.4: UNAVAILABLE is retried on the backoff schedule (100, 200, 400 ms
/// here), with the position; giving up reports it like any other refusal.
#[test]
fn an_unavailable_subscribe_is_retried_on_the_backoff_schedule() {
    let mut h = subscribed_at(10);
    h.publications(NEWS, E, [12]); // gap: resubscribe from (E, 10)
    assert_eq!(h.sent(), [subscribe(2, NEWS, Some(pos(E, 10)))]);
    h.refused(2, Status::Unavailable);
    assert!(h.events().is_empty());
    assert_eq!(h.m.poll_timeout(), Some(h.now + ms(100)));
    h.m.handle_timeout(h.now + ms(99));
    assert!(h.sent().is_empty());
    h.now += ms(100);
    h.m.handle_timeout(h.now);
    assert_eq!(h.sent(), [subscribe(3, NEWS, Some(pos(E, 10)))]);
    assert_eq!(h.m.poll_timeout(), None, "pending, no timer");
    h.refused(3, Status::Unavailable);
    assert_eq!(h.m.poll_timeout(), Some(h.now + ms(200)));
    // A reconnect resubscribes at once; the count goes on.
    let _ = h.disconnect();
    assert_eq!(h.m.poll_timeout(), None);
    h.connect();
    assert_eq!(h.sent(), [subscribe(1, NEWS, Some(pos(E, 10)))]);
    h.refused(1, Status::Unavailable);
    assert_eq!(h.m.poll_timeout(), Some(h.now + ms(400)));
    h.now += ms(400);
    h.m.handle_timeout(h.now);
    let _ = h.sent();
    h.refused(2, Status::Unavailable);
    assert_eq!(
        h.events(),
        [PubsubEvent::SubscribeFailed {
            channel: Bytes::from_static(NEWS),
            status: Status::Unavailable
        }],
        "max_attempts 3: given up"
    );
    assert!(!h.m.is_wanted(NEWS));
}

#[test]
fn success_after_unavailable_starts_the_retry_count_over() {
    let mut h = Harness::new();
    h.m.subscribe(NEWS, None).expect("valid");
    h.connect();
    let _ = h.sent();
    h.refused(1, Status::Unavailable);
    h.now += ms(100);
    h.m.handle_timeout(h.now);
    let _ = h.sent();
    h.subscribed(2, E, 3);
    let _ = h.events();
    h.publications(NEWS, E, [5]);
    let _ = h.sent();
    h.refused(3, Status::Unavailable);
    assert_eq!(h.m.poll_timeout(), Some(h.now + ms(100)));
}

#[test]
fn other_subscribe_errors_are_reported_and_the_channel_is_no_longer_wanted() {
    for status in [
        Status::TooManySubscriptions,
        Status::NotAllowed,
        Status::BadChannel,
        Status::Unknown(77),
    ] {
        let mut h = Harness::new();
        h.connect();
        h.m.subscribe(NEWS, None).expect("valid");
        let _ = h.sent();
        h.refused(1, status);
        assert_eq!(
            h.events(),
            [PubsubEvent::SubscribeFailed {
                channel: Bytes::from_static(NEWS),
                status
            }]
        );
        assert!(!h.m.is_wanted(NEWS));
        h.publications(NEWS, E, [1]);
        assert!(h.events().is_empty());
        let _ = h.disconnect();
        h.connect();
        assert!(h.sent().is_empty(), "not resubscribed");
    }
}

/// §7.2: a reply matching no pending request (or one of another kind), an
/// unknown op, a bad length: PROTOCOL_ERROR, and nothing more is read.
#[test]
fn bad_server_messages_are_protocol_errors() {
    let cases: Vec<(Bytes, &str)> = vec![
        (
            ServerMsg::SubscribeReply(SubscribeReply::refused(9, Status::Ok)).encode(),
            "SUBSCRIBE_REPLY for request 9, which is not pending",
        ),
        (
            ServerMsg::SubscribeReply(SubscribeReply::refused(1, Status::Ok)).encode(),
            "SUBSCRIBE_REPLY for request 1, which is not pending",
        ),
        (
            ServerMsg::UnsubscribeReply(UnsubscribeReply {
                request_id: 1,
                status: Status::Ok,
            })
            .encode(),
            "UNSUBSCRIBE_REPLY for request 1, which is not pending",
        ),
        (
            Bytes::from_static(&[0x7f, 1, 2]),
            "unknown pub/sub v2 op 0x7f",
        ),
        (
            Bytes::from_static(b"Mxx"),
            "v1 pub/sub op 'M' on a v2 connection",
        ),
        (
            Bytes::from_static(&[0x06, 0, 0, 0, 1, 0]),
            "PUBLISH_ACK of 6 bytes is truncated: its layout needs 22",
        ),
        (Bytes::new(), "empty pub/sub message"),
    ];
    for (message, text) in cases {
        let mut h = Harness::new();
        h.connect();
        h.m.publish_acked(NEWS, b"x").expect("connected"); // request 1 is a PUBLISH
        let _ = h.sent();
        let err = h.m.handle_message(&message, h.now).expect_err(text);
        assert_eq!(err.to_string(), text);
        assert!(!h.m.is_connected(), "broken until the next WELCOME");
        // Nothing more is read: not even the valid answer to request 1.
        h.ack(1, Status::Ok, E, 1);
        assert!(h.events().is_empty());
        assert_eq!(h.m.publish(NEWS, b"y"), Err(PubsubError::NotConnected));
    }
}

/// §7.2: what no correct server sends is a PROTOCOL_ERROR at the client too.
#[test]
fn impossible_replies_and_publications_are_protocol_errors() {
    let subscribed = |recovered, replay, epoch| {
        ServerMsg::SubscribeReply(SubscribeReply {
            recovery_asked: recovered,
            recovered,
            epoch,
            top: 9,
            replay,
            ..SubscribeReply::refused(1, Status::Ok)
        })
    };
    let bad_subscribed = |why| PubsubProtocolError::BadSubscribed { request_id: 1, why };
    let publication = |channel: &'static [u8], epoch, offset| {
        ServerMsg::Publication(Publication {
            epoch,
            offset,
            channel: Bytes::from_static(channel),
            body: Bytes::new(),
        })
    };
    let ack = |epoch, offset| {
        ServerMsg::PublishAck(PublishAck {
            request_id: 2,
            status: Status::Ok,
            epoch,
            offset,
        })
    };
    // Request 1 is a SUBSCRIBE without a position, request 2 a PUBLISH.
    let cases = [
        (subscribed(false, 0, 0), bad_subscribed("epoch 0")),
        (
            subscribed(true, 0, E),
            bad_subscribed("RECOVERED for a SUBSCRIBE without a position"),
        ),
        (
            subscribed(false, 2, E),
            bad_subscribed("a replay without RECOVERED"),
        ),
        (
            publication(b"elsewhere", 0, 3),
            PubsubProtocolError::BadPublication {
                epoch: 0,
                offset: 3,
            },
        ),
        (
            publication(NEWS, E, 0),
            PubsubProtocolError::BadPublication {
                epoch: E,
                offset: 0,
            },
        ),
        (ack(E, 0), PubsubProtocolError::BadAck { request_id: 2 }),
        (ack(0, 4), PubsubProtocolError::BadAck { request_id: 2 }),
    ];
    for (message, error) in cases {
        let mut h = Harness::new();
        h.m.subscribe(NEWS, None).expect("valid");
        h.connect();
        h.m.publish_acked(NEWS, b"x").expect("connected");
        let _ = h.sent();
        assert_eq!(h.deliver(message), Err(error));
        assert!(!h.m.is_connected());
    }
    // A refusal's later fields are ignored, whatever they hold.
    let mut h = Harness::new();
    h.connect();
    h.m.publish_acked(NEWS, b"x").expect("connected");
    let _ = h.sent();
    h.deliver(ServerMsg::PublishAck(PublishAck {
        request_id: 1,
        status: Status::Unavailable,
        epoch: 0,
        offset: 99,
    }))
    .expect("a refusal");
}

#[test]
fn a_publication_past_its_channel_is_a_protocol_error() {
    let mut h = subscribed_at(1);
    let mut bad = encode_publication(E, 2, NEWS, b"").to_vec();
    bad[17] = 200; // chan_len beyond the end
    assert!(matches!(
        h.m.handle_message(&Bytes::from(bad), h.now),
        Err(PubsubProtocolError::Malformed(_))
    ));
}

#[test]
fn local_checks_refuse_before_sending() {
    let mut h = Harness::new();
    assert_eq!(
        h.m.subscribe(b"", None),
        Err(PubsubError::BadChannel { len: 0 })
    );
    assert_eq!(
        h.m.subscribe(&[b'x'; 256], None),
        Err(PubsubError::BadChannel { len: 256 })
    );
    assert_eq!(
        h.m.subscribe(NEWS, Some(pos(0, 5))),
        Err(PubsubError::ZeroEpoch)
    );
    h.m.subscribe(&[b'x'; 255], None)
        .expect("255 bytes is fine");
    h.connect();
    let _ = h.sent();
    // max_message 1000: a PUBLISH is 6 + channel + body.
    h.m.publish(NEWS, &[0; 990]).expect("exactly 1000");
    assert_eq!(
        h.m.publish(NEWS, &[0; 991]),
        Err(PubsubError::TooLarge {
            len: 1001,
            max: 1000
        })
    );
    // max_requests 4, and the SUBSCRIBE of the 255-byte channel is pending.
    for _ in 0..3 {
        h.m.publish_acked(NEWS, b"").expect("room");
    }
    assert_eq!(
        h.m.publish_acked(NEWS, b""),
        Err(PubsubError::TooManyRequests { max: 4 })
    );
    assert_eq!(h.sent().len(), 4);
}
