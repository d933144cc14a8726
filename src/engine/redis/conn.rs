//! One connection to one Redis server, sans-io: bytes and time in, bytes
//! and events out. Whoever owns the socket (the reactor, or a test over a
//! blocking `TcpStream`) moves the bytes; this decides everything else.
//!
//! - **Handshake**: `HELLO 3 [AUTH user password] [SETNAME name]` is the
//!   first command, pipelined with whatever the owner sends at once. RESP3
//!   lets pub/sub pushes and replies share the connection (see the module
//!   docs of [`super`] for why one connection per server).
//! - **Pipelining**: commands are queued with the owner's token, sent while
//!   fewer than `max_in_flight` wait for replies, and matched to replies in
//!   order. Pending (queued + in flight) is bounded by count and bytes:
//!   [`RedisConn::send`] refuses beyond, nothing grows without bound.
//! - **Pub/sub**: `message`/`smessage` pushes become [`RedisEvent::Message`];
//!   a (S)SUBSCRIBE completes when every channel is confirmed.
//! - **Scripts**: a script call goes out as EVALSHA; on NOSCRIPT it is sent
//!   again, once, as EVAL (which also fills the script cache), ahead of
//!   commands not sent yet. Commands already sent behind it run before it:
//!   pipelined publishes can be numbered out of their send order after a
//!   SCRIPT FLUSH (a new connection loads the scripts first, so only a flush
//!   while connected does this); §7.2 lets replies come in any order.
//! - **Liveness**: with nothing in flight, a PING after `ping_interval` of
//!   silence; with something in flight and nothing received for `timeout`,
//!   the connection is dead ([`CloseReason::Timeout`]).
//! - **Failure**: every command still pending fails with the reason and
//!   comes back to the owner ([`RedisEvent::Failed`]), then
//!   [`RedisEvent::Closed`]. Nothing from Redis can panic this code: bad
//!   bytes, a reply with no command, too deep or too large a reply close it.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::command::{Command, Expect, PubsubKind};
use super::error::{CloseReason, ErrorKind, RedisError, ServerError};
pub use super::event::{RedisConfig, RedisEvent, RedisStats, SendError, Token};
use super::frame::{decode_frame, frame_len, Frame, Value, MAX_DEPTH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    User(Token),
    Hello,
    Ping,
}

#[derive(Debug)]
struct Pending {
    origin: Origin,
    command: Command,
    expect: Expect,
    /// Script calls: EVALSHA (true) or EVAL after a NOSCRIPT (false).
    by_sha: bool,
}

#[derive(Debug)]
struct InFlight {
    pending: Pending,
    sent_at: Instant,
    /// Position of its first byte in everything encoded so far.
    starts_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Handshaking,
    Ready,
    Closed(CloseReason),
}

/// A sans-io RESP3 connection to one Redis server (see the module docs).
pub struct RedisConn {
    config: RedisConfig,
    state: State,
    queued: VecDeque<Pending>,
    /// Script calls to send again as EVAL, in their original order, before `queued`.
    retry: VecDeque<Pending>,
    in_flight: VecDeque<InFlight>,
    /// User commands queued or in flight, and their argument bytes.
    pending: usize,
    pending_bytes: usize,
    /// Encoded, not yet handed out by `poll_transmit`.
    out: BytesMut,
    encoded_total: u64,
    handed_total: u64,
    rx: BytesMut,
    last_rx: Instant,
    events: VecDeque<RedisEvent>,
    stats: RedisStats,
}

/// State and sizes only: the buffers hold the HELLO's password and bodies.
impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("state", &self.state)
            .field("config", &self.config)
            .field("queued", &self.queued.len())
            .field("retry", &self.retry.len())
            .field("in_flight", &self.in_flight.len())
            .field("pending_bytes", &self.pending_bytes)
            .field("unsent_bytes", &self.out.len())
            .field("buffered_reply_bytes", &self.rx.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl RedisConn {
    /// A connection whose socket the owner opens now; HELLO is already
    /// queued for [`RedisConn::poll_transmit`].
    pub fn new(config: RedisConfig, now: Instant) -> RedisConn {
        let mut conn = RedisConn {
            config,
            state: State::Handshaking,
            queued: VecDeque::new(),
            retry: VecDeque::new(),
            in_flight: VecDeque::new(),
            pending: 0,
            pending_bytes: 0,
            out: BytesMut::new(),
            encoded_total: 0,
            handed_total: 0,
            rx: BytesMut::new(),
            last_rx: now,
            events: VecDeque::new(),
            stats: RedisStats::default(),
        };
        let hello = conn.hello_command();
        conn.transmit(
            Pending {
                origin: Origin::Hello,
                command: hello,
                expect: Expect::Reply,
                by_sha: true,
            },
            now,
        );
        conn
    }

    fn hello_command(&self) -> Command {
        let mut hello = Command::new("HELLO").arg("3");
        if let Some(password) = &self.config.password {
            let user = self.config.username.as_deref().unwrap_or("default");
            hello = hello
                .arg("AUTH")
                .arg(Bytes::copy_from_slice(user.as_bytes()))
                .arg(Bytes::copy_from_slice(password.as_bytes()));
        }
        if let Some(name) = &self.config.client_name {
            hello = hello
                .arg("SETNAME")
                .arg(Bytes::copy_from_slice(name.as_bytes()));
        }
        hello
    }

    // ----- inputs -----

    /// Queues `command` under `token`; it is sent as soon as the pipeline
    /// has room. Refused (and handed back) when the connection is closed,
    /// the pending bounds are reached or the command is unsupported.
    pub fn send(
        &mut self,
        token: Token,
        command: Command,
        now: Instant,
    ) -> Result<(), (SendError, Command)> {
        let refuse = |conn: &mut RedisConn, why, command| {
            conn.stats.refused += 1;
            Err((why, command))
        };
        if self.is_closed() {
            return refuse(self, SendError::Closed, command);
        }
        let expect = match command.expect() {
            Ok(expect) => expect,
            Err(why) => return refuse(self, SendError::Unsupported(why), command),
        };
        let weight = command.weight();
        if weight > self.config.max_pending_bytes {
            let why = format!(
                "a {weight}-byte command is over the {}-byte bound of pending commands",
                self.config.max_pending_bytes
            );
            return refuse(self, SendError::Unsupported(why), command);
        }
        if self.pending >= self.config.max_pending
            || self.pending_bytes + weight > self.config.max_pending_bytes
        {
            let full = SendError::Full {
                pending: self.pending,
                pending_bytes: self.pending_bytes,
            };
            return refuse(self, full, command);
        }
        self.pending += 1;
        self.pending_bytes += weight;
        self.queued.push_back(Pending {
            origin: Origin::User(token),
            command,
            expect,
            by_sha: true,
        });
        self.fill(now);
        Ok(())
    }

    /// Bytes read from the socket.
    pub fn handle_bytes(&mut self, data: &[u8], now: Instant) {
        if self.is_closed() || data.is_empty() {
            return;
        }
        self.last_rx = now;
        self.rx.extend_from_slice(data);
        while !self.is_closed() {
            match frame_len(&self.rx, MAX_DEPTH) {
                Ok(None) => {
                    if self.rx.len() > self.config.max_reply_bytes {
                        let why = format!(
                            "a reply over the {}-byte limit ({} bytes buffered)",
                            self.config.max_reply_bytes,
                            self.rx.len()
                        );
                        self.close_with(CloseReason::Protocol(why));
                    }
                    break;
                }
                Ok(Some(len)) => match decode_frame(&mut self.rx, len) {
                    Ok(frame) => self.handle_frame(frame, now),
                    Err(e) => self.close_with(CloseReason::Protocol(e.to_string())),
                },
                Err(e) => self.close_with(CloseReason::Protocol(e.to_string())),
            }
        }
        self.fill(now);
    }

    /// Redis closed its side (a read returned 0).
    pub fn handle_eof(&mut self) {
        self.close_with(CloseReason::Eof);
    }

    /// The socket failed (connect, read or write); `error` says how.
    pub fn handle_io_error(&mut self, error: &str) {
        self.close_with(CloseReason::Io(error.to_owned()));
    }

    /// Time passed: sends the liveness PING or declares the server dead.
    /// Call it at [`RedisConn::poll_timeout`] (earlier is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if let Some(head) = self.in_flight.front() {
            if now >= self.last_rx.max(head.sent_at) + self.config.timeout {
                self.close_with(CloseReason::Timeout);
            }
        } else if now >= self.last_rx + self.config.ping_interval {
            self.stats.pings += 1;
            let ping = Pending {
                origin: Origin::Ping,
                command: Command::new("PING"),
                expect: Expect::Reply,
                by_sha: true,
            };
            self.transmit(ping, now);
        }
    }

    /// Closes the connection from this side: pending commands fail with
    /// [`CloseReason::Closed`]. The owner then drops the socket.
    pub fn close(&mut self) {
        self.close_with(CloseReason::Closed);
    }

    // ----- outputs -----

    /// The next bytes to write, all that is encoded so far. Write them all,
    /// in order, before the next call's.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        self.handed_total += self.out.len() as u64;
        Some(self.out.split().freeze())
    }

    /// The next event. Drain them after every input: they are bounded by
    /// the commands pending and the bytes of that input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RedisEvent> {
        self.events.pop_front()
    }

    /// When [`RedisConn::handle_timeout`] must next be called; `None` once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (&self.state, self.in_flight.front()) {
            (State::Closed(_), _) => None,
            (_, Some(head)) => Some(self.last_rx.max(head.sent_at) + self.config.timeout),
            (_, None) => Some(self.last_rx + self.config.ping_interval),
        }
    }

    /// HELLO succeeded and the connection is open.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The connection ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Why it ended, once closed.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// User commands queued or in flight.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Commands (internal ones included) sent and waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> RedisStats {
        self.stats
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    // ----- internals -----

    /// Moves queued commands into flight while the pipeline has room.
    fn fill(&mut self, now: Instant) {
        while !self.is_closed() && self.in_flight.len() < self.config.max_in_flight {
            let Some(next) = self.retry.pop_front().or_else(|| self.queued.pop_front()) else {
                break;
            };
            self.transmit(next, now);
        }
    }

    fn transmit(&mut self, pending: Pending, now: Instant) {
        let before = self.out.len();
        pending.command.encode(&mut self.out, pending.by_sha);
        let starts_at = self.encoded_total;
        self.encoded_total += (self.out.len() - before) as u64;
        self.in_flight.push_back(InFlight {
            pending,
            sent_at: now,
            starts_at,
        });
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        match frame {
            Frame::Push(items) => {
                self.stats.pushes += 1;
                self.handle_push(items);
            }
            Frame::Reply(value) => self.handle_reply(Ok(value), now),
            Frame::Error(text) => self.handle_reply(Err(ServerError::parse(&text)), now),
        }
    }

    fn handle_push(&mut self, items: Vec<Value>) {
        let kind = items
            .first()
            .and_then(Value::as_bytes)
            .map(|k| k.to_ascii_lowercase());
        let field = |i: usize| items.get(i).and_then(Value::as_bytes).cloned();
        match (kind.as_deref(), items.len()) {
            (Some(b"message"), 3) | (Some(b"smessage"), 3) => {
                if let (Some(channel), Some(payload)) = (field(1), field(2)) {
                    let kind = if kind.as_deref() == Some(b"message") {
                        PubsubKind::Global
                    } else {
                        PubsubKind::Sharded
                    };
                    self.events.push_back(RedisEvent::Message {
                        kind,
                        channel,
                        payload,
                    });
                    return;
                }
            }
            (Some(k @ (b"subscribe" | b"ssubscribe" | b"unsubscribe" | b"sunsubscribe")), 3) => {
                if let Some(channel) = field(1) {
                    let count = items[2].as_int().unwrap_or(0);
                    if self.confirm(k, &channel, count) {
                        return;
                    }
                    if k.ends_with(b"unsubscribe") {
                        let kind = if k == b"unsubscribe" {
                            PubsubKind::Global
                        } else {
                            PubsubKind::Sharded
                        };
                        self.events
                            .push_back(RedisEvent::Unsubscribed { kind, channel });
                        return;
                    }
                }
            }
            _ => {}
        }
        self.events.push_back(RedisEvent::Push(items));
    }

    /// Counts a confirmation push against the oldest command if it waits
    /// for it; completes that command with its last one.
    fn confirm(&mut self, push: &[u8], channel: &Bytes, count: i64) -> bool {
        let Some(head) = self.in_flight.front_mut() else {
            return false;
        };
        let Expect::Confirmations {
            push: want,
            channels,
        } = &mut head.pending.expect
        else {
            return false;
        };
        let Some(at) = channels
            .iter()
            .position(|c| c == channel)
            .filter(|_| *want == push)
        else {
            return false;
        };
        channels.remove(at);
        if channels.is_empty() {
            self.complete(Ok(Value::Int(count)));
        }
        true
    }

    fn handle_reply(&mut self, reply: Result<Value, ServerError>, now: Instant) {
        let Some(head) = self.in_flight.front() else {
            let why = "a reply with no command waiting for one".to_owned();
            return self.close_with(CloseReason::Protocol(why));
        };
        if matches!(head.pending.expect, Expect::Confirmations { .. }) && reply.is_ok() {
            let why = format!("a reply instead of pushes to {:?}", head.pending.command);
            return self.close_with(CloseReason::Protocol(why));
        }
        match (head.pending.origin, reply) {
            (Origin::Hello, Ok(value)) => {
                let text = |key: &[u8]| {
                    value
                        .map_get(key)
                        .and_then(Value::as_bytes)
                        .map_or(String::new(), |b| String::from_utf8_lossy(b).into_owned())
                };
                let (version, mode) = (text(b"version"), text(b"mode"));
                self.complete(Ok(Value::Nil));
                self.state = State::Ready;
                self.events.push_back(RedisEvent::Ready { version, mode });
            }
            (Origin::Hello, Err(e)) => self.close_with(CloseReason::Handshake(e)),
            (Origin::Ping, reply) => {
                if reply.is_ok() {
                    self.stats.rtt = Some(now.saturating_duration_since(head.sent_at));
                }
                self.complete(Ok(Value::Nil));
            }
            (Origin::User(_), Err(e))
                if e.kind == ErrorKind::NoScript
                    && head.pending.by_sha
                    && head.pending.command.called_script().is_some() =>
            {
                // Send the script itself, before anything not yet sent; the
                // commands sent behind it run first (see the module docs).
                if let Some(done) = self.in_flight.pop_front() {
                    self.stats.replies += 1;
                    self.stats.script_fallbacks += 1;
                    let mut pending = done.pending;
                    pending.by_sha = false;
                    self.retry.push_back(pending);
                }
            }
            (Origin::User(_), reply) => self.complete(reply),
        }
    }

    /// Ends the oldest in-flight command with `reply`.
    fn complete(&mut self, reply: Result<Value, ServerError>) {
        let Some(done) = self.in_flight.pop_front() else {
            return;
        };
        self.stats.replies += 1;
        let Origin::User(token) = done.pending.origin else {
            return;
        };
        self.pending -= 1;
        self.pending_bytes -= done.pending.command.weight();
        self.events.push_back(match reply {
            Ok(value) => RedisEvent::Reply { token, value },
            Err(e) => RedisEvent::Failed {
                token,
                error: RedisError::Server(e),
                command: done.pending.command,
            },
        });
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        let handed = self.handed_total;
        let in_flight = self
            .in_flight
            .drain(..)
            .map(|f| (f.pending, f.starts_at < handed));
        // Retries got NOSCRIPT: Redis ran none of them.
        let retry = self.retry.drain(..).map(|p| (p, false));
        let queued = self.queued.drain(..).map(|p| (p, false));
        for (pending, sent) in in_flight.chain(retry).chain(queued).collect::<Vec<_>>() {
            if let Origin::User(token) = pending.origin {
                let error = RedisError::Closed {
                    reason: reason.clone(),
                    sent,
                };
                self.events.push_back(RedisEvent::Failed {
                    token,
                    error,
                    command: pending.command,
                });
            }
        }
        self.pending = 0;
        self.pending_bytes = 0;
        self.out = BytesMut::new();
        self.rx = BytesMut::new();
        self.state = State::Closed(reason.clone());
        self.events.push_back(RedisEvent::Closed(reason));
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
