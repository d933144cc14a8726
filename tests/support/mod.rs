//! Helpers for the pub/sub, metrics and middlebox end-to-end tests: the real
//! `tether` binary on a free port (killed on drop, its stderr captured so the
//! `metrics on http://...` line can be read), a small blocking wire client,
//! the pub/sub message layouts, and a raw HTTP GET.
//!
//! Kept apart from `tests/common` (copied in spirit, not shared) so these
//! tests do not depend on that module's churn. Every wait is bounded.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether::protocol::{
    decode_frame, encode_frame, encode_message, Frame, FrameType, Goaway, GoawayCode, Hello,
    SessionId, Status, Welcome,
};

/// The binary under test.
pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// How long a single blocking read may wait by default before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `tether` process, killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Child,
    /// The main (wire protocol) address.
    pub addr: SocketAddr,
    /// The metrics address, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// Every line the server wrote on stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `tether --listen 127.0.0.1:0 ARGS...` and waits for `listening on`.
    /// With `--metrics` among the args, also waits for the `metrics on` log line.
    pub fn start(args: &[&str]) -> Server {
        let wants_metrics = args.contains(&"--metrics");
        // The metrics address is logged at info level; otherwise stay quiet.
        let level = std::env::var("TETHER_TEST_LOG")
            .unwrap_or_else(|_| if wants_metrics { "info" } else { "warn" }.to_string());
        let mut child = Command::new(TETHER)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the tether binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Both readers keep draining so the server never blocks on a full pipe.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (mtx, mrx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("metrics on http://").nth(1) {
                        let addr = rest.trim().trim_end_matches("/metrics").to_string();
                        let _ = mtx.send(addr);
                    }
                    eprintln!("[tether] {line}");
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "tether {args:?} did not print `listening on ...` within \
                     {STARTUP_TIMEOUT:?}: got {other:?}, exit status {status:?}"
                );
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected first stdout line from tether: {line:?}")
            });
        let metrics = wants_metrics.then(|| {
            // Logged before `listening on` is printed, so it is already on its way.
            let text = mrx
                .recv_timeout(STARTUP_TIMEOUT)
                .expect("the `metrics on http://IP:PORT/metrics` log line");
            text.parse::<SocketAddr>()
                .unwrap_or_else(|_| panic!("unparsable metrics address {text:?}"))
        });
        Server {
            child,
            addr,
            metrics,
            stderr: log,
        }
    }

    /// A connected client (no HELLO sent yet).
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A client that has completed a fresh handshake.
    pub fn open(&self) -> Client {
        let mut c = self.connect();
        c.handshake(0);
        c
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
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

// ----- the wire client -----

/// What a read produced.
#[derive(Debug)]
pub enum Read1 {
    /// A complete frame.
    Frame(Frame),
    /// A clean EOF between frames.
    Eof,
}

/// A blocking test client over `std::net::TcpStream`.
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
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
        Client::from_stream(TcpStream::connect(addr).expect("connect to tether"))
    }

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

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        Client {
            stream,
            rx: Vec::new(),
            rx_pos: 0,
            welcome: None,
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to tether");
    }

    /// Sends a HELLO, resuming `resume` if given.
    pub fn send_hello(&mut self, heartbeat_ms: u32, resume: Option<SessionId>) {
        let hello = Hello {
            heartbeat_ms,
            token: Bytes::new(),
            resume,
        };
        self.send_raw(&hello.encode_frame());
    }

    /// A fresh HELLO, then the WELCOME.
    pub fn handshake(&mut self, heartbeat_ms: u32) -> Welcome {
        self.send_hello(heartbeat_ms, None);
        self.expect_welcome()
    }

    /// HELLO RESUME `session`, then the WELCOME.
    pub fn resume(&mut self, session: SessionId) -> Welcome {
        self.send_hello(0, Some(session));
        self.expect_welcome()
    }

    /// The session id from the WELCOME.
    pub fn session(&self) -> SessionId {
        self.welcome.expect("handshake done").session
    }

    /// The next frame must be a WELCOME.
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

    /// Sends one DATA message (split at 16 KiB, well under any server's max_frame here).
    pub fn send_message(&mut self, msg: &[u8]) {
        self.send_raw(&encode_message(msg, 16 * 1024));
    }

    /// Subscribes to `channel`.
    pub fn subscribe(&mut self, channel: &[u8]) {
        self.send_message(&sub_msg(channel));
    }

    /// Unsubscribes from `channel`.
    pub fn unsubscribe(&mut self, channel: &[u8]) {
        self.send_message(&unsub_msg(channel));
    }

    /// Publishes `body` on `channel`.
    pub fn publish(&mut self, channel: &[u8], body: &[u8]) {
        self.send_message(&pub_msg(channel, body));
    }

    /// Sends a PING.
    pub fn ping(&mut self, payload: &[u8]) {
        self.send_raw(&encode_frame(FrameType::Ping, false, payload));
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

    /// Reads the next frame or a clean EOF.
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

    /// The next whole DATA message; any other frame panics.
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

    /// The next frame must be GOAWAY `code`, followed by a clean EOF.
    pub fn expect_goaway(&mut self, code: GoawayCode) -> Goaway {
        let f = self.recv_frame();
        assert_eq!(
            f.kind,
            FrameType::Goaway,
            "expected GOAWAY {code}, got {} {}",
            f.kind,
            describe(&f)
        );
        let g = Goaway::decode(&f.payload).expect("GOAWAY decodes");
        assert_eq!(g.code, code, "GOAWAY code (reason {:?})", g.reason);
        self.expect_clean_eof();
        g
    }

    /// Skips DATA and PONG frames until a GOAWAY, which must carry `code` and
    /// be followed by a clean EOF. Returns the DATA frames skipped.
    pub fn expect_goaway_after_data(&mut self, code: GoawayCode) -> (usize, Goaway) {
        let mut data = 0;
        loop {
            let f = self.recv_frame();
            match f.kind {
                FrameType::Data => data += 1,
                FrameType::Pong => {}
                FrameType::Goaway => {
                    let g = Goaway::decode(&f.payload).expect("GOAWAY decodes");
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

    /// The next read must be a clean EOF (`Ok(0)`), not a reset or timeout.
    pub fn expect_clean_eof(&mut self) {
        match self.read_frame() {
            Ok(Read1::Eof) => {}
            Ok(Read1::Frame(f)) => panic!("expected EOF, got {} {}", f.kind, describe(&f)),
            Err(e) => panic!("expected a clean EOF (read → Ok(0)), got error: {e}"),
        }
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Drops the connection abruptly: SO_LINGER 0, so the server sees a
    /// reset, never a GOAWAY NORMAL.
    pub fn abort(self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(self);
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
