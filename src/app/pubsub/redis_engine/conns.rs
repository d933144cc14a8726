//! The engine's connections, one per Redis server (each master of a
//! cluster): each on its own reactor link, dialled at the first flush and
//! again after a close with exponential backoff and jitter; on Ready the
//! scripts are loaded and the channels that live there are subscribed again
//! (with a catch-up, `feed.rs`); on close its channels lose their home until
//! it (or, after a failover, the server that took its slots) is back.

use std::net::SocketAddr;

use super::{RedisEngine, Sent, REDIS_LINK};
use crate::app::{LinkEvent, Outbox};
use crate::engine::redis::{RedisConfig, RedisConn, RedisEvent, RedisStreams};
use crate::time::Tick;

/// First reconnect delay; doubled per failed attempt up to [`MAX_BACKOFF_MS`].
const MIN_BACKOFF_MS: u64 = 100;
/// Longest reconnect delay (before jitter).
const MAX_BACKOFF_MS: u64 = 5_000;

/// Where a server's link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// No link; dial at or after this tick.
    Down { retry_at: Tick },
    /// Dialled; the connection is handshaking or ready.
    Up,
}

/// One Redis server and the engine's connection to it.
#[derive(Debug)]
pub(super) struct Shard {
    pub addr: SocketAddr,
    /// The reactor link key.
    pub link_key: u64,
    pub conn: Option<RedisConn>,
    pub link: Link,
    /// HELLO done and scripts queued: commands may be sent.
    pub ready: bool,
    /// Failed connection attempts in a row (the backoff's exponent).
    pub attempts: u32,
    pub dials: u64,
    /// A seed of the engine URL: dialled even when no map names it.
    pub seed: bool,
    /// Named as a master by the last slot map (true until a map is read):
    /// only these count as "connected / known", and a server that is
    /// neither (a master replaced by a failover) is not dialled again.
    pub in_map: bool,
}

impl Shard {
    pub fn new(addr: SocketAddr, link_key: u64) -> Shard {
        Shard {
            addr,
            link_key,
            conn: None,
            link: Link::Down { retry_at: 0 },
            ready: false,
            attempts: 0,
            dials: 0,
            seed: false,
            in_map: true,
        }
    }
}

impl RedisEngine {
    /// The server at `addr`, added (dialled at the next flush) if new.
    pub(super) fn shard_for(&mut self, addr: SocketAddr) -> usize {
        if let Some(i) = self.shards.iter().position(|s| s.addr == addr) {
            return i;
        }
        let link_key = REDIS_LINK + self.shards.len() as u64;
        self.shards.push(Shard::new(addr, link_key));
        self.shards.len() - 1
    }

    /// Dials every server whose retry time has come.
    pub(super) fn dial_due(&mut self, now: Tick, out: &mut Outbox) {
        for i in 0..self.shards.len() {
            let shard = &self.shards[i];
            if !shard.in_map && !shard.seed {
                continue; // replaced: redialled only if a map names it again
            }
            if let Link::Down { retry_at } = shard.link {
                if now >= retry_at {
                    self.dial(i, now, out);
                }
            }
        }
    }

    fn dial(&mut self, i: usize, now: Tick, out: &mut Outbox) {
        let at = self.instant(now);
        let config: RedisConfig = self.config.clone();
        let shard = &mut self.shards[i];
        shard.dials += 1;
        if shard.dials > 1 {
            self.stats.reconnects += 1;
        }
        out.dial(shard.link_key, shard.addr);
        shard.conn = Some(RedisConn::new(config, at));
        shard.link = Link::Up;
    }

    /// A link event for one of the servers.
    pub(super) fn on_shard_link(&mut self, event: LinkEvent<'_>, now: Tick, out: &mut Outbox) {
        let at = self.instant(now);
        let link = match event {
            LinkEvent::Connected { link }
            | LinkEvent::Data { link, .. }
            | LinkEvent::Closed { link, .. } => link,
        };
        let Some(i) = self.shards.iter().position(|s| s.link_key == link) else {
            return;
        };
        let shard = &mut self.shards[i];
        match event {
            LinkEvent::Connected { .. } => {}
            LinkEvent::Data { bytes, .. } => {
                if let Some(conn) = shard.conn.as_mut() {
                    conn.handle_bytes(bytes, at);
                }
            }
            LinkEvent::Closed { why, .. } => {
                // The key is free already: no hangup.
                shard.link = Link::Down { retry_at: now };
                if let Some(conn) = shard.conn.as_mut() {
                    conn.handle_io_error(why);
                }
            }
        }
        self.drain_conn(i, now, out);
        // A redirect may have sent a command on another connection.
        self.transmit_all(out);
    }

    /// Handles what server `i`'s connection reported.
    pub(super) fn drain_conn(&mut self, i: usize, now: Tick, out: &mut Outbox) {
        while let Some(event) = self.shards[i].conn.as_mut().and_then(RedisConn::poll_event) {
            match event {
                RedisEvent::Ready { version, mode } => self.on_ready(i, &version, &mode, now),
                RedisEvent::Reply { token, value } => self.on_reply(token, &value, i),
                RedisEvent::Failed {
                    token,
                    error,
                    command,
                } => self.on_failed(token, &error, command, i, now),
                RedisEvent::Message {
                    channel, payload, ..
                } => self.on_message(&channel, &payload),
                RedisEvent::Unsubscribed { channel, .. } => self.on_unsubscribed(i, &channel),
                RedisEvent::Push(_) => {}
                RedisEvent::Closed(reason) => {
                    log::warn!(
                        "redis engine: connection to {} closed: {reason}",
                        self.shards[i].addr
                    );
                    self.on_closed(i, now, out);
                }
            }
        }
    }

    fn on_ready(&mut self, i: usize, version: &str, mode: &str, now: Tick) {
        log::info!(
            "redis engine: connected to {} (redis {version}, {mode})",
            self.shards[i].addr
        );
        self.shards[i].ready = true;
        self.shards[i].attempts = 0;
        for load in RedisStreams::load_commands() {
            self.send(i, Sent::Other("SCRIPT LOAD"), load, now);
        }
        // Its channels are subscribed again at the flush, each then read
        // from where its feed was (`routing.rs`, `feed.rs`).
        self.rehome = true;
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.wanted = true;
        }
    }

    /// Server `i`'s connection ended (its pending commands failed first):
    /// hang the link up, try again after the backoff; its channels have
    /// no home until a server that owns them is ready.
    fn on_closed(&mut self, i: usize, now: Tick, out: &mut Outbox) {
        let jitter_seed = self.epochs.draw();
        let shard = &mut self.shards[i];
        if shard.link == Link::Up {
            out.hangup(shard.link_key);
        }
        shard.conn = None;
        shard.ready = false;
        shard.attempts = shard.attempts.saturating_add(1);
        let backoff = MIN_BACKOFF_MS
            .saturating_mul(1 << (shard.attempts - 1).min(16))
            .min(MAX_BACKOFF_MS);
        let delay = backoff / 2 + jitter_seed % (backoff / 2 + 1);
        let retry_at = now + self.ms_to_ticks(delay);
        self.shards[i].link = Link::Down { retry_at };
        let lost: Vec<_> = self
            .home
            .iter()
            .filter(|(_, s)| **s == i)
            .map(|(c, _)| c.clone())
            .collect();
        for channel in lost {
            self.home.remove(&channel);
            self.homeless.insert(channel);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            // A replica may take its slots over: look again.
            cluster.wanted = true;
        }
    }

    /// When server `i` next needs the timer: its reconnect or its
    /// connection's own timeout.
    pub(super) fn shard_due(&self, i: usize, now: Tick) -> Option<Tick> {
        let shard = &self.shards[i];
        match shard.link {
            Link::Down { .. } if !shard.in_map && !shard.seed => None,
            Link::Down { retry_at } => Some(retry_at),
            Link::Up => shard
                .conn
                .as_ref()
                .and_then(RedisConn::poll_timeout)
                .map(|at| {
                    let ms = at.saturating_duration_since(self.instant(now)).as_millis();
                    now + self.ms_to_ticks(u64::try_from(ms).unwrap_or(u64::MAX))
                }),
        }
    }

    /// Writes what server `i`'s connection has to send.
    fn transmit(&mut self, i: usize, out: &mut Outbox) {
        let shard = &mut self.shards[i];
        if shard.link != Link::Up {
            return;
        }
        while let Some(bytes) = shard.conn.as_mut().and_then(RedisConn::poll_transmit) {
            out.transmit(shard.link_key, bytes);
        }
    }

    /// Writes what every connection has to send.
    pub(super) fn transmit_all(&mut self, out: &mut Outbox) {
        for i in 0..self.shards.len() {
            self.transmit(i, out);
        }
    }
}
