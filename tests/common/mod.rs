//! Shared helpers for the end-to-end tests: start the real `tether` binary on
//! a free port (killed on drop; with `--metrics`, its metrics address read
//! from the log), and a tiny blocking client over `std::net::TcpStream` that
//! speaks the wire protocol through `tether::protocol`. `tests/support` builds
//! the pub/sub and HTTP helpers on top of this module.
//!
//! Every wait is bounded: reads have a timeout, waits for the process poll
//! with a deadline, and nothing asserts a tight timing.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether::protocol::{
    decode_frame, encode_frame, encode_message, Frame, FrameType, Goaway, GoawayCode, Hello,
    Status, Welcome,
};

/// The binary under test.
pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// How long any single blocking read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Short timers for tests that exercise deadlines.
pub const FAST_TIMERS: &[&str] = &[
    "--tick-ms",
    "10",
    "--handshake-timeout-ms",
    "300",
    "--min-heartbeat-ms",
    "50",
    "--heartbeat-ms",
    "100",
    "--miss",
    "2",
];

/// A running `tether` process, killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Child,
    /// The address it printed in its `listening on` line.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: i32,
    /// The metrics address, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// Every line the server wrote on stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Starts `tether --listen 127.0.0.1:0 ARGS...` and waits for its
    /// `listening on IP:PORT` line. The echo app unless ARGS name another:
    /// most of these tests are about the transport, which echo shows plainly.
    /// With `--metrics` among the args, also waits for the `metrics on` log line.
    pub fn start(args: &[&str]) -> Server {
        let app: &[&str] = if args.contains(&"--app") {
            &[]
        } else {
            &["--app", "echo"]
        };
        let wants_metrics = args.contains(&"--metrics");
        // Quiet by default (the metrics address is logged at info level);
        // TETHER_TEST_LOG=debug shows the server's log.
        let level = std::env::var("TETHER_TEST_LOG")
            .unwrap_or_else(|_| if wants_metrics { "info" } else { "error" }.to_string());
        let mut child = Command::new(TETHER)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(app)
            .args(args)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the tether binary");
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Both readers keep draining after what they wait for, so the server
        // can never block (or get EPIPE) writing to a full pipe.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
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
                    "tether {args:?} did not print `listening on ...` within {STARTUP_TIMEOUT:?}: \
                     got {other:?}, exit status {status:?}"
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
            pid,
            metrics,
            stderr: log,
            exit: None,
        }
    }

    /// A new client connected to this server (no HELLO sent yet).
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A new client that has completed the handshake with `heartbeat_ms`.
    pub fn open(&self, heartbeat_ms: u32) -> Client {
        let mut c = self.connect();
        c.handshake(heartbeat_ms);
        c
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many file descriptors the server holds (`/proc/PID/fd`).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Polls the fd count until it is at most `target` or `timeout` passes;
    /// returns the last count seen.
    pub fn wait_fd_count(&self, target: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.fd_count();
            if n <= target || Instant::now() >= deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The fd count once it has been the same for a few polls: a baseline
    /// taken while nothing is connected.
    pub fn settled_fd_count(&self) -> usize {
        let mut last = self.fd_count();
        let mut same = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while same < 5 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            let n = self.fd_count();
            if n == last {
                same += 1;
            } else {
                same = 0;
                last = n;
            }
        }
        last
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tether ARGS...` expecting it to exit on its own (startup errors,
/// `--help`); returns (status, stdout, stderr). Killed after `timeout`.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = Command::new(TETHER)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the tether binary");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    (status, stdout, stderr)
}

/// A file in a fresh temporary directory, removed (with the directory) on drop.
pub struct TempFile {
    dir: PathBuf,
    /// The file's path.
    pub path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a new file named `name` in a fresh directory.
    pub fn new(name: &str, contents: &[u8]) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { dir, path }
    }

    /// The path as a `&str` for command lines.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// The directory holding the file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Encodes a frame with an arbitrary `kind` byte (unknown types, MORE on
/// control frames) and a correct CRC, bypassing the library's checks.
pub fn raw_frame(kind_byte: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("payload fits u16");
    let mut head = vec![0xA5, kind_byte];
    head.extend_from_slice(&len.to_be_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head);
    hasher.update(payload);
    head.extend_from_slice(&hasher.finalize().to_be_bytes());
    head.extend_from_slice(payload);
    head
}

/// A HELLO payload (version, flags, heartbeat, token) laid out by hand, so
/// tests can send versions and layouts the library would never produce.
pub fn hello_payload(version: u8, heartbeat_ms: u32, token: &[u8]) -> Vec<u8> {
    let mut p = vec![version, 0];
    p.extend_from_slice(&heartbeat_ms.to_be_bytes());
    p.push(u8::try_from(token.len()).expect("token fits u8"));
    p.extend_from_slice(token);
    p
}

/// A deterministic, non-repeating-looking payload of `len` bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// What a read from the server produced.
#[derive(Debug)]
pub enum Read1 {
    /// A complete frame.
    Frame(Frame),
    /// A clean EOF (read returned `Ok(0)`) between frames.
    Eof,
}

/// A blocking test client.
pub struct Client {
    /// The socket (exposed for shutdown, linger and raw writes).
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
        let stream = TcpStream::connect(addr).expect("connect to tether");
        Client::from_stream(stream)
    }

    /// Wraps an already-connected stream.
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
        let hello = Hello {
            heartbeat_ms,
            token: Bytes::copy_from_slice(token),
            resume: None,
        };
        self.send_raw(&hello.encode_frame());
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

/// A client whose receive buffer is tiny, so the server's output backs up.
pub fn small_window_client(server: &Server) -> Client {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .expect("socket");
    // Before connect, so the advertised window is small from the start.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect(&server.addr.into())
        .expect("connect to tether");
    let stream: TcpStream = socket.into();
    let mut c = Client::from_stream(stream);
    c.handshake(0);
    c.stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    c
}
