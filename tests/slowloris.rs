//! Slowloris: 1,000 connections that trickle one byte a second and never
//! finish a frame. Some never finish their HELLO (the handshake timeout must
//! close them); most send a valid HELLO and then trickle a DATA frame (the
//! frame-completion deadline, `--frame-timeout-ms`, must close them with
//! GOAWAY IDLE_TIMEOUT long before the 30 s idle timeout would). Every one
//! must get its GOAWAY and then a clean EOF, never early and within a bounded
//! slack, while a normal client on the same server keeps its ping round trips
//! short.
//!
//! One thread drives all the attackers over non-blocking sockets; one more
//! runs the normal client. About 1,000 descriptors on each side.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Read1, Server};
use tether::protocol::{
    decode_frame, encode_frame, FrameType, Goaway, GoawayCode, Hello, Status, Welcome,
};

/// Attackers in all.
const ATTACKERS: usize = 1_000;
/// Of which this many never finish their HELLO.
const PRE_HELLO: usize = 200;
/// The server's handshake timeout and frame-completion deadline.
const TIMEOUT_MS: u64 = 2_000;
/// How late after its deadline a GOAWAY may be observed: ticks are 10 ms, but
/// this loop polls every 50 ms over 1,000 sockets on a shared, noisy machine.
const LATE_SLACK: Duration = Duration::from_millis(3_000);
/// The whole attack phase ends by then, whatever happens.
const ATTACK_LIMIT: Duration = Duration::from_secs(12);
/// How early a GOAWAY may come, measured from our side. The server reads the
/// clock once per loop turn (docs/architecture.md, "The loop") and stamps a connection
/// accepted in a busy turn (1,000 connects arrive at once) with that turn's
/// reading, which can precede our `connect()` returning by the turn's work:
/// a few ms were seen on an idle machine, 33 ms under a concurrent soak. Its
/// deadline is exact on its own clock; this bound only catches a wrong one.
const EARLY_TOLERANCE: Duration = Duration::from_millis(250);
/// The bound on the normal client's ping round trip (loopback).
const P99_BOUND: Duration = Duration::from_millis(200);

/// One trickling attacker.
struct Attacker {
    stream: Option<TcpStream>,
    pre_hello: bool,
    /// The bytes it trickles, one a second (never all of them).
    script: Vec<u8>,
    sent: usize,
    next_write: Instant,
    /// When the server's deadline started, at the earliest: the connect
    /// (handshake timer) or the first trickled byte (frame timer).
    clock_start: Instant,
    rx: Vec<u8>,
    goaway: Option<(GoawayCode, Instant)>,
    eof: bool,
    error: Option<String>,
}

impl Attacker {
    fn done(&self) -> bool {
        self.eof || self.error.is_some()
    }

    /// Writes the next byte if one is due (and no GOAWAY came yet).
    fn trickle(&mut self, now: Instant) {
        if self.goaway.is_some() || now < self.next_write || self.sent >= self.script.len() {
            return;
        }
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        match stream.write(&self.script[self.sent..self.sent + 1]) {
            Ok(_) => {
                self.sent += 1;
                self.next_write += Duration::from_secs(1);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => self.error = Some(format!("write: {e}")),
        }
    }

    /// Reads what is there; decodes GOAWAY and EOF.
    fn read(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.decode(now);
                    if !self.rx.is_empty() {
                        self.error = Some(format!("EOF with {} bytes undecoded", self.rx.len()));
                    }
                    self.eof = true;
                    self.stream = None; // close our side
                    return;
                }
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.error = Some(format!("read: {e}"));
                    self.stream = None;
                    return;
                }
            }
        }
        self.decode(now);
    }

    /// Decodes the complete frames received: one GOAWAY is all the server may send.
    fn decode(&mut self, now: Instant) {
        loop {
            match decode_frame(&self.rx, 65535) {
                Ok(Status::Complete((frame, used))) => {
                    self.rx.drain(..used);
                    if frame.kind != FrameType::Goaway {
                        self.error = Some(format!("unexpected {} frame", frame.kind));
                        return;
                    }
                    match Goaway::decode(&frame.payload) {
                        Ok(g) if self.goaway.is_none() => self.goaway = Some((g.code, now)),
                        Ok(_) => self.error = Some("second GOAWAY".into()),
                        Err(e) => self.error = Some(format!("bad GOAWAY: {e}")),
                    }
                }
                Ok(Status::Partial) => return,
                Err(e) => {
                    self.error = Some(format!("undecodable bytes from the server: {e}"));
                    return;
                }
            }
        }
    }
}

/// Reads one frame with a blocking read timeout (set by the caller).
fn read_welcome(stream: &mut TcpStream) -> Welcome {
    let mut rx = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if let Ok(Status::Complete((frame, _))) = decode_frame(&rx, 65535) {
            assert_eq!(frame.kind, FrameType::Welcome, "expected WELCOME");
            return Welcome::decode(&frame.payload).expect("WELCOME decodes");
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("EOF before WELCOME"),
            Ok(n) => rx.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading WELCOME: {e}"),
        }
    }
}

/// The normal client: handshakes, then pings back to back (20 ms apart)
/// until told to stop; returns every round trip. Any failure panics the
/// thread, which the test reports.
fn normal_client(server_addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut client = common::Client::connect(server_addr);
    client.handshake(1_000);
    let mut rtts = Vec::new();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let payload = seq.to_be_bytes();
        let sent = Instant::now();
        client.ping(&payload);
        client.expect_pong(&payload);
        rtts.push(sent.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
    client.goaway_normal();
    match client.read_frame() {
        Ok(Read1::Eof) => {}
        Ok(Read1::Frame(f)) => assert!(
            matches!(f.kind, FrameType::Pong | FrameType::Goaway),
            "unexpected {} after our GOAWAY",
            f.kind
        ),
        Err(e) => panic!("normal client close: {e}"),
    }
    rtts
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn slowloris_is_closed_while_a_normal_client_is_served() {
    let test_start = Instant::now();
    let timeout = TIMEOUT_MS.to_string();
    let server = Server::start(&[
        "--handshake-timeout-ms",
        &timeout,
        "--frame-timeout-ms",
        &timeout,
        "--tick-ms",
        "10",
        // Idle timeout 10 s × 3: far beyond the attack, so only the
        // frame deadline can close the trickling DATA frames.
        "--heartbeat-ms",
        "10000",
        "--max-connections",
        "5000",
    ]);
    let baseline_fds = server.settled_fd_count();

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let (addr, stop) = (server.addr, Arc::clone(&stop));
        thread::spawn(move || normal_client(addr, stop))
    };

    // A DATA frame that would be complete only after ~108 s at 1 byte/s.
    let data_script = encode_frame(FrameType::Data, false, &[b'x'; 100]).to_vec();
    let hello_script = Hello {
        version: tether::protocol::PROTOCOL_V1,
        heartbeat_ms: 10_000,
        token: Bytes::new(),
        resume: None,
    }
    .encode_frame()
    .to_vec();

    let mut attackers = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        let mut stream = TcpStream::connect(server.addr).expect("attacker connect");
        stream.set_nodelay(true).expect("nodelay");
        let pre_hello = i < PRE_HELLO;
        let now = Instant::now();
        if !pre_hello {
            stream.write_all(&hello_script).expect("HELLO");
        }
        attackers.push(Attacker {
            stream: Some(stream),
            pre_hello,
            script: if pre_hello {
                hello_script.clone()
            } else {
                data_script.clone()
            },
            sent: 0,
            next_write: now,
            clock_start: now,
            rx: Vec::new(),
            goaway: None,
            eof: false,
            error: None,
        });
    }
    // The HELLO senders must be welcomed before they start trickling.
    for a in attackers.iter_mut().filter(|a| !a.pre_hello) {
        let stream = a.stream.as_mut().expect("open");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let w = read_welcome(stream);
        assert_eq!(
            w.idle_timeout_ms, 30_000,
            "idle timeout must be out of reach"
        );
        let now = Instant::now();
        a.next_write = now;
        a.clock_start = now;
    }
    for a in &attackers {
        a.stream
            .as_ref()
            .expect("open")
            .set_nonblocking(true)
            .expect("nonblocking");
    }
    let attack_start = Instant::now();
    eprintln!(
        "{ATTACKERS} attackers up ({PRE_HELLO} before HELLO) after {:?}",
        attack_start - test_start
    );

    while attackers.iter().any(|a| !a.done()) && attack_start.elapsed() < ATTACK_LIMIT {
        let now = Instant::now();
        for a in attackers.iter_mut().filter(|a| !a.done()) {
            a.trickle(now);
            a.read(now);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let attack_time = attack_start.elapsed();
    // Keep pinging a little after the last close, then stop the normal client.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut rtts = pinger
        .join()
        .expect("the normal client failed during the attack");

    let mut failures = Vec::new();
    let (mut handshake_closed, mut frame_closed) = (0, 0);
    let (mut earliest, mut latest) = (Duration::MAX, Duration::ZERO);
    for (i, a) in attackers.iter().enumerate() {
        let expect: &[GoawayCode] = if a.pre_hello {
            // Its first byte may reach the server before the accept, so the
            // frame deadline can tie with the handshake deadline.
            &[GoawayCode::HandshakeTimeout, GoawayCode::IdleTimeout]
        } else {
            &[GoawayCode::IdleTimeout]
        };
        let outcome = match (&a.error, a.goaway, a.eof) {
            (Some(e), _, _) => Err(format!("error: {e}")),
            (None, None, _) => Err("no GOAWAY".to_string()),
            (None, Some(_), false) => Err("GOAWAY but no EOF".to_string()),
            (None, Some((code, at)), true) => {
                let after = at - a.clock_start;
                latest = latest.max(after);
                earliest = earliest.min(after);
                if !expect.contains(&code) {
                    Err(format!("GOAWAY {code}, expected {expect:?}"))
                } else if after + EARLY_TOLERANCE < Duration::from_millis(TIMEOUT_MS) {
                    Err(format!(
                        "closed early, {after:?} after its deadline started"
                    ))
                } else if after > Duration::from_millis(TIMEOUT_MS) + LATE_SLACK {
                    Err(format!("closed late, {after:?} after its deadline started"))
                } else {
                    if code == GoawayCode::HandshakeTimeout {
                        handshake_closed += 1;
                    } else {
                        frame_closed += 1;
                    }
                    Ok(())
                }
            }
        };
        if let Err(e) = outcome {
            failures.push(format!(
                "attacker {i} ({}; {} bytes trickled): {e}",
                if a.pre_hello {
                    "before HELLO"
                } else {
                    "after HELLO"
                },
                a.sent
            ));
        }
    }

    rtts.sort();
    let p50 = percentile(&rtts, 50.0);
    let p99 = percentile(&rtts, 99.0);
    let max = *rtts.last().expect("some pings");
    eprintln!(
        "attack phase {attack_time:?}: {handshake_closed} HANDSHAKE_TIMEOUT, {frame_closed} IDLE_TIMEOUT, \
         {} failures; closes {earliest:?}..{latest:?} after their deadlines started; \
         normal client: {} pings, p50 {p50:?}, p99 {p99:?}, max {max:?}",
        failures.len(),
        rtts.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {ATTACKERS} attackers were not closed as expected; first few:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        rtts.len() >= 20,
        "the normal client got only {} round trips",
        rtts.len()
    );
    assert!(
        p99 < P99_BOUND,
        "normal client p99 {p99:?} ≥ {P99_BOUND:?} during the attack"
    );
    // Every slot is given back: the server is down to its idle descriptors.
    let fds = server.wait_fd_count(baseline_fds, Duration::from_secs(5));
    assert!(
        fds <= baseline_fds,
        "server holds {fds} fds after the attack, {baseline_fds} before"
    );
    assert!(
        test_start.elapsed() < Duration::from_secs(25),
        "test took {:?}",
        test_start.elapsed()
    );
}
