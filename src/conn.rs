//! One connection's state machine, without sockets or clocks.
//!
//! The reactor feeds it received bytes ([`Conn::handle_bytes`]), the time as a
//! [`Tick`], and what its writes managed to send; the connection answers with
//! events for the application, bytes to send ([`Conn::output`]) and one
//! deadline ([`Conn::deadline`]). Liveness is lazy: a received frame only
//! stores `last_rx`; when the deadline fires, [`Conn::handle_timeout`] decides
//! whether the peer really went quiet.
//!
//! ```text
//! Handshake --HELLO, app accepts--> Open --error/evict/stop--> Closing --EOF or linger--> Closed
//!     |                                 |                          ^
//!     +---------------------------------+--peer EOF--> Draining ---+--flushed + SHUT_WR--> Closed
//! ```

mod events;
mod input;
mod limits;
mod output;
mod rate;

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

pub use events::{CloseReason, ConnEvent, FrameCounts, State};
use input::{handle_data, InputBuffers};
pub use limits::ConnLimits;
pub use output::OutputQueue;
use rate::TokenBucket;

use crate::protocol::{
    encode_frame, encode_goaway, encode_message, Frame, FrameType, Goaway, GoawayCode, Hello,
    ProtocolError, SessionId, Welcome,
};
use crate::time::{Span, Tick};

/// The sans-io state of one connection. Kept small: an idle open connection
/// holds no heap memory at all (empty buffers do not allocate).
#[derive(Debug)]
pub struct Conn {
    state: State,
    /// A partial frame and a partial message; boxed and only while there is one,
    /// so an idle connection pays 8 bytes for them instead of 72.
    input: Option<Box<InputBuffers>>,
    /// Whole frames waiting to be written (≤ `max_output`, else SLOW_CONSUMER).
    output: OutputQueue,
    /// Frames allowed by `--rate-limit` (unused when it is off).
    bucket: TokenBucket,
    /// Frames counted since the reactor last collected them.
    counts: FrameCounts,
    /// Tick of the last complete frame received.
    last_rx: Tick,
    /// Handshake or linger deadline, depending on the state (unused while open).
    phase_deadline: Tick,
    /// The session given in WELCOME (all zero until then).
    session: SessionId,
    /// Negotiated heartbeat, ms (0 until the handshake).
    heartbeat_ms: u32,
    /// The protocol version the HELLO asked for (0 until then), echoed in WELCOME.
    version: u8,
    /// Bytes the output limits are raised by for replays (§7.4), until the
    /// unsent output is next at or below `max_output`. At most 4 GiB.
    output_raise: u32,
    /// Idle timeout in ticks (0 until the handshake).
    idle_ticks: u32,
    /// We have shut our write side down.
    write_shut: bool,
    /// The peer's EOF has been read.
    peer_eof: bool,
    /// How it ended (or is ending), once known.
    close_reason: Option<CloseReason>,
    /// A partial frame was pending when the peer's EOF came.
    truncated_at_eof: bool,
    /// Application data was queued after the last frame received: with no
    /// acknowledgements in the protocol, it may never have reached a peer
    /// that has gone silent.
    data_since_rx: bool,
}

impl Conn {
    /// A freshly accepted connection, waiting for HELLO until the handshake deadline.
    pub fn new(now: Tick, limits: &ConnLimits) -> Conn {
        Conn {
            state: State::Handshake,
            input: None,
            output: OutputQueue::default(),
            bucket: TokenBucket::new(now, limits.rate_burst),
            counts: FrameCounts::default(),
            last_rx: now,
            phase_deadline: limits.handshake.deadline_from(now),
            session: SessionId::default(),
            heartbeat_ms: 0,
            version: 0,
            output_raise: 0,
            idle_ticks: 0,
            write_shut: false,
            peer_eof: false,
            close_reason: None,
            truncated_at_eof: false,
            data_since_rx: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    fn set_state(&mut self, to: State) {
        if self.state != to {
            log::trace!("conn {} => {}", self.state, to);
            self.state = to;
        }
    }

    /// How the connection ended or is ending, once known.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// Whether application data was queued after the last frame received
    /// (so, were the peer gone, it may have been lost unseen).
    pub fn has_data_since_rx(&self) -> bool {
        self.data_since_rx
    }

    /// The session given in WELCOME, once the connection is open.
    pub fn session(&self) -> Option<SessionId> {
        (self.heartbeat_ms != 0 && self.state != State::Handshake).then_some(self.session)
    }

    /// The protocol version of the HELLO (0 before one was accepted): a
    /// connection speaks one version for its whole life (§7.1).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The negotiated heartbeat in ms (0 before the handshake).
    pub fn heartbeat_ms(&self) -> u32 {
        self.heartbeat_ms
    }

    /// Whether the peer's EOF came while a frame was only partly received.
    pub fn was_truncated_at_eof(&self) -> bool {
        self.truncated_at_eof
    }

    /// Whether the reactor should read from the socket.
    pub fn wants_read(&self) -> bool {
        !self.peer_eof && !matches!(self.state, State::Closed)
    }

    /// Whether output is queued, so WRITABLE interest is needed.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty() && !self.write_shut
    }

    /// Whether the reactor should `shutdown(Write)` now: closing and flushed.
    pub fn wants_shutdown_write(&self) -> bool {
        matches!(self.state, State::Closing | State::Draining)
            && self.output.is_empty()
            && !self.write_shut
    }

    /// Whether the slot can be reclaimed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes queued for the socket.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Bytes held for a partial frame and a partial message.
    pub fn buffered_input(&self) -> usize {
        self.input
            .as_ref()
            .map_or(0, |b| b.decoder.buffered() + b.message.len())
    }

    /// The queued output buffers, front first, for a vectored write.
    pub fn output(&self) -> &VecDeque<Bytes> {
        self.output.bufs()
    }

    /// Frames received and sent since the last call, for the counters.
    pub fn take_counts(&mut self) -> FrameCounts {
        std::mem::take(&mut self.counts)
    }

    /// The one deadline that matters now: handshake, idle or linger.
    pub fn deadline(&self, limits: &ConnLimits) -> Tick {
        match self.state {
            State::Open => {
                let idle = Span::from_ticks(self.idle_ticks.into()).deadline_from(self.last_rx);
                [
                    self.soft_output_deadline(limits),
                    self.frame_deadline(limits),
                ]
                .into_iter()
                .flatten()
                .fold(idle, Tick::min)
            }
            State::Handshake | State::Closing | State::Draining | State::Closed => {
                self.phase_deadline
            }
        }
    }

    /// While a frame is partly received: when it must be complete. Stops a
    /// slowloris peer from holding a frame buffer by trickling bytes that
    /// never finish a frame (the idle timeout alone could be half an hour).
    fn frame_deadline(&self, limits: &ConnLimits) -> Option<Tick> {
        let bufs = self.input.as_ref().filter(|b| b.decoder.buffered() > 0)?;
        Some(limits.frame_timeout.deadline_from(bufs.frame_started))
    }

    fn soft_output_deadline(&self, limits: &ConnLimits) -> Option<Tick> {
        self.output.soft_deadline(limits.soft_output_grace)
    }

    /// Consumes received bytes, stopping at the first event the application
    /// must see (`input` is advanced past what was used; call again with the
    /// rest). `None` when `input` is used up or no longer read (closing).
    pub fn handle_bytes(
        &mut self,
        input: &mut &[u8],
        now: Tick,
        limits: &ConnLimits,
    ) -> Option<ConnEvent> {
        let mut held = self.input.take();
        // A fresh decoder allocates nothing; it is boxed below only if it ends mid-frame.
        let mut fresh = InputBuffers::new(limits.max_frame.into());
        let bufs = held.as_deref_mut().unwrap_or(&mut fresh);
        let had_partial_frame = bufs.decoder.buffered() > 0;
        let frames_before = self.counts.frames_in;
        let event = self.consume(bufs, input, now, limits);
        if bufs.decoder.buffered() > 0
            && (!had_partial_frame || self.counts.frames_in != frames_before)
        {
            // A new frame began in this read: its completion clock starts now.
            bufs.frame_started = now;
        }
        let still_reading = matches!(self.state, State::Handshake | State::Open);
        if still_reading && !bufs.is_empty() {
            self.input = Some(held.unwrap_or_else(|| Box::new(fresh)));
        }
        event
    }

    fn consume(
        &mut self,
        bufs: &mut InputBuffers,
        input: &mut &[u8],
        now: Tick,
        limits: &ConnLimits,
    ) -> Option<ConnEvent> {
        loop {
            match self.state {
                State::Handshake | State::Open => {}
                State::Closing | State::Draining | State::Closed => {
                    // After a close starts, input is drained and discarded.
                    *input = &[];
                    return None;
                }
            }
            let frame = match bufs.decoder.next_frame(input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => {
                    self.fail(&e, now, limits);
                    continue;
                }
            };
            self.last_rx = now;
            self.data_since_rx = false;
            self.counts.frames_in += 1;
            if limits.rate_limit > 0
                && !self
                    .bucket
                    .take(now, limits.rate_limit, limits.rate_burst, limits.tick_ms)
            {
                self.close(
                    GoawayCode::RateLimited,
                    "frames above the rate limit",
                    now,
                    limits,
                );
                continue;
            }
            match self.handle_frame(frame, &mut bufs.message, now, limits) {
                Ok(Some(event)) => return Some(event),
                Ok(None) => {}
                Err(e) => self.fail(&e, now, limits),
            }
        }
    }

    fn handle_frame(
        &mut self,
        frame: Frame,
        message: &mut BytesMut,
        now: Tick,
        limits: &ConnLimits,
    ) -> Result<Option<ConnEvent>, ProtocolError> {
        let Frame {
            kind,
            more,
            payload,
        } = frame;
        match (self.state, kind) {
            (State::Handshake, FrameType::Hello) => self.handle_hello(&payload, now, limits),
            (State::Handshake, _) => Err(ProtocolError::Unexpected(kind)),
            (State::Open, FrameType::Ping) => {
                self.counts.pings_in += 1;
                self.push_output(encode_frame(FrameType::Pong, false, &payload), now, limits);
                Ok(None)
            }
            (State::Open, FrameType::Pong) => Ok(None),
            (State::Open, FrameType::Data) => handle_data(message, more, payload, limits),
            (State::Open, FrameType::Goaway) => {
                let goaway = Goaway::decode(&payload)?;
                self.close_reason = Some(CloseReason::PeerGoaway(goaway.code));
                self.begin_closing(now, limits);
                Ok(Some(ConnEvent::PeerGoaway(goaway)))
            }
            (State::Open, FrameType::Hello | FrameType::Welcome) => {
                Err(ProtocolError::Unexpected(kind))
            }
            (State::Closing | State::Draining | State::Closed, _) => Ok(None),
        }
    }

    fn handle_hello(
        &mut self,
        payload: &Bytes,
        now: Tick,
        limits: &ConnLimits,
    ) -> Result<Option<ConnEvent>, ProtocolError> {
        let hello = Hello::decode(payload)?;
        if !limits.is_authorized(&hello.token) {
            self.close(
                GoawayCode::Unauthorized,
                "auth token missing or wrong",
                now,
                limits,
            );
            return Ok(None);
        }
        self.heartbeat_ms = limits.negotiate_heartbeat(hello.heartbeat_ms);
        self.version = hello.version;
        let idle = limits.idle_timeout(self.heartbeat_ms).ticks();
        self.idle_ticks = u32::try_from(idle).unwrap_or(u32::MAX);
        self.last_rx = now;
        Ok(Some(ConnEvent::Hello(hello)))
    }

    /// Answers an accepted HELLO with WELCOME and opens the connection.
    /// Refuses (`false`) unless the connection is still in its handshake.
    pub fn accept(
        &mut self,
        session: SessionId,
        resumed: bool,
        lost: bool,
        now: Tick,
        limits: &ConnLimits,
    ) -> bool {
        if self.state != State::Handshake || self.heartbeat_ms == 0 {
            return false;
        }
        let welcome = Welcome {
            version: self.version,
            resumed,
            lost,
            heartbeat_ms: self.heartbeat_ms,
            idle_timeout_ms: limits.idle_timeout_ms(self.heartbeat_ms),
            max_frame: limits.max_frame,
            max_message: limits.max_message,
            session,
        };
        self.session = session;
        self.set_state(State::Open);
        self.push_output(welcome.encode_frame(), now, limits);
        true
    }

    /// Queues one application message (fragmented at `max_frame`).
    pub fn send_message(&mut self, message: &[u8], now: Tick, limits: &ConnLimits) {
        self.send_frames(
            encode_message(message, limits.max_frame.into()),
            now,
            limits,
        );
    }

    /// Queues already-encoded frames as they are: the way one fan-out buffer is
    /// shared by many connections without a copy. Ignored unless open.
    pub fn send_frames(&mut self, frames: Bytes, now: Tick, limits: &ConnLimits) {
        if self.state == State::Open {
            self.data_since_rx = true;
            self.push_output(frames, now, limits);
        }
    }

    fn push_output(&mut self, bytes: Bytes, now: Tick, limits: &ConnLimits) {
        self.counts.frames_out += 1;
        let soft = self.soft_output_limit(limits);
        self.output.push(bytes, now, soft);
    }

    /// Raises the hard and soft output limits by `bytes` (raises add up) until
    /// the unsent output is next at or below `max_output`: room for a replay
    /// queued at once (docs/protocol.md §7.4).
    pub fn raise_output_limits(&mut self, bytes: usize) {
        let raised = (self.output_raise as usize).saturating_add(bytes);
        self.output_raise = u32::try_from(raised).unwrap_or(u32::MAX);
    }

    /// How far the output limits are raised now.
    pub fn output_raise(&self) -> usize {
        self.output_raise as usize
    }

    fn hard_output_limit(&self, limits: &ConnLimits) -> usize {
        limits.max_output.saturating_add(self.output_raise())
    }

    /// The soft limit in force (0: off, raised or not).
    fn soft_output_limit(&self, limits: &ConnLimits) -> usize {
        match limits.soft_output {
            0 => 0,
            soft => soft.saturating_add(self.output_raise()),
        }
    }

    /// Applies the hard output limit: called by the reactor after it wrote
    /// what the socket would take, so only output the peer really left unread
    /// counts (a burst queued within one turn is not held against a reader
    /// that keeps up). Returns true when it just closed the connection.
    pub fn enforce_output_limit(&mut self, now: Tick, limits: &ConnLimits) -> bool {
        // A replay's raise may have just ended with the output still above
        // the soft limit: its grace period starts now.
        let soft = self.soft_output_limit(limits);
        self.output.start_soft_clock(now, soft);
        if self.state == State::Open && self.output.len() > self.hard_output_limit(limits) {
            self.close(
                GoawayCode::SlowConsumer,
                "output buffer limit exceeded",
                now,
                limits,
            );
            return true;
        }
        false
    }

    /// Records that the socket took `n` bytes from the front of [`Conn::output`].
    pub fn handle_written(&mut self, n: usize, limits: &ConnLimits) {
        let soft = self.soft_output_limit(limits);
        self.output.consume(n, soft);
        if self.output.len() <= limits.max_output {
            self.output_raise = 0;
        }
    }

    /// Starts a server-initiated close: GOAWAY `code` is queued (after the
    /// frame being written, if any) and the linger deadline starts.
    pub fn close(&mut self, code: GoawayCode, reason: &str, now: Tick, limits: &ConnLimits) {
        match self.state {
            State::Handshake | State::Open => {}
            // Already closing: the first reason stands.
            State::Closing | State::Draining | State::Closed => return,
        }
        if code == GoawayCode::SlowConsumer {
            // The peer is not reading: keep only the frame already on its way
            // so the GOAWAY stays frame-aligned, and drop the rest.
            self.output.drop_unstarted();
        }
        self.input = None;
        self.close_reason = Some(CloseReason::Goaway(code));
        self.counts.frames_out += 1;
        self.output.push(encode_goaway(code, reason), now, 0);
        self.begin_closing(now, limits);
    }

    fn fail(&mut self, error: &ProtocolError, now: Tick, limits: &ConnLimits) {
        log::debug!("protocol error: {error}");
        self.close(error.goaway_code(), &error.to_string(), now, limits);
    }

    fn begin_closing(&mut self, now: Tick, limits: &ConnLimits) {
        self.phase_deadline = limits.linger.deadline_from(now);
        self.set_state(State::Closing);
    }

    /// The peer's EOF (read returned 0). Complete frames were already handled;
    /// a partial one is dropped. Replies still queued are flushed before SHUT_WR.
    pub fn handle_eof(&mut self, now: Tick, limits: &ConnLimits) {
        self.peer_eof = true;
        if self.input.as_ref().is_some_and(|b| !b.is_empty()) {
            self.truncated_at_eof = true;
        }
        self.input = None;
        match self.state {
            State::Handshake | State::Open => {
                self.close_reason.get_or_insert(CloseReason::PeerEof);
                self.phase_deadline = limits.linger.deadline_from(now);
                self.set_state(State::Draining);
            }
            State::Closing | State::Draining | State::Closed => {}
        }
        self.maybe_finish();
    }

    /// The reactor shut the write side down (after [`Conn::wants_shutdown_write`]).
    pub fn handle_write_shut(&mut self) {
        self.write_shut = true;
        self.maybe_finish();
    }

    /// Drops what is queued because the transport cannot carry it: frames
    /// queued while a TLS handshake is still running (a handshake-timeout
    /// GOAWAY, say) have no keys to be sent with.
    pub fn discard_output(&mut self) {
        self.output.drop_all();
    }

    /// The transport below the protocol failed (TLS): no GOAWAY can be sent,
    /// so nothing queued is; the write side is shut once the transport's own
    /// last words are out, and the peer has the linger to close its side.
    pub fn handle_transport_failure(&mut self, now: Tick, limits: &ConnLimits) {
        match self.state {
            State::Handshake | State::Open | State::Draining => {}
            State::Closing | State::Closed => return,
        }
        self.input = None;
        self.output.drop_all();
        self.close_reason = Some(CloseReason::TlsFailed);
        self.begin_closing(now, limits);
        self.maybe_finish();
    }

    /// The socket failed (reset, EPIPE, other error): close at once.
    pub fn handle_reset(&mut self) {
        if self.close_reason.is_none()
            || self.state == State::Open
            || self.state == State::Handshake
        {
            self.close_reason = Some(CloseReason::Reset);
        }
        self.set_state(State::Closed);
    }

    fn maybe_finish(&mut self) {
        match self.state {
            // Draining: the peer is gone for reading, our replies are out.
            State::Draining if self.write_shut => self.set_state(State::Closed),
            // Closing: GOAWAY is out and the peer has answered with its EOF.
            State::Closing if self.write_shut && self.peer_eof => self.set_state(State::Closed),
            State::Handshake | State::Open | State::Closing | State::Draining | State::Closed => {}
        }
    }

    /// The deadline from [`Conn::deadline`] was reached. Evicts a silent peer,
    /// times out a handshake, or ends a linger; re-checks lazily otherwise.
    pub fn handle_timeout(&mut self, now: Tick, limits: &ConnLimits) {
        if now < self.deadline(limits) {
            return; // a frame arrived since the timer was set
        }
        match self.state {
            State::Handshake => self.close(
                GoawayCode::HandshakeTimeout,
                "no HELLO in time",
                now,
                limits,
            ),
            State::Open if self.soft_output_deadline(limits).is_some_and(|t| t <= now) => self
                .close(
                    GoawayCode::SlowConsumer,
                    "output above the soft limit for too long",
                    now,
                    limits,
                ),
            State::Open if self.frame_deadline(limits).is_some_and(|t| t <= now) => self.close(
                GoawayCode::IdleTimeout,
                "frame not completed within the frame timeout",
                now,
                limits,
            ),
            State::Open => self.close(
                GoawayCode::IdleTimeout,
                "no frame within the idle timeout",
                now,
                limits,
            ),
            // Linger ran out: give up on the flush or the peer's EOF.
            State::Closing | State::Draining => self.set_state(State::Closed),
            State::Closed => {}
        }
    }

    /// Starts a graceful stop: GOAWAY SHUTTING_DOWN (no-op if already closing).
    pub fn shutdown(&mut self, now: Tick, limits: &ConnLimits) {
        self.close(GoawayCode::ShuttingDown, "server is stopping", now, limits);
    }
}

#[cfg(test)]
mod tests;
