//! The handshake against the real binary: WELCOME fields, heartbeat
//! negotiation (docs/protocol.md §2.2) and a HELLO split across many writes.

mod common;

use std::thread;
use std::time::Duration;

use common::Server;

#[test]
fn welcome_carries_the_negotiated_heartbeat_and_limits() {
    let server = Server::start(&[
        "--heartbeat-ms",
        "2000",
        "--min-heartbeat-ms",
        "1000",
        "--max-heartbeat-ms",
        "5000",
        "--miss",
        "3",
    ]);
    // (requested, negotiated): 0 = server default, then clamped to [min, max].
    let table: &[(u32, u32)] = &[
        (0, 2000),
        (1, 1000),
        (999, 1000),
        (1000, 1000),
        (3000, 3000),
        (5000, 5000),
        (5001, 5000),
        (u32::MAX, 5000),
    ];
    let mut sessions = Vec::new();
    for &(requested, negotiated) in table {
        let mut c = server.connect();
        let w = c.handshake(requested);
        assert_eq!(
            w.heartbeat_ms, negotiated,
            "heartbeat for request {requested}"
        );
        assert_eq!(
            w.idle_timeout_ms,
            negotiated * 3,
            "idle timeout = heartbeat × miss for request {requested}"
        );
        assert_eq!(w.max_frame, 65535, "default max_frame");
        assert_eq!(w.max_message, 1_048_576, "default max_message");
        assert!(!w.resumed, "a fresh session is not RESUMED");
        assert!(!w.lost, "a fresh session has lost nothing");
        sessions.push(w.session);
    }
    let zero = tether::protocol::SessionId::default();
    for (i, s) in sessions.iter().enumerate() {
        assert_ne!(*s, zero, "session id is not all zeroes");
        assert!(
            !sessions[i + 1..].contains(s),
            "session ids are unique: {s} repeats"
        );
    }
}

#[test]
fn welcome_reports_configured_frame_and_message_limits() {
    let server = Server::start(&[
        "--max-frame",
        "1024",
        "--max-message",
        "4096",
        "--heartbeat-ms",
        "700",
        "--min-heartbeat-ms",
        "100",
        "--miss",
        "5",
    ]);
    let w = server.connect().handshake(0);
    assert_eq!(w.max_frame, 1024);
    assert_eq!(w.max_message, 4096);
    assert_eq!(w.heartbeat_ms, 700);
    assert_eq!(w.idle_timeout_ms, 3500);
}

#[test]
fn default_heartbeat_is_thirty_seconds() {
    let server = Server::start(&["--app", "echo"]);
    let w = server.connect().handshake(0);
    assert_eq!(w.heartbeat_ms, 30_000);
    assert_eq!(w.idle_timeout_ms, 90_000);
    // Below the default floor of 1000 ms and above the default ceiling.
    assert_eq!(server.connect().handshake(10).heartbeat_ms, 1000);
    assert_eq!(server.connect().handshake(700_000).heartbeat_ms, 600_000);
}

#[test]
fn hello_split_into_single_bytes_is_reassembled() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let hello = tether::protocol::Hello {
        version: tether::protocol::PROTOCOL_V1,
        heartbeat_ms: 5000,
        token: bytes::Bytes::new(),
        resume: None,
    }
    .encode_frame();
    for b in hello.iter() {
        c.send_raw(&[*b]);
        thread::sleep(Duration::from_millis(2));
    }
    let w = c.expect_welcome();
    assert_eq!(w.heartbeat_ms, 5000);
    // The connection is usable afterwards.
    c.ping(b"after");
    c.expect_pong(b"after");
}

#[test]
fn many_handshakes_in_a_row_on_one_server() {
    let server = Server::start(&[]);
    for i in 0..50u32 {
        let mut c = server.connect();
        let w = c.handshake(1000 + i);
        assert_eq!(w.heartbeat_ms, 1000 + i);
        c.ping(&i.to_be_bytes());
        c.expect_pong(&i.to_be_bytes());
    }
}
