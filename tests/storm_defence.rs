//! Storm defence against the real server: `--max-connections-per-ip`
//! refuses with SERVER_FULL and a retry-after hint (docs/protocol.md §3.1),
//! `--max-handshakes` and `--max-accept-rate` make newcomers wait in the
//! kernel's backlog without refusing any, TLS handshakes at once all
//! complete under the per-turn handshake budget, and the metrics count all
//! of it.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Client, Server};
use tether::client::retry_after_hint;
use tether::protocol::GoawayCode;

fn connect_from(addr: SocketAddr, source: [u8; 4]) -> Client {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind the source address");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    common::set_test_timeouts(&stream);
    Client::from_stream(stream)
}

#[test]
fn an_address_past_its_limit_is_refused_with_a_hint_and_others_are_not() {
    let server = Server::start(&["--max-connections-per-ip", "2", "--metrics", "127.0.0.1:0"]);
    let mut a = connect_from(server.addr, [127, 0, 0, 1]);
    a.handshake(0);
    let mut b = connect_from(server.addr, [127, 0, 0, 1]);
    b.handshake(0);
    // A third from the same address: SERVER_FULL at once, with the hint.
    let goaway = connect_from(server.addr, [127, 0, 0, 1]).expect_goaway(GoawayCode::ServerFull);
    assert!(
        goaway
            .reason
            .contains("too many connections from this address"),
        "{goaway:?}"
    );
    assert_eq!(
        retry_after_hint(&goaway.reason),
        Some(Duration::from_millis(2000)),
        "{goaway:?}"
    );
    // Another address is not affected.
    connect_from(server.addr, [127, 0, 0, 2]).handshake(0);
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"per_ip\"}"),
        1
    );
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"full\"}"),
        0
    );
    // Once one leaves, its address has room again.
    a.shutdown_write();
    a.expect_clean_eof();
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connect_from(server.addr, [127, 0, 0, 1]);
        c.send_hello(0);
        let f = c.recv_frame();
        if f.kind == tether::protocol::FrameType::Welcome {
            break;
        }
        assert!(Instant::now() < deadline, "the address's count never fell");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ping(b"b");
    b.expect_pong(b"b");
}

#[test]
fn the_connection_limit_refusal_carries_the_hint() {
    let server = Server::start(&["--max-connections", "1", "--metrics", "127.0.0.1:0"]);
    let _a = server.open(0);
    let goaway = server.connect().expect_goaway(GoawayCode::ServerFull);
    assert_eq!(
        retry_after_hint(&goaway.reason),
        Some(Duration::from_millis(2000)),
        "{goaway:?}"
    );
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"full\"}"),
        1
    );
}

/// Two silent openers fill `--max-handshakes 2`: a third connection's TCP
/// handshake completes (the kernel's backlog) but it is not accepted, so
/// its HELLO gets no WELCOME until a handshake slot frees up; then it does,
/// without a new readiness event on the listener.
#[test]
fn at_the_handshake_limit_newcomers_wait_and_are_then_served() {
    let server = Server::start(&[
        "--max-handshakes",
        "2",
        "--handshake-timeout-ms",
        "60000",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut silent_a = server.connect();
    let silent_b = server.connect();
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            server.metric("tether_handshakes_in_progress") == 2
        }),
        "two handshakes in progress"
    );
    let mut waiting = server.connect();
    waiting.send_hello(0);
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    assert!(
        waiting.read_frame().is_err(),
        "no WELCOME while the handshakes are all taken"
    );
    assert_eq!(
        server.metric("tether_accept_waits_total{reason=\"handshakes\"}"),
        1
    );
    // One silent opener finishes its handshake: the waiting one is served.
    common::set_test_timeouts(&waiting.stream);
    silent_a.handshake(0);
    waiting.expect_welcome();
    drop(silent_b);
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"full\"}"),
        0
    );
}

/// `--max-accept-rate 50` (burst 5): 40 connects at once are all welcomed,
/// none refused, and the last waits at least about (40 - 5) / 50 s. The
/// bound is loose on the slow side only.
#[test]
fn the_accept_rate_spreads_a_burst_and_refuses_no_one() {
    let server = Server::start(&["--max-accept-rate", "50", "--metrics", "127.0.0.1:0"]);
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..40).map(|_| server.connect()).collect();
    for c in &mut clients {
        c.send_hello(0);
    }
    for c in &mut clients {
        c.expect_welcome();
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "35 connections past the burst at 50/s take 0.7 s; took {took:?}"
    );
    assert!(
        server.metric("tether_accept_waits_total{reason=\"rate\"}") >= 1,
        "the wait is counted"
    );
    assert_eq!(server.metric("tether_connections_accepted_total"), 40);
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"full\"}"),
        0
    );
}

#[test]
fn the_ready_delay_histogram_is_served() {
    let server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let mut c = server.open(0);
    c.ping(b"x");
    c.expect_pong(b"x");
    assert!(server.metric("tether_loop_ready_delay_seconds_count") >= 1);
}

/// 32 TLS clients handshaking at once (threads): every one is welcomed,
/// whether its ClientHello was read at once or put off to a later turn
/// by the per-turn handshake budget (counted in
/// `tether_tls_handshakes_deferred_total`, which this cannot force).
#[test]
fn tls_handshakes_at_once_are_all_completed() {
    use common::tls::{client_config, tls_connect, TestPki};
    let pki = TestPki::new();
    let mut args = TestPki::server_args(&pki.main);
    args.extend(["--metrics", "127.0.0.1:0"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let addr = server.tls_addr.expect("a TLS listener");
    let config = client_config(&pki.main, None);
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut c = tls_connect(addr, config);
                c.handshake(0);
                c
            })
        })
        .collect();
    let mut clients: Vec<_> = clients
        .into_iter()
        .map(|t| t.join().expect("a TLS client"))
        .collect();
    for c in &mut clients {
        c.ping(b"p");
        c.expect_pong(b"p");
    }
    assert_eq!(server.metric("tether_tls_handshakes_total"), 32);
    assert_eq!(server.metric("tether_handshakes_in_progress"), 0);
}
