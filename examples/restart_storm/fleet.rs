//! Many clients of the library on one thread: each is the library's own
//! [`ClientMachine`] (handshake, GOAWAY handling, reconnect backoff and
//! jitter, all unchanged), and this driver only does what the blocking
//! client does for one machine, for thousands at once over one `mio::Poll`:
//! non-blocking connects (bound round-robin to a few source addresses),
//! writes, reads, half-closes, and one timer heap for every machine's
//! next deadline.
//!
//! Each client keeps a [`Record`] of the restart it lives through: when its
//! connection ended and when it got its next WELCOME, so what is measured
//! is the library's reconnect behaviour, not a re-implementation of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tether::client::{ClientConfig, ClientEvent, ClientMachine, RandomSource, SplitMix64};
use tether::protocol::GoawayCode;
use tether::reactor::io::{connect_result, start_connect};

/// Bytes read per `read` call, one buffer for every client.
const READ_BUF_LEN: usize = 16 * 1024;
/// The shortest poll timeout while a timer is pending: mio's resolution.
const MIN_WAIT: Duration = Duration::from_millis(1);
/// Timers fired per turn before polling the sockets again: a retry is a
/// `connect` (costly on loopback, where it runs the server's side of the
/// handshake too), and thousands in one go would leave WELCOMEs unread and
/// stamp them late, all at once.
const MAX_TIMERS_PER_TURN: usize = 64;

/// What one client lived through after [`Fleet::mark_ready`]: the first
/// connection end, the reconnect that followed, and what the library did in between.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// When the client received the server's GOAWAY, and its code.
    pub goaway: Option<(Instant, GoawayCode)>,
    /// When its connection ended (the library's `Disconnected` event).
    pub ended_at: Option<Instant>,
    /// The library's first retry after the end: which retry in a row it
    /// was (1 when the connection had no failure before it) and the delay chosen.
    pub first_retry: Option<(u32, Duration)>,
    /// Connection attempts between the end and the next WELCOME (1: the first retry succeeded).
    pub attempts: u32,
    /// When the TCP connect of the attempt that got in completed.
    pub connected_at: Option<Instant>,
    /// When the next WELCOME arrived.
    pub rewelcome_at: Option<Instant>,
    /// The library gave up (max attempts) or closed for good.
    pub gave_up: bool,
}

impl Record {
    /// From the connection's end to the next WELCOME.
    pub fn reconnect_time(&self) -> Option<Duration> {
        Some(self.rewelcome_at?.saturating_duration_since(self.ended_at?))
    }

    /// From the TCP connect that got in to its WELCOME: the new server's
    /// accept and handshake latency, as the client sees it.
    pub fn handshake_time(&self) -> Option<Duration> {
        Some(
            self.rewelcome_at?
                .saturating_duration_since(self.connected_at?),
        )
    }
}

/// One client: its machine, its socket and what it recorded.
struct Slot {
    machine: ClientMachine,
    stream: Option<TcpStream>,
    /// The TCP connect is in flight (the machine is still `Connecting`).
    connecting: bool,
    /// When an in-flight connect is given up (the handshake timeout, as in
    /// the blocking client): a SYN the kernel keeps retrying must not hang a client.
    connect_deadline: Option<Instant>,
    /// Bytes the kernel has not taken yet.
    out: VecDeque<Bytes>,
    write_shut: bool,
    /// The deadline the timer heap holds for this client.
    deadline: Option<Instant>,
    /// Ever got a WELCOME.
    welcomed: bool,
    /// Between a `Connected` and the next `Disconnected` event.
    is_open: bool,
    record: Record,
}

/// How the fleet connects.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The server.
    pub server: SocketAddr,
    /// How many clients.
    pub clients: usize,
    /// Local addresses the sockets are bound to, round-robin (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
    /// The first connects in flight at once (the restart is not paced).
    pub connect_concurrency: usize,
    /// Every client's configuration (backoff, heartbeat).
    pub client: ClientConfig,
    /// The seed of the clients' jitter sources.
    pub seed: u64,
}

/// Every client, one poll, one timer heap.
pub struct Fleet {
    config: FleetConfig,
    poll: Poll,
    events: Events,
    slots: Vec<Slot>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    seeds: SplitMix64,
    read_buf: Box<[u8]>,
    /// Clients open right now.
    open: usize,
    /// Clients that got their first WELCOME.
    welcomed: usize,
    /// Records are kept from here on (set by [`Fleet::mark_ready`]).
    recording: bool,
    /// Clients whose record is complete (reconnected or gave up).
    settled: usize,
    /// How late each timer fired after [`Fleet::mark_ready`]: the driver's
    /// own delay on top of the library's schedule.
    timer_lag: Vec<Duration>,
}

impl Fleet {
    /// A fleet with no client yet.
    pub fn new(config: FleetConfig) -> io::Result<Fleet> {
        let seeds = SplitMix64::new(config.seed);
        Ok(Fleet {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            slots: Vec::with_capacity(config.clients),
            timers: BinaryHeap::new(),
            seeds,
            read_buf: vec![0; READ_BUF_LEN].into_boxed_slice(),
            open: 0,
            welcomed: 0,
            recording: false,
            settled: 0,
            timer_lag: Vec::new(),
            config,
        })
    }

    /// Starts every client, at most `connect_concurrency` first connects in
    /// flight, and runs until all are open at once; `Err` after `timeout`.
    pub fn connect_all(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while self.open < self.config.clients {
            let in_flight = self.slots.len() - self.welcomed;
            let room = self.config.connect_concurrency.saturating_sub(in_flight);
            let start = room.min(self.config.clients - self.slots.len());
            for _ in 0..start {
                self.add_client();
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "only {} of {} clients open after {timeout:?} ({} started)",
                    self.open,
                    self.config.clients,
                    self.slots.len()
                ));
            }
            self.turn(deadline).map_err(|e| format!("poll: {e}"))?;
        }
        Ok(())
    }

    /// From now on each client records its next connection end and reconnect.
    pub fn mark_ready(&mut self) {
        self.recording = true;
        self.settled = 0;
        self.timer_lag.clear();
        for slot in &mut self.slots {
            slot.record = Record::default();
        }
    }

    /// Runs until every client has reconnected (or given up) after a
    /// connection end, or until `timeout`; returns every client's record.
    pub fn watch(&mut self, timeout: Duration) -> io::Result<Vec<Record>> {
        let deadline = Instant::now() + timeout;
        while self.settled < self.slots.len() && Instant::now() < deadline {
            self.turn(deadline)?;
        }
        Ok(self.slots.iter().map(|s| s.record.clone()).collect())
    }

    /// How late the timers fired since [`Fleet::mark_ready`], sorted: the
    /// driver's own delay on top of the library's schedule.
    pub fn timer_lag(&self) -> Vec<Duration> {
        let mut lag = self.timer_lag.clone();
        lag.sort();
        lag
    }

    /// Clients open right now.
    pub fn open(&self) -> usize {
        self.open
    }

    fn add_client(&mut self) {
        let index = self.slots.len();
        let now = Instant::now();
        let rng = Box::new(SplitMix64::new(self.seeds.next_u64()));
        let machine = ClientMachine::new(self.config.client.clone(), rng, now);
        self.slots.push(Slot {
            machine,
            stream: None,
            connecting: false,
            connect_deadline: None,
            out: VecDeque::new(),
            write_shut: false,
            deadline: None,
            welcomed: false,
            is_open: false,
            record: Record::default(),
        });
        self.service(index, now);
    }

    /// One poll (at most until the next timer or `until`), its socket events, then the due timers.
    fn turn(&mut self, until: Instant) -> io::Result<()> {
        let now = Instant::now();
        let wake = self.next_timer().map_or(until, |t| t.min(until));
        let wait = wake.saturating_duration_since(now);
        let wait = if wait.is_zero() {
            Duration::ZERO
        } else {
            wait.max(MIN_WAIT)
        };
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let readable = e.is_readable() || e.is_read_closed() || e.is_error();
                (e.token().0, readable, e.is_writable())
            })
            .collect();
        for (index, readable, writable) in ready {
            self.socket_ready(index, readable, writable);
        }
        let now = Instant::now();
        let mut fired = 0;
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if at > now || fired == MAX_TIMERS_PER_TURN {
                break;
            }
            self.timers.pop();
            if self.slots[index].deadline == Some(at) {
                fired += 1;
                if self.recording {
                    self.timer_lag.push(now.saturating_duration_since(at));
                }
                self.slots[index].deadline = None;
                if self.slots[index].connecting {
                    self.drop_socket(index);
                    let machine = &mut self.slots[index].machine;
                    machine.handle_connect_failed("connect timed out", now);
                } else {
                    self.slots[index].machine.handle_timeout(now);
                }
                self.service(index, now);
            }
        }
        Ok(())
    }

    /// The earliest live timer (stale heap entries are dropped on the way).
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, index))) = self.timers.peek() {
            if self.slots[index].deadline == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn socket_ready(&mut self, index: usize, readable: bool, writable: bool) {
        let now = Instant::now();
        let slot = &mut self.slots[index];
        let Some(stream) = slot.stream.as_mut() else {
            return; // an event for a socket already dropped
        };
        if slot.connecting {
            match connect_result(stream) {
                Ok(true) => {
                    slot.connecting = false;
                    let record = &mut slot.record;
                    if self.recording && record.ended_at.is_some() && record.rewelcome_at.is_none()
                    {
                        record.connected_at = Some(now);
                    }
                    slot.machine.handle_connected(now);
                }
                Ok(false) => return,
                Err(e) => {
                    self.drop_socket(index);
                    let slot = &mut self.slots[index];
                    slot.machine.handle_connect_failed(&e.to_string(), now);
                    self.service(index, now);
                    return;
                }
            }
        } else {
            if writable {
                flush(slot, now);
            }
            if readable {
                read_all(slot, &mut self.read_buf, now);
            }
        }
        self.service(index, now);
    }

    /// Does what the machine wants now: connect, write, half-close, drop
    /// the socket; then its events and its next deadline.
    fn service(&mut self, index: usize, now: Instant) {
        let slot = &mut self.slots[index];
        if slot.machine.wants_connect() && !slot.connecting {
            let source = match self.config.sources.len() {
                0 => None,
                n => Some(self.config.sources[index % n]),
            };
            match start_connect(self.config.server, source) {
                Ok(mut stream) => {
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    match registered {
                        Ok(()) => {
                            slot.stream = Some(stream);
                            slot.connecting = true;
                            let limit = self.config.client.handshake_timeout.max(MIN_WAIT);
                            slot.connect_deadline = Some(now + limit);
                            slot.out.clear();
                            slot.write_shut = false;
                        }
                        Err(e) => slot.machine.handle_connect_failed(&e.to_string(), now),
                    }
                }
                Err(e) => slot.machine.handle_connect_failed(&e.to_string(), now),
            }
        }
        let slot = &mut self.slots[index];
        while let Some(bytes) = slot.machine.poll_transmit() {
            if slot.stream.is_some() && !slot.connecting {
                slot.out.push_back(bytes);
            }
        }
        flush(slot, now);
        if slot.stream.is_some() && !slot.connecting && !slot.machine.wants_socket() {
            self.drop_socket(index);
        }
        let slot = &mut self.slots[index];
        if slot.machine.wants_shutdown_write() && !slot.write_shut && slot.out.is_empty() {
            if let Some(stream) = &slot.stream {
                // A peer already gone shows up as EOF or an error on the next read.
                let _ = stream.shutdown(Shutdown::Write);
            }
            slot.write_shut = true;
        }
        while let Some(event) = self.slots[index].machine.poll_event() {
            self.note_event(index, event, now);
        }
        let slot = &mut self.slots[index];
        let deadline = if slot.connecting {
            slot.connect_deadline
        } else {
            slot.machine.poll_timeout()
        };
        if deadline != slot.deadline {
            slot.deadline = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, index)));
            }
        }
    }

    fn drop_socket(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(mut stream) = slot.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        slot.connecting = false;
        slot.connect_deadline = None;
        slot.out.clear();
    }

    /// Counts opens and fills the record from the library's events.
    fn note_event(&mut self, index: usize, event: ClientEvent, now: Instant) {
        let recording = self.recording;
        let slot = &mut self.slots[index];
        let record = &mut slot.record;
        let settled_before = record.rewelcome_at.is_some() || record.gave_up;
        match event {
            ClientEvent::Connected { .. } => {
                slot.is_open = true;
                self.open += 1;
                if !slot.welcomed {
                    slot.welcomed = true;
                    self.welcomed += 1;
                }
                if recording && record.ended_at.is_some() && record.rewelcome_at.is_none() {
                    record.rewelcome_at = Some(now);
                }
            }
            ClientEvent::Goaway(goaway) => {
                if recording && record.goaway.is_none() && record.ended_at.is_none() {
                    record.goaway = Some((now, goaway.code));
                }
            }
            ClientEvent::Disconnected { .. } => {
                if slot.is_open {
                    slot.is_open = false;
                    self.open -= 1;
                }
                if recording && record.ended_at.is_none() {
                    record.ended_at = Some(now);
                }
            }
            ClientEvent::Reconnecting { attempt, delay } => {
                if recording && record.first_retry.is_none() && record.rewelcome_at.is_none() {
                    record.first_retry = Some((attempt, delay));
                }
            }
            ClientEvent::Connecting { .. } => {
                if recording && record.ended_at.is_some() && record.rewelcome_at.is_none() {
                    record.attempts += 1;
                }
            }
            ClientEvent::GaveUp { .. } | ClientEvent::Closed => {
                if recording {
                    record.gave_up = true;
                }
            }
            ClientEvent::Message(_)
            | ClientEvent::HeartbeatChanged { .. }
            | ClientEvent::Undeliverable(_) => {}
        }
        let settled_after = record.rewelcome_at.is_some() || record.gave_up;
        if recording && settled_after && !settled_before {
            self.settled += 1;
        }
    }
}

/// Writes what the kernel takes; a write error ends the connection.
fn flush(slot: &mut Slot, now: Instant) {
    let Some(stream) = slot.stream.as_mut() else {
        slot.out.clear();
        return;
    };
    while let Some(front) = slot.out.front_mut() {
        match stream.write(front) {
            Ok(0) => {
                slot.out.clear();
                slot.machine.handle_io_error("write returned 0", now);
                return;
            }
            Ok(n) if n == front.len() => {
                slot.out.pop_front();
            }
            Ok(n) => {
                let _ = front.split_to(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                slot.out.clear();
                slot.machine.handle_io_error(&e.to_string(), now);
                return;
            }
        }
    }
}

/// Reads until the kernel has nothing more (edge-triggered), the peer's
/// EOF, an error, or the machine no longer wants the socket.
fn read_all(slot: &mut Slot, buf: &mut [u8], now: Instant) {
    while slot.machine.wants_socket() {
        let Some(stream) = slot.stream.as_mut() else {
            return;
        };
        match stream.read(buf) {
            Ok(0) => {
                slot.machine.handle_eof(now);
                return;
            }
            Ok(n) => slot.machine.handle_bytes(&buf[..n], now),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                slot.machine.handle_io_error(&e.to_string(), now);
                return;
            }
        }
    }
}
