//! The generator's event loop: one `mio::Poll` over a slab of connections.
//!
//! This file owns the transport and the run's stages: paced connects, the
//! handshake, reads into one shared buffer, deadlines and reclaiming slots at
//! the end of each turn; `engine/write.rs` the writes from one shared scratch
//! buffer (a connection keeps bytes only when the kernel would not take them)
//! and polite closes.
//! What each mode sends and expects lives in `modes.rs`; TLS under the
//! connections in `engine/tls.rs` (the plaintext path only branches to it).

use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::time::{Duration, Instant};
use tether::client::ClientTls;
use tether::protocol::{encode_goaway, FrameType, GoawayCode, Hello, ProtocolError};
use tether::reactor::io::{read_once, shutdown_write, ReadOutcome};

use crate::args::{Args, Mode};
use crate::conn::{self, Conn, Phase, Role};
use crate::stats::{sample_proc, ErrorKind, ProcSample, Stats};
use crate::storm::{Storm, STORM_HEARTBEAT_MS, STORM_MISS_NS};
use crate::timeline::Timeline;
use crate::wire;

mod observe;
mod stages;
mod timers;
mod tls;
mod write;
pub use stages::{Stage, Window};

/// Shared read buffer: large enough that a burst of replies is one read.
const READ_BUFFER: usize = 256 * 1024;
/// Time allowed from connect to WELCOME (docs/protocol.md §3's server default).
pub const HANDSHAKE_TIMEOUT_NS: u64 = 5_000_000_000;
/// Time allowed from our GOAWAY and FIN to the server's EOF (the server's
/// default linger is 2 s).
pub const CLOSE_TIMEOUT_NS: u64 = 3_000_000_000;
/// Longest ramp-up: a run is bounded even if connections never come up.
pub const RAMP_LIMIT_NS: u64 = 60_000_000_000;
/// Longest wait for replies still in flight when the measurement ends.
pub const DRAIN_LIMIT_NS: u64 = 2_000_000_000;
/// Longest time for closing every connection at the end.
pub const CLOSE_LIMIT_NS: u64 = 10_000_000_000;
/// Polite closes started per loop turn at the end of the run.
const CLOSES_PER_TURN: usize = 256;
/// Heartbeat intervals without any frame before a connection counts as dead.
pub const MISS: u64 = 3;
/// Most connects started per loop turn, so that a slow `connect()` (the
/// kernel searching a crowded ephemeral port range) cannot hold up the
/// handshakes already in flight.
const CONNECTS_PER_TURN: usize = 64;
/// Longest poll sleep, so the progress line and stage changes stay timely.
const MAX_SLEEP_NS: u64 = 100_000_000;

/// The whole generator state.
pub struct Engine {
    /// The command line.
    pub args: Args,
    /// TLS settings for every connection (`--tls`), or plaintext.
    tls: Option<ClientTls>,
    poll: Poll,
    /// Every live connection; the key is half of the mio token.
    pub conns: Slab<Conn>,
    next_generation: u32,
    rbuf: Vec<u8>,
    /// Scratch for frames being sent to one connection; flushed after each handler.
    pub wbuf: Vec<u8>,
    hello: Vec<u8>,
    /// Storm clients' HELLO: the same, with their longer heartbeat.
    storm_hello: Vec<u8>,
    /// Counters.
    pub stats: Stats,
    start: Instant,
    /// Now, in ns since the run started, refreshed after every poll and read.
    pub now_ns: u64,
    /// The current stage.
    pub stage: Stage,
    stage_since_ns: u64,
    next_source: usize,
    /// Connections started so far.
    pub started: u64,
    /// Connections in Connecting or Handshaking.
    pub connecting: usize,
    /// Connections in Open.
    pub open: usize,
    handshake_deadlines: VecDeque<(u64, Token)>,
    close_deadlines: VecDeque<(u64, Token)>,
    /// Heartbeat checks, earliest first: `(due, token)`. A heap, not a FIFO,
    /// because first heartbeats are spread over the interval (see `first_heartbeat_ns`).
    pub heartbeats: BinaryHeap<Reverse<(u64, usize)>>,
    dead: Vec<usize>,
    /// Connections still to close in the Close stage.
    to_close: Vec<Token>,
    /// The server's `max_frame` from WELCOME: messages are split at it.
    pub peer_max_frame: usize,
    /// A reason to stop the run at once (e.g. the server lacks pub/sub).
    pub fatal: Option<String>,
    /// The measured window.
    pub window: Window,
    /// Mode-specific state.
    pub work: crate::modes::Workload,
    /// The run over time (charts, progress line).
    pub timeline: Timeline,
    /// When the progress line was last printed; `None` before the first.
    last_progress_ns: Option<u64>,
    /// Whether to print the progress line (stderr is a terminal).
    progress: bool,
}

fn token_of(key: usize, generation: u32) -> Token {
    Token(key | (generation as usize) << 32)
}

/// When the `n`th connection to open sends its first heartbeat, after its
/// WELCOME: spread over the interval by the golden-ratio sequence, so that
/// connections opened in one burst do not heartbeat in lockstep and the
/// heartbeat rate in any window is `connections / interval`.
fn first_heartbeat_ns(n: u64, interval_ns: u64) -> u64 {
    const GOLDEN: f64 = 0.618_033_988_749_894_8;
    let fraction = (n as f64 * GOLDEN).fract();
    ((fraction * interval_ns as f64) as u64).max(interval_ns / 100)
}

fn split_token(token: Token) -> (usize, u32) {
    (token.0 & 0xffff_ffff, (token.0 >> 32) as u32)
}

impl Engine {
    /// A generator for `args`, over TLS with `tls`, not yet started.
    pub fn new(args: Args, tls: Option<ClientTls>, progress: bool) -> io::Result<Engine> {
        let hello_with = |heartbeat_ms: u32| {
            Hello {
                version: args.protocol,
                heartbeat_ms,
                token: bytes::Bytes::from(args.token.clone()),
                resume: None,
            }
            .encode_frame()
            .to_vec()
        };
        let hello = hello_with(args.heartbeat_ms);
        let storm_hello = hello_with(STORM_HEARTBEAT_MS);
        let stats = Stats::new().map_err(|e| io::Error::other(e.to_string()))?;
        let mut work = crate::modes::Workload::new(&args);
        if args.mode == Mode::Storm {
            let storm =
                Storm::new(args.storm as u64).map_err(|e| io::Error::other(e.to_string()))?;
            work.storm = Some(storm);
        }
        Ok(Engine {
            poll: Poll::new()?,
            conns: Slab::with_capacity(args.connections.min(100_000) + 1),
            next_generation: 0,
            rbuf: vec![0; READ_BUFFER],
            wbuf: Vec::with_capacity(64 * 1024),
            hello,
            storm_hello,
            stats,
            start: Instant::now(),
            now_ns: 0,
            stage: Stage::Ramp,
            stage_since_ns: 0,
            next_source: 0,
            started: 0,
            connecting: 0,
            open: 0,
            handshake_deadlines: VecDeque::new(),
            close_deadlines: VecDeque::new(),
            heartbeats: BinaryHeap::new(),
            dead: Vec::new(),
            to_close: Vec::new(),
            peer_max_frame: u16::MAX as usize,
            fatal: None,
            window: Window::default(),
            work,
            timeline: Timeline::for_run(args.warmup_secs + args.duration_secs),
            last_progress_ns: None,
            progress,
            args,
            tls,
        })
    }

    /// Whether the run speaks TLS.
    pub fn speaks_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn clock(&mut self) -> u64 {
        self.now_ns = self.start.elapsed().as_nanos() as u64;
        self.now_ns
    }

    /// Runs every stage to the end.
    pub fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        self.clock();
        while self.stage != Stage::Done {
            self.advance_stage();
            if self.stage == Stage::Done {
                break;
            }
            self.ramp();
            self.close_some();
            self.workload_tick();
            self.fire_deadlines();
            self.fire_heartbeats();
            self.reap();
            self.observe(false);
            let sleep = Duration::from_nanos(self.sleep_ns());
            match self.poll.poll(&mut events, Some(sleep)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fatal = Some(format!("poll failed: {e}"));
                    break;
                }
            }
            self.clock();
            for event in events.iter() {
                self.handle_event(event.token(), event.is_writable(), event.is_read_closed());
            }
            self.reap();
        }
        self.observe(true);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            // A server that has not closed after our GOAWAY and FIN is late.
            if self.conns[key].phase == Phase::Closing && self.fatal.is_none() {
                self.fail(key, ErrorKind::Timeout);
            }
            self.kill(key);
        }
        self.reap();
    }

    fn sleep_ns(&self) -> u64 {
        if self.can_ramp() || !self.to_close.is_empty() || self.storm_pending() {
            return 0;
        }
        let mut due = self.now_ns + MAX_SLEEP_NS;
        if self.stage < Stage::Close {
            due = due.min(self.timeline.next_due_ns());
        }
        for q in [&self.handshake_deadlines, &self.close_deadlines] {
            if let Some((t, _)) = q.front() {
                due = due.min(*t);
            }
        }
        if let Some(Reverse((t, _))) = self.heartbeats.peek() {
            due = due.min(*t);
        }
        if let Some(t) = self.work.next_due_ns(self) {
            due = due.min(t);
        }
        if let Some(t) = self.stage_end_ns() {
            due = due.min(t);
        }
        due.saturating_sub(self.now_ns)
    }

    /// Starts connections while below the target and the connect-concurrency bound.
    fn ramp(&mut self) {
        if self.stage != Stage::Ramp || self.args.mode == Mode::Churn {
            return;
        }
        let mut burst = 0;
        while self.can_ramp() && burst < CONNECTS_PER_TURN {
            let role = self.work.role_for(self.started, self.args.mode);
            // A connect that cannot start is counted in the stats.
            let _ = self.open_connection(role);
            burst += 1;
        }
    }

    fn can_ramp(&self) -> bool {
        self.stage == Stage::Ramp
            && self.args.mode != Mode::Churn
            && self.started < self.work.target_connections
            && self.connecting < self.args.connect_concurrency
    }

    /// Starts one connect; failures to even start are counted (and returned).
    pub fn open_connection(&mut self, role: Role) -> Result<(), ErrorKind> {
        self.started += 1;
        let source = if self.args.sources.is_empty() {
            None
        } else {
            let ip = self.args.sources[self.next_source % self.args.sources.len()];
            self.next_source += 1;
            Some(ip)
        };
        let addr = match (role, self.args.publish_addr) {
            (Role::Publisher, Some(publish_addr)) => publish_addr,
            _ => self.args.addr,
        };
        let mut stream = match conn::start_connect(addr, source) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("connect: {e}");
                let kind = conn::connect_error_kind(&e);
                self.stats.error(kind);
                return Err(kind);
            }
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let entry = self.conns.vacant_entry();
        let token = token_of(entry.key(), generation);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::debug!("register: {e}");
            self.stats.error(ErrorKind::ConnectFailed);
            return Err(ErrorKind::ConnectFailed);
        }
        entry.insert(Conn::new(stream, generation, role, self.now_ns));
        self.connecting += 1;
        self.handshake_deadlines
            .push_back((self.now_ns + HANDSHAKE_TIMEOUT_NS, token));
        Ok(())
    }

    /// Changes a connection's phase, keeping the phase counters right.
    pub fn set_phase(&mut self, key: usize, phase: Phase) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let old = c.phase;
        if old == phase || old == Phase::Dead {
            return;
        }
        c.phase = phase;
        if matches!(old, Phase::Connecting | Phase::Handshaking) {
            self.connecting -= 1;
        }
        if old == Phase::Open {
            self.open -= 1;
        }
        match phase {
            Phase::Connecting | Phase::Handshaking => self.connecting += 1,
            Phase::Open => {
                self.open += 1;
                self.stats.peak_open = self.stats.peak_open.max(self.open);
            }
            Phase::Closing => {
                let token = token_of(key, c.generation);
                self.close_deadlines
                    .push_back((self.now_ns + CLOSE_TIMEOUT_NS, token));
            }
            Phase::Dead => self.dead.push(key),
        }
    }

    /// Ends a connection without counting an error.
    pub fn kill(&mut self, key: usize) {
        self.set_phase(key, Phase::Dead);
    }

    /// Ends a connection and counts why.
    pub fn fail(&mut self, key: usize, kind: ErrorKind) {
        if let Some(c) = self.conns.get(key) {
            if c.role == Role::Storm && c.is_connecting() {
                if let Some(s) = self.work.storm.as_mut() {
                    s.on_failed(kind);
                }
            }
        }
        if self.conns.get(key).is_some_and(|c| c.phase != Phase::Dead) {
            self.stats.error(kind);
            self.kill(key);
        }
    }

    /// Ends a connection for a protocol violation, remembering the first one.
    pub fn protocol_error(&mut self, key: usize, what: String) {
        log::debug!("protocol error on {key}: {what}");
        if self.stats.first_protocol_error.is_none() {
            self.stats.first_protocol_error = Some(what);
        }
        self.fail(key, ErrorKind::Protocol);
    }

    fn reap(&mut self) {
        for key in std::mem::take(&mut self.dead) {
            if let Some(mut c) = self.conns.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
        }
    }

    fn live(&self, token: Token) -> Option<usize> {
        let (key, generation) = split_token(token);
        self.conns
            .get(key)
            .filter(|c| c.generation == generation && c.phase != Phase::Dead)
            .map(|_| key)
    }

    fn handle_event(&mut self, token: Token, writable: bool, read_closed: bool) {
        let Some(key) = self.live(token) else {
            return;
        };
        if self.conns[key].phase == Phase::Connecting {
            match conn::connect_result(&self.conns[key].stream) {
                Ok(false) => return,
                Ok(true) => {
                    self.set_phase(key, Phase::Handshaking);
                    if self.tls.is_some() && !self.start_tls(key) {
                        return;
                    }
                    let hello = if self.conns[key].role == Role::Storm {
                        &self.storm_hello
                    } else {
                        &self.hello
                    };
                    self.wbuf.extend_from_slice(hello);
                    self.flush(key);
                }
                Err(e) => {
                    log::debug!("connect failed: {e}");
                    let kind = conn::connect_error_kind(&e);
                    self.fail(key, kind);
                    return;
                }
            }
        } else if writable && !self.conns[key].out.is_empty() {
            self.flush(key);
        }
        self.read_ready(key, read_closed);
    }

    fn read_ready(&mut self, key: usize, read_closed: bool) {
        if self.conns.get(key).is_some_and(|c| c.tls.is_some()) {
            self.read_ready_tls(key);
            return;
        }
        let mut rbuf = std::mem::take(&mut self.rbuf);
        while let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) {
            match read_once(&mut c.stream, &mut rbuf) {
                ReadOutcome::Data(n) => {
                    self.deliver(key, &rbuf[..n]);
                    // A short read drained the socket and epoll (edge-triggered)
                    // reports the next arrival; skip the read that would say
                    // EAGAIN. Not when the FIN is already in: no later edge
                    // would announce that EOF.
                    if n < rbuf.len() && !read_closed {
                        break;
                    }
                }
                ReadOutcome::Eof => {
                    self.on_eof(key);
                    break;
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Failed(e) => {
                    log::debug!("read failed: {e}");
                    self.fail(key, ErrorKind::Reset);
                    break;
                }
            }
        }
        self.rbuf = rbuf;
    }

    /// Decodes and handles the frames in `data` (bytes read from `key`, or
    /// over TLS decrypted), then flushes what they produced.
    fn deliver(&mut self, key: usize, data: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut decoder = std::mem::replace(&mut c.decoder, wire::decoder());
        self.clock();
        let result = decoder.feed_ref(data, |frame| {
            self.on_frame(key, frame.kind, frame.more, frame.payload)
        });
        if let Some(c) = self.conns.get_mut(key) {
            c.decoder = decoder;
        }
        if let Err(e) = result {
            self.protocol_error(key, e.to_string());
        }
        self.flush(key);
    }

    fn on_eof(&mut self, key: usize) {
        let c = &self.conns[key];
        match c.phase {
            Phase::Closing => {
                self.work.on_closed(key, &mut self.stats, c, self.now_ns);
                self.kill(key);
            }
            Phase::Connecting | Phase::Handshaking | Phase::Open => {
                if c.got_goaway {
                    self.kill(key);
                } else {
                    self.fail(key, ErrorKind::Eof);
                }
            }
            Phase::Dead => {}
        }
    }

    /// Handles one complete frame; returns whether to keep reading this connection.
    fn on_frame(&mut self, key: usize, kind: FrameType, more: bool, payload: &[u8]) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        c.last_rx_ns = self.now_ns;
        match (c.phase, kind) {
            (Phase::Dead, _) => false,
            (_, FrameType::Goaway) => {
                let code = match tether::protocol::Goaway::decode(payload) {
                    Ok(g) => g.code,
                    Err(e) => {
                        self.protocol_error(key, e.to_string());
                        return false;
                    }
                };
                self.stats.goaway(code);
                if c.role == Role::Storm && c.is_connecting() {
                    if let Some(s) = self.work.storm.as_mut() {
                        s.on_goaway(code);
                    }
                }
                c.got_goaway = true;
                let ours = c.phase == Phase::Closing;
                if !ours {
                    log::debug!("GOAWAY {code} on {key}");
                    let replies = self.stats.messages_total;
                    self.work.on_goaway(key, code, replies, &mut self.fatal);
                    self.stats.error(ErrorKind::Goaway);
                    // Answer the close: FIN, then read to the server's EOF.
                    c.fin_pending = true;
                    self.set_phase(key, Phase::Closing);
                }
                true
            }
            (Phase::Handshaking, FrameType::Welcome) => {
                match tether::protocol::Welcome::decode(payload) {
                    Ok(w) if w.version != self.args.protocol => {
                        let sent = self.args.protocol;
                        let what = format!(
                            "WELCOME for version {} to our version {sent} HELLO",
                            w.version
                        );
                        self.protocol_error(key, what);
                        false
                    }
                    Ok(w) => {
                        let asked = if c.role == Role::Storm {
                            STORM_HEARTBEAT_MS
                        } else {
                            self.args.heartbeat_ms
                        };
                        let hb_ms = if asked == 0 {
                            w.heartbeat_ms
                        } else {
                            asked.min(w.heartbeat_ms.max(1))
                        };
                        c.heartbeat_ns = u64::from(hb_ms.max(1)) * 1_000_000;
                        self.peer_max_frame = usize::from(w.max_frame.max(1));
                        self.stats.handshakes += 1;
                        let token = token_of(key, c.generation);
                        let first =
                            self.now_ns + first_heartbeat_ns(self.stats.handshakes, c.heartbeat_ns);
                        self.heartbeats.push(Reverse((first, token.0)));
                        self.set_phase(key, Phase::Open);
                        self.work_on_open(key);
                        true
                    }
                    Err(e) => {
                        self.protocol_error(key, format!("bad WELCOME: {e}"));
                        false
                    }
                }
            }
            (Phase::Handshaking | Phase::Connecting, _) => {
                let e = ProtocolError::Unexpected(kind);
                self.protocol_error(key, format!("{e} before WELCOME"));
                false
            }
            (Phase::Open | Phase::Closing, FrameType::Ping) => {
                wire::put_frame(&mut self.wbuf, FrameType::Pong, false, payload);
                true
            }
            (Phase::Open, FrameType::Pong | FrameType::Data) => {
                self.work_on_frame(key, kind, more, payload)
            }
            // Replies that cross our GOAWAY are neither counted nor errors.
            (Phase::Closing, FrameType::Pong | FrameType::Data) => true,
            (Phase::Open | Phase::Closing, FrameType::Hello | FrameType::Welcome) => {
                self.protocol_error(key, format!("unexpected {kind} from the server"));
                false
            }
        }
    }
}
