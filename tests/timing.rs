//! Deadlines measured from outside: eviction never comes before its timeout,
//! and comes within a generous slack after it (this is a noisy 2-core box,
//! so the upper bound is loose; the lower bound is exact).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{fast_heartbeat_with, fast_timers, Server};
use tether::protocol::{FrameType, GoawayCode};

/// How late an eviction may be: several ticks plus scheduling noise.
const SLACK: Duration = Duration::from_millis(1000);

#[test]
fn handshake_timeout_is_not_early_and_not_very_late() {
    let server = Server::start(&fast_timers());
    let timeout = Duration::from_millis(300);
    for _ in 0..3 {
        // Measured from before connect: the server's clock starts later.
        let start = Instant::now();
        let mut c = server.connect();
        c.expect_goaway(GoawayCode::HandshakeTimeout);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= timeout,
            "HANDSHAKE_TIMEOUT after {elapsed:?}, before the {timeout:?} timeout"
        );
        assert!(
            elapsed <= timeout + SLACK,
            "HANDSHAKE_TIMEOUT only after {elapsed:?} (timeout {timeout:?})"
        );
    }
}

#[test]
fn idle_eviction_is_not_early_and_not_very_late() {
    let server = Server::start(&fast_timers());
    for _ in 0..3 {
        let mut c = server.connect();
        // The last frame the server receives is the HELLO, sent after `start`.
        let start = Instant::now();
        let w = c.handshake(0);
        let idle = Duration::from_millis(u64::from(w.idle_timeout_ms));
        assert_eq!(idle, Duration::from_millis(200));
        c.expect_goaway(GoawayCode::IdleTimeout);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= idle,
            "IDLE_TIMEOUT after {elapsed:?}, before the {idle:?} idle timeout"
        );
        assert!(
            elapsed <= idle + SLACK,
            "IDLE_TIMEOUT only after {elapsed:?} (idle timeout {idle:?})"
        );
    }
}

#[test]
fn idle_deadline_counts_from_the_last_frame_received() {
    let server = Server::start(&fast_timers());
    let mut c = server.open(0);
    let idle = Duration::from_millis(200);
    // Some traffic, then silence: the eviction is measured from the last PING.
    for i in 0..5u8 {
        c.ping(&[i]);
        c.expect_pong(&[i]);
        thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    c.ping(b"last");
    c.expect_pong(b"last");
    c.expect_goaway(GoawayCode::IdleTimeout);
    let elapsed = start.elapsed();
    assert!(elapsed >= idle, "evicted {elapsed:?} after the last PING");
    assert!(elapsed <= idle + SLACK, "evicted only {elapsed:?} after it");
}

#[test]
fn pings_and_data_keep_a_connection_alive_past_its_idle_timeout() {
    // idle = 500 ms × 2 = 1 s; traffic every 100 ms for 3 s. A stall of
    // 900 ms in this test thread would be needed for a false failure.
    let server = Server::start(&fast_heartbeat_with(&[("--heartbeat-ms", "500")]));
    let mut c = server.open(0);
    assert_eq!(c.welcome.expect("welcome").idle_timeout_ms, 1000);
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        if i % 2 == 0 {
            c.ping(&i.to_be_bytes());
            c.expect_pong(&i.to_be_bytes());
        } else {
            c.send_message(&i.to_be_bytes(), 65535);
            assert_eq!(c.recv_message(), i.to_be_bytes());
        }
        i += 1;
        thread::sleep(Duration::from_millis(100));
    }
    // And then silence evicts it.
    let f = c.recv_frame();
    assert_eq!(f.kind, FrameType::Goaway, "{}", common::describe(&f));
}
