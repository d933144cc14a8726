//! The pub/sub app's messages (docs/protocol.md §5) and the client calls that
//! send them.

use super::client::Client;

/// Where these tests split a DATA message into frames: 16 KiB, well under
/// any server's max_frame here.
pub const SPLIT: usize = 16 * 1024;

/// `S channel`.
pub fn sub_msg(channel: &[u8]) -> Vec<u8> {
    [&b"S"[..], channel].concat()
}

/// `U channel`.
pub fn unsub_msg(channel: &[u8]) -> Vec<u8> {
    [&b"U"[..], channel].concat()
}

/// `P chan_len channel body`.
pub fn pub_msg(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let len = u8::try_from(channel.len()).expect("channel fits u8");
    [&b"P"[..], &[len], channel, body].concat()
}

/// `M chan_len channel body`: what a subscriber must receive.
pub fn delivery(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = pub_msg(channel, body);
    m[0] = b'M';
    m
}

impl Client {
    /// Subscribes to `channel`.
    pub fn subscribe(&mut self, channel: &[u8]) {
        self.send_message(&sub_msg(channel), SPLIT);
    }

    /// Unsubscribes from `channel`.
    pub fn unsubscribe(&mut self, channel: &[u8]) {
        self.send_message(&unsub_msg(channel), SPLIT);
    }

    /// Publishes `body` on `channel`.
    pub fn publish(&mut self, channel: &[u8], body: &[u8]) {
        self.send_message(&pub_msg(channel, body), SPLIT);
    }
}
