//! Requests an engine answers later ([`Answer::Later`]): pending
//! subscriptions and pending publishes, completed by [`EngineEvent`]s.
//!
//! A pending SUBSCRIBE is per connection and channel. Until its answer
//! (epoch, top, recovery decision, replay) it is not in the channel's live
//! set; the publications that reach the node for the channel meanwhile are
//! kept with it (bounded by the replay budget), and when the answer comes the
//! reply, the replay and then the kept publications of the same epoch with
//! an offset above the top are queued, and the live set joined: no gap, no
//! duplicate (docs/protocol.md §7.5, last paragraph). A second SUBSCRIBE to
//! the channel while one is pending is refused UNAVAILABLE (the client
//! retries); an UNSUBSCRIBE waits for the pending one, so replies keep the
//! requests' order.

use bytes::Bytes;
use std::collections::HashMap;

use super::engine::EngineEvent;
use super::ops::encode_delivery;
use super::ops_v2::{
    encode_publish_ack, encode_unsubscribe_reply, PublishAck, Status, UnsubscribeReply,
};
use super::state::PubsubState;
use super::streams::{Published, Recovery};
use crate::app::{ConnId, Outbox};
use crate::protocol::GoawayCode;
use crate::time::Tick;

/// Pending requests server-wide, each kind: bounds what a slow engine makes
/// the node hold. Beyond it requests are refused UNAVAILABLE.
pub const MAX_PENDING: usize = 65_536;

/// The requests waiting for their engine's answer.
#[derive(Debug, Default)]
pub(super) struct PendingOps {
    /// The last token handed out (tokens start at 1; 0 is "nobody waits").
    last_token: u64,
    subscribes: HashMap<u64, PendingSubscribe>,
    by_conn_channel: HashMap<(ConnId, Bytes), u64>,
    publishes: HashMap<u64, PendingPublish>,
}

impl PendingOps {
    fn token(&mut self) -> u64 {
        self.last_token += 1;
        self.last_token
    }

    /// Subscriptions waiting for their answer.
    pub fn subscribes(&self) -> usize {
        self.subscribes.len()
    }

    /// Publishes waiting for their outcome.
    pub fn publishes(&self) -> usize {
        self.publishes.len()
    }
}

/// A SUBSCRIBE sent to the engine and not answered yet.
#[derive(Debug)]
pub(super) struct PendingSubscribe {
    pub conn: ConnId,
    /// The session's key in `PubsubState::sessions`.
    pub key: usize,
    pub channel: Bytes,
    pub request_id: u32,
    /// The session had a subscription to the channel already (left the live
    /// set meanwhile; its engine count ends when this is answered).
    pub replacing: bool,
    /// An UNSUBSCRIBE that came meanwhile, answered after this.
    pub unsubscribe: Option<u32>,
    /// Publications for the channel that reached the node meanwhile.
    kept: Vec<Kept>,
    kept_bytes: usize,
    /// More came than the budget allows: the kept ones have a gap.
    overflowed: bool,
    /// Bytes the kept publications may take.
    budget: usize,
}

/// A publication kept for a pending subscription.
#[derive(Debug)]
struct Kept {
    epoch: u64,
    offset: u64,
    publication: Bytes,
}

/// A PUBLISH sent to the engine and not answered yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingPublish {
    conn: ConnId,
    request_id: u32,
}

impl PubsubState {
    /// A token for an engine subscribe of `conn`'s session `key` to
    /// `channel`, registered as pending should the engine answer later; None
    /// when too many are pending or one is for the same connection and channel.
    pub(super) fn pending_subscribe(
        &mut self,
        conn: ConnId,
        key: usize,
        channel: &Bytes,
        request_id: u32,
        replacing: bool,
        budget: usize,
    ) -> Option<u64> {
        let ops = &mut self.pending_ops;
        if ops.subscribes.len() >= MAX_PENDING
            || ops.by_conn_channel.contains_key(&(conn, channel.clone()))
        {
            return None;
        }
        let token = ops.token();
        ops.subscribes.insert(
            token,
            PendingSubscribe {
                conn,
                key,
                channel: channel.clone(),
                request_id,
                replacing,
                unsubscribe: None,
                kept: Vec::new(),
                kept_bytes: 0,
                overflowed: false,
                budget,
            },
        );
        ops.by_conn_channel.insert((conn, channel.clone()), token);
        Some(token)
    }

    /// The engine answered at once: the token is not pending after all.
    pub(super) fn take_pending_subscribe(&mut self, token: u64) -> Option<PendingSubscribe> {
        let pending = self.pending_ops.subscribes.remove(&token)?;
        self.pending_ops
            .by_conn_channel
            .remove(&(pending.conn, pending.channel.clone()));
        Some(pending)
    }

    /// An UNSUBSCRIBE from `conn` for a channel it has a pending subscription
    /// to: answered after that one. False if there is none (or an
    /// UNSUBSCRIBE waits already: answer this one now).
    pub(super) fn defer_unsubscribe(
        &mut self,
        conn: ConnId,
        channel: &Bytes,
        request_id: u32,
    ) -> bool {
        let ops = &mut self.pending_ops;
        let Some(token) = ops.by_conn_channel.get(&(conn, channel.clone())) else {
            return false;
        };
        match ops.subscribes.get_mut(token) {
            Some(p) if p.unsubscribe.is_none() => {
                p.unsubscribe = Some(request_id);
                true
            }
            _ => false,
        }
    }

    /// A token for an engine publish acknowledged to `conn` as `request_id`
    /// (0: not acknowledged, and the token is 0), or None when too many
    /// publishes are pending.
    pub(super) fn pending_publish(&mut self, conn: ConnId, request_id: u32) -> Option<u64> {
        if request_id == 0 {
            return Some(0);
        }
        let ops = &mut self.pending_ops;
        if ops.publishes.len() >= MAX_PENDING {
            return None;
        }
        let token = ops.token();
        ops.publishes
            .insert(token, PendingPublish { conn, request_id });
        Some(token)
    }

    /// The engine answered at once: forget the publish's token.
    pub(super) fn forget_pending_publish(&mut self, token: u64) {
        self.pending_ops.publishes.remove(&token);
    }

    /// Session `key` ends: its pending subscriptions end with it (each one's
    /// engine count too; their answers are dropped).
    pub(super) fn drop_pending_of(&mut self, key: usize, now: Tick) {
        if self.pending_ops.subscribes.is_empty() {
            return;
        }
        let tokens: Vec<u64> = self
            .pending_ops
            .subscribes
            .iter()
            .filter(|(_, p)| p.key == key)
            .map(|(&t, _)| t)
            .collect();
        for token in tokens {
            if let Some(p) = self.take_pending_subscribe(token) {
                self.engine.unsubscribe(&p.channel, now);
            }
        }
    }

    /// A publication reached the node for `channel`: kept for the pending
    /// subscriptions to it.
    pub(super) fn keep_for_pending(
        &mut self,
        channel: &[u8],
        epoch: u64,
        offset: u64,
        publication: &Bytes,
    ) {
        if self.pending_ops.subscribes.is_empty() {
            return;
        }
        for p in self.pending_ops.subscribes.values_mut() {
            if p.channel != channel || p.overflowed {
                continue;
            }
            if p.kept_bytes + publication.len() > p.budget {
                p.overflowed = true;
                p.kept = Vec::new();
                continue;
            }
            p.kept_bytes += publication.len();
            p.kept.push(Kept {
                epoch,
                offset,
                publication: publication.clone(),
            });
        }
    }

    /// Handles what the engine has to report.
    pub(super) fn drain_engine(&mut self, now: Tick, out: &mut Outbox) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                EngineEvent::Published { token, result } => self.publish_done(token, result, out),
                EngineEvent::Subscribed { token, result } => {
                    if let Some(p) = self.take_pending_subscribe(token) {
                        self.subscribe_done(p, result, now, out);
                    }
                }
                EngineEvent::Publication {
                    channel,
                    epoch,
                    offset,
                    publication,
                    body,
                } => {
                    let v1 = || encode_delivery(&channel, &body, self.limits.max_frame);
                    let v1 = self
                        .channels
                        .get(&channel)
                        .is_some_and(|c| c.has_v1())
                        .then(v1);
                    self.deliver(&channel, epoch, offset, publication, v1, out);
                }
            }
        }
    }

    fn publish_done(&mut self, token: u64, result: Result<Published, Status>, out: &mut Outbox) {
        let Some(p) = self.pending_ops.publishes.remove(&token) else {
            return;
        };
        let ack = match result {
            Ok(published) => {
                self.stats.publishes_acked += 1;
                PublishAck {
                    request_id: p.request_id,
                    status: Status::Ok,
                    epoch: published.epoch,
                    offset: published.offset,
                }
            }
            Err(status) => {
                self.stats.publishes_refused += 1;
                PublishAck::refused(p.request_id, status)
            }
        };
        out.send(p.conn, &encode_publish_ack(&ack));
    }

    /// The engine's answer to a pending subscription: reply, replay, the
    /// kept publications past the top, then the live set (§7.5).
    pub(super) fn subscribe_done(
        &mut self,
        p: PendingSubscribe,
        result: Result<Recovery, Status>,
        now: Tick,
        out: &mut Outbox,
    ) {
        let alive = self.by_conn.get(&p.conn) == Some(&p.key);
        let result = match result {
            Ok(_) if p.overflowed => {
                // The kept publications have a gap: the client retries, from
                // its position, and recovers them from the history.
                self.engine.unsubscribe(&p.channel, now);
                Err(Status::Unavailable)
            }
            Ok(recovery) => Ok(recovery),
            Err(status) => {
                self.engine.unsubscribe(&p.channel, now);
                Err(status)
            }
        };
        if !alive {
            if result.is_ok() {
                self.engine.unsubscribe(&p.channel, now);
            }
            return;
        }
        if let Some(session) = self.sessions.get_mut(p.key) {
            session.pending = session.pending.saturating_sub(1);
        }
        match result {
            Ok(recovery) => {
                let (epoch, top) = (recovery.epoch, recovery.top);
                if p.replacing {
                    // The old subscription's count; the new one holds the stream.
                    self.engine.unsubscribe(&p.channel, now);
                }
                self.reply_subscribed(p.conn, p.request_id, recovery, out);
                for kept in p.kept {
                    if kept.epoch == epoch && kept.offset > top {
                        out.send_frames(p.conn, kept.publication);
                    }
                }
                self.join(p.key, p.channel.clone(), out);
            }
            Err(status) => {
                self.refuse_subscribe(p.conn, p.request_id, status, out);
                if p.replacing {
                    // Nothing changes on a refusal: back in the live set,
                    // with what it missed meanwhile, if nothing was lost.
                    if p.overflowed {
                        out.close(p.conn, GoawayCode::SlowConsumer, "missed publications");
                        return;
                    }
                    for kept in p.kept {
                        out.send_frames(p.conn, kept.publication);
                    }
                    self.join(p.key, p.channel.clone(), out);
                }
            }
        }
        if let Some(request_id) = p.unsubscribe {
            self.leave(p.key, &p.channel, now, out);
            let reply = UnsubscribeReply {
                request_id,
                status: Status::Ok,
            };
            out.send(p.conn, &encode_unsubscribe_reply(&reply));
        }
    }
}
