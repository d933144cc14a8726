//! A tiny blocking client over `std::net::TcpStream` (or any byte stream:
//! `tls` wraps one in TLS) that speaks the wire protocol through
//! `tether::protocol`: handshakes (fresh or resuming), frames and messages
//! out, and checked expectations on what comes back.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use tether::protocol::{
    decode_frame, encode_frame, encode_goaway, encode_message, Frame, FrameType, Goaway,
    GoawayCode, Hello, SessionId, Status, Welcome, PROTOCOL_V1, PROTOCOL_V2,
};

use super::server::Server;
use super::wire::pattern;

/// How long any single blocking read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The IPv4 minimum MSS, for [`Client::connect_small_window`]: keeps the
/// server's send buffer for that connection near 100 KiB.
pub const SMALL_MSS: u32 = 536;

/// What a read from the server produced.
#[derive(Debug)]
pub enum Read1 {
    /// A complete frame.
    Frame(Frame),
    /// A clean EOF (read returned `Ok(0)`) between frames.
    Eof,
}

/// A blocking test client over `S`: a `TcpStream` unless said otherwise.
pub struct Client<S = TcpStream> {
    /// The socket (exposed for shutdown, linger and raw writes).
    pub stream: S,
    /// Received bytes not yet decoded start at `rx_pos` (compacted now and
    /// then, so a fast stream of small frames is not quadratic).
    rx: Vec<u8>,
    rx_pos: usize,
    /// The WELCOME, once the handshake is done.
    pub welcome: Option<Welcome>,
}

impl Client {
    /// Connects with TCP_NODELAY and the default read timeout.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to tether");
        Client::from_stream(stream)
    }

    /// Connects with a 4 KiB receive buffer, set before connect so the
    /// advertised window is small from the start, and with `mss`, that
    /// maximum segment size: the server's output then backs up into its own
    /// queue, not the kernel's. (On loopback the MSS is 64 KiB and the
    /// server's send buffer autotunes to megabytes even for a peer that never
    /// reads; a 536-byte MSS keeps it near 100 KiB.)
    pub fn connect_small_window(addr: SocketAddr, mss: Option<u32>) -> Client {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        if let Some(mss) = mss {
            socket.set_mss(mss).expect("TCP_MAXSEG");
        }
        socket.connect(&addr.into()).expect("connect to tether");
        Client::from_stream(socket.into())
    }

    /// Wraps an already-connected stream.
    pub fn from_stream(stream: TcpStream) -> Client {
        set_test_timeouts(&stream);
        Client::over(stream)
    }

    /// Half-closes the write side (the server sees EOF).
    pub fn shutdown_write(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// Sets SO_LINGER to zero so that dropping the client sends an RST.
    pub fn set_reset_on_drop(&self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
    }

    /// Drops the connection abruptly: SO_LINGER 0, so the server sees a
    /// reset, never a GOAWAY NORMAL.
    pub fn abort(self) {
        self.set_reset_on_drop();
        drop(self);
    }
}

/// TCP_NODELAY and the tests' read and write timeouts on `stream`.
pub fn set_test_timeouts(stream: &TcpStream) {
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
}

impl<S: Read + Write> Client<S> {
    /// Speaks the protocol over `stream`, which is already set up.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            rx: Vec::new(),
            rx_pos: 0,
            welcome: None,
        }
    }

    /// Writes raw bytes, panicking on error.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to tether");
    }

    /// Writes raw bytes, returning the error instead of panicking.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one frame.
    pub fn send_frame(&mut self, kind: FrameType, more: bool, payload: &[u8]) {
        self.send_raw(&encode_frame(kind, more, payload));
    }

    /// Sends a HELLO with no token.
    pub fn send_hello(&mut self, heartbeat_ms: u32) {
        self.send_hello_token(heartbeat_ms, b"");
    }

    /// Sends a HELLO carrying `token`.
    pub fn send_hello_token(&mut self, heartbeat_ms: u32, token: &[u8]) {
        self.send_hello_version(PROTOCOL_V1, heartbeat_ms, token, None);
    }

    /// Sends a HELLO of protocol `version` (docs/protocol.md §7.1) with
    /// `token`, resuming `resume` if given.
    pub fn send_hello_version(
        &mut self,
        version: u8,
        heartbeat_ms: u32,
        token: &[u8],
        resume: Option<SessionId>,
    ) {
        let hello = Hello {
            version,
            heartbeat_ms,
            token: Bytes::copy_from_slice(token),
            resume,
        };
        self.send_raw(&hello.encode_frame());
    }

    /// HELLO RESUME `session`, then the WELCOME.
    pub fn resume(&mut self, session: SessionId) -> Welcome {
        self.send_hello_version(PROTOCOL_V1, 0, b"", Some(session));
        self.expect_welcome()
    }

    /// A protocol-v2 HELLO, then the WELCOME, which must be of version 2
    /// and never carry LOST (§7.1, §7.7).
    pub fn handshake_v2(&mut self, heartbeat_ms: u32) -> Welcome {
        self.send_hello_version(PROTOCOL_V2, heartbeat_ms, b"", None);
        self.expect_welcome_v2()
    }

    /// A protocol-v2 HELLO RESUME `session`, then the WELCOME, checked as in
    /// [`Client::handshake_v2`].
    pub fn resume_v2(&mut self, session: SessionId) -> Welcome {
        self.send_hello_version(PROTOCOL_V2, 0, b"", Some(session));
        self.expect_welcome_v2()
    }

    /// The next frame must be a WELCOME of version 2 without LOST.
    pub fn expect_welcome_v2(&mut self) -> Welcome {
        let w = self.expect_welcome();
        assert_eq!(w.version, PROTOCOL_V2, "WELCOME version: {w:?}");
        assert!(!w.lost, "a v2 WELCOME never carries LOST: {w:?}");
        w
    }

    /// Sends HELLO and waits for the WELCOME.
    pub fn handshake(&mut self, heartbeat_ms: u32) -> Welcome {
        self.handshake_token(heartbeat_ms, b"")
    }

    /// Sends HELLO with `token` and waits for the WELCOME.
    pub fn handshake_token(&mut self, heartbeat_ms: u32, token: &[u8]) -> Welcome {
        self.send_hello_token(heartbeat_ms, token);
        self.expect_welcome()
    }

    /// The next frame must be a WELCOME; returns it decoded.
    pub fn expect_welcome(&mut self) -> Welcome {
        let f = self.recv_frame();
        assert_eq!(
            f.kind,
            FrameType::Welcome,
            "expected WELCOME, got {} {}",
            f.kind,
            describe(&f)
        );
        let w = Welcome::decode(&f.payload).expect("WELCOME decodes");
        self.welcome = Some(w);
        w
    }

    /// The session id from the WELCOME.
    pub fn session(&self) -> SessionId {
        self.welcome.expect("handshake done").session
    }

    /// Sends a whole DATA message split at `max_frame`.
    pub fn send_message(&mut self, msg: &[u8], max_frame: usize) {
        self.send_raw(&encode_message(msg, max_frame));
    }

    /// Sends a PING.
    pub fn ping(&mut self, payload: &[u8]) {
        self.send_frame(FrameType::Ping, false, payload);
    }

    /// Reads the next frame or a clean EOF. A read error (reset, timeout) or
    /// EOF inside a frame is returned as an error; undecodable bytes from the
    /// server panic (the server must only send valid frames).
    pub fn read_frame(&mut self) -> io::Result<Read1> {
        let mut buf = [0u8; 65536];
        loop {
            match decode_frame(&self.rx[self.rx_pos..], 65535) {
                Ok(Status::Complete((frame, used))) => {
                    self.rx_pos += used;
                    if self.rx_pos == self.rx.len() {
                        self.rx.clear();
                        self.rx_pos = 0;
                    }
                    return Ok(Read1::Frame(frame));
                }
                Ok(Status::Partial) => {}
                Err(e) => panic!("server sent an undecodable frame: {e}"),
            }
            if self.rx_pos > 0 {
                self.rx.drain(..self.rx_pos);
                self.rx_pos = 0;
            }
            match self.stream.read(&mut buf) {
                Ok(0) if self.rx.is_empty() => return Ok(Read1::Eof),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("EOF inside a frame ({} bytes buffered)", self.rx.len()),
                    ))
                }
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next frame; panics on EOF or error.
    pub fn recv_frame(&mut self) -> Frame {
        match self.read_frame() {
            Ok(Read1::Frame(f)) => f,
            Ok(Read1::Eof) => panic!("expected a frame, got EOF"),
            Err(e) => panic!("expected a frame, got error: {e}"),
        }
    }

    /// Reassembles the next DATA message; any other frame panics.
    pub fn recv_message(&mut self) -> Vec<u8> {
        let mut msg = Vec::new();
        loop {
            let f = self.recv_frame();
            assert_eq!(
                f.kind,
                FrameType::Data,
                "expected DATA, got {} {}",
                f.kind,
                describe(&f)
            );
            msg.extend_from_slice(&f.payload);
            if !f.more {
                return msg;
            }
        }
    }

    /// The next frame must be a PONG carrying `payload`.
    pub fn expect_pong(&mut self, payload: &[u8]) {
        let f = self.recv_frame();
        assert_eq!(
            f.kind,
            FrameType::Pong,
            "expected PONG, got {} {}",
            f.kind,
            describe(&f)
        );
        assert_eq!(&f.payload[..], payload, "PONG payload differs from PING's");
    }

    /// The next frame must be GOAWAY with `code`, followed by a clean EOF.
    pub fn expect_goaway(&mut self, code: GoawayCode) -> Goaway {
        let f = self.recv_frame();
        assert_eq!(
            f.kind,
            FrameType::Goaway,
            "expected GOAWAY {code}, got {} {}",
            f.kind,
            describe(&f)
        );
        let g = Goaway::decode(&f.payload).expect("GOAWAY payload decodes");
        assert_eq!(g.code, code, "GOAWAY code (reason {:?})", g.reason);
        self.expect_clean_eof();
        g
    }

    /// Skips DATA and PONG frames until a GOAWAY, which must carry `code` and
    /// be followed by a clean EOF. Returns how many DATA frames were skipped.
    pub fn expect_goaway_after_data(&mut self, code: GoawayCode) -> (usize, Goaway) {
        let mut data = 0;
        loop {
            let f = self.recv_frame();
            match f.kind {
                FrameType::Data => data += 1,
                FrameType::Pong => {}
                FrameType::Goaway => {
                    let g = Goaway::decode(&f.payload).expect("GOAWAY payload decodes");
                    assert_eq!(
                        g.code, code,
                        "GOAWAY code after {data} DATA frames (reason {:?})",
                        g.reason
                    );
                    self.expect_clean_eof();
                    return (data, g);
                }
                other => panic!("expected DATA/PONG then GOAWAY {code}, got {other}"),
            }
        }
    }

    /// The next read must be a clean EOF: `Ok(0)`, not a reset or a timeout.
    pub fn expect_clean_eof(&mut self) {
        match self.read_frame() {
            Ok(Read1::Eof) => {}
            Ok(Read1::Frame(f)) => panic!("expected EOF, got {} {}", f.kind, describe(&f)),
            Err(e) => panic!("expected a clean EOF (read → Ok(0)), got error: {e}"),
        }
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
        self.send_raw(&encode_goaway(GoawayCode::Normal, "bye"));
    }

    /// Sends a `len`-byte message in fragments of `frag` bytes with a PING
    /// after every fragment (the last one too), all in one write; then
    /// expects every PONG in order and the echo, whole, in frames no larger
    /// than the server's `max_frame`.
    pub fn echo_fragmented_with_pings(&mut self, len: usize, frag: usize) {
        let w = self.welcome.expect("welcome");
        let msg = pattern(len, 7);
        let chunks: Vec<&[u8]> = msg.chunks(frag).collect();
        let mut wire = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            wire.extend_from_slice(&encode_frame(FrameType::Data, !last, chunk));
            wire.extend_from_slice(&encode_frame(
                FrameType::Ping,
                false,
                &(i as u32).to_be_bytes(),
            ));
        }
        self.send_raw(&wire);

        let mut pongs = Vec::new();
        let mut reply = Vec::new();
        let mut reply_done = false;
        while !(reply_done && pongs.len() == chunks.len()) {
            let f = self.recv_frame();
            match f.kind {
                FrameType::Pong => pongs.push(f.payload.to_vec()),
                FrameType::Data => {
                    assert!(!reply_done, "DATA after the reply was complete");
                    assert!(
                        f.payload.len() <= w.max_frame as usize,
                        "reply frame of {} bytes is above the server's max_frame",
                        f.payload.len()
                    );
                    reply.extend_from_slice(&f.payload);
                    reply_done = !f.more;
                }
                other => panic!("unexpected {other} {}", describe(&f)),
            }
        }
        for (i, p) in pongs.iter().enumerate() {
            assert_eq!(p, &(i as u32).to_be_bytes(), "PONG {i} out of order");
        }
        assert_eq!(reply.len(), msg.len());
        assert!(
            reply == msg,
            "the {len}-byte reply differs from the message"
        );
    }
}

/// A one-line description of a frame for failure messages.
pub fn describe(f: &Frame) -> String {
    match f.kind {
        FrameType::Goaway => match Goaway::decode(&f.payload) {
            Ok(g) => format!("(code {} reason {:?})", g.code, g.reason),
            Err(e) => format!("(undecodable: {e})"),
        },
        FrameType::Data => format!(
            "(more {}, {} bytes: {:?})",
            f.more,
            f.payload.len(),
            String::from_utf8_lossy(&f.payload[..f.payload.len().min(40)])
        ),
        _ => format!("(more {}, {} bytes)", f.more, f.payload.len()),
    }
}

/// A handshaken client with a small window (no MSS change: see
/// [`Client::connect_small_window`]) whose writes time out after 500 ms, so
/// the server's output backs up and a test's writes cannot block it for long.
pub fn small_window_client(server: &Server) -> Client {
    let mut c = Client::connect_small_window(server.addr, None);
    c.handshake(0);
    c.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    c
}
