use super::*;
use proptest::prelude::*;

fn whole(bytes: &[u8]) -> Result<Option<usize>, FrameError> {
    frame_len(bytes, MAX_DEPTH)
}

fn decode(bytes: &[u8]) -> Frame {
    let len = whole(bytes).unwrap().expect("whole frame");
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf, len).unwrap();
    assert_eq!(
        buf.len(),
        bytes.len() - len,
        "the frame is taken off the buffer"
    );
    frame
}

#[test]
fn frame_len_finds_whole_frames_of_every_type() {
    for frame in [
        &b"+OK\r\n"[..],
        b"-ERR x\r\n",
        b":-12\r\n",
        b",1.5\r\n",
        b"(123456789012345678901234567890\r\n",
        b"#t\r\n",
        b"_\r\n",
        b"$5\r\nab\r\nc\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"$0\r\n\r\n",
        b"!3\r\nERR\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"*0\r\n",
        b"*2\r\n:1\r\n*1\r\n+x\r\n",
        b"%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n",
        b"~2\r\n:1\r\n:2\r\n",
        b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n",
        b"|1\r\n+a\r\n+b\r\n:1\r\n",
    ] {
        assert_eq!(
            whole(frame),
            Ok(Some(frame.len())),
            "{:?}",
            String::from_utf8_lossy(frame)
        );
        // Every strict prefix is incomplete, and trailing bytes are not counted.
        for cut in 0..frame.len() {
            assert_eq!(whole(&frame[..cut]), Ok(None), "prefix {cut} of {frame:?}");
        }
        let mut two = frame.to_vec();
        two.extend_from_slice(b"+next\r\n");
        assert_eq!(whole(&two), Ok(Some(frame.len())));
    }
}

#[test]
fn frame_len_refuses_what_is_not_resp() {
    for bad in [
        &b"?\r\n"[..],
        b"$x\r\n",
        b"$-2\r\n",
        b"*-5\r\n",
        b"$?\r\n",
        b"$3\r\nabcde\r\n",
        b"*99999999999999999999999\r\n",
    ] {
        assert!(
            matches!(whole(bad), Err(FrameError::Invalid(_))),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            whole(bad)
        );
    }
}

#[test]
fn deep_nesting_is_refused_before_the_codec_sees_it() {
    let mut deep = b"*1\r\n".repeat(MAX_DEPTH);
    deep.extend_from_slice(b":1\r\n");
    assert_eq!(whole(&deep), Ok(Some(deep.len())));
    let mut deeper = b"*1\r\n".repeat(MAX_DEPTH + 1);
    assert_eq!(whole(&deeper), Err(FrameError::TooDeep));
    // Even when the rest has not arrived, and far past what would overflow.
    deeper = b"*1\r\n".repeat(1_000_000);
    assert_eq!(whole(&deeper), Err(FrameError::TooDeep));
}

#[test]
fn replies_decode_to_values() {
    assert_eq!(
        decode(b"+OK\r\n"),
        Frame::Reply(Value::Bytes(Bytes::from_static(b"OK")))
    );
    assert_eq!(decode(b":42\r\n"), Frame::Reply(Value::Int(42)));
    assert_eq!(decode(b"$-1\r\n"), Frame::Reply(Value::Nil));
    assert_eq!(decode(b"_\r\n"), Frame::Reply(Value::Nil));
    assert_eq!(
        decode(b"-NOSCRIPT x\r\n"),
        Frame::Error(Bytes::from_static(b"NOSCRIPT x"))
    );
    assert_eq!(
        decode(b"!3\r\nERR\r\n"),
        Frame::Error(Bytes::from_static(b"ERR"))
    );
    assert_eq!(
        decode(b"*3\r\n$2\r\n\x00\xff\r\n:7\r\n-E\r\n"),
        Frame::Reply(Value::Array(vec![
            Value::Bytes(Bytes::from_static(b"\x00\xff")),
            Value::Int(7),
            Value::Error(Bytes::from_static(b"E")),
        ]))
    );
    assert_eq!(
        decode(b">3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"),
        Frame::Push(vec![
            Value::Bytes(Bytes::from_static(b"smessage")),
            Value::Bytes(Bytes::from_static(b"c")),
            Value::Bytes(Bytes::from_static(b"hi")),
        ])
    );
    let Frame::Reply(map) = decode(b"%2\r\n+proto\r\n:3\r\n+version\r\n+7.0.15\r\n") else {
        panic!("a map is a reply");
    };
    assert_eq!(map.map_get(b"proto"), Some(&Value::Int(3)));
    assert_eq!(
        map.map_get(b"version")
            .and_then(Value::as_bytes)
            .map(|b| &b[..]),
        Some(&b"7.0.15"[..])
    );
    assert_eq!(Value::Bytes(Bytes::from_static(b"12")).as_int(), Some(12));
}

#[test]
fn commands_encode_as_arrays_of_blob_strings() {
    let mut out = BytesMut::new();
    encode_command(&mut out, [&b"SET"[..], b"k\r\n", b""].into_iter());
    assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
}

proptest! {
    /// No bytes make the guard or the codec panic, and whatever the guard
    /// calls whole either decodes or is an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some(len)) = whole(&bytes) {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = decode_frame(&mut buf, len);
        }
    }

    /// Frames built from RESP pieces, truncated or corrupted at one byte.
    #[test]
    fn mangled_frames_never_panic(
        pieces in proptest::collection::vec(prop_oneof![
            Just(&b"*2\r\n"[..]), Just(&b"%1\r\n"[..]), Just(&b">3\r\n"[..]), Just(&b"|1\r\n"[..]),
            Just(&b"$3\r\nabc\r\n"[..]), Just(&b":5\r\n"[..]), Just(&b"+x\r\n"[..]), Just(&b"-E\r\n"[..]),
            Just(&b"_\r\n"[..]), Just(&b",nan\r\n"[..]), Just(&b"#f\r\n"[..]), Just(&b"~0\r\n"[..]),
            Just(&b"=5\r\ntxt:a\r\n"[..]), Just(&b"$-1\r\n"[..]),
        ], 1..12),
        flip in any::<(usize, u8)>(),
        cut in any::<usize>(),
    ) {
        let mut bytes: Vec<u8> = pieces.concat();
        let at = flip.0 % bytes.len();
        bytes[at] = flip.1;
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(Some(len)) = whole(&bytes) {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = decode_frame(&mut buf, len);
        }
    }
}
