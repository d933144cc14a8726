//! Many connections at once, resets and churn: the server keeps serving and
//! gives back every file descriptor.

mod common;

use std::time::{Duration, Instant};

use common::{hello_payload, pattern, Client, Server};
use tether::protocol::{encode_frame, encode_message, FrameType, GoawayCode};

/// How long the fd count may take to come back to its baseline.
const FD_SETTLE: Duration = Duration::from_secs(5);

fn assert_fds_back_to(server: &Server, baseline: usize, what: &str) {
    let n = server.wait_fd_count(baseline, FD_SETTLE);
    assert_eq!(
        n, baseline,
        "{what}: server holds {n} fds {FD_SETTLE:?} after the churn, baseline {baseline}"
    );
}

#[test]
fn two_thousand_concurrent_connections_ping_pong() {
    const N: usize = 2000;
    const BATCH: usize = 100;
    let start = Instant::now();
    let server = Server::start(&[]);
    let baseline = server.settled_fd_count();
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    // Connect in batches and finish each batch's handshake before the next,
    // so the listen backlog never overflows.
    while clients.len() < N {
        let first = clients.len();
        for _ in 0..BATCH {
            let mut c = server.connect();
            c.send_hello(0);
            clients.push(c);
        }
        for c in &mut clients[first..] {
            c.expect_welcome();
        }
    }
    let connected = start.elapsed();
    assert!(
        server.fd_count() >= baseline + N,
        "server holds {} fds with {N} connections (baseline {baseline})",
        server.fd_count()
    );
    for round in 0..3u32 {
        for (i, c) in clients.iter_mut().enumerate() {
            let mut p = (i as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&round.to_be_bytes());
            c.ping(&p);
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut p = (i as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&round.to_be_bytes());
            c.expect_pong(&p);
        }
    }
    // One echo on every tenth connection too.
    for (i, c) in clients.iter_mut().enumerate().step_by(10) {
        c.send_message(&pattern(100, i as u32), 65535);
    }
    for (i, c) in clients.iter_mut().enumerate().step_by(10) {
        assert_eq!(c.recv_message(), pattern(100, i as u32));
    }
    // Close: half with a polite half-close, half by just dropping.
    for (i, c) in clients.iter_mut().enumerate() {
        if i % 2 == 0 {
            c.shutdown_write();
        }
    }
    for c in clients.iter_mut().step_by(2) {
        c.expect_clean_eof();
    }
    drop(clients);
    assert_fds_back_to(&server, baseline, "after 2000 connections");
    eprintln!(
        "2000 connections: connected in {connected:?}, total {:?}",
        start.elapsed()
    );
}

#[test]
fn two_hundred_resetting_clients_do_not_hurt_the_server() {
    let server = Server::start(&[]);
    let baseline = server.settled_fd_count();
    let hello = encode_frame(FrameType::Hello, false, &hello_payload(1, 0, b""));
    let big = encode_message(&pattern(300_000, 1), 16 * 1024);
    let mut clients = Vec::new();
    for i in 0..200u32 {
        let mut c = server.connect();
        match i % 8 {
            // Nothing sent at all.
            0 => {}
            // Half a HELLO.
            1 => c.send_raw(&hello[..6]),
            // Handshaked, idle.
            2 => {
                c.handshake(0);
            }
            // Handshaked, then half a frame header.
            3 => {
                c.handshake(0);
                c.send_raw(&encode_frame(FrameType::Data, false, b"abcdef")[..5]);
            }
            // Handshaked, then half a frame payload.
            4 => {
                c.handshake(0);
                c.send_raw(&encode_frame(FrameType::Data, false, &pattern(1000, i))[..400]);
            }
            // Handshaked, the first fragments of a message only.
            5 => {
                c.handshake(0);
                c.send_raw(&big[..100_000]);
            }
            // Handshaked, a big message whose echo we never read.
            6 => {
                c.handshake(0);
                c.send_raw(&big);
            }
            // Handshaked, many pings whose pongs we never read.
            _ => {
                c.handshake(0);
                let mut w = Vec::new();
                for j in 0..1000u32 {
                    w.extend_from_slice(&encode_frame(FrameType::Ping, false, &j.to_be_bytes()));
                }
                c.send_raw(&w);
            }
        }
        clients.push(c);
    }
    for c in &clients {
        c.set_reset_on_drop();
    }
    drop(clients);

    // A new client is served normally.
    let mut c = server.open(0);
    c.ping(b"still here");
    c.expect_pong(b"still here");
    let msg = pattern(70_000, 2);
    c.send_message(&msg, 65535);
    assert_eq!(c.recv_message(), msg);
    c.shutdown_write();
    c.expect_clean_eof();
    drop(c);
    assert_fds_back_to(&server, baseline, "after 200 resets");
}

#[test]
fn fd_count_returns_to_baseline_after_mixed_churn() {
    let server = Server::start(&[
        "--tick-ms",
        "10",
        "--handshake-timeout-ms",
        "200",
        "--min-heartbeat-ms",
        "50",
        "--miss",
        "2",
        "--linger-ms",
        "300",
    ]);
    let baseline = server.settled_fd_count();
    for round in 0..3u32 {
        let mut keep = Vec::new();
        for i in 0..100u32 {
            let mut c = server.connect();
            match i % 6 {
                // Polite: handshake, echo, half-close, EOF.
                0 => {
                    c.handshake(0);
                    c.send_message(b"hi", 65535);
                    assert_eq!(c.recv_message(), b"hi");
                    c.shutdown_write();
                    c.expect_clean_eof();
                }
                // Protocol error: GOAWAY then EOF.
                1 => {
                    c.handshake(0);
                    c.send_raw(&[0u8; 8]);
                    c.expect_goaway(GoawayCode::ProtocolError);
                }
                // Dropped right after connecting.
                2 => {}
                // Reset after the handshake.
                3 => {
                    c.handshake(0);
                    c.set_reset_on_drop();
                }
                // Never says HELLO: the handshake timeout closes it; we never
                // close our side, so the server's linger must end it.
                4 => keep.push(c),
                // Idle eviction with a 100 ms heartbeat (idle 200 ms).
                _ => {
                    c.handshake(100);
                    keep.push(c);
                }
            }
        }
        // Those we kept are closed by the server's timers: GOAWAY and EOF.
        for c in &mut keep {
            let f = c.recv_frame();
            assert_eq!(f.kind, FrameType::Goaway, "round {round}");
        }
        // Keep our ends open until the server has given up on them (linger).
        let n = server.wait_fd_count(baseline, FD_SETTLE);
        assert_eq!(
            n, baseline,
            "round {round}: server holds {n} fds with only lingering peers left (baseline {baseline})"
        );
        drop(keep);
    }
    // A last client still works.
    let mut c = server.open(0);
    c.ping(b"x");
    c.expect_pong(b"x");
    drop(c);
    assert_fds_back_to(&server, baseline, "after mixed churn");
}
