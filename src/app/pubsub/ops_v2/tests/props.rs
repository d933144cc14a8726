//! Property tests: every op round-trips through its encoding, and parsing
//! arbitrary bytes never panics.

use super::*;
use proptest::prelude::*;

fn channel() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=MAX_CHANNEL_LEN)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..600)
}

fn position() -> impl Strategy<Value = Option<Position>> {
    prop::option::of(
        (1..=u64::MAX, any::<u64>()).prop_map(|(epoch, offset)| Position { epoch, offset }),
    )
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        (any::<u32>(), channel(), position()).prop_map(|(request_id, c, position)| {
            ClientOp::Subscribe {
                request_id,
                channel: c.into(),
                position,
            }
        }),
        (any::<u32>(), channel()).prop_map(|(request_id, c)| ClientOp::Unsubscribe {
            request_id,
            channel: c.into()
        }),
        (any::<u32>(), channel(), body()).prop_map(|(request_id, c, b)| ClientOp::Publish {
            request_id,
            channel: c.into(),
            body: b.into()
        }),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    let status = any::<u8>().prop_map(Status::from_u8);
    prop_oneof![
        (
            (any::<u32>(), status.clone(), any::<bool>(), any::<bool>()),
            (any::<u8>(), any::<u64>(), any::<u64>(), any::<u32>())
        )
            .prop_map(
                |(
                    (request_id, status, recovery_asked, recovered),
                    (reason, epoch, top, replay),
                )| {
                    ServerMsg::SubscribeReply(SubscribeReply {
                        request_id,
                        status,
                        recovery_asked,
                        recovered,
                        reason: RecoveryReason::from_u8(reason),
                        epoch,
                        top,
                        replay,
                    })
                }
            ),
        (any::<u32>(), status.clone()).prop_map(|(request_id, status)| {
            ServerMsg::UnsubscribeReply(UnsubscribeReply { request_id, status })
        }),
        (any::<u32>(), status, any::<u64>(), any::<u64>()).prop_map(
            |(request_id, status, epoch, offset)| ServerMsg::PublishAck(PublishAck {
                request_id,
                status,
                epoch,
                offset
            })
        ),
        (any::<u64>(), any::<u64>(), channel(), body()).prop_map(|(epoch, offset, c, b)| {
            ServerMsg::Publication(Publication {
                epoch,
                offset,
                channel: c.into(),
                body: b.into(),
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every client op parses back from its encoding, which is the
    /// canonical layout (the parser takes nothing it would not write), and
    /// every proper prefix of it is refused or, for a PUBLISH cut inside
    /// its body, is the same publish with a shorter body.
    #[test]
    fn client_ops_round_trip(op in client_op()) {
        let wire = op.encode();
        prop_assert_eq!(parse_client_op(&wire), Ok(op.clone()));
        for cut in 0..wire.len() {
            match (parse_client_op(&wire.slice(..cut)), &op) {
                (Err(e), _) => {
                    let refused = matches!(e, OpError::Empty | OpError::Truncated { .. });
                    prop_assert!(refused, "prefix {} refused as {:?}", cut, e);
                }
                (Ok(ClientOp::Publish { body, .. }), ClientOp::Publish { body: full, .. }) => {
                    prop_assert!(full.starts_with(&body) && body.len() < full.len());
                }
                (Ok(other), _) => prop_assert!(false, "prefix {} parsed as {:?}", cut, other),
            }
        }
    }

    /// Every server message parses back from its encoding; the frames
    /// encoder carries the same payload.
    #[test]
    fn server_msgs_round_trip(msg in server_msg(), max_frame in 1usize..300) {
        let wire = msg.encode();
        prop_assert_eq!(parse_server_msg(&wire), Ok(msg.clone()));
        if let ServerMsg::Publication(p) = &msg {
            let frames = encode_publication_frames(p.epoch, p.offset, &p.channel, &p.body, max_frame);
            prop_assert_eq!(reassemble(&frames, max_frame).0, wire);
        }
    }

    /// Parsing arbitrary bytes never panics; whatever parses re-encodes to
    /// the same bytes (a SUBSCRIBE_REPLY up to its ignored flag bits), and
    /// every refusal is PROTOCOL_ERROR.
    #[test]
    fn parsing_arbitrary_bytes_never_panics(op in prop_oneof![0u8..9, any::<u8>()], rest in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut m = vec![op];
        m.extend_from_slice(&rest);
        let m = Bytes::from(m);
        for parsed in [parse_client_op(&m).map(|op| op.encode()), parse_server_msg(&m).map(|msg| msg.encode())] {
            match parsed {
                Ok(again) => {
                    let mut canonical = m.to_vec();
                    if canonical[0] == OP_SUBSCRIBE_REPLY {
                        canonical[6] &= FLAG_RECOVERY_ASKED | FLAG_RECOVERED;
                    }
                    prop_assert_eq!(&again[..], &canonical[..]);
                }
                Err(e) => prop_assert_eq!(e.goaway_code(), GoawayCode::ProtocolError),
            }
        }
    }
}
