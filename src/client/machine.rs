//! The sans-io client state machine.
//!
//! Inputs are `handle_*` calls (the driver connected, bytes arrived, EOF, a
//! socket error, time passed), outputs are `poll_*` calls (bytes to write,
//! events for the application, when to wake up next) and `wants_*`
//! predicates (open a socket, shut down its write side, drop it). Every
//! method that depends on time takes `now`; nothing here reads the clock.
//!
//! One machine lives across reconnects: it keeps the session id for HELLO
//! RESUME, the backoff count and what the adaptive heartbeat has learned.
//!
//! ```text
//! Connecting --connected--> Handshaking --WELCOME--> Open
//!     ^                        |                       |
//!     |   (failure)            +--> Closing <----------+  (GOAWAY sent or received)
//!     |                        |        |
//!  Waiting <-------------------+--------+  (unless final: then Closed)
//! ```

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::adaptive::AdaptiveHeartbeat;
use super::backoff::{retry_after_hint, Backoff, RandomSource};
use super::{ClientConfig, ClientEvent, DisconnectReason, TlsError};
use crate::protocol::{
    encode_frame, encode_goaway, encode_message, FrameDecoder, FrameType, GoawayCode, Hello,
    ProtocolError, SessionId, Welcome,
};

/// The client accepts frames up to what the 16-bit length can carry: the
/// server's frame size is its own business, and one frame is bounded anyway.
const CLIENT_MAX_FRAME: usize = u16::MAX as usize;
/// A negotiated heartbeat below this is raised to it, so a broken WELCOME
/// cannot turn the client into a PING storm.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// The heartbeat assumed before the first WELCOME when HELLO asks the server to choose.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// A PING carries an 8-byte sequence number so its PONG can be matched.
const PING_SEQ_LEN: usize = 8;

/// Why [`ClientMachine::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The message is above the server's `max_message` (or ours, before WELCOME).
    TooLarge {
        /// The message's length.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// Not connected, and the messages held for the next connection already fill `max_pending`.
    QueueFull,
    /// The client was closed or gave up: nothing will be sent any more.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes is above max_message {max}")
            }
            SendError::QueueFull => f.write_str("pending message queue is full"),
            SendError::Closed => f.write_str("client is closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Where the client is. Changed only through `set_state`, which logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The driver should open a socket and report back.
    Connecting,
    /// HELLO sent; waiting for WELCOME until `deadline`.
    Handshaking { deadline: Instant },
    /// Handshake done: messages and heartbeats flow.
    Open,
    /// A GOAWAY was sent or received: flush, shut down the write side and
    /// wait for EOF until `deadline`. `reading`: frames are still delivered
    /// (our own orderly close: the server may still answer what we sent).
    Closing {
        deadline: Instant,
        reading: bool,
        reason: DisconnectReason,
    },
    /// No socket; the next attempt starts at `until`.
    Waiting { until: Instant },
    /// Finished for good.
    Closed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Connecting => "Connecting",
            State::Handshaking { .. } => "Handshaking",
            State::Open => "Open",
            State::Closing { .. } => "Closing",
            State::Waiting { .. } => "Waiting",
            State::Closed => "Closed",
        })
    }
}

/// Per-connection timing, reset by each `handle_connected`.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// When the handshake finished (None before WELCOME).
    opened_at: Option<Instant>,
    /// When we last queued anything to send.
    last_tx: Instant,
    /// When we last received a whole frame.
    last_rx: Instant,
    /// The last PING: its sequence number and when it was sent.
    last_ping: Option<(u64, Instant)>,
    /// The first unanswered PING sent after a full interval of silence: its
    /// answer proves the path tolerates that much silence (adaptive heartbeat).
    probe: Option<u64>,
}

impl Link {
    fn new(now: Instant) -> Self {
        Link {
            opened_at: None,
            last_tx: now,
            last_rx: now,
            last_ping: None,
            probe: None,
        }
    }
}

/// `t + d`, saturating far in the future instead of panicking on absurd configs.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(u32::MAX as u64)))
        .unwrap_or(t)
}

/// The client protocol state machine: no sockets, no clock.
#[derive(Debug)]
pub struct ClientMachine {
    config: ClientConfig,
    state: State,
    /// `close()` was called: nothing reconnects after this connection ends.
    user_closed: bool,
    session: Option<SessionId>,
    welcome: Option<Welcome>,
    negotiated: Duration,
    link: Link,
    ping_seq: u64,
    /// The sequence of the latest PONG answering one of our PINGs.
    pong_seq: u64,
    rtt: Option<Duration>,
    decoder: FrameDecoder,
    /// The DATA message being reassembled (bounded by `config.max_message`).
    message: BytesMut,
    in_message: bool,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
    /// Messages sent while not open, bounded by `config.max_pending` bytes.
    pending: VecDeque<Bytes>,
    pending_bytes: usize,
    backoff: Backoff,
    adaptive: Option<AdaptiveHeartbeat>,
}

impl ClientMachine {
    /// A machine about to make its first connection attempt
    /// ([`ClientMachine::wants_connect`] is true), drawing jitter from `rng`.
    pub fn new(config: ClientConfig, rng: Box<dyn RandomSource + Send>, now: Instant) -> Self {
        let negotiated = match config.heartbeat_ms {
            0 => DEFAULT_HEARTBEAT,
            ms => Duration::from_millis(u64::from(ms)).max(MIN_HEARTBEAT),
        };
        let adaptive = config
            .adaptive
            .clone()
            .map(|a| AdaptiveHeartbeat::new(a, negotiated));
        let mut machine = ClientMachine {
            backoff: Backoff::new(config.backoff.clone(), rng),
            config,
            state: State::Connecting,
            user_closed: false,
            session: None,
            welcome: None,
            negotiated,
            link: Link::new(now),
            ping_seq: 0,
            pong_seq: 0,
            rtt: None,
            decoder: FrameDecoder::new(CLIENT_MAX_FRAME),
            message: BytesMut::new(),
            in_message: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            adaptive,
        };
        machine
            .events
            .push_back(ClientEvent::Connecting { attempt: 0 });
        machine
    }

    fn set_state(&mut self, next: State) {
        log::debug!("client: {} => {}", self.state, next);
        self.state = next;
    }

    // ----- inputs -----

    /// The driver's TCP connect succeeded: HELLO is queued at once.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.link = Link::new(now);
        self.decoder.clear();
        self.reset_message();
        let hello = Hello {
            version: self.config.version,
            heartbeat_ms: self.config.heartbeat_ms,
            token: self.config.token.clone(),
            resume: self.session,
        };
        self.transmit.push_back(hello.encode_frame());
        let deadline = later(now, self.config.handshake_timeout);
        self.set_state(State::Handshaking { deadline });
    }

    /// The driver's TCP connect failed (`error` is for the event's text).
    pub fn handle_connect_failed(&mut self, error: &str, now: Instant) {
        if self.state == State::Connecting {
            self.end_connection(DisconnectReason::ConnectFailed(error.to_owned()), now);
        }
    }

    /// Bytes read from the socket, split anywhere.
    pub fn handle_bytes(&mut self, mut data: &[u8], now: Instant) {
        while self.is_reading() && !data.is_empty() {
            match self.decoder.next_frame(&mut data) {
                Ok(Some(frame)) => {
                    self.link.last_rx = now;
                    if let Err(e) = self.handle_frame(frame, now) {
                        self.protocol_error(e, now);
                    }
                }
                Ok(None) => break,
                Err(e) => self.protocol_error(e, now),
            }
        }
    }

    /// The server's EOF (read returned 0). Frames before it were already handled.
    pub fn handle_eof(&mut self, now: Instant) {
        match &self.state {
            State::Handshaking { .. } | State::Open => {
                self.end_connection(DisconnectReason::Eof, now)
            }
            State::Closing { reason, .. } => {
                let reason = reason.clone();
                self.end_connection(reason, now)
            }
            State::Connecting | State::Waiting { .. } | State::Closed => {}
        }
    }

    /// A socket error (reset, broken pipe, write timeout): the connection is gone.
    pub fn handle_io_error(&mut self, error: &str, now: Instant) {
        self.transport_failed(DisconnectReason::Io(error.to_owned()), now);
    }

    /// TLS failed on the connection (the driver's TLS layer sorted why): it
    /// is gone like after a socket error, and a certificate problem ends the
    /// client (see [`DisconnectReason::is_final`]).
    pub fn handle_tls_error(&mut self, error: TlsError, now: Instant) {
        self.transport_failed(DisconnectReason::Tls(error), now);
    }

    /// The socket or the TLS layer under it failed with `reason`.
    fn transport_failed(&mut self, reason: DisconnectReason, now: Instant) {
        match &self.state {
            State::Handshaking { .. } | State::Open => self.end_connection(reason, now),
            // A close was already under way; the error just cuts the drain short.
            State::Closing {
                reason: closing, ..
            } => {
                let closing = closing.clone();
                self.end_connection(closing, now)
            }
            State::Connecting | State::Waiting { .. } | State::Closed => {}
        }
    }

    /// Time passed: fire whatever deadline is due (call at or after [`ClientMachine::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::Handshaking { deadline } => {
                if now >= *deadline {
                    self.end_connection(DisconnectReason::HandshakeTimeout, now);
                }
            }
            State::Open => {
                let interval = self.heartbeat_interval();
                if now >= self.dead_deadline() {
                    // Only a death while idle-pinging says anything about the path's
                    // tolerance for silence; a death in mid-traffic does not.
                    if self.link.probe.is_some() {
                        if let Some(a) = self.adaptive.as_mut() {
                            if let Some(interval) = a.on_failure(interval, now) {
                                self.events
                                    .push_back(ClientEvent::HeartbeatChanged { interval });
                            }
                        }
                    }
                    self.end_connection(DisconnectReason::DeadPeer { interval }, now);
                } else if now >= self.ping_due() {
                    self.send_ping(now);
                }
            }
            State::Closing {
                deadline, reason, ..
            } => {
                if now >= *deadline {
                    let reason = reason.clone();
                    self.end_connection(reason, now);
                }
            }
            State::Waiting { until } => {
                if now >= *until {
                    self.set_state(State::Connecting);
                    let attempt = self.backoff.attempt();
                    self.events.push_back(ClientEvent::Connecting { attempt });
                }
            }
            State::Connecting | State::Closed => {}
        }
    }

    /// Sends one application message: split at the server's `max_frame` when
    /// open, otherwise held (bounded) until the next WELCOME.
    pub fn send(&mut self, message: &[u8], now: Instant) -> Result<(), SendError> {
        match &self.state {
            State::Closed => Err(SendError::Closed),
            State::Open => {
                let (max_frame, max_message) = self.server_limits();
                if message.len() > max_message {
                    return Err(SendError::TooLarge {
                        len: message.len(),
                        max: max_message,
                    });
                }
                self.transmit.push_back(encode_message(message, max_frame));
                self.link.last_tx = now;
                Ok(())
            }
            State::Connecting
            | State::Handshaking { .. }
            | State::Closing { .. }
            | State::Waiting { .. } => {
                if self.user_closed {
                    return Err(SendError::Closed);
                }
                if message.len() > self.config.max_message {
                    return Err(SendError::TooLarge {
                        len: message.len(),
                        max: self.config.max_message,
                    });
                }
                if self.pending_bytes + message.len() > self.config.max_pending {
                    return Err(SendError::QueueFull);
                }
                self.pending_bytes += message.len();
                self.pending.push_back(Bytes::copy_from_slice(message));
                Ok(())
            }
        }
    }

    /// Closes for good: GOAWAY NORMAL, then wait for the server's EOF (still
    /// delivering what it sends) until `linger` runs out. Never reconnects after.
    pub fn close(&mut self, now: Instant) {
        self.user_closed = true;
        match &self.state {
            // Open: the server may still answer what we sent before the GOAWAY.
            State::Open => {
                self.queue_goaway(GoawayCode::Normal, "bye", now);
                self.start_closing(DisconnectReason::Closed, true, now);
            }
            // Handshaking: nothing to read yet; say goodbye and drain.
            State::Handshaking { .. } => {
                self.queue_goaway(GoawayCode::Normal, "bye", now);
                self.start_closing(DisconnectReason::Closed, false, now);
            }
            // Already closing: `user_closed` makes its end final.
            State::Closing { .. } => {}
            // No socket (or one being opened, which the driver will drop): done now.
            State::Connecting | State::Waiting { .. } => self.finish(),
            // Nothing left to close.
            State::Closed => {}
        }
    }

    /// Closes the connection because the layer above found the server's
    /// message unacceptable (the v2 pub/sub layer's PROTOCOL_ERROR,
    /// docs/protocol.md §7.2): GOAWAY `code` with `reason` (cut at 256
    /// bytes), nothing more is read, then the usual drain to the server's EOF
    /// and a reconnect, as after a protocol error found here.
    pub fn abort(&mut self, code: GoawayCode, reason: &str, now: Instant) {
        match &mut self.state {
            State::Handshaking { .. } | State::Open => {
                self.queue_goaway(code, reason, now);
                let reason = DisconnectReason::Aborted {
                    code,
                    reason: reason.to_owned(),
                };
                self.start_closing(reason, false, now);
            }
            // Already said goodbye: stop trusting the stream, keep draining to EOF.
            State::Closing { reading, .. } => *reading = false,
            State::Connecting | State::Waiting { .. } | State::Closed => {}
        }
    }

    // ----- outputs -----

    /// The next bytes to write, in order. Write them all before shutting down
    /// the write side (see [`ClientMachine::wants_shutdown_write`]).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientMachine::handle_timeout`] must next be called; `None` when
    /// no timer is running (waiting on the driver's connect, or closed).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Handshaking { deadline } | State::Closing { deadline, .. } => Some(*deadline),
            State::Open => Some(self.ping_due().min(self.dead_deadline())),
            State::Waiting { until } => Some(*until),
            State::Connecting | State::Closed => None,
        }
    }

    /// The driver should open a socket now and call `handle_connected` or `handle_connect_failed`.
    pub fn wants_connect(&self) -> bool {
        self.state == State::Connecting
    }

    /// Whether the current socket is still wanted; when false, the driver drops it.
    pub fn wants_socket(&self) -> bool {
        matches!(
            self.state,
            State::Handshaking { .. } | State::Open | State::Closing { .. }
        )
    }

    /// Nothing more will be queued on this socket: once the queued bytes are
    /// written, shut down its write side (FIN) and keep reading until EOF.
    pub fn wants_shutdown_write(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// Whether the handshake is done and the connection usable.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the client is finished (closed, refused for good or gave up).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The session id from the latest WELCOME, used for HELLO RESUME.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The latest WELCOME (the server's limits).
    pub fn welcome(&self) -> Option<&Welcome> {
        self.welcome.as_ref()
    }

    /// The heartbeat interval in use: the adaptive one, or the negotiated one.
    pub fn heartbeat_interval(&self) -> Duration {
        self.adaptive
            .as_ref()
            .map_or(self.negotiated, |a| a.interval())
    }

    /// The adaptive heartbeat's state, when enabled.
    pub fn adaptive(&self) -> Option<&AdaptiveHeartbeat> {
        self.adaptive.as_ref()
    }

    // ----- internals -----

    fn is_reading(&self) -> bool {
        match &self.state {
            State::Handshaking { .. } | State::Open => true,
            State::Closing { reading, .. } => *reading,
            State::Connecting | State::Waiting { .. } | State::Closed => false,
        }
    }

    /// (max_frame, max_message) to send with: the server's, or safe guesses before WELCOME.
    fn server_limits(&self) -> (usize, usize) {
        self.welcome
            .as_ref()
            .map_or((CLIENT_MAX_FRAME, self.config.max_message), |w| {
                (usize::from(w.max_frame.max(1)), w.max_message as usize)
            })
    }

    fn protocol_error(&mut self, error: ProtocolError, now: Instant) {
        log::debug!("client: protocol error: {error}");
        if let State::Closing { reading, .. } = &mut self.state {
            // Already said goodbye: stop trusting the stream, keep draining to EOF.
            *reading = false;
            return;
        }
        self.queue_goaway(error.goaway_code(), &error.to_string(), now);
        self.start_closing(DisconnectReason::Protocol(error), false, now);
    }

    fn queue_pong(&mut self, payload: &[u8], now: Instant) {
        self.transmit
            .push_back(encode_frame(FrameType::Pong, false, payload));
        self.link.last_tx = now;
    }

    fn queue_goaway(&mut self, code: GoawayCode, reason: &str, now: Instant) {
        self.transmit.push_back(encode_goaway(code, reason));
        self.link.last_tx = now;
    }

    fn reset_message(&mut self) {
        self.message = BytesMut::new();
        self.in_message = false;
    }

    fn start_closing(&mut self, reason: DisconnectReason, reading: bool, now: Instant) {
        self.reset_message();
        let deadline = later(now, self.config.linger);
        self.set_state(State::Closing {
            deadline,
            reading,
            reason,
        });
    }

    /// The socket is done: report why, then schedule the next attempt, give
    /// up, or finish.
    fn end_connection(&mut self, reason: DisconnectReason, now: Instant) {
        self.transmit.clear();
        self.decoder.clear();
        self.reset_message();
        if let Some(opened) = self.link.opened_at.take() {
            // Healthy means it was alive (received frames) for long enough, not
            // merely that dead-peer detection took long to notice.
            let alive_for = self.link.last_rx.saturating_duration_since(opened);
            if alive_for >= self.backoff.config().healthy_after {
                self.backoff.reset();
            }
        }
        let is_final = reason.is_final() || self.user_closed || !self.config.reconnect;
        // §7.8: a GOAWAY may say how long to stay away.
        let hint = match &reason {
            DisconnectReason::Goaway(goaway) => retry_after_hint(&goaway.reason),
            _ => None,
        };
        self.events.push_back(ClientEvent::Disconnected { reason });
        if is_final {
            self.finish();
            return;
        }
        match self.backoff.next_delay_with_hint(hint) {
            Some(delay) => {
                let attempt = self.backoff.attempt();
                self.events
                    .push_back(ClientEvent::Reconnecting { attempt, delay });
                self.set_state(State::Waiting {
                    until: later(now, delay),
                });
            }
            None => {
                let attempts = self.backoff.attempt();
                self.events.push_back(ClientEvent::GaveUp { attempts });
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
        self.transmit.clear();
        self.set_state(State::Closed);
        self.events.push_back(ClientEvent::Closed);
    }
}

mod heartbeat;
mod recv;

#[cfg(test)]
mod nat;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
