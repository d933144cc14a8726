//! The protocol-v2 pub/sub codec ([`crate::app::pubsub::ops_v2`]) on arbitrary bytes.

use bytes::Bytes;

use super::{reassemble, DELIVERY_MAX_FRAMES};
use crate::app::pubsub::ops_v2::{
    encode_publication, encode_publication_frames, parse_client_op, parse_server_msg, ClientOp,
    ServerMsg, FLAG_RECOVERED, FLAG_RECOVERY_ASKED, OP_SUBSCRIBE_REPLY,
};
use crate::protocol::GoawayCode;

/// Whether `part` is a zero-copy slice of `whole` (or empty).
fn inside(part: &Bytes, whole: &Bytes) -> bool {
    let range = whole.as_ptr_range();
    part.is_empty() || (range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end)
}

/// Both v2 parsers. The first byte picks the `max_frame` a PUBLICATION is
/// split at (low 3 bits); the rest is a message.
///
/// Checks: no panic; a message parses in at most one direction and every
/// refusal is PROTOCOL_ERROR; whatever parses re-encodes to the same bytes
/// (a SUBSCRIBE_REPLY up to the flag bits receivers ignore) and parses back
/// to the same value, its channel and body slices of the message; a
/// publish's PUBLICATION frames, and a PUBLICATION's, reassemble to the
/// PUBLICATION payload with the same channel and body.
pub fn pubsub_v2_ops(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max_frame = DELIVERY_MAX_FRAMES[usize::from(sel & 7)];
    let message = Bytes::copy_from_slice(rest);
    let client = parse_client_op(&message);
    let server = parse_server_msg(&message);
    assert!(
        client.is_err() || server.is_err(),
        "one message, both directions"
    );
    for err in [client.as_ref().err(), server.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert_eq!(err.goaway_code(), GoawayCode::ProtocolError);
    }

    if let Ok(op) = &client {
        assert_eq!(op.encode(), message, "client op layout is canonical");
        assert_eq!(parse_client_op(&op.encode()).as_ref(), Ok(op));
        let (channel, body) = match op {
            ClientOp::Subscribe { channel, .. } | ClientOp::Unsubscribe { channel, .. } => {
                (channel, &Bytes::new())
            }
            ClientOp::Publish { channel, body, .. } => (channel, body),
        };
        assert!(inside(channel, &message) && inside(body, &message));
        if let ClientOp::Publish {
            request_id,
            channel,
            body,
        } = op
        {
            let (epoch, offset) = (u64::from(*request_id) << 1 | 1, u64::from(sel));
            let frames = encode_publication_frames(epoch, offset, channel, body, max_frame);
            let delivered = Bytes::from(reassemble(&frames, max_frame));
            match parse_server_msg(&delivered) {
                Ok(ServerMsg::Publication(p)) => {
                    assert_eq!((p.epoch, p.offset), (epoch, offset));
                    assert_eq!((&p.channel, &p.body), (channel, body));
                }
                other => panic!("a publish's PUBLICATION parses as {other:?}"),
            }
        }
    }

    if let Ok(msg) = &server {
        let mut canonical = rest.to_vec();
        if canonical[0] == OP_SUBSCRIBE_REPLY {
            canonical[6] &= FLAG_RECOVERY_ASKED | FLAG_RECOVERED;
        }
        assert_eq!(&msg.encode()[..], &canonical[..], "server message layout");
        assert_eq!(parse_server_msg(&msg.encode()).as_ref(), Ok(msg));
        if let ServerMsg::Publication(p) = msg {
            assert!(inside(&p.channel, &message) && inside(&p.body, &message));
            assert_eq!(
                encode_publication(p.epoch, p.offset, &p.channel, &p.body),
                message
            );
            let frames =
                encode_publication_frames(p.epoch, p.offset, &p.channel, &p.body, max_frame);
            assert_eq!(reassemble(&frames, max_frame), rest, "PUBLICATION frames");
        }
    }
}
