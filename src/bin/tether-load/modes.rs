//! The workloads: what each mode sends once a connection is open, what it
//! expects back, and what it measures.
//!
//! - **pingpong**: `depth` PINGs in flight per connection; each PONG is timed
//!   against its PING's send time, kept in one shared table indexed by
//!   `(slab key, sequence % depth)` (PONGs come back in order on a stream), so
//!   even an empty payload is timed. With `--payload` ≥ 8 the PING carries its
//!   sequence number and each PONG is checked against it.
//! - **echo**: `depth` DATA messages of `size` bytes in flight; each carries
//!   its sequence number and send time in its first 16 bytes.
//! - **idle**: only heartbeats; each PING carries its send time.
//! - **churn**: connect, handshake, GOAWAY NORMAL + FIN, read to EOF; timed
//!   from connect to EOF.
//! - **fanout**: subscribers subscribe; one publisher publishes at `rate`;
//!   each delivery is timed against the send time in its body. Protocol 1
//!   (`S`, `P`, `M`: docs/protocol.md §5) or 2 (SUBSCRIBE, PUBLISH without
//!   ack, PUBLICATION: §7); the messages are `fanout.rs`'s.
//! - **storm**: the established clients heartbeat like idle's (each PING
//!   timed); the storm clients' connects and outcomes are `storm.rs`'s.

use tether::protocol::{FrameType, GoawayCode};

use crate::args::{Args, Mode};
use crate::conn::{Conn, Phase, Role};
use crate::engine::{Engine, Stage};
use crate::fanout::{FanoutWire, Incoming, Unexpected};
use crate::stats::Stats;
use crate::wire;

/// Delay between the end of ramp-up and the first publish, so every
/// subscriber's `S` has reached the server (v1 has no subscribe ack).
const FANOUT_SETTLE_NS: u64 = 200_000_000;
/// Longest wait after ramp-up for every v2 SUBSCRIBE_REPLY before publishing anyway.
const SUBSCRIBE_WAIT_NS: u64 = 5_000_000_000;
/// Most publishes or churn connects started in one loop turn when behind.
const MAX_BURST: u64 = 1_000;
/// Publisher backlog above which publishing pauses: the server is not reading.
const MAX_PUBLISHER_BACKLOG: usize = 4 << 20;

/// Mode-specific state shared by all connections.
pub struct Workload {
    mode: Mode,
    /// Connections the ramp-up opens (subscribers plus the publisher in fanout).
    pub target_connections: u64,
    depth: usize,
    /// Pingpong send times, `depth` slots per slab key.
    send_ns: Vec<u64>,
    prefix: Vec<u8>,
    /// Fanout's messages in the run's protocol.
    wire: FanoutWire,
    /// The fanout publisher's slab key and generation.
    publisher: Option<(usize, u32)>,
    /// When fanout began waiting for its subscriptions (the first tick after ramp-up).
    settle_from_ns: Option<u64>,
    publish_start_ns: Option<u64>,
    /// v2 subscribers whose SUBSCRIBE was answered OK.
    pub subscribed: u64,
    /// Messages published.
    pub published: u64,
    /// Deliveries expected: each publish times the subscribers open then.
    pub expected: u64,
    /// Deliveries received.
    pub delivered: u64,
    /// Publishes skipped because the publisher's backlog was full.
    pub publisher_blocked: u64,
    churn_start_ns: Option<u64>,
    /// Storm mode's bookkeeping (set by the engine in storm mode).
    pub storm: Option<crate::storm::Storm>,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at + 8)?;
    Some(u64::from_be_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
    ]))
}

impl Workload {
    /// State for the mode in `args`.
    pub fn new(args: &Args) -> Workload {
        let target = match args.mode {
            Mode::Fanout => args.connections as u64 + 1,
            Mode::Churn => 0,
            Mode::PingPong | Mode::Echo | Mode::Idle | Mode::Storm => args.connections as u64,
        };
        let send_ns = if args.mode == Mode::PingPong {
            vec![0; (args.connections + 1) * args.depth]
        } else {
            Vec::new()
        };
        Workload {
            mode: args.mode,
            target_connections: target,
            depth: args.depth,
            send_ns,
            prefix: Vec::with_capacity(300),
            wire: FanoutWire::new(
                args.protocol,
                args.verbatim_deliveries,
                args.channel.as_bytes(),
            ),
            publisher: None,
            settle_from_ns: None,
            publish_start_ns: None,
            subscribed: 0,
            published: 0,
            expected: 0,
            delivered: 0,
            publisher_blocked: 0,
            churn_start_ns: None,
            storm: None,
        }
    }

    /// The role of the `n`th connection started.
    pub fn role_for(&self, n: u64, mode: Mode) -> Role {
        match (mode, n) {
            (Mode::Fanout, 0) => Role::Publisher,
            (Mode::Fanout, _) => Role::Subscriber,
            _ => Role::Worker,
        }
    }

    /// When the next paced action (publish, churn connect) is due.
    pub fn next_due_ns(&self, e: &Engine) -> Option<u64> {
        let per = 1e9 / e.args.rate;
        match self.mode {
            Mode::Churn => self
                .churn_start_ns
                .map(|s| s + (e.started as f64 * per) as u64),
            Mode::Fanout => self
                .publish_start_ns
                .map(|s| s + (self.published as f64 * per) as u64),
            // Storm connects start every turn (the loop does not sleep then).
            Mode::PingPong | Mode::Echo | Mode::Idle | Mode::Storm => None,
        }
    }

    /// Requests still waiting for their reply.
    pub fn outstanding(&self, e: &Engine) -> u64 {
        match self.mode {
            Mode::PingPong | Mode::Echo => e
                .conns
                .iter()
                .filter(|(_, c)| c.phase == Phase::Open)
                .map(|(_, c)| c.sent.saturating_sub(c.received))
                .sum(),
            Mode::Fanout => self.expected.saturating_sub(self.delivered),
            Mode::Churn => e.conns.len() as u64,
            Mode::Idle | Mode::Storm => 0,
        }
    }

    /// A connection we were closing reached EOF.
    pub fn on_closed(&mut self, _key: usize, stats: &mut Stats, c: &Conn, now_ns: u64) {
        if self.mode == Mode::Churn {
            stats.message(Some(now_ns.saturating_sub(c.started_ns)));
        }
    }

    /// The server sent a GOAWAY we did not ask for. UNSUPPORTED_VERSION
    /// means it does not speak `--protocol`; a PROTOCOL_ERROR before any
    /// reply, that it runs another application than the mode needs.
    pub fn on_goaway(
        &mut self,
        key: usize,
        code: GoawayCode,
        replies: u64,
        fatal: &mut Option<String>,
    ) {
        if code == GoawayCode::UnsupportedVersion {
            *fatal = Some(format!(
                "the server answered our HELLO with GOAWAY UNSUPPORTED_VERSION (connection \
                 {key}): it does not speak protocol {}",
                self.wire.version()
            ));
            return;
        }
        if code != GoawayCode::ProtocolError || replies > 0 {
            return;
        }
        let v2 = self.wire.acknowledges_subscribe();
        let (app, v2_only, or_v1) = match self.mode {
            Mode::Fanout if v2 => ("pubsub", " with protocol 2 pub/sub", " or use --protocol 1"),
            Mode::Fanout => ("pubsub", "", ""),
            Mode::Echo => ("echo", "", ""),
            Mode::PingPong | Mode::Idle | Mode::Churn | Mode::Storm => return,
        };
        *fatal = Some(format!(
            "the server answered our DATA with GOAWAY PROTOCOL_ERROR (connection {key}): \
             it is not running the {app} app{v2_only}; start it with --app {app}{or_v1}"
        ));
    }
}

impl Engine {
    /// WELCOME arrived on `key`: start its part of the workload.
    pub fn work_on_open(&mut self, key: usize) {
        match self.args.mode {
            Mode::PingPong => {
                for _ in 0..self.args.depth {
                    self.send_ping(key);
                }
            }
            Mode::Echo => {
                for _ in 0..self.args.depth {
                    self.send_echo(key);
                }
            }
            Mode::Idle => {}
            Mode::Storm => {
                let took = self.now_ns.saturating_sub(self.conns[key].started_ns);
                let storm_client = self.conns[key].role == Role::Storm;
                if let Some(s) = self.work.storm.as_mut().filter(|_| storm_client) {
                    s.on_welcome(took);
                }
            }
            Mode::Churn => self.close_politely(key),
            Mode::Fanout => match self.conns[key].role {
                Role::Publisher => self.work.publisher = Some((key, self.conns[key].generation)),
                Role::Subscriber => {
                    let subscribe = self.work.wire.subscribe();
                    let n = subscribe.len();
                    wire::put_message(&mut self.wbuf, &subscribe, n, self.peer_max_frame);
                    self.conns[key].sent = 1;
                }
                Role::Worker | Role::Storm => {}
            },
        }
    }

    fn send_ping(&mut self, key: usize) {
        let c = &mut self.conns[key];
        let seq = c.sent;
        c.sent += 1;
        let slot = key * self.work.depth + (seq % self.work.depth as u64) as usize;
        if let Some(t) = self.work.send_ns.get_mut(slot) {
            *t = self.now_ns;
        }
        let mut payload = [0u8; 64];
        if self.args.payload >= 8 {
            payload[..8].copy_from_slice(&seq.to_be_bytes());
        }
        wire::put_frame(
            &mut self.wbuf,
            FrameType::Ping,
            false,
            &payload[..self.args.payload],
        );
    }

    fn send_echo(&mut self, key: usize) {
        let c = &mut self.conns[key];
        let seq = c.sent;
        c.sent += 1;
        let mut prefix = [0u8; 16];
        prefix[..8].copy_from_slice(&seq.to_be_bytes());
        prefix[8..].copy_from_slice(&self.now_ns.to_be_bytes());
        wire::put_message(&mut self.wbuf, &prefix, self.args.size, self.peer_max_frame);
    }

    /// A heartbeat is due on `key` (nothing sent for an interval).
    pub fn work_heartbeat(&mut self, key: usize) {
        match self.args.mode {
            // Closed-loop traffic is its own heartbeat; a stall is caught by MISS.
            Mode::PingPong => {}
            Mode::Idle | Mode::Storm if self.is_timed_heartbeat(key) => {
                // The send time rides in the payload when there is room;
                // otherwise it waits in the connection (one heartbeat in flight).
                if let Some(c) = self.conns.get_mut(key) {
                    c.sent += 1;
                }
                let mut payload = [0u8; 64];
                if self.args.payload >= 8 {
                    payload[..8].copy_from_slice(&self.now_ns.to_be_bytes());
                } else if let Some(c) = self.conns.get_mut(key) {
                    c.msg_ts_ns = self.now_ns;
                }
                let p = &payload[..self.args.payload];
                wire::put_frame(&mut self.wbuf, FrameType::Ping, false, p);
            }
            Mode::Idle | Mode::Storm | Mode::Echo | Mode::Churn | Mode::Fanout => {
                wire::put_frame(&mut self.wbuf, FrameType::Ping, false, &[]);
            }
        }
    }

    /// A PONG or DATA frame arrived on an open connection; returns whether to keep reading.
    pub fn work_on_frame(&mut self, key: usize, kind: FrameType, more: bool, p: &[u8]) -> bool {
        match (self.args.mode, kind) {
            (Mode::PingPong, FrameType::Pong) => self.on_pong(key, p),
            (Mode::Idle | Mode::Storm, FrameType::Pong) if self.is_timed_heartbeat(key) => {
                let c = &mut self.conns[key];
                let sent_at = if self.args.payload >= 8 {
                    u64_at(p, 0).filter(|_| p.len() == self.args.payload)
                } else {
                    Some(std::mem::take(&mut c.msg_ts_ns)).filter(|t| *t > 0)
                };
                // A PONG we cannot time (a floor server's fixed reply) still counts.
                let latency = sent_at.map(|t| self.now_ns.saturating_sub(t));
                self.stats.message(latency);
                let warm = self.stage >= Stage::Warmup;
                if let (Some(s), Some(ns), true) = (self.work.storm.as_mut(), latency, warm) {
                    s.record_rtt(ns, self.now_ns);
                }
                true
            }
            (_, FrameType::Pong) => true,
            (Mode::Echo, FrameType::Data) => self.on_echo(key, more, p),
            (Mode::Fanout, FrameType::Data) => self.on_delivery(key, more, p),
            (_, _) => {
                self.protocol_error(
                    key,
                    format!("unexpected {kind} in {}", self.args.mode.name()),
                );
                false
            }
        }
    }

    /// Whether `key`'s heartbeats are timed: idle's, and storm's established
    /// clients' (a storm client's are not).
    fn is_timed_heartbeat(&self, key: usize) -> bool {
        match self.args.mode {
            Mode::Idle => true,
            Mode::Storm => self.conns.get(key).is_some_and(|c| c.role == Role::Worker),
            _ => false,
        }
    }

    fn on_pong(&mut self, key: usize, p: &[u8]) -> bool {
        let c = &mut self.conns[key];
        let seq = c.received;
        if seq >= c.sent {
            self.protocol_error(key, "PONG without a PING".to_string());
            return false;
        }
        if p.len() != self.args.payload || (p.len() >= 8 && u64_at(p, 0) != Some(seq)) {
            self.protocol_error(key, format!("PONG {seq} does not echo its PING's payload"));
            return false;
        }
        c.received += 1;
        let slot = key * self.work.depth + (seq % self.work.depth as u64) as usize;
        let sent_at = self.work.send_ns.get(slot).copied().unwrap_or(self.now_ns);
        self.stats
            .message(Some(self.now_ns.saturating_sub(sent_at)));
        if self.stage.is_issuing() && c.phase == Phase::Open {
            self.send_ping(key);
        }
        true
    }

    fn on_echo(&mut self, key: usize, more: bool, p: &[u8]) -> bool {
        let c = &mut self.conns[key];
        if c.msg_bytes == 0 {
            let expect = c.received;
            match (u64_at(p, 0), u64_at(p, 8)) {
                (Some(seq), Some(ts)) if seq == expect && c.received < c.sent => c.msg_ts_ns = ts,
                _ => {
                    self.protocol_error(key, format!("echo {expect} is not the message sent"));
                    return false;
                }
            }
        }
        c.msg_bytes = c.msg_bytes.saturating_add(p.len() as u32);
        if more {
            return true;
        }
        let total = c.msg_bytes as usize;
        c.msg_bytes = 0;
        if total != self.args.size {
            self.protocol_error(
                key,
                format!("echo of {total} bytes, sent {}", self.args.size),
            );
            return false;
        }
        c.received += 1;
        let latency = self.now_ns.saturating_sub(c.msg_ts_ns);
        self.stats.message(Some(latency));
        if self.stage.is_issuing() && c.phase == Phase::Open {
            self.send_echo(key);
        }
        true
    }

    fn on_delivery(&mut self, key: usize, more: bool, p: &[u8]) -> bool {
        let c = &mut self.conns[key];
        if c.msg_bytes == 0 {
            let incoming = if c.role == Role::Subscriber {
                self.work.wire.incoming(p)
            } else {
                Err(Unexpected::Malformed(
                    "a DATA message to the publisher".to_string(),
                ))
            };
            match incoming {
                Ok(Incoming::Delivery { .. })
                    if !c.subscribed && self.work.wire.acknowledges_subscribe() =>
                {
                    let what = "a PUBLICATION before the SUBSCRIBE_REPLY".to_string();
                    self.protocol_error(key, what);
                    return false;
                }
                Ok(Incoming::Delivery { sent_ns }) => c.msg_ts_ns = sent_ns,
                Ok(Incoming::Subscribed) if c.subscribed || more => {
                    let what = if more { "with trailing bytes" } else { "twice" };
                    self.protocol_error(key, format!("a SUBSCRIBE_REPLY {what}"));
                    return false;
                }
                Ok(Incoming::Subscribed) => {
                    c.subscribed = true;
                    self.work.subscribed += 1;
                    return true;
                }
                Err(Unexpected::Echoed) => {
                    self.fatal = Some(
                        "the server sent our own pub/sub request back: it runs the echo app \
                         (start it with --app pubsub), or it is a floor forwarding publishes \
                         (add --verbatim-deliveries)"
                            .to_string(),
                    );
                    return false;
                }
                Err(Unexpected::Refused(status)) => {
                    self.fatal = Some(format!("the server refused our SUBSCRIBE: {status}"));
                    return false;
                }
                Err(Unexpected::Malformed(what)) => {
                    self.protocol_error(key, format!("malformed or unexpected delivery: {what}"));
                    return false;
                }
            }
        }
        c.msg_bytes = c.msg_bytes.saturating_add(p.len() as u32);
        if more {
            return true;
        }
        c.msg_bytes = 0;
        c.received += 1;
        self.work.delivered += 1;
        let latency = self.now_ns.saturating_sub(c.msg_ts_ns);
        self.stats.message(Some(latency));
        true
    }

    /// Paced work: churn connects and fanout publishes.
    pub fn workload_tick(&mut self) {
        if !self.stage.is_issuing() {
            return;
        }
        match self.args.mode {
            Mode::Churn => self.churn_tick(),
            Mode::Fanout => self.publish_tick(),
            Mode::Storm => self.storm_tick(),
            Mode::PingPong | Mode::Echo | Mode::Idle => {}
        }
    }

    fn churn_tick(&mut self) {
        let start = *self.work.churn_start_ns.get_or_insert(self.now_ns);
        let due = ((self.now_ns - start) as f64 * self.args.rate / 1e9) as u64 + 1;
        let mut burst = 0;
        while self.started < due
            && self.conns.len() < self.args.connect_concurrency
            && burst < MAX_BURST
        {
            // A connect that cannot start is counted in the stats.
            let _ = self.open_connection(Role::Worker);
            burst += 1;
        }
    }

    fn publish_tick(&mut self) {
        if self.stage == Stage::Ramp {
            return;
        }
        let Some((key, generation)) = self.work.publisher else {
            return;
        };
        let alive = self
            .conns
            .get(key)
            .is_some_and(|c| c.generation == generation && c.phase == Phase::Open);
        if !alive {
            return;
        }
        let Some(start) = self.publish_start().filter(|s| *s <= self.now_ns) else {
            return;
        };
        let due = ((self.now_ns - start) as f64 * self.args.rate / 1e9) as u64 + 1;
        let mut subscribers = self.open.saturating_sub(1) as u64;
        if self.work.wire.acknowledges_subscribe() {
            subscribers = subscribers.min(self.work.subscribed);
        }
        let total = self.work.wire.publish_len(self.args.size);
        let mut burst = 0;
        while self.work.published < due && burst < MAX_BURST {
            if self.conns[key].out.len() > MAX_PUBLISHER_BACKLOG {
                // Skip ahead rather than queue without bound.
                self.work.publisher_blocked += due - self.work.published;
                self.work.published = due;
                break;
            }
            let seq = self.work.published;
            let p = &mut self.work.prefix;
            self.work.wire.publish_prefix(p, self.now_ns, seq);
            wire::put_message(&mut self.wbuf, p, total, self.peer_max_frame);
            self.work.published += 1;
            self.work.expected += subscribers;
            burst += 1;
            if self.wbuf.len() > 256 * 1024 {
                self.flush(key);
            }
        }
        self.flush(key);
    }

    /// When publishing starts, once known: v1 a settle time after ramp-up
    /// (no subscribe is acknowledged); v2 as soon as every open subscriber's
    /// SUBSCRIBE is answered, or [`SUBSCRIBE_WAIT_NS`] after ramp-up.
    fn publish_start(&mut self) -> Option<u64> {
        if let Some(start) = self.work.publish_start_ns {
            return Some(start);
        }
        let from = *self.work.settle_from_ns.get_or_insert(self.now_ns);
        let start = if self.work.wire.acknowledges_subscribe() {
            let subscribers = self.open.saturating_sub(1) as u64;
            let all = self.work.subscribed >= subscribers;
            (all || self.now_ns >= from + SUBSCRIBE_WAIT_NS).then_some(self.now_ns)
        } else {
            Some(from + FANOUT_SETTLE_NS)
        };
        self.work.publish_start_ns = start;
        start
    }

    /// Mode-specific counters for the report.
    pub fn extras(&self) -> Vec<(&'static str, u64)> {
        match self.args.mode {
            Mode::Fanout if self.work.wire.acknowledges_subscribe() => vec![
                ("subscribed", self.work.subscribed),
                ("published", self.work.published),
                ("deliveries_expected", self.work.expected),
                ("delivered", self.work.delivered),
                ("publishes_skipped", self.work.publisher_blocked),
            ],
            Mode::Fanout => vec![
                ("published", self.work.published),
                ("deliveries_expected", self.work.expected),
                ("delivered", self.work.delivered),
                ("publishes_skipped", self.work.publisher_blocked),
            ],
            Mode::Churn => vec![("connects_started", self.started)],
            // Storm's counters are the report's storm section.
            Mode::PingPong | Mode::Echo | Mode::Idle | Mode::Storm => vec![],
        }
    }
}
