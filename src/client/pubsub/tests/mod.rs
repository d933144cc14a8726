//! The v2 pub/sub machine with plain values: the server is played by
//! hand-built replies and publications, time by a fake `now`.

use bytes::Bytes;
use std::time::{Duration, Instant};

use super::*;
use crate::app::pubsub::ops_v2::{
    parse_client_op, ClientOp, Publication, PublishAck, ServerMsg, SubscribeReply, UnsubscribeReply,
};
use crate::client::backoff::{BackoffConfig, Jitter};

mod recovery;
mod requests;

/// The epochs of the spec's test vectors (docs/protocol.md §7.9).
pub(super) const E: u64 = 0x0123_4567_89ab_cdef;
pub(super) const E2: u64 = 0x9a3c_5e7f_1032_5476;
pub(super) const NEWS: &[u8] = b"news";

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn pos(epoch: u64, offset: u64) -> Position {
    Position { epoch, offset }
}

pub(super) fn config() -> PubsubConfig {
    PubsubConfig {
        retry: BackoffConfig {
            base: ms(100),
            cap: ms(1000),
            factor: 2.0,
            jitter: Jitter::None,
            max_attempts: Some(3),
            healthy_after: ms(1),
        },
        max_requests: 4,
    }
}

/// A machine and a fake clock.
pub(super) struct Harness {
    pub m: PubsubMachine,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            m: PubsubMachine::new(config(), Box::new(crate::client::SplitMix64::new(7))),
            now: Instant::now(),
        }
    }

    /// A WELCOME (max_message 1000); the Connected event is taken.
    pub fn connect(&mut self) {
        self.m.handle_connected(1000, false);
        assert_eq!(
            self.m.poll_event(),
            Some(PubsubEvent::Connected { resumed: false })
        );
    }

    /// The connection ends (EOF); returns the events that causes.
    pub fn disconnect(&mut self) -> Vec<PubsubEvent> {
        self.m.handle_disconnected(DisconnectReason::Eof);
        self.events()
    }

    /// Everything the machine wants sent, parsed as the server would.
    pub fn sent(&mut self) -> Vec<ClientOp> {
        std::iter::from_fn(|| self.m.poll_transmit())
            .map(|m| parse_client_op(&m).expect("the client sends valid ops"))
            .collect()
    }

    pub fn events(&mut self) -> Vec<PubsubEvent> {
        std::iter::from_fn(|| self.m.poll_event()).collect()
    }

    /// The server sends `msg`.
    pub fn deliver(&mut self, msg: ServerMsg) -> Result<(), PubsubProtocolError> {
        self.m.handle_message(&msg.encode(), self.now)
    }

    fn ok(&mut self, msg: ServerMsg) {
        self.deliver(msg).expect("a valid server message");
    }

    /// SUBSCRIBED to request `id`: no position was asked, the stream is at (epoch, top).
    pub fn subscribed(&mut self, id: u32, epoch: u64, top: u64) {
        self.ok(ServerMsg::SubscribeReply(SubscribeReply {
            epoch,
            top,
            ..SubscribeReply::refused(id, Status::Ok)
        }));
    }

    /// SUBSCRIBED to request `id` with RECOVERED: `replay` publications follow.
    pub fn recovered(&mut self, id: u32, epoch: u64, top: u64, replay: u32) {
        self.ok(ServerMsg::SubscribeReply(SubscribeReply {
            recovery_asked: true,
            recovered: true,
            epoch,
            top,
            replay,
            ..SubscribeReply::refused(id, Status::Ok)
        }));
    }

    /// SUBSCRIBED to request `id` that asked for recovery and did not get it.
    pub fn not_recovered(&mut self, id: u32, reason: RecoveryReason, epoch: u64, top: u64) {
        self.ok(ServerMsg::SubscribeReply(SubscribeReply {
            recovery_asked: true,
            reason,
            epoch,
            top,
            ..SubscribeReply::refused(id, Status::Ok)
        }));
    }

    /// A SUBSCRIBE_REPLY refusing request `id`.
    pub fn refused(&mut self, id: u32, status: Status) {
        self.ok(ServerMsg::SubscribeReply(SubscribeReply::refused(
            id, status,
        )));
    }

    pub fn ack(&mut self, id: u32, status: Status, epoch: u64, offset: u64) {
        self.ok(ServerMsg::PublishAck(PublishAck {
            request_id: id,
            status,
            epoch,
            offset,
        }));
    }

    pub fn unsubscribed(&mut self, id: u32) {
        self.ok(ServerMsg::UnsubscribeReply(UnsubscribeReply {
            request_id: id,
            status: Status::Ok,
        }));
    }

    /// PUBLICATIONs of `channel` in `epoch` at `offsets`, body `m<offset>`.
    pub fn publications(
        &mut self,
        channel: &[u8],
        epoch: u64,
        offsets: impl IntoIterator<Item = u64>,
    ) {
        for offset in offsets {
            self.ok(ServerMsg::Publication(Publication {
                epoch,
                offset,
                channel: Bytes::copy_from_slice(channel),
                body: body(offset),
            }));
        }
    }

    /// The offsets of the Message events in `events`, checking each body.
    pub fn delivered(&mut self) -> Vec<u64> {
        self.events()
            .into_iter()
            .map(|e| match e {
                PubsubEvent::Message {
                    offset, payload, ..
                } => {
                    assert_eq!(payload, body(offset));
                    offset
                }
                other => panic!("expected only messages, got {other:?}"),
            })
            .collect()
    }
}

pub(super) fn body(offset: u64) -> Bytes {
    Bytes::from(format!("m{offset}"))
}

pub(super) fn subscribe(request_id: u32, channel: &[u8], position: Option<Position>) -> ClientOp {
    ClientOp::Subscribe {
        request_id,
        channel: Bytes::copy_from_slice(channel),
        position,
    }
}

pub(super) fn subscribed_event(
    channel: &[u8],
    epoch: u64,
    top: u64,
    recovered: bool,
    replayed: u32,
) -> PubsubEvent {
    PubsubEvent::Subscribed {
        channel: Bytes::copy_from_slice(channel),
        epoch,
        top,
        recovered,
        replayed,
    }
}

/// A machine connected and subscribed to `news` at (E, `top`).
pub(super) fn subscribed_at(top: u64) -> Harness {
    let mut h = Harness::new();
    h.m.subscribe(NEWS, None).expect("valid");
    h.connect();
    assert_eq!(h.sent(), [subscribe(1, NEWS, None)]);
    h.subscribed(1, E, top);
    assert_eq!(h.events(), [subscribed_event(NEWS, E, top, false, 0)]);
    h
}
