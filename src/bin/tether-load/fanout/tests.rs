//! The fan-out wire against the library's codecs, both protocols.

use super::*;
use tether::app::pubsub::ops_v2::{ClientOp, Status, SubscribeReply};

fn v1() -> FanoutWire {
    FanoutWire::new(PROTOCOL_V1, false, b"load")
}

fn v2() -> FanoutWire {
    FanoutWire::new(PROTOCOL_V2, false, b"load")
}

/// A body as the publisher builds it: send time, sequence, zeros.
fn body(sent_ns: u64, len: usize) -> Vec<u8> {
    let mut b = sent_ns.to_be_bytes().to_vec();
    b.extend_from_slice(&7u64.to_be_bytes());
    b.resize(len, 0);
    b
}

fn malformed_with(r: Result<Incoming, Unexpected>, needle: &str) {
    match r {
        Err(Unexpected::Malformed(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected Malformed({needle:?}), got {other:?}"),
    }
}

#[test]
fn v1_subscribe_and_publish_are_the_library_ops() {
    let w = v1();
    assert!(!w.acknowledges_subscribe());
    assert_eq!(&w.subscribe()[..], b"Sload");
    let mut p = Vec::new();
    w.publish_prefix(&mut p, 0x0102, 9);
    assert_eq!(&p[..6], b"P\x04load");
    assert_eq!(&p[6..14], &0x0102u64.to_be_bytes());
    assert_eq!(&p[14..], &9u64.to_be_bytes());
    assert_eq!(w.publish_len(64), 70);
    let full = [&p[..], &[0; 48]].concat();
    assert_eq!(full.len(), w.publish_len(64));
    match ops::parse_op(&Bytes::from(full)) {
        Ok(ops::Op::Publish { channel, body }) => {
            assert_eq!(&channel[..], b"load");
            assert_eq!(body.len(), 64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_delivery_is_timed_from_its_body() {
    let w = v1();
    let m = ops::encode_delivery(b"load", &body(42, 64), 65535);
    // encode_delivery frames it; the message is after the 8-byte header.
    let got = w.incoming(&m[8..]);
    assert_eq!(got, Ok(Incoming::Delivery { sent_ns: 42 }));
}

#[test]
fn v1_refuses_what_is_not_a_delivery() {
    let w = v1();
    assert_eq!(w.incoming(b"Sload"), Err(Unexpected::Echoed));
    let publish = ops::publish(b"load", &body(1, 16));
    assert_eq!(w.incoming(&publish), Err(Unexpected::Echoed));
    let other = ops::encode_delivery(b"else", &body(1, 16), 65535);
    malformed_with(w.incoming(&other[8..]), "another channel");
    let short = ops::encode_delivery(b"load", &[1, 2, 3], 65535);
    malformed_with(w.incoming(&short[8..]), "shorter than");
    malformed_with(w.incoming(b""), "not a delivery");
    malformed_with(w.incoming(b"M\x09load"), "not a delivery");
    malformed_with(w.incoming(b"X"), "not a delivery");
}

#[test]
fn verbatim_takes_a_forwarded_publish_as_a_delivery() {
    let w = FanoutWire::new(PROTOCOL_V1, true, b"load");
    let mut p = Vec::new();
    w.publish_prefix(&mut p, 77, 0);
    assert_eq!(w.incoming(&p), Ok(Incoming::Delivery { sent_ns: 77 }));
    let m = ops::encode_delivery(b"load", &body(78, 16), 65535);
    assert_eq!(w.incoming(&m[8..]), Ok(Incoming::Delivery { sent_ns: 78 }));
    assert_eq!(w.incoming(b"Sload"), Err(Unexpected::Echoed));
    malformed_with(w.incoming(b"P\x05load"), "not a delivery");
    // Only v1 publishes are forwarded verbatim by the floor.
    let w2 = FanoutWire::new(PROTOCOL_V2, true, b"load");
    let mut p2 = Vec::new();
    w2.publish_prefix(&mut p2, 77, 0);
    assert_eq!(w2.incoming(&p2), Err(Unexpected::Echoed));
}

#[test]
fn v2_subscribe_and_publish_parse_as_the_server_reads_them() {
    let w = v2();
    assert!(w.acknowledges_subscribe());
    assert_eq!(
        ops_v2::parse_client_op(&w.subscribe()),
        Ok(ClientOp::Subscribe {
            request_id: SUBSCRIBE_ID,
            channel: Bytes::from_static(b"load"),
            position: None,
        })
    );
    let mut p = Vec::new();
    w.publish_prefix(&mut p, 5, 6);
    p.resize(w.publish_len(64), 0);
    match ops_v2::parse_client_op(&Bytes::from(p)) {
        Ok(ClientOp::Publish {
            request_id,
            channel,
            body: b,
        }) => {
            assert_eq!(request_id, 0, "no PUBLISH_ACK asked for");
            assert_eq!(&channel[..], b"load");
            assert_eq!(b.len(), 64);
            assert_eq!(&b[..8], &5u64.to_be_bytes());
            assert_eq!(&b[8..16], &6u64.to_be_bytes());
        }
        other => panic!("{other:?}"),
    }
}

fn reply(request_id: u32, status: Status) -> Bytes {
    ops_v2::encode_subscribe_reply(&SubscribeReply {
        epoch: 3,
        top: 0,
        ..SubscribeReply::refused(request_id, status)
    })
}

#[test]
fn v2_reads_replies_and_publications() {
    let w = v2();
    assert_eq!(w.incoming(&reply(1, Status::Ok)), Ok(Incoming::Subscribed));
    assert_eq!(
        w.incoming(&reply(1, Status::NotAllowed)),
        Err(Unexpected::Refused("NOT_ALLOWED"))
    );
    malformed_with(w.incoming(&reply(2, Status::Ok)), "request 2");
    let p = ops_v2::encode_publication(3, 1, b"load", &body(99, 64));
    assert_eq!(w.incoming(&p), Ok(Incoming::Delivery { sent_ns: 99 }));
    // A first fragment longer than what is parsed still gives the time.
    let long = ops_v2::encode_publication(3, 2, b"load", &body(100, 4000));
    assert_eq!(w.incoming(&long), Ok(Incoming::Delivery { sent_ns: 100 }));
}

#[test]
fn v2_refuses_what_is_not_a_delivery_or_reply() {
    let w = v2();
    assert_eq!(w.incoming(&w.subscribe()), Err(Unexpected::Echoed));
    let publish = ops_v2::encode_publish(0, b"load", &body(1, 16));
    assert_eq!(w.incoming(&publish), Err(Unexpected::Echoed));
    let ack = ops_v2::encode_publish_ack(&ops_v2::PublishAck::refused(0, Status::TooLarge));
    malformed_with(w.incoming(&ack), "PUBLISH_ACK");
    let v1 = ops::encode_delivery(b"load", &body(1, 16), 65535);
    malformed_with(w.incoming(&v1[8..]), "v1");
    malformed_with(w.incoming(b""), "empty");
    let other = ops_v2::encode_publication(3, 1, b"else", &body(1, 16));
    malformed_with(w.incoming(&other), "another channel");
    let short = ops_v2::encode_publication(3, 1, b"load", &[0; 7]);
    malformed_with(w.incoming(&short), "shorter than");
}

proptest::proptest! {
    /// The in-place PUBLICATION reader takes exactly what the library's
    /// parser reads as a PUBLICATION, with the same channel and body.
    #[test]
    fn in_place_publications_are_the_library_ones(
        op in proptest::sample::select(vec![ops_v2::OP_PUBLICATION, ops_v2::OP_PUBLISH_ACK, b'M', 0]),
        rest in proptest::collection::vec(proptest::num::u8::ANY, 0..48),
        chan_len in 0u8..40,
    ) {
        let mut m = vec![op];
        m.extend_from_slice(&rest);
        if m.len() > 17 {
            m[17] = chan_len;
        }
        let library = match ops_v2::parse_server_msg(&Bytes::from(m.clone())) {
            Ok(ops_v2::ServerMsg::Publication(p)) => Some((p.channel.to_vec(), p.body.to_vec())),
            _ => None,
        };
        let in_place = publication_in_place(&m).map(|(c, b)| (c.to_vec(), b.to_vec()));
        proptest::prop_assert_eq!(in_place, library);
    }
}
