//! The connection state machine on a fake clock: time is a tick number.

use super::*;
use crate::config::Config;
use crate::protocol::{Frame, FrameDecoder};

const TICK_MS: u32 = 100;

fn config() -> Config {
    Config {
        tick_ms: TICK_MS,
        heartbeat_ms: 1_000,
        min_heartbeat_ms: 100,
        miss: 3,
        handshake_timeout_ms: 500,
        linger_ms: 300,
        max_frame: 1024,
        max_message: 4096,
        max_output: 8192,
        ..Config::default()
    }
}

/// A connection plus a fake clock, accepting every HELLO the way a reactor would.
struct Harness {
    limits: ConnLimits,
    conn: Conn,
    now: Tick,
}

impl Harness {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: Config) -> Self {
        let limits = ConnLimits::from_config(&config);
        let conn = Conn::new(0, &limits);
        Harness {
            limits,
            conn,
            now: 0,
        }
    }

    fn open(heartbeat_ms: u32) -> Self {
        let mut h = Harness::new();
        h.feed(&hello(heartbeat_ms));
        assert_eq!(h.conn.state(), State::Open);
        let frames = h.take_output();
        assert_eq!(frames[0].kind, FrameType::Welcome);
        h
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<ConnEvent> {
        let mut input = bytes;
        let mut events = Vec::new();
        while let Some(event) = self.conn.handle_bytes(&mut input, self.now, &self.limits) {
            if let ConnEvent::Hello(_) = &event {
                assert!(self
                    .conn
                    .accept(SessionId([1; 16]), false, false, self.now, &self.limits));
            }
            events.push(event);
        }
        assert!(input.is_empty());
        events
    }

    /// Everything queued, decoded, as if the socket took all of it.
    fn take_output(&mut self) -> Vec<Frame> {
        let bytes: Vec<u8> = self.conn.output().iter().flat_map(|b| b.to_vec()).collect();
        self.conn.handle_written(bytes.len(), &self.limits);
        assert_eq!(self.conn.output_len(), 0);
        let mut d = FrameDecoder::new(65535);
        let mut input: &[u8] = &bytes;
        let mut frames = Vec::new();
        while let Some(f) = d.next_frame(&mut input).expect("server output is valid") {
            frames.push(f);
        }
        assert_eq!(d.buffered(), 0, "output ends on a frame boundary");
        frames
    }

    /// Jumps the clock to the connection's deadline and fires it, as the wheel would.
    fn fire_deadline(&mut self) {
        self.now = self.now.max(self.conn.deadline(&self.limits));
        self.conn.handle_timeout(self.now, &self.limits);
    }

    fn goaway_code(&mut self) -> Option<GoawayCode> {
        self.take_output()
            .into_iter()
            .find(|f| f.kind == FrameType::Goaway)
            .and_then(|f| Goaway::decode(&f.payload).ok())
            .map(|g| g.code)
    }
}

fn hello(heartbeat_ms: u32) -> Bytes {
    Hello {
        version: crate::protocol::PROTOCOL_V1,
        heartbeat_ms,
        token: Bytes::new(),
        resume: None,
    }
    .encode_frame()
}

fn ping(payload: &[u8]) -> Bytes {
    encode_frame(FrameType::Ping, false, payload)
}

#[test]
fn handshake_times_out_not_before_its_deadline() {
    let mut h = Harness::new();
    // 500 ms at 100 ms ticks = 5 ticks, plus one so it never fires early.
    assert_eq!(h.conn.deadline(&h.limits), 6);
    h.now = 5;
    h.conn.handle_timeout(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Handshake);
    h.fire_deadline();
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::HandshakeTimeout));
}

#[test]
fn welcome_carries_the_negotiated_values() {
    let mut h = Harness::new();
    h.feed(&hello(0));
    let welcome = h.take_output().remove(0);
    let w = Welcome::decode(&welcome.payload).expect("welcome");
    assert_eq!((w.heartbeat_ms, w.idle_timeout_ms), (1_000, 3_000));
    assert_eq!((w.max_frame, w.max_message), (1024, 4096));
    assert_eq!(w.session, SessionId([1; 16]));
}

#[test]
fn idle_peer_is_evicted_at_the_idle_timeout_within_one_tick() {
    let mut h = Harness::open(1_000); // idle = 3 s = 30 ticks
    h.now = 10;
    h.feed(&ping(b""));
    h.take_output();
    // Silent from tick 10: never evicted before 10 + 30 ticks, at most one tick after.
    for t in 11..40 {
        h.now = t;
        h.conn.handle_timeout(t, &h.limits);
        assert_eq!(h.conn.state(), State::Open, "evicted early at tick {t}");
    }
    h.fire_deadline();
    assert!(h.now <= 41, "evicted late at tick {}", h.now);
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::IdleTimeout));
}

#[test]
fn heartbeating_peer_is_never_evicted_over_twenty_idle_timeouts() {
    let mut h = Harness::open(1_000); // heartbeat every 10 ticks, idle 30 ticks
    let end = 20 * 30;
    let mut next_ping = 10;
    while h.now < end {
        // Jump to whichever comes first: our ping or the connection's deadline.
        h.now = next_ping.min(h.conn.deadline(&h.limits));
        if h.now == next_ping {
            h.feed(&ping(b"hb"));
            let pongs = h.take_output();
            assert_eq!(pongs.len(), 1);
            assert_eq!(
                (pongs[0].kind, &pongs[0].payload[..]),
                (FrameType::Pong, &b"hb"[..])
            );
            next_ping += 10;
        } else {
            h.conn.handle_timeout(h.now, &h.limits);
        }
        assert_eq!(h.conn.state(), State::Open, "evicted at tick {}", h.now);
    }
}

#[test]
fn fragments_are_reassembled_with_pings_between_them() {
    let mut h = Harness::open(1_000);
    let mut stream = Vec::new();
    stream.extend_from_slice(&encode_frame(FrameType::Data, true, b"hel"));
    stream.extend_from_slice(&ping(b"x"));
    stream.extend_from_slice(&encode_frame(FrameType::Data, true, b"lo "));
    stream.extend_from_slice(&encode_frame(FrameType::Data, false, b"world"));
    stream.extend_from_slice(&encode_frame(FrameType::Data, false, b""));
    let events = h.feed(&stream);
    assert_eq!(
        events,
        vec![
            ConnEvent::Message(Bytes::from_static(b"hello world")),
            ConnEvent::Message(Bytes::new())
        ]
    );
    let out = h.take_output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, FrameType::Pong);
    assert_eq!(h.conn.buffered_input(), 0);
}

#[test]
fn a_message_over_max_message_is_refused() {
    let mut h = Harness::open(1_000);
    let chunk = [7u8; 1000];
    let mut stream = Vec::new();
    for _ in 0..4 {
        stream.extend_from_slice(&encode_frame(FrameType::Data, true, &chunk));
    }
    assert!(h.feed(&stream).is_empty());
    assert_eq!(h.conn.state(), State::Open); // 4000 ≤ 4096
    h.feed(&encode_frame(FrameType::Data, false, &chunk[..97]));
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::MessageTooLarge));
    assert_eq!(h.conn.buffered_input(), 0, "the partial message is freed");
}

#[test]
fn frames_before_hello_and_second_hello_are_protocol_errors() {
    let mut h = Harness::new();
    h.feed(&ping(b""));
    assert_eq!(h.goaway_code(), Some(GoawayCode::ProtocolError));
    let mut h = Harness::open(1_000);
    h.feed(&hello(1_000));
    assert_eq!(h.goaway_code(), Some(GoawayCode::ProtocolError));
}

#[test]
fn wrong_token_is_unauthorized_and_right_token_opens() {
    let config = Config {
        auth_tokens: vec![b"sesame".to_vec()],
        ..config()
    };
    let mut h = Harness::with(config.clone());
    h.feed(&hello(0));
    assert_eq!(h.goaway_code(), Some(GoawayCode::Unauthorized));
    let mut h = Harness::with(config);
    let with_token = Hello {
        version: crate::protocol::PROTOCOL_V1,
        heartbeat_ms: 0,
        token: Bytes::from_static(b"sesame"),
        resume: None,
    };
    h.feed(&with_token.encode_frame());
    assert_eq!(h.conn.state(), State::Open);
}

#[test]
fn peer_eof_flushes_every_reply_then_shuts_write_and_closes() {
    let mut h = Harness::open(1_000);
    let mut stream = Vec::new();
    for i in 0..5u8 {
        stream.extend_from_slice(&encode_frame(FrameType::Data, false, &[i]));
    }
    stream.extend_from_slice(&ping(b"p"));
    stream.extend_from_slice(&ping(b"partial")[..4]);
    for event in h.feed(&stream) {
        if let ConnEvent::Message(m) = event {
            h.conn.send_message(&m, h.now, &h.limits); // echo
        }
    }
    h.conn.handle_eof(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Draining);
    assert!(h.conn.was_truncated_at_eof());
    assert!(!h.conn.wants_read());
    assert!(!h.conn.wants_shutdown_write(), "replies first");
    assert_eq!(h.take_output().len(), 6, "five echoes and a pong");
    assert!(h.conn.wants_shutdown_write());
    h.conn.handle_write_shut();
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.close_reason(), Some(CloseReason::PeerEof));
}

#[test]
fn server_close_sends_goaway_before_fin_then_waits_for_peer_eof() {
    let mut h = Harness::open(1_000);
    h.conn.shutdown(h.now, &h.limits);
    assert!(!h.conn.wants_shutdown_write(), "GOAWAY first");
    assert_eq!(h.goaway_code(), Some(GoawayCode::ShuttingDown));
    assert!(h.conn.wants_shutdown_write());
    h.conn.handle_write_shut();
    assert_eq!(h.conn.state(), State::Closing);
    // Input after the GOAWAY is drained and discarded.
    assert!(h
        .feed(&encode_frame(FrameType::Data, false, b"late"))
        .is_empty());
    h.conn.handle_eof(h.now, &h.limits);
    assert!(h.conn.is_closed());
    assert_eq!(
        h.conn.close_reason(),
        Some(CloseReason::Goaway(GoawayCode::ShuttingDown))
    );
}

#[test]
fn linger_bounds_a_close_the_peer_never_answers() {
    let mut h = Harness::open(1_000);
    h.now = 50;
    h.conn.close(GoawayCode::Normal, "bye", h.now, &h.limits);
    h.take_output();
    h.conn.handle_write_shut();
    // linger 300 ms = 3 ticks (+1): not before, then closed.
    h.conn.handle_timeout(53, &h.limits);
    assert_eq!(h.conn.state(), State::Closing);
    h.fire_deadline();
    assert_eq!(h.now, 54);
    assert!(h.conn.is_closed());
}

#[test]
fn slow_consumer_keeps_the_frame_in_flight_and_drops_the_rest() {
    let mut h = Harness::open(1_000);
    let big = vec![9u8; 3000];
    h.conn.send_message(&big, h.now, &h.limits);
    // The socket took 100 bytes of the first message: it must be finished.
    h.conn.handle_written(100, &h.limits);
    h.conn.send_message(&big, h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Open); // 5948 bytes queued
    h.conn.send_message(&big, h.now, &h.limits); // passes max_output 8192
    assert_eq!(
        h.conn.state(),
        State::Open,
        "judged only after the socket took its share"
    );
    assert!(h.conn.enforce_output_limit(h.now, &h.limits));
    assert_eq!(h.conn.state(), State::Closing);
    let rest: Vec<u8> = h.conn.output().iter().flat_map(|b| b.to_vec()).collect();
    // What is left is the rest of the first message (3 frames, 3024 bytes) then GOAWAY.
    let first_len = encode_message(&big, 1024).len();
    assert_eq!(
        rest.len() - (first_len - 100),
        encode_goaway(GoawayCode::SlowConsumer, "output buffer limit exceeded").len()
    );
    let goaway =
        crate::protocol::goaway::decode_goaway_frame(&rest[first_len - 100..]).expect("goaway");
    assert_eq!(goaway.code, GoawayCode::SlowConsumer);
}

#[test]
fn peer_goaway_closes_without_answering_goaway() {
    let mut h = Harness::open(1_000);
    let events = h.feed(&encode_goaway(GoawayCode::Normal, "done"));
    assert!(matches!(&events[0], ConnEvent::PeerGoaway(g) if g.code == GoawayCode::Normal));
    assert_eq!(h.conn.state(), State::Closing);
    assert!(h.take_output().is_empty());
    assert!(h.conn.wants_shutdown_write());
}

#[test]
fn reset_closes_at_once() {
    let mut h = Harness::open(1_000);
    h.conn.handle_reset();
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.close_reason(), Some(CloseReason::Reset));
}

#[test]
fn an_idle_open_connection_holds_no_heap_buffers() {
    let mut h = Harness::open(1_000);
    h.feed(&ping(b"abc"));
    h.take_output();
    assert_eq!(h.conn.buffered_input(), 0);
    assert_eq!(h.conn.output().capacity(), 0);
    assert!(
        std::mem::size_of::<Conn>() <= 200,
        "Conn is {} bytes",
        std::mem::size_of::<Conn>()
    );
}

fn soft_config() -> Config {
    Config {
        soft_output: 4000,
        soft_output_ms: 500, // 5 ticks
        max_output: 8192,
        ..config()
    }
}

#[test]
fn output_under_the_soft_limit_is_never_evicted() {
    let mut h = Harness::with(soft_config());
    h.feed(&hello(1_000));
    h.take_output();
    h.conn.send_message(&[1; 3000], h.now, &h.limits);
    h.now = 25;
    h.feed(&ping(b""));
    h.conn.handle_timeout(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Open);
}

#[test]
fn over_the_soft_limit_within_the_grace_period_is_kept_and_recovers() {
    let mut h = Harness::with(soft_config());
    h.feed(&hello(1_000));
    h.take_output();
    h.now = 10;
    h.conn.send_message(&[1; 5000], h.now, &h.limits);
    assert_eq!(
        h.conn.deadline(&h.limits),
        16,
        "grace of 5 ticks, never early"
    );
    h.now = 15;
    h.conn.handle_timeout(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Open);
    // The peer reads: back under the soft limit, the grace clock stops.
    h.conn.handle_written(2000, &h.limits);
    h.now = 100;
    h.feed(&ping(b""));
    h.conn.handle_timeout(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Open);
}

#[test]
fn over_the_soft_limit_past_the_grace_period_is_a_slow_consumer() {
    let mut h = Harness::with(soft_config());
    h.feed(&hello(1_000));
    h.take_output();
    h.now = 10;
    h.conn.send_message(&[1; 5000], h.now, &h.limits);
    h.fire_deadline();
    assert_eq!(h.now, 16);
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::SlowConsumer));
}

#[test]
fn a_replay_raise_lifts_both_limits_until_the_output_drains() {
    let mut h = Harness::with(soft_config());
    h.feed(&hello(1_000));
    h.take_output();
    // A 9000-byte replay behind a raise of its size: neither limit trips.
    h.conn.raise_output_limits(9_000);
    h.conn.send_message(&[1; 9000], h.now, &h.limits);
    assert!(!h.conn.enforce_output_limit(h.now, &h.limits));
    h.now += 8; // past the 5-tick grace, before the idle timeout
    h.conn.handle_timeout(h.now, &h.limits);
    assert_eq!(h.conn.state(), State::Open, "soft limit raised too");
    // Still above max_output after a partial write: the raise stays.
    h.conn.handle_written(500, &h.limits);
    assert_eq!(h.conn.output_raise(), 9_000);
    // At or below max_output: the raise is gone, the normal limits are back,
    // and the soft limit's grace starts at the next check (7500 > 4000).
    h.conn.handle_written(1_000, &h.limits);
    assert_eq!(h.conn.output_raise(), 0);
    assert!(!h.conn.enforce_output_limit(h.now, &h.limits));
    assert_eq!(h.conn.deadline(&h.limits), h.now + 6, "grace of 5 ticks");
    h.conn.send_message(&[1; 2000], h.now, &h.limits);
    assert!(h.conn.enforce_output_limit(h.now, &h.limits));
    assert_eq!(
        h.conn.close_reason(),
        Some(CloseReason::Goaway(GoawayCode::SlowConsumer))
    );
}

#[test]
fn over_the_hard_limit_after_a_write_is_a_slow_consumer() {
    let mut h = Harness::with(soft_config());
    h.feed(&hello(1_000));
    h.take_output();
    h.conn.send_message(&[1; 9000], h.now, &h.limits);
    assert!(h.conn.enforce_output_limit(h.now, &h.limits));
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::SlowConsumer));
}

#[test]
fn frames_above_the_rate_limit_are_refused() {
    let config = Config {
        rate_limit: 10, // one frame per 100 ms tick
        rate_burst: 3,
        ..config()
    };
    let mut h = Harness::with(config);
    h.feed(&hello(1_000)); // the HELLO takes one token
    h.take_output();
    h.feed(&ping(b""));
    h.feed(&ping(b""));
    assert_eq!(h.conn.state(), State::Open);
    h.now = 1; // one more token
    h.feed(&ping(b""));
    assert_eq!(h.conn.state(), State::Open);
    h.feed(&ping(b""));
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::RateLimited));
}

#[test]
fn frame_counts_are_collected_once() {
    let mut h = Harness::open(1_000);
    h.conn.take_counts();
    h.feed(&ping(b"a"));
    h.feed(&encode_frame(FrameType::Data, false, b"x"));
    let counts = h.conn.take_counts();
    assert_eq!(
        (counts.frames_in, counts.pings_in, counts.frames_out),
        (2, 1, 1)
    );
    assert_eq!(h.conn.take_counts(), FrameCounts::default());
}

#[test]
fn a_frame_trickled_too_slowly_is_cut_off_by_the_frame_timeout() {
    let config = Config {
        frame_timeout_ms: 1_000, // 10 ticks
        heartbeat_ms: 600_000,
        max_heartbeat_ms: 600_000,
        ..config()
    };
    let mut h = Harness::with(config);
    h.feed(&hello(600_000));
    h.take_output();
    h.now = 100;
    let frame = encode_frame(FrameType::Data, false, b"slowly");
    // One byte a tick: the frame needs 14 ticks, it has 10.
    for (i, byte) in frame.iter().enumerate().take(10) {
        h.now = 100 + i as Tick;
        h.feed(&[*byte]);
        h.conn.handle_timeout(h.now, &h.limits);
        assert_eq!(h.conn.state(), State::Open, "byte {i}");
    }
    assert_eq!(
        h.conn.deadline(&h.limits),
        111,
        "10 ticks after the first byte, never early"
    );
    h.fire_deadline();
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.goaway_code(), Some(GoawayCode::IdleTimeout));
}

#[test]
fn the_frame_clock_restarts_with_each_frame() {
    let config = Config {
        frame_timeout_ms: 1_000,
        ..config()
    };
    let mut h = Harness::with(config);
    h.feed(&hello(1_000));
    h.take_output();
    let a = encode_frame(FrameType::Ping, false, b"a");
    let b = encode_frame(FrameType::Ping, false, b"b");
    h.now = 5;
    h.feed(&a[..4]);
    assert_eq!(h.conn.deadline(&h.limits), 16);
    // The first frame completes and the next begins in the same read, 8 ticks later.
    h.now = 13;
    let mut chunk = a[4..].to_vec();
    chunk.extend_from_slice(&b[..3]);
    h.feed(&chunk);
    assert_eq!(h.conn.deadline(&h.limits), 24);
    h.now = 20;
    h.feed(&b[3..]);
    assert_eq!(
        h.conn.deadline(&h.limits),
        20 + 30 + 1,
        "no partial frame: the idle deadline"
    );
}

#[test]
fn data_since_the_last_frame_received_is_tracked() {
    let mut h = Harness::open(1_000);
    assert!(
        !h.conn.has_data_since_rx(),
        "WELCOME is not application data"
    );
    h.conn.send_message(b"delivery", h.now, &h.limits);
    assert!(h.conn.has_data_since_rx());
    h.feed(&ping(b""));
    assert!(!h.conn.has_data_since_rx(), "the peer spoke after it");
    h.take_output();
    assert!(
        !h.conn.has_data_since_rx(),
        "a PONG is not application data"
    );
}
