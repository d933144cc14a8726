//! A smoke test of `--app pubsub` over the real binary (PROTOCOL.md §5):
//! subscribe, publish, delivery, and a malformed op.

mod common;

use common::{Client, Server};
use tether::protocol::GoawayCode;

fn op_with_channel(op: u8, channel: &[u8]) -> Vec<u8> {
    let mut m = vec![op];
    m.extend_from_slice(channel);
    m
}

fn publish(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = vec![b'P', u8::try_from(channel.len()).expect("channel fits u8")];
    m.extend_from_slice(channel);
    m.extend_from_slice(body);
    m
}

fn delivery(channel: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = publish(channel, body);
    m[0] = b'M';
    m
}

/// A PING round trip: every frame sent before it on this connection has
/// been handled by the server.
fn sync(c: &mut Client) {
    c.ping(b"sync");
    c.expect_pong(b"sync");
}

#[test]
fn subscribe_publish_deliver() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut sub = server.open(0);
    let mut other = server.open(0);
    let mut publisher = server.open(0);
    sub.send_message(&op_with_channel(b'S', b"news"), 65535);
    other.send_message(&op_with_channel(b'S', b"sport"), 65535);
    sync(&mut sub);
    sync(&mut other);

    publisher.send_message(&publish(b"news", b"hello"), 65535);
    assert_eq!(sub.recv_message(), delivery(b"news", b"hello"));

    // A subscribed publisher gets its own message too.
    sub.send_message(&publish(b"news", b"mine"), 65535);
    assert_eq!(sub.recv_message(), delivery(b"news", b"mine"));

    // Nothing reached the other channel's subscriber or the publisher.
    sync(&mut other);
    sync(&mut publisher);

    // After unsubscribing, nothing more arrives.
    sub.send_message(&op_with_channel(b'U', b"news"), 65535);
    sync(&mut sub);
    publisher.send_message(&publish(b"news", b"gone"), 65535);
    sync(&mut publisher);
    sync(&mut sub);
}

#[test]
fn malformed_op_is_a_protocol_error() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut c = server.open(0);
    c.send_message(b"Xnope", 65535);
    c.expect_goaway(GoawayCode::ProtocolError);
    let mut c = server.open(0);
    c.send_message(b"", 65535);
    c.expect_goaway(GoawayCode::ProtocolError);
}
