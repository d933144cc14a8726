//! The echo application: every DATA message comes back unchanged as one message.

use bytes::Bytes;

use super::{App, ConnId};
use crate::reactor::Ctx;

/// Sends each message back to its sender (PROTOCOL.md §5).
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl App for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Bytes) {
        ctx.send(conn, &message);
    }
}
