//! What an app asks for: [`Action`]s queued in an [`Outbox`], which the
//! reactor carries out in order, in one place, after the app returns.
//!
//! Nothing here touches a socket, so an app's effects are plain values a
//! test can compare.

use bytes::Bytes;
use std::borrow::Cow;
use std::net::SocketAddr;

use super::event::{ConnId, SessionGrant};
use crate::protocol::{encode_message, GoawayCode};

/// One thing the app wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer the connection's HELLO with WELCOME for this session and open it.
    Accept(ConnId, SessionGrant),
    /// Queue these encoded DATA frames to the connection. A `Bytes` shared by
    /// many sends is one buffer, not a copy per receiver.
    Send(ConnId, Bytes),
    /// Close the connection politely with GOAWAY `code` and a reason.
    Close(ConnId, GoawayCode, Cow<'static, str>),
    /// Call the app's `on_timer(key)` once `after_ms` have passed (never
    /// early). Setting a key that is already set moves its timer.
    SetTimer {
        /// The app's name for the timer.
        key: u64,
        /// Delay in ms.
        after_ms: u64,
    },
    /// Forget the timer with this key, if it is still set.
    CancelTimer {
        /// The key given to `SetTimer`.
        key: u64,
    },
    /// Raise the connection's hard and soft output limits by this many bytes
    /// (raises add up) until its unsent output is next at or below the
    /// unraised hard limit: room for a replay queued at once (§7.4), so a
    /// reconnecting client is not evicted for its own catch-up.
    RaiseOutputLimits(ConnId, usize),
    /// Open an outbound TCP link to `addr` (to an engine such as Redis),
    /// named by the app's `link` key; its life comes back as
    /// [`LinkEvent`](super::LinkEvent)s. Dialing a key in use replaces that link.
    Dial {
        /// The app's name for the link.
        link: u64,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Queue bytes on a link, in order; they go out when it is connected.
    Transmit {
        /// The link.
        link: u64,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close a link at once (no event follows).
    Hangup {
        /// The link.
        link: u64,
    },
}

/// The actions an app queued while handling one event, in order. Reads as
/// a slice of [`Action`]s (`Deref`), the way tests look at it.
#[derive(Debug, Clone)]
pub struct Outbox {
    actions: Vec<Action>,
    /// Accepts (true) and closes (false) queued, so a question about a
    /// connection can see what this batch will do to it.
    decided: Vec<(ConnId, bool)>,
    /// Frame size messages are split at (the server's max_frame).
    max_frame: usize,
}

impl Outbox {
    /// An empty outbox whose messages are split into frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Outbox {
        Outbox {
            actions: Vec::new(),
            decided: Vec::new(),
            max_frame,
        }
    }

    /// Opens `conn` (WELCOME with `grant`); sends queued after this reach it.
    pub fn accept(&mut self, conn: ConnId, grant: SessionGrant) {
        self.decided.push((conn, true));
        self.actions.push(Action::Accept(conn, grant));
    }

    /// Encodes `message` as DATA frames at the server's frame size, once: pass
    /// the result to [`Outbox::send_frames`] for every receiver of a fan-out.
    pub fn encode(&self, message: &[u8]) -> Bytes {
        encode_message(message, self.max_frame)
    }

    /// Queues one message to `conn` (ignored if it is not open by then).
    pub fn send(&mut self, conn: ConnId, message: &[u8]) {
        let frames = self.encode(message);
        self.actions.push(Action::Send(conn, frames));
    }

    /// Queues frames made by [`Outbox::encode`] to `conn`, sharing the buffer.
    pub fn send_frames(&mut self, conn: ConnId, frames: Bytes) {
        self.actions.push(Action::Send(conn, frames));
    }

    /// Closes `conn` with GOAWAY `code` (the first close of a connection stands).
    pub fn close(&mut self, conn: ConnId, code: GoawayCode, reason: impl Into<Cow<'static, str>>) {
        self.decided.push((conn, false));
        self.actions.push(Action::Close(conn, code, reason.into()));
    }

    /// Sets (or moves) the timer `key` to fire after `after_ms`.
    pub fn set_timer(&mut self, key: u64, after_ms: u64) {
        self.actions.push(Action::SetTimer { key, after_ms });
    }

    /// Cancels the timer `key` if it is set.
    pub fn cancel_timer(&mut self, key: u64) {
        self.actions.push(Action::CancelTimer { key });
    }

    /// Raises `conn`'s output limits by `bytes` for a replay (see
    /// [`Action::RaiseOutputLimits`]); queue it before the replay's sends.
    pub fn raise_output_limits(&mut self, conn: ConnId, bytes: usize) {
        self.actions.push(Action::RaiseOutputLimits(conn, bytes));
    }

    /// Opens an outbound link named `link` to `addr` (see [`Action::Dial`]).
    pub fn dial(&mut self, link: u64, addr: SocketAddr) {
        self.actions.push(Action::Dial { link, addr });
    }

    /// Queues `bytes` on `link` (see [`Action::Transmit`]).
    pub fn transmit(&mut self, link: u64, bytes: Bytes) {
        self.actions.push(Action::Transmit { link, bytes });
    }

    /// Closes `link` at once (see [`Action::Hangup`]).
    pub fn hangup(&mut self, link: u64) {
        self.actions.push(Action::Hangup { link });
    }

    /// What this batch does to `conn`'s openness: `Some(true)` if its last
    /// word on it is an accept, `Some(false)` a close, `None` nothing.
    pub fn pending_open(&self, conn: ConnId) -> Option<bool> {
        self.decided
            .iter()
            .rev()
            .find(|(c, _)| *c == conn)
            .map(|&(_, open)| open)
    }

    /// Queues an action made elsewhere.
    pub fn push(&mut self, action: Action) {
        match &action {
            Action::Accept(conn, _) => self.decided.push((*conn, true)),
            Action::Close(conn, ..) => self.decided.push((*conn, false)),
            Action::Send(..)
            | Action::SetTimer { .. }
            | Action::CancelTimer { .. }
            | Action::RaiseOutputLimits(..)
            | Action::Dial { .. }
            | Action::Transmit { .. }
            | Action::Hangup { .. } => {}
        }
        self.actions.push(action);
    }

    /// Forgets every queued action.
    pub fn clear(&mut self) {
        self.decided.clear();
        self.actions.clear();
    }

    /// Takes the queued actions, first first, leaving the outbox empty (its memory kept).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action> {
        self.decided.clear();
        self.actions.drain(..)
    }
}

impl std::ops::Deref for Outbox {
    type Target = [Action];
    fn deref(&self) -> &[Action] {
        &self.actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SessionId;

    fn conn(n: u32) -> ConnId {
        ConnId {
            key: n,
            generation: 1,
        }
    }

    #[test]
    fn actions_keep_their_order_and_drain_empties() {
        let mut out = Outbox::new(16);
        out.accept(conn(1), SessionGrant::fresh(SessionId([7; 16])));
        out.send(conn(1), b"hi");
        out.close(conn(1), GoawayCode::Normal, "bye");
        out.set_timer(9, 100);
        out.cancel_timer(9);
        out.raise_output_limits(conn(1), 100);
        let kinds: Vec<&str> = out
            .iter()
            .map(|a| match a {
                Action::Accept(..) => "accept",
                Action::Send(..) => "send",
                Action::Close(..) => "close",
                Action::SetTimer { .. } => "set",
                Action::CancelTimer { .. } => "cancel",
                Action::RaiseOutputLimits(..) => "raise",
                Action::Dial { .. } | Action::Transmit { .. } | Action::Hangup { .. } => "link",
            })
            .collect();
        assert_eq!(kinds, ["accept", "send", "close", "set", "cancel", "raise"]);
        assert_eq!(out.drain().count(), 6);
        assert!(out.is_empty());
        assert_eq!(out.pending_open(conn(1)), None);
    }

    #[test]
    fn messages_are_split_at_the_frame_size() {
        let out = Outbox::new(16);
        let frames = out.encode(&[1; 40]);
        let mut decoder = crate::protocol::FrameDecoder::new(16);
        let mut input: &[u8] = &frames;
        let mut sizes = Vec::new();
        while let Some(frame) = decoder.next_frame(&mut input).expect("valid frames") {
            sizes.push((frame.payload.len(), frame.more));
        }
        assert_eq!(sizes, [(16, true), (16, true), (8, false)]);
    }

    #[test]
    fn the_last_accept_or_close_decides() {
        let mut out = Outbox::new(16);
        out.accept(conn(1), SessionGrant::fresh(SessionId([7; 16])));
        assert_eq!(out.pending_open(conn(1)), Some(true));
        assert_eq!(out.pending_open(conn(2)), None);
        out.close(conn(1), GoawayCode::Normal, String::from("done"));
        assert_eq!(out.pending_open(conn(1)), Some(false));
    }
}
