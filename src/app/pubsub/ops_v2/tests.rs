//! The §7.9 test vectors, every PROTOCOL_ERROR case of §7.2, and the
//! layout details around them; the property tests are in `props`.

use super::*;
use crate::protocol::{
    decode_frame, encode_goaway, FrameDecoder, FrameType, Goaway, GoawayCode, Hello,
    Status as DecodeStatus,
};

fn hex(s: &str) -> Bytes {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect::<Vec<u8>>()
        .into()
}

const E: u64 = 0x0123_4567_89ab_cdef;
const E2: u64 = 0x9a3c_5e7f_1032_5476;
const NEWS: Bytes = Bytes::from_static(b"news");
const HI: Bytes = Bytes::from_static(b"hi");

mod props;

fn ok_reply(
    request_id: u32,
    asked: bool,
    recovered: bool,
    reason: RecoveryReason,
) -> SubscribeReply {
    SubscribeReply {
        request_id,
        status: Status::Ok,
        recovery_asked: asked,
        recovered,
        reason,
        epoch: E,
        top: 43,
        replay: 0,
    }
}

/// docs/protocol.md §7.9, the client → server payloads.
fn client_vectors() -> Vec<(&'static str, ClientOp)> {
    vec![
        (
            "01 00 00 00 01 00 04 6e 65 77 73",
            ClientOp::Subscribe {
                request_id: 1,
                channel: NEWS,
                position: None,
            },
        ),
        (
            "01 00 00 00 02 01 04 6e 65 77 73 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 29",
            ClientOp::Subscribe {
                request_id: 2,
                channel: NEWS,
                position: Some(Position {
                    epoch: E,
                    offset: 41,
                }),
            },
        ),
        (
            "03 00 00 00 03 04 6e 65 77 73",
            ClientOp::Unsubscribe {
                request_id: 3,
                channel: NEWS,
            },
        ),
        (
            "05 00 00 00 04 04 6e 65 77 73 68 69",
            ClientOp::Publish {
                request_id: 4,
                channel: NEWS,
                body: HI,
            },
        ),
        (
            "05 00 00 00 00 04 6e 65 77 73 68 69",
            ClientOp::Publish {
                request_id: 0,
                channel: NEWS,
                body: HI,
            },
        ),
    ]
}

/// docs/protocol.md §7.9, the server → client payloads.
fn server_vectors() -> Vec<(&'static str, ServerMsg)> {
    use ServerMsg::*;
    vec![
        (
            "02 00 00 00 01 00 00 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 00",
            SubscribeReply(ok_reply(1, false, false, RecoveryReason::None)),
        ),
        (
            "02 00 00 00 02 00 03 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 02",
            SubscribeReply(super::SubscribeReply {
                replay: 2,
                ..ok_reply(2, true, true, RecoveryReason::None)
            }),
        ),
        (
            "02 00 00 00 02 00 01 01 9a 3c 5e 7f 10 32 54 76 00 00 00 00 00 00 00 07 00 00 00 00",
            SubscribeReply(super::SubscribeReply {
                epoch: E2,
                top: 7,
                ..ok_reply(2, true, false, RecoveryReason::EpochChanged)
            }),
        ),
        (
            "02 00 00 00 05 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            SubscribeReply(super::SubscribeReply::refused(
                5,
                Status::TooManySubscriptions,
            )),
        ),
        (
            "04 00 00 00 03 00",
            UnsubscribeReply(super::UnsubscribeReply {
                request_id: 3,
                status: Status::Ok,
            }),
        ),
        (
            "06 00 00 00 04 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2c",
            PublishAck(super::PublishAck {
                request_id: 4,
                status: Status::Ok,
                epoch: E,
                offset: 44,
            }),
        ),
        (
            "06 00 00 00 04 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            PublishAck(super::PublishAck::refused(4, Status::Unavailable)),
        ),
        (
            "07 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2a 04 6e 65 77 73 68 69",
            Publication(super::Publication {
                epoch: E,
                offset: 42,
                channel: NEWS,
                body: HI,
            }),
        ),
    ]
}

#[test]
fn every_payload_vector_parses_and_re_encodes_byte_for_byte() {
    for (wire, op) in client_vectors() {
        let wire = hex(wire);
        assert_eq!(parse_client_op(&wire), Ok(op.clone()), "{wire:02x?}");
        assert_eq!(op.encode(), wire);
        assert!(matches!(
            parse_server_msg(&wire),
            Err(OpError::WrongDirection(_))
        ));
    }
    for (wire, msg) in server_vectors() {
        let wire = hex(wire);
        assert_eq!(parse_server_msg(&wire), Ok(msg.clone()), "{wire:02x?}");
        assert_eq!(msg.encode(), wire);
        assert!(matches!(
            parse_client_op(&wire),
            Err(OpError::WrongDirection(_))
        ));
    }
}

/// Decodes `wire` as exactly one frame, checking its CRC.
fn one_frame(wire: &[u8]) -> crate::protocol::Frame {
    match decode_frame(wire, 65535) {
        Ok(DecodeStatus::Complete((frame, used))) if used == wire.len() => frame,
        other => panic!("not one frame: {other:?}"),
    }
}

#[test]
fn every_frame_vector_decodes_and_re_encodes_byte_for_byte() {
    let position = Some(Position {
        epoch: E,
        offset: 41,
    });

    let subscribe = hex("a5 05 00 1b e2 5d 6f d5 01 00 00 00 02 01 04 6e 65 77 73 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 29");
    let frame = one_frame(&subscribe);
    assert_eq!((frame.kind, frame.more), (FrameType::Data, false));
    assert_eq!(
        parse_client_op(&frame.payload),
        Ok(ClientOp::Subscribe {
            request_id: 2,
            channel: NEWS,
            position
        })
    );
    let again = encode_message(&encode_subscribe(2, b"news", position), 65535);
    assert_eq!(again, subscribe);

    let publication = hex("a5 05 00 18 2e c6 31 f7 07 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2a 04 6e 65 77 73 68 69");
    let frame = one_frame(&publication);
    assert_eq!((frame.kind, frame.more), (FrameType::Data, false));
    assert_eq!(
        parse_server_msg(&frame.payload),
        Ok(ServerMsg::Publication(Publication {
            epoch: E,
            offset: 42,
            channel: NEWS,
            body: HI
        }))
    );
    assert_eq!(
        encode_publication_frames(E, 42, b"news", b"hi", 65535),
        publication
    );

    // HELLO v2 keeps the v1 layout with version 2 (§7.1).
    let hello = hex("a5 01 00 07 ee f5 96 dc 02 00 00 00 27 10 00");
    let frame = one_frame(&hello);
    assert_eq!(frame.kind, FrameType::Hello);
    let fields = Hello::decode(&frame.payload).expect("a v2 HELLO");
    assert_eq!(
        fields,
        Hello {
            version: crate::protocol::PROTOCOL_V2,
            heartbeat_ms: 10000,
            token: Bytes::new(),
            resume: None
        }
    );
    assert_eq!(fields.encode_frame(), hello);

    // GOAWAY SERVER_BUSY (§7.8): code 14, which v1 reports as unknown.
    let goaway = hex(
        "a5 06 00 15 d7 10 93 6a 00 0e 72 65 74 72 79 2d 61 66 74 65 72 2d 6d 73 3d 31 35 30 30",
    );
    let frame = one_frame(&goaway);
    assert_eq!(frame.kind, FrameType::Goaway);
    let decoded = Goaway::decode(&frame.payload).expect("GOAWAY");
    assert_eq!(decoded.code.as_u16(), 14);
    assert_eq!(decoded.reason, "retry-after-ms=1500");
    assert_eq!(encode_goaway(decoded.code, &decoded.reason), goaway);
}

fn client(m: &[u8]) -> Result<ClientOp, OpError> {
    parse_client_op(&Bytes::copy_from_slice(m))
}

fn server(m: &[u8]) -> Result<ServerMsg, OpError> {
    parse_server_msg(&Bytes::copy_from_slice(m))
}

fn truncated(op: u8, len: usize, need: usize) -> OpError {
    OpError::Truncated { op, len, need }
}

fn trailing(op: u8, len: usize, expected: usize) -> OpError {
    OpError::TrailingBytes { op, len, expected }
}

/// Every PROTOCOL_ERROR case of §7.2 "Common rules", both directions.
#[test]
fn malformed_messages_are_protocol_errors_naming_the_fault() {
    let sub = encode_subscribe(1, b"news", None);
    let sub_pos = encode_subscribe(
        2,
        b"news",
        Some(Position {
            epoch: E,
            offset: 41,
        }),
    );
    let unsub = encode_unsubscribe(3, b"news");
    let publish = encode_publish(4, b"news", b"");
    let reply = encode_subscribe_reply(&SubscribeReply::refused(5, Status::BadChannel));
    let unsub_reply = encode_unsubscribe_reply(&UnsubscribeReply {
        request_id: 3,
        status: Status::Ok,
    });
    let ack = encode_publish_ack(&PublishAck::refused(4, Status::Unavailable));
    let publication = encode_publication(E, 1, b"news", b"");
    let plus = |m: &[u8], extra: &[u8]| [m, extra].concat();
    let mut zero_epoch = sub_pos.to_vec();
    zero_epoch[11..19].fill(0);

    let client_cases: Vec<(Vec<u8>, OpError)> = vec![
        (vec![], OpError::Empty),
        (vec![0x00], OpError::UnknownOp(0x00)),
        (vec![0x08, 1, 2], OpError::UnknownOp(0x08)),
        (vec![0xff], OpError::UnknownOp(0xff)),
        // The wrong way, and v1 letters.
        (reply.to_vec(), OpError::WrongDirection(OP_SUBSCRIBE_REPLY)),
        (
            unsub_reply.to_vec(),
            OpError::WrongDirection(OP_UNSUBSCRIBE_REPLY),
        ),
        (ack.to_vec(), OpError::WrongDirection(OP_PUBLISH_ACK)),
        (
            publication.to_vec(),
            OpError::WrongDirection(OP_PUBLICATION),
        ),
        (b"Snews".to_vec(), OpError::V1Op(b'S')),
        (b"Unews".to_vec(), OpError::V1Op(b'U')),
        (b"P\x04newshi".to_vec(), OpError::V1Op(b'P')),
        (b"M\x04newshi".to_vec(), OpError::V1Op(b'M')),
        // Missing fields, a channel past the end.
        (sub[..1].to_vec(), truncated(OP_SUBSCRIBE, 1, 7)),
        (sub[..6].to_vec(), truncated(OP_SUBSCRIBE, 6, 7)),
        (sub[..10].to_vec(), truncated(OP_SUBSCRIBE, 10, 11)),
        (sub_pos[..11].to_vec(), truncated(OP_SUBSCRIBE, 11, 27)),
        (sub_pos[..26].to_vec(), truncated(OP_SUBSCRIBE, 26, 27)),
        (unsub[..5].to_vec(), truncated(OP_UNSUBSCRIBE, 5, 6)),
        (unsub[..9].to_vec(), truncated(OP_UNSUBSCRIBE, 9, 10)),
        (publish[..5].to_vec(), truncated(OP_PUBLISH, 5, 6)),
        (publish[..9].to_vec(), truncated(OP_PUBLISH, 9, 10)),
        (
            vec![OP_PUBLISH, 0, 0, 0, 1, 255],
            truncated(OP_PUBLISH, 6, 261),
        ),
        // Trailing bytes after the channel or the position.
        (plus(&sub, b"x"), trailing(OP_SUBSCRIBE, 12, 11)),
        (plus(&sub_pos, b"x"), trailing(OP_SUBSCRIBE, 28, 27)),
        (plus(&unsub, b"x"), trailing(OP_UNSUBSCRIBE, 11, 10)),
        // Reserved SUBSCRIBE flags, and a position with epoch 0.
        (zero_epoch, OpError::ZeroEpoch),
    ];
    let mut client_cases = client_cases;
    for bit in 1..8 {
        let mut m = sub.to_vec();
        m[5] = 1 << bit;
        client_cases.push((m.clone(), OpError::ReservedFlags(1 << bit)));
        m[5] |= FLAG_POSITION;
        client_cases.push((m, OpError::ReservedFlags(1 | 1 << bit)));
    }
    for (m, err) in &client_cases {
        assert_eq!(client(m).as_ref(), Err(err), "client {m:02x?}");
        assert_eq!(err.goaway_code(), GoawayCode::ProtocolError);
        assert!(!err.to_string().is_empty());
    }

    let server_cases: Vec<(Vec<u8>, OpError)> = vec![
        (vec![], OpError::Empty),
        (vec![0x00], OpError::UnknownOp(0x00)),
        (vec![0x08], OpError::UnknownOp(0x08)),
        (sub.to_vec(), OpError::WrongDirection(OP_SUBSCRIBE)),
        (unsub.to_vec(), OpError::WrongDirection(OP_UNSUBSCRIBE)),
        (publish.to_vec(), OpError::WrongDirection(OP_PUBLISH)),
        (b"M\x04newshi".to_vec(), OpError::V1Op(b'M')),
        (b"Snews".to_vec(), OpError::V1Op(b'S')),
        (reply[..27].to_vec(), truncated(OP_SUBSCRIBE_REPLY, 27, 28)),
        (plus(&reply, &[0]), trailing(OP_SUBSCRIBE_REPLY, 29, 28)),
        (
            unsub_reply[..5].to_vec(),
            truncated(OP_UNSUBSCRIBE_REPLY, 5, 6),
        ),
        (
            plus(&unsub_reply, &[0]),
            trailing(OP_UNSUBSCRIBE_REPLY, 7, 6),
        ),
        (ack[..21].to_vec(), truncated(OP_PUBLISH_ACK, 21, 22)),
        (plus(&ack, &[0]), trailing(OP_PUBLISH_ACK, 23, 22)),
        (
            publication[..17].to_vec(),
            truncated(OP_PUBLICATION, 17, 18),
        ),
        (
            publication[..21].to_vec(),
            truncated(OP_PUBLICATION, 21, 22),
        ),
    ];
    for (m, err) in &server_cases {
        assert_eq!(server(m).as_ref(), Err(err), "server {m:02x?}");
    }

    // The messages say what is wrong.
    let says = |m: &[u8], text: &str| {
        let err = client(m).expect_err("malformed").to_string();
        assert!(err.contains(text), "{err:?} lacks {text:?}");
    };
    says(
        &sub[..10],
        "SUBSCRIBE of 10 bytes is truncated: its layout needs 11",
    );
    says(
        &plus(&unsub, b"x"),
        "UNSUBSCRIBE of 11 bytes has trailing bytes",
    );
    says(&reply, "SUBSCRIBE_REPLY (0x02) is only sent by the server");
    says(b"Snews", "v1 pub/sub op 'S'");
    says(&[OP_SUBSCRIBE, 0, 0, 0, 1, 0x80, 0], "flags 0x80");
    says(&[0x42], "0x42");
}

#[test]
fn an_empty_channel_parses_so_the_server_can_answer_bad_channel() {
    assert_eq!(
        client(&[OP_SUBSCRIBE, 0, 0, 0, 9, 0, 0]),
        Ok(ClientOp::Subscribe {
            request_id: 9,
            channel: Bytes::new(),
            position: None
        })
    );
    assert_eq!(
        client(&[OP_UNSUBSCRIBE, 0, 0, 0, 9, 0]),
        Ok(ClientOp::Unsubscribe {
            request_id: 9,
            channel: Bytes::new()
        })
    );
    assert_eq!(
        client(&[OP_PUBLISH, 0, 0, 0, 9, 0, b'x']),
        Ok(ClientOp::Publish {
            request_id: 9,
            channel: Bytes::new(),
            body: Bytes::from_static(b"x")
        })
    );
    assert_eq!(
        encode_subscribe(9, b"", None),
        &[OP_SUBSCRIBE, 0, 0, 0, 9, 0, 0][..]
    );
}

#[test]
fn unknown_statuses_reasons_and_reply_flags_are_tolerated() {
    let mut m =
        encode_subscribe_reply(&ok_reply(7, true, false, RecoveryReason::TooFarBehind)).to_vec();
    m[5] = 7;
    m[6] |= 0xfc;
    m[7] = 3;
    let Ok(ServerMsg::SubscribeReply(reply)) = server(&m) else {
        panic!("reply with unknown numbers must parse");
    };
    assert_eq!(reply.status, Status::Unknown(7));
    assert!(!reply.status.is_ok());
    assert_eq!(reply.reason, RecoveryReason::Unknown(3));
    assert!(reply.recovery_asked && !reply.recovered);
    m[6] &= FLAG_RECOVERY_ASKED | FLAG_RECOVERED;
    assert_eq!(
        encode_subscribe_reply(&reply),
        m,
        "ignored bits are dropped"
    );
    assert_eq!(Status::Unknown(200).to_string(), "UNKNOWN(200)");
    assert_eq!(
        Status::TooManySubscriptions.to_string(),
        "TOO_MANY_SUBSCRIPTIONS"
    );
    assert_eq!(RecoveryReason::EpochChanged.to_string(), "EPOCH_CHANGED");
}

#[test]
fn wire_numbers_round_trip() {
    for n in 0..=u8::MAX {
        assert_eq!(Status::from_u8(n).as_u8(), n);
        assert_eq!(RecoveryReason::from_u8(n).as_u8(), n);
        assert_eq!(matches!(Status::from_u8(n), Status::Unknown(_)), n >= 7);
        assert_eq!(
            matches!(RecoveryReason::from_u8(n), RecoveryReason::Unknown(_)),
            n >= 3
        );
    }
}

/// Whether `part` lies inside `whole`'s memory (a zero-copy slice of it).
fn inside(part: &Bytes, whole: &Bytes) -> bool {
    let range = whole.as_ptr_range();
    part.is_empty() || (range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end)
}

#[test]
fn channels_and_bodies_are_slices_of_the_message() {
    let m = encode_publish(1, b"news", b"body");
    let Ok(ClientOp::Publish { channel, body, .. }) = parse_client_op(&m) else {
        panic!("publish");
    };
    assert!(inside(&channel, &m) && inside(&body, &m));
    let m = encode_publication(E, 3, b"news", b"body");
    let Ok(ServerMsg::Publication(p)) = parse_server_msg(&m) else {
        panic!("publication");
    };
    assert!(inside(&p.channel, &m) && inside(&p.body, &m));
}

/// Reassembles `wire` (DATA frames of at most `max_frame`) into one message.
fn reassemble(wire: &[u8], max_frame: usize) -> (Bytes, usize) {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut input = wire;
    let mut message = Vec::new();
    let mut frames = 0;
    while let Some(frame) = decoder.next_frame(&mut input).expect("valid frames") {
        assert_eq!(frame.kind, FrameType::Data);
        frames += 1;
        message.extend_from_slice(&frame.payload);
        assert_eq!(frame.more, !input.is_empty(), "MORE on all but the last");
    }
    (message.into(), frames)
}

#[test]
fn publication_frames_split_at_max_frame() {
    let body = vec![7u8; 100];
    let payload = encode_publication(E, 9, b"news", &body);
    for max_frame in [1, 16, 50, 121, 122, 65535] {
        let wire = encode_publication_frames(E, 9, b"news", &body, max_frame);
        let (message, frames) = reassemble(&wire, max_frame);
        assert_eq!(message, payload);
        assert_eq!(
            frames,
            payload.len().div_ceil(max_frame),
            "max_frame {max_frame}"
        );
    }
}
