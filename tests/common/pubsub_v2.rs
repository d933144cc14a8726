//! The pub/sub v2 requests (docs/protocol.md §7.2) sent by the test client,
//! and checked expectations on the server's answers, through the crate's own
//! codec (`tether::app::pubsub::ops_v2`). Tests that must not trust the codec
//! compare raw bytes with the §7.9 vectors instead.

use bytes::Bytes;
use tether::app::pubsub::ops_v2::{
    encode_publish, encode_subscribe, encode_unsubscribe, parse_server_msg, Position, Publication,
    PublishAck, ServerMsg, Status, SubscribeReply, UnsubscribeReply,
};

use super::client::Client;
use super::pubsub::SPLIT;

/// The body these tests publish at `offset` of a stream they alone publish
/// to, so a delivery's body says which publication it is.
pub fn numbered_body(offset: u64) -> Vec<u8> {
    format!("publication {offset}").into_bytes()
}

impl Client {
    /// Sends a SUBSCRIBE (no reply awaited).
    pub fn send_subscribe_v2(
        &mut self,
        request_id: u32,
        channel: &[u8],
        position: Option<Position>,
    ) {
        self.send_message(&encode_subscribe(request_id, channel, position), SPLIT);
    }

    /// A SUBSCRIBE and its SUBSCRIBE_REPLY, which must come next (so nothing
    /// else may be in flight to this connection).
    pub fn subscribe_v2(
        &mut self,
        request_id: u32,
        channel: &[u8],
        position: Option<Position>,
    ) -> SubscribeReply {
        self.send_subscribe_v2(request_id, channel, position);
        self.expect_subscribe_reply(request_id)
    }

    /// Sends an UNSUBSCRIBE (no reply awaited).
    pub fn send_unsubscribe_v2(&mut self, request_id: u32, channel: &[u8]) {
        self.send_message(&encode_unsubscribe(request_id, channel), SPLIT);
    }

    /// An UNSUBSCRIBE and its UNSUBSCRIBE_REPLY, which must come next.
    pub fn unsubscribe_v2(&mut self, request_id: u32, channel: &[u8]) -> UnsubscribeReply {
        self.send_unsubscribe_v2(request_id, channel);
        match self.recv_v2() {
            ServerMsg::UnsubscribeReply(r) if r.request_id == request_id => r,
            other => panic!("expected UNSUBSCRIBE_REPLY {request_id}, got {other:?}"),
        }
    }

    /// Sends a PUBLISH; `request_id` 0 asks for no PUBLISH_ACK.
    pub fn publish_v2(&mut self, request_id: u32, channel: &[u8], body: &[u8]) {
        self.send_message(&encode_publish(request_id, channel, body), SPLIT);
    }

    /// The next DATA message, which must parse as a v2 server message.
    pub fn recv_v2(&mut self) -> ServerMsg {
        let m = Bytes::from(self.recv_message());
        parse_server_msg(&m).unwrap_or_else(|e| {
            panic!(
                "the server sent an unparsable v2 message ({e}): {:02x?}",
                &m[..m.len().min(64)]
            )
        })
    }

    /// The next message must be the SUBSCRIBE_REPLY to `request_id`.
    pub fn expect_subscribe_reply(&mut self, request_id: u32) -> SubscribeReply {
        match self.recv_v2() {
            ServerMsg::SubscribeReply(r) if r.request_id == request_id => r,
            other => panic!("expected SUBSCRIBE_REPLY {request_id}, got {other:?}"),
        }
    }

    /// The next message must be the PUBLISH_ACK to `request_id`.
    pub fn expect_publish_ack(&mut self, request_id: u32) -> PublishAck {
        match self.recv_v2() {
            ServerMsg::PublishAck(a) if a.request_id == request_id => a,
            other => panic!("expected PUBLISH_ACK {request_id}, got {other:?}"),
        }
    }

    /// The next message must be a PUBLICATION.
    pub fn expect_publication(&mut self) -> Publication {
        match self.recv_v2() {
            ServerMsg::Publication(p) => p,
            other => panic!("expected a PUBLICATION, got {other:?}"),
        }
    }

    /// The next message must be the PUBLICATION (`epoch`, `offset`) on
    /// `channel` with [`numbered_body`]`(offset)`.
    pub fn expect_numbered(&mut self, channel: &[u8], epoch: u64, offset: u64) {
        let p = self.expect_publication();
        let want = Publication {
            epoch,
            offset,
            channel: Bytes::copy_from_slice(channel),
            body: numbered_body(offset).into(),
        };
        assert_eq!(describe_publication(&p), describe_publication(&want));
    }
}

/// A PUBLICATION in one line, channel and body as text, for comparisons
/// whose failure a person reads.
pub fn describe_publication(p: &Publication) -> String {
    format!(
        "PUBLICATION ({:#x}, {}) {:?}: {:?}",
        p.epoch,
        p.offset,
        String::from_utf8_lossy(&p.channel),
        String::from_utf8_lossy(&p.body)
    )
}

/// Checks a SUBSCRIBE_REPLY refused with `status`: every later field 0 (§7.2).
pub fn assert_refused(reply: &SubscribeReply, status: Status) {
    assert_eq!(
        *reply,
        SubscribeReply::refused(reply.request_id, status),
        "expected a SUBSCRIBE_REPLY refused with {status}, all later fields 0"
    );
}
