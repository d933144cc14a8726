//! A blocking driver: the [`ClientMachine`] over a `std::net::TcpStream`,
//! in plaintext or TLS (`ClientConfig::tls`; see `transport`).
//!
//! One thread, no runtime. The socket's read timeout is set to the time until
//! the machine's next deadline, so a blocked `recv_timeout` wakes exactly
//! when a heartbeat is due (never spinning), and reconnects with backoff and
//! session resume happen inside it, transparently. While no socket is open
//! (waiting out a backoff delay) the thread sleeps until the next attempt.
//!
//! With several addresses, each attempt tries them in order, starting after
//! the one whose connection ended last: a server that goes away hands its
//! clients to the next one.
//!
//! Over TLS every connection makes a new handshake (resuming the TLS session
//! when it can) inside the machine's handshake deadline; closing sends our
//! GOAWAY, then `close_notify`, then FIN, and reads on to the server's
//! `close_notify`, which is its end of stream.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::backoff::SplitMix64;
use super::machine::{ClientMachine, SendError};
use super::{ClientConfig, ClientEvent, DisconnectReason};
use crate::protocol::{GoawayCode, SessionId};
use transport::{ReadResult, Transport};

mod transport;

#[cfg(test)]
mod tests;

/// Bytes read per `read` call; one buffer for the client's lifetime.
const READ_BUF_LEN: usize = 16 * 1024;
/// Status events kept for [`Client::poll_event`]; the oldest are dropped
/// beyond this so a program that never looks at events does not grow without bound.
const MAX_QUEUED_EVENTS: usize = 1024;
/// The shortest socket timeout set: a zero timeout means "block forever" to std.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// `now + d`, saturating (at about a century) instead of panicking on a huge timeout.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A connected client with transparent reconnects. Not thread-safe by design:
/// all work happens inside the calls made on it.
pub struct Client {
    machine: ClientMachine,
    addrs: Vec<SocketAddr>,
    /// Where the next attempt starts in `addrs`.
    next_addr: usize,
    /// The address of the current (or last) connection.
    current_addr: usize,
    stream: Option<Transport>,
    write_shut: bool,
    /// Messages and status events, each numbered in the order the machine
    /// gave them, so [`Client::next_event`] can merge them back.
    messages: VecDeque<(u64, Bytes)>,
    events: VecDeque<(u64, ClientEvent)>,
    sequence: u64,
    read_buf: Box<[u8]>,
    /// Why the last connection ended, for errors returned to the caller.
    last_disconnect: Option<DisconnectReason>,
    /// The last socket error, to return with its original kind.
    last_error: Option<io::Error>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("machine", &self.machine)
            .field("addrs", &self.addrs)
            .field("stream", &self.stream)
            .field("messages", &self.messages.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` and completes the handshake before returning. The
    /// first attempt is not retried: an unreachable server or a refused
    /// handshake is an error here, not a silent loop. Later losses reconnect.
    pub fn connect<A: ToSocketAddrs>(addr: A, config: ClientConfig) -> io::Result<Client> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "address resolved to nothing",
            ));
        }
        let deadline = deadline_after(config.handshake_timeout.saturating_mul(2) + MIN_WAIT);
        let rng = Box::new(SplitMix64::from_entropy());
        let machine = ClientMachine::new(config, rng, Instant::now());
        let mut client = Client {
            machine,
            addrs,
            next_addr: 0,
            current_addr: 0,
            stream: None,
            write_shut: false,
            messages: VecDeque::new(),
            events: VecDeque::new(),
            sequence: 0,
            read_buf: vec![0; READ_BUF_LEN].into_boxed_slice(),
            last_disconnect: None,
            last_error: None,
        };
        loop {
            client.turn();
            if client.machine.is_open() {
                return Ok(client);
            }
            let attempt_over = !client.machine.wants_connect() && !client.machine.wants_socket();
            if attempt_over || Instant::now() >= deadline {
                return Err(client.disconnect_error());
            }
            client.wait(deadline);
        }
    }

    /// Sends one message. While reconnecting it is held (bounded by
    /// `max_pending`) and sent after the next handshake. Delivery is
    /// at-most-once: a message written into a connection that then dies may be lost.
    pub fn send(&mut self, message: &[u8]) -> io::Result<()> {
        let now = Instant::now();
        self.machine.send(message, now).map_err(|e| match e {
            SendError::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidInput, e),
            SendError::QueueFull => io::Error::new(io::ErrorKind::WouldBlock, e),
            SendError::Closed => io::Error::new(io::ErrorKind::NotConnected, e),
        })?;
        self.service(now);
        Ok(())
    }

    /// Waits up to `timeout` for the next message, keeping the connection
    /// alive meanwhile (heartbeats, dead-peer detection, reconnects). `Ok(None)`
    /// on timeout; an error once the client is closed for good and every
    /// message received before that has been returned.
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<Option<Bytes>> {
        let until = deadline_after(timeout);
        loop {
            if let Some((_, message)) = self.messages.pop_front() {
                return Ok(Some(message));
            }
            if self.machine.is_closed() {
                return Err(self.disconnect_error());
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            self.step(until);
        }
    }

    /// Closes politely: GOAWAY NORMAL, shut down the write side, read until
    /// the server's EOF (or `linger` runs out). Messages that arrive meanwhile
    /// can still be taken with `recv_timeout`. No reconnect follows.
    pub fn close(&mut self) -> io::Result<()> {
        self.machine.close(Instant::now());
        let until = deadline_after(self.machine.config().linger + MIN_WAIT);
        loop {
            // Not `step`: it stops reading while messages wait to be taken,
            // and a close must read on to the server's EOF.
            self.turn();
            if self.machine.is_closed() || Instant::now() >= until {
                break;
            }
            self.wait(until);
        }
        self.stream = None;
        Ok(())
    }

    /// The next status event (connects, disconnects, reconnects, GOAWAYs, …);
    /// messages are not events here, they come from `recv_timeout`.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front().map(|(_, event)| event)
    }

    /// Drains every status event queued so far.
    pub fn events(&mut self) -> impl Iterator<Item = ClientEvent> + '_ {
        self.events.drain(..).map(|(_, event)| event)
    }

    /// Waits up to `timeout` for the next event of any kind, messages
    /// included ([`ClientEvent::Message`]), in the order they happened: for a
    /// layer above that must know which connection a message came on (the
    /// v2 pub/sub client). Use it instead of `recv_timeout` and `poll_event`,
    /// not beside them. Events already queued are returned without reading,
    /// so a zero `timeout` only drains. `Ok(None)` on timeout; an error once
    /// the client is closed for good and every event has been returned.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<ClientEvent>> {
        let until = deadline_after(timeout);
        loop {
            let message_first = match (self.messages.front(), self.events.front()) {
                (Some((m, _)), Some((e, _))) => Some(m < e),
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (None, None) => None,
            };
            match message_first {
                Some(true) => {
                    return Ok(self
                        .messages
                        .pop_front()
                        .map(|(_, m)| ClientEvent::Message(m)))
                }
                Some(false) => return Ok(self.poll_event()),
                None => {}
            }
            if self.machine.is_closed() {
                return Err(self.disconnect_error());
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            self.step(until);
        }
    }

    /// Closes the open connection because what the server sent is
    /// unacceptable to the layer above (see [`ClientMachine::abort`]): GOAWAY
    /// `code` with `reason`, then a reconnect as after a protocol error.
    pub fn abort(&mut self, code: GoawayCode, reason: &str) {
        let now = Instant::now();
        self.machine.abort(code, reason, now);
        self.service(now);
    }

    /// Sends a PING now and waits up to `timeout` for its PONG: the round
    /// trip on the open connection. Messages that arrive meanwhile are kept
    /// for `recv_timeout`.
    pub fn ping(&mut self, timeout: Duration) -> io::Result<Duration> {
        let until = deadline_after(timeout);
        let now = Instant::now();
        let seq = self
            .machine
            .ping(now)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
        self.service(now);
        loop {
            if self.machine.pongs() >= seq {
                return Ok(self.machine.rtt().unwrap_or_default());
            }
            if !self.machine.is_open() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection ended before the PONG",
                ));
            }
            if Instant::now() >= until {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no PONG in time"));
            }
            // Not `step`: it stops reading while messages wait to be taken.
            self.turn();
            self.wait(until);
            self.service(Instant::now());
        }
    }

    /// The current session id (kept across reconnects by HELLO RESUME).
    pub fn session(&self) -> Option<SessionId> {
        self.machine.session()
    }

    /// Whether a connection is open right now (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.machine.is_open()
    }

    /// The state machine underneath, for its limits, RTT and heartbeat interval.
    pub fn machine(&self) -> &ClientMachine {
        &self.machine
    }

    /// One turn and one wait: the body of every blocking call.
    fn step(&mut self, until: Instant) {
        self.turn();
        if self.messages.is_empty() {
            self.wait(until);
            self.service(Instant::now());
        }
    }

    /// Fires due timers and does what the machine wants right now.
    fn turn(&mut self) {
        let now = Instant::now();
        self.machine.handle_timeout(now);
        self.service(now);
    }

    /// Waits for bytes (or sleeps out a backoff delay) until the machine's
    /// next deadline or `until`, whichever is first.
    fn wait(&mut self, until: Instant) {
        let now = Instant::now();
        let wake = self.machine.poll_timeout().map_or(until, |t| t.min(until));
        if wake <= now {
            return;
        }
        let wait = (wake - now).max(MIN_WAIT);
        if self.stream.is_some() {
            self.read_once(wait);
        } else if !self.machine.wants_connect() {
            std::thread::sleep(wait);
        }
    }

    /// Connects when asked, writes what is queued, half-closes or drops the
    /// socket as the machine says, and sorts its events.
    fn service(&mut self, now: Instant) {
        if self.machine.wants_connect() {
            self.open_socket();
        }
        self.flush(now);
        if self.stream.is_some() && !self.machine.wants_socket() {
            self.stream = None;
        }
        if self.machine.wants_shutdown_write() && !self.write_shut {
            if let Some(stream) = &mut self.stream {
                // A peer already gone shows up as EOF or an error on the next read.
                stream.shutdown_write();
            }
            self.write_shut = true;
        }
        while let Some(event) = self.machine.poll_event() {
            self.sequence += 1;
            match event {
                ClientEvent::Message(message) => self.messages.push_back((self.sequence, message)),
                other => {
                    if let ClientEvent::Disconnected { reason } = &other {
                        log::info!("tether client: disconnected: {reason}");
                        self.last_disconnect = Some(reason.clone());
                        if !matches!(reason, DisconnectReason::ConnectFailed(_)) {
                            // That server's connection ended: start with the next.
                            self.next_addr = (self.current_addr + 1) % self.addrs.len();
                        }
                    }
                    if self.events.len() == MAX_QUEUED_EVENTS {
                        self.events.pop_front();
                    }
                    self.events.push_back((self.sequence, other));
                }
            }
        }
    }

    fn open_socket(&mut self) {
        self.stream = None;
        let timeout = self.machine.config().handshake_timeout.max(MIN_WAIT);
        let mut last_err = io::Error::new(io::ErrorKind::InvalidInput, "no address");
        let n = self.addrs.len();
        for index in (0..n).map(|i| (self.next_addr + i) % n) {
            let addr = &self.addrs[index];
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(stream) => {
                    // Heartbeats and small messages must not wait for Nagle.
                    let setup = stream
                        .set_nodelay(true)
                        .and_then(|()| stream.set_write_timeout(Some(timeout)));
                    if let Err(e) = setup {
                        last_err = e;
                        continue;
                    }
                    // A fresh TLS session per connection (resuming the last
                    // one through the shared configuration's cache).
                    let tls = match self.machine.config().tls.as_ref().map(|t| t.connection()) {
                        None => None,
                        Some(Ok(session)) => Some(session),
                        Some(Err(e)) => {
                            last_err = io::Error::other(format!("TLS: {e}"));
                            break;
                        }
                    };
                    self.stream = Some(Transport::new(stream, tls));
                    self.current_addr = index;
                    self.write_shut = false;
                    self.machine.handle_connected(Instant::now());
                    return;
                }
                Err(e) => last_err = e,
            }
        }
        self.machine
            .handle_connect_failed(&last_err.to_string(), Instant::now());
        self.last_error = Some(last_err);
    }

    fn flush(&mut self, now: Instant) {
        while let Some(bytes) = self.machine.poll_transmit() {
            let Some(stream) = self.stream.as_mut() else {
                continue; // no socket: the machine is between connections
            };
            if let Err(e) = stream.write_all(&bytes) {
                // Interrupted was already retried; anything else ends the connection.
                self.machine.handle_io_error(&e.to_string(), now);
                self.last_error = Some(e);
            }
        }
    }

    fn read_once(&mut self, wait: Duration) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let result = stream.read(&mut self.read_buf, wait);
        let now = Instant::now();
        match result {
            ReadResult::Eof => self.machine.handle_eof(now),
            ReadResult::Data(n) => self.machine.handle_bytes(&self.read_buf[..n], now),
            ReadResult::Nothing => {}
            ReadResult::Failed(e) => {
                self.machine.handle_io_error(&e.to_string(), now);
                self.last_error = Some(e);
            }
            ReadResult::Tls(e) => self.machine.handle_tls_error(e, now),
        }
    }

    /// An `io::Error` describing why the client is not connected.
    fn disconnect_error(&mut self) -> io::Error {
        let reason = self.last_disconnect.clone();
        match reason {
            Some(DisconnectReason::ConnectFailed(text)) => self
                .last_error
                .take()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::ConnectionRefused, text)),
            Some(DisconnectReason::HandshakeTimeout) => io::Error::new(
                io::ErrorKind::TimedOut,
                "no WELCOME within the handshake timeout",
            ),
            Some(reason @ DisconnectReason::Goaway(_)) => {
                io::Error::new(io::ErrorKind::ConnectionRefused, reason.to_string())
            }
            Some(DisconnectReason::Closed) => {
                io::Error::new(io::ErrorKind::NotConnected, "client closed")
            }
            // The TlsError itself, so a caller can tell a certificate
            // problem by type (`get_ref` and `downcast_ref`) as well as by text.
            Some(DisconnectReason::Tls(e)) => io::Error::new(io::ErrorKind::InvalidData, e),
            Some(
                reason @ (DisconnectReason::DeadPeer { .. }
                | DisconnectReason::Eof
                | DisconnectReason::Io(_)
                | DisconnectReason::Protocol(_)
                | DisconnectReason::Aborted { .. }),
            ) => io::Error::new(io::ErrorKind::ConnectionAborted, reason.to_string()),
            None => io::Error::new(io::ErrorKind::TimedOut, "not connected"),
        }
    }
}
