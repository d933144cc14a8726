//! The Redis engine behind the [`Engine`] interface (issue 12), standalone
//! Redis: one [`RedisConn`] over one reactor link, driven by link events and
//! one app timer, with time injected as ticks (converted to the core's
//! `Instant`s from a base the owner gives, so nothing here reads a clock).
//!
//! - **Connect**: dialled at the first flush and again after a close, with
//!   exponential backoff and jitter. On Ready the scripts are loaded (before
//!   any script call, same pipeline), then every channel with local
//!   subscribers is subscribed again.
//! - **Publish**: the publish script, acknowledged from its reply. Refused
//!   UNAVAILABLE at once while not connected or when the connection's
//!   pending bound is reached, or when the connection ends before the
//!   command was sent; OUTCOME_UNKNOWN when it ends after (Redis may have
//!   run it). Never retried; nothing is buffered while Redis is down.
//! - **Subscribe**: the first local subscription to a channel SUBSCRIBEs
//!   the node to it; every v2 SUBSCRIBE then sends the read script on the
//!   same connection, so (RESP3, one connection) every live publication at
//!   or below the read's top arrives before its reply and every later one
//!   after: the app keeps the live ones meanwhile and releases those above
//!   the top (`pending.rs`). The last local unsubscription UNSUBSCRIBEs.
//! - **Live**: pushed payloads are §7.2 PUBLICATIONs, checked and framed
//!   once for every local subscriber.
//! - **Liveness**: the core PINGs when idle and closes on a silent server;
//!   subscribed streams are touched every third of the history TTL.

mod feed;
mod metrics;
mod replies;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::engine::{Answer, Engine, EngineEvent};
use super::ops_v2::{Position, Status};
use super::streams::{EpochSource, Published, Recovery, StreamStats};
use crate::app::{LinkEvent, Outbox};
use crate::engine::redis::{
    Command, EngineUrl, KeySpace, RedisConfig, RedisConn, RedisError, RedisEvent, RedisStreams,
    Token,
};
use crate::exposition::Exposition;
use crate::time::Tick;
use feed::Feeds;

/// The engine's link key (its only outbound link).
pub const REDIS_LINK: u64 = 1;

/// The engine's app timer key: below the streams' `u64::MAX`, and far above
/// every session TTL key (`slab key << 32 | epoch`, slab keys far below 2^32 - 1).
pub const REDIS_TIMER: u64 = u64::MAX - 1;

/// The prefix of every Redis key and pub/sub channel tether uses.
pub const KEY_PREFIX: &str = "tether";

/// First reconnect delay; doubled per failed attempt up to [`MAX_BACKOFF_MS`].
const MIN_BACKOFF_MS: u64 = 100;
/// Longest reconnect delay (before jitter).
const MAX_BACKOFF_MS: u64 = 5_000;

/// What a command sent under an engine token was for.
#[derive(Debug)]
enum Sent {
    /// A publish; the app's token (0: nobody waits).
    Publish(u64),
    /// A read for the app's subscribe `token`.
    Read {
        channel: Bytes,
        token: u64,
        position: Option<Position>,
        budget: usize,
    },
    /// A catch-up read of `channel` from `position` after a reconnect (`feed.rs`).
    CatchUp { channel: Bytes, position: Position },
    /// SCRIPT LOAD, (UN)SUBSCRIBE, touch: only failures are logged.
    Other(&'static str),
}

/// A read for a SUBSCRIBE, sent at the flush.
#[derive(Debug)]
struct QueuedRead {
    channel: Bytes,
    token: u64,
    position: Option<Position>,
    budget: usize,
}

/// Channels per (UN)SUBSCRIBE command.
const BATCH: usize = 256;

/// Where the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No link; dial at or after this tick.
    Down { retry_at: Tick },
    /// Dialled; the connection is handshaking or ready.
    Up,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisEngineStats {
    /// Publishes refused UNAVAILABLE (not connected, full, or outcome unknown).
    pub publishes_refused: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Pushed publications dropped as malformed or of no local channel.
    pub dropped_messages: u64,
}

/// The Redis engine (see the module doc).
pub struct RedisEngine {
    addr: SocketAddr,
    config: RedisConfig,
    streams: RedisStreams,
    epochs: Box<dyn EpochSource>,
    /// The `Instant` of tick 0 and the tick's length.
    base: Instant,
    tick_ms: u64,
    max_frame: usize,
    conn: Option<RedisConn>,
    link: Link,
    /// HELLO done and scripts queued: commands may be sent.
    ready: bool,
    /// Failed connection attempts in a row (the backoff's exponent).
    attempts: u32,
    dials: u64,
    /// Local subscriptions per channel.
    interest: HashMap<Bytes, usize>,
    /// The live feed of each channel followed.
    feeds: Feeds,
    /// Channels SUBSCRIBEd on the current connection.
    subscribed: HashSet<Bytes>,
    /// Channels whose interest started or ended this turn: (UN)SUBSCRIBEd
    /// in batches at the flush.
    changed: Vec<Bytes>,
    /// Reads asked this turn, sent at the flush after the SUBSCRIBEs.
    reads: Vec<QueuedRead>,
    last_token: Token,
    sent: HashMap<Token, Sent>,
    events: VecDeque<EngineEvent>,
    /// The tick the engine timer is set for, if one is.
    timer_armed: Option<Tick>,
    /// When subscribed streams are next touched.
    touch_at: Tick,
    stats: RedisEngineStats,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("addr", &self.addr)
            .field("link", &self.link)
            .field("ready", &self.ready)
            .field("channels", &self.interest.len())
            .field("sent", &self.sent.len())
            .finish()
    }
}

impl RedisEngine {
    /// An engine for the Redis at `addr` with `config` (credentials, bounds)
    /// and `streams` (keys, history limits); candidate epochs from `epochs`;
    /// tick 0 is `base`, ticks are `tick_ms` long; PUBLICATIONs framed at
    /// `max_frame`. Nothing happens until the first flush.
    pub fn new(
        addr: SocketAddr,
        config: RedisConfig,
        streams: RedisStreams,
        epochs: Box<dyn EpochSource>,
        base: Instant,
        tick_ms: u64,
        max_frame: usize,
    ) -> Self {
        RedisEngine {
            addr,
            config,
            streams,
            epochs,
            base,
            tick_ms: tick_ms.max(1),
            max_frame,
            conn: None,
            link: Link::Down { retry_at: 0 },
            ready: false,
            attempts: 0,
            dials: 0,
            interest: HashMap::new(),
            feeds: Feeds::default(),
            subscribed: HashSet::new(),
            changed: Vec::new(),
            reads: Vec::new(),
            last_token: 0,
            sent: HashMap::new(),
            events: VecDeque::new(),
            timer_armed: None,
            touch_at: 0,
            stats: RedisEngineStats::default(),
        }
    }

    /// The engine `--engine url` names, at `addr` (its first host, resolved
    /// by the caller), with the history limits of `config`.
    pub fn from_config(
        config: &crate::config::Config,
        url: &EngineUrl,
        addr: SocketAddr,
        epochs: Box<dyn EpochSource>,
        base: Instant,
    ) -> Result<Self, String> {
        let streams = RedisStreams {
            keys: KeySpace::new(KEY_PREFIX)?,
            pubsub: url.pubsub(),
            history_size: config.history_size as u64,
            ttl_ms: config.history_ttl_ms.into(),
            max_replay: config.history_size as u64,
            // Within half the largest reply the connection takes, so a
            // long replay is answered TOO_FAR_BEHIND, never a dropped link.
            max_replay_bytes: (config.history_memory as u64)
                .min(RedisConfig::default().max_reply_bytes as u64 / 2),
        };
        Ok(RedisEngine::new(
            addr,
            url.config(RedisConfig::default()),
            streams,
            epochs,
            base,
            config.tick_ms.into(),
            config.max_frame.into(),
        ))
    }

    /// Whether the connection is up and the scripts loaded.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The counters.
    pub fn stats(&self) -> RedisEngineStats {
        self.stats
    }

    fn instant(&self, now: Tick) -> Instant {
        self.base + Duration::from_millis(now.saturating_mul(self.tick_ms))
    }

    fn ms_to_ticks(&self, ms: u64) -> u64 {
        ms.div_ceil(self.tick_ms).max(1)
    }

    fn candidate_epoch(&mut self) -> u64 {
        loop {
            let e = self.epochs.draw();
            if e != 0 {
                return e;
            }
        }
    }

    /// Sends `command` for `what`; the command back on refusal.
    fn send(&mut self, what: Sent, command: Command, now: Tick) -> bool {
        let at = self.instant(now);
        let Some(conn) = self.conn.as_mut().filter(|_| self.ready) else {
            return false;
        };
        self.last_token += 1;
        let token = self.last_token;
        match conn.send(token, command, at) {
            Ok(()) => {
                self.sent.insert(token, what);
                true
            }
            Err((why, command)) => {
                log::debug!("redis engine: {} refused: {why:?}", command.name());
                false
            }
        }
    }

    /// Handles what the connection reported.
    fn drain_conn(&mut self, now: Tick, out: &mut Outbox) {
        while let Some(event) = self.conn.as_mut().and_then(RedisConn::poll_event) {
            match event {
                RedisEvent::Ready { version, mode } => self.on_ready(&version, &mode, now),
                RedisEvent::Reply { token, value } => self.on_reply(token, &value),
                RedisEvent::Failed { token, error, .. } => match self.sent.remove(&token) {
                    Some(Sent::Publish(t)) => {
                        let sent = matches!(error, RedisError::Closed { sent: true, .. });
                        self.publish_failed(t, sent)
                    }
                    Some(Sent::Read { token, .. }) => {
                        self.events.push_back(EngineEvent::Subscribed {
                            token,
                            result: Err(Status::Unavailable),
                        })
                    }
                    Some(Sent::CatchUp { channel, position }) => {
                        let events = self
                            .feeds
                            .caught_up(&channel, position, None, self.max_frame);
                        self.events.extend(events);
                    }
                    Some(Sent::Other(what)) => log::warn!("redis engine: {what}: {error}"),
                    None => {}
                },
                RedisEvent::Message {
                    channel, payload, ..
                } => self.on_message(&channel, &payload),
                RedisEvent::Unsubscribed { .. } | RedisEvent::Push(_) => {}
                RedisEvent::Closed(reason) => {
                    log::warn!("redis engine: connection to {} closed: {reason}", self.addr);
                    self.on_closed(now, out);
                }
            }
        }
    }

    fn on_ready(&mut self, version: &str, mode: &str, now: Tick) {
        log::info!(
            "redis engine: connected to {} (redis {version}, {mode})",
            self.addr
        );
        self.ready = true;
        self.attempts = 0;
        for load in RedisStreams::load_commands() {
            self.send(Sent::Other("SCRIPT LOAD"), load, now);
        }
        let channels: Vec<Bytes> = self.interest.keys().cloned().collect();
        for chunk in channels.chunks(BATCH) {
            let command = self.streams.subscribe(chunk.iter().map(|c| &c[..]));
            self.send(Sent::Other("SUBSCRIBE"), command, now);
        }
        self.subscribed = channels.iter().cloned().collect();
        // After the SUBSCRIBEs on the same connection: what was missed while
        // away is read, and forwarded before the live feed (`feed.rs`).
        for channel in channels {
            let Some(position) = self.feeds.start_catch_up(&channel) else {
                continue;
            };
            let epoch = self.candidate_epoch();
            let command = self.streams.read(&channel, Some(position), epoch);
            let what = Sent::CatchUp {
                channel: channel.clone(),
                position,
            };
            if !self.send(what, command, now) {
                let events = self
                    .feeds
                    .caught_up(&channel, position, None, self.max_frame);
                self.events.extend(events);
            }
        }
    }

    /// The connection ended (its pending commands failed first): hang the
    /// link up and try again after the backoff.
    fn on_closed(&mut self, now: Tick, out: &mut Outbox) {
        if self.link == Link::Up {
            out.hangup(REDIS_LINK);
        }
        self.conn = None;
        self.ready = false;
        self.subscribed.clear();
        self.attempts = self.attempts.saturating_add(1);
        let backoff = MIN_BACKOFF_MS
            .saturating_mul(1 << (self.attempts - 1).min(16))
            .min(MAX_BACKOFF_MS);
        let jitter = self.epochs.draw() % (backoff / 2 + 1);
        let delay = backoff / 2 + jitter;
        self.link = Link::Down {
            retry_at: now + self.ms_to_ticks(delay),
        };
    }

    fn dial(&mut self, now: Tick, out: &mut Outbox) {
        self.dials += 1;
        if self.dials > 1 {
            self.stats.reconnects += 1;
        }
        out.dial(REDIS_LINK, self.addr);
        self.conn = Some(RedisConn::new(self.config.clone(), self.instant(now)));
        self.link = Link::Up;
    }

    /// The turn's node (UN)SUBSCRIBEs in batches, then its reads on the
    /// same connection (each read after its channel's SUBSCRIBE, §7.5); a
    /// read that cannot be sent is answered UNAVAILABLE.
    fn send_queued(&mut self, now: Tick) {
        let changed = std::mem::take(&mut self.changed);
        if self.ready {
            let mut subscribe = Vec::new();
            let mut unsubscribe = Vec::new();
            for channel in changed {
                let wanted = self.interest.contains_key(&channel);
                if wanted && self.subscribed.insert(channel.clone()) {
                    subscribe.push(channel);
                } else if !wanted && self.subscribed.remove(&channel) {
                    unsubscribe.push(channel);
                }
            }
            for chunk in subscribe.chunks(BATCH) {
                let command = self.streams.subscribe(chunk.iter().map(|c| &c[..]));
                self.send(Sent::Other("SUBSCRIBE"), command, now);
            }
            for chunk in unsubscribe.chunks(BATCH) {
                let command = self.streams.unsubscribe(chunk.iter().map(|c| &c[..]));
                self.send(Sent::Other("UNSUBSCRIBE"), command, now);
            }
        }
        for read in std::mem::take(&mut self.reads) {
            let epoch = self.candidate_epoch();
            let command = self.streams.read(&read.channel, read.position, epoch);
            let token = read.token;
            let sent = Sent::Read {
                channel: read.channel,
                token,
                position: read.position,
                budget: read.budget,
            };
            if !self.send(sent, command, now) {
                self.events.push_back(EngineEvent::Subscribed {
                    token,
                    result: Err(Status::Unavailable),
                });
            }
        }
    }

    /// Touches the subscribed streams when due.
    fn touch(&mut self, now: Tick) {
        if !self.ready || now < self.touch_at {
            return;
        }
        self.touch_at = now + self.ms_to_ticks(self.streams.ttl_ms / 3);
        let channels: Vec<Bytes> = self.interest.keys().cloned().collect();
        for channel in channels {
            let command = self.streams.touch(&channel);
            self.send(Sent::Other("touch"), command, now);
        }
    }

    /// Sets the engine timer for the earliest of: the reconnect, the
    /// connection's own timeout, the next touch.
    fn arm(&mut self, now: Tick, out: &mut Outbox) {
        let conn_due = self
            .conn
            .as_ref()
            .and_then(RedisConn::poll_timeout)
            .map(|at| {
                let ms = at.saturating_duration_since(self.instant(now)).as_millis();
                now + self.ms_to_ticks(u64::try_from(ms).unwrap_or(u64::MAX))
            });
        let link_due = match self.link {
            Link::Down { retry_at } => Some(retry_at),
            Link::Up => None,
        };
        let touch_due = (self.ready && !self.interest.is_empty()).then_some(self.touch_at);
        let Some(next) = [conn_due, link_due, touch_due].into_iter().flatten().min() else {
            return;
        };
        if self
            .timer_armed
            .is_some_and(|armed| armed <= next && armed > now)
        {
            return;
        }
        self.timer_armed = Some(next);
        let after_ms = next.saturating_sub(now).max(1).saturating_mul(self.tick_ms);
        out.set_timer(REDIS_TIMER, after_ms);
    }

    /// Writes what the connection has to send.
    fn transmit(&mut self, out: &mut Outbox) {
        if self.link != Link::Up {
            return;
        }
        while let Some(bytes) = self.conn.as_mut().and_then(RedisConn::poll_transmit) {
            out.transmit(REDIS_LINK, bytes);
        }
    }
}

impl Engine for RedisEngine {
    fn publish(
        &mut self,
        token: u64,
        channel: &Bytes,
        body: &[u8],
        now: Tick,
    ) -> Answer<Result<Published, Status>> {
        let epoch = self.candidate_epoch();
        let command = self
            .streams
            .publish(channel, Bytes::copy_from_slice(body), epoch);
        if self.send(Sent::Publish(token), command, now) {
            Answer::Later
        } else {
            self.stats.publishes_refused += 1;
            Answer::Now(Err(Status::Unavailable))
        }
    }

    fn subscribe(
        &mut self,
        token: u64,
        channel: &Bytes,
        position: Option<Position>,
        replay_budget: usize,
        _now: Tick,
    ) -> Answer<Result<Recovery, Status>> {
        let count = self.interest.entry(channel.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.changed.push(channel.clone());
        }
        if token == 0 {
            return Answer::Later; // nobody waits (v1): the live feed is all
        }
        if !self.ready {
            return Answer::Now(Err(Status::Unavailable));
        }
        self.reads.push(QueuedRead {
            channel: channel.clone(),
            token,
            position,
            budget: replay_budget,
        });
        Answer::Later
    }

    fn unsubscribe(&mut self, channel: &[u8], _now: Tick) {
        let Some(count) = self.interest.get_mut(channel) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.interest.remove(channel);
            self.feeds.remove(channel);
            self.changed.push(Bytes::copy_from_slice(channel));
        }
    }

    fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    fn on_timer(&mut self, key: u64, now: Tick, out: &mut Outbox) -> bool {
        if key != REDIS_TIMER {
            return false;
        }
        self.timer_armed = None;
        let at = self.instant(now);
        if let Some(conn) = self.conn.as_mut() {
            conn.handle_timeout(at);
        }
        self.drain_conn(now, out);
        self.flush(now, out);
        true
    }

    fn on_link(&mut self, event: LinkEvent<'_>, now: Tick, out: &mut Outbox) {
        let at = self.instant(now);
        match event {
            LinkEvent::Connected { .. } => {}
            LinkEvent::Data { bytes, .. } => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.handle_bytes(bytes, at);
                }
            }
            LinkEvent::Closed { why, .. } => {
                // The key is free already: no hangup.
                self.link = Link::Down { retry_at: now };
                if let Some(conn) = self.conn.as_mut() {
                    conn.handle_io_error(why);
                }
            }
        }
        self.drain_conn(now, out);
        self.transmit(out);
    }

    fn flush(&mut self, now: Tick, out: &mut Outbox) {
        if let Link::Down { retry_at } = self.link {
            if now >= retry_at {
                self.dial(now, out);
            }
        }
        self.send_queued(now);
        self.touch(now);
        self.transmit(out);
        self.arm(now, out);
    }

    fn stream_stats(&self) -> StreamStats {
        StreamStats::default()
    }

    fn write_metrics(&self, out: &mut Exposition) {
        RedisEngine::write_metrics(self, out);
    }
}

#[cfg(test)]
mod tests;
