//! The Redis engine behind the [`Engine`] interface (issue 12), standalone
//! Redis or a Redis Cluster: one [`RedisConn`] per server (per master in a
//! cluster), each over its own reactor link, driven by link events and one
//! app timer, with time injected as ticks (converted to the core's
//! `Instant`s from a base the owner gives, so nothing here reads a clock).
//!
//! - **Connect** (`conns.rs`): each server is dialled at the first flush
//!   and again after a close, with exponential backoff and jitter. On
//!   Ready the scripts are loaded (before any script call, same pipeline),
//!   then every channel with local subscribers that lives there is
//!   subscribed again, with a catch-up read (`feed.rs`).
//! - **Routing** (`routing.rs`): standalone, everything goes to the one
//!   server. In a cluster, a channel's commands (publish, read, touch,
//!   SSUBSCRIBE) go to the master of its slot, from the slot map read with
//!   `CLUSTER SLOTS`; a MOVED updates the map and sends the command again
//!   to the new owner (a MOVED or ASK means the command did not run, so
//!   even a publish is safe to resend, at most [`MAX_REDIRECTS`] times); an
//!   ASK sends `ASKING` then the command there. A pushed `sunsubscribe`
//!   (the slot moved, a failover) subscribes the channel again where it
//!   now lives, with the same catch-up as after a reconnect.
//! - **Publish**: the publish script, acknowledged from its reply. Refused
//!   UNAVAILABLE at once while the channel's server is not connected or
//!   its connection's pending bound is reached, or when the connection
//!   ends before the command was sent; OUTCOME_UNKNOWN when it ends after
//!   (Redis may have run it). Never retried; nothing is buffered while a
//!   server is down; other shards go on.
//! - **Subscribe**: the first local subscription to a channel (S)SUBSCRIBEs
//!   the node to it; every v2 SUBSCRIBE then sends the read script on the
//!   same connection as that (S)SUBSCRIBE, so (RESP3, one connection) every
//!   live publication at or below the read's top arrives before its reply
//!   and every later one after: the app keeps the live ones meanwhile and
//!   releases those above the top (`pending.rs`). The last local
//!   unsubscription (S)UNSUBSCRIBEs.
//! - **Live**: pushed payloads are §7.2 PUBLICATIONs, checked and framed
//!   once for every local subscriber.
//! - **Liveness**: each connection PINGs when idle and closes on a silent
//!   server; subscribed streams are touched every third of the history TTL.

mod conns;
mod feed;
mod metrics;
mod replies;
mod routing;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::engine::{Answer, Engine, EngineEvent};
use super::ops_v2::{Position, Status};
use super::streams::{EpochSource, Published, Recovery, StreamStats};
use crate::app::{LinkEvent, Outbox};
use crate::engine::redis::{Command, EngineUrl, KeySpace, RedisConfig, RedisStreams, Token};
use crate::exposition::Exposition;
use crate::time::Tick;
use conns::Shard;
use feed::Feeds;
use routing::Cluster;

/// The link key of the engine's first server (the only one standalone);
/// the cluster's other masters get the keys after it.
pub const REDIS_LINK: u64 = 1;

/// The engine's app timer key: below the streams' `u64::MAX`, and far above
/// every session TTL key (`slab key << 32 | epoch`, slab keys far below 2^32 - 1).
pub const REDIS_TIMER: u64 = u64::MAX - 1;

/// The prefix of every Redis key and pub/sub channel tether uses.
pub const KEY_PREFIX: &str = "tether";

/// Times a command follows MOVED or ASK before it fails.
pub const MAX_REDIRECTS: u8 = 3;

/// What a command sent under an engine token was for.
#[derive(Debug)]
enum Sent {
    /// A publish; the app's token (0: nobody waits); redirects followed.
    Publish { token: u64, redirects: u8 },
    /// A read for the app's subscribe `token`.
    Read(QueuedRead),
    /// A catch-up read of `channel` from `position` after a reconnect (`feed.rs`).
    CatchUp { channel: Bytes, position: Position },
    /// A (S)SUBSCRIBE of `channels` on server `shard`.
    Subscribe { shard: usize, channels: Vec<Bytes> },
    /// `CLUSTER SLOTS`.
    Slots,
    /// SCRIPT LOAD, (UN)SUBSCRIBE, touch, ASKING: only failures are logged.
    Other(&'static str),
}

/// A read for a SUBSCRIBE, sent at the flush.
#[derive(Debug)]
struct QueuedRead {
    channel: Bytes,
    token: u64,
    position: Option<Position>,
    budget: usize,
    /// MOVED or ASK followed so far.
    redirects: u8,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisEngineStats {
    /// Publishes refused UNAVAILABLE (not connected, full, or outcome unknown).
    pub publishes_refused: u64,
    /// Connections made after the first, over every server.
    pub reconnects: u64,
    /// Pushed publications dropped as malformed or of no local channel.
    pub dropped_messages: u64,
    /// `CLUSTER SLOTS` sent (cluster only).
    pub slot_map_refreshes: u64,
    /// MOVED and ASK replies met (cluster only).
    pub redirects: u64,
}

/// The Redis engine (see the module doc).
pub struct RedisEngine {
    config: RedisConfig,
    streams: RedisStreams,
    epochs: Box<dyn EpochSource>,
    /// The `Instant` of tick 0 and the tick's length.
    base: Instant,
    tick_ms: u64,
    max_frame: usize,
    /// One per server; shard `i` is on link `REDIS_LINK + i`. Never removed.
    shards: Vec<Shard>,
    /// The slot map and its refreshes; `None` standalone.
    cluster: Option<Cluster>,
    /// Local subscriptions per channel.
    interest: HashMap<Bytes, usize>,
    /// The live feed of each channel followed.
    feeds: Feeds,
    /// The server each followed channel is (S)SUBSCRIBEd on.
    home: HashMap<Bytes, usize>,
    /// Channels with local subscribers and no home (their server down, or
    /// moved): subscribed where they live when that server is ready.
    homeless: HashSet<Bytes>,
    /// A server became ready or the slot map changed: try the homeless.
    rehome: bool,
    /// The slot map changed: channels whose owner is another server leave
    /// their home (once per flush, however many MOVED came).
    remap_due: bool,
    /// The token of each channel's current catch-up read: a reply to an
    /// older one (the channel moved again meanwhile) is ignored.
    catch_ups: HashMap<Bytes, Token>,
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
            .field("shards", &self.shards)
            .field("cluster", &self.cluster.is_some())
            .field("channels", &self.interest.len())
            .field("homeless", &self.homeless.len())
            .field("sent", &self.sent.len())
            .finish()
    }
}

impl RedisEngine {
    /// An engine for the standalone Redis at `addr` with `config`
    /// (credentials, bounds) and `streams` (keys, history limits);
    /// candidate epochs from `epochs`; tick 0 is `base`, ticks are
    /// `tick_ms` long; PUBLICATIONs framed at `max_frame`. Nothing happens
    /// until the first flush.
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
            config,
            streams,
            epochs,
            base,
            tick_ms: tick_ms.max(1),
            max_frame,
            shards: vec![Shard::new(addr, REDIS_LINK)],
            cluster: None,
            interest: HashMap::new(),
            feeds: Feeds::default(),
            home: HashMap::new(),
            homeless: HashSet::new(),
            rehome: false,
            remap_due: false,
            catch_ups: HashMap::new(),
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

    /// An engine for the Redis Cluster whose `seeds` are given (at least
    /// one; every seed is dialled, the masters found from them): the rest
    /// as [`RedisEngine::new`]. `streams.pubsub` should be sharded.
    #[allow(clippy::too_many_arguments)]
    pub fn cluster(
        seeds: &[SocketAddr],
        config: RedisConfig,
        streams: RedisStreams,
        epochs: Box<dyn EpochSource>,
        base: Instant,
        tick_ms: u64,
        max_frame: usize,
    ) -> Self {
        let first = seeds
            .first()
            .copied()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 6379)));
        let mut engine = RedisEngine::new(first, config, streams, epochs, base, tick_ms, max_frame);
        engine.cluster = Some(Cluster::default());
        for seed in seeds.iter().skip(1) {
            engine.shard_for(*seed);
        }
        for shard in &mut engine.shards {
            shard.seed = true;
        }
        engine
    }

    /// The engine `--engine url` names, at `addrs` (its hosts, resolved by
    /// the caller, in order), with the history limits of `config`.
    pub fn from_config(
        config: &crate::config::Config,
        url: &EngineUrl,
        addrs: &[SocketAddr],
        epochs: Box<dyn EpochSource>,
        base: Instant,
    ) -> Result<Self, String> {
        let first = *addrs.first().ok_or("the engine URL names no host")?;
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
        let redis = url.config(RedisConfig::default());
        let (tick_ms, max_frame) = (config.tick_ms.into(), config.max_frame.into());
        Ok(if url.cluster {
            RedisEngine::cluster(addrs, redis, streams, epochs, base, tick_ms, max_frame)
        } else {
            RedisEngine::new(first, redis, streams, epochs, base, tick_ms, max_frame)
        })
    }

    /// Whether the connection to every server in use (standalone: the
    /// one; cluster: every master of the slot map) is up, scripts loaded.
    pub fn is_ready(&self) -> bool {
        self.shards.iter().filter(|s| s.in_map).all(|s| s.ready)
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

    /// Sends `command` for `what` on server `shard`; false when refused
    /// (not ready, full).
    fn send(&mut self, shard: usize, what: Sent, command: Command, now: Tick) -> bool {
        let at = self.instant(now);
        let Some(conn) = self
            .shards
            .get_mut(shard)
            .filter(|s| s.ready)
            .and_then(|s| s.conn.as_mut())
        else {
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

    /// Touches the subscribed streams when due, each on its channel's server.
    fn touch(&mut self, now: Tick) {
        if !self.shards.iter().any(|s| s.ready) || now < self.touch_at {
            return;
        }
        self.touch_at = now + self.ms_to_ticks(self.streams.ttl_ms / 3);
        let homed: Vec<(Bytes, usize)> = self.home.iter().map(|(c, s)| (c.clone(), *s)).collect();
        for (channel, shard) in homed {
            let command = self.streams.touch(&channel);
            self.send(shard, Sent::Other("touch"), command, now);
        }
    }

    /// Sets the engine timer for the earliest of: a reconnect, a
    /// connection's own timeout, the next touch, the next slot map refresh.
    fn arm(&mut self, now: Tick, out: &mut Outbox) {
        let shards_due = (0..self.shards.len())
            .filter_map(|i| self.shard_due(i, now))
            .min();
        let touch_due =
            (self.shards.iter().any(|s| s.ready) && !self.home.is_empty()).then_some(self.touch_at);
        let refresh_due = self.cluster.as_ref().and_then(|c| c.due(&self.shards));
        let Some(next) = [shards_due, touch_due, refresh_due]
            .into_iter()
            .flatten()
            .min()
        else {
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
        let what = Sent::Publish {
            token,
            redirects: 0,
        };
        let sent = self
            .route(channel)
            .is_some_and(|shard| self.send(shard, what, command, now));
        if sent {
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
        let ready = self
            .route(channel)
            .is_some_and(|shard| self.shards[shard].ready);
        if !ready {
            return Answer::Now(Err(Status::Unavailable));
        }
        self.reads.push(QueuedRead {
            channel: channel.clone(),
            token,
            position,
            budget: replay_budget,
            redirects: 0,
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
            self.catch_ups.remove(channel);
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
        for shard in 0..self.shards.len() {
            if let Some(conn) = self.shards[shard].conn.as_mut() {
                conn.handle_timeout(at);
            }
            self.drain_conn(shard, now, out);
        }
        self.flush(now, out);
        true
    }

    fn on_link(&mut self, event: LinkEvent<'_>, now: Tick, out: &mut Outbox) {
        self.on_shard_link(event, now, out);
    }

    fn flush(&mut self, now: Tick, out: &mut Outbox) {
        self.dial_due(now, out);
        self.refresh_slots(now);
        self.send_queued(now);
        self.touch(now);
        self.transmit_all(out);
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

#[cfg(test)]
mod routing_tests;
