//! `--app pubsub` end to end (docs/protocol.md §5), over the real binary and real
//! loopback sockets: fan-out, sessions (resume, LOST, TTL, takeover, orderly
//! end), slow-subscriber isolation, the soft output limit and the rate limit.
//!
//! Waits are bounded and generous; where the outcome depends on the server
//! having seen something (a reset, a TTL), the test waits for the server's
//! own metrics to say so instead of sleeping and hoping.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{delivery, Client, Server, SMALL_MSS};
use tether::protocol::{FrameType, GoawayCode};

/// Waits until the metric reads `want` (panics with the last value after 10 s).
#[test]
fn fan_out_own_delivery_and_unsubscribe() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut subs: Vec<Client> = (0..3).map(|_| server.open(0)).collect();
    let mut other = server.open(0);
    let mut publisher = server.open(0);
    for s in &mut subs {
        s.subscribe(b"news");
        s.sync();
    }
    other.subscribe(b"sport");
    other.sync();

    // Binary body, and one long enough to be split into several frames.
    let body: Vec<u8> = (0..=255u8).chain([0, b'M', 0xff]).collect();
    publisher.publish(b"news", &body);
    let big = vec![0x5a; 150_000];
    publisher.publish(b"news", &big);
    for s in &mut subs {
        assert_eq!(s.recv_message(), delivery(b"news", &body));
        assert_eq!(s.recv_message(), delivery(b"news", &big));
    }
    // Not subscribed to the channel: nothing (the sync PONG comes first).
    publisher.sync();
    other.sync();

    // A subscribed publisher gets its own message, and so does everyone else.
    subs[0].publish(b"news", b"mine");
    for s in &mut subs {
        assert_eq!(s.recv_message(), delivery(b"news", b"mine"));
    }

    // After unsubscribing, nothing more arrives; the others still get it.
    subs[0].unsubscribe(b"news");
    subs[0].sync();
    publisher.publish(b"news", b"after");
    for s in &mut subs[1..] {
        assert_eq!(s.recv_message(), delivery(b"news", b"after"));
    }
    subs[0].sync();
    // Unsubscribing from a channel it never joined is harmless.
    subs[0].unsubscribe(b"never");
    subs[0].sync();
    other.sync();
}

#[test]
fn malformed_ops_are_protocol_errors() {
    let server = Server::start(&["--app", "pubsub"]);
    let long_channel = [&b"S"[..], &[b'c'; 256]].concat();
    let cases: &[(&str, &[u8])] = &[
        ("unknown op X", b"Xnews"),
        ("delivery op from a client", b"M\x04newsbody"),
        ("empty message", b""),
        ("S with empty channel", b"S"),
        ("U with empty channel", b"U"),
        ("P without a length", b"P"),
        ("P with zero-length channel", b"P\x00body"),
        ("P length past the end", b"P\x05abc"),
        ("S with a 256-byte channel", &long_channel),
    ];
    for (what, msg) in cases {
        let mut c = server.open(0);
        c.send_message(msg, common::SPLIT);
        let g = c.expect_goaway(GoawayCode::ProtocolError);
        eprintln!("{what}: GOAWAY PROTOCOL_ERROR {:?}", g.reason);
    }
    // The server is fine afterwards.
    let mut c = server.open(0);
    c.subscribe(b"ok");
    c.publish(b"ok", b"still here");
    assert_eq!(c.recv_message(), delivery(b"ok", b"still here"));
}

/// A subscriber on `channel` whose connection is then reset (no GOAWAY
/// NORMAL); returns its session id once the server holds it detached.
fn detached_subscriber(server: &Server, channel: &[u8]) -> tether::protocol::SessionId {
    let mut sub = server.open(0);
    sub.subscribe(channel);
    sub.sync();
    let session = sub.session();
    sub.abort();
    server.wait_metric("tether_sessions_detached", 1);
    session
}

#[test]
fn resume_delivers_the_queue_in_order_then_live_messages() {
    let server = Server::start(&["--app", "pubsub", "--metrics", "127.0.0.1:0"]);
    let session = detached_subscriber(&server, b"r");

    let mut publisher = server.open(0);
    for i in 0..3 {
        publisher.publish(b"r", format!("queued {i}").as_bytes());
    }
    publisher.sync();

    let mut sub = server.connect();
    let w = sub.resume(session);
    assert!(w.resumed, "WELCOME must carry RESUMED: {w:?}");
    assert!(!w.lost, "nothing was dropped, LOST must be clear: {w:?}");
    assert_eq!(w.session, session, "the same session id");
    for i in 0..3 {
        assert_eq!(
            sub.recv_message(),
            delivery(b"r", format!("queued {i}").as_bytes()),
            "queued delivery {i}"
        );
    }
    publisher.publish(b"r", b"live");
    assert_eq!(sub.recv_message(), delivery(b"r", b"live"));
    // Still subscribed (the subscription survived the detach), nothing extra.
    sub.sync();
    assert_eq!(server.metric("tether_sessions_resumed_total"), 1);
}

#[test]
fn a_full_session_queue_drops_the_oldest_and_says_lost() {
    const QUEUE: usize = 200;
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--session-queue",
        "200",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let session = detached_subscriber(&server, b"q");
    let body = |i: usize| format!("message {i:02} {}", "x".repeat(30)).into_bytes();
    let total = 10;
    let mut publisher = server.open(0);
    for i in 0..total {
        publisher.publish(b"q", &body(i));
    }
    publisher.sync();
    assert!(server.metric("tether_deliveries_dropped_total") > 0);

    let mut sub = server.connect();
    let w = sub.resume(session);
    assert!(w.resumed && w.lost, "RESUMED and LOST expected: {w:?}");
    // What is left is the newest deliveries, in order, ending with the last.
    publisher.publish(b"q", b"live");
    let mut got = Vec::new();
    loop {
        let m = sub.recv_message();
        if m == delivery(b"q", b"live") {
            break;
        }
        got.push(m);
    }
    assert!(!got.is_empty(), "the newest queued deliveries must survive");
    let first = total - got.len();
    assert!(
        first > 0,
        "{} deliveries kept: nothing was dropped",
        got.len()
    );
    for (k, m) in got.iter().enumerate() {
        assert_eq!(m, &delivery(b"q", &body(first + k)), "kept delivery {k}");
    }
    assert!(
        got.len() * body(0).len() <= QUEUE,
        "{} deliveries of {} bytes kept with --session-queue {QUEUE}",
        got.len(),
        body(0).len()
    );
    // Resuming again no longer reports LOST: the subscriber spoke after the
    // last delivery (so nothing is at risk) before its connection dropped.
    sub.sync();
    sub.abort();
    server.wait_metric("tether_sessions_detached", 1);
    let mut again = server.connect();
    let w = again.resume(session);
    assert!(w.resumed && !w.lost, "LOST is reported once: {w:?}");
}

#[test]
fn a_detached_session_expires_after_its_ttl() {
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--session-ttl-ms",
        "300",
        "--tick-ms",
        "10",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let detached_at = Instant::now();
    let session = detached_subscriber(&server, b"ttl");
    server.wait_metric("tether_sessions_expired_total", 1);
    assert!(
        detached_at.elapsed() >= Duration::from_millis(250),
        "expired {:?} after the reset, before its 300 ms TTL",
        detached_at.elapsed()
    );
    let mut c = server.connect();
    let w = c.resume(session);
    assert!(!w.resumed, "an expired session cannot resume: {w:?}");
    assert_ne!(w.session, session, "a fresh session id");
    assert!(!w.lost, "{w:?}");
    // The old subscription is gone with it.
    let mut publisher = server.open(0);
    publisher.publish(b"ttl", b"nobody");
    publisher.sync();
    c.sync();
}

#[test]
fn resuming_a_live_session_takes_it_over() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut old = server.open(0);
    old.subscribe(b"t");
    old.sync();
    let session = old.session();

    let mut new = server.connect();
    let w = new.resume(session);
    assert!(w.resumed && !w.lost, "{w:?}");
    assert_eq!(w.session, session);
    let g = old.expect_goaway(GoawayCode::SessionTakenOver);
    eprintln!("old connection: GOAWAY SESSION_TAKEN_OVER {:?}", g.reason);

    let mut publisher = server.open(0);
    publisher.publish(b"t", b"to the new one");
    assert_eq!(new.recv_message(), delivery(b"t", b"to the new one"));
    new.sync();
}

#[test]
fn goaway_normal_from_the_client_ends_the_session() {
    let server = Server::start(&["--app", "pubsub", "--metrics", "127.0.0.1:0"]);
    let mut c = server.open(0);
    c.subscribe(b"n");
    c.sync();
    let session = c.session();
    assert_eq!(server.metric("tether_sessions"), 1);
    c.goaway_normal();
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    // The server may answer with its own GOAWAY; then its EOF.
    loop {
        match c.read_frame().expect("read until the server's EOF") {
            common::Read1::Eof => break,
            common::Read1::Frame(f) => assert_eq!(
                f.kind,
                FrameType::Goaway,
                "after our GOAWAY: {}",
                common::describe(&f)
            ),
        }
    }
    // Give the server time to drop the session (asserted by the resume below).
    common::wait_until(Duration::from_secs(5), || {
        server.metric("tether_sessions") == 0
    });
    let mut again = server.connect();
    let w = again.resume(session);
    assert!(
        !w.resumed,
        "GOAWAY NORMAL ended the session; it must not resume: {w:?}"
    );
    assert_ne!(w.session, session);
    assert_eq!(server.metric("tether_sessions_detached"), 0);
}

#[test]
fn a_stuck_subscriber_does_not_stall_the_others() {
    const READERS: usize = 100;
    const MESSAGES: usize = 2000;
    const BODY: usize = 1024;
    /// The publisher stays at most this many messages ahead of the slowest
    /// reader, so a reader descheduled on a busy machine never nears
    /// `--max-output` itself; a server stalled by the stuck subscriber would
    /// stop every reader, and the publisher with them.
    const WINDOW: usize = 100;
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--max-output",
        "262144",
        // The stuck subscriber reads its GOAWAY only at the end.
        "--linger-ms",
        "60000",
    ]);
    let addr = server.addr;
    let body = |i: usize| {
        let mut b = vec![(i % 251) as u8; BODY];
        b[..4].copy_from_slice(&(i as u32).to_be_bytes());
        b
    };

    let mut stuck = Client::connect_small_window(addr, Some(SMALL_MSS));
    stuck.handshake(0);
    stuck.subscribe(b"firehose");
    stuck.sync();

    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..READERS).map(|_| AtomicUsize::new(0)).collect());
    let ready = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let progress = Arc::clone(&progress);
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.handshake(0);
                c.subscribe(b"firehose");
                c.sync();
                ready.wait();
                for i in 0..MESSAGES {
                    let m = c.recv_message();
                    assert!(
                        m == delivery(b"firehose", &body(i)),
                        "reader {r}: delivery {i} differs ({} bytes)",
                        m.len()
                    );
                    progress[r].store(i + 1, Ordering::Release);
                }
                let last = Instant::now();
                c.sync();
                last
            })
        })
        .collect();
    ready.wait();

    let mut publisher = Client::connect(addr);
    publisher.handshake(0);
    let started = Instant::now();
    for i in 0..MESSAGES {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let slowest = progress
                .iter()
                .map(|p| p.load(Ordering::Acquire))
                .min()
                .unwrap_or(0);
            if i < slowest + WINDOW {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "readers stalled at {slowest} of {MESSAGES} deliveries \
                 (publisher at {i}) for 30 s"
            );
            thread::sleep(Duration::from_millis(1));
        }
        publisher.publish(b"firehose", &body(i));
    }
    publisher.sync();
    let published = Instant::now();
    eprintln!("published {MESSAGES} in {:?}", published - started);

    for (r, h) in readers.into_iter().enumerate() {
        let last = h.join().unwrap_or_else(|_| panic!("reader {r} failed"));
        let late = last.saturating_duration_since(published);
        assert!(
            late <= Duration::from_secs(5),
            "reader {r} got its last delivery {late:?} after the publisher finished"
        );
    }
    eprintln!("all readers done {:?} after the start", started.elapsed());

    // The stuck one was evicted: its stream ends with GOAWAY SLOW_CONSUMER.
    let (data, g) = stuck.expect_goaway_after_data(GoawayCode::SlowConsumer);
    eprintln!(
        "stuck subscriber: {data} DATA frames, then GOAWAY SLOW_CONSUMER {:?}",
        g.reason
    );
    assert!(data < MESSAGES, "it cannot have been sent everything");
}

/// One publisher's burst must not get subscribers that keep reading evicted:
/// they are not slow, they were never given the chance to read. (The server
/// may read a burst in one turn; its fan-out must still reach the sockets
/// before a reader is judged by `--max-output`.)
#[test]
fn a_publisher_burst_does_not_evict_subscribers_that_keep_reading() {
    const READERS: usize = 3;
    const MESSAGES: usize = 2000;
    let server = Server::start(&["--app", "pubsub", "--max-output", "262144"]);
    let addr = server.addr;
    let body = |i: usize| {
        let mut b = vec![b'b'; 1024];
        b[..4].copy_from_slice(&(i as u32).to_be_bytes());
        b
    };
    let ready = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let ready = Arc::clone(&ready);
            thread::spawn(move || -> Result<(), String> {
                let mut c = Client::connect(addr);
                c.handshake(0);
                c.subscribe(b"burst");
                c.sync();
                ready.wait();
                for i in 0..MESSAGES {
                    let f = c.recv_frame();
                    if f.kind != FrameType::Data {
                        return Err(format!(
                            "after {i} of {MESSAGES} deliveries: {} {}",
                            f.kind,
                            common::describe(&f)
                        ));
                    }
                    if f.payload[..] != delivery(b"burst", &body(i))[..] {
                        return Err(format!("delivery {i} differs"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    ready.wait();
    // About 2 MB of publishes written at once, as a fast publisher would.
    let mut publisher = Client::connect(addr);
    publisher.handshake(0);
    let burst: Vec<u8> = (0..MESSAGES)
        .flat_map(|i| {
            tether::protocol::encode_message(&common::pub_msg(b"burst", &body(i)), 65535).to_vec()
        })
        .collect();
    publisher.send_raw(&burst);
    publisher.sync();
    let outcomes: Vec<String> = readers
        .into_iter()
        .enumerate()
        .filter_map(|(r, h)| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("reader {r}: {e}")),
            Err(_) => Some(format!("reader {r} panicked")),
        })
        .collect();
    assert!(
        outcomes.is_empty(),
        "subscribers reading as fast as they can were cut off by one burst of \
         {MESSAGES} x 1 KiB publishes with --max-output 262144:\n{}",
        outcomes.join("\n")
    );
}

#[test]
fn soft_output_limit_evicts_after_the_grace_period() {
    const GRACE: Duration = Duration::from_millis(300);
    const SOFT: u64 = 65536;
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--soft-output",
        "65536",
        "--soft-output-ms",
        "300",
        "--tick-ms",
        "10",
        // The slow subscriber reads its GOAWAY only at the end.
        "--linger-ms",
        "30000",
        "--metrics",
        "127.0.0.1:0",
    ]);
    // What the server holds unsent, over all connections: only the slow
    // subscriber ever has a backlog here. (The eviction itself is counted
    // under tether_goaway_sent_total only once the connection is closed.)
    let queued = || server.metric("tether_output_queued_bytes");
    let mut slow = Client::connect_small_window(server.addr, Some(SMALL_MSS));
    slow.handshake(0);
    slow.subscribe(b"soft");
    slow.sync();
    let mut publisher = server.open(0);
    let body = vec![b's'; 1024];
    let mut published = 0;
    let publish = |publisher: &mut Client, published: &mut usize, n: usize| {
        for _ in 0..n {
            publisher.publish(b"soft", &body);
        }
        publisher.sync();
        *published += n;
    };

    // Fill the kernel buffers, then the server's queue up to just under the
    // soft limit, in steps of about 8 KiB.
    let mut backlog = queued();
    while backlog < SOFT - 16 * 1024 {
        assert!(published < 4000, "the backlog stays at {backlog} bytes");
        publish(&mut publisher, &mut published, 8);
        backlog = queued();
    }
    assert!(
        backlog <= SOFT,
        "overshot the soft limit while filling: {backlog}"
    );

    // Cross it now, by far (the kernel's send buffer may still grow a little
    // and take some of the backlog), and look at once: still connected, the
    // backlog is there.
    let crossing = Instant::now();
    publish(&mut publisher, &mut published, 256);
    let above = queued();
    let checked = crossing.elapsed();
    let timed = if above > SOFT {
        true
    } else if checked < GRACE - Duration::from_millis(50) {
        panic!(
            "{checked:?} after crossing the soft limit the backlog is {above} bytes: \
             evicted at once, not after the 300 ms grace"
        );
    } else {
        eprintln!("machine too slow to time the grace ({checked:?} for one check)");
        false
    };

    // Then it is evicted: the eviction drops the whole backlog (what is left
    // is at most the frame in flight and the GOAWAY). A backlog that merely
    // shrinks is the kernel taking a little more; that does not count.
    let mut last = above;
    let evicted = common::wait_until(Duration::from_secs(10), || {
        last = queued();
        last < 4096
    });
    assert!(
        evicted,
        "still {last} bytes queued 10 s after crossing the soft limit: not evicted"
    );
    let evicted_at = crossing.elapsed();
    eprintln!("backlog {above} bytes {checked:?} after crossing; evicted by {evicted_at:?}");
    if timed {
        assert!(
            evicted_at >= GRACE - Duration::from_millis(20),
            "evicted {evicted_at:?} after crossing the soft limit: the grace is 300 ms"
        );
    }
    let (data, g) = slow.expect_goaway_after_data(GoawayCode::SlowConsumer);
    eprintln!("slow subscriber: {data} DATA frames, then {:?}", g.reason);
    assert!(data < published, "it cannot have been sent everything");
    // Everyone else is unaffected.
    publisher.sync();
}

#[test]
fn rate_limit_evicts_a_blaster_and_spares_a_steady_pinger() {
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--rate-limit",
        "20",
        "--rate-burst",
        "10",
        "--tick-ms",
        "10",
    ]);
    let mut blaster = server.open(0);
    let ping = tether::protocol::encode_frame(FrameType::Ping, false, b"p");
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 200)
        .collect();
    blaster.send_raw(&burst);
    let (_, g) = blaster.expect_goaway_after_data(GoawayCode::RateLimited);
    eprintln!("blaster: GOAWAY RATE_LIMITED {:?}", g.reason);

    let mut steady = server.open(0);
    for i in 0..10u8 {
        steady.ping(&[i]);
        let f = steady.recv_frame();
        assert_eq!(
            (f.kind, &f.payload[..]),
            (FrameType::Pong, &[i][..]),
            "steady pinger, PING {i}: {}",
            common::describe(&f)
        );
        thread::sleep(Duration::from_millis(200));
    }
    steady.subscribe(b"still");
    steady.publish(b"still", b"connected");
    assert_eq!(steady.recv_message(), delivery(b"still", b"connected"));
}
