//! Each connection's output read as its client reads it: every Send split
//! into DATA frames and messages, each message parsed, and the promises of
//! docs/protocol.md §7.4–§7.5 checked on that stream alone, independently of
//! the model's bookkeeping: a SUBSCRIBE_REPLY as the recovery table allows,
//! the output limits raised by the replay's bytes before it, the replay
//! O + 1..=top, then live publications each once and with no gap, none
//! before SUBSCRIBED or after UNSUBSCRIBE_REPLY.

use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

use crate::app::pubsub::ops::parse_delivery;
use crate::app::pubsub::ops_v2::{
    parse_server_msg, ClientOp, Position, Publication, PublishAck, RecoveryReason, ServerMsg,
    Status, SubscribeReply, UnsubscribeReply,
};
use crate::protocol::{FrameDecoder, FrameType};

/// A subscription as its client knows it.
#[derive(Debug, Clone, Copy)]
struct Sub {
    epoch: u64,
    /// The offset due next.
    next: u64,
}

/// A replay announced by a SUBSCRIBED and not yet all received.
#[derive(Debug)]
struct Replay {
    channel: Bytes,
    left: u32,
    raised: Option<usize>,
    bytes: usize,
}

/// One connection's client-side view.
#[derive(Debug)]
pub(super) struct View {
    pub v2: bool,
    subs: BTreeMap<Bytes, Sub>,
    /// The request being handled: its reply must match it.
    pub request: Option<ClientOp>,
    replay: Option<Replay>,
}

/// The messages in `wire`: whole DATA messages split at `max_frame`.
pub(super) fn messages(wire: &[u8], max_frame: usize) -> Vec<Bytes> {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut input = wire;
    let mut all = Vec::new();
    let mut message = BytesMut::new();
    while let Some(frame) = decoder.next_frame(&mut input).expect("valid frames") {
        assert_eq!(frame.kind, FrameType::Data, "only DATA from the app");
        message.extend_from_slice(&frame.payload);
        if !frame.more {
            all.push(std::mem::take(&mut message).freeze());
        }
    }
    assert!(
        message.is_empty() && decoder.buffered() == 0,
        "a send ends with a whole message"
    );
    all
}

impl View {
    pub fn new(v2: bool) -> Self {
        View {
            v2,
            subs: BTreeMap::new(),
            request: None,
            replay: None,
        }
    }

    /// The client's position in `channel` (epoch, last offset received).
    pub fn position(&self, channel: &[u8]) -> Option<Position> {
        self.subs.get(channel).map(|s| Position {
            epoch: s.epoch,
            offset: s.next - 1,
        })
    }

    /// Every position held, for the harness to resubscribe with later.
    pub fn positions(&self) -> impl Iterator<Item = (&Bytes, Position)> + '_ {
        self.subs
            .keys()
            .filter_map(|c| Some((c, self.position(c)?)))
    }

    /// A Send to this connection.
    pub fn receive(&mut self, wire: &Bytes, max_frame: usize) {
        let msgs = messages(wire, max_frame);
        assert!(!msgs.is_empty(), "an empty send");
        for m in &msgs {
            if !self.v2 {
                assert!(parse_delivery(m).is_some(), "v1 connection got {m:?}");
                continue;
            }
            match parse_server_msg(m) {
                Ok(ServerMsg::SubscribeReply(r)) => self.subscribed(r),
                Ok(ServerMsg::UnsubscribeReply(r)) => self.unsubscribed(r),
                Ok(ServerMsg::PublishAck(a)) => self.acked(a),
                Ok(ServerMsg::Publication(p)) => self.publication(p, msgs.len(), wire.len()),
                Err(e) => panic!("v2 connection got {m:?}: {e}"),
            }
        }
    }

    /// The output limits were raised by `bytes`: only right before a replay.
    pub fn raised(&mut self, bytes: usize) {
        let replay = self.replay.as_mut().expect("a raise announces a replay");
        assert!(replay.raised.is_none(), "one raise per replay");
        replay.raised = Some(bytes);
    }

    /// The event is handled: its replies and replay are all out.
    pub fn end_event(&mut self) {
        assert!(self.replay.is_none(), "replay cut short: {:?}", self.replay);
        self.request = None;
    }

    /// After a turn's flush every publication has reached every subscriber:
    /// the position of each subscription is its stream's (epoch, top).
    pub fn assert_caught_up(&self, streams: impl Fn(&[u8]) -> Option<Position>) {
        for (channel, sub) in &self.subs {
            let stream = streams(channel).expect("a subscribed stream is never forgotten");
            assert_eq!(
                (sub.epoch, sub.next - 1),
                (stream.epoch, stream.offset),
                "subscriber of {channel:?} not caught up at the end of the turn"
            );
        }
    }

    fn subscribed(&mut self, r: SubscribeReply) {
        let Some(ClientOp::Subscribe {
            request_id,
            channel,
            position,
        }) = self.request.take()
        else {
            panic!("SUBSCRIBE_REPLY with no SUBSCRIBE: {r:?}");
        };
        assert_eq!(r.request_id, request_id, "reply echoes the request id");
        if r.status != Status::Ok {
            assert_eq!(
                r,
                SubscribeReply::refused(request_id, r.status),
                "refused: zeros"
            );
            return;
        }
        assert_eq!(r.recovery_asked, position.is_some(), "RECOVERY_ASKED");
        let next = match position {
            None => {
                assert!(!r.recovered && r.reason == RecoveryReason::None && r.replay == 0);
                r.top + 1
            }
            Some(p) if r.recovered => {
                assert_eq!(r.reason, RecoveryReason::None, "recovered: reason NONE");
                assert_eq!(r.epoch, p.epoch, "recovered in the position's epoch");
                assert!(p.offset <= r.top, "recovered from at most the top");
                assert_eq!(u64::from(r.replay), r.top - p.offset, "replay = top − O");
                p.offset + 1
            }
            Some(p) => {
                let expected = if p.epoch != r.epoch || p.offset > r.top {
                    RecoveryReason::EpochChanged
                } else {
                    RecoveryReason::TooFarBehind
                };
                assert_eq!(r.reason, expected, "not recovered: the table's reason");
                assert_eq!(r.replay, 0, "no replay unless recovered");
                r.top + 1
            }
        };
        if r.replay > 0 {
            self.replay = Some(Replay {
                channel: channel.clone(),
                left: r.replay,
                raised: None,
                bytes: 0,
            });
        }
        self.subs.insert(
            channel,
            Sub {
                epoch: r.epoch,
                next,
            },
        );
    }

    fn unsubscribed(&mut self, r: UnsubscribeReply) {
        let Some(ClientOp::Unsubscribe {
            request_id,
            channel,
        }) = self.request.take()
        else {
            panic!("UNSUBSCRIBE_REPLY with no UNSUBSCRIBE: {r:?}");
        };
        assert_eq!(r.request_id, request_id, "reply echoes the request id");
        let status = if channel.is_empty() {
            Status::BadChannel
        } else {
            Status::Ok
        };
        assert_eq!(r.status, status, "UNSUBSCRIBE is answered OK");
        // No PUBLICATION of the channel from now on.
        self.subs.remove(&channel);
    }

    fn acked(&mut self, a: PublishAck) {
        let Some(ClientOp::Publish { request_id, .. }) = self.request.take() else {
            panic!("PUBLISH_ACK with no PUBLISH: {a:?}");
        };
        assert_eq!(a.request_id, request_id, "ack echoes the request id");
        assert_ne!(request_id, 0, "no ack for request id 0");
        if a.status == Status::Ok {
            assert!(
                a.epoch != 0 && a.offset >= 1,
                "an OK ack names a publication"
            );
        } else {
            assert_eq!(
                a,
                PublishAck::refused(request_id, a.status),
                "refused: zeros"
            );
        }
    }

    fn publication(&mut self, p: Publication, in_send: usize, send_len: usize) {
        if let Some(replay) = self.replay.as_mut().filter(|r| r.channel == p.channel) {
            let raised = replay.raised.expect("output limits raised before a replay");
            assert_eq!(in_send, 1, "one replayed publication per send");
            replay.left -= 1;
            replay.bytes += send_len;
            if replay.left == 0 {
                assert_eq!(replay.bytes, raised, "raised by the replay's bytes");
                self.replay = None;
            }
        }
        let Some(sub) = self.subs.get_mut(&p.channel) else {
            panic!("PUBLICATION of {:?} while not subscribed", p.channel);
        };
        assert_eq!(
            (p.epoch, p.offset),
            (sub.epoch, sub.next),
            "§7.5: offsets in order, once, with no gap, in the subscription's epoch"
        );
        sub.next += 1;
    }
}
