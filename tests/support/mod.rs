//! Helpers for the pub/sub, metrics and middlebox end-to-end tests, built on
//! `tests/common` (the server process guard, the wire client, `describe`,
//! `wait_until`, ... all live there and are re-exported from here). This
//! module adds only what these tests need on top: the pub/sub message
//! layouts, pub/sub and session conveniences on the client, and a raw HTTP
//! GET for the metrics endpoint. Every wait is bounded.
#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

pub use common::*;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use bytes::Bytes;
use tether::protocol::{FrameType, GoawayCode, Hello, SessionId, Welcome};

/// Where these tests split a DATA message into frames: 16 KiB, well under
/// any server's max_frame here.
pub const SPLIT: usize = 16 * 1024;

impl Server {
    /// `GET path` on the metrics endpoint.
    pub fn http_get(&self, path: &str) -> HttpResponse {
        http_get(self.metrics.expect("started with --metrics"), path)
    }

    /// The current value of one metric line (`name` may carry labels).
    pub fn metric(&self, name: &str) -> u64 {
        let r = self.http_get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.head);
        metric_value(&r.body, name).unwrap_or_else(|| panic!("no metric {name} in:\n{}", r.body))
    }
}

/// A parsed HTTP response read to EOF.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers as sent.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` raw on a new connection, reads until the server's EOF.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(READ_TIMEOUT))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Splits a raw response into status, head and body.
pub fn parse_http(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET path HTTP/1.1` over a raw socket.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: tether-test\r\n\r\n");
    let raw = http_raw(addr, req.as_bytes()).expect("HTTP GET");
    parse_http(&raw)
}

/// The value on the line `name value` of a Prometheus text body.
pub fn metric_value(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ----- pub/sub messages (PROTOCOL.md §5) -----

/// `S channel`.
pub fn sub_msg(channel: &[u8]) -> Vec<u8> {
    [&b"S"[..], channel].concat()
}

/// `U channel`.
pub fn unsub_msg(channel: &[u8]) -> Vec<u8> {
    [&b"U"[..], channel].concat()
}

/// `P chan_len channel body`.
pub fn pub_msg(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(channel.len()).expect("channel fits u8");
    [&b"P"[..], &[len], channel, body].concat()
}

/// `M chan_len channel body`: what a subscriber must receive.
pub fn delivery(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = pub_msg(channel, body);
    m[0] = b'M';
    m
}

// ----- what these tests add to the wire client -----

impl Client {
    /// Connects with a tiny receive buffer (set before connect, so the
    /// advertised window is small from the start) and a small MSS: the
    /// server's output backs up into its own queue, not the kernel's. (On
    /// loopback the MSS is 64 KiB and the server's send buffer autotunes to
    /// megabytes even for a peer that never reads; a 536-byte MSS keeps it
    /// near 100 KiB.)
    pub fn connect_small_window(addr: SocketAddr) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket.set_mss(536).expect("TCP_MAXSEG");
        socket.connect(&addr.into()).expect("connect to tether");
        Client::from_stream(socket.into())
    }

    /// HELLO RESUME `session`, then the WELCOME.
    pub fn resume(&mut self, session: SessionId) -> Welcome {
        let hello = Hello {
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume: Some(session),
        };
        self.send_raw(&hello.encode_frame());
        self.expect_welcome()
    }

    /// The session id from the WELCOME.
    pub fn session(&self) -> SessionId {
        self.welcome.expect("handshake done").session
    }

    /// Subscribes to `channel`.
    pub fn subscribe(&mut self, channel: &[u8]) {
        self.send_message(&sub_msg(channel), SPLIT);
    }

    /// Unsubscribes from `channel`.
    pub fn unsubscribe(&mut self, channel: &[u8]) {
        self.send_message(&unsub_msg(channel), SPLIT);
    }

    /// Publishes `body` on `channel`.
    pub fn publish(&mut self, channel: &[u8], body: &[u8]) {
        self.send_message(&pub_msg(channel, body), SPLIT);
    }

    /// A PING round trip: everything sent before it has been handled by the
    /// server, and nothing else was received meanwhile (a stray delivery fails).
    pub fn sync(&mut self) {
        self.ping(b"sync");
        let f = self.recv_frame();
        assert_eq!(
            (f.kind, &f.payload[..]),
            (FrameType::Pong, &b"sync"[..]),
            "expected the PONG to our sync PING, got {} {}",
            f.kind,
            describe(&f)
        );
    }

    /// Sends GOAWAY NORMAL (the orderly close that ends a session).
    pub fn goaway_normal(&mut self) {
        self.send_raw(&tether::protocol::encode_goaway(GoawayCode::Normal, "bye"));
    }

    /// Drops the connection abruptly: SO_LINGER 0, so the server sees a
    /// reset, never a GOAWAY NORMAL.
    pub fn abort(self) {
        self.set_reset_on_drop();
        drop(self);
    }
}
