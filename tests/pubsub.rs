//! A smoke test of `--app pubsub` over the real binary (docs/protocol.md §5):
//! subscribe, publish, delivery, and a malformed op.

mod common;

use common::{delivery, Server};
use tether::protocol::GoawayCode;

#[test]
fn subscribe_publish_deliver() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut sub = server.open(0);
    let mut other = server.open(0);
    let mut publisher = server.open(0);
    sub.subscribe(b"news");
    other.subscribe(b"sport");
    sub.sync();
    other.sync();

    publisher.publish(b"news", b"hello");
    assert_eq!(sub.recv_message(), delivery(b"news", b"hello"));

    // A subscribed publisher gets its own message too.
    sub.publish(b"news", b"mine");
    assert_eq!(sub.recv_message(), delivery(b"news", b"mine"));

    // Nothing reached the other channel's subscriber or the publisher.
    other.sync();
    publisher.sync();

    // After unsubscribing, nothing more arrives.
    sub.unsubscribe(b"news");
    sub.sync();
    publisher.publish(b"news", b"gone");
    publisher.sync();
    sub.sync();
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
