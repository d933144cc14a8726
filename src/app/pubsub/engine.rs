//! The engine interface (issue 12): what stands between the pub/sub app and
//! where publications and history live. The app keeps sessions, membership
//! and the per-turn fan-out (`fanout.rs`); an engine numbers publications,
//! holds the history, decides recovery (§7.4) and says which channels this
//! node wants publications of.
//!
//! An engine may answer at once ([`Answer::Now`]) or later
//! ([`Answer::Later`], then an [`EngineEvent`] with the same token, which the
//! app drains with [`Engine::poll_event`] after every call it makes into the
//! engine). The in-memory engine ([`MemoryEngine`], today's [`Streams`])
//! always answers at once, so with it the app behaves exactly as it did
//! before engines existed. A remote engine (Redis) answers later, its
//! replies arriving as link events in the same reactor turn loop, so the app
//! stays sans-io.
//!
//! Delivery rule: a publication answered [`Answer::Now`] is delivered to this
//! node's subscribers by the app at once (the in-memory engine has no other
//! way to deliver); an engine answering [`Answer::Later`] delivers every
//! publication, this node's own included, as [`EngineEvent::Publication`].

use bytes::Bytes;

use super::ops_v2::{encode_publication_frames, Position, Status};
use super::state::STREAMS_TIMER;
use super::streams::{EpochSource, HistoryLimits, Published, Recovery, StreamStats, Streams};
use crate::app::{LinkEvent, Outbox};
use crate::exposition::Exposition;
use crate::time::Tick;

/// An engine's answer to a request: now, or later as an [`EngineEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// The outcome, at once.
    Now(T),
    /// The outcome comes later as an [`EngineEvent`] carrying the request's token.
    Later,
}

/// What an engine reports after the call that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// A publish answered [`Answer::Later`] is done: numbered, or refused
    /// (UNAVAILABLE when the engine is down or the outcome is unknown).
    Published {
        /// The publish's token.
        token: u64,
        /// The numbering (its `publication` may be empty: delivery comes
        /// separately), or the status to acknowledge with.
        result: Result<Published, Status>,
    },
    /// A subscribe answered [`Answer::Later`] is decided.
    Subscribed {
        /// The subscribe's token.
        token: u64,
        /// The recovery decision and replay, or the status to refuse with.
        result: Result<Recovery, Status>,
    },
    /// A publication for a channel this node is interested in (from any node).
    Publication {
        /// Its channel.
        channel: Bytes,
        /// Its stream's epoch.
        epoch: u64,
        /// Its offset.
        offset: u64,
        /// The encoded PUBLICATION frames, as sent to v2 subscribers.
        publication: Bytes,
        /// Its body, from which v1 subscribers' `M` frames are made.
        body: Bytes,
    },
}

/// Where publications and history live (see the module doc).
pub trait Engine: std::fmt::Debug {
    /// Publishes `body` on `channel`. `token` names the request in a later
    /// [`EngineEvent::Published`]; 0 means nobody waits for the outcome.
    fn publish(
        &mut self,
        token: u64,
        channel: &Bytes,
        body: &[u8],
        now: Tick,
    ) -> Answer<Result<Published, Status>>;

    /// A subscription to `channel` on this node (v2 with an optional
    /// `position`, or v1 with none): counts this node's interest and decides
    /// recovery. `replay_budget` bounds the replay's bytes (TOO_FAR_BEHIND
    /// beyond). `token` names it in a later [`EngineEvent::Subscribed`]; 0
    /// means nobody waits. Each call, answered or pending, is matched by one
    /// [`unsubscribe`](Self::unsubscribe).
    fn subscribe(
        &mut self,
        token: u64,
        channel: &Bytes,
        position: Option<Position>,
        replay_budget: usize,
        now: Tick,
    ) -> Answer<Result<Recovery, Status>>;

    /// One subscription to `channel` on this node ended.
    fn unsubscribe(&mut self, channel: &[u8], now: Tick);

    /// The next event to handle, if any.
    fn poll_event(&mut self) -> Option<EngineEvent>;

    /// A timer fired: true if `key` was the engine's (and it handled it).
    fn on_timer(&mut self, key: u64, now: Tick, out: &mut Outbox) -> bool;

    /// Something happened on one of the engine's outbound links.
    fn on_link(&mut self, _event: LinkEvent<'_>, _now: Tick, _out: &mut Outbox) {}

    /// End of a turn's input (or of a timer's work): send what is queued,
    /// set the timers the engine needs.
    fn flush(&mut self, now: Tick, out: &mut Outbox);

    /// The history's counters and gauges (zero for an engine holding none here).
    fn stream_stats(&self) -> StreamStats;

    /// Appends the engine's own metric families (none for the in-memory one).
    fn write_metrics(&self, _out: &mut Exposition) {}

    /// The in-memory streams, if this engine is the in-memory one.
    fn streams(&self) -> Option<&Streams> {
        None
    }
}

/// The embedded default: [`Streams`] in this process, answering at once.
#[derive(Debug)]
pub struct MemoryEngine {
    streams: Streams,
    /// Frame size PUBLICATIONs are split at.
    max_frame: usize,
    /// The length of a tick in ms, to turn expiry deadlines into timers.
    tick_ms: u64,
    /// The tick the expiry timer is set for, if one is.
    expiry_armed: Option<Tick>,
}

impl MemoryEngine {
    /// Streams within `history`; epochs from `epochs`; PUBLICATIONs split at
    /// `max_frame`; ticks of `tick_ms`.
    pub fn new(
        history: HistoryLimits,
        epochs: Box<dyn EpochSource>,
        max_frame: usize,
        tick_ms: u64,
    ) -> Self {
        MemoryEngine {
            streams: Streams::new(history, epochs),
            max_frame,
            tick_ms,
            expiry_armed: None,
        }
    }

    /// Sets the expiry timer when the next deadline is earlier than the one
    /// it is set for (a later one waits for that one to fire).
    fn arm_expiry(&mut self, now: Tick, out: &mut Outbox) {
        let Some(next) = self.streams.next_expiry() else {
            return;
        };
        if self.expiry_armed.is_some_and(|armed| armed <= next) {
            return;
        }
        self.expiry_armed = Some(next);
        let after_ms = next.saturating_sub(now).saturating_mul(self.tick_ms);
        out.set_timer(STREAMS_TIMER, after_ms);
    }
}

impl Engine for MemoryEngine {
    fn publish(
        &mut self,
        _token: u64,
        channel: &Bytes,
        body: &[u8],
        now: Tick,
    ) -> Answer<Result<Published, Status>> {
        let max_frame = self.max_frame;
        Answer::Now(Ok(self.streams.publish(channel, now, |epoch, offset| {
            encode_publication_frames(epoch, offset, channel, body, max_frame)
        })))
    }

    fn subscribe(
        &mut self,
        _token: u64,
        channel: &Bytes,
        position: Option<Position>,
        replay_budget: usize,
        now: Tick,
    ) -> Answer<Result<Recovery, Status>> {
        Answer::Now(Ok(self.streams.subscribe(
            channel,
            position,
            replay_budget,
            now,
        )))
    }

    fn unsubscribe(&mut self, channel: &[u8], now: Tick) {
        self.streams.unsubscribe(channel, now);
    }

    fn poll_event(&mut self) -> Option<EngineEvent> {
        None
    }

    fn on_timer(&mut self, key: u64, now: Tick, out: &mut Outbox) -> bool {
        if key != STREAMS_TIMER {
            return false;
        }
        self.expiry_armed = None;
        self.streams.expire(now);
        self.arm_expiry(now, out);
        true
    }

    fn flush(&mut self, now: Tick, out: &mut Outbox) {
        self.arm_expiry(now, out);
    }

    fn stream_stats(&self) -> StreamStats {
        self.streams.stats()
    }

    fn streams(&self) -> Option<&Streams> {
        Some(&self.streams)
    }
}
