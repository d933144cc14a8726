//! Channel membership and fan-out batched per turn (docs/protocol.md §7.4).
//!
//! A publication is numbered and stored at once, but queued to the channel's
//! members when the turn's input is done ([`PubsubState::flush`]): the
//! turn's publications to a channel are joined into one buffer per protocol
//! version, and each member gets that buffer once. Under load that is one
//! queue entry and one reference-count update per subscriber per turn, not
//! per publication; at low rates a turn has one publication per channel, and
//! its buffer (the history's own) is queued as is, with no copy.
//!
//! Order (§7.5) holds because a channel's batch is queued before anything
//! changes its membership: a SUBSCRIBE, UNSUBSCRIBE or session end on a
//! channel first flushes that channel, so a joiner never gets a publication
//! from before its SUBSCRIBED (its replay has it), and a leaver gets
//! everything published before its UNSUBSCRIBE_REPLY. Across channels, a
//! publication to another channel first queues the pending batch, so only
//! a run of publications to one channel is batched and every subscriber
//! still gets publications in publish order (v1 §5.2 promises it).

use bytes::{Bytes, BytesMut};
use std::collections::HashSet;

use super::engine::Answer;
use super::ops::encode_delivery;
use super::ops_v2::Status;
use super::state::PubsubState;
use super::streams::Published;
use crate::app::Outbox;
use crate::time::Tick;

/// A channel with at least one subscription.
#[derive(Debug, Default)]
pub(super) struct Channel {
    /// Subscribed sessions (keys of `PubsubState::sessions`).
    pub members: HashSet<usize>,
    /// How many members are v1 sessions: whether a publication needs a v1 `M`.
    v1_members: usize,
    /// This turn's publications not yet queued to the members.
    batch: Batch,
}

impl Channel {
    /// Whether a publication needs a v1 `M` for this channel.
    pub fn has_v1(&self) -> bool {
        self.v1_members > 0
    }
}

/// A turn's publications to one channel, in publish order.
#[derive(Debug, Default)]
struct Batch {
    /// Encoded PUBLICATION frames (the history's buffers).
    v2: Vec<Bytes>,
    /// Encoded v1 `M` frames, made only while the channel has v1 members.
    v1: Vec<Bytes>,
    /// Publications in the batch.
    publications: u64,
}

/// One buffer for the batch: the only one as it is (no copy), else all of
/// them joined.
fn joined(parts: &[Bytes]) -> Bytes {
    if let [only] = parts {
        return only.clone();
    }
    let mut all = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        all.extend_from_slice(part);
    }
    all.freeze()
}

impl PubsubState {
    /// Publishes `body` on `channel` at `now` through the engine (`token`
    /// names it if the engine answers later). A publication numbered at once
    /// is delivered at once: added to the channel's batch if it has members.
    pub(super) fn publish(
        &mut self,
        token: u64,
        channel: &Bytes,
        body: &[u8],
        now: Tick,
        out: &mut Outbox,
    ) -> Answer<Result<Published, Status>> {
        self.stats.publishes += 1;
        let answer = self.engine.publish(token, channel, body, now);
        if let Answer::Now(Ok(published)) = &answer {
            let v1 = self
                .channels
                .get(channel)
                .is_some_and(|ch| ch.v1_members > 0)
                .then(|| encode_delivery(channel, body, self.limits.max_frame));
            let p = published.publication.clone();
            self.deliver(channel, published.epoch, published.offset, p, v1, out);
        }
        answer
    }

    /// A numbered publication reached the node: added to `channel`'s batch
    /// if it has members (`v1`: its `M` frames, when it has v1 members), and
    /// kept for the subscriptions to it still pending. A publication to
    /// another channel than the pending batch's first queues that batch, so
    /// a subscriber of several channels still gets every publication in
    /// publish order (§5.2); a run of publications to one channel, the case
    /// that saturates, stays one batch.
    pub(super) fn deliver(
        &mut self,
        channel: &Bytes,
        epoch: u64,
        offset: u64,
        publication: Bytes,
        v1: Option<Bytes>,
        out: &mut Outbox,
    ) {
        if self
            .pending
            .first()
            .is_some_and(|pending| pending != channel)
        {
            self.flush_pending(out);
        }
        self.keep_for_pending(channel, epoch, offset, &publication);
        if let Some(ch) = self.channels.get_mut(channel) {
            if ch.batch.publications == 0 {
                self.pending.push(channel.clone());
            }
            ch.batch.publications += 1;
            ch.batch.v2.push(publication);
            if let Some(v1) = v1 {
                ch.batch.v1.push(v1);
            }
        }
    }

    /// Adds session `key` to `channel`'s members (after queuing the batch
    /// the channel had, which is not the joiner's).
    pub(super) fn join(&mut self, key: usize, channel: Bytes, out: &mut Outbox) {
        self.flush_channel(&channel, out);
        let session = &mut self.sessions[key];
        session.channels.insert(channel.clone());
        let v1 = !session.v2;
        let ch = self.channels.entry(channel).or_default();
        if ch.members.insert(key) && v1 {
            ch.v1_members += 1;
        }
    }

    /// Ends session `key`'s subscription to `channel`, if it has one.
    pub(super) fn leave(&mut self, key: usize, channel: &[u8], now: Tick, out: &mut Outbox) {
        let session = &mut self.sessions[key];
        if session.channels.remove(channel) {
            let v2 = session.v2;
            self.leave_channel(channel, key, v2, out);
            self.engine.unsubscribe(channel, now);
        }
    }

    /// Takes session `key` out of `channel`'s members (after queuing the
    /// batch, which it still gets), and forgets a channel left empty.
    pub(super) fn leave_channel(&mut self, channel: &[u8], key: usize, v2: bool, out: &mut Outbox) {
        self.flush_channel(channel, out);
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if ch.members.remove(&key) && !v2 {
            ch.v1_members -= 1;
        }
        if ch.members.is_empty() {
            self.channels.remove(channel);
        }
    }

    /// Queues every channel's batch.
    pub(super) fn flush_pending(&mut self, out: &mut Outbox) {
        for channel in std::mem::take(&mut self.pending) {
            self.flush_channel(&channel, out);
        }
    }

    /// Queues `channel`'s batch to its members: one buffer per version, the
    /// same `Bytes` for every member; a detached v1 session keeps it in its
    /// queue, within `session_queue` (the oldest go first, and it is LOST).
    pub(super) fn flush_channel(&mut self, channel: &[u8], out: &mut Outbox) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if ch.batch.publications == 0 {
            return;
        }
        let batch = std::mem::take(&mut ch.batch);
        let count = batch.publications;
        let v2 = joined(&batch.v2);
        let v1 = (!batch.v1.is_empty()).then(|| joined(&batch.v1));
        for &key in &ch.members {
            let session = &mut self.sessions[key];
            self.stats.deliveries += count;
            match (session.conn, session.v2, &v1) {
                (Some(conn), true, _) => out.send_frames(conn, v2.clone()),
                (Some(conn), false, Some(v1)) => out.send_frames(conn, v1.clone()),
                // A detached v1 session keeps each publication on its own, so
                // a full queue drops the oldest ones, not a whole turn's.
                (None, false, _) => {
                    for frames in &batch.v1 {
                        session.queue_bytes += frames.len();
                        session.queue.push_back(frames.clone());
                    }
                    while session.queue_bytes > self.limits.session_queue {
                        let Some(oldest) = session.queue.pop_front() else {
                            break;
                        };
                        session.queue_bytes -= oldest.len();
                        session.lost = true;
                        self.stats.dropped += 1;
                    }
                }
                // A v2 session is never detached, and v1 members make v1 frames.
                (None, true, _) | (Some(_), false, None) => {}
            }
        }
    }
}
