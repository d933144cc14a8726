//! Fuzz harnesses: one function per parser or state machine, each taking
//! arbitrary bytes and panicking only when an invariant is violated.
//!
//! The cargo-fuzz targets in `fuzz/` call these, and `tests/fuzz_corpus.rs`
//! replays every committed corpus file through them on stable, so a crash
//! found once stays a regression test. The state-machine harnesses read their
//! input as a little command language ([`Cmd`]): each byte picks an operation
//! and the next bytes are its arguments, so the fuzzer explores sequences of
//! reads, writes, clock jumps and closes rather than only byte streams. Byte
//! arguments past the end of the input read as zero, so every input is valid.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::app::pubsub::ops::{
    encode_delivery, parse_delivery, parse_op, publish, subscribe, unsubscribe, Op,
};
use crate::app::pubsub::{Action, PubsubLimits, PubsubState, MAX_SUBSCRIPTIONS_PER_SESSION};
use crate::app::{ConnId, SessionGrant};
use crate::config::Config;
use crate::conn::{CloseReason, Conn, ConnEvent, State};
use crate::protocol::frame::MORE_BIT;
use crate::protocol::{
    decode_frame, encode_frame, encode_goaway, encode_message, Frame, FrameDecoder, FrameType,
    Goaway, GoawayCode, Hello, ProtocolError, SessionId, Status, Welcome, HEADER_LEN,
    MAX_PING_PAYLOAD, MAX_REASON_LEN,
};
use crate::time::Tick;

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
    let max_frame = [1, 2, 3, 8, 16, 64, 256, 65535][usize::from(sel & 7)];
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

// ---------------------------------------------------------------------------
// 4. conn_machine

/// Operations of the [`conn_machine`] and [`pubsub_state`] command languages.
/// A command byte is read modulo the number of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// conn: `n`, then `n` raw bytes appended to the pending input.
    Raw = 0,
    /// conn: `kind`, `len`, payload: one frame with a correct CRC appended
    /// (`len` × 4 when `kind & 0x40`; the type is `kind & 7`, MORE is bit 7).
    Frame = 1,
    /// conn: `n`: feeds the first `n` pending bytes (0 = all) to the connection.
    Deliver = 2,
    /// conn: `k`: the clock moves `k` ticks (× 16 when `k & 0x80`); the timer
    /// fires if the deadline passed (always, spuriously, when `k & 0x40`).
    Advance = 3,
    /// conn: `hi`, `lo`: the socket took that many bytes (modulo what is queued + 1).
    Written = 4,
    /// conn: the peer's EOF.
    Eof = 5,
    /// conn: `flags`: the app accepts the pending HELLO (resumed, lost bits).
    Accept = 6,
    /// conn: `hi`, `lo`: the app sends a message of that length (modulo 6000).
    Send = 7,
    /// conn: `code`: a server-initiated close (shutdown when `code` is 0xFF).
    Close = 8,
    /// conn: the reactor shuts the write side if the connection wants it.
    ShutWrite = 9,
    /// conn: `flags`, `len`: a HELLO appended (good or bad token, RESUME).
    Hello = 10,
    /// conn: `len`, `frag`: a DATA message of `len` × 8 bytes in fragments of `frag` + 1.
    Message = 11,
    /// conn: the socket fails (reset).
    Reset = 12,
}

impl Cmd {
    /// Every command, in opcode order.
    pub const ALL: [Cmd; 13] = [
        Cmd::Raw,
        Cmd::Frame,
        Cmd::Deliver,
        Cmd::Advance,
        Cmd::Written,
        Cmd::Eof,
        Cmd::Accept,
        Cmd::Send,
        Cmd::Close,
        Cmd::ShutWrite,
        Cmd::Hello,
        Cmd::Message,
        Cmd::Reset,
    ];

    fn from_byte(b: u8) -> Cmd {
        Cmd::ALL[usize::from(b) % Cmd::ALL.len()]
    }
}

/// Config flag bits for [`conn_machine`] (its first byte).
pub mod conn_flags {
    /// Soft output limit of 2048 bytes with a 400 ms grace period.
    pub const SOFT_OUTPUT: u8 = 0x01;
    /// Rate limit of 50 frames a second, burst 20.
    pub const RATE_LIMIT: u8 = 0x02;
    /// The server requires the auth token [`super::CONN_TOKEN`].
    pub const AUTH: u8 = 0x04;
    /// Start with a valid HELLO already fed and accepted.
    pub const PREFIX_HELLO: u8 = 0x08;
    /// Accept every HELLO at once, as the reactor does.
    pub const AUTO_ACCEPT: u8 = 0x10;
}

/// The auth token of the [`conn_machine`] config when [`conn_flags::AUTH`] is set.
pub const CONN_TOKEN: &[u8] = b"tok";

/// The small config of [`conn_machine`]: tiny limits and short timeouts so a
/// fuzzer reaches every limit and deadline quickly.
pub fn conn_config(flags: u8) -> Config {
    Config {
        tick_ms: 100,
        heartbeat_ms: 1_000,
        min_heartbeat_ms: 100,
        max_heartbeat_ms: 5_000,
        miss: 3,
        handshake_timeout_ms: 500,
        linger_ms: 300,
        max_frame: 256,
        max_message: 1024,
        max_output: 4096,
        soft_output: if flags & conn_flags::SOFT_OUTPUT != 0 {
            2048
        } else {
            0
        },
        soft_output_ms: 400,
        rate_limit: if flags & conn_flags::RATE_LIMIT != 0 {
            50
        } else {
            0
        },
        rate_burst: 20,
        auth_tokens: if flags & conn_flags::AUTH != 0 {
            vec![CONN_TOKEN.to_vec()]
        } else {
            Vec::new()
        },
        ..Config::default()
    }
}

/// The most a GOAWAY frame can take: header, code and the longest reason.
const MAX_GOAWAY_FRAME: usize = HEADER_LEN + 2 + MAX_REASON_LEN;

fn rank(state: State) -> u8 {
    match state {
        State::Handshake => 0,
        State::Open => 1,
        State::Closing | State::Draining => 2,
        State::Closed => 3,
    }
}

/// What the peer has read of the connection's output, and what it learnt.
#[derive(Debug)]
struct Peer {
    decoder: FrameDecoder,
    frames: usize,
    welcome: bool,
    goaway: Option<GoawayCode>,
}

impl Peer {
    fn read(&mut self, mut bytes: &[u8]) {
        while let Some(frame) = self
            .decoder
            .next_frame(&mut bytes)
            .expect("output is frames")
        {
            assert!(self.goaway.is_none(), "{} frame after GOAWAY", frame.kind);
            match frame.kind {
                FrameType::Welcome => {
                    assert!(self.frames == 0, "WELCOME is the first frame");
                    Welcome::decode(&frame.payload).expect("WELCOME decodes");
                    self.welcome = true;
                }
                FrameType::Goaway => {
                    let goaway = Goaway::decode(&frame.payload).expect("GOAWAY decodes");
                    self.goaway = Some(goaway.code);
                }
                FrameType::Pong | FrameType::Data => assert!(self.welcome, "before WELCOME"),
                FrameType::Hello | FrameType::Ping => panic!("server sent {}", frame.kind),
            }
            self.frames += 1;
        }
    }
}

/// One connection under test, with its clock and what its peer saw.
struct ConnRig {
    config: Config,
    conn: Conn,
    now: Tick,
    pending: Vec<u8>,
    hello_seen: bool,
    auto_accept: bool,
    peer: Peer,
    write_shut: bool,
}

impl ConnRig {
    fn feed(&mut self, n: usize) {
        let n = if n == 0 {
            self.pending.len()
        } else {
            n.min(self.pending.len())
        };
        let bytes: Vec<u8> = self.pending.drain(..n).collect();
        let mut input = &bytes[..];
        loop {
            let before = (input.len(), self.conn.state());
            let event = self.conn.handle_bytes(&mut input, self.now, &self.config);
            self.check_state(before.1);
            let Some(event) = event else {
                assert!(input.is_empty(), "None with input left");
                break;
            };
            assert!(input.len() < before.0, "an event without progress");
            match event {
                ConnEvent::Hello(_) => {
                    assert_eq!(
                        (before.1, self.conn.state()),
                        (State::Handshake, State::Handshake)
                    );
                    self.hello_seen = true;
                    if self.auto_accept {
                        self.accept(0);
                    }
                }
                ConnEvent::Message(m) => {
                    assert_eq!(before.1, State::Open);
                    assert!(m.len() <= self.config.max_message as usize);
                }
                ConnEvent::PeerGoaway(g) => {
                    assert_eq!(self.conn.state(), State::Closing);
                    assert_eq!(
                        self.conn.close_reason(),
                        Some(CloseReason::PeerGoaway(g.code))
                    );
                }
            }
            self.check();
        }
    }

    fn accept(&mut self, flags: u8) {
        let before = self.conn.state();
        let expect = before == State::Handshake && self.hello_seen;
        let session = SessionId([flags; 16]);
        let ok = self.conn.accept(
            session,
            flags & 1 != 0,
            flags & 2 != 0,
            self.now,
            &self.config,
        );
        assert_eq!(ok, expect, "accept in {before}");
        self.check_state(before);
        if ok {
            assert_eq!(self.conn.session(), Some(session));
        }
    }

    fn written(&mut self, n: usize) {
        let n = n % (self.conn.output_len() + 1);
        let mut taken = Vec::with_capacity(n);
        for buf in self.conn.output() {
            let want = n - taken.len();
            taken.extend_from_slice(&buf[..want.min(buf.len())]);
        }
        assert_eq!(taken.len(), n);
        self.peer.read(&taken);
        let before = self.conn.output_len();
        self.conn.handle_written(n, &self.config);
        assert_eq!(self.conn.output_len(), before - n);
    }

    fn advance(&mut self, k: u8) {
        let ticks = if k & 0x80 != 0 {
            u64::from(k & 0x7f) * 16
        } else {
            u64::from(k)
        };
        self.now += ticks;
        let before = self.conn.state();
        let due = self.now >= self.conn.deadline(&self.config);
        if due || k & 0x40 != 0 {
            self.conn.handle_timeout(self.now, &self.config);
            self.check_state(before);
            match self.conn.state() {
                State::Handshake | State::Open => {
                    assert!(
                        self.conn.deadline(&self.config) > self.now,
                        "deadline in the past"
                    );
                }
                State::Closing | State::Draining if due && rank(before) == 2 => {
                    panic!("linger ran out but still {}", self.conn.state())
                }
                State::Closing | State::Draining | State::Closed => {}
            }
        }
    }

    fn check_state(&self, before: State) {
        let after = self.conn.state();
        assert!(
            rank(after) >= rank(before),
            "state went back: {before} => {after}"
        );
        if rank(before) == 2 && rank(after) == 2 {
            assert_eq!(
                before, after,
                "closing and draining are not interchangeable"
            );
        }
    }

    fn check(&self) {
        let c = &self.config;
        let conn = &self.conn;
        let limit = HEADER_LEN + usize::from(c.max_frame) + c.max_message as usize;
        assert!(
            conn.buffered_input() <= limit,
            "input {} > {limit}",
            conn.buffered_input()
        );
        let queued: usize = conn.output().iter().map(Bytes::len).sum();
        assert_eq!(queued, conn.output_len());
        assert!(
            conn.output().iter().all(|b| !b.is_empty()),
            "empty buffer queued"
        );
        let bound = match conn.state() {
            // The hard limit is enforced after each command (the reactor does
            // it after each turn's writes), and the slow-consumer close drops
            // all but the frame in flight.
            State::Handshake | State::Open => c.max_output,
            State::Closing | State::Draining | State::Closed => c.max_output + MAX_GOAWAY_FRAME,
        };
        assert!(
            queued <= bound,
            "output {queued} > {bound} in {}",
            conn.state()
        );
        assert_eq!(conn.wants_write(), queued > 0 && !self.write_shut);
        if self.write_shut {
            assert_eq!(queued, 0, "output queued after SHUT_WR");
        }
        if conn.is_closed() {
            assert!(!conn.wants_read());
        }
        if rank(conn.state()) < 2 {
            assert!(conn.close_reason().is_none());
        } else {
            assert!(conn.close_reason().is_some());
        }
    }

    fn finish(mut self) {
        let rest: Vec<u8> = self.conn.output().iter().flat_map(|b| b.to_vec()).collect();
        self.peer.read(&rest);
        assert_eq!(self.peer.decoder.buffered(), 0, "output ends mid-frame");
        if let Some(code) = self.peer.goaway {
            assert_eq!(self.conn.close_reason(), Some(CloseReason::Goaway(code)));
        }
    }
}

/// The connection state machine driven by the [`Cmd`] language. The first
/// byte holds [`conn_flags`] for [`conn_config`]; then commands until the
/// input ends, and a last delivery of what is pending.
///
/// Checks after every step: no panic; input held ≤ header + `max_frame` +
/// `max_message`; output ≤ `max_output` while open and ≤ `max_output` + one
/// GOAWAY after; the output is a valid frame sequence (WELCOME first, nothing
/// after GOAWAY) that ends on a frame boundary; `accept` succeeds exactly when
/// a HELLO is pending in the handshake; the deadline lies ahead after
/// `handle_timeout` while open; states only move forward.
pub fn conn_machine(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let config = conn_config(flags);
    debug_assert_eq!(config.validate(), Ok(()));
    let mut rig = ConnRig {
        conn: Conn::new(0, &config),
        config,
        now: 0,
        pending: Vec::new(),
        hello_seen: false,
        auto_accept: flags & conn_flags::AUTO_ACCEPT != 0,
        peer: Peer {
            decoder: FrameDecoder::new(65535),
            frames: 0,
            welcome: false,
            goaway: None,
        },
        write_shut: false,
    };
    if flags & conn_flags::PREFIX_HELLO != 0 {
        let hello = Hello {
            heartbeat_ms: 1_000,
            token: Bytes::from_static(CONN_TOKEN),
            resume: None,
        };
        rig.pending.extend_from_slice(&hello.encode_frame());
        rig.feed(0);
        rig.accept(0);
        assert_eq!(rig.conn.state(), State::Open);
    }
    rig.check();
    while !input.is_empty() {
        let before = rig.conn.state();
        match Cmd::from_byte(input.byte()) {
            Cmd::Raw => {
                let n = input.byte();
                rig.pending.extend_from_slice(input.take(n.into()));
            }
            Cmd::Frame => {
                let kind = input.byte();
                let len = usize::from(input.byte()) * if kind & 0x40 != 0 { 4 } else { 1 };
                let payload = input.take(len).to_vec();
                rig.pending
                    .extend(raw_frame(kind & (MORE_BIT | 0x07), &payload));
            }
            Cmd::Deliver => rig.feed(input.byte().into()),
            Cmd::Advance => rig.advance(input.byte()),
            Cmd::Written => rig.written(input.u16().into()),
            Cmd::Eof => rig.conn.handle_eof(rig.now, &rig.config),
            Cmd::Accept => rig.accept(input.byte()),
            Cmd::Send => {
                let message = vec![0x5a; usize::from(input.u16()) % 6000];
                rig.conn.send_message(&message, rig.now, &rig.config);
            }
            Cmd::Close => match input.byte() {
                0xff => rig.conn.shutdown(rig.now, &rig.config),
                code => {
                    let reason = "x".repeat(usize::from(code));
                    let code = GoawayCode::from_u16(code.into());
                    rig.conn.close(code, &reason, rig.now, &rig.config);
                }
            },
            Cmd::ShutWrite => {
                if rig.conn.wants_shutdown_write() {
                    rig.conn.handle_write_shut();
                    rig.write_shut = true;
                }
            }
            Cmd::Hello => {
                let flags = input.byte();
                let hello = Hello {
                    heartbeat_ms: u32::from(input.byte()) * 40,
                    token: if flags & 1 != 0 {
                        Bytes::from_static(CONN_TOKEN)
                    } else {
                        Bytes::new()
                    },
                    resume: (flags & 2 != 0).then_some(SessionId([flags; 16])),
                };
                rig.pending.extend_from_slice(&hello.encode_frame());
            }
            Cmd::Message => {
                let len = usize::from(input.byte()) * 8;
                let frag = usize::from(input.byte()) + 1;
                rig.pending
                    .extend_from_slice(&encode_message(&vec![0x33; len], frag));
            }
            Cmd::Reset => rig.conn.handle_reset(),
        }
        // As the reactor does after every turn's writes.
        rig.conn.enforce_output_limit(rig.now, &rig.config);
        rig.check_state(before);
        rig.check();
    }
    rig.feed(0);
    rig.check();
    rig.finish();
}

// ---------------------------------------------------------------------------
// 5. pubsub_state

/// What the model expects of one session.
#[derive(Debug, Default)]
struct ModelSession {
    conn: Option<ConnId>,
    channels: BTreeSet<Vec<u8>>,
    queue: VecDeque<Bytes>,
    queue_bytes: usize,
    lost: bool,
    /// The value of the TTL timer set at its latest detach.
    timer: Option<u64>,
}

/// Channel names [`pubsub_state`] draws from (a small set so they collide).
const CHANNELS: [&[u8]; 4] = [b"a", b"b", b"news", &[b'z'; 255]];

/// A model of [`PubsubState`] and the state itself, driven side by side.
struct PubsubRig {
    state: PubsubState,
    limits: PubsubLimits,
    sessions: HashMap<SessionId, ModelSession>,
    /// Live connections and the session their WELCOME gave them.
    live: Vec<(ConnId, SessionId)>,
    /// Pending TTL timers, oldest first, with the session each was set for.
    timers: VecDeque<(u64, SessionId)>,
    next_id: u64,
    granted: Vec<SessionId>,
}

impl PubsubRig {
    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pick(&self, b: u8) -> Option<(ConnId, SessionId)> {
        (!self.live.is_empty()).then(|| self.live[usize::from(b) % self.live.len()])
    }

    fn hello(&mut self, r: u8) {
        let conn = ConnId::from_u64(self.fresh_id());
        let fresh = SessionId(u128::from(self.fresh_id()).to_be_bytes());
        let resume = match r & 3 {
            1 if !self.granted.is_empty() => {
                Some(self.granted[usize::from(r >> 2) % self.granted.len()])
            }
            2 => Some(SessionId([r; 16])),
            _ => None,
        };
        let mut out = Vec::new();
        let grant = self.state.handle_hello(conn, resume, fresh, &mut out);
        let mut expect_out = Vec::new();
        let mut taken_over = None;
        let expect = match resume.and_then(|id| self.sessions.get_mut(&id).map(|s| (id, s))) {
            Some((id, s)) => {
                if let Some(old) = s.conn.replace(conn) {
                    expect_out.push(Action::Close(
                        old,
                        GoawayCode::SessionTakenOver,
                        "session resumed by a newer connection",
                    ));
                    taken_over = Some(old);
                }
                s.timer = None;
                SessionGrant {
                    session: id,
                    resumed: true,
                    lost: std::mem::take(&mut s.lost),
                }
            }
            None => SessionGrant {
                session: fresh,
                resumed: false,
                lost: false,
            },
        };
        assert_eq!(grant, expect, "HELLO resume {resume:?}");
        assert_eq!(out, expect_out);
        if let Some(old) = taken_over {
            self.live.retain(|(c, _)| *c != old);
            self.close_conn(old, CloseReason::Goaway(GoawayCode::SessionTakenOver));
        }
        self.granted.push(grant.session);
        self.live.push((conn, grant.session));
        out.clear();
        self.state.handle_open(conn, &mut out);
        let queued = self.sessions.get_mut(&grant.session).map(|s| {
            s.queue_bytes = 0;
            std::mem::take(&mut s.queue)
        });
        let expect: Vec<Action> = queued
            .unwrap_or_default()
            .into_iter()
            .map(|f| Action::Send(conn, f))
            .collect();
        assert_eq!(out, expect, "queued deliveries on open, in order");
    }

    /// The session entry attached to `conn`, if the model has one.
    fn session_of(&self, conn: ConnId) -> Option<SessionId> {
        self.sessions
            .iter()
            .find(|(_, s)| s.conn == Some(conn))
            .map(|(id, _)| *id)
    }

    fn message(&mut self, conn: ConnId, session: SessionId, message: &Bytes) {
        let mut out = Vec::new();
        self.state.handle_message(conn, session, message, &mut out);
        match parse_op(message) {
            Ok(Op::Subscribe(channel)) => {
                let id = self.session_of(conn).unwrap_or(session);
                let s = self.sessions.entry(id).or_default();
                s.conn = Some(conn);
                let full = s.channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION;
                if full && !s.channels.contains(&channel[..]) {
                    let close =
                        Action::Close(conn, GoawayCode::ProtocolError, "too many subscriptions");
                    assert_eq!(out, vec![close]);
                    self.live.retain(|(c, _)| *c != conn);
                    self.close_conn(conn, CloseReason::Goaway(GoawayCode::ProtocolError));
                    return;
                }
                s.channels.insert(channel.to_vec());
                assert_eq!(out, vec![]);
            }
            Ok(Op::Unsubscribe(channel)) => {
                if let Some(id) = self.session_of(conn) {
                    self.sessions
                        .get_mut(&id)
                        .map(|s| s.channels.remove(&channel[..]));
                }
                assert_eq!(out, vec![]);
            }
            Ok(Op::Publish { channel, body }) => self.check_publish(&channel, &body, out),
            Err(_) => {
                let close =
                    Action::Close(conn, GoawayCode::ProtocolError, "malformed pub/sub message");
                assert_eq!(out, vec![close]);
                self.live.retain(|(c, _)| *c != conn);
                self.close_conn(conn, CloseReason::Goaway(GoawayCode::ProtocolError));
            }
        }
    }

    fn check_publish(&mut self, channel: &[u8], body: &[u8], out: Vec<Action>) {
        let frames = encode_delivery(channel, body, self.limits.max_frame);
        let mut expect = Vec::new();
        for s in self
            .sessions
            .values_mut()
            .filter(|s| s.channels.contains(channel))
        {
            match s.conn {
                Some(conn) => expect.push(conn),
                None => {
                    s.queue_bytes += frames.len();
                    s.queue.push_back(frames.clone());
                    while s.queue_bytes > self.limits.session_queue {
                        let Some(oldest) = s.queue.pop_front() else {
                            break;
                        };
                        s.queue_bytes -= oldest.len();
                        s.lost = true;
                    }
                }
            }
        }
        let mut sent = Vec::new();
        let mut first: Option<Bytes> = None;
        for action in out {
            let Action::Send(conn, bytes) = action else {
                panic!("publish answered {action:?}");
            };
            assert!(
                self.live.iter().any(|(c, _)| *c == conn),
                "delivery to a closed {conn}"
            );
            assert_eq!(bytes, frames);
            let shared = first.get_or_insert_with(|| bytes.clone());
            assert_eq!(
                shared.as_ptr(),
                bytes.as_ptr(),
                "one buffer for every subscriber"
            );
            sent.push(conn);
        }
        sent.sort();
        expect.sort();
        assert_eq!(
            sent, expect,
            "deliveries to exactly the attached subscribers"
        );
    }

    fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        let mut out = Vec::new();
        self.state.handle_close(conn, reason, &mut out);
        let Some(id) = self.session_of(conn) else {
            assert_eq!(out, vec![]);
            return;
        };
        let s = self.sessions.get_mut(&id).expect("model session");
        let nothing = s.channels.is_empty() && s.queue.is_empty();
        if reason == CloseReason::PeerGoaway(GoawayCode::Normal) || nothing {
            self.sessions.remove(&id);
            assert_eq!(out, vec![]);
            return;
        }
        s.conn = None;
        let [Action::Timer { after_ms, value }] = out[..] else {
            panic!("detach answered {out:?}");
        };
        assert_eq!(after_ms, self.limits.session_ttl_ms);
        s.timer = Some(value);
        self.timers.push_back((value, id));
    }

    /// The oldest pending TTL timer fires (timers share one TTL, so they fire in order).
    fn timer(&mut self) {
        let Some((value, id)) = self.timers.pop_front() else {
            return;
        };
        self.state.handle_timer(value);
        // Only the timer of the session's latest detach may end it.
        let expired = self
            .sessions
            .get(&id)
            .is_some_and(|s| s.conn.is_none() && s.timer == Some(value));
        if expired {
            self.sessions.remove(&id);
        }
    }

    fn check(&self) {
        let st = &self.state;
        assert_eq!(st.session_count(), self.sessions.len(), "sessions");
        let detached = self.sessions.values().filter(|s| s.conn.is_none()).count();
        assert_eq!(st.detached_count(), detached, "detached sessions");
        let subs: usize = self.sessions.values().map(|s| s.channels.len()).sum();
        assert_eq!(
            st.subscription_count(),
            subs,
            "subscriptions = sum over sessions"
        );
        let channels: BTreeSet<&Vec<u8>> = self
            .sessions
            .values()
            .flat_map(|s| s.channels.iter())
            .collect();
        assert_eq!(
            st.channel_count(),
            channels.len(),
            "channels with a subscriber"
        );
        for (conn, _) in &self.live {
            assert_eq!(
                st.session_of(*conn),
                self.session_of(*conn),
                "session of {conn}"
            );
        }
    }
}

/// [`PubsubState`] against a model, driven by a command language: the first
/// byte picks `max_frame` and the session queue size, then each command byte
/// (mod 7) is hello/resume, subscribe, unsubscribe, publish, a raw message,
/// close (with a reason) or the next TTL timer. Checks every action against
/// the model (grants, takeovers, deliveries to exactly the attached
/// subscribers and never to a closed connection, one shared buffer, queued
/// deliveries in order with LOST) and the counts after every step.
pub fn pubsub_state(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.byte();
    let limits = PubsubLimits {
        session_ttl_ms: 1_000,
        session_queue: [0, 40, 200, 5000][usize::from(sel & 3)],
        max_frame: [16, 64, 256, 65535][usize::from(sel >> 2 & 3)],
    };
    let mut rig = PubsubRig {
        state: PubsubState::new(limits),
        limits,
        sessions: HashMap::new(),
        live: Vec::new(),
        timers: VecDeque::new(),
        next_id: 0,
        granted: Vec::new(),
    };
    while !input.is_empty() {
        let op = input.byte() % 7;
        let arg = input.byte();
        match (op, rig.pick(arg)) {
            (0, _) => rig.hello(input.byte()),
            (1..=3, Some((conn, session))) => {
                let channel = CHANNELS[usize::from(input.byte() & 3)];
                let message = match op {
                    1 => subscribe(channel),
                    2 => unsubscribe(channel),
                    _ => publish(channel, input.take(input_len(arg))),
                };
                rig.message(conn, session, &message);
            }
            (4, Some((conn, session))) => {
                let n = input.byte();
                let message = Bytes::copy_from_slice(input.take(n.into()));
                rig.message(conn, session, &message);
            }
            (5, Some((conn, _))) => {
                let reason = match input.byte() & 3 {
                    0 => CloseReason::PeerGoaway(GoawayCode::Normal),
                    1 => CloseReason::PeerEof,
                    2 => CloseReason::Reset,
                    _ => CloseReason::Goaway(GoawayCode::IdleTimeout),
                };
                rig.live.retain(|(c, _)| *c != conn);
                rig.close_conn(conn, reason);
            }
            (6, _) => rig.timer(),
            (_, None) | (7.., _) => {}
        }
        rig.check();
    }
}

fn input_len(arg: u8) -> usize {
    usize::from(arg >> 3) * 3
}
