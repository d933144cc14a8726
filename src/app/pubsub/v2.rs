//! The protocol-v2 requests (docs/protocol.md §7.4): SUBSCRIBE with recovery
//! from a position, UNSUBSCRIBE and acknowledged PUBLISH. With an engine
//! that answers at once each is handled whole within one call, which is what
//! the ordering guarantee of §7.5 rests on; with one that answers later, the
//! pending requests of `pending.rs` keep the same guarantee.

use bytes::Bytes;

use super::engine::Answer;
use super::ops_v2::{
    encode_publish_ack, encode_subscribe_reply, encode_unsubscribe_reply, parse_client_op,
    ClientOp, Position, PublishAck, Status, SubscribeReply, UnsubscribeReply,
};
use super::state::{PubsubState, MAX_SUBSCRIPTIONS_PER_SESSION};
use super::streams::Recovery;
use crate::app::{ConnId, MessageEvent, Outbox};
use crate::protocol::{GoawayCode, SessionId};
use crate::time::Tick;

impl PubsubState {
    /// A message on a v2 connection: a request, or PROTOCOL_ERROR.
    pub(super) fn handle_v2(
        &mut self,
        event: &MessageEvent,
        now: Tick,
        output_raise: usize,
        out: &mut Outbox,
    ) {
        let conn = event.conn;
        match parse_client_op(&event.message) {
            Ok(ClientOp::Subscribe {
                request_id,
                channel,
                position,
            }) => {
                let request = Subscribe {
                    conn,
                    session: event.session,
                    request_id,
                    position,
                };
                self.subscribe_v2(request, channel, now, output_raise, out)
            }
            Ok(ClientOp::Unsubscribe {
                request_id,
                channel,
            }) => {
                let status = if channel.is_empty() {
                    Status::BadChannel
                } else if self.defer_unsubscribe(conn, &channel, request_id) {
                    // Answered after the pending SUBSCRIBE (`pending.rs`).
                    return;
                } else {
                    if let Some(&key) = self.by_conn.get(&conn) {
                        self.leave(key, &channel, now, out);
                    }
                    Status::Ok
                };
                let reply = UnsubscribeReply { request_id, status };
                out.send(conn, &encode_unsubscribe_reply(&reply));
            }
            Ok(ClientOp::Publish {
                request_id,
                channel,
                body,
            }) => {
                if channel.is_empty() {
                    self.stats.publishes_refused += 1;
                    let ack = PublishAck::refused(request_id, Status::BadChannel);
                    if request_id != 0 {
                        out.send(conn, &encode_publish_ack(&ack));
                    }
                    return;
                }
                let Some(token) = self.pending_publish(conn, request_id) else {
                    self.stats.publishes_refused += 1;
                    let ack = PublishAck::refused(request_id, Status::Unavailable);
                    out.send(conn, &encode_publish_ack(&ack));
                    return;
                };
                let Answer::Now(result) = self.publish(token, &channel, &body, now, out) else {
                    return; // acknowledged when the engine answers (`pending.rs`)
                };
                self.forget_pending_publish(token);
                let ack = match result {
                    Ok(published) => {
                        self.stats.publishes_acked += u64::from(request_id != 0);
                        PublishAck {
                            request_id,
                            status: Status::Ok,
                            epoch: published.epoch,
                            offset: published.offset,
                        }
                    }
                    Err(status) => {
                        self.stats.publishes_refused += 1;
                        PublishAck::refused(request_id, status)
                    }
                };
                if request_id != 0 {
                    out.send(conn, &encode_publish_ack(&ack));
                }
            }
            Err(e) => {
                log::debug!("{conn}: {e}");
                out.close(
                    conn,
                    GoawayCode::ProtocolError,
                    "malformed pub/sub v2 message",
                );
            }
        }
    }

    /// A SUBSCRIBE, in the order of §7.4: the checks (nothing changes on a
    /// refusal), then the engine's recovery decision; answered at once (the
    /// in-memory engine), the reply and then the replay are queued and the
    /// live set joined, all before any other publication is handled. An
    /// engine that answers later makes it a pending subscription
    /// (`pending.rs`), completed the same way when the answer comes.
    fn subscribe_v2(
        &mut self,
        request: Subscribe,
        channel: Bytes,
        now: Tick,
        output_raise: usize,
        out: &mut Outbox,
    ) {
        let conn = request.conn;
        if channel.is_empty() {
            return self.refuse_subscribe(conn, request.request_id, Status::BadChannel, out);
        }
        let key = self.session_key(conn, request.session, true);
        let session = &self.sessions[key];
        let replacing = session.channels.contains(&channel);
        if !replacing && session.channels.len() + session.pending >= MAX_SUBSCRIPTIONS_PER_SESSION {
            return self.refuse_subscribe(
                conn,
                request.request_id,
                Status::TooManySubscriptions,
                out,
            );
        }
        let budget = self.limits.history.memory.saturating_sub(output_raise);
        let Some(token) =
            self.pending_subscribe(conn, key, &channel, request.request_id, replacing, budget)
        else {
            return self.refuse_subscribe(conn, request.request_id, Status::Unavailable, out);
        };
        // This turn's earlier publications go to the members they had
        // (this connection too, when it replaces its subscription): they are
        // at or below the top the reply gives, so in the replay if anywhere.
        self.flush_channel(&channel, out);
        let answer = self
            .engine
            .subscribe(token, &channel, request.position, budget, now);
        let Answer::Now(result) = answer else {
            self.sessions[key].pending += 1;
            if replacing {
                // Out of the live set until the answer: what comes meanwhile
                // is kept with the pending subscription, in order.
                self.leave_channel(&channel, key, true, out);
            }
            return;
        };
        self.take_pending_subscribe(token);
        match result {
            Ok(recovery) => {
                if replacing {
                    // The old subscription's count: the new one is counted
                    // already, so the stream is never idle in between.
                    self.engine.unsubscribe(&channel, now);
                } else {
                    self.join(key, channel, out);
                }
                self.reply_subscribed(conn, request.request_id, recovery, out);
            }
            Err(status) => {
                self.engine.unsubscribe(&channel, now);
                self.refuse_subscribe(conn, request.request_id, status, out);
            }
        }
    }

    /// Queues SUBSCRIBED and the replay behind it.
    pub(super) fn reply_subscribed(
        &mut self,
        conn: ConnId,
        request_id: u32,
        recovery: Recovery,
        out: &mut Outbox,
    ) {
        let reply = SubscribeReply {
            request_id,
            status: Status::Ok,
            recovery_asked: recovery.recovery_asked,
            recovered: recovery.recovered,
            reason: recovery.reason,
            epoch: recovery.epoch,
            top: recovery.top,
            replay: u32::try_from(recovery.replay.len()).unwrap_or(u32::MAX),
        };
        out.send(conn, &encode_subscribe_reply(&reply));
        if !recovery.replay.is_empty() {
            out.raise_output_limits(conn, recovery.replay_bytes);
            for publication in recovery.replay {
                out.send_frames(conn, publication);
            }
        }
    }

    /// Queues a refused SUBSCRIBE_REPLY.
    pub(super) fn refuse_subscribe(
        &mut self,
        conn: ConnId,
        request_id: u32,
        status: Status,
        out: &mut Outbox,
    ) {
        self.stats.subscribes_refused += 1;
        let reply = SubscribeReply::refused(request_id, status);
        out.send(conn, &encode_subscribe_reply(&reply));
    }
}

/// The parts of a SUBSCRIBE besides its channel, and whose it is.
#[derive(Debug, Clone, Copy)]
struct Subscribe {
    conn: ConnId,
    session: SessionId,
    request_id: u32,
    position: Option<Position>,
}
