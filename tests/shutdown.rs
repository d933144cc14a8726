//! Graceful stop (docs/protocol.md §3.6): SIGTERM sends GOAWAY SHUTTING_DOWN to
//! every connection and exits 0 once all are closed; a second signal exits
//! at once.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server};
use tether::protocol::GoawayCode;

#[test]
fn sigterm_with_100_connections_sends_goaway_to_each_and_exits_0() {
    let mut server = Server::start(&[]);
    let mut clients: Vec<Client> = (0..100).map(|_| server.open(0)).collect();
    // A few in the middle of something: one before HELLO, one mid-message.
    let mut fresh = server.connect();
    clients[0].send_raw(&tether::protocol::encode_frame(
        tether::protocol::FrameType::Data,
        true,
        b"unfinished",
    ));
    // Make sure every connection is fully registered before the signal.
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        c.ping(&(i as u32).to_be_bytes());
        c.expect_pong(&(i as u32).to_be_bytes());
    }
    server.signal(libc::SIGTERM);
    for (i, c) in clients.iter_mut().enumerate() {
        let g = c.expect_goaway(GoawayCode::ShuttingDown);
        assert_eq!(g.code, GoawayCode::ShuttingDown, "client {i}");
    }
    fresh.expect_goaway(GoawayCode::ShuttingDown);
    drop(fresh);
    drop(clients);
    server.expect_clean_exit("SIGTERM with every peer gone");
}

#[test]
fn sigterm_exits_0_after_linger_when_a_peer_never_closes() {
    let mut server = Server::start(&["--linger-ms", "500"]);
    let mut c = server.open(0);
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    // Read the GOAWAY but keep the socket open: the server must give up on
    // us after its linger and still exit 0.
    let f = c.recv_frame();
    assert_eq!(f.kind, tether::protocol::FrameType::Goaway);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after SIGTERM with linger 500 ms");
    assert_eq!(status.code(), Some(0));
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "exited after {:?}, before its 500 ms linger ran out",
        start.elapsed()
    );
    drop(c);
}

#[test]
fn second_signal_exits_at_once() {
    let mut server = Server::start(&["--linger-ms", "60000"]);
    let mut c = server.open(0);
    server.signal(libc::SIGTERM);
    // Our GOAWAY proves the first signal was handled.
    let f = c.recv_frame();
    assert_eq!(f.kind, tether::protocol::FrameType::Goaway);
    // With a 60 s linger and a peer that never closes, it is still waiting.
    assert!(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        "server exited right after the first SIGTERM although a peer is open and linger is 60 s"
    );
    let start = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(3));
    assert!(
        status.is_some(),
        "server still running 3 s after the second SIGTERM"
    );
    eprintln!(
        "second SIGTERM: exited after {:?} with {:?}",
        start.elapsed(),
        status
    );
    drop(c);
}

#[test]
fn sigint_then_sigterm_also_exits_at_once() {
    let mut server = Server::start(&["--linger-ms", "60000"]);
    let mut c = server.open(0);
    server.signal(libc::SIGINT);
    let f = c.recv_frame();
    assert_eq!(f.kind, tether::protocol::FrameType::Goaway);
    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(3)).is_some(),
        "server still running 3 s after SIGINT then SIGTERM"
    );
    drop(c);
}

#[test]
fn sigterm_with_no_connections_exits_0_promptly() {
    let mut server = Server::start(&["--linger-ms", "60000"]);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("an idle server still running 3 s after SIGTERM");
    assert_eq!(status.code(), Some(0));
}
