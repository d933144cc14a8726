//! The "floor" for fan-out: the least work a server can do and still serve
//! `tether-load fanout --verbatim-deliveries`. One thread, one `mio::Poll`,
//! a slab of sockets. It answers each HELLO with one fixed WELCOME (protocol
//! 1, encoded once), then looks at the first byte of a connection's first
//! DATA message: `S` makes it a subscriber, `P` the publisher (one at most).
//!
//! Per loop turn it does one read of the publisher's socket into one shared
//! buffer and one write of everything it has not yet sent to each
//! subscriber, from that same buffer. The publisher's frames are forwarded
//! verbatim: no frame decoding, CRC check, op parsing, channel lookup, `M`
//! encoding, per-subscriber queue, timer, PONG or metric; the load generator
//! accepts a forwarded `P` as a delivery (`--verbatim-deliveries`). Whatever
//! tether spends above this per delivery is the price of being a real server.
//!
//! Bounded: the shared buffer holds what the slowest subscriber has not
//! taken, and a subscriber more than [`MAX_BEHIND`] bytes behind is closed
//! (tether's default `--max-output`), so it holds at most `MAX_BEHIND` plus
//! one read.
//!
//! Limits, fine for tether-load (its subscribers subscribe before the first
//! publish, and it closes its publisher last): one channel and one
//! publisher; a subscriber joins at the end of what was read so far, which
//! may be mid-frame once publishing has begun; the publisher's closing
//! GOAWAY is forwarded like the rest; subscribers' PINGs are not answered
//! (the WELCOME grants a 10-minute heartbeat).
//!
//! ```text
//! cargo run --release --example floor_fanout -- [--listen 127.0.0.1:0]
//! ```
//! Prints `listening on IP:PORT` like the server; stops on SIGTERM/SIGINT.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};
use std::time::Duration;

use tether::protocol::HEADER_LEN;

mod floor;
use floor::{HelloSkip, LISTENER, SIGNALS};

/// Most bytes read from the publisher in one turn.
const READ_MAX: usize = 256 * 1024;
/// A subscriber further behind the publisher than this is closed.
const MAX_BEHIND: usize = 4 << 20;
/// The shared buffer: what the slowest subscriber may lag, plus one read.
const LOG_CAP: usize = MAX_BEHIND + READ_MAX;
/// Bytes of a connection's first DATA frame that decide its role: the
/// header and the op byte.
const FIRST_OP: usize = HEADER_LEN + 1;

/// What a connection is, as far as the floor knows.
enum Role {
    /// The HELLO is still arriving.
    Hello(HelloSkip),
    /// HELLO done; `seen` bytes of the first frame's header and op are in `head`.
    FirstOp { head: [u8; FIRST_OP], seen: usize },
    /// Sent `S`: gets the publisher's bytes from stream offset `taken` on.
    Subscriber { taken: u64 },
    /// Sent `P`: its bytes from that `P` on are forwarded.
    Publisher,
}

struct Conn {
    stream: TcpStream,
    role: Role,
    /// WELCOME bytes still to send (from the end of the WELCOME frame).
    welcome_left: usize,
    /// The last write was short: wait for WRITABLE before writing again.
    blocked: bool,
}

/// The publisher's bytes that some subscriber has not taken yet.
struct Log {
    /// Fixed, zeroed once: reads go straight into it.
    buf: Vec<u8>,
    /// `buf[start..end]` holds stream offsets `head..head + (end - start)`.
    start: usize,
    end: usize,
    head: u64,
}

impl Log {
    fn end_offset(&self) -> u64 {
        self.head + (self.end - self.start) as u64
    }

    /// The bytes from stream offset `from` (at least `head`) to the end.
    fn from(&self, from: u64) -> &[u8] {
        &self.buf[self.start + (from - self.head) as usize..self.end]
    }

    /// Room for one read at the end, moving the held bytes to the front if needed.
    fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < READ_MAX {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let to = self.buf.len().min(self.end + READ_MAX);
        &mut self.buf[self.end..to]
    }

    /// Appends `data` if it fits; returns whether it did.
    fn append(&mut self, data: &[u8]) -> bool {
        let spare = self.spare();
        if data.len() > spare.len() {
            return false;
        }
        spare[..data.len()].copy_from_slice(data);
        self.end += data.len();
        true
    }

    /// Forgets everything before stream offset `to`.
    fn trim(&mut self, to: u64) {
        self.start += (to - self.head) as usize;
        self.head = to;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

struct Floor {
    poll: Poll,
    conns: Slab<Conn>,
    welcome: bytes::Bytes,
    log: Log,
    publisher: Option<usize>,
    /// The publisher's socket may hold more: read it this turn.
    publisher_readable: bool,
    /// Its FIN is in: read to the EOF even after a short read.
    publisher_read_closed: bool,
    subscribers: Vec<usize>,
    /// Scratch for what non-publishers send (HELLO, `S`, PINGs, GOAWAY): discarded.
    scratch: Vec<u8>,
}

fn main() -> io::Result<()> {
    let poll = Poll::new()?;
    let listening = floor::listen(&poll)?;
    let mut floor = Floor {
        poll,
        conns: Slab::new(),
        welcome: floor::welcome_frame(),
        log: Log {
            buf: vec![0; LOG_CAP],
            start: 0,
            end: 0,
            head: 0,
        },
        publisher: None,
        publisher_readable: false,
        publisher_read_closed: false,
        subscribers: Vec::new(),
        scratch: vec![0; 64 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = floor.publisher_readable.then_some(Duration::ZERO);
        match floor.poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                SIGNALS => return Ok(()),
                LISTENER => {
                    while let Some(mut stream) = floor::accept(&listening.listener) {
                        let entry = floor.conns.vacant_entry();
                        // Both, once: edge-triggered WRITABLE fires only after
                        // a short write, so no reregistering per write.
                        floor.poll.registry().register(
                            &mut stream,
                            Token(entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
                        entry.insert(Conn {
                            stream,
                            role: Role::Hello(HelloSkip::default()),
                            welcome_left: 0,
                            blocked: false,
                        });
                    }
                }
                Token(key) => floor.on_event(key, event.is_writable(), event.is_read_closed()),
            }
        }
        floor.turn();
    }
}

impl Floor {
    fn on_event(&mut self, key: usize, writable: bool, read_closed: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if writable {
            conn.blocked = false;
            if conn.welcome_left > 0 && !self.write_welcome(key) {
                return self.close(key);
            }
        }
        if matches!(self.conns[key].role, Role::Publisher) {
            self.publisher_readable = true;
            self.publisher_read_closed |= read_closed;
        } else if !self.read_other(key, read_closed) {
            self.close(key);
        }
    }

    /// Reads a connection that is not the publisher; returns whether it stays open.
    fn read_other(&mut self, key: usize, read_closed: bool) -> bool {
        loop {
            let conn = &mut self.conns[key];
            let n = match conn.stream.read(&mut self.scratch) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            let data = std::mem::take(&mut self.scratch);
            let open = self.learn(key, &data[..n]);
            self.scratch = data;
            // The publisher is read once per turn, in `turn`, from now on.
            if !open || matches!(self.conns[key].role, Role::Publisher) {
                return open;
            }
            // A short read drained the socket (see floor_echo), unless the FIN is in.
            if n < self.scratch.len() && !read_closed {
                return true;
            }
        }
    }

    /// Skips the HELLO, answers it, and reads the first frame's op to learn
    /// the role. Returns whether the connection stays open.
    fn learn(&mut self, key: usize, mut data: &[u8]) -> bool {
        let conn = &mut self.conns[key];
        if let Role::Hello(hello) = &mut conn.role {
            let Some(rest) = hello.skip(data) else {
                return true;
            };
            data = rest;
            conn.role = Role::FirstOp {
                head: [0; FIRST_OP],
                seen: 0,
            };
            conn.welcome_left = self.welcome.len();
            if !self.write_welcome(key) {
                return false;
            }
        }
        let conn = &mut self.conns[key];
        let Role::FirstOp { head, seen } = &mut conn.role else {
            return true; // a subscriber: its PINGs and GOAWAY are dropped
        };
        let take = data.len().min(FIRST_OP - *seen);
        head[*seen..*seen + take].copy_from_slice(&data[..take]);
        *seen += take;
        if *seen < FIRST_OP {
            return true;
        }
        let head = *head;
        match head[HEADER_LEN] {
            b'S' => {
                conn.role = Role::Subscriber {
                    taken: self.log.end_offset(),
                };
                self.subscribers.push(key);
                true
            }
            b'P' if self.publisher.is_none() => {
                conn.role = Role::Publisher;
                self.publisher = Some(key);
                self.publisher_readable = true;
                self.log.append(&head) && self.log.append(&data[take..])
            }
            _ => false,
        }
    }

    /// Writes what is left of the WELCOME; returns false on a write error.
    fn write_welcome(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        while conn.welcome_left > 0 {
            let from = self.welcome.len() - conn.welcome_left;
            match conn.stream.write(&self.welcome[from..]) {
                Ok(0) => return false,
                Ok(n) => conn.welcome_left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        true
    }

    /// One read of the publisher, one write to each subscriber that is behind.
    fn turn(&mut self) {
        if let Some(key) = self.publisher.filter(|_| self.publisher_readable) {
            let spare = self.log.spare();
            let want = spare.len();
            match self.conns[key].stream.read(spare) {
                Ok(0) => {
                    self.publisher_readable = false;
                    self.close(key);
                }
                Ok(n) => {
                    self.log.end += n;
                    self.publisher_readable = n == want || self.publisher_read_closed;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.publisher_readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.publisher_readable = false;
                    self.close(key);
                }
            }
        }
        let end = self.log.end_offset();
        let mut oldest = end;
        let mut i = 0;
        while i < self.subscribers.len() {
            let key = self.subscribers[i];
            let conn = &mut self.conns[key];
            let Role::Subscriber { taken } = &mut conn.role else {
                unreachable!("only subscribers are listed");
            };
            let mut open = true;
            if *taken < end && !conn.blocked && conn.welcome_left == 0 {
                let pending = self.log.from(*taken);
                match conn.stream.write(pending) {
                    Ok(n) => {
                        *taken += n as u64;
                        conn.blocked = n < pending.len();
                        open = n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => open = false,
                }
            }
            let taken = *taken;
            if open && end - taken <= MAX_BEHIND as u64 {
                oldest = oldest.min(taken);
                i += 1;
            } else {
                self.close(key); // swap_removes index i
            }
        }
        self.log.trim(oldest);
    }

    fn close(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        match conn.role {
            Role::Publisher => {
                self.publisher = None;
                self.publisher_read_closed = false;
            }
            Role::Subscriber { .. } => {
                if let Some(i) = self.subscribers.iter().position(|&k| k == key) {
                    self.subscribers.swap_remove(i);
                }
            }
            Role::Hello(_) | Role::FirstOp { .. } => {}
        }
    }
}
