//! Which server a channel's commands go to, and keeping that right.
//!
//! Standalone, everything goes to the one server. In a Redis Cluster a
//! channel lives in one hash slot (its keys and shard channel share a hash
//! tag) and goes to the master [`SlotMap`] names for it. The map is read
//! with `CLUSTER SLOTS` from any connected master when the engine starts, a
//! connection closes, a MOVED or a pushed `sunsubscribe` comes, and every
//! [`REFRESH_MS`] while a server is down (a replica may be promoted).
//!
//! Every channel with local subscribers has a home: the server it is
//! (S)SUBSCRIBEd on, where its reads go too (the ordering `feed.rs` and
//! `pending.rs` rely on). When the map moves a channel, or its home closes
//! or pushes a `sunsubscribe`, the channel is homeless until its owner is
//! ready; then it is subscribed there and read from where its feed was,
//! the same catch-up as after a reconnect.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use super::conns::Shard;
use super::{QueuedRead, RedisEngine, Sent, MAX_REDIRECTS};
use crate::app::pubsub::engine::EngineEvent;
use crate::app::pubsub::ops_v2::Status;
use crate::engine::redis::{Command, ErrorKind, RedisError, SlotMap, Value};
use crate::time::Tick;

/// Channels per (UN)SUBSCRIBE command.
pub(super) const BATCH: usize = 256;

/// Least time between two `CLUSTER SLOTS`.
pub const REFRESH_MS: u64 = 1_000;

/// A cluster's slot map and when to read it again.
#[derive(Debug, Default)]
pub(super) struct Cluster {
    /// The last map read, updated by MOVED since; `None` before the first.
    pub map: Option<SlotMap>,
    /// Something suggests the map changed: read it again when allowed.
    pub wanted: bool,
    /// A `CLUSTER SLOTS` awaits its reply.
    pub in_flight: bool,
    /// Not before this tick.
    pub next_at: Tick,
    /// The server asked last, so the next ask goes to another.
    pub asked: usize,
}

impl Cluster {
    fn needed(&self, shards: &[Shard]) -> bool {
        !self.in_flight
            && (self.wanted || self.map.is_none() || shards.iter().any(|s| s.in_map && !s.ready))
    }

    /// When the next `CLUSTER SLOTS` is due, if one is and can be sent.
    pub fn due(&self, shards: &[Shard]) -> Option<Tick> {
        (self.needed(shards) && shards.iter().any(|s| s.ready)).then_some(self.next_at)
    }
}

/// (server, slot) → channels: one (UN)SUBSCRIBE per group and [`BATCH`]
/// (a sharded one takes channels of one slot only).
type Groups = BTreeMap<(usize, u16), Vec<Bytes>>;

impl RedisEngine {
    /// The server that owns `channel`, if known.
    pub(super) fn route(&self, channel: &[u8]) -> Option<usize> {
        let Some(cluster) = &self.cluster else {
            return Some(0);
        };
        let node = cluster
            .map
            .as_ref()?
            .node_for(self.streams.keys.slot(channel))?;
        let addr: SocketAddr = node.parse().ok()?;
        self.shards.iter().position(|s| s.addr == addr)
    }

    /// The slot `channel` is grouped by for (UN)SUBSCRIBE (0 standalone,
    /// where one command takes any channels).
    fn group_slot(&self, channel: &[u8]) -> u16 {
        if self.cluster.is_some() {
            self.streams.keys.slot(channel)
        } else {
            0
        }
    }

    /// Sends `CLUSTER SLOTS` to a connected server when one is due.
    pub(super) fn refresh_slots(&mut self, now: Tick) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if cluster.due(&self.shards).is_none_or(|at| now < at) {
            return;
        }
        let n = self.shards.len();
        let start = cluster.asked + 1;
        let Some(i) = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.shards[i].ready)
        else {
            return;
        };
        let next_at = now + self.ms_to_ticks(REFRESH_MS);
        if self.send(i, Sent::Slots, Command::new("CLUSTER").arg("SLOTS"), now) {
            self.stats.slot_map_refreshes += 1;
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.in_flight = true;
                cluster.wanted = false;
                cluster.next_at = next_at;
                cluster.asked = i;
            }
        }
    }

    /// A `CLUSTER SLOTS` reply from server `i`: the new map; channels it
    /// moves leave their old server and are subscribed at the new one (at
    /// the flush).
    pub(super) fn on_slots(&mut self, reply: Option<&Value>, i: usize) {
        let asked = self.shards[i].addr.ip().to_string();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.in_flight = false;
        let map = match reply.map(|r| SlotMap::from_cluster_slots(r, &asked)) {
            Some(Ok(map)) => map,
            Some(Err(e)) => {
                log::warn!("redis engine: {e}");
                cluster.wanted = true;
                return;
            }
            None => {
                cluster.wanted = true;
                return;
            }
        };
        if cluster.map.as_ref() == Some(&map) {
            // Channels refused for another reason (CLUSTERDOWN, ...) try again.
            self.rehome |= !self.homeless.is_empty();
            return;
        }
        for shard in &mut self.shards {
            shard.in_map = false;
        }
        for node in map.nodes() {
            match node.parse::<SocketAddr>() {
                Ok(addr) => {
                    let shard = self.shard_for(addr);
                    self.shards[shard].in_map = true;
                }
                Err(_) => log::warn!("redis engine: cluster node {node:?} is no IP:PORT; skipped"),
            }
        }
        log::info!("redis engine: slot map read from {}", self.shards[i].addr);
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.map = Some(map);
        }
        self.remap_due = true;
    }

    /// Channels whose owner is no longer their home leave it.
    fn remap(&mut self, now: Tick) {
        let moved: Vec<(Bytes, usize)> = self
            .home
            .iter()
            .filter(|(channel, shard)| self.route(channel) != Some(**shard))
            .map(|(channel, shard)| (channel.clone(), *shard))
            .collect();
        let mut leave = Groups::new();
        for (channel, shard) in moved {
            self.home.remove(&channel);
            leave
                .entry((shard, self.group_slot(&channel)))
                .or_default()
                .push(channel.clone());
            self.homeless.insert(channel);
        }
        self.send_pubsub(leave, false, now);
        self.rehome = true;
    }

    /// Where a MOVED or ASK in `error` sends the command again (recording a
    /// MOVED in the map): the server and whether `ASKING` goes first.
    fn redirect(&mut self, error: &RedisError) -> Option<(usize, bool)> {
        let (slot, addr, ask) = match error.kind()? {
            ErrorKind::Moved { slot, addr } => (*slot, addr.clone(), false),
            ErrorKind::Ask { slot, addr } => (*slot, addr.clone(), true),
            _ => return None,
        };
        self.cluster.as_ref()?;
        self.stats.redirects += 1;
        let target: SocketAddr = addr.parse().ok()?;
        let shard = self.shard_for(target);
        self.shards[shard].in_map = true;
        if !ask {
            if let Some(cluster) = self.cluster.as_mut() {
                if let Some(map) = cluster.map.as_mut() {
                    map.moved(slot, &addr);
                }
                cluster.wanted = true;
            }
            // Once at the flush, however many MOVED came this turn.
            self.remap_due = true;
        }
        Some((shard, ask))
    }

    /// A command sent on server `i` failed: redirected, refused or lost.
    pub(super) fn on_failed(
        &mut self,
        token: u64,
        error: &RedisError,
        command: Command,
        i: usize,
        now: Tick,
    ) {
        let Some(what) = self.sent.remove(&token) else {
            return;
        };
        let redirect = self.redirect(error);
        match what {
            Sent::Publish { token, redirects } => {
                let resent = match redirect {
                    Some((to, ask)) if redirects < MAX_REDIRECTS && self.shards[to].ready => {
                        if ask {
                            self.send(to, Sent::Other("ASKING"), Command::new("ASKING"), now);
                        }
                        let what = Sent::Publish {
                            token,
                            redirects: redirects + 1,
                        };
                        self.send(to, what, command, now)
                    }
                    _ => false,
                };
                if !resent {
                    log::debug!("redis engine: publish failed: {error}");
                    let sent = matches!(error, RedisError::Closed { sent: true, .. });
                    self.publish_failed(token, sent);
                }
            }
            Sent::Read(mut read) => match redirect {
                // Its (S)SUBSCRIBE met the same MOVED: both go again to the
                // owner at the flush, the read after the subscribe.
                Some((_, false)) if read.redirects < MAX_REDIRECTS => {
                    read.redirects += 1;
                    self.reads.push(read);
                }
                _ => self.events.push_back(EngineEvent::Subscribed {
                    token: read.token,
                    result: Err(Status::Unavailable),
                }),
            },
            Sent::CatchUp { channel, position } => {
                if self.catch_ups.get(&channel) != Some(&token) {
                    // An older catch-up: the current one decides.
                } else if redirect.is_some() {
                    self.catch_ups.remove(&channel);
                    // Subscribed again where it lives, and read from the
                    // same position there (`start_catch_up` again).
                    self.leave(&channel, i, true);
                } else {
                    self.catch_ups.remove(&channel);
                    let events = self
                        .feeds
                        .caught_up(&channel, position, None, self.max_frame);
                    self.events.extend(events);
                }
            }
            Sent::Subscribe { shard, channels } => {
                let server_error = matches!(error, RedisError::Server(_));
                if server_error && self.cluster.is_some() {
                    // After a MOVED, at once; else after the next map read.
                    let at_once = matches!(redirect, Some((_, false)));
                    for channel in &channels {
                        self.leave(channel, shard, at_once);
                    }
                } else if server_error {
                    log::warn!("redis engine: SUBSCRIBE: {error}");
                }
            }
            Sent::Slots => {
                log::warn!("redis engine: CLUSTER SLOTS: {error}");
                self.on_slots(None, i);
            }
            Sent::Other(what) if redirect.is_some() => {
                log::debug!("redis engine: {what}: {error}")
            }
            Sent::Other(what) => log::warn!("redis engine: {what}: {error}"),
        }
    }

    /// `channel` no longer lives on server `shard`: homeless (subscribed
    /// again at the flush if `at_once`, else after the next map read), and
    /// the map is read again.
    fn leave(&mut self, channel: &Bytes, shard: usize, at_once: bool) {
        if self.home.get(channel) == Some(&shard) {
            self.home.remove(channel);
            if self.interest.contains_key(channel) {
                self.homeless.insert(channel.clone());
                self.rehome |= at_once;
            }
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.wanted = true;
        }
    }

    /// Server `i` pushed a `sunsubscribe` of its own (the slot moved, a
    /// failover): subscribe the channel again where it now lives.
    pub(super) fn on_unsubscribed(&mut self, i: usize, redis_channel: &[u8]) {
        let Some(channel) = self.streams.keys.channel_of(redis_channel) else {
            return;
        };
        if self.home.get(&channel) == Some(&i) {
            log::info!(
                "redis engine: {} ended the subscription to {:?}; subscribing again",
                self.shards[i].addr,
                String::from_utf8_lossy(&channel)
            );
            self.leave(&channel, i, true);
        }
    }

    /// The turn's (UN)SUBSCRIBEs in batches per server (and slot), the
    /// catch-up reads of channels subscribed again, then the turn's reads,
    /// each on its channel's home after its SUBSCRIBE (§7.5); a read that
    /// cannot be sent is answered UNAVAILABLE.
    pub(super) fn send_queued(&mut self, now: Tick) {
        if std::mem::take(&mut self.remap_due) {
            self.remap(now);
        }
        let mut leave = Groups::new();
        let mut candidates = Vec::new();
        for channel in std::mem::take(&mut self.changed) {
            if !self.interest.contains_key(&channel) {
                self.homeless.remove(&channel);
                if let Some(shard) = self.home.remove(&channel) {
                    let slot = self.group_slot(&channel);
                    leave.entry((shard, slot)).or_default().push(channel);
                }
            } else if !self.home.contains_key(&channel) && self.homeless.insert(channel.clone()) {
                candidates.push(channel);
            }
        }
        if std::mem::take(&mut self.rehome) {
            candidates = self.homeless.iter().cloned().collect();
        }
        let mut join = Groups::new();
        let mut homed = Vec::new();
        for channel in candidates {
            let Some(shard) = self.route(&channel).filter(|s| self.shards[*s].ready) else {
                continue;
            };
            self.homeless.remove(&channel);
            self.home.insert(channel.clone(), shard);
            let slot = self.group_slot(&channel);
            join.entry((shard, slot)).or_default().push(channel.clone());
            homed.push((channel, shard));
        }
        self.send_pubsub(leave, false, now);
        self.send_pubsub(join, true, now);
        // After the SUBSCRIBEs on the same connection: what was missed
        // while away (or on the old owner) is read, and forwarded before
        // the live feed (`feed.rs`).
        for (channel, shard) in homed {
            if self.home.get(&channel) != Some(&shard) {
                continue; // its SUBSCRIBE was refused
            }
            let Some(position) = self.feeds.start_catch_up(&channel) else {
                continue;
            };
            let epoch = self.candidate_epoch();
            let command = self.streams.read(&channel, Some(position), epoch);
            let what = Sent::CatchUp {
                channel: channel.clone(),
                position,
            };
            if self.send(shard, what, command, now) {
                self.catch_ups.insert(channel, self.last_token);
            } else {
                let events = self
                    .feeds
                    .caught_up(&channel, position, None, self.max_frame);
                self.events.extend(events);
            }
        }
        for read in std::mem::take(&mut self.reads) {
            self.send_read(read, now);
        }
    }

    /// (UN)SUBSCRIBEs `groups` on their connected servers; channels whose
    /// SUBSCRIBE is refused (a full connection) go back to homeless.
    fn send_pubsub(&mut self, groups: Groups, join: bool, now: Tick) {
        for ((shard, _), channels) in groups {
            for chunk in channels.chunks(BATCH) {
                let names = chunk.iter().map(|c| &c[..]);
                if !join {
                    let command = self.streams.unsubscribe(names);
                    self.send(shard, Sent::Other("UNSUBSCRIBE"), command, now);
                    continue;
                }
                let command = self.streams.subscribe(names);
                let what = Sent::Subscribe {
                    shard,
                    channels: chunk.to_vec(),
                };
                if !self.send(shard, what, command, now) {
                    for channel in chunk {
                        self.home.remove(channel);
                        self.homeless.insert(channel.clone());
                    }
                }
            }
        }
    }

    fn send_read(&mut self, read: QueuedRead, now: Tick) {
        let token = read.token;
        let home = self
            .home
            .get(&read.channel)
            .copied()
            .filter(|s| self.shards[*s].ready);
        let sent = home.is_some_and(|shard| {
            let epoch = self.candidate_epoch();
            let command = self.streams.read(&read.channel, read.position, epoch);
            self.send(shard, Sent::Read(read), command, now)
        });
        if !sent {
            self.events.push_back(EngineEvent::Subscribed {
                token,
                result: Err(Status::Unavailable),
            });
        }
    }
}
