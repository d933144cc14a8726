//! Fuzz harnesses: one function per parser or state machine, each taking
//! arbitrary bytes and panicking only when an invariant is violated.
//!
//! The cargo-fuzz targets in `fuzz/` call these, and `tests/fuzz_corpus/`
//! replays every committed corpus file through them on stable, so a crash
//! found once stays a regression test. The state-machine harnesses read their
//! input as a little command language ([`Cmd`]): each byte picks an operation
//! and the next bytes are its arguments, so the fuzzer explores sequences of
//! reads, writes, clock jumps and closes rather than only byte streams. Byte
//! arguments past the end of the input read as zero, so every input is valid.

use bytes::Bytes;

use crate::app::pubsub::ops::{
    encode_delivery, parse_delivery, parse_op, publish, subscribe, unsubscribe, Op,
};
use crate::config::Config;
use crate::conn::{CloseReason, Conn, ConnEvent, ConnLimits, State};
use crate::protocol::frame::MORE_BIT;
use crate::protocol::{
    decode_frame, encode_frame, encode_goaway, encode_message, Frame, FrameDecoder, FrameType,
    Goaway, GoawayCode, Hello, ProtocolError, SessionId, Status, Welcome, HEADER_LEN,
    MAX_PING_PAYLOAD, MAX_REASON_LEN,
};
use crate::time::Tick;

mod conn_machine;
mod pubsub_state;
mod pubsub_v2_ops;

pub use conn_machine::{conn_config, conn_flags, conn_machine, Cmd, CONN_TOKEN};
pub use pubsub_state::pubsub_state;
pub use pubsub_v2_ops::pubsub_v2_ops;

/// Reads a fuzz input front to back; past the end every byte reads as zero.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 past the end.
    pub fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    /// The next two bytes as a big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` of the next bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// A frame with any `kind` byte (even an undefined type) and a correct CRC,
/// so a fuzzer reaches the checks behind the checksum without having to guess it.
pub fn raw_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(u16::MAX.into()) as u16;
    let head = [crate::protocol::MAGIC, kind, (len >> 8) as u8, len as u8];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&payload[..len.into()]);
    let mut out = head.to_vec();
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&payload[..len.into()]);
    out
}

/// Decodes exactly one whole frame from `wire` (an encoder's output).
fn decode_one(wire: &[u8], max_frame: usize) -> Frame {
    match decode_frame(wire, max_frame) {
        Ok(Status::Complete((frame, used))) if used == wire.len() => frame,
        other => panic!("encoder output is not one frame: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 1. frame_decoder

/// `max_frame` choices for [`frame_decoder`], from the low three bits of the first byte.
const DECODER_MAX_FRAMES: [usize; 8] = [0, 1, 8, 16, 64, 256, 1024, 65535];

/// The frame decoder on a stream cut into chunks. The first byte picks
/// `max_frame` (low 3 bits) and the chunking (high 5 bits: 0 = one chunk,
/// 1..=15 fixed sizes, 16..=31 pseudo-random sizes); the rest is the stream.
///
/// Checks: [`FrameDecoder`] never buffers more than one frame, `Ok(None)`
/// only with the chunk used up, and it agrees frame for frame (and error for
/// error, and on the tail it holds) with [`decode_frame`] over the whole
/// stream; every frame re-encodes to exactly its wire bytes and decodes back.
pub fn frame_decoder(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let max_frame = DECODER_MAX_FRAMES[usize::from(sel & 7)];
    let mode = usize::from(sel >> 3);
    let mut rng = u32::from(sel).wrapping_mul(2_654_435_761) | 1;
    let mut next_chunk = || match mode {
        0 => usize::MAX,
        1..=15 => [1, 2, 3, 5, 7, 8, 9, 13, 16, 64, 100, 255, 256, 264, 1000][mode - 1],
        _ => {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            1 + (rng % 300) as usize
        }
    };

    // The reference: decode_frame over the contiguous stream.
    let mut expected = Vec::new();
    let mut at = 0;
    let expected_end = loop {
        match decode_frame(&stream[at..], max_frame) {
            Ok(Status::Complete((frame, used))) => {
                let wire = &stream[at..at + used];
                assert_eq!(used, HEADER_LEN + frame.payload.len());
                assert_eq!(
                    &encode_frame(frame.kind, frame.more, &frame.payload)[..],
                    wire
                );
                assert!(frame.payload.len() <= max_frame);
                assert!(!frame.more || frame.kind == FrameType::Data);
                if matches!(frame.kind, FrameType::Ping | FrameType::Pong) {
                    assert!(frame.payload.len() <= MAX_PING_PAYLOAD);
                }
                assert_eq!(decode_one(wire, max_frame), frame);
                expected.push(frame);
                at += used;
            }
            Ok(Status::Partial) => break Ok(stream.len() - at),
            Err(e) => break Err(e),
        }
    };

    let mut decoder = FrameDecoder::new(max_frame);
    let mut got = Vec::new();
    let mut rest = stream;
    let got_end: Result<usize, ProtocolError> = 'feed: loop {
        if rest.is_empty() {
            break Ok(decoder.buffered());
        }
        let (chunk, tail) = rest.split_at(next_chunk().min(rest.len()));
        rest = tail;
        let mut input = chunk;
        loop {
            let step = decoder.next_frame(&mut input);
            assert!(decoder.buffered() <= HEADER_LEN + max_frame);
            match step {
                Ok(Some(frame)) => got.push(frame),
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) with input left");
                    break;
                }
                // After an error the stream cannot be trusted: stop feeding.
                Err(e) => break 'feed Err(e),
            }
        }
    };
    assert_eq!(got, expected, "chunked decoding differs from contiguous");
    assert_eq!(got_end, expected_end, "chunked decoding ends differently");
}

// ---------------------------------------------------------------------------
// 2. hello

/// HELLO, WELCOME and GOAWAY payload decoders on arbitrary bytes. Whatever
/// decodes re-encodes to the same payload (WELCOME: up to its unused flag
/// bits; GOAWAY: when the reason is UTF-8) and decodes to the same value.
pub fn hello(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(hello) = Hello::decode(&payload) {
        let frame = decode_one(&hello.encode_frame(), 65535);
        assert_eq!(frame.kind, FrameType::Hello);
        assert_eq!(&frame.payload[..], data, "HELLO layout is canonical");
        assert_eq!(Hello::decode(&frame.payload), Ok(hello));
    }
    if let Ok(welcome) = Welcome::decode(data) {
        let frame = decode_one(&welcome.encode_frame(), 65535);
        assert_eq!(frame.kind, FrameType::Welcome);
        let mut canonical = data.to_vec();
        canonical[1] &= 0x03;
        assert_eq!(&frame.payload[..], &canonical[..]);
        assert_eq!(Welcome::decode(&frame.payload), Ok(welcome));
    }
    if let Ok(goaway) = Goaway::decode(data) {
        assert!(data.len() >= 2 && data.len() - 2 <= MAX_REASON_LEN);
        assert_eq!(goaway.code.as_u16(), u16::from_be_bytes([data[0], data[1]]));
        let frame = decode_one(&encode_goaway(goaway.code, &goaway.reason), 65535);
        assert_eq!(frame.kind, FrameType::Goaway);
        let again = Goaway::decode(&frame.payload).expect("encoded GOAWAY decodes");
        assert_eq!(again.code, goaway.code);
        if std::str::from_utf8(&data[2..]).is_ok() {
            assert_eq!(&frame.payload[..], data);
            assert_eq!(again, goaway);
        }
    } else {
        assert!(data.len() < 2 || data.len() - 2 > MAX_REASON_LEN);
    }
}

// ---------------------------------------------------------------------------
// 3. pubsub_op

/// `max_frame` choices for a delivery's frames in [`pubsub_op`] and
/// [`pubsub_v2_ops`], from the low three bits of the first byte.
const DELIVERY_MAX_FRAMES: [usize; 8] = [1, 2, 3, 8, 16, 64, 256, 65535];

/// Decodes `wire` as DATA frames of at most `max_frame` bytes and returns the
/// one message they carry (checking the fragmentation on the way).
fn reassemble(wire: &[u8], max_frame: usize) -> Vec<u8> {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut input = wire;
    let mut message = Vec::new();
    let mut last = None;
    while let Some(frame) = decoder.next_frame(&mut input).expect("valid frames") {
        assert_eq!(frame.kind, FrameType::Data);
        assert!(last.is_none(), "a frame after the message's last one");
        if frame.more {
            assert_eq!(
                frame.payload.len(),
                max_frame.max(1),
                "only the last frame is short"
            );
        } else {
            last = Some(());
        }
        message.extend_from_slice(&frame.payload);
    }
    assert!(
        last.is_some() && decoder.buffered() == 0,
        "message ends cleanly"
    );
    message
}

/// The pub/sub op parser. The first byte picks the `max_frame` a delivery is
/// split at; the rest is a message. A parsed op re-encodes (with
/// [`subscribe`], [`unsubscribe`] or [`publish`]) to the same bytes; a
/// publish's delivery decodes back to its channel and body; whatever
/// [`parse_delivery`] accepts re-encodes to the same message.
pub fn pubsub_op(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max_frame = DELIVERY_MAX_FRAMES[usize::from(sel & 7)];
    let message = Bytes::copy_from_slice(rest);
    if let Ok(op) = parse_op(&message) {
        let again = match &op {
            Op::Subscribe(channel) => subscribe(channel),
            Op::Unsubscribe(channel) => unsubscribe(channel),
            Op::Publish { channel, body } => publish(channel, body),
        };
        assert_eq!(again, message, "op layout is canonical");
        assert_eq!(parse_op(&again).as_ref(), Ok(&op));
        if let Op::Publish { channel, body } = &op {
            let delivered = reassemble(&encode_delivery(channel, body, max_frame), max_frame);
            assert_eq!(
                parse_delivery(&delivered),
                Some((&channel[..], &body[..])),
                "delivery round trip"
            );
        }
    }
    if let Some((channel, body)) = parse_delivery(rest) {
        let wire = encode_delivery(channel, body, max_frame);
        assert_eq!(
            reassemble(&wire, max_frame),
            rest,
            "delivery layout is canonical"
        );
    }
}
