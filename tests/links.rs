//! Outbound links (`Outbox::dial` / `transmit` / `hangup`, `App::on_link`)
//! over real sockets: a reactor stepped by the test talks to a plain TCP
//! echo server on a thread, as the pub/sub app will talk to Redis.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether::app::{App, Ctx, LinkEvent, MessageEvent};
use tether::config::Config;
use tether::reactor::Reactor;

/// What the test app saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected(u64),
    Data(u64, Vec<u8>),
    Closed(u64, String),
}

/// Records link events; sends `greeting` once a link is up.
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    greeting: Bytes,
}

impl App for Recorder {
    fn on_message(&mut self, _message: MessageEvent, _ctx: &mut Ctx<'_>) {}

    fn on_link(&mut self, event: LinkEvent<'_>, ctx: &mut Ctx<'_>) {
        let seen = match event {
            LinkEvent::Connected { link } => {
                ctx.transmit(link, self.greeting.clone());
                Seen::Connected(link)
            }
            LinkEvent::Data { link, bytes } => Seen::Data(link, bytes.to_vec()),
            LinkEvent::Closed { link, why } => Seen::Closed(link, why.to_string()),
        };
        self.seen.lock().expect("lock").push(seen);
    }
}

fn reactor(greeting: &[u8]) -> (Reactor<Recorder>, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Recorder {
        seen: Arc::clone(&seen),
        greeting: Bytes::copy_from_slice(greeting),
    };
    (Reactor::new(Config::default(), app).expect("reactor"), seen)
}

/// Steps the reactor until `done` holds of what was seen (at most 10 s).
fn step_until(
    reactor: &mut Reactor<Recorder>,
    seen: &Arc<Mutex<Vec<Seen>>>,
    done: impl Fn(&[Seen]) -> bool,
) -> Vec<Seen> {
    let start = Instant::now();
    loop {
        let now = seen.lock().expect("lock").clone();
        if done(&now) {
            return now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stuck at {now:?}"
        );
        reactor.turn(Some(Duration::from_millis(10))).expect("turn");
    }
}

/// Data received on `link`, joined.
fn data_of(seen: &[Seen], link: u64) -> Vec<u8> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Data(l, bytes) if *l == link => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// An echo server for one connection, which closes after `limit` bytes.
fn echo_server(limit: usize) -> (SocketAddr, thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 65536];
        let mut total = 0;
        while total < limit {
            let n = stream.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).expect("write");
            total += n;
        }
        total
    });
    (addr, thread)
}

#[test]
fn a_link_connects_carries_bytes_both_ways_in_order_and_reports_the_peer_close() {
    let greeting = b"hello engine".to_vec();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let total = greeting.len() + big.len();
    let (addr, server) = echo_server(total);
    let (mut reactor, seen) = reactor(&greeting);
    reactor.with_ctx(|_, ctx| ctx.dial(7, addr));
    step_until(&mut reactor, &seen, |s| s.contains(&Seen::Connected(7)));
    // 2 MB queued at once, in pieces: out in order, back in order.
    reactor.with_ctx(|_, ctx| {
        for piece in big.chunks(100_000) {
            ctx.transmit(7, Bytes::copy_from_slice(piece));
        }
    });
    let seen_all = step_until(&mut reactor, &seen, |s| {
        s.iter().any(|e| matches!(e, Seen::Closed(7, _)))
    });
    let mut expected = greeting.clone();
    expected.extend_from_slice(&big);
    assert_eq!(data_of(&seen_all, 7), expected);
    assert_eq!(
        seen_all.last(),
        Some(&Seen::Closed(7, "closed by the peer".into()))
    );
    assert_eq!(server.join().expect("echo server"), total);
}

#[test]
fn a_refused_dial_is_a_closed_event_naming_the_address() {
    // A port nothing listens on: bind, learn it, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (mut reactor, seen) = reactor(b"x");
    reactor.with_ctx(|_, ctx| ctx.dial(3, addr));
    let seen = step_until(&mut reactor, &seen, |s| !s.is_empty());
    assert!(
        matches!(&seen[..], [Seen::Closed(3, why)] if why.contains("connect")),
        "{seen:?}"
    );
}

#[test]
fn a_hangup_closes_without_an_event_and_the_key_can_be_dialed_again() {
    let (addr, server) = echo_server(usize::MAX);
    let (mut reactor, seen) = reactor(b"ping");
    reactor.with_ctx(|_, ctx| ctx.dial(1, addr));
    step_until(&mut reactor, &seen, |s| data_of(s, 1) == b"ping");
    reactor.with_ctx(|_, ctx| ctx.hangup(1));
    // The echo server sees EOF and ends.
    assert_eq!(server.join().expect("echo server"), 4);
    for _ in 0..5 {
        reactor.step().expect("step");
    }
    let after = seen.lock().expect("lock").clone();
    assert!(
        !after.iter().any(|s| matches!(s, Seen::Closed(..))),
        "{after:?}"
    );
    // The key is free: a new link under it works.
    let (addr, server) = echo_server(4);
    reactor.with_ctx(|_, ctx| ctx.dial(1, addr));
    step_until(&mut reactor, &seen, |s| data_of(s, 1) == b"pingping");
    assert_eq!(server.join().expect("second echo server"), 4);
}
