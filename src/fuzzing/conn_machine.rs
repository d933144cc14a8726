//! Harness 4: the connection state machine driven by a command language.

use bytes::Bytes;

use super::*;

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
    config: ConnLimits,
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
    let config = ConnLimits::from_config(&config);
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
            version: crate::protocol::PROTOCOL_V1,
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
                    version: crate::protocol::PROTOCOL_V1,
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
