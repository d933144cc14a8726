//! Every GOAWAY code the server sends in this version (docs/protocol.md §2.4),
//! each checked with the GOAWAY arriving before a clean EOF.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{
    fast_timers, hello_payload, pattern, raw_frame, small_window_client, Read1, Server, TempFile,
};
use tether::protocol::{encode_frame, FrameType, GoawayCode};

/// What to send before the offending bytes.
#[derive(Clone, Copy, Debug)]
enum Before {
    /// Nothing: the offending bytes are the first on the connection.
    Nothing,
    /// A completed handshake.
    Handshake,
}

fn expect_code_after(server: &Server, before: Before, wire: &[u8], code: GoawayCode, what: &str) {
    let mut c = server.connect();
    if let Before::Handshake = before {
        c.handshake(0);
    }
    c.send_raw(wire);
    let f = c.recv_frame();
    assert_eq!(
        f.kind,
        FrameType::Goaway,
        "{what}: expected GOAWAY {code}, got {} {}",
        f.kind,
        common::describe(&f)
    );
    let g = tether::protocol::Goaway::decode(&f.payload).expect("GOAWAY decodes");
    assert_eq!(g.code, code, "{what}: reason {:?}", g.reason);
    match c.read_frame() {
        Ok(Read1::Eof) => {}
        other => panic!("{what}: expected a clean EOF after the GOAWAY, got {other:?}"),
    }
}

#[test]
fn protocol_errors() {
    let server = Server::start(&[]);
    let hello = encode_frame(FrameType::Hello, false, &hello_payload(1, 0, b""));
    let mut bad_hello_trailing = hello_payload(1, 0, b"");
    bad_hello_trailing.push(0);
    let mut bad_hello_token_short = hello_payload(1, 0, b"");
    bad_hello_token_short[6] = 3; // token_len 3, no token bytes
    let table: Vec<(&str, Before, Vec<u8>)> = vec![
        (
            "DATA before HELLO",
            Before::Nothing,
            encode_frame(FrameType::Data, false, b"early").to_vec(),
        ),
        (
            "PING before HELLO",
            Before::Nothing,
            encode_frame(FrameType::Ping, false, b"").to_vec(),
        ),
        ("second HELLO", Before::Handshake, hello.to_vec()),
        (
            "unknown type 0x07",
            Before::Handshake,
            raw_frame(0x07, b"what"),
        ),
        (
            "unknown type 0x7f before HELLO",
            Before::Nothing,
            raw_frame(0x7f, b""),
        ),
        ("MORE on PING", Before::Handshake, raw_frame(0x83, b"")),
        ("MORE on HELLO", Before::Nothing, {
            raw_frame(0x81, &hello_payload(1, 0, b""))
        }),
        (
            "PING with 65 bytes",
            Before::Handshake,
            raw_frame(0x03, &[0u8; 65]),
        ),
        (
            "bad magic after handshake",
            Before::Handshake,
            vec![0x00, 0x05, 0, 0, 0, 0, 0, 0],
        ),
        (
            "bad magic as first byte",
            Before::Nothing,
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "HELLO with a trailing byte",
            Before::Nothing,
            raw_frame(0x01, &bad_hello_trailing),
        ),
        (
            "HELLO with a short token",
            Before::Nothing,
            raw_frame(0x01, &bad_hello_token_short),
        ),
        (
            "HELLO with an empty payload",
            Before::Nothing,
            raw_frame(0x01, b""),
        ),
    ];
    for (what, before, wire) in &table {
        expect_code_after(&server, *before, wire, GoawayCode::ProtocolError, what);
    }
    // The server is still fine afterwards.
    let mut c = server.open(0);
    c.ping(b"ok");
    c.expect_pong(b"ok");
}

#[test]
fn bad_checksum() {
    let server = Server::start(&[]);
    let mut corrupt_payload = encode_frame(FrameType::Data, false, b"hello").to_vec();
    corrupt_payload[10] ^= 0x01;
    let mut corrupt_crc = encode_frame(FrameType::Ping, false, b"").to_vec();
    corrupt_crc[7] ^= 0x80;
    // A corrupted type fails the CRC like a corrupted payload (docs/protocol.md §1).
    let mut corrupt_type = encode_frame(FrameType::Ping, false, b"abc").to_vec();
    corrupt_type[1] = 0x07;
    let mut corrupt_hello =
        encode_frame(FrameType::Hello, false, &hello_payload(1, 0, b"")).to_vec();
    corrupt_hello[9] ^= 0xff;
    let table: Vec<(&str, Before, Vec<u8>)> = vec![
        ("corrupted DATA payload", Before::Handshake, corrupt_payload),
        ("corrupted CRC", Before::Handshake, corrupt_crc),
        ("corrupted type byte", Before::Handshake, corrupt_type),
        ("corrupted HELLO", Before::Nothing, corrupt_hello),
    ];
    for (what, before, wire) in &table {
        expect_code_after(&server, *before, wire, GoawayCode::BadChecksum, what);
    }
}

#[test]
fn frame_too_large() {
    let server = Server::start(&["--max-frame", "1024"]);
    let big = raw_frame(0x05, &pattern(1025, 1));
    expect_code_after(
        &server,
        Before::Handshake,
        &big,
        GoawayCode::FrameTooLarge,
        "DATA of 1025 bytes",
    );
    // The header alone is enough for the server to decide.
    expect_code_after(
        &server,
        Before::Handshake,
        &big[..8],
        GoawayCode::FrameTooLarge,
        "header announcing 1025 bytes",
    );
    expect_code_after(
        &server,
        Before::Nothing,
        &raw_frame(0x01, &[1u8; 2000]),
        GoawayCode::FrameTooLarge,
        "oversized HELLO",
    );
    let huge = raw_frame(0x05, &pattern(65535, 2));
    expect_code_after(
        &server,
        Before::Handshake,
        &huge,
        GoawayCode::FrameTooLarge,
        "DATA of 65535 bytes",
    );
}

#[test]
fn message_too_large() {
    let server = Server::start(&["--max-message", "4096"]);
    // Fragmented past the limit.
    let mut wire = Vec::new();
    let msg = pattern(4097, 3);
    wire.extend_from_slice(&tether::protocol::encode_message(&msg, 1000));
    expect_code_after(
        &server,
        Before::Handshake,
        &wire,
        GoawayCode::MessageTooLarge,
        "4097 bytes in 1000-byte fragments",
    );
    // One frame past the limit (below max_frame).
    expect_code_after(
        &server,
        Before::Handshake,
        &encode_frame(FrameType::Data, false, &msg),
        GoawayCode::MessageTooLarge,
        "4097 bytes in one frame",
    );
    // Fragments that never end: the limit holds before the last fragment.
    let mut endless = Vec::new();
    for i in 0..10 {
        endless.extend_from_slice(&encode_frame(FrameType::Data, true, &pattern(1000, i)));
    }
    expect_code_after(
        &server,
        Before::Handshake,
        &endless,
        GoawayCode::MessageTooLarge,
        "10 × 1000 bytes with MORE",
    );
}

#[test]
fn unsupported_version() {
    let server = Server::start(&[]);
    for version in [0u8, 3, 255] {
        expect_code_after(
            &server,
            Before::Nothing,
            &encode_frame(FrameType::Hello, false, &hello_payload(version, 0, b"")),
            GoawayCode::UnsupportedVersion,
            &format!("HELLO version {version}"),
        );
    }
}

#[test]
fn unauthorized_and_authorized() {
    let tokens = TempFile::new("tokens", b"alpha\nbeta-token\n");
    let server = Server::start(&["--auth-token-file", tokens.arg()]);
    for (what, token) in [
        ("no token", &b""[..]),
        ("wrong token", b"gamma"),
        ("prefix of a token", b"alph"),
        ("token with newline", b"alpha\n"),
        ("two tokens glued", b"alphabeta-token"),
    ] {
        let mut c = server.connect();
        c.send_hello_token(0, token);
        let f = c.recv_frame();
        assert_eq!(
            f.kind,
            FrameType::Goaway,
            "{what}: {}",
            common::describe(&f)
        );
        let g = tether::protocol::Goaway::decode(&f.payload).expect("GOAWAY decodes");
        assert_eq!(g.code, GoawayCode::Unauthorized, "{what}");
        c.expect_clean_eof();
    }
    for token in [&b"alpha"[..], b"beta-token"] {
        let mut c = server.connect();
        c.handshake_token(0, token);
        c.send_message(b"authorized", 65535);
        assert_eq!(c.recv_message(), b"authorized");
    }
}

#[test]
fn handshake_timeout() {
    let server = Server::start(&fast_timers());
    // Nothing at all.
    server.connect().expect_goaway(GoawayCode::HandshakeTimeout);
    // Half a HELLO is not a HELLO.
    let mut c = server.connect();
    let hello = encode_frame(FrameType::Hello, false, &hello_payload(1, 0, b""));
    c.send_raw(&hello[..5]);
    c.expect_goaway(GoawayCode::HandshakeTimeout);
}

#[test]
fn idle_timeout() {
    let server = Server::start(&fast_timers());
    let mut c = server.open(0);
    let w = c.welcome.expect("welcome");
    assert_eq!((w.heartbeat_ms, w.idle_timeout_ms), (100, 200));
    c.expect_goaway(GoawayCode::IdleTimeout);
}

#[test]
fn server_full() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut a = server.open(0);
    let mut b = server.open(0);
    // The newcomer gets SERVER_FULL before sending anything.
    for _ in 0..3 {
        server.connect().expect_goaway(GoawayCode::ServerFull);
    }
    // The two admitted connections still work.
    a.ping(b"a");
    a.expect_pong(b"a");
    b.ping(b"b");
    b.expect_pong(b"b");
    // Once one leaves, a slot frees up (the server reaps asynchronously).
    a.shutdown_write();
    a.expect_clean_eof();
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = server.connect();
        c.send_hello(0);
        let f = c.recv_frame();
        if f.kind == FrameType::Welcome {
            c.ping(b"c");
            c.expect_pong(b"c");
            break;
        }
        let g = tether::protocol::Goaway::decode(&f.payload).expect("GOAWAY");
        assert_eq!(g.code, GoawayCode::ServerFull);
        assert!(
            Instant::now() < deadline,
            "the slot of a closed connection was not freed within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shutting_down_on_sigterm_and_sigint() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&[]);
        let mut c = server.open(0);
        server.signal(sig);
        c.expect_goaway(GoawayCode::ShuttingDown);
        drop(c);
        server.expect_clean_exit(&format!("signal {sig}"));
    }
}

/// Sends echo messages without reading (stopping early if the server stops
/// reading or closes), then reads everything: whole echoed messages, then
/// GOAWAY SLOW_CONSUMER, then a clean EOF.
fn slow_consumer_case(pause: Option<Duration>) {
    let server = Server::start(&["--max-output", "65536", "--linger-ms", "5000"]);
    let mut c = small_window_client(&server);
    let body = pattern(60_000, 5);
    let msg = tether::protocol::encode_message(&body, 65535);
    let mut sent = 0usize;
    while sent < 32 << 20 {
        if c.stream.write_all(&msg).is_err() {
            break;
        }
        sent += msg.len();
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
    }
    assert!(sent >= msg.len(), "not even one message could be sent");
    // Every frame before the GOAWAY must be a whole, intact echo: the server
    // drops only frames it has not started to send.
    let mut echoed = 0usize;
    let mut partial = Vec::new();
    loop {
        let f = c.recv_frame();
        match f.kind {
            FrameType::Data => {
                partial.extend_from_slice(&f.payload);
                if !f.more {
                    assert!(partial == body, "echo {echoed} is corrupted");
                    partial.clear();
                    echoed += 1;
                }
            }
            FrameType::Goaway => {
                let g = tether::protocol::Goaway::decode(&f.payload).expect("GOAWAY decodes");
                assert_eq!(g.code, GoawayCode::SlowConsumer, "reason {:?}", g.reason);
                c.expect_clean_eof();
                eprintln!(
                    "slow consumer (pause {pause:?}): sent {sent} bytes, {echoed} whole echoes \
                     (+{} bytes of a fragmented one) before GOAWAY {:?}",
                    partial.len(),
                    g.reason
                );
                return;
            }
            other => panic!("unexpected {other} {}", common::describe(&f)),
        }
    }
}

#[test]
fn slow_consumer() {
    slow_consumer_case(None);
}

#[test]
fn slow_consumer_with_bytes_in_flight() {
    // Paced so the server writes echoes between reads: some are in flight
    // (in our small window) when the limit trips.
    slow_consumer_case(Some(Duration::from_millis(2)));
}

#[test]
fn goaway_arrives_even_when_the_peer_keeps_sending_junk() {
    // After a frame error the server drains what the peer sends (it does not
    // close with unread bytes, which would reset and destroy the GOAWAY).
    let server = Server::start(&["--linger-ms", "5000"]);
    let mut c = server.open(0);
    let mut wire = vec![0x00u8; 8]; // bad magic
    wire.extend_from_slice(&pattern(256 * 1024, 11));
    let _ = c.try_send_raw(&wire);
    // Keep sending a little more after the server must have seen the error.
    std::thread::sleep(Duration::from_millis(100));
    let _ = c.try_send_raw(&pattern(64 * 1024, 12));
    c.expect_goaway(GoawayCode::ProtocolError);
}
