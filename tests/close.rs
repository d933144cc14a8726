//! Closing: the peer's half-close gets every reply then a clean EOF
//! (docs/protocol.md §3.4); a server-initiated close puts the GOAWAY before the
//! FIN (§3.3).

mod common;

use std::time::Duration;

use common::{fast_heartbeat_with, fast_timers, pattern, Read1, Server};
use tether::protocol::{encode_frame, encode_message, FrameType, GoawayCode};

/// Sends `n` messages (and a PING every tenth) in one write, half-closes,
/// then expects every reply in order and a clean EOF with nothing after.
fn half_close_after(n: u32, tail: &[u8]) {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let msg = pattern((i as usize * 131) % 4000, i);
        wire.extend_from_slice(&encode_message(&msg, 1500));
        expected.push((FrameType::Data, msg));
        if i % 10 == 0 {
            wire.extend_from_slice(&encode_frame(FrameType::Ping, false, &i.to_be_bytes()));
            expected.push((FrameType::Pong, i.to_be_bytes().to_vec()));
        }
    }
    // One larger multi-frame message at the end.
    let big = pattern(200_000, 99);
    wire.extend_from_slice(&encode_message(&big, 16 * 1024));
    expected.push((FrameType::Data, big));
    wire.extend_from_slice(tail);
    c.send_raw(&wire);
    c.shutdown_write();
    for (i, (kind, payload)) in expected.iter().enumerate() {
        let got = match kind {
            FrameType::Data => c.recv_message(),
            _ => {
                let f = c.recv_frame();
                assert_eq!(f.kind, *kind, "reply {i}: {}", common::describe(&f));
                f.payload.to_vec()
            }
        };
        assert!(&got == payload, "reply {i} ({kind}) differs");
    }
    c.expect_clean_eof();
}

#[test]
fn half_close_after_many_messages_gets_every_reply_then_eof() {
    half_close_after(300, &[]);
}

#[test]
fn half_close_with_a_partial_frame_still_gets_every_complete_reply() {
    // Half a DATA frame at EOF is dropped; everything before it is answered.
    let partial = encode_frame(FrameType::Data, false, &pattern(500, 1));
    half_close_after(50, &partial[..100]);
}

#[test]
fn half_close_with_a_partial_message_still_gets_every_complete_reply() {
    // A message whose last fragment never came is not echoed.
    let first = encode_frame(FrameType::Data, true, &pattern(500, 2));
    half_close_after(50, &first);
}

#[test]
fn half_close_right_after_the_handshake() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    c.shutdown_write();
    c.expect_clean_eof();
}

#[test]
fn half_close_before_the_handshake() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.shutdown_write();
    // No HELLO ever came: the server may answer nothing, or a GOAWAY, but it
    // must end with a clean EOF, not a reset.
    loop {
        match c.read_frame() {
            Ok(Read1::Eof) => break,
            Ok(Read1::Frame(f)) => assert_eq!(f.kind, FrameType::Goaway),
            Err(e) => panic!("expected a clean EOF, got {e}"),
        }
    }
}

#[test]
fn hello_then_half_close_gets_the_welcome_then_eof() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send_hello(0);
    c.ping(b"p");
    c.shutdown_write();
    c.expect_welcome();
    c.expect_pong(b"p");
    c.expect_clean_eof();
}

#[test]
fn server_initiated_close_sends_goaway_before_fin() {
    let server = Server::start(&fast_timers());
    let mut c = server.open(0);
    // Read the GOAWAY frame by itself, then the next read is exactly Ok(0).
    let f = c.recv_frame();
    assert_eq!(f.kind, FrameType::Goaway, "{}", common::describe(&f));
    let g = tether::protocol::Goaway::decode(&f.payload).expect("GOAWAY decodes");
    assert_eq!(g.code, GoawayCode::IdleTimeout);
    match c.read_frame() {
        Ok(Read1::Eof) => {}
        other => panic!("after GOAWAY expected read → Ok(0), got {other:?}"),
    }
    // And it stays at EOF.
    match c.read_frame() {
        Ok(Read1::Eof) => {}
        other => panic!("a second read after EOF gave {other:?}"),
    }
}

#[test]
fn server_lingers_for_the_peer_after_its_goaway() {
    // After GOAWAY + FIN the server keeps reading until our EOF or linger:
    // bytes we send in that window must not earn us a reset before we have
    // read the GOAWAY.
    let server = Server::start(&fast_heartbeat_with(&[("--linger-ms", "3000")]));
    let mut c = server.open(0);
    // Wait past the idle timeout without reading, then write into the
    // half-closed connection.
    std::thread::sleep(Duration::from_millis(600));
    let _ = c.try_send_raw(&encode_frame(FrameType::Ping, false, b"late"));
    let _ = c.try_send_raw(&pattern(32 * 1024, 3));
    c.expect_goaway(GoawayCode::IdleTimeout);
}

#[test]
fn goaway_is_delivered_after_a_large_reply_still_in_flight() {
    // The reply sits in the server's socket buffer (our window is tiny and we
    // do not read) when a frame error makes the server close. If it closed
    // with our unread junk in its receive buffer, the kernel would reset the
    // connection and throw away the unsent reply and the GOAWAY; draining
    // until our EOF (or linger) delivers all of it.
    let server = Server::start(&["--linger-ms", "10000"]);
    let mut c = common::small_window_client(&server);
    let body = pattern(500_000, 21);
    c.send_message(&body, 65535);
    std::thread::sleep(Duration::from_millis(200));
    let mut bad = vec![0u8; 8]; // bad magic
    bad.extend_from_slice(&pattern(100_000, 22));
    let _ = c.try_send_raw(&bad);
    std::thread::sleep(Duration::from_millis(200));
    let _ = c.try_send_raw(&pattern(10_000, 23));
    assert!(c.recv_message() == body, "the in-flight echo differs");
    c.expect_goaway(GoawayCode::ProtocolError);
}
