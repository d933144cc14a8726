//! The echo application: every DATA message comes back unchanged as one message.

use super::{App, Ctx, MessageEvent};

/// Sends each message back to its sender (docs/protocol.md §5).
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl App for Echo {
    fn on_message(&mut self, message: MessageEvent, ctx: &mut Ctx<'_>) {
        ctx.send(message.conn, &message.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Action, ConnId, HelloEvent, NoConns, Outbox, SessionGrant};
    use crate::protocol::{encode_message, Hello, SessionId};
    use bytes::Bytes;

    #[test]
    fn accepts_with_a_fresh_session_and_echoes_each_message() {
        let conn = ConnId::from_u64(5);
        let mut out = Outbox::new(8);
        let hello = Hello {
            version: crate::protocol::PROTOCOL_V1,
            heartbeat_ms: 0,
            token: Bytes::new(),
            resume: None,
        };
        let fresh = SessionId([3; 16]);
        let event = HelloEvent {
            conn,
            hello: &hello,
            fresh,
            peer_identity: None,
        };
        Echo.on_hello(&event, &mut Ctx::new(&mut out, &NoConns, 0));
        let message = Bytes::from_static(b"twelve bytes");
        Echo.on_message(
            MessageEvent {
                conn,
                session: fresh,
                version: crate::protocol::PROTOCOL_V1,
                message: message.clone(),
            },
            &mut Ctx::new(&mut out, &NoConns, 0),
        );
        assert_eq!(
            out[..],
            [
                Action::Accept(conn, SessionGrant::fresh(fresh)),
                Action::Send(conn, encode_message(&message, 8)),
            ]
        );
    }
}
