//! Channel streams of protocol v2 (docs/protocol.md §7.3–§7.5): per channel an
//! epoch, a top offset and a bounded history of encoded PUBLICATIONs, so a
//! resubscribing client gets what it missed, in order, or an explicit "not
//! recovered".
//!
//! Sans-io like the rest of the app: time comes in as a [`Tick`], epochs from
//! an injected [`EpochSource`], and the publication bytes from the caller's
//! encoder, which is called once with the numbering this module chose. The
//! held buffers are handed back by reference count (a replay is the history's
//! own `Bytes`, never a copy).
//!
//! Three indexes keep every bound cheap, each `O(log n)` per change:
//! - `fronts`: for each stream with a held publication, its oldest one's
//!   publish sequence number. Its first entry is the oldest publication
//!   server-wide, both in publish order (memory eviction) and in age (TTL
//!   trimming, as ticks never go back), so neither scans streams.
//! - `idle`: the streams without a subscription, by the tick they became idle
//!   (last publication, last unsubscription or creation). Its first entry is
//!   the next to expire and the first to forget under memory pressure.
//! - `by_channel`: channel → slab key.
//!
//! Expiry is driven by [`Streams::expire`], which the caller calls from a timer.
//! Its cost is proportional to what expires (plus one look at each index),
//! not to the number of streams, because both orders above are kept sorted.
//! [`Streams::next_expiry`] says when the next thing is due, so the caller may
//! put exactly one timer on its wheel for it; or it may call `expire` on a fixed
//! period, which then bounds how late an idle stream or an old publication
//! goes (correctness never depends on it: a stream is trimmed before every
//! recovery decision, so nothing older than the TTL is replayed).

use bytes::Bytes;
use slab::Slab;
use std::collections::{BTreeSet, HashMap, VecDeque};

pub use super::ops_v2::{Position, RecoveryReason};
use super::recovery::{verdict, Verdict};
use crate::time::{Span, Tick};

/// Bytes a stream counts in the history memory besides its channel (§7.3):
/// a stand-in for its entry, indexes and counters.
pub const STREAM_OVERHEAD: usize = 64;

/// Bytes a held publication counts besides its own (§7.3): its history entry
/// (48 B), the shared header `Bytes` allocates (24 B) and the allocator's
/// rounding. Measured by `examples/history_mem.rs`: a held 64-byte
/// publication costs about 161 B of RSS, so counting its bytes alone would
/// let `--history-memory` undercount small publications about 2.5×.
pub const ENTRY_OVERHEAD: usize = 96;

/// How much history is held (the `--history-*` flags, §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Publications held per stream; 0 turns history off (streams are still
    /// numbered and expired).
    pub size: usize,
    /// How long a publication is held, and how long an idle stream lives.
    pub ttl: Span,
    /// Bytes of history server-wide: held publications plus stream overheads.
    pub memory: usize,
}

/// Where fresh epochs come from. The server draws them from the OS random
/// source (unguessable, not reused across restarts); tests use a counter.
pub trait EpochSource {
    /// Any u64; 0 and repeats are drawn again by the caller of this method.
    fn draw(&mut self) -> u64;
}

impl<F: FnMut() -> u64> EpochSource for F {
    fn draw(&mut self) -> u64 {
        self()
    }
}

/// The server's source: `/dev/urandom`, read 4 KiB at a time.
impl EpochSource for crate::random::RandomPool {
    fn draw(&mut self) -> u64 {
        self.epoch().unwrap_or_else(|err| {
            // An open /dev/urandom does not fail on Linux; should it, an
            // epoch from the clock still differs from every earlier one.
            log::error!("reading the OS random source for an epoch: {err}");
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
    }
}

/// The answer to a SUBSCRIBE (§7.4): the fields of SUBSCRIBE_REPLY and the
/// replay to queue behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The stream's epoch.
    pub epoch: u64,
    /// The stream's top offset (0: nothing published yet in this epoch).
    pub top: u64,
    /// The SUBSCRIBE carried a position.
    pub recovery_asked: bool,
    /// The replay covers everything after the position.
    pub recovered: bool,
    /// Why not recovered; [`RecoveryReason::None`] when recovered or not asked.
    pub reason: RecoveryReason,
    /// The held PUBLICATIONs of offsets O + 1..=top, in order, when recovered;
    /// the history's own buffers.
    pub replay: Vec<Bytes>,
    /// Total length of `replay`, what the connection's output limits are raised by.
    pub replay_bytes: usize,
}

/// A numbered publication: what PUBLISH_ACK reports and what fan-out sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream's epoch.
    pub epoch: u64,
    /// The publication's offset, at least 1.
    pub offset: u64,
    /// The encoded PUBLICATION, the same buffer the history holds (if it does).
    pub publication: Bytes,
}

/// Counters and gauges for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Streams held now.
    pub streams: usize,
    /// Publications held now, over all streams.
    pub held: usize,
    /// Bytes of the held publications.
    pub held_bytes: usize,
    /// Bytes counted against the memory limit: held bytes plus stream overheads.
    pub memory: usize,
    /// Publications numbered.
    pub publishes: u64,
    /// Held publications dropped because the stream held `size` already.
    pub trimmed_size: u64,
    /// Held publications dropped because they were older than the TTL.
    pub trimmed_age: u64,
    /// Held publications dropped to get within the memory limit.
    pub evicted: u64,
    /// Idle streams forgotten to get within the memory limit.
    pub forgotten: u64,
    /// Idle streams forgotten after the TTL.
    pub expired: u64,
    /// New epochs started because a top reached u64::MAX.
    pub wrapped: u64,
    /// SUBSCRIBEs without a position.
    pub recovery_not_asked: u64,
    /// SUBSCRIBEs recovered.
    pub recovered: u64,
    /// SUBSCRIBEs not recovered with EPOCH_CHANGED.
    pub epoch_changed: u64,
    /// SUBSCRIBEs not recovered with TOO_FAR_BEHIND.
    pub too_far_behind: u64,
    /// Publications queued in replays.
    pub replayed: u64,
}

/// One held publication. Its offset is implied: a history is contiguous and
/// ends at the stream's top.
#[derive(Debug)]
struct Held {
    /// Server-wide publish order.
    seq: u64,
    /// When it was published.
    tick: Tick,
    publication: Bytes,
}

#[derive(Debug)]
struct Stream {
    /// Copied out of the message it came in, so a stream never pins a whole
    /// DATA buffer for its name.
    channel: Bytes,
    epoch: u64,
    top: u64,
    /// Offsets `top + 1 - len ..= top`, oldest first.
    history: VecDeque<Held>,
    subscribers: usize,
    /// With no subscriber: when the stream became idle (its key in `idle`).
    idle_since: Option<Tick>,
}

impl Stream {
    /// The offset before the oldest held one: the oldest position recoverable.
    fn oldest_position(&self) -> u64 {
        self.top - self.history.len() as u64
    }
}

/// Every channel's stream and its history, within [`HistoryLimits`].
pub struct Streams {
    limits: HistoryLimits,
    epochs: Box<dyn EpochSource>,
    streams: Slab<Stream>,
    by_channel: HashMap<Bytes, usize>,
    /// (seq of the oldest held publication, stream key), one per stream holding any.
    fronts: BTreeSet<(u64, usize)>,
    /// (idle since, stream key), one per stream without a subscription.
    idle: BTreeSet<(Tick, usize)>,
    /// Next publish sequence number.
    seq: u64,
    /// Latest tick seen: time never goes back here, whatever the caller passes.
    now: Tick,
    stats: StreamStats,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("limits", &self.limits)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// No streams yet; epochs will come from `epochs`.
    pub fn new(limits: HistoryLimits, epochs: Box<dyn EpochSource>) -> Self {
        Streams {
            limits,
            epochs,
            streams: Slab::new(),
            by_channel: HashMap::new(),
            fronts: BTreeSet::new(),
            idle: BTreeSet::new(),
            seq: 0,
            now: 0,
            stats: StreamStats::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// Counters since start, and the gauges as they are now.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            streams: self.streams.len(),
            ..self.stats
        }
    }

    /// The channel's epoch and top, if it has a stream.
    pub fn position(&self, channel: &[u8]) -> Option<Position> {
        let stream = &self.streams[*self.by_channel.get(channel)?];
        Some(Position {
            epoch: stream.epoch,
            offset: stream.top,
        })
    }

    /// A publication to `channel` at `now`: finds or makes its stream, numbers
    /// the publication top + 1 (a new epoch first if the top is u64::MAX),
    /// calls `encode(epoch, offset)` once for its PUBLICATION, holds that, and
    /// trims by size, age and memory. Under memory pressure the stream itself
    /// may be forgotten at once if it has no subscriber (its numbering then
    /// restarts at the next publish, as §7.3 allows).
    pub fn publish(
        &mut self,
        channel: &[u8],
        now: Tick,
        encode: impl FnOnce(u64, u64) -> Bytes,
    ) -> Published {
        let now = self.advance(now);
        let key = self.stream_key(channel, now, None);
        if self.streams[key].top == u64::MAX {
            self.start_new_epoch(key);
        }
        self.trim(key, now);
        let stream = &mut self.streams[key];
        stream.top += 1;
        let (epoch, offset) = (stream.epoch, stream.top);
        let publication = encode(epoch, offset);
        self.stats.publishes += 1;
        if let Some(since) = stream.idle_since {
            // Idle from now on instead: a publication is activity.
            stream.idle_since = Some(now);
            self.idle.remove(&(since, key));
            self.idle.insert((now, key));
        }
        if self.limits.size > 0 {
            while self.streams[key].history.len() >= self.limits.size {
                self.drop_oldest(key);
                self.stats.trimmed_size += 1;
            }
            if self.fits_alone(publication.len()) {
                self.hold(key, now, publication.clone());
            } else {
                // Held, it would evict every other publication server-wide
                // and then itself: only its own stream's (older) ones go, as
                // the history must stay contiguous up to the top.
                while !self.streams[key].history.is_empty() {
                    self.drop_oldest(key);
                    self.stats.evicted += 1;
                }
                self.stats.evicted += 1;
            }
        }
        self.fit_memory();
        Published {
            epoch,
            offset,
            publication,
        }
    }

    /// A subscription to `channel` (v2 SUBSCRIBE, or a v1 one with no
    /// position): finds or makes the stream, trims it, decides recovery as
    /// the §7.4 table says and counts the subscription, so the stream is never
    /// forgotten while it lasts. Call it once per subscription made. For a
    /// replacing SUBSCRIBE call it before [`unsubscribe`](Self::unsubscribe)
    /// for the old subscription, so the stream is never idle in between (an
    /// idle stream may be forgotten at once under memory pressure).
    ///
    /// `replay_budget` is how far the connection's output limits may still be
    /// raised (`--history-memory` minus its current raise): a replay longer
    /// than that is answered not recovered, TOO_FAR_BEHIND.
    pub fn subscribe(
        &mut self,
        channel: &[u8],
        position: Option<Position>,
        replay_budget: usize,
        now: Tick,
    ) -> Recovery {
        let now = self.advance(now);
        let key = self.stream_key(channel, now, position.map(|p| p.epoch));
        self.trim(key, now);
        let stream = &mut self.streams[key];
        stream.subscribers += 1;
        if let Some(since) = stream.idle_since.take() {
            self.idle.remove(&(since, key));
        }
        let recovery = self.decide(key, position, replay_budget);
        self.fit_memory();
        recovery
    }

    /// A subscription to `channel` ended. The stream becomes idle at `now`
    /// when it was the last one, and is forgotten at once if the memory is
    /// above the limit with nothing held (§7.3).
    pub fn unsubscribe(&mut self, channel: &[u8], now: Tick) {
        let now = self.advance(now);
        let Some(&key) = self.by_channel.get(channel) else {
            log::debug!("unsubscribe from a channel without a stream");
            return;
        };
        let stream = &mut self.streams[key];
        if stream.subscribers == 0 {
            log::debug!("unsubscribe from a stream without subscriptions");
            return;
        }
        stream.subscribers -= 1;
        if stream.subscribers == 0 {
            stream.idle_since = Some(now);
            self.idle.insert((now, key));
            // Subscribed streams may have held the memory above the limit;
            // this one may go now.
            self.fit_memory();
        }
    }

    /// Drops the publications older than the TTL and forgets the streams idle
    /// for longer, as of `now`. Cost: `O(log n)` per thing dropped, plus one
    /// look at each index. Call it at [`next_expiry`](Self::next_expiry) or
    /// on a fixed period: how late it runs is how late memory is released and
    /// idle streams go (§7.3); replays are correct either way.
    pub fn expire(&mut self, now: Tick) {
        let now = self.advance(now);
        while let Some(&(_, key)) = self.fronts.first() {
            let held = self.streams[key].history.front().map(|h| h.tick);
            if !held.is_some_and(|tick| self.expired(tick, now)) {
                break;
            }
            self.drop_oldest(key);
            self.stats.trimmed_age += 1;
        }
        while let Some(&(since, key)) = self.idle.first() {
            if !self.expired(since, now) {
                break;
            }
            self.forget(key);
            self.stats.expired += 1;
        }
    }

    /// The first tick at which [`expire`](Self::expire) has something to do,
    /// if anything is held or idle.
    pub fn next_expiry(&self) -> Option<Tick> {
        let oldest = self.fronts.first().and_then(|&(_, key)| {
            let held = self.streams[key].history.front()?;
            Some(self.limits.ttl.deadline_from(held.tick))
        });
        let idle = self
            .idle
            .first()
            .map(|&(since, _)| self.limits.ttl.deadline_from(since));
        oldest.into_iter().chain(idle).min()
    }

    /// Time as far as this module knows: the latest tick passed in.
    fn advance(&mut self, now: Tick) -> Tick {
        self.now = self.now.max(now);
        self.now
    }

    /// Something stamped `since` is past the TTL at `now`: never early, at most
    /// one tick late, like every deadline in tether.
    fn expired(&self, since: Tick, now: Tick) -> bool {
        self.limits.ttl.deadline_from(since) <= now
    }

    /// The channel's stream, made now (fresh epoch, top 0, idle from `now`)
    /// if it has none. A fresh epoch is never `avoid`, so a position given
    /// for a stream just made is never mistaken for this numbering.
    fn stream_key(&mut self, channel: &[u8], now: Tick, avoid: Option<u64>) -> usize {
        if let Some(&key) = self.by_channel.get(channel) {
            return key;
        }
        let channel = Bytes::copy_from_slice(channel);
        let epoch = self.draw_epoch(avoid);
        let key = self.streams.insert(Stream {
            channel: channel.clone(),
            epoch,
            top: 0,
            history: VecDeque::new(),
            subscribers: 0,
            idle_since: Some(now),
        });
        self.by_channel.insert(channel, key);
        self.idle.insert((now, key));
        self.stats.memory += self.streams[key].channel.len() + STREAM_OVERHEAD;
        key
    }

    /// A fresh epoch: never 0, never `avoid`. A source that keeps giving only
    /// those is broken; rather than loop forever, one is derived from `avoid`.
    fn draw_epoch(&mut self, avoid: Option<u64>) -> u64 {
        let bad = |e: u64| e == 0 || Some(e) == avoid;
        for _ in 0..16 {
            let epoch = self.epochs.draw();
            if !bad(epoch) {
                return epoch;
            }
        }
        log::error!("the epoch source gave only 0 or the epoch to avoid");
        let fallback = avoid.unwrap_or(0).wrapping_add(1);
        if fallback == 0 {
            1
        } else {
            fallback
        }
    }

    /// The top reached u64::MAX: the history belongs to the ending numbering,
    /// so it goes, and numbering starts again at 1 in a new epoch.
    fn start_new_epoch(&mut self, key: usize) {
        while !self.streams[key].history.is_empty() {
            self.drop_oldest(key);
        }
        let old = self.streams[key].epoch;
        let epoch = self.draw_epoch(Some(old));
        let stream = &mut self.streams[key];
        stream.epoch = epoch;
        stream.top = 0;
        self.stats.wrapped += 1;
    }

    /// Drops the stream's publications past its TTL (§7.3: before every
    /// publication is added and every recovery decision).
    fn trim(&mut self, key: usize, now: Tick) {
        while let Some(tick) = self.streams[key].history.front().map(|h| h.tick) {
            if !self.expired(tick, now) {
                break;
            }
            self.drop_oldest(key);
            self.stats.trimmed_age += 1;
        }
    }

    /// Appends a publication (numbered already: it is the top) to the history.
    fn hold(&mut self, key: usize, now: Tick, publication: Bytes) {
        let seq = self.seq;
        self.seq += 1;
        let len = publication.len();
        let history = &mut self.streams[key].history;
        if history.is_empty() {
            self.fronts.insert((seq, key));
        }
        history.push_back(Held {
            seq,
            tick: now,
            publication,
        });
        self.stats.held += 1;
        self.stats.held_bytes += len;
        self.stats.memory += len + ENTRY_OVERHEAD;
    }

    /// Drops the stream's oldest held publication, keeping `fronts` and the
    /// byte counts right.
    fn drop_oldest(&mut self, key: usize) {
        let history = &mut self.streams[key].history;
        let Some(held) = history.pop_front() else {
            return;
        };
        self.fronts.remove(&(held.seq, key));
        if let Some(next) = history.front() {
            self.fronts.insert((next.seq, key));
        }
        self.stats.held -= 1;
        self.stats.held_bytes -= held.publication.len();
        self.stats.memory -= held.publication.len() + ENTRY_OVERHEAD;
    }

    /// Forgets an idle stream: its epoch and top go with it.
    fn forget(&mut self, key: usize) {
        while !self.streams[key].history.is_empty() {
            self.drop_oldest(key);
        }
        let stream = self.streams.remove(key);
        self.by_channel.remove(&stream.channel);
        if let Some(since) = stream.idle_since {
            self.idle.remove(&(since, key));
        }
        self.stats.memory -= stream.channel.len() + STREAM_OVERHEAD;
    }

    /// A publication of `len` bytes fits in the memory with no other held.
    fn fits_alone(&self, len: usize) -> bool {
        let held = self.stats.held_bytes + self.stats.held * ENTRY_OVERHEAD;
        let streams = self.stats.memory - held;
        len + ENTRY_OVERHEAD <= self.limits.memory.saturating_sub(streams)
    }

    /// Over the memory limit: the oldest held publications go first, server-
    /// wide; with none left, idle streams, longest idle first. Streams with a
    /// subscription stay, so only their overheads can leave it above the limit.
    fn fit_memory(&mut self) {
        while self.stats.memory > self.limits.memory {
            if let Some(&(_, key)) = self.fronts.first() {
                self.drop_oldest(key);
                self.stats.evicted += 1;
            } else if let Some(&(_, key)) = self.idle.first() {
                self.forget(key);
                self.stats.forgotten += 1;
            } else {
                break;
            }
        }
    }

    /// The §7.4 decision for a trimmed stream.
    fn decide(&mut self, key: usize, position: Option<Position>, budget: usize) -> Recovery {
        let stream = &self.streams[key];
        let mut recovery = Recovery {
            epoch: stream.epoch,
            top: stream.top,
            recovery_asked: position.is_some(),
            recovered: false,
            reason: RecoveryReason::None,
            replay: Vec::new(),
            replay_bytes: 0,
        };
        let oldest = stream.oldest_position() + 1;
        recovery.reason = match verdict(position, stream.epoch, stream.top, oldest) {
            Verdict::NotAsked => {
                self.stats.recovery_not_asked += 1;
                return recovery;
            }
            Verdict::NotRecovered(reason) => reason,
            Verdict::Replay { after } => {
                let skip = (after - stream.oldest_position()) as usize;
                let missed = stream.history.range(skip..);
                let bytes = missed.clone().map(|h| h.publication.len()).sum();
                if bytes > budget {
                    RecoveryReason::TooFarBehind
                } else {
                    recovery.replay = missed.map(|h| h.publication.clone()).collect();
                    recovery.replay_bytes = bytes;
                    recovery.recovered = true;
                    RecoveryReason::None
                }
            }
        };
        match recovery.reason {
            RecoveryReason::None => {
                self.stats.recovered += 1;
                self.stats.replayed += recovery.replay.len() as u64;
            }
            RecoveryReason::EpochChanged => self.stats.epoch_changed += 1,
            // The server decides only the reasons above; a later one
            // counts with the closest.
            RecoveryReason::TooFarBehind | RecoveryReason::Unknown(_) => {
                self.stats.too_far_behind += 1
            }
        }
        recovery
    }
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
