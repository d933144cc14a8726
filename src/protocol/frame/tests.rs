use super::*;
use crate::protocol::GoawayCode;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// PROTOCOL.md §1 test vectors: (kind, more, payload, wire hex).
const VECTORS: &[(FrameType, bool, &[u8], &str)] = &[
    (FrameType::Ping, false, b"", "a5 03 00 00 59 b7 88 72"),
    (FrameType::Pong, false, b"", "a5 04 00 00 5c f8 9e f7"),
    (
        FrameType::Ping,
        false,
        b"abc",
        "a5 03 00 03 d6 bb 66 27 61 62 63",
    ),
    (
        FrameType::Data,
        false,
        b"hello",
        "a5 05 00 05 a0 25 1d 41 68 65 6c 6c 6f",
    ),
    (
        FrameType::Data,
        true,
        b"hel",
        "a5 85 00 03 ce 7d 21 3b 68 65 6c",
    ),
];

#[test]
fn encodes_and_decodes_every_test_vector() {
    for (kind, more, payload, wire) in VECTORS {
        let wire = hex(wire);
        assert_eq!(
            &encode_frame(*kind, *more, payload)[..],
            &wire[..],
            "{kind}"
        );
        match decode_frame(&wire, 65535) {
            Ok(Status::Complete((f, used))) => {
                assert_eq!(used, wire.len());
                assert_eq!((f.kind, f.more, &f.payload[..]), (*kind, *more, *payload));
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

fn all_vectors_concatenated() -> Vec<u8> {
    VECTORS.iter().flat_map(|(_, _, _, w)| hex(w)).collect()
}

fn decode_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Frame> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        while let Some(f) = decoder.next_frame(&mut input).expect("valid stream") {
            out.push(f);
        }
        assert!(input.is_empty());
    }
    out
}

#[test]
fn many_frames_in_one_read() {
    let stream = all_vectors_concatenated();
    let frames = decode_all(&mut FrameDecoder::new(65535), &[&stream]);
    assert_eq!(frames.len(), VECTORS.len());
    for (f, (kind, more, payload, _)) in frames.iter().zip(VECTORS) {
        assert_eq!((f.kind, f.more, &f.payload[..]), (*kind, *more, *payload));
    }
}

#[test]
fn input_split_at_every_byte_boundary() {
    let stream = all_vectors_concatenated();
    for cut in 0..=stream.len() {
        let mut d = FrameDecoder::new(65535);
        let frames = decode_all(&mut d, &[&stream[..cut], &stream[cut..]]);
        assert_eq!(frames.len(), VECTORS.len(), "cut at {cut}");
        assert_eq!(d.buffered(), 0);
    }
    // and one byte at a time
    let mut d = FrameDecoder::new(65535);
    let singles: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode_all(&mut d, &singles).len(), VECTORS.len());
}

fn first_error(stream: &[u8], max_frame: usize) -> ProtocolError {
    let mut d = FrameDecoder::new(max_frame);
    let mut input = stream;
    loop {
        match d.next_frame(&mut input) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error in {stream:02x?}"),
            Err(e) => return e,
        }
    }
}

#[test]
fn bad_frames_map_to_the_right_goaway_code() {
    let mut bad_magic = hex("a5 03 00 00 59 b7 88 72");
    bad_magic[0] = 0x5a;
    let mut bad_crc = hex("a5 05 00 05 a0 25 1d 41 68 65 6c 6c 6f");
    bad_crc[12] ^= 1;
    let mut bad_type_byte = hex("a5 03 00 00 59 b7 88 72");
    bad_type_byte[1] = 0x07; // corrupted type, CRC no longer matches
    let cases: Vec<(Vec<u8>, usize, GoawayCode)> = vec![
        (bad_magic, 65535, GoawayCode::ProtocolError),
        (bad_crc, 65535, GoawayCode::BadChecksum),
        (bad_type_byte, 65535, GoawayCode::BadChecksum),
        (
            encode_frame(FrameType::Data, false, &[0; 100]).to_vec(),
            99,
            GoawayCode::FrameTooLarge,
        ),
        (with_kind_byte(0x07, b""), 65535, GoawayCode::ProtocolError),
        (with_kind_byte(0x00, b""), 65535, GoawayCode::ProtocolError),
        (with_kind_byte(0x83, b""), 65535, GoawayCode::ProtocolError), // PING + MORE
        (
            with_kind_byte(0x86, b"\0\0"),
            65535,
            GoawayCode::ProtocolError,
        ), // GOAWAY + MORE
        (
            encode_frame(FrameType::Ping, false, &[0; 65]).to_vec(),
            65535,
            GoawayCode::ProtocolError,
        ),
        (
            encode_frame(FrameType::Pong, false, &[0; 65]).to_vec(),
            65535,
            GoawayCode::ProtocolError,
        ),
    ];
    for (stream, max, code) in cases {
        assert_eq!(
            first_error(&stream, max).goaway_code(),
            code,
            "{stream:02x?}"
        );
        // the same error after a good frame, and split at every byte
        let mut prefixed = hex("a5 03 00 00 59 b7 88 72");
        prefixed.extend_from_slice(&stream);
        for cut in 0..=prefixed.len() {
            let mut d = FrameDecoder::new(max);
            let (a, b) = prefixed.split_at(cut);
            let mut got = None;
            for chunk in [a, b] {
                let mut input = chunk;
                loop {
                    match d.next_frame(&mut input) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(e) => {
                            got = Some(e.goaway_code());
                            break;
                        }
                    }
                }
                if got.is_some() {
                    break;
                }
            }
            assert_eq!(got, Some(code), "cut {cut} of {prefixed:02x?}");
        }
    }
    let ok64 = encode_frame(FrameType::Ping, false, &[0; 64]);
    assert!(matches!(
        decode_frame(&ok64, 65535),
        Ok(Status::Complete(_))
    ));
}

/// A frame with an arbitrary kind byte and a correct CRC.
fn with_kind_byte(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u16).to_be_bytes();
    let head = [MAGIC, kind, len[0], len[1]];
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(payload);
    let mut out = head.to_vec();
    out.extend_from_slice(&h.finalize().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn oversized_length_is_rejected_from_the_header_before_buffering() {
    let header = encode_header(FrameType::Data, false, &[0; 60_000]);
    let mut d = FrameDecoder::new(1024);
    // header split in two: nothing but header bytes is ever held
    let mut first: &[u8] = &header[..5];
    assert_eq!(d.next_frame(&mut first), Ok(None));
    assert!(d.buffered() <= HEADER_LEN);
    let mut rest: &[u8] = &header[5..];
    assert!(matches!(
        d.next_frame(&mut rest),
        Err(ProtocolError::FrameTooLarge {
            len: 60_000,
            max: 1024
        })
    ));
    assert!(d.buffered() <= HEADER_LEN);
}

#[test]
fn empty_input_and_idle_decoder_hold_nothing() {
    let mut d = FrameDecoder::new(65535);
    let mut input: &[u8] = &[];
    assert_eq!(d.next_frame(&mut input), Ok(None));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn encode_message_fragments_at_max_frame() {
    let message: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let wire = encode_message(&message, 4096);
    let frames = decode_all(&mut FrameDecoder::new(4096), &[&wire]);
    assert_eq!(frames.len(), 3);
    assert!(frames[0].more && frames[1].more && !frames[2].more);
    let joined: Vec<u8> = frames.iter().flat_map(|f| f.payload.to_vec()).collect();
    assert_eq!(joined, message);
    let empty = decode_all(&mut FrameDecoder::new(10), &[&encode_message(&[], 10)]);
    assert_eq!(empty.len(), 1);
    assert!(!empty[0].more && empty[0].payload.is_empty());
}

fn any_frame() -> impl Strategy<Value = (FrameType, bool, Vec<u8>)> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=64).prop_map(|p| (FrameType::Ping, false, p)),
        proptest::collection::vec(any::<u8>(), 0..=64).prop_map(|p| (FrameType::Pong, false, p)),
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..2000)
        )
            .prop_map(|(m, p)| (FrameType::Data, m, p)),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|p| (FrameType::Hello, false, p)),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity_at_any_split(
        frames in proptest::collection::vec(any_frame(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for (k, m, p) in &frames {
            stream.extend_from_slice(&encode_frame(*k, *m, p));
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let mut d = FrameDecoder::new(65535);
        let got = decode_all(&mut d, &chunks);
        prop_assert_eq!(got.len(), frames.len());
        for (f, (k, m, p)) in got.iter().zip(&frames) {
            prop_assert_eq!((f.kind, f.more, &f.payload[..]), (*k, *m, &p[..]));
        }
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        max in 0usize..300,
    ) {
        let mut d = FrameDecoder::new(max);
        let mut input: &[u8] = &bytes;
        while let Ok(Some(_)) = d.next_frame(&mut input) {}
        prop_assert!(d.buffered() <= HEADER_LEN + max);
    }
}
