//! The protocol-v2 requests (docs/protocol.md §7.4): SUBSCRIBE with recovery
//! from a position, UNSUBSCRIBE and acknowledged PUBLISH, each handled whole
//! within one call, which is what the ordering guarantee of §7.5 rests on.

use bytes::Bytes;

use super::ops_v2::{
    encode_publish_ack, encode_subscribe_reply, encode_unsubscribe_reply, parse_client_op,
    ClientOp, Position, PublishAck, Status, SubscribeReply, UnsubscribeReply,
};
use super::state::{PubsubState, MAX_SUBSCRIPTIONS_PER_SESSION};
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
                let ack = if channel.is_empty() {
                    self.stats.publishes_refused += 1;
                    PublishAck::refused(request_id, Status::BadChannel)
                } else {
                    let published = self.publish(&channel, &body, now, out);
                    self.stats.publishes_acked += u64::from(request_id != 0);
                    PublishAck {
                        request_id,
                        status: Status::Ok,
                        epoch: published.epoch,
                        offset: published.offset,
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
    /// refusal), the stream found or made and trimmed, the recovery decided,
    /// the reply and then the replay queued, and the live set joined, all
    /// before any other publication is handled.
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
            return self.refuse_subscribe(request, Status::BadChannel, out);
        }
        let key = self.session_key(conn, request.session, true);
        let channels = &self.sessions[key].channels;
        let replacing = channels.contains(&channel);
        if !replacing && channels.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
            return self.refuse_subscribe(request, Status::TooManySubscriptions, out);
        }
        // This turn's earlier publications go to the members they had
        // (this connection too, when it replaces its subscription): they are
        // at or below the top the reply gives, so in the replay if anywhere.
        self.flush_channel(&channel, out);
        let budget = self.limits.history.memory.saturating_sub(output_raise);
        let recovery = self
            .streams
            .subscribe(&channel, request.position, budget, now);
        if replacing {
            // The old subscription's count: the new one is counted already,
            // so the stream is never idle in between.
            self.streams.unsubscribe(&channel, now);
        } else {
            self.join(key, channel, out);
        }
        let reply = SubscribeReply {
            request_id: request.request_id,
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

    fn refuse_subscribe(&mut self, request: Subscribe, status: Status, out: &mut Outbox) {
        self.stats.subscribes_refused += 1;
        let reply = SubscribeReply::refused(request.request_id, status);
        out.send(request.conn, &encode_subscribe_reply(&reply));
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
