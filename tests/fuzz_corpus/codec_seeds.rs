//! Seeds for the codec targets: frames, HELLO/WELCOME/GOAWAY, v1 and v2
//! pub/sub ops, built from the crate's encoders and the docs/protocol.md
//! test vectors.

use tether::app::pubsub::ops::{publish, subscribe, unsubscribe};
use tether::fuzzing::raw_frame;
use tether::protocol::{encode_frame, encode_goaway, FrameType, GoawayCode, Hello, SessionId};

use super::{cat, fuzzing_payload, hex, vectors};

/// First byte: max_frame index (low 3 bits) and chunking mode (high 5 bits).
pub(crate) fn frame_decoder_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, wire) in vectors() {
        out.push((format!("vec-{name}"), cat(&[&[0x07], &wire])));
        out.push((format!("vec-{name}-bytewise"), cat(&[&[0x0f], &wire])));
    }
    let all: Vec<u8> = vectors().into_iter().flat_map(|(_, w)| w).collect();
    out.push(("all-vectors-random-chunks".into(), cat(&[&[0xff], &all])));
    out.push(("all-vectors-chunks-of-3".into(), cat(&[&[0x1f], &all])));
    let ping = encode_frame(FrameType::Ping, false, b"");
    let mut bad_crc = encode_frame(FrameType::Data, false, b"hello").to_vec();
    bad_crc[12] ^= 1;
    let mut bad_type = ping.to_vec();
    bad_type[1] = 0x07; // CRC now fails: reads as BAD_CHECKSUM
    let max64 = encode_frame(FrameType::Data, false, &[7; 64]);
    let max65 = encode_frame(FrameType::Data, false, &[7; 65]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty-stream", vec![0x07]),
        ("bad-magic", cat(&[&[0x07], b"GET / HTTP/1.1\r\n"])),
        (
            "bad-magic-after-frame",
            cat(&[&[0x0f], &ping, &[0x00, 0xa5]]),
        ),
        ("partial-header", cat(&[&[0x07], &ping[..5]])),
        ("partial-payload", cat(&[&[0x0f], &max64[..40]])),
        ("bad-crc", cat(&[&[0x07], &bad_crc])),
        ("corrupt-type", cat(&[&[0x07], &bad_type])),
        (
            "unknown-type-good-crc",
            cat(&[&[0x07], &raw_frame(0x07, b"x")]),
        ),
        ("type-zero", cat(&[&[0x07], &raw_frame(0x00, b"")])),
        ("more-on-ping", cat(&[&[0x07], &raw_frame(0x83, b"")])),
        ("ping-65", cat(&[&[0x07], &raw_frame(0x03, &[1; 65])])),
        ("pong-64", cat(&[&[0x07], &raw_frame(0x04, &[1; 64])])),
        ("max-frame-64-exact", cat(&[&[0x04], &max64, &ping])),
        ("max-frame-64-over", cat(&[&[0x04], &max65])),
        ("over-max-split", cat(&[&[0x0c], &max65])),
        ("max-frame-0-empty-ok", cat(&[&[0x00], &ping, &ping])),
        ("max-frame-0-over", cat(&[&[0x08], &raw_frame(0x05, b"a")])),
        (
            "len-65535-header",
            cat(&[&[0x07], &[0xa5, 0x05, 0xff, 0xff, 0, 0, 0, 0]]),
        ),
        ("chunk-at-header-edge", cat(&[&[0x37], &max64, &max64])),
    ];
    out.extend(cases.into_iter().map(|(n, b)| (n.to_string(), b)));
    out
}

pub(crate) fn hello_seeds() -> Vec<(String, Vec<u8>)> {
    let hello = |h: &Hello| fuzzing_payload(&h.encode_frame());
    let welcome = hex(
        "01 03 00 00 75 30 00 01 5f 90 ff ff 00 10 00 00 ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab",
    );
    let mut welcome_flags = welcome.clone();
    welcome_flags[1] = 0xfc;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("hello-vector", fuzzing_payload(&vectors()[5].1)),
        (
            "hello-token-resume",
            hello(&Hello {
                version: tether::protocol::PROTOCOL_V1,
                heartbeat_ms: 5,
                token: "secret".into(),
                resume: Some(SessionId([7; 16])),
            }),
        ),
        (
            "hello-token-255",
            hello(&Hello {
                version: tether::protocol::PROTOCOL_V1,
                heartbeat_ms: u32::MAX,
                token: vec![b't'; 255].into(),
                resume: None,
            }),
        ),
        ("hello-version-2", vec![2, 0, 0]),
        ("hello-short", vec![1, 0, 0, 0, 0]),
        ("hello-token-overrun", vec![1, 0, 0, 0, 0, 0, 2, 9]),
        ("hello-trailing", vec![1, 0, 0, 0, 0, 0, 0, 9]),
        ("hello-resume-no-id", vec![1, 1, 0, 0, 0, 0, 0]),
        ("hello-unknown-flag", vec![1, 4, 0, 0, 0, 0, 0]),
        ("welcome", welcome.clone()),
        ("welcome-unused-flags", welcome_flags),
        ("welcome-short", welcome[..31].to_vec()),
        ("welcome-long", cat(&[&welcome, &[0]])),
        ("goaway-vector", fuzzing_payload(&vectors()[6].1)),
        ("goaway-unknown-code", cat(&[&[0x12, 0x34], b"why"])),
        ("goaway-bad-utf8", vec![0, 1, 0xff, 0xfe, 0xc3]),
        ("goaway-reason-256", cat(&[&[0, 9], &[b'r'; 256]])),
        ("goaway-reason-257", cat(&[&[0, 9], &[b'r'; 257]])),
        ("goaway-code-only", vec![0, 13]),
        ("goaway-one-byte", vec![0]),
        (
            "goaway-utf8-cut",
            fuzzing_payload(&encode_goaway(GoawayCode::Normal, &"é".repeat(200))),
        ),
    ];
    cases.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// First byte: max_frame index for deliveries (low 3 bits); then the message.
pub(crate) fn pubsub_op_seeds() -> Vec<(String, Vec<u8>)> {
    let long = [b'c'; 255];
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("subscribe", 7, subscribe(b"news").to_vec()),
        ("unsubscribe", 7, unsubscribe(b"n").to_vec()),
        ("publish", 7, publish(b"news", b"hi").to_vec()),
        (
            "publish-split-1",
            0,
            publish(b"news", b"hello world").to_vec(),
        ),
        ("publish-split-3", 2, publish(b"ch", &[9; 40]).to_vec()),
        ("publish-empty-body", 4, publish(b"news", b"").to_vec()),
        ("publish-channel-255", 5, publish(&long, b"body").to_vec()),
        ("subscribe-channel-255", 7, subscribe(&long).to_vec()),
        ("subscribe-channel-256", 7, cat(&[b"S", &[b'c'; 256]])),
        ("empty", 7, vec![]),
        ("unknown-op", 7, b"X".to_vec()),
        ("delivery-as-op", 7, b"M\x01ab".to_vec()),
        ("delivery-empty-channel", 3, b"M\x00body".to_vec()),
        ("delivery-overrun", 7, b"M\x09ab".to_vec()),
        ("subscribe-empty", 7, b"S".to_vec()),
        ("unsubscribe-empty", 7, b"U".to_vec()),
        ("publish-no-len", 7, b"P".to_vec()),
        ("publish-len-0", 7, b"P\x00".to_vec()),
        ("publish-overrun", 7, b"P\x05abc".to_vec()),
    ];
    cases
        .into_iter()
        .map(|(n, sel, m)| (n.to_string(), cat(&[&[sel], &m])))
        .collect()
}

/// The payload test vectors of docs/protocol.md §7.9.
const V2_VECTORS: [(&str, &str); 13] = [
    ("subscribe", "01 00 00 00 01 00 04 6e 65 77 73"),
    (
        "subscribe-position",
        "01 00 00 00 02 01 04 6e 65 77 73 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 29",
    ),
    (
        "subscribed",
        "02 00 00 00 01 00 00 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 00",
    ),
    (
        "subscribed-recovered",
        "02 00 00 00 02 00 03 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2b 00 00 00 02",
    ),
    (
        "subscribed-epoch-changed",
        "02 00 00 00 02 00 01 01 9a 3c 5e 7f 10 32 54 76 00 00 00 00 00 00 00 07 00 00 00 00",
    ),
    (
        "subscribe-refused",
        "02 00 00 00 05 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    ),
    ("unsubscribe", "03 00 00 00 03 04 6e 65 77 73"),
    ("unsubscribed", "04 00 00 00 03 00"),
    ("publish", "05 00 00 00 04 04 6e 65 77 73 68 69"),
    ("publish-no-ack", "05 00 00 00 00 04 6e 65 77 73 68 69"),
    (
        "publish-ack",
        "06 00 00 00 04 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2c",
    ),
    (
        "publish-unavailable",
        "06 00 00 00 04 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    ),
    (
        "publication",
        "07 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2a 04 6e 65 77 73 68 69",
    ),
];

/// First byte: max_frame index for PUBLICATION frames (low 3 bits); then the
/// message: the §7.9 vectors, then edge and PROTOCOL_ERROR cases of §7.2.
pub(crate) fn pubsub_v2_ops_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = V2_VECTORS
        .iter()
        .map(|(name, h)| (format!("vec-{name}"), cat(&[&[7], &hex(h)])))
        .collect();
    let vector = |i: usize| hex(V2_VECTORS[i].1);
    let (sub_pos, reply) = (vector(1), vector(3));
    let mut unknown_numbers = reply.clone();
    unknown_numbers[5..8].copy_from_slice(&[9, 0xff, 7]);
    let mut zero_epoch = sub_pos.clone();
    zero_epoch[11..19].fill(0);
    let long = [b'c'; 255];
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("publish-split-1", 0, vector(8)),
        (
            "publication-split-3",
            2,
            cat(&[&vector(12)[..17], &[255], &long, &[9; 40]]),
        ),
        (
            "publish-channel-255-split-16",
            4,
            cat(&[&[5, 0, 0, 0, 7, 255], &long, b"body"]),
        ),
        ("subscribe-empty-channel", 7, vec![1, 0, 0, 0, 1, 0, 0]),
        ("unsubscribe-empty-channel", 7, vec![3, 0, 0, 0, 1, 0]),
        ("publish-empty-channel", 3, vec![5, 0, 0, 0, 1, 0, b'x']),
        ("reply-unknown-numbers", 7, unknown_numbers),
        ("empty", 7, vec![]),
        ("unknown-op", 7, vec![0x08, 0, 0]),
        ("v1-subscribe", 7, b"Snews".to_vec()),
        ("v1-delivery", 7, b"M\x04newshi".to_vec()),
        ("subscribe-truncated", 7, sub_pos[..20].to_vec()),
        ("subscribe-trailing", 7, cat(&[&sub_pos, b"x"])),
        ("subscribe-reserved-flags", 7, vec![1, 0, 0, 0, 1, 0x80, 0]),
        ("subscribe-zero-epoch", 7, zero_epoch),
        ("unsubscribe-trailing", 7, cat(&[&vector(6), b"x"])),
        ("publish-channel-overrun", 7, vec![5, 0, 0, 0, 1, 255, b'a']),
        ("reply-short", 7, reply[..27].to_vec()),
        ("ack-long", 7, cat(&[&vector(10), &[0]])),
        (
            "publication-overrun",
            7,
            cat(&[&vector(12)[..17], &[9, b'a']]),
        ),
    ];
    out.extend(
        cases
            .into_iter()
            .map(|(n, sel, m)| (n.to_string(), cat(&[&[sel], &m]))),
    );
    out
}
