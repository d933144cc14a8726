//! A blocking v2 pub/sub client: the [`PubsubMachine`] over the blocking
//! [`Client`], which reconnects by itself; this resubscribes after every
//! reconnect and hands out publications once and in order.
//!
//! One rule keeps request ids straight across reconnects: every event the
//! connection has already produced reaches the pub/sub machine before
//! anything the machine wants sent is written, so what it sends is always
//! meant for the connection open now. The connection holds nothing across
//! reconnects itself (`max_pending` 0): the pub/sub machine decides what to
//! send again after a WELCOME.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use super::{Position, PublishId, PubsubConfig, PubsubError, PubsubEvent, PubsubMachine, Status};
use crate::client::backoff::SplitMix64;
use crate::client::blocking::Client;
use crate::client::{ClientConfig, ClientEvent};
use crate::protocol::{GoawayCode, PROTOCOL_V2};

/// How long the blocking calls wait for a connection and an answer, unless
/// changed with [`PubsubClient::set_request_timeout`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a blocking pub/sub call failed.
#[derive(Debug)]
pub enum PubsubClientError {
    /// Refused before sending (a bad channel, too large, …).
    Local(PubsubError),
    /// The server refused the publish; nothing was published.
    Refused(Status),
    /// The connection ended before the answer: it may or may not have been
    /// published (it is not resent).
    Unknown,
    /// No connection or no answer within the request timeout. An answer
    /// that comes later is still given as an event.
    TimedOut,
    /// The client is closed for good (refused, gave up, or closed).
    Closed(io::Error),
}

impl fmt::Display for PubsubClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PubsubClientError::Local(e) => write!(f, "{e}"),
            PubsubClientError::Refused(status) => write!(f, "refused: {status}"),
            PubsubClientError::Unknown => {
                f.write_str("outcome unknown: the connection ended before the acknowledgement")
            }
            PubsubClientError::TimedOut => f.write_str("timed out"),
            PubsubClientError::Closed(e) => write!(f, "client closed: {e}"),
        }
    }
}

impl std::error::Error for PubsubClientError {}

impl From<PubsubError> for PubsubClientError {
    fn from(e: PubsubError) -> Self {
        PubsubClientError::Local(e)
    }
}

/// `now + d`, saturating instead of panicking on a huge timeout.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// A v2 pub/sub client over one reconnecting connection. Not thread-safe by
/// design: all work happens inside the calls made on it.
#[derive(Debug)]
pub struct PubsubClient {
    client: Client,
    machine: PubsubMachine,
    /// Events for the application, in order.
    events: VecDeque<PubsubEvent>,
    /// How many of `events` a waiting `publish_acked` has looked at.
    scanned: usize,
    /// Why the client closed for good, once it has.
    closed: Option<io::Error>,
    request_timeout: Duration,
}

impl PubsubClient {
    /// Connects with protocol v2 to the first of `addrs` that answers (each
    /// reconnect starts after the address whose connection ended) and
    /// completes the handshake. `config.version` and `config.max_pending`
    /// are set here (2 and 0). The first attempt is not retried; later
    /// losses reconnect and resubscribe.
    pub fn connect<A: ToSocketAddrs>(
        addrs: A,
        config: ClientConfig,
        pubsub: PubsubConfig,
    ) -> io::Result<PubsubClient> {
        let config = ClientConfig {
            version: PROTOCOL_V2,
            max_pending: 0,
            ..config
        };
        let client = Client::connect(addrs, config)?;
        let machine = PubsubMachine::new(pubsub, Box::new(SplitMix64::from_entropy()));
        let mut this = PubsubClient {
            client,
            machine,
            events: VecDeque::new(),
            scanned: 0,
            closed: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        };
        this.flush();
        Ok(this)
    }

    /// How long `publish`, `begin_publish` and `publish_acked` wait for a
    /// connection, and `publish_acked` for its answer (30 s by default).
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Wants `channel` from `from` (or from the stream's top when `None`);
    /// see [`PubsubMachine::subscribe`]. Its [`PubsubEvent::Subscribed`]
    /// (or failure) comes through [`PubsubClient::next_event`].
    pub fn subscribe(&mut self, channel: &[u8], from: Option<Position>) -> Result<(), PubsubError> {
        self.machine.subscribe(channel, from)?;
        self.flush();
        Ok(())
    }

    /// Forgets `channel`; returns whether it was wanted.
    pub fn unsubscribe(&mut self, channel: &[u8]) -> bool {
        let wanted = self.machine.unsubscribe(channel);
        self.flush();
        wanted
    }

    /// Publishes without acknowledgement, waiting for a connection first if
    /// there is none.
    pub fn publish(&mut self, channel: &[u8], body: &[u8]) -> Result<(), PubsubClientError> {
        self.wait_connected(deadline_after(self.request_timeout))?;
        self.machine.publish(channel, body)?;
        self.flush();
        Ok(())
    }

    /// Starts an acknowledged publish, waiting for a connection first if
    /// there is none; its outcome comes as an event naming the id returned.
    /// For pipelining: keep your own bound on how many are in flight.
    pub fn begin_publish(
        &mut self,
        channel: &[u8],
        body: &[u8],
    ) -> Result<PublishId, PubsubClientError> {
        self.wait_connected(deadline_after(self.request_timeout))?;
        let id = self.machine.publish_acked(channel, body)?;
        self.flush();
        Ok(id)
    }

    /// Publishes and waits for the acknowledgement: the publication's
    /// position (epoch, offset), or why not. Other events that arrive
    /// meanwhile are kept for [`PubsubClient::next_event`].
    pub fn publish_acked(
        &mut self,
        channel: &[u8],
        body: &[u8],
    ) -> Result<Position, PubsubClientError> {
        let until = deadline_after(self.request_timeout);
        self.wait_connected(until)?;
        let id = self.machine.publish_acked(channel, body)?;
        self.flush();
        self.scanned = 0;
        loop {
            if let Some(outcome) = self.take_outcome(id) {
                return outcome;
            }
            if let Some(e) = &self.closed {
                return Err(PubsubClientError::Closed(copy_error(e)));
            }
            if Instant::now() >= until {
                return Err(PubsubClientError::TimedOut);
            }
            self.pump(until);
        }
    }

    /// Waits up to `timeout` for the next event. `Ok(None)` on timeout; an
    /// error once the client is closed for good and every event has been returned.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<PubsubEvent>> {
        let until = deadline_after(timeout);
        loop {
            if let Some(event) = self.events.pop_front() {
                self.scanned = self.scanned.saturating_sub(1);
                return Ok(Some(event));
            }
            if let Some(e) = &self.closed {
                return Err(copy_error(e));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            self.pump(until);
        }
    }

    /// Closes politely (GOAWAY NORMAL, then the server's EOF); the events it
    /// causes (the disconnect, publishes whose outcome is now unknown) can
    /// still be taken with `next_event`. No reconnect follows.
    pub fn close(&mut self) -> io::Result<()> {
        let result = self.client.close();
        self.flush();
        result
    }

    /// Whether a connection is open and subscriptions are being served.
    pub fn is_connected(&self) -> bool {
        self.machine.is_connected()
    }

    /// The pub/sub state: positions, wanted channels.
    pub fn machine(&self) -> &PubsubMachine {
        &self.machine
    }

    /// The connection underneath, for its limits and heartbeat.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Removes and returns the outcome of publish `id` if it has come.
    fn take_outcome(&mut self, id: PublishId) -> Option<Result<Position, PubsubClientError>> {
        let found = self.events.iter().skip(self.scanned).position(|e| {
            matches!(e,
                PubsubEvent::PublishAcked { id: i, .. }
                | PubsubEvent::PublishFailed { id: i, .. }
                | PubsubEvent::PublishUnknown { id: i, .. } if *i == id)
        });
        let Some(found) = found else {
            self.scanned = self.events.len();
            return None;
        };
        let index = self.scanned + found;
        self.scanned = index;
        Some(match self.events.remove(index)? {
            PubsubEvent::PublishAcked { epoch, offset, .. } => Ok(Position { epoch, offset }),
            PubsubEvent::PublishFailed { status, .. } => Err(PubsubClientError::Refused(status)),
            _ => Err(PubsubClientError::Unknown),
        })
    }

    /// Waits until a connection is open (or `until`, or the client closed).
    fn wait_connected(&mut self, until: Instant) -> Result<(), PubsubClientError> {
        loop {
            self.flush();
            if self.machine.is_connected() {
                return Ok(());
            }
            if let Some(e) = &self.closed {
                return Err(PubsubClientError::Closed(copy_error(e)));
            }
            if Instant::now() >= until {
                return Err(PubsubClientError::TimedOut);
            }
            self.pump(until);
        }
    }

    /// Waits for one event of the connection (until `until` or the next
    /// pub/sub retry) and lets both machines act on it.
    fn pump(&mut self, until: Instant) {
        self.flush();
        if self.closed.is_some() {
            return;
        }
        let wake = self.machine.poll_timeout().map_or(until, |t| t.min(until));
        let timeout = wake.saturating_duration_since(Instant::now());
        match self.client.next_event(timeout) {
            Ok(Some(event)) => self.feed(event),
            Ok(None) => {}
            Err(e) => self.closed = Some(e),
        }
        self.machine.handle_timeout(Instant::now());
        self.flush();
    }

    /// Feeds every event the connection has already produced to the pub/sub
    /// machine (without waiting), then writes what the machine wants sent.
    fn flush(&mut self) {
        while self.closed.is_none() {
            match self.client.next_event(Duration::ZERO) {
                Ok(Some(event)) => self.feed(event),
                Ok(None) => break,
                Err(e) => self.closed = Some(e),
            }
        }
        while let Some(message) = self.machine.poll_transmit() {
            // A refusal means the connection is no longer open: the machine
            // hears of its end from the event already queued.
            if let Err(e) = self.client.send(&message) {
                log::debug!("tether pubsub client: not sent: {e}");
            }
        }
        while let Some(event) = self.machine.poll_event() {
            self.events.push_back(event);
        }
    }

    fn feed(&mut self, event: ClientEvent) {
        let now = Instant::now();
        match event {
            ClientEvent::Connected { resumed, .. } => {
                let max_message = self
                    .client
                    .machine()
                    .welcome()
                    .map_or(0, |w| w.max_message as usize);
                self.machine.handle_connected(max_message, resumed);
            }
            ClientEvent::Message(message) => {
                if let Err(e) = self.machine.handle_message(&message, now) {
                    log::info!("tether pubsub client: protocol error: {e}");
                    self.client.abort(GoawayCode::ProtocolError, &e.to_string());
                }
            }
            ClientEvent::Disconnected { reason } => self.machine.handle_disconnected(reason),
            other => log::debug!("tether pubsub client: {other:?}"),
        }
        while let Some(event) = self.machine.poll_event() {
            self.events.push_back(event);
        }
    }
}

/// An `io::Error` with the same kind and text, for handing out again.
fn copy_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests;
