//! The model's channel streams (docs/protocol.md §7.3) and its answers to
//! the v2 requests (§7.4), written from the spec's tables rather than from
//! `streams.rs`: exact while the memory limit is never reached (the harness
//! sets it far above anything a fuzz input can publish).

use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

use super::model::{Exp, Lane, Model};
use crate::app::pubsub::ops_v2::{
    encode_publication_frames, encode_publish_ack, encode_subscribe_reply,
    encode_unsubscribe_reply, ClientOp, Position, PublishAck, RecoveryReason, Status,
    SubscribeReply, UnsubscribeReply,
};
use crate::app::pubsub::streams::HistoryLimits;
use crate::app::pubsub::MAX_SUBSCRIPTIONS_PER_SESSION;
use crate::app::ConnId;
use crate::protocol::{encode_message, SessionId};
use crate::time::Tick;

/// One channel's stream as the model sees it.
#[derive(Debug)]
pub(super) struct MStream {
    pub epoch: u64,
    pub top: u64,
    /// Held PUBLICATION frames with the tick each was published at: offsets
    /// `top + 1 - held.len() ..= top`, oldest first.
    pub held: VecDeque<(Tick, Bytes)>,
    pub subscribers: usize,
    /// With no subscription: since when (the idle clock of §7.3).
    pub idle_since: Option<Tick>,
}

/// Every stream, numbered from the same counting epoch source as the state's.
#[derive(Debug)]
pub(super) struct MStreams {
    pub limits: HistoryLimits,
    pub max_frame: usize,
    pub streams: BTreeMap<Bytes, MStream>,
    /// Epochs and tops of streams forgotten, per channel (positions a
    /// client may still hold).
    pub forgotten: BTreeMap<Bytes, Vec<Position>>,
    /// Epochs drawn so far (the source counts 1, 2, 3, ...).
    drawn: u64,
}

/// The §7.4 answer to a SUBSCRIBE: the reply's fields and the replay.
pub(super) struct MRecovery {
    pub reply: SubscribeReply,
    pub replay: Vec<Bytes>,
}

impl MStreams {
    pub fn new(limits: HistoryLimits, max_frame: usize) -> Self {
        MStreams {
            limits,
            max_frame,
            streams: BTreeMap::new(),
            forgotten: BTreeMap::new(),
            drawn: 0,
        }
    }

    /// The epoch the next stream made would get (positions naming it are
    /// skipped, as a fresh epoch is never the one asked for).
    pub fn next_epoch(&self) -> u64 {
        self.drawn + 1
    }

    fn expired(&self, since: Tick, now: Tick) -> bool {
        self.limits.ttl.deadline_from(since) <= now
    }

    /// The channel's stream, made now (fresh epoch other than `avoid`, top
    /// 0, idle) if it has none.
    fn stream(&mut self, channel: &Bytes, now: Tick, avoid: Option<u64>) -> &mut MStream {
        if !self.streams.contains_key(channel) {
            let mut epoch = self.drawn + 1;
            if Some(epoch) == avoid {
                epoch += 1;
            }
            self.drawn = epoch;
            let made = MStream {
                epoch,
                top: 0,
                held: VecDeque::new(),
                subscribers: 0,
                idle_since: Some(now),
            };
            self.streams.insert(channel.clone(), made);
        }
        self.streams.get_mut(channel).expect("made above")
    }

    /// Drops the stream's publications past the TTL.
    fn trim(&mut self, channel: &Bytes, now: Tick) {
        let ttl = self.limits.ttl;
        if let Some(s) = self.streams.get_mut(channel) {
            while s
                .held
                .front()
                .is_some_and(|&(tick, _)| ttl.deadline_from(tick) <= now)
            {
                s.held.pop_front();
            }
        }
    }

    /// A publication: numbered top + 1 in its (found or made) stream, held
    /// within the history size. Returns (epoch, offset, PUBLICATION frames).
    pub fn publish(&mut self, channel: &Bytes, body: &[u8], now: Tick) -> (u64, u64, Bytes) {
        let (size, max_frame) = (self.limits.size, self.max_frame);
        self.stream(channel, now, None);
        self.trim(channel, now);
        let s = self.streams.get_mut(channel).expect("made");
        s.top += 1;
        let frames = encode_publication_frames(s.epoch, s.top, channel, body, max_frame);
        if s.idle_since.is_some() {
            s.idle_since = Some(now);
        }
        if size > 0 {
            while s.held.len() >= size {
                s.held.pop_front();
            }
            s.held.push_back((now, frames.clone()));
        }
        (s.epoch, s.top, frames)
    }

    /// A subscription made (v1 `S` or v2 SUBSCRIBE) with the §7.4 table's
    /// decision for `position`, the replay bounded by `budget` bytes.
    pub fn subscribe(
        &mut self,
        channel: &Bytes,
        position: Option<Position>,
        budget: usize,
        now: Tick,
        request_id: u32,
    ) -> MRecovery {
        self.stream(channel, now, position.map(|p| p.epoch));
        self.trim(channel, now);
        let s = self.streams.get_mut(channel).expect("made");
        s.subscribers += 1;
        s.idle_since = None;
        let mut reply = SubscribeReply {
            request_id,
            status: Status::Ok,
            recovery_asked: position.is_some(),
            recovered: false,
            reason: RecoveryReason::None,
            epoch: s.epoch,
            top: s.top,
            replay: 0,
        };
        let mut replay = Vec::new();
        if let Some(Position { epoch, offset }) = position {
            // oldest − 1: the lowest position the history still covers.
            let covered_from = s.top - s.held.len() as u64;
            reply.reason = if epoch != s.epoch || offset > s.top {
                RecoveryReason::EpochChanged
            } else if offset < covered_from {
                RecoveryReason::TooFarBehind
            } else {
                let missed: Vec<Bytes> = s
                    .held
                    .iter()
                    .skip((offset - covered_from) as usize)
                    .map(|(_, f)| f.clone())
                    .collect();
                if missed.iter().map(Bytes::len).sum::<usize>() > budget {
                    RecoveryReason::TooFarBehind
                } else {
                    reply.recovered = true;
                    reply.replay = missed.len() as u32;
                    replay = missed;
                    RecoveryReason::None
                }
            };
        }
        MRecovery { reply, replay }
    }

    /// A subscription ended: the stream is idle from `now` when it was the last.
    pub fn unsubscribe(&mut self, channel: &Bytes, now: Tick) {
        if let Some(s) = self.streams.get_mut(channel) {
            s.subscribers = s.subscribers.saturating_sub(1);
            if s.subscribers == 0 {
                s.idle_since = Some(now);
            }
        }
    }

    /// The streams' expiry timer fired at `now`: old publications go, and
    /// streams idle past the TTL are forgotten (their epoch with them).
    pub fn expire(&mut self, now: Tick) {
        let channels: Vec<Bytes> = self.streams.keys().cloned().collect();
        for channel in channels {
            self.trim(&channel, now);
            let s = &self.streams[&channel];
            if s.idle_since.is_some_and(|since| self.expired(since, now)) {
                assert!(
                    s.held.is_empty(),
                    "an idle stream past the TTL holds nothing"
                );
                let position = Position {
                    epoch: s.epoch,
                    offset: s.top,
                };
                self.streams.remove(&channel);
                self.forgotten.entry(channel).or_default().push(position);
            }
        }
    }

    /// When the expiry has something to do next, if anything is held or idle.
    pub fn next_expiry(&self) -> Option<Tick> {
        let ttl = self.limits.ttl;
        self.streams
            .values()
            .flat_map(|s| {
                s.held
                    .front()
                    .map(|&(tick, _)| tick)
                    .into_iter()
                    .chain(s.idle_since)
            })
            .map(|since| ttl.deadline_from(since))
            .min()
    }

    /// Publications held over all streams.
    pub fn held(&self) -> usize {
        self.streams.values().map(|s| s.held.len()).sum()
    }
}

impl Model {
    /// A well-formed v2 request from `conn` (session `session` per its
    /// WELCOME) whose output limits are raised by `raise`.
    pub fn v2_request(
        &mut self,
        conn: ConnId,
        session: SessionId,
        op: ClientOp,
        raise: usize,
        now: Tick,
    ) {
        match op {
            ClientOp::Subscribe {
                request_id,
                channel,
                position,
            } => self.v2_subscribe(conn, session, request_id, channel, position, raise, now),
            ClientOp::Unsubscribe {
                request_id,
                channel,
            } => {
                let status = if channel.is_empty() {
                    Status::BadChannel
                } else {
                    if let Some(id) = self.session_of(conn) {
                        self.leave(id, &channel, now);
                    }
                    Status::Ok
                };
                let reply = encode_unsubscribe_reply(&UnsubscribeReply { request_id, status });
                self.expect_send(conn, Lane::Channel(channel), &reply);
            }
            ClientOp::Publish {
                request_id,
                channel,
                body,
            } => {
                let ack = if channel.is_empty() {
                    PublishAck::refused(request_id, Status::BadChannel)
                } else {
                    let (epoch, offset) = self.publish(&channel, &body, now);
                    PublishAck {
                        request_id,
                        status: Status::Ok,
                        epoch,
                        offset,
                    }
                };
                if request_id != 0 {
                    self.expect_send(conn, Lane::Acks, &encode_publish_ack(&ack));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn v2_subscribe(
        &mut self,
        conn: ConnId,
        session: SessionId,
        request_id: u32,
        channel: Bytes,
        position: Option<Position>,
        raise: usize,
        now: Tick,
    ) {
        let lane = Lane::Channel(channel.clone());
        if channel.is_empty() {
            let reply = SubscribeReply::refused(request_id, Status::BadChannel);
            return self.expect_send(conn, lane, &encode_subscribe_reply(&reply));
        }
        let id = self.session_for(conn, session, true);
        let channels = &self.sessions[&id].channels;
        let replacing = channels.contains(&channel);
        if !replacing && channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
            let reply = SubscribeReply::refused(request_id, Status::TooManySubscriptions);
            return self.expect_send(conn, lane, &encode_subscribe_reply(&reply));
        }
        // Publications of this turn before the SUBSCRIBE go to the members
        // the channel had (the old subscription too, when replacing).
        self.flush_channel(&channel);
        let budget = self.streams.limits.memory.saturating_sub(raise);
        let recovery = self
            .streams
            .subscribe(&channel, position, budget, now, request_id);
        if replacing {
            self.streams.unsubscribe(&channel, now);
        } else {
            self.join(id, &channel);
        }
        self.expect_send(conn, lane.clone(), &encode_subscribe_reply(&recovery.reply));
        if !recovery.replay.is_empty() && self.open.contains(&conn) {
            let bytes = recovery.replay.iter().map(Bytes::len).sum();
            self.ledger.push(conn, lane.clone(), Exp::Raise(bytes));
            for frames in recovery.replay {
                self.ledger.push(conn, lane.clone(), Exp::Send(frames));
            }
        }
    }

    /// Expects `message` sent to `conn` as one message (if it is open).
    pub fn expect_send(&mut self, conn: ConnId, lane: Lane, message: &[u8]) {
        if self.open.contains(&conn) {
            let frames = encode_message(message, self.streams.max_frame);
            self.ledger.push(conn, lane, Exp::Send(frames));
        }
    }
}
