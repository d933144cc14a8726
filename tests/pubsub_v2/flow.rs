//! The §7.9 flow byte for byte: the test vectors' HELLO, SUBSCRIBE,
//! SUBSCRIBE_REPLY, PUBLISH, PUBLISH_ACK, PUBLICATION, UNSUBSCRIBE and
//! UNSUBSCRIBE_REPLY, with the vectors' epoch E replaced by the one the
//! server drew. Compared as raw bytes, so a codec bug shared by the server
//! and the test client cannot hide.

use crate::common::{Server, SPLIT};
use crate::CH;

/// The bytes of a §7.9 hex string (`"01 23 ab"`).
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex byte {b:?}")))
        .collect()
}

/// A §7.9 vector with the 8 bytes at `at` (the vectors' epoch E) replaced by `epoch`.
fn with_epoch(vector: &str, at: usize, epoch: u64) -> Vec<u8> {
    let mut bytes = hex(vector);
    assert_eq!(
        &bytes[at..at + 8],
        &hex("01 23 45 67 89 ab cd ef")[..],
        "E at {at}"
    );
    bytes[at..at + 8].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

#[test]
fn the_spec_flow_subscribe_publish_ack_and_unsubscribe() {
    let server = Server::start(&["--app", "pubsub"]);

    // HELLO v2, heartbeat 10000 ms, no token: the §7.9 frame as is.
    let mut sub = server.connect();
    sub.send_raw(&hex("a5 01 00 07 ee f5 96 dc 02 00 00 00 27 10 00"));
    let w = sub.expect_welcome_v2();
    assert!(!w.resumed, "{w:?}");

    // SUBSCRIBE request 1, no position → SUBSCRIBED: OK, no position asked,
    // (epoch, top 0), replay 0. The vector says top 43; a new stream's is 0.
    sub.send_message(&hex("01 00 00 00 01 00 04 6e 65 77 73"), SPLIT);
    let reply = sub.recv_message();
    assert_eq!(reply.len(), 28, "SUBSCRIBE_REPLY length: {reply:02x?}");
    let epoch = u64::from_be_bytes(reply[8..16].try_into().expect("8 bytes"));
    assert_ne!(epoch, 0, "an epoch is never 0");
    let want = with_epoch(
        "02 00 00 00 01 00 00 00 01 23 45 67 89 ab cd ef \
         00 00 00 00 00 00 00 00 00 00 00 00",
        8,
        epoch,
    );
    assert_eq!(reply, want, "SUBSCRIBED (epoch, 0)");

    // PUBLISH request 4 `hi` → PUBLISH_ACK OK (epoch, 1), and the subscriber
    // gets PUBLICATION (epoch, 1) `hi`.
    let mut publisher = server.open_v2(0);
    publisher.send_message(&hex("05 00 00 00 04 04 6e 65 77 73 68 69"), SPLIT);
    assert_eq!(
        publisher.recv_message(),
        with_epoch(
            "06 00 00 00 04 00 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 01",
            6,
            epoch
        ),
        "PUBLISH_ACK OK (epoch, 1)"
    );
    let publication = |offset: u8| {
        let mut p = with_epoch(
            "07 01 23 45 67 89 ab cd ef 00 00 00 00 00 00 00 2a 04 6e 65 77 73 68 69",
            1,
            epoch,
        );
        p[16] = offset;
        p
    };
    assert_eq!(sub.recv_message(), publication(1), "PUBLICATION (epoch, 1)");

    // PUBLISH request 0: published (offset 2) but never acknowledged; the
    // publisher's next frame is the PONG of its sync.
    publisher.send_message(&hex("05 00 00 00 00 04 6e 65 77 73 68 69"), SPLIT);
    publisher.sync();
    assert_eq!(sub.recv_message(), publication(2), "PUBLICATION (epoch, 2)");
    sub.sync();

    // UNSUBSCRIBE request 3 → UNSUBSCRIBE_REPLY OK; nothing follows for the
    // channel, while the stream goes on numbering.
    sub.send_message(&hex("03 00 00 00 03 04 6e 65 77 73"), SPLIT);
    assert_eq!(
        sub.recv_message(),
        hex("04 00 00 00 03 00"),
        "UNSUBSCRIBE_REPLY OK"
    );
    publisher.publish_v2(5, CH, b"hi");
    let ack = publisher.expect_publish_ack(5);
    assert_eq!((ack.epoch, ack.offset), (epoch, 3), "{ack:?}");
    sub.sync();
    publisher.sync();
}
