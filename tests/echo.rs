//! The echo application end to end: empty, tiny and 1 MiB messages,
//! fragmentation both ways, PINGs interleaved between fragments.

mod common;

use common::{pattern, Server};
use tether::protocol::FrameType;

#[test]
fn empty_message_comes_back_as_one_empty_frame() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    c.send_message(b"", 65535);
    let f = c.recv_frame();
    assert_eq!(f.kind, FrameType::Data);
    assert!(!f.more, "an empty message is one frame without MORE");
    assert!(f.payload.is_empty());
}

#[test]
fn one_byte_message_echoes() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    c.send_message(b"x", 65535);
    assert_eq!(c.recv_message(), b"x");
}

#[test]
fn pipelined_messages_come_back_in_order() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    let msgs: Vec<Vec<u8>> = (0..200u32)
        .map(|i| pattern((i as usize * 37) % 3000, i))
        .collect();
    let mut wire = Vec::new();
    for m in &msgs {
        wire.extend_from_slice(&tether::protocol::encode_message(m, 1000));
    }
    c.send_raw(&wire);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(&c.recv_message(), m, "message {i}");
    }
}

#[test]
fn one_mebibyte_fragmented_with_pings_between_fragments() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    c.echo_fragmented_with_pings(1 << 20, 16 * 1024);
}

#[test]
fn replies_are_fragmented_at_the_servers_max_frame() {
    let server = Server::start(&["--max-frame", "1024"]);
    let mut c = server.open(0);
    assert_eq!(c.welcome.expect("welcome").max_frame, 1024);
    // A frame of exactly max_frame is accepted.
    let exact = pattern(1024, 1);
    c.send_message(&exact, 1024);
    assert_eq!(c.recv_message(), exact);

    let msg = pattern(5000, 2);
    c.send_message(&msg, 1024);
    let mut got = Vec::new();
    let mut frames = 0;
    loop {
        let f = c.recv_frame();
        assert_eq!(f.kind, FrameType::Data);
        assert!(f.payload.len() <= 1024, "reply frame above max_frame");
        frames += 1;
        got.extend_from_slice(&f.payload);
        if !f.more {
            break;
        }
    }
    assert_eq!(got, msg);
    assert!(frames >= 5, "5000 bytes need at least 5 frames of 1024");
}

#[test]
fn a_message_sent_in_one_frame_can_come_back_in_several() {
    // The client sends 60 KB in a single frame; the server (max_frame 65535)
    // may reply in one or more frames but the bytes must match.
    let server = Server::start(&[]);
    let mut c = server.open(0);
    let msg = pattern(60_000, 3);
    c.send_message(&msg, 65535);
    assert_eq!(c.recv_message(), msg);
}

#[test]
fn ping_payloads_up_to_64_bytes_come_back_unchanged() {
    let server = Server::start(&[]);
    let mut c = server.open(0);
    for len in [0usize, 1, 8, 63, 64] {
        let p = pattern(len, len as u32);
        c.ping(&p);
        c.expect_pong(&p);
    }
}

#[test]
fn message_of_exactly_max_message_is_accepted() {
    let server = Server::start(&["--max-message", "4096"]);
    let mut c = server.open(0);
    let msg = pattern(4096, 9);
    c.send_message(&msg, 1000);
    assert_eq!(c.recv_message(), msg);
}
