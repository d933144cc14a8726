use super::*;
use crate::protocol::GoawayCode;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// docs/protocol.md §1 test vectors: (kind, more, payload, wire hex).
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

/// Every way a frame can be refused: (stream, max_frame, the GOAWAY code).
fn bad_frame_cases() -> Vec<(Vec<u8>, usize, GoawayCode)> {
    let mut bad_magic = hex("a5 03 00 00 59 b7 88 72");
    bad_magic[0] = 0x5a;
    let mut bad_crc = hex("a5 05 00 05 a0 25 1d 41 68 65 6c 6c 6f");
    bad_crc[12] ^= 1;
    let mut bad_type_byte = hex("a5 03 00 00 59 b7 88 72");
    bad_type_byte[1] = 0x07; // corrupted type, CRC no longer matches
    vec![
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
    ]
}

#[test]
fn bad_frames_map_to_the_right_goaway_code() {
    for (stream, max, code) in bad_frame_cases() {
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

/// Every frame `feed_ref` hands over for `chunks` fed in turn, payloads copied.
fn feed_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<(FrameType, bool, Vec<u8>)> {
    let mut out = Vec::new();
    for chunk in chunks {
        decoder
            .feed_ref(chunk, |f| {
                out.push((f.kind, f.more, f.payload.to_vec()));
                true
            })
            .expect("valid stream");
    }
    out
}

#[test]
fn decode_frame_ref_borrows_every_test_vector_in_place() {
    for (kind, more, payload, wire) in VECTORS {
        let wire = hex(wire);
        let Ok(Status::Complete((f, used))) = decode_frame_ref(&wire, 65535) else {
            panic!("{kind}: not decoded");
        };
        assert_eq!(used, wire.len());
        assert_eq!((f.kind, f.more, f.payload), (*kind, *more, *payload));
        assert!(std::ptr::eq(
            f.payload.as_ptr(),
            wire[HEADER_LEN..].as_ptr()
        ));
        assert_eq!(
            f.to_frame(),
            Frame {
                kind: *kind,
                more: *more,
                payload: Bytes::copy_from_slice(payload)
            }
        );
        // every shorter prefix is Partial, not an error
        for cut in 0..wire.len() {
            assert_eq!(decode_frame_ref(&wire[..cut], 65535), Ok(Status::Partial));
        }
        // trailing bytes are left for the next frame
        let mut longer = wire.clone();
        longer.extend_from_slice(&[MAGIC, 0x03]);
        assert!(matches!(
            decode_frame_ref(&longer, 65535),
            Ok(Status::Complete((_, n))) if n == wire.len()
        ));
    }
}

#[test]
fn feed_ref_parses_the_test_vectors_split_at_every_byte() {
    let stream = all_vectors_concatenated();
    let expected: Vec<_> = VECTORS
        .iter()
        .map(|(k, m, p, _)| (*k, *m, p.to_vec()))
        .collect();
    for cut in 0..=stream.len() {
        let mut d = FrameDecoder::new(65535);
        let got = feed_all(&mut d, &[&stream[..cut], &stream[cut..]]);
        assert_eq!(got, expected, "cut at {cut}");
        assert!(
            d.buffered() == 0 && d.partial.capacity() == 0,
            "cut at {cut}"
        );
    }
    let mut d = FrameDecoder::new(65535);
    let singles: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(feed_all(&mut d, &singles), expected);
    assert!(d.buffered() == 0 && d.partial.capacity() == 0);
}

/// Moved from tether-load's wire.rs with the feed it tested.
#[test]
fn feed_ref_parses_ping_and_data_split_at_every_byte() {
    let wire = [
        0xa5, 0x03, 0x00, 0x03, 0xd6, 0xbb, 0x66, 0x27, 0x61, 0x62, 0x63, 0xa5, 0x85, 0x00, 0x03,
        0xce, 0x7d, 0x21, 0x3b, 0x68, 0x65, 0x6c,
    ];
    for cut in 0..=wire.len() {
        let mut d = FrameDecoder::new(MAX_FRAME_LIMIT);
        let got = feed_all(&mut d, &[&wire[..cut], &wire[cut..]]);
        assert_eq!(got.len(), 2, "cut {cut}");
        assert_eq!(got[0], (FrameType::Ping, false, b"abc".to_vec()));
        assert_eq!(got[1], (FrameType::Data, true, b"hel".to_vec()));
        assert!(d.buffered() == 0 && d.partial.capacity() == 0);
    }
}

/// Moved from tether-load's wire.rs with the feed it tested.
#[test]
fn feed_ref_bad_crc_and_magic_are_errors() {
    let mut ping = vec![0xa5, 0x03, 0x00, 0x00, 0x59, 0xb7, 0x88, 0x72];
    let mut d = FrameDecoder::new(MAX_FRAME_LIMIT);
    assert!(d.feed_ref(&ping, |_| true).is_ok());
    ping[7] ^= 1;
    let mut d = FrameDecoder::new(MAX_FRAME_LIMIT);
    assert_eq!(d.feed_ref(&ping, |_| true), Err(ProtocolError::BadChecksum));
    let mut d = FrameDecoder::new(MAX_FRAME_LIMIT);
    assert_eq!(
        d.feed_ref(&[0x00], |_| true),
        Err(ProtocolError::BadMagic(0))
    );
}

/// Moved from tether-load's wire.rs with the feed it tested.
#[test]
fn feed_ref_stops_when_told() {
    let mut buf = Vec::new();
    put_frame(&mut buf, FrameType::Ping, false, b"");
    put_frame(&mut buf, FrameType::Ping, false, b"");
    let mut n = 0;
    FrameDecoder::new(MAX_FRAME_LIMIT)
        .feed_ref(&buf, |_| {
            n += 1;
            false
        })
        .expect("valid");
    assert_eq!(n, 1);
    // also when the frame it stops at completed a buffered one, which is freed
    let mut d = FrameDecoder::new(MAX_FRAME_LIMIT);
    d.feed_ref(&buf[..3], |_| true).expect("valid");
    let mut n = 0;
    d.feed_ref(&buf[3..], |_| {
        n += 1;
        false
    })
    .expect("valid");
    assert_eq!(n, 1);
    assert!(d.buffered() == 0 && d.partial.capacity() == 0);
}

/// The first error `feed_ref` reports for `chunks`, and the frames before it.
fn feed_until_error(d: &mut FrameDecoder, chunks: &[&[u8]]) -> (usize, Option<ProtocolError>) {
    let mut frames = 0;
    for chunk in chunks {
        if let Err(e) = d.feed_ref(chunk, |_| {
            frames += 1;
            true
        }) {
            return (frames, Some(e));
        }
    }
    (frames, None)
}

#[test]
fn borrowed_decodes_refuse_every_bad_frame_as_the_owned_ones_do() {
    for (stream, max, code) in bad_frame_cases() {
        let owned = decode_frame(&stream, max).expect_err("bad frame");
        assert_eq!(owned.goaway_code(), code, "{stream:02x?}");
        assert_eq!(decode_frame_ref(&stream, max), Err(owned.clone()));
        let mut prefixed = hex("a5 03 00 00 59 b7 88 72");
        prefixed.extend_from_slice(&stream);
        for cut in 0..=prefixed.len() {
            let (a, b) = prefixed.split_at(cut);
            let mut d = FrameDecoder::new(max);
            let got = feed_until_error(&mut d, &[a, b]);
            assert_eq!(
                got,
                (1, Some(owned.clone())),
                "cut {cut} of {prefixed:02x?}"
            );
        }
    }
}

#[test]
fn feed_ref_rejects_an_oversized_length_from_the_header_before_buffering() {
    let header = encode_header(FrameType::Data, false, &[0; 60_000]);
    let mut d = FrameDecoder::new(1024);
    assert_eq!(d.feed_ref(&header[..5], |_| true), Ok(()));
    assert!(d.buffered() <= HEADER_LEN);
    assert_eq!(
        d.feed_ref(&header[5..], |_| true),
        Err(ProtocolError::FrameTooLarge {
            len: 60_000,
            max: 1024
        })
    );
    assert!(d.buffered() <= HEADER_LEN);
    assert_eq!(
        decode_frame_ref(&header, 1024),
        Err(ProtocolError::FrameTooLarge {
            len: 60_000,
            max: 1024
        })
    );
}

/// Moved from tether-load's wire.rs with the put_message it tested.
#[test]
fn put_message_matches_encode_message() {
    for (total, max) in [(0, 10), (5, 10), (10, 10), (25, 10), (100, 65535)] {
        let prefix: Vec<u8> = (1..=12).collect();
        let prefix = &prefix[..prefix.len().min(total)];
        let mut whole = prefix.to_vec();
        whole.resize(total, 0);
        let mut buf = Vec::new();
        put_message(&mut buf, prefix, total, max);
        assert_eq!(buf, encode_message(&whole, max).to_vec(), "{total}/{max}");
        let mut dec = FrameDecoder::new(65535);
        let mut input = &buf[..];
        let mut n = 0;
        while let Ok(Some(_)) = dec.next_frame(&mut input) {
            n += 1;
        }
        assert_eq!(n, total.div_ceil(max).max(1));
    }
    // appends after what is there, into a BytesMut too; a head longer than the message is cut
    let mut buf = BytesMut::from(&b"xy"[..]);
    put_message(&mut buf, b"abcdef", 4, 3);
    let mut expected = b"xy".to_vec();
    expected.extend_from_slice(&encode_message(b"abcd", 3));
    assert_eq!(&buf[..], &expected[..]);
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // valid frames, then maybe one corrupted byte
        (
            proptest::collection::vec(any_frame(), 1..6),
            any::<Option<(usize, u8)>>()
        )
            .prop_map(|(frames, flip)| {
                let mut s: Vec<u8> = frames
                    .iter()
                    .flat_map(|(k, m, p)| encode_frame(*k, *m, p).to_vec())
                    .collect();
                if let Some((at, bits)) = flip {
                    let at = at % s.len();
                    s[at] ^= bits;
                }
                s
            }),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #[test]
    fn borrowed_and_owned_decodes_agree(
        stream in any_stream(),
        max in prop_oneof![Just(65535usize), 0usize..2100],
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        // one frame from a slice
        let owned = decode_frame(&stream, max);
        let borrowed = decode_frame_ref(&stream, max).map(|s| match s {
            Status::Complete((f, used)) => Status::Complete((f.to_frame(), used)),
            Status::Partial => Status::Partial,
        });
        prop_assert_eq!(&owned, &borrowed);
        // a stream cut anywhere: the same frames, then the same error
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
        let mut by_next = (Vec::new(), None);
        let mut next = FrameDecoder::new(max);
        'chunks: for chunk in &chunks {
            let mut input: &[u8] = chunk;
            loop {
                match next.next_frame(&mut input) {
                    Ok(Some(f)) => by_next.0.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        by_next.1 = Some(e);
                        break 'chunks;
                    }
                }
            }
        }
        let mut by_ref = (Vec::new(), None);
        let mut feed = FrameDecoder::new(max);
        for chunk in &chunks {
            if let Err(e) = feed.feed_ref(chunk, |f| {
                by_ref.0.push(f.to_frame());
                true
            }) {
                by_ref.1 = Some(e);
                break;
            }
        }
        prop_assert_eq!(&by_next, &by_ref);
        if by_next.1.is_none() {
            prop_assert_eq!(next.buffered(), feed.buffered());
        }
        prop_assert!(feed.buffered() <= HEADER_LEN + max);
    }
}
