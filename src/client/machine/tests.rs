//! The client machine on a fake clock, with the server played by hand-encoded frames.

use super::*;
use crate::client::{BackoffConfig, Jitter, SplitMix64};
use crate::protocol::{decode_frame, Frame, Goaway, Status};

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn config() -> ClientConfig {
    ClientConfig {
        version: crate::protocol::PROTOCOL_V1,
        heartbeat_ms: 1000,
        token: Bytes::from_static(b"tok"),
        handshake_timeout: secs(5),
        miss: 3,
        max_message: 1 << 16,
        max_pending: 64,
        linger: secs(2),
        reconnect: true,
        backoff: BackoffConfig {
            base: ms(100),
            cap: secs(1),
            factor: 2.0,
            jitter: Jitter::None,
            max_attempts: None,
            healthy_after: secs(5),
        },
        adaptive: None,
        tls: None,
    }
}

/// Splits a byte stream into frames (the server side's view of what we sent).
pub(super) fn frames_of(mut buf: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        match decode_frame(buf, CLIENT_MAX_FRAME) {
            Ok(Status::Complete((frame, used))) => {
                out.push(frame);
                buf = &buf[used..];
            }
            other => panic!("client sent a bad stream: {other:?}"),
        }
    }
    out
}

pub(super) fn welcome(heartbeat_ms: u32, max_frame: u16, max_message: u32, resumed: bool) -> Bytes {
    welcome_version(
        crate::protocol::PROTOCOL_V1,
        heartbeat_ms,
        max_frame,
        max_message,
        resumed,
    )
}

/// A WELCOME frame for `version` (the server echoes the HELLO's, §7.1).
pub(super) fn welcome_version(
    version: u8,
    heartbeat_ms: u32,
    max_frame: u16,
    max_message: u32,
    resumed: bool,
) -> Bytes {
    Welcome {
        version,
        resumed,
        lost: false,
        heartbeat_ms,
        idle_timeout_ms: heartbeat_ms * 3,
        max_frame,
        max_message,
        session: SessionId([0x5e; 16]),
    }
    .encode_frame()
}

/// A machine plus a virtual clock.
pub(super) struct Harness {
    pub m: ClientMachine,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new(config: ClientConfig) -> Self {
        let t0 = Instant::now();
        let m = ClientMachine::new(config, Box::new(SplitMix64::new(1)), t0);
        Harness { m, t0, now: t0 }
    }

    pub fn at(&self) -> Duration {
        self.now - self.t0
    }

    /// Moves the clock forward and lets the machine react.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.m.handle_timeout(self.now);
    }

    /// Jumps to the machine's next deadline.
    pub fn jump(&mut self) {
        let next = self.m.poll_timeout().expect("a timer is running");
        assert!(next >= self.now, "deadline in the past");
        self.now = next;
        self.m.handle_timeout(self.now);
    }

    pub fn sent(&mut self) -> Vec<Frame> {
        let mut bytes = Vec::new();
        while let Some(b) = self.m.poll_transmit() {
            bytes.extend_from_slice(&b);
        }
        frames_of(&bytes)
    }

    pub fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    pub fn deliver(&mut self, bytes: &[u8]) {
        self.m.handle_bytes(bytes, self.now);
    }

    /// Connects and completes the handshake; returns the HELLO sent.
    pub fn open(&mut self) -> Hello {
        assert!(self.m.wants_connect());
        self.m.handle_connected(self.now);
        let sent = self.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].kind, FrameType::Hello);
        let hello = Hello::decode(&sent[0].payload).expect("valid HELLO");
        let resumed = hello.resume.is_some();
        self.deliver(&welcome(1000, 16, 1 << 16, resumed));
        assert!(self.m.is_open());
        hello
    }
}

fn pong(seq_payload: &[u8]) -> Bytes {
    encode_frame(FrameType::Pong, false, seq_payload)
}

#[test]
fn handshake_sends_hello_and_opens_on_welcome() {
    let mut h = Harness::new(config());
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 0 }]);
    assert!(h.m.wants_connect() && !h.m.wants_socket());
    let hello = h.open();
    assert_eq!(hello.heartbeat_ms, 1000);
    assert_eq!(&hello.token[..], b"tok");
    assert_eq!(hello.resume, None);
    assert_eq!(
        h.events(),
        [ClientEvent::Connected {
            resumed: false,
            lost: false,
            session: SessionId([0x5e; 16]),
            heartbeat: secs(1),
        }]
    );
    assert_eq!(h.m.session(), Some(SessionId([0x5e; 16])));
}

#[test]
fn handshake_times_out_and_schedules_a_retry() {
    let mut h = Harness::new(config());
    let _ = h.events();
    h.m.handle_connected(h.now);
    let _ = h.sent();
    assert_eq!(h.m.poll_timeout(), Some(h.t0 + secs(5)));
    h.advance(ms(4999));
    assert!(h.events().is_empty());
    h.advance(ms(1));
    assert_eq!(
        h.events(),
        [
            ClientEvent::Disconnected {
                reason: DisconnectReason::HandshakeTimeout
            },
            ClientEvent::Reconnecting {
                attempt: 1,
                delay: ms(100)
            },
        ]
    );
    assert!(!h.m.wants_socket());
    h.jump();
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 1 }]);
    assert!(h.m.wants_connect());
}

#[test]
fn reconnect_resumes_the_session() {
    let mut h = Harness::new(config());
    h.open();
    h.m.handle_eof(h.now);
    let events = h.events();
    assert!(events.contains(&ClientEvent::Disconnected {
        reason: DisconnectReason::Eof
    }));
    h.jump();
    let hello = h.open();
    assert_eq!(hello.resume, Some(SessionId([0x5e; 16])));
    assert!(h.events().contains(&ClientEvent::Connected {
        resumed: true,
        lost: false,
        session: SessionId([0x5e; 16]),
        heartbeat: secs(1),
    }));
}

#[test]
fn ping_after_exactly_one_idle_interval() {
    let mut h = Harness::new(config());
    h.open();
    assert_eq!(h.m.poll_timeout(), Some(h.t0 + secs(1)));
    h.advance(ms(999));
    assert!(h.sent().is_empty());
    h.advance(ms(1));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, FrameType::Ping);
    // Sending data postpones the next PING to one interval after it.
    h.deliver(&pong(&sent[0].payload));
    h.advance(ms(500));
    h.m.send(b"x", h.now).expect("open");
    let _ = h.sent();
    h.advance(ms(999));
    assert!(h.sent().is_empty());
    h.advance(ms(1));
    assert_eq!(h.sent()[0].kind, FrameType::Ping);
    assert_eq!(h.m.rtt(), Some(Duration::ZERO));
}

#[test]
fn dead_peer_after_miss_intervals_of_silence() {
    let mut h = Harness::new(config());
    h.open();
    let _ = h.events();
    let mut pings = 0;
    while h.m.is_open() {
        h.jump();
        pings += h
            .sent()
            .iter()
            .filter(|f| f.kind == FrameType::Ping)
            .count();
    }
    assert_eq!(
        h.at(),
        secs(3),
        "dead exactly miss × interval after the last frame"
    );
    assert_eq!(pings, 2);
    assert_eq!(
        h.events()[0],
        ClientEvent::Disconnected {
            reason: DisconnectReason::DeadPeer { interval: secs(1) }
        }
    );
}

#[test]
fn any_received_frame_resets_the_dead_peer_clock() {
    let mut h = Harness::new(config());
    h.open();
    h.advance(ms(2500));
    // A DATA frame is as good a sign of life as a PONG.
    h.deliver(&encode_message(b"hi", 100));
    h.advance(ms(2999));
    assert!(h.m.is_open());
    h.advance(ms(1));
    assert!(!h.m.is_open(), "dead 3 s after the last frame");
}

#[test]
fn server_ping_is_answered_with_the_same_payload() {
    let mut h = Harness::new(config());
    h.open();
    h.deliver(&encode_frame(FrameType::Ping, false, b"abc"));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, FrameType::Pong);
    assert_eq!(&sent[0].payload[..], b"abc");
}

#[test]
fn goaway_is_reported_then_drained_then_reconnects() {
    let mut h = Harness::new(config());
    h.open();
    let _ = h.events();
    h.deliver(&encode_goaway(GoawayCode::ShuttingDown, "restart"));
    let goaway = Goaway {
        code: GoawayCode::ShuttingDown,
        reason: "restart".into(),
    };
    assert_eq!(h.events(), [ClientEvent::Goaway(goaway.clone())]);
    assert!(h.sent().is_empty(), "the peer is closing: we just FIN");
    assert!(h.m.wants_shutdown_write() && h.m.wants_socket());
    h.m.handle_eof(h.now);
    assert_eq!(
        h.events(),
        [
            ClientEvent::Disconnected {
                reason: DisconnectReason::Goaway(goaway)
            },
            ClientEvent::Reconnecting {
                attempt: 1,
                delay: ms(100)
            },
        ]
    );
}

#[test]
fn final_goaway_closes_for_good() {
    let mut h = Harness::new(config());
    h.m.handle_connected(h.now);
    let _ = (h.sent(), h.events());
    h.deliver(&encode_goaway(GoawayCode::Unauthorized, "no"));
    h.advance(secs(2)); // linger runs out without EOF
    let events = h.events();
    assert!(matches!(events.last(), Some(ClientEvent::Closed)));
    assert!(h.m.is_closed() && h.m.poll_timeout().is_none());
    assert_eq!(h.m.send(b"x", h.now), Err(SendError::Closed));
}

#[test]
fn fragmented_data_is_reassembled_across_interleaved_control_frames() {
    let mut h = Harness::new(config());
    h.open();
    let _ = h.events();
    let mut wire = Vec::new();
    wire.extend_from_slice(&encode_frame(FrameType::Data, true, b"hel"));
    wire.extend_from_slice(&encode_frame(FrameType::Ping, false, b""));
    wire.extend_from_slice(&encode_frame(FrameType::Data, true, b"l"));
    wire.extend_from_slice(&encode_frame(FrameType::Data, false, b"o"));
    wire.extend_from_slice(&encode_message(b"", 10));
    for byte in &wire {
        h.deliver(std::slice::from_ref(byte));
    }
    assert_eq!(
        h.events(),
        [
            ClientEvent::Message(Bytes::from_static(b"hello")),
            ClientEvent::Message(Bytes::new()),
        ]
    );
    assert_eq!(h.sent()[0].kind, FrameType::Pong);
}

#[test]
fn message_above_max_message_is_a_protocol_error() {
    let mut cfg = config();
    cfg.max_message = 10;
    let mut h = Harness::new(cfg);
    h.open();
    let _ = h.events();
    h.deliver(&encode_message(b"0123456789", 4));
    assert_eq!(h.events().len(), 1, "exactly max_message is fine");
    h.deliver(&encode_message(b"0123456789A", 4));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let goaway = Goaway::decode(&sent[0].payload).expect("GOAWAY");
    assert_eq!(goaway.code, GoawayCode::MessageTooLarge);
    assert!(h.m.wants_shutdown_write());
    h.m.handle_eof(h.now);
    assert!(matches!(
        &h.events()[0],
        ClientEvent::Disconnected {
            reason: DisconnectReason::Protocol(ProtocolError::MessageTooLarge { len: 11, max: 10 })
        }
    ));
}

#[test]
fn corrupt_frame_gets_bad_checksum_and_reading_stops() {
    let mut h = Harness::new(config());
    h.open();
    let mut bad = encode_message(b"hello", 100).to_vec();
    bad[9] ^= 1;
    bad.extend_from_slice(&encode_message(b"after", 100));
    h.deliver(&bad);
    let sent = h.sent();
    assert_eq!(
        Goaway::decode(&sent[0].payload).map(|g| g.code),
        Ok(GoawayCode::BadChecksum)
    );
    assert!(!h
        .events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(_))));
}

#[test]
fn send_splits_at_the_servers_max_frame() {
    let mut h = Harness::new(config());
    h.open(); // max_frame 16
    let message: Vec<u8> = (0..40).collect();
    h.m.send(&message, h.now).expect("open");
    let sent = h.sent();
    let shape: Vec<(bool, usize)> = sent.iter().map(|f| (f.more, f.payload.len())).collect();
    assert_eq!(shape, [(true, 16), (true, 16), (false, 8)]);
    let joined: Vec<u8> = sent.iter().flat_map(|f| f.payload.to_vec()).collect();
    assert_eq!(joined, message);
    assert_eq!(
        h.m.send(&vec![0; (1 << 16) + 1], h.now),
        Err(SendError::TooLarge {
            len: (1 << 16) + 1,
            max: 1 << 16
        })
    );
}

#[test]
fn messages_sent_while_disconnected_wait_for_welcome() {
    let mut h = Harness::new(config()); // max_pending 64
    h.m.send(&[1; 40], h.now).expect("held");
    assert_eq!(h.m.send(&[2; 40], h.now), Err(SendError::QueueFull));
    h.m.send(&[3; 24], h.now).expect("held");
    h.open();
    let data: Vec<Frame> = h
        .sent()
        .into_iter()
        .filter(|f| f.kind == FrameType::Data)
        .collect();
    // 40 bytes at max_frame 16 are 3 frames, then 24 bytes are 2.
    assert_eq!(data.len(), 5);
}

#[test]
fn close_sends_goaway_normal_and_still_delivers_until_eof() {
    let mut h = Harness::new(config());
    h.open();
    let _ = h.events();
    h.m.close(h.now);
    let sent = h.sent();
    assert_eq!(
        Goaway::decode(&sent[0].payload).map(|g| g.code),
        Ok(GoawayCode::Normal)
    );
    assert!(h.m.wants_shutdown_write());
    assert_eq!(h.m.send(b"late", h.now), Err(SendError::Closed));
    h.deliver(&encode_message(b"echo", 100));
    h.m.handle_eof(h.now);
    assert_eq!(
        h.events(),
        [
            ClientEvent::Message(Bytes::from_static(b"echo")),
            ClientEvent::Disconnected {
                reason: DisconnectReason::Closed
            },
            ClientEvent::Closed,
        ]
    );
    assert!(!h.m.wants_socket());
}

#[test]
fn gives_up_after_max_attempts_as_an_event() {
    let mut cfg = config();
    cfg.backoff.max_attempts = Some(2);
    let mut h = Harness::new(cfg);
    for _ in 0..3 {
        assert!(h.m.wants_connect());
        h.m.handle_connect_failed("refused", h.now);
        if let Some(t) = h.m.poll_timeout() {
            h.now = t;
            h.m.handle_timeout(h.now);
        }
    }
    let events = h.events();
    let tail = &events[events.len() - 3..];
    assert_eq!(
        tail,
        [
            ClientEvent::Disconnected {
                reason: DisconnectReason::ConnectFailed("refused".into())
            },
            ClientEvent::GaveUp { attempts: 2 },
            ClientEvent::Closed,
        ]
    );
    assert!(h.m.is_closed());
}

#[test]
fn backoff_resets_only_after_a_healthy_connection() {
    let mut h = Harness::new(config());
    let reconnect_attempt = |events: Vec<ClientEvent>| {
        events.into_iter().find_map(|e| match e {
            ClientEvent::Reconnecting { attempt, delay } => Some((attempt, delay)),
            _ => None,
        })
    };
    h.m.handle_connect_failed("refused", h.now);
    h.jump();
    let _ = h.events();
    h.m.handle_connect_failed("refused", h.now);
    assert_eq!(reconnect_attempt(h.events()), Some((2, ms(200))));
    h.jump();
    // Open for 1 s only: not healthy, the count goes on.
    h.open();
    h.advance(secs(1));
    for f in h.sent() {
        h.deliver(&pong(&f.payload));
    }
    h.m.handle_eof(h.now);
    assert_eq!(reconnect_attempt(h.events()), Some((3, ms(400))));
    h.jump();
    // Alive (answering PINGs) for 6 s: healthy, so the next retry starts over.
    h.open();
    for _ in 0..6 {
        h.advance(secs(1));
        for f in h.sent() {
            h.deliver(&pong(&f.payload));
        }
    }
    h.m.handle_eof(h.now);
    assert_eq!(reconnect_attempt(h.events()), Some((1, ms(100))));
}

#[test]
fn keeps_probing_while_sending_into_a_silent_server() {
    let mut h = Harness::new(config());
    h.open();
    let mut pings = 0;
    for _ in 0..5 {
        h.advance(ms(400));
        let _ = h.m.send(b"fire and forget", h.now);
        pings += h
            .sent()
            .iter()
            .filter(|f| f.kind == FrameType::Ping)
            .count();
    }
    // Sending never paused for an interval, yet receiving did: PINGs went out.
    assert!(pings >= 1);
    assert!(h.m.is_open());
}

/// The server's refusal at accept (docs/protocol.md §3.1): SERVER_FULL before
/// any WELCOME, its reason carrying a hint. Even a v1 client waits the hint
/// plus up to half of it, not the 100 ms of its first retry.
#[test]
fn a_refusal_at_accept_with_a_hint_delays_the_reconnect() {
    for reason in [
        "retry-after-ms=2000 server is at its connection limit",
        "retry-after-ms=2000 too many connections from this address",
    ] {
        let mut h = Harness::new(config());
        h.m.handle_connected(h.now);
        let _ = (h.sent(), h.events());
        h.deliver(&encode_goaway(GoawayCode::ServerFull, reason));
        h.m.handle_eof(h.now);
        let delay = h.events().into_iter().find_map(|e| match e {
            ClientEvent::Reconnecting { delay, .. } => Some(delay),
            _ => None,
        });
        let delay = delay.expect("reconnects");
        assert!(
            delay >= ms(2000) && delay <= ms(3000),
            "{reason}: the hint and its jitter, got {delay:?}"
        );
        // Nothing before the delay is up.
        h.advance(delay - ms(1));
        assert!(!h.m.wants_connect(), "{reason}");
        h.advance(ms(1));
        assert!(h.m.wants_connect(), "{reason}");
    }
}
